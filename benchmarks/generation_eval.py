"""nlpcli's generation evaluation against the Trainer's `predict_with_generate`, on the same model and inputs.

For translate and summarize: a tiny-preset model trained with the demo settings (one nlpcli run each, not
timed), then the task's bundled sample sources repeated to EVAL_RECORDS examples, tokenized once, and
generated three ways with the same `generate` settings (greedy, max_length): a `Seq2SeqTrainer.predict` with
`predict_with_generate` at the example scripts' eval batch size (8: batches in data order), nlpcli's
`generate_eval_ids` at the same batch size (length-sorted batches, put back in data order), and nlpcli at the
batch size a generation task evaluates with by default and at 32 and 64. Printed per task: seconds of each,
the speed-up over the Trainer, and how many predictions are identical to the Trainer's texts (the target: all).

Environment: BENCH_TASKS (default translate,summarize), BENCH_EVAL_RECORDS (default 256), BENCH_ROUNDS (best
of N, default 2), BENCH_THREADS (default 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASKS = os.environ.get("BENCH_TASKS", "translate,summarize").split(",")
EVAL_RECORDS = int(os.environ.get("BENCH_EVAL_RECORDS", "256"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
SCRIPT_BATCH = 8  # the example scripts' per_device_eval_batch_size
LARGER_BATCHES = (32, 64)


def train_demo_model(task: str, out: Path) -> None:
    command = [sys.executable, "-m", "nlpcli", task, "--config", str(REPO / "configs" / "demo" / f"{task}.yaml"),
               "--no-eval-before", "--eval-strategy", "no", "--save-strategy", "no", "--output-dir", str(out)]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def eval_features(task: str, model_dir: Path, tokenizer):
    """The run's own validation sources (its saved config: prefix, lengths), repeated, tokenized as nlpcli does."""
    import yaml

    from nlpcli.sources.data import SAMPLES_DIR

    cfg = yaml.safe_load((model_dir / "nlpcli_config.yaml").read_text())
    name = "wmt_en_ro_val.jsonl" if task == "translate" else "xsum_sample.jsonl"
    rows = [json.loads(line) for line in (SAMPLES_DIR / name).read_text(encoding="utf-8").splitlines() if line]
    sources = [row["translation"][cfg["source_lang"]] if task == "translate" else row["document"] for row in rows]
    sources = [(cfg.get("source_prefix") or "") + text for text in sources]
    texts = (sources * (EVAL_RECORDS // len(sources) + 1))[:EVAL_RECORDS]
    encoded = tokenizer(texts, max_length=cfg.get("max_length", 128), truncation=True)
    settings = {"max_length": cfg.get("generation_max_length") or cfg.get("max_target_length", 128), "num_beams": 1}
    return [{"input_ids": i, "attention_mask": m} for i, m in zip(encoded["input_ids"], encoded["attention_mask"],
                                                                  strict=True)], settings


def trainer_predictions(model, tokenizer, features, settings, scratch: Path) -> tuple[float, list[str]]:
    import numpy as np
    from datasets import Dataset
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    args = Seq2SeqTrainingArguments(
        output_dir=str(scratch), per_device_eval_batch_size=SCRIPT_BATCH, predict_with_generate=True,
        generation_max_length=settings["max_length"], generation_num_beams=settings["num_beams"], use_cpu=True,
        report_to="none", disable_tqdm=True,
    )
    trainer = Seq2SeqTrainer(model=model, args=args, processing_class=tokenizer,  # inputs only: generation alone
                             data_collator=lambda rows: tokenizer.pad(rows, return_tensors="pt"))
    started = time.perf_counter()
    output = trainer.predict(Dataset.from_list(features))
    seconds = time.perf_counter() - started
    ids = np.where(output.predictions != -100, output.predictions, tokenizer.pad_token_id)
    return seconds, [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def nlpcli_predictions(model, tokenizer, features, settings, batch_size: int) -> tuple[float, list[str]]:
    from accelerate import Accelerator
    from datasets import Dataset

    from nlpcli.runner.generation import generate_eval_ids

    accelerator = Accelerator(cpu=True)
    started = time.perf_counter()
    ids = generate_eval_ids(accelerator, model, tokenizer, Dataset.from_list(features), settings, batch_size)
    seconds = time.perf_counter() - started
    return seconds, [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def default_generation_batch(task: str) -> int:
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks import task_class

    cfg = resolve_config(task_class(task).config_class, task, REPO / "configs" / "demo" / f"{task}.yaml")
    return cfg.generation_batch


def main() -> None:
    import torch
    import transformers
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    transformers.logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for task in TASKS:
            model_dir = scratch / task
            train_demo_model(task, model_dir)
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir)).eval()
            features, settings = eval_features(task, model_dir, tokenizer)
            sizes = sorted({SCRIPT_BATCH, default_generation_batch(task), *LARGER_BATCHES})
            times: dict[int | str, list[float]] = {"trainer": [], **{size: [] for size in sizes}}
            texts: dict[int, list[str]] = {}
            for _ in range(ROUNDS):  # interleaved
                seconds, reference = trainer_predictions(model, tokenizer, features, settings, scratch / "trainer")
                times["trainer"].append(seconds)
                for size in sizes:
                    seconds, texts[size] = nlpcli_predictions(model, tokenizer, features, settings, size)
                    times[size].append(seconds)
            best = {name: min(values) for name, values in times.items()}
            for size in sizes:
                identical = sum(a == b for a, b in zip(texts[size], reference, strict=True))
                rows.append((task, f"nlpcli, batch {size}", f"{best['trainer']:.2f}", f"{best[size]:.2f}",
                             f"{best['trainer'] / best[size]:.2f}x", f"{identical}/{len(reference)}"))
    print(f"generation evaluation: {EVAL_RECORDS} examples, greedy, {THREADS} torch thread(s), best of {ROUNDS}; "
          f"Trainer predict_with_generate at batch {SCRIPT_BATCH} (target: nlpcli >= 2x, identical predictions)")
    header = ("task", "nlpcli run", "Trainer s", "nlpcli s", "speed-up", "identical")
    widths = [10, 18, 11, 10, 10, 11]
    for row in (header, *rows):
        print("".join(f"{str(v):>{w}}" for v, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
