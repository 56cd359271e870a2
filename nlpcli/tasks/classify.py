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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from nlpcli import run_folder
from nlpcli.config import RunConfig, option, saved_config
from nlpcli.console import say, warn
from nlpcli.errors import UserError
from nlpcli.sources import data as sources
from nlpcli.sources.data import Sample, describe
from nlpcli.tasks.base import PredictionTable, PredictRequest, Prepared, Task, TaskSetup
from nlpcli.tasks.labels import given_labels

TOP_K = 5  # labels `predict` shows per text


@dataclass
class ClassifyConfig(RunConfig):
    text_column: str | None = option("text", "Column holding the text (the first text of a pair).")
    text_pair_column: str | None = option(
        None, "Column holding the second text of a pair (paraphrase, entailment); none: single texts.")
    label_column: str | None = option(
        "label", "Column holding the label: a name or a class id (--multi-label: a list, or names joined by commas).")
    labels: list[str] | None = option(
        None, "Label names in id order: comma-separated, or a file with one label per line.")
    multi_label: bool = option(False, "Several labels per text: one sigmoid per class, binary cross-entropy.")
    threshold: float = option(0.5, "With --multi-label: a class is predicted when its probability reaches this.",
                              above=0, below=1)


# ---------------------------------------------------------------- labels and records


def label_values(value: Any, multi: bool) -> list[Any] | None:
    """A record's labels as a list (one item without --multi-label; with it, an empty CSV cell is no label);
    None when the value cannot be labels."""
    if multi and value is None:
        return []
    if multi and isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    items = list(value) if multi and isinstance(value, list | tuple) else [value] if not multi else None
    if items is None or any(v is None or isinstance(v, bool) or not isinstance(v, str | int) for v in items):
        return None
    return items


def _shown(value: Any) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


def where(cfg: ClassifyConfig, split: str, row: int) -> str:
    """Record `row` of a split: its file and line when the split is a whole local file read in order, else
    its number."""
    held_out = split == "train" and cfg.train_file and not cfg.validation_file and cfg.dataset != "sample"
    if cfg.filter or held_out:
        return f"{describe(cfg, split)}, record {row + 1}"
    return sources.record_location(cfg, split, row) if sources.split_file(cfg, split) else (
        f"{describe(cfg, split)}, record {row + 1}")


def checked_labels(raw: Any, cfg: ClassifyConfig) -> dict[str, list[list[Any]]]:
    """Every split's labels as lists, after checking every record's text(s) and label values."""
    found = {}
    for split, data in raw.items():
        columns = [c for c in (cfg.text_column, cfg.text_pair_column) if c]
        for column in columns:
            for row, text in enumerate(data[column]):
                if not isinstance(text, str):
                    raise UserError(f"{where(cfg, split, row)}: '{column}' must be text, got {_shown(text)}.")
        found[split] = []
        for row, value in enumerate(data[cfg.label_column]):
            values = label_values(value, cfg.multi_label)
            if values is None:
                what = "a list of label names or class ids" if cfg.multi_label else "a label name or a class id"
                several = not cfg.multi_label and isinstance(value, list)
                hint = "Several labels per text: --multi-label." if several else None
                raise UserError(f"{where(cfg, split, row)}: '{cfg.label_column}' must be {what}, got {_shown(value)}.",
                                hint=hint)
            found[split].append(values)
    return found


def feature_names(data: Any, column: str) -> list[str] | None:
    """The ClassLabel names of a label column (a list of ClassLabel with --multi-label), if it has them."""
    feature = data.features.get(column) if data.features else None
    return getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)


def label_list(raw: Any, values: dict[str, list[list[Any]]], cfg: ClassifyConfig, saved: Any | None) -> list[str]:
    """--labels, ClassLabel names, a saved model's labels (--eval-only), or the training data's labels."""
    given = given_labels(cfg.labels, "negative,positive")
    if given is not None:
        return given
    source = "train" if "train" in raw else "validation"
    names = feature_names(raw[source], cfg.label_column)
    if names:
        return list(names)
    id2label = dict(getattr(saved, "id2label", None) or {})
    if cfg.eval_only and id2label and not all(str(v).startswith("LABEL_") for v in id2label.values()):
        return [str(id2label[i]) for i in sorted(id2label)]
    seen = {v for labels in values[source] for v in labels}
    if len({isinstance(v, str) for v in seen}) > 1:  # name the first record of the other kind than the first label
        named = isinstance(next(v for labels in values[source] for v in labels), str)
        row = next(r for r, labels in enumerate(values[source]) if any(isinstance(v, str) != named for v in labels))
        raise UserError(f"{where(cfg, source, row)}: labels mix names and class ids; use one kind throughout.")
    if seen and all(isinstance(v, int) for v in seen):
        negative = min(seen)
        if negative < 0:
            row = next(r for r, labels in enumerate(values[source]) if negative in labels)
            raise UserError(f"{where(cfg, source, row)}: class id {negative} is no class (ids count from 0; GLUE "
                            "marks a missing label -1).", hint="Predict unlabelled data as a --test-file without "
                            "the label column.")
        return [str(i) for i in range(max(seen) + 1)]
    return sorted(seen)


def check_records(values: dict[str, list[list[Any]]], labels: list[str], cfg: ClassifyConfig) -> None:
    """Every label of every split must be in the list: a name of it, or an id below its length."""
    known = set(labels)
    for split, rows in values.items():
        for row, items in enumerate(rows):
            for item in items:
                if isinstance(item, str) and item not in known:
                    source = "--labels" if cfg.labels else "the training data's labels" if split != "train" and \
                        not cfg.eval_only else "the label list"
                    raise UserError(f"{where(cfg, split, row)}: label '{item}' is not one of {source} "
                                    f"({', '.join(labels)}).", hint="Name every class, in id order, with --labels.")
                if isinstance(item, int) and not 0 <= item < len(labels):
                    raise UserError(f"{where(cfg, split, row)}: class id {item} is not in 0..{len(labels) - 1} "
                                    f"({', '.join(labels)}).", hint="Name every class, in id order, with --labels.")


def head_note(spec: str, saved: Any | None, labels: list[str]) -> str | None:
    """One line on what becomes of the starting model's head: a model without a sequence-classification head
    keeps its encoder and gets a new head; a head for other labels is replaced or renamed. None: it is kept."""
    if saved is None:
        return None
    kinds = [a for a in getattr(saved, "architectures", None) or [] if a.endswith("ForSequenceClassification")]
    found = ", ".join(getattr(saved, "architectures", None) or []) or saved.model_type
    if not kinds:
        return (f"--model {spec} holds a {found} (no classification head): its encoder is kept, and a new "
                f"classification head (random weights) is trained for {len(labels)} labels.")
    old = [str(v) for _, v in sorted(dict(getattr(saved, "id2label", None) or {}).items())]
    if len(old) != len(labels):
        return (f"--model {spec} has a classification head for {len(old)} labels: a new head (random weights) "
                f"replaces it for these {len(labels)}.")
    if old != labels and not all(v.startswith("LABEL_") for v in old):
        return (f"--model {spec}'s classification head has the labels {', '.join(old)}: they are renamed "
                f"{', '.join(labels)}, in that order.")
    return None


def label_ids(items: list[Any], labels: tuple[str, ...]) -> list[int]:
    return [item if isinstance(item, int) else labels.index(item) for item in items]


def target(value: Any, labels: tuple[str, ...], multi: bool) -> Any:
    """The model's label: a class id, or (--multi-label) one 0/1 float per class."""
    ids = label_ids(label_values(value, multi) or [], labels)
    if not multi:
        return ids[0]
    hot = [0.0] * len(labels)
    for index in ids:
        hot[index] = 1.0
    return hot


# ---------------------------------------------------------------- the task


class ClassifyTask(Task):
    name = "classify"
    help = "Text classification: single texts or pairs, one label or several; accuracy, F1 per class."
    config_class = ClassifyConfig
    model_class = "AutoModelForSequenceClassification"
    pipeline_task = "text-classification"
    evaluation = "logits"
    evaluate_before_training = True
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
        def encode(batch: dict[str, list]) -> dict[str, list]:
            texts = [batch[cfg.text_column]] + ([batch[cfg.text_pair_column]] if cfg.text_pair_column else [])
            encoded = tokenizer(*texts, truncation=True, max_length=cfg.max_length)
            encoded["labels"] = [target(v, setup.labels, cfg.multi_label) for v in batch[cfg.label_column]]
            return encoded

        features = {split: data.map(encode, batched=True, remove_columns=data.column_names,
                                    desc=f"Tokenizing {split}", **sources.map_workers(cfg, data))
                    for split, data in raw.items()}
        rows = partial(prediction_rows, cfg=cfg, labels=setup.labels)
        return Prepared(features.get("train"), features["validation"], prediction_rows=rows,
                        score_rows=partial(score_rows, labels=setup.labels, multi=cfg.multi_label))

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        from nlpcli.tasks.base import build_pipeline, pipeline_outputs

        top_k = TOP_K if request.top_k is None else request.top_k
        if top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {top_k}.")
        if not request.texts:
            raise UserError("Give a text to classify, or --file.",
                            hint=f'For example: nlpcli predict classify {model_dir} "A text."')
        cfg = saved_config(ClassifyConfig, model_dir)
        pairs = bool(request.text_pairs)
        if run_folder.saved_settings(model_dir) is not None and pairs != (cfg.text_pair_column is not None):
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
