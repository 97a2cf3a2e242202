"""What the moderation hook costs on ingest (docs/performance.md, "Moderation hook").

Runs the loadtest `ingest` scenario (viewer senders, so every comment is reviewed)
with and without `--moderation-hook` pointing at a loopback hook that allows at once
(loadtest/moderation_hook_server.py), alternately, and writes one JSON file with, per
run: the node's CPU per acknowledged comment, acknowledged comments per second, ack
latency (open loop at a fixed rate: from each send's intended time), the hook process's
CPU per call, and the send errors (the node runs fail-closed, so a review that failed
shows up there, never as an unreviewed append).

    .venv/bin/python -m barrage.loadtest.moderation_hook_bench --out docs/performance/moderation-hook
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from barrage.loadtest import metrics
from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent


def _ingest(out: Path, rate: float, window: int, duration: float, serve_args: str) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "barrage.loadtest", "--scenario", "ingest",
        "--rate", str(rate), "--window", str(window), "--duration", str(duration), "--drain", "5",
        "--spawn-server", serve_args, "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


def _run(
    name: str, rate: float, window: int, duration: float, hook: str | None, hook_pid: int, work: Path, timeout_ms: float
) -> dict[str, Any]:
    serve_args = (
        f"--moderation-hook {hook} --moderation-hook-failure closed --moderation-hook-timeout-ms {timeout_ms:g}"
        if hook
        else ""
    )
    hook_cpu0 = metrics.cpu_seconds(hook_pid)
    result = _ingest(work / name, rate, window, duration, serve_args)
    hook_cpu = metrics.cpu_seconds(hook_pid) - hook_cpu0
    f = result["figures"]
    acked = f["acked"]
    row = {
        "run": name,
        "hook": bool(hook),
        "rate": rate or f"closed loop, {window} in flight per stream",
        "hook_timeout_ms": timeout_ms if hook else None,
        "valid": result["valid"],
        "acked": acked,
        "acked_per_s": f["acked_per_s"],
        "server_cpu_s": f["server_cpu_s"],
        "server_cpu_us_per_ack": round(f["server_cpu_s"] * 1e6 / acked, 2) if acked else None,
        "hook_cpu_s": round(hook_cpu, 2) if hook else None,
        "hook_cpu_us_per_ack": round(hook_cpu * 1e6 / acked, 2) if hook and acked else None,
        "ack_latency_ms_from_intended": f["ack_latency_ms_from_intended"],
        "send_errors": f["send_errors"],
        "machine_cpu_util": f["machine_cpu_util"],
        "load_average_1m_after": os.getloadavg()[0],
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m barrage.loadtest.moderation_hook_bench", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for result.json")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending per run")
    parser.add_argument(
        "--rate",
        type=float,
        action="append",
        help="comments/s of an open-loop (latency) pair; repeat (default 200, 1000)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=4,
        help="closed loop: sends in flight per stream (50 streams x 4 = 200, inside the hook's 256 pending calls)",
    )
    parser.add_argument(
        "--closed-timeout-ms",
        type=float,
        default=1000.0,
        help="the hook's deadline in the closed-loop runs: a closed loop saturates the node, whose own queueing "
        "then counts against the deadline (with the default 50 ms some reviews time out: a policy outcome, "
        "not the hook's cost); the open-loop runs keep the default 50 ms",
    )
    parser.add_argument("--repeats", type=int, default=2, help="closed-loop pairs (without, with), alternated")
    args = parser.parse_args()
    target = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "barrage.loadtest.moderation_hook_server", "--listen", target]
    hook = subprocess.Popen(command, cwd=ROOT)
    rows: list[dict[str, Any]] = []
    try:
        time.sleep(2.0)
        with tempfile.TemporaryDirectory(prefix="hook-bench-") as tmp:
            work = Path(tmp)
            for i in range(args.repeats):
                for hooked in (None, target):
                    name = f"closed-{i}-{'with' if hooked else 'without'}"
                    rows.append(
                        _run(name, 0, args.window, args.duration, hooked, hook.pid, work, args.closed_timeout_ms)
                    )
            for rate in args.rate or [200.0, 1000.0]:
                for hooked in (None, target):
                    name = f"open-{rate:g}-{'with' if hooked else 'without'}"
                    rows.append(_run(name, rate, 0, args.duration, hooked, hook.pid, work, 50.0))
    finally:
        hook.send_signal(signal.SIGTERM)
        hook.wait(10)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python -m barrage.loadtest.moderation_hook_bench " + " ".join(sys.argv[1:]),
        "machine": metrics.machine_info(),
        "commit": metrics.git_commit(ROOT),
        "about": "loadtest ingest (50 viewer sender streams into 50 rooms) without and with --moderation-hook "
        "(a loopback hook that allows at once, fail-closed so a failed review is a send error, not an "
        "unreviewed append); closed loop: most acked comments/s; open loop: ack latency at a fixed rate",
        "runs": rows,
    }
    (args.out / "result.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
