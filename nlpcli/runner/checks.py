"""The checks of `nlpcli inspect`, each on what a run built (data, features, first batch, model), none training.

Every check returns a `Check`: ok, warning or problem, a one-line summary, plain-data details (the report shows
them as text and writes them as JSON) and notes that say what is wrong and what to do. A check never names a
task: what differs between tasks comes through the Task hooks (`describe_example`, `baseline_loss`,
`count_targets`). The forward pass lives in `runner/forward_check.py`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from nlpcli.config import RunConfig
from nlpcli.runner import length_split, splits
from nlpcli.sources import data, models
from nlpcli.tasks.base import Prepared, Task, TaskSetup

OK, WARNING, PROBLEM = "ok", "warning", "problem"
SEVERITY = (OK, WARNING, PROBLEM)
MOSTLY_PADDING = 0.5  # share of a batch's positions above which padding is named in a warning
MANY_UNKNOWN = 0.05  # share of a batch's tokens above which the unknown token is named in a warning
READ_FEATURES = 10_000  # features of a split read for the longest input


@dataclass
class Check:
    """One check's verdict."""

    name: str
    status: str  # ok | warning | problem
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # why it is a warning or problem, and what to do

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "details": self.details,
                "notes": self.notes}


def worst(checks: list[Check]) -> str:
    return max((check.status for check in checks), key=SEVERITY.index, default=OK)


def size(split: Any | None) -> int | str | None:
    if split is None:
        return None
    return "streamed" if data.is_streamed(split) else len(split)


# ---------------------------------------------------------------- data


def data_check(task: Task, cfg: RunConfig, run_data: splits.RunData, prepared: Prepared) -> Check:
    """The splits (records and features), where they came from, the columns used, what filters and skips removed."""
    raw = run_data.raw
    features = {"train": prepared.train, "validation": prepared.eval, splits.TEST_SPLIT: prepared.test}
    records = {**raw, **({splits.TEST_SPLIT: run_data.test} if run_data.test is not None else {})}
    table = [{"split": name, "source": data.describe(cfg, name), "records": size(split),
              "features": size(features.get(name))} for name, split in records.items()]
    details: dict[str, Any] = {"splits": table, "columns": task.required_columns(cfg)}
    if run_data.filter_counts:
        details["filters"] = run_data.filter_counts
    if run_data.data_report:
        details["records kept and dropped"] = run_data.data_report
    facts = {**run_data.task_facts, **prepared.facts}
    if facts:
        details["facts"] = facts
    notes = []
    skipped = {split: counts for split, counts in run_data.data_report.items() if isinstance(counts, dict)
               and any(key.endswith("skipped") and value for key, value in counts.items())}
    if skipped:
        notes.append(f"bad records were skipped in {', '.join(skipped)} (--skip-bad-records): see the counts above.")
    train = prepared.train
    if train is not None and not data.is_streamed(train) and len(train) < cfg.batch_size:
        notes.append(f"{len(train)} training features, fewer than one batch of {cfg.batch_size}.")
    shown = ", ".join(f"{row['split']} streamed" if row["records"] == "streamed" else
                      f"{row['split']} {row['records']} records / {row['features']} features" for row in table)
    return Check("data", WARNING if notes else OK, shown, details, notes)


# ---------------------------------------------------------------- example and targets


def example_check(task: Task, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: RunConfig,
                  setup: TaskSetup, split: str) -> Check:
    """One example of the first batch, decoded back to text with its targets (the task's `describe_example`)."""
    shown = task.describe_example(batch, raw, tokenizer, cfg, setup)
    return Check("example", OK, f"one {split} example as the model sees it", shown)


def targets_check(task: Task, features: Any, cfg: RunConfig, split: str) -> Check:
    """How many features have something to learn (the task's `count_targets`): none is a problem."""
    found = task.count_targets(features, cfg)
    if found is None:
        return Check("targets", OK, "the collator makes the targets of every batch")
    details = {"with a target": found.count, "read": found.total, "what": found.what}
    summary = f"{found.count} of {found.total} {split} {found.what}"
    if found.count == 0:
        return Check("targets", PROBLEM, summary, details, [
            f"no {split} feature has a target: the model would learn nothing from them. Check the truncation "
            "(--max-length and the task's length options) against where the targets are, and the label columns."])
    return Check("targets", OK, summary, details)


# ---------------------------------------------------------------- batch and forward signature


def batch_check(batch: dict[str, Any], tokenizer: Any, dropped: list[str],
                split: length_split.Splitting | None = None) -> Check:
    """The first collated batch: keys, shapes, dtypes and the share of padding, and what is left of it when the
    run's --length-split runs the batch as pieces."""
    keys = {key: {"shape": list(getattr(value, "shape", [len(value)])), "dtype": str(getattr(value, "dtype", "list"))}
            for key, value in batch.items()}
    details: dict[str, Any] = {"keys": keys}
    if dropped:
        details["feature columns left out (not forward() arguments)"] = dropped
    share = padding_share(batch, tokenizer)
    notes = []
    split_into = length_split.padding_after(batch, split) if share is not None else None
    if share is not None:
        details["padding"] = round(share, 4)
        if split_into is not None:
            details["as length-sorted pieces (--length-split)"] = {"pieces": split_into[0],
                                                                   "padding": round(split_into[1], 4)}
        computed = split_into[1] if split_into is not None else share
        if computed > MOSTLY_PADDING:
            notes.append(f"{computed:.0%} of the batch is padding: --group-by-length batches texts of similar "
                         "length, and a lower --max-length cuts long outliers.")
    unknown = unknown_share(batch, tokenizer)
    if unknown is not None:
        details["unknown tokens"] = round(unknown, 4)
        if unknown > MANY_UNKNOWN:
            notes.append(f"{unknown:.0%} of the batch's tokens are the unknown token {tokenizer.unk_token}: the "
                         "tokenizer does not cover this text (another language or script than it was made for?).")
    rows = len(next(iter(batch.values())))
    summary = f"{rows} rows, keys {', '.join(batch)}" + (f", {share:.0%} padding" if share is not None else "")
    if split_into is not None:
        summary += f" ({split_into[1]:.0%} as {split_into[0]} length-sorted pieces)"
    return Check("batch", WARNING if notes else OK, summary, details, notes)


def padding_share(batch: dict[str, Any], tokenizer: Any) -> float | None:
    """The share of input positions that are padding: attention mask 0, else the pad token."""
    mask = batch.get("attention_mask")
    if mask is not None:
        return 1.0 - float(mask.sum()) / mask.numel()
    ids, pad = batch.get("input_ids"), getattr(tokenizer, "pad_token_id", None)
    if ids is None or pad is None:
        return None
    return float((ids == pad).sum()) / ids.numel()


def unknown_share(batch: dict[str, Any], tokenizer: Any) -> float | None:
    """The share of the batch's real (not padding) tokens that are the tokenizer's unknown token."""
    ids, unk = batch.get("input_ids"), getattr(tokenizer, "unk_token_id", None)
    if ids is None or unk is None:
        return None
    mask = batch.get("attention_mask")
    real = mask.bool() if mask is not None and mask.shape == ids.shape else ids == ids
    return float(((ids == unk) & real).sum()) / max(1, int(real.sum()))


def signature_check(batch: dict[str, Any], model: Any) -> Check:
    """The batch's keys against the parameters of the model's forward(): a key it does not name is a problem (a
    TypeError, or with **kwargs silently ignored)."""
    parameters = inspect.signature(model.forward).parameters
    named = [name for name, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    unknown = [key for key in batch if key not in named]
    details = {"forward": f"{type(model).__name__}.forward({', '.join(named)}{', **kwargs' if takes_any else ''})",
               "accepted": [key for key in batch if key in named], "not named by forward": unknown,
               "forward arguments left empty": [name for name in named if name not in batch]}
    if unknown:
        fate = "it would go to **kwargs and be ignored" if takes_any else "the call would fail with a TypeError"
        return Check("signature", PROBLEM, f"{', '.join(unknown)} not taken by {type(model).__name__}.forward",
                     details, [f"forward() names no parameter {', '.join(unknown)}: {fate}. Rename the column, or "
                               "drop it before the collator."])
    return Check("signature", OK, f"every key is a parameter of {type(model).__name__}.forward", details)


# ---------------------------------------------------------------- model


def parameter_count(model: Any) -> tuple[int, int]:
    """(all parameters, trainable ones); tied weights counted once."""
    seen: dict[int, Any] = {id(p): p for p in model.parameters()}
    return sum(p.numel() for p in seen.values()), sum(p.numel() for p in seen.values() if p.requires_grad)


def human(number: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if number >= scale:
            return f"{number / scale:.1f}{unit}"
    return str(number)


def longest(features: Any, key: str) -> int:
    """The longest `key` sequence of the first READ_FEATURES features (0 for a stream or a missing column)."""
    if features is None or data.is_streamed(features) or key not in (features.column_names or []):
        return 0
    return max((len(ids) for ids in features.select(range(min(len(features), READ_FEATURES)))[key]), default=0)


def model_check(model: Any, tokenizer: Any, setup: TaskSetup, prepared: Prepared, batch: dict[str, Any]) -> Check:
    """The model's size, its positions against the longest input, its vocabulary against the tokenizer's, and its
    label mapping against the task's labels."""
    config = model.config
    total, trainable = parameter_count(model)
    positions = models.config_positions(config)
    splits_ = [prepared.train, prepared.eval, prepared.test]
    # a decoder reads the targets through the same kind of positions (BART, Marian), so they are held to them too
    keys = ["input_ids", "labels"] if getattr(config, "is_encoder_decoder", False) else ["input_ids"]
    lengths = {key: max([longest(split, key) for split in splits_]
                        + ([int(batch[key].shape[-1])] if key in batch else [0])) for key in keys}
    longest_input = lengths["input_ids"]
    details: dict[str, Any] = {"class": type(model).__name__, "model_type": getattr(config, "model_type", None),
                               "parameters": total, "trainable": trainable,
                               "positions": positions if positions else "no fixed limit (relative positions)",
                               "longest input": longest_input}
    if "labels" in lengths:
        details["longest target"] = lengths["labels"]
    notes: list[str] = []
    for key, length in lengths.items():
        if positions and length > positions:
            what, option = ("an input", "--max-length") if key == "input_ids" else ("a target", "--max-target-length")
            notes.append(f"{what} of {length} tokens is longer than the model's {positions} positions: it would fail "
                         f"with an index error. Lower {option} (or the task's length option).")
    embeddings = model.get_input_embeddings()
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None:
        details["vocabulary"] = {"tokenizer": len(tokenizer), "embeddings": rows}
        biggest = int(batch["input_ids"].max()) if "input_ids" in batch else -1
        if biggest >= rows:
            notes.append(f"token id {biggest} is beyond the model's {rows} embeddings: the tokenizer does not "
                         "belong to this model.")
    if setup.labels:
        id2label = {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}
        details["labels"] = {i: id2label.get(i) for i in sorted(id2label)}
        if [id2label.get(i) for i in range(len(setup.labels))] != list(setup.labels) or len(id2label) != len(
                setup.labels):
            notes.append(f"the model's labels ({', '.join(map(str, id2label.values()))}) are not the task's "
                         f"({', '.join(setup.labels)}).")
    summary = (f"{type(model).__name__}, {human(total)} parameters ({human(trainable)} trainable), longest input "
               f"{longest_input} of {positions or 'unlimited'} positions")
    return Check("model", PROBLEM if notes else OK, summary, details, notes)
