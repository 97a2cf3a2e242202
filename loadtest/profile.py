"""Sampling profiles of the server during a run (py-spy), and their hot spots.

`py-spy record --format raw` writes folded stacks ("frame;frame;frame count" per line,
root first), which flamegraph tools read. `hot_spots` turns them into the two tables an
optimiser wants: self time (the frame on top of the stack) and inclusive time (the frame
anywhere on the stack), as percentages of all samples.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


async def record(pid: int, seconds: float, out: Path, rate: int = 200, native: bool = False) -> Path | None:
    """Profile `pid` (and its subprocesses) for `seconds`; folded stacks in out/profile.folded."""
    exe = py_spy()
    if exe is None:
        return None
    target = out / "profile.folded"
    args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", str(rate)]
    args += ["--format", "raw", "--output", str(target), "--subprocesses"]
    # Native (C) frames need the process paused per sample, which costs it CPU: such a
    # run's CPU figures are not for reporting. Without --native, sampling does not pause.
    args.append("--native" if native else "--nonblocking")
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=(out / "py-spy.log").open("wb")
    )
    try:
        await asyncio.wait_for(proc.wait(), seconds + 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    return target if target.exists() else None


def _frame_name(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep function and file.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/work/main/", "site-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


_WAITING = frozenset(
    {
        "PyThread_acquire_lock_timed",
        "pthread_cond_timedwait",
        "pthread_cond_wait",
        "epoll_wait",
        "epoll_pwait",
        "sem_timedwait",
        "sem_wait",
        "poll",
        "select",
        "nanosleep",
        "clock_nanosleep",
        "fdatasync",
        "fsync",
    }
)
"""Native frames that mean the thread is blocked (waiting, or in disk I/O), not on a CPU.
py-spy --native cannot tell idle threads apart by itself."""


def _library(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.endswith(".py") or path.startswith("<"):
        return "python: " + _frame_name(frame).split(" (", 1)[1].rstrip(")")
    lib = path.rsplit("/", 1)[-1] or name
    if lib.startswith("libc.so"):
        return f"libc: {name}" if not name.startswith("0x") else "libc: (unnamed)"
    return lib


def hot_spots(folded: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive time per frame, as % of on-CPU samples (waiting stacks dropped)."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    callers: Counter[str] = Counter()
    total = 0
    waiting = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(f.partition(" (")[0] in _WAITING for f in frames):
            waiting += count
            continue
        total += count
        names = [_frame_name(f) for f in frames]
        self_time[names[-1]] += count
        libraries[_library(frames[-1])] += count
        for name in set(names):
            inclusive[name] += count
        # Native time is charged to the nearest Python frame of the server below it.
        if ".py:" not in frames[-1]:
            python = [n for f, n in zip(frames, names, strict=True) if ".py:" in f and "server/" in f]
            leaf = _library(frames[-1])
            callers[f"{python[-1] if python else '(event loop / grpc thread)'} -> {leaf}"] += count

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": k, "percent": round(100.0 * v / total, 1)} for k, v in counter.most_common(top)]

    return {
        "samples": total + waiting,
        "on_cpu_samples": total,
        "waiting_samples": waiting,
        "self": pct(self_time) if total else [],
        "inclusive": pct(inclusive) if total else [],
        "by_library": pct(libraries) if total else [],
        "native_by_python_caller": pct(callers) if total else [],
    }
