"""The protocol conformance suite: fixtures.

The tests in this package are written from the comments of protos/barrage/v1/*.proto
(room_service.proto's state machine, errors.proto's reasons, ResumeOutcome), not from
the server's code, and talk to a real server at the wire level (tests/wire_client.py).
Each runs on both log backends: the embedded log and Kafka (the Tansu test broker).

One server per backend serves the whole package (started once, stopped at the end);
tests isolate themselves with fresh room ids and user ids (rate limits are per stream
and per user). A test that needs its own server configuration starts its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import KafkaBroker, start_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, error_info

BLOCKED_WORD = "verbotenword"
"""In the shared servers' word filter (TEXT_BLOCKED)."""

VIEWER_BUDGET = "30"
"""The default per-viewer budget (the test harness otherwise raises it)."""


def code(name: str) -> int:
    """A gRPC status code's number, as google.rpc.Status.code carries it."""
    value: int = grpc.StatusCode[name].value[0]
    return value


def reason(status: status_pb2.Status) -> str:
    info = error_info(status)
    return str(info.reason)


def comment(text: str) -> event_pb2.Payload:
    return event_pb2.Payload(comment=event_pb2.Comment(text=text))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _start(tmp: Path, log_url: str | None, env: dict[str, str] | None = None) -> ServerProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    words = tmp / "blocked.txt"
    words.write_text(f"{BLOCKED_WORD}\n", encoding="utf-8")
    node = ServerProcess(
        tmp / "data",
        log_url=log_url,
        args=("--word-filter", str(words)),
        env={"BARRAGE_VIEWER_BUDGET_PER_S": VIEWER_BUDGET, **(env or {})},
    )
    node.start()
    return node


@pytest.fixture(scope="package")
def broker() -> Iterator[KafkaBroker]:
    started = start_broker()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="package", params=["embedded", "kafka"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running server on this backend, shared by the package."""
    tmp = tmp_path_factory.mktemp(f"protocol-{request.param}")
    log_url = None
    if request.param == "kafka":
        broker: KafkaBroker = request.getfixturevalue("broker")
        log_url = broker.url(new_id("protocol"))
    proc = _start(tmp, log_url)
    try:
        yield proc
    finally:
        proc.stop()


Spawn = Callable[[dict[str, str]], ServerProcess]


@pytest.fixture
def spawn(node: ServerProcess, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spawn]:
    """Start a server of its own, on the shared node's backend, with extra settings
    (BARRAGE_* environment); stopped after the test. For tests that stop a server or
    need settings the shared one does not have."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str]) -> ServerProcess:
        log_url = None
        if node.log_url.startswith("kafka://"):
            broker: KafkaBroker = request.getfixturevalue("broker")
            log_url = broker.url(new_id("own"))
        proc = _start(tmp_path / f"own-{len(started)}", log_url, env)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


class World:
    """A test's view of a node: an admin (service token), streams, fresh rooms."""

    def __init__(self, node: ServerProcess) -> None:
        self.node = node
        self.admin = Admin(node.target, node.token(new_id("ops"), role="service"))
        self._streams: list[RawStream] = []

    def token(self, user: str, role: str = "viewer", ttl_s: float = 3600) -> str:
        return self.node.token(user, role=role, ttl_s=ttl_s)

    def raw(self) -> RawStream:
        """An open stream with nothing sent yet."""
        stream = RawStream(self.node.target)
        self._streams.append(stream)
        return stream

    async def stream(self, role: str = "viewer", user: str | None = None) -> RawStream:
        """A stream past its handshake, as a fresh user (or `user`) of `role`."""
        stream = self.raw()
        await stream.hello(self.token(user or new_id(role), role))
        return stream

    async def room(self, title: str = "", owner: str = "") -> str:
        """A fresh room; `owner`: the host user who owns it (else the service that made it)."""
        room_id = new_id("room")
        await self.admin.create_room(room_id, title, host_user_id=owner)
        return room_id

    async def joined(self, room_id: str, role: str = "viewer", user: str | None = None) -> RawStream:
        stream = await self.stream(role, user)
        result = await stream.join(room_id)
        assert result.status.code == 0, result.status
        return stream

    async def close(self) -> None:
        for stream in self._streams:
            await stream.close()
        await self.admin.close()


@pytest.fixture
async def world(node: ServerProcess) -> AsyncIterator[World]:
    w = World(node)
    try:
        yield w
    finally:
        await w.close()


async def alive(stream: RawStream) -> None:
    """The stream is still open and answering (ping, pong with the same nonce)."""
    nonce = uuid.uuid4().int & (2**64 - 1)
    await stream.send(rs.ConnectRequest(ping=rs.Ping(nonce=nonce)))
    pong = await stream.expect("pong", lambda p: p.nonce == nonce)
    assert pong.server_time.seconds > 0
