"""Whispers: private messages in a room, and who may read them (docs/commerce.md, "Whispers").

A whisper lives in the room's log like every event (order, durability and resume hold),
but its log record is marked with LOG_PRIORITY instead of a public priority. Every
path that turns log records into events for a client lets a record through only if
its priority is in DELIVERABLE (a whitelist: an unknown or new mark is never sent),
and hands a whisper record only to readers its Audience admits. So the filter is one
integer test per record for ordinary events; only whispers are decoded and checked
per reader. The delivered event carries PRIORITY_CRITICAL (never sampled or shed).

Audience: the sender (all of its streams), and either the one recipient the whisper
names or, with `to_staff`, the room's staff. Staff: the room's owner, its moderators
(appointed for the room, or platform moderator tokens) and services, as the node knows
them when it delivers or reads. Bots are not staff: a viewer's message to the staff
goes to people and backends, not to the shopping assistant. Nobody else reads a
whisper, whatever its standing: not another moderator (a staff-to-viewer whisper is
between the two), not a service listing history.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from barrage.server.auth import Identity
from barrage.server.core import policy
from barrage.server.core.errors import ApiError, Code, invalid
from barrage.server.log.base import LogRecord
from barrage.v1 import event_pb2

LOG_PRIORITY = policy.WHISPER
"""The log record's priority of a whisper (120, reserved in the public Priority enum)."""
EVENT_PRIORITY = event_pb2.PRIORITY_CRITICAL
"""What the delivered Event says: a whisper is never sampled away nor shed."""
DELIVERABLE = frozenset(
    {
        event_pb2.PRIORITY_UNSPECIFIED,
        event_pb2.PRIORITY_CRITICAL,
        event_pb2.PRIORITY_NORMAL,
        event_pb2.PRIORITY_EPHEMERAL,
    }
)
"""Record priorities any subscriber may receive. Anything else (checkpoints, whispers,
a mark a newer build invents) is never sent unless a path knows it: fail closed."""

_STAFF = frozenset({policy.S_OWNER, policy.S_MODERATOR, policy.S_SERVICE})


@dataclass(frozen=True, slots=True)
class Audience:
    """Who may read one whisper."""

    sender_id: str
    recipient_id: str
    """The one user it is for; "" when to_staff."""
    to_staff: bool
    moderators: frozenset[str]
    """The room's appointed moderators when it was read (only looked at when to_staff)."""


def audience_of(event: event_pb2.Event, moderators: Collection[str]) -> Audience:
    """The audience of a whisper event (moderators: the room's, as the node knows them)."""
    w = event.payload.whisper
    return Audience(
        sender_id=event.sender.user_id,
        recipient_id=w.recipient_user_id,
        to_staff=w.to_staff,
        moderators=frozenset(moderators) if w.to_staff else frozenset(),
    )


def is_staff(who: Identity, room_id: str, owner_user_id: str, moderators: Collection[str]) -> bool:
    return policy.standing(who, room_id, owner_user_id, moderators) in _STAFF


def admits(audience: Audience, who: Identity, room_id: str, owner_user_id: str) -> bool:
    """May `who` read this whisper? (Its sender, its recipient, or staff when to_staff.)

    An empty user id never matches (a whisper always names one or is to_staff)."""
    user = who.user_id
    if not user:
        return False
    if user == audience.sender_id or (audience.recipient_id and user == audience.recipient_id):
        return True
    return audience.to_staff and is_staff(who, room_id, owner_user_id, audience.moderators)


def readable(
    records: Iterable[LogRecord], who: Identity, owner_user_id: str, moderators: Collection[str]
) -> Iterator[LogRecord]:
    """The records `who` may receive, in order: every deliverable one, and the whispers
    its audience admits. Used by every read of the log for a client (replay, ListEvents)."""
    for record in records:
        priority = record.priority
        if priority in DELIVERABLE:
            yield record
        elif priority == LOG_PRIORITY:
            try:
                event = event_pb2.Event.FromString(record.payload)
            except Exception:  # bytes that do not parse are not sent to anyone
                continue
            if event.payload.WhichOneof("kind") != "whisper":
                continue  # a mark on something else: not sent (fail closed)
            if admits(audience_of(event, moderators), who, record.room_id, owner_user_id):
                yield record


def check_post(who: Identity, where: str, whisper: event_pb2.Whisper) -> None:
    """Authority over a whisper's audience (after policy.check_payload validated it).

    Staff and bots may whisper to one user or to the staff; a viewer only to the staff
    (a forged recipient is PERMISSION_DENIED WHISPER_FORBIDDEN); nobody to itself."""
    if whisper.recipient_user_id == who.user_id:
        raise invalid("INVALID_FIELD", "a whisper to yourself", "payload.whisper.recipient_user_id")
    if whisper.recipient_user_id and where not in (*_STAFF, policy.S_BOT):
        raise ApiError(
            Code.PERMISSION_DENIED,
            "WHISPER_FORBIDDEN",
            f"a {where} may whisper only to the room's staff (set to_staff)",
            metadata={"field": "payload.whisper.recipient_user_id", "standing": where},
        )
