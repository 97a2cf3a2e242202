"""What the core reports as it works: the interface it calls, which telemetry implements.

The core (and the commerce folds) import this module, never server/telemetry: the
dependency points from telemetry to the core. server/telemetry/hooks.py installs its
implementation when telemetry is turned on (`install`); until then `current` is the
no-op `Observer` and `ON` is False.

Hot paths test `observer.ON` first (a module global: ~30 ns when telemetry is off), so
that building a call's arguments costs nothing unless someone listens. Rare reports
(a skipped fold) may call `current` directly: the default does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from barrage.server.core.hub import Channel
    from barrage.server.core.outbox import Frame
    from barrage.server.core.posts import Posted
    from barrage.server.log.base import AppendResult, LogEntry, LogRecord
    from barrage.v1 import event_pb2, room_service_pb2


class FrameStamp(Protocol):
    """Attached to a room frame at flush while someone observes: what its writes report."""

    def written(self, queued_bytes: int) -> None:
        """The frame was handed to one subscriber's stream (once per subscriber: cheap)."""

    def shed(self) -> None:
        """The frame was shed from a slow stream's queue (its events reported as omitted)."""

    def lagged(self) -> None:
        """A critical frame overflowed a stream's queue: the subscription must resume."""

    def queued(self) -> None:
        """The flush queued the frame on every subscriber."""


class Observer:
    """The core's reports, in the order one message meets them (docs/observability.md).
    This base class ignores them all; telemetry overrides what it records."""

    def send_received(self, user_id: str, send: room_service_pb2.Send) -> None:
        """A send frame arrived on a stream (before rate limits and checks)."""

    def send_answered(self, user_id: str, send: room_service_pb2.Send, outcome: Posted | Exception) -> None:
        """The send's SendResult was queued: OK (Posted) or refused (ApiError)."""

    def moderation_reviewed(self, outcome: str, effect: str, seconds: float) -> None:
        """The moderation hook reviewed a post (server/core/moderation.py)."""

    def append_started(
        self,
        user_id: str,
        room_id: str,
        payloads: Sequence[event_pb2.Payload],
        client_ids: Sequence[str],
        records: list[LogEntry],
    ) -> tuple[list[LogEntry], object | None]:
        """Entries are about to be appended. Returns the entries to append (an observer may
        add trace context to them) and a token for append_done or append_failed."""
        return records, None

    def append_done(self, appending: object, results: Sequence[AppendResult]) -> None:
        """The log confirmed the append that append_started returned `appending` for."""

    def append_failed(self, appending: object, error: BaseException) -> None:
        """The append that append_started returned `appending` for failed."""

    def record_read(
        self, record: LogRecord, event: event_pb2.Event, kind: str | None, epoch_of: Callable[[str], str]
    ) -> None:
        """A live record reached this node's listener for a room it serves (once per node)."""

    def flushed(self, ch: Channel, full: Frame, sampled: Frame) -> tuple[Frame, Frame]:
        """A room flushed (once per room per tick): returns the frames, stamped for their writes."""
        return full, sampled

    def channel_dropped(self, room_id: str) -> None:
        """The node stopped serving a room."""

    def continuity(self, what: str, n: int = 1) -> None:
        """A live-delivery continuity check failed (`room_gap`: a room's live stream skipped records)."""

    def fold_skipped(self, fold: str, kind: str) -> None:
        """A fold (room_state, checkpoint, insights) skipped an event it could not apply."""


current: Observer = Observer()
"""Who hears the core's reports (the no-op default until telemetry installs its own)."""
ON = False
"""Someone other than the default listens: hot paths report."""


def install(observer: Observer | None) -> None:
    """Make `observer` hear the core's reports; None restores the no-op default."""
    global current, ON  # noqa: PLW0603 - module globals are what the hot path tests
    current = observer if observer is not None else Observer()
    ON = observer is not None
