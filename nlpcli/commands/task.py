"""One command per task: its options, generated from the task's config fields (help panels, --no-FLAG for
booleans, the task defaults shown), and what it does: resolve the configuration, run the task, print the
metrics; or, with --print-config (and as `nlpcli config TASK`, which takes the same options), print the
configuration and stop. `task_parameters` and `read_options` are what `nlpcli tune TASK` shares of it."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from nlpcli.commands.exits import reports_user_errors
from nlpcli.commands.parsing import metavar_for
from nlpcli.commands.tables import show_result
from nlpcli.config import RunConfig
from nlpcli.config_args import parse_set_options
from nlpcli.config_fields import base_type, field_type
from nlpcli.config_layers import resolve_config, task_defaults
from nlpcli.errors import UserError
from nlpcli.help_panels import ORDER as PANEL_ORDER
from nlpcli.help_panels import panel_for, panel_title
from nlpcli.tasks import task_class

CONFIG_OPTIONS = ("config_file", "set_values", "print_config")  # the Config files panel's options, not config keys
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
        annotation, info = base | None, typer.Option(None, flag, metavar=metavar_for(base), **common)
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation), *extra]


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
    return panel_for(key, task_specific=key not in shared and key not in CONFIG_OPTIONS)


def task_parameters(name: str, print_only: bool = False) -> list[inspect.Parameter]:
    """The options of task `name`'s command (its config keys, --config, --set and, unless `print_only`,
    --print-config), in panel order."""
    task = task_class(name)
    cls = task.config_class
    defaults = task_defaults(name)
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
    if not print_only:
        params.append(
            inspect.Parameter(
                "print_config", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                default=typer.Option(False, "--print-config", metavar="", rich_help_panel=panel_for("print_config"),
                                     help="Print the resolved configuration as YAML, each value's source in a "
                                          "comment, and stop: no data or model is read, nothing is written."),
            )
        )
    params.sort(key=lambda param: PANEL_ORDER.index(_panel_of(param.name, shared)))  # panels in a fixed order
    return params


@dataclass(frozen=True)
class TaskOptions:
    """What a task's options said on one command line: its --config file, its --set pairs and the options given
    (the config layers above the task defaults)."""

    task: str
    config_file: Path | None
    set_values: dict[str, str]
    values: dict[str, Any]  # config key -> the option's value (None: not given)

    def resolve(self, **overrides: Any) -> RunConfig:
        """The resolved configuration, with `overrides` given as if on the command line."""
        return resolve_config(task_class(self.task).config_class, self.task, self.config_file,
                              {**self.values, **overrides}, self.set_values)


def read_options(name: str, kwargs: dict[str, Any]) -> TaskOptions:
    """The task's options out of a command's keyword arguments (which lose them): --no-FLAG folded in, an
    option the task does not use refused."""
    task = task_class(name)
    config_file = kwargs.pop("config_file")
    set_values = parse_set_options(kwargs.pop("set_values") or [])
    keys = {f.name for f in dataclasses.fields(task.config_class)}
    negations = {key + NEGATION for key in keys}
    values = _with_negations({key: kwargs.pop(key) for key in [*kwargs] if key in keys or key in negations})
    for key in task.unused_options:  # hidden from --help; given anyway, it would be silently ignored
        if values.get(key) is not None:
            raise UserError(f"--{key.replace('_', '-')}: the {name} task does not use this option.",
                            hint=f"See nlpcli {name} --help for the options it reads.")
    return TaskOptions(name, config_file, set_values, values)


def task_command(name: str, print_only: bool = False) -> Callable[..., None]:
    """The command of task `name`, its signature the options `nlpcli NAME --help` lists, in panel order.
    `print_only`: the command of `nlpcli config NAME`, which prints the configuration (as --print-config does)."""
    params = task_parameters(name, print_only)

    @reports_user_errors
    def command(**kwargs: Any) -> None:
        print_config = kwargs.pop("print_config", print_only)
        cfg = read_options(name, kwargs).resolve()
        if print_config:
            from nlpcli.commands.print_config import print_config as print_resolved

            print_resolved(cfg, name)
            return
        show_result(run(name, cfg))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = (f"Print the {name} configuration these options resolve to (as nlpcli {name} ... --print-config "
                       "does)." if print_only else task_class(name).help)
    return command


def run(name: str, cfg: Any, on_evaluation: Any = None) -> dict[str, Any]:
    """Run a task; once its files are saved, draw its curves.png. `on_evaluation`: see `runner.run.run_task`
    (`nlpcli tune` reports each evaluation to its study there)."""
    from nlpcli.reporting.plot import write_curves
    from nlpcli.runner.run import run_task

    return run_task(name, cfg, on_saved=write_curves, on_evaluation=on_evaluation)
