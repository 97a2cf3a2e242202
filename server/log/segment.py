"""Record framing and segment files of the embedded room log.

A segment file holds records back to back; its name is the global position of the
first record it holds (or will hold), zero-padded so names sort like numbers.

One record on disk (little-endian):

    frame:  length u32 | crc32 u32 | body[length]
    body:   version u8 | position i64 | time_ms i64 | priority i32
            | room_len u16 | key_len u16 | tp_len u16 | payload_len u32
            | room_id | dedupe_key | traceparent | payload      (UTF-8 / raw bytes)

The CRC covers the body, so a torn or corrupt frame is detected on scan; `length`
is checked against the body's own field lengths, so garbage (e.g. zeros left by a
crash) is never mistaken for a record.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

from barrage.server.log.base import LogRecord

FORMAT_VERSION = 1
SEGMENT_SUFFIX = ".seg"

_FRAME = struct.Struct("<II")
_BODY = struct.Struct("<BqqiHHHI")
FRAME_HEADER_SIZE = _FRAME.size
BODY_HEADER_SIZE = _BODY.size
_U16_MAX = 0xFFFF
MIN_FRAME_SIZE = FRAME_HEADER_SIZE + BODY_HEADER_SIZE + 1
"""The smallest possible record (a room id is never empty): n bytes hold at most
n // MIN_FRAME_SIZE records, which bounds the positions lost bytes could have held."""


class LogCorruptError(Exception):
    """A record that was once durable no longer reads back intact."""


def segment_name(base: int) -> str:
    return f"{base:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    if not name.endswith(SEGMENT_SUFFIX):
        return None
    stem = name[: -len(SEGMENT_SUFFIX)]
    return int(stem) if stem.isdigit() else None


def encode_record(
    room_id: str,
    position: int,
    time_ms: int,
    priority: int,
    dedupe_key: str,
    traceparent: str,
    payload: bytes,
) -> bytes:
    """One framed record. Raises ValueError if a field does not fit its length field."""
    room_b = room_id.encode()
    key_b = dedupe_key.encode()
    tp_b = traceparent.encode()
    if len(room_b) > _U16_MAX or len(key_b) > _U16_MAX or len(tp_b) > _U16_MAX:
        raise ValueError("room_id, dedupe_key and traceparent must each be at most 65535 bytes")
    try:
        header = _BODY.pack(
            FORMAT_VERSION, position, time_ms, priority, len(room_b), len(key_b), len(tp_b), len(payload)
        )
    except struct.error as e:  # e.g. a priority outside int32
        raise ValueError(f"record field out of range: {e}") from e
    body = b"".join((header, room_b, key_b, tp_b, payload))
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


@dataclass(slots=True)
class ScannedRecord:
    """A record found by a scan, with where it lives."""

    position: int
    time_ms: int
    room_id: str
    dedupe_key: str
    offset: int
    """Offset of the frame in the segment file."""
    length: int
    """Frame length (header included)."""
    record: LogRecord | None
    """The whole record, if the scan was asked to decode payloads (full=True)."""


def decode_body(body: bytes | memoryview) -> tuple[LogRecord, int]:
    """Decode a CRC-checked body into (record, time_ms). Raises ValueError if malformed."""
    if len(body) < BODY_HEADER_SIZE:
        raise ValueError("body shorter than its header")
    version, position, time_ms, priority, room_len, key_len, tp_len, payload_len = _BODY.unpack_from(body)
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown record format version {version}")
    if BODY_HEADER_SIZE + room_len + key_len + tp_len + payload_len != len(body):
        raise ValueError("field lengths disagree with frame length")
    mv = memoryview(body)
    at = BODY_HEADER_SIZE
    room_id = str(mv[at : at + room_len], "utf-8")
    at += room_len
    dedupe_key = str(mv[at : at + key_len], "utf-8")
    at += key_len
    traceparent = str(mv[at : at + tp_len], "utf-8")
    at += tp_len
    payload = bytes(mv[at : at + payload_len])
    return LogRecord(room_id, position, payload, priority, dedupe_key, traceparent), time_ms


def decode_frame(frame: bytes) -> tuple[LogRecord, int]:
    """Decode one whole frame as read back by pread. Raises LogCorruptError."""
    if len(frame) < FRAME_HEADER_SIZE:
        raise LogCorruptError("short read")
    length, crc = _FRAME.unpack_from(frame)
    body = memoryview(frame)[FRAME_HEADER_SIZE:]
    if length != len(body) or zlib.crc32(body) != crc:
        raise LogCorruptError("CRC or length mismatch")
    try:
        return decode_body(body)
    except ValueError as e:
        raise LogCorruptError(str(e)) from e


@dataclass(slots=True)
class ScanResult:
    records: list[ScannedRecord] = field(default_factory=list)
    valid_size: int = 0
    """Bytes of the file made of intact records; anything after is torn or corrupt."""
    file_size: int = 0
    problem: str = ""
    """Why the scan stopped before file_size ("" if it did not)."""
    resync_offset: int = -1
    """Where the next intact frame after the bad one starts; -1 if none follows (a torn tail)."""


def _parse_frame(data: bytes, mv: memoryview, off: int, max_frame: int, last: int, full: bool) -> ScannedRecord | str:
    """The intact record framed at `off` whose position is above `last`, or why not."""
    if len(data) - off < FRAME_HEADER_SIZE:
        return "truncated frame header"
    length, crc = _FRAME.unpack_from(data, off)
    end = off + FRAME_HEADER_SIZE + length
    if length < BODY_HEADER_SIZE or length > max_frame:
        return f"implausible frame length {length}"
    if end > len(data):
        return "truncated frame body"
    body = mv[off + FRAME_HEADER_SIZE : end]
    if zlib.crc32(body) != crc:
        return "CRC mismatch"
    try:
        if full:
            record, time_ms = decode_body(body)
            position, room_id, key = record.position, record.room_id, record.dedupe_key
        else:
            record = None
            version, position, time_ms, _, room_len, key_len, tp_len, payload_len = _BODY.unpack_from(body)
            if version != FORMAT_VERSION or BODY_HEADER_SIZE + room_len + key_len + tp_len + payload_len != length:
                raise ValueError("bad version or field lengths")
            at = BODY_HEADER_SIZE
            room_id = str(body[at : at + room_len], "utf-8")
            key = str(body[at + room_len : at + room_len + key_len], "utf-8") if key_len else ""
    except ValueError as e:
        return f"undecodable record: {e}"
    if position <= last:
        return f"position {position} not above {last}"
    return ScannedRecord(position, time_ms, room_id, key, off, end - off, record)


def find_next_frame(data: bytes, start: int, max_frame: int, last: int) -> int:
    """Offset of the first intact frame at or after `start` whose position is above `last`
    (-1 if none): what tells corruption (intact records follow the bad bytes) from a torn
    tail (nothing intact follows). A frame's body starts with the version byte, so only
    offsets 8 bytes before a 0x01 are tried; a false match needs a CRC-32 collision."""
    mv = memoryview(data)
    version = bytes((FORMAT_VERSION,))
    at = start
    while True:
        hit = data.find(version, at + FRAME_HEADER_SIZE)
        if hit < 0:
            return -1
        candidate = hit - FRAME_HEADER_SIZE
        # Header checks first: a CRC over a garbage "length" of megabytes at every candidate
        # would make a large damaged stretch quadratic.
        if _plausible_header(data, candidate, max_frame, last) and isinstance(
            _parse_frame(data, mv, candidate, max_frame, last, False), ScannedRecord
        ):
            return candidate
        at = candidate + 1


def _plausible_header(data: bytes, off: int, max_frame: int, last: int) -> bool:
    """Cheap checks of a frame header and body header: lengths that agree, a later position."""
    if off < 0 or len(data) - off < FRAME_HEADER_SIZE + BODY_HEADER_SIZE:
        return False
    length, _ = _FRAME.unpack_from(data, off)
    if length < BODY_HEADER_SIZE or length > max_frame or off + FRAME_HEADER_SIZE + length > len(data):
        return False
    _, position, _, _, room_len, key_len, tp_len, payload_len = _BODY.unpack_from(data, off + FRAME_HEADER_SIZE)
    fields: int = BODY_HEADER_SIZE + room_len + key_len + tp_len + payload_len
    return bool(position > last and fields == length)


def scan_segment(path: str, base: int, max_frame: int, after_position: int, full: bool) -> ScanResult:
    """Read every intact record of a segment, stopping at the first bad frame.

    A frame is bad if it is short, too long, fails its CRC, does not decode, or its
    position is not above both the previous record's and the segment base - 1.
    With full=False only what the index needs is decoded (payloads stay on disk), which
    makes recovery of a large log about twice as fast. If a bad frame is found,
    `resync_offset` tells whether intact frames follow it (corruption) or not (torn tail).
    """
    with open(path, "rb") as f:
        data = f.read()
    res = ScanResult(file_size=len(data))
    mv = memoryview(data)
    off = 0
    last = max(after_position, base - 1)
    unpack_body = _BODY.unpack_from
    # The same checks as _parse_frame, inlined: this loop is most of a large log's start.
    while off < len(data):
        if len(data) - off < FRAME_HEADER_SIZE:
            res.problem = "truncated frame header"
            break
        length, crc = _FRAME.unpack_from(data, off)
        end = off + FRAME_HEADER_SIZE + length
        if length < BODY_HEADER_SIZE or length > max_frame:
            res.problem = f"implausible frame length {length}"
            break
        if end > len(data):
            res.problem = "truncated frame body"
            break
        body = mv[off + FRAME_HEADER_SIZE : end]
        if zlib.crc32(body) != crc:
            res.problem = "CRC mismatch"
            break
        try:
            if full:
                record, time_ms = decode_body(body)
                position, room_id, key = record.position, record.room_id, record.dedupe_key
            else:
                record = None
                version, position, time_ms, _, room_len, key_len, tp_len, payload_len = unpack_body(body)
                if version != FORMAT_VERSION or BODY_HEADER_SIZE + room_len + key_len + tp_len + payload_len != length:
                    raise ValueError("bad version or field lengths")
                at = BODY_HEADER_SIZE
                room_id = str(body[at : at + room_len], "utf-8")
                key = str(body[at + room_len : at + room_len + key_len], "utf-8") if key_len else ""
        except ValueError as e:
            res.problem = f"undecodable record: {e}"
            break
        if position <= last:
            res.problem = f"position {position} not above {last}"
            break
        last = position
        res.records.append(ScannedRecord(position, time_ms, room_id, key, off, end - off, record))
        off = end
    res.valid_size = off
    if res.problem:
        res.resync_offset = find_next_frame(data, off + 1, max_frame, last)
    return res


@dataclass(slots=True)
class Damage:
    """A stretch of a segment that holds no intact record, between intact ones."""

    offset: int
    """Where the first bad frame starts."""
    end: int
    """Where the next intact frame starts (the file size if none follows)."""
    problem: str
    after_position: int
    """Position of the last intact record before the damage (-1 if none in the log)."""
    next_position: int | None
    """Position of the first intact record after the damage (None if none in this segment)."""


@dataclass(slots=True)
class SegmentScan:
    """Every intact record of a segment, including those after damaged bytes."""

    path: str
    base: int
    file_size: int
    records: list[ScannedRecord] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)


def scan_segment_fully(path: str, base: int, max_frame: int, after_position: int) -> SegmentScan:
    """Like scan_segment, but skips over damaged bytes to the next intact frame, so that
    every record still intact is found (for `barrage log check` / `repair`)."""
    with open(path, "rb") as f:
        data = f.read()
    out = SegmentScan(path, base, len(data))
    mv = memoryview(data)
    off = 0
    last = max(after_position, base - 1)
    while off < len(data):
        got = _parse_frame(data, mv, off, max_frame, last, False)
        if isinstance(got, ScannedRecord):
            last = got.position
            out.records.append(got)
            off += got.length
            continue
        nxt = find_next_frame(data, off + 1, max_frame, last)
        end = len(data) if nxt < 0 else nxt
        following = _parse_frame(data, mv, nxt, max_frame, last, False) if nxt >= 0 else None
        next_position = following.position if isinstance(following, ScannedRecord) else None
        out.damage.append(Damage(off, end, got, last, next_position))
        off = end
    return out


def write_all(fd: int, data: bytes) -> None:
    """write(2) until everything is written (a regular-file write may be partial)."""
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def fsync_dir(path: str) -> None:
    """Make a file creation, rename or deletion in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
