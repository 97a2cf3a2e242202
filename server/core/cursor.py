"""Cursors: the opaque strings clients hold for a position in a room's log.

A cursor is "<epoch>.<position>": the epoch names the numbering the position
belongs to (RoomLog.epoch(room): the embedded log's data directory, or the
Kafka partition that holds the room), the position is a record's place in that
numbering. Clients never parse it.

A position alone proves nothing: every room of the embedded log shares one
sequence, and every room of a Kafka partition shares its offsets. So a cursor is
resumed only when (1) it parses strictly, (2) its epoch is the room's epoch, and
(3) the log has a record of *that room* at that position (RoomLog.check_position:
one index lookup). Anything else (another room's cursor, one beyond the room's
newest event, a truncated or garbage string, an older epoch) is answered
CURSOR_UNKNOWN, and a record that left retention CURSOR_TOO_OLD: never resumed
with a silent gap. See docs/protocol.md "Cursors".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CURSOR_CHARS = 160
"""Longer strings are not cursors (epochs are at most ~60 characters)."""

_CURSOR = re.compile(r"([\x21-\x7e]{1,128})\.(0|[1-9][0-9]{0,18})")
"""Printable ASCII epoch, a dot, a position of 1 to 19 ASCII digits without leading
zeros. `[0-9]` is ASCII only, unlike str.isdigit() (accepts "²", which int() refuses)
or `\\d` (accepts "٣", which int() reads as 3: a second spelling of one cursor)."""

_MAX_POSITION = 2**63 - 1


class CursorError(ValueError):
    """The string is not a cursor this server ever issued."""


@dataclass(frozen=True, slots=True)
class Cursor:
    epoch: str
    position: int

    def encode(self) -> str:
        return f"{self.epoch}.{self.position}"


def encode_cursor(epoch: str, position: int) -> str:
    return f"{epoch}.{position}"


def parse_cursor(text: str) -> Cursor:
    """Parse strictly: raises CursorError for anything encode_cursor cannot have produced.

    The epoch is everything before the last dot (an epoch may itself contain dots).
    """
    match = _CURSOR.fullmatch(text) if len(text) <= MAX_CURSOR_CHARS else None
    if match is None:
        raise CursorError(f"not a cursor: {text[:64]!r}{'...' if len(text) > 64 else ''}")
    position = int(match.group(2))
    if position > _MAX_POSITION:
        raise CursorError(f"not a cursor (position out of range): {text[:64]!r}")
    return Cursor(match.group(1), position)
