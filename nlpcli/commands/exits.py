"""How a command ends when it cannot go on: a UserError as one red message and its exit code (2), Ctrl-C as
exit code 130."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

import typer
from rich.markup import escape

from nlpcli.console import err_console, is_main_process
from nlpcli.errors import Interrupted, UserError


def exit_with(err: UserError) -> NoReturn:
    """End the command with the error's message (and hint), in red, and its exit code (2)."""
    if is_main_process():
        err_console.print(f"[bold red]error:[/bold red] {escape(err.message)}", soft_wrap=True)
        if err.hint:
            err_console.print(escape(err.hint), soft_wrap=True)
    raise typer.Exit(err.exit_code) from None


def reports_user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one red message and exit code 2; a run stopped by SIGTERM/SIGINT into its line and
    exit code 143/130; Ctrl-C elsewhere into exit code 130."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as err:
            exit_with(err)
        except Interrupted as stopped:  # SIGTERM, SIGINT during a run: see runner/interrupt.py
            if is_main_process():
                err_console.print(f"[yellow]{escape(stopped.message)}[/yellow]", soft_wrap=True)
            raise typer.Exit(stopped.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: the checkpoints saved so far are kept; use --resume.")
            raise typer.Exit(130) from None

    return wrapper
