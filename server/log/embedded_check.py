"""`barrage log check` and `barrage log repair`: damage in an embedded log's segments.

The node refuses to start on corruption (a bad frame with intact frames after it, or any
bad frame in a sealed segment) and only truncates a torn tail by itself (nothing intact
after the bad frame of the newest segment). These tools are the operator's side of that:

- check: read every segment, skipping over damaged bytes to the next intact frame, and
  report each damaged stretch (file, offset, frames before and after it, the positions it
  may have held). Changes nothing.
- repair: keep every intact frame, move each damaged original aside into
  `<data dir>/damaged/` (never delete it), and make sure no position the damaged bytes
  could have held is handed out again. The dedupe window and the index are rebuilt from
  the repaired segments when the node starts, so a retry of a kept record still answers
  duplicate with its first cursor.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from barrage.server.log.embedded import active_segment_matches
from barrage.server.log.segment import (
    MIN_FRAME_SIZE,
    Damage,
    SegmentScan,
    fsync_dir,
    parse_segment_name,
    scan_segment_fully,
    segment_name,
    write_all,
)

# The same bound recovery uses: no frame is larger than this.
_MAX_FRAME = 256 * 1024 * 1024
DAMAGED_DIR = "damaged"


class CheckError(Exception):
    """The directory cannot be checked or repaired (missing, in use, not a data directory)."""


@dataclass(slots=True)
class Finding:
    """One damaged stretch of one segment, as the node and the operator see it."""

    path: str
    damage: Damage
    frames_before: int
    """Intact frames of this segment before the damage."""
    frames_after: int
    """Intact frames of this segment after the damage."""
    torn_tail: bool
    """True if nothing intact follows in the newest segment: start() truncates it by itself."""

    @property
    def length(self) -> int:
        return self.damage.end - self.damage.offset

    @property
    def positions(self) -> tuple[int, int]:
        """First and last position the damaged bytes may have held (an empty range if none).
        Between two intact frames that is exactly the gap between their positions; at the
        end of a segment it is bounded by how many records the bytes could hold."""
        first = self.damage.after_position + 1
        if self.damage.next_position is not None:
            return first, self.damage.next_position - 1
        return first, first + self.length // MIN_FRAME_SIZE - 1

    def describe(self) -> str:
        first, last = self.positions
        kind = "torn tail (truncated automatically at start)" if self.torn_tail else "CORRUPTION"
        held = f"positions {first}..{last}" if last >= first else "no position"
        return (
            f"{self.path}: {kind}: {self.damage.problem} at offset {self.damage.offset}, "
            f"{self.length} damaged byte(s); {self.frames_before} intact frame(s) before, "
            f"{self.frames_after} after; may have held {held}"
        )


@dataclass(slots=True)
class CheckReport:
    data_dir: str
    segments: list[SegmentScan] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(s.records) for s in self.segments)

    @property
    def corrupt(self) -> bool:
        """Damage the node refuses to start with."""
        return any(not f.torn_tail for f in self.findings)

    def lines(self) -> list[str]:
        out = [
            f"{self.data_dir}: {len(self.segments)} segment(s), {self.records} intact record(s), "
            f"{len(self.findings)} damaged stretch(es)"
        ]
        out.extend(f.describe() for f in self.findings)
        if self.corrupt:
            out.append(
                f"the node will not start on this log; `barrage log repair {self.data_dir}` keeps every intact record"
            )
        elif self.findings:
            out.append("only a torn tail: the node truncates it at start (repair would too, keeping a copy)")
        else:
            out.append("no damage")
        return out


def _segment_paths(data_dir: str) -> list[tuple[int, str]]:
    log_dir = os.path.join(data_dir, "log")
    if not os.path.isdir(log_dir) or not os.path.exists(os.path.join(data_dir, "meta.json")):
        raise CheckError(f"{data_dir} is not an embedded log data directory (no meta.json or log/)")
    found = [(parse_segment_name(name), name) for name in os.listdir(log_dir)]
    return sorted((base, os.path.join(log_dir, name)) for base, name in found if base is not None)


def check(data_dir: str) -> CheckReport:
    """Scan every segment of `data_dir`, skipping damaged bytes; changes nothing."""
    data_dir = os.path.abspath(data_dir)
    report = CheckReport(data_dir)
    segments = _segment_paths(data_dir)
    last = -1
    for n, (base, path) in enumerate(segments):
        scan = scan_segment_fully(path, base, _MAX_FRAME, last)
        report.segments.append(scan)
        newest = n == len(segments) - 1
        for damage in scan.damage:
            before = sum(1 for r in scan.records if r.offset < damage.offset)
            after = len(scan.records) - before
            torn = newest and damage.next_position is None
            report.findings.append(Finding(path, damage, before, after, torn))
        if scan.records:
            last = scan.records[-1].position
    return report


@dataclass(slots=True)
class RepairResult:
    report: CheckReport
    moved: list[tuple[str, str]] = field(default_factory=list)
    """(segment, where its damaged original now is)."""
    kept: int = 0
    """Intact records in the repaired log."""
    floor: int | None = None
    """If set: an empty segment was created so numbering continues here."""
    new_epoch: str | None = None

    def lines(self) -> list[str]:
        out = [f"moved aside: {src} -> {dst}" for src, dst in self.moved]
        if self.floor is not None:
            out.append(
                f"numbering continues at position {self.floor} (positions the damaged bytes may have held are skipped)"
            )
        if self.new_epoch is not None:
            out.append(f"new epoch {self.new_epoch}: every cursor issued before is answered as unknown")
        out.append(f"repaired: {self.kept} intact record(s) kept; the node can start")
        return out


def repair(data_dir: str, *, new_epoch: bool = False) -> RepairResult:
    """Keep every intact frame; move damaged originals to `<data_dir>/damaged/`.

    Refuses (CheckError) while a node holds the directory. With new_epoch, also starts a
    new epoch (after restoring a backup: see docs/embedded-log.md, "Positions").
    """
    data_dir = os.path.abspath(data_dir)
    lock_fd = os.open(os.path.join(data_dir, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckError(f"{data_dir} is in use by a running node; stop it first") from None
        return _repair_locked(data_dir, new_epoch)
    finally:
        os.close(lock_fd)  # releases the flock


def _repair_locked(data_dir: str, new_epoch: bool) -> RepairResult:
    report = check(data_dir)
    result = RepairResult(report, kept=report.records)
    with open(os.path.join(data_dir, "meta.json")) as meta_file:
        meta: dict[str, Any] = json.load(meta_file)
    genuine = active_segment_matches(os.path.join(data_dir, "log"), meta)
    log_dir = os.path.join(data_dir, "log")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for scan in report.segments:
        if not scan.damage:
            continue
        with open(scan.path, "rb") as segment:
            data = segment.read()
        kept = b"".join(data[r.offset : r.offset + r.length] for r in scan.records)
        tmp = scan.path + ".repair"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, kept)
            os.fsync(fd)
        finally:
            os.close(fd)
        aside_dir = os.path.join(data_dir, DAMAGED_DIR)
        os.makedirs(aside_dir, exist_ok=True)
        aside = os.path.join(aside_dir, f"{os.path.basename(scan.path)}.{stamp}")
        n = 1
        while os.path.exists(aside):  # a second repair within the second: never replace a kept original
            n += 1
            aside = os.path.join(aside_dir, f"{os.path.basename(scan.path)}.{stamp}.{n}")
        os.rename(scan.path, aside)  # the original bytes, untouched
        os.rename(tmp, scan.path)
        fsync_dir(aside_dir)
        fsync_dir(log_dir)
        result.moved.append((scan.path, aside))
    # Damage at the end of the newest segment may have held positions above every intact
    # record: an empty segment named after the first position past them makes the skip
    # durable (recovery never numbers below the newest segment's name).
    tail = [f for f in report.findings if f.torn_tail]
    if tail:
        floor = tail[-1].positions[1] + 1
        newest_base = report.segments[-1].base
        last_kept = max((s.records[-1].position for s in report.segments if s.records), default=-1)
        if floor > max(newest_base, last_kept + 1):
            fd = os.open(os.path.join(log_dir, segment_name(floor)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            fsync_dir(log_dir)
            result.floor = floor
    if new_epoch:
        meta["epoch"] = result.new_epoch = uuid.uuid4().hex
    if new_epoch or ((result.moved or result.floor is not None) and genuine):
        # The repaired files are new inodes: record the newest one as this log's own, so
        # the next start does not take them for a restored backup. A log that already
        # looked restored keeps looking so (the start gives it a new epoch).
        newest = _segment_paths(data_dir)[-1][1]
        meta["active"] = {"name": os.path.basename(newest), "ino": os.stat(newest).st_ino}
        _write_meta(data_dir, meta)
    return result


def _write_meta(data_dir: str, meta: dict[str, Any]) -> None:
    meta_path = os.path.join(data_dir, "meta.json")
    tmp = meta_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta_path)
    fsync_dir(data_dir)
