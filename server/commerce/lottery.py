"""Provably fair lottery draws (the algorithm is documented on LotteryDrawn in event.proto).

The seed is derived, not stored: seed = HMAC-SHA256(server secret, room id + lottery
id). Any node of the cluster can therefore reveal it at draw time without sharing
state, and the commitment SHA-256(seed) published at the start fixes it before any
entry exists, so the server cannot change it once it sees who entered.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def seed_for(secret: bytes, room_id: str, lottery_id: str) -> bytes:
    return hmac.new(secret, f"lottery\x00{room_id}\x00{lottery_id}".encode(), hashlib.sha256).digest()


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def draw(seed: bytes, entrants: Iterable[str], winners_count: int) -> tuple[list[str], list[str]]:
    """(sorted entrants, winners in draw order): a partial Fisher-Yates shuffle."""
    pool = sorted(set(entrants), key=lambda user: user.encode())
    ordered = list(pool)
    n = len(pool)
    for i in range(min(winners_count, n)):
        h = int.from_bytes(hashlib.sha256(seed + str(i).encode()).digest(), "big")
        j = i + h % (n - i)
        pool[i], pool[j] = pool[j], pool[i]
    return ordered, pool[: min(winners_count, n)]
