"""Shared test helpers: run the CLI in-process, offline, on tiny settings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


class CliResult:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code = exit_code
        self.output = output


def run_cli(*args: str) -> CliResult:
    """Invoke `nlpcli ARGS` in this process, as `main` reads a command line; output holds stdout and stderr."""
    from nlpcli.cli import app
    from nlpcli.config import with_resume_values

    result = CliRunner().invoke(app, with_resume_values([str(a) for a in args]), catch_exceptions=False)
    return CliResult(result.exit_code, result.output)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node NPROC -m nlpcli ARGS`: DDP over gloo on this CPU box."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port()), "-m", "nlpcli", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


@pytest.fixture
def cli():
    return run_cli
