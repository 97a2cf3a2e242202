"""Cursors: the opaque strings clients hold for a position in a room's log.

A cursor is "<epoch>.<position>". Clients never parse it; the server checks the
epoch so that a cursor from another numbering (a recreated log) is never misread.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    epoch, sep, position = text.rpartition(".")
    if not sep or not epoch or not position.isdigit() or len(text) > 200:
        raise CursorError(f"not a cursor: {text[:64]!r}")
    return Cursor(epoch, int(position))
