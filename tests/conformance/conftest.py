"""Backends under conformance test, behind one fixture.

The tests in this package use only the RoomLog / RoomDirectory interface, through:

- `backend`: a started Backend, closed after the test;
- `reopen`: `await reopen()` closes the current backend and returns a new started
  one on the same storage (a restart); the fixture closes whichever is current;
- `force_retention`: `await force_retention(backend, room_id)` makes every record of
  the room appended so far unreadable, as retention would (a driver that cannot do
  that calls pytest.skip with a reason).

To add a backend, write a BackendDriver subclass and add it to DRIVERS. Nothing else
changes. Tests use fresh uuid room ids, so drivers may share storage (one broker).
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from barrage.server.log.base import Backend
from barrage.server.log.embedded import EmbeddedLog, open_embedded
from barrage.server.log.kafka import open_kafka
from tests.kafka_broker import start_broker


class BackendDriver(abc.ABC):
    """Opens backends of one kind on one piece of storage."""

    @abc.abstractmethod
    async def open(self) -> Backend:
        """A new started backend on this driver's storage (the same storage every call)."""

    async def close(self, backend: Backend) -> None:
        await backend.log.close()

    @abc.abstractmethod
    async def force_retention(self, backend: Backend, room_id: str) -> None:
        """Make every record of the room appended so far unreadable, as retention would."""

    async def teardown(self) -> None:  # noqa: B027 - optional hook, most drivers need nothing
        """Release the storage (after the last backend is closed)."""


class EmbeddedDriver(BackendDriver):
    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self._dir = str(tmp_path / "embedded-data")

    async def open(self) -> Backend:
        backend = open_embedded(self._dir)
        await backend.log.start()
        return backend

    async def force_retention(self, backend: Backend, room_id: str) -> None:
        log = backend.log
        assert isinstance(log, EmbeddedLog)
        await log.roll()  # seal everything appended so far; retention never deletes the active segment
        await log.enforce_retention(max_bytes=0)


class KafkaDriver(BackendDriver):
    """The Kafka log on a test broker of its own (tests/kafka_broker.py), one partition so rooms share it."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self._broker = start_broker()
        self._url = self._broker.url(f"conformance-{uuid.uuid4().hex[:8]}")

    async def open(self) -> Backend:
        backend = open_kafka(self._url, partitions=1, replication_factor=1)
        await backend.log.start()
        return backend

    async def force_retention(self, backend: Backend, room_id: str) -> None:
        pytest.skip("the test broker (Tansu) has no DeleteRecords and no time retention in memory")

    async def teardown(self) -> None:
        self._broker.stop()


DriverFactory = Callable[[pytest.FixtureRequest, Path], BackendDriver]

DRIVERS: dict[str, DriverFactory] = {
    "embedded": EmbeddedDriver,
    "kafka": KafkaDriver,
}


class _Current:
    def __init__(self, backend: Backend) -> None:
        self.backend: Backend | None = backend


@pytest.fixture(params=sorted(DRIVERS))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BackendDriver]:
    drv = DRIVERS[request.param](request, tmp_path)
    try:
        yield drv
    finally:
        await drv.teardown()


@pytest.fixture
async def _current(driver: BackendDriver) -> AsyncIterator[_Current]:
    cur = _Current(await driver.open())
    try:
        yield cur
    finally:
        if cur.backend is not None:
            await driver.close(cur.backend)


@pytest.fixture
def backend(_current: _Current) -> Backend:
    assert _current.backend is not None
    return _current.backend


@pytest.fixture
def reopen(driver: BackendDriver, _current: _Current) -> Callable[[], Awaitable[Backend]]:
    async def _reopen() -> Backend:
        if _current.backend is not None:
            old, _current.backend = _current.backend, None
            await driver.close(old)
        _current.backend = await driver.open()
        return _current.backend

    return _reopen


@pytest.fixture
def force_retention(driver: BackendDriver) -> Callable[[Backend, str], Awaitable[None]]:
    return driver.force_retention
