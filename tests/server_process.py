"""A real `barrage serve` process on loopback, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from barrage.server.auth import issue_dev_token

TEST_SECRET = "test-secret-for-loopback-tests-only"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """Start, kill -9, and restart a server on the same port and data directory."""

    def __init__(
        self,
        data_dir: Path,
        *,
        log_url: str | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log_url = log_url or f"embedded:{data_dir}"
        self.args = args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout_s: float = 30.0) -> None:
        # Core-guarantee tests read every event; sampling of hot rooms has its own tests.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BARRAGE_VIEWER_BUDGET_PER_S": "100000", **self.env}
        command = [
            sys.executable, "-m", "barrage.server",
            "--listen", self.target,
            "--log", self.log_url,
            "--jwt-secret", TEST_SECRET,
            "--node-id", f"test-{self.port}",
            *self.args,
        ]  # fmt: skip
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._wait_serving(timeout_s)

    def _wait_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"server not serving after {timeout_s}s:\n{self.logs()}")

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def logs(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def kill(self) -> None:
        """kill -9: no flush, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM: graceful shutdown. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self) -> None:
        self.kill()
        self.start()

    def token(
        self,
        user: str,
        role: str = "viewer",
        name: str | None = None,
        ttl_s: float = 3600,
        rooms: list[str] | None = None,
    ) -> str:
        """A development token; `rooms` is a bot's rooms claim (["*"]: every room)."""
        return issue_dev_token(TEST_SECRET, user_id=user, role=role, name=name, ttl_s=ttl_s, rooms=rooms)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate(timeout_s=10)
