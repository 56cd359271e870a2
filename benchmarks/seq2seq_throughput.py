"""Tiny translate run in both loops: training samples/s and generation tokens/s, plus nlpcli's
length-sorted batched generation against a plain `model.generate` over the eval set in data order
(what a loop without sorting does), on the same saved model, in the same process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EPOCHS = 20
ARGS = ["translate", "--model", "tiny", "--dataset", "sample", "--target-lang", "ro", "--epochs", str(EPOCHS),
        "--learning-rate", "5e-3", "--weight-decay", "0", "--batch-size", "4"]


def run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nlpcli", *args], check=True, capture_output=True, cwd=REPO,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - started


def generation_ratio(model_dir: Path, texts: list[str], batch_size: int = 4) -> tuple[float, float]:
    """(plain seconds, nlpcli seconds) generating `texts` with the same settings."""
    import torch
    import transformers
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from nlpcli.generation import generate_texts

    transformers.utils.logging.disable_progress_bar()

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir)).eval()
    encoded = tokenizer(texts, truncation=True, max_length=128)
    features = [{"input_ids": i, "attention_mask": m} for i, m in zip(encoded["input_ids"], encoded["attention_mask"],
                                                                      strict=True)]
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], truncation=True, max_length=128, padding=True,
                          return_tensors="pt")
        with torch.no_grad():
            model.generate(**batch, max_length=128)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    generate_texts(model, tokenizer, features, {"max_length": 128}, batch_size)
    return plain, time.perf_counter() - started


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for loop in ("trainer", "accelerate"):
            out = Path(scratch) / loop
            seconds = run([*ARGS, "--loop", loop, "--output-dir", str(out)])
            info = json.loads((out / "run.json").read_text())
            rate = info["train_samples"] * EPOCHS / info["wall_time_s"]
            rows.append((f"translate tiny, {EPOCHS} epochs, {loop}",
                         f"{seconds:.1f} s, {rate:.0f} train samples/s (wall, incl. 21 evaluations), "
                         f"generation {info['generation']['tokens_per_second']:.0f} tokens/s"))
        sys.path.insert(0, str(REPO))
        from nlpcli.sources.data import SAMPLES_DIR

        lines = (SAMPLES_DIR / "wmt_en_ro_val.jsonl").read_text(encoding="utf-8").splitlines()
        texts = [json.loads(line)["translation"]["en"] for line in lines if line.strip()] * 2
        plain, ours = generation_ratio(Path(scratch) / "trainer", texts)
        rows.append(("generate 32 news segments, batch 4", f"plain {plain:.2f} s, nlpcli {ours:.2f} s, "
                                                           f"ratio {plain / ours:.2f}x (target >= 1)"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
