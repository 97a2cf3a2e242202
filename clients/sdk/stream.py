"""One Connect call and what the client tracks about it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc

from barrage.clients.sdk.pacing import Pacer
from barrage.v1 import room_service_pb2 as rs

log = logging.getLogger("barrage.sdk")

Build = Callable[[], rs.ConnectRequest | None]
"""Builds a frame when its turn comes (no side effects); None: nothing to send any more."""
Written = Callable[[], None]
"""Called once the frame is handed to the writer."""


class Stream:
    """The state of one Connect call. A reconnect makes a new one; nothing carries over
    except what the client re-derives from its rooms and pending sends."""

    def __init__(self, call: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.call = call
        self.welcome: rs.Welcome | None = None
        self.welcomed = asyncio.Event()
        self.welcomed_at = 0.0
        self.opened_at = loop.time()
        self.go_away_delay: float | None = None
        self.go_away_at = 0.0
        self.joins: dict[str, int] = {}
        """Per room, joins written and not yet answered: only the last one's answer counts."""
        self.leaves: dict[str, int] = {}
        self._out: asyncio.Queue[rs.ConnectRequest] = asyncio.Queue()
        self._paced: asyncio.Queue[tuple[float, Build, Written | None]] = asyncio.Queue()
        self._tasks = [
            loop.create_task(self._write_loop(), name="barrage-writer"),
            loop.create_task(self._pace_loop(), name="barrage-pacer"),
        ]

    def write(self, request: rs.ConnectRequest) -> None:
        """Write now (hello, ping): frames the server does not rate-limit."""
        self._out.put_nowait(request)

    def write_paced(self, cost: float, build: Build, written: Written | None = None) -> None:
        """Write after the Welcome, in order with other paced frames, within the limits."""
        self._paced.put_nowait((cost, build, written))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.call.cancel()

    async def _write_loop(self) -> None:
        try:
            while True:
                request = await self._out.get()
                await self.call.write(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as exc:
            # The call is over; the reader gets the status and decides what happens next.
            log.debug("stream writer stopped: %r", exc)

    async def _pace_loop(self) -> None:
        await self.welcomed.wait()
        assert self.welcome is not None
        limits = self.welcome.limits
        pacer = Pacer(limits.sends_per_second, limits.send_burst or 1)
        while True:
            cost, build, written = await self._paced.get()
            if build() is None:
                continue
            wait = pacer.reserve(cost) if cost else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            request = build()  # Built again: it may have been cancelled while we waited.
            if request is not None:
                self._out.put_nowait(request)
                if written is not None:
                    written()
