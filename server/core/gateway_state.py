"""What the gateway's parts share: the node's settings, its log and directory, the hub,
the folded state of the rooms it watches, their members, and the per-user budgets.

The parts (rebuild, watching, ingest, rooms, history, live, replay) are mixins over
this class, composed by Gateway (server/core/gateway.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from barrage.server.auth import Identity
from barrage.server.commerce import giveaways
from barrage.server.commerce.interactions import Interactions
from barrage.server.commerce.state import RoomState
from barrage.server.commerce.wordfilter import WordFilter
from barrage.server.config import Settings
from barrage.server.core import media_clock, policy
from barrage.server.core.errors import ApiError
from barrage.server.core.hub import Hub
from barrage.server.core.member import Member
from barrage.server.core.moderation import Moderation
from barrage.server.core.ratelimit import TokenBucket
from barrage.server.log.base import Backend, RoomInfo, RoomLog

log = logging.getLogger(__name__)

_MAX_USER_BUCKETS = 100_000
_CONCURRENT_REPLAY_READS = 4
REPLAY_PAGE = 500
"""Records per log read, for replays and rebuilds."""


class GatewayState:
    """The node's rooms: what every part of the gateway reads and keeps."""

    def __init__(self, settings: Settings, backend: Backend, node_id: str) -> None:
        self.settings = settings
        self.node_id = node_id
        self._log = backend.log
        self._rooms = backend.rooms
        self.hub = Hub(
            epoch_of=self._log.epoch,
            interval_s=settings.batch_interval_ms / 1000.0,
            max_frame_bytes=settings.max_frame_bytes,
            recent_per_room=settings.recent_events_per_room,
            viewer_budget_per_s=settings.viewer_budget_per_s,
            write_budget_per_s=settings.write_budget_per_s,
        )
        self.interactions = Interactions(
            word_filter=WordFilter.from_file(settings.word_filter) if settings.word_filter else WordFilter(()),
            lottery_secret=settings.lottery_secret_bytes(),
            big_gift_minor=settings.big_gift_minor,
        )
        self.states: dict[str, RoomState] = {}
        """Folded state of every room this node watches (present once rebuilt)."""
        self.likes: dict[str, int] = {}
        """Likes tapped on this node and not yet published, per room."""
        self.media_clocks = media_clock.Reports()
        self.fold_waits = giveaways.FoldWaits()
        """Answers (coupon claims, red packet grabs) waiting for the fold to reach their record."""
        self._room_cache: dict[str, RoomInfo] = {}
        self._watch_locks: dict[str, asyncio.Lock] = {}
        self._members: dict[str, set[Member]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._read_slots = asyncio.Semaphore(_CONCURRENT_REPLAY_READS)
        self._user_buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._holds: dict[str, asyncio.TimerHandle] = {}
        """Rooms watched for admin calls (no member needs them), until the timer fires."""
        self.moderation: Moderation | None = None
        """The platform's moderation hook (--moderation-hook), set by the node."""

    def user_bucket(self, who: Identity) -> TokenBucket:
        """The node's rate budget for one user across all their streams (services: unlimited)."""
        bucket = self._user_buckets.get(who.user_id)
        if bucket is None:
            rate, burst = self.settings.user_rate()
            if who.role == policy.SERVICE:
                rate = float("inf")
            bucket = self._user_buckets[who.user_id] = TokenBucket(rate, burst)
            if len(self._user_buckets) > _MAX_USER_BUCKETS:
                self._user_buckets.popitem(last=False)
        else:
            self._user_buckets.move_to_end(who.user_id)
        return bucket

    def epoch(self, room_id: str) -> str:
        return self._log.epoch(room_id)

    @property
    def room_log(self) -> RoomLog:
        return self._log

    def members(self, room_id: str) -> set[Member]:
        return self._members.get(room_id, set())


def log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    if isinstance(error, ApiError) and error.reason == "LOG_UNAVAILABLE":
        return  # the log reports its own failure, once per episode: not a traceback per append
    log.error("background task failed", exc_info=error)
