"""A room's live state, folded from its events in log order.

Every node watching a room folds the same log, so every node reaches the same state:
this is what lets the Kafka backend run many nodes without any of this code knowing.
Join snapshots, moderation checks, one-vote-per-user and lottery entries read it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from barrage.server.commerce import checkpoint_pb2, giveaways
from barrage.server.commerce.audience import Audience
from barrage.server.commerce.coupons import CouponBook
from barrage.server.commerce.leaderboard import Board
from barrage.server.commerce.red_packets import RedPacketBook
from barrage.server.core import media_clock, observer, ranges
from barrage.server.core.media_clock import Clock
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

log = logging.getLogger(__name__)

INTERNAL_PRIORITY = int(checkpoint_pb2.INTERNAL_PRIORITY_INTERNAL)
"""Event.priority of the server's own records (reserved in the public Priority enum)."""

VIEWER_COUNT_TTL_MS = 15_000
STAFF_MESSAGES = 1024
"""Newest messages by staff remembered per room, so deleting one checks its author's rank."""
MAX_SERVICES = 1000
"""Service (and platform moderator) user ids remembered per room: they are few; the
bound is for safety."""
_STAFF_ROLES = frozenset({event_pb2.ROLE_HOST, event_pb2.ROLE_MODERATOR, event_pb2.ROLE_SERVICE})

FOLD_NOW_S = float(ranges.TIMESTAMP_MAX_S)
"""The clock the folds check ranges with: every range of ingest, without its one-year
window (an event logged by an older version may lie further ahead and still applies)."""


class Unappliable(ValueError):
    """An event or checkpoint that the fold cannot apply (logged, counted, skipped)."""


def decode_event(data: bytes) -> event_pb2.Event:
    """Event bytes from the log, or Unappliable if they do not parse."""
    try:
        return event_pb2.Event.FromString(data)
    except DecodeError as exc:
        raise Unappliable(f"event bytes do not parse: {exc}") from exc


def check_applicable(event: event_pb2.Event) -> str | None:
    """The event's payload kind, after checking every value the fold will read (the
    ranges of ingest); Unappliable if one is out of range."""
    kind = event.payload.WhichOneof("kind")
    try:
        if event.HasField("publish_time"):
            ranges.check_timestamp(event.publish_time, "publish_time", FOLD_NOW_S)
        if kind is not None:
            ranges.check_fields(getattr(event.payload, kind), f"payload.{kind}", FOLD_NOW_S)
    except Exception as exc:  # ApiError from the range check
        raise Unappliable(str(exc)) from exc
    return kind


def _ms(ts: object) -> int:
    return int(ts.ToMilliseconds())  # type: ignore[attr-defined]


@dataclass
class Poll:
    started: event_pb2.PollStarted
    counts: list[int]
    voters: set[str] = field(default_factory=set)


@dataclass
class Lottery:
    started: event_pb2.LotteryStarted
    entrants: set[str] = field(default_factory=set)


@dataclass
class RoomState:
    room_id: str
    position: int = -1
    """Position of the last folded event."""
    pinned: event_pb2.Product | None = None
    flash_sale: event_pb2.FlashSaleStarted | None = None
    flash_stock: int = 0
    polls: dict[str, Poll] = field(default_factory=dict)
    """Open polls (normally one)."""
    lotteries: dict[str, Lottery] = field(default_factory=dict)
    """Open lotteries (normally one)."""
    like_total: int = 0
    viewers_by_node: dict[str, tuple[int, int]] = field(default_factory=dict)
    """node id -> (viewers, publish time ms)."""
    muted_until_ms: dict[str, int] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    slow_mode_ms: int = 0
    last_comment_ms: dict[str, int] = field(default_factory=dict)
    since_checkpoint: int = 0
    """Events folded since the last room_checkpoint in the log."""
    moderators: set[str] = field(default_factory=set)
    """Moderators the owner appointed for this room (the owner is the room directory's)."""
    services: set[str] = field(default_factory=set)
    """User ids seen posting with a service token: never muted or banned."""
    platform_moderators: set[str] = field(default_factory=set)
    """User ids seen posting with a moderator token: moderators may not act on them."""
    staff_messages: OrderedDict[str, str] = field(default_factory=OrderedDict)
    """event id -> author of the newest STAFF_MESSAGES comments/announcements by staff."""
    media_clock: Clock | None = None
    """The latest logged media clock report (server/core/media_clock.py)."""
    pinned_comment: event_pb2.CommentPinned | None = None
    """The comment pinned on screen (a copy of it), if any."""
    coupons: CouponBook = field(default_factory=lambda: CouponBook(""))
    """Coupon batches and their claims (server/commerce/coupons.py)."""
    red_packets: RedPacketBook = field(default_factory=RedPacketBook)
    """Open red packets and their grabs (server/commerce/red_packets.py)."""
    board: Board = field(default_factory=Board)
    """The gift ranking (server/commerce/leaderboard.py)."""
    audience: Audience = field(default_factory=Audience)
    """Who is present, on every node (server/commerce/audience.py)."""

    def __post_init__(self) -> None:
        self.coupons.room_id = self.room_id  # claim ids are derived from the room

    def fold(self, position: int, event: event_pb2.Event) -> str | None:
        """Apply one event. Returns a user id that must be removed from the room (ban).

        Never raises: an event that cannot be applied (a value out of range, from a
        version that did not check it or written around the gateway) is skipped with an
        ERROR log and the barrage.fold.skipped metric, so that one bad event cannot make
        a room unjoinable. It still counts as folded (position moves past it)."""
        try:
            return self._apply(position, event)
        except Exception as exc:  # one event must never fail the room
            self.position = max(self.position, position)
            skipped("room_state", self.room_id, position, event.payload.WhichOneof("kind"), exc)
            return None

    def fold_bytes(self, position: int, data: bytes) -> str | None:
        """fold() for event bytes as read from the log (bytes that do not parse are skipped)."""
        try:
            event = decode_event(data)
        except Unappliable as exc:
            self.position = max(self.position, position)
            skipped("room_state", self.room_id, position, None, exc)
            return None
        return self.fold(position, event)

    def _apply(self, position: int, event: event_pb2.Event) -> str | None:
        kind = check_applicable(event)  # before any change: a bad event changes nothing
        self.position = position
        payload = event.payload
        if int(event.priority) == INTERNAL_PRIORITY:  # a checkpoint (server/commerce/checkpoint.proto)
            self.since_checkpoint = 0
            return None
        self.since_checkpoint += 1
        self._note_sender(event, kind)
        when = _ms(event.publish_time)
        if kind == "comment":
            if self.slow_mode_ms:
                self.last_comment_ms[event.sender.user_id] = when
        elif kind == "like_burst":
            self.like_total = min(self.like_total + payload.like_burst.delta, ranges.MAX_TOTAL)
        elif kind == "product_pinned":
            self.pinned = payload.product_pinned.product
        elif kind == "product_unpinned":
            if self.pinned is not None and self.pinned.product_id == payload.product_unpinned.product_id:
                self.pinned = None
        elif kind == "product_updated":
            self._update_product(payload.product_updated)
        elif kind == "flash_sale_started":
            self.flash_sale = payload.flash_sale_started
            self.flash_stock = payload.flash_sale_started.stock
        elif kind == "flash_sale_stock":
            if self.flash_sale is not None and self.flash_sale.sale_id == payload.flash_sale_stock.sale_id:
                self.flash_stock = payload.flash_sale_stock.stock
        elif kind == "flash_sale_ended":
            if self.flash_sale is not None and self.flash_sale.sale_id == payload.flash_sale_ended.sale_id:
                self.flash_sale = None
        elif kind == "poll_started":
            started = payload.poll_started
            self.polls = {started.poll_id: Poll(started, [0] * len(started.options))}
        elif kind == "poll_vote":
            poll = self.polls.get(payload.poll_vote.poll_id)
            voter = event.sender.user_id
            if poll is not None and voter not in poll.voters and payload.poll_vote.option < len(poll.counts):
                poll.voters.add(voter)
                poll.counts[payload.poll_vote.option] += 1
        elif kind == "poll_ended":
            self.polls.pop(payload.poll_ended.poll_id, None)
        elif kind == "lottery_started":
            started_lottery = payload.lottery_started
            self.lotteries[started_lottery.lottery_id] = Lottery(started_lottery)
        elif kind == "lottery_entry":
            lottery = self.lotteries.get(payload.lottery_entry.lottery_id)
            if lottery is not None:
                lottery.entrants.add(event.sender.user_id)
        elif kind == "lottery_drawn":
            self.lotteries.pop(payload.lottery_drawn.lottery_id, None)
        elif kind == "viewer_count":
            count = payload.viewer_count
            self.viewers_by_node[count.node_id] = (count.node_viewers, when)
        elif kind == "user_muted":
            self.muted_until_ms[payload.user_muted.user_id] = _ms(payload.user_muted.until)
        elif kind == "user_banned":
            self.banned.add(payload.user_banned.user_id)
            return payload.user_banned.user_id
        elif kind == "slow_mode":
            self.slow_mode_ms = int(payload.slow_mode.min_interval.ToMilliseconds())
            if not self.slow_mode_ms:
                self.last_comment_ms.clear()
        elif kind == "moderator_appointed":
            self.moderators.add(payload.moderator_appointed.user_id)
        elif kind == "moderator_removed":
            self.moderators.discard(payload.moderator_removed.user_id)
        elif kind == "media_clock":
            self.media_clock = media_clock.fold(event)
        elif kind == "comment_pinned":
            self.pinned_comment = payload.comment_pinned  # replaces any earlier pin
        elif kind == "comment_unpinned":
            pinned = self.pinned_comment
            if pinned is not None and pinned.event_id == payload.comment_unpinned.event_id:
                self.pinned_comment = None
        elif kind in giveaways.FOLDED_KINDS:
            giveaways.fold(self, position, event, kind, when)
        elif kind == "message_deleted":
            pinned = self.pinned_comment
            if pinned is not None and pinned.event_id == payload.message_deleted.event_id:
                self.pinned_comment = None  # a deleted comment no longer shows, pinned or not
        elif kind == "gift":
            self.board.add_gift(position, payload.gift)
        elif kind == "leaderboard":
            self.board.published(when)
        elif kind == "audience":
            self.audience.published(when, payload.audience)
        elif kind == "viewer_joined":
            self.audience.join(event.sender, payload.viewer_joined.node_id)
        elif kind == "viewer_left":
            self.audience.leave(event.sender.user_id, payload.viewer_left.node_id)
        elif kind == "room_closed":
            self.board.closed = True
        return None

    def _note_sender(self, event: event_pb2.Event, kind: str | None) -> None:
        """Remember who is a service, and which messages staff wrote (authority checks)."""
        sender = event.sender
        if sender.role == event_pb2.ROLE_SERVICE and len(self.services) < MAX_SERVICES:
            self.services.add(sender.user_id)
        elif sender.role == event_pb2.ROLE_MODERATOR and len(self.platform_moderators) < MAX_SERVICES:
            self.platform_moderators.add(sender.user_id)
        if kind in ("comment", "announcement") and (sender.role in _STAFF_ROLES or sender.user_id in self.moderators):
            self.staff_messages[event.event_id] = sender.user_id
            if len(self.staff_messages) > STAFF_MESSAGES:
                self.staff_messages.popitem(last=False)

    def _update_product(self, update: event_pb2.ProductUpdated) -> None:
        for product in (self.pinned, self.flash_sale.product if self.flash_sale is not None else None):
            if product is None or product.product_id != update.product_id:
                continue
            if update.HasField("price"):
                product.price.CopyFrom(update.price)
            if update.HasField("stock"):
                product.stock = update.stock

    def checkpoint(self, epoch: str) -> checkpoint_pb2.RoomCheckpoint:
        """Everything fold() has learnt, so a node can start from here (from_checkpoint)."""
        cp = checkpoint_pb2.RoomCheckpoint(
            position=self.position,
            epoch=epoch,
            flash_stock=self.flash_stock,
            like_total=self.like_total,
            banned_user_ids=sorted(self.banned),
            polls=[
                checkpoint_pb2.PollCheckpoint(started=p.started, counts=p.counts, voter_user_ids=sorted(p.voters))
                for p in self.polls.values()
            ],
            lotteries=[
                checkpoint_pb2.LotteryCheckpoint(started=lot.started, entrant_user_ids=sorted(lot.entrants))
                for lot in self.lotteries.values()
            ],
        )
        if self.pinned is not None:
            cp.pinned.CopyFrom(self.pinned)
        if self.flash_sale is not None:
            cp.flash_sale.CopyFrom(self.flash_sale)
        for node, (count, at) in self.viewers_by_node.items():
            cp.node_viewers.add(node_id=node, node_viewers=count)
            cp.node_viewers_time.add().FromMilliseconds(at)
        for user, until in self.muted_until_ms.items():
            cp.muted.add(user_id=user).until.FromMilliseconds(until)
        cp.slow_mode.FromMilliseconds(self.slow_mode_ms)
        cp.moderator_user_ids.extend(sorted(self.moderators))
        cp.service_user_ids.extend(sorted(self.services))
        cp.platform_moderator_user_ids.extend(sorted(self.platform_moderators))
        for event_id, author in self.staff_messages.items():
            cp.staff_messages.add(event_id=event_id, author_user_id=author)
        if self.media_clock is not None:
            clock = self.media_clock
            cp.media_clock.timeline_id = clock.timeline_id
            cp.media_clock.position.FromMilliseconds(clock.position_ms)
            cp.media_clock.paused = clock.paused
            cp.media_clock_time.FromMilliseconds(clock.anchor_ms)
        if self.pinned_comment is not None:
            cp.pinned_comment.CopyFrom(self.pinned_comment)
        self.coupons.checkpoint(cp)
        self.red_packets.checkpoint(cp)
        self.board.checkpoint(cp)
        self.audience.checkpoint(cp)
        return cp

    @classmethod
    def from_checkpoint(cls, room_id: str, cp: checkpoint_pb2.RoomCheckpoint) -> RoomState:
        """The state a checkpoint holds; Unappliable if one of its values is out of range
        or its parts do not match (the caller then looks for an older one)."""
        try:
            ranges.check_fields(cp, "room_checkpoint", FOLD_NOW_S)
            if len(cp.node_viewers) != len(cp.node_viewers_time):
                raise Unappliable("node_viewers and node_viewers_time differ in length")
            return cls._from_checkpoint(room_id, cp)
        except Unappliable:
            raise
        except Exception as exc:  # ApiError from the range check, ValueError from a conversion
            raise Unappliable(str(exc)) from exc

    @classmethod
    def _from_checkpoint(cls, room_id: str, cp: checkpoint_pb2.RoomCheckpoint) -> RoomState:
        state = cls(
            room_id=room_id,
            position=cp.position,
            pinned=cp.pinned if cp.HasField("pinned") else None,
            flash_sale=cp.flash_sale if cp.HasField("flash_sale") else None,
            flash_stock=cp.flash_stock,
            like_total=cp.like_total,
            banned=set(cp.banned_user_ids),
            slow_mode_ms=int(cp.slow_mode.ToMilliseconds()),
            moderators=set(cp.moderator_user_ids),
            services=set(cp.service_user_ids),
            platform_moderators=set(cp.platform_moderator_user_ids),
        )
        for message in cp.staff_messages:
            state.staff_messages[message.event_id] = message.author_user_id
        for poll in cp.polls:
            state.polls[poll.started.poll_id] = Poll(poll.started, list(poll.counts), set(poll.voter_user_ids))
        for lot in cp.lotteries:
            state.lotteries[lot.started.lottery_id] = Lottery(lot.started, set(lot.entrant_user_ids))
        for count, at in zip(cp.node_viewers, cp.node_viewers_time, strict=True):
            state.viewers_by_node[count.node_id] = (count.node_viewers, _ms(at))
        for muted in cp.muted:
            state.muted_until_ms[muted.user_id] = _ms(muted.until)
        if cp.HasField("media_clock"):
            state.media_clock = Clock.of(cp.media_clock, cp.media_clock_time)
        if cp.HasField("pinned_comment"):
            state.pinned_comment = cp.pinned_comment
        state.coupons = CouponBook.from_checkpoint(room_id, cp)
        state.red_packets = RedPacketBook.from_checkpoint(cp)
        state.board = Board.from_checkpoint(cp)
        state.audience = Audience.from_checkpoint(cp)
        return state

    def muted(self, user_id: str, now_ms: int) -> int:
        """Until when the user is muted (ms), 0 if not."""
        until = self.muted_until_ms.get(user_id, 0)
        return until if until > now_ms else 0

    def viewers(self, now_ms: int) -> int:
        return sum(count for count, at in self.viewers_by_node.values() if now_ms - at <= VIEWER_COUNT_TTL_MS)

    def snapshot(self, title: str, head_cursor: str, now_ms: int) -> rs.RoomSnapshot:
        snap = rs.RoomSnapshot(
            room_id=self.room_id,
            title=title,
            head_cursor=head_cursor,
            like_total=self.like_total,
            viewer_count=self.viewers(now_ms),
        )
        if self.pinned is not None:
            snap.pinned_product.CopyFrom(self.pinned)
        if self.flash_sale is not None:
            snap.flash_sale.CopyFrom(self.flash_sale)
            snap.flash_sale.stock = self.flash_stock
        for poll in self.polls.values():
            snap.poll.CopyFrom(poll.started)
            snap.poll_tally.CopyFrom(event_pb2.PollTally(poll_id=poll.started.poll_id, counts=poll.counts))
        for lottery in self.lotteries.values():
            snap.lottery.CopyFrom(lottery.started)
        snap.slow_mode.FromMilliseconds(self.slow_mode_ms)
        snap.moderator_user_ids.extend(sorted(self.moderators))
        if self.pinned_comment is not None:
            snap.pinned_comment.CopyFrom(self.pinned_comment)
        self.coupons.snapshot(snap)
        self.red_packets.snapshot(snap)
        return snap


def skipped(fold: str, room_id: str, position: int, kind: str | None, error: BaseException) -> None:
    """Report an event (or checkpoint) a fold could not apply: an ERROR log and the
    barrage.fold.skipped metric (docs/observability.md)."""
    log.error(
        "%s of room %s: skipped the %s at position %d, which cannot be applied: %s",
        fold.replace("_", " "),
        room_id,
        f"{kind} event" if kind else "event",
        position,
        error,
    )
    observer.current.fold_skipped(fold, kind or "undecodable")


def checkpoint_payload(checkpoint: checkpoint_pb2.RoomCheckpoint) -> event_pb2.Payload:
    """A public Payload carrying the checkpoint in its reserved field 28 (kept as an
    unknown field, so the gateway encodes it like any other event's payload)."""
    wrapped = checkpoint_pb2.CheckpointPayload(room_checkpoint=checkpoint)
    return event_pb2.Payload.FromString(wrapped.SerializeToString())


def read_checkpoint(event: bytes) -> checkpoint_pb2.RoomCheckpoint:
    """The checkpoint in an internal record's encoded Event; Unappliable if it does not parse."""
    try:
        return checkpoint_pb2.CheckpointEvent.FromString(event).payload.room_checkpoint
    except DecodeError as exc:
        raise Unappliable(f"checkpoint bytes do not parse: {exc}") from exc
