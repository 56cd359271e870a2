"""Token classification (NER): label list, word -> sub-token label alignment, seqeval metric, pipeline.

Without --labels the label list is every label of train and validation together, in `label_sort_key`
order; labels only validation has are named (with their counts) in a warning. Evaluation is word-level:
each word's prediction is the label at its first sub-token, scored with seqeval against the word's gold
label, and eval_predictions.jsonl holds those lists (`tokens`, `prediction`, `reference`) per sentence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from nlpcli.config import RunConfig, option
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.sources.data import Sample, describe, map_workers, rows_of, values_of
from nlpcli.tasks.base import (
    Baseline,
    PredictionTable,
    PredictRequest,
    Prepared,
    Task,
    TaskSetup,
    build_pipeline,
    padding_multiple,
    pipeline_outputs,
)
from nlpcli.tasks.examples import IGNORE, batch_row, uniform_guess, word_rows
from nlpcli.tasks.labels import given_labels


@dataclass
class NerConfig(RunConfig):
    text_column: str | None = option("tokens", "Column holding the words (a list, or a space-separated string).")
    label_column: str | None = option("ner_tags", "Column holding one label (name or class id) per word.")
    label_all_tokens: bool = option(
        True, "Label every sub-token (B- becomes I- after the first); off: only the first sub-token."
    )
    labels: list[str] | None = option(
        None, "Label names in id order: comma-separated, or a file with one label per line."
    )


def as_list(value: Any) -> list:
    """Words or tags given as a list, or as one space-separated string (CSV files)."""
    return value.split() if isinstance(value, str) else list(value)


def label_sort_key(label: str) -> tuple:
    """'O' first, then grouped by entity type, B- before I-."""
    return (label != "O", label[2:], label[:2])


def continuation_ids(labels: list[str]) -> list[int]:
    """For each label id, the id a continuation sub-token gets: B-X -> I-X when I-X exists."""
    index = {name: i for i, name in enumerate(labels)}
    return [index.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(labels)]


def align_labels_with_tokens(
    word_labels: list[int], word_ids: list[int | None], continuation: list[int], label_all_tokens: bool
) -> list[int]:
    """Word-level label ids -> one id per sub-token; special tokens get -100.

    The first sub-token of a word keeps the word's label. Later sub-tokens get the continuation label
    (B-X -> I-X) when `label_all_tokens`, else -100 (ignored by the loss and the metric).
    """
    aligned = []
    previous = None
    for word_id in word_ids:
        if word_id is None:
            aligned.append(IGNORE)
        elif word_id != previous:
            aligned.append(word_labels[word_id])
        else:
            aligned.append(continuation[word_labels[word_id]] if label_all_tokens else IGNORE)
        previous = word_id
    return aligned


def mixed_record(label_lists: list) -> int:
    """The first record whose labels are not of the kind (names or class ids) the first labels are."""
    kind = None
    for row, tags in enumerate(label_lists):
        for tag in as_list(tags):
            kind = isinstance(tag, str) if kind is None else kind
            if isinstance(tag, str) != kind:
                return row
    return 0


def label_names(raw: Any, cfg: NerConfig, pretrained_config: Any | None) -> list[str]:
    """--labels, the data's ClassLabel names, a saved model's labels (--eval-only), or every label of train and
    validation together, in `label_sort_key` order."""
    given = given_labels(cfg.labels, "O,B-PER,I-PER")
    if given is not None:
        return given
    first = raw["train"] if "train" in raw else raw["validation"]
    feature = first.features[cfg.label_column]
    names = getattr(getattr(feature, "feature", None), "names", None)
    if names:
        return list(names)
    saved = dict(getattr(pretrained_config, "id2label", None) or {})
    if cfg.eval_only and saved and not all(str(v).startswith("LABEL_") for v in saved.values()):
        return [saved[i] for i in sorted(saved)]
    scanned = {split: raw[split] for split in ("train", "validation") if split in raw}
    counts = {split: Counter(tag for tags in values_of(data, cfg.label_column) for tag in as_list(tags))
              for split, data in scanned.items()}
    for split, data in scanned.items():
        if len({isinstance(v, str) for v in counts[split]}) > 1:
            raise UserError(f"{describe(cfg, split)}, record {mixed_record(data[cfg.label_column]) + 1}: labels "
                            "mix names and class ids; use one kind throughout.")
    values = set().union(*counts.values())
    if values and not all(isinstance(v, str) for v in values):
        split = next(split for split, seen in counts.items() if any(not isinstance(v, str) for v in seen))
        raise UserError(
            f"{describe(cfg, split)}: labels are class ids and the data set has no names for them.",
            hint="Give the names in id order with --labels O,B-PER,I-PER,...",
        )
    if "train" in counts and "validation" in counts:
        only_eval = sorted(set(counts["validation"]) - set(counts["train"]), key=label_sort_key)
        if only_eval:
            named = ", ".join(f"{label} ({counts['validation'][label]})" for label in only_eval)
            warn(f"{describe(cfg, 'validation')} has labels the training data never has: {named}; they are in "
                 "the label list, but the model cannot learn them.")
    return sorted(values, key=label_sort_key)


def value_problem(value: Any, column: str, what: str) -> str | None:
    """What is wrong with a record's words or labels as values (not a list, words that are not strings), or
    None."""
    if isinstance(value, str):
        return None
    if not isinstance(value, list | tuple):
        return f"'{column}' must be a list of {what} (or a space-separated string), got {_shown(value)}"
    for index, item in enumerate(value):
        if what == "words" and not isinstance(item, str):
            return f"'{column}' must hold strings; word {index + 1} is {_shown(item)}"
        if what == "labels" and (item is None or isinstance(item, bool) or not isinstance(item, str | int)):
            return f"'{column}' must hold label names or class ids; label {index + 1} is {_shown(item)}"
    return None


def _shown(value: Any) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


def record_problem(words: list, tags: list, known: set[str], labels: list[str] | tuple[str, ...]) -> str | None:
    """What is wrong with one record's labels, or None."""
    if len(words) != len(tags):
        return f"{len(words)} words but {len(tags)} labels"
    for tag in tags:
        if isinstance(tag, str) and tag not in known:
            return f"label '{tag}' is not in the label list ({', '.join(labels)})"
        if not isinstance(tag, str) and not 0 <= int(tag) < len(labels):
            return f"label id {tag} not in 0..{len(labels) - 1}"
    return None


def label_ids(labels: list[str] | tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(labels)}


def tokenize_and_align(batch: dict[str, list], tokenizer: Any, text_column: str, label_column: str,
                       max_length: int | None, label2id: dict[str, int], continuation: list[int],
                       label_all_tokens: bool, for_eval: bool) -> dict[str, list]:
    """The features of a batch of records: sub-tokens and their label ids (`for_eval`: also each token's word).
    Given only what shapes the features, so that datasets' fingerprint of the map, and so the cache a later run
    reuses, does not change with other options (learning rate, output folder, ...)."""
    words = [as_list(value) for value in batch[text_column]]
    encoded = tokenizer(words, truncation=True, is_split_into_words=True, max_length=max_length)
    encoded["labels"] = [
        align_labels_with_tokens([label2id[t] if isinstance(t, str) else int(t) for t in as_list(tags)],
                                 encoded.word_ids(i), continuation, label_all_tokens)
        for i, tags in enumerate(batch[label_column])
    ]
    if for_eval:  # which word each token belongs to (-1: special token), for word-level evaluation
        encoded["word_ids"] = [[-1 if w is None else w for w in encoded.word_ids(i)] for i in range(len(words))]
    return encoded


class NerTask(Task):
    name = "ner"
    help = "Token classification (NER): fine-tune on conll2003-style data, seqeval metrics."
    config_class = NerConfig
    model_class = "AutoModelForTokenClassification"
    pipeline_task = "token-classification"
    evaluation = "logits"
    best_scores = {"eval_overall_f1": 1.0, "eval_overall_accuracy": 1.0}  # seqeval: 0 to 1
    search_space = {"label_all_tokens": {"type": "categorical", "choices": [True, False]}}
    sample = Sample(
        files={"train": "conll2003_sample.jsonl", "validation": "conll2003_sample.jsonl"},
        rename={"words": "tokens", "ner": "ner_tags"},
        text_format="conll",
        description="10 conll2003 sentences (train and validation are the same sentences)",
    )
    demo_request = PredictRequest(texts=["My name is Sylvain and I work at Hugging Face in Brooklyn."])

    def setup(self, raw: Any, cfg: NerConfig, pretrained_config: Any | None) -> TaskSetup:
        """The label list, and every record of every split checked against it: words that are not strings are
        refused, records without words are named in a warning (they carry no label, so they add nothing)."""
        for split, data in raw.items():
            for row, (words, tags) in enumerate(rows_of(data, cfg.text_column, cfg.label_column)):
                problem = value_problem(words, cfg.text_column, "words") or value_problem(tags, cfg.label_column,
                                                                                           "labels")
                if problem:
                    raise UserError(f"{describe(cfg, split)}, record {row + 1}: {problem}.")
        labels = label_names(raw, cfg, pretrained_config)
        known = set(labels)
        for split, data in raw.items():
            empty = []
            for row, (words, tags) in enumerate(rows_of(data, cfg.text_column, cfg.label_column)):
                problem = record_problem(as_list(words), as_list(tags), known, labels)
                if problem:
                    raise UserError(f"{describe(cfg, split)}, record {row + 1}: {problem}.")
                if not as_list(words):
                    empty.append(row + 1)
            if empty:
                shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
                warn(f"{describe(cfg, split)}, record {shown}: no words ({len(empty)} such record(s)); kept, but "
                     "they carry no label and add nothing to training or scores.")
        model_kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label_ids(labels)}
        return TaskSetup(model_kwargs=model_kwargs, labels=tuple(labels))

    def without_labels(self, test: Any, cfg: NerConfig) -> Any | None:
        """Placeholder label ids (0) for every word of a test split that has words but no labels."""
        if cfg.text_column not in test.column_names or cfg.label_column in test.column_names:
            return None

        def placeholders(batch: dict[str, list]) -> dict[str, list]:
            return {cfg.label_column: [[0] * len(as_list(words)) for words in batch[cfg.text_column]]}

        return test.map(placeholders, batched=True)

    def prepare(self, raw: Any, tokenizer: Any, cfg: NerConfig, setup: TaskSetup) -> Prepared:
        shape = {"tokenizer": tokenizer, "text_column": cfg.text_column, "label_column": cfg.label_column,
                 "max_length": cfg.max_length, "label2id": label_ids(setup.labels),
                 "continuation": continuation_ids(list(setup.labels)), "label_all_tokens": cfg.label_all_tokens}
        features = {
            split: data.map(tokenize_and_align, batched=True, remove_columns=data.column_names,
                            fn_kwargs={**shape, "for_eval": split != "train"}, desc=f"Tokenizing {split}",
                            **map_workers(cfg, data))
            for split, data in raw.items()
        }
        return Prepared(features.get("train"), features["validation"],
                        prediction_rows=partial(prediction_rows, cfg=cfg, labels=setup.labels),
                        score_rows=score_rows)

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=padding_multiple())

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: NerConfig,
                         setup: TaskSetup) -> dict[str, Any]:
        """The first sentence, word by word: its label, and its sub-tokens with the label each is trained on
        (-100: not scored, as special tokens and, without --label-all-tokens, a word's later sub-tokens)."""
        words, tags = as_list(raw[0][cfg.text_column]), as_list(raw[0][cfg.label_column])
        word_ids = tokenizer(words, is_split_into_words=True, truncation=True, max_length=cfg.max_length).word_ids()
        rows = word_rows(words, [label_name(tag, setup.labels) for tag in tags], word_ids,
                         tokenizer.convert_ids_to_tokens(batch_row(batch, 0)["input_ids"]),
                         batch_row(batch, 0)["labels"], setup.labels)
        return {"sentence": " ".join(words), "words": rows}

    def baseline_loss(self, batch: dict[str, Any], model_config: Any) -> Baseline | None:
        return uniform_guess(model_config)

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        if not request.texts:
            raise UserError("Give a text to tag, or --file.",
                            hint=f'For example: nlpcli predict ner {model_dir} "My name is Sylvain."')
        tagger = build_pipeline(self.pipeline_task, model_dir, aggregation_strategy="simple")
        records, rows = [], []
        for text, entities in pipeline_outputs(tagger, request.texts, request.batch_size):
            found = [
                {
                    "entity": entity["entity_group"],
                    "word": entity["word"],
                    "score": round(float(entity["score"]), 4),
                    "start": int(entity["start"]),
                    "end": int(entity["end"]),
                }
                for entity in entities
            ]
            records.append({"text": text, "entities": found})  # no entity: an empty list, still a line
            rows += [{"text": text, **entity} for entity in found]
        columns = ["entity", "word", "score", "start", "end"]
        return PredictionTable(columns=columns if len(request.texts) == 1 else ["text", *columns], rows=rows,
                               records=records)


def prediction_rows(
    predictions: Any, eval_features: Any, raw_eval: Any, cfg: NerConfig, labels: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Per sentence: the words the model saw (truncation may cut the last ones), the label predicted at
    each word's first sub-token and the word's gold label."""
    import numpy as np

    predicted_ids = np.argmax(predictions, axis=-1)
    rows = []
    sentences = zip(eval_features["word_ids"], raw_eval[cfg.text_column], raw_eval[cfg.label_column],
                    strict=True)
    for row, (word_ids, words, tags) in enumerate(sentences):
        first: dict[int, int] = {}  # word -> position of its first sub-token
        for position, word in enumerate(word_ids):
            if word >= 0:
                first.setdefault(word, position)
        words, tags = as_list(words), as_list(tags)
        rows.append({
            "tokens": [words[w] for w in first],
            "prediction": [labels[int(predicted_ids[row][p])] for p in first.values()],
            "reference": [label_name(tags[w], labels) for w in first],
        })
    return rows


def label_name(tag: Any, labels: tuple[str, ...]) -> str:
    return tag if isinstance(tag, str) else labels[int(tag)]


def score_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    from nlpcli.metrics.seqeval_scores import seqeval_scores

    return seqeval_scores([row["reference"] for row in rows], [row["prediction"] for row in rows])
