"""`nlpcli inspect TASK [the task's options]`: what a training run of the same command line would build (data,
features, first batch, model), checked and reported without training or writing anything (`runner/inspection.py`
builds and checks). The report is text, or one JSON object with `--json`; `--output FILE` also writes that object
to FILE. Exit 0 when no check found a problem, 1 when one did, 2 for a user error."""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
from pathlib import Path
from textwrap import indent
from typing import Any

import typer
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from nlpcli.commands.exits import reports_user_errors
from nlpcli.commands.predict import check_output_file
from nlpcli.commands.task import read_options, task_parameters
from nlpcli.console import console, plain_table
from nlpcli.files import write_text_atomic

PANEL = "Inspect"
PROBLEM_EXIT = 1
COLOURS = {"ok": "green", "warning": "yellow", "problem": "red"}
HELP = ("Build what `nlpcli {task}` would (data, tokenizer, features, collator, model), train nothing, and check it: "
        "the data, one example decoded, the first batch, the forward signature, one forward pass against a "
        "constant predictor, the model. Exit 1 when a check finds a problem.")
GROUP_HELP = ("Look before you train: build what `nlpcli TASK` would, train and write nothing, and report ok / "
              "warning / problem per check (exit 1 on a problem). `nlpcli inspect TASK` takes the task's own options.")


def inspect_command_help(name: str) -> dict[str, str]:
    """The help of `nlpcli inspect NAME`, and its line in `nlpcli inspect --help`."""
    return {"help": HELP.format(task=name),
            "short_help": f"Check what `nlpcli {name}` would build (it takes the same options)."}


def _extra_options() -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("as_json", keyword, annotation=bool, default=typer.Option(
            False, "--json", rich_help_panel=PANEL, help="Print the report as one JSON object.")),
        inspect.Parameter("output", keyword, annotation=Path | None, default=typer.Option(
            None, "--output", metavar="FILE", rich_help_panel=PANEL,
            help="Also write the report, as JSON, to FILE (its folder must exist; --overwrite replaces it).")),
    ]


def inspect_command(name: str) -> Any:
    """`nlpcli inspect NAME`: --json and --output, then every option of `nlpcli NAME` (read as it reads them)."""
    params = _extra_options() + task_parameters(name)

    @reports_user_errors
    def command(**kwargs: Any) -> None:
        as_json, output, print_config = kwargs.pop("as_json"), kwargs.pop("output"), kwargs.pop("print_config")
        cfg = read_options(name, kwargs).resolve()
        if print_config:  # as on the task's own command: the configuration, and stop
            from nlpcli.commands.print_config import print_config as print_resolved

            print_resolved(cfg, name)
            return
        inspect_and_report(name, cfg, as_json, output)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = HELP.format(task=name)
    return command


def inspect_and_report(name: str, cfg: Any, as_json: bool, output: Path | None) -> None:
    """Inspect, print the report (text or JSON), write it to `output`; exit 1 when a check found a problem."""
    from nlpcli.runner.checks import PROBLEM
    from nlpcli.runner.inspection import inspect_task

    if output is not None:
        check_output_file(output, bool(cfg.overwrite))
    # with --json, stdout holds the report alone: what the build prints goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        found = inspect_task(name, cfg)
    report = found.as_json()
    if output is not None:
        write_text_atomic(output, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        show(report)
    if found.status == PROBLEM:
        raise typer.Exit(PROBLEM_EXIT)


# ---------------------------------------------------------------- the text report


def show(report: dict[str, Any]) -> None:
    console.print(f"[bold]inspect {report['task']}[/bold] model={escape(str(report['model']))} "
                  f"split={report['split']}", soft_wrap=True)
    for check in report["checks"]:
        colour = COLOURS[check["status"]]
        console.print(f"\n[{colour}]{check['status']:<8}[/{colour}][bold]{check['name']}[/bold]: "
                      f"{escape(check['summary'])}", soft_wrap=True)
        for key, value in check["details"].items():
            show_value(key, value)
        for note in check["notes"]:
            console.print(f"  [{colour}]->[/{colour}] {escape(note)}", soft_wrap=True)
    colour = COLOURS[report["status"]]
    flagged = [f"{check['name']} {check['status']}" for check in report["checks"] if check["status"] != "ok"]
    console.print(f"\n[{colour}]{report['status']}[/{colour}]: " + (", ".join(flagged) or "every check passed"))


def show_value(key: str, value: Any) -> None:
    """One detail: a table for rows (a list of dicts, or a dict of dicts), else `key: value` on one line."""
    rows = _rows(value)
    if rows:
        columns = list(dict.fromkeys(column for row in rows for column in row))
        table = Table(*columns, title=key, title_justify="left", box=None, padding=(0, 1))
        for row in rows:
            table.add_row(*(_text(row.get(column)) for column in columns))
        if console.is_terminal:
            console.print(Padding(table, (0, 0, 0, 2), expand=False), markup=False)
        else:  # a log or a pipe: whole lines, never wrapped (as every nlpcli table off a terminal)
            console.print(f"  {key}:\n" + indent(plain_table(table, title=False), "    "), markup=False,
                          highlight=False, soft_wrap=True)
        return
    console.print(f"  {escape(key)}: {escape(_text(value))}", soft_wrap=True)


def _rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        return value
    if isinstance(value, dict) and value and all(isinstance(row, dict) for row in value.values()):
        return [{"": name, **row} for name, row in value.items()]
    return []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
