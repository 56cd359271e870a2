"""`nlpcli demo`: every task trained on its bundled sample with the tiny preset, offline, then one prediction
each and a summary table."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from nlpcli.commands.exits import reports_user_errors
from nlpcli.commands.predict import predict_command
from nlpcli.commands.tables import cell, print_predictions, show_result
from nlpcli.commands.task import run
from nlpcli.config_layers import CONFIG_DIR, resolve_config
from nlpcli.console import is_main_process, say, show_table
from nlpcli.tasks import TASK_MODULES, task_class

DEMO_DIR = CONFIG_DIR / "demo"


@reports_user_errors
def demo(
    output_root: Path = typer.Option(Path("runs/demo"), metavar="DIR", help="Folder for the demo runs (replaced)."),
    tasks: list[str] | None = typer.Option(None, "--task", help="Only these tasks (repeatable)."),
) -> None:
    """Train every task on its bundled sample with the tiny preset, offline, and show the metrics."""
    from nlpcli.tasks import get_task

    chosen = tasks or [t for t in TASK_MODULES if (DEMO_DIR / f"{t}.yaml").is_file()]
    summary = Table("task", "metric", "value", "output", title="demo summary", title_justify="left")
    for name in chosen:
        out = output_root / name
        if out.exists():
            shutil.rmtree(out)
        cfg = resolve_config(task_class(name).config_class, name, DEMO_DIR / f"{name}.yaml", {"output_dir": str(out)})
        say(f"\n[bold magenta]== {name} ==[/bold magenta]")
        result = run(name, cfg)
        show_result(result)
        headline = next(
            (k for k in ("eval_overall_f1", "eval_f1", "eval_f1_macro", "eval_perplexity", "eval_bleu", "eval_rougeL")
             if k in result["metrics"]), "eval_loss",
        )
        summary.add_row(name, headline, cell(result["metrics"].get(headline)), str(out))
        task = get_task(name)
        if task.demo_request is not None and is_main_process():
            say(escape(predict_command(name, out, task.demo_request)), style="bold")
            print_predictions(task.predict(str(out), task.demo_request))
    show_table(summary)
