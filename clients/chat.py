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
from typing import TextIO

from barrage.clients import chat_commands
from barrage.clients.chat_view import RoomView
from barrage.clients.sdk import (
    BarrageError,
    Client,
    ClientOptions,
    ConnectionState,
    Subscription,
    SubscriptionEnded,
    TokenSource,
)
from barrage.clients.sdk.items import RoomItem
from barrage.v1 import event_pb2

_ECHO_WAIT_S = 5.0
"""At end of piped input: how long to wait for the room to show the lines just sent."""


def format_item(item: RoomItem) -> str | None:
    """One item as text for a human (a fresh view: no memory of earlier events)."""
    return RoomView().format(item)


class _Chat:
    def __init__(self, client: Client, room_id: str, out: TextIO, err: TextIO) -> None:
        self.client = client
        self.room_id = room_id
        self.out = out
        self.err = err
        self.view = RoomView()
        self.sends: set[asyncio.Task[tuple[bool, str]]] = set()
        self.shown: set[str] = set()
        """Event ids the room has shown, so piped input can wait for its own lines' echoes."""
        self.changed = asyncio.Event()

    def show(self, line: str, *, error: bool = False) -> None:
        stream = self.err if error else self.out
        stream.write(line + "\n")
        stream.flush()

    def shown_event(self, event_id: str) -> None:
        self.shown.add(event_id)
        self.changed.set()

    @property
    def staff(self) -> bool:
        welcome = self.client.welcome
        return welcome is not None and welcome.user.role != event_pb2.ROLE_VIEWER

    def handle(self, line: str) -> bool:
        """Act on one input line; False when it asks to quit."""
        text = line.strip()
        if text in ("/quit", "/exit"):
            return False
        if text == "/help":
            self.show(chat_commands.help_text(self.staff))
        elif text.startswith("/") and not text.startswith("//"):
            try:
                payload = chat_commands.parse(text, self.view)
            except chat_commands.UsageError as exc:
                self.show(f"! {exc}", error=True)
            else:
                self.submit(payload)
        elif text:
            # "//" escapes a comment that starts with a slash.
            comment = line.removeprefix("/") if text.startswith("//") else line
            self.submit(event_pb2.Payload(comment=event_pb2.Comment(text=comment)))
        return True

    def submit(self, payload: event_pb2.Payload) -> None:
        """Send without blocking the input: the ack (or the refusal) arrives later."""
        task = asyncio.get_running_loop().create_task(self._send(payload))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def _send(self, payload: event_pb2.Payload) -> tuple[bool, str]:
        """(sent, the stored event's id: empty for likes, which are only counted)."""
        try:
            ack = await self.client.send_payload(self.room_id, payload)
        except BarrageError as exc:
            self.show(f"! not sent ({exc.reason or exc.code.name}): {exc.message}", error=True)
            return False, ""
        return True, ack.event_id

    async def flush(self) -> bool:
        """Wait for every ack, then (briefly) for the room to show what was sent; True if all was sent."""
        results = await asyncio.gather(*self.sends)
        sent = {event_id for _, event_id in results if event_id}
        deadline = asyncio.get_running_loop().time() + _ECHO_WAIT_S
        while not sent <= self.shown:
            self.changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                break
        return all(ok for ok, _ in results)


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
        if not chat.handle(line.rstrip("\r\n")):
            return


async def _prompt_input(chat: _Chat) -> None:
    from prompt_toolkit import PromptSession

    # The bottom line keeps the like and viewer counts current without printing every burst.
    session: PromptSession[str] = PromptSession(bottom_toolbar=chat.view.status, refresh_interval=0.5)
    chat.show("type /help for commands, /quit to leave")
    while True:
        try:
            text = await session.prompt_async(f"{chat.room_id}> ")
        except (EOFError, KeyboardInterrupt):
            return
        if not chat.handle(text):
            return


async def _show_room(chat: _Chat, room: Subscription) -> None:
    async for item in room:
        line = chat.view.format(item)
        if line is not None:
            chat.show(line, error=isinstance(item, SubscriptionEnded) and item.error is not None)
        if isinstance(item, event_pb2.Event):
            chat.shown_event(item.event_id)


async def chat(
    target: str,
    token: TokenSource,
    room_id: str,
    *,
    history: int = 20,
    interactive: bool | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the chat until end of input, /quit, or the room closes. 0: all lines sent.

    `out` and `err` default to sys.stdout and sys.stderr as they are once the prompt
    runs: prompt_toolkit replaces them so that lines print above the prompt.
    """
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()

    def on_state(state: ConnectionState) -> None:
        # Only for a connection that was once up: a first connection that fails is an error.
        if state is ConnectionState.WAITING and client.stats.welcomes > 0:
            print("*** connection lost; reconnecting…", file=err or sys.stderr, flush=True)
        elif state is ConnectionState.CONNECTED and client.stats.welcomes > 1:
            print("*** reconnected", file=err or sys.stderr, flush=True)

    client = Client(target, token, options=ClientOptions(client_agent="barrage-chat/0.1"), on_state=on_state)
    async with client:
        room = await client.join(room_id, history_limit=history)
        if interactive:
            from prompt_toolkit.patch_stdout import patch_stdout

            with patch_stdout():
                state = _Chat(client, room_id, out or sys.stdout, err or sys.stderr)
                sent = await _run(state, room, _prompt_input(state))
        else:
            state = _Chat(client, room_id, out or sys.stdout, err or sys.stderr)
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
