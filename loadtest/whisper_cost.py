"""What whispers cost the fan-out hot path, measured in-process (no network noise).

    python -m barrage.loadtest.whisper_cost [--subscribers 10000] [--events 20] [--ticks 200]

Drives the real hub (server/core/hub.py): a room with `subscribers` viewers, ticks of
`events` comments. Prints the CPU time of one flush (taking the tick's frames and
queueing them to every subscriber) for a tick of comments only, and for the same tick
holding one whisper to one viewer (the hub then asks every subscriber whether the
whisper is theirs, and builds the recipient's own frame). Subscribers only record the
frames (no outbox, no stream write: those are the same with or without whispers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from barrage.server.auth import Identity
from barrage.server.core import whisper
from barrage.server.core.hub import Hub
from barrage.server.core.outbox import Frame
from barrage.server.log.base import LogRecord
from barrage.v1 import event_pb2


class _Viewer:
    __slots__ = ("full", "identity", "last", "min_position", "user_id")

    def __init__(self, user: str) -> None:
        self.identity = Identity(user_id=user, display_name=user, role=event_pb2.ROLE_VIEWER, expires_at=float("inf"))
        self.user_id = user
        self.min_position = -1
        self.full = False
        self.last: Frame | None = None

    def deliver(self, frame: Frame) -> None:
        self.last = frame

    def may_read(self, audience: whisper.Audience) -> bool:  # as gateway.Member does
        return whisper.admits(audience, self.identity, "bench", "host")


def _record(position: int, payload: event_pb2.Payload, priority: int) -> LogRecord:
    event = event_pb2.Event(room_id="bench", event_id=str(position), sender=event_pb2.Sender(user_id="host"))
    event.payload.CopyFrom(payload)
    return LogRecord("bench", position, event.SerializeToString(), priority)


async def _run(subscribers: int, events: int, ticks: int, with_whisper: bool) -> float:
    """CPU µs per flush."""
    hub = Hub(epoch_of=lambda _room: "e", interval_s=3600.0, max_frame_bytes=1 << 30, recent_per_room=64)
    ch = hub.channel("bench")
    for i in range(subscribers):
        hub.attach(ch, _Viewer(f"viewer-{i}"))
    comment = event_pb2.Payload(comment=event_pb2.Comment(text="how much is the red one?"))
    secret = event_pb2.Payload(whisper=event_pb2.Whisper(text="your prize code", recipient_user_id="viewer-7"))
    audience = whisper.Audience("host", "viewer-7", False, frozenset())
    position = 0
    spent = 0.0
    for _ in range(ticks):
        items: list[tuple[LogRecord, str | None]] = []
        audiences: dict[tuple[str, int], whisper.Audience] = {}
        for _ in range(events):
            items.append((_record(position, comment, event_pb2.PRIORITY_NORMAL), None))
            position += 1
        if with_whisper:
            items.append((_record(position, secret, whisper.LOG_PRIORITY), None))
            audiences[("bench", position)] = audience
            position += 1
        ch.next_flush = float("inf")  # hold the tick: measure the flush alone
        hub.on_records(items, audiences)
        start = time.process_time()
        hub.flush(ch)
        spent += time.process_time() - start
    return spent * 1e6 / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20, help="comments per tick")
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    plain = min(asyncio.run(_run(args.subscribers, args.events, args.ticks, False)) for _ in range(3))
    private = min(asyncio.run(_run(args.subscribers, args.events, args.ticks, True)) for _ in range(3))
    result = {
        "subscribers": args.subscribers,
        "comments_per_tick": args.events,
        "flush_us_comments_only": round(plain, 1),
        "flush_us_with_one_whisper": round(private, 1),
        "extra_us_per_subscriber_in_a_whisper_tick": round((private - plain) / args.subscribers, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
