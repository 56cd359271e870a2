"""The commands that train nothing and read no task options: `nlpcli env` (this machine, for bug reports) and
`nlpcli report` (runs compared). `nlpcli config TASK` takes a task's options: see commands/task.py."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nlpcli.commands.exits import reports_user_errors


@reports_user_errors
def env(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of Markdown.")) -> None:
    """Describe this machine for a bug report, as Markdown to paste into an issue: platform, Python, package
    versions, CPUs and threads, CUDA and GPUs, precision, accelerate config, Hugging Face caches and variables."""
    from nlpcli.environment import as_markdown, describe_environment

    facts = describe_environment()
    print(json.dumps(facts, indent=2) if as_json else as_markdown(facts), end="\n" if as_json else "")


@reports_user_errors
def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="Output folders of training runs."),
    output: Path | None = typer.Option(None, metavar="FILE",
                                       help="PNG to draw the runs' curves into (default: comparison.png)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare runs: their final metrics side by side, and their curves (loss, eval metrics) in one PNG."""
    from nlpcli.reporting.compare import report as compare_runs

    compare_runs(run_dirs, output, as_json)
