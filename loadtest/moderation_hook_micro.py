"""The node's CPU per reviewed comment, alone (docs/performance.md, "Moderation hook").

In one process, what Gateway.post adds per viewer comment when a hook is configured:
Moderation.review (the request built, the answer applied) over HookClient (one unary
gRPC call on the shared channel), against the loopback hook of
loadtest/moderation_hook_server.py in another process. CPU time of this process only
(time.process_time), so other processes on the machine matter little; calls made
one at a time and 64 at once (as a busy node's batches overlap).

    .venv/bin/python -m barrage.loadtest.moderation_hook_micro [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import uvloop

from barrage.server.auth import Identity
from barrage.server.core.moderation import Moderation
from barrage.server.transport.moderation_hook import HookClient
from barrage.v1 import event_pb2
from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent


async def _measure(target: str, calls: int, concurrency: int) -> dict[str, float]:
    client = HookClient(target, timeout_s=1.0, max_pending=1024)
    moderation = Moderation(client, fail_open=False, max_text_chars=500)
    who = Identity(user_id="viewer-1", display_name="Viewer 1", role=event_pb2.ROLE_VIEWER, expires_at=float("inf"))
    text = "这个多少钱？ loadtest comment #12345"

    async def one() -> None:
        payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
        await moderation.review(who, "lt-room-1", "viewer", "comment", payload, "m-1")

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    for _ in range(200):  # connect and warm up
        await one()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = calls // concurrency * concurrency
    await client.close()
    return {
        "concurrency": concurrency,
        "calls": done,
        "cpu_us_per_review": round(cpu / done * 1e6, 1),
        "wall_us_per_review": round(wall / done * 1e6, 1),
        "reviews_per_s": round(done / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m barrage.loadtest.moderation_hook_micro", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    target = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "barrage.loadtest.moderation_hook_server", "--listen", target]
    hook = subprocess.Popen(command, cwd=ROOT)
    try:
        time.sleep(2.0)
        rows = [uvloop.run(_measure(target, args.calls, c)) for c in (1, 64)]
    finally:
        hook.send_signal(signal.SIGTERM)
        hook.wait(10)
    for row in rows:
        print(json.dumps(row))
    if args.out:
        run = "python -m barrage.loadtest.moderation_hook_micro"
        args.out.write_text(json.dumps({"command": run, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
