"""Embedded-log specifics: crash recovery, torn tails, retention, restart, dedupe window."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import barrage.server.log.embedded as embedded_mod
import barrage.server.log.segment as segment_mod
from barrage.server.log.base import Backend, LogEntry, LogRecord, LogUnavailableError
from barrage.server.log.embedded import EmbeddedLog, LogCorruptError, open_embedded
from barrage.server.log.segment import MIN_FRAME_SIZE, encode_record, parse_segment_name

REPO = Path(__file__).resolve().parents[1]


def entry(tag: str, key: str = "") -> LogEntry:
    return LogEntry(payload=tag.encode(), priority=2, dedupe_key=key)


def tags(records: Sequence[LogRecord]) -> list[str]:
    return [r.payload.decode() for r in records]


async def started(path: Path, **options: Any) -> Backend:
    backend = open_embedded(str(path), **options)
    await backend.log.start()
    return backend


def the_log(backend: Backend) -> EmbeddedLog:
    assert isinstance(backend.log, EmbeddedLog)
    return backend.log


def segments(path: Path) -> list[Path]:
    return sorted((p for p in (path / "log").iterdir() if parse_segment_name(p.name) is not None), key=lambda p: p.name)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


# ---------------------------------------------------------------- crash recovery

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from barrage.server.log.base import LogEntry
    from barrage.server.log.embedded import open_embedded

    async def main(path, fsync):
        backend = open_embedded(path, fsync=fsync, segment_bytes=16384)
        await backend.log.start()
        print("READY", flush=True)

        async def worker(w):
            i = 0
            while True:
                key = f"w{w}/{i}"
                [res] = await backend.log.append(f"room{w % 3}", [LogEntry(key.encode(), 2, key)])
                print("ACK", res.record.room_id, res.record.position, key, flush=True)
                i += 1

        await asyncio.gather(*(worker(w) for w in range(8)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.parametrize("fsync", ["always", "none"])
async def test_kill_9_loses_nothing_acknowledged(data: Path, fsync: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(data),
        fsync,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[tuple[str, int, str]] = []
    try:
        async with asyncio.timeout(30):
            while len(acked) < 1500:
                line = (await proc.stdout.readline()).decode().split()
                assert line, "child died"
                if line[0] == "ACK":
                    acked.append((line[1], int(line[2]), line[3]))
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    backend = await started(data, fsync=fsync)
    try:
        log = the_log(backend)
        assert log.stats()["segments"] > 1, "the crash test should span segment rolls"
        by_room: dict[str, dict[int, str]] = {}
        for room in ("room0", "room1", "room2"):
            recs = await log.read(room, -1, 100_000)
            assert [r.position for r in recs] == sorted({r.position for r in recs})
            by_room[room] = {r.position: r.dedupe_key for r in recs}
        for room, pos, key in acked:
            assert by_room[room].get(pos) == key, f"acknowledged {room}@{pos} lost"
        # A retry of any acknowledged send after the crash answers the first copy.
        room, pos, key = acked[-1]
        [res] = await log.append(room, [LogEntry(key.encode(), 2, key)])
        assert res.duplicate
        assert res.record.position == pos
    finally:
        await log.close()


async def test_close_flushes_pending_appends(data: Path) -> None:
    backend = await started(data)
    tasks = [asyncio.create_task(backend.log.append("r", [entry(f"m{i}")])) for i in range(50)]
    await asyncio.sleep(0)  # let them enqueue
    await backend.log.close()
    results = [(await t)[0] for t in tasks]
    backend = await started(data)
    try:
        assert await backend.log.read("r", -1, 100) == [r.record for r in results]
    finally:
        await backend.log.close()


async def test_closed_log_refuses_appends(data: Path) -> None:
    backend = await started(data)
    await backend.log.close()
    await backend.log.close()  # idempotent
    with pytest.raises(LogUnavailableError):
        await backend.log.append("r", [entry("x")])


# ---------------------------------------------------------------- torn / corrupt tail


async def _write_and_close(data: Path, n: int, **options: Any) -> list[LogRecord]:
    backend = await started(data, **options)
    try:
        return [r.record for r in await backend.log.append("r", [entry(f"m{i}", key=f"k{i}") for i in range(n)])]
    finally:
        await backend.log.close()


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(lambda frame: frame[:5], id="partial-header"),
        pytest.param(lambda frame: frame[: len(frame) - 3], id="partial-body"),
        pytest.param(lambda frame: b"\0" * 4096, id="zeros"),
        pytest.param(lambda frame: frame[:-1] + bytes([frame[-1] ^ 0xFF]), id="bad-crc"),
    ],
)
async def test_torn_tail_is_truncated_on_start(data: Path, garbage: Any) -> None:
    acked = await _write_and_close(data, 10)
    seg = segments(data)[-1]
    good_size = seg.stat().st_size
    frame = encode_record("r", acked[-1].position + 1, 0, 2, "torn", "", b"never acknowledged")
    with seg.open("ab") as f:
        f.write(garbage(frame))

    backend = await started(data)
    try:
        assert seg.stat().st_size == good_size, "the torn tail is cut off"
        assert await backend.log.read("r", -1, 100) == acked, "never serve a partial record"
        [res] = await backend.log.append("r", [entry("after", key="torn")])
        assert not res.duplicate
        # Above every acknowledged one, past any the cut bytes could have held.
        assert res.record.position > acked[-1].position + len(garbage(frame)) // MIN_FRAME_SIZE
    finally:
        await backend.log.close()
    backend = await started(data)
    try:
        assert tags(await backend.log.read("r", -1, 100)) == [*tags(acked), "after"]
    finally:
        await backend.log.close()


async def test_corrupt_sealed_segment_refuses_to_start(data: Path) -> None:
    backend = await started(data, segment_bytes=512)
    for i in range(50):
        await backend.log.append("r", [entry(f"m{i}")])
    await backend.log.close()
    assert len(segments(data)) > 2
    first = segments(data)[0]
    raw = bytearray(first.read_bytes())
    raw[20] ^= 0xFF
    first.write_bytes(bytes(raw))
    backend = open_embedded(str(data), segment_bytes=512)
    with pytest.raises(LogCorruptError, match="sealed segment"):
        await backend.log.start()
    await backend.log.close()


# ---------------------------------------------------------------- segments, cache, reads


async def test_reads_across_segments_from_disk_and_cache(data: Path) -> None:
    backend = await started(data, segment_bytes=600, cache_records_per_room=3)
    log = the_log(backend)
    try:
        acked = []
        for i in range(40):
            for room in ("a", "b"):
                [res] = await log.append(room, [entry(f"{room}{i}")])
                if room == "a":
                    acked.append(res.record)
        assert log.stats()["segments"] > 5
        assert await log.read("a", -1, 1000) == acked
        assert await log.read_backward("a", None, 1000) == acked[::-1]
        assert await log.read("a", acked[20].position, 5) == acked[21:26]
    finally:
        await log.close()
    for cache in (0, 3, 1000):  # after restart only the newest segment seeds the cache
        backend = await started(data, segment_bytes=600, cache_records_per_room=cache)
        try:
            assert await backend.log.read("a", -1, 1000) == acked
            assert await backend.log.read_backward("a", None, 1000) == acked[::-1]
            [more] = await backend.log.append("a", [entry("more")])
            assert await backend.log.read("a", acked[-4].position, 1000) == [*acked[-3:], more.record]
        finally:
            await backend.log.close()
        acked.append(more.record)


async def test_second_open_of_a_data_directory_is_refused(data: Path) -> None:
    backend = await started(data)
    try:
        other = open_embedded(str(data))
        with pytest.raises(RuntimeError, match="in use"):
            await other.log.start()
    finally:
        await backend.log.close()


async def test_oversized_record_is_rejected(data: Path) -> None:
    backend = await started(data, max_record_bytes=1000)
    try:
        with pytest.raises(ValueError, match="max_record_bytes"):
            await backend.log.append("r", [entry("x" * 2000)])
        assert await backend.log.head("r") is None
    finally:
        await backend.log.close()


async def test_write_failure_stops_appends_until_restart(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = await started(data)
    log = the_log(backend)
    try:
        ok = await log.append("r", [entry("ok")])

        def broken(fd: int, data: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(embedded_mod, "write_all", broken)
        with pytest.raises(LogUnavailableError, match="No space"):
            await log.append("r", [entry("lost", key="k")])
        monkeypatch.undo()
        with pytest.raises(LogUnavailableError, match="restarted"):
            await log.append("r", [entry("refused")])
        assert await log.read("r", -1, 10) == [ok[0].record]
    finally:
        await log.close()
    backend = await started(data)
    try:
        [res] = await backend.log.append("r", [entry("retry", key="k")])
        assert not res.duplicate
    finally:
        await backend.log.close()


def slow_writes(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = segment_mod.write_all

    def slow(fd: int, data: bytes) -> None:
        time.sleep(seconds)  # on the io thread, like a stalled disk
        real(fd, data)

    monkeypatch.setattr(embedded_mod, "write_all", slow)


async def test_timed_out_append_may_land_and_its_retry_finds_it(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = await started(data, append_timeout_s=0.05)
    try:
        slow_writes(monkeypatch, 0.3)
        with pytest.raises(LogUnavailableError, match="may still be appended"):
            await backend.log.append("r", [entry("first", key="u/1")])
        monkeypatch.undo()
        for _ in range(50):  # a client retrying: the first copy is still in flight, then durable
            try:
                [retry] = await backend.log.append("r", [entry("retry", key="u/1")])
                break
            except LogUnavailableError:
                continue
        assert retry.duplicate
        assert tags([retry.record]) == ["first"]
        assert tags(await backend.log.read("r", -1, 10)) == ["first"]
    finally:
        await backend.log.close()


async def test_too_much_pending_fails_fast(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = await started(data, max_pending_bytes=2000)
    try:
        slow_writes(monkeypatch, 0.2)
        first = asyncio.create_task(backend.log.append("r", [entry("x" * 100)]))
        await asyncio.sleep(0.05)  # the writer is now busy with it; the rest queue
        queued = [asyncio.create_task(backend.log.append("r", [entry("y" * 100)])) for _ in range(30)]
        done = await asyncio.gather(first, *queued, return_exceptions=True)
        refused = [d for d in done if isinstance(d, LogUnavailableError)]
        assert refused, "the queue is bounded"
        assert all("overloaded" in str(e) for e in refused)
        ok = [d for d in done if not isinstance(d, BaseException)]
        assert len(await backend.log.read("r", -1, 100)) == len(ok)
    finally:
        await backend.log.close()


# ---------------------------------------------------------------- listener


async def test_listener_only_gets_watched_rooms(data: Path) -> None:
    backend = await started(data)
    got: list[LogRecord] = []
    backend.log.set_listener(got.extend)
    try:
        await backend.log.watch("a")
        await backend.log.append("a", [entry("a1")])
        await backend.log.append("b", [entry("b1")])
        await backend.log.unwatch("a")
        await backend.log.append("a", [entry("a2")])
        assert tags(got) == ["a1"]
    finally:
        await backend.log.close()


# ---------------------------------------------------------------- retention


async def test_size_retention_deletes_old_segments(data: Path) -> None:
    backend = await started(data, segment_bytes=1000, retention_bytes=3000)
    log = the_log(backend)
    try:
        acked = [(await log.append("r", [entry(f"m{i:03}", key=f"k{i}")]))[0].record for i in range(200)]
        stats = log.stats()
        assert stats["segments_deleted"] > 0
        assert stats["log_bytes"] <= 3000 + 1000
        floor = await log.retained_from("r")
        assert floor > acked[0].position
        kept = await log.read("r", -1, 1000)
        assert kept == [r for r in acked if r.position >= floor]
        assert kept[0].position == floor, "retained_from is the first record of the oldest segment"
        # Resume is complete exactly from floor - 1 on; an older cursor is refused.
        assert acked[0].position < floor - 1
        assert await log.read("r", floor - 1, 1000) == kept
        # The dedupe key of a deleted record is forgotten with it.
        [res] = await log.append("r", [entry("again", key="k0")])
        assert not res.duplicate
        assert len(segments(data)) == stats["segments"]
    finally:
        await log.close()
    backend = await started(data, segment_bytes=1000, retention_bytes=3000)
    try:
        assert await backend.log.retained_from("r") >= floor
    finally:
        await backend.log.close()


async def test_age_retention_expires_idle_log(data: Path) -> None:
    backend = await started(data, retention_ms=100, retention_check_interval_s=0.05)
    log = the_log(backend)
    try:
        [res] = await log.append("r", [entry("old")])
        for _ in range(100):  # polled: retention runs on its own timer
            if await log.retained_from("r") > res.record.position:
                break
            await asyncio.sleep(0.05)
        assert await log.retained_from("r") > res.record.position
        assert await log.read("r", -1, 10) == []
        assert await log.head("r") is None
        [new] = await log.append("r", [entry("new")])
        assert await log.read("r", -1, 10) == [new.record]
    finally:
        await log.close()


# ---------------------------------------------------------------- dedupe window


async def test_dedupe_window_expires_by_time(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_now = embedded_mod._now_ms
    skew = 0
    monkeypatch.setattr(embedded_mod, "_now_ms", lambda: real_now() + skew)
    backend = await started(data)  # default window: 10 minutes
    try:
        [first] = await backend.log.append("r", [entry("a", key="k")])
        skew = 9 * 60 * 1000
        [retry] = await backend.log.append("r", [entry("b", key="k")])
        assert retry.duplicate
        assert retry.record == first.record
        skew = 10 * 60 * 1000 + 1001  # keys expire at checkpoint granularity: up to a second late
        [late] = await backend.log.append("r", [entry("c", key="k")])
        assert not late.duplicate
    finally:
        await backend.log.close()


async def test_dedupe_window_caps_entries(data: Path) -> None:
    backend = await started(data, dedupe_max_entries=2)
    try:
        await backend.log.append("r", [entry("a", key="k1"), entry("b", key="k2"), entry("c", key="k3")])
        [k1, k3] = await backend.log.append("r", [entry("a2", key="k1"), entry("c2", key="k3")])
        assert not k1.duplicate, "the oldest key was evicted"
        assert k3.duplicate
    finally:
        await backend.log.close()


async def test_dedupe_rebuilt_at_start_only_within_window(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _write_and_close(data, 3)
    real_now = embedded_mod._now_ms
    monkeypatch.setattr(embedded_mod, "_now_ms", lambda: real_now() + 11 * 60 * 1000)
    backend = await started(data)
    try:
        [res] = await backend.log.append("r", [entry("again", key="k0")])
        assert not res.duplicate, "keys older than the window are not rebuilt"
    finally:
        await backend.log.close()


# ---------------------------------------------------------------- epoch


async def test_epoch_persists_and_changes_with_the_directory(tmp_path: Path) -> None:
    a = await started(tmp_path / "a")
    epoch_a = a.log.epoch("r")
    await a.log.close()
    a = await started(tmp_path / "a")
    assert a.log.epoch("r") == epoch_a
    await a.log.close()
    b = await started(tmp_path / "b")
    assert b.log.epoch("r") != epoch_a
    await b.log.close()


async def test_epoch_changes_if_segments_vanish(data: Path) -> None:
    await _write_and_close(data, 3)
    old = json.loads((data / "meta.json").read_text())["epoch"]
    for seg in segments(data):
        seg.unlink()
    backend = await started(data)
    try:
        assert backend.log.epoch("r") != old, "numbering restarts, so old cursors must not match"
        [res] = await backend.log.append("r", [entry("x")])
        assert res.record.position == 0
    finally:
        await backend.log.close()


async def test_unclean_shutdown_across_reboot_with_fsync_none_changes_epoch(data: Path) -> None:
    await _write_and_close(data, 3, fsync="none")
    assert not (data / "RUNNING").exists(), "a clean close removes the mark"
    epoch = json.loads((data / "meta.json").read_text())["epoch"]

    # Same boot: a kill -9 loses nothing with fsync="none"; the epoch stays.
    backend = await started(data, fsync="none")
    await backend.log.append("r", [entry("x")])
    mark = json.loads((data / "RUNNING").read_text())
    await backend.log.close()
    (data / "RUNNING").write_text(json.dumps(mark))
    backend = await started(data)
    assert backend.log.epoch("r") == epoch
    await backend.log.close()

    # Another boot: page-cache writes may be gone; cursors of the old numbering are refused.
    (data / "RUNNING").write_text(json.dumps({**mark, "boot_id": "another-boot"}))
    backend = await started(data)
    try:
        assert backend.log.epoch("r") != epoch
        assert tags(await backend.log.read("r", -1, 10)) == ["m0", "m1", "m2", "x"]
    finally:
        await backend.log.close()


async def test_missing_meta_with_segments_refuses_to_start(data: Path) -> None:
    await _write_and_close(data, 3)
    (data / "meta.json").unlink()
    backend = open_embedded(str(data))
    with pytest.raises(RuntimeError, match=r"meta\.json is missing"):
        await backend.log.start()
    await backend.log.close()
