"""Cap each server process at a fraction of a core (a cgroup CPU quota per process).

On a 2-core machine the load generator and the server share the cores, so "two
workers deliver twice what one does" cannot be shown by saturating cores. Capping
every worker process at the same quota makes a worker's capacity a fixed amount of
CPU: one capped worker saturates at some rate, two should reach about twice it, with
the rest of the machine left to the clients. Needs root and the cgroup `cpu`
controller (v1 or v2); the groups are removed when the run ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")
_PERIOD_US = 100_000


class CpuCaps:
    def __init__(self, cores: float, tag: str) -> None:
        if cores <= 0:
            raise ValueError("a CPU cap must be a positive number of cores")
        self.cores = cores
        self.tag = tag
        self.groups: dict[int, Path] = {}
        if (_V1 / "cpu.cfs_quota_us").exists():
            self._root, self._v2 = _V1, False
        elif "cpu" in (_V2 / "cgroup.controllers").read_text(errors="replace").split():
            self._root, self._v2 = _V2, True
        else:
            raise SystemExit("--cpu-cap needs the cgroup cpu controller (v1 or v2)")
        if not os.access(self._root, os.W_OK):
            raise SystemExit(f"--cpu-cap needs write access to {self._root} (run as root)")

    def apply(self, pids: list[int]) -> None:
        """Put each process not yet capped into a group of its own with the quota."""
        quota = int(self.cores * _PERIOD_US)
        for pid in pids:
            if pid in self.groups:
                continue
            group = self._root / f"barrage-loadtest-{self.tag}-{pid}"
            group.mkdir(exist_ok=True)
            if self._v2:
                (group / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
            else:
                (group / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
            try:
                (group / "cgroup.procs").write_text(str(pid))
            except OSError:  # the process exited meanwhile
                group.rmdir()
                continue
            self.groups[pid] = group

    def close(self) -> None:
        """Remove the groups (their processes have exited; any left go back to the root)."""
        for group in self.groups.values():
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    (self._root / "cgroup.procs").write_text(pid)
                group.rmdir()
        self.groups.clear()
