"""`barrage chat` as a person uses it: what each event looks like, its commands, removal,
and the CLI's first-minute failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from barrage.clients import chat_commands
from barrage.clients.admin import AdminClient
from barrage.clients.chat_view import RoomView
from barrage.clients.sdk import Client, SubscriptionEnded
from barrage.v1 import event_pb2
from tests.server_process import ServerProcess, free_port
from tests.test_cli import admin, barrage  # noqa: F401 - the fixture is used by name

ALICE = event_pb2.Sender(user_id="u-alice", display_name="Alice", role=event_pb2.ROLE_VIEWER)
HOST = event_pb2.Sender(user_id="u-host", display_name="Mia", role=event_pb2.ROLE_HOST)


def _event(sender: event_pb2.Sender, **payload: object) -> event_pb2.Event:
    event = event_pb2.Event(room_id="r", sender=sender, payload=event_pb2.Payload(**payload))  # type: ignore[arg-type]
    event.publish_time.FromMilliseconds(1_700_000_000_000)
    return event


def _cny(amount_minor: int) -> event_pb2.Money:
    return event_pb2.Money(amount_minor=amount_minor, currency="CNY")


def test_commerce_events_read_like_a_live_room_app() -> None:
    view = RoomView()
    gift = event_pb2.Gift(gift_name="Rocket", count=2, unit_value=_cny(1000), giver=ALICE)
    assert "Alice sent 2 × Rocket (¥20)" in (view.format(_event(ALICE, gift=gift)) or "")

    product = event_pb2.Product(product_id="p1", title="Silk scarf", price=_cny(12_900), stock=40)
    pinned = view.format(_event(HOST, product_pinned=event_pb2.ProductPinned(product=product))) or ""
    assert "Silk scarf" in pinned and "¥129" in pinned and "40 left" in pinned

    poll = event_pb2.PollStarted(poll_id="q", question="Which colour?", options=["Red", "Blue"])
    assert "1) Red  2) Blue" in (view.format(_event(HOST, poll_started=poll)) or "")
    assert "Alice voted Blue" in (view.format(_event(ALICE, poll_vote=event_pb2.PollVote(poll_id="q", option=1))) or "")
    ended = view.format(_event(HOST, poll_ended=event_pb2.PollEnded(poll_id="q", counts=[3, 1]))) or ""
    red, blue = ended.splitlines()[1:]
    assert red.count("█") == 15 and red.endswith(" 3") and blue.count("█") == 5 and blue.endswith(" 1")

    lottery = event_pb2.LotteryStarted(lottery_id="l", prize="a lipstick", winners_count=1, keyword="666")
    assert '"666"' in (view.format(_event(HOST, lottery_started=lottery)) or "")
    drawn = event_pb2.LotteryDrawn(lottery_id="l", entrant_user_ids=["u-alice", "u-bob"], winner_user_ids=["u-alice"])
    assert "a lipstick drawn among 2: Alice" in (view.format(_event(HOST, lottery_drawn=drawn)) or "")


def test_likes_and_viewer_counts_update_the_status_line_not_the_scrollback() -> None:
    view = RoomView()
    assert view.format(_event(HOST, like_burst=event_pb2.LikeBurst(delta=5, total=1205))) is None
    assert view.format(_event(HOST, viewer_count=event_pb2.ViewerCount(viewers=87))) is None
    assert view.status() == "♥ 1,205   👤 87"


def test_commands_build_what_the_app_would_send_and_explain_mistakes() -> None:
    view = RoomView()
    assert chat_commands.parse("/like 3", view).like.count == 3
    with pytest.raises(chat_commands.UsageError, match="no poll is open"):
        chat_commands.parse("/vote 1", view)
    view.polls["q"] = event_pb2.PollStarted(poll_id="q", options=["Red", "Blue"])
    assert chat_commands.parse("/vote 2", view).poll_vote == event_pb2.PollVote(poll_id="q", option=1)
    with pytest.raises(chat_commands.UsageError, match="choose 1 to 2"):
        chat_commands.parse("/vote 3", view)
    pinned = chat_commands.parse("/pin p9 19.9 Red lipstick", view).product_pinned.product
    assert (pinned.product_id, pinned.title, pinned.price.amount_minor) == ("p9", "Red lipstick", 1990)
    with pytest.raises(chat_commands.UsageError, match="unknown command /dance"):
        chat_commands.parse("/dance", view)
    assert "/ban" not in chat_commands.help_text(staff=False) and "/vote" in chat_commands.help_text(staff=False)
    assert "/ban" in chat_commands.help_text(staff=True)


async def test_a_banned_viewer_is_told_and_its_subscription_ends(
    server: ServerProcess,
    room_id: str,
    admin: AdminClient,  # noqa: F811
) -> None:
    async with Client(server.target, server.token("troll", name="Troll")) as troll:
        room = await troll.join(room_id)
        ban = event_pb2.Payload(user_banned=event_pb2.UserBanned(user_id="troll", reason="spam"))
        await admin.publish(room_id, ban)
        ended = None
        async with asyncio.timeout(10):
            async for item in room:
                if isinstance(item, SubscriptionEnded):
                    ended = item
        assert ended is not None and ended.error is not None
        assert ended.error.reason == "BANNED" and "spam" in ended.error.message


def test_client_commands_say_at_once_when_nothing_answers() -> None:
    target = f"127.0.0.1:{free_port()}"
    for command in (("tail", "r"), ("chat", "r"), ("room", "get", "r")):
        done = barrage(*command, "--target", target)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            f"barrage {command[0]}: nothing answers at {target}: start a node with scripts/serve.sh "
            "(or barrage serve), or pass --target"
        ]


def test_serve_start_up_failures_are_one_line_and_create_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cases = [
        (("--listen", "127.0.0.1:notaport"), "bad listen address"),
        (("--log", "s3://bucket"), "unknown log URL"),
        (("--batch-interval-ms", "-1"), "bad value for --batch-interval-ms"),
    ]
    for args, expected in cases:
        log = () if "--log" in args else ("--log", f"embedded:{data}")
        done = barrage("serve", *log, *args)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not data.exists()


def test_serve_on_a_port_in_use_says_so(server: ServerProcess, tmp_path: object) -> None:
    from pathlib import Path

    data = Path(str(tmp_path)) / "other"
    done = barrage("serve", "--listen", server.target, "--log", f"embedded:{data}")
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"barrage serve: cannot listen on {server.target}: the port is in use (is a node already running?)"
    )
    assert not data.exists()
