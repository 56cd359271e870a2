"""nlpcli against the transformers example scripts' way, task by task, in one run (`make bench`).

For each task: the same starting weights (the tiny preset's, saved once for the data), the same training and
validation files (the bundled sample repeated: `peer_data.py`), the same steps, batch, learning rate and seed,
fp32 on the CPU, one torch thread. The baseline is a bare Trainer doing what the example script does
(`trainer_baseline.train_peer`: the script's preprocessing and collator, random batch order, Seq2SeqTrainer
with predict_with_generate); nlpcli runs both loops with its defaults. Nobody evaluates or checkpoints while
training; each run evaluates once at the end (nlpcli without its evaluation before training, where it has the
switch). Every run is a fresh process.

Printed per task and loop, as ratios nlpcli / baseline: wall time of the process, training samples/s and
tokens/s (tokens: attention-mask tokens), final evaluation time (generation included for translate and
summarize), peak RSS; each side's share of padding in the training batches; and each side's final evaluation
loss and task metric (ner entity F1, BLEU, ROUGE-1; the scripts' qa scoring is left out), so that a faster
choice is seen not to cost quality. "bare loop" is the floor under any loop on the script's batches
(`trainer_baseline.bare_peer`: forward, backward and a fused AdamW step, nothing else), as samples/s over the
baseline's: a loop that computes the same positions cannot pass it by much.

Environment: BENCH_TASKS (comma list, default all six), BENCH_STEPS (default 40), BENCH_BATCH (default 8),
BENCH_THREADS (default 1), BENCH_ROUNDS (best of N, default 1), BENCH_EVAL_RECORDS (validation records, default
16), BENCH_SIZE (tiny, the default, or mini: MiniLM-L6's shape with random weights, `peer_data.SIZES`),
BENCH_NLPCLI_OPTIONS (more options for nlpcli's runs, e.g. "--group-by-length" or "--no-group-by-length", to
measure one choice against the other).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import peer_data  # noqa: E402
from trainer_baseline import ENV, REPO, SEED, THREADS  # noqa: E402

TASKS = os.environ.get("BENCH_TASKS", "ner,mlm,translate,summarize,clm,qa").split(",")
STEPS = int(os.environ.get("BENCH_STEPS", "40"))
BATCH = int(os.environ.get("BENCH_BATCH", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
EVAL_RECORDS = int(os.environ.get("BENCH_EVAL_RECORDS", "16"))
SIZE = os.environ.get("BENCH_SIZE", "tiny")
LEARNING_RATE = 1e-3
BLOCK = 128  # mlm chunk size and clm context length: the course's, and the scripts' block size here
GENERATION_MAX_LENGTH = 32
EXTRA = os.environ.get("BENCH_NLPCLI_OPTIONS", "").split()


@dataclasses.dataclass
class Measured:
    wall_s: float
    rss_mb: float
    train_s: float
    eval_s: float
    samples: int
    tokens: int
    positions: int
    metrics: dict

    @property
    def padding(self) -> float:
        return 1 - self.tokens / self.positions if self.positions else 0.0


def timed_process(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of a fresh process; exits on failure."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO, env=ENV, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed: {' '.join(command)}\n{out.read()[-2000:]}{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def nlpcli_run(task: str, loop: str, model: Path, train: Path, valid: Path, out: Path) -> Measured:
    command = [sys.executable, "-m", "nlpcli", task, "--model", str(model), "--train-file", str(train),
               "--validation-file", str(valid), *peer_data.FILE_OPTIONS[task], "--max-steps", str(STEPS),
               "--batch-size", str(BATCH), "--eval-batch-size", str(BATCH), "--learning-rate", str(LEARNING_RATE),
               "--weight-decay", "0", "--warmup-ratio", "0", "--warmup-steps", "0",
               "--gradient-accumulation-steps", "1", "--seed", str(SEED), "--logging-steps", "10",
               "--eval-strategy", "no", "--save-strategy", "no", "--loop", loop, "--output-dir", str(out),
               "--overwrite", "--no-eval-before", *EXTRA]
    if task in ("mlm",):
        command += ["--chunk-size", str(BLOCK)]
    if task == "clm":
        command += ["--context-length", str(BLOCK), "--tokenizer", str(model)]
    if task in ("translate", "summarize"):
        command += ["--generation-max-length", str(GENERATION_MAX_LENGTH)]
    wall, rss, _ = timed_process(command)
    info = json.loads((out / "run.json").read_text())
    tokens = info["train_tokens"]
    share = info.get("train_padding_share", 0.0)
    return Measured(wall, rss, info["train_runtime_s"], info.get("evaluation", {}).get("seconds", float("nan")),
                    info["train_samples_seen"], tokens, round(tokens / (1 - share)) if share < 1 else 0,
                    json.loads((out / "metrics.json").read_text()))


def baseline_run(task: str, model: Path, train: Path, valid: Path, out: Path, mode: str = "--peer") -> Measured:
    """The example script's way (`--peer`), or the bare loop on its batches (`--bare`: training time only)."""
    spec = {"task": task, "model": str(model), "train": str(train), "valid": str(valid), "out": str(out),
            "steps": STEPS, "batch": BATCH, "lr": LEARNING_RATE, "block": BLOCK, "max_length": 128 if task ==
            "translate" else 512, "max_target_length": 128 if task == "translate" else 64,
            "generation_max_length": GENERATION_MAX_LENGTH}
    command = [sys.executable, str(Path(__file__).resolve().parent / "trainer_baseline.py"), mode, json.dumps(spec)]
    wall, rss, stdout = timed_process(command)
    result = json.loads(stdout.strip().splitlines()[-1])
    return Measured(wall, rss, result["train_s"], result.get("eval_s", float("nan")), result["samples"],
                    result.get("tokens", 0), result.get("positions", 0), result.get("metrics", {}))


# the headline metric of each side's metrics.json / Trainer.evaluate(), where the script scores one
HEADLINE = {"ner": ("eval_overall_f1", "eval_f1"), "translate": ("eval_bleu", "eval_bleu"),
            "summarize": ("eval_rouge1", "eval_rouge1")}


def quality(task: str, ours: Measured, theirs: Measured) -> str:
    """'loss a / b' and, where the script scores, 'metric a / b' (nlpcli / baseline); ROUGE on one scale."""
    text = f"loss {ours.metrics.get('eval_loss', float('nan')):.3f}/{theirs.metrics.get('eval_loss', float('nan')):.3f}"
    if task in HEADLINE:
        mine, script = (ours.metrics.get(HEADLINE[task][0]), theirs.metrics.get(HEADLINE[task][1]))
        if task == "summarize" and script is not None:
            script *= 100  # rouge_score's fraction; nlpcli reports ROUGE in points
        text += f", {HEADLINE[task][0].removeprefix('eval_overall_').removeprefix('eval_')} {mine:.1f}/{script:.1f}"
    return text


def best(runs: list[Measured]) -> Measured:
    return min(runs, key=lambda m: m.train_s)


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "-"


def main() -> None:
    if SIZE not in peer_data.SIZES:
        sys.exit(f"BENCH_SIZE={SIZE}: not a size peer_data knows ({', '.join(peer_data.SIZES)}).")
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for task in TASKS:
            train, valid = peer_data.write_files(task, scratch / "data" / task, STEPS * BATCH, EVAL_RECORDS)
            model = peer_data.save_start_model(task, train, valid, scratch / "model" / task, SIZE)
            runs: dict[str, list[Measured]] = {"baseline": [], "bare": [], "trainer": [], "accelerate": []}
            for _ in range(ROUNDS):  # interleaved, so that a neighbour's load falls on all four
                runs["baseline"].append(baseline_run(task, model, train, valid, scratch / "out" / "baseline"))
                runs["bare"].append(baseline_run(task, model, train, valid, scratch / "out" / "bare", "--bare"))
                for loop in ("trainer", "accelerate"):
                    runs[loop].append(nlpcli_run(task, loop, model, train, valid, scratch / "out" / loop))
            theirs, bare = best(runs["baseline"]), best(runs["bare"])
            for loop in ("trainer", "accelerate"):
                ours = best(runs[loop])
                rows.append((task, loop, ratio(ours.wall_s, theirs.wall_s),
                             ratio(theirs.train_s / theirs.samples, ours.train_s / ours.samples),
                             ratio(theirs.train_s / theirs.samples, bare.train_s / bare.samples),
                             ratio(theirs.train_s / max(theirs.tokens, 1), ours.train_s / max(ours.tokens, 1)),
                             ratio(ours.eval_s, theirs.eval_s), ratio(ours.rss_mb, theirs.rss_mb),
                             f"{ours.padding:.0%}", f"{theirs.padding:.0%}", quality(task, ours, theirs)))
            print(f"{task}: baseline train {theirs.train_s:.1f} s, eval {theirs.eval_s:.1f} s, "
                  f"wall {theirs.wall_s:.1f} s", flush=True)
    print(f"\nnlpcli / example-script baseline: {STEPS} steps x batch {BATCH}, {SIZE}-size weights, {THREADS} torch "
          f"thread(s), best of {ROUNDS}{'; nlpcli ' + ' '.join(EXTRA) if EXTRA else ''}; "
          "speeds as ratios (> 1: nlpcli faster), times and memory as ratios "
          "(< 1: nlpcli less)")
    header = ("task", "loop", "wall", "train samples/s", "bare loop", "train tokens/s", "eval time", "peak RSS",
              "padding nlpcli", "padding baseline", "  final eval nlpcli/baseline")
    widths = [10, 11, 6, 16, 10, 15, 10, 9, 15, 17]
    print("".join(f"{h:>{w}}" for h, w in zip(header[:-1], widths, strict=False)) + header[-1])
    for row in rows:
        print("".join(f"{str(v):>{w}}" for v, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1])


if __name__ == "__main__":
    main()
