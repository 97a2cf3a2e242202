"""What leaderboards and the audience list cost a node: a focused benchmark.

Measures, in one process, the parts a node runs (server/commerce/leaderboard.py,
audience.py, through RoomState.fold so the range checks every event gets are counted):

- the fold of one gift with G gifters already ranked, and the top-N / own-rank reads;
- the fold of one join with V viewers present, and one refresh of the audience list
  at V = 100,000: building the list, encoding the event, and its bytes on the wire;
- forgetting a dead node's third of the audience (the one O(V) step).

    python -m barrage.loadtest.boards_bench [--viewers 100000] [--gifters 100000] \\
        [--out loadtest/results/boards_bench.json]

Prints a summary and writes JSON (CPU times are process time, per operation).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

from barrage.server.commerce.leaderboard import Board
from barrage.server.commerce.state import RoomState
from barrage.v1 import event_pb2

ROOM = "bench-room"


def _event(kind: str, sender: event_pb2.Sender, payload: event_pb2.Payload) -> event_pb2.Event:
    event = event_pb2.Event(
        room_id=ROOM, event_id="e", sender=sender, priority=event_pb2.PRIORITY_NORMAL, payload=payload
    )
    event.publish_time.FromMilliseconds(int(time.time() * 1000))
    return event


def _viewer(i: int) -> event_pb2.Sender:
    return event_pb2.Sender(
        user_id=f"viewer-{i:06d}",
        display_name=f"观众 {i}",
        role=event_pb2.ROLE_VIEWER,
        level=i % 60,
        badges=["fan-club.hana", "vip"] if i % 5 == 0 else [],
    )


def _per_op(count: int, run: Callable[[int], object]) -> float:
    """CPU microseconds per call of run(i), i in range(count)."""
    start = time.process_time()
    for i in range(count):
        run(i)
    return (time.process_time() - start) / count * 1e6


def _gift_events(count: int, gifters: int, rng: random.Random) -> list[event_pb2.Event]:
    """`count` gifts: each of `gifters` users' first gift, then gifts by random ones."""
    service = event_pb2.Sender(user_id="gift-service", role=event_pb2.ROLE_SERVICE)
    events = []
    for i in range(count):
        user = i if i < gifters else rng.randrange(gifters)
        payload = event_pb2.Payload(
            gift=event_pb2.Gift(
                gift_id="rose",
                count=1 + rng.randrange(10),
                unit_value=event_pb2.Money(amount_minor=rng.choice((100, 1000, 5200, 52000)), currency="CNY"),
                giver=event_pb2.Sender(user_id=f"viewer-{user:06d}", display_name=f"观众 {user}", level=user % 60),
            )
        )
        events.append(_event("gift", service, payload))
    return events


def _fold_us(state: RoomState, events: list[event_pb2.Event], first: int) -> float:
    """CPU microseconds per RoomState.fold (range checks and all) of prebuilt events."""
    start = time.process_time()
    for i, event in enumerate(events):
        state.fold(first + i, event)
    return (time.process_time() - start) / len(events) * 1e6


def bench_leaderboard(gifters: int, size: int) -> dict[str, float | int]:
    rng = random.Random(7)
    more = 50_000
    events = _gift_events(gifters + more, gifters, rng)
    state = RoomState(ROOM)
    fill_us = _fold_us(state, events[:gifters], 0)
    fold_us = _fold_us(state, events[gifters:], gifters)
    # The ranking's own share of a fold: the same gifts into a bare Board.
    board = Board()
    gifts = [e.payload.gift for e in events]
    for i in range(gifters):
        board.add_gift(i, gifts[i])
    add_us = _per_op(more, lambda i: board.add_gift(gifters + i, gifts[gifters + i]))
    top_us = _per_op(1_000, lambda _: event_pb2.Payload(leaderboard=board.top(size)).SerializeToString())
    encoded = len(event_pb2.Payload(leaderboard=board.top(size)).SerializeToString())
    users = [f"viewer-{rng.randrange(gifters):06d}" for _ in range(10_000)]
    rank_us = _per_op(len(users), lambda i: board.entry_of(users[i]))
    return {
        "gifters": gifters,
        "size": size,
        "fold_first_gift_us": round(fill_us, 2),
        "fold_gift_us": round(fold_us, 2),
        "board_add_gift_us": round(add_us, 2),
        "top_encode_us": round(top_us, 2),
        "board_payload_bytes": encoded,
        "own_rank_us": round(rank_us, 2),
    }


def bench_audience(viewers: int, size: int) -> dict[str, float | int]:
    state = RoomState(ROOM)
    nodes = ("node-a", "node-b", "node-c")

    def presence(i: int, joined: bool) -> event_pb2.Event:
        node = nodes[i % 3]
        payload = (
            event_pb2.Payload(viewer_joined=event_pb2.ViewerJoined(node_id=node))
            if joined
            else event_pb2.Payload(viewer_left=event_pb2.ViewerLeft(node_id=node))
        )
        return _event("presence", _viewer(i), payload)

    joins = [presence(i, True) for i in range(viewers)]
    join_us = _fold_us(state, joins, 0)
    position = viewers
    # Churn, the steady state of a big room: a leave and a join again.
    churn = [presence(i, joined) for i in range(20_000) for joined in (False, True)]
    churn_us = _fold_us(state, churn, position)
    position += len(churn)

    def refresh(_: int) -> bytes:
        shown = state.audience.view(size, "recent", state.board)
        return event_pb2.Payload(audience=shown).SerializeToString()

    refresh_us = _per_op(1_000, refresh)
    refresh_bytes = len(refresh(0))
    default_size = 20  # the server's default --audience-size
    default_bytes = len(
        event_pb2.Payload(audience=state.audience.view(default_size, "recent", state.board)).SerializeToString()
    )
    # Contributors first: 1,000 gifters among the audience.
    gifts = _gift_events(1_000, 1_000, random.Random(3))
    for i, event in enumerate(gifts):
        event.payload.gift.giver.CopyFrom(_viewer(i * 97 % viewers))
        state.fold(position + i, event)
    contributors_us = _per_op(
        1_000,
        lambda _: event_pb2.Payload(
            audience=state.audience.view(size, "contributors", state.board)
        ).SerializeToString(),
    )
    present = len(state.audience.present)
    start = time.process_time()
    state.audience.forget_nodes({"node-c"})
    forget_ms = (time.process_time() - start) * 1000
    return {
        "viewers": viewers,
        "present": present,
        "size": size,
        "fold_join_us": round(join_us, 2),
        "fold_churn_event_us": round(churn_us, 2),
        "refresh_cpu_us": round(refresh_us, 2),
        "refresh_payload_bytes": refresh_bytes,
        "refresh_payload_bytes_size_20": default_bytes,
        "refresh_contributors_cpu_us": round(contributors_us, 2),
        "forget_dead_node_ms": round(forget_ms, 2),
        "present_after_forget": len(state.audience.present),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100_000)
    parser.add_argument("--gifters", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100, help="leaderboard and audience list size")
    parser.add_argument("--out", default="loadtest/results/boards_bench.json")
    args = parser.parse_args()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "leaderboard": bench_leaderboard(args.gifters, args.size),
        "audience": bench_audience(args.viewers, args.size),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
