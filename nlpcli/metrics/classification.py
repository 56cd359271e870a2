"""Text-classification scores with scikit-learn, from label names: accuracy, macro and weighted F1, and per class
precision / recall / F1 / support; for several labels per text (multi-label), the same over label sets, with
exact-match accuracy and micro F1 beside them.

The classes scored are those the references or the predictions hold (in the label list's order), as
scikit-learn's averages take them: the macro F1 is the mean of the per-class F1s reported, the weighted F1
their mean weighted by support. A class never predicted has precision 0 (`zero_division=0`), as one never
referenced has recall 0."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _present(labels: Sequence[str], seen: set[str]) -> list[str]:
    """The classes of `labels` (in their order) that occur in `seen`, then any other seen one, sorted."""
    return [label for label in labels if label in seen] + sorted(seen - set(labels))


def _per_class(classes: list[str], precision: Any, recall: Any, f1: Any, support: Any) -> dict[str, float]:
    scores: dict[str, float] = {}
    for index, label in enumerate(classes):
        scores[f"{label}_precision"] = float(precision[index])
        scores[f"{label}_recall"] = float(recall[index])
        scores[f"{label}_f1"] = float(f1[index])
        scores[f"{label}_number"] = int(support[index])
    return scores


def classification_scores(references: list[str], predictions: list[str], labels: Sequence[str]) -> dict[str, float]:
    """One label per text: `accuracy`, `f1_macro`, `f1_weighted` and `<label>_precision/_recall/_f1/_number`."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    if not references:
        return {}
    classes = _present(labels, set(references) | set(predictions))
    per_class = precision_recall_fscore_support(references, predictions, labels=classes, zero_division=0)
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "f1_macro": float(f1_score(references, predictions, labels=classes, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(references, predictions, labels=classes, average="weighted", zero_division=0)),
        **_per_class(classes, *per_class),
    }


def multi_label_scores(references: list[list[str]], predictions: list[list[str]],
                       labels: Sequence[str]) -> dict[str, float]:
    """Several labels per text: `accuracy` (the whole set right), `f1_micro`, `f1_macro`, `f1_weighted` and
    `<label>_precision/_recall/_f1/_number` (support: the texts that have the label)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    if not references:
        return {}
    seen = {label for row in references + predictions for label in row}
    classes = _present(labels, seen)
    if not classes:  # no text has a label, and none was predicted: every set is right
        return {"accuracy": 1.0, "f1_micro": 0.0, "f1_macro": 0.0, "f1_weighted": 0.0}
    binarizer = MultiLabelBinarizer(classes=classes)
    truth, guess = binarizer.fit_transform(references), binarizer.transform(predictions)
    per_class = precision_recall_fscore_support(truth, guess, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, guess)),
        **{f"f1_{average}": float(f1_score(truth, guess, average=average, zero_division=0))
           for average in ("micro", "macro", "weighted")},
        **_per_class(classes, *per_class),
    }
