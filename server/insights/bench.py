"""Fold and snapshot cost of the insights engine on a comment-heavy mega-room mix (one core).

python -m barrage.server.insights.bench [--events 200000]
"""

from __future__ import annotations

import argparse
import random
import time

from barrage.server.insights.engine import InsightsConfig, RoomInsights
from barrage.v1 import event_pb2 as e

TEXTS = (
    "主播好美", "这个多少钱？", "how much is it?", "口红包邮吗", "好看好看", "已下单", "666", "lipstick so pretty",
    "适合敏感肌吗", "什么时候发货",
)  # fmt: skip


def events(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    t0 = 1_795_000_000_000
    card = e.Product(product_id="lip", title="Dior 999 口红 Lipstick", price=e.Money(amount_minor=1, currency="CNY"))
    pin = e.Event(payload=e.Payload(product_pinned=e.ProductPinned(product=card)))
    pin.publish_time.FromMilliseconds(t0)
    out = [pin.SerializeToString()]
    for i in range(count):
        r = rng.random()
        if r < 0.7:
            text = rng.choice(TEXTS)
            question = any(mark in text for mark in ("?", "？", "吗", "什么"))
            payload = e.Payload(comment=e.Comment(text=text, question=question))
        elif r < 0.85:
            payload = e.Payload(viewer_joined=e.ViewerJoined())
        elif r < 0.95:
            payload = e.Payload(viewer_left=e.ViewerLeft())
        else:
            payload = e.Payload(like_burst=e.LikeBurst(delta=10))
        sender = e.Sender(user_id=f"u{rng.randrange(20_000)}", role=e.ROLE_VIEWER)
        event = e.Event(room_id="r", event_id=f"e{i}", sender=sender, payload=payload)
        event.publish_time.FromMilliseconds(t0 + i * 5)
        out.append(event.SerializeToString())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    raw = events(args.events)
    engine = RoomInsights("r", InsightsConfig())
    start = time.perf_counter()
    for position, data in enumerate(raw):
        engine.fold(position, e.Event.FromString(data))
    took = time.perf_counter() - start
    print(f"fold: {len(raw) / took:,.0f} events/s, {took / len(raw) * 1e6:.1f} µs an event (decode included)")
    start = time.perf_counter()
    for _ in range(5):
        engine.snapshot("bench")
    snapshot_ms = (time.perf_counter() - start) / 5 * 1000
    print(f"snapshot of the whole show: {snapshot_ms:.1f} ms ({len(engine.audience.viewers):,} viewers)")


if __name__ == "__main__":
    main()
