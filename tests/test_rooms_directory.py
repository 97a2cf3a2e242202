"""Rooms as a directory: ListRooms, UpdateRoom, and the room's metadata in the snapshot.

Over real gRPC on loopback, on both backends: the embedded log (SQLite directory) and
Kafka (a compacted directory topic on the Tansu test broker). Who may list and update
is docs/commerce.md "Rooms as a directory".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import event_pb2 as ev
from tests.cluster import Cluster
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info


@dataclass
class Node:
    target: str
    token: Callable[..., str]
    process: ServerProcess


@pytest.fixture(params=["embedded", "kafka"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    if request.param == "embedded":
        proc = ServerProcess(tmp_path / "data")
        proc.start()
        try:
            yield Node(proc.target, proc.token, proc)
        finally:
            proc.stop()
        return
    with running_broker() as broker:
        cluster = Cluster(broker, tmp_path, f"dir-{uuid.uuid4().hex[:6]}", 1)
        try:
            cluster.start()
            yield Node(cluster[0].target, cluster.token, cluster[0])
        finally:
            cluster.stop()


@pytest.fixture
async def svc(node: Node) -> AsyncIterator[Admin]:
    admin = Admin(node.target, node.token("shop-backend", role="service"))
    try:
        yield admin
    finally:
        await admin.close()


async def failure(call: object) -> tuple[str, str, str]:
    """(status code name, ErrorInfo reason, metadata field) of a call that must fail."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        info = error_info(end_status(err))
        return err.code().name, info.reason, info.metadata.get("field", "")
    raise AssertionError("the call succeeded")


async def list_all(admin: Admin, page_size: int, **filters: object) -> list[str]:
    """Every room id the filters match, page by page."""
    ids: list[str] = []
    token = ""
    for _ in range(100):
        request = pb.ListRoomsRequest(page_size=page_size, page_token=token, **filters)  # type: ignore[arg-type]
        page = await admin.stub.ListRooms(request, metadata=admin.metadata)
        assert len(page.rooms) <= page_size
        ids.extend(room.room_id for room in page.rooms)
        token = page.next_page_token
        if not token:
            return ids
    raise AssertionError("paging did not end")


async def update(admin: Admin, room_id: str, paths: list[str] | None = None, **fields: object) -> pb.Room:
    mask = field_mask_pb2.FieldMask(paths=paths or [])
    request = pb.UpdateRoomRequest(room_id=room_id, update_mask=mask, **fields)  # type: ignore[arg-type]
    room: pb.Room = (await admin.stub.UpdateRoom(request, metadata=admin.metadata)).room
    return room


async def test_pages_are_complete_and_filters_select(node: Node, svc: Admin) -> None:
    hana = [f"a-hana-{i}" for i in range(5)]
    hugo = ["b-hugo-0", "b-hugo-1"]
    for room_id in hana:
        await svc.create_room(room_id, "show", host_user_id="hana")
    for room_id in hugo:
        await svc.create_room(room_id, "show", host_user_id="hugo")
    await update(svc, hana[1], ["labels"], labels=["beauty", "sale"])
    await update(svc, hugo[0], ["labels"], labels=["beauty"])
    await svc.close_room(hana[2], "done")

    everything = sorted(hana + hugo)
    for size in (1, 2, 3, 7, 100):
        assert await list_all(svc, size) == everything, size
    assert await list_all(svc, 2, state=pb.ROOM_STATE_CLOSED) == [hana[2]]
    assert await list_all(svc, 2, state=pb.ROOM_STATE_OPEN) == [r for r in everything if r != hana[2]]
    assert await list_all(svc, 1, owner_user_id="hugo") == hugo
    assert await list_all(svc, 1, label="beauty") == [hana[1], hugo[0]]
    assert await list_all(svc, 1, label="sale", owner_user_id="hugo") == []

    # Paging is stable under creation: a room created behind the page reached is not
    # listed twice or skipped before it; one created ahead of it is listed.
    first = await svc.stub.ListRooms(pb.ListRoomsRequest(page_size=3), metadata=svc.metadata)
    await svc.create_room("a-hana-00", "late, behind", host_user_id="hana")
    await svc.create_room("c-late", "late, ahead", host_user_id="hana")
    rest: list[str] = []
    token = first.next_page_token
    while token:
        page = await svc.stub.ListRooms(pb.ListRoomsRequest(page_size=3, page_token=token), metadata=svc.metadata)
        rest.extend(room.room_id for room in page.rooms)
        token = page.next_page_token
    seen = [room.room_id for room in first.rooms] + rest
    assert seen == [*everything, "c-late"]

    listed = (await svc.stub.ListRooms(pb.ListRoomsRequest(label="sale"), metadata=svc.metadata)).rooms
    assert [(r.room_id, list(r.labels), r.creator_user_id, r.state) for r in listed] == [
        (hana[1], ["beauty", "sale"], "hana", pb.ROOM_STATE_OPEN)
    ]


async def test_a_host_lists_its_own_rooms_and_viewers_none(node: Node, svc: Admin) -> None:
    await svc.create_room("r-hana", "show", host_user_id="hana")
    await svc.create_room("r-hugo", "show", host_user_id="hugo")
    hana = Admin(node.target, node.token("hana", role="host"))
    vic = Admin(node.target, node.token("vic"))
    pmod = Admin(node.target, node.token("pmod", role="moderator"))
    try:
        assert await list_all(hana, 10) == ["r-hana"]
        assert await list_all(hana, 10, owner_user_id="hana") == ["r-hana"]
        denied = ("PERMISSION_DENIED", "ROLE_FORBIDDEN", "")
        assert await failure(
            hana.stub.ListRooms(pb.ListRoomsRequest(owner_user_id="hugo"), metadata=hana.metadata)
        ) == (denied)
        for who in (vic, pmod):
            assert await failure(who.stub.ListRooms(pb.ListRoomsRequest(), metadata=who.metadata)) == denied
        bad_token = pb.ListRoomsRequest(page_token="not-a-token")
        assert await failure(svc.stub.ListRooms(bad_token, metadata=svc.metadata)) == (
            "INVALID_ARGUMENT",
            "INVALID_FIELD",
            "page_token",
        )
        too_big = pb.ListRoomsRequest(page_size=501)
        assert (await failure(svc.stub.ListRooms(too_big, metadata=svc.metadata)))[2] == "page_size"
    finally:
        for admin in (hana, vic, pmod):
            await admin.close()


async def test_the_owner_updates_live_viewers_see_it_and_late_joiners_get_it(node: Node, svc: Admin) -> None:
    room_id = "live-1"
    await svc.create_room(room_id, "Lipstick night", host_user_id="hana")
    await svc.create_room("other", "not hana's", host_user_id="hugo")
    hana = Admin(node.target, node.token("hana", role="host"))
    hugo = Admin(node.target, node.token("hugo", role="host"))
    vic = Admin(node.target, node.token("vic"))
    early, late = RawStream(node.target), RawStream(node.target)
    try:
        await early.hello(node.token("early"))
        await early.join(room_id)
        denied = ("PERMISSION_DENIED", "ROLE_FORBIDDEN", "")
        assert await failure(update(vic, room_id, title="mine")) == denied
        assert await failure(update(hugo, room_id, title="mine")) == denied  # a host of another room
        assert await failure(update(hana, "other", title="mine")) == denied

        room = await update(
            hana,
            room_id,
            title="Lipstick night, part 2",
            cover_url="https://cdn.example.com/c/1.jpg",
            labels=["beauty", "live"],
            announcement="Free shipping tonight",
        )
        assert (room.title, room.cover_url, list(room.labels), room.announcement) == (
            "Lipstick night, part 2",
            "https://cdn.example.com/c/1.jpg",
            ["beauty", "live"],
            "Free shipping tonight",
        )
        (seen,) = await early.wait_events(room_id, 1, kind="room_updated")
        assert seen.payload.room_updated == ev.RoomUpdated(
            title="Lipstick night, part 2",
            cover_url="https://cdn.example.com/c/1.jpg",
            labels=["beauty", "live"],
            announcement="Free shipping tonight",
        )
        assert seen.priority == ev.PRIORITY_CRITICAL

        # A partial update keeps what the mask leaves out.
        room = await update(svc, room_id, ["announcement"], announcement="Back at 9", title="ignored")
        assert (room.title, room.announcement, list(room.labels)) == (
            "Lipstick night, part 2",
            "Back at 9",
            ["beauty", "live"],
        )

        await late.hello(node.token("late"))
        snapshot = (await late.join(room_id)).snapshot
        assert (snapshot.title, snapshot.cover_url, list(snapshot.labels), snapshot.announcement) == (
            "Lipstick night, part 2",
            "https://cdn.example.com/c/1.jpg",
            ["beauty", "live"],
            "Back at 9",
        )
        got = (await hana.stub.GetRoom(pb.GetRoomRequest(room_id=room_id), metadata=hana.metadata)).room
        assert (got.cover_url, list(got.labels), got.announcement) == (
            "https://cdn.example.com/c/1.jpg",
            ["beauty", "live"],
            "Back at 9",
        )
        history = await svc.all_events(room_id, "room_updated")
        assert [e.payload.room_updated.announcement for e in history] == ["Free shipping tonight", "Back at 9"]
    finally:
        await early.close()
        await late.close()
        for admin in (hana, hugo, vic):
            await admin.close()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "x" * 201}, "title"),
        ({"cover_url": "http://cdn.example.com/c.jpg"}, "cover_url"),
        ({"cover_url": "https://" + "a" * 1100 + ".com/c.jpg"}, "cover_url"),
        ({"cover_url": "javascript:alert(1)"}, "cover_url"),
        ({"labels": [f"l{i}" for i in range(11)]}, "labels"),
        ({"labels": ["x" * 33]}, "labels"),
        ({"labels": ["has space"]}, "labels"),
        ({"labels": ["dup", "dup"]}, "labels"),
        ({"announcement": "y" * 501}, "announcement"),
        ({"announcement": "bell\x07"}, "announcement"),
    ],
)
async def test_bad_values_name_the_field(node: Node, svc: Admin, fields: dict[str, object], field: str) -> None:
    await svc.create_room("v-1", "show")
    assert await failure(update(svc, "v-1", None, **fields)) == ("INVALID_ARGUMENT", "INVALID_FIELD", field)
    room = (await svc.stub.GetRoom(pb.GetRoomRequest(room_id="v-1"), metadata=svc.metadata)).room
    assert (room.title, room.cover_url, list(room.labels), room.announcement) == ("show", "", [], "")


async def test_an_unknown_mask_path_and_a_closed_room_are_refused(node: Node, svc: Admin) -> None:
    await svc.create_room("m-1", "show")
    assert await failure(update(svc, "m-1", ["room_id"], title="x")) == (
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "update_mask",
    )
    await svc.close_room("m-1", "bye")
    code, reason, _ = await failure(update(svc, "m-1", title="again"))
    assert (code, reason) == ("FAILED_PRECONDITION", "ROOM_CLOSED")


async def test_the_directory_survives_a_restart(server: ServerProcess) -> None:
    admin = Admin(server.target, server.token("svc", role="service"))
    try:
        await admin.create_room("keep-1", "show", host_user_id="hana")
        await update(admin, "keep-1", cover_url="https://cdn.example.com/k.png", labels=["kept"], announcement="hi")
    finally:
        await admin.close()
    server.restart()
    admin = Admin(server.target, server.token("svc", role="service"))
    try:
        rooms = (await admin.stub.ListRooms(pb.ListRoomsRequest(label="kept"), metadata=admin.metadata)).rooms
        assert [(r.room_id, r.cover_url, list(r.labels), r.announcement) for r in rooms] == [
            ("keep-1", "https://cdn.example.com/k.png", ["kept"], "hi")
        ]
    finally:
        await admin.close()
