"""A room's history: cursors resolved to log positions, and pages of past events."""

from __future__ import annotations

import logging

from barrage.server.auth import Identity
from barrage.server.core import media_clock, whisper, wire
from barrage.server.core.cursor import CursorError, encode_cursor, parse_cursor
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.rooms import Rooms
from barrage.server.log.base import PositionCheck
from barrage.v1 import event_pb2

log = logging.getLogger(__name__)


class History(Rooms):
    """Reads a room's past: cursor positions and pages of events."""

    async def _position(self, room_id: str, cursor: str) -> int:
        """The position a cursor of this room names, or ApiError FAILED_PRECONDITION with
        CURSOR_UNKNOWN (not a cursor, another numbering, or no record of the room there:
        another room's cursor, one beyond the head) or CURSOR_TOO_OLD (left retention).

        One status for every cursor that cannot be resumed, garbage included: a cursor
        is opaque, so a client cannot tell garbage from a foreign cursor and has one
        thing to do (start again without it). See server/core/cursor.py.
        """
        try:
            parsed = parse_cursor(cursor)
        except CursorError as exc:
            raise _cursor_unknown(str(exc)) from None
        if parsed.epoch != self._log.epoch(room_id):
            raise _cursor_unknown("cursor is from another numbering (another room's partition, or a recreated log)")
        check = await self._log.check_position(room_id, parsed.position)
        if check is PositionCheck.NOT_RETAINED:
            raise ApiError(
                Code.FAILED_PRECONDITION,
                "CURSOR_TOO_OLD",
                "cursor is older than the log's retention",
                metadata={"field": "cursor"},
            )
        if check is not PositionCheck.RECORD:
            raise _cursor_unknown(f"cursor is not an event of room {room_id!r} (another room's, or beyond its newest)")
        return parsed.position

    async def list_events(
        self, who: Identity, room_id: str, cursor: str, backward: bool, page_size: int,
        media_time: event_pb2.MediaTime | None = None,
    ) -> tuple[list[bytes], str]:  # fmt: skip
        """A page of complete Event bytes and the cursor for the next page ("" at the end);
        with `media_time`, the page starting where the show reached it (media_clock.first_at)."""
        info = await self.authority(who, room_id, "list_events")
        size = page_size or 100
        if not 1 <= size <= 1000:
            raise ApiError(
                Code.INVALID_ARGUMENT, "INVALID_FIELD", "page_size must be 1 to 1000", metadata={"field": "page_size"}
            )
        position = await self._position(room_id, cursor) if cursor else None
        if media_time is not None:
            media_clock.check_position(media_time, cursor, backward)
            position = await media_clock.first_at(self._log, room_id, media_time)
            if position is None:
                return [], ""
        if backward:
            records = await self._log.read_backward(room_id, position, size)
        else:
            records = await self._log.read(room_id, -1 if position is None else position, size)
        epoch = self._log.epoch(room_id)
        # Whispers only for the caller's own audience (whisper.readable): staff as of now.
        state = self.states.get(room_id)
        moderators = state.moderators if state is not None else ()
        events = [
            wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position))
            for r in whisper.readable(records, who, info.creator_user_id, moderators)
        ]
        next_cursor = encode_cursor(epoch, records[-1].position) if len(records) == size else ""
        return events, next_cursor


def _cursor_unknown(message: str) -> ApiError:
    return ApiError(Code.FAILED_PRECONDITION, "CURSOR_UNKNOWN", message, metadata={"field": "cursor"})
