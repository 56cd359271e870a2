"""Question answering's windows and answers: what turns a question and its context into model inputs, and
the model's logits back into an answer, the same way in training, evaluation and `nlpcli predict`.

- `QaConfig`: the options that shape windows and answers (and qa's columns);
- features: question + context, only the context truncated, into overlapping windows (`--doc-stride`).
  Training windows are labelled with the answer's first/last token, or (0, 0) (the [CLS] token) when the
  answer is not inside the window. Evaluation windows also keep their `example_id` and the character
  offsets of their context tokens (None elsewhere);
- post-processing: the `--n-best` start and end logits of every window of an example, spans up to
  `--max-answer-length` tokens, best score wins; with `--version-2-with-negative` the null answer
  ([CLS] start + end) wins when it beats the best span by more than `--null-score-diff-threshold`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlpcli.config import RunConfig, option
from nlpcli.errors import UserError
from nlpcli.sources.data import READ_BATCH, describe

Offsets = Sequence[Sequence[int] | None]


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


def columns_of(cfg: QaConfig) -> tuple[str, str, str, str]:
    return cfg.id_column, cfg.question_column, cfg.context_column, cfg.answers_column


# ---------------------------------------------------------------- windows and labels


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
    batch: dict[str, list], tokenizer: Any, columns: tuple[str, str, str, str], max_length: int, doc_stride: int,
    for_eval: bool,
) -> dict[str, list]:
    """Tokenized windows with start/end labels; `for_eval` also keeps example_id and context offsets. `columns`:
    `columns_of(cfg)`. Given only what shapes the windows, so that datasets' fingerprint of the map, and so the
    cache a later run reuses, does not change with other options (learning rate, output folder, ...)."""
    id_col, question_col, context_col, answers_col = columns
    encoded = tokenizer(
        [q.lstrip() for q in batch[question_col]],
        batch[context_col],
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
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
            example_ids.append(batch[id_col][source])
            kept_offsets.append(context_offsets(all_offsets[window], sequence_ids))
    features = {**encoded, "start_positions": starts, "end_positions": ends}
    if for_eval:
        features.update(example_id=example_ids, offset_mapping=kept_offsets)
    return features


def model_window(tokenizer: Any, max_length: int | None) -> int:
    """--max-length, or the tokenizer's maximum (384 when it has no sensible one)."""
    if max_length:
        return max_length
    limit = getattr(tokenizer, "model_max_length", 0) or 0
    return limit if 0 < limit <= 100_000 else 384


def check_stride(tokenizer: Any, data: Any, cfg: QaConfig, max_length: int, split: str) -> None:
    """Every window must hold the question and more context tokens than --doc-stride (the questions are tokenized a
    batch at a time: memory does not grow with the data)."""
    row, least = 0, None
    batches = data.select_columns([cfg.question_column]).iter(batch_size=READ_BATCH)
    for start, batch in zip(itertools.count(0, READ_BATCH), batches):
        rooms = question_room(tokenizer, [q.lstrip() for q in batch[cfg.question_column]], max_length)
        first = int(np.argmin(rooms))
        if least is None or rooms[first] < least:
            row, least = start + first, rooms[first]
    if least is not None and least <= cfg.doc_stride:
        raise UserError(
            f"{describe(cfg, split)}, record {data[row][cfg.id_column]!r}: with --max-length {max_length} the "
            f"question leaves {least} context tokens per window, not more than --doc-stride {cfg.doc_stride}.",
            hint="Lower --doc-stride or raise --max-length.",
        )


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


def span_probability(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Offsets, start: int, end: int) -> float:
    """P(start) * P(end), each a softmax over [CLS] (position 0) and the window's context tokens."""
    allowed = [0] + [i for i, o in enumerate(offsets) if o is not None]

    def softmax_at(logits: np.ndarray, position: int) -> float:
        values = logits[allowed] - logits[allowed].max()
        return float(np.exp(logits[position] - logits[allowed].max()) / np.exp(values).sum())

    return softmax_at(start_logits, start) * softmax_at(end_logits, end)
