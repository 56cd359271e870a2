"""ROUGE-1/2/L/Lsum (0-100, Porter stemming) with `rouge_score`, and the lead-3 baseline.

Each prediction/reference pair is scored by `rouge_score.rouge_scorer.RougeScorer`; the corpus figure
is the mean of the per-pair F-measures. (The `evaluate` rouge metric that the course calls reports the
median of 1,000 bootstrap resamples of that mean: random, and close to it; the mean is exact and
repeatable.) As in transformers' `run_summarization.py`, texts are split into sentences, one per line,
before scoring: rougeLsum sees the newlines, the other types ignore them.
"""

from __future__ import annotations

from nlpcli.metrics.sentences import SentenceSplitter

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
LEAD3 = "lead3"  # the key prefix of the lead-3 baseline's scores (one of metrics.kinds.BASELINES)


def rouge_scores(predictions: list[str], references: list[str], splitter: SentenceSplitter) -> dict[str, float]:
    """{'rouge1': ..., 'rouge2': ..., 'rougeL': ..., 'rougeLsum': ...}: mean F-measure x 100."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(splitter.newline_joined(reference), splitter.newline_joined(prediction))
        for rouge_type in ROUGE_TYPES:
            totals[rouge_type] += scores[rouge_type].fmeasure
    count = max(len(predictions), 1)
    return {rouge_type: 100 * total / count for rouge_type, total in totals.items()}


def lead_sentences(document: str, splitter: SentenceSplitter, count: int = 3) -> str:
    """The first `count` sentences of a document, one per line (the course's lead-3 summary)."""
    return "\n".join(splitter.split(document.strip())[:count])


def lead3_scores(documents: list[str], references: list[str], splitter: SentenceSplitter) -> dict[str, float]:
    """ROUGE of the lead-3 baseline, keyed `lead3_rouge1`, ...: same splitter, same scorer as the model's."""
    leads = [lead_sentences(document, splitter) for document in documents]
    return {f"{LEAD3}_{key}": value for key, value in rouge_scores(leads, references, splitter).items()}
