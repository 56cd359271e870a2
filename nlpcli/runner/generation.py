"""Generation-based evaluation (translate, summarize), one function for both loops.

The eval set is cut into batches of similar source length (longest first); process r of n generates
batches r, r + n, ... with the unwrapped model. Every process runs the same number of `generate` calls
(a process short of batches repeats its last one, and that result is dropped), so sharded engines
(FSDP, DeepSpeed ZeRO-3) can generate with `synced_gpus`. The (index, generated ids) pairs are gathered
across processes and put back in data order, so 1 and N processes give the same predictions.

References are the decoded labels (-100 replaced by the pad id), as the model was asked to produce them;
`eval_predictions.jsonl` holds source, prediction and reference per example, in data order, and the
task's metric is computed from exactly those texts.
"""

from __future__ import annotations

import math
import time
from typing import Any

from nlpcli.generation import generate_batch, generated_length, length_sorted_batches


def _my_batches(batches: list[list[int]], rank: int, world: int) -> tuple[list[list[int]], int]:
    """This process's batches, padded with repeats to the common number of rounds; and how many are real."""
    mine = batches[rank::world]
    rounds = math.ceil(len(batches) / world)
    filler = mine[-1] if mine else batches[0]
    return mine + [filler] * (rounds - len(mine)), len(mine)


def generate_eval_ids(accelerator: Any, model: Any, tokenizer: Any, features: Any, settings: dict, batch_size: int):
    """Generated ids for every eval feature, in data order, identical on every process."""
    from accelerate.utils import DistributedType, gather_object

    from nlpcli.sources.data import values_of

    lengths = [len(ids) for ids in values_of(features, "input_ids")]  # a batch of records at a time
    if not lengths:
        return []
    batches, real = _my_batches(length_sorted_batches(lengths, batch_size),
                                accelerator.process_index, accelerator.num_processes)
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        settings = {**settings, "synced_gpus": True}
    generator = accelerator.unwrap_model(model)
    generator.eval()
    results: list[tuple[int, list[int]]] = []
    for round_index, indices in enumerate(batches):
        with accelerator.autocast():
            generated = generate_batch(generator, tokenizer, [features[i] for i in indices], settings)
        if round_index < real:
            results.extend(zip(indices, generated, strict=True))
    if accelerator.num_processes > 1:
        results = gather_object(results)
    by_index = dict(results)
    return [by_index[i] for i in range(len(lengths))]


def decode_labels(tokenizer: Any, labels: list[list[int]]) -> list[str]:
    pad = tokenizer.pad_token_id
    cleaned = [[pad if token == -100 else token for token in row] for row in labels]
    return [text.strip() for text in tokenizer.batch_decode(cleaned, skip_special_tokens=True)]


def evaluate_generation(accelerator: Any, model: Any, ctx: Any) -> dict[str, float]:
    """Generate for the eval set, score the decoded texts with the task's metric, write the predictions."""
    task, cfg, tokenizer = ctx.task, ctx.cfg, ctx.tokenizer
    settings = task.generation_settings(cfg, tokenizer)
    started = time.perf_counter()
    batch_size = getattr(cfg, "generation_batch", None) or cfg.per_device_eval_batch_size  # a generation task's
    generated = generate_eval_ids(accelerator, model, tokenizer, ctx.eval_features, settings, batch_size)
    seconds = time.perf_counter() - started
    predictions = [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    references = decode_labels(tokenizer, ctx.eval_features["labels"])
    sources = task.sources(ctx.raw_eval)
    metrics = dict(task.score(sources, predictions, references))
    lengths = [generated_length(ids, tokenizer.pad_token_id) for ids in generated]
    metrics["gen_len"] = sum(lengths) / len(lengths) if lengths else 0.0
    ctx.report.generation = {"generated_tokens": sum(lengths), "generation_s": round(seconds, 3),
                             "batch_size": batch_size,
                             "tokens_per_second": round(sum(lengths) / seconds, 1) if seconds else 0.0}
    if accelerator.is_main_process:
        rows = [{"source": s, "prediction": p, "reference": r}
                for s, p, r in zip(sources, predictions, references, strict=True)]
        ctx.write_rows(rows)
    return metrics
