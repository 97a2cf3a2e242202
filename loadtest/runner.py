"""The orchestrator: server, rooms, worker processes, the measured window, the checks.

Timeline of a run: start (or attach to) the server and note its RSS; create the rooms;
start the client workers and wait until every viewer has joined; note RSS again (RSS
per stream); then the measured window: senders run for --duration, then the run waits
until deliveries stop (at most --drain seconds). Server CPU is read from /proc for the
server process and its descendants at both ends of the window. Finally the room
histories are read back (ListEvents) and every decoding viewer's events are checked
against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import multiprocessing
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from bisect import bisect_right
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from barrage.loadtest import metrics, profile, proto
from barrage.loadtest.cpucap import CpuCaps
from barrage.loadtest.scenarios import Plan, build
from barrage.loadtest.worker import COUPON_ID, SenderSpec, ViewerSpec, WorkerSpec, worker_main
from barrage.server.auth import issue_dev_token
from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import admin_service_pb2_grpc, event_pb2
from tests.kafka_broker import KafkaBroker, start_broker

ROOT = Path(__file__).resolve().parent.parent
SPAWN_SECRET = "loadtest-secret-for-loopback-runs-only"
_SPAWN_ENV = {"BARRAGE_SENDS_PER_SECOND": "1000000", "BARRAGE_SEND_BURST": "1000000"}


@dataclass(frozen=True)
class RunConfig:
    scenario: str
    viewers: int
    rooms: int
    rate: float
    critical_rate: float
    duration: float
    senders: int
    sample: int
    slow_fraction: float
    churn_fraction: float
    window: int
    out: Path
    likes: float = 0.0
    gifts: float = 0.0
    media_clock: float = 0.0
    claims: float = 0.0
    """Coupon claims per second, all rooms, of one batch per room dropped before the senders start."""
    """Media clock reports per second per room, from its service sender: every event is stamped."""
    target: str = ""
    server_pid: int = 0
    spawn_server: str | None = None
    jwt_secret: str = ""
    client_procs: int = 2
    streams_per_connection: int = 1
    frame_sample_every: int = 8
    drain_s: float = 15.0
    connect_concurrency: int = 64
    seed: int = 1
    profile_s: float = 0.0
    """Run py-spy on the server for this many seconds, starting 2 s into the window."""
    profile_native: bool = False
    kafka: bool = False
    web_fraction: float = 0.0
    """Share of the drain and sample viewers on WebSocket (the node's --web-listen), docs/web.md."""
    """Start the test Kafka broker (Tansu) for the run and spawn the server on it."""
    cpu_cap: float = 0.0
    """Cap each server process at this many cores (cgroup quota; 0: no cap)."""


def check_loopback(target: str) -> tuple[str, int]:
    """HOST:PORT, refused unless HOST is a loopback address."""
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        raise SystemExit(f"--target must be HOST:PORT, not {target!r}")
    try:
        infos = socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {host!r}: {exc}") from exc
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"refusing non-loopback target {target!r}: the load generator runs on loopback only")
    return host, int(port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class ServerHandle:
    """A server this run spawned (stopped at the end) or one it was pointed at."""

    def __init__(self, cfg: RunConfig, out: Path) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self._data: tempfile.TemporaryDirectory[str] | None = None
        self.broker: KafkaBroker | None = None
        self.caps = CpuCaps(cfg.cpu_cap, uuid.uuid4().hex[:8]) if cfg.cpu_cap > 0 else None
        if cfg.spawn_server is not None:
            extra = shlex.split(cfg.spawn_server)
            listen = _option(extra, "--listen") or f"127.0.0.1:{free_port()}"
            self.host, self.port = check_loopback(listen)
            if cfg.kafka:
                if _option(extra, "--log") is not None:
                    raise SystemExit("--kafka starts its own broker: leave --log out of --spawn-server")
                self.broker = start_broker()
                extra += ["--log", self.broker.url(f"loadtest-{uuid.uuid4().hex[:8]}")]
            elif _option(extra, "--log") is None:
                self._data = tempfile.TemporaryDirectory(prefix="loadtest-data-")
                extra += ["--log", f"embedded:{self._data.name}"]
            if _option(extra, "--jwt-secret") is None:
                extra += ["--jwt-secret", SPAWN_SECRET]
            self.secret = _option(extra, "--jwt-secret") or SPAWN_SECRET
            if _option(extra, "--listen") is None:
                extra += ["--listen", listen]
            if cfg.web_fraction > 0 and _option(extra, "--web-listen") is None:
                extra += ["--web-listen", f"127.0.0.1:{free_port()}"]
            web_listen = _option(extra, "--web-listen")
            self.web_port = check_loopback(web_listen)[1] if web_listen else 0
            self.command = [sys.executable, "-m", "barrage.server", *extra]
            self.env = {k: v for k, v in _SPAWN_ENV.items() if k not in os.environ}
            self.env.update({k: v for k, v in os.environ.items() if k.startswith(("BARRAGE_", "OTEL_"))})
            with (out / "server.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command,
                    cwd=ROOT,
                    env=dict(os.environ, PYTHONUNBUFFERED="1", **self.env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_raise_nofile,  # noqa: PLW1509 (no threads yet in this process)
                )
            self.pid = self.proc.pid
        else:
            if cfg.kafka:
                raise SystemExit("--kafka needs --spawn-server (it starts the broker the server uses)")
            self.host, self.port = check_loopback(cfg.target)
            if cfg.web_fraction > 0:
                raise SystemExit("--web-fraction needs --spawn-server (it starts the node's --web-listen port)")
            self.web_port = 0
            self.pid = cfg.server_pid
            self.secret = cfg.jwt_secret
            if not Path(f"/proc/{self.pid}").exists():
                raise SystemExit(f"--server-pid {self.pid}: no such process")

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise SystemExit(f"server exited with {self.proc.returncode}; see server.log")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        raise SystemExit(f"server at {self.target} not serving after {timeout_s} s")

    def pids(self) -> list[int]:
        pids = metrics.process_tree(self.pid)
        if self.caps is not None:
            self.caps.apply(pids)
        return pids

    @property
    def broker_pid(self) -> int | None:
        return self.broker.process.pid if self.broker is not None and self.broker.process is not None else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.broker is not None:
            self.broker.stop()
        if self.caps is not None:
            self.caps.close()
        if self._data is not None:
            self._data.cleanup()


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class Admin:
    def __init__(self, target: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 * 2**20)])
        self.stub = admin_service_pb2_grpc.RoomAdminServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    async def create(self, room_id: str) -> None:
        await self.stub.CreateRoom(pb.CreateRoomRequest(room_id=room_id, title="load test"), metadata=self.metadata)

    async def drop_coupons(self, room_id: str, batch_id: str) -> None:
        """The most a batch may hold, 100 per user: the claims of a run are refused only when a
        sender reaches its limit (LIMIT_REACHED among the send errors) or the batch sells out."""
        payload = proto.coupon_batch_payload(batch_id, 10_000, 100, int(time.time()) + 6 * 3600)
        request = pb.PublishEventRequest(room_id=room_id, request_id=f"coupons-{batch_id}", payload=payload)
        await self.stub.PublishEvent(request, metadata=self.metadata)

    async def history(self, room_id: str) -> list[event_pb2.Event]:
        events: list[event_pb2.Event] = []
        cursor = ""
        while True:
            request = pb.ListEventsRequest(room_id=room_id, cursor=cursor, page_size=1000)
            for attempt in range(5):  # UNAVAILABLE: the log did not answer in time; ask again
                try:
                    page = await self.stub.ListEvents(request, metadata=self.metadata, timeout=60)
                    break
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                        raise
                    await asyncio.sleep(1.0)
            events.extend(page.events)
            if not page.next_cursor:
                return events
            cursor = page.next_cursor

    async def close(self) -> None:
        await self.channel.close()


class WorkerProc:
    def __init__(self, spec: WorkerSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.spec = spec
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=worker_main, args=(spec, child), name=spec.name, daemon=True)
        self.process.start()
        child.close()
        self.ready: dict[str, Any] | None = None
        self.progress: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(self.pipe.fileno(), self._on_readable)
        # Readable means a message has started: read all of it (finals are megabytes).
        os.set_blocking(self.pipe.fileno(), True)

    def _on_readable(self) -> None:
        try:
            message: dict[str, Any] = self.pipe.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            self.queue.put_nowait({"type": "exited"})
            return
        if message["type"] == "progress":
            self.progress = message
        else:
            self.queue.put_nowait(message)

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.pipe.send(message)

    async def expect(self, kind: str, timeout_s: float) -> dict[str, Any]:
        message = await asyncio.wait_for(self.queue.get(), timeout_s)
        if message["type"] != kind:
            raise RuntimeError(f"worker {self.spec.name}: expected {kind}, got {message['type']}")
        return message

    def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.pipe.fileno())
        if self.process.is_alive():
            self.process.join(5)
        if self.process.is_alive() and self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.join(5)
        self.pipe.close()


def worker_specs(cfg: RunConfig, plan: Plan, host: str, port: int, secret: str, web_port: int = 0) -> list[WorkerSpec]:
    procs = max(1, cfg.client_procs)
    buckets: list[list[ViewerSpec]] = [[] for _ in range(procs)]
    for i, viewer in enumerate(plan.viewers):
        buckets[i % procs].append(viewer)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "secret": secret,
        "duration_s": cfg.duration,
        "streams_per_connection": cfg.streams_per_connection,
        "frame_sample_every": cfg.frame_sample_every,
        "web_port": web_port,
        "connect_concurrency": cfg.connect_concurrency,
        "hard_deadline_s": cfg.duration + cfg.drain_s + 600 + len(plan.viewers) / 20,
    }
    specs = [
        WorkerSpec(name=f"viewers-{i}", viewers=tuple(b), seed=cfg.seed + i, **common)
        for i, b in enumerate(buckets)
        if b
    ]
    senders: tuple[SenderSpec, ...] = tuple(plan.senders)
    specs.append(WorkerSpec(name="senders", senders=senders, seed=cfg.seed + 99, **common))
    return specs


async def run(cfg: RunConfig) -> dict[str, Any]:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    _raise_nofile()
    run_id = uuid.uuid4().hex[:8]
    plan = build(
        cfg.scenario,
        run_id,
        cfg.viewers,
        cfg.rooms,
        cfg.rate,
        cfg.critical_rate,
        cfg.senders,
        cfg.sample,
        cfg.slow_fraction,
        cfg.churn_fraction,
        cfg.window,
        cfg.likes,
        cfg.gifts,
        cfg.web_fraction,
        media_clock=cfg.media_clock,
        claims=cfg.claims,
    )
    server = ServerHandle(cfg, out)
    workers: list[WorkerProc] = []
    try:
        await server.wait_ready()
        token = issue_dev_token(server.secret, user_id="loadtest-admin", role="service", ttl_s=6 * 3600)
        admin = Admin(server.target, token)
        for room in plan.rooms:
            await admin.create(room)
            if cfg.claims > 0:
                await admin.drop_coupons(room, COUPON_ID)
        await asyncio.sleep(0.5)
        rss_baseline = metrics.tree_rss_bytes(server.pids())
        t_connect = time.monotonic()
        workers = [
            WorkerProc(s) for s in worker_specs(cfg, plan, server.host, server.port, server.secret, server.web_port)
        ]
        readies = [await w.expect("ready", 120 + len(plan.viewers) / 10) for w in workers]
        connect_s = time.monotonic() - t_connect
        await asyncio.sleep(1.0)
        rss_connected = metrics.tree_rss_bytes(server.pids())
        result = await _measure(cfg, plan, server, workers, admin)
        result["connect"] = {
            "seconds": round(connect_s, 2),
            "by_worker": readies,
            "rss_baseline_mb": round(rss_baseline / 2**20, 1),
            "rss_connected_mb": round(rss_connected / 2**20, 1),
        }
        connected = sum(sum(r["connected"].values()) for r in readies)
        streams = connected + sum(r["senders"] for r in readies)
        result["figures"]["streams"] = streams
        result["figures"]["rss_per_stream_kb"] = (
            round((rss_connected - rss_baseline) / streams / 1024, 1) if streams else None
        )
        failed = sum(sum(r["failed"].values()) for r in readies)
        if failed:
            result["invalid_reasons"].append(f"{failed} viewers failed to connect")
        await admin.close()
    finally:
        for w in workers:
            w.stop()
        server.stop()
    result["valid"] = not result["invalid_reasons"]
    result["server"] = {
        "spawned": server.proc is not None,
        "pid": server.pid,
        "target": server.target,
        "command": shlex.join(server.command) if server.command else None,
        "env": server.env,
    }
    return result


async def _measure(
    cfg: RunConfig, plan: Plan, server: ServerHandle, workers: list[WorkerProc], admin: Admin
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pids = server.pids()
    cpu0 = metrics.tree_cpu_seconds(pids)
    threads0 = {p: metrics.thread_cpu_seconds(p) for p in pids}
    busy0 = metrics.machine_busy_seconds()
    broker0 = metrics.cpu_seconds(server.broker_pid) if server.broker_pid else 0.0
    t0 = loop.time()
    t0_wall_us = time.time_ns() // 1000 + 200_000
    for w in workers:
        w.send({"type": "start", "t0_wall_us": t0_wall_us})
    profiling: asyncio.Task[Path | None] | None = None
    if cfg.profile_native:
        result_notes = ["py-spy --native pauses the server at every sample: CPU figures of this run are inflated"]
    else:
        result_notes = []
    if cfg.profile_s > 0:

        async def profile_later() -> Path | None:
            await asyncio.sleep(2.0)
            seconds = min(cfg.profile_s, max(1.0, cfg.duration - 3.0))
            return await profile.record(server.pid, seconds, cfg.out, native=cfg.profile_native)

        profiling = asyncio.create_task(profile_later())
    timeline: list[dict[str, Any]] = []
    last_cpu = sum(cpu0.values())
    last_total = 0
    last_sent = 0
    last_acked = 0
    stable_since = 0.0
    quiesced = False
    peak_rss = 0
    next_tick = t0 + 1.0
    while True:
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
        next_tick += 1.0
        now = loop.time()
        pids = server.pids()
        cpu = sum(metrics.cpu_seconds(p) for p in pids)
        rss = metrics.tree_rss_bytes(pids)
        peak_rss = max(peak_rss, rss)
        progress = [w.progress for w in workers]
        total = sum(sum(p.get("deliveries", {}).values()) for p in progress)
        sent = sum(p.get("sent", 0) for p in progress)
        acked = sum(p.get("acked", 0) for p in progress)
        timeline.append(
            {
                "t": round(now - t0, 2),
                "server_cpu_util": round(cpu - last_cpu, 3),
                "server_rss_mb": round(rss / 2**20, 1),
                "deliveries": total - last_total,
                "sent": sent - last_sent,
                "acked": acked - last_acked,
                "client_cpu_s": {p.get("name", "?"): round(p.get("cpu_s", 0.0), 2) for p in progress},
            }
        )
        last_cpu, last_sent, last_acked = cpu, sent, acked
        if now - t0 >= cfg.duration + 0.5:
            if not quiesced:
                for w in workers:
                    w.send({"type": "quiesce"})
                quiesced = True
                stable_since = now
            # Quiet means (almost) nothing arrives: server events such as each node's
            # viewer count every few seconds do not count as a delivery still draining.
            if total - last_total > _quiet_threshold(timeline):
                stable_since = now
            elif now - stable_since >= 2.0:
                break
            if now - t0 >= cfg.duration + cfg.drain_s:
                break
        last_total = total
    t_end = loop.time()
    cpu1 = metrics.tree_cpu_seconds(server.pids())
    busy = metrics.machine_busy_seconds() - busy0
    broker_cpu = metrics.cpu_seconds(server.broker_pid) - broker0 if server.broker_pid else 0.0
    threads = _thread_util(threads0, loop.time() - t0)
    rss_end = metrics.tree_rss_bytes(server.pids())
    for w in workers:
        w.send({"type": "stop"})
    finals = [await w.expect("final", 120) for w in workers]
    window_s = t_end - t0
    server_cpu = sum(cpu1.values()) - sum(cpu0.get(p, 0.0) for p in cpu1)
    histories = {room: await admin.history(room) for room in plan.rooms}
    result = assemble(cfg, plan, finals, histories, timeline, window_s, server_cpu, peak_rss, rss_end, t0_wall_us)
    result["figures"]["server_threads"] = threads
    f = result["figures"]
    f["server_processes"] = sorted(
        ({"pid": p, "cpu_util": round((c - cpu0.get(p, 0.0)) / window_s, 3)} for p, c in cpu1.items()),
        key=lambda row: -row["cpu_util"],
    )
    if server.broker is not None:
        f["broker_cpu_s"] = round(broker_cpu, 2)
        f["broker_cpu_util"] = round(broker_cpu / window_s, 3)
        deliveries = f["deliveries"]
        f["broker_cpu_us_per_delivery"] = round(broker_cpu / deliveries * 1e6, 2) if deliveries else None
        f["broker_cpu_us_per_ack"] = round(broker_cpu / f["acked"] * 1e6, 2) if f["acked"] else None
    # Whatever else ran on the machine (other people's tests, ...) competed for the cores.
    other = busy - f["server_cpu_s"] - f["client_cpu_s"] - broker_cpu
    f["machine_busy_cpu_s"] = round(busy, 2)
    f["other_processes_cpu_util"] = round(max(0.0, other) / window_s, 3)
    if other / window_s > 0.15:
        result["warnings"].append(
            f"other processes used {other / window_s:.2f} cores during the window: figures are perturbed"
        )
    main = [t for t in threads if t["main"]]
    if main and main[0]["cpu_util"] >= 0.9:
        result["warnings"].append(
            f"the server's event-loop thread was {main[0]['cpu_util']:.0%} busy: it is the bottleneck, "
            "whatever the process total says"
        )
    if result_notes and cfg.profile_s > 0:
        result["invalid_reasons"].extend(result_notes)
    if profiling is not None:
        folded = await profiling
        result["profile"] = profile.hot_spots(folded) if folded is not None else {"error": "py-spy produced nothing"}
        result["profile"]["command"] = f"py-spy record --pid {server.pid} --rate 200 --format raw --subprocesses" + (
            " --native" if cfg.profile_native else " --nonblocking"
        )
        result["profile"]["folded"] = "profile.folded"
    return result


def _quiet_threshold(timeline: list[dict[str, Any]]) -> int:
    """Deliveries in a second below which the run counts as drained: 1 % of the busiest second."""
    return max((row["deliveries"] for row in timeline), default=0) // 100


def _thread_util(before: dict[int, dict[str, float]], window_s: float) -> list[dict[str, Any]]:
    """Per server thread: CPU share of one core over the window, busiest first."""
    rows: list[dict[str, Any]] = []
    for pid, threads in before.items():
        after = metrics.thread_cpu_seconds(pid)
        for key, cpu in after.items():
            used = cpu - threads.get(key, 0.0)
            tid, _, name = key.partition(":")
            rows.append(
                {
                    "pid": pid,
                    "tid": int(tid),
                    "name": name,
                    "main": int(tid) == pid,
                    "cpu_util": round(used / window_s, 3),
                }
            )
    rows.sort(key=lambda r: -r["cpu_util"])
    return rows[:12]


# ------------------------------------------------------------------ results


def _merge(finals: list[dict[str, Any]], key: str) -> Any:
    hist = metrics.histogram()
    for f in finals:
        data = f.get(key)
        if isinstance(data, str):
            hist.add(metrics.decode(data))
        elif isinstance(data, dict):
            for encoded in data.values():
                hist.add(metrics.decode(encoded))
    return hist


def _merge_kind(finals: list[dict[str, Any]], key: str) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for f in finals:
        for kind, encoded in f.get(key, {}).items():
            kinds.setdefault(kind, metrics.histogram()).add(metrics.decode(encoded))
    return kinds


def check_against_history(finals: list[dict[str, Any]], histories: dict[str, list[event_pb2.Event]]) -> dict[str, Any]:
    """Loss, duplicates and order of every decoding viewer; totals of every drain viewer."""
    positions: dict[str, list[int]] = {}
    critical: dict[str, set[int]] = {}
    ephemeral: dict[str, list[int]] = {}
    for room, events in histories.items():
        ps = [proto.cursor_position(e.cursor) for e in events]
        positions[room] = ps
        critical[room] = {p for p, e in zip(ps, events, strict=True) if e.priority == proto.CRITICAL}
        # Ephemeral events (like bursts, counts) are latest-value-wins: may be coalesced away.
        ephemeral[room] = [p for p, e in zip(ps, events, strict=True) if e.priority == proto.EPHEMERAL]
    totals: Counter[str] = Counter()
    worst: list[dict[str, Any]] = []
    for f in finals:
        for v in f["viewers"]:
            for room, r in v["rooms"].items():
                history = positions.get(room, [])
                head = r["join_head"]
                if head == -2:
                    totals["viewers_never_joined"] += 1
                    continue
                expected_count = len(history) - bisect_right(history, head)
                eph = ephemeral.get(room, [])
                ephemeral_count = len(eph) - bisect_right(eph, head)
                if "positions" not in r:
                    got = v["events"] + v["omitted"]
                    totals["drain_viewers"] += 1
                    totals["drain_events"] += v["events"]
                    if got < expected_count - ephemeral_count:
                        totals["drain_unaccounted"] += expected_count - ephemeral_count - got
                    elif got > expected_count:
                        totals["drain_surplus"] += got - expected_count
                    continue
                seen = array("q")
                seen.frombytes(r["positions"])
                received = set(seen)
                expected = set(history[bisect_right(history, head) :])
                missing_ephemeral = len((expected - received).intersection(eph))
                expected.difference_update(eph)
                totals["ephemeral_coalesced"] += missing_ephemeral
                # Missing below the last event the viewer got is a gap; above it, a backlog
                # the server had not delivered when the run ended (a stalled catch-up).
                last = max(seen) if len(seen) else head
                tail = {p for p in expected - received if p > last}
                totals["undelivered_at_end"] += len(tail)
                totals["critical_undelivered_at_end"] += len(tail & critical.get(room, set()))
                expected -= tail
                missing = expected - received
                missing_critical = len(missing & critical.get(room, set()))
                missing_normal = len(missing) - missing_critical
                phantom = len(received - set(history))
                received.difference_update(eph)
                totals["checked_viewers"] += 1
                totals["checked_events"] += len(seen)
                totals["expected_events"] += len(expected)
                totals["critical_expected"] += len(expected & critical.get(room, set()))
                totals["critical_lost"] += missing_critical
                totals["normal_missing"] += missing_normal
                totals["omitted_reported"] += r["omitted"]
                totals["silent_gaps"] += max(0, missing_normal - r["omitted"])
                totals["phantom_events"] += phantom
                totals["duplicates"] += r["duplicates"]
                totals["order_violations"] += r["order_violations"]
                totals["sender_order_violations"] += r["sender_order_violations"]
                if missing_critical or r["order_violations"] or r["duplicates"] or tail:
                    worst.append(
                        {
                            "viewer": v["index"],
                            "kind": v["kind"],
                            "room": room,
                            "critical_lost": missing_critical,
                            "undelivered_at_end": len(tail),
                            "normal_missing": missing_normal,
                            "omitted": r["omitted"],
                            "duplicates": r["duplicates"],
                            "order_violations": r["order_violations"],
                            "outcomes": v["outcomes"],
                            "end_reason": v["end_reason"],
                        }
                    )
        for s in f["senders"]:
            for room, data in s["acked"].items():
                acked = array("q")
                acked.frombytes(data)
                known = set(positions.get(room, []))
                totals["acked_checked"] += len(acked)
                totals["acked_not_in_history"] += sum(1 for p in acked if p not in known)
    return {"totals": dict(totals), "problem_viewers": worst[:20]}


def assemble(
    cfg: RunConfig,
    plan: Plan,
    finals: list[dict[str, Any]],
    histories: dict[str, list[event_pb2.Event]],
    timeline: list[dict[str, Any]],
    window_s: float,
    server_cpu: float,
    peak_rss: int,
    rss_end: int,
    t0_wall_us: int,
) -> dict[str, Any]:
    deliveries: Counter[str] = Counter()
    for f in finals:
        deliveries.update(f["deliveries"])
    total = sum(deliveries.values())
    viewer_total = total - deliveries.get("sender", 0)
    lat_publish = _merge(finals, "lat_publish")
    lat_intended = _merge(finals, "lat_intended")
    by_kind_pub = _merge_kind(finals, "lat_publish")
    by_kind_int = _merge_kind(finals, "lat_intended")
    lateness = _merge(finals, "send_lateness")
    checks = check_against_history(finals, histories)
    t = checks["totals"]
    sent = sum(f["sent"] for f in finals)
    acked = sum(f["acked"] for f in finals)
    send_errors: Counter[str] = Counter()
    happenings: Counter[str] = Counter()
    for f in finals:
        send_errors.update(f["send_errors"])
        happenings.update(f["events"])

    per_second: dict[int, Any] = {}
    for f in finals:
        for sec, encoded in f["per_second"].items():
            per_second.setdefault(int(sec), metrics.histogram(2)).add(metrics.decode(encoded, 2))
    for row in timeline:
        hist = per_second.get(int(row["t"]) - 1)
        if hist is not None and hist.get_total_count():
            row["latency_ms"] = {
                "p50": round(hist.get_value_at_percentile(50) / 1000, 2),
                "p99": round(hist.get_value_at_percentile(99) / 1000, 2),
                "max": round(hist.get_max_value() / 1000, 2),
            }

    # Rate over the active part of the window: until the last second that delivered more than a trickle.
    quiet = _quiet_threshold(timeline)
    active_s = max([row["t"] for row in timeline if row["deliveries"] > quiet] + [min(window_s, cfg.duration)])
    omitted_total = sum(sum(f["omitted"].values()) for f in finals)
    clients: list[dict[str, Any]] = []
    invalid: list[str] = []
    warnings: list[str] = []
    for f in finals:
        util = f["cpu_s"] / max(f["window_s"], 1e-9)
        lag = metrics.decode(f["loop_lag"])
        clients.append(
            {
                "name": f["name"],
                "cpu_s": round(f["cpu_s"], 2),
                "cpu_util": round(util, 3),
                "loop_lag_p99_ms": round(lag.get_value_at_percentile(99) / 1000, 1),
                "loop_lag_max_ms": round(lag.get_max_value() / 1000, 1),
            }
        )
        if util >= 0.9:
            invalid.append(f"client process {f['name']} CPU-saturated ({util:.0%} of a core)")
        if lag.get_value_at_percentile(99) > 50_000:
            invalid.append(
                f"client process {f['name']} fell behind: event-loop lag p99 "
                f"{lag.get_value_at_percentile(99) / 1000:.0f} ms"
            )
    if lateness.get_total_count() and lateness.get_value_at_percentile(99) > 20_000:
        invalid.append(f"senders late: p99 {lateness.get_value_at_percentile(99) / 1000:.0f} ms behind schedule")
    expected_sends = sum(
        int(cfg.duration * r)
        for s in plan.senders
        for load in s.rooms
        for r in (load.comments, load.critical, load.likes, load.gifts, load.claims)
        if r > 0
    )
    if t.get("undelivered_at_end", 0):
        warnings.append(
            f"{t['undelivered_at_end']} events ({t.get('critical_undelivered_at_end', 0)} critical) had not reached "
            f"checked viewers {cfg.drain_s:g} s after sending stopped: the server was still catching up"
        )
    if cfg.rate > 0 and sent < 0.98 * expected_sends:
        invalid.append(f"senders sent {sent} of {expected_sends} scheduled")
    client_cpu = sum(c["cpu_s"] for c in clients)
    machine_util = (server_cpu + client_cpu) / window_s / (os.cpu_count() or 1)
    if machine_util > 0.9:
        warnings.append(
            f"machine CPU {machine_util:.0%} busy: server and clients compete for {os.cpu_count()} cores, "
            "so latency includes waiting for a core"
        )

    figures: dict[str, Any] = {
        "window_s": round(window_s, 2),
        "deliveries": total,
        "viewer_deliveries": viewer_total,
        "sender_stream_deliveries": deliveries.get("sender", 0),
        "deliveries_by_kind": dict(deliveries),
        "active_s": round(active_s, 2),
        "deliveries_per_s": round(total / active_s),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_util": round(server_cpu / window_s, 3),
        "server_cpu_us_per_delivery": round(server_cpu * 1e6 / total, 2) if total else None,
        # Per event a subscriber was owed: delivered, or sampled away/shed and counted in omitted_count.
        "server_cpu_us_per_delivered_or_omitted": round(server_cpu * 1e6 / (total + omitted_total), 2)
        if total + omitted_total
        else None,
        "server_rss_peak_mb": round(peak_rss / 2**20, 1),
        "server_rss_end_mb": round(rss_end / 2**20, 1),
        "latency_ms": {
            "from_publish_time": metrics.summary_ms(lat_publish),
            "from_intended_send_time": metrics.summary_ms(lat_intended),
            "by_viewer_kind_from_publish_time": {k: metrics.summary_ms(h) for k, h in by_kind_pub.items()},
            "by_viewer_kind_from_intended_send_time": {k: metrics.summary_ms(h) for k, h in by_kind_int.items()},
        },
        "sent": sent,
        "sent_critical": sum(f["sent_critical"] for f in finals),
        "acked": acked,
        "acked_per_s": round(acked / active_s),
        "ack_latency_ms_from_intended": metrics.summary_ms(_merge(finals, "ack_latency")),
        "ack_latency_ms_from_sent": metrics.summary_ms(_merge(finals, "ack_latency_sent")),
        "send_lateness_ms": metrics.summary_ms(lateness),
        "send_errors": dict(send_errors),
        "join_latency_ms": metrics.summary_ms(_merge(finals, "join_latency")),
        "critical_lost": t.get("critical_lost", 0),
        "critical_checked": t.get("critical_expected", 0),
        "duplicates": t.get("duplicates", 0) + t.get("drain_surplus", 0),
        "order_violations": t.get("order_violations", 0) + t.get("sender_order_violations", 0),
        "silent_gaps": t.get("silent_gaps", 0),
        "undelivered_at_end": t.get("undelivered_at_end", 0),
        "critical_undelivered_at_end": t.get("critical_undelivered_at_end", 0),
        "omitted_reported": omitted_total,
        "acked_not_in_history": t.get("acked_not_in_history", 0),
        "happenings": dict(happenings),
        "client": clients,
        "client_cpu_s": round(client_cpu, 2),
        "machine_cpu_util": round(machine_util, 3),
    }
    result: dict[str, Any] = {
        "scenario": cfg.scenario,
        "figures": figures,
        "checks": checks,
        "invalid_reasons": invalid,
        "warnings": warnings,
        "plan": plan.describe(),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items() if k != "jwt_secret"},
        "viewer_kinds": {
            "drain": "raw HTTP/2 gRPC stream; counts events by scanning frame bytes, decodes 1 frame in "
            f"{cfg.frame_sample_every} for latency ('drain-sampled'); totals checked against history",
            "sample": "decodes every frame: latency of every event, cursor order, duplicates, per-sender order, "
            "critical events checked against history",
            "slow": "a sample viewer with a 64 KiB HTTP/2 window (gRPC's default without BDP probing) that "
            "stops reading (socket paused, no window granted) from 25% to 75% of the run, then reads and "
            "resumes when told to",
            "churn": "a sample viewer that keeps dropping its connection or leaving the room (mean dwell 3 s) and "
            "comes back resuming from its last cursor",
            "drain-ws": "a drain viewer on a WebSocket (loadtest/ws.py: the upgrade, masked binary messages out, "
            "one ConnectResponse per message in) instead of an HTTP/2 stream",
            "sample-ws": "a sample viewer on a WebSocket",
            "sender": "streams that post on a fixed schedule (or closed loop for ingest); they are joined to their "
            "rooms, so they receive the room's events too",
        },
        "method_notes": [
            "latency from_publish_time: client receive wall clock minus Event.publish_time (server ingest)",
            "latency from_intended_send_time: receive minus the time the sender's fixed schedule meant to send "
            "(carried in client_msg_id); corrects for coordinated omission",
            "the checker parses cursors ('<epoch>.<position>') to compare positions: instrument only, "
            "clients must treat cursors as opaque",
            "server CPU: utime+stime from /proc/PID/stat of the server and its descendants over the window",
            "RSS per stream: (RSS with all streams joined - RSS before any stream) / streams",
        ],
        "t0_wall_us": t0_wall_us,
        "timeline": timeline,
        "machine": metrics.machine_info(),
        "git": metrics.git_commit(ROOT),
    }
    result["_histograms"] = {"publish": lat_publish, "intended": lat_intended}
    return result
