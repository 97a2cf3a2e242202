"""Append throughput and ack latency of the embedded room log, and the raw fsync cost.

Closed loop: C tasks each append one entry (a ~200-byte payload with a unique dedupe
key, as a gateway sends) and wait for its ack before the next, for a fixed time, into
R rooms that are all watched by a counting listener (so delivery cost is included).
Every (fsync mode, concurrency) pair runs on a fresh data directory.

    .venv/bin/python -m barrage.loadtest.log_append_bench results.json
    .venv/bin/python -m barrage.loadtest.log_append_bench out.json --fsync always --concurrency 1 64 --seconds 2

Writes JSON to the given path and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from barrage.server.log.base import LogEntry, LogRecord
from barrage.server.log.embedded import EmbeddedLog, open_embedded


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def raw_fsync_cost(directory: str, rounds: int, size: int) -> dict[str, Any]:
    """write(size bytes) + fdatasync, one at a time: the floor of one fsync='always' ack."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    lat: list[float] = []
    try:
        block = b"x" * size
        for _ in range(rounds):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {
        "rounds": rounds,
        "bytes": size,
        "p50_ms": percentile(lat, 0.5) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "max_ms": lat[-1] * 1e3,
        "per_s": rounds / sum(lat),
    }


async def run_one(
    directory: str,
    fsync: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    rooms: int,
    payload_size: int,
    entries_per_call: int,
) -> dict[str, Any]:
    backend = open_embedded(directory, fsync=fsync)
    log = backend.log
    assert isinstance(log, EmbeddedLog)
    await log.start()
    delivered = 0

    def listener(records: Sequence[LogRecord]) -> None:
        nonlocal delivered
        delivered += len(records)

    log.set_listener(listener)
    for r in range(rooms):
        await log.watch(f"room-{r}")
    payload = os.urandom(payload_size)
    latencies: list[float] = []
    measuring = False
    stop = False
    acked = 0

    async def worker(w: int) -> None:
        nonlocal acked
        i = 0
        room = f"room-{w % rooms}"
        while not stop:
            entries = [
                LogEntry(payload, 2, f"sender-{w}/msg-{i}-{e}", "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
                for e in range(entries_per_call)
            ]
            t0 = time.perf_counter()
            await log.append(room, entries)
            if measuring:
                latencies.append(time.perf_counter() - t0)
                acked += entries_per_call
            i += 1

    tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
    await asyncio.sleep(warmup)
    before = log.stats()
    measuring = True
    t_start = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - t_start
    after = log.stats()
    stop = True
    await asyncio.gather(*tasks)
    await log.close()

    latencies.sort()
    batches = after["batches"] - before["batches"]
    records = after["records"] - before["records"]
    return {
        "fsync": fsync,
        "concurrency": concurrency,
        "entries_per_call": entries_per_call,
        "seconds": round(elapsed, 3),
        "acks": acked,
        "acks_per_s": round(acked / elapsed),
        "p50_ms": round(percentile(latencies, 0.5) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
        "max_ms": round(latencies[-1] * 1e3, 3) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1e3, 3) if latencies else None,
        "batches": batches,
        "records_per_batch": round(records / batches, 1) if batches else None,
        "write_ms_per_batch": round((after["write_s"] - before["write_s"]) / batches * 1e3, 3) if batches else None,
        "fsync_ms_per_batch": round((after["fsync_s"] - before["fsync_s"]) / batches * 1e3, 3) if batches else None,
        "delivered": delivered,
    }


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


async def recovery_cost(directory: str, records: int, rooms: int, payload_size: int) -> dict[str, Any]:
    """Write `records` keyed records, then time start() (scan + index + dedupe rebuild)."""
    backend = open_embedded(directory, fsync="none")
    await backend.log.start()
    payload = os.urandom(payload_size)
    per_call = 100
    for n in range(0, records, per_call):
        room = f"room-{(n // per_call) % rooms}"
        await backend.log.append(room, [LogEntry(payload, 2, f"s/{n + e}") for e in range(per_call)])
    await backend.log.close()
    log_bytes = sum(e.stat().st_size for e in os.scandir(os.path.join(directory, "log")))
    rss0 = _rss_bytes()
    backend = open_embedded(directory, fsync="none")
    t0 = time.perf_counter()
    await backend.log.start()
    took = time.perf_counter() - t0
    rss1 = _rss_bytes()
    assert isinstance(backend.log, EmbeddedLog)
    stats = backend.log.stats()
    await backend.log.close()
    return {
        "records": records,
        "rooms": rooms,
        "log_bytes": log_bytes,
        "start_s": round(took, 3),
        "records_per_s": round(records / took),
        "rss_growth_bytes": rss1 - rss0,
        "rss_per_record_bytes": round((rss1 - rss0) / records, 1),
        "dedupe_keys": stats["dedupe_keys"],
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="barrage-bench-") as tmp:
        fsync_probe = raw_fsync_cost(tmp, args.fsync_rounds, 4096)
        for mode in args.fsync:
            for c in args.concurrency:
                d = os.path.join(tmp, f"{mode}-{c}")
                res = await run_one(
                    d, mode, c, args.seconds, args.warmup, args.rooms, args.payload_size, args.entries_per_call
                )
                runs.append(res)
                print(
                    f"fsync={mode:6} c={c:5} {res['acks_per_s']:8} acks/s  p50 {res['p50_ms']:8.3f} ms  "
                    f"p99 {res['p99_ms']:8.3f} ms  batch {res['records_per_batch']} rec  "
                    f"fsync {res['fsync_ms_per_batch']} ms/batch",
                    flush=True,
                )
        recovery = None
        if args.recovery_records:
            recovery = await recovery_cost(
                os.path.join(tmp, "recovery"), args.recovery_records, args.rooms, args.payload_size
            )
            print(f"recovery: {recovery}", flush=True)
    return {
        "recovery": recovery,
        "command": " ".join(
            [
                os.path.basename(sys.executable),
                "-m",
                "barrage.loadtest.log_append_bench",
                *sys.argv[1:],
            ]
        ),
        "machine": machine(),
        "data_dir_parent": args.dir or tempfile.gettempdir(),
        "event_loop": "uvloop" if args.uvloop else "asyncio",
        "payload_bytes": args.payload_size,
        "rooms": args.rooms,
        "raw_fdatasync_4k": fsync_probe,
        "runs": runs,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", help="path of the JSON result file")
    p.add_argument("--fsync", nargs="+", default=["always", "none"], choices=["always", "none"])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 16, 128, 1024])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--payload-size", type=int, default=200)
    p.add_argument("--entries-per-call", type=int, default=1)
    p.add_argument("--fsync-rounds", type=int, default=500)
    p.add_argument("--recovery-records", type=int, default=0, help="also time start() over a log of this many records")
    p.add_argument("--dir", default=None, help="parent of the data directories (default: the temp dir)")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (as the server does)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.uvloop:
        import uvloop  # optional, as in the server

        result = uvloop.run(main_async(args))
    else:
        result = asyncio.run(main_async(args))
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
