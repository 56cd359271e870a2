"""SQuAD exact match and F1 (v1.1 and v2.0), offline: the official scoring rules in a few functions.

Scores are percentages (0-100), as the official scripts and the course report them. An empty gold
answer list means "no answer" (SQuAD v2): only the empty prediction scores on it.
"""

from __future__ import annotations

import re
import string
from collections import Counter

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 of the normalized strings; two empty strings agree (F1 1), one empty scores 0."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def gold_answers(texts: list[str]) -> list[str]:
    """The gold answers to compare against; [""] (no answer) when none is left after normalization."""
    return [t for t in texts if normalize_answer(t)] or [""]


def squad_scores(
    predictions: dict[str, str], references: dict[str, list[str]], with_negative: bool = False
) -> dict[str, float]:
    """exact_match and f1 over `references` (id -> gold texts), each the best over an example's golds.

    `with_negative` (SQuAD v2) adds the same two scores and a count for the answerable (HasAns) and
    the unanswerable (NoAns) examples. A reference with no prediction counts as answered "".
    """
    groups: dict[str, list[tuple[float, float]]] = {"all": [], "HasAns": [], "NoAns": []}
    for example_id, texts in references.items():
        golds = gold_answers(texts)
        predicted = predictions.get(example_id, "")
        pair = (max(exact_match(predicted, g) for g in golds), max(token_f1(predicted, g) for g in golds))
        groups["all"].append(pair)
        groups["HasAns" if golds != [""] else "NoAns"].append(pair)
    scores = _percentages("", groups["all"])
    if with_negative:
        for name in ("HasAns", "NoAns"):
            scores.update(_percentages(f"{name}_", groups[name]))
            scores[f"{name}_total"] = len(groups[name])
    return scores


def _percentages(prefix: str, pairs: list[tuple[float, float]]) -> dict[str, float]:
    if not pairs:
        return {f"{prefix}exact_match": 0.0, f"{prefix}f1": 0.0}
    return {
        f"{prefix}exact_match": 100.0 * sum(em for em, _ in pairs) / len(pairs),
        f"{prefix}f1": 100.0 * sum(f1 for _, f1 in pairs) / len(pairs),
    }
