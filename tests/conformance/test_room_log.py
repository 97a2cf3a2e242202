"""The RoomLog / RoomDirectory contract (server/log/base.py), for every backend.

Only the interface is used, through the fixtures of conftest.py. Room ids are fresh
uuids so backends may share storage between tests.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest

from barrage.server.log.base import (
    AppendResult,
    Backend,
    LogEntry,
    LogRecord,
    RoomExistsError,
    RoomInfo,
    RoomNotFoundError,
)

Reopen = Callable[[], Awaitable[Backend]]
ForceRetention = Callable[[Backend, str], Awaitable[None]]

# Listener delivery may be asynchronous (a consumer fetch), so tests wait for it.
DELIVERY_TIMEOUT_S = 10.0


def new_room() -> str:
    return f"conf-{uuid.uuid4().hex}"


def entry(tag: str, key: str = "", priority: int = 2, traceparent: str = "") -> LogEntry:
    return LogEntry(payload=tag.encode(), priority=priority, dedupe_key=key, traceparent=traceparent)


def tags(records: Sequence[LogRecord]) -> list[str]:
    return [r.payload.decode() for r in records]


def positions(records: Sequence[LogRecord]) -> list[int]:
    return [r.position for r in records]


def increasing(values: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


async def append_one(backend: Backend, room: str, tag: str, key: str = "") -> AppendResult:
    [res] = await backend.log.append(room, [entry(tag, key)])
    return res


async def read_all(backend: Backend, room: str) -> list[LogRecord]:
    out: list[LogRecord] = []
    after = -1
    while True:
        page = await backend.log.read(room, after, 1000)
        if not page:
            return out
        out.extend(page)
        after = page[-1].position


async def wait_until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Recorder:
    """A listener that keeps what it receives, per room."""

    def __init__(self) -> None:
        self.by_room: dict[str, list[LogRecord]] = {}

    def __call__(self, records: Sequence[LogRecord]) -> None:
        for r in records:
            self.by_room.setdefault(r.room_id, []).append(r)

    def got(self, room: str) -> list[LogRecord]:
        return self.by_room.get(room, [])


# ---------------------------------------------------------------- order


async def test_one_call_is_appended_contiguously_in_entry_order(backend: Backend) -> None:
    room = new_room()
    entries = [entry(f"m{i}", priority=i % 4, traceparent=f"00-{i:032x}-{i:016x}-01") for i in range(5)]
    results = await backend.log.append(room, entries)
    assert [r.duplicate for r in results] == [False] * 5
    assert tags([r.record for r in results]) == [f"m{i}" for i in range(5)]
    assert increasing(positions([r.record for r in results]))
    for res, e in zip(results, entries, strict=True):
        assert res.record.room_id == room
        assert (res.record.payload, res.record.priority, res.record.traceparent) == (
            e.payload,
            e.priority,
            e.traceparent,
        )
    assert await read_all(backend, room) == [r.record for r in results]


async def test_empty_append_returns_nothing(backend: Backend) -> None:
    room = new_room()
    assert await backend.log.append(room, []) == []
    assert await backend.log.head(room) is None


async def test_sequential_appends_follow_everything_acknowledged(backend: Backend) -> None:
    room = new_room()
    got = [await append_one(backend, room, f"m{i}") for i in range(10)]
    assert increasing(positions([r.record for r in got]))
    assert await read_all(backend, room) == [r.record for r in got]


async def test_concurrent_appends_from_many_tasks(backend: Backend) -> None:
    rooms = [new_room(), new_room()]
    tasks, calls_per_task = 40, 10

    async def worker(t: int) -> list[tuple[str, list[AppendResult]]]:
        done = []
        for c in range(calls_per_task):
            room = rooms[(t + c) % 2]
            n = 1 + (t + c) % 3
            res = await backend.log.append(room, [entry(f"t{t}-c{c}-e{e}") for e in range(n)])
            done.append((room, res))
        return done

    per_task = await asyncio.gather(*(worker(t) for t in range(tasks)))
    acked: dict[str, list[LogRecord]] = {r: [] for r in rooms}
    for t, calls in enumerate(per_task):
        last_pos = {r: -(2**62) for r in rooms}
        for c, (room, results) in enumerate(calls):
            recs = [r.record for r in results]
            assert not any(r.duplicate for r in results)
            assert tags(recs) == [f"t{t}-c{c}-e{e}" for e in range(len(recs))], "results match entry order"
            assert increasing(positions(recs))
            # A call after an acknowledged call lands after it.
            assert recs[0].position > last_pos[room]
            last_pos[room] = recs[-1].position
            acked[room].extend(recs)
    for room in rooms:
        stored = await read_all(backend, room)
        assert increasing(positions(stored))
        assert sorted(acked[room], key=lambda r: r.position) == stored, "read() is exactly the acknowledged set"
        # The entries of one call are contiguous in the room.
        index = {r.position: i for i, r in enumerate(stored)}
        for calls in per_task:
            for call_room, results in calls:
                if call_room == room:
                    idx = [index[r.record.position] for r in results]
                    assert idx == list(range(idx[0], idx[0] + len(idx)))


# ---------------------------------------------------------------- live listener


async def test_listener_gets_every_acknowledged_record_once_in_order(backend: Backend) -> None:
    rooms = [new_room(), new_room()]
    rec = Recorder()
    backend.log.set_listener(rec)
    for room in rooms:
        await backend.log.watch(room)

    async def worker(t: int) -> None:
        for c in range(15):
            await backend.log.append(rooms[(t + c) % 2], [entry(f"t{t}-c{c}-{e}") for e in range(1 + c % 2)])

    await asyncio.gather(*(worker(t) for t in range(10)))
    for room in rooms:
        stored = await read_all(backend, room)
        n = len(stored)
        await wait_until(lambda room=room, n=n: len(rec.got(room)) >= n, "live records")  # type: ignore[misc]
        await asyncio.sleep(0.05)  # anything extra (a duplicate delivery) would show up now
        assert rec.got(room) == stored, "each acknowledged record once, in position order"


async def test_listener_sees_records_appended_after_watch(backend: Backend) -> None:
    room = new_room()
    rec = Recorder()
    backend.log.set_listener(rec)
    await append_one(backend, room, "before")
    await backend.log.watch(room)
    after = [(await append_one(backend, room, f"after{i}")).record for i in range(3)]
    await wait_until(lambda: {r.position for r in rec.got(room)} >= set(positions(after)), "live records")
    live = rec.got(room)
    assert increasing(positions(live))
    assert live[-3:] == after


# ---------------------------------------------------------------- durability


async def test_acknowledged_records_survive_reopen(backend: Backend, reopen: Reopen) -> None:
    room = new_room()
    epoch = backend.log.epoch(room)
    acked = [r.record for r in await backend.log.append(room, [entry(f"m{i}", key=f"k{i}") for i in range(20)])]
    acked += [r.record for r in await asyncio.gather(*(append_one(backend, room, f"c{i}") for i in range(20)))]
    acked.sort(key=lambda r: r.position)
    head = await backend.log.head(room)

    backend = await reopen()
    assert backend.log.epoch(room) == epoch
    assert await read_all(backend, room) == acked
    assert await backend.log.head(room) == head
    later = await append_one(backend, room, "later")
    assert head is not None
    assert later.record.position > head


# ---------------------------------------------------------------- dedupe


async def test_retry_with_same_key_returns_first_copy(backend: Backend) -> None:
    room = new_room()
    first = await append_one(backend, room, "first", key="u1/m1")
    await append_one(backend, room, "other")
    retry = await append_one(backend, room, "retry-payload", key="u1/m1")
    assert not first.duplicate
    assert retry.duplicate
    assert retry.record == first.record, "a duplicate answers with the first copy"
    assert tags(await read_all(backend, room)) == ["first", "other"]


async def test_concurrent_appends_of_one_key_yield_one_copy(backend: Backend) -> None:
    room = new_room()
    results = await asyncio.gather(*(append_one(backend, room, f"try{i}", key="u1/m1") for i in range(10)))
    assert sum(not r.duplicate for r in results) == 1
    first = next(r for r in results if not r.duplicate)
    assert all(r.record == first.record for r in results)
    assert await read_all(backend, room) == [first.record]


async def test_same_key_twice_in_one_call(backend: Backend) -> None:
    room = new_room()
    a, b, c = await backend.log.append(room, [entry("a", key="k"), entry("b"), entry("c", key="k")])
    assert (a.duplicate, b.duplicate, c.duplicate) == (False, False, True)
    assert c.record == a.record
    assert tags(await read_all(backend, room)) == ["a", "b"]


async def test_retry_after_reopen_is_deduplicated(backend: Backend, reopen: Reopen) -> None:
    room = new_room()
    first = await append_one(backend, room, "first", key="u1/m1")
    backend = await reopen()
    retry = await append_one(backend, room, "first", key="u1/m1")
    assert retry.duplicate
    assert retry.record == first.record
    assert tags(await read_all(backend, room)) == ["first"]


async def test_dedupe_keys_are_scoped_to_room_and_key(backend: Backend) -> None:
    room_a, room_b = new_room(), new_room()
    a = await append_one(backend, room_a, "a", key="k")
    b = await append_one(backend, room_b, "b", key="k")
    c = await append_one(backend, room_a, "c", key="k2")
    assert [a.duplicate, b.duplicate, c.duplicate] == [False, False, False]
    assert tags(await read_all(backend, room_a)) == ["a", "c"]
    assert tags(await read_all(backend, room_b)) == ["b"]


async def test_empty_key_never_dedupes(backend: Backend) -> None:
    room = new_room()
    results = [await append_one(backend, room, "same") for _ in range(3)]
    results += await backend.log.append(room, [entry("same"), entry("same")])
    assert not any(r.duplicate for r in results)
    assert tags(await read_all(backend, room)) == ["same"] * 5


# ---------------------------------------------------------------- reads


async def test_read_pages_forward(backend: Backend) -> None:
    room = new_room()
    acked = [r.record for r in await backend.log.append(room, [entry(f"m{i}") for i in range(25)])]
    pages = []
    after = -1
    while page := await backend.log.read(room, after, 10):
        pages.append(page)
        after = page[-1].position
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [r for p in pages for r in p] == acked
    assert await backend.log.read(room, acked[-1].position, 10) == []
    assert await backend.log.read(room, -1, 0) == []


async def test_read_pages_backward(backend: Backend) -> None:
    room = new_room()
    acked = [r.record for r in await backend.log.append(room, [entry(f"m{i}") for i in range(25)])]
    pages = []
    before: int | None = None
    while page := await backend.log.read_backward(room, before, 10):
        pages.append(page)
        before = page[-1].position
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [r for p in pages for r in p] == acked[::-1]
    assert await backend.log.read_backward(room, acked[0].position, 10) == []
    assert await backend.log.read_backward(room, acked[10].position, 3) == acked[7:10][::-1]


async def test_resume_after_a_position_returns_exactly_the_later_records(backend: Backend) -> None:
    room, other = new_room(), new_room()
    acked = []
    for i in range(12):
        acked.append((await append_one(backend, room, f"m{i}")).record)
        await append_one(backend, other, f"noise{i}")  # interleaved rooms: positions are not contiguous
    for k in (0, 5, 10, 11):
        assert await backend.log.read(room, acked[k].position, 100) == acked[k + 1 :]
    assert await backend.log.read(room, -1, 100) == acked
    assert await backend.log.retained_from(room) <= acked[0].position, "everything of a new room is retained"


async def test_head_and_unknown_room(backend: Backend) -> None:
    room = new_room()
    assert await backend.log.head(room) is None
    assert await backend.log.read(room, -1, 10) == []
    assert await backend.log.read_backward(room, None, 10) == []
    results = await backend.log.append(room, [entry("a"), entry("b")])
    assert await backend.log.head(room) == results[-1].record.position
    assert await backend.log.head(new_room()) is None


async def test_epoch_is_stable(backend: Backend, reopen: Reopen) -> None:
    room = new_room()
    epoch = backend.log.epoch(room)
    assert isinstance(epoch, str)
    assert epoch
    await append_one(backend, room, "m")
    assert backend.log.epoch(room) == epoch
    backend = await reopen()
    assert backend.log.epoch(room) == epoch


# ---------------------------------------------------------------- retention


async def test_cursor_older_than_retention_is_not_resumable(
    backend: Backend, reopen: Reopen, force_retention: ForceRetention
) -> None:
    room = new_room()
    old = [r.record for r in await backend.log.append(room, [entry(f"old{i}") for i in range(3)])]
    assert old[0].position >= await backend.log.retained_from(room) - 1, "resumable before retention"

    await force_retention(backend, room)

    retained_from = await backend.log.retained_from(room)
    assert retained_from > old[-1].position
    assert old[0].position < retained_from - 1, "a cursor older than retention is reported as not resumable"
    assert await backend.log.read(room, -1, 100) == []
    new = (await append_one(backend, room, "new")).record
    assert new.position >= retained_from
    assert await backend.log.read(room, -1, 100) == [new]
    assert await backend.log.head(room) == new.position

    backend = await reopen()
    assert await backend.log.retained_from(room) >= retained_from
    assert await backend.log.read(room, -1, 100) == [new]


# ---------------------------------------------------------------- room directory


def room_info(room: str) -> RoomInfo:
    return RoomInfo(
        room_id=room, title="Spring sale 春季大促", creator_user_id="host-1", create_time_ms=1_700_000_000_000
    )


async def test_room_directory_create_get_close(backend: Backend) -> None:
    room = new_room()
    info = room_info(room)
    assert await backend.rooms.create(info) == info
    assert await backend.rooms.get(room) == info
    with pytest.raises(RoomExistsError):
        await backend.rooms.create(info)
    with pytest.raises(RoomNotFoundError):
        await backend.rooms.get(new_room())

    closed = await backend.rooms.close_room(room, 1_700_000_100_000)
    assert closed.closed
    assert closed.close_time_ms == 1_700_000_100_000
    assert (closed.title, closed.creator_user_id, closed.create_time_ms) == (
        info.title,
        info.creator_user_id,
        info.create_time_ms,
    )
    assert await backend.rooms.get(room) == closed
    assert await backend.rooms.close_room(room, 1_700_000_200_000) == closed, "closing again changes nothing"
    with pytest.raises(RoomNotFoundError):
        await backend.rooms.close_room(new_room(), 1)


async def test_room_directory_survives_reopen(backend: Backend, reopen: Reopen) -> None:
    open_room, closed_room = new_room(), new_room()
    await backend.rooms.create(room_info(open_room))
    await backend.rooms.create(room_info(closed_room))
    closed = await backend.rooms.close_room(closed_room, 1_700_000_100_000)

    backend = await reopen()
    assert await backend.rooms.get(open_room) == room_info(open_room)
    assert await backend.rooms.get(closed_room) == closed
    with pytest.raises(RoomExistsError):
        await backend.rooms.create(room_info(open_room))
