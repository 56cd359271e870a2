"""Text-classification scores from label names: accuracy, macro and weighted F1, and per class precision / recall /
F1 / support; for several labels per text (multi-label), the same over label sets, with exact-match accuracy and
micro F1 beside them.

The figures are scikit-learn's (`accuracy_score`, `f1_score`, `precision_recall_fscore_support` with
`zero_division=0`; tests/test_classify.py checks they agree), computed here because importing scikit-learn
takes seconds in every process that scores. The classes scored are those the references or the predictions
hold (in the label list's order), as scikit-learn's averages take them: the macro F1 is the mean of the
per-class F1s reported, the weighted F1 their mean weighted by support. A class never predicted has precision
0, one never referenced recall 0; F1 is 2 tp / (references + predictions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _present(labels: Sequence[str], seen: set[str]) -> list[str]:
    """The classes of `labels` (in their order) that occur in `seen`, then any other seen one, sorted."""
    return [label for label in labels if label in seen] + sorted(seen - set(labels))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(classes: list[str], correct: Counter, predicted: Counter, true: Counter) -> dict[str, float]:
    """Per class precision, recall, F1 and support, and the macro and weighted F1 over `classes`."""
    scores: dict[str, float] = {}
    f1s = []
    for label in classes:
        f1s.append(_ratio(2 * correct[label], true[label] + predicted[label]))
        scores.update({f"{label}_precision": _ratio(correct[label], predicted[label]),
                       f"{label}_recall": _ratio(correct[label], true[label]), f"{label}_f1": f1s[-1],
                       f"{label}_number": true[label]})
    support = sum(true[label] for label in classes)
    return {"f1_macro": _ratio(sum(f1s), len(f1s)),
            "f1_weighted": _ratio(sum(f1 * true[label] for f1, label in zip(f1s, classes, strict=True)), support),
            **scores}


def classification_scores(references: list[str], predictions: list[str], labels: Sequence[str]) -> dict[str, float]:
    """One label per text: `accuracy`, `f1_macro`, `f1_weighted` and `<label>_precision/_recall/_f1/_number`."""
    if not references:
        return {}
    classes = _present(labels, set(references) | set(predictions))
    correct = Counter(ref for ref, pred in zip(references, predictions, strict=True) if ref == pred)
    return {"accuracy": correct.total() / len(references),
            **_scores(classes, correct, Counter(predictions), Counter(references))}


def multi_label_scores(references: list[list[str]], predictions: list[list[str]],
                       labels: Sequence[str]) -> dict[str, float]:
    """Several labels per text: `accuracy` (the whole set right), `f1_micro`, `f1_macro`, `f1_weighted` and
    `<label>_precision/_recall/_f1/_number` (support: the texts that have the label)."""
    if not references:
        return {}
    pairs = [(set(ref), set(pred)) for ref, pred in zip(references, predictions, strict=True)]
    true = Counter(label for ref, _ in pairs for label in ref)
    predicted = Counter(label for _, pred in pairs for label in pred)
    correct = Counter(label for ref, pred in pairs for label in ref & pred)
    classes = _present(labels, set(true) | set(predicted))
    scores = {"accuracy": sum(ref == pred for ref, pred in pairs) / len(pairs),
              "f1_micro": _ratio(2 * correct.total(), true.total() + predicted.total())}
    return {**scores, **_scores(classes, correct, predicted, true)}
