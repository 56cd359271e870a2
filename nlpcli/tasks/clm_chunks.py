"""Causal LM chunking: the training examples cut from texts, as the course cuts them, or packed.

- windows: every text cut into `length`-token windows, only full windows kept (the course);
- packing: the texts joined with EOS and cut into full blocks, so only the last partial block is lost;
- a streamed split is cut the same way as it is read (its tokens are not counted).
A whole split reports the tokens it kept and dropped (run.json).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.sources.data import values_of

TOKENIZER_BATCH = 1000  # texts per batch (fitting a tokenizer)
# texts tokenized per batch: whole documents (source files), whose tokens are Python lists while a batch is made,
# so a batch's memory is bounded by this rather than the 1000 records of datasets' default
TEXTS_PER_BATCH = 100


@dataclass(frozen=True)
class Chunking:
    """How texts become examples: the text column, the example length in tokens, windows or packing."""

    column: str
    length: int
    pack: bool
    workers: int = 1  # processes that tokenize a whole split (--preprocessing-workers)

    @property
    def name(self) -> str:
        return "pack" if self.pack else "windows"


def full_windows(tokenizer: Any, texts: list[str], context_length: int) -> dict[str, list]:
    """Every text cut into windows of `context_length` tokens (`return_overflowing_tokens`); `length` says how
    long each window is, so that only the full ones can be kept and the rest counted as dropped."""
    encoded = tokenizer(texts, truncation=True, max_length=context_length, return_overflowing_tokens=True,
                        return_length=True)
    return {"input_ids": encoded["input_ids"], "length": encoded["length"]}


def with_eos(tokenizer: Any, texts: list[str]) -> dict[str, list]:
    """Each text's tokens followed by EOS (for packing), and their count."""
    ids = [tokens + [tokenizer.eos_token_id] for tokens in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return {"input_ids": ids, "length": [len(tokens) for tokens in ids]}


def pack_blocks(token_lists: Iterable[list[int]], block: int) -> Iterator[list[int]]:
    """Concatenate the token lists and cut full blocks of `block` tokens; only the last partial one is lost."""
    buffer: list[int] = []
    for tokens in token_lists:
        buffer.extend(tokens)
        full = len(buffer) // block * block
        for start in range(0, full, block):
            yield buffer[start:start + block]
        buffer = buffer[full:]


def has_text(column: str) -> Any:
    return lambda batch: [isinstance(t, str) and bool(t) for t in batch[column]]


def chunk_split(data: Any, split: str, where: str, tokenizer: Any, how: Chunking) -> tuple[Any, int, int]:
    """(windows or packed blocks of one whole split, tokens kept, tokens dropped); `where` names the split in
    messages."""
    import datasets
    from datasets.fingerprint import Hasher

    column, length = how.column, how.length
    workers = {"num_proc": how.workers} if how.workers > 1 else {}
    texts = data.filter(has_text(column), batched=True, desc=f"Checking {split}", **workers)
    if len(texts) < len(data):
        warn(f"{where}: {len(data) - len(texts)} of {len(data)} records have no text in '{column}'; they are skipped.")
    if how.pack:
        tokens = texts.map(lambda batch: with_eos(tokenizer, batch[column]), batched=True, batch_size=TEXTS_PER_BATCH,
                           remove_columns=texts.column_names, desc=f"Tokenizing {split}", **workers)
        chunks = datasets.Dataset.from_generator(
            lambda: ({"input_ids": block} for block in pack_blocks(
                (ids for batch in tokens.iter(batch_size=TEXTS_PER_BATCH) for ids in batch["input_ids"]), length)),
            features=datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32"))}),
            # a private name on purpose: datasets (5.2) has no public accessor for a dataset's fingerprint, which
            # names the packed cache after its input so every DDP process reads the same one; replace it when
            # datasets offers one
            fingerprint=Hasher.hash(("clm-pack", tokens._fingerprint, length)),
        )
    else:
        windows = texts.map(lambda batch: full_windows(tokenizer, batch[column], length), batched=True,
                            batch_size=TEXTS_PER_BATCH, remove_columns=texts.column_names,
                            desc=f"Cutting {split} into windows", **workers)
        tokens = windows
        chunks = windows.filter(lambda batch: [n == length for n in batch["length"]], batched=True,
                                desc=f"Keeping full windows of {split}").remove_columns("length")
    total = sum(values_of(tokens, "length"))
    kept = len(chunks) * length
    if len(chunks) == 0:
        raise UserError(f"{where}: no text gives a full window of {length} tokens.",
                        hint="Use more (or longer) text, --pack, or a smaller --context-length.")
    return chunks, kept, total - kept


def chunk_stream(data: Any, tokenizer: Any, how: Chunking) -> Any:
    """Windows or packed blocks of a streamed split, made as it is read (its tokens are not counted: the
    shuffle buffer and the tokenizer fitting read parts of a stream more than once)."""
    import datasets

    column, length = how.column, how.length
    texts = data.select_columns([column]).filter(has_text(column), batched=True)
    ids = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32"))})
    lengths = datasets.Features({**ids, "length": datasets.Value("int32")})

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return with_eos(tokenizer, batch[column]) if how.pack else full_windows(tokenizer, batch[column], length)

    tokens = texts.map(tokenize, batched=True, batch_size=TEXTS_PER_BATCH, remove_columns=[column], features=lengths)
    if not how.pack:
        full = tokens.filter(lambda batch: [n == length for n in batch["length"]], batched=True)
        return full.remove_columns("length")

    def blocks() -> Iterator[dict[str, list[int]]]:
        for block in pack_blocks((row["input_ids"] for row in tokens), length):
            yield {"input_ids": block}

    return datasets.IterableDataset.from_generator(blocks, features=ids)
