"""Local data files: which reader a file needs (json/jsonl, csv, tsv, txt, conll, by its suffix), reading it
whole or as a stream, and refusing what cannot be read (a folder, an empty file, bytes that are not UTF-8,
broken JSON) with a UserError that names the file, the line and what was expected."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from nlpcli.errors import UserError, first_line

FILE_KINDS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "tsv", ".conll": "conll"}


def _file_kind(path: Path, text_format: str) -> str:
    if path.suffix.lower() == ".txt":
        return text_format
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise UserError(
            f"{path}: unsupported file type '{path.suffix}'.",
            hint="Use .json, .jsonl, .csv, .tsv, .txt or .conll.",
        )
    return kind


def read_conll(path: Path, text_column: str, label_column: str) -> list[dict[str, list[str]]]:
    """`token ... label` per line, blank line between sentences; `-DOCSTART-` lines are skipped."""
    records: list[dict[str, list[str]]] = []
    tokens: list[str] = []
    labels: list[str] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    records.append({text_column: tokens, label_column: labels})
                    tokens, labels = [], []
                continue
            if len(parts) < 2:
                raise UserError(
                    f"{path}, line {number}: expected 'token label' (whitespace-separated), got {line.strip()!r}."
                )
            tokens.append(parts[0])
            labels.append(parts[-1])
    if tokens:
        records.append({text_column: tokens, label_column: labels})
    return records


def parses_as_object(line: str) -> bool:
    """Whether a line of text is one JSON object (a JSON-lines record)."""
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def _diagnose_json(path: Path, json_field: str | None) -> str:
    """Find what is wrong with a JSON / JSON-lines file, for the error message."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as err:
        whole = None
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        one_document = json_field is not None or not parses_as_object(first_line)
        reached_end = err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string")
        if one_document and reached_end:
            return f"the file ends inside a JSON value, at line {err.lineno} (is it truncated?)"
        if one_document:
            return f"not valid JSON at line {err.lineno}, column {err.colno} ({err.msg})"
    if whole is not None:
        if json_field:
            if not isinstance(whole, dict) or json_field not in whole:
                keys = ", ".join(whole) if isinstance(whole, dict) else type(whole).__name__
                return f"no key '{json_field}' at the top level (found: {keys})"
            whole = whole[json_field]
        if isinstance(whole, list):
            for index, item in enumerate(whole):
                if not isinstance(item, dict):
                    return f"record {index} is {type(item).__name__}, expected an object"
        return "records have inconsistent fields or types"
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            return f"line {number}: not valid JSON ({err.msg} at column {err.colno})"
        if not isinstance(item, dict):
            return f"line {number}: expected a JSON object per line, got {type(item).__name__}"
    return "records have inconsistent fields or types"


def _builder(kind: str, json_field: str | None, has_bom: bool) -> tuple[str, dict[str, Any]]:
    """The `datasets` builder and its options for a file kind (not conll, which nlpcli reads itself); a file
    that starts with a byte-order mark is decoded as utf-8-sig (else the readers take the mark for data). A TSV
    cell is read as it is, quotes included: tab-separated files have no quoting (GLUE's MRPC files start cells
    with an unmatched `"`, which CSV quoting would run on into the next lines)."""
    builder, options = {
        "json": ("json", {"field": json_field} if json_field else {}),
        "csv": ("csv", {}),
        "tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
        "text": ("text", {}),
    }[kind]
    return builder, {**options, "encoding": "utf-8-sig"} if has_bom else options


UTF8_BOM = b"\xef\xbb\xbf"


def check_text_file(path: Path) -> bool:
    """A UserError for a folder, an empty file, a file of blank lines or bytes that are not UTF-8 (naming the
    line); True when the file starts with a UTF-8 byte-order mark. Read in blocks, so large files cost no memory."""
    import codecs

    if path.is_dir():
        raise UserError(f"{path} is a folder; give a data file.")
    if not path.is_file():
        raise UserError(f"Data file not found: {path}")
    decoder, line, has_bom, empty, blank = codecs.getincrementaldecoder("utf-8")(), 1, False, True, True
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            content = block
            if empty:
                has_bom, empty = block.startswith(UTF8_BOM), False
                content = block.removeprefix(UTF8_BOM)
            blank = blank and not content.strip()
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                line += block[: err.start].count(b"\n")
                raise UserError(f"{path}, line {line}: not UTF-8 text (byte {block[err.start]:#04x}); "
                                "save the file as UTF-8.") from None
            line += block.count(b"\n")
    if empty:
        raise UserError(f"{path} is empty.")
    if blank:
        raise UserError(f"{path} holds no records: it has only blank lines.")
    return has_bom


def _diagnose_table(path: Path, delimiter: str) -> str | None:
    """What is wrong with a CSV / TSV file the reader refused, to follow its name (', line 3: ...' or ': ...'): a
    header and no rows, or a row whose field count is not the header's; None when neither is."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL  # as `_builder` reads them
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = next(reader, [])
        rows = 0
        for row in reader:
            if not row:
                continue
            rows += 1
            if len(row) != len(header):
                return (f", line {reader.line_num}: {len(row)} fields, but the header has {len(header)} "
                        f"({', '.join(header)})")
    if not rows:
        return f": it has a header line ({', '.join(header)}) and no rows"
    return None


def load_file(path: Path, text_format: str, json_field: str | None, text_column: str, label_column: str) -> Any:
    import datasets

    has_bom = check_text_file(path)
    kind = _file_kind(path, text_format)
    if kind == "conll":
        return datasets.Dataset.from_list(read_conll(path, text_column, label_column))
    builder, options = _builder(kind, json_field, has_bom)
    previous = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # we report parse errors ourselves
    try:
        loaded = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as err:  # datasets wraps parser errors in several exception types
        table = _diagnose_table(path, "\t" if kind == "tsv" else ",") if kind in ("csv", "tsv") else None
        if table is not None:
            raise UserError(f"{path}{table}.") from None
        detail = _diagnose_json(path, json_field) if kind == "json" else first_line(err)
        raise UserError(f"{path}: cannot read as {kind}: {detail}.") from None
    finally:
        datasets.logging.set_verbosity(previous)
    if kind == "text":
        loaded = loaded.rename_column("text", text_column) if text_column != "text" else loaded
    return loaded


def stream_file(path: Path, text_format: str, json_field: str | None, text_column: str) -> Any:
    import datasets

    if not path.is_file():
        raise UserError(f"Data file not found: {path}")
    kind = _file_kind(path, text_format)
    if kind == "conll":
        raise UserError(f"{path}: CoNLL files are read whole; drop --streaming.")
    with path.open("rb") as handle:
        has_bom = handle.read(len(UTF8_BOM)) == UTF8_BOM
    builder, options = _builder(kind, json_field, has_bom)
    loaded = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **options)
    return loaded.rename_column("text", text_column) if kind == "text" and text_column != "text" else loaded
