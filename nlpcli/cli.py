"""The Typer app: one command per task (options generated from the task's config fields), plus
`predict` and `demo`. Nothing heavy is imported at module level, so `--help` answers at once."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import shutil
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from nlpcli.config import (
    CONFIG_DIR,
    base_type,
    field_type,
    parse_set_options,
    read_yaml,
    resolve_config,
    with_resume_values,
)
from nlpcli.console import console, err_console, is_main_process, say
from nlpcli.errors import UserError
from nlpcli.tasks import TASK_MODULES, task_class

app = typer.Typer(
    help="Train and fine-tune transformers for the classic NLP tasks. Run `nlpcli demo` for a tour.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
DEMO_DIR = CONFIG_DIR / "demo"
GROUPED_METRIC = re.compile(r"^eval_(?P<group>.+)_(?P<kind>precision|recall|f1|number|exact|exact_match|total)$")


def reports_user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one red message and exit code 2; Ctrl-C into exit code 130."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as err:
            if is_main_process():
                err_console.print(f"[bold red]error:[/bold red] {escape(err.message)}", soft_wrap=True)
                if err.hint:
                    err_console.print(escape(err.hint), soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: the checkpoints saved so far are kept; use --resume.")
            raise typer.Exit(130) from None

    return wrapper


def metrics_tables(metrics: dict[str, Any]) -> list[Table]:
    """One table of overall metrics, and one of per-group metrics (per entity, HasAns/NoAns, ...)."""
    overall = Table("metric", "value", title="metrics", title_justify="left")
    groups: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        match = GROUPED_METRIC.match(key)
        if match and match["group"] not in ("overall",):
            groups.setdefault(match["group"], {})[match["kind"]] = value
        else:
            overall.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    tables = [overall]
    if groups:
        kinds = sorted({k for values in groups.values() for k in values})
        grouped = Table("group", *kinds, title="per group", title_justify="left")
        for group, values in sorted(groups.items()):
            grouped.add_row(group, *(_cell(values.get(k)) for k in kinds))
        tables.append(grouped)
    return tables


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _option_for(cls: type, config_field: dataclasses.Field, defaults: dict[str, Any]) -> inspect.Parameter:
    name = config_field.name
    flag = config_field.metadata.get("cli_flag") or "--" + name.replace("_", "-")
    base, _ = base_type(field_type(cls, name))
    help_text = config_field.metadata.get("help", "")
    choices = config_field.metadata.get("choices")
    if choices:
        help_text += f" One of: {', '.join(choices)}."
    default = defaults.get(name, config_field.default)
    if default is not None:
        help_text += f" [default: {default}]"
    help_text = escape(help_text)
    if base is bool:
        annotation, info = bool | None, typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text)
    elif getattr(base, "__origin__", None) in (list, dict) and config_field.metadata.get("repeatable"):
        annotation, info = list[str] | None, typer.Option(None, flag, help=help_text)
    elif getattr(base, "__origin__", None) is list:
        annotation, info = str | None, typer.Option(None, flag, help=help_text)
    else:
        annotation, info = base | None, typer.Option(None, flag, help=help_text, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _register_task_command(name: str) -> None:
    task = task_class(name)
    cls = task.config_class
    defaults_file = CONFIG_DIR / f"{name}.yaml"
    defaults = read_yaml(defaults_file) if defaults_file.is_file() else {}
    params = [_option_for(cls, f, defaults) for f in dataclasses.fields(cls)]
    params.append(
        inspect.Parameter(
            "config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
            default=typer.Option(None, "--config", help="YAML file of config keys (overrides the task defaults)."),
        )
    )
    params.append(
        inspect.Parameter(
            "set_values", inspect.Parameter.KEYWORD_ONLY, annotation=list[str] | None,
            default=typer.Option(None, "--set", help="Override any config key: --set key=value (repeatable)."),
        )
    )

    @reports_user_errors
    def command(**kwargs: Any) -> None:
        config_file = kwargs.pop("config_file")
        set_values = parse_set_options(kwargs.pop("set_values") or [])
        cfg = resolve_config(cls, name, config_file, kwargs, set_values)
        show_result(run(name, cfg))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = task.help
    app.command(name, help=task.help)(command)


def run(name: str, cfg: Any) -> dict[str, Any]:
    from nlpcli.runner.run import run_task

    return run_task(name, cfg)


def show_result(result: dict[str, Any]) -> None:
    if not is_main_process():
        return
    for table in metrics_tables(result["metrics"]):
        console.print(table)
    console.print(f"saved to [bold]{result['output_dir']}[/bold]")


for _task_name in TASK_MODULES:
    _register_task_command(_task_name)


@app.command()
@reports_user_errors
def predict(
    task: str = typer.Argument(..., help=f"Task of the saved model: {', '.join(TASK_MODULES)}."),
    model_dir: str = typer.Argument(..., help="Output folder of a training run (or any model folder)."),
    texts: list[str] | None = typer.Argument(None, help="Input text(s)."),
    question: str | None = typer.Option(None, help="Question (qa)."),
    context: str | None = typer.Option(None, help="Context passage (qa)."),
    top_k: int = typer.Option(5, help="Number of candidates (mlm)."),
    max_new_tokens: int = typer.Option(50, help="Tokens to generate (clm)."),
    temperature: float = typer.Option(0.0, help="Sampling temperature; 0: greedy (clm)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling: smallest token set of this probability (clm)."),
    num_return_sequences: int = typer.Option(1, help="Completions per prompt; needs --temperature > 0 (clm)."),
    seed: int | None = typer.Option(None, help="Seed for sampling, for reproducible completions (clm)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    input_file: str | None = typer.Option(
        None, "--file", help="Inputs, one per line: a text file, a .jsonl file (see --text-column), or - for stdin."
    ),
    text_column: str = typer.Option("text", help="Key of the input text in a .jsonl --file."),
    output: Path | None = typer.Option(None, help="Write JSON lines here instead of stdout (with --file)."),
) -> None:
    """Run a saved model on new input (the task's pipeline, or generation for seq2seq tasks).

    With --file: every line is an input, and the output is one JSON object per input, in input order."""
    from nlpcli.predict_io import read_inputs, write_json_lines
    from nlpcli.tasks import get_task
    from nlpcli.tasks.base import PredictRequest

    if task not in TASK_MODULES:
        raise UserError(f"Unknown task '{task}'. Known: {', '.join(TASK_MODULES)}.")
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise UserError(f"{model_dir}: not a saved model folder (no config.json).")
    chosen = get_task(task)
    if (input_file or output) and not chosen.predicts_per_input:
        raise UserError(f"predict {task} does not take --file or --output yet; give the text(s) as arguments.")
    if input_file and texts:
        raise UserError("Give texts as arguments or --file, not both.")
    inputs = read_inputs(input_file, text_column) if input_file else list(texts or [])
    request = PredictRequest(texts=inputs, question=question, context=context, top_k=top_k,
                             max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             num_return_sequences=num_return_sequences, seed=seed)
    from nlpcli.runner.run import quiet_libraries

    quiet_libraries()
    table = chosen.predict(str(folder), request)
    if input_file or output:
        write_json_lines(table.rows, output)
        return
    if as_json:
        print(json.dumps(table.rows, indent=2, ensure_ascii=False))
        return
    print_predictions(table)


def print_predictions(table: Any) -> None:
    rich_table = Table(*table.columns, title=table.title or None, title_justify="left")
    for row in table.rows:
        rich_table.add_row(*(_cell(row.get(c)) for c in table.columns))
    say(rich_table if table.rows else "[dim]no predictions[/dim]")


@app.command()
@reports_user_errors
def demo(
    output_root: Path = typer.Option(Path("runs/demo"), help="Folder for the demo runs (replaced)."),
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
            (k for k in ("eval_overall_f1", "eval_f1", "eval_perplexity", "eval_bleu", "eval_rougeL")
             if k in result["metrics"]), "eval_loss",
        )
        summary.add_row(name, headline, _cell(result["metrics"].get(headline)), str(out))
        task = get_task(name)
        if task.demo_request is not None and is_main_process():
            say(f"[bold]nlpcli predict {name} {out}[/bold] {task.demo_request.texts or ''}")
            print_predictions(task.predict(str(out), task.demo_request))
    say(summary)


@app.command()
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
        table.add_row(key, str(value))
    console.print(table)


@app.command()
@reports_user_errors
def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="Output folders of training runs."),
    output: Path | None = typer.Option(None, help="PNG to draw the runs' curves into (default: comparison.png)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare runs: their final metrics side by side, and their curves (loss, eval metrics) in one PNG."""
    from nlpcli.reporting.compare import report as compare_runs

    compare_runs(run_dirs, output, as_json)


def main() -> None:
    import sys

    app(args=with_resume_values(sys.argv[1:]))


if __name__ == "__main__":
    main()
