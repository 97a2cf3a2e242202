"""room_service.proto, step 3: Send / SendResult, dedupe by client_msg_id, the
sender's own event, likes, and every refusal a send can get (errors.proto)."""

from __future__ import annotations

import contextlib
import time

from google.protobuf import duration_pb2, timestamp_pb2

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.conformance.protocol.conftest import BLOCKED_WORD, Spawn, World, code, comment, new_id, reason
from tests.wire_client import Admin, RawStream, end_status, error_info, retry_delay_s


async def send(stream: RawStream, room_id: str, msg_id: str, payload: event_pb2.Payload) -> rs.SendResult:
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=payload)))
    return await stream.send_result(msg_id)


async def test_an_ok_send_is_durable_and_its_event_reaches_the_room_with_the_same_ids(world: World) -> None:
    user = new_id("ann")
    room_id = await world.room()
    sender = await world.joined(room_id, user=user)
    reader = await world.joined(room_id)

    result = await send(sender, room_id, "m1", comment("这个多少钱？"))

    assert (result.room_id, result.client_msg_id, result.status.code) == (room_id, "m1", 0)
    assert result.cursor and result.event_id and not result.duplicate
    for stream in (reader, sender):  # the sender receives its own event too
        [event] = await stream.wait_events(room_id, 1, kind="comment")
        assert (event.cursor, event.event_id, event.client_msg_id) == (result.cursor, result.event_id, "m1")
        assert (event.sender.user_id, event.sender.role) == (user, event_pb2.ROLE_VIEWER)
        assert event.room_id == room_id and event.priority == event_pb2.PRIORITY_NORMAL
        assert abs(event.publish_time.seconds - time.time()) < 60
    history = await world.admin.all_events(room_id, kind="comment")
    assert [e.event_id for e in history] == [result.event_id]


async def test_a_retried_client_msg_id_is_appended_once_and_answered_with_the_first_cursor(world: World) -> None:
    room_id = await world.room()
    sender = await world.joined(room_id)
    first = await send(sender, room_id, "same", comment("once"))

    retry = await send(sender, room_id, "same", comment("once"))

    assert retry.status.code == 0 and retry.duplicate
    assert (retry.cursor, retry.event_id) == (first.cursor, first.event_id)
    assert [e.event_id for e in await world.admin.all_events(room_id, kind="comment")] == [first.event_id]


async def test_a_like_is_counted_without_a_cursor_and_shows_up_in_a_like_burst(world: World) -> None:
    room_id = await world.room()
    viewer = await world.joined(room_id)

    result = await send(viewer, room_id, "tap", event_pb2.Payload(like=event_pb2.Like(count=3)))

    assert result.status.code == 0
    assert (result.cursor, result.event_id) == ("", "")
    bursts = await viewer.wait_events(room_id, 1, kind="like_burst")
    assert bursts[0].payload.like_burst.delta >= 3 and bursts[0].payload.like_burst.total >= 3
    assert viewer.events(room_id, kind="like") == []  # never stored one by one


async def test_malformed_sends_are_refused_invalid_argument(world: World) -> None:
    room_id = await world.room()
    stream = await world.joined(room_id)
    cases = [
        ("", comment("no id")),
        ("x" * 65, comment("id too long")),
        ("no-payload", event_pb2.Payload()),
        ("like-0", event_pb2.Payload(like=event_pb2.Like(count=0))),
    ]
    for msg_id, payload in cases:
        result = await send(stream, room_id, msg_id, payload)
        assert (result.status.code, reason(result.status)) == (code("INVALID_ARGUMENT"), "INVALID_FIELD"), msg_id
        assert not result.cursor
    too_long = await send(stream, room_id, "long", comment("x" * 10_000))
    assert too_long.status.code == code("INVALID_ARGUMENT")  # reason: see Comment.text


async def test_blocked_words_are_refused_text_blocked(world: World) -> None:
    room_id = await world.room()
    stream = await world.joined(room_id)
    result = await send(stream, room_id, "rude", comment(f"buy {BLOCKED_WORD.upper()} now"))
    assert (result.status.code, reason(result.status)) == (code("INVALID_ARGUMENT"), "TEXT_BLOCKED")


async def test_a_role_may_only_post_its_types(world: World) -> None:
    room_id = await world.room(owner="the-host")
    viewer = await world.joined(room_id)
    for msg_id, payload in (
        ("ann", event_pb2.Payload(announcement=event_pb2.Announcement(text="hear ye"))),
        ("ban", event_pb2.Payload(user_banned=event_pb2.UserBanned(user_id="someone"))),
    ):
        result = await send(viewer, room_id, msg_id, payload)
        assert (result.status.code, reason(result.status)) == (code("PERMISSION_DENIED"), "ROLE_FORBIDDEN")
    host = await world.joined(room_id, role="host", user="the-host")  # the room's owner
    ok = await send(host, room_id, "host-ann", event_pb2.Payload(announcement=event_pb2.Announcement(text="hi")))
    assert ok.status.code == 0


async def test_sends_beyond_the_rate_limit_are_refused_with_retry_info(world: World) -> None:
    room_id = await world.room()
    stream = world.raw()
    welcome = await stream.hello(world.token(new_id("fast")))
    await stream.join(room_id)
    count = welcome.limits.send_burst + 10
    for n in range(count):
        await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=f"r{n}", payload=comment("x"))))

    results = [await stream.send_result(f"r{n}") for n in range(count)]  # exactly one answer per send

    limited = [r for r in results if r.status.code != 0]
    assert limited
    for result in limited:
        assert (result.status.code, reason(result.status)) == (code("RESOURCE_EXHAUSTED"), "RATE_LIMITED")
        assert retry_delay_s(result.status)


async def test_a_stream_that_ignores_the_rate_limit_is_ended(spawn: Spawn) -> None:
    """ "A flood far above the rate limit" ends the stream: refusals in a row, so on a
    server whose budget does not refill during the test, one frame at a time (a client
    that writes after the end sees only its own failed write, not the server's status)."""
    node = spawn({"BARRAGE_SENDS_PER_SECOND": "0.001"})
    admin = Admin(node.target, node.token("ops", role="service"))
    stream = RawStream(node.target)
    try:
        await admin.create_room("flooded")
        await stream.hello(node.token("flooder"))
        await stream.join("flooded")
        for n in range(1000):
            if stream.done:
                break
            send = rs.Send(room_id="flooded", client_msg_id=f"f{n}", payload=comment("x"))
            await stream.send(rs.ConnectRequest(send=send))
            with contextlib.suppress(AssertionError):  # raised when the stream ended instead
                await stream.send_result(f"f{n}")
        ended = await stream.wait_end()
    finally:
        await stream.close()
        await admin.close()
    assert ended is not None
    status = end_status(ended)
    # Refused sends in a row (RATE_LIMITED), or frames past the frame budget first (STREAM_OVERLOADED).
    assert status.code == code("RESOURCE_EXHAUSTED")
    assert reason(status) in ("RATE_LIMITED", "STREAM_OVERLOADED")


async def test_a_muted_user_is_refused_muted_until_a_time(world: World) -> None:
    user = new_id("loud")
    room_id = await world.room()
    viewer = await world.joined(room_id, user=user)
    until = timestamp_pb2.Timestamp(seconds=int(time.time()) + 600)
    muted = event_pb2.UserMuted(user_id=user, until=until, reason="spam")
    await world.admin.publish(room_id, "mute", event_pb2.Payload(user_muted=muted))
    await viewer.wait_events(room_id, 1, kind="user_muted")

    result = await send(viewer, room_id, "hush", comment("let me talk"))

    assert (result.status.code, reason(result.status)) == (code("PERMISSION_DENIED"), "MUTED")
    until_ms = int(error_info(result.status).metadata["until_ms"])
    assert abs(until_ms - until.seconds * 1000) < 1000


async def test_a_banned_user_is_removed_and_refused_banned(world: World) -> None:
    user = new_id("troll")
    room_id = await world.room()
    viewer = await world.joined(room_id, user=user)
    banned = event_pb2.UserBanned(user_id=user, reason="abuse")
    await world.admin.publish(room_id, "ban", event_pb2.Payload(user_banned=banned))
    await viewer.wait_events(room_id, 1, kind="user_banned")

    result = await send(viewer, room_id, "still", comment("let me in"))
    assert (result.status.code, reason(result.status)) == (code("PERMISSION_DENIED"), "BANNED")
    other = await world.stream(user=user)
    rejoin = await other.join(room_id)
    assert (rejoin.status.code, reason(rejoin.status)) == (code("PERMISSION_DENIED"), "BANNED")


async def test_slow_mode_refuses_quick_comments_with_retry_info(world: World) -> None:
    room_id = await world.room()
    viewer = await world.joined(room_id)
    slow = event_pb2.SlowMode(min_interval=duration_pb2.Duration(seconds=30))
    await world.admin.publish(room_id, "slow", event_pb2.Payload(slow_mode=slow))
    await viewer.wait_events(room_id, 1, kind="slow_mode")

    assert (await send(viewer, room_id, "s1", comment("first"))).status.code == 0
    second = await send(viewer, room_id, "s2", comment("second"))

    assert (second.status.code, reason(second.status)) == (code("RESOURCE_EXHAUSTED"), "SLOW_MODE")
    assert retry_delay_s(second.status)


async def test_votes_need_an_open_poll_and_count_once(world: World) -> None:
    room_id = await world.room()
    viewer = await world.joined(room_id)
    end = timestamp_pb2.Timestamp(seconds=int(time.time()) + 600)
    poll = event_pb2.PollStarted(poll_id="p1", question="Red or blue?", options=["red", "blue"], end_time=end)
    await world.admin.publish(room_id, "poll", event_pb2.Payload(poll_started=poll))
    await viewer.wait_events(room_id, 1, kind="poll_started")

    def vote(poll_id: str) -> event_pb2.Payload:
        return event_pb2.Payload(poll_vote=event_pb2.PollVote(poll_id=poll_id, option=1))

    nowhere = await send(viewer, room_id, "v0", vote("no-such-poll"))
    assert (nowhere.status.code, reason(nowhere.status)) == (code("FAILED_PRECONDITION"), "NOT_OPEN")
    assert (await send(viewer, room_id, "v1", vote("p1"))).status.code == 0
    twice = await send(viewer, room_id, "v2", vote("p1"))
    assert (twice.status.code, reason(twice.status)) == (code("ALREADY_EXISTS"), "ALREADY_DONE")


async def test_results_and_own_events_match_by_client_msg_id_whatever_their_order(world: World) -> None:
    """The sender's own event may arrive before its SendResult: both carry client_msg_id."""
    room_id = await world.room()
    sender = await world.joined(room_id)
    ids = [f"o{n}" for n in range(8)]
    for msg_id in ids:
        await sender.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=comment("x"))))
    results = {msg_id: await sender.send_result(msg_id) for msg_id in ids}
    events = {e.client_msg_id: e for e in await sender.wait_events(room_id, len(ids), kind="comment")}
    assert set(events) == set(ids)
    for msg_id in ids:
        assert (events[msg_id].cursor, events[msg_id].event_id) == (results[msg_id].cursor, results[msg_id].event_id)
