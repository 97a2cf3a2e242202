"""A room's gift contribution ranking (排行榜), folded from the room's gift events.

Every node folds the same log, so every node holds the same ranking at the same
position. The order is a total one, decided by the log alone: a higher value first;
on equal values, whoever reached the value first (the lower log position of the gift
that brought the user there); the user id last (two users cannot reach a value at
one position, but a checkpoint written by another version might say so).

A sorted list (sortedcontainers) keyed by that order keeps a gift's fold at
O(log n) and answers both the top N (O(N)) and any user's own rank (O(log n)) with
many gifters; loadtest/boards_bench.py measures it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from sortedcontainers import SortedList

from barrage.server.commerce import checkpoint_pb2
from barrage.server.core import ranges
from barrage.v1 import event_pb2

CHECKPOINT_GIFTERS = 5_000
"""Gifters a checkpoint keeps (the best): 5,000 at ~60 bytes each keep it well under a
Kafka record's default 1 MB. After a rebuild from a checkpoint a user below that rank
starts again from the gifts it gives afterwards (docs/commerce.md "Leaderboard")."""

Key = tuple[int, int, str]


@dataclass(slots=True)
class Gifter:
    user: event_pb2.Sender
    """As the user's latest gift named it (display name, level, badges)."""
    value: int
    gifts: int
    reached: int
    """Log position of the gift that brought the user to `value`."""

    def key(self) -> Key:
        return (-self.value, self.reached, self.user.user_id)


class Board:
    """The ranking of one room."""

    __slots__ = ("_order", "closed", "dirty", "gifter_count", "gifters", "published_ms", "total")

    def __init__(self) -> None:
        self.gifters: dict[str, Gifter] = {}
        self._order: SortedList[Key] = SortedList()
        self.total = 0
        self.gifter_count = 0
        """Users who gave (also those a checkpoint did not keep)."""
        self.dirty = False
        """A gift was folded after the latest Leaderboard event: the live board is stale."""
        self.published_ms = 0
        """publish_time of the latest Leaderboard event folded."""
        self.closed = False
        """The room closed: nothing more is published."""

    def add_gift(self, position: int, gift: event_pb2.Gift) -> None:
        """Fold one gift event (its values were range-checked by the fold)."""
        user_id = gift.giver.user_id
        if not user_id:
            return  # a gift without a giver ranks nobody
        value = gift.count * gift.unit_value.amount_minor
        gifter = self.gifters.get(user_id)
        if gifter is None:
            gifter = self.gifters[user_id] = Gifter(event_pb2.Sender(), 0, 0, position)
            gifter.user.CopyFrom(gift.giver)
            self.gifter_count += 1
        else:
            self._order.remove(gifter.key())
            gifter.user.CopyFrom(gift.giver)
        if value:
            gifter.value = min(gifter.value + value, ranges.MAX_SUM_MINOR)
            gifter.reached = position
        gifter.gifts = min(gifter.gifts + gift.count, ranges.MAX_TOTAL)
        self._order.add(gifter.key())
        self.total = min(self.total + value, ranges.MAX_SUM_MINOR)
        self.dirty = True

    def published(self, when_ms: int) -> None:
        """A Leaderboard event was folded: it shows everything folded before it."""
        self.dirty = False
        self.published_ms = when_ms

    def _ranked(self, start: int = 0) -> Iterator[tuple[int, Gifter]]:
        for rank, (_, _, user_id) in enumerate(islice(self._order, start, None), start + 1):
            yield rank, self.gifters[user_id]

    def top(self, size: int, *, final: bool = False) -> event_pb2.Leaderboard:
        board = event_pb2.Leaderboard(gifter_count=self.gifter_count, total_value_minor=self.total, final=final)
        for rank, gifter in islice(self._ranked(), size):
            board.entries.append(_entry(rank, gifter))
        return board

    def entry_of(self, user_id: str) -> event_pb2.LeaderboardEntry | None:
        """The user's own place, however far down; None if it gave nothing."""
        gifter = self.gifters.get(user_id)
        if gifter is None:
            return None
        return _entry(self._order.index(gifter.key()) + 1, gifter)

    def ranked_users(self, limit: int) -> Iterator[tuple[str, int]]:
        """(user id, value) of the best `limit` gifters, best first."""
        for _, gifter in islice(self._ranked(), limit):
            yield gifter.user.user_id, gifter.value

    def value_of(self, user_id: str) -> int:
        gifter = self.gifters.get(user_id)
        return gifter.value if gifter is not None else 0

    def checkpoint(self, cp: checkpoint_pb2.RoomCheckpoint) -> None:
        for _, gifter in islice(self._ranked(), CHECKPOINT_GIFTERS):
            cp.gifters.add(
                user=gifter.user, value_minor=gifter.value, gift_count=gifter.gifts, reached_position=gifter.reached
            )
        cp.gifter_count = self.gifter_count
        cp.gift_total_minor = self.total
        cp.leaderboard_dirty = self.dirty
        if self.published_ms:
            cp.leaderboard_time.FromMilliseconds(self.published_ms)

    @classmethod
    def from_checkpoint(cls, cp: checkpoint_pb2.RoomCheckpoint) -> Board:
        board = cls()
        for kept in cp.gifters:
            user_id = kept.user.user_id
            if not user_id or user_id in board.gifters:
                raise ValueError(f"checkpoint gifter {user_id!r} is empty or repeated")
            gifter = Gifter(kept.user, kept.value_minor, kept.gift_count, kept.reached_position)
            board.gifters[user_id] = gifter
            board._order.add(gifter.key())
        board.gifter_count = max(cp.gifter_count, len(board.gifters))
        board.total = cp.gift_total_minor
        board.dirty = cp.leaderboard_dirty
        if cp.HasField("leaderboard_time"):
            board.published_ms = int(cp.leaderboard_time.ToMilliseconds())
        return board


def _entry(rank: int, gifter: Gifter) -> event_pb2.LeaderboardEntry:
    return event_pb2.LeaderboardEntry(rank=rank, user=gifter.user, value_minor=gifter.value, gift_count=gifter.gifts)
