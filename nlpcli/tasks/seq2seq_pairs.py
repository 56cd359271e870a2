"""Cleaning the sequence-to-sequence pairs of a split as datasets operations (translate, summarize).

`PairColumns` says where a split's two sides are (two flat columns, or keys of a column of {language: text}
dicts). `clean_pairs` turns a split into `source` and `target` columns with a batched `map` that marks every
record (its problem, whether its target is too short), then `filter`s: the results live in datasets' cache
files, fingerprinted, so memory does not grow with the data, --preprocessing-workers shares the work, and a
second run of the same data and settings reuses them. A record with an empty, missing or non-text side stops
the run naming its file and line (`record_location`), or is dropped and counted with --skip-bad-records;
--min-target-words drops (and counts) pairs whose target is too short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.sources.data import map_workers, record_location

SOURCE, TARGET = "source", "target"
PROBLEM, SHORT, ROW = "problem", "short", "row"  # the marks `clean_pairs` puts on every record, then drops


@dataclass(frozen=True)
class PairColumns:
    """Where the two sides of a record are: a column's value, or one key of a column of {key: text} dicts."""

    source: str
    target: str
    source_key: str | None = None
    target_key: str | None = None

    def values(self, batch: dict[str, list]) -> tuple[list[Any], list[Any]]:
        """The raw source and target values of a batch of records (None where a side is missing)."""
        return side_values(batch[self.source], self.source_key), side_values(batch[self.target], self.target_key)


def side_values(values: list[Any], key: str | None) -> list[Any]:
    return list(values) if key is None else [v.get(key) if isinstance(v, dict) else None for v in values]


def side_problem(value: Any) -> str | None:
    if value is None:
        return "missing"
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if not value.strip():
        return "empty"
    return None


def mark_pairs(batch: dict[str, list], indices: list[int], columns: PairColumns, sides: tuple[str, str],
               min_words: int) -> dict[str, list]:
    """Per record: its text (None for a bad record), its problem ("empty target (ro) text", or None), whether
    its target has fewer than `min_words` words, and its position in the split."""
    marked: dict[str, list] = {SOURCE: [], TARGET: [], PROBLEM: [], SHORT: [], ROW: list(indices)}
    for source, target in zip(*columns.values(batch), strict=True):
        problem = next((f"{problem} {side} text" for side, value in zip(sides, (source, target), strict=True)
                        if (problem := side_problem(value))), None)
        good = problem is None
        marked[SOURCE].append(source if good else None)
        marked[TARGET].append(target if good else None)
        marked[PROBLEM].append(problem)
        marked[SHORT].append(good and min_words > 0 and len(target.split()) < min_words)
    return marked


def is_bad(problems: list[str | None]) -> list[bool]:
    return [problem is not None for problem in problems]


def is_usable(problems: list[str | None], short: list[bool]) -> list[bool]:
    return [problem is None and not too_short for problem, too_short in zip(problems, short, strict=True)]


def marks() -> Any:
    import datasets

    text = datasets.Value("string")
    return datasets.Features({SOURCE: text, TARGET: text, PROBLEM: text, SHORT: datasets.Value("bool"),
                              ROW: datasets.Value("int64")})


def clean_pairs(data: Any, columns: PairColumns, sides: tuple[str, str], cfg: Any, split: str
                ) -> tuple[Any, dict[str, int]]:
    """(the split's usable pairs as `source` and `target` columns, run.json's counts: records read, skipped as
    bad, dropped as too short, kept). Warns of what was dropped; refuses a bad record (without
    --skip-bad-records) and a split with nothing left."""
    workers = map_workers(cfg, data)
    marked = data.map(mark_pairs, batched=True, with_indices=True, remove_columns=data.column_names,
                      features=marks(), desc=f"Checking {split}", **workers,
                      fn_kwargs={"columns": columns, "sides": sides, "min_words": cfg.min_target_words})
    bad = marked.filter(is_bad, batched=True, input_columns=PROBLEM, desc=f"Finding bad records of {split}",
                        **workers)
    if len(bad):
        first = bad[0]
        # record_location reads the file: only for the record that is named (the first bad one)
        where = f"{record_location(cfg, split, first[ROW])}: {first[PROBLEM]}"
        if not cfg.skip_bad_records:
            raise UserError(f"{where}.", hint="Fix the record, or skip such records: --skip-bad-records.")
        warn(f"skipped {len(bad)} bad record(s) of {len(data)} in split {split} (first: {where}).")
    kept = marked
    if len(bad) or cfg.min_target_words:
        kept = marked.filter(is_usable, batched=True, input_columns=[PROBLEM, SHORT], desc=f"Keeping {split}",
                             **workers)
    short = len(marked) - len(bad) - len(kept)
    if short:
        warn(f"dropped {short} of {len(data)} {split} pairs whose {sides[1]} has fewer than "
             f"{cfg.min_target_words} words.")
    report = {"records": len(data), "bad_records_skipped": len(bad), "short_targets_dropped": short,
              "kept": len(kept)}
    if not len(kept):
        raise UserError(f"split {split}: no usable {sides[0]}/{sides[1]} pairs left.")
    return kept.select_columns([SOURCE, TARGET]), report
