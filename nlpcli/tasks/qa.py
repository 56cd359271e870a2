"""Extractive question answering (SQuAD, SQuAD v2): records, the task, and answering saved models' questions.

- Records: `id`, `question`, `context`, `answers: {text: [...], answer_start: [...]}` (flat), or the
  official nested file layout (`data -> paragraphs -> qas`, with `--field data`), flattened here.
  Every record is checked; a bad one stops the run naming its id, or is skipped and counted.
- Windows over long contexts and the post-processing of their logits into answers: `tasks/qa_windows.py`.
- Evaluation rows: per question its id, the predicted text and the gold answers, scored with SQuAD's
  exact match and F1 (v2: with the no-answer figures).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np

from nlpcli.config import RunConfig
from nlpcli.config_layers import predict_settings
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.sources.data import Sample, check_columns, describe, map_workers, rows_of
from nlpcli.tasks.base import (
    Normalized,
    PredictionTable,
    PredictRequest,
    Prepared,
    Task,
    TaskSetup,
    padding_multiple,
)
from nlpcli.tasks.examples import COUNTED_FEATURES, Baseline, Targets, batch_row, decode, unpadded
from nlpcli.tasks.qa_windows import (
    QaConfig,
    answers,
    answers_nothing,
    best_span,
    check_stride,
    columns_of,
    model_window,
    question_room,
    span_probability,
    window_features,
)

NO_ANSWER_HINT = "unanswerable questions need --version-2-with-negative"


# ---------------------------------------------------------------- records: layout and checks


def flatten_nested(batch: dict[str, list], columns: tuple[str, str, str, str]) -> dict[str, list]:
    """Official SQuAD file layout (one row per article: paragraphs -> qas) -> one row per question, in `columns`
    (`columns_of(cfg)`: only what shapes the rows, so that datasets' cache of them outlives other options)."""
    id_col, question_col, context_col, answers_col = columns
    rows: dict[str, list] = {id_col: [], question_col: [], context_col: [], answers_col: []}
    for paragraphs in batch["paragraphs"]:
        for paragraph in paragraphs or []:
            for qa in paragraph.get("qas") or []:
                answers = qa.get("answers")
                rows[id_col].append(qa.get("id"))
                rows[question_col].append(qa.get("question"))
                rows[context_col].append(paragraph.get("context"))
                rows[answers_col].append(
                    None if answers is None else {
                        "text": [a.get("text") for a in answers],
                        "answer_start": [a.get("answer_start") for a in answers],
                    }
                )
    return rows


def record_problem(question: Any, context: Any, answers: Any, require_answer: bool) -> str | None:
    """What is wrong with one record, or None when it can be used."""
    if not isinstance(question, str) or not question.strip():
        return "no question"
    if not isinstance(context, str) or not context:
        return "no context"
    if not isinstance(answers, dict) or not all(isinstance(answers.get(k), list) for k in ("text", "answer_start")):
        return "no answers (expected answers: {text: [...], answer_start: [...]})"
    texts, starts = answers["text"], answers["answer_start"]
    if len(texts) != len(starts):
        return f"{len(texts)} answer texts but {len(starts)} answer_start values"
    if require_answer and not texts:
        return f"no answer ({NO_ANSWER_HINT})"
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(text, str) or not text:
            return "an empty answer text (an unanswerable question has empty answer lists)"
        if not isinstance(start, int) or start < 0 or context[start : start + len(text)] != text:
            found = context[start : start + len(text)] if isinstance(start, int) and start >= 0 else ""
            return f"answer {text!r} is not at answer_start {start} in the context (found {found!r})"
    return None


def clean_split(data: Any, cfg: QaConfig, split: str) -> Any:
    """`data` without its bad records (reported), or a UserError naming the first bad record."""
    id_col, question_col, context_col, answers_col = columns_of(cfg)
    bad: list[tuple[int, str]] = []
    seen: set[str] = set()
    records = rows_of(data, id_col, question_col, context_col, answers_col)
    for row, (record_id, question, context, gold) in enumerate(records):
        problem = record_problem(question, context, gold, not cfg.version_2_with_negative)
        if problem is None and record_id is None:
            problem = f"no {id_col}"
        if problem is None and record_id in seen:
            problem = f"duplicate {id_col}"
        seen.add(record_id)
        if problem is None:
            continue
        where = f"{describe(cfg, split)}, record " + (repr(record_id) if record_id else f"#{row}")
        if not cfg.skip_bad_records:
            raise UserError(f"{where}: {problem}.", hint="Fix the record, or skip such records: --skip-bad-records.")
        bad.append((row, f"{where}: {problem}"))
    if not bad:
        return data
    warn(f"skipped {len(bad)} bad record(s) of {len(data)} in {describe(cfg, split)} (first: {bad[0][1]}).")
    dropped = {row for row, _ in bad}
    return data.select([row for row in range(len(data)) if row not in dropped])


# ---------------------------------------------------------------- the task


class QaTask(Task):
    name = "qa"
    help = "Extractive question answering (SQuAD, SQuAD v2): answer spans, exact match and F1."
    config_class = QaConfig
    model_class = "AutoModelForQuestionAnswering"
    pipeline_task = "question-answering"  # transformers 5 dropped this pipeline: predict() does its work
    evaluation = "logits"
    best_scores = {"eval_exact_match": 100.0, "eval_f1": 100.0}  # SQuAD: 0 to 100
    sample = Sample(
        files={"train": "squad_v2_sample.json", "validation": "squad_v2_sample.json"},
        json_field="data",
        description="14 squad_v2 records, 6 unanswerable (train and validation are the same records)",
    )
    predict_fields = ("question", "context")
    unused_options = ("text_column", "label_column")  # its columns: --question-column, --context-column, ...
    resumable_options = ("n_best", "max_answer_length", "null_score_diff_threshold")  # post-processing only
    demo_request = PredictRequest(
        question="What branch of theoretical computer science deals with broadly classifying computational problems "
        "by difficulty and class of relationship?",
        context="Computational complexity theory is a branch of the theory of computation in theoretical computer "
        "science that focuses on classifying computational problems according to their inherent difficulty, and "
        "relating those classes to each other.",
    )

    reference_keys = ("references",)

    def required_columns(self, cfg: QaConfig) -> list[str]:
        return list(columns_of(cfg))

    def normalize(self, raw: Any, cfg: QaConfig) -> Normalized:
        for split, data in list(raw.items()):
            if "paragraphs" in data.column_names and cfg.question_column not in data.column_names:
                raw[split] = data.map(
                    flatten_nested, batched=True, fn_kwargs={"columns": columns_of(cfg)},
                    remove_columns=data.column_names, desc=f"Flattening {split}",
                )
            elif "data" in data.column_names and cfg.question_column not in data.column_names:
                raise UserError(f"{describe(cfg, split)}: the records are under the key 'data'.",
                                hint="Add --field data.")
        check_columns(raw, self.required_columns(cfg), cfg)
        for split in list(raw):
            raw[split] = clean_split(raw[split], cfg, split)
        return Normalized(raw)

    def preset_texts(self, raw: Any, cfg: QaConfig) -> Iterable[str]:
        data = raw["train"] if "train" in raw else raw["validation"]
        yield from data[cfg.question_column]
        yield from dict.fromkeys(data[cfg.context_column])  # each distinct context once

    def prepare(self, raw: Any, tokenizer: Any, cfg: QaConfig, setup: TaskSetup) -> Prepared:
        max_length = model_window(tokenizer, cfg.max_length)
        for split, data in raw.items():
            check_stride(tokenizer, data, cfg, max_length, split)
        features = {
            split: data.map(
                window_features, batched=True, remove_columns=data.column_names, desc=f"Tokenizing {split}",
                **map_workers(cfg, data),
                fn_kwargs={"tokenizer": tokenizer, "columns": columns_of(cfg), "max_length": max_length,
                           "doc_stride": cfg.doc_stride, "for_eval": split == "validation"},
            )
            for split, data in raw.items()
        }
        return Prepared(features.get("train"), features["validation"],
                        prediction_rows=partial(prediction_rows, cfg=cfg),
                        score_rows=partial(score_rows, with_negative=cfg.version_2_with_negative))

    def overfit_features(self, prepared: Prepared, count: int) -> Prepared:
        """Every window of the `count` questions the runner kept: a question is answered from all its windows."""
        return prepared

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=padding_multiple())

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: QaConfig,
                         setup: TaskSetup) -> dict[str, Any]:
        """The first window of the batch that holds its answer (else the first window): the window decoded, and
        the answer span read back from its start and end positions."""
        starts = batch["start_positions"].tolist()
        index = next((i for i, start in enumerate(starts) if start > 0), 0)
        row = batch_row(batch, index)
        start, end = row["start_positions"], row["end_positions"]
        answer = (decode(tokenizer, row["input_ids"][start: end + 1]) if start > 0
                  else "(none in this window: start and end point at position 0, the first token)")
        return {"window": f"{index + 1} of {len(starts)} in the batch", "text": decode(tokenizer, unpadded(row)),
                "start_positions": start, "end_positions": end, "answer read back": answer}

    def baseline_loss(self, batch: dict[str, Any], model_config: Any) -> Baseline | None:
        """A uniform guess over a window's positions, for the start and the end alike: the mean ln of the windows'
        lengths."""
        mask = batch.get("attention_mask")
        lengths = mask.sum(dim=1).tolist() if mask is not None else [batch["input_ids"].shape[1]] * len(
            batch["input_ids"])
        return Baseline(sum(math.log(n) for n in lengths) / len(lengths),
                        "mean ln of the windows' positions (a uniform guess of start and end)")

    def count_targets(self, features: Any, cfg: QaConfig) -> Targets | None:
        """Windows whose answer is inside (labelled with its first and last token, not position 0)."""
        read = features.select(range(min(len(features), COUNTED_FEATURES)))
        return Targets(sum(1 for start in read["start_positions"] if start > 0), len(read),
                       "windows that hold their answer")

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        from nlpcli.predict_io import in_batches

        pairs = [(r["question"], r["context"]) for r in request.records]
        if not pairs and request.question and request.context:
            pairs = [(request.question, request.context)]
        if not pairs:
            raise UserError("qa needs a question and a context.",
                            hint='Give --question "..." --context "...", or --file with question and context per line.')
        answerer = Answerer(model_dir)
        kept = []
        for index, (question, context) in enumerate(pairs):
            problem = answerer.problem(question)
            if problem:
                request.reject(index, problem)
            else:
                kept.append((question, context))
        rows = [{"question": question, **answer}
                for batch in in_batches(kept, request.batch_size)
                for (question, _), answer in zip(batch, answerer.answer_batch(batch), strict=True)]
        columns = ["answer", "score", "start", "end"]
        return PredictionTable(columns=columns if len(kept) == 1 else ["question", *columns], rows=rows)


def prediction_rows(predictions: Any, eval_features: Any, raw_eval: Any, cfg: QaConfig) -> list[dict[str, Any]]:
    """Per question: its id, the predicted text ("" for no answer), the gold answer texts (none: no answer)
    and, under --version-2-with-negative, the null score minus the best span's score (the answer is ""
    when it is above --null-score-diff-threshold)."""
    start_logits, end_logits = predictions[:2]
    predicted = answers(start_logits, end_logits, eval_features, raw_eval, cfg)
    rows = []
    for example_id, gold in zip(raw_eval[cfg.id_column], raw_eval[cfg.answers_column], strict=True):
        text, null_score_diff = predicted[example_id]
        row = {"id": example_id, "prediction": text, "references": list(gold["text"])}
        if cfg.version_2_with_negative:
            row["null_score_diff"] = null_score_diff
        rows.append(row)
    return rows

def score_rows(rows: list[dict[str, Any]], with_negative: bool) -> dict[str, float]:
    from nlpcli.metrics.squad import squad_scores

    return squad_scores({row["id"]: row["prediction"] for row in rows},
                        {row["id"]: row["references"] for row in rows}, with_negative)


# ---------------------------------------------------------------- predict


class Answerer:
    """A saved qa model answering questions; long contexts are split into windows as in training, with the
    run's saved settings (window, stride, v2 null answers).

    The score is the span's probability in its window (softmax over [CLS] and the context tokens).
    """

    def __init__(self, model_dir: str) -> None:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.cfg = predict_settings(QaConfig, QaTask.name, model_dir)[0]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "right"  # a window's offsets index its logits from position 0
        self.model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")  # as the other tasks' predict
        self.max_length = model_window(self.tokenizer, self.cfg.max_length)
        self.accepted = set(inspect.signature(self.model.forward).parameters) & set(self.tokenizer.model_input_names)

    def problem(self, question: str) -> str | None:
        """Why this question cannot be answered by the model, or None."""
        if question_room(self.tokenizer, [question.lstrip()], self.max_length)[0] < 2:
            return f"the question is too long for the model's window of {self.max_length} tokens."
        return None

    def windows(self, question: str, context: str) -> dict[str, list]:
        """The windows of one question and its context, as in training (the stride shrinks for a long question)."""
        room = question_room(self.tokenizer, [question.lstrip()], self.max_length)[0]
        cfg = self.cfg
        record = {cfg.id_column: ["question"], cfg.question_column: [question], cfg.context_column: [context],
                  cfg.answers_column: [{"text": [], "answer_start": []}]}
        return window_features(record, self.tokenizer, columns_of(cfg), self.max_length,
                               min(cfg.doc_stride, room - 1), for_eval=True)

    def answer_batch(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The answers to (question, context) pairs, the windows of them all in one forward pass."""
        import torch

        features = [self.windows(question, context) for question, context in pairs]
        windows = [{k: f[k][w] for k in self.accepted} for f in features for w in range(len(f["input_ids"]))]
        with torch.no_grad():
            output = self.model(**self.tokenizer.pad(windows, return_tensors="pt").to(self.model.device))
        start_logits, end_logits = output.start_logits.cpu().numpy(), output.end_logits.cpu().numpy()
        results, first = [], 0
        for (_, context), f in zip(pairs, features, strict=True):
            last = first + len(f["input_ids"])
            results.append(self.choose(start_logits[first:last], end_logits[first:last], f["offset_mapping"], context))
            first = last
        return results

    def choose(self, start_logits: np.ndarray, end_logits: np.ndarray, offsets: list, context: str) -> dict[str, Any]:
        """The answer of one question from the logits of its windows: the best span, or "" (v2's null answer)."""
        cfg = self.cfg
        windows = [(w, start_logits[w], end_logits[w], offsets[w]) for w in range(len(offsets))]
        best, null_score, null_window = best_span(windows, context, cfg.n_best, cfg.max_answer_length)
        if answers_nothing(best, null_score, cfg.version_2_with_negative, cfg.null_score_diff_threshold):
            probability = span_probability(start_logits[null_window], end_logits[null_window], offsets[null_window],
                                           0, 0)
            return {"answer": "", "score": round(probability, 4), "start": 0, "end": 0}
        w = best.window
        probability = span_probability(start_logits[w], end_logits[w], offsets[w], best.start_token, best.end_token)
        return {"answer": best.text, "score": round(probability, 4), "start": best.start, "end": best.end}
