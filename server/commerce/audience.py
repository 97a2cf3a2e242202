"""Who is in a room, across all nodes: the audience list (在线观众列表), folded from the log.

Every join and leave is already in the room's log (ViewerJoined / ViewerLeft, with
the joining user's Sender from its verified token, and the node that holds the
stream), so every node folds the same audience, whichever node a viewer joined:
no node-to-node traffic, no coordinator. A node that dies cannot log the leaves of
its streams; its viewer counts stop, and once they are older than the room's
viewer-count memory (15 s) its streams are forgotten here too.

The list to show is the newest arrivals (an ordered dict: a join is O(1), the list is
the last N entries, O(N)), or present gifters by rank first. Cost per refresh does not
depend on the audience's size except when a node is forgotten (one pass then);
loadtest/boards_bench.py measures it at 100k viewers.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice

from barrage.server.commerce import checkpoint_pb2
from barrage.server.commerce.leaderboard import Board
from barrage.v1 import event_pb2

CHECKPOINT_PRESENT = 1_000
"""Present users a checkpoint keeps (the newest arrivals): a rebuild from a checkpoint
shows the right newest arrivals; in a room with more people present, those older
arrivals are counted again when they next join (docs/commerce.md "Audience list")."""
CONTRIBUTOR_SCAN = 1_000
"""How far down the leaderboard the contributors-first order looks for present gifters."""
ORDERS = ("recent", "contributors")


@dataclass(slots=True)
class Presence:
    user: event_pb2.Sender
    nodes: dict[str, int] = field(default_factory=dict)
    """node id -> streams of the user on that node ("" for joins logged without one)."""


class Audience:
    """The people present in one room, oldest arrival first."""

    __slots__ = ("forgotten", "node_streams", "published_ms", "published_view", "present")

    def __init__(self) -> None:
        self.present: OrderedDict[str, Presence] = OrderedDict()
        self.forgotten: set[str] = set()
        """Dead nodes whose streams were dropped (forget_nodes)."""
        self.node_streams: dict[str, int] = {}
        """node id -> audience streams it holds (which nodes serve the room: boards.py)."""
        self.published_ms = 0
        """publish_time of the latest AudienceList event folded."""
        self.published_view: tuple[tuple[str, ...], int] = ((), 0)
        """What that event showed (user ids, present count): unchanged lists are not sent again."""

    def join(self, user: event_pb2.Sender, node_id: str) -> None:
        if user.role == event_pb2.ROLE_SERVICE:
            return  # backend services holding streams are not audience
        presence = self.present.get(user.user_id)
        if presence is None:
            presence = self.present[user.user_id] = Presence(event_pb2.Sender())
        presence.user.CopyFrom(user)
        presence.nodes[node_id] = presence.nodes.get(node_id, 0) + 1
        self.node_streams[node_id] = self.node_streams.get(node_id, 0) + 1

    def leave(self, user_id: str, node_id: str) -> None:
        presence = self.present.get(user_id)
        if presence is None:
            return
        streams = presence.nodes.get(node_id, 0)
        if streams:
            self._count(node_id, -1)
        if streams > 1:
            presence.nodes[node_id] = streams - 1
        else:
            presence.nodes.pop(node_id, None)
        if not presence.nodes:
            del self.present[user_id]

    def forget_nodes(self, dead: set[str]) -> None:
        """Drop the streams of nodes that stopped reporting: one pass over the audience
        when a node is first seen dead, nothing while the same nodes stay dead."""
        self.forgotten &= dead  # a node reporting again is forgotten again when it next stops
        new = dead - self.forgotten
        if not new:
            return
        self.forgotten |= new
        for user_id in [u for u, p in self.present.items() if any(n in new for n in p.nodes)]:
            presence = self.present[user_id]
            for node in new:
                self._count(node, -presence.nodes.pop(node, 0))
            if not presence.nodes:
                del self.present[user_id]

    def _count(self, node_id: str, delta: int) -> None:
        streams = self.node_streams.get(node_id, 0) + delta
        if streams > 0:
            self.node_streams[node_id] = streams
        else:
            self.node_streams.pop(node_id, None)

    def published(self, when_ms: int, shown: event_pb2.AudienceList) -> None:
        self.published_ms = when_ms
        self.published_view = (tuple(m.user.user_id for m in shown.members), shown.present_count)

    def view(self, size: int, order: str, board: Board) -> event_pb2.AudienceList:
        """The list to show: `size` people, in `order` (ORDERS)."""
        shown = event_pb2.AudienceList(present_count=len(self.present))
        picked: set[str] = set()
        if order == "contributors":
            for user_id, value in board.ranked_users(CONTRIBUTOR_SCAN):
                if len(picked) == size:
                    break
                presence = self.present.get(user_id)
                if presence is not None and value > 0:
                    picked.add(user_id)
                    shown.members.add(user=presence.user, gift_value_minor=value)
        for user_id in islice(reversed(self.present), size + len(picked)):
            if len(shown.members) == size:
                break
            if user_id not in picked:
                shown.members.add(user=self.present[user_id].user, gift_value_minor=board.value_of(user_id))
        return shown

    def checkpoint(self, cp: checkpoint_pb2.RoomCheckpoint) -> None:
        newest = list(islice(reversed(self.present.values()), CHECKPOINT_PRESENT))
        for presence in reversed(newest):
            kept = cp.present.add(user=presence.user)
            kept.node_ids.extend(presence.nodes)
            kept.streams.extend(presence.nodes.values())

    @classmethod
    def from_checkpoint(cls, cp: checkpoint_pb2.RoomCheckpoint) -> Audience:
        audience = cls()
        for kept in cp.present:
            if len(kept.node_ids) != len(kept.streams):
                raise ValueError("checkpoint presence node_ids and streams differ in length")
            audience.present[kept.user.user_id] = Presence(
                kept.user, dict(zip(kept.node_ids, kept.streams, strict=True))
            )
            for node_id, streams in zip(kept.node_ids, kept.streams, strict=True):
                audience._count(node_id, streams)
        return audience
