"""What each role may do, and what valid input looks like.

The permission table is documented in docs/protocol.md; keep the two in step.
"""

from __future__ import annotations

import re

from barrage.v1 import event_pb2
from server.core.errors import ApiError, Code, invalid

VIEWER = event_pb2.ROLE_VIEWER
HOST = event_pb2.ROLE_HOST
MODERATOR = event_pb2.ROLE_MODERATOR
SERVICE = event_pb2.ROLE_SERVICE
BOT = event_pb2.ROLE_BOT
EVERYONE = frozenset({VIEWER, HOST, MODERATOR, SERVICE, BOT})

# Payload kind (the Payload oneof field name) -> roles that may post it.
POST: dict[str, frozenset[int]] = {
    "comment": EVERYONE,
    "announcement": frozenset({HOST, SERVICE}),
    # room_closed only ever comes from CloseRoom.
}

# Admin and stream actions -> roles.
ACTIONS: dict[str, frozenset[int]] = {
    "create_room": frozenset({HOST, SERVICE}),
    "close_room": frozenset({HOST, SERVICE}),
    "list_events": frozenset({HOST, MODERATOR, SERVICE}),
    "get_room": EVERYONE,
    "join": EVERYONE,
}

# Priority class of each payload kind (DESIGN.md, "priority classes").
PRIORITY: dict[str, int] = {
    "comment": event_pb2.PRIORITY_NORMAL,
    "announcement": event_pb2.PRIORITY_CRITICAL,
    "room_closed": event_pb2.PRIORITY_CRITICAL,
}

_ROLE_NAMES: dict[int, str] = {int(value): name.removeprefix("ROLE_").lower() for name, value in event_pb2.Role.items()}
_ROOM_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,64}")
# Control characters other than newline and tab break clients' layouts; refuse them
# rather than rewrite the user's words.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def role_name(role: int) -> str:
    return _ROLE_NAMES.get(role, str(role))


def require(role: int, action: str) -> None:
    if role not in ACTIONS[action]:
        raise ApiError(
            Code.PERMISSION_DENIED,
            "ROLE_FORBIDDEN",
            f"role {role_name(role)} may not {action.replace('_', ' ')}",
            metadata={"action": action, "role": role_name(role)},
        )


def require_post(role: int, kind: str) -> None:
    allowed = POST.get(kind)
    if allowed is None:
        raise invalid("INVALID_FIELD", f"event type {kind!r} cannot be posted", "payload")
    if role not in allowed:
        raise ApiError(
            Code.PERMISSION_DENIED,
            "ROLE_FORBIDDEN",
            f"role {role_name(role)} may not post {kind}",
            metadata={"action": f"post:{kind}", "role": role_name(role)},
        )


def check_room_id(room_id: str) -> None:
    if not _ROOM_ID.fullmatch(room_id):
        raise invalid("INVALID_FIELD", "room_id must be 1-128 characters of A-Z a-z 0-9 . _ : -", "room_id")


def check_client_id(value: str, field: str) -> None:
    if not _CLIENT_ID.fullmatch(value):
        raise invalid("INVALID_FIELD", f"{field} must be 1-64 printable ASCII characters", field)


def check_text(text: str, max_chars: int, field: str = "text") -> None:
    if not text.strip():
        raise invalid("TEXT_EMPTY", "text is empty", field)
    if len(text) > max_chars:
        raise invalid("TEXT_TOO_LONG", f"text is longer than {max_chars} characters", field)
    if _CONTROL.search(text):
        raise invalid("INVALID_FIELD", "text contains control characters", field)


def check_payload(payload: event_pb2.Payload, max_chars: int) -> str:
    """Validate a payload and return its kind."""
    kind = payload.WhichOneof("kind")
    if kind is None:
        raise invalid("INVALID_FIELD", "payload is empty", "payload")
    if kind == "comment":
        check_text(payload.comment.text, max_chars, "payload.comment.text")
        if len(payload.comment.mention_user_ids) > 20:
            raise invalid("INVALID_FIELD", "at most 20 mentions", "payload.comment.mention_user_ids")
        if len(payload.comment.reply_to_event_id) > 64:
            raise invalid("INVALID_FIELD", "reply_to_event_id too long", "payload.comment.reply_to_event_id")
    elif kind == "announcement":
        check_text(payload.announcement.text, max_chars, "payload.announcement.text")
    return kind
