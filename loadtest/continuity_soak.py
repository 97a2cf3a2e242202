"""Live-delivery continuity soak (issue 12): minutes of concurrent sends on a 3-node Kafka cluster.

Starts the test broker (Tansu) and three `barrage serve` nodes on one topic, a
full-frame subscriber (moderator: never sampled) on every node in every room, and
senders on every node sending comments at `--rate` a second in all. Subscribers
behave like real clients: told `resume_required`, they join again with its cursor.
Optionally kills one node (-9) at `--kill-at` seconds and restarts it.

At the end, for each subscriber: every acknowledged comment received (missing = 0; a
subscriber of the killed node only up to its death), none twice, positions increasing
(out of order = 0); and the complete subscribers of a room, one per node, received the
very same sequence (nodes_disagreeing = 0). `--history` also compares each with
ListEvents (slow: history reads on the test broker take seconds a page on a loaded
machine). Prints one JSON line, with every node's `barrage.live.continuity` counts
(Prometheus) and the nodes' log lines about continuity; exits 1 if anything is off.

    python -m barrage.loadtest.continuity_soak --duration 180 --rate 200 --rooms 2 --kill-at 60

Not part of the test suite (it runs for minutes); tests/test_live_continuity.py is the
short version.
"""


from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from barrage.server.core.cursor import parse_cursor
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess, free_port
from tests.wire_client import Admin

OK = 0
ENV = {"BARRAGE_SENDS_PER_SECOND": "100000", "BARRAGE_SEND_BURST": "100000"}


class Stream:
    """A Connect stream: requests queued, responses handled by `on_message`."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        connect = self.channel.stream_stream(
            "/barrage.v1.RoomService/Connect",
            request_serializer=rs.ConnectRequest.SerializeToString,
            response_deserializer=rs.ConnectResponse.FromString,
        )
        self.outgoing: asyncio.Queue[rs.ConnectRequest | None] = asyncio.Queue()
        self.call: Any = connect(self._requests())
        self.ended = asyncio.Event()

    async def _requests(self) -> Any:
        while (item := await self.outgoing.get()) is not None:
            yield item

    def send(self, request: rs.ConnectRequest) -> None:
        self.outgoing.put_nowait(request)

    async def close(self) -> None:
        self.outgoing.put_nowait(None)
        self.call.cancel()
        await self.channel.close()


@dataclass
class Subscriber:
    node: int
    room_id: str
    cursors: list[str] = field(default_factory=list)
    resumes: int = 0
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    died: bool = False

    async def run(self, target: str, token: str) -> None:
        stream = Stream(target)
        stream.send(rs.ConnectRequest(hello=rs.Hello(token=token, client_agent="continuity-soak")))
        stream.send(rs.ConnectRequest(join_room=rs.JoinRoom(room_id=self.room_id)))
        try:
            async for response in stream.call:
                for message in response.messages:
                    kind = message.WhichOneof("kind")
                    if kind == "join_result":
                        assert message.join_result.status.code == OK, message.join_result.status
                        self.joined.set()
                    elif kind == "event_batch":
                        for event in message.event_batch.events:
                            if event.payload.WhichOneof("kind") == "comment":
                                self.cursors.append(event.cursor)
                    elif kind == "resume_required":
                        # What a client does: join again from the cursor it was given.
                        self.resumes += 1
                        join = rs.JoinRoom(room_id=self.room_id, resume_cursor=message.resume_required.cursor)
                        stream.send(rs.ConnectRequest(join_room=join))
        except grpc.aio.AioRpcError:
            self.died = True
        finally:
            await stream.close()


@dataclass
class Sender:
    index: int
    room_ids: list[str]
    acked: int = 0
    failed: int = 0
    acked_cursors: dict[str, list[str]] = field(default_factory=dict)
    """Room -> cursors of this sender's acknowledged comments."""
    _rooms_of: dict[str, str] = field(default_factory=dict)

    async def run(self, target: str, token: str, rate: float, stop: asyncio.Event) -> None:
        stream = Stream(target)
        reader = asyncio.create_task(self._read(stream))
        stream.send(rs.ConnectRequest(hello=rs.Hello(token=token, client_agent="continuity-soak")))
        for room_id in self.room_ids:
            stream.send(rs.ConnectRequest(join_room=rs.JoinRoom(room_id=room_id)))
        started = time.monotonic()
        try:
            for n in itertools.count():
                if stop.is_set() or reader.done():
                    break
                # Paced as a whole: bursts of several sends keep the nodes appending concurrently.
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                room_id = self.room_ids[n % len(self.room_ids)]
                text = f"{self.index}:{n}"
                self._rooms_of[text] = room_id
                payload = ev.Payload(comment=ev.Comment(text=text))
                stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=text, payload=payload)))
            await asyncio.sleep(2.0)  # the last acknowledgements
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await stream.close()

    async def _read(self, stream: Stream) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for response in stream.call:
                for message in response.messages:
                    if message.WhichOneof("kind") == "send_result":
                        result = message.send_result
                        if result.status.code == OK:
                            self.acked += 1
                            room_id = self._rooms_of.get(result.client_msg_id, "")
                            self.acked_cursors.setdefault(room_id, []).append(result.cursor)
                        else:
                            self.failed += 1


def position(cursor: str) -> int:
    return parse_cursor(cursor).position


def check(received: list[str], acked: set[str], complete: bool) -> dict[str, int]:
    """A subscriber's comments against the acknowledged ones: missing acknowledged comments (only
    up to its last received event unless `complete`), duplicated, out of order (positions must
    increase)."""
    positions = [position(c) for c in received]
    seen = set(received)
    last = positions[-1] if positions else -1
    return {
        "received": len(received),
        "missing": sum(1 for c in acked if c not in seen and (complete or position(c) <= last)),
        "duplicated": len(received) - len(seen),
        "out_of_order": sum(1 for a, b in itertools.pairwise(positions) if b < a),
    }


def compare_with_history(received: list[str], history: list[str], complete: bool) -> dict[str, int]:
    """Missing (only up to the last received event unless `complete`), duplicated, out of order."""
    order = {cursor: i for i, cursor in enumerate(history)}
    seen = set(received)
    indexes = [order[c] for c in received if c in order]
    upto = len(history) if complete else (max(indexes) + 1 if indexes else 0)
    return {
        "history_missing": sum(1 for c in history[:upto] if c not in seen),
        "history_out_of_order": sum(1 for a, b in itertools.pairwise(indexes) if b < a),
        "not_in_history": sum(1 for c in received if c not in order),
    }


def continuity_metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response,
    ):
        for line in response.read().decode().splitlines():
            if line.startswith("barrage_live_continuity_total{"):
                label = line.split('barrage_continuity="', 1)[1].split('"', 1)[0]
                out[label] = float(line.rsplit(" ", 1)[1])
    return out


async def history(admin: Admin, room_id: str) -> list[str]:
    """The room's comment cursors (ListEvents), in small pages, each asked again if the log is slow."""
    cursors: list[str] = []
    cursor = ""
    while True:
        for attempt in itertools.count():
            try:
                page = await admin.history(room_id, cursor, page_size=200)
                break
            except grpc.aio.AioRpcError as exc:  # the test broker has slow moments
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt >= 29:
                    raise
                await asyncio.sleep(1.0)
        cursors.extend(e.cursor for e in page.events if e.payload.WhichOneof("kind") == "comment")
        if not page.next_cursor:
            return cursors
        cursor = page.next_cursor


async def soak(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    with running_broker() as broker:
        url = broker.url(f"soak-{uuid.uuid4().hex[:8]}") + (f"?{args.log_options}" if args.log_options else "")
        metric_ports = [free_port() for _ in range(3)]
        nodes = [
            ServerProcess(base / f"node-{i}", log_url=url, env=ENV, args=("--metrics-listen", f"127.0.0.1:{port}"))
            for i, port in enumerate(metric_ports)
        ]
        for node in nodes:
            node.start()
        try:
            admin = Admin(nodes[0].target, nodes[0].token("ops", role="service"))
            rooms = [f"soak-{uuid.uuid4().hex[:8]}" for _ in range(args.rooms)]
            for room_id in rooms:
                await admin.create_room(room_id, "continuity soak")
            subscribers = [Subscriber(i, room_id) for i in range(3) for room_id in rooms]
            tasks = [
                asyncio.create_task(s.run(nodes[s.node].target, nodes[s.node].token(f"mod-{s.node}", "moderator")))
                for s in subscribers
            ]
            await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in subscribers)), 30)
            stop = asyncio.Event()
            senders = [Sender(i, rooms) for i in range(3 * args.senders_per_node)]
            rate = args.rate / len(senders)
            sending = [
                asyncio.create_task(s.run(nodes[s.index % 3].target, nodes[0].token(f"sender-{s.index}"), rate, stop))
                for s in senders
            ]
            started = time.monotonic()
            killed = False
            while time.monotonic() - started < args.duration:
                await asyncio.sleep(1.0)
                if args.kill_at and not killed and time.monotonic() - started >= args.kill_at:
                    nodes[2].kill()
                    killed = True
                    await asyncio.to_thread(nodes[2].start)
            stop.set()
            await asyncio.gather(*sending)
            elapsed = time.monotonic() - started
            acked = {
                room_id: {c for sender in senders for c in sender.acked_cursors.get(room_id, ())} for room_id in rooms
            }
            # Let live delivery catch up with every acknowledged comment before comparing.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(  # noqa: ASYNC110 - polling counts, no event to wait on
                not s.died and not acked[s.room_id] <= set(s.cursors) for s in subscribers
            ):
                await asyncio.sleep(1.0)
            await asyncio.sleep(2.0)  # and with what was appended but not acknowledged
            verdicts: list[dict[str, Any]] = []
            for s in subscribers:
                verdict = check(s.cursors, acked[s.room_id], complete=not s.died)
                verdicts.append({"node": s.node, "room": s.room_id, "resumes": s.resumes, "died": s.died, **verdict})
            # Complete subscribers of a room, on different nodes, must have received the same sequence.
            disagreements = sum(
                1
                for room_id in rooms
                for a, b in itertools.pairwise([s.cursors for s in subscribers if s.room_id == room_id and not s.died])
                if a != b
            )
            history_read_s = None
            if args.history:  # ListEvents: slow on a loaded machine with the test broker
                reading = time.monotonic()
                histories = {room_id: await history(admin, room_id) for room_id in rooms}
                history_read_s = round(time.monotonic() - reading, 1)
                for s, verdict in zip(subscribers, verdicts, strict=True):
                    verdict.update(compare_with_history(s.cursors, histories[s.room_id], complete=not s.died))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await admin.close()
            metrics = [continuity_metrics(port) for port in metric_ports]
        finally:
            for node in nodes:
                node.stop()
        errors = [
            line.strip()
            for node in nodes
            for line in node.logs().splitlines()
            if "could not be read" in line or "did not arrive" in line or "lacks offsets" in line
        ]
    acked_total = sum(s.acked for s in senders)
    return {
        "duration_s": round(elapsed, 1),
        "rooms": len(rooms),
        "acked": acked_total,
        "acked_per_s": round(acked_total / elapsed, 1),
        "history_read_s": history_read_s,
        "send_failures": sum(s.failed for s in senders),
        "killed_node_2_at_s": args.kill_at or None,
        "subscribers": verdicts,
        "missing": sum(v["missing"] for v in verdicts),
        "duplicated": sum(v["duplicated"] for v in verdicts),
        "out_of_order": sum(v["out_of_order"] for v in verdicts),
        "nodes_disagreeing": disagreements,
        "continuity_metrics_per_node": metrics,
        "continuity_log_lines": errors[:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of sending")
    parser.add_argument("--rate", type=float, default=400.0, help="comments a second, all senders together")
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--senders-per-node", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.0, help="kill -9 node 2 after this many seconds (0: never)")
    parser.add_argument(
        "--log-options",
        default="read_timeout_ms=10000",
        help="the Kafka log URL's query (default: reads may take 10 s, the history check on a shared machine)",
    )
    parser.add_argument("--history", action="store_true", help="also compare with ListEvents (slow)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the nodes' logs in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="barrage-soak-") as scratch:
        base = args.keep or Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(soak(args, base))
    print(json.dumps(result))
    ok = result["missing"] == result["duplicated"] == result["out_of_order"] == result["nodes_disagreeing"] == 0
    ok = ok and all(v.get("history_missing", 0) == v.get("history_out_of_order", 0) == 0 for v in result["subscribers"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
