"""Pinned comments, fan levels and badges, stickers and images (issue 17, items 5, 9, 10).

Over real gRPC on loopback with the embedded log (tests/server_process.py):
- the owner or a moderator of the room pins a viewer's comment (a copy: event id, text,
  author), replaces it or unpins it; a viewer and another room's host may not; a late
  joiner finds the pin in its snapshot, and it survives a restart;
- the Sender carries the fan level and badges of the VERIFIED token, whatever the frame
  says; malformed claims are refused; `barrage token --level --badge` mints them;
- a pin made through one node of a Kafka cluster is in another node's join snapshot;
- a comment carries a sticker id or an image reference (https only, bounded, an
  allowed content type), refused with INVALID_FIELD naming the field otherwise.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from google.rpc import status_pb2

from barrage.server.auth import TokenVerifier
from barrage.server.commerce import checkpoint_pb2
from barrage.server.commerce.state import RoomState
from barrage.server.core.errors import ApiError
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import Cluster
from tests.kafka_broker import running_broker
from tests.server_process import TEST_SECRET, ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info

ROOT = Path(__file__).resolve().parent.parent
OK = 0
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("extras") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def show(shared: ServerProcess) -> str:
    """A room owned by hana, with vmod appointed its moderator (hugo owns another room)."""
    room_id = f"show-{uuid.uuid4().hex[:8]}"
    hana = Admin(shared.target, shared.token("hana", role="host"))
    hugo = Admin(shared.target, shared.token("hugo", role="host"))
    try:
        await hana.create_room(room_id, "Hana's show")
        await hugo.create_room(f"other-{room_id}", "Hugo's show")
        appoint = ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id="vmod"))
        await hana.publish(room_id, "appoint", appoint)
    finally:
        await hana.close()
        await hugo.close()
    return room_id


async def connect(server: ServerProcess, room_id: str, token: str) -> RawStream:
    stream = RawStream(server.target)
    await stream.hello(token)
    joined = await stream.join(room_id)
    assert joined.status.code == OK, joined.status
    return stream


async def send(stream: RawStream, room_id: str, payload: ev.Payload) -> rs.SendResult:
    msg_id = uuid.uuid4().hex
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=payload)))
    return await stream.send_result(msg_id)


def pin(event: ev.Event) -> ev.Payload:
    """What a host app posts to pin a comment it shows: a copy of it."""
    author = ev.Sender(user_id=event.sender.user_id, display_name=event.sender.display_name, role=event.sender.role)
    return ev.Payload(
        comment_pinned=ev.CommentPinned(event_id=event.event_id, text=event.payload.comment.text, author=author)
    )


def reason(status: status_pb2.Status) -> tuple[int, str]:
    return (status.code, error_info(status).reason if status.code else "")


# ------------------------------------------------------------------ 5. pinned comment


async def test_the_owner_and_a_moderator_pin_replace_and_unpin_and_nobody_else_may(
    shared: ServerProcess, show: str
) -> None:
    vic = await connect(shared, show, shared.token("vic", name="Vic"))
    hana = await connect(shared, show, shared.token("hana", role="host"))
    vmod = await connect(shared, show, shared.token("vmod"))
    hugo = await connect(shared, show, shared.token("hugo", role="host"))  # another room's host
    try:
        assert (await vic.send_comment(show, "q1", "does it come in red?")).status.code == OK
        assert (await vic.send_comment(show, "q2", "how long is the battery?")).status.code == OK
        first, second = await vic.wait_events(show, 2, kind="comment")

        assert reason((await send(vic, show, pin(first))).status) == (PERMISSION_DENIED, "ROLE_FORBIDDEN")
        assert reason((await send(hugo, show, pin(first))).status) == (PERMISSION_DENIED, "ROLE_FORBIDDEN")
        assert (await send(hana, show, pin(first))).status.code == OK
        (pinned,) = await vic.wait_events(show, 1, kind="comment_pinned")
        assert pinned.priority == ev.PRIORITY_CRITICAL
        assert pinned.payload.comment_pinned.event_id == first.event_id
        assert pinned.payload.comment_pinned.text == "does it come in red?"
        assert pinned.payload.comment_pinned.author.user_id == "vic"

        assert (await send(vmod, show, pin(second))).status.code == OK  # replaces the first
        joined = await _join_snapshot(shared, show)  # a late joiner
        assert joined.pinned_comment.event_id == second.event_id
        assert joined.pinned_comment.text == "how long is the battery?"

        unpin_other = ev.Payload(comment_unpinned=ev.CommentUnpinned(event_id=first.event_id))
        assert reason((await send(vic, show, unpin_other)).status) == (PERMISSION_DENIED, "ROLE_FORBIDDEN")
        assert (await send(vmod, show, unpin_other)).status.code == OK  # not the pinned one: nothing changes
        assert (await _join_snapshot(shared, show)).pinned_comment.event_id == second.event_id
        unpin = ev.Payload(comment_unpinned=ev.CommentUnpinned(event_id=second.event_id))
        assert (await send(hana, show, unpin)).status.code == OK
        assert not (await _join_snapshot(shared, show)).HasField("pinned_comment")
    finally:
        for stream in (vic, hana, vmod, hugo):
            await stream.close()


async def _join_snapshot(server: ServerProcess, room_id: str) -> rs.RoomSnapshot:
    """The snapshot a viewer joining now receives."""
    stream = RawStream(server.target)
    try:
        await stream.hello(server.token(f"late-{uuid.uuid4().hex[:6]}"))
        joined = await stream.join(room_id)
        assert joined.status.code == OK, joined.status
        return joined.snapshot
    finally:
        await stream.close()


async def test_a_sticker_comment_is_pinned_without_a_caption(shared: ServerProcess, show: str) -> None:
    vmod = await connect(shared, show, shared.token("vmod"))
    try:
        body = ev.CommentPinned(event_id="e-9", author=ev.Sender(user_id="vic"), sticker_id="heart-eyes")
        assert (await send(vmod, show, ev.Payload(comment_pinned=body))).status.code == OK
        assert (await _join_snapshot(shared, show)).pinned_comment == body
    finally:
        await vmod.close()


async def test_a_pin_is_refused_when_its_copy_is_malformed(shared: ServerProcess, show: str) -> None:
    hana = Admin(shared.target, shared.token("hana", role="host"))
    try:
        blank = ev.CommentPinned(event_id="e-1", text="  ", author=ev.Sender(user_id="vic"))
        no_author = ev.CommentPinned(event_id="e-1", text="hi")
        http_image = ev.CommentPinned(
            event_id="e-1", author=ev.Sender(user_id="vic"), image=_image(url="http://cdn.example.com/a.png")
        )
        cases = (
            (blank, "payload.comment_pinned.text"),
            (no_author, "payload.comment_pinned.author.user_id"),
            (http_image, "payload.comment_pinned.image.url"),
        )
        for body, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await hana.publish(show, uuid.uuid4().hex, ev.Payload(comment_pinned=body))
            status = end_status(refused.value)
            assert status.code == INVALID_ARGUMENT
            assert error_info(status).metadata["field"] == field
    finally:
        await hana.close()


async def test_a_restart_keeps_the_pinned_comment(server: ServerProcess, room_id: str) -> None:
    hana = Admin(server.target, server.token("hana", role="host"))
    try:
        await hana.create_room(room_id, "show")
        author = ev.Sender(user_id="vic", display_name="Vic", role=ev.ROLE_VIEWER, level=4)
        body = ev.CommentPinned(event_id="e-42", text="is it waterproof?", author=author)
        await hana.publish(room_id, "pin", ev.Payload(comment_pinned=body))
    finally:
        await hana.close()
    server.restart()  # kill -9, then the same data directory
    assert (await _join_snapshot(server, room_id)).pinned_comment == body


def test_the_checkpoint_carries_the_pin_and_a_deleted_comment_is_unpinned() -> None:
    state = RoomState("r")
    body = ev.CommentPinned(event_id="c1", text="red?", author=ev.Sender(user_id="vic", badges=["vip"]))
    state.fold(0, ev.Event(event_id="p1", payload=ev.Payload(comment_pinned=body)))
    written = state.checkpoint("x").SerializeToString()
    restored = RoomState.from_checkpoint("r", checkpoint_pb2.RoomCheckpoint.FromString(written))
    assert restored.pinned_comment == body
    assert restored.snapshot("t", "", 0).pinned_comment == body
    restored.fold(1, ev.Event(event_id="d1", payload=ev.Payload(message_deleted=ev.MessageDeleted(event_id="c1"))))
    assert restored.pinned_comment is None


# ---------------------------------------------------------------- 10. badges and levels


async def test_the_sender_carries_level_and_badges_from_the_token_never_from_the_frame(
    shared: ServerProcess, show: str
) -> None:
    fan_token = _token("fan", level=12, badges=["vip", "fan-club.hana"])
    fan = await connect(shared, show, fan_token)
    plain = await connect(shared, show, shared.token("plain"))
    try:
        # A forged Sender rides along as unknown fields of the Send and of the comment.
        forged = ev.Sender(user_id="fan", level=100, badges=["admin"]).SerializeToString()
        extra = bytes([0x9A, 0x06, len(forged)]) + forged  # as field 99, length-delimited
        send = rs.Send(room_id=show, client_msg_id="forged", payload=ev.Payload(comment=ev.Comment(text="hi")))
        frame = rs.Send.FromString(send.SerializeToString() + extra)
        frame.payload.comment.MergeFromString(extra)
        await fan.send(rs.ConnectRequest(send=frame))
        assert (await fan.send_result("forged")).status.code == OK
        assert (await plain.send_comment(show, "plain", "hello")).status.code == OK
        events = await plain.wait_events(show, 2, kind="comment")
        by_user = {event.sender.user_id: event.sender for event in events}
        assert (by_user["fan"].level, list(by_user["fan"].badges)) == (12, ["vip", "fan-club.hana"])
        assert (by_user["plain"].level, list(by_user["plain"].badges)) == (0, [])
    finally:
        await fan.close()
        await plain.close()


def _token(user: str, **claims: object) -> str:
    now = int(time.time())
    body = {"sub": user, "name": user, "role": "viewer", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, TEST_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [{"level": 101}, {"level": -1}, {"level": "7"}, {"level": True}, {"badges": "vip"},
     {"badges": ["a", "b", "c", "d", "e", "f"]}, {"badges": ["x" * 33]}, {"badges": ["has space"]}, {"badges": [7]}],
    ids=repr,
)  # fmt: skip
def test_a_token_with_malformed_level_or_badges_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(ApiError) as refused:
        TokenVerifier(secret=TEST_SECRET).verify(_token("u", **claims))
    assert refused.value.reason == "TOKEN_INVALID"


def test_barrage_token_mints_level_and_badges() -> None:
    args = ["token", "--user", "zoe", "--level", "9", "--badge", "vip", "--badge", "top-fan", "--secret", TEST_SECRET]
    done = subprocess.run(
        [sys.executable, "-m", "barrage.cli", *args], capture_output=True, text=True, timeout=30, cwd=ROOT, check=True
    )
    who = TokenVerifier(secret=TEST_SECRET).verify(done.stdout.strip())
    assert (who.sender().level, list(who.sender().badges)) == (9, ["vip", "top-fan"])


# ------------------------------------------------------------- 9. stickers and images


def _image(**fields: object) -> ev.ImageRef:
    base: dict[str, object] = {
        "url": "https://cdn.example.com/u/1.webp",
        "width": 800,
        "height": 600,
        "content_type": "image/webp",
    }
    return ev.ImageRef(**{**base, **fields})  # type: ignore[arg-type]


async def test_a_sticker_or_an_image_needs_no_caption_and_is_delivered_as_sent(
    shared: ServerProcess, show: str
) -> None:
    vic = await connect(shared, show, shared.token("vic"))
    try:
        sticker = ev.Payload(comment=ev.Comment(sticker_id="heart-eyes"))
        image = ev.Payload(comment=ev.Comment(text="look!", image=_image()))
        assert (await send(vic, show, sticker)).status.code == OK
        assert (await send(vic, show, image)).status.code == OK
        got = await vic.wait_events(show, 2, kind="comment")
        assert [e.payload.comment for e in got] == [sticker.comment, image.comment]
        empty = await send(vic, show, ev.Payload(comment=ev.Comment()))
        assert reason(empty.status) == (INVALID_ARGUMENT, "TEXT_EMPTY")
    finally:
        await vic.close()


BAD_COMMENTS = {
    "http": (ev.Comment(image=_image(url="http://cdn.example.com/a.png")), "payload.comment.image.url"),
    "javascript": (ev.Comment(image=_image(url="javascript:alert(1)")), "payload.comment.image.url"),
    "data": (ev.Comment(image=_image(url="data:image/png;base64,AAAA")), "payload.comment.image.url"),
    "no-host": (ev.Comment(image=_image(url="https:///a.png")), "payload.comment.image.url"),
    "credentials": (ev.Comment(image=_image(url="https://u:p@cdn.example.com/a.png")), "payload.comment.image.url"),
    "space": (ev.Comment(image=_image(url="https://cdn.example.com/a b.png")), "payload.comment.image.url"),
    "too-long": (ev.Comment(image=_image(url="https://cdn.example.com/" + "a" * 1100)), "payload.comment.image.url"),
    "bad-ipv6": (ev.Comment(image=_image(url="https://[::1/a.png")), "payload.comment.image.url"),
    "svg": (ev.Comment(image=_image(content_type="image/svg+xml")), "payload.comment.image.content_type"),
    "zero-width": (ev.Comment(image=_image(width=0)), "payload.comment.image.width"),
    "huge-height": (ev.Comment(image=_image(height=10_001)), "payload.comment.image.height"),
    "both": (ev.Comment(sticker_id="heart", image=_image()), "payload.comment.image"),
    "sticker-id": (ev.Comment(sticker_id="no spaces allowed"), "payload.comment.sticker_id"),
}


async def test_bad_images_and_stickers_are_refused_naming_the_field(shared: ServerProcess, show: str) -> None:
    vic = await connect(shared, show, shared.token("vic"))
    try:
        wrong = []
        for label, (comment, field) in BAD_COMMENTS.items():
            result = await send(vic, show, ev.Payload(comment=comment))
            got = (result.status.code, error_info(result.status).metadata.get("field") if result.status.code else "")
            if got != (INVALID_ARGUMENT, field):
                wrong.append(f"{label}: {got}")
        assert not wrong, wrong
    finally:
        await vic.close()


async def test_a_pin_made_on_one_kafka_node_is_in_the_snapshot_of_another(tmp_path: Path) -> None:
    room_id = f"room-{uuid.uuid4().hex[:8]}"
    with running_broker() as broker:
        cluster = Cluster(broker, tmp_path, f"extras-{uuid.uuid4().hex[:6]}", 2)
        try:
            cluster.start()
            hana = Admin(cluster[0].target, cluster.token("hana", role="host"))
            try:
                await hana.create_room(room_id, "show")
                assert not (await _join_snapshot(cluster[1], room_id)).HasField("pinned_comment")  # node 1 watches
                body = ev.CommentPinned(event_id="e-7", text="ships abroad?", author=ev.Sender(user_id="vic"))
                await hana.publish(room_id, "pin", ev.Payload(comment_pinned=body))
                deadline = time.monotonic() + 15
                while (snap := await _join_snapshot(cluster[1], room_id)).pinned_comment != body:
                    assert time.monotonic() < deadline, snap
                    await asyncio.sleep(0.2)
            finally:
                await hana.close()
        finally:
            cluster.stop()
