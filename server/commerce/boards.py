"""Publishing the leaderboard and the audience list: who, when, and the read API.

Every node folds the same log into the same Board and Audience (leaderboard.py,
audience.py), so any node could publish them. The updates are logged events (like
poll tallies and viewer counts), because a room's fan-out, resume and continuity
checks are built on log positions: a value sent outside the log would have no cursor.
To log one update rather than one per node, ONE node publishes: the node with the
smallest id among the nodes serving the room (those holding audience streams by the
folded joins and leaves, unless their viewer counts have been silent for 15 s; plus
this node while it holds members). Every node folds the same
viewer counts, so they agree without talking; when the publisher dies, the next one
takes over once its counts are 15 s old. For the moments two nodes disagree (a node
just started), each update's dedupe key names its time slot (one second for the
board, the audience interval for the list), so the log keeps one update per slot.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from barrage.server.auth import Identity
from barrage.server.commerce.leaderboard import Board
from barrage.server.commerce.state import VIEWER_COUNT_TTL_MS, RoomState
from barrage.server.core import dedupe_keys, policy
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.posts import Entry
from barrage.server.log.base import RoomInfo
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

if TYPE_CHECKING:
    from barrage.server.core.gateway import Gateway
    from barrage.server.core.gateway_state import GatewayState
    from barrage.server.core.watching import Watching

BOARD_EVERY_MS = 1_000
"""The live board is published at most once a second while it changes."""
# The audience list is published at most every --audience-interval-ms (default 3 s)
# while it changes: a screen is then at most ~3.3 s behind (the bar is 5 s), and a
# 100k-viewer room sends each viewer a list every 3 s, not every tick.
AUDIENCE_RECHECK_MS = 1_000
"""An unchanged audience list is built again after this long (so a change shows within
about a second once the interval has passed)."""
FINAL_CATCH_UP_S = 2.0
"""At close, how long the closing node waits to fold what the log already holds."""
CLOSED_BOARDS = 64
"""Closed rooms whose final board a node keeps for GetLeaderboard: folding a closed room's
log is a read of up to its whole retained history, so it is done once, not per call."""
_closed: OrderedDict[tuple[str, str], tuple[Board, frozenset[str]]] = OrderedDict()
"""(room, epoch) -> its final board and moderators."""
_NAMING_OTHERS = frozenset({policy.S_BOT, policy.S_MODERATOR, policy.S_OWNER, policy.S_SERVICE})


class Publisher:
    """The ticker's part for boards: one per node."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._posted: dict[tuple[str, str], int] = {}
        """(room, kind) -> when this node last posted one (ms), until its fold shows it."""

    def room_jobs(self, room_id: str, state: RoomState, now_ms: int) -> list[Awaitable[object]]:
        gateway = self._gateway
        settings = gateway.settings
        if not settings.boards or not gateway.members(room_id):  # (closed rooms: the ticker skips them)
            return []
        serving, dead = _nodes(state, gateway.node_id, now_ms)
        state.audience.forget_nodes(dead)
        if min(serving) != gateway.node_id:
            return []
        jobs: list[Awaitable[object]] = []
        board = state.board
        if board.dirty and self._ready(room_id, "leaderboard", board.published_ms, BOARD_EVERY_MS, now_ms):
            self._posted[(room_id, "leaderboard")] = now_ms
            payload = event_pb2.Payload(leaderboard=board.top(settings.leaderboard_size))
            jobs.append(gateway.post_system(room_id, "leaderboard", payload, f"board:{now_ms // BOARD_EVERY_MS}"))
        audience = state.audience
        every_ms = settings.audience_interval_ms
        if not self._ready(room_id, "audience", audience.published_ms, every_ms, now_ms):
            return jobs  # the list is built at most once an interval, not every tick
        shown = audience.view(settings.audience_size, settings.audience_order, board)
        view = (tuple(m.user.user_id for m in shown.members), shown.present_count)
        if view == audience.published_view:
            # Unchanged: look again in a second (not every tick: building the list is the cost).
            self._posted[(room_id, "audience")] = now_ms - every_ms + AUDIENCE_RECHECK_MS
            return jobs
        self._posted[(room_id, "audience")] = now_ms
        payload = event_pb2.Payload(audience=shown)
        jobs.append(gateway.post_system(room_id, "audience", payload, f"audience:{now_ms // every_ms}"))
        return jobs

    def _ready(self, room_id: str, kind: str, published_ms: int, every_ms: int, now_ms: int) -> bool:
        """At most one per interval: since the latest one folded, and since this node's
        own latest post (which the fold may not show yet)."""
        return now_ms - max(published_ms, self._posted.get((room_id, kind), 0)) >= every_ms

    def forget(self, rooms: set[str]) -> None:
        self._posted = {key: at for key, at in self._posted.items() if key[0] in rooms}


def _nodes(state: RoomState, me: str, now_ms: int) -> tuple[set[str], set[str]]:
    """(nodes serving the room, dead nodes), as the fold tells: dead = its viewer counts
    silent for VIEWER_COUNT_TTL_MS; serving = not dead and holding audience streams by
    the folded joins and leaves (so a node whose viewers all left stops serving as soon
    as their leaves are folded), and this node, which holds members."""
    dead = {node for node, (_, at) in state.viewers_by_node.items() if now_ms - at > VIEWER_COUNT_TTL_MS} - {me}
    serving = {node for node in state.audience.node_streams if node not in dead} | {me}
    return serving, dead


def fill_snapshot(snapshot: rs.RoomSnapshot, state: RoomState, gateway: GatewayState) -> None:
    """The join snapshot's leaderboard (when anyone gave) and audience list."""
    settings = gateway.settings
    if state.board.gifters:
        snapshot.leaderboard.CopyFrom(state.board.top(settings.leaderboard_size, final=state.board.closed))
    snapshot.audience.CopyFrom(state.audience.view(settings.audience_size, settings.audience_order, state.board))


async def final_entries(gateway: Watching, room_id: str, info: RoomInfo) -> list[Entry]:
    """The final ranking to append just before room_closed (none if nobody gave).

    The closing node first folds what the log holds (up to FINAL_CATCH_UP_S), so gifts
    accepted by other nodes before the close count. The state read after the close
    (GetLeaderboard, a late snapshot) folds the room's whole log, so it is exact."""
    state = await gateway._room_state(room_id, info)  # the gateway's own fold (watched, or read)
    head = await gateway.room_log.head(room_id)
    deadline = time.monotonic() + FINAL_CATCH_UP_S
    # The fold has no event to wait on; a close is rare, so a short poll will do.
    while head is not None and state.position < head and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if not state.board.gifters:
        return []
    payload = event_pb2.Payload(leaderboard=state.board.top(gateway.settings.leaderboard_size, final=True))
    return [Entry(payload, policy.CRITICAL, dedupe_keys.server_key("system", f"board-final:{room_id}"))]


async def get_leaderboard(
    gateway: Gateway, who: Identity, room_id: str, user_id: str
) -> tuple[event_pb2.Leaderboard, event_pb2.LeaderboardEntry | None]:
    """GetLeaderboard: the top of the ranking and one user's own place."""
    info = await gateway.authority(who, room_id, "read_leaderboard")
    board, moderators = await _board(gateway, room_id, info)
    if user_id and user_id != who.user_id:
        where = policy.standing(who, room_id, info.creator_user_id, moderators)
        if where not in _NAMING_OTHERS:
            raise ApiError(
                Code.PERMISSION_DENIED,
                "ROLE_FORBIDDEN",
                "a viewer may ask its own place only",
                metadata={"action": "read_leaderboard", "role": policy.role_name(who.role), "standing": where},
            )
        policy.check_client_id(user_id, "user_id")
    top = board.top(gateway.settings.leaderboard_size, final=info.closed or board.closed)
    return top, board.entry_of(user_id or who.user_id)


async def _board(gateway: Gateway, room_id: str, info: RoomInfo) -> tuple[Board, frozenset[str]]:
    """The room's board and moderators; a closed room's from the cache once folded."""
    key = (room_id, gateway.epoch(room_id))
    cached = _closed.get(key) if info.closed else None
    if cached is not None:
        _closed.move_to_end(key)
        return cached
    state = await gateway._room_state(room_id, info)
    found = (state.board, frozenset(state.moderators))
    if info.closed and state.board.closed:  # folded through room_closed: final (a live fold may lag)
        _closed[key] = found
        if len(_closed) > CLOSED_BOARDS:
            _closed.popitem(last=False)
    return found
