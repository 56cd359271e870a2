"""The Typer app: one command per task (options generated from the task's config fields), plus
`predict`, `demo`, `config`, `env` and `report` (the commands themselves are in `nlpcli.commands`), in the
order `nlpcli --help` lists them. Nothing heavy is imported at module level, so `--help` answers at once."""

from __future__ import annotations

import typer

from nlpcli.commands.demo import demo
from nlpcli.commands.info import env, report, show_config
from nlpcli.commands.predict import predict
from nlpcli.commands.task import task_command
from nlpcli.config_args import with_bare_values
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
app.command("config")(show_config)
app.command()(env)
app.command()(report)


def main() -> None:
    import sys

    app(args=with_bare_values(sys.argv[1:]))


if __name__ == "__main__":
    main()

