"""Device and precision. `--precision auto` follows the launcher (an accelerate config or `accelerate launch
--mixed_precision`, which reach the processes as ACCELERATE_MIXED_PRECISION); without one, bf16 on GPUs that
support it (no loss scaling), fp16 on other GPUs, fp32 on the CPU. An explicit `--precision` that contradicts
the launcher is refused before anything runs."""

from __future__ import annotations

import os
from typing import Any

from nlpcli.console import warn
from nlpcli.errors import UserError

FP16_OVERFLOWS = ("t5", "mt5", "umt5", "longt5", "byt5", "switch_transformers", "pegasus", "bart", "mbart")
LAUNCHER_VARIABLE = "ACCELERATE_MIXED_PRECISION"  # what `accelerate launch` tells its processes
NAMES = {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}  # accelerate's value -> the --precision name


def launcher_precision() -> str | None:
    """The mixed precision the launcher asked for (fp16, bf16, fp8, ...), or None. `no` is accelerate
    launch's default when nothing was asked, so it does not count as a request."""
    value = os.environ.get(LAUNCHER_VARIABLE, "").strip().lower()
    return value if value and value != "no" else None


def check_precision_request(requested: str) -> None:
    """Refuse, before any data is read, a --precision the launcher contradicts or a launcher precision nlpcli
    cannot run."""
    launcher = launcher_precision()
    if launcher is None:
        return
    if launcher not in NAMES:
        raise UserError(f"The launcher asks for mixed precision '{launcher}' ({LAUNCHER_VARIABLE}); nlpcli trains in "
                        "fp32, fp16 or bf16.", hint="Launch with --mixed_precision bf16 (or fp16, no).")
    if requested != "auto" and requested != NAMES[launcher]:
        raise UserError(f"--precision {requested} contradicts the launcher's mixed precision {launcher} "
                        f"({LAUNCHER_VARIABLE}, from `accelerate launch --mixed_precision` or its config).",
                        hint=f"Drop --precision (auto follows the launcher), or launch with "
                             f"--mixed_precision {'no' if requested == 'fp32' else requested}.")


def resolve_precision(requested: str, model_type: str | None = None) -> str:
    """Map the `precision` key to accelerate's mixed_precision value: 'no', 'fp16' or 'bf16'. Both loops
    hand the answer to their Accelerator, so the launcher's variable never overrules it."""
    import torch

    launcher = launcher_precision()
    wanted = {"fp32": "no"}.get(requested, requested)
    if requested == "auto" and launcher in NAMES:
        wanted = launcher
    if not torch.cuda.is_available():
        if wanted in ("fp16", "bf16"):
            source = f"the launcher's {launcher}" if requested == "auto" else f"precision {requested}"
            warn(f"{source} needs a CUDA GPU; running in fp32 on the CPU.")
        return "no"
    bf16_ok = torch.cuda.is_bf16_supported()
    if wanted == "bf16" and not bf16_ok:
        warn("this GPU has no bf16 support; using fp16.")
        wanted = "fp16"
    if wanted == "auto":
        wanted = "bf16" if bf16_ok else "fp16"
    if wanted == "fp16" and model_type in FP16_OVERFLOWS:
        warn(f"{model_type} models are known to overflow to NaN in fp16"
             + ("; --precision bf16 or fp32 is safer." if bf16_ok else
                ", and this GPU has no bf16; if the loss turns NaN, use --precision fp32."))
    return wanted


def precision_name(mixed_precision: str) -> str:
    """How run.json, the header and the model card name accelerate's value: fp32, fp16 or bf16."""
    return NAMES.get(mixed_precision, mixed_precision)


def distributed_type(state: Any) -> str:
    """How the processes ran, as accelerate names it: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED, ... Once a loop
    has built its Accelerator, that one's (on a CPU, accelerate runs an FSDP or DeepSpeed config as MULTI_CPU:
    DDP over gloo); before, `state`'s (a PartialState)."""
    from accelerate.state import AcceleratorState

    try:
        return AcceleratorState().distributed_type.value
    except ValueError:  # accelerate's answer while no Accelerator exists yet
        return state.distributed_type.value


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"
