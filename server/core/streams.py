"""How many streams a node holds, in all and per user (docs/protocol.md, "Limits").

The node-wide limit is checked when a stream opens (before its hello: a handshake
holds memory too); the per-user one once the hello names the user. Service tokens
(backend services that hold many streams) count only against the node's limit.
"""

from __future__ import annotations

from collections import Counter

from barrage.server.auth import Identity
from barrage.server.core import policy
from barrage.server.core.errors import ApiError, Code

_RETRY_AFTER_S = 5.0


class StreamLimits:
    def __init__(self, max_streams: int, max_streams_per_user: int) -> None:
        self._max = max_streams
        self._max_per_user = max_streams_per_user
        self._open = 0
        self._per_user: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return self._open

    def open_stream(self) -> None:
        """Count a new stream, or raise RESOURCE_EXHAUSTED TOO_MANY_STREAMS (scope node)."""
        if self._open >= self._max:
            raise _too_many("node", f"this node holds its maximum of {self._max} streams; try another or retry")
        self._open += 1

    def close_stream(self) -> None:
        self._open -= 1

    def add_user(self, who: Identity) -> bool:
        """Count a stream for its user, or raise TOO_MANY_STREAMS (scope user). True if counted."""
        if who.role == policy.SERVICE:
            return False
        if self._per_user[who.user_id] >= self._max_per_user:
            raise _too_many("user", f"at most {self._max_per_user} streams per user on a node; close one first")
        self._per_user[who.user_id] += 1
        return True

    def remove_user(self, who: Identity) -> None:
        left = self._per_user[who.user_id] - 1
        if left > 0:
            self._per_user[who.user_id] = left
        else:
            del self._per_user[who.user_id]


def _too_many(scope: str, message: str) -> ApiError:
    return ApiError(
        Code.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS", message, metadata={"scope": scope}, retry_after_s=_RETRY_AFTER_S
    )
