"""Per-event CPU of media_time at ingest (docs/performance.md, "Media time").

What Gateway.append does per event to encode it, before this change (SerializeToString)
and now (media_clock.serialized), in a room without and with a media clock. The best of
seven repeats, so that a busy machine's noise counts least.

    .venv/bin/python -m barrage.loadtest.media_time_bench
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from barrage.server.commerce.state import RoomState
from barrage.server.core import media_clock
from barrage.server.core.posts import timestamp_now
from barrage.v1 import event_pb2

ROUNDS = 200_000


def main() -> None:
    no_clock = RoomState("r")
    with_clock = RoomState("r")
    report = event_pb2.Event(publish_time=timestamp_now())
    report.payload.media_clock.timeline_id = "live-2026-12-06-1"
    report.payload.media_clock.position.FromMilliseconds(3_600_000)
    with_clock.fold(1, report)
    payload = event_pb2.Payload(comment=event_pb2.Comment(text="这个多少钱？ loadtest comment #12345"))
    sender = event_pb2.Sender(user_id="viewer-1", display_name="Viewer 1", role=event_pb2.ROLE_VIEWER)
    publish_time = timestamp_now()
    event = event_pb2.Event(
        room_id="lt-mega-room-1",
        event_id="0123456789abcdef0000000000000001",
        sender=sender,
        publish_time=publish_time,
        priority=event_pb2.PRIORITY_NORMAL,
        client_msg_id="m-1",
        payload=payload,
    )
    cases: list[tuple[str, Callable[[], bytes]]] = [
        ("before: SerializeToString", event.SerializeToString),
        ("serialized, room without clock", lambda: media_clock.serialized(event, payload, publish_time, no_clock)),
        ("serialized, room with clock", lambda: media_clock.serialized(event, payload, publish_time, with_clock)),
    ]
    for name, run in cases:
        best = min(timeit.repeat(run, number=ROUNDS, repeat=7)) / ROUNDS * 1e6
        print(f"{name:32s} {best:.3f} µs  ({len(run())} bytes)")


if __name__ == "__main__":
    main()
