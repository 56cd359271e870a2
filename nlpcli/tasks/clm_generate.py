"""`nlpcli predict clm`: prompts continued by a saved causal LM with the text-generation pipeline, in batches
(left-padded, pad = EOS), greedy (`--temperature 0`, the default) or sampled: `--temperature`, `--top-k` (only
the K most likely next tokens; 0: no limit) and `--top-p` (the smallest set of tokens holding that probability),
each given to `generate` explicitly, so the title line says what ran whatever the model's generation config
holds. The request is checked before any model loads."""

from __future__ import annotations

from typing import Any

from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.tasks.base import PredictionTable, PredictRequest, build_pipeline, pipeline_outputs

PREDICT_BATCH = 8  # prompts generated together
TOP_K = 50  # --top-k when sampling without one: transformers' GenerationConfig default


def ensure_pad_token(tokenizer: Any, where: str) -> Any:
    """A causal LM's tokenizer, padding with its EOS token when it has no pad token (batches of texts)."""
    if tokenizer.eos_token is None:
        raise UserError(f"{where}: the tokenizer has no end-of-text token, which a causal LM needs.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def sampling_settings(request: PredictRequest) -> dict[str, Any]:
    """The `generate` arguments of the decoding asked: greedy at temperature 0, else sampling with the given (or
    default) top-k and top-p."""
    if request.temperature == 0:
        return {"do_sample": False}
    top_k = TOP_K if request.top_k is None else request.top_k
    return {"do_sample": True, "temperature": request.temperature, "top_k": top_k, "top_p": request.top_p}


def decoding_title(request: PredictRequest) -> str:
    settings = sampling_settings(request)
    if not settings["do_sample"]:
        return f"{request.max_new_tokens} new tokens, greedy"
    return (f"{request.max_new_tokens} new tokens, temperature {request.temperature}, top-k "
            f"{settings['top_k'] or 'off'}, top-p {request.top_p}")


def complete_prompts(model_dir: str, request: PredictRequest, pipeline_task: str) -> PredictionTable:
    """One row per prompt and completion (`sequence` 1..N with --num-return-sequences N), in input order."""
    check_generation_request(request, model_dir)
    from transformers import set_seed

    generator = build_pipeline(pipeline_task, model_dir)
    tokenizer = ensure_pad_token(generator.tokenizer, model_dir)
    tokenizer.padding_side = "left"  # a decoder-only model continues the prompt's last token
    settings = {"max_new_tokens": request.max_new_tokens, "num_return_sequences": request.num_return_sequences,
                "pad_token_id": tokenizer.pad_token_id, **sampling_settings(request)}
    if request.seed is not None:
        set_seed(request.seed)
    rows = []
    for prompt, candidates in pipeline_outputs(generator, request.texts, PREDICT_BATCH, **settings):
        for number, candidate in enumerate(candidates, start=1):
            rows.append({"prompt": prompt, "sequence": number, "generated_text": candidate["generated_text"]})
    columns = ["generated_text"]
    if request.num_return_sequences > 1:
        columns.insert(0, "sequence")
    if len(request.texts) > 1:
        columns.insert(0, "prompt")
    return PredictionTable(columns=columns, rows=rows, title=decoding_title(request))


def check_generation_request(request: PredictRequest, model_dir: str) -> None:
    """Refuse what cannot generate; warn of sampling settings that greedy decoding ignores."""
    if not request.texts:
        raise UserError("Give a prompt to continue.",
                        hint=f'For example: nlpcli predict clm {model_dir} "# create scatter plot with x, y"')
    if request.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1, got {request.max_new_tokens}.")
    if request.temperature < 0:
        raise UserError(f"--temperature must be 0 (greedy) or more, got {request.temperature}.")
    if not 0 < request.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {request.top_p}.")
    if request.top_k is not None and request.top_k < 0:
        raise UserError(f"--top-k must be 0 (no limit) or more, got {request.top_k}.")
    if request.num_return_sequences < 1:
        raise UserError(f"--num-return-sequences must be at least 1, got {request.num_return_sequences}.")
    if request.num_return_sequences > 1 and request.temperature == 0:
        raise UserError("--num-return-sequences above 1 needs sampling: greedy decoding gives one answer.",
                        hint="Add --temperature 0.8 (for example).")
    ignored = [name for name, given in (("--top-k", request.top_k is not None), ("--top-p", request.top_p != 1.0))
               if given]
    if ignored and request.temperature == 0:
        warn(f"{' and '.join(ignored)}: used only when sampling, and --temperature 0 decodes greedily; add "
             "--temperature 0.8 (for example) to sample.")
