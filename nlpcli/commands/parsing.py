"""How every nlpcli command reads its command line and shows it in `--help`, the same for all of them:

- one metavar style: N (integers), X (numbers), TEXT, FILE/DIR/PATH, KEY=VALUE, arguments by their upper-case
  name; a flag shows none (never Python's `<bool>`, `<list[str]>`);
- a flag is a flag: `--json true` is refused, not read as the text "true" to predict (nor as an extra argument);
- an unknown option is answered in one line: the transformers example scripts' spelling with the nlpcli option
  to use (or what to do where nlpcli has none; `script_flags`), else the closest options by name
  (`suggestions`), exit code 2.

`Command` is the class of every command, `TaskCommand` of the task commands (they answer the scripts' training
flags), `Group` of the top-level `nlpcli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from nlpcli.commands.exits import exit_with
from nlpcli.commands.script_flags import script_flag_answer
from nlpcli.config_values import YES_NO
from nlpcli.errors import UserError
from nlpcli.suggestions import did_you_mean

METAVARS = {int: "N", float: "X", str: "TEXT", Path: "PATH"}  # what a value of each type is called in help
CLICK_TYPES = {"integer": int, "float": float, "text": str, "path": Path}  # click's names of those types


def metavar_for(annotation: Any) -> str:
    """The metavar of an option of this type: N, X, TEXT, PATH (a list: its items')."""
    items = getattr(annotation, "__args__", None)
    if getattr(annotation, "__origin__", None) is list and items:
        annotation = items[0]
    return METAVARS.get(annotation, "TEXT")


def _annotation(param: Any) -> Any:
    """The Python type of a parameter's value (typer's record of it, else the type click converts to)."""
    described = getattr(param, "type_descriptor", None)  # typer 0.2x; before, typer handed click a click type
    if described is not None:
        return described.annotation
    return CLICK_TYPES.get(getattr(param.type, "name", ""), str)


def _name_plainly(param: Any) -> None:
    """Give a parameter the house metavar when its declaration gave none; an argument shows no type."""
    if isinstance(param, TyperOption) and param.metavar is None:
        param.metavar = "" if param.is_flag else metavar_for(_annotation(param))
    elif isinstance(param, TyperArgument):
        if param.metavar is None:
            param.metavar = param.name.upper()
        param.display_type_rich = lambda ctx: None  # typer would add the Python type (`<str>`) beside the name


def listed_options(command: Any, ctx: Any) -> list[str]:
    """The option spellings `command --help` lists."""
    return [spelling for param in command.get_params(ctx) if isinstance(param, TyperOption) and not param.hidden
            for spelling in (*param.opts, *param.secondary_opts)]


def unknown_option_name(error: Exception) -> str | None:
    """The option a parser error says the command does not have: click's NoSuchOption (which typer vendors under a
    private module in its recent versions: recognised by its documented name and `option_name`)."""
    return getattr(error, "option_name", None) if type(error).__name__ == "NoSuchOption" else None


def refuse_flag_values(command: Any, ctx: Any, args: list[str]) -> None:
    """A boolean flag followed by true/false (yes, no, on, off, 1, 0) is refused: a flag takes no value, and the
    word would otherwise be read as an argument (`predict ... --json true` would predict the text "true")."""
    booleans = {spelling for param in command.get_params(ctx) if isinstance(param, TyperOption) and param.is_flag
                for spelling in (*param.opts, *param.secondary_opts)}
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "--":
            return
        if flag in booleans and value.lower() in YES_NO:
            off = f"--no-{flag[2:]}" if f"--no-{flag[2:]}" in booleans else "leaving it out"
            raise UserError(f"{flag} is a flag and takes no value, not '{value}': {flag} alone turns it on, {off} "
                            "turns it off.")


def unknown_option(typed: str, command: Any, ctx: Any, trains: bool) -> str:
    """The one line that answers an option the command does not have."""
    known = listed_options(command, ctx)
    answer = script_flag_answer(typed, set(known), trains) if typed.startswith("--") else None
    if answer is not None:
        return answer
    hint = did_you_mean(typed, known, otherwise=f"See {ctx.command_path} --help.")
    return f"No such option: {typed}. {hint}"


class _HouseStyle:
    """What every nlpcli command (and the top-level group) adds to typer's: the house metavars, flags that take
    no value, one-line answers to unknown options."""

    trains = False  # a task command: the example scripts' training flags are answered

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _name_plainly(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            refuse_flag_values(self, ctx, args)
            try:
                return super().parse_args(ctx, args)
            except Exception as err:
                typed = unknown_option_name(err)
                if typed is None:
                    raise
                raise UserError(unknown_option(typed, self, ctx, self.trains)) from None
        except UserError as err:
            exit_with(err)


class Command(_HouseStyle, TyperCommand):
    """A command: `predict`, `demo`, `config`, `env`, `report`."""


class TaskCommand(_HouseStyle, TyperCommand):
    """A task's command (`nlpcli ner`, ...)."""

    trains = True


class Group(_HouseStyle, TyperGroup):
    """The top-level `nlpcli` (its own options: `--version`, `--help`)."""
