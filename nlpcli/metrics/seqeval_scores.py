"""Entity-level precision/recall/F1 as `seqeval` scores them by default (what `evaluate.load("seqeval")` wraps, and
what the course and run_ner.py report): conlleval's chunking of IOB1/IOB2/IOE/IOBES tags, entities compared as
(type, first, last) over the sentences joined with an `O` between them, micro averages over all types and token
accuracy. Computed here, float for float as seqeval computes them, because importing seqeval imports
scikit-learn (seconds in every process that scores ner); tests/test_ner_unit.py checks the two agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

OUTSIDE = ("O", ".")  # conlleval: tags that are no part of an entity


def _parts(tag: str) -> tuple[str, str]:
    """(prefix, type) of a tag as conlleval splits it: 'B-PER' -> ('B', 'PER'), 'O' -> ('O', '_')."""
    return tag[:1], tag[1:].split("-", 1)[-1] or "_"


def _ends(prefix: str, kind: str, next_prefix: str, next_kind: str) -> bool:
    """Whether an entity ends at a token (prefix, kind) when the next token is (next_prefix, next_kind)."""
    if prefix in ("E", "S"):
        return True
    if prefix in ("B", "I") and next_prefix in ("B", "S", "O"):
        return True
    return prefix not in OUTSIDE and kind != next_kind


def _starts(previous_prefix: str, previous_kind: str, prefix: str, kind: str) -> bool:
    """Whether an entity starts at a token (prefix, kind) after the token (previous_prefix, previous_kind)."""
    if prefix in ("B", "S"):
        return True
    if prefix in ("E", "I") and previous_prefix in ("E", "S", "O"):
        return True
    return prefix not in OUTSIDE and previous_kind != kind


def entities(sentences: list[list[str]]) -> Iterator[tuple[str, int, int]]:
    """(type, first, last) of every entity, positions counted over the sentences joined with one `O` between."""
    tags = [tag for sentence in sentences for tag in [*sentence, "O"]]
    previous_prefix, previous_kind, begin = "O", "", 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, kind = _parts(tag)
        if _ends(previous_prefix, previous_kind, prefix, kind):
            yield previous_kind, begin, position - 1
        if _starts(previous_prefix, previous_kind, prefix, kind):
            begin = position
        previous_prefix, previous_kind = prefix, kind


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(found: int, predicted: int, true: int) -> tuple[float, float, float]:
    """precision, recall, F1 (seqeval's arithmetic: F1 from the rounded precision and recall; 0 for 0/0)."""
    precision, recall = _divide(found, predicted), _divide(found, true)
    denominator = precision + recall
    return precision, recall, 2.0 * precision * recall / (denominator if denominator else 1.0)


def seqeval_scores(references: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    """Overall micro precision/recall/F1 and token accuracy, plus `<TYPE>_precision/_recall/_f1/_number`."""
    true, predicted = set(entities(references)), set(entities(predictions))
    true_count = Counter(kind for kind, _, _ in true)
    predicted_count = Counter(kind for kind, _, _ in predicted)
    found_count = Counter(kind for kind, _, _ in true & predicted)
    tokens = [(r, p) for reference, prediction in zip(references, predictions, strict=True)
              for r, p in zip(reference, prediction, strict=True)]
    precision, recall, f1 = _scores(len(true & predicted), len(predicted), len(true))
    scores: dict[str, float] = {
        "overall_precision": precision,
        "overall_recall": recall,
        "overall_f1": f1,
        "overall_accuracy": _divide(sum(r == p for r, p in tokens), len(tokens)),
    }
    for kind in sorted(set(true_count) | set(predicted_count)):
        precision, recall, f1 = _scores(found_count[kind], predicted_count[kind], true_count[kind])
        scores[f"{kind}_precision"], scores[f"{kind}_recall"], scores[f"{kind}_f1"] = precision, recall, f1
        scores[f"{kind}_number"] = true_count[kind]
    return scores
