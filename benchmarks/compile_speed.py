"""`--torch-compile` per task: the same run with and without it, from the same starting weights and data.

For each task: the peers' data and tiny-preset starting weights (`peer_data.py`), BENCH_STEPS steps x batch
BENCH_BATCH in one loop (BENCH_LOOP, default accelerate), no evaluation while training, with and without
`--torch-compile`. Printed: training seconds (compilation included), the last logging interval's samples/s
(after the compilations a run's shapes needed: the steady speed), and their ratios compiled / plain. Padded
tasks meet a new batch length at almost every step, and each new shape may compile again; mlm and clm
batches are fixed-size blocks.

Environment: BENCH_TASKS (default all six), BENCH_STEPS (default 60), BENCH_BATCH (default 8), BENCH_LOOP,
BENCH_NLPCLI_OPTIONS (more options for both runs, e.g. "--group-by-length": fewer distinct lengths).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import peer_data  # noqa: E402
from trainer_baseline import ENV, REPO, SEED  # noqa: E402

TASKS = os.environ.get("BENCH_TASKS", "ner,mlm,translate,summarize,clm,qa").split(",")
STEPS = int(os.environ.get("BENCH_STEPS", "60"))
BATCH = int(os.environ.get("BENCH_BATCH", "8"))
LOOP = os.environ.get("BENCH_LOOP", "accelerate")
EXTRA = os.environ.get("BENCH_NLPCLI_OPTIONS", "").split()
TASK_OPTIONS = {"mlm": ["--chunk-size", "128"], "clm": ["--context-length", "128"]}


def train(task: str, model: Path, data: tuple[Path, Path], out: Path, compiled: bool) -> tuple[float, float]:
    """(training seconds, samples/s of the last logging interval) of one run."""
    command = [sys.executable, "-m", "nlpcli", task, "--model", str(model), "--train-file", str(data[0]),
               "--validation-file", str(data[1]), *peer_data.FILE_OPTIONS[task], *TASK_OPTIONS.get(task, []),
               "--max-steps", str(STEPS), "--batch-size", str(BATCH), "--learning-rate", "1e-3", "--seed", str(SEED),
               "--logging-steps", str(max(STEPS // 4, 1)), "--eval-strategy", "no", "--save-strategy", "no",
               "--no-eval-before", "--loop", LOOP, "--output-dir", str(out), "--overwrite", *EXTRA]
    if task == "clm":
        command += ["--tokenizer", str(model)]
    if compiled:
        command.append("--torch-compile")
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    info = json.loads((out / "run.json").read_text())
    rates = [r["samples_per_second"] for r in map(json.loads, (out / "log_history.jsonl").read_text().splitlines())
             if r.get("samples_per_second")]
    return info["train_runtime_s"], rates[-1] if rates else float("nan")


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for task in TASKS:
            data = peer_data.write_files(task, scratch / "data" / task, STEPS * BATCH, 16)
            model = peer_data.save_start_model(task, *data, scratch / "model" / task)
            plain = train(task, model, data, scratch / "out" / "plain", compiled=False)
            compiled = train(task, model, data, scratch / "out" / "compiled", compiled=True)
            rows.append((task, f"{plain[0]:.1f}", f"{compiled[0]:.1f}", f"{compiled[0] / plain[0]:.2f}",
                         f"{plain[1]:.1f}", f"{compiled[1]:.1f}", f"{compiled[1] / plain[1]:.2f}"))
            print(f"{task}: done", flush=True)
    print(f"\n--torch-compile, {LOOP} loop, {STEPS} steps x batch {BATCH}, tiny preset weights"
          f"{'; ' + ' '.join(EXTRA) if EXTRA else ''}")
    header = ("task", "train s", "compiled s", "ratio", "last samples/s", "compiled", "ratio")
    widths = [10, 9, 12, 7, 16, 10, 7]
    for row in (header, *rows):
        print("".join(f"{str(v):>{w}}" for v, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
