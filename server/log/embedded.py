"""The embedded room log: durable on local disk, no other service needed. One node.

Layout of a data directory:

    LOCK              flock'ed while open: one process per directory
    meta.json         {"format": 1, "epoch": ..., "created_ms": ...}
    RUNNING           only while open with fsync="none" (see _check_unclean_shutdown)
    rooms.sqlite3     the room directory (embedded_rooms.py)
    log/<base>.seg    segments of the shared log (segment.py), <base> = first position

All rooms share one append-only log and one global sequence: a record's position is
its global sequence number, so a room's positions increase but are not contiguous.
See docs/embedded-log.md for durability, group commit, retention and measured cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import time
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from barrage.server.log.base import (
    AppendResult,
    Backend,
    LogEntry,
    LogRecord,
    LogUnavailableError,
    PositionCheck,
    RecordListener,
    RoomLog,
)
from barrage.server.log.dedupe import DedupeWindow
from barrage.server.log.embedded_rooms import EmbeddedRoomDirectory
from barrage.server.log.segment import (
    MIN_FRAME_SIZE,
    LogCorruptError,
    ScannedRecord,
    ScanResult,
    decode_frame,
    encode_record,
    fsync_dir,
    parse_segment_name,
    scan_segment,
    segment_name,
    write_all,
)

__all__ = [
    "EmbeddedLog",
    "EmbeddedOptions",
    "EmbeddedRoomDirectory",
    "LogCorruptError",
    "open_embedded",
]

_log = logging.getLogger(__name__)

META_FORMAT = 1
_META = "meta.json"
_LOCK = "LOCK"
_RUNNING = "RUNNING"
_ROOMS_DB = "rooms.sqlite3"
_LOG_DIR = "log"
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class EmbeddedOptions:
    """Tuning of the embedded log. Every field is a keyword of open_embedded()."""

    fsync: Literal["always", "none"] = "always"
    """always: ack after fdatasync (group-committed); survives power loss.
    none: ack after write(2); survives a process crash (kill -9), not power loss."""
    segment_bytes: int = 64 * 1024 * 1024
    """Roll to a new segment file once the active one would exceed this."""
    retention_bytes: int | None = None
    """Delete the oldest whole segments while the log is larger than this (None: no limit)."""
    retention_ms: int | None = None
    """Delete whole segments whose newest record is older than this (None: no limit)."""
    retention_check_interval_s: float = 30.0
    """How often age-based retention runs (size-based also runs at every roll)."""
    cache_records_per_room: int = 256
    """Most recent records of each room kept in memory, so resume/history of recent events skip disk."""
    dedupe_window_ms: int = 10 * 60 * 1000
    """How long a dedupe key is remembered."""
    dedupe_max_entries: int = 250_000
    """Cap on remembered keys (~150 B each); past it the oldest are forgotten first."""
    max_record_bytes: int = 1024 * 1024
    """Largest encoded record accepted; append() raises ValueError above it."""
    max_pending_bytes: int = 64 * 1024 * 1024
    """Bytes waiting for the writer beyond which append() fails fast with LogUnavailableError."""
    append_timeout_s: float | None = 10.0
    """append() raises LogUnavailableError if not durable within this (the entry may still land)."""
    read_threads: int = 4
    """Threads for pread of records that are not cached."""

    def __post_init__(self) -> None:
        if self.fsync not in ("always", "none"):
            raise ValueError(f"fsync must be 'always' or 'none', not {self.fsync!r}")
        if self.segment_bytes <= 0 or self.max_record_bytes <= 0 or self.read_threads <= 0:
            raise ValueError("segment_bytes, max_record_bytes and read_threads must be positive")
        if self.cache_records_per_room < 0 or self.dedupe_max_entries < 0 or self.dedupe_window_ms < 0:
            raise ValueError("cache and dedupe sizes must not be negative")


def open_embedded(path: str, **options: Any) -> Backend:
    """An embedded Backend on data directory `path` (created if missing). Not started:
    call `await backend.log.start()` first and `await backend.log.close()` last; they
    open and close the room directory too. Options: see EmbeddedOptions."""
    rooms = EmbeddedRoomDirectory(os.path.join(path, _ROOMS_DB))
    log = EmbeddedLog(path, EmbeddedOptions(**options), rooms=rooms)
    return Backend(log=log, rooms=rooms)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _boot_id() -> str:
    try:
        with open(_BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


class _Segment:
    """One segment file. Its fd stays open for pread until retired and unreferenced."""

    __slots__ = ("base", "fd", "last_time_ms", "path", "refs", "retired", "size")

    def __init__(self, base: int, path: str, fd: int, size: int, last_time_ms: int) -> None:
        self.base = base
        self.path = path
        self.fd = fd
        self.size = size
        self.last_time_ms = last_time_ms
        self.refs = 0
        self.retired = False

    def retire(self) -> None:
        """No new reads; close the fd once reads in flight are done (never close under them)."""
        self.retired = True
        if self.refs == 0:
            self._close()

    def release(self) -> None:
        self.refs -= 1
        if self.retired and self.refs == 0:
            self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _RoomState:
    """Per-room index: parallel arrays (position, segment base, frame offset, frame length)
    plus the newest records in memory. The cache is always the tail of the arrays."""

    __slots__ = ("cache", "lengths", "offsets", "positions", "segs")

    def __init__(self, cache_size: int) -> None:
        self.positions = array("q")
        self.segs = array("q")
        self.offsets = array("q")
        self.lengths = array("q")
        self.cache: deque[LogRecord] = deque(maxlen=cache_size)

    def add(self, position: int, record: LogRecord | None, seg: int, offset: int, length: int) -> None:
        """Index a record; cache it if given (else the cache restarts after it, staying a tail)."""
        self.positions.append(position)
        self.segs.append(seg)
        self.offsets.append(offset)
        self.lengths.append(length)
        if record is not None:
            self.cache.append(record)
        elif self.cache:
            self.cache.clear()

    def drop_below(self, position: int) -> None:
        k = bisect_left(self.positions, position)
        if k:
            del self.positions[:k], self.segs[:k], self.offsets[:k], self.lengths[:k]
        while len(self.cache) > len(self.positions):
            self.cache.popleft()


@dataclass(slots=True)
class _Pending:
    """The new records of one append() call, waiting for the writer."""

    records: list[LogRecord]
    frames: list[bytes]
    time_ms: int
    future: asyncio.Future[None]
    keys: list[tuple[str, str]]


@dataclass(slots=True)
class _Fetch:
    """Records to return: cached ones, or where to pread them (segments referenced)."""

    items: list[LogRecord | tuple[_Segment, int, int]]
    segs: list[_Segment]


@dataclass(slots=True)
class _Plan:
    """How one append() call is answered."""

    results: list[AppendResult | None]
    """Filled for in-call duplicates now, others as they resolve; None: a new record."""
    records: list[LogRecord] = field(default_factory=list)
    future: asyncio.Future[None] | None = None
    waits: list[tuple[int, asyncio.Future[None], LogRecord]] = field(default_factory=list)
    """Duplicates of records still in flight: (entry index, their batch future, record)."""
    lookups: list[int] = field(default_factory=list)
    """Entry indexes of duplicates of committed records, read back via `fetch`."""
    fetch: _Fetch = field(default_factory=lambda: _Fetch([], []))


@dataclass(slots=True)
class _Recovered:
    segments: list[_Segment] = field(default_factory=list)
    rooms: dict[str, _RoomState] = field(default_factory=dict)
    dedupe: DedupeWindow | None = None
    next_position: int = 0
    records: int = 0
    truncated_bytes: int = 0


@dataclass(slots=True)
class _Stats:
    batches: int = 0
    records: int = 0
    bytes: int = 0
    write_s: float = 0.0
    fsync_s: float = 0.0
    rolls: int = 0
    segments_deleted: int = 0
    refused_appends: int = 0
    """append() calls refused after a write failure (the episode is logged once)."""


class EmbeddedLog(RoomLog):
    """RoomLog on local disk. See the module docstring and docs/embedded-log.md.

    Live records: the listener receives only records of watched rooms (watch/unwatch
    filter on this node), each batch after it is durable, in position order.
    """

    def __init__(
        self,
        path: str,
        options: EmbeddedOptions | None = None,
        *,
        rooms: EmbeddedRoomDirectory | None = None,
    ) -> None:
        self._path = os.path.abspath(path)
        self._log_dir = os.path.join(self._path, _LOG_DIR)
        self._opt = options or EmbeddedOptions()
        self._rooms_dir = rooms
        self._state: Literal["new", "starting", "open", "closing", "closed"] = "new"
        self._epoch = ""
        self._meta: dict[str, Any] = {}
        self._lock_fd = -1
        self._io: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._segments: dict[int, _Segment] = {}
        self._order: list[_Segment] = []  # oldest first; the last one is the active segment
        self._rooms: dict[str, _RoomState] = {}
        self._dedupe = DedupeWindow(self._opt.dedupe_window_ms, self._opt.dedupe_max_entries)
        self._inflight: dict[tuple[str, str], tuple[asyncio.Future[None], LogRecord]] = {}
        self._next_position = 0
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._wakeup = asyncio.Event()
        self._roll_waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self._failure_listeners: list[Callable[[BaseException], None]] = []
        self._listener: RecordListener | None = None
        self._watched: set[str] = set()
        self._last_planned: dict[str, int] = {}
        """Room -> position of its newest record given a position (committed or pending)."""
        self._stats = _Stats()
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"EmbeddedLog.start() called on a {self._state} log")
        self._state = "starting"
        loop = asyncio.get_running_loop()
        self._io = ThreadPoolExecutor(1, thread_name_prefix="barrage-log-io")
        self._readers = ThreadPoolExecutor(self._opt.read_threads, thread_name_prefix="barrage-log-read")
        try:
            rec = await loop.run_in_executor(self._io, self._open_dir)
            if self._rooms_dir is not None:
                await self._rooms_dir.open()
        except BaseException:
            await loop.run_in_executor(self._io, self._unlock)
            self._shutdown_executors()
            self._state = "closed"
            raise
        self._order = rec.segments
        self._segments = {s.base: s for s in rec.segments}
        self._rooms = rec.rooms
        if rec.dedupe is not None:
            self._dedupe = rec.dedupe
        self._next_position = rec.next_position
        self._writer = asyncio.create_task(self._run_writer(), name="barrage-log-writer")
        if self._opt.retention_ms is not None:
            self._ticker = asyncio.create_task(self._run_retention_ticker(), name="barrage-log-retention")
        self._state = "open"
        _log.info(
            "embedded log open: %s epoch=%s records=%d segments=%d next_position=%d fsync=%s",
            self._path,
            self._epoch,
            rec.records,
            len(rec.segments),
            rec.next_position,
            self._opt.fsync,
        )
        if self._opt.retention_bytes is not None or self._opt.retention_ms is not None:
            await self.enforce_retention()

    async def close(self) -> None:
        if self._state in ("new", "closed"):
            self._state = "closed"
            return
        if self._state == "closing":
            await self._closed.wait()
            return
        self._state = "closing"
        try:
            if self._ticker is not None:
                self._ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._ticker
            self._wakeup.set()
            if self._writer is not None:
                await self._writer  # drains every pending append first
            loop = asyncio.get_running_loop()
            if self._failed is not None:
                _log.warning(
                    "embedded log closing after a write failure: %d append(s) were refused since (%s)",
                    self._stats.refused_appends,
                    _describe_os_error(self._failed),
                )
            if self._io is not None:
                try:
                    await loop.run_in_executor(self._io, self._sync_and_unmark)
                except OSError:
                    if self._failed is None:
                        raise  # after a write failure, the restart's recovery decides
            for seg in self._order:
                seg.retire()  # reads still in flight keep their fd until they release it
            if self._io is not None:
                await loop.run_in_executor(self._io, self._unlock)
            if self._rooms_dir is not None:
                await self._rooms_dir.close()
        finally:
            self._shutdown_executors()
            self._state = "closed"
            self._closed.set()

    def _shutdown_executors(self) -> None:
        for ex in (self._io, self._readers):
            if ex is not None:
                ex.shutdown(wait=True)
        self._io = self._readers = None

    # ------------------------------------------------------------------ RoomLog

    def epoch(self, room_id: str) -> str:
        if not self._epoch:
            raise RuntimeError("EmbeddedLog is not started")
        return self._epoch

    def set_listener(self, listener: RecordListener) -> None:
        self._listener = listener

    async def watch(self, room_id: str) -> None:
        self._watched.add(room_id)

    async def unwatch(self, room_id: str) -> None:
        self._watched.discard(room_id)

    async def append(self, room_id: str, entries: Sequence[LogEntry]) -> list[AppendResult]:
        if self._state != "open":
            raise LogUnavailableError(f"embedded log is {self._state}")
        if self._failed is not None:
            self._stats.refused_appends += 1  # counted, not logged: _fail logged the episode
            raise LogUnavailableError(f"embedded log failed and must be restarted: {self._failed}")
        if not room_id:
            raise ValueError("room_id must not be empty")
        if not entries:
            return []
        plan = self._plan(room_id, entries)
        results = plan.results
        try:
            async with asyncio.timeout(self._opt.append_timeout_s):
                if plan.future is not None:
                    await asyncio.shield(plan.future)
                for i, other, rec in plan.waits:
                    await asyncio.shield(other)
                    results[i] = AppendResult(rec, True)
        except TimeoutError as e:
            self._release_refs(plan.fetch)
            raise LogUnavailableError(
                f"append not confirmed within {self._opt.append_timeout_s}s; it may still be appended"
            ) from e
        except BaseException:
            self._release_refs(plan.fetch)
            raise
        if plan.lookups:
            found = await self._materialize(plan.fetch)
            for i, rec in zip(plan.lookups, found, strict=True):
                results[i] = AppendResult(rec, True)
        it = iter(plan.records)
        return [r if r is not None else AppendResult(next(it), False) for r in results]

    def _plan(self, room_id: str, entries: Sequence[LogEntry]) -> _Plan:
        """Dedupe decisions, position assignment and enqueueing, all without an await,
        so they are atomic with respect to other append() calls."""
        now = _now_ms()
        plan = _Plan([None] * len(entries))
        records = plan.records
        frames: list[bytes] = []
        keys: list[tuple[str, str]] = []
        in_call: dict[str, LogRecord] = {}
        positions: list[int] = []
        # Each new record carries its predecessor in the room, for the node's live continuity
        # check (-1: the room's first; None: unknown, retention removed all the room had).
        prev = self._last_planned.get(room_id)
        if prev is None:
            st = self._rooms.get(room_id)
            prev = -1 if st is None else (st.positions[-1] if st.positions else None)
        for i, e in enumerate(entries):
            k = e.dedupe_key
            if k:
                first = in_call.get(k)
                if first is not None:
                    plan.results[i] = AppendResult(first, True)
                    continue
                flying = self._inflight.get((room_id, k))
                if flying is not None:
                    plan.waits.append((i, flying[0], flying[1]))
                    continue
                pos = self._dedupe.get(room_id, k, now)
                if pos is not None:
                    plan.lookups.append(i)
                    positions.append(pos)
                    continue
            rec = LogRecord(room_id, self._next_position + len(records), e.payload, e.priority, k, e.traceparent, prev)
            prev = rec.position
            frame = encode_record(room_id, rec.position, now, e.priority, k, e.traceparent, e.payload)
            if len(frame) > self._opt.max_record_bytes:
                raise ValueError(f"record of {len(frame)} bytes exceeds max_record_bytes={self._opt.max_record_bytes}")
            records.append(rec)
            frames.append(frame)
            if k:
                in_call[k] = rec
                keys.append((room_id, k))
        if records:
            size = sum(map(len, frames))
            if self._pending and self._pending_bytes + size > self._opt.max_pending_bytes:
                raise LogUnavailableError("embedded log overloaded: too many bytes waiting for disk")
            fut = plan.future = asyncio.get_running_loop().create_future()
            # A caller may stop waiting (timeout, cancel); keep asyncio from logging the error.
            fut.add_done_callback(_consume_exception)
            for key in keys:
                self._inflight[key] = (fut, in_call[key[1]])
            self._next_position += len(records)
            self._last_planned[room_id] = records[-1].position
            self._pending.append(_Pending(records, frames, now, fut, keys))
            self._pending_bytes += size
            self._wakeup.set()
        if positions:
            plan.fetch = self._locate_positions(room_id, positions)
        return plan

    async def read(self, room_id: str, after: int, limit: int) -> list[LogRecord]:
        self._check_readable()
        st = self._rooms.get(room_id)
        if st is None or limit <= 0:
            return []
        i = bisect_right(st.positions, after)
        j = min(len(st.positions), i + limit)
        if i >= j:
            return []
        return await self._materialize(self._locate(st, range(i, j)))

    async def read_backward(self, room_id: str, before: int | None, limit: int) -> list[LogRecord]:
        self._check_readable()
        st = self._rooms.get(room_id)
        if st is None or limit <= 0:
            return []
        j = len(st.positions) if before is None else bisect_left(st.positions, before)
        i = max(0, j - limit)
        if i >= j:
            return []
        return await self._materialize(self._locate(st, range(j - 1, i - 1, -1)))

    async def head(self, room_id: str) -> int | None:
        self._check_readable()
        st = self._rooms.get(room_id)
        return st.positions[-1] if st is not None and st.positions else None

    async def retained_from(self, room_id: str) -> int:
        # Global, not per room: the first record of the oldest segment. Conservative for
        # rooms whose first retained record is later, and exact about what was deleted.
        self._check_readable()
        return self._order[0].base

    async def check_position(self, room_id: str, position: int) -> PositionCheck:
        # One bisect in the room's own index: positions are global, so only the room's
        # index can say whether a position is the room's. No I/O.
        self._check_readable()
        if position < self._order[0].base:
            return PositionCheck.NOT_RETAINED
        st = self._rooms.get(room_id)
        if st is not None:
            i = bisect_left(st.positions, position)
            if i < len(st.positions) and st.positions[i] == position:
                return PositionCheck.RECORD
        return PositionCheck.NOT_A_RECORD

    # ------------------------------------------------------------------ extras (embedded only)

    @property
    def path(self) -> str:
        return self._path

    @property
    def options(self) -> EmbeddedOptions:
        return self._opt

    def stats(self) -> dict[str, Any]:
        """Counters since start (for benchmarks and metrics)."""
        out = asdict(self._stats)
        out.update(
            segments=len(self._order),
            log_bytes=sum(s.size for s in self._order),
            rooms=len(self._rooms),
            dedupe_keys=len(self._dedupe),
            next_position=self._next_position,
        )
        return out

    async def roll(self) -> None:
        """Seal the active segment (if it holds anything) and start a new one."""
        if self._state != "open":
            raise LogUnavailableError(f"embedded log is {self._state}")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume_exception)
        self._roll_waiters.append(fut)
        self._wakeup.set()
        await fut

    async def enforce_retention(self, *, max_bytes: int | None = None, max_age_ms: int | None = None) -> int:
        """Delete the oldest sealed segments beyond the limits (default: the options').

        The active segment is never deleted. Returns how many segments were deleted.
        """
        self._check_readable()
        max_bytes = self._opt.retention_bytes if max_bytes is None else max_bytes
        max_age_ms = self._opt.retention_ms if max_age_ms is None else max_age_ms
        cutoff = _now_ms() - max_age_ms if max_age_ms is not None else None
        total = sum(s.size for s in self._order)
        doomed: list[_Segment] = []
        for seg in self._order[:-1]:
            too_big = max_bytes is not None and total > max_bytes
            too_old = cutoff is not None and seg.last_time_ms < cutoff
            if not (too_big or too_old):
                break
            doomed.append(seg)
            total -= seg.size
        if not doomed:
            return 0
        # State first (synchronously, so no reader sees a half-deleted log), files after.
        del self._order[: len(doomed)]
        floor = self._order[0].base
        for seg in doomed:
            del self._segments[seg.base]
            seg.retire()
        for room_id in [r for r, st in self._rooms.items() if st.positions and st.positions[0] < floor]:
            st = self._rooms[room_id]
            st.drop_below(floor)
            if not st.positions:
                del self._rooms[room_id]
        self._dedupe.drop_below(floor)
        self._stats.segments_deleted += len(doomed)
        paths = [s.path for s in doomed]
        if self._io is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, _unlink_all, paths)
        _log.info("retention deleted %d segment(s); retained_from=%d", len(doomed), floor)
        return len(doomed)

    # ------------------------------------------------------------------ reads

    def _check_readable(self) -> None:
        if self._state not in ("open", "closing"):
            raise LogUnavailableError(f"embedded log is {self._state}")

    def _locate(self, st: _RoomState, idxs: range) -> _Fetch:
        """Where records live (cache or file), taking a reference on every segment used.

        Synchronous on purpose: retention cannot run between locating and referencing.
        """
        n = len(st.positions)
        cache_start = n - len(st.cache)
        cached = list(st.cache) if idxs and max(idxs) >= cache_start else []
        items: list[LogRecord | tuple[_Segment, int, int]] = []
        segs: dict[int, _Segment] = {}
        for k in idxs:
            if k >= cache_start:
                items.append(cached[k - cache_start])
                continue
            base = st.segs[k]
            seg = segs.get(base)
            if seg is None:
                seg = segs[base] = self._segments[base]
            items.append((seg, st.offsets[k], st.lengths[k]))
        for seg in segs.values():
            seg.refs += 1
        return _Fetch(items, list(segs.values()))

    def _locate_positions(self, room_id: str, positions: list[int]) -> _Fetch:
        st = self._rooms.get(room_id)
        idxs: list[int] = []
        for p in positions:
            k = bisect_left(st.positions, p) if st is not None else 0
            if st is None or k >= len(st.positions) or st.positions[k] != p:
                raise LogUnavailableError(f"dedupe points at missing record {room_id}@{p}")
            idxs.append(k)
        assert st is not None
        fetch = _Fetch([], [])
        for k in idxs:  # one at a time: a range per position keeps _locate simple
            one = self._locate(st, range(k, k + 1))
            fetch.items.extend(one.items)
            fetch.segs.extend(one.segs)
        return fetch

    def _release_refs(self, fetch: _Fetch) -> None:
        for seg in fetch.segs:
            seg.release()
        fetch.segs = []

    async def _materialize(self, fetch: _Fetch) -> list[LogRecord]:
        try:
            disk = [(slot, it) for slot, it in enumerate(fetch.items) if isinstance(it, tuple)]
            out: list[LogRecord | None] = [it if isinstance(it, LogRecord) else None for it in fetch.items]
            if disk:
                if self._readers is None:
                    raise LogUnavailableError("embedded log is closed")
                where = [(seg.fd, off, ln) for _, (seg, off, ln) in disk]
                try:
                    got = await asyncio.get_running_loop().run_in_executor(self._readers, _pread_records, where)
                except (OSError, LogCorruptError) as e:
                    raise LogUnavailableError(f"embedded log read failed: {e}") from e
                for (slot, _), rec in zip(disk, got, strict=True):
                    out[slot] = rec
            return [r for r in out if r is not None]
        finally:
            self._release_refs(fetch)

    # ------------------------------------------------------------------ writer (group commit)

    async def _run_writer(self) -> None:
        """The only task that writes. Takes everything pending, writes it with one write(2),
        fdatasyncs once (fsync="always"), then acknowledges the whole batch at once."""
        loop = asyncio.get_running_loop()
        assert self._io is not None
        always = self._opt.fsync == "always"
        while True:
            active = self._order[-1]
            if not self._pending:
                if self._roll_waiters and active.size == 0:
                    _resolve_all(self._roll_waiters)
                    continue
                if self._roll_waiters:
                    batch: list[_Pending] = []
                elif self._state == "closing":
                    return
                else:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
            else:
                batch = self._pending
            self._pending = []
            self._pending_bytes = 0
            data = b"".join(f for p in batch for f in p.frames)
            roll_waiters, self._roll_waiters = self._roll_waiters, []
            roll = active.size > 0 and (bool(roll_waiters) or active.size + len(data) > self._opt.segment_bytes)
            # The new segment is named after the first position it will hold.
            new_base = -1
            if roll:
                new_base = batch[0].records[0].position if batch else self._next_position
            try:
                new_fd, write_s, fsync_s = await loop.run_in_executor(
                    self._io, self._io_write, active.fd, new_base, data, always
                )
            except Exception as e:  # any write failure stops the log
                self._fail(e, batch, roll_waiters)
                return
            if new_fd >= 0:
                active = _Segment(new_base, os.path.join(self._log_dir, segment_name(new_base)), new_fd, 0, 0)
                self._order.append(active)
                self._segments[new_base] = active
                self._stats.rolls += 1
            self._stats.write_s += write_s
            self._stats.fsync_s += fsync_s
            if batch:
                self._commit(batch, active)
            _resolve_all(roll_waiters)
            if new_fd >= 0 and self._opt.retention_bytes is not None:
                try:
                    await self.enforce_retention()
                except Exception:
                    _log.exception("retention failed")

    def _io_write(self, fd: int, new_base: int, data: bytes, sync: bool) -> tuple[int, float, float]:
        """On the io thread: optionally roll, then write (and fdatasync) one batch."""
        t0 = time.perf_counter()
        new_fd = -1
        if new_base >= 0:
            if not sync:
                os.fdatasync(fd)  # a sealed segment is always complete on disk
            path = os.path.join(self._log_dir, segment_name(new_base))
            new_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            try:
                fsync_dir(self._log_dir)
                self._record_active(path, new_fd)
            except BaseException:
                os.close(new_fd)
                raise
            fd = new_fd
        try:
            if data:
                write_all(fd, data)
            t1 = time.perf_counter()
            if sync and data:
                os.fdatasync(fd)
        except BaseException:
            if new_fd >= 0:
                os.close(new_fd)
            raise
        t2 = time.perf_counter()
        return new_fd, t1 - t0, t2 - t1

    def _commit(self, batch: list[_Pending], seg: _Segment) -> None:
        """On the loop, after the batch is durable: index, cache, dedupe, ack, deliver."""
        off = seg.size
        live: list[LogRecord] = []
        watched = self._watched
        rooms = self._rooms
        n = 0
        for p in batch:
            for rec, frame in zip(p.records, p.frames, strict=True):
                st = rooms.get(rec.room_id)
                if st is None:
                    st = rooms[rec.room_id] = _RoomState(self._opt.cache_records_per_room)
                st.add(rec.position, rec, seg.base, off, len(frame))
                off += len(frame)
                if rec.dedupe_key:
                    self._dedupe.add(rec.room_id, rec.dedupe_key, rec.position, p.time_ms)
                if rec.room_id in watched:
                    live.append(rec)  # with its prev_position (see _plan)
            n += len(p.records)
            for key in p.keys:
                self._inflight.pop(key, None)
            if not p.future.done():
                p.future.set_result(None)
        self._stats.bytes += off - seg.size
        seg.size = off
        seg.last_time_ms = max(seg.last_time_ms, batch[-1].time_ms)
        self._stats.batches += 1
        self._stats.records += n
        if live and self._listener is not None:
            try:
                self._listener(live)
            except Exception:
                _log.exception("log listener failed")

    def _fail(self, exc: BaseException, batch: list[_Pending], roll_waiters: list[asyncio.Future[None]]) -> None:
        """A write or fdatasync failed: what reached disk is unknown (after a failed fsync,
        dirty pages may be dropped), so stop appending; a restart recovers from the files."""
        self._failed = exc
        err = LogUnavailableError(f"embedded log write failed: {exc}")
        lost = [*batch, *self._pending]
        for p in lost:
            if not p.future.done():
                p.future.set_exception(err)
        # One line for the whole episode (it lasts until restart); later refusals are only
        # counted (stats()["refused_appends"]) and summed up at close.
        _log.error(
            "embedded log write failed (%s): %d append(s) of %d record(s) refused; every append is refused "
            "until the node restarts (health: NOT_SERVING)",
            _describe_os_error(exc),
            len(lost),
            sum(len(p.records) for p in lost),
        )
        self._stats.refused_appends += len(lost)
        for f in [*roll_waiters, *self._roll_waiters]:
            if not f.done():
                f.set_exception(err)
        self._pending = []
        self._pending_bytes = 0
        self._roll_waiters = []
        self._inflight.clear()
        for callback in self._failure_listeners:
            try:
                callback(exc)
            except Exception:
                _log.exception("log failure listener failed")

    @property
    def failure(self) -> BaseException | None:
        """Why appends are refused until restart (None while the log is healthy)."""
        return self._failed

    def add_failure_listener(self, callback: Callable[[BaseException], None]) -> None:
        """Called once, on the event loop, when a write failure stops appends (the node
        uses it to report NOT_SERVING: only a restart recovers)."""
        self._failure_listeners.append(callback)
        if self._failed is not None:
            callback(self._failed)

    async def _run_retention_ticker(self) -> None:
        assert self._opt.retention_ms is not None
        while True:
            await asyncio.sleep(self._opt.retention_check_interval_s)
            try:
                active = self._order[-1]
                if active.size > 0 and active.last_time_ms < _now_ms() - self._opt.retention_ms:
                    await self.roll()  # an idle active segment would otherwise never expire
                await self.enforce_retention()
            except LogUnavailableError:
                return
            except Exception:
                _log.exception("retention failed")

    # ------------------------------------------------------------------ open / recover (io thread)

    def _open_dir(self) -> _Recovered:
        os.makedirs(self._log_dir, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self._path, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise RuntimeError(f"data directory {self._path} is in use by another process (or log)") from e
        bases = sorted(b for b in map(parse_segment_name, os.listdir(self._log_dir)) if b is not None)
        self._load_meta(have_segments=bool(bases))
        self._check_unclean_shutdown()
        rec = _Recovered()
        try:
            self._recover_segments(bases, rec)
        except BaseException:
            for seg in rec.segments:
                seg.retire()
            raise
        active = rec.segments[-1]
        self._record_active(active.path, active.fd)
        if self._opt.fsync == "none":
            _write_json_durably(
                os.path.join(self._path, _RUNNING), {"boot_id": _boot_id(), "pid": os.getpid(), "fsync": "none"}
            )
        return rec

    def _load_meta(self, have_segments: bool) -> None:
        meta_path = os.path.join(self._path, _META)
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if meta.get("format") != META_FORMAT:
                raise RuntimeError(f"{meta_path}: unsupported format {meta.get('format')!r}")
            self._epoch = str(meta["epoch"])
            self._meta = meta
            if not have_segments:
                # Numbering restarts at 0 with no segments; an old epoch would let old
                # cursors silently skip new records.
                self._new_epoch("meta.json present but no log segments")
            elif not active_segment_matches(self._log_dir, meta):
                # A backup restored (or the directory copied): its newest records may be
                # older than ones clients were given, whose positions would be reused.
                self._new_epoch("the newest segment is not the file this log last wrote (restored or copied)")
            return
        if have_segments:
            raise RuntimeError(f"{self._log_dir} has segments but {meta_path} is missing; refusing to guess the epoch")
        self._new_epoch("new data directory")

    def _record_active(self, path: str, fd: int) -> None:
        """Note in meta.json which file is the active segment (name and inode), so a start
        on files restored from a backup or copied, not the ones this log wrote, is noticed."""
        active = {"name": os.path.basename(path), "ino": os.fstat(fd).st_ino}
        if self._meta.get("active") == active:
            return  # the usual start: nothing to write (and a start on a full disk still works)
        self._meta = {**self._meta, "active": active}
        _write_json_durably(os.path.join(self._path, _META), self._meta)

    def _new_epoch(self, why: str) -> None:
        old = self._epoch
        self._epoch = uuid.uuid4().hex
        self._meta = {"format": META_FORMAT, "epoch": self._epoch, "created_ms": _now_ms()}
        _write_json_durably(os.path.join(self._path, _META), self._meta)
        level = logging.WARNING if old else logging.INFO
        _log.log(level, "embedded log %s: new epoch %s (was %r): %s", self._path, self._epoch, old, why)

    def _check_unclean_shutdown(self) -> None:
        """With fsync="none", acked records live in the page cache until the OS writes
        them. If the machine went down while such a log was open (RUNNING left behind,
        boot id changed), records that clients saw may be gone and their positions
        reused: start a new epoch so old cursors are refused rather than silently wrong."""
        path = os.path.join(self._path, _RUNNING)
        if not os.path.exists(path):
            return
        try:
            with open(path) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {}
        boot = _boot_id()
        if info.get("fsync", "none") == "none" and (not boot or info.get("boot_id") != boot):
            self._new_epoch("unclean shutdown across a reboot with fsync='none'")
        os.unlink(path)
        fsync_dir(self._path)

    def _recover_segments(self, bases: list[int], rec: _Recovered) -> None:
        opt = self._opt
        now = _now_ms()
        dedupe = DedupeWindow(opt.dedupe_window_ms, opt.dedupe_max_entries)
        dedupe_from = now - opt.dedupe_window_ms
        max_frame = max(opt.max_record_bytes, 256 * 1024 * 1024)
        last_pos = -1
        for n, base in enumerate(bases):
            path = os.path.join(self._log_dir, segment_name(base))
            is_last = n == len(bases) - 1
            # Payloads are decoded only for the newest segment: they seed the caches.
            res = scan_segment(path, base, max_frame, last_pos, full=is_last)
            if res.problem:
                if not is_last or res.resync_offset >= 0:
                    raise LogCorruptError(_corruption_message(self._path, path, res, sealed=not is_last))
                # Nothing intact follows the bad frame: a write the crash cut short.
                torn = res.file_size - res.valid_size
                _log.warning(
                    "%s: %s at offset %d: truncating %d byte(s) of torn tail",
                    path,
                    res.problem,
                    res.valid_size,
                    torn,
                )
                os.truncate(path, res.valid_size)
                fd = os.open(path, os.O_RDWR)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                rec.truncated_bytes += torn
            if not is_last and res.records and res.records[-1].position >= bases[n + 1]:
                raise LogCorruptError(f"{path}: records run past the next segment's base {bases[n + 1]}")
            last_time = _index_records(res.records, base, rec.rooms, dedupe, dedupe_from, opt.cache_records_per_room)
            if res.records:
                last_pos = res.records[-1].position
            rec.records += len(res.records)
            flags = os.O_RDWR | os.O_APPEND if is_last else os.O_RDONLY
            rec.segments.append(_Segment(base, path, os.open(path, flags), res.valid_size, last_time))
        rec.next_position = max(last_pos + 1, bases[-1] if bases else 0)
        skipped = rec.truncated_bytes // MIN_FRAME_SIZE
        if skipped:
            # The cut bytes held unacknowledged records -- or, if the disk flipped a bit in
            # the newest frames, acknowledged ones. Either way their positions are never
            # handed out again: skip as many as the bytes could hold, and make the skip
            # durable as the name of a new segment (a segment's name is a floor for the
            # next position, see below).
            floor = rec.next_position + skipped
            _log.warning(
                "%s: positions %d..%d may have been in the torn tail; numbering continues at %d",
                self._log_dir,
                rec.next_position,
                floor - 1,
                floor,
            )
            rec.segments.append(self._create_segment(floor))
            rec.next_position = floor
        if not bases:
            rec.segments.append(self._create_segment(0))
        dedupe.expire(now)
        rec.dedupe = dedupe

    def _create_segment(self, base: int) -> _Segment:
        """A new, empty active segment, durable in the directory before anything goes in it."""
        path = os.path.join(self._log_dir, segment_name(base))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fsync_dir(self._log_dir)
        return _Segment(base, path, fd, 0, 0)

    def _sync_and_unmark(self) -> None:
        """On the io thread at close: make everything durable, then drop the RUNNING mark."""
        if self._order:
            active = self._order[-1]
            if active.fd >= 0:
                os.fdatasync(active.fd)
        running = os.path.join(self._path, _RUNNING)
        if self._epoch and os.path.exists(running):
            os.unlink(running)
            fsync_dir(self._path)

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # also releases the flock
            self._lock_fd = -1


def active_segment_matches(log_dir: str, meta: dict[str, Any]) -> bool:
    """True unless meta.json names an active segment that is missing or another file
    (another inode): then the segments were restored from a backup or copied. A log
    that never recorded one (older versions) matches."""
    active = meta.get("active")
    if not isinstance(active, dict):
        return True
    try:
        return os.stat(os.path.join(log_dir, str(active.get("name")))).st_ino == active.get("ino")
    except OSError:
        return False


def _corruption_message(data_dir: str, path: str, res: ScanResult, *, sealed: bool) -> str:
    where = "a sealed segment" if sealed else "the active segment"
    if res.resync_offset >= 0:
        why = (
            f"intact records follow at offset {res.resync_offset}, so this is disk corruption, "
            "not a write cut short by a crash"
        )
    else:
        why = "sealed segments were synced before the next one began, so this is disk corruption"
    return (
        f"{path}: {res.problem} at offset {res.valid_size} of {where}; {why}. The file is left as it is. "
        f"Run `barrage log check {data_dir}` to see the damage and `barrage log repair {data_dir}` to keep "
        "every intact record (the damaged file is moved aside, not deleted)."
    )


def _index_records(
    records: list[ScannedRecord],
    base: int,
    rooms: dict[str, _RoomState],
    dedupe: DedupeWindow,
    dedupe_from: int,
    cache_size: int,
) -> int:
    """Add a scanned segment to the index; returns its newest record time."""
    last_time = 0
    for sr in records:
        st = rooms.get(sr.room_id)
        if st is None:
            st = rooms[sr.room_id] = _RoomState(cache_size)
        st.add(sr.position, sr.record, base, sr.offset, sr.length)
        if sr.dedupe_key and sr.time_ms >= dedupe_from:
            dedupe.add(sr.room_id, sr.dedupe_key, sr.position, sr.time_ms)
        last_time = max(last_time, sr.time_ms)
    return last_time


def _pread_records(where: list[tuple[int, int, int]]) -> list[LogRecord]:
    out = []
    for fd, off, length in where:
        frame = os.pread(fd, length, off)
        out.append(decode_frame(frame)[0])
    return out


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def _write_json_durably(path: str, obj: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return repr(exc)


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for f in futures:
        if not f.done():
            f.set_result(None)
    futures.clear()


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
