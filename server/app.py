"""Run a gateway node: storage, core, gRPC server, signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from barrage.server.config import Settings
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.gateway import Gateway
from barrage.server.insights.hub import InsightsHub
from barrage.server.insights.service import add_insights_service
from barrage.server.log.factory import open_backend
from barrage.server.log.segment import LogCorruptError
from barrage.server.telemetry.logs import configure_logging
from barrage.server.telemetry.setup import Telemetry, split_listen
from barrage.server.telemetry.setup import setup as setup_telemetry
from barrage.server.transport import moderation_hook, reflection, web
from barrage.server.transport.admin_service import AdminService
from barrage.server.transport.room_service import RoomServiceHandler
from barrage.v1 import admin_service_pb2, admin_service_pb2_grpc, insights_service_pb2, room_service_pb2

log = logging.getLogger("barrage")

MAX_REQUEST_BYTES = 64 * 1024

GRPC_OPTIONS: list[tuple[str, int]] = [
    # Mobile clients ping to keep NAT mappings alive; allow it (every 10 s) rather than
    # answering with GOAWAY too_many_pings, and ping idle clients ourselves.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
    # Client frames are small; a bigger one ends its stream with RESOURCE_EXHAUSTED.
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
]


class Node:
    """One gateway process."""

    def __init__(self, settings: Settings, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> None:
        self.settings = settings
        self.verifier = settings.token_verifier()
        backend = open_backend(settings.log)
        self.log = backend.log
        self.gateway = Gateway(settings, backend, settings.node_id)
        if settings.moderation_hook:
            self.gateway.moderation = moderation_hook.build(settings)
        # Room insights: a consumer of the room log, and RoomInsightsService (server/insights).
        self.insights = InsightsHub(settings, backend.log, self.gateway) if settings.insights else None
        self.rooms = RoomServiceHandler(self.gateway, self.verifier)
        self.health = health.aio.HealthServicer()
        # Without reuse_port a second process on the same port fails loudly instead of
        # silently sharing it.
        options = [*GRPC_OPTIONS, ("grpc.so_reuseport", int(settings.reuse_port))]
        self.server = grpc.aio.server(interceptors=list(interceptors), options=options)
        self.port = 0
        self.health_names: tuple[str, ...] = ()
        """What health reports on: the node ("") and its services."""
        self._health_task: asyncio.Task[None] | None = None
        self.web: web.WebServer | None = None
        """The browser port (--web-listen): WebSocket and Connect, same gateway and sessions."""

    async def start(self) -> None:
        settings = self.settings
        if settings.uses_dev_secret() and not all(_is_loopback(a) for a in (settings.listen, settings.web_listen) if a):
            raise SystemExit(
                "refusing to listen beyond loopback with the built-in development token secret: "
                "set BARRAGE_JWT_SECRET, --jwt-public-key or --jwt-jwks-url"
            )
        await self.gateway.start()
        server = self.server
        server.add_generic_rpc_handlers((self.rooms.generic_handler(),))
        admin_service_pb2_grpc.add_RoomAdminServiceServicer_to_server(AdminService(self.gateway, self.verifier), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (
            room_service_pb2.DESCRIPTOR.services_by_name["RoomService"].full_name,
            admin_service_pb2.DESCRIPTOR.services_by_name["RoomAdminService"].full_name,
            health.SERVICE_NAME,
        )
        insights: tuple[str, ...] = ()
        if self.insights is not None:
            await self.insights.start()
            add_insights_service(server, self.insights, self.gateway, self.verifier)
            insights = (insights_service_pb2.DESCRIPTOR.services_by_name["RoomInsightsService"].full_name,)
        # The API's files with every import (google/rpc too), for grpcurl and the like.
        reflection.enable(server, (*names, *insights))
        self.port = server.add_insecure_port(settings.listen)
        if self.port == 0:
            raise SystemExit(f"cannot listen on {settings.listen}")
        await server.start()
        if settings.web_listen:
            self.web = web.build(settings, self.gateway, self.verifier, self.rooms, self.insights, MAX_REQUEST_BYTES)
            await self.web.start()
        # Every stream holds futures and frames the cyclic GC would walk again and
        # again (at 10k streams that was 40% of the CPU): freeze what start-up built
        # and collect the young generation less often.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        self.health_names = ("", *names[:2])
        for name in self.health_names:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        # A log that stops appending until restart (the embedded log after a failed write,
        # e.g. a full disk) makes the node NOT_SERVING, so an orchestrator restarts it.
        add_failure_listener = getattr(self.log, "add_failure_listener", None)
        if add_failure_listener is not None:
            add_failure_listener(self._on_log_failure)
        log.info("barrage node %s listening on %s, log %s", settings.node_id, settings.listen, settings.log)
        if settings.uses_dev_secret():
            log.warning("using the built-in development token secret: for local use only")

    def _on_log_failure(self, exc: BaseException) -> None:
        # The log has said why, once; here only the health changes.
        self._health_task = asyncio.get_running_loop().create_task(self._not_serving())

    async def _not_serving(self) -> None:
        for name in self.health_names:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace_s: float | None = None) -> None:
        """Tell clients to go away, give them `grace_s` to leave, then stop.

        Bounded whatever clients do: gRPC cancels every call still open when the grace
        ends (a stream that does not read, a replay, a send waiting for the log), and
        closing the log and insights gets shutdown_timeout_s; past that the rest is
        abandoned, which loses nothing acknowledged (an ack means durable)."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        self.rooms.accepting = False
        await self.health.enter_graceful_shutdown()
        for session in tuple(self.rooms.sessions):
            session.go_away("node shutting down", delay_s=0.0)
        await asyncio.sleep(min(grace, 1.0))
        for session in tuple(self.rooms.sessions):
            session.end(ApiError(Code.UNAVAILABLE, "SHUTTING_DOWN", "node shut down; reconnect"))
        await self.server.stop(grace)
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                if self.web is not None:
                    await self.web.stop()
                if self.insights is not None:
                    await self.insights.close()
                await self.gateway.close()
        except TimeoutError:
            log.warning("closing the log took over %.1f s; stopping without it", self.settings.shutdown_timeout_s)


_WATCHDOG_SLACK_S = 5.0


def _exit_after(seconds: float) -> None:
    """Make the process exit `seconds` from now whatever the event loop is doing.

    The drain is bounded step by step (Node.stop); this is the guarantee behind it, for
    what no timeout inside the loop can catch: a task that ignores its cancellation
    when asyncio.run cancels the rest, a thread that never returns, a blocked loop.
    A thread, not the loop: it fires even when the loop cannot run."""

    def expire() -> None:
        sys.stderr.write(f"barrage: shutdown did not finish within {seconds:.1f} s; exiting\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def _is_loopback(listen: str) -> bool:
    """True only for an address that is loopback whatever resolves it ("" and 0.0.0.0 are every interface)."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(settings: Settings) -> None:
    telemetry = setup_telemetry(settings, install_global=True)
    try:
        await _serve(settings, telemetry)
    finally:
        telemetry.shutdown()  # flushes spans and metrics not yet exported


async def _serve(settings: Settings, telemetry: Telemetry) -> None:
    node = Node(settings, telemetry.server_interceptors())
    await node.start()
    telemetry.observe(node.rooms.sessions, node.gateway)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    hits = 0

    def on_signal() -> None:
        # First signal: drain gracefully. Second: leave now.
        nonlocal hits
        hits += 1
        if hits > 1:
            log.warning("second signal: exiting now")
            raise SystemExit(1)
        _exit_after(settings.shutdown_grace_s + settings.shutdown_timeout_s + _WATCHDOG_SLACK_S)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    log.info("shutting down: telling clients to reconnect")
    with contextlib.suppress(asyncio.CancelledError):
        await node.stop()


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, settings.node_id)
    if settings.workers > 1:
        raise SystemExit(supervise(settings))
    import uvloop

    try:
        uvloop.run(serve(settings))
    except LogCorruptError as error:
        # One clear line, not a traceback: the file, the offset and what to run.
        log.critical("cannot start: %s", error)
        raise SystemExit(1) from None


def supervise(settings: Settings) -> int:
    """Run `workers` node processes on one port (SO_REUSEPORT) and wait for them.

    The workers are started as fresh interpreters (never forked after gRPC started);
    each is a node of the shared log, so this needs the Kafka log: the embedded log
    belongs to one process. SIGTERM/SIGINT are passed on; when one worker dies the
    others are stopped too, so a supervisor (systemd, Kubernetes) sees the failure.
    """
    if not settings.log.startswith("kafka://"):
        log.error("--workers > 1 needs the Kafka log (the embedded log is one process's); use --log kafka://...")
        return 2
    env = {f"BARRAGE_{name.upper()}": str(value) for name, value in settings.model_dump().items() if value is not None}
    children = []
    for index in range(settings.workers):
        child_env = {
            **os.environ, **env,
            "BARRAGE_WORKERS": "1", "BARRAGE_REUSE_PORT": "true", "BARRAGE_NODE_ID": f"{settings.node_id}-w{index}",
        }  # fmt: skip
        if settings.metrics_listen:  # one scrape endpoint per worker: consecutive ports
            host, port = split_listen(settings.metrics_listen)
            child_env["BARRAGE_METRICS_LISTEN"] = f"{host}:{port + index if port else 0}"
        children.append(subprocess.Popen([sys.executable, "-m", "barrage.server"], env=child_env))

    forwarded = False

    def forward(signum: int, _frame: object) -> None:
        # Once only: a worker takes a second signal as "exit now, skip the drain".
        nonlocal forwarded
        if forwarded:
            return
        forwarded = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    forward(signal.SIGTERM, None)  # one worker ended: stop the others too
    codes = [child.wait() for child in children]
    return next((code for code in codes if code), 0)
