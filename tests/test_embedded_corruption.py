"""Corruption is not a torn tail: real nodes, kill -9, flipped bytes, a full disk.

- A torn tail (nothing intact after the bad frame of the newest segment) is still cut
  off automatically at start.
- A bad frame with intact frames after it (active segment), or any bad frame in a sealed
  segment, is corruption: the node refuses to start, names the file and the offset, and
  leaves the bytes alone. `barrage log check` reports it; `barrage log repair` keeps every
  intact frame, moves the damaged original aside, and the node starts.
- A position once acknowledged is never given to another event: a client holding the
  cursor of a lost event is answered explicitly, or resumes onto exactly the events that
  really follow it.
- A full disk: LOG_UNAVAILABLE for sends and CreateRoom, one log line for the episode,
  health NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from barrage.server.log.base import Backend, LogEntry
from barrage.server.log.embedded import EmbeddedLog, LogCorruptError, open_embedded
from barrage.server.log.embedded_check import check, repair
from barrage.server.log.segment import MIN_FRAME_SIZE, ScannedRecord, parse_segment_name, scan_segment_fully
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ROOT, ServerProcess
from tests.wire_client import Admin, RawStream, error_info

# Sends fast enough to fill a few segments without being rate limited.
FAST = ("--sends-per-second", "100000", "--send-burst", "100000")


def segments(data: Path) -> list[Path]:
    return sorted((p for p in (data / "log").iterdir() if parse_segment_name(p.name) is not None), key=lambda p: p.name)


def frames(path: Path) -> list[ScannedRecord]:
    base = parse_segment_name(path.name)
    assert base is not None
    scan = scan_segment_fully(str(path), base, 256 * 1024 * 1024, -1)
    assert not scan.damage
    return scan.records


def the_log(backend: Backend) -> EmbeddedLog:
    assert isinstance(backend.log, EmbeddedLog)
    return backend.log


def position(cursor: str) -> int:
    return int(cursor.rpartition(".")[2])


def flip(path: Path, offset: int) -> str:
    """Flip one byte; returns the file's digest after the flip."""
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    return hashlib.sha256(raw).hexdigest()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def barrage_log(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from barrage.cli.main import main; sys.exit(main(sys.argv[1:]))"]
    return subprocess.run([*command, "log", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def room_id() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServerProcess]:
    """A node whose segments roll every 16 KiB, so a few hundred events span several."""
    data = tmp_path / "data"
    proc = ServerProcess(data, log_url=f"embedded:{data}?segment_bytes=16384", args=FAST)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.asynccontextmanager
async def stream(server: ServerProcess, user: str, room_id: str, resume: str = "") -> AsyncIterator[RawStream]:
    client = RawStream(server.target)
    try:
        await client.hello(server.token(user))
        joined = await client.join(room_id, resume_cursor=resume)
        assert joined.status.code == 0
        yield client
    finally:
        await client.close()


async def post(server: ServerProcess, room_id: str, count: int, tag: str) -> dict[str, str]:
    """Send `count` comments; returns client_msg_id -> acknowledged cursor."""
    async with stream(server, f"user-{tag}", room_id) as client:
        results = await asyncio.gather(*(client.send_comment(room_id, f"{tag}{n}", f"{tag} {n}") for n in range(count)))
    assert all(r.status.code == 0 for r in results), [r.status for r in results if r.status.code]
    return {r.client_msg_id: r.cursor for r in results}


async def history(server: ServerProcess, room_id: str) -> dict[str, str]:
    """client_msg_id -> cursor of every comment the node serves."""
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        events = await admin.all_events(room_id, "comment")
    finally:
        await admin.close()
    return {e.client_msg_id: e.cursor for e in events}


async def create_room(server: ServerProcess, room_id: str) -> None:
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        await admin.create_room(room_id, "corruption")
    finally:
        await admin.close()


def refuses_to_start(server: ServerProcess) -> str:
    """Start the node, expect it to exit; returns its log."""
    with pytest.raises(RuntimeError, match="server exited with 1"):
        server.start(timeout_s=30)
    return server.logs()


async def old_cursor_is_answered_explicitly(server: ServerProcess, room_id: str, lost: str) -> None:
    """A client holding the cursor of an event the log lost is told so (CURSOR_UNKNOWN),
    or resumes onto exactly the events that follow that position -- never onto events
    that were given the lost position, never missing the new ones."""
    fresh = await post(server, room_id, 5, "fresh")
    assert min(position(c) for c in fresh.values()) > position(lost), "a lost position was given out again"
    client = RawStream(server.target)
    try:
        await client.hello(server.token("holder"))
        joined = await client.join(room_id, resume_cursor=lost)
        assert joined.status.code == 0
        assert joined.resume in (rs.RESUME_OUTCOME_CURSOR_UNKNOWN, rs.RESUME_OUTCOME_RESUMED)
        if joined.resume == rs.RESUME_OUTCOME_RESUMED:
            served = await history(server, room_id)
            after = sorted((c for c in served.values() if position(c) > position(lost)), key=position)
            got = await client.wait_events(room_id, len(after), kind="comment")
            assert [e.cursor for e in got] == after
            assert set(fresh.values()) <= {e.cursor for e in got}, "resumed without the new events"
    finally:
        await client.close()


# ---------------------------------------------------------------- torn tail


async def test_a_torn_tail_after_kill_9_is_still_recovered_automatically(node: ServerProcess, room_id: str) -> None:
    await create_room(node, room_id)
    acked = await post(node, room_id, 30, "a")
    node.kill()
    active = segments(node.data_dir)[-1]
    size = active.stat().st_size
    with active.open("ab") as f:  # half a frame: a write the crash cut short
        f.write(active.read_bytes()[-60:-20] if size >= 60 else b"\x07" * 40)
    checked = barrage_log("check", str(node.data_dir))
    assert checked.returncode == 3, checked
    assert f"{active}: torn tail (truncated automatically at start)" in checked.stdout

    node.start()
    assert "torn tail" in node.logs()
    assert active.stat().st_size == size, "the torn bytes were cut off"
    assert await history(node, room_id) == acked, "every acknowledged event is still there"
    later = await post(node, room_id, 3, "b")
    assert min(map(position, later.values())) > max(map(position, acked.values()))


async def test_positions_of_a_truncated_tail_are_never_given_out_again(node: ServerProcess, room_id: str) -> None:
    # A flipped bit in the newest frame looks exactly like a torn write (nothing intact
    # follows), so it is cut off -- and the acknowledged event in it is lost. Its position
    # must not be handed to another event, even after a second restart.
    await create_room(node, room_id)
    async with stream(node, "user-a", room_id) as client:  # killed while joined: no "left" event after
        results = await asyncio.gather(*(client.send_comment(room_id, f"a{n}", f"a {n}") for n in range(20)))
        node.kill()
    acked = {r.client_msg_id: r.cursor for r in results}
    active = segments(node.data_dir)[-1]
    lost = max(acked.values(), key=position)
    last = next(f for f in frames(active) if f.position == position(lost))
    # The room ticker may have logged a viewer count after it; make the comment the
    # newest frame, as if nothing after it had reached the disk, then damage it.
    os.truncate(active, last.offset + last.length)
    flip(active, last.offset + last.length - 1)

    node.start()
    node.restart()  # the skip survives a restart with nothing written in between
    served = await history(node, room_id)
    assert served == {k: c for k, c in acked.items() if c != lost}
    await old_cursor_is_answered_explicitly(node, room_id, lost)


# ---------------------------------------------------------------- corruption


async def _corrupt_then_repair(node: ServerProcess, room_id: str, target: Path, acked: dict[str, str]) -> None:
    """Flip a byte in the middle frame of `target`, prove the refusal, check and repair."""
    data = node.data_dir
    before = sum(len(frames(s)) for s in segments(data))
    victims = frames(target)
    assert len(victims) >= 5
    # The log also holds presence events (joins, leaves): damage an acknowledged comment.
    comments = [f for f in victims if f.position in {position(c) for c in acked.values()}]
    hit = comments[len(comments) // 2]
    lost = next(c for c in acked.values() if position(c) == hit.position)
    damaged = flip(target, hit.offset + hit.length - 2)  # in the payload: the header still reads

    log = refuses_to_start(node)
    assert f"{target}: CRC mismatch at offset {hit.offset}" in log, log
    assert "Traceback" not in log
    assert digest(target) == damaged, "the original bytes are untouched"

    checked = barrage_log("check", str(data))
    assert checked.returncode == 1, checked
    assert f"{target}: CORRUPTION: CRC mismatch at offset {hit.offset}" in checked.stdout
    index = victims.index(hit)
    assert f"{index} intact frame(s) before, {len(victims) - index - 1} after" in checked.stdout
    assert f"may have held positions {hit.position}..{hit.position}" in checked.stdout

    repaired = barrage_log("repair", str(data))
    assert repaired.returncode == 0, repaired
    aside = list((data / "damaged").iterdir())
    assert [p.name.partition(".seg")[0] for p in aside] == [target.name.partition(".seg")[0]]
    assert digest(aside[0]) == damaged, "the damaged original is kept, byte for byte"
    report = check(str(data))
    assert not report.findings
    assert report.records == before - 1, "every intact frame is kept"
    assert barrage_log("check", str(data)).returncode == 0

    node.start()
    assert await history(node, room_id) == {k: c for k, c in acked.items() if c != lost}
    # Dedupe is right after repair: a retry of a kept acknowledged send is a duplicate
    # answered with its first cursor; a retry of the lost one is appended anew.
    kept_id = next(k for k, c in acked.items() if c != lost)
    lost_id = next(k for k, c in acked.items() if c == lost)
    async with stream(node, f"user-{kept_id[0]}", room_id) as client:
        again = await client.send_comment(room_id, kept_id, "retry")
        assert again.status.code == 0
        assert again.duplicate
        assert again.cursor == acked[kept_id]
        anew = await client.send_comment(room_id, lost_id, "retry of the lost one")
        assert anew.status.code == 0
        assert not anew.duplicate
        assert position(anew.cursor) > max(map(position, acked.values()))
    await old_cursor_is_answered_explicitly(node, room_id, lost)


async def test_corruption_mid_active_segment_refuses_to_start_and_repair_keeps_every_intact_frame(
    node: ServerProcess, room_id: str
) -> None:
    await create_room(node, room_id)
    acked = await post(node, room_id, 40, "a")
    node.kill()
    active = segments(node.data_dir)[-1]
    await _corrupt_then_repair(node, room_id, active, acked)


async def test_corruption_in_a_sealed_segment_refuses_to_start_and_repair_keeps_every_intact_frame(
    node: ServerProcess, room_id: str
) -> None:
    await create_room(node, room_id)
    acked = {**await post(node, room_id, 120, "a"), **await post(node, room_id, 120, "b")}
    node.kill()
    sealed = segments(node.data_dir)
    assert len(sealed) >= 3, "the events should span several segments"
    await _corrupt_then_repair(node, room_id, sealed[1], acked)


async def test_check_reports_a_clean_log_and_repair_refuses_a_running_node(node: ServerProcess, room_id: str) -> None:
    await create_room(node, room_id)
    await post(node, room_id, 5, "a")
    checked = barrage_log("check", str(node.data_dir))
    assert checked.returncode == 0
    assert "no damage" in checked.stdout
    refused = barrage_log("repair", str(node.data_dir))
    assert refused.returncode == 2
    assert "in use by a running node" in refused.stderr


async def test_segments_restored_from_a_copy_start_a_new_epoch(tmp_path: Path, room_id: str) -> None:
    # Restoring a backup brings back a log that ends before events clients were given:
    # the files are not the ones this log wrote, so their numbering is a new epoch and
    # every old cursor is answered as unknown instead of resuming onto reused positions.
    data = tmp_path / "data"
    node = ServerProcess(data, args=FAST)
    node.start()
    try:
        await create_room(node, room_id)
        acked = await post(node, room_id, 5, "a")
        node.kill()
        shutil.copytree(data, tmp_path / "backup")
        node.start()
        newer = await post(node, room_id, 5, "b")
        node.kill()
        data.rename(tmp_path / "broken")  # the disk that failed, kept
        shutil.copytree(tmp_path / "backup", data)  # the restore
        node.start()
        restored = await history(node, room_id)
        assert {k: position(c) for k, c in restored.items()} == {k: position(c) for k, c in acked.items()}
        assert max(map(position, newer.values())) >= min(map(position, restored.values())), "positions repeat"
        client = RawStream(node.target)
        try:
            await client.hello(node.token("holder"))
            joined = await client.join(room_id, resume_cursor=max(newer.values(), key=position))
            assert joined.resume == rs.RESUME_OUTCOME_CURSOR_UNKNOWN
        finally:
            await client.close()
        assert "restored or copied" in node.logs()

        # Where the files cannot tell (a snapshot rollback keeps inodes), the operator says so.
        current = (await history(node, room_id))["a0"]
        node.kill()
        renumbered = barrage_log("repair", "--new-epoch", str(data))
        assert renumbered.returncode == 0, renumbered
        assert "new epoch" in renumbered.stdout
        node.start()
        client = RawStream(node.target)
        try:
            await client.hello(node.token("holder"))
            joined = await client.join(room_id, resume_cursor=current)
            assert joined.resume == rs.RESUME_OUTCOME_CURSOR_UNKNOWN
        finally:
            await client.close()
    finally:
        node.stop()


# ---------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB filesystem (tmpfs), so ENOSPC comes from the kernel, not a mock."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]
    done = subprocess.run(command, check=False, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Take every free byte of the filesystem."""
    with (disk / "filler").open("wb", buffering=0) as f:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0")


def health(server: ServerProcess, service: str) -> int:
    with grpc.insecure_channel(server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        status: int = reply.status
        return status


async def test_a_full_disk_answers_log_unavailable_logs_once_and_reports_not_serving(
    small_disk: Path, room_id: str
) -> None:
    node = ServerProcess(small_disk / "data", args=FAST)
    node.output = small_disk.parent / "server-full-disk.log"  # the log must not need the full disk
    node.start()
    try:
        await create_room(node, room_id)
        acked = await post(node, room_id, 3, "a")
        fill(small_disk)
        # The last page of the segment may still have room for a few events; once a write
        # fails, every send is refused until the node restarts.
        refused: list[rs.SendResult] = []
        async with stream(node, "user-b", room_id) as client:
            for n in range(300):
                result = await client.send_comment(room_id, f"b{n}", f"b {n} " + "x" * 200)
                assert result.status.code == 0 or refused or n > 0, "the first send fits in the last page"
                if result.status.code:
                    refused.append(result)
                else:
                    assert not refused, "a send succeeded after the log failed"
                if len(refused) == 20:
                    break
        assert len(refused) == 20
        for result in refused:
            assert result.status.code == grpc.StatusCode.UNAVAILABLE.value[0]
            assert error_info(result.status).reason == "LOG_UNAVAILABLE"

        admin = Admin(node.target, node.token("ops", role="service"))
        try:
            with pytest.raises(grpc.aio.AioRpcError) as create:
                await admin.create_room(f"{room_id}-2", "no room on a full disk")
        finally:
            await admin.close()
        assert create.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "LOG_UNAVAILABLE" in repr(create.value.trailing_metadata())

        serving = health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", "barrage.v1.RoomService", "barrage.v1.RoomAdminService"):
            assert health(node, service) == serving, service
        logs = node.logs()
        assert logs.count("embedded log write failed") == 1, logs
        assert "Traceback" not in logs
    finally:
        node.stop()
    assert "append(s) were refused since" in node.logs(), "the episode's count is logged once at the end"

    # Space freed, the restart recovers: everything acknowledged is there, sends work.
    os.unlink(small_disk / "filler")
    node.start()
    try:
        assert set(await history(node, room_id)) >= set(acked)
        assert health(node, "") == health_pb2.HealthCheckResponse.SERVING
        await post(node, room_id, 3, "c")
    finally:
        node.stop()


# ---------------------------------------------------------------- a damaged frame header


@pytest.mark.parametrize("where", [0, 1, 3, 4], ids=["length-low", "length-mid", "length-high", "crc"])
async def test_a_damaged_frame_header_is_skipped_to_the_next_intact_frame(tmp_path: Path, where: int) -> None:
    # With its length damaged, the bad frame no longer says where the next one starts:
    # check and recovery find it by searching for the next intact frame.
    data = tmp_path / "data"
    backend = open_embedded(str(data))
    await backend.log.start()
    entries = [LogEntry(f"event {n}".encode(), 2, f"k{n}") for n in range(50)]
    await backend.log.append("r", entries)
    await backend.log.close()
    [segment] = segments(data)
    hit = frames(segment)[20]
    flip(segment, hit.offset + where)

    backend = open_embedded(str(data))
    with pytest.raises(LogCorruptError, match=f"at offset {hit.offset} of the active segment"):
        await backend.log.start()
    await backend.log.close()
    [finding] = check(str(data)).findings
    assert (finding.frames_before, finding.frames_after) == (20, 29)
    assert finding.positions == (hit.position, hit.position)
    assert repair(str(data)).kept == 49

    backend = open_embedded(str(data))
    await backend.log.start()
    try:
        kept = await backend.log.read("r", -1, 100)
        assert [r.dedupe_key for r in kept] == [f"k{n}" for n in range(50) if n != 20]
        [again] = await backend.log.append("r", [entries[21]])
        assert again.duplicate
        assert again.record.position == kept[20].position
    finally:
        await backend.log.close()


@pytest.mark.parametrize("torn", [10, 39, 40, 500])
async def test_a_torn_tail_in_a_fresh_segment_skips_what_it_could_hold(tmp_path: Path, torn: int) -> None:
    # A roll, then a crash in the first write of the new segment: the file holds only the
    # torn bytes. Start must cope, skip the positions they could hold (n // 40), and keep
    # that skip across a restart with nothing written.
    data = tmp_path / "data"
    backend = open_embedded(str(data))
    await backend.log.start()
    await backend.log.append("r", [LogEntry(b"kept", 2, "k")])
    await the_log(backend).roll()
    await backend.log.close()
    newest = segments(data)[-1]
    assert newest.stat().st_size == 0
    newest.write_bytes(b"\x05" * torn)
    for _ in range(2):
        backend = open_embedded(str(data))
        await backend.log.start()
        await backend.log.close()
    backend = open_embedded(str(data))
    await backend.log.start()
    try:
        [res] = await backend.log.append("r", [LogEntry(b"next", 2, "n")])
        assert res.record.position == 1 + torn // MIN_FRAME_SIZE
        assert [r.payload for r in await backend.log.read("r", -1, 10)] == [b"kept", b"next"]
    finally:
        await backend.log.close()


async def test_repair_never_replaces_an_original_it_kept_before(tmp_path: Path) -> None:
    data = tmp_path / "data"
    backend = open_embedded(str(data))
    await backend.log.start()
    await backend.log.append("r", [LogEntry(f"event {n}".encode(), 2, f"k{n}") for n in range(30)])
    await backend.log.close()
    [segment] = segments(data)
    originals = []
    for victim in (10, 20):  # two repairs of one segment, well within one second
        hit = next(f for f in frames(segment) if f.position == victim)
        originals.append(flip(segment, hit.offset + hit.length - 1))
        assert repair(str(data)).kept == (29 if victim == 10 else 28)
    assert sorted(digest(p) for p in (data / "damaged").iterdir()) == sorted(originals)
