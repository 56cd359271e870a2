"""classify's settings and records: `ClassifyConfig`, the checks of every record's text(s) and labels, the label
list (--labels, ClassLabel names, a saved model's labels, or the training data's), the one line on what becomes
of the starting model's head, and a record's training target (a class id, or one 0/1 per class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlpcli.config import RunConfig, option
from nlpcli.errors import UserError
from nlpcli.sources import data as sources
from nlpcli.sources.data import describe, values_of
from nlpcli.tasks.labels import given_labels


@dataclass
class ClassifyConfig(RunConfig):
    text_column: str | None = option("text", "Column holding the text (the first text of a pair).")
    text_pair_column: str | None = option(
        None, "Column holding the second text of a pair (paraphrase, entailment); none: single texts.")
    label_column: str | None = option(
        "label", "Column holding the label: a name or a class id (--multi-label: a list, or names joined by commas).")
    labels: list[str] | None = option(
        None, "Label names in id order: comma-separated, or a file with one label per line.")
    multi_label: bool = option(False, "Several labels per text: one sigmoid per class, binary cross-entropy.")
    threshold: float = option(0.5, "With --multi-label: a class is predicted when its probability reaches this.",
                              above=0, below=1)


def label_values(value: Any, multi: bool) -> list[Any] | None:
    """A record's labels as a list (one item without --multi-label; with it, an empty CSV cell is no label);
    None when the value cannot be labels."""
    if multi and value is None:
        return []
    if multi and isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    items = list(value) if multi and isinstance(value, list | tuple) else [value] if not multi else None
    if items is None or any(v is None or isinstance(v, bool) or not isinstance(v, str | int) for v in items):
        return None
    return items


def _shown(value: Any) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


def where(cfg: ClassifyConfig, split: str, row: int) -> str:
    """Record `row` of a split: its file and line when the split is a whole local file read in order, else
    its number."""
    held_out = split == "train" and cfg.train_file and not cfg.validation_file and cfg.dataset != "sample"
    if cfg.filter or held_out:
        return f"{describe(cfg, split)}, record {row + 1}"
    return sources.record_location(cfg, split, row) if sources.split_file(cfg, split) else (
        f"{describe(cfg, split)}, record {row + 1}")


def checked_labels(raw: Any, cfg: ClassifyConfig) -> dict[str, list[list[Any]]]:
    """Every split's labels as lists, after checking every record's text(s) and label values."""
    found = {}
    for split, data in raw.items():
        columns = [c for c in (cfg.text_column, cfg.text_pair_column) if c]
        for column in columns:
            for row, text in enumerate(values_of(data, column)):
                if not isinstance(text, str):
                    raise UserError(f"{where(cfg, split, row)}: '{column}' must be text, got {_shown(text)}.")
        found[split] = []
        for row, value in enumerate(values_of(data, cfg.label_column)):
            values = label_values(value, cfg.multi_label)
            if values is None:
                what = "a list of label names or class ids" if cfg.multi_label else "a label name or a class id"
                several = not cfg.multi_label and isinstance(value, list)
                hint = "Several labels per text: --multi-label." if several else None
                raise UserError(f"{where(cfg, split, row)}: '{cfg.label_column}' must be {what}, got {_shown(value)}.",
                                hint=hint)
            found[split].append(values)
    return found


def feature_names(data: Any, column: str) -> list[str] | None:
    """The ClassLabel names of a label column (a list of ClassLabel with --multi-label), if it has them."""
    feature = data.features.get(column) if data.features else None
    return getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)


def label_list(raw: Any, values: dict[str, list[list[Any]]], cfg: ClassifyConfig, saved: Any | None) -> list[str]:
    """--labels, ClassLabel names, a saved model's labels (--eval-only), or the training data's labels."""
    given = given_labels(cfg.labels, "negative,positive")
    if given is not None:
        return given
    source = "train" if "train" in raw else "validation"
    names = feature_names(raw[source], cfg.label_column)
    if names:
        return list(names)
    id2label = dict(getattr(saved, "id2label", None) or {})
    if cfg.eval_only and id2label and not all(str(v).startswith("LABEL_") for v in id2label.values()):
        return [str(id2label[i]) for i in sorted(id2label)]
    seen = {v for labels in values[source] for v in labels}
    if len({isinstance(v, str) for v in seen}) > 1:  # name the first record of the other kind than the first label
        named = isinstance(next(v for labels in values[source] for v in labels), str)
        row = next(r for r, labels in enumerate(values[source]) if any(isinstance(v, str) != named for v in labels))
        raise UserError(f"{where(cfg, source, row)}: labels mix names and class ids; use one kind throughout.")
    if seen and all(isinstance(v, int) for v in seen):
        negative = min(seen)
        if negative < 0:
            row = next(r for r, labels in enumerate(values[source]) if negative in labels)
            raise UserError(f"{where(cfg, source, row)}: class id {negative} is no class (ids count from 0; GLUE "
                            "marks a missing label -1).", hint="Predict unlabelled data as a --test-file without "
                            "the label column.")
        return [str(i) for i in range(max(seen) + 1)]
    return sorted(seen)


def check_records(values: dict[str, list[list[Any]]], labels: list[str], cfg: ClassifyConfig) -> None:
    """Every label of every split must be in the list: a name of it, or an id below its length."""
    known = set(labels)
    for split, rows in values.items():
        for row, items in enumerate(rows):
            for item in items:
                if isinstance(item, str) and item not in known:
                    source = "--labels" if cfg.labels else "the training data's labels" if split != "train" and \
                        not cfg.eval_only else "the label list"
                    raise UserError(f"{where(cfg, split, row)}: label '{item}' is not one of {source} "
                                    f"({', '.join(labels)}).", hint="Name every class, in id order, with --labels.")
                if isinstance(item, int) and not 0 <= item < len(labels):
                    raise UserError(f"{where(cfg, split, row)}: class id {item} is not in 0..{len(labels) - 1} "
                                    f"({', '.join(labels)}).", hint="Name every class, in id order, with --labels.")


def head_note(spec: str, saved: Any | None, labels: list[str]) -> str | None:
    """One line on what becomes of the starting model's head: a model without a sequence-classification head
    keeps its encoder and gets a new head; a head for other labels is replaced or renamed. None: it is kept."""
    if saved is None:
        return None
    kinds = [a for a in getattr(saved, "architectures", None) or [] if a.endswith("ForSequenceClassification")]
    found = ", ".join(getattr(saved, "architectures", None) or []) or saved.model_type
    if not kinds:
        return (f"--model {spec} holds a {found} (no classification head): its encoder is kept, and a new "
                f"classification head (random weights) is trained for {len(labels)} labels.")
    old = [str(v) for _, v in sorted(dict(getattr(saved, "id2label", None) or {}).items())]
    if len(old) != len(labels):
        return (f"--model {spec} has a classification head for {len(old)} labels: a new head (random weights) "
                f"replaces it for these {len(labels)}.")
    if old != labels and not all(v.startswith("LABEL_") for v in old):
        return (f"--model {spec}'s classification head has the labels {', '.join(old)}: they are renamed "
                f"{', '.join(labels)}, in that order.")
    return None


def label_ids(items: list[Any], labels: tuple[str, ...]) -> list[int]:
    return [item if isinstance(item, int) else labels.index(item) for item in items]


def target(value: Any, labels: tuple[str, ...], multi: bool) -> Any:
    """The model's label: a class id, or (--multi-label) one 0/1 float per class."""
    ids = label_ids(label_values(value, multi) or [], labels)
    if not multi:
        return ids[0]
    hot = [0.0] * len(labels)
    for index in ids:
        hot[index] = 1.0
    return hot
