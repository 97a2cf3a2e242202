"""Several `barrage serve` processes on one test Kafka broker, for gateway-level tests.

Each node is a tests.server_process.ServerProcess (a real `python -m barrage.server` on its own
loopback port) with `--log kafka://BROKER/TOPIC`; all share the test JWT secret, so a
token from any node is valid on every node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import KafkaBroker
from tests.server_process import ServerProcess
from tests.wire_client import RawStream

OK = 0


def in_parallel(actions: Sequence[Callable[[], object]]) -> None:
    """Run blocking actions (process starts and stops) at the same time; raise the first error."""
    if not actions:
        return
    with concurrent.futures.ThreadPoolExecutor(len(actions)) as pool:
        for future in [pool.submit(action) for action in actions]:
            future.result()


class Cluster:
    """`size` gateway nodes on one broker and topic. `options`: the log URL's query."""

    def __init__(
        self,
        broker: KafkaBroker,
        base_dir: Path,
        topic: str,
        size: int,
        *,
        options: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.broker = broker
        self.url = broker.url(topic) + (f"?{options}" if options else "")
        # The Kafka log ignores the data directory, but ServerProcess keeps its output beside it.
        self.nodes = [ServerProcess(base_dir / f"node-{i}", log_url=self.url, env=env) for i in range(size)]

    def __getitem__(self, index: int) -> ServerProcess:
        return self.nodes[index]

    def node_id(self, index: int) -> str:
        """The node id ServerProcess gives the node (Welcome.node_id)."""
        return f"test-{self.nodes[index].port}"

    def start(self) -> None:
        in_parallel([node.start for node in self.nodes])

    def ensure_running(self) -> None:
        """Restart (on the same port) every node that is not running, e.g. after a kill -9."""
        in_parallel([node.start for node in self.nodes if node.proc is None or node.proc.poll() is not None])

    def stop(self) -> None:
        in_parallel([node.stop for node in self.nodes])

    def token(self, user: str, role: str = "viewer") -> str:
        return self.nodes[0].token(user, role=role, name=user.title())

    def logs(self) -> str:
        return "\n".join(f"--- node {i} ({node.target})\n{node.logs()[-4000:]}" for i, node in enumerate(self.nodes))


async def connect(target: str, token: str, room_id: str | None = None) -> RawStream:
    """A raw stream that said hello and, if `room_id`, joined it (fresh)."""
    stream = RawStream(target)
    try:
        await stream.hello(token)
        if room_id is not None:
            joined = await stream.join(room_id)
            assert joined.status.code == OK, joined.status
    except BaseException:
        await stream.close()
        raise
    return stream


@contextlib.asynccontextmanager
async def joined(room_id: str, *members: tuple[str, str]) -> AsyncIterator[list[RawStream]]:
    """Raw streams, one per (target, token), that said hello and joined the room; closed on exit."""
    opened: list[RawStream] = []
    try:
        for target, token in members:
            opened.append(await connect(target, token, room_id))
        yield opened
    finally:
        for stream in opened:
            await stream.close()


@contextlib.asynccontextmanager
async def closing(streams: list[RawStream]) -> AsyncIterator[list[RawStream]]:
    """Close every stream in the list (as it is on exit) when the block ends."""
    try:
        yield streams
    finally:
        for stream in streams:
            await stream.close()


async def ping(stream: RawStream, nonce: int, timeout: float = 10.0) -> None:
    """A ping answered over the stream (the stream is open and its node responsive)."""
    await stream.send(rs.ConnectRequest(ping=rs.Ping(nonce=nonce)))
    await stream.expect("pong", lambda pong: pong.nonce == nonce, timeout)


async def send_payload(
    stream: RawStream, room_id: str, client_msg_id: str, payload: event_pb2.Payload, timeout: float = 15.0
) -> rs.SendResult:
    send = rs.Send(room_id=room_id, client_msg_id=client_msg_id, payload=payload)
    await stream.send(rs.ConnectRequest(send=send))
    return await stream.send_result(client_msg_id, timeout)


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Wait until `check()` holds, polling; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
