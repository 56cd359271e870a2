"""Reachability of the Hugging Face Hub: decide in seconds, not after 45 s of retries.

Before any hub access we open one TCP connection to the hub endpoint (or the HTTPS proxy). When that
fails, the process switches the hub clients to offline mode, so cached files still load at once and
anything else fails at once; the caller then turns the failure into one clear message.
"""

from __future__ import annotations

import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 5.0
_TRUE = {"1", "true", "yes", "on"}
_switched_offline = False  # True once this process found the hub unreachable and went offline itself


def offline_requested() -> bool:
    return any(os.environ.get(var, "").lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _probe_target() -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def _connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


@lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """True when the hub endpoint accepts a TCP connection within PROBE_TIMEOUT_S (DNS included)."""
    if offline_requested():
        return False
    host, port = _probe_target()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(_connect, host, port).result(timeout=PROBE_TIMEOUT_S + 1)
    except FutureTimeout:
        return False
    finally:
        pool.shutdown(wait=False)


def go_offline() -> None:
    """Make huggingface_hub, transformers and datasets use only the local cache from now on.

    The environment variable is the documented switch, but each library reads it once, when it is imported,
    into a module constant (`huggingface_hub.constants.HF_HUB_OFFLINE`, `datasets.config.HF_HUB_OFFLINE`),
    and none offers a public way to change it later. So the constants of those already imported are set
    too. A per-call `local_files_only=True` would do for transformers' `from_pretrained`, but
    `datasets.load_dataset` has no such argument: only offline mode makes it use its cache at once instead
    of retrying the network for half a minute. Replace this patch when the libraries offer a runtime switch.
    """
    global _switched_offline
    _switched_offline = _switched_offline or not offline_requested()
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True


def prepare_hub_access() -> bool:
    """Call before any hub download. Returns whether the hub can be reached."""
    reachable = hub_reachable()
    if not reachable:
        go_offline()
    return reachable


def unreachable_hint(kind: str, name: str, local_example: str) -> str:
    why = (
        "the Hugging Face Hub cannot be reached from this machine"
        if _switched_offline
        else "HF_HUB_OFFLINE is set"
    )
    return (
        f"Cannot load {kind} '{name}': it is not in the local cache and {why}. "
        f"Run once on a machine with internet to cache it, or use a local source instead, "
        f"for example {local_example}."
    )


def repo_file(repo_id: str, filename: str) -> Path | None:
    """A file of hub model repo `repo_id`, from the cache or downloaded; None when the repo has none, or when it
    cannot be had (offline and not cached)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    prepare_hub_access()
    try:
        return Path(hf_hub_download(repo_id, filename))
    except (OSError, ValueError, HfHubHTTPError):  # no such file, not cached offline, a refused request
        return None
