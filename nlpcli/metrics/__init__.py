"""Thin adapters over the metric libraries (seqeval, squad EM/F1, ...), usable offline."""
