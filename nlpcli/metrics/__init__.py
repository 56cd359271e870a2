"""Thin adapters over the metric libraries (seqeval, squad EM/F1, rouge_score, sentence splitting), usable offline."""
