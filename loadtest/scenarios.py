"""Scenarios: who connects where, who sends what, with each scenario's defaults.

A scenario turns the command line into rooms, viewer specs and sender specs, split over
client worker processes. Room ids carry a run id so runs never share a room.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from barrage.loadtest.worker import RoomLoad, SenderSpec, ViewerSpec


@dataclass(frozen=True)
class Defaults:
    viewers: int
    rooms: int
    rate: float
    """Comments per second, all rooms together (0: closed loop, see window)."""
    critical_rate: float
    """Critical announcements per second, all rooms together."""
    duration: float
    senders: int
    sample: int
    """Decoding viewers that check every event (the rest drain)."""
    slow_fraction: float = 0.0
    churn_fraction: float = 0.0
    window: int = 0
    likes: float = 0.0
    """Likes per second, all rooms (the server folds them into like bursts)."""
    gifts: float = 0.0
    """Gifts per second, all rooms (normal priority, from a service)."""
    about: str = ""


SCENARIOS: dict[str, Defaults] = {
    "mega-room": Defaults(
        1000,
        1,
        100,
        1,
        30,
        10,
        20,
        likes=50,
        gifts=5,
        about="one room, many viewers: comments, likes, gifts, critical announcements and product pins",
    ),
    "hot-room": Defaults(1000, 1, 2000, 2, 30, 20, 20, about="one room, comments far above a viewer's reading budget"),
    "many-rooms": Defaults(2000, 200, 400, 5, 30, 13, 40, about="rooms with a long-tail (Zipf) size distribution"),
    "quiet-room": Defaults(100, 1, 5, 0, 30, 1, 100, about="latency when nothing is busy: every viewer decodes"),
    "churn": Defaults(
        1000, 10, 50, 1, 30, 5, 20, churn_fraction=0.5, about="join/leave storm: reconnects and rejoins that resume"
    ),
    "slow-viewers": Defaults(
        1000, 1, 100, 1, 30, 10, 20, slow_fraction=0.1, about="a fraction of viewers stop reading for half the run"
    ),
    "ingest": Defaults(
        0, 50, 0, 0, 20, 50, 0, window=64, about="most acknowledged sends/s: many streams, closed loop (rate 0)"
    ),
}


@dataclass
class Plan:
    rooms: list[str]
    room_viewers: list[int]
    viewers: list[ViewerSpec]
    senders: list[SenderSpec]
    kinds: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "rooms": len(self.rooms),
            "room_sizes_top10": sorted(self.room_viewers, reverse=True)[:10],
            "room_size_min": min(self.room_viewers) if self.room_viewers else 0,
            "viewers_by_kind": self.kinds,
            "senders": len(self.senders),
        }


def zipf_split(total: int, parts: int, s: float = 1.0) -> list[int]:
    """`total` split over `parts` with weights 1/(i+1)^s, at least one each if possible."""
    if parts <= 0:
        return []
    weights = [1.0 / (i + 1) ** s for i in range(parts)]
    norm = sum(weights)
    floor = 1 if total >= parts else 0
    sizes = [max(floor, int(total * w / norm)) for w in weights]
    i = 0
    while sum(sizes) < total:
        sizes[i % parts] += 1
        i += 1
    while sum(sizes) > total:
        j = max(range(parts), key=lambda k: sizes[k])
        sizes[j] -= 1
    return sizes


def build(
    scenario: str,
    run_id: str,
    viewers: int,
    rooms: int,
    rate: float,
    critical_rate: float,
    senders: int,
    sample: int,
    slow_fraction: float,
    churn_fraction: float,
    window: int,
    likes: float = 0.0,
    gifts: float = 0.0,
    web_fraction: float = 0.0,
    *,
    media_clock: float = 0.0,
    claims: float = 0.0,
) -> Plan:
    room_ids = [f"lt-{scenario}-{run_id}-{i}" for i in range(rooms)]
    sizes = zipf_split(viewers, rooms) if scenario == "many-rooms" else [viewers // rooms] * rooms
    for i in range(viewers - sum(sizes)):
        sizes[i % rooms] += 1
    # Rate per room: proportional to its audience (long tail), at least a trickle.
    weights = [max(size, 1) for size in sizes]
    norm = float(sum(weights))
    room_rates = [rate * w / norm for w in weights]
    room_critical = [critical_rate * w / norm for w in weights]
    room_likes = [likes * w / norm for w in weights]
    room_gifts = [gifts * w / norm for w in weights]
    room_claims = [claims * w / norm for w in weights]

    specs: list[ViewerSpec] = []
    kinds: dict[str, int] = {}
    slow_n = round(viewers * slow_fraction)
    churn_n = round(viewers * churn_fraction)
    sample_n = min(sample, viewers - slow_n - churn_n)
    # Special viewers are spread over rooms biggest first, so every busy room is checked.
    order = sorted(range(rooms), key=lambda r: -sizes[r])
    seats = [r for r in order for _ in range(sizes[r])]
    interleaved: list[int] = []
    by_room: dict[int, list[int]] = {}
    for index, room in enumerate(seats):
        by_room.setdefault(room, []).append(index)
    queues = [by_room[r] for r in order if r in by_room]
    while any(queues):
        for q in queues:
            if q:
                interleaved.append(q.pop(0))
    kind_of: dict[int, str] = {}
    for n, seat in enumerate(interleaved):
        if n < sample_n:
            kind_of[seat] = "sample"
        elif n < sample_n + slow_n:
            kind_of[seat] = "slow"
        elif n < sample_n + slow_n + churn_n:
            kind_of[seat] = "churn"
    web_share = 0.0
    for index, room in enumerate(seats):
        kind = kind_of.get(index, "drain")
        # WebSocket viewers spread evenly over drain and sample viewers (and so rooms).
        web = False
        if kind in ("drain", "sample") and web_fraction > 0:
            web_share += web_fraction
            web = web_share >= 1.0
            web_share -= 1.0 if web else 0.0
        counted = f"{kind}-ws" if web else kind
        kinds[counted] = kinds.get(counted, 0) + 1
        specs.append(ViewerSpec(index=index, rooms=(room_ids[room],), kind=kind, web=web))

    # Senders: with more rooms than senders each room belongs to one sender stream (at
    # most 16 rooms per stream); otherwise each room gets several senders, so no stream
    # carries a whole hot room. The first sender of a room also posts its critical events.
    sender_specs: list[SenderSpec] = []
    senders = max(1, senders)
    if rooms >= senders:
        groups: list[list[int]] = [[] for _ in range(max(senders, (rooms + 15) // 16))]
        for i, room in enumerate(order):
            groups[i % len(groups)].append(room)
        for i, group in enumerate(groups):
            rooms_of = tuple(
                RoomLoad(
                    room_ids[r],
                    room_rates[r],
                    room_critical[r],
                    room_likes[r],
                    room_gifts[r],
                    media_clock,
                    room_claims[r],
                )
                for r in group
            )
            sender_specs.append(SenderSpec(index=i, rooms=rooms_of, window=window))
    else:
        per_room = senders // rooms
        index = 0
        for r in range(rooms):
            for k in range(per_room):
                # The first sender of a room is its service (critical events, gifts); the
                # others are viewers sharing the comments and likes.
                load = RoomLoad(
                    room_ids[r],
                    room_rates[r] / per_room,
                    room_critical[r] if k == 0 else 0.0,
                    # Services may not like: the viewers among the senders do.
                    room_likes[r] / (per_room - 1) if k > 0 else 0.0,
                    room_gifts[r] if k == 0 else 0.0,
                    media_clock if k == 0 else 0.0,
                    # Viewers claim coupons, as they like.
                    room_claims[r] / (per_room - 1) if k > 0 else 0.0,
                )
                sender_specs.append(SenderSpec(index=index, rooms=(load,), window=window))
                index += 1
    return Plan(room_ids, sizes, specs, sender_specs, kinds)
