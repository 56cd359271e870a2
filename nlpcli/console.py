"""Console output that only the main process prints (torchrun / accelerate launch start several); tables as
rich boxes on a terminal and as plain aligned text elsewhere (a log file, a pipe: no box characters, no
escapes, no wrapping)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


def plain_table(table: Table, title: bool = True) -> str:
    """A rich table as aligned text: its title (with `title`), a header line (when it shows one), then one line
    per row, columns two spaces apart, never wrapped; a line break inside a cell is written as \\n."""
    columns = [[str(column.header), *map(str, column.cells)] for column in table.columns]
    if not table.show_header:
        columns = [column[1:] for column in columns]
    lines = [[cell.replace("\n", "\\n") for cell in row] for row in zip(*columns, strict=True)]
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(columns))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(([str(table.title)] if title and table.title else []) + text)


def show_table(table: Table) -> None:
    """Print a table on the main process: boxed on a terminal, `plain_table` text elsewhere."""
    if not is_main_process():
        return
    if console.is_terminal:
        console.print(table)
    else:
        console.print(plain_table(table), markup=False, highlight=False, emoji=False, soft_wrap=True)
