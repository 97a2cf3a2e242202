"""Rooms as the directory and the admin API see them: create, update, close, list, and
who may act on a room (authority).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence

from google.protobuf import timestamp_pb2

from barrage.server.auth import Identity
from barrage.server.commerce import boards
from barrage.server.core import policy
from barrage.server.core.cursor import encode_cursor
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.ingest import Ingest
from barrage.server.core.posts import Entry
from barrage.server.log.base import RoomExistsError, RoomInfo, RoomQuery
from barrage.v1 import admin_service_pb2, event_pb2

log = logging.getLogger(__name__)


class Rooms(Ingest):
    """The admin API's rooms: directory entries, their changes (published as events), and
    who may act on them."""

    async def create_room(self, who: Identity, room_id: str, title: str, host_user_id: str = "") -> RoomInfo:
        """Create a room owned by the calling host, or by the host a service names."""
        policy.require_create(who)
        if host_user_id and host_user_id != who.user_id and who.role != policy.SERVICE:
            raise ApiError(
                Code.PERMISSION_DENIED,
                "ROLE_FORBIDDEN",
                "only a service may create a room for another host",
                metadata={"action": "create_room", "role": policy.role_name(who.role)},
            )
        policy.check_room_id(room_id)
        if len(title) > 200:
            raise ApiError(Code.INVALID_ARGUMENT, "INVALID_FIELD", "title is longer than 200 characters")
        if host_user_id:
            policy.check_client_id(host_user_id, "host_user_id")
        # The directory's creator_user_id is the room's owner (Room.creator_user_id).
        info = RoomInfo(room_id, title, host_user_id or who.user_id, int(time.time() * 1000))
        try:
            return await self._rooms.create(info)
        except RoomExistsError:
            raise ApiError(Code.ALREADY_EXISTS, "ROOM_EXISTS", f"room {room_id!r} already exists") from None

    async def close_room(self, who: Identity, room_id: str, reason: str) -> RoomInfo:
        policy.check_room_id(room_id)
        info = await self.room(room_id)
        # Only the owner and services may close: appointed moderators do not matter
        # here except to name the caller's standing in the refusal.
        state = self.states.get(room_id)
        where = policy.standing(who, room_id, info.creator_user_id, state.moderators if state is not None else ())
        policy.require(who, where, "close_room")
        if info.closed:
            return info
        payload = event_pb2.Payload(room_closed=event_pb2.RoomClosed(reason=reason[:200]))
        entry = Entry(payload, policy.CRITICAL, f"close:{room_id}")
        entries = [*await boards.final_entries(self, room_id, info), entry]  # the final leaderboard first
        await self.append(who, room_id, entries, [""] * len(entries), [("", "")] * len(entries))
        return await self._rooms.close_room(room_id, int(time.time() * 1000))

    async def update_room(
        self, who: Identity, room_id: str, title: str, cover_url: str, labels: Sequence[str], announcement: str
    ) -> RoomInfo:
        """Replace the room's metadata (the caller merged its update mask into the current
        values), then tell live viewers with a RoomUpdated event.

        The directory is written first: a viewer joining in between reads the new values
        in its snapshot and then gets the event too (which carries every value, so applying
        it twice is harmless). A failed append leaves the directory updated and the call
        failed: its retry appends the event."""
        info = await self.authority(who, room_id, "update_room")  # ROLE_FORBIDDEN before INVALID_FIELD
        if info.closed:
            raise ApiError(Code.FAILED_PRECONDITION, "ROOM_CLOSED", f"room {room_id!r} is closed")
        policy.check_room_metadata(title, cover_url, labels, announcement)
        new = dataclasses.replace(
            info, title=title, cover_url=cover_url, labels=tuple(labels), announcement=announcement
        )
        updated = await self._rooms.update(new)
        payload = event_pb2.Payload(
            room_updated=event_pb2.RoomUpdated(
                title=updated.title,
                cover_url=updated.cover_url,
                labels=updated.labels,
                announcement=updated.announcement,
            )
        )
        entry = Entry(payload, policy.CRITICAL, f"update:{uuid.uuid4().hex}")
        await self.append(who, room_id, [entry], [""], [("", "")])
        self._room_cache.pop(room_id, None)
        return updated

    async def list_rooms(self, who: Identity, query: RoomQuery) -> list[RoomInfo]:
        """A page of the directory. Services see every room; a host its own rooms only."""
        if who.role == policy.HOST and query.owner in ("", who.user_id):
            query = dataclasses.replace(query, owner=who.user_id)
        elif who.role != policy.SERVICE:
            message = (
                "a host may list only its own rooms"
                if who.role == policy.HOST
                else f"role {policy.role_name(who.role)} may not list rooms"
            )
            raise ApiError(
                Code.PERMISSION_DENIED,
                "ROLE_FORBIDDEN",
                message,
                metadata={"action": "list_rooms", "role": policy.role_name(who.role)},
            )
        return await self._rooms.list_rooms(query)

    async def get_room(self, who: Identity, room_id: str) -> admin_service_pb2.Room:
        info = await self.authority(who, room_id, "get_room")
        # The answer lists the room's moderators: make sure the node has its state.
        await self._room_state(room_id, info)
        return await self.room_message(room_id)

    async def authority(self, who: Identity, room_id: str, action: str) -> RoomInfo:
        """The room, if the caller's standing in it may take `action` (policy.ACTIONS);
        else ROLE_FORBIDDEN. The room's moderators are looked up only when they could
        matter: a viewer or host token refused on its own standing may be appointed."""
        policy.check_room_id(room_id)
        info = await self.room(room_id)
        where = policy.standing(who, room_id, info.creator_user_id, ())
        if where not in policy.ACTIONS[action] and who.role in (policy.VIEWER, policy.HOST):
            state = await self._room_state(room_id, info)
            where = policy.standing(who, room_id, info.creator_user_id, state.moderators)
        policy.require(who, where, action)
        return info

    async def room_message(self, room_id: str) -> admin_service_pb2.Room:
        info = await self.room(room_id)
        head = await self._log.head(room_id)
        state = self.states.get(room_id)
        room = self.info_message(info)
        room.head_cursor = encode_cursor(self._log.epoch(room_id), head) if head is not None else ""
        room.moderator_user_ids.extend(sorted(state.moderators) if state is not None else [])
        return room

    def info_message(self, info: RoomInfo) -> admin_service_pb2.Room:
        """A directory entry as a Room, without reading the log (ListRooms: no head cursor
        or moderators, which would cost a read per room)."""
        return admin_service_pb2.Room(
            room_id=info.room_id,
            title=info.title,
            state=admin_service_pb2.ROOM_STATE_CLOSED if info.closed else admin_service_pb2.ROOM_STATE_OPEN,
            create_time=_millis_timestamp(info.create_time_ms),
            close_time=_millis_timestamp(info.close_time_ms) if info.closed else None,
            creator_user_id=info.creator_user_id,
            cover_url=info.cover_url,
            labels=info.labels,
            announcement=info.announcement,
        )


def _millis_timestamp(ms: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts
