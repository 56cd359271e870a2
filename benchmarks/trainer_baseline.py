"""nlpcli's training samples/s in both loops against a plain `transformers.Trainer` built here, in one run.

All three train the same model (the `minilm` preset's weights), on the same data (the bundled conll2003
sample, repeated so that the steps fit in one epoch), with the same batch size, steps, learning rate,
logging interval, seed and torch thread count, offline on the CPU. samples/s = steps x batch / training
seconds: nlpcli's `train_runtime_s` (run.json, timed around its loop) and, for the baseline, the same span
timed around `Trainer.train()`. Process start, model loading and tokenization are outside it in all three.

Where nlpcli has --eval-strategy/--save-strategy, no run evaluates or checkpoints inside the timed span; where
it has not, nlpcli evaluates and checkpoints at the end of the epoch, and the baseline is told to do the same.

Environment: BENCH_STEPS (default 24), BENCH_THREADS (torch threads, default 1: on a shared CPU more threads
measure the neighbours more than the code), BENCH_ROUNDS (default 1; with more, each figure is the best round).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "nlpcli" / "samples" / "conll2003_sample.jsonl"
STEPS = int(os.environ.get("BENCH_STEPS", "24"))
THREADS = os.environ.get("BENCH_THREADS", "1")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
BATCH = 8
LEARNING_RATE = 5e-5
LOGGING_STEPS = 10
SEED = 42
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": THREADS,
       "MKL_NUM_THREADS": THREADS}


def write_data(scratch: Path) -> tuple[Path, Path]:
    """train.jsonl: the sample repeated to steps x batch sentences (one epoch); valid.jsonl: the sample."""
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    train, valid = scratch / "train.jsonl", scratch / "valid.jsonl"
    train.write_text("\n".join(lines * math.ceil(STEPS * BATCH / len(lines))) + "\n", encoding="utf-8")
    valid.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return train, valid


def nlpcli_quiet_options() -> list[str]:
    """No evaluation or checkpoint inside the timed training, where this nlpcli has the options for it; without
    them each loop evaluates and checkpoints once, at the end of the epoch (and so will the baseline)."""
    sys.path.insert(0, str(REPO))
    from nlpcli.config import RunConfig

    names = {f.name for f in dataclasses.fields(RunConfig)}
    if {"eval_strategy", "save_strategy"} <= names:
        return ["--eval-strategy", "no", "--save-strategy", "no"]
    return []


def nlpcli_seconds(loop: str, train: Path, valid: Path, out: Path, quiet: list[str]) -> float:
    command = [sys.executable, "-m", "nlpcli", "ner", "--model", "minilm", "--train-file", str(train),
               "--validation-file", str(valid), "--text-column", "words", "--label-column", "ner",
               "--max-steps", str(STEPS), "--batch-size", str(BATCH), "--learning-rate", str(LEARNING_RATE),
               "--logging-steps", str(LOGGING_STEPS), "--seed", str(SEED), "--loop", loop, "--output-dir", str(out),
               "--overwrite", *quiet]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV)
    if done.returncode != 0:
        sys.exit(f"nlpcli --loop {loop} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    info = json.loads((out / "run.json").read_text())
    if info.get("train_samples_seen", STEPS * BATCH) != STEPS * BATCH:
        sys.exit(f"nlpcli --loop {loop} trained on {info['train_samples_seen']} samples, not {STEPS * BATCH}.")
    return info["train_runtime_s"]


def baseline_seconds(train: Path, valid: Path, out: Path, strategy: str) -> float:
    """The plain Trainer, in a fresh process as nlpcli's runs are."""
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline", str(train), str(valid), str(out), strategy]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV)
    if done.returncode != 0:
        sys.exit(f"baseline failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def train_baseline(train: Path, valid: Path, out: Path, strategy: str) -> float:
    """Fine-tune MiniLM for token classification the way the course does it with a bare Trainer, evaluating and
    saving by `strategy` (no | epoch); returns the seconds `Trainer.train()` took."""
    import torch
    import transformers
    from datasets import load_dataset
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    sys.path.insert(0, str(REPO))
    from nlpcli.sources.presets import minilm_folder  # only to find where the preset's weights are installed

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(int(THREADS))
    folder = str(minilm_folder())
    raw = load_dataset("json", data_files={"train": str(train), "validation": str(valid)})
    labels = sorted({tag for tags in raw["train"]["ner"] for tag in tags})
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def encode(batch: dict) -> dict:
        encoded = tokenizer(batch["words"], truncation=True, is_split_into_words=True)
        encoded["labels"] = [
            [-100 if word is None else label2id[tags[word]] for word in encoded.word_ids(i)]
            for i, tags in enumerate(batch["ner"])
        ]
        return encoded

    features = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    args = TrainingArguments(output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=BATCH,
                             learning_rate=LEARNING_RATE, logging_steps=LOGGING_STEPS, seed=SEED,
                             eval_strategy=strategy, save_strategy=strategy, report_to="none", disable_tqdm=True,
                             use_cpu=True)
    trainer = Trainer(model=model, args=args, train_dataset=features["train"], eval_dataset=features["validation"],
                      processing_class=tokenizer,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def main() -> None:
    quiet = nlpcli_quiet_options()
    runs = {"transformers.Trainer (baseline)": [], "nlpcli --loop trainer": [], "nlpcli --loop accelerate": []}
    with tempfile.TemporaryDirectory() as scratch:
        train, valid = write_data(Path(scratch))
        for _ in range(ROUNDS):
            baseline, trainer, accelerate = runs.values()
            baseline.append(baseline_seconds(train, valid, Path(scratch) / "baseline", "no" if quiet else "epoch"))
            trainer.append(nlpcli_seconds("trainer", train, valid, Path(scratch) / "trainer", quiet))
            accelerate.append(nlpcli_seconds("accelerate", train, valid, Path(scratch) / "accelerate", quiet))
    samples = STEPS * BATCH
    rates = {name: samples / min(seconds) for name, seconds in runs.items()}
    reference = rates["transformers.Trainer (baseline)"]
    print(f"ner, minilm preset, {STEPS} steps x batch {BATCH} ({samples} samples, one epoch), {THREADS} torch "
          f"thread(s), best of {ROUNDS} round(s)")
    if not quiet:
        print("(this nlpcli has no --eval-strategy/--save-strategy: every run, the baseline too, evaluates and "
              "checkpoints once, at the end of the epoch)")
    print(f"{'run':<34}{'train s':>9}{'samples/s':>11}{'vs baseline':>13}")
    for name, seconds in runs.items():
        print(f"{name:<34}{min(seconds):>9.2f}{rates[name]:>11.2f}{rates[name] / reference:>12.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--baseline"]:
        print(train_baseline(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]))
    else:
        main()
