"""How many threads torch computes with. torch sizes its intra-op pool by the host's cores, not by the CPUs this
process may use: under a CPU affinity mask (taskset, SLURM, Kubernetes' cpusets) or a cgroup CPU quota (docker
--cpus, CI runners) it oversubscribes, and on a loaded 2-core box two threads ran 20 steps 13x slower than one.

The choice, first that applies: `--threads N`; OMP_NUM_THREADS when set (torchrun sets 1 for several processes
unless told otherwise); else the CPUs this process may use (affinity, capped by the cgroup quota) divided among
the processes of this machine (LOCAL_WORLD_SIZE under torchrun / accelerate launch), at least one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD" or "max PERIOD"
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def affinity_cpus() -> int:
    """The CPUs the scheduler lets this process run on (all of them where affinity is not supported)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def quota_cpus(v2: Path = CGROUP_V2_MAX, v1_quota: Path = CGROUP_V1_QUOTA,
               v1_period: Path = CGROUP_V1_PERIOD) -> float | None:
    """The cgroup's CPU quota in CPUs (2.5 for `docker --cpus 2.5`), or None when there is none."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(v1_quota.read_text())
        return None if quota_us <= 0 else quota_us / int(v1_period.read_text())
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by the cgroup quota (rounded up: a 2.5-CPU quota keeps
    three threads busy part of the time)."""
    cpus = affinity_cpus()
    quota = quota_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def local_processes() -> int:
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def choose_threads(requested: int | None) -> tuple[int, str]:
    """(threads, why): see the module's docstring for the order."""
    if requested:
        return requested, "--threads"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    processes = local_processes()
    cpus = usable_cpus()
    share = max(1, cpus // processes)
    why = f"{cpus} usable CPUs" + (f" / {processes} local processes" if processes > 1 else "")
    return share, why


def apply_threads(requested: int | None) -> dict[str, object]:
    """Set torch's intra-op threads; what run.json records (`threads`)."""
    import torch

    count, why = choose_threads(requested)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return {"count": count, "chosen_by": why}
