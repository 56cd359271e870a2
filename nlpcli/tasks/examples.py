"""Plain-data views of what a task feeds its model, for `nlpcli inspect`: one example of a collated batch decoded
back to text, the loss a constant predictor would get, and how many features have a target to learn.

The Task hooks `describe_example`, `baseline_loss` and `count_targets` (tasks/base.py) default to the functions
here, and the tasks' own versions build on its helpers. Everything returned is plain data (str, int, float, lists
and dicts of them): the inspect report shows it as text and writes it as JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

IGNORE = -100  # a label the loss does not score
SHOWN_TOKENS = 24  # token rows an example shows
SHOWN_CHARACTERS = 400  # characters of a decoded text an example shows
COUNTED_FEATURES = 10_000  # features `count_targets` reads at most


@dataclass(frozen=True)
class Baseline:
    """The loss a predictor that ignores its input would get, and how it was worked out."""

    loss: float
    how: str


@dataclass(frozen=True)
class Targets:
    """How many of the features read (`total`) have something to learn (`count`), said in the task's words."""

    count: int
    total: int
    what: str


def batch_row(batch: dict[str, Any], index: int) -> dict[str, Any]:
    """Row `index` of a collated batch as lists (tensors and arrays alike)."""
    return {key: value[index].tolist() if hasattr(value[index], "tolist") else value[index]
            for key, value in batch.items()}


def batch_size(batch: dict[str, Any]) -> int:
    return len(next(iter(batch.values())))


def unpadded(row: dict[str, Any], key: str = "input_ids") -> list[int]:
    """The row's `key` without its padding (positions whose attention mask is 0)."""
    values = list(row[key])
    mask = row.get("attention_mask")
    if key != "input_ids" or mask is None or len(mask) != len(values):
        return values
    return [value for value, keep in zip(values, mask, strict=True) if keep]


def shorten(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    return text if len(text) <= limit else text[:limit] + f" ... ({len(text)} characters)"


def scored(labels: Iterable[int]) -> list[int]:
    """The labels the loss scores (not -100)."""
    return [label for label in labels if label != IGNORE]


def decode(tokenizer: Any, ids: Iterable[int]) -> str:
    """Token ids back to text, special tokens shown (an [CLS] or </s> is part of what the model sees)."""
    return shorten(tokenizer.decode(list(ids), skip_special_tokens=False))


def unigram_entropy(values: Iterable[int]) -> float:
    """The entropy (nats) of the values' frequencies: the loss of a predictor that always answers with them."""
    counts = Counter(values)
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values()) if total else 0.0


def label_entropy(batch: dict[str, Any], shift: bool) -> Baseline | None:
    """The unigram entropy of the batch's scored labels (after the one-token shift of a causal LM)."""
    labels = batch.get("labels")
    if labels is None:
        return None
    rows = [list(row) for row in labels.tolist()]
    values = scored(label for row in rows for label in (row[1:] if shift else row))
    if not values:
        return None
    return Baseline(unigram_entropy(values), f"unigram entropy of the batch's {len(values)} target tokens "
                                            f"({len(set(values))} distinct)")


def default_example(batch: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Row 0: its text, and each token with its label (-100: not scored), or its decoded target when the labels
    are a sequence of their own."""
    row = batch_row(batch, 0)
    ids = unpadded(row)
    shown: dict[str, Any] = {"text": decode(tokenizer, ids)}
    labels = row.get("labels")
    if isinstance(labels, list) and len(labels) == len(row["input_ids"]):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        shown["tokens"] = [{"token": token, "label": label}
                           for token, label in zip(tokens[:SHOWN_TOKENS], labels, strict=False)]
    elif isinstance(labels, list):
        shown["target"] = decode(tokenizer, scored(labels))
    return shown


def uniform_guess(model_config: Any) -> Baseline | None:
    """A uniform guess over the model's labels: ln of their number (classification heads)."""
    labels = int(getattr(model_config, "num_labels", 0) or 0)
    return Baseline(math.log(labels), f"ln of the {labels} labels (a uniform guess)") if labels > 1 else None


def word_rows(words: list[str], word_labels: list[str], word_ids: list[int | None], tokens: list[str],
              token_labels: list[int], label_names: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """Word by word (special tokens on rows of their own): the word, its label, and its sub-tokens, each with the
    label it is trained on (a name, or -100 and ids beyond `label_names` as numbers)."""

    def shown(label: int) -> str:
        return label_names[label] if 0 <= label < len(label_names) else str(label)

    rows: list[dict[str, str]] = []
    for position, (word, token, label) in enumerate(zip(word_ids, tokens, token_labels, strict=False)):
        piece = f"{token} ({shown(label)})"
        if word is None:
            rows.append({"word": "(special)", "label": "", "sub-tokens (label)": piece})
        elif position and word == word_ids[position - 1]:
            rows[-1]["sub-tokens (label)"] += " " + piece
        else:
            rows.append({"word": words[word], "label": word_labels[word], "sub-tokens (label)": piece})
    return rows[:SHOWN_TOKENS]


def shifted_rows(tokens: list[str], targets: list[str]) -> list[dict[str, Any]]:
    """A causal LM's first positions: the token read there and the one it is scored against (the next)."""
    return [{"position": i, "input": tokens[i], "target (next token)": targets[i + 1]}
            for i in range(min(SHOWN_TOKENS, len(tokens) - 1))]


def labelled_features(features: Any) -> Targets | None:
    """Features (the first COUNTED_FEATURES) with at least one scored label; None without a labels column (the
    collator makes the labels) or for a stream (no length)."""
    names = getattr(features, "column_names", None) or []
    if "labels" not in names or not hasattr(features, "__len__"):
        return None
    read = features.select(range(min(len(features), COUNTED_FEATURES)))
    count = sum(1 for labels in read["labels"] if scored(labels))
    return Targets(count, len(read), "features with at least one scored label")
