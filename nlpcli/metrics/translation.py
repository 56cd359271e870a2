"""Corpus BLEU and chrF with sacrebleu, called directly (what `evaluate.load("sacrebleu")` wraps)."""

from __future__ import annotations


def bleu_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    """sacrebleu's corpus BLEU and chrF (0-100) of detokenized predictions against one reference each."""
    import sacrebleu

    return {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
    }
