"""Extractive question answering (SQuAD, SQuAD v2): windows over long contexts, span post-processing.

- Records: `id`, `question`, `context`, `answers: {text: [...], answer_start: [...]}` (flat), or the
  official nested file layout (`data -> paragraphs -> qas`, with `--field data`), flattened here.
  Every record is checked; a bad one stops the run naming its id, or is skipped and counted.
- Features: question + context, only the context truncated, into overlapping windows
  (`--doc-stride`). Training windows are labelled with the answer's first/last token, or (0, 0)
  (the [CLS] token) when the answer is not inside the window. Evaluation windows also keep their
  `example_id` and the character offsets of their context tokens (None elsewhere).
- Post-processing: the `--n-best` start and end logits of every window of an example, spans up to
  `--max-answer-length` tokens, best score wins; with `--version-2-with-negative` the null answer
  ([CLS] start + end) wins when it beats the best span by more than `--null-score-diff-threshold`.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlpcli.config import RunConfig, option, saved_config
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.sources.data import Sample, check_columns, describe
from nlpcli.tasks.base import PredictionTable, PredictRequest, Task

Offsets = Sequence[Sequence[int] | None]
NO_ANSWER_HINT = "unanswerable questions need --version-2-with-negative"


@dataclass
class QaConfig(RunConfig):
    max_length: int | None = option(
        None, "Tokens per window (question, context and special tokens); longer contexts are split into "
        "overlapping windows.", at_least=1)
    doc_stride: int = option(128, "Tokens shared by consecutive windows when a context is split.", at_least=0)
    n_best: int = option(20, "Start and end candidates per window considered by post-processing.", at_least=1)
    max_answer_length: int = option(30, "Longest answer considered, in tokens.", at_least=1)
    version_2_with_negative: bool = option(False, "SQuAD v2: questions may have no answer (empty answer lists).")
    null_score_diff_threshold: float = option(
        0.0, "v2: answer nothing when the null score beats the best span's score by more than this."
    )
    skip_bad_records: bool = option(False, "Skip (and count) bad records instead of stopping at the first one.")
    question_column: str = option("question", "Column holding the question.")
    context_column: str = option("context", "Column holding the context passage.")
    answers_column: str = option("answers", "Column holding {text: [...], answer_start: [...]}.")
    id_column: str = option("id", "Column holding the record id.")


# ---------------------------------------------------------------- records: layout and checks


def columns_of(cfg: QaConfig) -> tuple[str, str, str, str]:
    return cfg.id_column, cfg.question_column, cfg.context_column, cfg.answers_column


def flatten_nested(batch: dict[str, list], cfg: QaConfig) -> dict[str, list]:
    """Official SQuAD file layout (one row per article: paragraphs -> qas) -> one row per question."""
    id_col, question_col, context_col, answers_col = columns_of(cfg)
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
    rows = zip(data[id_col], data[question_col], data[context_col], data[answers_col], strict=True)
    for row, (record_id, question, context, answers) in enumerate(rows):
        problem = record_problem(question, context, answers, not cfg.version_2_with_negative)
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


# ---------------------------------------------------------------- features: windows and labels


def context_token_range(sequence_ids: Sequence[int | None]) -> tuple[int, int]:
    """First and last token index of the context (sequence 1) in one window."""
    positions = [i for i, s in enumerate(sequence_ids) if s == 1]
    return positions[0], positions[-1]


def answer_token_span(
    offsets: Offsets, sequence_ids: Sequence[int | None], start_char: int, end_char: int
) -> tuple[int, int]:
    """Token positions of the answer's first and last character; (0, 0) when it is not all inside."""
    first, last = context_token_range(sequence_ids)
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = max(i for i in range(first, last + 1) if offsets[i][0] <= start_char)
    end = min(i for i in range(first, last + 1) if offsets[i][1] >= end_char)
    return start, end


def context_offsets(offsets: Offsets, sequence_ids: Sequence[int | None]) -> list[tuple[int, int] | None]:
    """Character offsets of the context tokens; None for question, special and padding tokens."""
    return [tuple(o) if s == 1 else None for o, s in zip(offsets, sequence_ids, strict=True)]


def question_room(tokenizer: Any, questions: list[str], max_length: int) -> list[int]:
    """Tokens left for the context in one window, per question."""
    lengths = tokenizer(questions, add_special_tokens=False, return_length=True)["length"]
    return [max_length - n - tokenizer.num_special_tokens_to_add(pair=True) for n in lengths]


def window_features(
    batch: dict[str, list], tokenizer: Any, cfg: QaConfig, max_length: int, for_eval: bool
) -> dict[str, list]:
    """Tokenized windows with start/end labels; `for_eval` also keeps example_id and context offsets."""
    _, question_col, context_col, answers_col = columns_of(cfg)
    encoded = tokenizer(
        [q.lstrip() for q in batch[question_col]],
        batch[context_col],
        truncation="only_second",
        max_length=max_length,
        stride=cfg.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    sources = encoded.pop("overflow_to_sample_mapping")
    all_offsets = encoded.pop("offset_mapping")
    starts, ends, example_ids, kept_offsets = [], [], [], []
    for window, source in enumerate(sources):
        sequence_ids = encoded.sequence_ids(window)
        answers = batch[answers_col][source]
        span = (0, 0)
        if answers["text"]:
            start_char, text = answers["answer_start"][0], answers["text"][0]
            span = answer_token_span(all_offsets[window], sequence_ids, start_char, start_char + len(text))
        starts.append(span[0])
        ends.append(span[1])
        if for_eval:
            example_ids.append(batch[cfg.id_column][source])
            kept_offsets.append(context_offsets(all_offsets[window], sequence_ids))
    features = {**encoded, "start_positions": starts, "end_positions": ends}
    if for_eval:
        features.update(example_id=example_ids, offset_mapping=kept_offsets)
    return features


# ---------------------------------------------------------------- post-processing


@dataclass
class Span:
    """A candidate answer: its text, character range in the context, score and where it was found."""

    text: str
    start: int
    end: int
    score: float  # start logit + end logit
    window: int
    start_token: int
    end_token: int


def window_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: Offsets, context: str,
    n_best: int, max_answer_length: int, window: int = 0,
) -> list[Span]:
    """Valid spans from the `n_best` best start and end tokens of one window.

    Only context tokens (offsets not None) count; logits beyond the window's length (padding) are ignored.
    """
    valid = [i for i, o in enumerate(offsets[: len(start_logits)]) if o is not None]
    if not valid:
        return []
    top_starts = sorted(valid, key=lambda i: start_logits[i], reverse=True)[:n_best]
    top_ends = sorted(valid, key=lambda i: end_logits[i], reverse=True)[:n_best]
    spans = []
    for s in top_starts:
        for e in top_ends:
            if s <= e < s + max_answer_length:
                begin, finish = offsets[s][0], offsets[e][1]
                score = float(start_logits[s] + end_logits[e])
                spans.append(Span(context[begin:finish], begin, finish, score, window, s, e))
    return spans


def best_span(
    windows: Iterable[tuple[int, np.ndarray, np.ndarray, Offsets]], context: str, n_best: int, max_answer_length: int
) -> tuple[Span | None, float, int]:
    """(best span over all windows of one example, lowest null score, window with that null score)."""
    best: Span | None = None
    null_score, null_window = float("inf"), -1
    for window, start_logits, end_logits, offsets in windows:
        score = float(start_logits[0] + end_logits[0])
        if score < null_score:
            null_score, null_window = score, window
        for span in window_spans(start_logits, end_logits, offsets, context, n_best, max_answer_length, window):
            if best is None or span.score > best.score:
                best = span
    return best, null_score, null_window


def answers_nothing(best: Span | None, null_score: float, with_negative: bool, threshold: float) -> bool:
    """v2 decision: no span at all, or the null score beats the best span by more than `threshold`."""
    if best is None:
        return True
    return with_negative and null_score - best.score > threshold


def answers(
    start_logits: np.ndarray, end_logits: np.ndarray, eval_features: Any, raw_eval: Any, cfg: QaConfig
) -> dict[str, tuple[str, float | None]]:
    """Example id -> (predicted answer text, "" for no answer; null score minus the best span's score, None
    when no span was found), in data order, from the logits of every window."""
    windows_of: dict[str, list[int]] = defaultdict(list)
    for window, example_id in enumerate(eval_features["example_id"]):
        windows_of[example_id].append(window)
    offsets = list(eval_features["offset_mapping"])
    predictions = {}
    for example_id, context in zip(raw_eval[cfg.id_column], raw_eval[cfg.context_column], strict=True):
        windows = ((w, start_logits[w], end_logits[w], offsets[w]) for w in windows_of[example_id])
        best, null_score, _ = best_span(windows, context, cfg.n_best, cfg.max_answer_length)
        nothing = answers_nothing(best, null_score, cfg.version_2_with_negative, cfg.null_score_diff_threshold)
        predictions[example_id] = ("" if nothing else best.text, None if best is None else null_score - best.score)
    return predictions


# ---------------------------------------------------------------- the task


class QaTask(Task):
    name = "qa"
    help = "Extractive question answering (SQuAD, SQuAD v2): answer spans, exact match and F1."
    config_class = QaConfig
    model_class = "AutoModelForQuestionAnswering"
    pipeline_task = "question-answering"  # transformers 5 dropped this pipeline: predict() does its work
    evaluation = "logits"
    sample = Sample(
        files={"train": "squad_v2_sample.json", "validation": "squad_v2_sample.json"},
        json_field="data",
        description="14 squad_v2 records, 6 unanswerable (train and validation are the same records)",
    )
    predict_fields = ("question", "context")
    unused_options = ("text_column", "label_column")  # its columns: --question-column, --context-column, ...
    demo_request = PredictRequest(
        question="What branch of theoretical computer science deals with broadly classifying computational problems "
        "by difficulty and class of relationship?",
        context="Computational complexity theory is a branch of the theory of computation in theoretical computer "
        "science that focuses on classifying computational problems according to their inherent difficulty, and "
        "relating those classes to each other.",
    )

    reference_keys = ("references",)
    cfg: QaConfig

    def required_columns(self, cfg: QaConfig) -> list[str]:
        return list(columns_of(cfg))

    def normalize(self, raw: Any, cfg: QaConfig) -> Any:
        for split, data in list(raw.items()):
            if "paragraphs" in data.column_names and cfg.question_column not in data.column_names:
                raw[split] = data.map(
                    flatten_nested, batched=True, fn_kwargs={"cfg": cfg}, remove_columns=data.column_names,
                    desc=f"Flattening {split}",
                )
            elif "data" in data.column_names and cfg.question_column not in data.column_names:
                raise UserError(f"{describe(cfg, split)}: the records are under the key 'data'.",
                                hint="Add --field data.")
        check_columns(raw, self.required_columns(cfg), cfg)
        for split in list(raw):
            raw[split] = clean_split(raw[split], cfg, split)
        return raw

    def preset_texts(self, raw: Any, cfg: QaConfig) -> Iterable[str]:
        data = raw["train"] if "train" in raw else raw["validation"]
        yield from data[cfg.question_column]
        yield from dict.fromkeys(data[cfg.context_column])  # each distinct context once

    def prepare(self, raw: Any, tokenizer: Any, cfg: QaConfig) -> tuple[Any, Any]:
        self.cfg = cfg
        max_length = model_window(tokenizer, cfg.max_length)
        for split, data in raw.items():
            check_stride(tokenizer, data, cfg, max_length, split)
        features = {
            split: data.map(
                window_features, batched=True, remove_columns=data.column_names, desc=f"Tokenizing {split}",
                fn_kwargs={"tokenizer": tokenizer, "cfg": cfg, "max_length": max_length,
                           "for_eval": split == "validation"},
            )
            for split, data in raw.items()
        }
        return features.get("train"), features["validation"]

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def prediction_rows(self, predictions: Any, eval_features: Any, raw_eval: Any) -> list[dict[str, Any]]:
        """Per question: its id, the predicted text ("" for no answer), the gold answer texts (none: no answer)
        and, under --version-2-with-negative, the null score minus the best span's score (the answer is ""
        when it is above --null-score-diff-threshold)."""
        start_logits, end_logits = predictions[:2]
        predicted = answers(start_logits, end_logits, eval_features, raw_eval, self.cfg)
        rows = []
        for example_id, gold in zip(raw_eval[self.cfg.id_column], raw_eval[self.cfg.answers_column], strict=True):
            text, null_score_diff = predicted[example_id]
            row = {"id": example_id, "prediction": text, "references": list(gold["text"])}
            if self.cfg.version_2_with_negative:
                row["null_score_diff"] = null_score_diff
            rows.append(row)
        return rows

    def score_rows(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        from nlpcli.metrics.squad import squad_scores

        return squad_scores({row["id"]: row["prediction"] for row in rows},
                            {row["id"]: row["references"] for row in rows}, self.cfg.version_2_with_negative)

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


# ---------------------------------------------------------------- helpers for prepare and predict


def model_window(tokenizer: Any, max_length: int | None) -> int:
    """--max-length, or the tokenizer's maximum (384 when it has no sensible one)."""
    if max_length:
        return max_length
    limit = getattr(tokenizer, "model_max_length", 0) or 0
    return limit if 0 < limit <= 100_000 else 384


def check_stride(tokenizer: Any, data: Any, cfg: QaConfig, max_length: int, split: str) -> None:
    """Every window must hold the question and more context tokens than --doc-stride."""
    rooms = question_room(tokenizer, [q.lstrip() for q in data[cfg.question_column]], max_length)
    row = int(np.argmin(rooms))
    if rooms[row] <= cfg.doc_stride:
        raise UserError(
            f"{describe(cfg, split)}, record {data[row][cfg.id_column]!r}: with --max-length {max_length} the "
            f"question leaves {rooms[row]} context tokens per window, not more than --doc-stride {cfg.doc_stride}.",
            hint="Lower --doc-stride or raise --max-length.",
        )


class Answerer:
    """A saved qa model answering questions; long contexts are split into windows as in training, with the
    run's saved settings (window, stride, v2 null answers).

    The score is the span's probability in its window (softmax over [CLS] and the context tokens).
    """

    def __init__(self, model_dir: str) -> None:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.cfg = saved_config(QaConfig, model_dir)
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
        import dataclasses

        room = question_room(self.tokenizer, [question.lstrip()], self.max_length)[0]
        cfg = dataclasses.replace(self.cfg, doc_stride=min(self.cfg.doc_stride, room - 1))
        record = {cfg.id_column: ["question"], cfg.question_column: [question], cfg.context_column: [context],
                  cfg.answers_column: [{"text": [], "answer_start": []}]}
        return window_features(record, self.tokenizer, cfg, self.max_length, for_eval=True)

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


def span_probability(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Offsets, start: int, end: int) -> float:
    """P(start) * P(end), each a softmax over [CLS] (position 0) and the window's context tokens."""
    allowed = [0] + [i for i, o in enumerate(offsets) if o is not None]

    def softmax_at(logits: np.ndarray, position: int) -> float:
        values = logits[allowed] - logits[allowed].max()
        return float(np.exp(logits[position] - logits[allowed].max()) / np.exp(values).sum())

    return softmax_at(start_logits, start) * softmax_at(end_logits, end)
