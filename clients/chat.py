"""`barrage chat`: an interactive terminal chat in one room.

On a terminal, prompt_toolkit reads lines while incoming events print above the
prompt. With stdin from a pipe or a file, lines are read from it instead, so the chat
can be scripted and tested; end of input exits once every line has been acknowledged.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TextIO

from google.protobuf import json_format

from barrage.v1 import event_pb2
from clients.sdk import (
    BarrageError,
    Client,
    ClientOptions,
    ConnectionState,
    Omitted,
    ResumeGap,
    Subscription,
    SubscriptionEnded,
    TokenSource,
)
from clients.sdk.items import RoomItem


def format_item(item: RoomItem) -> str | None:
    """One line for a human, or None for what is not worth a line (running counters)."""
    if isinstance(item, Omitted):
        return f"  … {item.count} messages skipped (busy room)"
    if isinstance(item, ResumeGap):
        return "  … could not catch up after the connection came back: some messages may be missing"
    if isinstance(item, SubscriptionEnded):
        return f"*** left the room: {item.error}" if item.error else "*** left the room"
    when = datetime.fromtimestamp(item.publish_time.ToMilliseconds() / 1000, UTC).astimezone().strftime("%H:%M:%S")
    who = item.sender.display_name or item.sender.user_id
    kind = item.payload.WhichOneof("kind")
    if kind == "comment":
        return f"[{when}] {who}: {item.payload.comment.text}"
    if kind == "announcement":
        return f"[{when}] 📢 {who}: {item.payload.announcement.text}"
    if kind == "room_closed":
        reason = item.payload.room_closed.reason
        return f"[{when}] *** the room was closed" + (f": {reason}" if reason else "")
    if kind is None or item.priority == event_pb2.PRIORITY_EPHEMERAL:
        return None  # Counters (likes, viewers, stock) and types this version does not know.
    # Other event types (gifts, product cards, polls, ...): their simple fields.
    fields = json_format.MessageToDict(getattr(item.payload, kind))
    summary = ", ".join(f"{name}={value}" for name, value in fields.items() if not isinstance(value, dict | list))
    return f"[{when}] {who} · {kind.replace('_', ' ')}" + (f": {summary}" if summary else "")


class _Chat:
    def __init__(self, client: Client, room_id: str, out: TextIO, err: TextIO) -> None:
        self.client = client
        self.room_id = room_id
        self.out = out
        self.err = err
        self.sends: set[asyncio.Task[bool]] = set()

    def show(self, line: str, *, error: bool = False) -> None:
        stream = self.err if error else self.out
        stream.write(line + "\n")
        stream.flush()

    def submit(self, line: str) -> None:
        """Send without blocking the input: the ack (or the refusal) arrives later."""
        task = asyncio.get_running_loop().create_task(self._send(line))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def _send(self, text: str) -> bool:
        try:
            await self.client.send(self.room_id, text)
        except BarrageError as exc:
            self.show(f"! not sent ({exc.reason or exc.code.name}): {exc.message}", error=True)
            return False
        return True

    async def flush(self) -> bool:
        """Wait for every ack; True if every line was sent."""
        results = await asyncio.gather(*self.sends)
        return all(results)


def _read_lines_in_thread(queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into `queue` (None at end of input) from a daemon thread, so a
    blocked read never keeps the process alive or the loop waiting."""
    loop = asyncio.get_running_loop()

    def pump() -> None:
        for raw in sys.stdin.buffer:
            loop.call_soon_threadsafe(queue.put_nowait, raw.decode("utf-8", errors="replace"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="barrage-chat-stdin", daemon=True).start()


async def _piped_input(chat: _Chat) -> None:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _read_lines_in_thread(queue)
    while (line := await queue.get()) is not None:
        text = line.rstrip("\r\n")
        if text.strip():
            chat.submit(text)


async def _prompt_input(chat: _Chat) -> None:
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession()
    while True:
        try:
            text = await session.prompt_async(f"{chat.room_id}> ")
        except (EOFError, KeyboardInterrupt):
            return
        if text.strip() in ("/quit", "/exit"):
            return
        if text.strip():
            chat.submit(text)


async def _show_room(chat: _Chat, room: Subscription) -> None:
    async for item in room:
        line = format_item(item)
        if line is not None:
            chat.show(line, error=isinstance(item, SubscriptionEnded) and item.error is not None)


async def chat(
    target: str,
    token: TokenSource,
    room_id: str,
    *,
    history: int = 20,
    interactive: bool | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the chat until end of input, /quit, or the room closes. 0: all lines sent."""
    if interactive is None:
        interactive = sys.stdin.isatty() and out.isatty()

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.WAITING:
            print("*** connection lost; reconnecting…", file=err, flush=True)
        elif state is ConnectionState.CONNECTED and client.stats.welcomes > 1:
            print("*** reconnected", file=err, flush=True)

    client = Client(target, token, options=ClientOptions(client_agent="barrage-chat/0.1"), on_state=on_state)
    async with client:
        room = await client.join(room_id, history_limit=history)
        state = _Chat(client, room_id, out, err)
        if interactive:
            from prompt_toolkit.patch_stdout import patch_stdout

            with patch_stdout():
                sent = await _run(state, room, _prompt_input(state))
        else:
            sent = await _run(state, room, _piped_input(state))
    return 0 if sent else 1


async def _run(state: _Chat, room: Subscription, reading: Coroutine[object, object, None]) -> bool:
    shower = asyncio.create_task(_show_room(state, room))
    reader = asyncio.create_task(reading)
    try:
        # Input ending (EOF, /quit) ends the chat; so does the room ending.
        done, _ = await asyncio.wait((shower, reader), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        return await state.flush()
    finally:
        for task in (shower, reader):
            task.cancel()
        await asyncio.gather(shower, reader, return_exceptions=True)
