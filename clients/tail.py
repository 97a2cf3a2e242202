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

from barrage.clients.sdk import Client, ClientOptions, Omitted, ResumeGap, SubscriptionEnded, TokenSource
from barrage.v1 import event_pb2, room_service_pb2

PRESENCE_AND_COUNTERS = frozenset({
    "viewer_count", "viewer_joined", "viewer_left", "like_burst", "poll_tally", "media_clock",
    "leaderboard", "audience",
})  # fmt: skip
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
                print(resume_gap_line(item), file=err)
            elif isinstance(item, SubscriptionEnded):
                if item.error is not None:
                    print(f"barrage tail: {item.error}", file=err)
                    return 1
                return 0
    return 0


def resume_gap_line(gap: ResumeGap) -> str:
    """One line saying why the cursor was not resumed and where printing starts instead."""
    if gap.outcome == room_service_pb2.RESUME_OUTCOME_CURSOR_TOO_OLD:
        why = f"is older than room {gap.room_id}'s retention: events after it may be missing"
    else:
        why = (
            f"is not a cursor of room {gap.room_id} (another room's, beyond its newest event, "
            "from a recreated log, or mistyped): nothing was resumed"
        )
    head = gap.snapshot.head_cursor
    then = f"following live from the room's newest event {head}" if head else "following live (no events yet)"
    cursor = gap.cursor if len(gap.cursor) <= 80 else gap.cursor[:80] + "..."
    return f"barrage tail: cursor {cursor!r} {why}; {then}"
