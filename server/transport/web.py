"""The browser port (--web-listen): the room stream over WebSocket at /ws and the unary
RPCs over the Connect protocol at /barrage.v1.<Service>/<Method>, on one HTTP/1.1 port
served by aiohttp.

aiohttp because it serves both on one port from one asyncio server (a WebSocket
upgrade is a GET; Connect calls are POSTs, which a WebSocket-only server would refuse),
its WebSocket writer frames a message with one transport write, and its parser is C.
The Connect runtime is an ASGI application; `_asgi` below hands it a request and
streams back its answer (no second server, no second port).

Origins: a request that carries an Origin header (every browser request across
origins, and every WebSocket handshake from a browser) must come from an allowed
origin; by default only the node's own origin (the one serving /console). Requests
without an Origin header come from programs, not pages: a page cannot leave it out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from barrage.server.auth import TokenVerifier
from barrage.server.config import Settings
from barrage.server.core.gateway import Gateway
from barrage.server.insights.hub import InsightsHub
from barrage.server.insights.service import InsightsService
from barrage.server.telemetry.setup import split_listen
from barrage.server.transport.admin_service import AdminService
from barrage.server.transport.connect import connect_apps
from barrage.server.transport.pages import Pages, frame_ancestors
from barrage.server.transport.websocket import Sessions, WebSocketRooms

log = logging.getLogger(__name__)

WS_PATH = "/ws"
CONNECT_REQUEST_HEADERS = (
    "authorization, content-type, connect-protocol-version, connect-timeout-ms, "
    "connect-content-encoding, connect-accept-encoding, content-encoding, accept-encoding, x-user-agent"
)
CONNECT_EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin, connect-content-encoding"
PREFLIGHT_MAX_AGE_S = "7200"


class OriginPolicy:
    """Which browser origins may use the port: same-origin, a list, or any ('*')."""

    def __init__(self, allowed: str | None) -> None:
        entries = [item.strip().rstrip("/").lower() for item in (allowed or "").split(",") if item.strip()]
        self.any = "*" in entries
        self.allowed = frozenset(entries)

    def allows(self, request: web.Request) -> bool:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return True  # not a browser page
        origin = origin.strip().rstrip("/").lower()
        if self.any or origin in self.allowed:
            return True
        # Same origin: the page was served by this node (scheme aside: behind a TLS
        # terminator the page is https while this port is plain http).
        host = request.headers.get(hdrs.X_FORWARDED_HOST) or request.host
        return urlsplit(origin).netloc == host.lower()


class WebServer:
    def __init__(
        self,
        listen: str,
        origins: OriginPolicy,
        rooms: WebSocketRooms,
        connect_apps: Mapping[str, Any],
        shutdown_timeout_s: float,
        pages: Pages | None = None,
    ) -> None:
        self._listen = listen
        self._origins = origins
        self._rooms = rooms
        self._connect = dict(connect_apps)
        # The Connect runtime decompresses (Content-Encoding: gzip) itself, bounded by its
        # read_max_bytes: aiohttp must hand it the body as sent.
        app = web.Application(client_max_size=1024 * 1024, handler_args={"auto_decompress": False})
        app.router.add_get(WS_PATH, self._websocket)
        if pages is not None:  # /console, /live/ROOM, /static/*: before the catch-all below
            pages.add_routes(app.router)
        app.router.add_route("*", "/{service}/{method}", self._connect_call)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s)
        self.port = 0

    async def start(self) -> None:
        host, port = split_listen(self._listen)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or None, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise SystemExit(f"cannot listen on {self._listen} (--web-listen): {exc.strerror or exc}") from None
        server = site._server  # the asyncio server, to learn the port when 0 was asked for
        sockets = getattr(server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("browser port on %s:%d: WebSocket at %s, Connect protocol", host, self.port, WS_PATH)

    async def stop(self) -> None:
        await self._runner.cleanup()

    # ----------------------------------------------------------------- routes

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._origins.allows(request):
            raise web.HTTPForbidden(text="origin not allowed (see --web-allowed-origins)\n")
        return await self._rooms.handle(request)

    async def _connect_call(self, request: web.Request) -> web.StreamResponse:
        app = self._connect.get(f"/{request.match_info['service']}")
        if app is None:
            raise web.HTTPNotFound()
        if not self._origins.allows(request):
            raise web.HTTPForbidden(text="origin not allowed (see --web-allowed-origins)\n")
        origin = request.headers.get(hdrs.ORIGIN)
        if request.method == hdrs.METH_OPTIONS:  # CORS preflight of a cross-origin call
            response = web.Response(status=204)
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, GET"
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = CONNECT_REQUEST_HEADERS
            response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE_S
            self._cors(response, origin)
            return response
        return await _asgi(app, request, lambda response: self._cors(response, origin))

    @staticmethod
    def _cors(response: web.StreamResponse, origin: str | None) -> None:
        if origin is not None:  # allowed, or the call would have been refused above
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CONNECT_EXPOSED_HEADERS
            response.headers[hdrs.VARY] = "Origin"


async def _asgi(app: Any, request: web.Request, decorate: Any) -> web.StreamResponse:
    """Run one HTTP request through an ASGI application, streaming its response.

    The body is read whole first (aiohttp bounds it by client_max_size, and Connect's
    runtime by read_max_bytes): unary and server-streaming calls send one request.
    """
    body = await request.read()
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode(),
        "query_string": request.query_string.encode(),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": tuple(peer[:2]) if peer else None,
        "server": tuple(sockname[:2]) if sockname else None,
    }
    body_sent = False
    response: web.StreamResponse | None = None

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Future()  # nothing more comes until the call is cancelled
        raise AssertionError("unreachable")

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            decorate(response)
            await response.prepare(request)
        elif message["type"] == "http.response.body":
            assert response is not None
            chunk = message.get("body", b"")
            if chunk:
                await response.write(chunk)
            if not message.get("more_body", False):
                await response.write_eof()

    await app(scope, receive, send)
    if response is None:
        raise web.HTTPInternalServerError()
    return response


def build(
    settings: Settings,
    gateway: Gateway,
    verifier: TokenVerifier,
    registry: Sessions,
    insights: InsightsHub | None,
    max_message_bytes: int,
) -> WebServer:
    """The browser port of a node, over the same gateway and sessions as its gRPC port."""
    assert settings.web_listen is not None
    rooms = WebSocketRooms(gateway, verifier, registry, max_message_bytes)
    admin = AdminService(gateway, verifier)
    watch = InsightsService(insights, gateway, verifier) if insights is not None else None
    apps = connect_apps(admin, watch, max_message_bytes)
    return WebServer(
        settings.web_listen,
        OriginPolicy(settings.web_allowed_origins),
        rooms,
        apps,
        shutdown_timeout_s=settings.shutdown_grace_s,
        pages=Pages(frame_ancestors(settings.web_allowed_origins)),
    )
