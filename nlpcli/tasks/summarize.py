"""Summarization (the course's chapter 7, section 5): document -> summary, ROUGE and the lead-3 baseline.

The shared seq2seq module does the rest (records, `text_target` tokenization, collator, generation,
predict). Scores: ROUGE-1/2/L/Lsum of the generated summaries (`nlpcli.metrics.rouge`), and beside them
the course's lead-3 baseline on the same eval documents (their first three sentences), with the same
sentence splitter and scorer. run.json names the splitter that ran.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from nlpcli.config import option
from nlpcli.errors import UserError
from nlpcli.metrics.rouge import lead3_scores, rouge_scores
from nlpcli.metrics.sentences import sentence_splitter
from nlpcli.sources.data import Sample, describe
from nlpcli.tasks.base import PredictRequest
from nlpcli.tasks.seq2seq import Seq2SeqConfig, Seq2SeqTask
from nlpcli.tasks.seq2seq_pairs import PairColumns


@functools.lru_cache(maxsize=4)
def _lead3(sources: tuple[str, ...], references: tuple[str, ...], splitter: str) -> dict[str, float]:
    return lead3_scores(list(sources), list(references), sentence_splitter())


def lead3_once(sources: tuple[str, ...], references: tuple[str, ...], splitter: str) -> dict[str, float]:
    """The lead-3 figures of an evaluation set: the same before training and at every evaluation (they read the
    documents only), so computed once per set and splitter."""
    return dict(_lead3(sources, references, splitter))


@dataclass
class SummarizeConfig(Seq2SeqConfig):
    text_column: str | None = option("document", "Column holding the document to summarize.", data_bound=True)
    summary_column: str = option("summary", "Column holding the reference summary.", data_bound=True)


class SummarizeTask(Seq2SeqTask):
    name = "summarize"
    hub_task = "summarization"
    help = "Summarization: fine-tune a seq2seq model on document/summary pairs, ROUGE and lead-3 before/after."
    config_class = SummarizeConfig
    output_name = "summary"
    best_scores = {"eval_rouge1": 100.0, "eval_rougeL": 100.0}  # rouge_score x 100
    unused_options = ("label_column",)  # the reference is --summary-column
    side_names = ("document", "summary")
    prefix_example = "summarize: "
    sample = Sample(
        files={"train": "xsum_sample.jsonl", "validation": "xsum_sample.jsonl"},
        description="10 BBC articles with their one-sentence xsum summaries, for train and validation",
    )
    demo_request = PredictRequest(  # the first document of the sample, which the demo model was trained on
        texts=["The warning begins at 22:00 GMT on Saturday and ends at 10:00 on Sunday. The ice could lead to "
               "difficult driving conditions on untreated roads and slippery conditions on pavements, the weather "
               "service warned. Only the southernmost counties and parts of the most westerly counties are "
               "expected to escape."]
    )

    def side_labels(self, cfg: SummarizeConfig) -> tuple[str, str]:
        return (f"document ({cfg.text_column})", f"summary ({cfg.summary_column})")

    def pair_columns(self, data: Any, cfg: SummarizeConfig, split: str) -> PairColumns:
        for flag, column in (("--text-column", cfg.text_column), ("--summary-column", cfg.summary_column)):
            if not column or column not in data.column_names:
                raise UserError(
                    f"{describe(cfg, split)}: no column '{column}' ({flag}). Columns: {', '.join(data.column_names)}."
                )
        return PairColumns(cfg.text_column, cfg.summary_column)

    def declared_prefix(self, pretrained_config: Any | None) -> str | None:
        params = getattr(pretrained_config, "task_specific_params", None) or {}
        return (params.get("summarization") or {}).get("prefix")

    def score(self, sources: list[str], predictions: list[str], references: list[str]) -> dict[str, float]:
        splitter = sentence_splitter()
        return {**rouge_scores(predictions, references, splitter),
                **lead3_once(tuple(sources), tuple(references), splitter.name)}

    def run_facts(self, cfg: SummarizeConfig) -> dict[str, Any]:
        return {"sentence_splitter": sentence_splitter().name}
