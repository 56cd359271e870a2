"""Entity-level precision/recall/F1 with the `seqeval` package (what `evaluate.load("seqeval")` wraps)."""

from __future__ import annotations

from seqeval.metrics import accuracy_score, classification_report


def seqeval_scores(references: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    """Overall micro precision/recall/F1 and token accuracy, plus `<TYPE>_precision/_recall/_f1/_number`."""
    report = classification_report(references, predictions, output_dict=True, zero_division=0)
    micro = report.pop("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    scores = {
        "overall_precision": float(micro["precision"]),
        "overall_recall": float(micro["recall"]),
        "overall_f1": float(micro["f1-score"]),
        "overall_accuracy": float(accuracy_score(references, predictions)),
    }
    for entity, values in report.items():
        if entity.endswith(" avg"):
            continue
        scores[f"{entity}_precision"] = float(values["precision"])
        scores[f"{entity}_recall"] = float(values["recall"])
        scores[f"{entity}_f1"] = float(values["f1-score"])
        scores[f"{entity}_number"] = int(values["support"])
    return scores
