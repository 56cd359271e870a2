"""Batch input and output of `nlpcli predict`, the same for every task: inputs from a file or stdin, a
progress bar over batches, JSON lines out.

Input: a `.jsonl` / `.json` file holds one JSON object per line (the text in `--text-column`, or the task's
fields, e.g. qa's `question` and `context`); any other file one text per line. `-` (stdin) is read as JSON
lines when the task's input has several fields or the first line is a JSON object, else as text lines. A blank line
in the middle, a line that is not JSON, or an object without a field stops with exit 2, naming the line
(outputs must line up with inputs one for one); with `--skip-bad-records` the line is skipped and counted.
Output: one JSON object per input, in input order, to stdout or to a file written atomically.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nlpcli.console import err_console
from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic
from nlpcli.sources.data_files import check_text_file, parses_as_object

Item = TypeVar("Item")


@dataclass
class Inputs:
    """The inputs read from a file: one dict of fields per input, where each came from, what was skipped."""

    records: list[dict[str, str]] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _lines(source: str) -> tuple[str, list[str]]:
    if source == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise UserError("--file -: stdin is closed; pipe the inputs in (... | nlpcli predict ... --file -).")
        return "stdin", sys.stdin.read().splitlines()
    path = Path(source)
    check_text_file(path)  # a folder, a missing or empty file, bytes that are not UTF-8: named, exit 2
    return source, path.read_text(encoding="utf-8-sig").splitlines()


def _record(line: str, as_json: bool, fields: dict[str, str]) -> dict[str, str]:
    """The fields (name -> JSON key) of one line, or a ValueError saying what is wrong with it."""
    if not line.strip():
        raise ValueError("blank; every line must hold one input")
    if not as_json:
        if len(fields) > 1:
            raise ValueError(f"not JSON; each line needs {', '.join(repr(k) for k in fields.values())} "
                             "(use a .jsonl file)")
        return {name: line for name in fields}
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg})") from None
    record = {}
    for name, key in fields.items():
        value = parsed.get(key) if isinstance(parsed, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"no text in '{key}'")
        record[name] = value
    return record


def _json_stream(lines: list[str], fields: dict[str, str]) -> bool:
    """Stdin holds JSON lines when the input has several fields, or when its first line is a JSON object."""
    if len(fields) > 1:
        return True
    return parses_as_object(next((line for line in lines if line.strip()), ""))


def read_inputs(source: str, fields: dict[str, str], skip_bad: bool = False) -> Inputs:
    """The inputs of `source` (a path or '-'), one per line; trailing blank lines are ignored.

    `fields`: input field -> JSON key (`{"text": "text"}`; qa: question and context). A bad line stops
    with exit 2 naming it, or with `skip_bad` is left out and named in `Inputs.skipped`."""
    name, lines = _lines(source)
    while lines and not lines[-1].strip():
        lines.pop()
    as_json = source.lower().endswith((".jsonl", ".json")) or (source == "-" and _json_stream(lines, fields))
    inputs = Inputs()
    for number, line in enumerate(lines, start=1):
        where = f"{name}, line {number}"
        try:
            inputs.records.append(_record(line, as_json, fields))
            inputs.where.append(where)
        except ValueError as err:
            if not skip_bad:
                hint = ("Name the key that holds the input with --text-column."
                        if "no text in" in str(err) and len(fields) == 1
                        else "Pass --skip-bad-records to skip such lines (they are counted).")
                raise UserError(f"{where}: {err}.", hint=hint) from None
            inputs.skipped.append(where)
    if not inputs.records:
        raise UserError(f"{name}: no inputs" + (f" ({len(inputs.skipped)} bad line(s) skipped)." if inputs.skipped
                                                else "."))
    return inputs


@contextmanager
def progress_bar(total: int, label: str, shown: bool = True, console: Any = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (gone when done), on a terminal only; yields `advance(n)`. `shown=False`:
    no bar."""
    console = console or err_console
    if not shown or not console.is_terminal:  # piped or logged: the output lines are the progress
        yield lambda done: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(label, total=total)
        yield lambda done: progress.advance(bar, done)


def in_batches(items: Sequence[Item], batch_size: int, label: str = "predicting",
               console: Any = None) -> Iterator[list[Item]]:
    """`items` in batches of `batch_size`, with a progress bar on stderr when there is more than one."""
    size = max(1, batch_size)
    with progress_bar(len(items), label, shown=len(items) > size, console=console) as advance:
        for start in range(0, len(items), size):
            batch = list(items[start:start + size])
            yield batch
            advance(len(batch))


def write_json_lines(rows: Iterable[dict[str, Any]], output: Path | None) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text_atomic(output, text)
