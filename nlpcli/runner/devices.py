"""Device and precision: fp16 on CUDA by default (bf16 for T5-family models, whose activations overflow
fp16, where the GPU supports it), bf16 when asked and supported, fp32 on CPU."""

from __future__ import annotations

from nlpcli.console import warn

FP16_OVERFLOWS = ("t5", "mt5", "umt5", "longt5", "byt5", "switch_transformers", "pegasus", "bart", "mbart")


def resolve_precision(requested: str, model_type: str | None = None) -> str:
    """Map the `precision` key to accelerate's mixed_precision value: 'no', 'fp16' or 'bf16'."""
    import torch

    if not torch.cuda.is_available():
        if requested in ("fp16", "bf16"):
            warn(f"precision {requested} needs a CUDA GPU; running in fp32 on the CPU.")
        return "no"
    bf16_ok = torch.cuda.is_bf16_supported()
    if requested == "bf16" and not bf16_ok:
        warn("this GPU has no bf16 support; using fp16.")
        return "fp16"
    if requested == "auto" and model_type in FP16_OVERFLOWS:
        if bf16_ok:
            return "bf16"
        warn(f"{model_type} models are known to overflow to NaN in fp16, and this GPU has no bf16; "
             "if the loss turns NaN, use --precision fp32.")
    if requested == "fp16" and model_type in FP16_OVERFLOWS:
        warn(f"{model_type} models are known to overflow to NaN in fp16; --precision bf16 or fp32 is safer.")
    return {"auto": "fp16", "fp32": "no"}.get(requested, requested)


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"
