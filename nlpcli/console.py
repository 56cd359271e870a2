"""Console output that only the main process prints (torchrun / accelerate launch start several)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def say(*objects: Any, **kwargs: Any) -> None:
    if is_main_process():
        kwargs.setdefault("soft_wrap", not console.is_terminal)  # a log file gets whole lines, not 80 columns
        console.print(*objects, **kwargs)


_collectors: list[list[str]] = []  # what `collected_warnings` gathers


def warn(message: str) -> None:
    for collected in _collectors:
        collected.append(message)
    if is_main_process():
        err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)  # one line in a log


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """A list that receives every `warn` message while the block runs (they are still printed)."""
    collected: list[str] = []
    _collectors.append(collected)
    try:
        yield collected
    finally:
        _collectors.remove(collected)
