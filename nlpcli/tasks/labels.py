"""What the classification tasks (ner, classify) share about label lists: `--labels` given as names or as a
file of names (one per line), and the check that every label is named once."""

from __future__ import annotations

from pathlib import Path

from nlpcli.errors import UserError

LABEL_FILE_SUFFIXES = (".txt", ".lst", ".list", ".labels", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml")


def looks_like_a_file(value: str) -> bool:
    """Whether a single --labels value names a file rather than one label."""
    return "/" in value or "\\" in value or Path(value).suffix.lower() in LABEL_FILE_SUFFIXES


def given_labels(values: list[str] | None, example: str) -> list[str] | None:
    """The label names `--labels` gives, in id order (a file of one name per line when a single value is an
    existing file); None when it is not given. A missing file, or a name given twice, is refused; `example`
    shows the option given as names (`O,B-PER,I-PER`)."""
    if not values:
        return None
    from_file = len(values) == 1 and Path(values[0]).is_file()
    if len(values) == 1 and not from_file and looks_like_a_file(values[0]):
        raise UserError(f"--labels {values[0]}: no such file (a single value with a path separator or a "
                        "file suffix is read as a file of labels).",
                        hint=f"Give the labels file's path, or the labels themselves: --labels {example}")
    given = ([line.strip() for line in Path(values[0]).read_text(encoding="utf-8-sig").splitlines()
              if line.strip()] if from_file else list(values))
    repeated = sorted({label for label in given if given.count(label) > 1})
    if repeated:
        raise UserError(f"--labels {values[0] if from_file else ','.join(given)}: "
                        f"{', '.join(repeated)} given more than once; each label must be named once.")
    return given
