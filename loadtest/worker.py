"""A client worker process: holds viewer and sender streams, reports to the orchestrator.

Viewer kinds (a run says how many of each it had):
- drain: counts events by scanning frame bytes (proto.scan), decodes one frame in
  `frame_sample_every` to measure latency; checks totals (delivered + omitted against
  the room's history) but not the order of each event. Most viewers are this kind.
- sample: decodes every frame; per event it records latency and checks cursor order,
  duplicates, per-sender sequence order and critical events against history.
- slow: a sample viewer that stops reading (socket paused, no flow-control window
  granted) for part of the run, then reads again and resumes when told to.
- churn: a sample viewer that keeps leaving: it drops its connection (then reconnects)
  or leaves the room (then rejoins), always resuming from its last cursor.
Senders post on a fixed schedule (open loop; lateness is measured) or, with rate 0,
keep a window of sends in flight (closed loop, for ingest).

Messages to the parent (over a multiprocessing pipe): ready, progress (every second),
final. From the parent: start, quiesce (stop churning/pausing, catch up), stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

from barrage.loadtest import h2, metrics, proto, ws
from barrage.server.auth import issue_dev_token
from barrage.v1 import room_service_pb2 as rs

TEXT = "这个多少钱? how much is this one, and does it come in blue"
CRITICAL_TEXT = "Flash sale: this item 50% off for the next 60 seconds"


@dataclass(frozen=True)
class ViewerSpec:
    index: int
    rooms: tuple[str, ...]
    kind: str
    """drain | sample | slow | churn"""
    web: bool = False
    """On a WebSocket (loadtest/ws.py, the node's --web-listen port) instead of a gRPC stream."""


@dataclass(frozen=True)
class RoomLoad:
    """What one sender posts into one room, per second."""

    room: str
    comments: float
    critical: float = 0.0
    """Critical events: announcements and product pins, alternately."""
    likes: float = 0.0
    gifts: float = 0.0
    media_clock: float = 0.0
    """Media clock reports (the host's stream timeline, issue 19)."""
    claims: float = 0.0
    """Coupon claims by senders (issue 17): of the batch COUPON_ID the run drops first."""


COMMENT, CRITICAL, LIKE, GIFT, MEDIA_CLOCK, CLAIM = range(6)
COUPON_ID = "lt-coupon"
"""The coupon batch the load's claims name."""


@dataclass(frozen=True)
class SenderSpec:
    index: int
    rooms: tuple[RoomLoad, ...]
    window: int = 0
    """Closed loop: comments kept in flight (used when every rate is 0)."""

    @property
    def role(self) -> str:
        """Gifts and critical events need a service; comments and likes come from viewers."""
        return "service" if any(r.critical > 0 or r.gifts > 0 or r.media_clock > 0 for r in self.rooms) else "viewer"


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    host: str
    port: int
    secret: str
    duration_s: float
    viewers: tuple[ViewerSpec, ...] = ()
    senders: tuple[SenderSpec, ...] = ()
    window_bytes: int = 4 * 2**20
    streams_per_connection: int = 1
    connect_concurrency: int = 64
    frame_sample_every: int = 8
    web_port: int = 0
    """The node's --web-listen port, for viewers with web=True."""
    slow_from: float = 0.25
    slow_until: float = 0.75
    churn_dwell_s: float = 3.0
    seed: int = 1
    hard_deadline_s: float = 900.0


@dataclass
class Track:
    """What a decoding viewer saw of one room."""

    join_head: int = -2
    """Position of the room's head when first joined (-1: empty room; -2: not joined)."""
    last: int = -1
    last_cursor: str = ""
    positions: array[int] = field(default_factory=lambda: array("q"))
    seen: set[int] = field(default_factory=set)
    omitted: int = 0
    duplicates: int = 0
    order_violations: int = 0
    sender_order_violations: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)


class Stats:
    """Everything a worker measures, shared by its streams."""

    def __init__(self) -> None:
        self.measuring = False
        self.t0_us = 0
        self.deliveries: Counter[str] = Counter()
        self.frames: Counter[str] = Counter()
        self.omitted: Counter[str] = Counter()
        self.decoded_events = 0
        self.lat_publish: dict[str, Any] = {}
        self.lat_intended: dict[str, Any] = {}
        self.per_second: dict[int, Any] = {}
        self.ack_latency = metrics.histogram()
        self.ack_latency_sent = metrics.histogram()
        self.send_lateness = metrics.histogram()
        self.join_latency = metrics.histogram()
        self.loop_lag = metrics.histogram()
        self.sent = 0
        self.sent_critical = 0
        self.acked = 0
        self.send_errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        """Notable happenings: resume_required, go_away, stream_error, joins, reconnects..."""

    def reset(self, t0_us: int) -> None:
        self.__init__()  # type: ignore[misc]
        self.measuring = True
        self.t0_us = t0_us

    def record_latency(self, kind: str, now_us: int, event: Any) -> None:
        ts = event.publish_time
        publish_us = ts.seconds * 1_000_000 + ts.nanos // 1000
        hist = self.lat_publish.get(kind)
        if hist is None:
            hist = self.lat_publish[kind] = metrics.histogram()
            self.lat_intended[kind] = metrics.histogram()
        metrics.record(hist, now_us - publish_us)
        second = (now_us - self.t0_us) // 1_000_000
        per = self.per_second.get(second)
        if per is None:
            per = self.per_second[second] = metrics.histogram(2)
        metrics.record(per, now_us - publish_us)
        parsed = proto.parse_message_id(event.client_msg_id)
        if parsed is not None:
            metrics.record(self.lat_intended[kind], now_us - parsed[2])
        self.decoded_events += 1


class Viewer(h2.Stream):
    def __init__(self, spec: ViewerSpec, token: str, stats: Stats, every: int) -> None:
        super().__init__()
        self.spec = spec
        # Figures per kind keep WebSocket viewers apart: "drain-ws", "sample-ws".
        self.kind = f"{spec.kind}-ws" if spec.web else spec.kind
        self.token = token
        self.stats = stats
        self.every = every
        self.decode_all = spec.kind != "drain"
        self.tracks: dict[str, Track] = {room: Track() for room in spec.rooms}
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_joins = set(spec.rooms)
        self._pending_leaves: set[str] = set()
        self.join_sent_ns = 0
        self.events = 0
        self.frames = 0
        self.omitted = 0
        self.outcomes: Counter[str] = Counter()

    def start(self, resume: bool = False) -> None:
        self.send(proto.hello(self.token))
        self.join_all(resume)

    def join_all(self, resume: bool) -> None:
        self._pending_joins = set(self.spec.rooms)
        self.join_sent_ns = time.monotonic_ns()
        self.send(*(proto.join(room, self.tracks[room].last_cursor if resume else "") for room in self.spec.rooms))

    def on_message(self, data: bytes) -> None:
        stats = self.stats
        self.frames += 1
        if not self.decode_all:
            events, omitted = proto.scan(data, self.on_control)
            self.events += events
            self.omitted += omitted
            if stats.measuring:
                stats.deliveries[self.kind] += events
                stats.omitted[self.kind] += omitted
                stats.frames[self.kind] += 1
                if events and self.frames % self.every == 0:
                    now_us = time.time_ns() // 1000
                    for message in proto.decode(data).messages:
                        for event in message.event_batch.events:
                            stats.record_latency(f"{self.kind}-sampled", now_us, event)
            return
        now_us = time.time_ns() // 1000
        measuring = stats.measuring
        kind = self.kind
        if measuring:
            stats.frames[kind] += 1
        for message in proto.decode(data).messages:
            which = message.WhichOneof("kind")
            if which != "event_batch":
                self.handle_control(message)
                continue
            batch = message.event_batch
            track = self.tracks.get(batch.room_id)
            if track is None:
                continue
            track.omitted += batch.omitted_count
            self.omitted += batch.omitted_count
            if measuring:
                stats.omitted[kind] += batch.omitted_count
            for event in batch.events:
                self.events += 1
                position = proto.cursor_position(event.cursor)
                if position <= track.last:
                    if position in track.seen:
                        track.duplicates += 1
                    else:
                        track.order_violations += 1
                else:
                    track.last = position
                    track.last_cursor = event.cursor
                track.positions.append(position)
                track.seen.add(position)
                parsed = proto.parse_message_id(event.client_msg_id)
                if parsed is not None:
                    previous = track.last_seq.get(parsed[0], -1)
                    if parsed[1] <= previous:
                        track.sender_order_violations += 1
                    track.last_seq[parsed[0]] = max(previous, parsed[1])
                if measuring:
                    stats.deliveries[kind] += 1
                    stats.record_latency(kind, now_us, event)

    def on_control(self, data: bytes) -> None:
        self.handle_control(proto.server_message(data))

    def handle_control(self, message: rs.ServerMessage) -> None:
        which = message.WhichOneof("kind")
        if which == "join_result":
            result = message.join_result
            if result.status.code != 0:
                self.outcomes[f"join_failed:{result.status.message[:60]}"] += 1
                if not self.joined.done():
                    self.joined.set_exception(RuntimeError(f"join refused: {result.status.message}"))
                return
            self.outcomes[rs.ResumeOutcome.Name(result.resume)] += 1
            track = self.tracks.get(result.room_id)
            if track is not None and track.join_head == -2:
                head = result.snapshot.head_cursor
                track.join_head = proto.cursor_position(head) if head else -1
            self._pending_joins.discard(result.room_id)
            if not self._pending_joins:
                if self.stats.measuring:
                    metrics.record(self.stats.join_latency, (time.monotonic_ns() - self.join_sent_ns) // 1000)
                if not self.joined.done():
                    self.joined.set_result(None)
        elif which == "leave_result":
            self._pending_leaves.discard(message.leave_result.room_id)
            if not self._pending_leaves and not self.left.done():
                self.left.set_result(None)
        elif which == "resume_required":
            self.outcomes["resume_required"] += 1
            self.stats.events["resume_required"] += 1
            room = message.resume_required.room_id
            track = self.tracks.get(room)
            # A drain viewer does not know its last cursor: it resumes from the server's.
            cursor = track.last_cursor if track is not None and self.decode_all else message.resume_required.cursor
            self.send(proto.join(room, cursor))
        elif which in ("go_away", "stream_error"):
            self.outcomes[which] += 1
            self.stats.events[which] += 1

    def on_end(self, reason: str) -> None:
        for future in (self.joined, self.left):
            if not future.done():
                future.set_exception(ConnectionError(reason))
                future.exception()  # nobody may be waiting: mark it retrieved

    def leave_all(self) -> None:
        self.left = asyncio.get_running_loop().create_future()
        self._pending_leaves = set(self.spec.rooms)
        self.send(*(proto.leave(room) for room in self.spec.rooms))

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.spec.index,
            "kind": self.kind,
            "events": self.events,
            "omitted": self.omitted,
            "frames": self.frames,
            "ended": self.ended and self.kind != "churn",
            "end_reason": self.end_reason,
            "outcomes": dict(self.outcomes),
            "rooms": {},
        }
        for room, track in self.tracks.items():
            entry: dict[str, Any] = {"join_head": track.join_head, "omitted": track.omitted}
            if self.decode_all:
                entry.update(
                    positions=track.positions.tobytes(),
                    duplicates=track.duplicates,
                    order_violations=track.order_violations,
                    sender_order_violations=track.sender_order_violations,
                )
            out["rooms"][room] = entry
        return out


class Sender(h2.Stream):
    def __init__(self, spec: SenderSpec, token: str, stats: Stats) -> None:
        super().__init__()
        self.spec = spec
        self.token = token
        self.stats = stats
        self.tag = f"s{spec.index}"
        self.in_flight: dict[str, tuple[int, int, bool]] = {}
        """client_msg_id -> (intended µs, sent µs, critical)"""
        self.acked_positions: dict[str, array[int]] = {r.room: array("q") for r in spec.rooms}
        self.critical_acked: dict[str, array[int]] = {r.room: array("q") for r in spec.rooms}
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_joins = {r.room for r in spec.rooms}
        self.acked_event = asyncio.Event()
        self.events = 0
        self.media_origin_ms = time.time_ns() // 1_000_000
        """Wall time of media position 0 of the sender's simulated stream."""

    def start(self) -> None:
        self.send(proto.hello(self.token), *(proto.join(r.room) for r in self.spec.rooms))

    def on_message(self, data: bytes) -> None:
        events, _ = proto.scan(data, self.on_control)
        self.events += events
        if self.stats.measuring:
            self.stats.deliveries["sender"] += events

    def on_control(self, data: bytes) -> None:
        message = proto.server_message(data)
        which = message.WhichOneof("kind")
        if which == "send_result":
            result = message.send_result
            sent = self.in_flight.pop(result.client_msg_id, None)
            self.acked_event.set()
            if sent is None:
                return
            if result.status.code == 0:
                self.stats.acked += 1
                if result.cursor:  # likes are counted, not logged: no cursor
                    position = proto.cursor_position(result.cursor)
                    self.acked_positions[result.room_id].append(position)
                    if sent[2]:
                        self.critical_acked[result.room_id].append(position)
                now_us = time.time_ns() // 1000
                metrics.record(self.stats.ack_latency, now_us - sent[0])
                metrics.record(self.stats.ack_latency_sent, now_us - sent[1])
            else:
                self.stats.send_errors[f"{result.status.code}:{result.status.message[:50]}"] += 1
        elif which == "join_result":
            if message.join_result.status.code != 0:
                if not self.joined.done():
                    self.joined.set_exception(RuntimeError(message.join_result.status.message))
                return
            self._pending_joins.discard(message.join_result.room_id)
            if not self._pending_joins and not self.joined.done():
                self.joined.set_result(None)
        elif which in ("resume_required", "go_away", "stream_error"):
            self.stats.events[f"sender_{which}"] += 1
            if which == "resume_required":
                self.send(proto.join(message.resume_required.room_id, message.resume_required.cursor))

    def on_end(self, reason: str) -> None:
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(reason))
        self.stats.events["sender_stream_ended"] += 1
        self.acked_event.set()

    def schedule(self, duration_s: float, phase: float) -> list[tuple[float, int, int]]:
        """(offset s, room index, what) of every send, in time order."""
        items: list[tuple[float, int, int]] = []
        for i, load in enumerate(self.spec.rooms):
            for r, what in (
                (load.comments, COMMENT),
                (load.critical, CRITICAL),
                (load.likes, LIKE),
                (load.gifts, GIFT),
                (load.media_clock, MEDIA_CLOCK),
                (load.claims, CLAIM),
            ):
                if r <= 0:
                    continue
                count = int(duration_s * r)
                start = phase / r
                items.extend((start + k / r, i, what) for k in range(count))
        items.sort()
        return items

    def _message(self, seq: int, room_index: int, what: int, intended_us: int, now_us: int) -> bytes:
        room = self.spec.rooms[room_index].room
        msg_id = proto.message_id(self.tag, seq, intended_us)
        self.in_flight[msg_id] = (intended_us, now_us, what == CRITICAL)
        if what == CRITICAL:
            self.stats.sent_critical += 1
            if seq % 2:
                payload = proto.product_pinned_payload(seq)
            else:
                payload = proto.announcement_payload(f"{CRITICAL_TEXT} #{seq}")
        elif what == LIKE:
            payload = proto.like_payload()
        elif what == GIFT:
            payload = proto.gift_payload(f"fan{seq % 97}", seq)
        elif what == CLAIM:
            payload = proto.coupon_claim_payload(COUPON_ID)
        elif what == MEDIA_CLOCK:
            payload = proto.media_clock_payload("lt", now_us // 1000 - self.media_origin_ms)
        else:
            payload = proto.comment_payload(f"{TEXT} #{seq}")
        self.stats.sent += 1
        return proto.send(room, msg_id, payload)

    async def run_schedule(self, t0_wall_us: int, duration_s: float, phase: float) -> None:
        if self.spec.window:
            await self._run_window(duration_s)
            return
        items = self.schedule(duration_s, phase)
        loop = asyncio.get_running_loop()
        # Intended send times are wall-clock offsets from t0, shared by all processes.
        await asyncio.sleep(max(0.0, (t0_wall_us - time.time_ns() // 1000) / 1e6))
        start = loop.time() - (time.time_ns() // 1000 - t0_wall_us) / 1e6
        i = 0
        seq = 0
        lateness = self.stats.send_lateness
        while i < len(items) and not self.ended:
            now = loop.time() - start
            due = items[i][0]
            if due > now:
                await asyncio.sleep(due - now)
                continue
            out: list[bytes] = []
            now_us = time.time_ns() // 1000
            while i < len(items) and items[i][0] <= now:
                offset, room_index, what = items[i]
                metrics.record(lateness, int((now - offset) * 1e6))
                out.append(self._message(seq, room_index, what, t0_wall_us + int(offset * 1e6), now_us))
                seq += 1
                i += 1
            self.send(*out)

    async def _run_window(self, duration_s: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        seq = 0
        rooms = len(self.spec.rooms)
        while loop.time() < end and not self.ended:
            out: list[bytes] = []
            now_us = time.time_ns() // 1000
            while len(self.in_flight) < self.spec.window:
                out.append(self._message(seq, seq % rooms, COMMENT, now_us, now_us))
                seq += 1
            self.send(*out)
            self.acked_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.acked_event.wait(), 1.0)

    def report(self) -> dict[str, Any]:
        return {
            "index": self.spec.index,
            "acked": {room: a.tobytes() for room, a in self.acked_positions.items()},
            "critical_acked": {room: a.tobytes() for room, a in self.critical_acked.items()},
            "unacked": len(self.in_flight),
            "events": self.events,
            "ended": self.ended,
            "end_reason": self.end_reason,
        }


class Worker:
    def __init__(self, spec: WorkerSpec, pipe: Pipe) -> None:
        self.spec = spec
        self.pipe = pipe
        self.stats = Stats()
        self.viewers: list[Viewer] = []
        self.senders: list[Sender] = []
        self.connections: list[h2.Connection] = []
        self.failed: Counter[str] = Counter()
        self.quiesce = asyncio.Event()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.random = random.Random(spec.seed)

    def token(self, user: str, role: str) -> str:
        return issue_dev_token(self.spec.secret, user_id=user, role=role, ttl_s=6 * 3600)

    async def _connect(self, window: int | None = None) -> h2.Connection:
        conn = await h2.connect(self.spec.host, self.spec.port, window or self.spec.window_bytes)
        self.connections.append(conn)
        return conn

    async def open_web_viewer(self, viewer: Viewer) -> None:
        for attempt in range(3):
            try:
                if attempt:
                    viewer.joined = asyncio.get_running_loop().create_future()
                    viewer.ended = False
                await ws.connect(self.spec.host, self.spec.web_port, viewer)
                viewer.start()
                await asyncio.wait_for(viewer.joined, 60)
                return
            except (OSError, RuntimeError, TimeoutError, ConnectionError) as exc:
                if attempt == 2:
                    self.failed[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                await asyncio.sleep(0.2 * (attempt + 1))

    async def open_viewers(self, group: list[Viewer]) -> None:
        if group and group[0].spec.web:
            await self.open_web_viewer(group[0])
            return
        # A stalled phone's gRPC stack (no BDP probe) grants 64 KiB: the server feels it at once.
        window = h2.DEFAULT_WINDOW if any(v.kind == "slow" for v in group) else None
        for attempt in range(3):
            try:
                conn = await self._connect(window)
                for viewer in group:
                    if attempt:
                        viewer.joined = asyncio.get_running_loop().create_future()
                    conn.open_stream(viewer, proto.CONNECT_PATH)
                    viewer.start()
                await asyncio.wait_for(asyncio.gather(*(v.joined for v in group)), 60)
                return
            except (OSError, RuntimeError, TimeoutError, ConnectionError) as exc:
                if attempt == 2:
                    self.failed[type(exc).__name__ + ": " + str(exc)[:80]] += len(group)
                await asyncio.sleep(0.2 * (attempt + 1))

    async def connect_all(self) -> None:
        spec = self.spec
        for vs in spec.viewers:
            self.viewers.append(Viewer(vs, self.token(f"v{vs.index}", "viewer"), self.stats, spec.frame_sample_every))
        steady = [v for v in self.viewers if v.kind != "churn" and not v.spec.web]
        groups = [
            steady[i : i + spec.streams_per_connection] for i in range(0, len(steady), spec.streams_per_connection)
        ]
        groups += [[v] for v in self.viewers if v.spec.web]  # one WebSocket each
        sem = asyncio.Semaphore(spec.connect_concurrency)

        async def one(group: list[Viewer]) -> None:
            async with sem:
                await self.open_viewers(group)

        await asyncio.gather(*(one(g) for g in groups))
        for v in self.viewers:
            if v.kind == "churn":
                await self.open_viewers([v])
        for ss in spec.senders:
            sender = Sender(ss, self.token(f"sender{ss.index}", ss.role), self.stats)
            conn = await self._connect()
            conn.open_stream(sender, proto.CONNECT_PATH)
            sender.start()
            await asyncio.wait_for(sender.joined, 60)
            self.senders.append(sender)

    async def churn(self, viewer: Viewer) -> None:
        """Leave and come back (reconnect or rejoin), resuming, until quiesced."""
        rng = self.random
        while not self.quiesce.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.quiesce.wait(), rng.expovariate(1.0 / self.spec.churn_dwell_s))
            if self.quiesce.is_set():
                break
            try:
                if rng.random() < 0.5 or viewer.ended:
                    self.stats.events["churn_reconnect"] += 1
                    if viewer.conn is not None:
                        viewer.conn.close()
                    await asyncio.sleep(0.05)
                    fresh = Viewer(viewer.spec, viewer.token, self.stats, 1)
                    fresh.tracks = viewer.tracks
                    fresh.outcomes = viewer.outcomes
                    fresh.events, fresh.frames, fresh.omitted = viewer.events, viewer.frames, viewer.omitted
                    conn = await self._connect()
                    conn.open_stream(fresh, proto.CONNECT_PATH)
                    fresh.send(proto.hello(viewer.token))
                    fresh.join_all(resume=True)
                    self.viewers[self.viewers.index(viewer)] = fresh
                    viewer = fresh
                else:
                    self.stats.events["churn_rejoin"] += 1
                    # Events already in flight arrive before leave_result: only then is the
                    # last cursor final (rejoining earlier would replay them twice).
                    viewer.leave_all()
                    await asyncio.wait_for(viewer.left, 30)
                    viewer.joined = asyncio.get_running_loop().create_future()
                    viewer.join_all(resume=True)
                await asyncio.wait_for(viewer.joined, 30)
            except (OSError, RuntimeError, TimeoutError, ConnectionError) as exc:
                self.stats.events[f"churn_error:{type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
        if viewer.ended or not viewer.joined.done() or viewer.joined.exception() is not None:
            # Quiesced while away: come back once more so the final check covers the tail.
            fresh = Viewer(viewer.spec, viewer.token, self.stats, 1)
            fresh.tracks, fresh.outcomes = viewer.tracks, viewer.outcomes
            with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
                conn = await self._connect()
                conn.open_stream(fresh, proto.CONNECT_PATH)
                fresh.send(proto.hello(viewer.token))
                fresh.join_all(resume=True)
                self.viewers[self.viewers.index(viewer)] = fresh
                await asyncio.wait_for(fresh.joined, 30)

    async def slow(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        slow = [v for v in self.viewers if v.kind == "slow"]
        d = self.spec.duration_s
        await asyncio.sleep(max(0.0, t0 + d * self.spec.slow_from - loop.time()))
        for v in slow:
            v.pause()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.quiesce.wait(), max(0.0, t0 + d * self.spec.slow_until - loop.time()))
        for v in slow:
            v.resume()

    async def lag_probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            late = loop.time() - before - 0.05
            if self.stats.measuring:
                metrics.record(self.stats.loop_lag, int(late * 1e6))

    def send_parent(self, message: dict[str, Any]) -> None:
        self.pipe.send(message)

    def progress(self) -> dict[str, Any]:
        t = os.times()
        s = self.stats
        return {
            "type": "progress",
            "name": self.spec.name,
            "deliveries": dict(s.deliveries),
            "omitted": sum(s.omitted.values()),
            "sent": s.sent,
            "acked": s.acked,
            "cpu_s": t.user + t.system,
            "time": time.time(),
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._read_pipe)
        # The event loop made the pipe non-blocking; a big final message needs blocking writes.
        os.set_blocking(self.pipe.fileno(), True)
        started = time.monotonic()
        await self.connect_all()
        connected: Counter[str] = Counter(v.kind for v in self.viewers if v.joined.done() and not v.ended)
        self.send_parent(
            {
                "type": "ready",
                "name": self.spec.name,
                "connected": dict(connected),
                "senders": len(self.senders),
                "failed": dict(self.failed),
                "connect_s": round(time.monotonic() - started, 2),
            }
        )
        lag = asyncio.create_task(self.lag_probe())
        deadline = loop.time() + self.spec.hard_deadline_s
        cpu0 = 0.0
        t_start = 0.0
        while True:
            try:
                message = await asyncio.wait_for(self.inbox.get(), max(0.1, min(1.0, deadline - loop.time())))
            except TimeoutError:
                if loop.time() >= deadline:
                    print(f"{self.spec.name}: hard deadline, exiting", file=sys.stderr)
                    os._exit(2)
                if self.stats.measuring:
                    self.send_parent(self.progress())
                continue
            kind = message["type"]
            if kind == "start":
                self.stats.reset(message["t0_wall_us"])
                t = os.times()
                cpu0 = t.user + t.system
                t_start = loop.time()
                for i, sender in enumerate(self.senders):
                    phase = (i + 0.5) / max(1, len(self.senders))
                    task = asyncio.create_task(sender.run_schedule(message["t0_wall_us"], self.spec.duration_s, phase))
                    self.tasks.append(task)
                for viewer in self.viewers:
                    if viewer.kind == "churn":
                        self.tasks.append(asyncio.create_task(self.churn(viewer)))
                if any(v.kind == "slow" for v in self.viewers):
                    self.tasks.append(asyncio.create_task(self.slow(t_start)))
            elif kind == "quiesce":
                self.quiesce.set()
            elif kind == "stop":
                break
        t = os.times()
        cpu_s = t.user + t.system - cpu0
        window_s = loop.time() - t_start
        lag.cancel()
        for task in self.tasks:
            task.cancel()
        self.send_parent(self.final(cpu_s, window_s))

    def _read_pipe(self) -> None:
        try:
            message = self.pipe.recv()
        except (EOFError, OSError):
            os._exit(3)  # the orchestrator is gone
        self.inbox.put_nowait(message)

    def final(self, cpu_s: float, window_s: float) -> dict[str, Any]:
        s = self.stats
        return {
            "type": "final",
            "name": self.spec.name,
            "cpu_s": cpu_s,
            "window_s": window_s,
            "deliveries": dict(s.deliveries),
            "frames": dict(s.frames),
            "omitted": dict(s.omitted),
            "decoded_events": s.decoded_events,
            "lat_publish": {k: metrics.encode(h) for k, h in s.lat_publish.items()},
            "lat_intended": {k: metrics.encode(h) for k, h in s.lat_intended.items()},
            "per_second": {sec: metrics.encode(h) for sec, h in s.per_second.items()},
            "ack_latency": metrics.encode(s.ack_latency),
            "ack_latency_sent": metrics.encode(s.ack_latency_sent),
            "send_lateness": metrics.encode(s.send_lateness),
            "join_latency": metrics.encode(s.join_latency),
            "loop_lag": metrics.encode(s.loop_lag),
            "sent": s.sent,
            "sent_critical": s.sent_critical,
            "acked": s.acked,
            "send_errors": dict(s.send_errors),
            "events": dict(s.events),
            "viewers": [v.report() for v in self.viewers],
            "senders": [x.report() for x in self.senders],
        }


def worker_main(spec: WorkerSpec, pipe: Pipe) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    import uvloop

    async def main() -> None:
        await Worker(spec, pipe).run()

    try:
        uvloop.run(main())
    finally:
        pipe.close()
    os._exit(0)  # skip closing thousands of sockets one by one
