"""Histograms (HDR, µs) and what /proc says about processes and the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

_TICKS = os.sysconf("SC_CLK_TCK")
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 100.0)


def histogram(digits: int = 3) -> Any:
    """An HDR histogram of microseconds (1 µs to 1 h)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def record(hist: Any, value_us: int) -> None:
    hist.record_value(min(max(value_us, LOWEST_US), HIGHEST_US))


def encode(hist: Any) -> str:
    value: bytes = hist.encode()
    return value.decode()


def decode(data: str, digits: int = 3) -> Any:
    hist = histogram(digits)
    if data:
        hist.add(HdrHistogram.decode(data))
    return hist


def summary_ms(hist: Any) -> dict[str, float | int]:
    """Count and percentiles in milliseconds."""
    count = int(hist.get_total_count())
    out: dict[str, float | int] = {"count": count}
    if not count:
        return out
    for p in PERCENTILES:
        key = "max" if p == 100.0 else f"p{p:g}"
        out[key] = round(hist.get_value_at_percentile(p) / 1000.0, 2)
    out["mean"] = round(hist.get_mean_value() / 1000.0, 2)
    return out


def percentile_curve(hist: Any) -> list[tuple[float, float]]:
    """(percentile, ms) points for a percentile-distribution plot."""
    points: list[tuple[float, float]] = []
    if not hist.get_total_count():
        return points
    for nines in range(0, 60):
        p = 100.0 * (1.0 - 10 ** (-nines / 10.0))
        if p > 99.999:
            break
        points.append((p, hist.get_value_at_percentile(p) / 1000.0))
    points.append((100.0, hist.get_max_value() / 1000.0))
    return points


# ---------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (the server's workers, if it has any)."""
    kids = children_map()
    out: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) from /proc/PID/stat; 0 if it is gone."""
    try:
        fields = _stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds per thread of a process, keyed "tid:name" (the main thread's tid is the pid)."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text.rpartition(")")[2].split()
        out[f"{tid}:{name}"] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_cpu_seconds(pids: list[int]) -> dict[int, float]:
    return {p: cpu_seconds(p) for p in pids}


def tree_rss_bytes(pids: list[int]) -> int:
    return sum(rss_bytes(p) for p in pids)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    values = [int(v) for v in fields[:8]]
    return (sum(values) - values[3] - values[4]) / _TICKS


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def git_commit(cwd: Path) -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}
