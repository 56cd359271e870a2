"""The commands that train nothing: `nlpcli config` (a task's resolved configuration as YAML), `nlpcli env`
(this machine, for bug reports) and `nlpcli report` (runs compared)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from nlpcli.commands.exits import reports_user_errors
from nlpcli.config import config_yaml
from nlpcli.config_args import parse_set_options
from nlpcli.config_layers import resolve_config
from nlpcli.console import show_table
from nlpcli.errors import UserError
from nlpcli.tasks import TASK_MODULES, task_class


@reports_user_errors
def show_config(
    task: str = typer.Argument(..., help=f"Task: {', '.join(TASK_MODULES)}."),
    config_file: Path | None = typer.Option(None, "--config", metavar="FILE",
                                            help="A YAML file of config keys to apply first."),
    set_values: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE",
                                                help="Override a config key: key=value (repeatable)."),
) -> None:
    """Print the task's resolved configuration as YAML: copy it, edit it, pass it back with --config."""
    if task not in TASK_MODULES:
        raise UserError(f"Unknown task '{task}'. Known: {', '.join(TASK_MODULES)}.")
    cfg = resolve_config(task_class(task).config_class, task, config_file, {}, parse_set_options(set_values or []))
    print(f"# nlpcli {task}: resolved configuration (use it with: nlpcli {task} --config FILE)")
    print(config_yaml(cfg, task), end="")


@reports_user_errors
def env(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show versions, device, precision, hub reachability and presets (paste it into bug reports)."""
    from nlpcli.environment import describe_environment

    facts = describe_environment()
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    table = Table("", "", show_header=False)
    for key, value in facts.items():
        table.add_row(key.replace("_", " "), str(value))
    show_table(table)


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
