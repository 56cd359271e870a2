"""The Task contract: everything the runner may ask of a task, and nothing more.

A task turns raw data into features, names its model class and collator, scores predictions and
answers `nlpcli predict`. It never drives training: the runner owns devices, loops, checkpoints,
gathering across processes and the files a run writes.

A task object holds no state: a hook takes what it needs and returns what it made, as frozen results
that the runner passes on (`Normalized`, `TaskSetup`, `Prepared`). The runner calls the hooks of a run in
this order (docs/architecture.md shows the whole data path):

1. `required_columns(cfg)`: the columns every split must have (checked after `normalize`);
2. `without_labels(test, cfg)`: a test split without labels, given placeholder labels (or None);
3. `normalize(raw, cfg) -> Normalized`: the splits reshaped and cleaned, with what that kept and dropped;
4. `setup(raw, cfg, pretrained_config) -> TaskSetup`: model kwargs and labels, from every split (test too);
5. `preset_texts(raw, cfg)`: text to fit a tokenizer to (tiny presets, clm's --train-tokenizer);
6. `load_model(cfg, model_kwargs, texts, tokenizer_dir)`: (model, tokenizer) the task's own way, or None;
7. `prepare(raw, tokenizer, cfg, setup) -> Prepared`: train and eval features, the row, score and loss
   functions bound to what setup and prepare learned, and the task's facts for run.json;
8. `prepare_test(test, tokenizer, cfg, setup)`: the test split's features, made as eval features are; with
   --overfit-batch, `overfit_features(prepared, count)`: the features of the one batch it trains on;
9. `collator(tokenizer, model, cfg)`: the batch collator both loops (and the test evaluation) use;
10. evaluation, chosen by `evaluation` and run by the runner for both loops:
   - "loss": perplexity from the mean eval loss (mlm, clm);
   - "logits": gathered logits -> `Prepared.prediction_rows(predictions, eval_features, raw_eval)` (one row
     per eval example, written as eval_predictions.jsonl) -> `Prepared.score_rows(rows)`, the metrics (ner, qa,
     classify);
   - "generation": `generation_settings(cfg, tokenizer)` -> generated ids -> decoded text, with
     `sources(raw_eval)` -> `score(sources, predictions, references)` (translate, summarize).

`predict(model_dir, request)` answers `nlpcli predict` from a saved model folder or hub id; no run hook precedes
it. `nlpcli inspect` builds a run's data, model and first batch through hooks 1-9 and then asks
`describe_example`, `baseline_loss` and `count_targets` (defaults in tasks/examples.py), training nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from nlpcli.config import RunConfig
from nlpcli.errors import UserError
from nlpcli.sources.data import Sample, values_of
from nlpcli.tasks import examples
from nlpcli.tasks.examples import Baseline, Targets

RowsFunction = Callable[[Any, Any, Any], list[dict[str, Any]]]  # (predictions, eval features, raw eval) -> rows
ScoreFunction = Callable[[list[dict[str, Any]]], dict[str, float]]  # rows -> metrics
LossFunction = Callable[[Any, dict[str, Any]], Any]  # (model outputs, batch) -> the batch's mean loss


def padding_multiple() -> int | None:
    """What a padding collator pads the batch length to a multiple of: 8 on a CUDA GPU (its tensor cores work on
    tiles of 8 in fp16 and bf16), none on a CPU (every padded position is work there)."""
    import torch

    return 8 if torch.cuda.is_available() else None


@dataclass(frozen=True)
class Normalized:
    """What `Task.normalize` made: the cleaned splits, and what cleaning them kept and dropped (run.json)."""

    raw: Any
    data_report: dict[str, Any] = field(default_factory=dict)  # run.json "data": per split, records kept/dropped
    facts: dict[str, Any] = field(default_factory=dict)  # run.json, top level (e.g. clm's keyword filter counts)


@dataclass(frozen=True)
class TaskSetup:
    """What `Task.setup` learned before the model loads."""

    model_kwargs: dict[str, Any] = field(default_factory=dict)  # for `from_pretrained` (e.g. num_labels)
    labels: tuple[str, ...] = ()  # label names in id order (ner)


@dataclass(frozen=True)
class Prepared:
    """What `Task.prepare` made: the features, and what the later steps need from what it learned.

    The runner fills `test` (with `Task.prepare_test`) when the run has a test split."""

    train: Any | None  # None with --eval-only
    eval: Any  # evaluation features; they may carry extra columns for the metrics
    test: Any | None = None
    # logits evaluation: the gathered model outputs -> one JSON-ready row per example of the raw eval split, in
    # data order, with the prediction and its reference (written as eval_predictions.jsonl) ...
    prediction_rows: RowsFunction | None = None
    score_rows: ScoreFunction | None = None  # ... and the metrics, computed from exactly those rows
    # a loss both loops train on instead of the model's own: f(outputs, batch) -> the mean over the batch (the
    # loops scale it for gradient accumulation; the model is called without labels). Evaluation uses the plain loss.
    training_loss: LossFunction | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # run.json, top level (e.g. clm's tokens kept/dropped)


@dataclass
class PredictRequest:
    """What `nlpcli predict` received; each task reads the parts it needs."""

    texts: list[str] = field(default_factory=list)
    text_pairs: list[str] = field(default_factory=list)  # the second text of each input, for pair models (classify)
    question: str | None = None
    context: str | None = None
    top_k: int | None = None  # mlm: candidates per mask [5]; clm: sampling's top-k [50], 0: no limit
    # generation (clm): greedy when temperature is 0
    max_new_tokens: int = 50
    temperature: float = 0.0
    top_p: float = 1.0
    num_return_sequences: int = 1
    seed: int | None = None
    # inputs with several fields (`Task.predict_fields`, e.g. qa's question and context), one dict per input
    records: list[dict[str, str]] = field(default_factory=list)
    batch_size: int = 16  # inputs per forward pass (ner, mlm, qa)
    where: list[str] = field(default_factory=list)  # per input, where it came from ("in.jsonl, line 3")
    skip_bad_records: bool = False
    skipped: list[str] = field(default_factory=list)  # inputs skipped as bad (read or rejected by the task)

    def place(self, index: int) -> str:
        return self.where[index] if index < len(self.where) else f"input {index + 1}"

    def reject(self, index: int, problem: str, hint: str | None = None) -> None:
        """Input `index` cannot be predicted: stop naming it, or with --skip-bad-records count it and go on
        (the task then leaves it out of its output)."""
        if not self.skip_bad_records:
            raise UserError(f"{self.place(index)}: {problem}", hint=hint)
        self.skipped.append(self.place(index))

    def command_line(self) -> list[str]:
        """The `nlpcli predict TASK DIR` arguments that ask this (for the demo to show)."""
        args = list(self.texts)
        for name in ("question", "context", "top_k", "max_new_tokens", "temperature", "top_p",
                     "num_return_sequences", "seed"):
            value, default = getattr(self, name), PredictRequest.__dataclass_fields__[name].default
            if value is not None and value != default:
                args += ["--" + name.replace("_", "-"), str(value)]
        return args


@dataclass
class PredictionTable:
    """Rows to show as a table (or JSON) plus an optional title line."""

    columns: list[str]
    rows: list[dict[str, Any]]
    title: str = ""
    # one JSON object per input, in input order (for --json, --file, --output); None: `rows` are that already
    records: list[dict[str, Any]] | None = None

    @property
    def per_input(self) -> list[dict[str, Any]]:
        return self.rows if self.records is None else self.records


class Task:
    """Base class with the parts most tasks share; subclasses fill in the task-specific ones.

    Generation tasks (`evaluation = "generation"`) also give `generation_settings(cfg, tokenizer)` (keyword
    arguments of `model.generate`), `sources(raw_eval)` (the input texts, for eval_predictions.jsonl) and
    `score(sources, predictions, references)` (metrics from decoded texts).
    """

    name: ClassVar[str]
    help: ClassVar[str]
    config_class: ClassVar[type[RunConfig]] = RunConfig
    model_class: ClassVar[str]
    pipeline_task: ClassVar[str]
    hub_task: ClassVar[str | None] = None  # the Hub's pipeline tag for the model card [pipeline_task]
    evaluation: ClassVar[str] = "logits"
    # the headline metrics and the best value each can reach on its scale (seqeval's F1 1.0, SQuAD's and
    # sacrebleu's 100, perplexity 1): a model that learnt its training batch by heart (--overfit-batch) is near it
    best_scores: ClassVar[Mapping[str, float]] = MappingProxyType({})
    shifts_labels: ClassVar[bool] = False  # causal LM: logits at t are scored against labels at t + 1
    token_accuracy: ClassVar[bool] = False  # loss evaluation also reports eval_accuracy (labelled tokens right)
    # True: `prepare` accepts a streamed (iterable) training split, with --streaming
    supports_streaming: ClassVar[bool] = False
    sample: ClassVar[Sample | None] = None
    demo_request: ClassVar[PredictRequest | None] = None  # what `nlpcli demo` asks the trained model
    # JSON keys of a `predict --file` line whose input has several fields (qa: question, context);
    # empty: one text per input (the line, or --text-column of a JSON line), in `PredictRequest.texts`
    predict_fields: ClassVar[tuple[str, ...]] = ()
    reads_text_pairs: ClassVar[bool] = False  # predict takes a second text per input (`PredictRequest.text_pairs`)
    # shared config keys this task does not read: `nlpcli TASK --help` leaves their options out
    unused_options: ClassVar[tuple[str, ...]] = ()
    # the task's own config keys that a --resume may change (they only shape evaluation); every other key of
    # the task's that differs from the run's is refused (see runner/continuity.py)
    resumable_options: ClassVar[tuple[str, ...]] = ()
    # the task's own options `nlpcli tune` varies by default, in a --space file's format ({key: {type: categorical,
    # choices: [...]}} or {key: {type: float|int, low, high, log}}), beside the shared learning rate, warm-up, ...
    search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    # Feature columns the task's collator reads (and removes) itself: both loops keep them for it.
    collator_columns: ClassVar[tuple[str, ...]] = ()
    # True: max_train_samples / max_eval_samples count features (e.g. mlm chunks) and `prepare` applies
    # them; the runner then leaves the raw data whole.
    limits_count_features: ClassVar[bool] = False
    # the column a .txt file's lines are read into when --text-column is not given
    default_text_column: ClassVar[str] = "text"
    # keys of an evaluation row that hold the reference: an unlabelled test set's rows are written without them
    reference_keys: ClassVar[tuple[str, ...]] = ("reference",)

    def required_columns(self, cfg: RunConfig) -> list[str]:
        """The columns every split must have once `normalize` has run."""
        return [c for c in (cfg.text_column, cfg.label_column) if c]

    def without_labels(self, test: Any, cfg: RunConfig) -> Any | None:
        """A test split without the task's label column(s), made ready to predict on with placeholder labels
        (its metrics and references are then dropped). None: the task predicts only on labelled test data."""
        return None

    def normalize(self, raw: Any, cfg: RunConfig) -> Normalized:
        """Reshape or clean the raw splits (test included) before the column check (e.g. flatten a nested
        layout), and report what that kept and dropped."""
        return Normalized(raw)

    def setup(self, raw: Any, cfg: RunConfig, pretrained_config: Any | None) -> TaskSetup:
        """Inspect the data (every split, test included) and a saved model's config before the model loads."""
        return TaskSetup()

    def preset_texts(self, raw: Any, cfg: RunConfig) -> Iterable[str]:
        """Text to train the tiny preset's tokenizer on."""
        column = raw["train"] if "train" in raw else raw["validation"]
        for value in values_of(column, cfg.text_column):
            yield " ".join(value) if isinstance(value, list) else value

    def load_model(
        self, cfg: RunConfig, model_kwargs: dict[str, Any], texts: Callable[[], Iterable[str]], tokenizer_dir: Path
    ) -> tuple[Any, Any] | None:
        """(model, tokenizer) built the task's own way (e.g. random weights from a configuration, with a
        tokenizer fitted to `texts` and kept in `tokenizer_dir`); None: the runner loads `cfg.model` as usual.
        Called by the main process first, then by the others (which find what it kept)."""
        return None

    def prepare(self, raw: Any, tokenizer: Any, cfg: RunConfig, setup: TaskSetup) -> Prepared:
        """The features of `raw`'s train (when there is one) and validation splits, and what the later steps
        need (`Prepared`)."""
        raise NotImplementedError

    def prepare_test(self, test: Any, tokenizer: Any, cfg: RunConfig, setup: TaskSetup) -> Any:
        """The test split's features, made as evaluation features are: one more `prepare` call, on the test split
        as the validation split (its facts are not the run's, which are those of the validation data);
        --max-eval-samples does not cut the test set."""
        import datasets

        return self.prepare(datasets.DatasetDict({"validation": test}), tokenizer,
                            dataclasses.replace(cfg, max_eval_samples=None), setup).eval

    def overfit_features(self, prepared: Prepared, count: int) -> Prepared:
        """The one batch of an overfit check (--overfit-batch): the first `count` training features, and the
        evaluation features of the same examples. The runner has made the validation split a copy of the training
        split (both cut to `count` records, unless the task counts features), so for a task whose training and
        evaluation features line up one to one, in order, these are the first `count` of each."""
        return dataclasses.replace(prepared, train=_first(prepared.train, count), eval=_first(prepared.eval, count))

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        """The batches of both loops; a padding collator pads to `padding_multiple()`."""
        raise NotImplementedError

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        raise NotImplementedError

    # ------------------------------------------------------------ what `nlpcli inspect` shows (tasks/examples.py)

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: RunConfig,
                         setup: TaskSetup) -> dict[str, Any]:
        """One example of the first collated training batch (made from the first features of `raw`, in order),
        decoded back to text with its targets shown the task's way, as plain data. Default: row 0, each token
        with its label (-100: not scored)."""
        return examples.default_example(batch, tokenizer)

    def baseline_loss(self, batch: dict[str, Any], model_config: Any) -> Baseline | None:
        """The loss a constant predictor would get on `batch`. Default: the unigram entropy of its scored labels
        (shifted by one token when `shifts_labels`); None when the batch has no labels."""
        return examples.label_entropy(batch, self.shifts_labels)

    def count_targets(self, features: Any, cfg: RunConfig) -> Targets | None:
        """How many training features have something to learn. Default: features with a scored label; None when
        the collator makes the labels."""
        return examples.labelled_features(features)


def _first(features: Any, count: int) -> Any:
    return features.select(range(count)) if features is not None and len(features) > count else features


def build_pipeline(task: str, model_dir: str, **kwargs: Any) -> Any:
    """A transformers pipeline on the best local device for a saved model folder."""
    import torch
    from transformers import pipeline

    device = 0 if torch.cuda.is_available() else -1
    return pipeline(task, model=model_dir, device=device, **kwargs)


def pipeline_outputs(pipe: Any, texts: list[str], batch_size: int, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """(text, its pipeline output) for every text, in order: `batch_size` texts per pipeline call, with a progress
    bar on stderr (a pipeline unwraps a list of one input, so a single text is passed on its own)."""
    from nlpcli.predict_io import in_batches

    for batch in in_batches(texts, batch_size):
        outputs = [pipe(batch[0], **kwargs)] if len(batch) == 1 else pipe(batch, batch_size=len(batch), **kwargs)
        yield from zip(batch, outputs, strict=True)
