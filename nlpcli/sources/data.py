"""Data sources: hub data set | local json/jsonl/csv/tsv/txt/conll files | bundled sample -> DatasetDict.

The result always has a `train` and a `validation` split. Several hub configurations (`--dataset-config
en,es`) are concatenated split by split and shuffled with the run's seed; `--filter COLUMN=V1,V2` keeps
the rows whose column holds one of the values, and counts what each filter kept. Bad input ends in a
`UserError` that names the file, the line and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpcli.errors import UserError, first_line
from nlpcli.sources import hub
from nlpcli.sources.data_files import load_file as _load_file
from nlpcli.sources.data_files import parses_as_object
from nlpcli.sources.data_files import stream_file as _stream_file

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
READ_BATCH = 1000  # records `rows_of` reads at a time


@dataclass(frozen=True)
class Sample:
    """A bundled data sample for one task: files per split (in nlpcli/samples), JSON field, renames."""

    files: dict[str, str]
    json_field: str | None = None
    rename: dict[str, str] = field(default_factory=dict)
    text_format: str = "text"
    description: str = ""


def _load_hub(name: str, config_name: str | None, **options: Any):
    import datasets

    reachable = hub.prepare_hub_access()
    label = f"{name}' (configuration '{config_name}')" if config_name else f"{name}'"
    try:
        return datasets.load_dataset(name, config_name, **options)
    except (OSError, ConnectionError, ValueError, RuntimeError) as err:
        if not reachable:
            example = "--dataset sample, or --train-file train.jsonl --validation-file dev.jsonl"
            raise UserError(hub.unreachable_hint("data set", name, example)) from None
        hint = "Look for a parquet copy of it on the Hub." if "scripts are no longer supported" in str(err) else None
        raise UserError(f"Cannot load data set '{label}: {first_line(err)}", hint=hint) from None


def validation_split(loaded: Any, name: str) -> Any:
    """The split of a separate validation data set to use: 'validation', else its only split."""
    if "validation" in loaded:
        return loaded["validation"]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise UserError(f"--validation-dataset {name}: no 'validation' split (splits: {', '.join(loaded)}).")


def concatenate_configs(parts: dict[str, Any], seed: int) -> Any:
    """Several configurations of one data set -> one DatasetDict: each split is the concatenation of that
    split of every configuration (in the order given), shuffled with `seed`. A split missing from some
    configuration, or columns that differ, stop the run."""
    import datasets

    names = list(parts)
    first = parts[names[0]]
    for name in names[1:]:
        if set(parts[name]) != set(first):
            raise UserError(
                f"Configurations '{names[0]}' and '{name}' have different splits "
                f"({', '.join(first)} vs {', '.join(parts[name])}); cannot concatenate them."
            )
        for split in first:
            mine, theirs = first[split].features, parts[name][split].features
            if list(mine) != list(theirs):
                raise UserError(
                    f"Configurations '{names[0]}' and '{name}' have different columns in '{split}' "
                    f"({', '.join(mine)} vs {', '.join(theirs)})."
                )
            differing = [column for column in mine if mine[column] != theirs[column]]
            if differing:
                raise UserError(
                    f"Configurations '{names[0]}' and '{name}' have different types in '{split}', column "
                    f"'{differing[0]}' ({mine[differing[0]]} vs {theirs[differing[0]]}); cannot concatenate them."
                )
    return datasets.DatasetDict(
        {
            split: datasets.concatenate_datasets([parts[name][split] for name in names]).shuffle(
                seed=seed, keep_in_memory=True
            )
            for split in first
        }
    )


def load_raw(cfg: Any, sample: Sample | None, text_column: str, label_column: str) -> Any:
    """Load the configured source into a DatasetDict of its splits (`ensure_splits` makes them train and
    validation, once the task has checked the records)."""
    import datasets

    if cfg.dataset == "sample":
        if sample is None:
            raise UserError("This task has no bundled sample; give --dataset or --train-file.")
        splits = {
            split: _load_file(SAMPLES_DIR / name, sample.text_format, sample.json_field, text_column, label_column)
            for split, name in sample.files.items()
        }
        raw = datasets.DatasetDict(splits)
        renames = {old: new for old, new in sample.rename.items() if old != new}
        raw = raw.rename_columns(renames) if renames else raw
    elif cfg.train_file or cfg.validation_file:
        files = {"train": cfg.train_file, "validation": cfg.validation_file}
        raw = datasets.DatasetDict(
            {
                split: _load_file(Path(name), sample.text_format if sample else "text", cfg.field,
                                  text_column, label_column)
                for split, name in files.items()
                if name
            }
        )
    elif cfg.dataset:
        configs = cfg.dataset_config or [None]
        options = {"revision": cfg.dataset_revision, "data_dir": cfg.data_dir}
        if len(configs) == 1:
            raw = _load_hub(cfg.dataset, configs[0], **options)
        else:
            raw = concatenate_configs({name: _load_hub(cfg.dataset, name, **options) for name in configs}, cfg.seed)
        if cfg.validation_dataset:
            raw["validation"] = validation_split(_load_hub(cfg.validation_dataset, None), cfg.validation_dataset)
    else:
        raise UserError("No data: give --dataset NAME, --dataset sample, or --train-file/--validation-file.")
    return raw


def load_split_file(cfg: Any, sample: Sample | None, split: str, text_column: str, label_column: str) -> Any:
    """One split read from its own local file (e.g. --test-file), in the task's text format."""
    return _load_file(Path(split_file(cfg, split)), sample.text_format if sample else "text", cfg.field,
                      text_column, label_column)


def ensure_splits(raw: Any, cfg: Any, seed: int) -> Any:
    """Exactly `train` and `validation`: `test` stands in for a missing validation split, else 10% of train
    is held out; other splits (imdb's `unsupervised`, a `test` beside `validation`) are left out."""
    import datasets

    if "validation" not in raw:
        if "test" in raw:
            raw["validation"] = raw["test"]
        elif "train" in raw:  # also for --eval-only: the same seed holds out the same 10% as training did
            if len(raw["train"]) < 2:
                raise UserError(
                    f"{describe(cfg, 'train')}: {len(raw['train'])} record(s), too few to hold out a validation split.",
                    hint="Give --validation-file, or more training data.",
                )
            parts = raw["train"].train_test_split(test_size=0.1, seed=seed)
            raw = datasets.DatasetDict({"train": parts["train"], "validation": parts["test"]})
    if "train" not in raw and not cfg.eval_only:
        raise UserError("No training data: give --train-file (or a data set with a 'train' split).")
    if "validation" not in raw:
        raise UserError("No evaluation data: give --validation-file.")
    return datasets.DatasetDict({split: raw[split] for split in ("train", "validation") if split in raw})


def describe(cfg: Any, split: str) -> str:
    """Where a split came from, for error messages."""
    if cfg.dataset == "sample" and split != "test":
        return f"the bundled sample ({split})"
    name = split_file(cfg, split)
    if name:
        return name
    if split == "validation" and cfg.train_file:
        return f"{cfg.train_file} (the held-out validation part)"
    return f"data set {cfg.dataset} ({split})"


def own_file(cfg: Any, split: str) -> Path | None:
    """The local file a split was read from, record for record (not a bundled sample or a hub data set)."""
    if cfg.dataset == "sample" and split != "test":
        return None
    name = split_file(cfg, split)
    return Path(name) if name else None


def split_file(cfg: Any, split: str) -> str | None:
    """The local file a split is read from (--train-file, --validation-file, --test-file), if any."""
    return {"train": cfg.train_file, "validation": cfg.validation_file}.get(split, getattr(cfg, "test_file", None))


def _is_json_lines(path: Path) -> bool:
    """True when the file's first non-blank line is a whole JSON object (one record per line)."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        return parses_as_object(next((line for line in handle if line.strip()), ""))


def _nth_record_line(path: Path, index: int) -> int | None:
    """Line number of the `index`-th non-blank line (JSON lines files skip blank lines)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        seen = -1
        for number, line in enumerate(handle, start=1):
            if line.strip():
                seen += 1
                if seen == index:
                    return number
    return None


def record_location(cfg: Any, split: str, index: int) -> str:
    """Where record `index` (0-based, in file order) of a split came from: file and line for JSON lines, CSV,
    TSV and text files, else the record number."""
    path = own_file(cfg, split)
    suffix = path.suffix.lower() if path is not None else ""
    line = None
    if suffix in (".json", ".jsonl") and not cfg.field and _is_json_lines(path):
        line = _nth_record_line(path, index)
    elif suffix in (".csv", ".tsv"):
        line = index + 2  # after the header line
    elif suffix == ".txt":
        line = index + 1
    if line is not None:
        return f"{path}, line {line}"
    return f"{describe(cfg, split)}, record {index}"


def rows_of(data: Any, *columns: str) -> Iterator[tuple[Any, ...]]:
    """The values of `columns`, record by record in data order, read READ_BATCH records at a time: several times
    faster than iterating `data[column]` (a record at a time), and memory that does not grow with the data
    (`list(data[column])` holds a whole column)."""
    for batch in data.select_columns(list(dict.fromkeys(columns))).iter(batch_size=READ_BATCH):
        yield from zip(*(batch[column] for column in columns), strict=True)


def values_of(data: Any, column: str) -> Iterator[Any]:
    """One column's values, read as `rows_of` reads them."""
    for (value,) in rows_of(data, column):
        yield value


def check_columns(raw: Any, columns: list[str], cfg: Any) -> None:
    for split, data in raw.items():
        first = first_record(data, cfg, split) if is_streamed(data) else None
        if (first is None) if is_streamed(data) else len(data) == 0:
            raise UserError(f"{describe(cfg, split)}: no records.")
        names = data.column_names or list(first)
        missing = [c for c in columns if c not in names]
        if missing:
            raise UserError(
                f"{describe(cfg, split)}: no column '{missing[0]}'. Columns: {', '.join(names)}.",
                hint="Name the right one with --text-column / --label-column.",
            )


def parse_filter(text: str) -> tuple[str, list[str]]:
    """`COLUMN=V1,V2` -> (column, [V1, V2]); values are separated by commas."""
    column, sep, values = text.partition("=")
    kept = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not column.strip() or not kept:
        raise UserError(f"--filter expects COLUMN=VALUE1,VALUE2,..., got {text!r}.")
    return column.strip(), kept


def _short(value: Any, width: int = 40) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _row_matches(wanted: set[str]) -> Any:
    return lambda values: [str(v) in wanted for v in values]


def apply_filters(raw: Any, filters: list[str] | None, cfg: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Keep the rows whose column holds one of the filter's values (compared as text), one filter after
    the other. Returns the filtered splits and, per filter, the rows seen and kept in each split."""
    counts: list[dict[str, Any]] = []
    for text in filters or []:
        column, values = parse_filter(text)
        wanted = set(values)
        entry: dict[str, Any] = {"filter": f"{column}={','.join(values)}"}
        for split, data in raw.items():
            if column not in data.column_names:
                raise UserError(
                    f"--filter {text}: {describe(cfg, split)} has no column '{column}'. "
                    f"Columns: {', '.join(data.column_names)}."
                )
            raw[split] = data.filter(_row_matches(wanted), input_columns=column, batched=True, keep_in_memory=True)
            entry[split] = {"seen": len(data), "kept": len(raw[split])}
            if len(data) and not len(raw[split]):
                present = sorted({_short(v) for v in data.select(range(min(len(data), 1000)))[column]})
                raise UserError(
                    f"--filter {text}: no row of {describe(cfg, split)} has one of these values in '{column}'.",
                    hint=f"Values seen there: {', '.join(present[:20])}{' ...' if len(present) > 20 else ''}",
                )
        counts.append(entry)
    return raw, counts


def subsample(raw: Any, max_train: int | None, max_eval: int | None) -> Any:
    for split, limit in (("train", max_train), ("validation", max_eval)):
        if limit is not None and split in raw and is_streamed(raw[split]):
            raw[split] = raw[split].take(limit)
        elif limit is not None and split in raw and len(raw[split]) > limit:
            raw[split] = raw[split].select(range(limit))
    return raw


# ---------------------------------------------------------------- --streaming


def map_workers(cfg: Any, split: Any) -> dict[str, int]:
    """`num_proc` for a `Dataset.map`/`filter` of a whole split under --preprocessing-workers (a stream is
    prepared as it is read, by one process)."""
    workers = getattr(cfg, "preprocessing_workers", None) or 1
    return {"num_proc": workers} if workers > 1 and not is_streamed(split) else {}


def is_streamed(split: Any) -> bool:
    """True for a split read while training (a `datasets.IterableDataset`, which has no length)."""
    return not hasattr(split, "__len__")


def count(split: Any | None) -> int | None:
    """Records in a split; None for a streamed one (its length is not known before it is read)."""
    if split is None:
        return 0
    return None if is_streamed(split) else len(split)


def first_record(split: Any, cfg: Any, name: str) -> dict[str, Any] | None:
    """The first record of a streamed split (None when it is empty); a file it cannot parse is refused."""
    try:
        return next(iter(split.take(1)), None)
    except Exception as err:  # datasets wraps parser and connection errors in several exception types
        raise UserError(f"{describe(cfg, name)}: cannot read the stream: {first_line(err)}") from None


def single_config(cfg: Any) -> str | None:
    """The one --dataset-config a stream reads (several are concatenated and shuffled: not while streaming)."""
    configs = cfg.dataset_config or [None]
    if len(configs) > 1:
        raise UserError("--streaming reads one --dataset-config; several are concatenated only without it.")
    return configs[0]


def load_streamed(cfg: Any, sample: Sample | None, text_column: str, label_column: str) -> dict[str, Any]:
    """--streaming: the training split as an IterableDataset, read while training; the validation split loaded
    whole (from --validation-file, --validation-dataset, or the hub data set's validation split, of which only
    the first --max-eval-samples records are read)."""
    import datasets

    if cfg.filter:  # apply_filters counts rows, which a stream has not
        raise UserError("--filter reads the data whole; it does not go with --streaming.",
                        hint="Drop one of them (clm's --filter-keywords filters a stream as it is read).")
    if cfg.dataset == "sample" or not (cfg.train_file or cfg.dataset):
        raise UserError("--streaming reads a hub data set (--dataset) or a --train-file.",
                        hint="The bundled sample is small: drop --streaming.")
    text_format = sample.text_format if sample else "text"
    if cfg.train_file:
        train = _stream_file(Path(cfg.train_file), text_format, cfg.field, text_column)
    else:
        train = _load_hub(cfg.dataset, single_config(cfg), split="train", streaming=True)
    if cfg.validation_file:
        validation = _load_file(Path(cfg.validation_file), text_format, cfg.field, text_column, label_column)
    elif cfg.validation_dataset and not cfg.train_file:  # as without --streaming: it goes with --dataset
        validation = validation_split(_load_hub(cfg.validation_dataset, None), cfg.validation_dataset)
    elif not cfg.train_file:
        streams = _load_hub(cfg.dataset, single_config(cfg), streaming=True)
        name = next((s for s in ("validation", "test") if s in streams), None)
        if name is None:
            raise UserError(f"--streaming: data set {cfg.dataset} has no validation split to evaluate on.",
                            hint="Give --validation-dataset or --validation-file.")
        stream = streams[name].take(cfg.max_eval_samples) if cfg.max_eval_samples else streams[name]
        validation = datasets.Dataset.from_list(list(stream))
    else:
        raise UserError("--streaming: no validation data (nothing can be held out of a stream).",
                        hint="Give --validation-file.")
    return {"train": train, "validation": validation}
