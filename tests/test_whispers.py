"""Whispers: private messages in a room, delivered to their audience and to nobody else.

Over real gRPC on loopback, on the embedded log (one node) and on Kafka (three nodes on
one topic, the members of a room spread over them). The audience rule is
docs/commerce.md "Whispers": the sender, and either the one recipient or, to_staff, the
room's owner, moderators and services. Every test that says someone did NOT get a
whisper first waits for a public event posted after it (the room's order would have
brought the whisper earlier), then scans the bytes that someone received.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from barrage.clients import chat_commands
from barrage.clients.assistant.answerer import Answer
from barrage.clients.assistant.bot import Assistant
from barrage.clients.assistant.settings import Settings
from barrage.clients.chat_view import RoomView
from barrage.clients.sdk import Client, SendError, is_whisper
from barrage.server.auth import Identity
from barrage.server.commerce.state import RoomState
from barrage.server.core import whisper
from barrage.server.core.hub import Hub
from barrage.server.core.outbox import Frame
from barrage.server.log.base import LogRecord
from barrage.v1 import admin_service_pb2 as apb
from barrage.v1 import event_pb2 as ev
from barrage.v1 import insights_service_pb2 as ipb
from barrage.v1 import insights_service_pb2_grpc
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import Cluster, send_payload
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, error_info

OK = 0
PERMISSION_DENIED = 7
INVALID_ARGUMENT = 3
HOST = "host"
MOD = "mod"
SVC = "svc"
BOT = "bot"


@dataclass
class Nodes:
    targets: list[str]
    token: Callable[..., str]

    def at(self, i: int) -> str:
        """The i-th member's node: members of a room are spread over every node."""
        return self.targets[i % len(self.targets)]


@pytest.fixture(scope="module", params=["embedded", "kafka-3-nodes"])
def nodes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    base = tmp_path_factory.mktemp("whispers")
    if request.param == "embedded":
        proc = ServerProcess(base / "data")
        proc.start()
        try:
            yield Nodes([proc.target], proc.token)
        finally:
            proc.stop()
        return
    with running_broker() as broker:
        cluster = Cluster(broker, base, f"whispers-{uuid.uuid4().hex[:6]}", 3)
        try:
            cluster.start()
            yield Nodes([node.target for node in cluster.nodes], cluster[0].token)
        finally:
            cluster.stop()


@dataclass
class Room:
    room_id: str
    nodes: Nodes
    svc: Admin
    streams: list[RawStream]

    def token(self, user: str, role: str = "viewer") -> str:
        rooms = [self.room_id] if role == "bot" else None
        return self.nodes.token(user, role=role, name=user.title(), rooms=rooms)

    async def join(self, user: str, role: str = "viewer", node: int = 0, history: int = 0) -> RawStream:
        stream = RawStream(self.nodes.at(node))
        self.streams.append(stream)
        await stream.hello(self.token(user, role))
        joined = await stream.join(self.room_id, history_limit=history)
        assert joined.status.code == OK, joined.status
        return stream

    async def resume(self, user: str, cursor: str, node: int) -> RawStream:
        stream = RawStream(self.nodes.at(node))
        self.streams.append(stream)
        await stream.hello(self.token(user))
        joined = await stream.join(self.room_id, resume_cursor=cursor)
        assert joined.resume == rs.RESUME_OUTCOME_RESUMED, joined
        return stream

    async def mark(self, stream: RawStream, text: str) -> str:
        """Post a public comment; its cursor."""
        result = await stream.send_comment(self.room_id, f"m-{uuid.uuid4().hex[:10]}", text, timeout=15)
        assert result.status.code == OK, result.status
        return result.cursor

    async def seen(self, stream: RawStream, text: str, timeout: float = 20.0) -> None:
        """Wait until the stream received the public comment `text`."""
        async with asyncio.timeout(timeout):
            while text not in (e.payload.comment.text for e in stream.events(self.room_id, "comment")):
                await asyncio.sleep(0.02)


@pytest.fixture
async def room(nodes: Nodes) -> AsyncIterator[Room]:
    """An open room owned by HOST; MOD is its appointed moderator (folded on every node)."""
    svc = Admin(nodes.targets[0], nodes.token(SVC, role="service"))
    state = Room(f"w-{uuid.uuid4().hex[:10]}", nodes, svc, [])
    try:
        await svc.create_room(state.room_id, "Whispers", host_user_id=HOST)
        appoint = ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id=MOD))
        await svc.publish(state.room_id, "appoint-mod", appoint)
        yield state
    finally:
        for stream in state.streams:
            await stream.close()
        await svc.close()


def whisper_payload(text: str, to: str = "", staff: bool = False) -> ev.Payload:
    return ev.Payload(whisper=ev.Whisper(text=text, recipient_user_id=to, to_staff=staff))


async def send_whisper(room: Room, stream: RawStream, text: str, to: str = "", staff: bool = False) -> rs.SendResult:
    key = f"w-{uuid.uuid4().hex[:10]}"
    return await send_payload(stream, room.room_id, key, whisper_payload(text, to, staff))


def secret(tag: str) -> str:
    return f"SECRET-{tag}-{uuid.uuid4().hex[:12]}"


def whispers(stream: RawStream, room_id: str) -> list[str]:
    return [e.payload.whisper.text for e in stream.events(room_id, "whisper")]


def raw(stream: RawStream) -> bytes:
    """Every byte the server sent on the stream (snapshots and replays included)."""
    return b"".join(message.SerializeToString() for message in stream.received)


def leaked(data: bytes, texts: Sequence[str]) -> list[str]:
    return [text for text in texts if text.encode() in data]


# ------------------------------------------------------------------ who gets a whisper


async def test_host_whispers_to_one_viewer_and_nobody_else_receives_it(room: Room) -> None:
    host = await room.join(HOST, "host", node=0)
    alice = await room.join("alice", node=1)
    bob = await room.join("bob", node=2)
    text = secret("prize")
    result = await send_whisper(room, host, text, to="alice")
    assert result.status.code == OK, result.status
    await room.mark(host, "after the prize whisper")
    await room.seen(bob, "after the prize whisper")
    (got,) = await alice.wait_events(room.room_id, 1, timeout=20, kind="whisper")
    assert got.payload.whisper.text == text and got.payload.whisper.recipient_user_id == "alice"
    assert got.sender.user_id == HOST and got.priority == ev.PRIORITY_CRITICAL and got.cursor == result.cursor
    await host.wait_events(room.room_id, 1, timeout=20, kind="whisper")  # the sender sees what it sent
    assert whispers(bob, room.room_id) == [] and not leaked(raw(bob), [text])


async def test_viewer_whispers_to_the_staff_owner_moderators_and_services(room: Room) -> None:
    alice = await room.join("alice", node=0)
    host = await room.join(HOST, "host", node=1)
    mod = await room.join(MOD, node=2)
    service = await room.join("order-service", "service", node=0)
    bob = await room.join("bob", node=1)
    bot = await room.join(BOT, "bot", node=2)
    text = secret("to-staff")
    result = await send_whisper(room, alice, text, staff=True)
    assert result.status.code == OK, result.status
    await room.mark(host, "after the staff whisper")
    for staff in (host, mod, service, alice):
        (got,) = await staff.wait_events(room.room_id, 1, timeout=20, kind="whisper")
        assert got.payload.whisper.text == text and got.payload.whisper.to_staff
    for outsider in (bob, bot):  # bots are not staff
        await room.seen(outsider, "after the staff whisper")
        assert not leaked(raw(outsider), [text])


async def test_bot_and_service_whisper_to_a_viewer_other_staff_do_not_see_it(room: Room) -> None:
    alice = await room.join("alice", node=0)
    bob = await room.join("bob", node=1)
    host = await room.join(HOST, "host", node=2)
    bot = await room.join(BOT, "bot", node=1)
    from_bot, from_service = secret("assistant"), secret("order")
    assert (await send_whisper(room, bot, from_bot, to="alice")).status.code == OK
    await room.svc.publish(room.room_id, "svc-whisper", whisper_payload(from_service, to="alice"))
    await room.mark(bob, "after the bot and service whispers")
    got = await alice.wait_events(room.room_id, 2, timeout=20, kind="whisper")
    assert sorted(e.payload.whisper.text for e in got) == sorted([from_bot, from_service])
    assert {e.sender.user_id for e in got} == {BOT, SVC}
    for other in (bob, host):  # the owner is staff, but a whisper to one viewer is between the two
        await room.seen(other, "after the bot and service whispers")
        assert not leaked(raw(other), [from_bot, from_service])


async def test_the_sdk_sends_and_receives_whispers(room: Room) -> None:
    host = await room.join(HOST, "host", node=0)
    async with Client(room.nodes.at(1), room.token("alice")) as alice:
        sub = await alice.join(room.room_id)
        text = secret("sdk-in")
        assert (await send_whisper(room, host, text, to="alice")).status.code == OK
        async with asyncio.timeout(20):
            async for item in sub:
                if isinstance(item, ev.Event) and is_whisper(item):
                    assert item.payload.whisper.text == text
                    break
        reply = secret("sdk-out")
        ack = await sub.whisper(reply, to_staff=True)
        assert ack.cursor
        got = await host.wait_events(room.room_id, 2, timeout=20, kind="whisper")
        assert got[-1].payload.whisper.text == reply and got[-1].sender.user_id == "alice"
        with pytest.raises(SendError) as refused:
            await sub.whisper("psst", to_user_id="bob")
        assert refused.value.reason == "WHISPER_FORBIDDEN"
        with pytest.raises(ValueError, match="one user"):
            await sub.whisper("both", to_user_id="bob", to_staff=True)


class PriceAnswerer:
    """Answers every question with the same line (the assistant's logic is tested elsewhere)."""

    def answer(self, question: str, state: object, now_ms: int) -> Answer:
        return Answer(question=question, lang="en", outcome="answer", text="It is ¥99 today.")


async def test_the_assistant_answers_privately_with_a_whisper_to_the_asker(room: Room) -> None:
    bob = await room.join("bob", node=1)
    settings = Settings(private_replies=True, max_question_age_s=60)
    token = room.token(BOT, "bot")
    bot = Assistant(room.nodes.at(2), token, [room.room_id], PriceAnswerer(), settings=settings)
    task = asyncio.create_task(bot.run())
    try:
        async with asyncio.timeout(20):
            await bot.ready.wait()
        async with Client(room.nodes.at(0), room.token("alice")) as alice:
            sub = await alice.join(room.room_id)
            question = await sub.send("how much is this?")
            got = ev.Event()
            async with asyncio.timeout(20):
                async for item in sub:
                    if isinstance(item, ev.Event) and is_whisper(item):
                        got = item
                        break
            answer = got.payload.whisper
            assert answer.text == "It is ¥99 today." and answer.reply_to_event_id == question.event_id
            assert answer.recipient_user_id == "alice" and got.sender.user_id == BOT
            await room.mark(bob, "after the private answer")
            await room.seen(bob, "after the private answer")
            assert not leaked(raw(bob), ["It is ¥99 today."])  # no public reply either
    finally:
        bot.stop()
        await asyncio.wait_for(task, 15)


# ------------------------------------------------------------------ abuse and bad input


async def test_a_viewer_naming_another_viewer_is_refused_permission_denied(room: Room) -> None:
    alice = await room.join("alice", node=0)
    bob = await room.join("bob", node=1)
    text = secret("forged")
    result = await send_whisper(room, alice, text, to="bob")
    assert result.status.code == PERMISSION_DENIED
    info = error_info(result.status)
    assert info.reason == "WHISPER_FORBIDDEN" and info.metadata["field"] == "payload.whisper.recipient_user_id"
    # Nor through the admin API: a viewer may not publish at all.
    viewer_admin = Admin(room.nodes.at(0), room.token("alice"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await viewer_admin.publish(room.room_id, "forged", whisper_payload(text, to="bob"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await viewer_admin.close()
    await room.mark(alice, "after the forged whisper")
    await room.seen(bob, "after the forged whisper")
    assert not leaked(raw(bob), [text])
    assert not leaked(b"".join(e.SerializeToString() for e in await room.svc.all_events(room.room_id)), [text])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (whisper_payload("both", to="alice", staff=True), "INVALID_FIELD"),
        (whisper_payload("nobody"), "INVALID_FIELD"),
        (whisper_payload("to myself", to=HOST), "INVALID_FIELD"),
        (whisper_payload("   ", to="alice"), "TEXT_EMPTY"),
        (whisper_payload("x" * 501, to="alice"), "TEXT_TOO_LONG"),
        (whisper_payload("bad id", to="a b"), "INVALID_FIELD"),
    ],
)
async def test_malformed_whispers_are_invalid_argument(room: Room, payload: ev.Payload, reason: str) -> None:
    host = await room.join(HOST, "host")
    result = await send_payload(host, room.room_id, "bad", payload)
    assert result.status.code == INVALID_ARGUMENT and error_info(result.status).reason == reason


# ------------------------------------------------------------------ durable, resumed, listed


async def test_a_whisper_to_a_user_not_in_the_room_is_stored_and_delivered_when_it_joins(room: Room) -> None:
    host = await room.join(HOST, "host", node=0)
    text = secret("absent")
    result = await send_whisper(room, host, text, to="carol")
    assert result.status.code == OK  # stored, not refused: nobody knows who is online on every node
    await room.mark(host, "before carol joins")
    carol = await room.join("carol", node=1, history=50)
    (got,) = await carol.wait_events(room.room_id, 1, timeout=20, kind="whisper")
    assert got.payload.whisper.text == text
    dave = await room.join("dave", node=2, history=50)
    await room.seen(dave, "before carol joins")
    assert not leaked(raw(dave), [text])


async def test_resume_replays_a_whisper_only_to_its_audience(room: Room) -> None:
    host = await room.join(HOST, "host", node=0)
    cursor = await room.mark(host, "before the resume")
    texts = [secret("resume-1"), secret("resume-2")]
    assert (await send_whisper(room, host, texts[0], to="alice")).status.code == OK
    assert (await send_whisper(room, host, texts[1], staff=True)).status.code == OK
    await room.mark(host, "after the resume whispers")
    alice = await room.resume("alice", cursor, node=1)
    bob = await room.resume("bob", cursor, node=2)
    mod = await room.resume(MOD, cursor, node=0)  # its node watches the room: the channel's tail too
    await room.seen(alice, "after the resume whispers")
    await room.seen(bob, "after the resume whispers")
    await room.seen(mod, "after the resume whispers")
    assert whispers(alice, room.room_id) == [texts[0]]
    assert whispers(mod, room.room_id) == [texts[1]]
    assert not leaked(raw(bob), texts)


async def test_list_events_shows_each_reader_only_its_own_whispers(room: Room) -> None:
    host = await room.join(HOST, "host", node=0)
    alice = await room.join("alice", node=1)
    mod = await room.join(MOD, node=2)
    to_alice, to_staff, to_bob = secret("list-a"), secret("list-staff"), secret("list-b")
    assert (await send_whisper(room, host, to_alice, to="alice")).status.code == OK
    assert (await send_whisper(room, alice, to_staff, staff=True)).status.code == OK
    assert (await send_whisper(room, mod, to_bob, to="bob")).status.code == OK
    await room.mark(host, "after the listed whispers")
    await room.seen(mod, "after the listed whispers")
    everything = [to_alice, to_staff, to_bob]
    readers = {
        "owner": (room.token(HOST, "host"), [to_alice, to_staff]),
        "moderator": (room.token(MOD), [to_staff, to_bob]),
        "platform moderator": (room.token("platform-mod", "moderator"), [to_staff]),
        "service": (room.token("analytics", "service"), [to_staff]),
    }
    for who, (token, expected) in readers.items():
        reader = Admin(room.nodes.at(1), token)
        try:
            for page_size in (2, 1000):
                events = await all_pages(reader, room.room_id, page_size)
                assert [e.payload.whisper.text for e in events if is_whisper(e)] == expected, who
                data = b"".join(e.SerializeToString() for e in events)
                assert leaked(data, [t for t in everything if t not in expected]) == [], who
            backward = await reader.history(room.room_id, backward=True, page_size=1000)
            assert sorted(e.payload.whisper.text for e in backward.events if is_whisper(e)) == sorted(expected), who
        finally:
            await reader.close()
    viewer = Admin(room.nodes.at(0), room.token("alice"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await viewer.history(room.room_id)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # viewers have no ListEvents
    finally:
        await viewer.close()


async def all_pages(admin: Admin, room_id: str, page_size: int) -> list[ev.Event]:
    events: list[ev.Event] = []
    cursor = ""
    for _ in range(10_000):
        page = await admin.history(room_id, cursor, page_size=page_size)
        events.extend(page.events)
        if not page.next_cursor:
            return events
        cursor = page.next_cursor
    raise AssertionError("ListEvents never ended")


# ------------------------------------------------------------------ the proof


async def test_proof_many_subscribers_whispers_among_traffic_nothing_leaks(room: Room, tmp_path: Path) -> None:
    """Many subscribers over every node, whispers of every kind among normal traffic; then
    every subscriber's received bytes and every read API are scanned for whisper text."""
    viewers = [f"viewer-{i:02d}" for i in range(45)]  # 15 a node on three nodes
    streams = {user: await room.join(user, node=i) for i, user in enumerate(viewers)}
    staff = {
        HOST: await room.join(HOST, "host", node=0),
        MOD: await room.join(MOD, node=1),
        "order-service": await room.join("order-service", "service", node=2),
    }
    bot = await room.join(BOT, "bot", node=1)
    sent: list[tuple[str, str, str, bool]] = []  # (text, sender, recipient, to_staff)

    async def whisper_from(sender: str, stream: RawStream, to: str = "", to_staff: bool = False) -> None:
        text = secret(f"{sender}-{to or 'staff'}")
        result = await send_whisper(room, stream, text, to=to, staff=to_staff)
        assert result.status.code == OK, (sender, result.status)
        sent.append((text, sender, to, to_staff))

    async def chatter(user: str) -> None:
        for n in range(3):
            await room.mark(streams[user], f"{user} says hello {n}")

    work = [chatter(user) for user in viewers[::3]]
    work += [whisper_from(HOST, staff[HOST], to=user) for user in viewers[:6]]
    work += [whisper_from(MOD, staff[MOD], to=user) for user in viewers[6:9]]
    work += [whisper_from(user, streams[user], to_staff=True) for user in viewers[9:15]]
    work += [whisper_from(BOT, bot, to=user) for user in viewers[15:18]]
    work += [whisper_from("order-service", staff["order-service"], to=user) for user in viewers[18:21]]
    await asyncio.gather(*work)
    await room.mark(staff[HOST], "END OF SHOW")
    everyone = {**streams, **staff, BOT: bot}
    for stream in everyone.values():
        await room.seen(stream, "END OF SHOW", timeout=30)
    texts = [text for text, *_ in sent]
    staff_ids = set(staff)

    def entitled(user: str) -> list[str]:
        return [text for text, sender, to, to_staff in sent if user in (sender, to) or (to_staff and user in staff_ids)]

    for user, stream in everyone.items():
        mine = entitled(user)
        assert sorted(whispers(stream, room.room_id)) == sorted(mine), user  # each exactly once
        assert leaked(raw(stream), [t for t in texts if t not in mine]) == [], user
    assert all(entitled(user) for user in viewers[:21])  # every whisper reached its recipient

    # Read APIs: a late joiner's snapshot and history, GetRoom, insights and the report.
    late = await room.join("late-viewer", node=2, history=1000)
    await room.seen(late, "END OF SHOW")
    assert not leaked(raw(late), texts)
    got_room = await room.svc.stub.GetRoom(apb.GetRoomRequest(room_id=room.room_id), metadata=room.svc.metadata)
    assert not leaked(got_room.SerializeToString(), texts)
    service_history = await all_pages(room.svc, room.room_id, 37)
    to_staff_texts = [text for text, _, _, to_staff in sent if to_staff]
    assert sorted(e.payload.whisper.text for e in service_history if is_whisper(e)) == sorted(to_staff_texts)
    data = b"".join(e.SerializeToString() for e in service_history)
    assert leaked(data, [t for t in texts if t not in to_staff_texts]) == []
    comments = 3 * len(viewers[::3])  # the viewers' comments (insights count the audience's)
    insights = await insights_through(room, comments)
    assert not leaked(insights.SerializeToString(), texts)
    from barrage.clients.report import save_report

    page = save_report(insights, tmp_path / "report")
    for path in page.parent.iterdir():
        assert not leaked(path.read_bytes(), texts), path


async def insights_through(room: Room, comments: int) -> ipb.RoomInsights:
    """The room's insights once they have folded `comments` comments (all of them); up to two
    minutes (once, on a loaded CI machine, 44 of 45 had folded after one)."""
    async with grpc.aio.insecure_channel(room.nodes.at(0)) as channel:
        stub = insights_service_pb2_grpc.RoomInsightsServiceStub(channel)
        metadata = (("authorization", f"Bearer {room.token('ops', 'service')}"),)
        request = ipb.GetInsightsRequest(room_id=room.room_id, options=ipb.InsightsOptions(top_questions=100))
        insights = ipb.RoomInsights()
        for _ in range(400):
            insights = (await stub.GetInsights(request, metadata=metadata)).insights
            if insights.totals.comments >= comments:
                return insights  # type: ignore[no-any-return]
            await asyncio.sleep(0.3)
        raise AssertionError(f"insights folded {insights.totals.comments} of {comments} comments")


# ------------------------------------------------------------------ units: the hub, the CLI


class Sub:
    def __init__(self, user: str, full: bool = False) -> None:
        self.identity = Identity(user_id=user, display_name=user, role=ev.ROLE_VIEWER, expires_at=float("inf"))
        self.user_id = user
        self.min_position = -1
        self.full = full
        self.frames: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)

    def may_read(self, audience: whisper.Audience) -> bool:
        return whisper.admits(audience, self.identity, "r", "owner")

    def data(self) -> bytes:
        return b"".join(frame.data for frame in self.frames)


async def test_hub_keeps_a_whisper_out_of_the_shared_frame() -> None:
    hub = Hub(epoch_of=lambda _: "e", interval_s=10.0, max_frame_bytes=1 << 20, recent_per_room=100)
    ch = hub.channel("r")
    alice, bob = Sub("alice"), Sub("bob", full=True)
    hub.attach(ch, alice)
    hub.attach(ch, bob)

    def record(position: int, payload: ev.Payload, priority: int) -> LogRecord:
        sender = ev.Sender(user_id="owner")
        event = ev.Event(room_id="r", event_id=str(position), sender=sender, payload=payload)
        return LogRecord("r", position, event.SerializeToString(), priority)

    comment = record(1, ev.Payload(comment=ev.Comment(text="public words")), ev.PRIORITY_NORMAL)
    private = record(2, whisper_payload("private words", to="alice"), whisper.LOG_PRIORITY)
    audience = whisper.Audience("owner", "alice", False, frozenset())
    ch.next_flush = 1e18  # hold the tick: both records go out in one flush
    hub.on_records([(comment, None), (private, None)], {("r", 2): audience})
    hub.flush(ch)
    assert b"private words" in alice.data() and b"public words" in alice.data()
    assert b"private words" not in bob.data() and b"public words" in bob.data()
    # A tick holding only a whisper sends nothing at all to those outside its audience.
    bob.frames.clear()
    hub.on_records([(record(3, whisper_payload("only words", to="alice"), whisper.LOG_PRIORITY), None)],
                   {("r", 3): audience})  # fmt: skip
    hub.flush(ch)
    assert bob.frames == [] and b"only words" in alice.data()
    # A marked record handed over without its audience reaches nobody (the hub fails closed).
    alice.frames.clear()
    hub.on_records([(record(4, whisper_payload("lost words", to="alice"), whisper.LOG_PRIORITY), None)])
    hub.flush(ch)
    assert alice.frames == [] and bob.frames == []
    assert all(audience is None or audience.recipient_id == "alice" for *_, audience in ch.recent)


async def test_hub_gives_a_staff_whisper_to_a_moderator_appointed_after_it_joined() -> None:
    """A viewer appointed moderator while joined still has a viewer's (sampled) subscription:
    the room's appointments the whisper carries still admit it."""
    hub = Hub(epoch_of=lambda _: "e", interval_s=10.0, max_frame_bytes=1 << 20, recent_per_room=100)
    ch = hub.channel("r")
    late_mod, viewer = Sub("late-mod"), Sub("viewer")
    hub.attach(ch, late_mod)
    hub.attach(ch, viewer)
    event = ev.Event(room_id="r", sender=ev.Sender(user_id="writer"), payload=whisper_payload("help", staff=True))
    record = LogRecord("r", 1, event.SerializeToString(), whisper.LOG_PRIORITY)
    hub.on_records([(record, None)], {("r", 1): whisper.Audience("writer", "", True, frozenset({"late-mod"}))})
    hub.flush(ch)
    assert b"help" in late_mod.data() and viewer.frames == []


def test_room_state_checkpoint_and_snapshot_never_hold_a_whisper() -> None:
    state = RoomState("r")
    for position, payload in enumerate(
        [
            whisper_payload("checkpoint secret", to="alice"),
            whisper_payload("staff secret", staff=True),
            ev.Payload(comment=ev.Comment(text="public")),
        ]
    ):
        event = ev.Event(room_id="r", event_id=f"e{position}", sender=ev.Sender(user_id="host"), payload=payload)
        state.fold(position, event)
    assert state.position == 2  # folded past them (positions move on), nothing else kept
    data = state.checkpoint("e").SerializeToString() + state.snapshot("t", "c", 0).SerializeToString()
    assert b"secret" not in data


def test_readable_fails_closed_on_marks_it_does_not_know() -> None:
    viewer = Identity(user_id="alice", display_name="A", role=ev.ROLE_VIEWER, expires_at=float("inf"))
    event = ev.Event(room_id="r", sender=ev.Sender(user_id="owner"), payload=whisper_payload("w", to="bob"))
    records = [
        LogRecord("r", 1, b"", ev.PRIORITY_NORMAL),
        LogRecord("r", 2, event.SerializeToString(), whisper.LOG_PRIORITY),  # bob's
        LogRecord("r", 3, b"", 4),  # a checkpoint
        LogRecord("r", 4, b"", 121),  # a mark a newer build might write
        LogRecord("r", 5, b"\xff\xff", whisper.LOG_PRIORITY),  # a marked record that does not parse
    ]
    assert [r.position for r in whisper.readable(records, viewer, "owner", ())] == [1]


def test_chat_w_command_builds_whispers_and_the_view_shows_them_apart() -> None:
    view = RoomView()
    to_one = chat_commands.parse("/w alice don't forget your prize", view)
    assert to_one.whisper.recipient_user_id == "alice" and to_one.whisper.text == "don't forget your prize"
    to_staff = chat_commands.parse("/w staff my order never came", view)
    assert to_staff.whisper.to_staff and not to_staff.whisper.recipient_user_id
    with pytest.raises(chat_commands.UsageError):
        chat_commands.parse("/w alice", view)
    event = ev.Event(sender=ev.Sender(user_id="host", display_name="Host"), payload=to_one)
    line = view.format(event)
    assert line is not None and "whisper" in line and "alice" in line and "don't forget" in line
    assert "/w USER|staff" in chat_commands.help_text(staff=False)
