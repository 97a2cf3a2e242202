"""Live-commerce interactions, permissions and moderation, over real gRPC."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, error_info, retry_delay_s

OK = 0
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


def at(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(int((time.time() + seconds_from_now) * 1000))
    return ts


def cny(amount_minor: int) -> ev.Money:
    return ev.Money(amount_minor=amount_minor, currency="CNY")


PRODUCT = ev.Product(product_id="lipstick-01", title="Velvet lipstick", price=cny(9900), stock=500)

# One valid payload of every kind a client may post.
SAMPLES: dict[str, ev.Payload] = {
    "comment": ev.Payload(comment=ev.Comment(text="nice")),
    "like": ev.Payload(like=ev.Like(count=3)),
    "announcement": ev.Payload(announcement=ev.Announcement(text="welcome")),
    "gift": ev.Payload(gift=ev.Gift(gift_id="rose", count=1, unit_value=cny(100), giver=ev.Sender(user_id="v1"))),
    "purchase": ev.Payload(
        purchase=ev.Purchase(buyer=ev.Sender(user_id="v1", display_name="Ann"), product_id="lipstick-01", quantity=1)
    ),
    "product_pinned": ev.Payload(product_pinned=ev.ProductPinned(product=PRODUCT)),
    "product_unpinned": ev.Payload(product_unpinned=ev.ProductUnpinned(product_id="lipstick-01")),
    "product_updated": ev.Payload(product_updated=ev.ProductUpdated(product_id="lipstick-01", stock=10)),
    "flash_sale_started": ev.Payload(
        flash_sale_started=ev.FlashSaleStarted(
            sale_id="s1", product=PRODUCT, stock=50, limit_per_user=2, start_time=at(0), end_time=at(600)
        )
    ),
    "flash_sale_stock": ev.Payload(flash_sale_stock=ev.FlashSaleStock(sale_id="s1", stock=40)),
    "flash_sale_ended": ev.Payload(flash_sale_ended=ev.FlashSaleEnded(sale_id="s1")),
    "lottery_started": ev.Payload(
        lottery_started=ev.LotteryStarted(lottery_id="l1", prize="a phone", winners_count=1, end_time=at(600))
    ),
    "poll_started": ev.Payload(
        poll_started=ev.PollStarted(poll_id="p1", question="Which colour?", options=["red", "pink"], end_time=at(600))
    ),
    "user_muted": ev.Payload(user_muted=ev.UserMuted(user_id="someone", until=at(60))),
    "user_banned": ev.Payload(user_banned=ev.UserBanned(user_id="someone-else")),
    "message_deleted": ev.Payload(message_deleted=ev.MessageDeleted(event_id="abc")),
    "slow_mode": ev.Payload(slow_mode=ev.SlowMode(min_interval=duration_pb2.Duration(seconds=0))),
    "catalogue_registered": ev.Payload(
        catalogue_registered=ev.CatalogueRegistered(
            products=[
                ev.CatalogueProduct(
                    product_id="lipstick-01", names=["丝绒口红", "Velvet Lipstick"], categories=["口红"]
                )
            ]
        )
    ),
}

# Who may post what, by token role, in a room the host owns (docs/commerce.md; the full
# matrix of roles and relations to the room is tests/test_authority.py).
ALLOWED: dict[str, set[str]] = {
    "comment": {"viewer", "host", "moderator", "service", "bot"},
    "like": {"viewer", "host", "moderator", "bot"},
    "announcement": {"host", "service"},
    "gift": {"service"},
    "purchase": {"service"},
    "product_pinned": {"host", "service"},
    "product_unpinned": {"host", "service"},
    "product_updated": {"host", "service"},
    "flash_sale_started": {"host", "service"},
    "flash_sale_stock": {"host", "service"},
    "flash_sale_ended": {"host", "service"},
    "lottery_started": {"host", "service"},
    "poll_started": {"host", "service"},
    "user_muted": {"host", "moderator", "service"},
    "user_banned": {"host", "moderator", "service"},
    "message_deleted": {"host", "moderator", "service"},
    "slow_mode": {"host", "moderator", "service"},
    "catalogue_registered": {"host", "service"},
}
ROLES = ("viewer", "host", "moderator", "service", "bot")


class Room:
    """A room with streams for several users; tokens from the server under test."""

    def __init__(self, server: ServerProcess, room_id: str) -> None:
        self.server = server
        self.room_id = room_id
        self.streams: list[RawStream] = []
        self._ids = 0

    async def join(self, user: str, role: str = "viewer") -> RawStream:
        stream = RawStream(self.server.target)
        self.streams.append(stream)
        # A bot acts only in the rooms its token lists.
        rooms = [self.room_id] if role == "bot" else None
        await stream.hello(self.server.token(user, role=role, name=user.title(), rooms=rooms))
        result = await stream.join(self.room_id)
        assert result.status.code == OK, result.status
        return stream

    async def post(self, stream: RawStream, payload: ev.Payload) -> rs.SendResult:
        self._ids += 1
        msg_id = f"m{self._ids}"
        await stream.send(rs.ConnectRequest(send=rs.Send(room_id=self.room_id, client_msg_id=msg_id, payload=payload)))
        return await stream.send_result(msg_id)

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()


@pytest.fixture
async def room(server: ServerProcess, room_id: str) -> AsyncIterator[Room]:
    admin = Admin(server.target, server.token("ops", role="service"))
    # Authority is the room's: "the-host" owns it (tests/test_authority.py has the matrix).
    await admin.create_room(room_id, "Spring sale", host_user_id="the-host")
    await admin.close()
    opened = Room(server, room_id)
    yield opened
    await opened.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_every_role_is_refused_what_it_may_not_post(room: Room) -> None:
    streams = {role: await room.join("the-host" if role == "host" else f"{role}-user", role) for role in ROLES}
    for kind, payload in SAMPLES.items():
        for role in ROLES:
            result = await room.post(streams[role], payload)
            if role in ALLOWED[kind]:
                assert result.status.code == OK, (kind, role, result.status)
            else:
                assert result.status.code == PERMISSION_DENIED, (kind, role, result.status)
                info = error_info(result.status)
                assert info.reason == "ROLE_FORBIDDEN"
                assert info.metadata["action"] == f"post:{kind}"


async def test_a_viewer_attempting_every_host_action_on_the_admin_api_is_refused(
    server: ServerProcess, room: Room
) -> None:
    viewer = Admin(server.target, server.token("mallory", role="viewer"))
    try:
        calls = [viewer.create_room("mine"), viewer.close_room(room.room_id), viewer.history(room.room_id)]
        host_only = {kind: payload for kind, payload in SAMPLES.items() if "viewer" not in ALLOWED[kind]}
        calls += [viewer.publish(room.room_id, f"x{kind}", payload) for kind, payload in host_only.items()]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await viewer.close()


async def test_questions_are_marked(room: Room) -> None:
    viewer = await room.join("ann")
    texts = ["这个多少钱", "有红色的吗", "how much is it", "What size?", "好看！", "love it", "真的？", "怎么买"]
    for text in texts:
        assert (await room.post(viewer, ev.Payload(comment=ev.Comment(text=text)))).status.code == OK
    events = await viewer.wait_events(room.room_id, len(texts), kind="comment")
    assert {e.payload.comment.text: e.payload.comment.question for e in events} == {
        "这个多少钱": True,
        "有红色的吗": True,
        "how much is it": True,
        "What size?": True,
        "好看！": False,
        "love it": False,
        "真的？": True,
        "怎么买": True,
    }


async def test_likes_are_aggregated_into_a_few_bursts_with_a_running_total(room: Room) -> None:
    tappers = [await room.join(f"tapper-{i}") for i in range(5)]
    for _ in range(4):
        for tapper in tappers:
            assert (await room.post(tapper, ev.Payload(like=ev.Like(count=10)))).status.code == OK
    watcher = tappers[0]

    async def total_reached() -> bool:
        bursts = watcher.events(room.room_id, "like_burst")
        return bool(bursts) and bursts[-1].payload.like_burst.total == 200

    await eventually(total_reached)
    bursts = watcher.events(room.room_id, "like_burst")
    assert len(bursts) < 20  # not one event per tap
    assert sum(b.payload.like_burst.delta for b in bursts) == 200
    assert all(b.priority == ev.PRIORITY_EPHEMERAL for b in bursts)


async def test_big_gifts_are_critical_small_ones_normal(room: Room) -> None:
    service = await room.join("gift-service", "service")
    small = ev.Gift(gift_id="rose", count=1, unit_value=cny(100), giver=ev.Sender(user_id="ann"))
    big = ev.Gift(gift_id="rocket", count=2, unit_value=cny(50000), giver=ev.Sender(user_id="bob"))
    await room.post(service, ev.Payload(gift=small))
    await room.post(service, ev.Payload(gift=big))
    gifts = await service.wait_events(room.room_id, 2, kind="gift")
    assert [(g.payload.gift.gift_id, g.priority) for g in gifts] == [
        ("rose", ev.PRIORITY_NORMAL),
        ("rocket", ev.PRIORITY_CRITICAL),
    ]


async def test_a_late_joiner_sees_the_room_as_it_is(room: Room) -> None:
    host = await room.join("the-host", "host")
    fan = await room.join("fan")
    for payload in (
        SAMPLES["product_pinned"],
        ev.Payload(product_updated=ev.ProductUpdated(product_id="lipstick-01", price=cny(7900), stock=321)),
        SAMPLES["flash_sale_started"],
        ev.Payload(flash_sale_stock=ev.FlashSaleStock(sale_id="s1", stock=12)),
        SAMPLES["poll_started"],
        SAMPLES["lottery_started"],
    ):
        assert (await room.post(host, payload)).status.code == OK
    assert (await room.post(fan, ev.Payload(poll_vote=ev.PollVote(poll_id="p1", option=1)))).status.code == OK
    assert (await room.post(fan, ev.Payload(like=ev.Like(count=7)))).status.code == OK
    await fan.wait_events(room.room_id, 1, kind="like_burst")
    late = RawStream(room.server.target)
    room.streams.append(late)
    await late.hello(room.server.token("late"))
    snapshot = (await late.join(room.room_id)).snapshot
    assert snapshot.pinned_product.product_id == "lipstick-01"
    assert (snapshot.pinned_product.price.amount_minor, snapshot.pinned_product.stock) == (7900, 321)
    assert (snapshot.flash_sale.sale_id, snapshot.flash_sale.stock) == ("s1", 12)
    assert snapshot.poll.poll_id == "p1"
    assert list(snapshot.poll_tally.counts) == [0, 1]
    assert snapshot.lottery.lottery_id == "l1"
    assert snapshot.lottery.commitment
    assert snapshot.like_total == 7
    assert snapshot.viewer_count >= 1
    assert snapshot.head_cursor


async def test_flash_sale_ends_when_sold_out(room: Room) -> None:
    service = await room.join("order-service", "service")
    await room.post(service, SAMPLES["flash_sale_started"])
    await room.post(service, ev.Payload(flash_sale_stock=ev.FlashSaleStock(sale_id="s1", stock=0)))
    (ended,) = await service.wait_events(room.room_id, 1, kind="flash_sale_ended")
    assert ended.payload.flash_sale_ended.sold_out
    assert ended.payload.flash_sale_ended.sold == 50
    assert ended.priority == ev.PRIORITY_CRITICAL


async def test_a_viewer_cannot_forge_a_purchase_notice(room: Room) -> None:
    viewer = await room.join("forger")
    result = await room.post(viewer, SAMPLES["purchase"])
    assert result.status.code == PERMISSION_DENIED
    service = await room.join("order-service", "service")
    assert (await room.post(service, SAMPLES["purchase"])).status.code == OK


def recompute_winners(seed_hex: str, entrants: list[str], winners_count: int) -> list[str]:
    """The algorithm as event.proto documents it, written independently of the server."""
    seed = bytes.fromhex(seed_hex)
    pool = list(entrants)
    n = len(pool)
    for i in range(min(winners_count, n)):
        j = i + int.from_bytes(hashlib.sha256(seed + str(i).encode()).digest(), "big") % (n - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[: min(winners_count, n)]


async def test_a_lottery_is_provably_fair_one_entry_per_user_muted_excluded(room: Room) -> None:
    host = await room.join("the-host", "host")
    lottery = ev.LotteryStarted(lottery_id="l-1", prize="a phone", winners_count=3, end_time=at(2.5), keyword="抽奖")
    assert (await room.post(host, ev.Payload(lottery_started=lottery))).status.code == OK
    (started,) = await host.wait_events(room.room_id, 1, kind="lottery_started")
    commitment = started.payload.lottery_started.commitment
    viewers = [await room.join(f"fan-{i}") for i in range(8)]
    enter = ev.Payload(lottery_entry=ev.LotteryEntry(lottery_id="l-1"))
    for viewer in viewers[:4]:
        assert (await room.post(viewer, enter)).status.code == OK
    for viewer in viewers[4:]:
        assert (await room.post(viewer, ev.Payload(comment=ev.Comment(text="我要抽奖!")))).status.code == OK
    again = await room.post(viewers[0], enter)
    assert again.status.code == ALREADY_EXISTS
    assert error_info(again.status).reason == "ALREADY_DONE"
    mute = ev.Payload(user_muted=ev.UserMuted(user_id="fan-7", until=at(60)))
    assert (await room.post(host, mute)).status.code == OK
    (drawn,) = await host.wait_events(room.room_id, 1, timeout=15, kind="lottery_drawn")
    result = drawn.payload.lottery_drawn
    assert hashlib.sha256(bytes.fromhex(result.seed)).hexdigest() == commitment
    assert list(result.entrant_user_ids) == sorted(f"fan-{i}" for i in range(7))
    assert list(result.winner_user_ids) == recompute_winners(result.seed, list(result.entrant_user_ids), 3)
    assert drawn.priority == ev.PRIORITY_CRITICAL


async def test_a_poll_counts_one_vote_per_user_and_ends_with_the_final_result(room: Room) -> None:
    host = await room.join("the-host", "host")
    poll = ev.PollStarted(poll_id="p-9", question="Which colour?", options=["red", "pink", "nude"], end_time=at(2.5))
    assert (await room.post(host, ev.Payload(poll_started=poll))).status.code == OK
    voters = [await room.join(f"voter-{i}") for i in range(5)]
    for i, voter in enumerate(voters):
        vote = ev.Payload(poll_vote=ev.PollVote(poll_id="p-9", option=i % 2))
        assert (await room.post(voter, vote)).status.code == OK
    twice = await room.post(voters[0], ev.Payload(poll_vote=ev.PollVote(poll_id="p-9", option=2)))
    assert twice.status.code == ALREADY_EXISTS
    bad_option = await room.post(voters[1], ev.Payload(poll_vote=ev.PollVote(poll_id="p-9", option=7)))
    assert bad_option.status.code in (INVALID_ARGUMENT, ALREADY_EXISTS)
    (ended,) = await host.wait_events(room.room_id, 1, timeout=15, kind="poll_ended")
    assert list(ended.payload.poll_ended.counts) == [3, 2, 0]
    assert ended.priority == ev.PRIORITY_CRITICAL
    tallies = host.events(room.room_id, "poll_tally")
    assert tallies
    assert all(t.priority == ev.PRIORITY_EPHEMERAL for t in tallies)


async def test_moderation_mute_ban_delete_and_slow_mode(room: Room) -> None:
    moderator = await room.join("mod", "moderator")
    troll = await room.join("troll")
    fan = await room.join("fan")
    said = await room.post(troll, ev.Payload(comment=ev.Comment(text="buy fake stuff at ...")))
    delete = ev.Payload(message_deleted=ev.MessageDeleted(event_id=said.event_id, reason="spam"))
    assert (await room.post(moderator, delete)).status.code == OK
    (tombstone,) = await fan.wait_events(room.room_id, 1, kind="message_deleted")
    assert tombstone.payload.message_deleted.event_id == said.event_id

    await room.post(moderator, ev.Payload(user_muted=ev.UserMuted(user_id="troll", until=at(60))))
    await fan.wait_events(room.room_id, 1, kind="user_muted")
    muted = await room.post(troll, ev.Payload(comment=ev.Comment(text="let me talk")))
    assert muted.status.code == PERMISSION_DENIED
    assert error_info(muted.status).reason == "MUTED"

    await room.post(moderator, ev.Payload(user_banned=ev.UserBanned(user_id="troll", reason="spam")))
    (banned,) = await troll.wait_events(room.room_id, 1, kind="user_banned")
    assert banned.payload.user_banned.user_id == "troll"

    async def removed() -> bool:
        result = await room.post(troll, ev.Payload(like=ev.Like(count=1)))
        return bool(result.status.code != OK)

    await eventually(removed)
    rejoin = RawStream(room.server.target)
    room.streams.append(rejoin)
    await rejoin.hello(room.server.token("troll"))
    refused = await rejoin.join(room.room_id)
    assert refused.status.code == PERMISSION_DENIED
    assert error_info(refused.status).reason == "BANNED"

    slow = ev.Payload(slow_mode=ev.SlowMode(min_interval=duration_pb2.Duration(seconds=30)))
    await room.post(moderator, slow)
    await fan.wait_events(room.room_id, 1, kind="slow_mode")
    assert (await room.post(fan, ev.Payload(comment=ev.Comment(text="first")))).status.code == OK
    second = await room.post(fan, ev.Payload(comment=ev.Comment(text="second")))
    assert second.status.code == RESOURCE_EXHAUSTED
    assert error_info(second.status).reason == "SLOW_MODE"
    delay = retry_delay_s(second.status)
    assert delay is not None and 25 < delay <= 30
    assert (await room.post(moderator, ev.Payload(comment=ev.Comment(text="mods are exempt")))).status.code == OK


async def test_a_flood_from_one_user_across_streams_is_limited(room: Room) -> None:
    streams = [await room.join("flooder") for _ in range(3)]
    results = []
    for n in range(30):
        for stream in streams:
            payload = ev.Payload(comment=ev.Comment(text=f"spam {n}")) if n % 2 else ev.Payload(like=ev.Like(count=5))
            results.append(await room.post(stream, payload))
    accepted = [r for r in results if r.status.code == OK]
    limited = [r for r in results if r.status.code == RESOURCE_EXHAUSTED]
    assert len(accepted) <= 40  # the user's budget, not three streams' worth (60)
    assert limited
    assert all(retry_delay_s(r.status) for r in limited)


async def test_a_word_filter_is_not_fooled_by_case_or_full_width(tmp_path: Path) -> None:
    words = tmp_path / "blocked.txt"
    words.write_text("# blocked\nspam\n加微信\n", encoding="utf-8")
    server = ServerProcess(tmp_path / "data", args=("--word-filter", str(words)))
    server.start()
    room = Room(server, "filtered")
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        await admin.create_room("filtered")
        viewer = await room.join("ann")
        for text in ("SPAM here", "ｓｐａｍ", "S p A m", "加 微 信 123"):
            result = await room.post(viewer, ev.Payload(comment=ev.Comment(text=text)))
            assert result.status.code == INVALID_ARGUMENT, text
            assert error_info(result.status).reason == "TEXT_BLOCKED"
        assert (await room.post(viewer, ev.Payload(comment=ev.Comment(text="special offer")))).status.code == OK
    finally:
        await room.close()
        await admin.close()
        server.stop()


async def test_a_hot_room_samples_normal_events_per_viewer_but_delivers_every_critical_one(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={
            "BARRAGE_VIEWER_BUDGET_PER_S": "20",
            "BARRAGE_SENDS_PER_SECOND": "1000",
            "BARRAGE_SEND_BURST": "1000",
        },
    )
    server.start()
    room = Room(server, "hot")
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        await admin.create_room("hot", host_user_id="the-host")
        viewers = [await room.join(f"viewer-{i}") for i in range(4)]
        host = await room.join("the-host", "host")
        sender = await room.join("shouter", "service")
        started = time.monotonic()
        for n in range(400):
            payload = ev.Payload(comment=ev.Comment(text=f"comment {n}"))
            await sender.send(rs.ConnectRequest(send=rs.Send(room_id="hot", client_msg_id=f"c{n}", payload=payload)))
            if n % 40 == 0:
                await room.post(host, ev.Payload(announcement=ev.Announcement(text=f"deal {n}")))
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
        await host.wait_events("hot", 400, timeout=30, kind="comment")
        await asyncio.sleep(0.5)
        for viewer in viewers:
            await viewer.wait_events("hot", 10, timeout=30, kind="announcement")
            comments = len(viewer.events("hot", "comment"))
            assert comments + viewer.omitted("hot") == 400
            assert viewer.omitted("hot") > 0
            assert comments <= 20 * (elapsed + 1.5) + 20
        assert len(host.events("hot", "comment")) == 400  # staff see everything
        assert host.omitted("hot") == 0
    finally:
        await room.close()
        await admin.close()
        server.stop()


async def test_the_viewer_count_reaches_everyone_within_five_seconds(room: Room) -> None:
    viewers = [await room.join(f"viewer-{i}") for i in range(3)]

    async def counted() -> bool:
        counts = viewers[0].events(room.room_id, "viewer_count")
        return bool(counts) and counts[-1].payload.viewer_count.viewers == 3

    await eventually(counted, timeout=6)


def test_a_checkpoint_holds_everything_the_fold_learnt() -> None:
    from barrage.server.commerce.state import RoomState

    state = RoomState("r")
    events = [
        ev.Payload(product_pinned=ev.ProductPinned(product=PRODUCT)),
        SAMPLES["flash_sale_started"],
        ev.Payload(flash_sale_stock=ev.FlashSaleStock(sale_id="s1", stock=7)),
        SAMPLES["poll_started"],
        SAMPLES["lottery_started"],
        ev.Payload(like_burst=ev.LikeBurst(delta=5, total=5)),
        ev.Payload(user_muted=ev.UserMuted(user_id="m", until=at(600))),
        ev.Payload(user_banned=ev.UserBanned(user_id="b")),
        ev.Payload(slow_mode=ev.SlowMode(min_interval=duration_pb2.Duration(seconds=3))),
        ev.Payload(viewer_count=ev.ViewerCount(viewers=4, node_id="n1", node_viewers=4)),
    ]
    for position, payload in enumerate(events):
        state.fold(position, ev.Event(payload=payload, sender=ev.Sender(user_id="host"), publish_time=at(0)))
    state.fold(
        20, ev.Event(payload=ev.Payload(poll_vote=ev.PollVote(poll_id="p1", option=1)), sender=ev.Sender(user_id="v"))
    )
    state.fold(
        21, ev.Event(payload=ev.Payload(lottery_entry=ev.LotteryEntry(lottery_id="l1")), sender=ev.Sender(user_id="v"))
    )
    restored = RoomState.from_checkpoint("r", state.checkpoint("epoch-1"))
    assert restored.position == 21
    assert (restored.pinned, restored.flash_sale, restored.flash_stock) == (state.pinned, state.flash_sale, 7)
    assert {k: (p.counts, p.voters) for k, p in restored.polls.items()} == {"p1": ([0, 1], {"v"})}
    assert {k: lot.entrants for k, lot in restored.lotteries.items()} == {"l1": {"v"}}
    assert (restored.like_total, restored.banned, restored.slow_mode_ms) == (5, {"b"}, 3000)
    assert restored.muted_until_ms == state.muted_until_ms
    assert restored.viewers_by_node == state.viewers_by_node


async def test_a_restarted_node_rebuilds_room_state_from_a_checkpoint(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"BARRAGE_CHECKPOINT_EVERY": "20"})
    server.start()
    room = Room(server, "kept")
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        await admin.create_room("kept", host_user_id="the-host")
        host = await room.join("the-host", "host")
        voter = await room.join("voter")
        await room.post(host, SAMPLES["product_pinned"])
        await room.post(host, SAMPLES["poll_started"])
        await room.post(voter, ev.Payload(poll_vote=ev.PollVote(poll_id="p1", option=0)))
        await room.post(host, ev.Payload(user_banned=ev.UserBanned(user_id="troll")))
        for n in range(30):
            await room.post(host, ev.Payload(comment=ev.Comment(text=f"pitch {n}")))
        await asyncio.sleep(1.0)  # the ticker writes a checkpoint within a tick or two
        await room.close()
        server.kill()
        server.start()
        room = Room(server, "kept")
        late = RawStream(server.target)
        room.streams.append(late)
        await late.hello(server.token("late"))
        snapshot = (await late.join("kept")).snapshot
        assert "state rebuilt from checkpoint" in server.logs()
        assert snapshot.pinned_product.product_id == PRODUCT.product_id
        assert list(snapshot.poll_tally.counts) == [1, 0]
        again = await room.post(late, ev.Payload(poll_vote=ev.PollVote(poll_id="p1", option=1)))
        assert again.status.code == OK
        voter = await room.join("voter")
        twice = await room.post(voter, ev.Payload(poll_vote=ev.PollVote(poll_id="p1", option=1)))
        assert twice.status.code == ALREADY_EXISTS
        troll = RawStream(server.target)
        room.streams.append(troll)
        await troll.hello(server.token("troll"))
        assert error_info((await troll.join("kept")).status).reason == "BANNED"
    finally:
        await room.close()
        await admin.close()
        server.stop()
