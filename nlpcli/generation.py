"""Batched generation with a sequence-to-sequence model, shared by evaluation (runner) and predict (tasks).

Inputs are sorted by length, longest first, so each batch pads little and an out-of-memory error shows
up on the first batch rather than the last; callers get the outputs back in their own order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (ties keep data order)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def generate_batch(model: Any, tokenizer: Any, features: list[dict[str, Any]], settings: dict[str, Any]) -> list:
    """Generated token ids (lists, pad tokens included) for one batch of tokenized inputs."""
    import torch

    batch = tokenizer.pad(
        [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features],
        return_tensors="pt",
    )
    batch = {key: value.to(model.device) for key, value in batch.items()}
    with torch.no_grad():
        return model.generate(**batch, **settings).tolist()


def generated_length(ids: Sequence[int], pad_token_id: int | None) -> int:
    """Tokens generated, not counting padding (the decoder start token of T5/Marian is the pad token)."""
    return sum(1 for token in ids if token != pad_token_id)


def generate_texts(
    model: Any,
    tokenizer: Any,
    features: list[dict[str, Any]],
    settings: dict[str, Any],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Decoded generations for `features` (tokenized inputs), in their order; `on_batch(n)` after each batch."""
    outputs: list[str] = [""] * len(features)
    for indices in length_sorted_batches([len(f["input_ids"]) for f in features], batch_size):
        generated = generate_batch(model, tokenizer, [features[i] for i in indices], settings)
        for index, text in zip(indices, tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
            outputs[index] = text.strip()
        if on_batch is not None:
            on_batch(len(indices))
    return outputs
