"""Red packets and lucky bags (红包/福袋): a total split among the first N grabbers.

Grabs are decided like coupon claims (server/commerce/coupons.py): each grab is
appended to the room's log and every node's fold gives share i to the i-th distinct
grabber in log order, so every node agrees and exactly `count` shares go out.

A random split is provably fixed before anyone grabs, like a lottery draw
(server/commerce/lottery.py): the seed is HMAC-SHA256(secret, "red-packet" 0x00 room
0x00 packet), derived rather than stored so any node can reveal it; the server
publishes SHA-256(seed) when the packet opens, and the seed with every share when it
closes. The algorithm is documented on RedPacketFinished in event.proto.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass, field

from barrage.server.commerce import checkpoint_pb2
from barrage.server.core.errors import ApiError, Code, invalid
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

MAX_OPEN = 5
"""Red packets open at once in a room (TOO_MANY_OPEN beyond)."""
DECISIONS_KEPT = 20_000
WEIGHT_MOD = 1_000_000

SOLD_OUT = "SOLD_OUT"
EXPIRED = "EXPIRED"
NOT_OPEN = "NOT_OPEN"
ALREADY_DONE = "ALREADY_DONE"
BANNED = "BANNED"
_REFUSALS = {
    SOLD_OUT: (Code.FAILED_PRECONDITION, "every share of this red packet has been grabbed"),
    EXPIRED: (Code.FAILED_PRECONDITION, "this red packet has closed"),
    NOT_OPEN: (Code.FAILED_PRECONDITION, "no open red packet with this id"),
    ALREADY_DONE: (Code.ALREADY_EXISTS, "you already grabbed this red packet"),
    BANNED: (Code.PERMISSION_DENIED, "you are banned from this room"),
}


def refusal(reason: str) -> ApiError:
    code, message = _REFUSALS[reason]
    return ApiError(code, reason, message)


def seed_for(secret: bytes, room_id: str, packet_id: str) -> bytes:
    return hmac.new(secret, f"red-packet\x00{room_id}\x00{packet_id}".encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=64)
def shares(seed: bytes, total: int, count: int, equal: bool) -> tuple[int, ...]:
    """Every share, in grab order: each at least 1, adding up to `total` exactly.
    Random: weights from the seed (RedPacketFinished in event.proto); equal: total/count."""
    if equal:
        base, extra = divmod(total, count)
        return tuple(base + (1 if i < extra else 0) for i in range(count))
    rest = total - count
    weights = [
        1 + int.from_bytes(hashlib.sha256(seed + str(i).encode()).digest(), "big") % WEIGHT_MOD for i in range(count)
    ]
    weight_sum = sum(weights)
    parts = [rest * w // weight_sum for w in weights]
    left = rest - sum(parts)  # < count: one more minor unit each to the first `left` shares
    return tuple(1 + part + (1 if i < left else 0) for i, part in enumerate(parts))


@dataclass
class Packet:
    sent: event_pb2.RedPacketSent
    grabbers: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    users: set[str] = field(default_factory=set)


@dataclass
class RedPacketBook:
    """A room's open red packets, as folded from its log (part of RoomState)."""

    packets: OrderedDict[str, Packet] = field(default_factory=OrderedDict)
    decisions: OrderedDict[int, tuple[str, int]] = field(default_factory=OrderedDict)
    """Log position of a grab -> (packet id, share index), or (reason, -1)."""
    finished: OrderedDict[str, tuple[bool, event_pb2.RedPacketSent]] = field(default_factory=OrderedDict)
    """Recently closed packets -> (sold out, the packet): a late grab is told SOLD_OUT
    or EXPIRED, and a grab decided just before the close still finds its share."""

    def send(self, sent: event_pb2.RedPacketSent) -> None:
        if sent.total_minor < sent.count:  # ingest refuses it; another writer of the log may not
            raise ValueError("a red packet's total is smaller than its count")
        if sent.packet_id not in self.packets:
            self.packets[sent.packet_id] = Packet(sent)

    def grab(self, position: int, user_id: str, packet_id: str, when_ms: int, banned: bool) -> tuple[str, int]:
        packet = self.packets.get(packet_id)
        decision: tuple[str, int]
        if packet is None:
            decision = (self._closed_reason(packet_id), -1)
        elif banned:
            decision = (BANNED, -1)
        elif user_id in packet.users:
            decision = (ALREADY_DONE, -1)
        elif len(packet.grabbers) >= packet.sent.count:
            decision = (SOLD_OUT, -1)
        elif when_ms >= packet.sent.end_time.ToMilliseconds():
            decision = (EXPIRED, -1)
        else:
            decision = (packet_id, len(packet.grabbers))
            packet.grabbers.append(user_id)
            packet.positions.append(position)
            packet.users.add(user_id)
        self.decisions[position] = decision
        if len(self.decisions) > DECISIONS_KEPT:
            self.decisions.popitem(last=False)
        return decision

    def finish(self, packet_id: str) -> Packet | None:
        packet = self.packets.pop(packet_id, None)
        if packet is not None:
            self.finished[packet_id] = (len(packet.grabbers) >= packet.sent.count, packet.sent)
            if len(self.finished) > 100:
                self.finished.popitem(last=False)
        return packet

    def _closed_reason(self, packet_id: str) -> str:
        closed = self.finished.get(packet_id)
        return NOT_OPEN if closed is None else SOLD_OUT if closed[0] else EXPIRED

    def sent(self, packet_id: str) -> event_pb2.RedPacketSent | None:
        """An open or recently closed packet as sent."""
        packet = self.packets.get(packet_id)
        if packet is not None:
            return packet.sent
        closed = self.finished.get(packet_id)
        return closed[1] if closed is not None else None

    def precheck(self, user_id: str, packet_id: str, now_ms: int) -> None:
        """Refuse at once a grab the log is sure to refuse."""
        packet = self.packets.get(packet_id)
        if packet is None:
            raise refusal(self._closed_reason(packet_id))
        if user_id in packet.users:
            raise refusal(ALREADY_DONE)
        if len(packet.grabbers) >= packet.sent.count:
            raise refusal(SOLD_OUT)
        if now_ms >= packet.sent.end_time.ToMilliseconds():
            raise refusal(EXPIRED)

    def snapshot(self, snap: rs.RoomSnapshot) -> None:
        for packet in self.packets.values():
            snap.red_packets.add(packet=packet.sent, grabbed=len(packet.grabbers))

    def checkpoint(self, cp: checkpoint_pb2.RoomCheckpoint) -> None:
        for packet in self.packets.values():
            cp.red_packets.add(sent=packet.sent, grabber_user_ids=packet.grabbers, grab_positions=packet.positions)

    @classmethod
    def from_checkpoint(cls, cp: checkpoint_pb2.RoomCheckpoint) -> RedPacketBook:
        book = cls()
        for part in cp.red_packets:
            if len(part.grabber_user_ids) != len(part.grab_positions):
                raise ValueError("red packet checkpoint: grabbers and positions differ in length")
            book.packets[part.sent.packet_id] = Packet(
                part.sent, list(part.grabber_user_ids), list(part.grab_positions), set(part.grabber_user_ids)
            )
        return book


def summary(secret: bytes, room_id: str, packet: Packet) -> event_pb2.RedPacketFinished:
    """The closing summary of a packet: seed (random split), grabbers and their shares."""
    sent = packet.sent
    seed = b"" if sent.equal_split else seed_for(secret, room_id, sent.packet_id)
    split = shares(seed, sent.total_minor, sent.count, sent.equal_split)
    got = list(split[: len(packet.grabbers)])
    return event_pb2.RedPacketFinished(
        packet_id=sent.packet_id,
        seed=seed.hex(),
        grabber_user_ids=packet.grabbers,
        amounts_minor=got,
        currency=sent.currency,
        unclaimed_count=sent.count - len(got),
        unclaimed_minor=sent.total_minor - sum(got),
    )


def share_of(secret: bytes, room_id: str, sent: event_pb2.RedPacketSent, index: int) -> int:
    seed = b"" if sent.equal_split else seed_for(secret, room_id, sent.packet_id)
    return shares(seed, sent.total_minor, sent.count, sent.equal_split)[index]


def check_send(sent: event_pb2.RedPacketSent, now_ms: int) -> None:
    """What a range cannot say about a red packet (ranges are checked before this)."""
    from barrage.server.commerce.coupons import check_currency
    from barrage.server.core import policy

    where = "payload.red_packet_sent"
    policy.check_client_id(sent.packet_id, f"{where}.packet_id")
    policy.check_text(sent.title, 200, f"{where}.title")
    check_currency(sent.currency, f"{where}.currency")
    if sent.total_minor < sent.count:
        raise invalid(
            "INVALID_FIELD", "total_minor must be at least count (1 minor unit a share)", f"{where}.total_minor"
        )
    if sent.end_time.ToMilliseconds() <= now_ms:
        raise invalid("INVALID_FIELD", "end_time must be in the future", f"{where}.end_time")
