"""CPU memory the process keeps for reuse. A training step frees and allocates again tens of MiB (activations,
logits, gradients). glibc's malloc gives the freed top of its heap back to the system once it passes a small,
moving threshold, so every step has the kernel hand those pages back, zeroed, one page fault at a time: 0.8-1.6
million minor faults in 200 steps of the tiny mlm preset, about a fifth of its training time. With the heap's
trim threshold at KEEP_BYTES (blocks of MMAP_BYTES and more still mapped on their own, as glibc's moving threshold
ends up doing anyway), set with `mallopt` as MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ would at start, the
same run had 0.13 million and trained 1.3-1.4x faster, for 25-50 MiB more peak RSS (benchmarks/README.md).

Linux with glibc only. Other C libraries, the user's own settings (MALLOC_TOP_PAD_, MALLOC_TRIM_THRESHOLD_,
GLIBC_TUNABLES) and a preloaded allocator (jemalloc, tcmalloc, mimalloc in LD_PRELOAD) are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

KEEP_BYTES = 256 * 2**20
MMAP_BYTES = 32 * 2**20  # glibc's own ceiling for its moving threshold: larger blocks are mapped and unmapped
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
USER_SETTINGS = ("MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")


def keep_freed_memory() -> dict[str, Any]:
    """Keep up to KEEP_BYTES of freed heap where that applies; run.json's record (`cpu_memory`)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return {"allocator": "system", "kept_mib": None}
    preloaded = next((name for name in PRELOADED if name in os.environ.get("LD_PRELOAD", "")), None)
    if preloaded is not None:
        return {"allocator": preloaded, "kept_mib": None}
    if any(os.environ.get(name) for name in USER_SETTINGS):
        return {"allocator": "glibc", "kept_mib": None, "set_by": "environment"}
    try:
        libc = ctypes.CDLL(None)
        done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) == 1 and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    except (OSError, AttributeError):
        done = False
    return {"allocator": "glibc", "kept_mib": KEEP_BYTES // 2**20 if done else None}
