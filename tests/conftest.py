"""Shared test helpers: run the CLI in-process, offline, on tiny settings, on one CPU thread.

The suite sets its own environment before anything imports the Hugging Face libraries (they read it once,
at import): whatever the shell exports, the hub is offline, no token is known, the cache is a fresh folder
and torch uses one thread. Tests that need another hub state ask for the `online_hub` fixture.

Tiers (registered in pyproject.toml): `e2e` tests run a training or evaluation loop or launch processes,
`slow` ones take more than a few seconds without doing so; `make test-fast` runs the rest. A test that runs
a loop or torchrun without the `e2e` mark fails, so the fast tier stays fast.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# What the shell may export and the suite decides for itself: hub state, token, caches, endpoints, proxies.
HUB_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
                 "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HOME", "HF_HUB_CACHE",
                 "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_XET_CACHE", "TRANSFORMERS_CACHE", "HF_ENDPOINT",
                 "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
for _name in HUB_VARIABLES:
    os.environ.pop(_name, None)
os.environ.update({name: "1" for name in OFFLINE_VARIABLES})
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="nlpcli-test-hf-home-")  # empty cache, no stored token
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Experiment trackers (--report-to): offline, writing under a fresh folder (never the repository or the home
# folder), with no account, project or run of the shell's. A test reads them back from TRACKERS_DIR.
for _name in [name for name in os.environ if name.startswith(("WANDB_", "MLFLOW_", "TRACKIO_", "COMET_"))]:
    os.environ.pop(_name)
TRACKERS_DIR = Path(tempfile.mkdtemp(prefix="nlpcli-test-trackers-"))
atexit.register(shutil.rmtree, TRACKERS_DIR, ignore_errors=True)
os.environ.update({
    "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true", "WANDB_DIR": str(TRACKERS_DIR),
    "WANDB_DATA_DIR": str(TRACKERS_DIR / "wandb-data"), "WANDB_CACHE_DIR": str(TRACKERS_DIR / "wandb-cache"),
    "WANDB_CONFIG_DIR": str(TRACKERS_DIR / "wandb-config"),
    "MLFLOW_TRACKING_URI": (TRACKERS_DIR / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true",
    "TRACKIO_DIR": str(TRACKERS_DIR / "trackio"), "COMET_MODE": "offline",
    "COMET_OFFLINE_DIRECTORY": str(TRACKERS_DIR / "comet"),
})
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# One thread everywhere (this process and every process it starts): float sums then do not depend on
# the machine's core count or load, and two pytest workers share a 2-core machine without contention.
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import torch  # noqa: E402  (after the environment above)
from typer.testing import CliRunner  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
FLOAT_TOLERANCE = 1e-6  # what 1 vs N processes and the two loops promise for float figures (README)
_current: dict[str, pytest.Item] = {}


class CliResult:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code = exit_code
        self.output = output


def pytest_runtest_setup(item: pytest.Item) -> None:
    _current["item"] = item


# the files whose tests launch processes (torchrun, killed runs, two tuning workers), longest first
LONGEST_FILES = ("test_recovery.py", "test_signals.py", "test_tune.py", "test_distributed.py", "test_translate.py",
                 "test_qa.py", "test_summarize.py", "test_clm.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first: `make test` hands whole files to its workers in this order (xdist's loadfile),
    so they start early and the suite ends on short ones instead of waiting for one worker's long tail."""
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


def require_e2e(what: str) -> None:
    """Fail the running test when it is not marked e2e: `make test-fast` leaves those out."""
    item = _current.get("item")
    if item is not None and item.get_closest_marker("e2e") is None:
        pytest.fail(f"{item.nodeid} {what}: mark it @pytest.mark.e2e", pytrace=False)


@contextmanager
def loops_guarded() -> Iterator[None]:
    """While a test that is not marked e2e invokes the CLI, the training/evaluation loops refuse to start."""
    item = _current.get("item")
    if item is None or item.get_closest_marker("e2e") is not None:
        yield
        return
    from nlpcli.runner import accelerate, trainer

    def refuse(*args: Any, **kwargs: Any) -> Any:
        require_e2e("runs a training or evaluation loop")

    with pytest.MonkeyPatch.context() as patch:
        for loop in (accelerate, trainer):
            patch.setattr(loop, "run", refuse)
        yield


def run_cli(*args: str) -> CliResult:
    """Invoke `nlpcli ARGS` in this process, as `main` reads a command line; output holds stdout and stderr."""
    from nlpcli.cli import app
    from nlpcli.config_args import with_bare_values

    with loops_guarded():
        result = CliRunner().invoke(app, with_bare_values([str(a) for a in args]), catch_exceptions=False)
    return CliResult(result.exit_code, result.output)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def front_matter(card: Path) -> dict:
    """The YAML block a model card (README.md) starts with."""
    import yaml

    text = Path(card).read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_agree(first: Any, second: Any, rel: float = FLOAT_TOLERANCE, where: str = "") -> None:
    """`first` equals `second` in structure, keys, order, strings, integers and booleans; floats agree within
    `rel` (relative). What runs of different batch shapes, world sizes or loops promise each other."""
    if isinstance(first, float) or isinstance(second, float):
        assert isinstance(first, int | float) and isinstance(second, int | float), f"{where}: {first!r} vs {second!r}"
        assert math.isclose(first, second, rel_tol=rel, abs_tol=1e-12) or first == second, (
            f"{where}: {first!r} vs {second!r} differ by more than a relative {rel}")
    elif isinstance(first, dict) and isinstance(second, dict):
        assert list(first) == list(second), f"{where}: keys {list(first)} vs {list(second)}"
        for key in first:
            assert_agree(first[key], second[key], rel, f"{where}.{key}")
    elif isinstance(first, list | tuple) and isinstance(second, list | tuple):
        assert len(first) == len(second), f"{where}: {len(first)} vs {len(second)} items"
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            assert_agree(a, b, rel, f"{where}[{index}]")
    else:
        assert first == second, f"{where}: {first!r} vs {second!r}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_command(nproc: int, *args: str) -> list[str]:
    """`torchrun --nproc_per_node NPROC -m nlpcli ARGS`, as a command line (on a free port)."""
    require_e2e("launches torchrun")
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(free_port()), "-m", "nlpcli", *map(str, args)]


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node NPROC -m nlpcli ARGS`: DDP over gloo on this CPU box (one thread each)."""
    return subprocess.run(torchrun_command(nproc, *args), capture_output=True, text=True, cwd=REPO, timeout=300)


def wait_for(done: Callable[[], bool], running: subprocess.Popen, what: str, deadline: float = 300) -> None:
    """Poll `done` until it holds; fail if the process ended first (or after `deadline` seconds)."""
    import time

    limit = time.time() + deadline
    while not done():
        assert running.poll() is None and time.time() < limit, f"the run ended before {what}"
        time.sleep(0.01)


def kill_launched(launcher: subprocess.Popen) -> None:
    """SIGKILL to a launcher and to every process it started (each in a session of its own), as a lost node stops
    them: nothing of theirs runs a clean-up."""
    import signal

    import psutil

    workers = psutil.Process(launcher.pid).children(recursive=True)
    for pid in (launcher.pid, *(worker.pid for worker in workers)):
        os.kill(pid, signal.SIGKILL)
    launcher.wait()
    psutil.wait_procs(workers, timeout=30)


def accelerate_launch(config: str, nproc: int, *args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file CONFIG --num_processes NPROC -m nlpcli ARGS`, with one of the accelerate
    configs nlpcli ships (on a CPU box accelerate runs its processes over gloo)."""
    require_e2e("launches accelerate")
    from nlpcli.config_layers import CONFIG_DIR

    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(CONFIG_DIR / "accelerate" / f"{config}.yaml"), "--num_processes", str(nproc),
               "--main_process_port", str(free_port()), "--mixed_precision", "no", "-m", "nlpcli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


def trained_once(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Path:
    """The output folder of `nlpcli ARGS --output-dir ...`, trained once per test run and shared by every
    module and pytest worker that asks for NAME (the caller only reads it)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder all workers' temporary folders are in
    out = root / "trained" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{out}.lock"):
        if not (out / "metrics.json").is_file():
            result = run_cli(*args, "--output-dir", out)
            assert result.exit_code == 0, result.output
    return out


NER_MODEL = ("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "20", "--learning-rate", "5e-3",
             "--batch-size", "4")  # a tiny ner model that tags the sample's entities: conftest.trained_once
MLM_MODEL = ("mlm", "--model", "tiny", "--dataset", "sample", "--max-steps", "4", "--learning-rate", "5e-3",
             "--chunk-size", "32", "--max-train-samples", "40", "--max-eval-samples", "16",
             "--batch-size", "8")  # a tiny masked LM (test_run_folders, and classify's starting model): trained_once


def run_processes(nproc: int, *args: str) -> str:
    """`nlpcli ARGS` with NPROC processes: 1 is this process (one thread, as each torchrun process has),
    more go through torchrun. Asserts success; returns what the run printed."""
    if nproc == 1:
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        return result.output
    done = torchrun(nproc, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def online_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The hub state of a machine with network and no stored token, as huggingface_hub and datasets see it
    (they read the offline variables once, at import, so the variables alone would change nothing).
    Returns the token file's path."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    from nlpcli.sources import hub

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    token_file = tmp_path / "hf-home" / "token"
    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(token_file))
    probe = hub.hub_reachable  # a test may replace it; its cache is what must not leak
    probe.cache_clear()
    yield token_file
    probe.cache_clear()
