"""Masked-language-model domain adaptation: concatenate and chunk the text, mask, report perplexity.

The story of the Hugging Face course (chapter 7, section 3), in pieces:
- every text is tokenized (keeping each token's word id), the token lists of a batch are concatenated
  and cut into chunks of `chunk_size` tokens; the last, shorter chunk is dropped; labels copy input_ids;
- `max_train_samples` / `max_eval_samples` count chunks (a seeded random sample, like the course's
  `train_test_split` of the chunks), so the runner leaves the raw texts whole;
- training chunks are masked afresh in every batch by `MlmCollator` (token masking through
  transformers' `DataCollatorForLanguageModeling`, or whole-word masking);
- evaluation chunks are masked once, in `prepare`, with a seed (the course's `insert_random_mask`), so
  every evaluation of a model sees the same masks and reports the same perplexity.

One collator serves both loops and both splits: chunks that still carry `word_ids` are masked now;
chunks without them were masked in `prepare` and are only padded and stacked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from nlpcli.config import RunConfig, option
from nlpcli.errors import UserError
from nlpcli.sources.data import Sample, describe, map_workers
from nlpcli.tasks.base import (
    PredictionTable,
    PredictRequest,
    Prepared,
    Task,
    TaskSetup,
    build_pipeline,
    pipeline_outputs,
)
from nlpcli.tasks.examples import IGNORE, SHOWN_TOKENS, batch_row, decode, unpadded

NOT_A_WORD = -1  # word id of special tokens ([CLS], [SEP]) and padding
MARKUP_LINE = re.compile(r"^\s*</?doc\b[^>]*>\s*$")  # WikiExtractor's <doc ...> / </doc> lines
TOP_K = 5  # `predict --top-k` default: candidates per mask


@dataclass
class MlmConfig(RunConfig):
    chunk_size: int = option(
        128, "Tokens per training example: texts are concatenated and cut into chunks.", at_least=2
    )
    whole_word_masking: bool = option(False, "Mask all sub-tokens of a chosen word together (else single tokens).")
    mlm_probability: float = option(0.15, "Probability that a token (or word) is masked.", above=0, at_most=1)
    max_train_samples: int | None = option(
        None, "Train on a seeded random sample of N chunks (of --chunk-size tokens), not N texts.", at_least=1)
    max_eval_samples: int | None = option(
        None, "Evaluate on a seeded random sample of N chunks (of --chunk-size tokens), not N texts.", at_least=1)


def usable_texts(values: Iterable[Any]) -> Iterator[str]:
    """The non-empty strings of a text column, without blank lines and `<doc ...>`/`</doc>` markup."""
    for value in values:
        if isinstance(value, str) and value.strip() and not MARKUP_LINE.match(value):
            yield value


def batch_word_ids(word_ids_per_text: list[list[int | None]]) -> list[list[int]]:
    """Per-text word ids (None for special tokens) -> ids unique across the batch, NOT_A_WORD for specials.

    Unique ids keep two neighbouring texts' words apart once the texts are concatenated.
    """
    result, offset = [], 0
    for word_ids in word_ids_per_text:
        result.append([NOT_A_WORD if w is None else w + offset for w in word_ids])
        offset += max((w for w in word_ids if w is not None), default=-1) + 1
    return result


def group_texts(batch: dict[str, list[list[int]]], chunk_size: int) -> dict[str, list[list[int]]]:
    """Concatenate each column's lists and cut them into chunks of `chunk_size`; the last short chunk is
    dropped. `labels` is a copy of `input_ids` (the text itself is the target)."""
    concatenated = {name: list(chain.from_iterable(lists)) for name, lists in batch.items()}
    usable = len(concatenated["input_ids"]) // chunk_size * chunk_size
    chunks = {
        name: [tokens[start:start + chunk_size] for start in range(0, usable, chunk_size)]
        for name, tokens in concatenated.items()
    }
    chunks["labels"] = [list(ids) for ids in chunks["input_ids"]]
    return chunks


def whole_word_mask(
    input_ids: Any, word_ids: Any, probability: float, mask_token_id: int, generator: Any | None = None
) -> tuple[Any, Any]:
    """Choose words with `probability` and replace all their sub-tokens by the mask token.

    Tensors of shape (batch, length); `word_ids` is NOT_A_WORD for special and padding tokens, which are
    never masked. Returns (masked input_ids, labels): labels hold the original id where masked, -100
    elsewhere.
    """
    import torch

    in_word = word_ids != NOT_A_WORD
    starts = in_word.clone()
    starts[:, 1:] &= word_ids[:, 1:] != word_ids[:, :-1]
    draws = torch.bernoulli(torch.full(word_ids.shape, probability), generator=generator).bool()
    chosen = draws & starts
    positions = torch.arange(word_ids.shape[1]).expand_as(word_ids)
    word_start = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values
    masked = chosen.gather(1, word_start) & in_word
    labels = torch.where(masked, input_ids, torch.full_like(input_ids, IGNORE))
    inputs = torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids)
    return inputs, labels


def pad_rows(rows: list[list[int]], value: int, side: str) -> list[list[int]]:
    width = max(len(row) for row in rows)
    if side == "left":
        return [[value] * (width - len(row)) + row for row in rows]
    return [row + [value] * (width - len(row)) for row in rows]


def batch_generator(seed: int, epoch: int, input_ids: list[list[int]]) -> Any:
    """A generator seeded by (seed, epoch, the batch's tokens): the masks of a batch depend on nothing else."""
    import zlib

    import numpy as np
    import torch

    tokens = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in input_ids] + [np.asarray([len(input_ids)])])
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + zlib.crc32(tokens.tobytes())) % 2**62)


class MlmCollator:
    """Masks chunks that carry `word_ids` (fresh random masks each call); pads pre-masked ones as they are.

    `seed` None draws from torch's global generator (seeded by the runner); an int makes the masks of
    this collator's calls reproducible (used to mask the evaluation set once).
    """

    def __init__(
        self, tokenizer: Any, mlm_probability: float, whole_word: bool, seed: int | None = None,
        epoch_seed: int | None = None,
    ) -> None:
        from transformers import DataCollatorForLanguageModeling, DataCollatorForTokenClassification

        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word = whole_word
        self.seed = seed
        self.epoch_seed = epoch_seed
        self.epoch: int | None = None
        self.generator = None
        self.token_masker = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
        self.padder = DataCollatorForTokenClassification(tokenizer)  # pads labels with -100

    def set_epoch(self, epoch: int) -> None:
        """The loops call this at each epoch's start: from then on a training batch's masks are drawn from
        `batch_generator(epoch_seed, epoch, its tokens)`, so a resumed run masks exactly as an uninterrupted
        one (the data loaders collate one batch ahead of training, before a checkpoint saves the RNG)."""
        self.epoch = epoch

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        unmasked = ["word_ids" in feature for feature in features]
        if not any(unmasked):
            if not all("labels" in feature for feature in features):
                raise ValueError("Chunks reached the collator with neither word_ids (to mask) nor labels.")
            return self.padder(features)
        if not all(unmasked):
            raise ValueError("A batch mixes masked and unmasked chunks.")
        word_ids = [list(feature["word_ids"]) for feature in features]
        inputs = [{k: v for k, v in f.items() if k not in ("word_ids", "labels")} for f in features]
        if self.epoch is not None:
            self.generator = batch_generator(self.epoch_seed or 0, self.epoch, [f["input_ids"] for f in inputs])
            self.token_masker.generator = self.generator
        if not self.whole_word:
            for row, ids in zip(inputs, word_ids, strict=True):
                row["special_tokens_mask"] = [int(w == NOT_A_WORD) for w in ids]
            return dict(self.token_masker(inputs))
        import torch

        if self.generator is None and self.seed is not None:
            self.generator = torch.Generator().manual_seed(self.seed)
        batch = dict(self.tokenizer.pad(inputs, return_tensors="pt"))
        padded = torch.tensor(pad_rows(word_ids, NOT_A_WORD, self.tokenizer.padding_side))
        batch["input_ids"], batch["labels"] = whole_word_mask(
            batch["input_ids"], padded, self.mlm_probability, self.tokenizer.mask_token_id, self.generator
        )
        return batch


def tokenize_and_group(batch: dict[str, list], tokenizer: Any, column: str, chunk_size: int) -> dict[str, list]:
    """The chunks of a batch of texts, with their word ids. Given only what shapes the chunks, so that datasets'
    fingerprint of the map, and so the cache a later run reuses, does not change with other options (learning
    rate, output folder, ...)."""
    texts = list(usable_texts(batch[column]))
    if not texts:
        return {"input_ids": [], "word_ids": [], "labels": []}
    encoded = tokenizer(texts)
    tokens = {name: encoded[name] for name in encoded.keys()}
    tokens["word_ids"] = batch_word_ids([encoded.word_ids(i) for i in range(len(encoded["input_ids"]))])
    return group_texts(tokens, chunk_size)


def mask_chunks(batch: dict[str, list], indices: list[int], tokenizer: Any, mlm_probability: float,
                whole_word: bool, seed: int) -> dict[str, list]:
    """A batch of chunks masked once, from a seed of its own (`seed` + its first row's index); given only what
    shapes the masks, as `tokenize_and_group`."""
    rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
    collator = MlmCollator(tokenizer, mlm_probability, whole_word, seed=seed + indices[0])
    return {name: tensor.tolist() for name, tensor in collator(rows).items()}


def limit(features: Any, count: int | None, seed: int) -> Any:
    """At most `count` chunks, a seeded random sample (all of them when there are fewer)."""
    if count is None or len(features) <= count:
        return features
    return features.shuffle(seed=seed).select(range(count)).flatten_indices()


class MlmTask(Task):
    name = "mlm"
    help = "Masked-LM domain adaptation: chunked text, token or whole-word masking, perplexity before/after."
    config_class = MlmConfig
    model_class = "AutoModelForMaskedLM"
    pipeline_task = "fill-mask"
    evaluation = "loss"
    best_scores = {"eval_perplexity": 1.0}
    collator_columns = ("word_ids",)
    limits_count_features = True
    unused_options = ("label_column", "max_length")  # chunks are --chunk-size tokens; no labels
    search_space = {"whole_word_masking": {"type": "categorical", "choices": [False, True]},
                    "mlm_probability": {"type": "float", "low": 0.1, "high": 0.25}}
    sample = Sample(
        files={"train": "wiki_00.txt"},
        description="two English Wikipedia articles, one text per line (10% of the lines held out)",
    )
    demo_request = PredictRequest(texts=["Anarchism is a political [MASK]."])

    def required_columns(self, cfg: RunConfig) -> list[str]:
        return [cfg.text_column or "text"]  # label columns (e.g. imdb's) are ignored

    def preset_texts(self, raw: Any, cfg: RunConfig) -> Iterable[str]:
        split = raw["train"] if "train" in raw else raw["validation"]
        return usable_texts(split[cfg.text_column or "text"])

    def prepare(self, raw: Any, tokenizer: Any, cfg: MlmConfig, setup: TaskSetup) -> Prepared:
        self._check_tokenizer(tokenizer, cfg)
        shape = {"tokenizer": tokenizer, "column": cfg.text_column or "text", "chunk_size": cfg.chunk_size}
        chunks = {}
        for split, limit_count in (("train", cfg.max_train_samples), ("validation", cfg.max_eval_samples)):
            if split not in raw:
                continue
            data = raw[split]
            grouped = data.map(tokenize_and_group, batched=True, remove_columns=data.column_names, fn_kwargs=shape,
                               desc=f"Chunking {split}", **map_workers(cfg, data))
            if len(grouped) == 0:
                raise UserError(
                    f"{describe(cfg, split)}: fewer than {cfg.chunk_size} tokens of text, not one chunk.",
                    hint="Use more text or a smaller --chunk-size.",
                )
            chunks[split] = limit(grouped, limit_count, cfg.seed)
        train = chunks.get("train")
        if train is not None:
            # The collator makes training labels afresh in every batch. Without a labels column, a chunk
            # that reached it without its word ids would fail loudly instead of training unmasked.
            train = train.remove_columns("labels")
        return Prepared(train, self._mask_once(chunks["validation"], tokenizer, cfg))

    def overfit_features(self, prepared: Prepared, count: int) -> Prepared:
        """The batch the overfit check repeats is masked once, as the course repeats one collated batch: it trains
        on the evaluation's masked chunks (fresh masks at every step would be another batch each time)."""
        batch = prepared.eval.select(range(min(count, len(prepared.eval))))
        return dataclasses.replace(prepared, train=batch, eval=batch)

    @staticmethod
    def _check_tokenizer(tokenizer: Any, cfg: MlmConfig) -> None:
        if tokenizer.mask_token is None:
            raise UserError(f"{cfg.model}: the tokenizer has no mask token, so it cannot do masked-LM training.")
        if not tokenizer.is_fast:
            raise UserError(f"{cfg.model}: masked-LM chunking needs a fast tokenizer (for word ids).")
        limit_tokens = tokenizer.model_max_length
        if limit_tokens and limit_tokens < 1_000_000 and cfg.chunk_size > limit_tokens:
            raise UserError(f"--chunk-size {cfg.chunk_size} is longer than the model's {limit_tokens} positions.")

    @staticmethod
    def _mask_once(chunks: Any, tokenizer: Any, cfg: MlmConfig) -> Any:
        """Mask the evaluation chunks once; each map batch draws from its own seed, so the result does
        not depend on batch order or caching."""
        shape = {"tokenizer": tokenizer, "mlm_probability": cfg.mlm_probability,
                 "whole_word": cfg.whole_word_masking, "seed": cfg.seed}
        return chunks.map(mask_chunks, batched=True, with_indices=True, remove_columns=chunks.column_names,
                          fn_kwargs=shape, desc="Masking validation")

    def collator(self, tokenizer: Any, model: Any, cfg: MlmConfig) -> Any:
        return MlmCollator(tokenizer, cfg.mlm_probability, cfg.whole_word_masking, epoch_seed=cfg.seed)

    def describe_example(self, batch: dict[str, Any], raw: Any, tokenizer: Any, cfg: MlmConfig,
                         setup: TaskSetup) -> dict[str, Any]:
        """The first chunk as the collator masked it, and each masked position: what the model reads there (the
        mask token, a random token or the token itself) and the token it must predict."""
        row = batch_row(batch, 0)
        ids, labels = row["input_ids"], row["labels"]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        masked = [i for i, label in enumerate(labels) if label != IGNORE]
        targets = [{"position": i, "input": tokens[i], "target": tokenizer.convert_ids_to_tokens(labels[i])}
                   for i in masked[:SHOWN_TOKENS]]
        return {"masked input": decode(tokenizer, unpadded(row)),
                "masked": f"{len(masked)} of {len(unpadded(row))} tokens ({cfg.mlm_probability:.0%} asked, "
                          f"{'whole words' if cfg.whole_word_masking else 'single tokens'})",
                "targets": targets}

    def predict(self, model_dir: str, request: PredictRequest) -> PredictionTable:
        top_k = TOP_K if request.top_k is None else request.top_k
        if top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {top_k}.")
        fill = build_pipeline(self.pipeline_task, model_dir)
        mask = fill.tokenizer.mask_token
        example = f'nlpcli predict mlm {model_dir} "This is a great {mask}."'
        if not request.texts:
            raise UserError("Give a text with a masked word, or --file.", hint=f"For example: {example}")
        texts = []
        for index, text in enumerate(request.texts):
            if mask in text:
                texts.append(text)
            else:
                request.reject(index, f"{text!r} has no {mask}: this model's mask token is {mask}.",
                               hint=f"Put {mask} where the missing word goes, e.g. {example}")
        records, rows = [], []
        for text, found in pipeline_outputs(fill, texts, request.batch_size, top_k=top_k):
            per_mask = found if found and isinstance(found[0], list) else [found]
            candidates = [
                {"mask": position, "token": candidate["token_str"], "score": round(float(candidate["score"]), 4),
                 "sequence": candidate["sequence"]}
                for position, candidates in enumerate(per_mask, start=1) for candidate in candidates
            ]
            records.append({"text": text, "predictions": candidates})
            rows += [{"text": text, **candidate} for candidate in candidates]
        columns = ["token", "score", "sequence"]
        if any(row["mask"] > 1 for row in rows):
            columns.insert(0, "mask")
        if len(texts) > 1:
            columns.insert(0, "text")
        return PredictionTable(columns=columns, rows=rows, title=f"top {top_k} for {mask}", records=records)
