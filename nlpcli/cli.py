"""The Typer app: one command per task (options generated from the task's config fields), plus
`predict`, `demo`, `env`, `report`, `config`, `tune` and `inspect` (one subcommand per task each, with the task's
options), in the order `nlpcli --help` lists them; the commands themselves are in `nlpcli.commands`, and how each
reads its command line in `nlpcli.commands.parsing`. Nothing heavy is imported at module level, so `--help`
answers at once."""

from __future__ import annotations

from collections.abc import Callable

import click
import typer

from nlpcli.commands.demo import demo
from nlpcli.commands.info import env, report
from nlpcli.commands.inspect import GROUP_HELP as INSPECT_HELP
from nlpcli.commands.inspect import inspect_command, inspect_command_help
from nlpcli.commands.parsing import Command, Group, TaskCommand
from nlpcli.commands.predict import predict
from nlpcli.commands.task import task_command
from nlpcli.commands.tune import TUNE_HELP, tune_command
from nlpcli.config_args import with_bare_values
from nlpcli.tasks import TASK_MODULES, task_class

app = typer.Typer(
    cls=Group,
    help="Train and fine-tune transformers for the classic NLP tasks. Run `nlpcli demo` for a tour.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


for _task_name in TASK_MODULES:
    app.command(_task_name, cls=TaskCommand, help=task_class(_task_name).help)(task_command(_task_name))
app.command(cls=Command)(predict)
app.command(cls=Command)(demo)
app.command(cls=Command)(env)
app.command(cls=Command)(report)


def task_group(make: Callable[[str], Callable[..., None]], command_class: type[click.Command] = Command,
               command_help: Callable[[str], dict[str, str]] = lambda name: {}) -> type[Group]:
    """A group with one subcommand per task (`make(task)`, of `command_class`, with `command_help(task)`), each
    built when asked for, so other commands do not pay for building six more option lists."""

    class TaskGroup(Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return list(TASK_MODULES)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name not in TASK_MODULES:
                return None
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(cmd_name, cls=command_class, **command_help(cmd_name))(make(cmd_name))
            return typer.main.get_command(single)

    return TaskGroup


config_app = typer.Typer(
    cls=task_group(lambda name: task_command(name, print_only=True)),  # nlpcli config TASK
    help="Print a task's resolved configuration as YAML, each value's source in a comment: nlpcli config TASK "
         "(with the task's options). Edit it and pass it back with nlpcli TASK --config FILE.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
tune_app = typer.Typer(cls=task_group(tune_command), help=TUNE_HELP, no_args_is_help=True)  # nlpcli tune TASK
app.add_typer(tune_app, name="tune")
# nlpcli inspect TASK: the task's options, read as the task's command reads them (the scripts' flags answered alike)
inspect_app = typer.Typer(cls=task_group(inspect_command, TaskCommand, inspect_command_help), help=INSPECT_HELP,
                          no_args_is_help=True)
app.add_typer(inspect_app, name="inspect")


def main() -> None:
    import gc
    import sys

    try:
        app(args=with_bare_values(sys.argv[1:]))
    finally:
        # The command is over and the process ends: its objects need no collecting. Python's finalisation
        # would otherwise run a full garbage collection over every object torch and transformers made (1.3-1.5 s
        # on the 2-core CPU this was written on); frozen, they are left to the OS. Exit handlers (the trackers'
        # and datasets' flushes, temporary folders) still run.
        gc.freeze()


if __name__ == "__main__":
    main()

