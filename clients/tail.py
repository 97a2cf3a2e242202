"""`barrage tail`: a room's events as JSON lines, from a cursor (or live), then following.

stdout carries only events, one JSON object per line (protobuf's canonical JSON
mapping), so it pipes into jq or a file; notices (omitted events, a cursor that could
not be resumed) go to stderr. Resume later with the last line's "cursor".
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from barrage.v1 import event_pb2, room_service_pb2
from clients.sdk import Client, ClientOptions, Omitted, ResumeGap, SubscriptionEnded, TokenSource

PRESENCE_AND_COUNTERS = frozenset({"viewer_count", "viewer_joined", "viewer_left", "like_burst", "poll_tally"})
"""Left out by default: in a short show they were half of the stored events and nobody reads them."""


def kind_filter(kinds: Sequence[str], everything: bool) -> Callable[[event_pb2.Event], bool]:
    """Which events `tail` and `history` print: the kinds named, else all but presence and counters."""
    named = frozenset(kind.strip() for group in kinds for kind in group.split(",") if kind.strip())
    unknown = named - set(event_pb2.Payload.DESCRIPTOR.fields_by_name)
    if unknown:
        known = ", ".join(sorted(event_pb2.Payload.DESCRIPTOR.fields_by_name))
        raise ValueError(f"unknown event kind(s) {', '.join(sorted(unknown))}; kinds are: {known}")
    if named:
        return lambda event: event.payload.WhichOneof("kind") in named
    if everything:
        return lambda event: True
    return lambda event: event.payload.WhichOneof("kind") not in PRESENCE_AND_COUNTERS


def to_json_line(message: Message) -> str:
    """One message as compact JSON on one line (newlines inside text stay escaped)."""
    return json_format.MessageToJson(message, indent=None, ensure_ascii=False)


async def tail(
    target: str,
    token: TokenSource,
    room_id: str,
    *,
    from_cursor: str = "",
    history: int = 0,
    wanted: Callable[[event_pb2.Event], bool] = lambda event: True,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print the `wanted` events until the room closes (0) or the subscription fails (1)."""
    options = ClientOptions(client_agent="barrage-tail/0.1")
    async with Client(target, token, options=options) as client:
        room = await client.join(room_id, resume_cursor=from_cursor, history_limit=0 if from_cursor else history)
        async for item in room:
            if isinstance(item, event_pb2.Event):
                if wanted(item):
                    out.write(to_json_line(item) + "\n")
                    out.flush()
            elif isinstance(item, Omitted):
                print(f"barrage tail: {item.count} events of {room_id} omitted here (history has them)", file=err)
            elif isinstance(item, ResumeGap):
                too_old = item.outcome == room_service_pb2.RESUME_OUTCOME_CURSOR_TOO_OLD
                outcome = "older than the retention" if too_old else "unknown to this room's log"
                print(
                    f"barrage tail: cursor {item.cursor!r} is {outcome}: events after it may be missing; "
                    f"following from {_head(item.snapshot.head_cursor)}",
                    file=err,
                )
            elif isinstance(item, SubscriptionEnded):
                if item.error is not None:
                    print(f"barrage tail: {item.error}", file=err)
                    return 1
                return 0
    return 0


def _head(cursor: str) -> str:
    return f"the room's newest event ({cursor})" if cursor else "the room's start (it has no events yet)"
