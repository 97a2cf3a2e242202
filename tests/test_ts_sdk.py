"""The TypeScript SDK (clients/ts, docs/web.md "The TypeScript SDK"): its generated types
and page bundle are current, and its Node tests pass against a real node on loopback.

The Node tests (clients/ts/test/*.test.ts, run by `npm test`) get the node's addresses
and token secret by environment. For the restart test the node's pid is in a file: the
Node test kills the node with SIGKILL and a watcher here restarts it on the same port
and log, as a supervisor would. scripts/install_node.sh installs Node and the SDK's
locked dependencies (scripts/test.sh runs it)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ROOT, TEST_SECRET, ServerProcess, free_port

TS = ROOT / "clients" / "ts"
NODE_TESTS = sorted(p.name.removesuffix(".test.ts") for p in (TS / "test").glob("*.test.ts"))


def npm() -> str:
    found = shutil.which("npm")
    if found is None or not (TS / "node_modules").is_dir():
        pytest.fail("Node.js, npm or clients/ts/node_modules missing: run scripts/install_node.sh")
    return found


def run(command: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 300) -> None:
    done = subprocess.run(
        command,
        check=False,
        cwd=TS,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    print(done.stdout)  # Node's test report: shown by pytest -s or -rA.
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-20000:]}\n{done.stderr[-5000:]}")


def test_generated_typescript_is_current() -> None:
    npm()
    done = subprocess.run(
        [sys.executable, "scripts/gen_ts_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_committed_page_bundle_is_built_from_the_sources(tmp_path: Path) -> None:
    """clients/ts/dist/barrage-sdk.js is committed for pages; it must match `npm run build`."""
    npm()
    run(["npx", "tsc", "-p", "tsconfig.json", "--noEmit"])
    run(["node", "scripts/bundle.mjs"], env={"BUNDLE_OUT": str(tmp_path / "barrage-sdk.js")})
    assert filecmp.cmp(tmp_path / "barrage-sdk.js", TS / "dist" / "barrage-sdk.js", shallow=False), (
        "clients/ts/dist/barrage-sdk.js is stale: run `npm run build` in clients/ts and commit it"
    )


class Supervisor:
    """Restarts the node whenever it dies (the Node restart test kills it), keeping its pid
    in a file the Node tests read."""

    def __init__(self, node: ServerProcess, pid_file: Path) -> None:
        self.node = node
        self.pid_file = pid_file
        self.stopping = threading.Event()
        self.restarts = 0
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Supervisor:
        self._write_pid()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(30)

    def _write_pid(self) -> None:
        assert self.node.proc is not None
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(str(self.node.proc.pid))
        tmp.replace(self.pid_file)

    def _watch(self) -> None:
        while not self.stopping.wait(0.05):
            assert self.node.proc is not None
            if self.node.proc.poll() is not None:
                self.node.start()
                self.restarts += 1
                self._write_pid()


@pytest.fixture
def web_node(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    node = ServerProcess(tmp_path / "data", args=("--web-listen", f"127.0.0.1:{port}"))
    node.web_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def compiled() -> None:
    """The Node tests compiled once (what `npm test` does before running them all)."""
    npm()
    run(["npx", "tsc", "-p", "tsconfig.test.json"])


@pytest.mark.parametrize("suite", NODE_TESTS)
def test_typescript_sdk_against_a_real_node(
    compiled: None, web_node: ServerProcess, suite: str, tmp_path: Path
) -> None:
    """One Node test file (clients/ts/test/<suite>.test.ts) against its own node."""
    base = str(web_node.web_url)  # type: ignore[attr-defined]
    env = {
        "BARRAGE_WS_URL": base.replace("http://", "ws://") + "/ws",
        "BARRAGE_HTTP_URL": base,
        "BARRAGE_JWT_SECRET": TEST_SECRET,
        "BARRAGE_PID_FILE": str(tmp_path / "node.pid"),
    }
    with Supervisor(web_node, tmp_path / "node.pid"):
        run(["node", "scripts/run-tests.mjs", suite], env=env)
