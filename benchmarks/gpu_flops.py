"""The GPU check's throughput row: nlpcli clm trains a GPT-2-small-sized model (12 layers, 768 wide, 12 heads,
random weights, a byte-level BPE tokenizer fitted to the bundled code sample) with --precision auto, and reports
tokens/s and the model FLOPs utilisation: achieved FLOPs (6 x parameters + 12 x layers x width x context per
token, forward and backward, the PaLM paper's count) over the GPU's dense bf16/fp16 peak (a table of known
cards; unknown cards get achieved TFLOP/s only). The GPU check runs it with the GPU levers one at a time: the
default attention (sdpa), `--attn-implementation eager`, and `--torch-compile`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMALL = {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024}
CONTEXT = 512
PEAK_TFLOPS = {  # dense bf16/fp16 tensor peaks, no sparsity
    "H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 756.0, "A100": 312.0,
    "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "V100": 125.0, "T4": 65.0,
}


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16/fp16 tensor peak, by the longest name in the table found in `device_name`."""
    found = [name for name in PEAK_TFLOPS if name in device_name]
    return PEAK_TFLOPS[max(found, key=len)] if found else None


def flops_per_token(parameters: int, layers: int, width: int, context: int) -> float:
    return 6.0 * parameters + 12.0 * layers * width * context


def gpt2_small_folder(folder: Path) -> Path:
    """config.json (GPT-2 small's shape) and a tokenizer, for `nlpcli clm --model FOLDER` (from scratch)."""
    from nlpcli.sources.data import SAMPLES_DIR
    from nlpcli.sources.presets import causal_lm_config, train_byte_level_bpe

    texts = [json.loads(line)["content"] for line in (SAMPLES_DIR / "python_code.jsonl").read_text().splitlines()]
    tokenizer = train_byte_level_bpe(texts, 8192, SMALL["n_positions"])
    from transformers import GPT2Config

    causal_lm_config(tokenizer, GPT2Config(**SMALL)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


LEVERS: tuple[tuple[str, ...], ...] = ((), ("--attn-implementation", "eager"), ("--torch-compile",))


def throughput_row(root: Path, steps: int, device_name: str, env: dict, extra: tuple[str, ...] = ()) -> dict[str, str]:
    folder = root / "gpt2-small"
    if not (folder / "config.json").is_file():
        gpt2_small_folder(folder)
    out = root / ("gpt2-small-run" + "".join(extra).replace("--", "-"))
    command = [sys.executable, "-m", "nlpcli", "clm", "--model", str(folder), "--tokenizer", str(folder),
               "--dataset", "sample", "--pack", "--context-length", str(CONTEXT), "--batch-size", "8",
               "--gradient-accumulation-steps", "1", "--max-steps", str(steps), "--learning-rate", "5e-4",
               "--precision", "auto", "--eval-strategy", "no", "--save-strategy", "no", "--no-eval-before",
               "--output-dir", str(out), *extra]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    row = {"run": f"clm GPT-2 small, context {CONTEXT}, batch 8, {steps} steps{' ' + ' '.join(extra) if extra else ''}"}
    if done.returncode != 0:
        return {**row, "result": f"FAILED (exit {done.returncode}): {done.stderr.strip()[-200:]}"}
    info = json.loads((out / "run.json").read_text())
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        parameters = sum(_count(weights.get_slice(name).get_shape()) for name in weights.keys())
    tokens_per_s = info.get("train_tokens_per_second") or 0.0
    achieved = tokens_per_s * flops_per_token(parameters, SMALL["n_layer"], SMALL["n_embd"], CONTEXT) / 1e12
    peak = peak_tflops(device_name)
    mfu = f"{achieved / peak:.1%} of {peak:.0f}" if peak else "peak unknown"
    return {**row, "result": f"{info.get('precision')}, {info.get('attn_implementation')} attention, "
                             f"{parameters / 1e6:.0f}M parameters, "
                             f"{tokens_per_s:.0f} tokens/s, {achieved:.1f} TFLOP/s, MFU {mfu}"}


def _count(shape: list[int]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total
