"""The pages a node serves on its browser port: the operator console at /console and the
viewer page at /live/ROOM (docs/web.md, "The pages").

Static files built from clients/pages (TypeScript bundled with esbuild) into static/,
which ships inside the package: nothing comes from a CDN. Every page gets a strict
Content-Security-Policy: scripts, styles and connections only from the node itself
('self' covers ws:// and wss:// to the same host), so a comment that somehow reached the
DOM as markup could still not run a script or send data elsewhere. The pages put text
in the DOM as text, never as HTML.

Tokens never travel in these URLs (see the pages' token.ts): the console takes a pasted
token, the viewer page a `#token=` fragment (never sent to a server) or a postMessage
from the host app.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
_ASSET = re.compile(r"[a-z][a-z0-9_-]*\.(js|css)")
_TYPES = {"js": "text/javascript", "css": "text/css", "html": "text/html"}
_ROOM = re.compile(r"[^/]{1,128}")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' https: data:; font-src 'self'; base-uri 'none'; form-action 'none'"
)
"""The console may not be framed by anyone; the viewer page may (in-app web views,
iframes of the shop's site) by the origins allowed with --web-allowed-origins."""


class Pages:
    def __init__(self, frame_ancestors: str) -> None:
        self._files = {path.name: path.read_bytes() for path in STATIC.iterdir() if path.is_file()}
        self._frame_ancestors = frame_ancestors

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Before the Connect route: /live/{room} and /static/{name} fit its pattern too."""
        router.add_get("/console", self._console)
        router.add_get("/live/{room}", self._live)
        router.add_get("/static/{name}", self._asset)

    async def _console(self, request: web.Request) -> web.Response:
        return self._page("console.html", "'none'")

    async def _live(self, request: web.Request) -> web.Response:
        if _ROOM.fullmatch(request.match_info["room"]) is None:
            raise web.HTTPNotFound()
        return self._page("live.html", self._frame_ancestors)

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        match = _ASSET.fullmatch(name)
        body = self._files.get(name) if match else None
        if match is None or body is None:
            raise web.HTTPNotFound()
        return self._response(body, _TYPES[match.group(1)], cache="no-cache")

    def _page(self, name: str, frame_ancestors: str) -> web.Response:
        response = self._response(self._files[name], _TYPES["html"], cache="no-store")
        response.headers["Content-Security-Policy"] = f"{CSP}; frame-ancestors {frame_ancestors}"
        return response

    @staticmethod
    def _response(body: bytes, content_type: str, cache: str) -> web.Response:
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = cache
        return response


def frame_ancestors(allowed_origins: str | None) -> str:
    """Who may embed /live/ROOM: the node itself and the origins allowed on the port."""
    entries = [item.strip().rstrip("/") for item in (allowed_origins or "").split(",") if item.strip()]
    if "*" in entries:
        return "*"
    return " ".join(["'self'", *entries])
