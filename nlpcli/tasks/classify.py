"""Text classification (sequence classification): single texts or text pairs, one label per text or several
(--multi-label), any AutoModelForSequenceClassification checkpoint, a preset, or a saved run as the start.

- Labels: names or class ids. The label list is --labels, the data set's ClassLabel names, a saved model's
  labels (--eval-only), or the training data's labels (names sorted; ids without names are named by their
  number, 0 to the largest). A label outside that list, in any split, stops the run naming the record.
- With --multi-label a record holds a list of labels (or names separated by commas); the model scores each
  class on its own (sigmoid, binary cross-entropy: problem_type multi_label_classification) and predicts the
  classes whose probability reaches --threshold.
- A starting model without this head (an `nlpcli mlm` run, a base checkpoint) keeps its encoder and gets a new
  head: said in one line instead of transformers' load report.
- Evaluation writes eval_predictions.jsonl (text, prediction, reference, probabilities), from which every
  figure recomputes (nlpcli.metrics.classification).
The settings, record checks and label list are in classify_data.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from nlpcli.config import RunConfig
from nlpcli.config_layers import predict_settings
from nlpcli.console import say, warn
from nlpcli.errors import UserError
from nlpcli.sources import data as sources
from nlpcli.sources.data import Sample, describe
from nlpcli.tasks.base import PredictionTable, PredictRequest, Prepared, Task, TaskSetup, padding_multiple
from nlpcli.tasks.classify_data import (
    ClassifyConfig,
    check_records,
    checked_labels,
    head_note,
    label_ids,
    label_list,
    label_values,
    target,
    where,
)
from nlpcli.tasks.examples import COUNTED_FEATURES, Baseline, Targets, batch_row, decode, unigram_entropy, unpadded

TOP_K = 5  # labels `predict` shows per text


def encode(batch: dict[str, list], tokenizer: Any, columns: tuple[str, str | None, str], max_length: int | None,
           labels: list[str], multi_label: bool) -> dict[str, list]:
    """A batch of texts (or pairs) tokenized, with their label ids. Given only what shapes the features, so that
    datasets' fingerprint of the map, and so the cache a later run reuses, does not change with other options."""
    text, pair, label = columns
    encoded = tokenizer(*([batch[text]] + ([batch[pair]] if pair else [])), truncation=True, max_length=max_length)
    encoded["labels"] = [target(value, labels, multi_label) for value in batch[label]]
    return encoded


class ClassifyTask(Task):
    name = "classify"
    help = "Text classification: single texts or pairs, one label or several; accuracy, F1 per class."
    config_class = ClassifyConfig
    model_class = "AutoModelForSequenceClassification"
    pipeline_task = "text-classification"
    evaluation = "logits"
    best_scores = {"eval_accuracy": 1.0, "eval_f1_macro": 1.0}  # 0 to 1, over the classes the batch has
    sample = Sample(
        files={"train": "wiki_topics_train.jsonl", "validation": "wiki_topics_dev.jsonl"},
        description="200 sentences of two Wikipedia articles (160 train, 40 validation), labelled with their article",
    )
    demo_request = PredictRequest(texts=["Many anarchists reject the authority of the state."])
    reads_text_pairs = True
    resumable_options = ("threshold",)  # it only decides which classes a multi-label evaluation predicts

    def required_columns(self, cfg: ClassifyConfig) -> list[str]:
        return [c for c in (cfg.text_column, cfg.text_pair_column, cfg.label_column) if c]

    def without_labels(self, test: Any, cfg: ClassifyConfig) -> Any | None:
        """Placeholder labels (class 0) for a test split that has its text column(s) and no label column."""
        texts = [c for c in (cfg.text_column, cfg.text_pair_column) if c]
        if cfg.label_column in test.column_names or not all(c in test.column_names for c in texts):
            return None
        return test.add_column(cfg.label_column, [[0] if cfg.multi_label else 0] * len(test))

    def setup(self, raw: Any, cfg: ClassifyConfig, pretrained_config: Any | None) -> TaskSetup:
        values = checked_labels(raw, cfg)
        labels = label_list(raw, values, cfg, pretrained_config)
        check_records(values, labels, cfg)
        if len(labels) < 2 and not cfg.multi_label:
            raise UserError(f"{describe(cfg, 'train' if 'train' in raw else 'validation')}: one label only "
                            f"({', '.join(labels)}); a classifier needs two or more.",
                            hint="Name every class with --labels, or give data with several labels.")
        for split, data in raw.items():
            blank = [row for row, text in enumerate(data[cfg.text_column]) if not text.strip()]
            if blank:
                warn(f"{where(cfg, split, blank[0])}: blank text ({len(blank)} such record(s) in "
                     f"{describe(cfg, split)}); kept.")
        note = head_note(cfg.model, pretrained_config, labels)
        if note:
            say(f"note: {note}", markup=False)
        problem = "multi_label_classification" if cfg.multi_label else "single_label_classification"
        model_kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                        "label2id": {name: i for i, name in enumerate(labels)}, "problem_type": problem}
        return TaskSetup(model_kwargs=model_kwargs, labels=tuple(labels))

    def preset_texts(self, raw: Any, cfg: ClassifyConfig) -> Iterable[str]:
        data = raw["train"] if "train" in raw else raw["validation"]
        yield from data[cfg.text_column]
        if cfg.text_pair_column:
            yield from data[cfg.text_pair_column]

    def load_model(self, cfg: ClassifyConfig, model_kwargs: dict[str, Any], texts: Callable[[], Iterable[str]],
                   tokenizer_dir: Path) -> tuple[Any, Any]:
        """The usual model and tokenizer; a checkpoint without a padding token (GPT-2 style) pads with its end
        token, which the model is told (it finds each text's last token by it)."""
        from nlpcli.sources import models

        model, tokenizer = models.load_model_and_tokenizer(cfg.model, self.model_class, model_kwargs, texts,
                                                           cfg.preset_vocab_size, tokenizer_dir)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def prepare(self, raw: Any, tokenizer: Any, cfg: ClassifyConfig, setup: TaskSetup) -> Prepared:
        shaping = {"tokenizer": tokenizer, "columns": (cfg.text_column, cfg.text_pair_column, cfg.label_column),
                   "max_length": cfg.max_length, "labels": list(setup.labels), "multi_label": cfg.multi_label}
        features = {split: data.map(encode, batched=True, fn_kwargs=shaping, remove_columns=data.column_names,
                                    desc=f"Tokenizing {split}", **sources.map_workers(cfg, data))
                    for split, data in raw.items()}
        rows = partial(prediction_rows, cfg=cfg, labels=setup.labels)
        return Prepared(features.get("train"), features["validation"], prediction_rows=rows,
                        score_rows=partial(score_rows, labels=setup.labels, multi=cfg.multi_label))

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=padding_multiple())

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: ClassifyConfig,
                         setup: TaskSetup) -> dict[str, Any]:
        """The first text (a pair: both, as the model reads them) and the label(s) it is trained on."""
        row = batch_row(batch, 0)
        labels = row["labels"]
        shown = [setup.labels[i] for i, on in enumerate(labels) if on] if cfg.multi_label else setup.labels[labels]
        return {"text": decode(tokenizer, unpadded(row)), "label": shown}

    def baseline_loss(self, batch: dict[str, Any], model_config: Any) -> Baseline | None:
        """Always answering the batch's label frequencies: their entropy (cross-entropy), or with several labels per
        text the mean over classes of each class's binary entropy (binary cross-entropy)."""
        labels = batch["labels"].tolist()
        if not labels or not isinstance(labels[0], list):
            return Baseline(unigram_entropy(labels), f"entropy of the labels of the batch's {len(labels)} texts")
        shares = [sum(column) / len(labels) for column in zip(*labels, strict=True)]
        entropies = [-(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0 for p in shares]
        return Baseline(sum(entropies) / len(entropies), f"mean binary entropy of the {len(shares)} classes' shares "
                                                         f"of the batch's {len(labels)} texts")

    def count_targets(self, features: Any, cfg: ClassifyConfig) -> Targets | None:
        """Every text has a label to learn; with several labels per text, the texts with at least one (the others
        only teach what is absent)."""
        if not hasattr(features, "__len__"):  # a stream: no length to count
            return None
        read = features.select(range(min(len(features), COUNTED_FEATURES)))
        if not cfg.multi_label:
            return Targets(len(read), len(read), "texts with a label")
        return Targets(sum(1 for labels in read["labels"] if any(labels)), len(read), "texts with at least one label")

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        from nlpcli.tasks.base import build_pipeline, pipeline_outputs

        top_k = TOP_K if request.top_k is None else request.top_k
        if top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {top_k}.")
        if not request.texts:
            raise UserError("Give a text to classify, or --file.",
                            hint=f'For example: nlpcli predict classify {model_dir} "A text."')
        cfg, from_run = predict_settings(ClassifyConfig, self.name, model_dir)
        pairs = bool(request.text_pairs)
        if from_run and pairs != (cfg.text_pair_column is not None):
            if not pairs:
                raise UserError(f"{model_dir} classifies text pairs ('{cfg.text_column}' with "
                                f"'{cfg.text_pair_column}'): give each text its pair.",
                                hint="--text-pair TEXT for each text, or --text-pair-column KEY with --file.")
            raise UserError(f"{model_dir} classifies single texts: drop --text-pair / --text-pair-column.")
        pipe = build_pipeline(self.pipeline_task, model_dir)
        multi = pipe.model.config.problem_type == "multi_label_classification"
        inputs = ([{"text": t, "text_pair": p} for t, p in zip(request.texts, request.text_pairs, strict=True)]
                  if pairs else list(request.texts))
        options = {"top_k": None, "truncation": True, **({"max_length": cfg.max_length} if cfg.max_length else {})}
        records, rows = [], []
        for given, scores in pipeline_outputs(pipe, inputs, request.batch_size, **options):
            ranked = [{"label": s["label"], "score": round(float(s["score"]), 4)} for s in scores]
            chosen = [s["label"] for s in scores if s["score"] >= cfg.threshold] if multi else ranked[0]["label"]
            text = given if isinstance(given, dict) else {"text": given}
            records.append({**text, "prediction": chosen, "scores": ranked[:top_k]})
            picked = set(chosen) if multi else {chosen}
            rows += [{**text, **s, "predicted": "yes" if s["label"] in picked else ""} for s in ranked[:top_k]]
        columns = ["label", "score", "predicted"]
        if len(inputs) > 1:
            columns = ["text", *(["text_pair"] if pairs else []), *columns]
        shown = min(top_k, pipe.model.config.num_labels)
        return PredictionTable(columns=columns, rows=rows, records=records, title=f"top {shown} of "
                               f"{pipe.model.config.num_labels} labels" + (f" (threshold {cfg.threshold})" if multi
                                                                           else ""))


def prediction_rows(predictions: Any, eval_features: Any, raw_eval: Any, cfg: ClassifyConfig,
                    labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per example, in data order: its text(s), the predicted label (--multi-label: the classes whose probability
    reaches --threshold), the reference and every class's probability (softmax, or a sigmoid per class)."""
    import numpy as np

    logits = np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions, dtype=np.float64)
    if cfg.multi_label:
        probabilities = 1.0 / (1.0 + np.exp(-logits))
    else:
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    texts = [raw_eval[c] for c in (cfg.text_column, cfg.text_pair_column) if c]
    keys = ["text", "text_pair"][:len(texts)]
    rows = []
    for index, value in enumerate(raw_eval[cfg.label_column]):
        reference = [labels[i] for i in label_ids(label_values(value, cfg.multi_label) or [], labels)]
        scores = probabilities[index]
        if cfg.multi_label:
            predicted: Any = [labels[i] for i, p in enumerate(scores) if p >= cfg.threshold]
            reference = sorted(set(reference), key=labels.index)
        else:
            predicted, reference = labels[int(np.argmax(scores))], reference[0]
        rows.append({**{key: column[index] for key, column in zip(keys, texts, strict=True)},
                     "prediction": predicted, "reference": reference,
                     "probabilities": {label: round(float(p), 6) for label, p in zip(labels, scores, strict=True)}})
    return rows


def score_rows(rows: list[dict[str, Any]], labels: tuple[str, ...], multi: bool) -> dict[str, float]:
    from nlpcli.metrics.classification import classification_scores, multi_label_scores

    scorer = multi_label_scores if multi else classification_scores
    return scorer([row["reference"] for row in rows], [row["prediction"] for row in rows], labels)
