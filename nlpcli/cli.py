"""The Typer app: one command per task (options generated from the task's config fields), plus
`predict`, `demo`, `env`, `report` and `config` (one subcommand per task, with the task's options), in the
order `nlpcli --help` lists them; the commands themselves are in `nlpcli.commands`. Nothing heavy is imported
at module level, so `--help` answers at once."""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from nlpcli.commands.demo import demo
from nlpcli.commands.info import env, report
from nlpcli.commands.predict import predict
from nlpcli.commands.task import task_command
from nlpcli.config_args import with_resume_values
from nlpcli.tasks import TASK_MODULES, task_class

app = typer.Typer(
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
    app.command(_task_name, help=task_class(_task_name).help)(task_command(_task_name))
app.command()(predict)
app.command()(demo)
app.command()(env)
app.command()(report)


class TaskConfigs(TyperGroup):
    """`nlpcli config TASK`: one subcommand per task, with that task's options (`task_command(print_only=True)`),
    built when asked for, so other commands do not pay for building six more option lists."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(TASK_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in TASK_MODULES:
            return None
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(cmd_name)(task_command(cmd_name, print_only=True))
        return typer.main.get_command(single)


config_app = typer.Typer(
    cls=TaskConfigs,
    help="Print a task's resolved configuration as YAML, each value's source in a comment: nlpcli config TASK "
         "(with the task's options). Edit it and pass it back with nlpcli TASK --config FILE.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


def main() -> None:
    import sys

    app(args=with_resume_values(sys.argv[1:]))


if __name__ == "__main__":
    main()

