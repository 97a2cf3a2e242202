"""A first fan-out measurement (the load-testing issue builds the real benchmark).

Starts a server, opens N subscriber streams in one room (drain-only clients that count
events without decoding most of them), sends R comments per second for D seconds from
one service stream, and prints one JSON line: server CPU µs per delivered event,
deliveries per second, and end-to-end latency of a decoded sample.

    python -m barrage.loadtest.first_fanout --subscribers 200 --rate 100 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Drain:
    """A subscriber that counts events; decodes every response only if it is the sample."""

    def __init__(self, target: str, decode: bool) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.decode = decode
        self.events = 0
        self.latencies_ms: list[float] = []

    async def run(self, token: str, room: str, ready: asyncio.Event) -> None:
        connect = self.channel.stream_stream("/barrage.v1.RoomService/Connect")
        requests = [
            rs.ConnectRequest(hello=rs.Hello(token=token)).SerializeToString(),
            rs.ConnectRequest(join_room=rs.JoinRoom(room_id=room)).SerializeToString(),
        ]
        call = connect(iter(requests))
        async for raw in call:
            if not ready.is_set():
                ready.set()
            response = rs.ConnectResponse.FromString(raw)
            now_ms = time.time() * 1000
            for message in response.messages:
                for event in message.event_batch.events:
                    self.events += 1
                    if self.decode:
                        self.latencies_ms.append(now_ms - event.publish_time.ToMilliseconds())


async def main(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(
            Path(tmp) / "data",
            env={"BARRAGE_SENDS_PER_SECOND": str(args.rate * 2), "BARRAGE_SEND_BURST": str(args.rate * 2)},
        )
        server.start()
        assert server.proc is not None
        try:
            admin = Admin(server.target, server.token("ops", role="service"))
            await admin.create_room("bench")
            drains = [Drain(server.target, decode=i < args.sample) for i in range(args.subscribers)]
            readies = [asyncio.Event() for _ in drains]
            tasks = [
                asyncio.create_task(d.run(server.token(f"v{i}"), "bench", r))
                for i, (d, r) in enumerate(zip(drains, readies, strict=True))
            ]
            sender = RawStream(server.target)
            await sender.hello(server.token("sender", role="service"))
            await sender.join("bench")
            await sender.send_comment("bench", "warmup", "warmup")
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            await asyncio.sleep(1)
            for d in drains:
                d.events, d.latencies_ms = 0, []
            cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
            total = int(args.rate * args.duration)
            payload = event_pb2.Payload(comment=event_pb2.Comment(text="这个多少钱? how much is this one"))
            for n in range(total):
                send = rs.Send(room_id="bench", client_msg_id=f"m{n}", payload=payload)
                await sender.send(rs.ConnectRequest(send=send))
                delay = t0 + (n + 1) / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.sleep(1.0)
            cpu1, t1 = cpu_seconds(server.proc.pid), time.monotonic()
            delivered = sum(d.events for d in drains)
            latencies = [ms for d in drains for ms in d.latencies_ms]
            for task in tasks:
                task.cancel()
            await sender.close()
            await admin.close()
        finally:
            server.stop()
    return {
        "subscribers": args.subscribers,
        "rate": args.rate,
        "duration_s": args.duration,
        "expected_deliveries": total * args.subscribers,
        "delivered": delivered,
        "deliveries_per_s": round(delivered / (t1 - t0)),
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "server_cpu_us_per_delivery": round((cpu1 - cpu0) * 1e6 / max(delivered, 1), 2),
        "sample_latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p99": round(statistics.quantiles(latencies, n=100)[98], 1),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--sample", type=int, default=10, help="subscribers that decode every event")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
