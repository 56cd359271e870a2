"""Torch's threads fit the CPUs the process may use: --threads, OMP_NUM_THREADS, affinity and cgroup quota,
divided among the local processes; the choice reaches run.json. The CPU memory the allocator keeps for the next
step (runner/allocator.py) too."""

from __future__ import annotations

import json
import platform

import pytest

from conftest import REPO
from nlpcli.runner import threads
from nlpcli.runner.allocator import KEEP_BYTES, USER_SETTINGS, keep_freed_memory


def test_a_cgroup_v2_quota_reads_as_cpus(tmp_path):
    quota = tmp_path / "cpu.max"
    quota.write_text("250000 100000\n")
    assert threads.quota_cpus(v2=quota) == 2.5
    quota.write_text("max 100000\n")
    assert threads.quota_cpus(v2=quota, v1_quota=tmp_path / "none", v1_period=tmp_path / "none") is None


def test_a_cgroup_v1_quota_reads_as_cpus_and_minus_one_is_none(tmp_path):
    missing, quota, period = tmp_path / "missing", tmp_path / "quota", tmp_path / "period"
    period.write_text("100000")
    quota.write_text("150000")
    assert threads.quota_cpus(v2=missing, v1_quota=quota, v1_period=period) == 1.5
    quota.write_text("-1")
    assert threads.quota_cpus(v2=missing, v1_quota=quota, v1_period=period) is None


def test_the_choice_follows_threads_then_omp_then_usable_cpus_per_local_process(monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 16)
    monkeypatch.setattr(threads, "quota_cpus", lambda: 6.5)  # docker --cpus 6.5 on a 16-core host
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads(5) == (5, "--threads")
    assert threads.choose_threads(None) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.choose_threads(None) == (7, "7 usable CPUs")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert threads.choose_threads(None) == (3, "7 usable CPUs / 2 local processes")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert threads.choose_threads(None)[0] == 1  # never zero


def test_the_affinity_mask_counts_not_the_host_cores():
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    assert threads.affinity_cpus() == len(os.sched_getaffinity(0)) <= (os.cpu_count() or 1)


@pytest.mark.e2e
def test_threads_option_sets_torch_and_is_recorded(cli, tmp_path):
    import torch

    out = tmp_path / "run"
    before = torch.get_num_threads()
    try:
        result = cli("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "1", "--max-train-samples", "4",
                     "--max-eval-samples", "4", "--learning-rate", "1e-3", "--threads", "2", "--output-dir", str(out))
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert "threads=2" in result.output
    info = json.loads((out / "run.json").read_text())
    assert info["threads"] == {"count": 2, "chosen_by": "--threads"}
    assert info["cpu_memory"] == keep_freed_memory()  # what the allocator keeps, where it applies


STEPS_OF_ALLOCATIONS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from nlpcli.runner.allocator import keep_freed_memory
    print(keep_freed_memory()["kept_mib"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a training step's activations of several sizes, then all freed
    held = [np.ones(n, dtype=np.float32) for n in (1_250_000, 2_500_000, 600_000, 3_000_000, 1_250_000)]
    del held
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_freed_memory_is_kept_for_the_next_step_instead_of_faulted_in_again(monkeypatch):
    """glibc gives the freed top of its heap back at once: each step's 34 MiB come back as page faults."""
    import subprocess
    import sys

    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    runs = {mode: subprocess.run([sys.executable, "-c", STEPS_OF_ALLOCATIONS, mode], capture_output=True, text=True,
                                 check=True, cwd=REPO).stdout.split() for mode in ("default", "keep")}
    assert runs["keep"][0] == str(KEEP_BYTES // 2**20)
    assert int(runs["keep"][1]) * 4 < int(runs["default"][0])  # 42,000 faults against 2,800 where written


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_the_users_own_allocator_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory()["kept_mib"] is None
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert keep_freed_memory() == {"allocator": "jemalloc", "kept_mib": None}
