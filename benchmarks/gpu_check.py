"""The GPU check (`make gpu-check`): every task on its demo settings (tiny preset, bundled sample) in both loops
with `--precision auto`, then with 2 processes (torchrun) when the machine has 2 GPUs, in a few minutes. It
prints one row per run: task, loop, processes, the precision that ran, whether the training loss stayed
finite, training tokens/s, the padding computed and the batches `--length-split` ran as pieces, and peak memory
(GPU, or the process's RSS on a CPU), all read from the run's run.json and metrics.json; then summarize in
batches of 16 documents of up to 512 tokens, with `--length-split`'s default for this device and with
`--length-split 0`, so that the table shows the split's speed-up there. Runs on a CPU too (fp32),
so the check itself stays tested.

Then, on a GPU (or with CHECK_FLOPS=1), throughput rows: clm at GPT-2-small size, tokens/s and model FLOPs
utilisation (`gpu_flops.py`), with the default attention (sdpa), `--attn-implementation eager` and
`--torch-compile`.

CHECK_STEPS (default 30) sets the training steps of every run; CHECK_TASKS (comma-separated) a subset;
CHECK_FLOPS_STEPS (default 30) the throughput run's."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = ("ner", "mlm", "translate", "summarize", "clm", "qa", "classify")
LONG_BATCHES = ("--batch-size", "16", "--max-length", "512")  # summarize's documents, 44-512 tokens, 16 at a time


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def command(task: str, loop: str, processes: int, out: Path, steps: int, extra: tuple[str, ...] = ()) -> list[str]:
    from nlpcli.config_layers import CONFIG_DIR

    launcher = [sys.executable, "-m", "nlpcli"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "-m", "nlpcli"]
    return [*launcher, task, "--config", str(CONFIG_DIR / "demo" / f"{task}.yaml"), "--loop", loop,
            "--precision", "auto", "--max-steps", str(steps), "--eval-strategy", "no", "--save-strategy", "no",
            "--output-dir", str(out), *extra]


def check(task: str, loop: str, processes: int, root: Path, steps: int, extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = root / f"{task}-{loop}-{processes}{'-'.join(('', *extra)).replace('--', '')}"
    started = time.perf_counter()
    done = subprocess.run(command(task, loop, processes, out, steps, extra), capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    row = {"task": task + (" " + " ".join(extra) if extra else ""), "loop": loop, "procs": str(processes),
           "wall s": f"{time.perf_counter() - started:.1f}"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {**row, "precision": "-", "loss finite": f"FAILED (exit {done.returncode}): {last[:60]}",
                "tokens/s": "-", "padding": "-", "split": "-", "peak MB": "-"}
    info = json.loads((out / "run.json").read_text())
    loss = json.loads((out / "metrics.json").read_text()).get("train_loss")
    finite = loss is not None and math.isfinite(loss)
    split = info.get("length_split", "off")
    return {**row, "precision": info.get("precision", "?"), "loss finite": f"{'yes' if finite else 'NO'} ({loss})",
            "tokens/s": f"{info.get('train_tokens_per_second', 0):.0f}",
            "padding": f"{info.get('train_padding_share', 0):.0%}",
            "split": split if isinstance(split, str) else f"{split['batches_split']} (>= {split['min_positions']})",
            "peak MB": f"{info.get('peak_memory_mb', 0):.0f}"}


def table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main() -> int:
    import torch

    steps = int(os.environ.get("CHECK_STEPS", "30"))
    tasks = [t for t in os.environ.get("CHECK_TASKS", ",".join(TASKS)).split(",") if t]
    gpus = gpu_count()
    device = torch.cuda.get_device_name(0) if gpus else "no GPU: CPU"
    print(f"nlpcli GPU check on {device} ({gpus} GPU(s)), torch {torch.__version__}, {steps} steps per run")
    plans = [(task, loop, 1, ()) for task in tasks for loop in ("trainer", "accelerate")]
    if "summarize" in tasks:  # long batches with --length-split's default on this device, and with none
        plans += [("summarize", loop, 1, (*LONG_BATCHES, *split)) for split in ((), ("--length-split", "0"))
                  for loop in ("trainer", "accelerate")]
    if gpus >= 2:
        plans += [(task, loop, 2, ()) for task in tasks for loop in ("trainer", "accelerate")]
    with tempfile.TemporaryDirectory() as scratch:
        rows = [check(task, loop, processes, Path(scratch), steps, extra) for task, loop, processes, extra in plans]
        print(table(rows))
        if gpus or os.environ.get("CHECK_FLOPS") == "1":
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from gpu_flops import LEVERS, throughput_row

            flops_steps = int(os.environ.get("CHECK_FLOPS_STEPS", "30"))
            print()
            for extra in LEVERS:
                row = throughput_row(Path(scratch), flops_steps, device, {**os.environ, "HF_HUB_OFFLINE": "1"}, extra)
                print(f"{row['run']}: {row['result']}", flush=True)
    return 0 if all(r["loss finite"].startswith("yes") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
