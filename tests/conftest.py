"""Shared test helpers: run the CLI in-process, offline, on tiny settings."""

from __future__ import annotations

import json
import os
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
    """Invoke `nlpcli ARGS` in this process; output holds stdout and stderr together."""
    from nlpcli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return CliResult(result.exit_code, result.output)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


@pytest.fixture
def cli():
    return run_cli
