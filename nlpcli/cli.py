"""The Typer app: one command per task (options generated from the task's config fields), plus
`predict` and `demo`. Nothing heavy is imported at module level, so `--help` answers at once."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from nlpcli import layout
from nlpcli.config import MAX_SEED, RunConfig
from nlpcli.config_args import parse_set_options, with_resume_values
from nlpcli.config_fields import base_type, field_type
from nlpcli.config_files import read_yaml
from nlpcli.config_layers import CONFIG_DIR, resolve_config
from nlpcli.console import console, err_console, is_main_process, say
from nlpcli.errors import UserError
from nlpcli.help_panels import ORDER as PANEL_ORDER
from nlpcli.help_panels import panel_for, panel_title
from nlpcli.metrics.kinds import metric_kind
from nlpcli.tasks import TASK_MODULES, task_class

app = typer.Typer(
    help="Train and fine-tune transformers for the classic NLP tasks. Run `nlpcli demo` for a tour.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
DEMO_DIR = CONFIG_DIR / "demo"


def _print_version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("nlpcli")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            from nlpcli import __version__ as version
        print(f"nlpcli {version}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Show the version and exit."),
) -> None:
    """Train and fine-tune transformers for the classic NLP tasks. Run `nlpcli demo` for a tour."""


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
        kind = metric_kind(key)
        if kind.per_group and kind.split == "eval" and not kind.before:
            groups.setdefault(str(kind.group), {})[str(kind.measure)] = value
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


NEGATION = "__off"  # suffix of the hidden parameter that reads a boolean option's --no-FLAG


def _options_for(cls: type, config_field: dataclasses.Field, defaults: dict[str, Any], task: str,
                 task_specific: bool, hidden: bool = False) -> list[inspect.Parameter]:
    """The option(s) of one config key, in its help panel; a boolean key gets --FLAG, and --no-FLAG as a
    hidden second option (listed in the help text, so that the flag column stays narrow). `hidden`: parsed
    but not listed (an option the task does not use, refused when given)."""
    name = config_field.name
    flag = config_field.metadata.get("cli_flag") or "--" + name.replace("_", "-")
    base, _ = base_type(field_type(cls, name))
    help_text = config_field.metadata.get("help", "")
    choices = config_field.metadata.get("choices")
    if choices:
        help_text += f" One of: {', '.join(choices)}."
    default = defaults.get(name, config_field.default)
    if base is bool and default is not False:  # on, or undecided (None): say how to turn it off
        help_text += f" Off: --no-{flag[2:]}."
    if default is not None:
        joiner = " " if config_field.metadata.get("repeatable") else ","
        shown = joiner.join(map(str, default)) if isinstance(default, list) else str(default)
        if any(len(word) > LONGEST_DEFAULT for word in shown.split()):  # would be cut off at 80 columns
            shown = f"see nlpcli config {task}"
        help_text += f" [default: {shown}]"
    help_text = escape(help_text)
    panel = panel_title(panel_for(name, task_specific), task)
    common: dict[str, Any] = {"help": help_text, "rich_help_panel": panel, "show_default": False, "hidden": hidden}
    extra = []
    if base is bool:
        annotation, info = bool | None, typer.Option(None, flag, metavar="", **common)
        extra.append(inspect.Parameter(name + NEGATION, inspect.Parameter.KEYWORD_ONLY, annotation=bool | None,
                                       default=typer.Option(None, f"--no-{flag[2:]}", hidden=True)))
    elif getattr(base, "__origin__", None) in (list, dict) and config_field.metadata.get("repeatable"):
        annotation, info = list[str] | None, typer.Option(None, flag, metavar="TEXT", **common)
    elif getattr(base, "__origin__", None) is list:
        annotation, info = str | None, typer.Option(None, flag, metavar="A,B", **common)
    else:
        annotation, info = base | None, typer.Option(None, flag, metavar=METAVARS.get(base, "TEXT"), **common)
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation), *extra]


METAVARS = {int: "N", float: "X", str: "TEXT"}
LONGEST_DEFAULT = 30  # characters of one word of a default shown in help


def _with_negations(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fold each hidden --no-FLAG into its key: False when given (refused together with --FLAG)."""
    for hidden in [key for key in kwargs if key.endswith(NEGATION)]:
        name, off = hidden[: -len(NEGATION)], kwargs.pop(hidden)
        if off and kwargs.get(name):
            flag = name.replace("_", "-")
            raise UserError(f"--{flag} and --no-{flag} contradict each other: give one.")
        if off:
            kwargs[name] = False
    return kwargs


def _panel_of(param_name: str, shared: set[str]) -> str:
    key = param_name.removesuffix(NEGATION)
    return panel_for(key, task_specific=key not in shared and key not in ("config_file", "set_values"))


def _register_task_command(name: str) -> None:
    task = task_class(name)
    cls = task.config_class
    defaults_file = CONFIG_DIR / f"{name}.yaml"
    defaults = read_yaml(defaults_file) if defaults_file.is_file() else {}
    shared = {f.name for f in dataclasses.fields(RunConfig)}
    unused = set(task.unused_options) | (set() if task.supports_streaming else {"streaming"})
    params = [
        param
        for f in dataclasses.fields(cls)
        for param in _options_for(cls, f, defaults, name, f.name not in shared, hidden=f.name in unused)
    ]
    params.append(
        inspect.Parameter(
            "config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
            default=typer.Option(None, "--config", metavar="FILE", rich_help_panel=panel_for("config_file"),
                                 help="YAML file of config keys (overrides the task defaults)."),
        )
    )
    params.append(
        inspect.Parameter(
            "set_values", inspect.Parameter.KEYWORD_ONLY, annotation=list[str] | None,
            default=typer.Option(None, "--set", metavar="KEY=VALUE", rich_help_panel=panel_for("set_values"),
                                 help="Override any config key: --set key=value (repeatable)."),
        )
    )
    params.sort(key=lambda param: PANEL_ORDER.index(_panel_of(param.name, shared)))  # panels in a fixed order

    @reports_user_errors
    def command(**kwargs: Any) -> None:
        config_file = kwargs.pop("config_file")
        set_values = parse_set_options(kwargs.pop("set_values") or [])
        kwargs = _with_negations(kwargs)
        for key in task.unused_options:  # hidden from --help; given anyway, it would be silently ignored
            if kwargs.get(key) is not None:
                raise UserError(f"--{key.replace('_', '-')}: the {name} task does not use this option.",
                                hint=f"See nlpcli {name} --help for the options it reads.")
        cfg = resolve_config(cls, name, config_file, kwargs, set_values)
        show_result(run(name, cfg))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = task.help
    app.command(name, help=task.help)(command)


def run(name: str, cfg: Any) -> dict[str, Any]:
    """Run a task; once its files are saved, draw its curves.png."""
    from nlpcli.reporting.plot import write_curves
    from nlpcli.runner.run import run_task

    return run_task(name, cfg, on_saved=write_curves)


def show_result(result: dict[str, Any]) -> None:
    if not is_main_process():
        return
    for table in metrics_tables(result["metrics"]):
        console.print(table)
    console.print(f"saved to [bold]{result['output_dir']}[/bold]")


for _task_name in TASK_MODULES:
    _register_task_command(_task_name)


INPUT, SETTINGS, OUTPUT = "Input", "Prediction", "Output"  # the panels of `nlpcli predict --help`


@app.command()
@reports_user_errors
def predict(
    task: str = typer.Argument(..., help=f"Task of the saved model: {', '.join(TASK_MODULES)}."),
    model_dir: str = typer.Argument(..., help="Output folder of a training run (or any model folder)."),
    texts: list[str] | None = typer.Argument(None, help="Input text(s)."),
    question: str | None = typer.Option(None, help="Question (qa).", rich_help_panel=INPUT),
    context: str | None = typer.Option(None, help="Context passage (qa).", rich_help_panel=INPUT),
    input_file: str | None = typer.Option(
        None, "--file", rich_help_panel=INPUT,
        help="Inputs, one per line: a text file, a .jsonl file (see --text-column; qa: question and context), "
        "or - for stdin.",
    ),
    text_column: str = typer.Option("text", help="Key of the input text in a .jsonl --file.", rich_help_panel=INPUT),
    skip_bad_records: bool = typer.Option(
        False, "--skip-bad-records", rich_help_panel=INPUT,
        help="Skip (and count, on stderr) bad input lines instead of stopping.",
    ),
    top_k: int = typer.Option(5, help="Number of candidates (mlm).", rich_help_panel=SETTINGS),
    max_new_tokens: int = typer.Option(50, help="Tokens to generate (clm).", rich_help_panel=SETTINGS),
    temperature: float = typer.Option(0.0, help="Sampling temperature; 0: greedy (clm).", rich_help_panel=SETTINGS),
    top_p: float = typer.Option(
        1.0, help="Nucleus sampling: smallest token set of this probability (clm).", rich_help_panel=SETTINGS
    ),
    num_return_sequences: int = typer.Option(
        1, help="Completions per prompt; needs --temperature > 0 (clm).", rich_help_panel=SETTINGS
    ),
    seed: int | None = typer.Option(
        None, help="Seed for sampling, for reproducible completions (clm).", rich_help_panel=SETTINGS
    ),
    batch_size: int = typer.Option(16, help="Inputs per forward pass (ner, mlm, qa).", rich_help_panel=SETTINGS),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON instead of a table: one object per input.", rich_help_panel=OUTPUT
    ),
    output: Path | None = typer.Option(None, help="Write JSON lines here instead of stdout.", rich_help_panel=OUTPUT),
) -> None:
    """Run a saved model on new input (the task's pipeline, or generation for seq2seq tasks).

    With --file: every line is an input, and the output is one JSON object per input, in input order."""
    from nlpcli.predict_io import Inputs, read_inputs, write_json_lines
    from nlpcli.run_folder import check_model_task
    from nlpcli.tasks import get_task
    from nlpcli.tasks.base import PredictRequest

    if task not in TASK_MODULES:
        raise UserError(f"Unknown task '{task}'. Known: {', '.join(TASK_MODULES)}.")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}.")
    if seed is not None and not 0 <= seed <= MAX_SEED:  # else a traceback from NumPy's seeding
        raise UserError(f"--seed must be at least 0 and at most {MAX_SEED}, got {seed}.")
    folder = Path(model_dir)
    if not (folder / layout.MODEL_CONFIG).is_file():
        raise UserError(f"{model_dir}: not a saved model folder (no {layout.MODEL_CONFIG}).")
    chosen = get_task(task)
    if input_file and (texts or question or context):
        raise UserError("Give the input as arguments (or --question/--context) or as --file, not both.")
    if chosen.predict_fields and texts:
        raise UserError(f"predict {task} reads {', '.join(chosen.predict_fields)}, not text arguments.",
                        hint=" ".join(f'--{name} "..."' for name in chosen.predict_fields) + ", or --file.")
    check_model_task(folder, task, {name: task_class(name).model_class for name in TASK_MODULES})
    fields = {name: name for name in chosen.predict_fields} or {"text": text_column}
    if input_file:
        inputs = read_inputs(input_file, fields, skip_bad_records)
    else:
        given = list(texts or [])
        inputs = Inputs(records=[{"text": t} for t in given], where=[f"text {i}" for i in range(1, len(given) + 1)])
    request = PredictRequest(texts=[r["text"] for r in inputs.records if "text" in r], question=question,
                             context=context, top_k=top_k, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, num_return_sequences=num_return_sequences, seed=seed,
                             records=inputs.records if chosen.predict_fields else [], batch_size=batch_size,
                             where=inputs.where, skip_bad_records=skip_bad_records, skipped=list(inputs.skipped))
    from nlpcli.runner.run import quiet_libraries

    quiet_libraries()
    table = chosen.predict(str(folder), request)
    if request.skipped:
        total = len(inputs.records) + len(inputs.skipped)
        shown = ", ".join(request.skipped[:10]) + (", ..." if len(request.skipped) > 10 else "")
        err_console.print(f"[yellow]skipped {len(request.skipped)} bad input(s) of {total}[/yellow]: {escape(shown)}",
                          soft_wrap=True)
    if input_file or output:
        write_json_lines(table.per_input, output)
        return
    if as_json:
        print(json.dumps(table.per_input, indent=2, ensure_ascii=False))
        return
    print_predictions(table)


def predict_command(task: str, folder: Path, request: Any) -> str:
    """The `nlpcli predict` command line that asks `request`, quoted as a shell would need it."""
    import shlex

    return shlex.join(["nlpcli", "predict", task, str(folder), *request.command_line()])


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
            say(escape(predict_command(name, out, task.demo_request)), style="bold")
            print_predictions(task.predict(str(out), task.demo_request))
    say(summary)


@app.command("config")
@reports_user_errors
def show_config(
    task: str = typer.Argument(..., help=f"Task: {', '.join(TASK_MODULES)}."),
    config_file: Path | None = typer.Option(None, "--config", help="A YAML file of config keys to apply first."),
    set_values: list[str] | None = typer.Option(None, "--set", help="Override a config key: key=value (repeatable)."),
) -> None:
    """Print the task's resolved configuration as YAML: copy it, edit it, pass it back with --config."""
    from nlpcli.config import config_yaml

    if task not in TASK_MODULES:
        raise UserError(f"Unknown task '{task}'. Known: {', '.join(TASK_MODULES)}.")
    cfg = resolve_config(task_class(task).config_class, task, config_file, {}, parse_set_options(set_values or []))
    print(f"# nlpcli {task}: resolved configuration (use it with: nlpcli {task} --config FILE)")
    print(config_yaml(cfg, task), end="")


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
        table.add_row(key.replace("_", " "), str(value))
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
