"""Dedupe keys: what makes two appends to a room "the same" within the dedupe window.

A key must name one thing only. Keys used to join user and client_msg_id with `/`,
and both may contain `/`: user `alice/x` with id `1` and user `alice` with id `x/1`
made the same key, and the second was answered "duplicate" and dropped. Now every part
is escaped (`%` -> `%25`, `/` -> `%2F`) before the parts are joined with `/`, so a key
splits back into its parts one way only.

- user_key(user, id) is "<user>/<id>": unchanged from the old format whenever neither
  contains `/` or `%` (nearly every key), so retries across an upgrade still dedupe.
- server_key(kind, ...) starts with `/` (an empty first part): a user id is never
  empty, so no user key can equal a key the server makes for itself.

Keys written before the change stay in the window (10 minutes) and only ever match
the same bytes: an old key of a user or id containing `/` or `%` no longer matches its
retry (a retry within 10 minutes of the upgrade may be appended a second time), and
cannot match a new key of someone else unless a user id itself contains `%2F`.
"""

from __future__ import annotations


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def user_key(user_id: str, client_id: str) -> str:
    """The key of a user's own post (client_msg_id or request_id)."""
    return f"{_escape(user_id)}/{_escape(client_id)}"


def server_key(kind: str, *parts: str) -> str:
    """A key the server makes (one vote per user, a presence record, a system event)."""
    return "/" + "/".join(_escape(part) for part in (kind, *parts))
