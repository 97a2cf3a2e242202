"""The async Python SDK for Barrage (see docs/sdk.md).

async with Client("127.0.0.1:50051", token) as client:
    room = await client.join("room-1", history_limit=20)
    ack = await room.send("hello")
    async for item in room:
        ...
"""

from barrage.clients.sdk.client import Client, TokenSource
from barrage.clients.sdk.errors import BarrageError, ClientClosed, ConnectionFailed, JoinError, SendError
from barrage.clients.sdk.items import (
    Ack,
    ClientStats,
    ConnectionState,
    Omitted,
    ResumeGap,
    RoomItem,
    SubscriptionEnded,
    is_whisper,
)
from barrage.clients.sdk.media_sync import MediaSync, PlayerTime
from barrage.clients.sdk.options import ClientOptions
from barrage.clients.sdk.subscription import Subscription

__all__ = [
    "Ack",
    "BarrageError",
    "Client",
    "ClientClosed",
    "ClientOptions",
    "ClientStats",
    "ConnectionFailed",
    "ConnectionState",
    "JoinError",
    "MediaSync",
    "Omitted",
    "PlayerTime",
    "ResumeGap",
    "RoomItem",
    "SendError",
    "Subscription",
    "SubscriptionEnded",
    "TokenSource",
    "is_whisper",
]
