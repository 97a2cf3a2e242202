"""Hand-built protobuf framing for the fan-out hot path.

Protobuf's wire format lets us build messages by concatenation: a length-delimited
field is tag + varint(length) + bytes, a repeated field is that, once per element,
and a scalar field that appears twice takes the last value. So an Event encoded once
(without its cursor) becomes "the event with its cursor" by appending the cursor
field, and a ConnectResponse carrying a batch is built from those bytes without
touching protobuf objects again. The field numbers below are pinned by
tests/test_wire.py against the generated classes.
"""

from __future__ import annotations

from collections.abc import Iterable

_LEN = 2  # wire type of length-delimited fields


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field_number: int, wire_type: int = _LEN) -> bytes:
    return varint((field_number << 3) | wire_type)


def length_delimited(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data


EVENT_CURSOR = _tag(2)  # Event.cursor
BATCH_ROOM_ID = _tag(1)  # EventBatch.room_id
BATCH_EVENTS = _tag(2)  # EventBatch.events
BATCH_OMITTED = _tag(3, 0)  # EventBatch.omitted_count (varint)
MESSAGE_EVENT_BATCH = _tag(5)  # ServerMessage.event_batch
RESPONSE_MESSAGES = _tag(1)  # ConnectResponse.messages


def event_with_cursor(payload: bytes, cursor: str) -> bytes:
    """The stored event bytes plus their cursor field: a complete Event."""
    return payload + length_delimited(EVENT_CURSOR, cursor.encode())


def batch_entry(event: bytes) -> bytes:
    """One element of EventBatch.events."""
    return length_delimited(BATCH_EVENTS, event)


def event_batch_message(room_tag: bytes, entries: Iterable[bytes], omitted: int = 0) -> bytes:
    """One ConnectResponse.messages element holding ServerMessage{event_batch}.

    room_tag is room_field(room_id), computed once per room.
    """
    batch = room_tag + b"".join(entries)
    if omitted:
        batch += BATCH_OMITTED + varint(omitted)
    return length_delimited(RESPONSE_MESSAGES, length_delimited(MESSAGE_EVENT_BATCH, batch))


def room_field(room_id: str) -> bytes:
    return length_delimited(BATCH_ROOM_ID, room_id.encode())


def response_entry(server_message: bytes) -> bytes:
    """Wrap an encoded ServerMessage as one ConnectResponse.messages element."""
    return length_delimited(RESPONSE_MESSAGES, server_message)
