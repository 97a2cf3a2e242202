"""The README works when pasted: its "Try it" block and its SDK snippet, run as written.

They run in a copy of the repository's tracked files (what a fresh clone has), sharing
this checkout's installed .venv so that the test does not spend a minute installing.
The only change made to what the README says is the address: the node listens on a free
loopback port (through BARRAGE_LISTEN / BARRAGE_TARGET, which the commands honour) so the
test never collides with a node a developer is running on 50051.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ROOT, free_port


def _block(heading: str, language: str, index: int = 0) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return str(blocks[index])


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    target = tmp_path / "barrage"
    for name in tracked.splitlines():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # keeps mtimes: bootstrap sees the install as current
    (target / ".venv").symlink_to(ROOT / ".venv")
    yield target
    log = target / "barrage.log"
    pids = re.findall(r"\(pid (\d+)", (tmp_path / "out.txt").read_text()) if (tmp_path / "out.txt").exists() else []
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            continue
    for pid in pids:
        for _ in range(100):
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                break
            subprocess.run(["sleep", "0.1"], check=False)
        else:
            os.kill(int(pid), signal.SIGKILL)
    assert not log.exists() or "Traceback" not in log.read_text()


def test_try_it_block_runs_top_to_bottom_in_a_fresh_clone(clone: Path) -> None:
    script = _block("## Try it", "sh")
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "BARRAGE_LISTEN": address, "BARRAGE_TARGET": address}
    env.pop("BARRAGE_TOKEN", None)
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    (clone.parent / "out.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert "node running on" in result.stdout
    # The chat echoed both piped lines (not only the first), and history shows them with cursors.
    assert "Alice: 这个多少钱？" in result.stdout
    assert "Alice: Is there a red one?" in result.stdout
    history = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"roomId"')]
    comments = [event for event in history if "comment" in event.get("payload", {})]
    assert comments and all(event["cursor"] for event in comments)
    # The node's log went to its file, not into the terminal where the chat ran.
    assert "listening on" not in result.stdout + result.stderr
    assert "listening on" in (clone / "barrage.log").read_text()


def test_sdk_snippet_runs_as_written(clone: Path) -> None:
    setup = _block("## Try it", "sh").splitlines()[0:3]  # start the node, mint a token, create the room
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "BARRAGE_LISTEN": address, "BARRAGE_TARGET": address}
    started = subprocess.run(
        ["bash", "-e", "-c", "\n".join(setup) + '\necho "TOKEN=$BARRAGE_TOKEN"'],
        cwd=clone, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    (clone.parent / "out.txt").write_text(started.stdout + started.stderr)
    assert started.returncode == 0, started.stderr
    token = started.stdout.split("TOKEN=", 1)[1].strip()
    snippet = _block("## The Python SDK", "python").replace("127.0.0.1:50051", address)
    proc = subprocess.Popen(
        [str(clone / ".venv/bin/python"), "-c", snippet],
        cwd=clone, env={**env, "BARRAGE_TOKEN": token}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=8)
    except subprocess.TimeoutExpired:  # it follows the room forever, as written
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "stored at" in out, err
    assert "这个多少钱？" in out  # its own comment came back through the subscription
