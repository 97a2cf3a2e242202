"""WebSocket viewers against gRPC viewers on one node, in one run (docs/web.md, performance).

    python -m barrage.loadtest.ws_fanout --viewers 1000 --rate 100 --duration 20

Starts a node with --web-listen, then runs the same mega-room load twice on it: first
with every viewer on WebSocket (cheap readers: frames are counted by scanning their
bytes, one in `--sample-every` is decoded for latency), then with every viewer on a gRPC
stream (loadtest/h2.py, the same reader). Senders post comments at --rate over gRPC.
Per phase: server CPU per delivery (/proc of the node over the measured window),
latency from publish time (p50/p99 of the decoded sample), and RSS per connection (the
node's RSS after connecting the viewers less before, over the viewer count).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from barrage.loadtest import h2, proto
from barrage.server.auth import issue_dev_token
from barrage.v1 import admin_service_pb2, admin_service_pb2_grpc

SECRET = "ws-fanout-bench-secret-for-loopback-runs-only"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Counts:
    def __init__(self, sample_every: int) -> None:
        self.events = 0
        self.omitted = 0
        self.frames = 0
        self.sample_every = sample_every
        self.latencies_us: list[int] = []
        self.measuring = False

    def frame(self, data: bytes, on_control: Any) -> None:
        events, omitted = proto.scan(data, on_control)
        if not self.measuring:
            return
        self.frames += 1
        self.events += events
        self.omitted += omitted
        if events and self.frames % self.sample_every == 0:
            now_us = time.time_ns() // 1000
            for message in proto.decode(data).messages:
                for event in message.event_batch.events:
                    ts = event.publish_time
                    self.latencies_us.append(now_us - (ts.seconds * 1_000_000 + ts.nanos // 1000))


class WsViewer(asyncio.Protocol):
    """A minimal RFC 6455 client: upgrade, masked binary frames out, frames in."""

    def __init__(self, host: str, port: int, token: str, room: str, counts: Counts) -> None:
        self.host, self.port, self.token, self.room, self.counts = host, port, token, room, counts
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: barrage.v1\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def send(self, payload: bytes, opcode: int = 2) -> None:
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        assert self.transport is not None
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(bytes(buf[:80]).decode(errors="replace"))
            del buf[: end + 4]
            self.upgraded = True
            self.send(proto.hello(self.token))
            self.send(proto.join(self.room))
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode == 2:
                self.counts.frame(payload, self.on_control)
            elif opcode == 9:
                self.send(payload, opcode=10)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
        del buf[:pos]

    def on_control(self, data: bytes) -> None:
        message = proto.server_message(data)
        if message.WhichOneof("kind") == "join_result" and not self.joined.done():
            self.joined.set_result(None)


class GrpcViewer(h2.Stream):
    def __init__(self, token: str, room: str, counts: Counts) -> None:
        super().__init__()
        self.token, self.room, self.counts = token, room, counts
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(self, data: bytes) -> None:
        self.counts.frame(data, self.on_control)

    def on_control(self, data: bytes) -> None:
        message = proto.server_message(data)
        if message.WhichOneof("kind") == "join_result" and not self.joined.done():
            self.joined.set_result(None)


class Sender(h2.Stream):
    def on_message(self, data: bytes) -> None:
        pass


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def open_viewers(
    transport: str, indices: range, room: str, counts: Counts, grpc_port: int, web_port: int
) -> list[Any]:
    """Connect and join one slice of the viewers; returns what to close afterwards."""
    loop = asyncio.get_running_loop()
    handles: list[Any] = []
    viewers: list[Any] = []
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        token = issue_dev_token(SECRET, user_id=f"{transport}-v{i}", role="viewer", ttl_s=3600)
        async with sem:
            if transport == "ws":
                _, viewer = await loop.create_connection(
                    lambda: WsViewer("127.0.0.1", web_port, token, room, counts), "127.0.0.1", web_port
                )
                handles.append(viewer)
            else:
                conn = await h2.connect("127.0.0.1", grpc_port, 4 * 2**20)
                stream = GrpcViewer(token, room, counts)
                conn.open_stream(stream, proto.CONNECT_PATH)
                stream.send(proto.hello(token), proto.join(room))
                handles.append(conn)
                viewers.append(stream)
                await asyncio.wait_for(stream.joined, 120)
                return
            viewers.append(viewer)
            await asyncio.wait_for(viewer.joined, 120)

    await asyncio.gather(*(one(i) for i in indices))
    return handles


def close_all(handles: list[Any]) -> None:
    for item in handles:
        if isinstance(item, WsViewer):
            if item.transport is not None:
                item.transport.close()
        else:
            item.close()


def viewer_process(
    pipe: Connection, transport: str, indices: range, room: str, grpc_port: int, web_port: int, every: int
) -> None:
    """One client process: its viewers count between the parent's start and end times."""

    async def run() -> None:
        counts = Counts(every)
        handles = await open_viewers(transport, indices, room, counts, grpc_port, web_port)
        pipe.send("ready")
        start, end = await asyncio.to_thread(pipe.recv)
        await asyncio.sleep(max(0.0, start - time.time()))
        counts.measuring = True
        await asyncio.sleep(max(0.0, end - time.time()))
        counts.measuring = False
        pipe.send((counts.events, counts.omitted, counts.latencies_us))
        await asyncio.to_thread(pipe.recv)  # the parent has measured the node: close
        close_all(handles)
        await asyncio.sleep(0.5)

    import uvloop  # as the load generator's workers: the clients must not be the bottleneck

    uvloop.run(run())


async def phase(args: argparse.Namespace, transport: str, pid: int, grpc_port: int, web_port: int) -> dict[str, Any]:
    room = f"mega-{transport}"
    rss0 = rss_bytes(pid)
    context = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for k in range(args.client_procs):
        parent, child = context.Pipe()
        indices = range(k, args.viewers, args.client_procs)
        proc = context.Process(
            target=viewer_process,
            args=(child, transport, indices, room, grpc_port, web_port, args.sample_every),
        )
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for pipe in pipes:
        assert await asyncio.to_thread(pipe.recv) == "ready"
    await asyncio.sleep(1.0)
    rss1 = rss_bytes(pid)
    # Senders: comments at --rate over gRPC, spread over streams within the per-stream limit.
    streams = max(1, int(args.rate // 8) + 1)
    senders = []
    for i in range(streams):
        token = issue_dev_token(SECRET, user_id=f"{transport}-s{i}", role="viewer", ttl_s=3600)
        conn = await h2.connect("127.0.0.1", grpc_port, 4 * 2**20)
        sender = Sender()
        conn.open_stream(sender, proto.CONNECT_PATH)
        sender.send(proto.hello(token), proto.join(room))
        senders.append(sender)
    await asyncio.sleep(0.5)
    start = time.time() + 0.2
    end = start + args.duration + 1.0  # the last batches
    for pipe in pipes:
        pipe.send((start, end))
    await asyncio.sleep(max(0.0, start - time.time()))
    cpu0, t0 = cpu_s(pid), time.monotonic()
    interval = 1.0 / args.rate
    sent = 0
    next_at = t0
    while time.monotonic() - t0 < args.duration:
        sender = senders[sent % len(senders)]
        msg_id = proto.message_id(f"{transport}-s", sent, time.time_ns() // 1000)
        sender.send(proto.send(room, msg_id, proto.comment_payload("how much is the blue one?")))
        sent += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.sleep(max(0.0, end - time.time()))
    cpu1, t1 = cpu_s(pid), time.monotonic()
    events = omitted = 0
    latencies: list[int] = []
    for pipe in pipes:
        e, o, lat = await asyncio.to_thread(pipe.recv)
        events, omitted = events + e, omitted + o
        latencies.extend(lat)
    for pipe in pipes:
        pipe.send("close")
    for proc in procs:
        await asyncio.to_thread(proc.join, 30)
    for sender in senders:
        if sender.conn is not None:
            sender.conn.close()
    await asyncio.sleep(2.0)
    return {
        "transport": transport,
        "viewers": args.viewers,
        "client_procs": args.client_procs,
        "comments_sent": sent,
        "deliveries": events,
        "omitted": omitted,
        "expected_deliveries": sent * args.viewers,
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "window_s": round(t1 - t0, 2),
        "server_us_per_delivery": round((cpu1 - cpu0) * 1e6 / max(1, events + omitted), 3),
        "latency_p50_ms": round(percentile(latencies, 0.50), 1),
        "latency_p99_ms": round(percentile(latencies, 0.99), 1),
        "latency_samples": len(latencies),
        "rss_per_connection_kb": round((rss1 - rss0) / args.viewers / 1024, 1),
    }


def start_server() -> tuple[subprocess.Popen[bytes], int, int]:
    grpc_port, web_port = free_ports()
    data = tempfile.mkdtemp(prefix="ws-fanout-")
    env = {**os.environ, "BARRAGE_VIEWER_BUDGET_PER_S": "100000"}
    command = [
        sys.executable, "-m", "barrage.server",
        "--listen", f"127.0.0.1:{grpc_port}", "--web-listen", f"127.0.0.1:{web_port}",
        "--log", f"embedded:{data}?fsync=none", "--jwt-secret", SECRET, "--log-level", "WARNING",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env), grpc_port, web_port


async def main_async(args: argparse.Namespace, pid: int, grpc_port: int, web_port: int) -> list[dict[str, Any]]:
    await wait_port(grpc_port)
    await wait_port(web_port)
    import grpc

    token = issue_dev_token(SECRET, user_id="shop", role="service", ttl_s=3600)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = admin_service_pb2_grpc.RoomAdminServiceStub(channel)
        for transport in args.transports.split(","):
            await stub.CreateRoom(
                admin_service_pb2.CreateRoomRequest(room_id=f"mega-{transport}"),
                metadata=(("authorization", f"Bearer {token}"),),
            )
    results = []
    for transport in args.transports.split(","):
        result = await phase(args, transport, pid, grpc_port, web_port)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def free_ports() -> tuple[int, int]:
    import socket

    ports = []
    socks = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in socks:
        sock.close()
    return ports[0], ports[1]


async def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="comments per second into the room")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--sample-every", type=int, default=8, help="decode 1 frame in N for latency")
    parser.add_argument("--client-procs", type=int, default=2, help="viewer processes (plus this one for senders)")
    parser.add_argument("--transports", default="ws,grpc", help="phases, in order")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    server, grpc_port, web_port = start_server()
    try:
        import uvloop

        results = uvloop.run(main_async(args, server.pid, grpc_port, web_port))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
