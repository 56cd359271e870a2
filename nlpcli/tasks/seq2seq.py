"""What the sequence-to-sequence tasks (translate, summarize) share.

- Records: `normalize` turns every split into two columns, `source` and `target` (a subclass's
  `pair_columns` says where they come from; `seq2seq_pairs.clean_pairs` cleans them as cached datasets
  operations). A record with an empty or missing side stops the run naming file, line and side, or is
  dropped and counted with --skip-bad-records; --min-target-words drops pairs whose target is too short
  (counted too).
- Features: sources (after --source-prefix) and targets tokenized with `text_target` (so tokenizers with
  language modes, mBART / M2M / NLLB, switch to the target language), truncated to --max-length and
  --max-target-length; `DataCollatorForSeq2Seq(model=...)` pads labels with -100 and builds the decoder
  inputs from them.
- Generation settings (beams, maximum length, plus what a subclass adds, e.g. a forced BOS token), used
  alike by the runner's generation evaluation and by `predict`, which reads them back from the run's
  nlpcli_config.yaml (a model nlpcli did not train gets the task's defaults, and the prefix its config declares).
- Predict: batched `model.generate` (transformers 5 has no translation or summarization pipelines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from nlpcli import layout
from nlpcli.config import RunConfig, option
from nlpcli.config_layers import predict_settings
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.sources.data import map_workers, rows_of
from nlpcli.tasks.base import (
    Normalized,
    PredictionTable,
    PredictRequest,
    Prepared,
    Task,
    TaskSetup,
    padding_multiple,
)
from nlpcli.tasks.examples import batch_row, decode, scored, unpadded
from nlpcli.tasks.seq2seq_pairs import SOURCE, TARGET, PairColumns, clean_pairs

# Pretrained on a mixture of prefixed tasks (T5 v1.0); mT5, umT5, ByT5 and LongT5 were not and need no prefix.
PREFIX_TRAINED = ("t5",)


# generation's default batch floor: a step of `generate` costs about the same for 8 or 32 short sequences, and
# length-sorted batches keep their padding small (benchmarks/generation_eval.py: 2.5-2.7x the Trainer's
# predict_with_generate at its batch of 8, identical predictions)
GENERATION_BATCH_FLOOR = 32


@dataclass
class Seq2SeqConfig(RunConfig):
    max_target_length: int = option(128, "Truncate targets to this many tokens.", at_least=1)
    source_prefix: str | None = option(None, "Text put before every source; T5-family models expect one.")
    num_beams: int | None = option(None, "Beams for generation [the model's generation config].", at_least=1)
    generation_max_length: int | None = option(
        None, "Longest generated sequence, in tokens [max_target_length].", at_least=1
    )
    generation_batch_size: int | None = option(
        None, f"Sequences generated per batch in evaluation and predict (length-sorted, longest first) "
              f"[--eval-batch-size, at least {GENERATION_BATCH_FLOOR}].", at_least=1,
    )
    min_target_words: int = option(0, "Drop pairs whose target has fewer words than this (0: keep all).", at_least=0)
    skip_bad_records: bool = option(False, "Skip (and count) records with an empty side instead of stopping.")


    @property
    def generation_batch(self) -> int:
        """The batch size generation runs at: given, or the eval batch size, at least GENERATION_BATCH_FLOOR."""
        return self.generation_batch_size or max(self.per_device_eval_batch_size, GENERATION_BATCH_FLOOR)


class Seq2SeqTask(Task):
    """Base of translate and summarize: subclasses say where the pairs are (`pair_columns`), how to score
    generated text (`score`), and what the generated text is called (`output_name`)."""

    config_class = Seq2SeqConfig
    model_class = "AutoModelForSeq2SeqLM"
    pipeline_task = "text2text-generation"  # not in transformers 5: `predict` generates itself
    evaluation = "generation"
    resumable_options = ("num_beams", "generation_max_length", "generation_batch_size")  # how the evaluation generates
    output_name: ClassVar[str] = "output"
    side_names: ClassVar[tuple[str, str]] = ("source", "target")
    prefix_example: ClassVar[str] = ""

    # ------------------------------------------------------------ what subclasses provide

    def side_labels(self, cfg: Any) -> tuple[str, str]:
        """How messages name the two sides of a pair."""
        return self.side_names

    def pair_columns(self, data: Any, cfg: Any, split: str) -> PairColumns:
        """Where the source and target of one split's records are (a UserError when they are not there)."""
        raise NotImplementedError

    def score(self, sources: list[str], predictions: list[str], references: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def run_facts(self, cfg: Any) -> dict[str, Any]:
        """Facts about how this run is scored, for run.json (e.g. the sentence splitter); none by default."""
        return {}

    def configure_tokenizer(self, tokenizer: Any, cfg: Any) -> None:
        """Set language modes on the tokenizer (mBART / NLLB source and target codes); nothing by default."""

    def generation_settings(self, cfg: Any, tokenizer: Any) -> dict[str, Any]:
        """Keyword arguments for `model.generate`, the same in evaluation and predict."""
        settings: dict[str, Any] = {"max_length": cfg.generation_max_length or cfg.max_target_length}
        if cfg.num_beams:
            settings["num_beams"] = cfg.num_beams
        return settings

    # ------------------------------------------------------------ records

    def required_columns(self, cfg: RunConfig) -> list[str]:
        return [SOURCE, TARGET]

    def normalize(self, raw: Any, cfg: Any) -> Normalized:
        """Every split as `source` and `target` columns (`clean_pairs`: datasets operations, cached); run.json's
        "data" says, per split, how many records were read, skipped as bad, dropped as too short and kept."""
        import datasets

        pairs, report = {}, {}
        for split, data in raw.items():
            columns = self.pair_columns(data, cfg, split)
            pairs[split], report[split] = clean_pairs(data, columns, self.side_labels(cfg), cfg, split)
        return Normalized(datasets.DatasetDict(pairs), data_report=report)

    def declared_prefix(self, pretrained_config: Any | None) -> str | None:
        """The prefix the checkpoint's config declares for this task (T5's `task_specific_params`), if any."""
        return None

    def setup(self, raw: Any, cfg: Any, pretrained_config: Any | None) -> TaskSetup:
        model_type = getattr(pretrained_config, "model_type", None)
        our_run = (Path(cfg.model) / layout.RUN_CONFIG).is_file()  # it knows whether it was trained with one
        declared = self.declared_prefix(pretrained_config)
        if (model_type in PREFIX_TRAINED or declared) and not cfg.source_prefix and not our_run:
            warn(f"{cfg.model} is a {model_type} model, which expects a task prefix on every source; none was "
                 f'given (e.g. --source-prefix "{declared or self.prefix_example}").')
        return TaskSetup()

    def preset_texts(self, raw: Any, cfg: Any) -> Iterable[str]:
        split = raw["train"] if "train" in raw else raw["validation"]
        prefix = cfg.source_prefix or ""
        for source, target in rows_of(split, SOURCE, TARGET):
            yield prefix + source
            yield target

    # ------------------------------------------------------------ features

    def encode_sources(self, tokenizer: Any, sources: list[str], cfg: Any) -> Any:
        return encode_sources(tokenizer, sources, cfg.source_prefix or "", cfg.max_length)

    def prepare(self, raw: Any, tokenizer: Any, cfg: Any, setup: TaskSetup) -> Prepared:
        self.configure_tokenizer(tokenizer, cfg)
        shape = {"tokenizer": tokenizer, "prefix": cfg.source_prefix or "", "max_length": cfg.max_length,
                 "max_target_length": cfg.max_target_length}
        features = {
            split: data.map(tokenize_pairs, batched=True, remove_columns=data.column_names, fn_kwargs=shape,
                            desc=f"Tokenizing {split}", **map_workers(cfg, data))
            for split, data in raw.items()
        }
        return Prepared(features.get("train"), features["validation"], facts=self.run_facts(cfg))

    def collator(self, tokenizer: Any, model: Any, cfg: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100,
                                      pad_to_multiple_of=padding_multiple())

    def sources(self, raw_eval: Any) -> list[str]:
        return list(raw_eval[SOURCE])

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: Any,
                         setup: TaskSetup) -> dict[str, Any]:
        """The first pair as the model sees it: the source (prefix included), the target the loss scores and the
        decoder's input (the target shifted right, after the decoder start token), decoded back to text."""
        row = batch_row(batch, 0)
        source, target = unpadded(row), scored(row["labels"])
        shown = {"source": decode(tokenizer, source), "target": decode(tokenizer, target),
                 "source tokens": len(source), "target tokens": len(target)}
        if "decoder_input_ids" in row:
            shown["decoder input"] = decode(tokenizer, row["decoder_input_ids"][: len(target)])
        return shown

    # ------------------------------------------------------------ predict

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if not request.texts:
            raise UserError(f"Give a text to {self.name}, or --file.",
                            hint=f'For example: nlpcli predict {self.name} {model_dir} "Some text."')
        cfg, from_run = predict_settings(self.config_class, self.name, model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
        if not from_run and not cfg.source_prefix:  # a checkpoint of elsewhere: the prefix its config declares
            cfg = dataclasses.replace(cfg, source_prefix=self.declared_prefix(model.config))
        model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        self.configure_tokenizer(tokenizer, cfg)
        encoded = self.encode_sources(tokenizer, request.texts, cfg)
        features = [{"input_ids": ids, "attention_mask": mask}
                    for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)]
        outputs = generate_with_progress(model, tokenizer, features, self.generation_settings(cfg, tokenizer),
                                         cfg.generation_batch)
        rows = [{"source": text, self.output_name: output} for text, output in zip(request.texts, outputs, strict=True)]
        return PredictionTable(columns=["source", self.output_name], rows=rows)


def encode_sources(tokenizer: Any, sources: list[str], prefix: str, max_length: int | None) -> Any:
    return tokenizer([prefix + s for s in sources], max_length=max_length, truncation=True)


def tokenize_pairs(batch: dict[str, list[str]], tokenizer: Any, prefix: str, max_length: int | None,
                   max_target_length: int) -> dict[str, Any]:
    """The features of a batch of pairs (targets with `text_target`). Given only what shapes the features, so that
    datasets' fingerprint of the map, and so the cache a later run reuses, does not change with other options
    (learning rate, output folder, ...)."""
    features = dict(encode_sources(tokenizer, batch[SOURCE], prefix, max_length))
    targets = tokenizer(text_target=batch[TARGET], max_length=max_target_length, truncation=True)
    features["labels"] = targets["input_ids"]
    return features


def generate_with_progress(model: Any, tokenizer: Any, features: list[dict], settings: dict, batch_size: int) -> list:
    """`generate_texts` with a progress bar on stderr when there is more than one batch."""
    from nlpcli.generation import generate_texts
    from nlpcli.predict_io import progress_bar

    with progress_bar(len(features), "generating", shown=len(features) > batch_size) as advance:
        return generate_texts(model, tokenizer, features, settings, batch_size, on_batch=advance)
