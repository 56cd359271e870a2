"""Batch input and output of `nlpcli predict`: texts from a file or stdin, JSON lines out.

Input: a `.jsonl` / `.json` file holds one JSON object per line (the text in `--text-column`); any other
file, or `-` (stdin), one text per line. A blank line in the middle, a line that is not JSON, or an object
without the column stops with exit 2, naming the line: outputs must line up with inputs one for one.
Output: one JSON object per input, in input order, to stdout or to a file written atomically.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic
from nlpcli.sources.data import check_text_file


def _lines(source: str) -> tuple[str, list[str]]:
    if source == "-":
        return "stdin", sys.stdin.read().splitlines()
    path = Path(source)
    check_text_file(path)  # a folder, a missing or empty file, bytes that are not UTF-8: named, exit 2
    return source, path.read_text(encoding="utf-8-sig").splitlines()


def read_inputs(source: str, text_column: str = "text") -> list[str]:
    """The texts of `source` (a path or '-'), one per line; trailing blank lines are ignored."""
    name, lines = _lines(source)
    while lines and not lines[-1].strip():
        lines.pop()
    as_json = source.lower().endswith((".jsonl", ".json"))
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise UserError(f"{name}, line {number}: blank; every line must hold one input.")
        if not as_json:
            texts.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{name}, line {number}: not valid JSON ({err.msg}).") from None
        value = record.get(text_column) if isinstance(record, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{name}, line {number}: no text in '{text_column}'.",
                            hint="Name the column that holds the input with --text-column.")
        texts.append(value)
    if not texts:
        raise UserError(f"{name}: no inputs.")
    return texts


def write_json_lines(rows: Iterable[dict[str, Any]], output: Path | None) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text_atomic(output, text)
