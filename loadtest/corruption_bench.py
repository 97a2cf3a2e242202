"""The audit's corruption case at its size, timed: one flipped byte mid active segment.

Writes N keyed ~250-byte records into one active segment (issue 14 found 13,291 events
in ~4 MB), flips one byte in the middle frame's payload, then times: the refused start,
`check`, `repair` and the start after it, and counts what was kept.

    .venv/bin/python -m barrage.loadtest.corruption_bench --records 13291
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from barrage.server.log.base import LogEntry
from barrage.server.log.embedded import LogCorruptError, open_embedded
from barrage.server.log.embedded_check import check, repair
from barrage.server.log.segment import ScannedRecord, parse_segment_name, scan_segment_fully


def _flip_middle_frame(log_dir: str) -> list[ScannedRecord]:
    [name] = [n for n in os.listdir(log_dir) if parse_segment_name(n) is not None]
    path = os.path.join(log_dir, name)
    frames = scan_segment_fully(path, 0, 1 << 28, -1).records
    hit = frames[len(frames) // 2]
    with open(path, "r+b") as f:
        f.seek(hit.offset + hit.length - 2)
        byte = f.read(1)
        f.seek(hit.offset + hit.length - 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    print(f"{len(frames)} records, {os.path.getsize(path):,} bytes; flipped a byte of frame {hit.position}")
    return frames


async def main(records: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        backend = open_embedded(data, segment_bytes=1 << 30)
        await backend.log.start()
        for start in range(0, records, 500):
            batch = [LogEntry(os.urandom(200), 2, f"user/{n}") for n in range(start, min(records, start + 500))]
            await backend.log.append(f"room{start % 7}", batch)
        await backend.log.close()
        frames = _flip_middle_frame(os.path.join(data, "log"))

        t = time.perf_counter()
        backend = open_embedded(data)
        try:
            await backend.log.start()
            raise SystemExit("started on a corrupt log")
        except LogCorruptError as e:
            print(f"start refused in {time.perf_counter() - t:.2f} s: {str(e)[:110]}...")
        await backend.log.close()

        t = time.perf_counter()
        report = check(data)
        print(f"check in {time.perf_counter() - t:.2f} s: {report.findings[0].describe()}")
        t = time.perf_counter()
        result = repair(data)
        print(f"repair in {time.perf_counter() - t:.2f} s: kept {result.kept} of {len(frames)}")

        t = time.perf_counter()
        backend = open_embedded(data)
        await backend.log.start()
        kept = 0
        for r in range(7):
            kept += len(await backend.log.read(f"room{r}", -1, records))
        print(f"start after repair in {time.perf_counter() - t:.2f} s; {kept} records readable")
        [again] = await backend.log.append("room0", [LogEntry(b"retry", 2, "user/0")])
        print(f"retry of user/0: duplicate={again.duplicate} position={again.record.position}")
        await backend.log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=13_291)
    asyncio.run(main(parser.parse_args().records))
