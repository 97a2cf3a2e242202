"""The `barrage` client commands, run as processes against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from barrage.clients.admin import AdminClient
from barrage.clients.sdk import Client
from barrage.v1 import event_pb2
from tests.server_process import ROOT, TEST_SECRET, ServerProcess
from tests.test_sdk import take_events

BARRAGE = (sys.executable, "-m", "barrage.cli")
TIMEOUT_S = 30.0


def _env() -> dict[str, str]:
    # Nothing from the developer's shell may leak into what is tested.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARRAGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def barrage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BARRAGE, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=_env(), cwd=ROOT, check=False
    )


@contextlib.asynccontextmanager
async def barrage_process(*args: str, stdin: bool = False) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running command; killed on the way out if the test has not ended it."""
    proc = await asyncio.create_subprocess_exec(
        *BARRAGE,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def is_content(event: dict[str, Any]) -> bool:
    """Events the tests publish (the server adds ephemeral ones such as viewer counts)."""
    return bool({"comment", "announcement", "roomClosed"} & set(event.get("payload", {})))


async def read_event(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The next content event the command printed as a JSON line."""
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S)
        assert line, "the command ended its output early"
        event: dict[str, Any] = json.loads(line)
        if is_content(event):
            return event


async def read_until(proc: asyncio.subprocess.Process, text: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(TIMEOUT_S):
        while not lines or text not in lines[-1]:
            line = await proc.stdout.readline()
            assert line, f"output ended before {text!r}: {lines}"
            lines.append(line.decode())
    return lines


@pytest.fixture
async def admin(server: ServerProcess, room_id: str) -> AsyncIterator[AdminClient]:
    async with AdminClient(server.target, server.token("ops", role="service")) as client:
        await client.create_room(room_id, title="cli room")
        yield client


async def test_token_prints_a_token_the_server_accepts(server: ServerProcess) -> None:
    done = barrage("token", "--user", "zoe", "--name", "Zoë", "--role", "viewer", "--secret", TEST_SECRET)
    assert done.returncode == 0, done.stderr
    async with Client(server.target, done.stdout.strip()) as zoe:
        assert zoe.welcome is not None
        assert (zoe.welcome.user.user_id, zoe.welcome.user.display_name) == ("zoe", "Zoë")


async def test_tail_from_a_cursor_prints_exactly_the_events_after_it_then_follows(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    published = [await admin.announce(room_id, f"a{n}") for n in range(5)]
    args = ("tail", room_id, "--from", published[1].cursor, "--target", server.target)
    async with barrage_process(*args, "--token", server.token("tailer")) as tail:
        replayed = [await read_event(tail) for _ in range(3)]
        assert [e["cursor"] for e in replayed] == [p.cursor for p in published[2:]]
        assert [e["payload"]["announcement"]["text"] for e in replayed] == ["a2", "a3", "a4"]
        live = await admin.announce(room_id, "live one")
        followed = await read_event(tail)
        assert (followed["cursor"], followed["payload"]["announcement"]["text"]) == (live.cursor, "live one")
        assert followed["sender"]["userId"] == "ops"
        tail.terminate()
        rest, errors = await asyncio.wait_for(tail.communicate(), TIMEOUT_S)
    # Nothing but the events: no duplicate, no extra line.
    assert [line for line in rest.splitlines() if is_content(json.loads(line))] == []
    assert tail.returncode == 0, errors


async def test_chat_sends_piped_lines_and_prints_incoming_events(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    async with Client(server.target, server.token("bob", name="Bob")) as bob:
        watch = await bob.join(room_id)
        args = ("chat", room_id, "--target", server.target, "--token", server.token("amy", name="Amy"))
        async with barrage_process(*args, stdin=True) as chat:
            assert chat.stdin is not None
            chat.stdin.write("hello from the terminal ✓\n".encode())
            await chat.stdin.drain()
            (heard,) = await take_events(watch, 1)
            assert (heard.sender.user_id, heard.payload.comment.text) == ("amy", "hello from the terminal ✓")

            await bob.send(room_id, "hi Amy, 你好")
            lines = await read_until(chat, "hi Amy, 你好")
            assert "Bob: hi Amy, 你好" in lines[-1]
            assert any("Amy: hello from the terminal ✓" in line for line in lines)

            chat.stdin.close()  # End of input: the chat exits once its lines are acked.
            _, errors = await asyncio.wait_for(chat.communicate(), TIMEOUT_S)
            assert chat.returncode == 0, errors


async def test_room_publish_and_history_commands(server: ServerProcess, room_id: str) -> None:
    host = ("--target", server.target, "--token", server.token("hana", role="host"))
    created = barrage("room", "create", room_id, "--title", "Spring sale", *host)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["title"] == "Spring sale"

    cursors = []
    for text in ("first", "second", "third"):
        published = barrage("publish", room_id, text, *host)
        assert published.returncode == 0, published.stderr
        cursors.append(json.loads(published.stdout)["cursor"])

    again = barrage("publish", room_id, "first", "--request-id", "fixed-1", *host)
    retried = barrage("publish", room_id, "first", "--request-id", "fixed-1", *host)
    assert json.loads(retried.stdout)["cursor"] == json.loads(again.stdout)["cursor"]
    assert json.loads(retried.stdout)["duplicate"] is True

    listed = barrage("history", room_id, *host)
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert all(is_content(e) for e in events)  # Nobody joined: no viewer counts either.
    assert [e["payload"]["announcement"]["text"] for e in events] == ["first", "second", "third", "first"]
    assert [e["cursor"] for e in events[:3]] == cursors

    page = barrage("history", room_id, "--cursor", cursors[0], "--limit", "1", *host)
    assert [json.loads(line)["cursor"] for line in page.stdout.splitlines()] == [cursors[1]]
    newest = barrage("history", room_id, "--backward", "--limit", "2", *host)
    newest_texts = [json.loads(line)["payload"]["announcement"]["text"] for line in newest.stdout.splitlines()]
    assert newest_texts == ["first", "third"]

    got = barrage("room", "get", room_id, *host)
    assert json.loads(got.stdout)["headCursor"] == events[-1]["cursor"]
    closed = barrage("room", "close", room_id, "--reason", "done", *host)
    assert json.loads(closed.stdout)["state"] == "ROOM_STATE_CLOSED"


async def test_errors_print_status_and_reason_and_exit_non_zero(server: ServerProcess, room_id: str) -> None:
    target = ("--target", server.target)
    missing = barrage("room", "get", "no-such-room", *target, "--token", server.token("ops", role="service"))
    assert missing.returncode == 1
    assert "NOT_FOUND ROOM_NOT_FOUND" in missing.stderr

    denied = barrage("room", "create", room_id, *target, "--token", server.token("viewer"))
    assert denied.returncode == 1
    assert "PERMISSION_DENIED ROLE_FORBIDDEN" in denied.stderr

    forged = barrage("tail", room_id, *target, "--token", "forged")
    assert forged.returncode == 1
    assert "UNAUTHENTICATED TOKEN_INVALID" in forged.stderr


def test_events_print_as_one_json_line() -> None:
    from barrage.clients.tail import to_json_line

    event = event_pb2.Event(cursor="e.1", payload=event_pb2.Payload(comment=event_pb2.Comment(text="多\nlines")))
    line = to_json_line(event)
    assert "\n" not in line
    assert json.loads(line)["payload"]["comment"]["text"] == "多\nlines"


def test_chat_formats_one_line_per_event_and_hides_counters() -> None:
    from barrage.clients.chat import format_item
    from barrage.clients.sdk import Omitted

    comment = event_pb2.Event(
        sender=event_pb2.Sender(user_id="amy", display_name="Amy"),
        payload=event_pb2.Payload(comment=event_pb2.Comment(text="这个多少钱?")),
    )
    line = format_item(comment)
    assert line is not None and line.endswith("Amy: 这个多少钱?")
    assert format_item(event_pb2.Event()) is None  # A type this version does not know.
    assert "3 messages skipped" in (format_item(Omitted("r", 3)) or "")


async def test_history_shows_what_people_read_unless_asked_for_everything(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    async with Client(server.target, server.token("viewer-1")) as viewer:
        await viewer.join(room_id)  # the server publishes viewer_joined and viewer counts
        await viewer.send(room_id, "hello")
        await admin.announce(room_id, "sale at nine")
    common = ("--target", server.target, "--token", server.token("ops", role="service"))

    def kinds(*args: str) -> set[str]:
        done = barrage("history", room_id, *args, *common)
        assert done.returncode == 0, done.stderr
        return {next(iter(json.loads(line)["payload"])) for line in done.stdout.splitlines()}

    assert kinds() == {"comment", "announcement"}
    assert kinds("--kind", "announcement") == {"announcement"}
    assert {"comment", "announcement", "viewerJoined"} <= kinds("--all")
    refused = barrage("history", room_id, "--kind", "coment", *common)
    assert refused.returncode == 1 and "unknown event kind(s) coment" in refused.stderr
