"""Device and precision: fp16 on CUDA by default, bf16 when asked and supported, fp32 on CPU."""

from __future__ import annotations

from nlpcli.console import warn


def resolve_precision(requested: str) -> str:
    """Map the `precision` key to accelerate's mixed_precision value: 'no', 'fp16' or 'bf16'."""
    import torch

    if not torch.cuda.is_available():
        if requested in ("fp16", "bf16"):
            warn(f"precision {requested} needs a CUDA GPU; running in fp32 on the CPU.")
        return "no"
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        warn("this GPU has no bf16 support; using fp16.")
        return "fp16"
    return {"auto": "fp16", "fp32": "no"}.get(requested, requested)


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"
