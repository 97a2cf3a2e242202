"""What a post is on its way in (Post), to the log (Entry) and back out (Posted).

Plain values with no behaviour, so that every part of the node (the gateway, the
commerce folds, the sessions, telemetry) may import them without importing the gateway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from barrage.v1 import event_pb2


@dataclass(frozen=True, slots=True)
class Post:
    """One event a participant asks to post."""

    key: str
    """client_msg_id or request_id: the dedupe key within (sender, room)."""
    payload: event_pb2.Payload
    traceparent: str = ""
    tracestate: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One event to append, as prepared from a post."""

    payload: event_pb2.Payload
    priority: int
    dedupe_key: str
    """Full dedupe key within the room."""


@dataclass(frozen=True, slots=True)
class Posted:
    cursor: str
    event_id: str
    duplicate: bool
    claim_id: str = ""
    """A coupon claim's id, as the log decided it (server/commerce/giveaways.py)."""
    grabbed: event_pb2.Money | None = None
    """A red packet grab's share, as the log decided it."""
    replaced: bool = False
    """The moderation hook replaced the text; the event carries `replaced_text`."""
    replaced_text: str = ""


def timestamp_now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts
