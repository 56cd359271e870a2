"""Causal language model trained from scratch on code (the Hugging Face course, chapter 7, section 6).

The course's story, in pieces:
- data: Python files (codeparrot-ds), optionally only those that mention one of `--filter-keywords`;
- tokenizer: a given one (`--tokenizer`), or one fitted to the training texts (`--train-tokenizer`);
- model: the configuration of `--model` (GPT-2) with random weights, sized to the tokenizer
  (`--from-scratch`), or the weights of a saved causal LM to continue training;
- chunking (`tasks/clm_chunks.py`): every text cut into `--context-length` windows, only full windows kept
  (the course), or `--pack`: texts joined with EOS and cut into full blocks, so only the last partial block is lost;
- training: the model's own loss, or the key-token weighted loss (`--keytokens`), in both loops;
- evaluation: perplexity and next-token accuracy (the runner's loss evaluation, labels shifted);
- predict: the text-generation pipeline (`tasks/clm_generate.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from nlpcli.config import RunConfig, given_by_user, option
from nlpcli.config_fields import flag
from nlpcli.console import is_main_process, say, warn
from nlpcli.errors import UserError
from nlpcli.sources import models, presets
from nlpcli.sources.data import Sample, check_columns, describe, is_streamed, own_file, values_of
from nlpcli.tasks.base import (
    Normalized,
    PredictionTable,
    PredictRequest,
    Prepared,
    Task,
    TaskSetup,
)
from nlpcli.tasks.clm_chunks import TOKENIZER_BATCH, Chunking, chunk_split, chunk_stream
from nlpcli.tasks.clm_generate import complete_prompts, ensure_pad_token
from nlpcli.tasks.examples import batch_row, decode, shifted_rows

DEFAULT_COLUMN = "content"  # codeparrot's column of file contents
STREAMED = "streamed: not counted"
STREAM_TOKENIZER_TEXTS = 10_000  # texts of a streamed training split that a tokenizer is fitted to


@dataclass
class ClmConfig(RunConfig):
    context_length: int = option(128, "Tokens per training example (window or packed block).", at_least=2)
    pack: bool = option(False, "Join the texts with EOS and cut full blocks (else: full windows of each text).")
    filter_keywords: list[str] | None = option(None, "Keep only texts that contain one of these (comma-separated).")
    tokenizer: str | None = option(None, "Tokenizer (hub id or folder) of a model trained from scratch [--model's].")
    train_tokenizer: bool = option(False, "Fit a new tokenizer on the training texts (from --tokenizer's algorithm).")
    vocab_size: int = option(52000, "Vocabulary size of the tokenizer --train-tokenizer fits.", at_least=300)
    from_scratch: bool = option(True, "Random weights from --model's configuration; --no-from-scratch: its weights.")
    keytokens: list[str] | None = option(None, "Weight the loss of samples by these tokens (comma-separated).")
    keytoken_alpha: float = option(1.0, "Key-token weight: a sample's loss counts 1 + alpha * key tokens times.",
                                   at_least=0)


def text_column(cfg: RunConfig) -> str:
    return cfg.text_column or DEFAULT_COLUMN


def without_blank_lines(raw: Any, cfg: RunConfig) -> dict[str, Any]:
    """Leave out the blank (empty or whitespace) lines of the splits read from a .txt file (one text per line;
    a blank line is no text); per such split, {"lines": read, "blank_lines": left out} (a stream: not counted)."""
    column, report = text_column(cfg), {}
    for split in list(raw):
        source = own_file(cfg, split)
        if source is None or source.suffix.lower() != ".txt" or column not in (raw[split].column_names or [column]):
            continue
        kept = raw[split].filter(lambda batch: [isinstance(t, str) and bool(t.strip()) for t in batch[column]],
                                 batched=True, **({} if is_streamed(raw[split]) else {"desc": f"Reading {split}"}))
        report[split] = STREAMED if is_streamed(kept) else {"lines": len(raw[split]),
                                                             "blank_lines": len(raw[split]) - len(kept)}
        raw[split] = kept
    return report


def mentions_any(texts: list[Any], keywords: list[str]) -> list[bool]:
    """The course's filter: does each text contain one of the keywords (as a substring)?"""
    return [isinstance(text, str) and any(keyword in text for keyword in keywords) for text in texts]


def keytoken_ids(tokenizer: Any, keywords: list[str]) -> dict[str, list[int]]:
    """The course's key tokens: each keyword with and without a leading space, every form that is a single
    token. A keyword with no single-token form is refused."""
    found: dict[str, list[int]] = {}
    for keyword in keywords:
        ids: list[int] = []
        for form in (keyword, " " + keyword):
            encoded = tokenizer(form, add_special_tokens=False)["input_ids"]
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
        if not ids:
            pieces = tokenizer.convert_ids_to_tokens(tokenizer(keyword, add_special_tokens=False)["input_ids"])
            raise UserError(
                f"--keytokens: '{keyword}' is not a single token of this tokenizer, with or without a leading "
                f"space (it splits into {pieces}).",
                hint="Key tokens must be single tokens; leave this one out or choose another.",
            )
        found[keyword] = ids
    return found


def keytoken_weighted_loss(logits: Any, labels: Any, input_ids: Any, keytokens: list[int], alpha: float) -> Any:
    """The course's key-token weighted loss: each sample's mean next-token loss, weighted by
    1 + alpha * (occurrences of the key tokens in the sample's input), averaged over the batch.

    (The course writes the weight as alpha * (1 + count), the same at its alpha of 1; at alpha 0 this one is
    the plain loss, where the course's would be zero.)
    """
    import torch

    from nlpcli.metrics.losses import per_sample_loss

    sums, counts = per_sample_loss(logits, labels, shift=True)
    per_sample = sums / counts.clamp(min=1)
    occurrences = torch.isin(input_ids, torch.tensor(keytokens, device=input_ids.device)).sum(dim=1)
    return (per_sample * (1.0 + alpha * occurrences)).mean()


def keytoken_loss(outputs: Any, batch: dict[str, Any], keytokens: list[int], alpha: float) -> Any:
    """The key-token weighted loss of one batch, as both loops call a task's training loss."""
    return keytoken_weighted_loss(outputs["logits"], batch["labels"], batch["input_ids"], keytokens, alpha)


class ClmCollator:
    """Stacks full windows (all `context_length` long): labels are the inputs (the model shifts them).

    Padding never happens, so EOS (which is also the pad token) keeps its label inside packed blocks."""

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        input_ids = torch.tensor([list(feature["input_ids"]) for feature in features])
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids.clone()}


def batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(islice(iterator, size)):
        yield chunk


class ClmTask(Task):
    name = "clm"
    help = "Causal LM from scratch (code completion): trained tokenizer, windows or packing, key-token loss."
    config_class = ClmConfig
    model_class = "AutoModelForCausalLM"
    pipeline_task = "text-generation"
    unused_options = ("label_column", "max_length")  # windows are --context-length tokens; no labels
    search_space = {"pack": {"type": "categorical", "choices": [False, True]}}
    evaluation = "loss"
    best_scores = {"eval_perplexity": 1.0, "eval_accuracy": 1.0}
    shifts_labels = True
    token_accuracy = True
    supports_streaming = True
    default_text_column = DEFAULT_COLUMN  # a .txt file's lines, without --text-column
    # predict: one row per prompt, in input order (N rows, numbered by `sequence`, with --num-return-sequences N)
    sample = Sample(
        files={"train": "python_code.jsonl"},
        description="nlpcli's own Python source, one file per record in `content` (10% held out)",
    )
    demo_request = PredictRequest(texts=["def prepare(self, raw"], max_new_tokens=20)

    def required_columns(self, cfg: RunConfig) -> list[str]:
        return [text_column(cfg)]

    def normalize(self, raw: Any, cfg: ClmConfig) -> Normalized:
        """A .txt file's blank lines left out (counted in run.json's "data"), then the course's keyword filter,
        over every split, with a progress bar and a kept/seen count."""
        report = without_blank_lines(raw, cfg)
        if not cfg.filter_keywords:
            return Normalized(raw, data_report=report)
        import datasets

        check_columns(raw, [text_column(cfg)], cfg)
        keywords, column = cfg.filter_keywords, text_column(cfg)
        counts: dict[str, Any] = {"keywords": keywords}
        was_enabled = datasets.utils.logging.is_progress_bar_enabled()
        if is_main_process():
            datasets.enable_progress_bars()
        try:
            for split in list(raw):
                if is_streamed(raw[split]):  # filtered as it is read: nothing is counted
                    raw[split] = raw[split].filter(lambda batch: mentions_any(batch[column], keywords), batched=True)
                    counts[split] = STREAMED
                    continue
                seen = len(raw[split])
                raw[split] = raw[split].filter(lambda batch: mentions_any(batch[column], keywords), batched=True,
                                               desc=f"Filtering {split} for {', '.join(keywords)}")
                counts[split] = {"seen": seen, "kept": len(raw[split])}
                say(f"filter {split}: kept {len(raw[split])} of {seen} texts")
        finally:
            if not was_enabled:
                datasets.disable_progress_bars()
        for split in raw:
            if not is_streamed(raw[split]) and len(raw[split]) == 0:
                raise UserError(f"{describe(cfg, split)}: no text mentions any of {', '.join(keywords)}.",
                                hint="Check --filter-keywords (matching is case-sensitive).")
        return Normalized(raw, data_report=report, facts={"filter": counts})

    def preset_texts(self, raw: Any, cfg: RunConfig) -> Iterable[str]:
        split = raw["train"] if "train" in raw else raw["validation"]
        if is_streamed(split):
            return (row[text_column(cfg)] for row in split.take(STREAM_TOKENIZER_TEXTS)
                    if isinstance(row[text_column(cfg)], str))
        return (text for text in values_of(split, text_column(cfg)) if isinstance(text, str))

    def setup(self, raw: Any, cfg: ClmConfig, pretrained_config: Any | None) -> TaskSetup:
        loads_weights = cfg.eval_only or not cfg.from_scratch
        preset = presets.find(cfg.model)
        if preset is not None and preset.fits_tokenizer:
            given = [flag(key) for key in ("tokenizer", "train_tokenizer")
                     if getattr(cfg, key) and given_by_user(cfg, key)]  # not the course's tokenizer in clm.yaml
            if given:
                warn(f"--model {preset.name} fits its own byte-level BPE tokenizer to the training text "
                     f"(size: --preset-vocab-size); {' and '.join(given)} {'is' if len(given) == 1 else 'are'} not "
                     "used.")
        elif loads_weights and cfg.train_tokenizer:
            raise UserError("--train-tokenizer needs --from-scratch: a model whose weights are loaded keeps its "
                            "own tokenizer.")
        elif not loads_weights and Path(cfg.model).expanduser().is_dir():
            warn(f"--from-scratch: only the configuration of {cfg.model} is used, with random weights. "
                 "Pass --no-from-scratch to continue training its weights.")
        if preset is not None and preset.causal_lm_positions:
            positions = preset.causal_lm_positions
        else:
            positions = getattr(pretrained_config, "n_positions", None) or getattr(
                pretrained_config, "max_position_embeddings", None)
        if positions and cfg.context_length > positions:
            raise UserError(f"--context-length {cfg.context_length} is longer than {cfg.model}'s {positions} "
                            "positions.")
        return TaskSetup()

    def load_model(
        self, cfg: ClmConfig, model_kwargs: dict[str, Any], texts: Callable[[], Iterable[str]], tokenizer_dir: Path
    ) -> tuple[Any, Any] | None:
        """A preset built with random weights (tiny) and saved causal LMs load the runner's way; from scratch:
        `--model`'s configuration, random weights, sized to the chosen or fitted tokenizer (pad = EOS)."""
        preset = presets.find(cfg.model)
        if preset is not None and preset.random_weights:
            return None
        if cfg.eval_only or not cfg.from_scratch:
            model, tokenizer = models.load_model_and_tokenizer(
                cfg.model, self.model_class, model_kwargs, texts, cfg.preset_vocab_size, tokenizer_dir
            )
            ensure_pad_token(tokenizer, cfg.model)
            model.config.pad_token_id = tokenizer.pad_token_id
            return model, tokenizer
        from transformers import AutoModelForCausalLM

        tokenizer = ensure_pad_token(self._tokenizer(cfg, texts, tokenizer_dir), cfg.tokenizer or cfg.model)
        config = presets.causal_lm_config(tokenizer, models.pretrained_config(cfg.model), n_ctx=cfg.context_length)
        return AutoModelForCausalLM.from_config(config, **model_kwargs), tokenizer  # e.g. attn_implementation

    @staticmethod
    def _tokenizer(cfg: ClmConfig, texts: Callable[[], Iterable[str]], tokenizer_dir: Path) -> Any:
        """--tokenizer (else --model's), or with --train-tokenizer a new one fitted to the training texts with
        the given one's algorithm (a byte-level BPE from scratch when that cannot be loaded offline). A fitted
        tokenizer is kept in `tokenizer_dir` for resumes and the other processes."""
        source = cfg.tokenizer or cfg.model
        if not cfg.train_tokenizer:
            return models.load_tokenizer(source)
        return presets.kept_or_fitted(tokenizer_dir, lambda: ClmTask._fitted_tokenizer(cfg, texts))

    @staticmethod
    def _fitted_tokenizer(cfg: ClmConfig, texts: Callable[[], Iterable[str]]) -> Any:
        """A tokenizer with --tokenizer's (else --model's) algorithm fitted to the training texts; a byte-level
        BPE from scratch when that one cannot be loaded offline."""
        from nlpcli.sources import hub

        source = cfg.tokenizer or cfg.model
        try:
            template = models.load_tokenizer(source)
        except UserError:
            if hub.hub_reachable():
                raise
            warn(f"tokenizer {source} is not available offline: fitting a byte-level BPE tokenizer from scratch.")
            tokenizer = presets.train_byte_level_bpe(texts(), cfg.vocab_size, presets.TINY_GPT2["n_positions"])
        else:
            say(f"fitting a {cfg.vocab_size}-token tokenizer like {source} to the training texts")
            tokenizer = template.train_new_from_iterator(batched(texts(), TOKENIZER_BATCH), cfg.vocab_size)
        return tokenizer

    def prepare(self, raw: Any, tokenizer: Any, cfg: ClmConfig, setup: TaskSetup) -> Prepared:
        """Every split cut into windows or packed blocks (the tokens kept and dropped go to run.json); with
        --keytokens, the key-token weighted loss."""
        if not tokenizer.is_fast:
            raise UserError(f"{cfg.tokenizer or cfg.model}: cutting texts into windows needs a fast tokenizer.")
        loss = None
        if cfg.keytokens and not cfg.eval_only:
            found = keytoken_ids(tokenizer, cfg.keytokens)
            loss = partial(keytoken_loss, keytokens=sorted({i for ids in found.values() for i in ids}),
                           alpha=cfg.keytoken_alpha)
            say("key tokens (alpha {}): {}".format(cfg.keytoken_alpha, ", ".join(
                f"{word}={'/'.join(map(str, ids))}" for word, ids in found.items())))
        how = Chunking(text_column(cfg), cfg.context_length, cfg.pack, cfg.preprocessing_workers or 1)
        facts: dict[str, Any] = {"chunking": how.name, "tokens_kept": {}, "tokens_dropped": {}}
        features = {}
        for split, data in raw.items():
            if is_streamed(data):
                features[split] = chunk_stream(data, tokenizer, how)
                facts["tokens_kept"][split] = facts["tokens_dropped"][split] = STREAMED
            else:
                features[split], facts["tokens_kept"][split], facts["tokens_dropped"][split] = chunk_split(
                    data, split, describe(cfg, split), tokenizer, how)
        return Prepared(features.get("train"), features["validation"], training_loss=loss, facts=facts)

    def collator(self, tokenizer: Any, model: Any, cfg: RunConfig) -> Any:
        return ClmCollator()

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: ClmConfig,
                         setup: TaskSetup) -> dict[str, Any]:
        """The first window, and its first targets: the labels are the inputs, which the model shifts, so the
        token at each position is scored against the next one."""
        row = batch_row(batch, 0)
        return {"text": decode(tokenizer, row["input_ids"]), "tokens": len(row["input_ids"]), "shifted targets":
                shifted_rows(tokenizer.convert_ids_to_tokens(row["input_ids"]),
                             tokenizer.convert_ids_to_tokens(row["labels"]))}

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        return complete_prompts(model_dir, request, self.pipeline_task)
