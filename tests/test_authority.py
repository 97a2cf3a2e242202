"""Authority is the room's: every role against every action, in its own room and another.

Over real gRPC on loopback. The matrix is generated: every actor (a token role and its
relation to the room: owner, appointed moderator, host of another room, platform
moderator, service, bot given the room or not, plain viewer) x every action (each
postable payload kind on the stream and through PublishEvent, join, GetRoom,
ListEvents, CloseRoom, CreateRoom) x two rooms. The expected answer of each cell comes
from SPEC below, written from docs/commerce.md "Roles and permissions", not from
server/core/policy.py, so the two can disagree and fail.

Also here: the owner-protection reasons (TARGET_PROTECTED), forbidden-and-invalid
answered ROLE_FORBIDDEN, the admin API refusing viewers and sharing the user's rate
budget with the stream, moderators surviving a restart (embedded) and seen by a second
node (Kafka test broker).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import status_pb2

from barrage.server.commerce import checkpoint_pb2
from barrage.server.commerce.state import RoomState
from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import event_pb2 as ev
from barrage.v1 import insights_service_pb2 as ipb
from barrage.v1 import insights_service_pb2_grpc as insights_grpc
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import Cluster
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info

OK = 0
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]

# ---------------------------------------------------------------- the specification

# Standings a caller can have in a room (docs/commerce.md "Roles and permissions").
SERVICE, OWNER, MODERATOR, BOT, VIEWER, OUTSIDER = "service", "owner", "moderator", "bot", "viewer", "outsider"
EVERYONE = {SERVICE, OWNER, MODERATOR, BOT, VIEWER}
PARTICIPANTS = {OWNER, MODERATOR, BOT, VIEWER}
STAFF = {SERVICE, OWNER, MODERATOR}
SELLERS = {SERVICE, OWNER}

SPEC_POST: dict[str, set[str]] = {
    "comment": EVERYONE,
    "like": PARTICIPANTS,
    "lottery_entry": PARTICIPANTS,
    "poll_vote": PARTICIPANTS,
    "announcement": SELLERS,
    "product_pinned": SELLERS,
    "product_unpinned": SELLERS,
    "product_updated": SELLERS,
    "flash_sale_started": SELLERS,
    "flash_sale_stock": SELLERS,
    "flash_sale_ended": SELLERS,
    "lottery_started": SELLERS,
    "poll_started": SELLERS,
    "gift": {SERVICE},
    "purchase": {SERVICE},
    "user_muted": STAFF,
    "user_banned": STAFF,
    "message_deleted": STAFF,
    "slow_mode": STAFF,
    "moderator_appointed": SELLERS,
    "moderator_removed": SELLERS,
    "comment_pinned": STAFF,
    "comment_unpinned": STAFF,
    "whisper": EVERYONE,  # to the staff; to one user: tests/test_whispers.py
    "coupon_batch_dropped": SELLERS,
    "coupon_claim": EVERYONE,
    "red_packet_sent": SELLERS,
    "red_packet_grab": EVERYONE,
}
SPEC_ACTION: dict[str, set[str]] = {
    "join": EVERYONE,
    "get_room": {SERVICE, OWNER, MODERATOR, BOT},
    "list_events": STAFF,
    "publish_event": STAFF,
    "close_room": SELLERS,
    "update_room": SELLERS,
    "read_insights": STAFF,
    "verify_coupon": SELLERS,
    "redeem_coupon": {SERVICE},
    "read_leaderboard": EVERYONE,
}
SPEC_CREATE = {"host", "service"}
# ListRooms is not room-scoped: a service lists every room, a host token only its own.
SPEC_LIST_ROOMS = {"service", "own host"}


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    standing: dict[str, str]
    """Room label ("own", "other") -> the standing the actor should have there."""
    bot_rooms: tuple[str, ...] = ()


ACTORS = (
    Actor("vic", "viewer", {"own": VIEWER, "other": VIEWER}),
    Actor("vmod", "viewer", {"own": MODERATOR, "other": VIEWER}),  # appointed in "own"
    Actor("hana", "host", {"own": OWNER, "other": VIEWER}),  # owns "own"
    Actor("hmod", "host", {"own": MODERATOR, "other": VIEWER}),  # a host, appointed in "own"
    Actor("pmod", "moderator", {"own": MODERATOR, "other": MODERATOR}),  # a platform moderator
    Actor("svc", "service", {"own": SERVICE, "other": SERVICE}),
    Actor("botty", "bot", {"own": BOT, "other": OUTSIDER}, bot_rooms=("own",)),
)
APPOINTED = ("vmod", "hmod")


def at(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(int((time.time() + seconds_from_now) * 1000))
    return ts


def cny(amount_minor: int) -> ev.Money:
    return ev.Money(amount_minor=amount_minor, currency="CNY")


def sample(kind: str, tag: str) -> ev.Payload:
    """A valid payload of `kind`; `tag` keeps ids and targets apart between cells."""
    product = ev.Product(product_id=f"p-{tag}", title="Velvet lipstick", price=cny(9900), stock=500)
    payloads: dict[str, ev.Payload] = {
        "comment": ev.Payload(comment=ev.Comment(text="nice")),
        "like": ev.Payload(like=ev.Like(count=1)),
        "lottery_entry": ev.Payload(lottery_entry=ev.LotteryEntry(lottery_id="main-lottery")),
        "poll_vote": ev.Payload(poll_vote=ev.PollVote(poll_id="main-poll", option=0)),
        "announcement": ev.Payload(announcement=ev.Announcement(text="welcome")),
        "product_pinned": ev.Payload(product_pinned=ev.ProductPinned(product=product)),
        "product_unpinned": ev.Payload(product_unpinned=ev.ProductUnpinned(product_id=f"p-{tag}")),
        "product_updated": ev.Payload(product_updated=ev.ProductUpdated(product_id=f"p-{tag}", stock=10)),
        "flash_sale_started": ev.Payload(
            flash_sale_started=ev.FlashSaleStarted(
                sale_id=f"s-{tag}", product=product, stock=50, start_time=at(0), end_time=at(600)
            )
        ),
        "flash_sale_stock": ev.Payload(flash_sale_stock=ev.FlashSaleStock(sale_id=f"s-{tag}", stock=40)),
        "flash_sale_ended": ev.Payload(flash_sale_ended=ev.FlashSaleEnded(sale_id=f"s-{tag}")),
        "lottery_started": ev.Payload(
            lottery_started=ev.LotteryStarted(lottery_id=f"l-{tag}", prize="a phone", winners_count=1, end_time=at(600))
        ),
        "poll_started": ev.Payload(
            poll_started=ev.PollStarted(
                poll_id=f"q-{tag}", question="Colour?", options=["red", "pink"], end_time=at(600)
            )
        ),
        "gift": ev.Payload(gift=ev.Gift(gift_id="rose", count=1, unit_value=cny(100), giver=ev.Sender(user_id="vic"))),
        "purchase": ev.Payload(purchase=ev.Purchase(buyer=ev.Sender(user_id="vic"), product_id="p1", quantity=1)),
        "user_muted": ev.Payload(user_muted=ev.UserMuted(user_id=f"muted-{tag}", until=at(60))),
        "user_banned": ev.Payload(user_banned=ev.UserBanned(user_id=f"banned-{tag}")),
        "message_deleted": ev.Payload(message_deleted=ev.MessageDeleted(event_id=f"no-such-{tag}")),
        "slow_mode": ev.Payload(slow_mode=ev.SlowMode(min_interval=duration_pb2.Duration(seconds=0))),
        "moderator_appointed": ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id=f"helper-{tag}")),
        "moderator_removed": ev.Payload(moderator_removed=ev.ModeratorRemoved(user_id=f"helper-{tag}")),
        "comment_pinned": ev.Payload(
            comment_pinned=ev.CommentPinned(event_id=f"c-{tag}", text="how big?", author=ev.Sender(user_id="vic"))
        ),
        "comment_unpinned": ev.Payload(comment_unpinned=ev.CommentUnpinned(event_id=f"c-{tag}")),
        "whisper": ev.Payload(whisper=ev.Whisper(text="my order?", to_staff=True)),
        "coupon_batch_dropped": ev.Payload(
            coupon_batch_dropped=ev.CouponBatchDropped(
                batch_id=f"b-{tag}",
                title="¥5 off",
                amount_off_minor=500,
                currency="CNY",
                quantity=10,
                per_user_limit=1,
                end_time=at(600),
            )
        ),
        "coupon_claim": ev.Payload(coupon_claim=ev.CouponClaim(batch_id="main-batch")),
        "red_packet_sent": ev.Payload(
            red_packet_sent=ev.RedPacketSent(
                packet_id=f"rp-{tag}", title="Thanks!", total_minor=1000, currency="CNY", count=10, end_time=at(600)
            )
        ),
        # One grab per user and packet: the stream and the admin API grab different packets.
        "red_packet_grab": ev.Payload(
            red_packet_grab=ev.RedPacketGrab(packet_id="admin-packet" if tag.startswith("admin-") else "main-packet")
        ),
    }
    return payloads[kind]


# The once-per-user kinds go first, before anyone opens another poll (a new poll
# replaces the open one).
KINDS = ("poll_vote", "lottery_entry", *(k for k in SPEC_POST if k not in ("poll_vote", "lottery_entry")))


def expected(allowed: bool) -> tuple[int, str]:
    return (OK, "") if allowed else (PERMISSION_DENIED, "ROLE_FORBIDDEN")


def outcome(status: status_pb2.Status) -> tuple[int, str]:
    return (status.code, error_info(status).reason if status.code else "")


async def rpc_outcome(call: object) -> tuple[int, str]:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return outcome(end_status(err))
    return (OK, "")


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the matrix. Per-stream limits are out of the way; the per-user
    budget (shared by a user's streams and admin calls) is 300 posts, then 50 a second."""
    env = {
        "BARRAGE_SENDS_PER_SECOND": "1000",
        "BARRAGE_SEND_BURST": "1000",
        "BARRAGE_USER_SENDS_PER_SECOND": "50",
        "BARRAGE_USER_SEND_BURST": "300",
    }
    server = ServerProcess(tmp_path_factory.mktemp("authority") / "data", env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class World:
    """Rooms "own" (owned by hana, vmod and hmod appointed) and "other" (owned by hugo)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.admins: dict[str, Admin] = {}
        self.rooms: dict[str, str] = {}
        self.claims: dict[str, str] = {}
        """Room id -> the claim id of a coupon claimed for vic (VerifyCoupon, RedeemCoupon)."""

    def token(self, actor: Actor) -> str:
        rooms = [self.rooms[label] for label in actor.bot_rooms] if actor.role == "bot" else None
        return self.server.token(actor.user, role=actor.role, rooms=rooms)

    def admin(self, user: str, role: str, rooms: list[str] | None = None) -> Admin:
        if user not in self.admins:
            self.admins[user] = Admin(self.server.target, self.server.token(user, role=role, rooms=rooms))
        return self.admins[user]

    async def make_rooms(self) -> None:
        """Fresh "own" and "other" rooms, with the appointments and an open poll and lottery."""
        suffix = uuid.uuid4().hex[:8]
        self.rooms = {"own": f"own-{suffix}", "other": f"other-{suffix}"}
        await self.admin("hana", "host").create_room(self.rooms["own"], "Hana's show")
        await self.admin("hugo", "host").create_room(self.rooms["other"], "Hugo's show")
        for user in APPOINTED:
            appoint = ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id=user))
            await self.admin("hana", "host").publish(self.rooms["own"], f"appoint-{user}", appoint)
        for room_id in self.rooms.values():
            poll = ev.PollStarted(poll_id="main-poll", question="Colour?", options=["red", "pink"], end_time=at(600))
            await self.admin("svc", "service").publish(room_id, "poll", ev.Payload(poll_started=poll))
            lottery = ev.LotteryStarted(lottery_id="main-lottery", prize="a bag", winners_count=1, end_time=at(600))
            await self.admin("svc", "service").publish(room_id, "lottery", ev.Payload(lottery_started=lottery))
            batch = ev.CouponBatchDropped(
                batch_id="main-batch", title="¥5 off", amount_off_minor=500, currency="CNY", quantity=10_000,
                per_user_limit=100, end_time=at(600),
            )  # fmt: skip
            await self.admin("svc", "service").publish(room_id, "batch", ev.Payload(coupon_batch_dropped=batch))
            for packet_id in ("main-packet", "admin-packet"):
                packet = ev.RedPacketSent(
                    packet_id=packet_id, title="Thanks!", total_minor=100_000, currency="CNY", count=1000,
                    end_time=at(600),
                )  # fmt: skip
                await self.admin("svc", "service").publish(room_id, packet_id, ev.Payload(red_packet_sent=packet))
            claim = ev.Payload(coupon_claim=ev.CouponClaim(batch_id="main-batch", user_id="vic"))
            claimed = await self.admin("svc", "service").publish(room_id, "claim", claim)
            self.claims[room_id] = claimed.claim_id

    async def close(self) -> None:
        for admin in self.admins.values():
            await admin.close()


@pytest.fixture
async def world(shared: ServerProcess) -> AsyncIterator[World]:
    made = World(shared)
    await made.make_rooms()
    yield made
    await made.close()


def report(mismatches: list[str]) -> str:
    return f"{len(mismatches)} cell(s) differ from the specification:\n" + "\n".join(mismatches)


# --------------------------------------------------------------------- the matrices


async def test_stream_matrix_every_actor_every_kind_own_and_other_room(world: World) -> None:
    """join, then every postable kind on the stream, for every actor in both rooms."""
    mismatches: list[str] = []
    streams: dict[str, RawStream] = {}
    joined: set[tuple[str, str]] = set()
    try:
        for actor in ACTORS:
            stream = streams[actor.user] = RawStream(world.server.target)
            await stream.hello(world.token(actor))
            for label, room_id in world.rooms.items():
                where = actor.standing[label]
                got = outcome((await stream.join(room_id)).status)
                if got != expected(where in SPEC_ACTION["join"]):
                    mismatches.append(f"{actor.user} ({where}) join {label}: {got}")
                if got[0] == OK:
                    joined.add((actor.user, label))
        sent = 0
        for kind, actor, label in itertools.product(KINDS, ACTORS, world.rooms):
            if (actor.user, label) not in joined:
                continue  # refused at join (checked above): a send would answer NOT_JOINED
            where = actor.standing[label]
            sent += 1
            msg_id = f"m{sent}"
            send = rs.Send(
                room_id=world.rooms[label], client_msg_id=msg_id, payload=sample(kind, f"{actor.user}-{label}")
            )
            await streams[actor.user].send(rs.ConnectRequest(send=send))
            got = outcome((await streams[actor.user].send_result(msg_id)).status)
            if got != expected(where in SPEC_POST[kind]):
                mismatches.append(f"{actor.user} ({where}) send {kind} in {label}: {got}")
        assert sent > 200
    finally:
        for stream in streams.values():
            await stream.close()
    assert not mismatches, report(mismatches)


async def test_admin_matrix_every_actor_every_rpc_own_and_other_room(world: World) -> None:
    """GetRoom, ListEvents, GetInsights and PublishEvent of every kind, for every actor in both rooms."""
    mismatches: list[str] = []
    admins = {actor.user: Admin(world.server.target, world.token(actor)) for actor in ACTORS}
    try:
        for actor, (label, room_id) in itertools.product(ACTORS, world.rooms.items()):
            admin, where = admins[actor.user], actor.standing[label]
            meta = admin.metadata
            insights = insights_grpc.RoomInsightsServiceStub(admin.channel)
            for action, call in (
                ("get_room", admin.stub.GetRoom(pb.GetRoomRequest(room_id=room_id), metadata=admin.metadata)),
                ("list_events", admin.history(room_id)),
                ("read_insights", insights.GetInsights(ipb.GetInsightsRequest(room_id=room_id), metadata=meta)),
                (
                    "read_leaderboard",
                    admin.stub.GetLeaderboard(pb.GetLeaderboardRequest(room_id=room_id), metadata=meta),
                ),
                (
                    "update_room",
                    admin.stub.UpdateRoom(
                        pb.UpdateRoomRequest(
                            room_id=room_id,
                            title=f"by {actor.user}",
                            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
                        ),
                        metadata=meta,
                    ),
                ),
                (
                    "verify_coupon",
                    admin.stub.VerifyCoupon(
                        pb.VerifyCouponRequest(room_id=room_id, claim_id=world.claims[room_id]), metadata=meta
                    ),
                ),
                (
                    "redeem_coupon",
                    admin.stub.RedeemCoupon(
                        pb.RedeemCouponRequest(room_id=room_id, claim_id=world.claims[room_id], order_id="o-1"),
                        metadata=meta,
                    ),
                ),
            ):
                got = await rpc_outcome(call)
                if got != expected(where in SPEC_ACTION[action]):
                    mismatches.append(f"{actor.user} ({where}) {action} {label}: {got}")
        for n, (kind, actor, label) in enumerate(itertools.product(KINDS, ACTORS, world.rooms)):
            where = actor.standing[label]
            payload = sample(kind, f"admin-{actor.user}-{label}")
            got = await rpc_outcome(admins[actor.user].publish(world.rooms[label], f"r{n}", payload))
            allowed = where in SPEC_ACTION["publish_event"] and where in SPEC_POST[kind]
            if got != expected(allowed):
                mismatches.append(f"{actor.user} ({where}) PublishEvent {kind} in {label}: {got}")
    finally:
        for admin in admins.values():
            await admin.close()
    assert not mismatches, report(mismatches)


async def test_close_and_create_room_matrix(world: World) -> None:
    """CloseRoom by every actor on fresh "own" and "other" rooms; CreateRoom by every role."""
    mismatches: list[str] = []
    for actor in ACTORS:
        await world.make_rooms()
        admin = Admin(world.server.target, world.token(actor))
        try:
            for label, room_id in world.rooms.items():
                where = actor.standing[label]
                got = await rpc_outcome(admin.close_room(room_id, "bye"))
                if got != expected(where in SPEC_ACTION["close_room"]):
                    mismatches.append(f"{actor.user} ({where}) close {label}: {got}")
            got = await rpc_outcome(admin.create_room(f"new-{actor.user}-{uuid.uuid4().hex[:6]}"))
            if got != expected(actor.role in SPEC_CREATE):
                mismatches.append(f"{actor.user} ({actor.role}) create_room: {got}")
        finally:
            await admin.close()
    assert not mismatches, report(mismatches)


async def test_list_rooms_matrix(world: World) -> None:
    """ListRooms of hana's rooms by every actor: a service, or hana herself (a host)."""
    mismatches: list[str] = []
    for actor in ACTORS:
        admin = Admin(world.server.target, world.token(actor))
        try:
            request = pb.ListRoomsRequest(owner_user_id="hana")
            got = await rpc_outcome(admin.stub.ListRooms(request, metadata=admin.metadata))
            who = "own host" if (actor.role, actor.user) == ("host", "hana") else actor.role
            if got != expected(who in SPEC_LIST_ROOMS):
                mismatches.append(f"{actor.user} ({actor.role}) list_rooms: {got}")
        finally:
            await admin.close()
    assert not mismatches, report(mismatches)


# ------------------------------------------------------------------- room ownership


async def test_a_service_names_the_host_who_owns_the_room_and_a_host_cannot_name_another(world: World) -> None:
    room_id = f"for-hugo-{uuid.uuid4().hex[:6]}"
    room = await world.admin("svc", "service").create_room(room_id, "Hugo's second show", host_user_id="hugo")
    assert room.creator_user_id == "hugo"
    # hugo now owns it: he may pin a product there, while the service's own rooms are not his.
    pin = sample("product_pinned", "hugo")
    assert (await world.admin("hugo", "host").publish(room_id, "pin", pin)).cursor
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.admin("hana", "host").create_room(f"for-hugo-{uuid.uuid4().hex[:6]}", host_user_id="hugo")
    assert outcome(end_status(refused.value)) == (PERMISSION_DENIED, "ROLE_FORBIDDEN")


async def test_the_snapshot_and_get_room_show_owner_and_moderators(world: World) -> None:
    stream = RawStream(world.server.target)
    try:
        await stream.hello(world.server.token("vic"))
        joined = await stream.join(world.rooms["own"])
        assert joined.snapshot.owner_user_id == "hana"
        assert list(joined.snapshot.moderator_user_ids) == sorted(APPOINTED)
    finally:
        await stream.close()
    room = (await world.admin("hana", "host").stub.GetRoom(
        pb.GetRoomRequest(room_id=world.rooms["own"]), metadata=world.admin("hana", "host").metadata
    )).room  # fmt: skip
    assert (room.creator_user_id, list(room.moderator_user_ids)) == ("hana", sorted(APPOINTED))
    removed = ev.Payload(moderator_removed=ev.ModeratorRemoved(user_id="hmod"))
    await world.admin("hana", "host").publish(world.rooms["own"], "remove-hmod", removed)
    # hmod is a viewer in hana's room again: muting someone is refused.
    hmod = world.admin("hmod", "host")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hmod.publish(world.rooms["own"], "mute", sample("user_muted", "after-removal"))
    assert outcome(end_status(refused.value)) == (PERMISSION_DENIED, "ROLE_FORBIDDEN")


# --------------------------------------------------------------- owner protection


async def refused_reason(admin: Admin, room_id: str, payload: ev.Payload) -> tuple[int, str, str]:
    try:
        await admin.publish(room_id, f"r-{uuid.uuid4().hex[:8]}", payload)
    except grpc.aio.AioRpcError as err:
        info = error_info(end_status(err))
        return (end_status(err).code, info.reason, info.metadata.get("target", ""))
    return (OK, "", "")


def ban(user: str) -> ev.Payload:
    return ev.Payload(user_banned=ev.UserBanned(user_id=user))


def mute(user: str) -> ev.Payload:
    return ev.Payload(user_muted=ev.UserMuted(user_id=user, until=at(60)))


def delete(event_id: str) -> ev.Payload:
    return ev.Payload(message_deleted=ev.MessageDeleted(event_id=event_id))


async def test_nobody_below_the_owner_acts_on_the_owner_and_moderators_not_on_each_other(world: World) -> None:
    own = world.rooms["own"]
    hana, vmod, pmod = world.admin("hana", "host"), world.admin("vmod", "viewer"), world.admin("pmod", "moderator")
    svc = world.admin("svc", "service")
    owner_comment = await hana.publish(own, "hello", ev.Payload(comment=ev.Comment(text="welcome all")))
    pmod_comment = await pmod.publish(own, "patrol", ev.Payload(comment=ev.Comment(text="be kind")))
    protected = (PERMISSION_DENIED, "TARGET_PROTECTED")
    # On the owner: no moderator, appointed or platform, may mute, ban or delete.
    for moderator in (vmod, pmod):
        assert await refused_reason(moderator, own, ban("hana")) == (*protected, "owner")
        assert await refused_reason(moderator, own, mute("hana")) == (*protected, "owner")
        assert await refused_reason(moderator, own, delete(owner_comment.event_id)) == (*protected, "owner")
    # Moderators on each other: appointed on appointed, appointed on platform, platform on appointed.
    assert await refused_reason(vmod, own, ban("hmod")) == (*protected, "moderator")
    assert await refused_reason(vmod, own, mute("pmod")) == (*protected, "moderator")
    assert await refused_reason(vmod, own, delete(pmod_comment.event_id)) == (*protected, "moderator")
    assert await refused_reason(pmod, own, ban("vmod")) == (*protected, "moderator")
    # ... nor on each other's appointment.
    for payload in (
        ev.Payload(moderator_removed=ev.ModeratorRemoved(user_id="hmod")),
        ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id="vic")),
    ):
        assert (await refused_reason(vmod, own, payload))[:2] == (PERMISSION_DENIED, "ROLE_FORBIDDEN")
    # Nobody bans or mutes a service, not even the owner.
    assert await refused_reason(hana, own, ban("svc")) == (*protected, "service")
    assert await refused_reason(pmod, own, mute("svc")) == (*protected, "service")
    # What stays allowed: a moderator on a viewer, the owner on a moderator, the owner
    # deleting her own message, a service on the owner's message.
    assert await refused_reason(vmod, own, mute("vic")) == (OK, "", "")
    assert await refused_reason(hana, own, mute("hmod")) == (OK, "", "")
    assert await refused_reason(hana, own, delete(owner_comment.event_id)) == (OK, "", "")
    assert await refused_reason(svc, own, delete(pmod_comment.event_id)) == (OK, "", "")


async def test_a_ban_never_holds_a_service_while_the_platform_may_ban_a_host(world: World) -> None:
    """A service the room has not seen yet looks like anyone else, so a moderator's ban
    of it is accepted, but it never takes effect: services are not held back by bans.
    A service outranks the owner: its ban of the owner holds (a platform decision)."""
    own = world.rooms["own"]
    newcomer = f"svc-{uuid.uuid4().hex[:6]}"
    assert await refused_reason(world.admin("vmod", "viewer"), own, ban(newcomer)) == (OK, "", "")
    assert (await world.admin(newcomer, "service").publish(own, "after-ban", sample("announcement", "x"))).cursor
    assert (await world.admin("svc", "service").publish(own, "ban-hana", ban("hana"))).cursor
    stream = RawStream(world.server.target)
    try:
        await stream.hello(world.server.token("hana", role="host"))
        assert outcome((await stream.join(own)).status) == (PERMISSION_DENIED, "BANNED")
    finally:
        await stream.close()


# ------------------------------------------------------------ forbidden and invalid


async def test_forbidden_and_invalid_is_answered_role_forbidden(world: World) -> None:
    bad_gift = ev.Payload(
        gift=ev.Gift(gift_id="rose", count=1, unit_value=ev.Money(amount_minor=-5, currency="??"), giver=ev.Sender())
    )
    bad_pin = ev.Payload(product_pinned=ev.ProductPinned(product=ev.Product(product_id="", title="")))
    stream = RawStream(world.server.target)
    try:
        await stream.hello(world.server.token("hana", role="host"))
        assert (await stream.join(world.rooms["other"])).status.code == OK
        await stream.join(world.rooms["own"])
        for label, payload in (("own", bad_gift), ("other", bad_pin)):
            send = rs.Send(room_id=world.rooms[label], client_msg_id=f"bad-{label}", payload=payload)
            await stream.send(rs.ConnectRequest(send=send))
            result = await stream.send_result(f"bad-{label}")
            assert outcome(result.status) == (PERMISSION_DENIED, "ROLE_FORBIDDEN"), label
    finally:
        await stream.close()
    # Through the admin API too, with a bad request_id as well.
    got = await rpc_outcome(world.admin("vic", "viewer").publish(world.rooms["own"], "", bad_gift))
    assert got == (PERMISSION_DENIED, "ROLE_FORBIDDEN")
    got = await rpc_outcome(world.admin("vmod", "viewer").publish(world.rooms["own"], "", bad_gift))
    assert got == (PERMISSION_DENIED, "ROLE_FORBIDDEN")


# ------------------------------------------------------------------ the side door


async def test_the_admin_api_is_no_side_door_for_viewers_or_bots(world: World) -> None:
    own = world.rooms["own"]
    for user, role in (("vic", "viewer"), ("botty", "bot")):
        admin = Admin(world.server.target, world.server.token(user, role=role, rooms=[own]))
        try:
            for kind in ("comment", "like"):
                got = await rpc_outcome(admin.publish(own, f"{user}-{kind}", sample(kind, user)))
                assert got == (PERMISSION_DENIED, "ROLE_FORBIDDEN"), (user, kind)
        finally:
            await admin.close()
    history = await world.admin("svc", "service").all_events(own, "comment")
    assert not [e for e in history if e.sender.user_id in ("vic", "botty")]


async def test_the_admin_api_and_the_stream_share_one_rate_budget_per_user(world: World) -> None:
    """A moderator flooding PublishEvent is limited like a stream, and the budget it
    spent there is gone on its stream too (the shared server: 300 burst, 50/s)."""
    own = world.rooms["own"]
    flooder = f"flooder-{uuid.uuid4().hex[:6]}"
    appoint = ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id=flooder))
    await world.admin("hana", "host").publish(own, f"appoint-{flooder}", appoint)
    admin = Admin(world.server.target, world.server.token(flooder))
    stream = RawStream(world.server.target)
    try:
        outcomes = await asyncio.gather(
            *(
                rpc_outcome(admin.publish(own, f"c{n}", ev.Payload(comment=ev.Comment(text=f"buy {n}"))))
                for n in range(400)
            )
        )
        accepted = outcomes.count((OK, ""))
        assert (RESOURCE_EXHAUSTED, "RATE_LIMITED") in outcomes
        assert 300 <= accepted < 400, accepted
        await stream.hello(world.server.token(flooder))
        assert (await stream.join(own)).status.code == OK
        # All at once: sent one by one, a slow machine would refill the budget between them.
        results = await asyncio.gather(*(stream.send_comment(own, f"s{n}", "and here") for n in range(100)))
        assert RESOURCE_EXHAUSTED in [r.status.code for r in results]
    finally:
        await stream.close()
        await admin.close()


# ------------------------------------------------------- appointments are durable


def test_the_checkpoint_carries_moderators_services_and_staff_messages() -> None:
    state = RoomState("r")
    events = [
        ev.Event(event_id="e1", sender=ev.Sender(user_id="hana", role=ev.ROLE_HOST),
                 payload=ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id="vmod"))),
        ev.Event(event_id="e2", sender=ev.Sender(user_id="svc", role=ev.ROLE_SERVICE),
                 payload=ev.Payload(announcement=ev.Announcement(text="hi"))),
        ev.Event(event_id="e3", sender=ev.Sender(user_id="pmod", role=ev.ROLE_MODERATOR),
                 payload=ev.Payload(comment=ev.Comment(text="be kind"))),
        ev.Event(event_id="e4", sender=ev.Sender(user_id="vic", role=ev.ROLE_VIEWER),
                 payload=ev.Payload(comment=ev.Comment(text="a viewer's words"))),
    ]  # fmt: skip
    for position, event in enumerate(events):
        state.fold(position, event)
    written = state.checkpoint("x").SerializeToString()
    restored = RoomState.from_checkpoint("r", checkpoint_pb2.RoomCheckpoint.FromString(written))
    assert restored.moderators == {"vmod"}
    assert restored.services == {"svc"}
    assert restored.platform_moderators == {"pmod"}
    assert dict(restored.staff_messages) == {"e2": "svc", "e3": "pmod"}


async def test_appointed_moderators_survive_a_restart(server: ServerProcess, room_id: str) -> None:
    hana = Admin(server.target, server.token("hana", role="host"))
    try:
        await hana.create_room(room_id, "show")
        await hana.publish(room_id, "appoint", ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id="vmod")))
    finally:
        await hana.close()
    server.restart()  # kill -9, then the same data directory
    vmod = Admin(server.target, server.token("vmod"))
    stream = RawStream(server.target)
    try:
        assert (await vmod.publish(room_id, "mute", mute("vic"))).cursor
        await stream.hello(server.token("vic"))
        joined = await stream.join(room_id)
        assert list(joined.snapshot.moderator_user_ids) == ["vmod"]
    finally:
        await stream.close()
        await vmod.close()


async def test_a_moderator_appointed_on_one_node_acts_on_another(tmp_path: Path) -> None:
    room_id = f"room-{uuid.uuid4().hex[:8]}"
    with running_broker() as broker:
        cluster = Cluster(broker, tmp_path, f"authority-{uuid.uuid4().hex[:6]}", 2)
        try:
            cluster.start()
            hana = Admin(cluster[0].target, cluster.token("hana", role="host"))
            vmod = Admin(cluster[1].target, cluster.token("vmod"))
            try:
                await hana.create_room(room_id, "show")
                # Node 1 watches the room before the appointment (live fold), so both the
                # rebuild and the live tail are exercised.
                refused = await rpc_outcome(vmod.publish(room_id, "early", mute("vic")))
                assert refused == (PERMISSION_DENIED, "ROLE_FORBIDDEN")
                appoint = ev.Payload(moderator_appointed=ev.ModeratorAppointed(user_id="vmod"))
                await hana.publish(room_id, "appoint", appoint)
                deadline = time.monotonic() + 15
                while (got := await rpc_outcome(vmod.publish(room_id, f"m{time.monotonic()}", mute("vic")))) != (
                    OK,
                    "",
                ):
                    assert time.monotonic() < deadline, got
                room = (await vmod.stub.GetRoom(pb.GetRoomRequest(room_id=room_id), metadata=vmod.metadata)).room
                assert list(room.moderator_user_ids) == ["vmod"]
            finally:
                await hana.close()
                await vmod.close()
        finally:
            cluster.stop()


def test_a_bot_token_lists_its_rooms_and_a_malformed_claim_is_refused() -> None:
    import jwt

    from barrage.server.auth import TokenVerifier, issue_dev_token
    from barrage.server.core.errors import ApiError
    from tests.server_process import TEST_SECRET

    verifier = TokenVerifier(secret=TEST_SECRET)
    bot = verifier.verify(issue_dev_token(TEST_SECRET, user_id="b", role="bot", rooms=["r1"]))
    assert (bot.given_room("r1"), bot.given_room("r2")) == (True, False)
    everywhere = verifier.verify(issue_dev_token(TEST_SECRET, user_id="b", role="bot", rooms=["*"]))
    assert everywhere.given_room("any-room")
    assert not verifier.verify(issue_dev_token(TEST_SECRET, user_id="b", role="bot")).given_room("r1")
    claims = {"sub": "b", "role": "bot", "exp": int(time.time()) + 60, "rooms": "r1"}
    with pytest.raises(ApiError) as refused:
        verifier.verify(jwt.encode(claims, TEST_SECRET, algorithm="HS256"))
    assert refused.value.reason == "TOKEN_INVALID"
