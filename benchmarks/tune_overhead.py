"""What `nlpcli tune` costs over running the same trials by hand: a study of N trials (the tiny ner preset on the
bundled sample, the default search space, no pruning, journal storage), then the same N configurations run one by
one as `nlpcli ner --set KEY=VALUE ...`, both in this process after a warm-up run (imports paid once), and the ratio
of the two wall times. The overhead is the study's storage, sampling, and tune.json / best_config.yaml after each
trial, tune.png and the table at the end. BENCH_TRIALS (default 4), BENCH_STEPS (10), BENCH_ROUNDS (best of 2)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": os.environ.get("BENCH_THREADS", "1")})
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TRIALS = int(os.environ.get("BENCH_TRIALS", "4"))
STEPS = int(os.environ.get("BENCH_STEPS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
COMMON = ["--model", "tiny", "--dataset", "sample", "--max-steps", str(STEPS)]


def nlpcli(*args: str) -> float:
    """Seconds `nlpcli ARGS` takes in this process (its output discarded); exits on failure."""
    from typer.testing import CliRunner

    from nlpcli.cli import app

    started = time.perf_counter()
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        sys.exit(f"nlpcli {' '.join(map(str, args))} failed:\n{result.output[-3000:]}")
    return seconds


def by_hand(study: Path, scratch: Path) -> float:
    """The study's trials again, each as a plain `nlpcli ner` run with its parameters."""
    trials = json.loads((study / "tune.json").read_text())["trials"]
    seconds = 0.0
    for trial in trials:
        sets = [arg for key, value in trial["params"].items() for arg in ("--set", f"{key}={value}")]
        seconds += nlpcli("ner", *COMMON, *sets, "--output-dir", scratch / f"hand-{trial['number']}")
    return seconds


def main() -> None:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    best: tuple[float, float] | None = None
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        nlpcli("ner", *COMMON, "--output-dir", scratch / "warm-up")
        nlpcli("tune", "ner", *COMMON, "--trials", "1", "--output-dir", scratch / "warm-up-study")
        for round_ in range(ROUNDS):
            study = scratch / f"study-{round_}"
            tune_s = nlpcli("tune", "ner", *COMMON, "--trials", str(TRIALS), "--pruner", "none", "--keep", "all",
                            "--output-dir", study)
            hand_s = by_hand(study, scratch / f"hand-{round_}")
            if best is None or tune_s / hand_s < best[0] / best[1]:
                best = (tune_s, hand_s)
    assert best is not None
    tune_s, hand_s = best
    print(f"ner, tiny preset, {TRIALS} trials x {STEPS} steps, {os.environ['OMP_NUM_THREADS']} torch thread(s), "
          f"best of {ROUNDS} round(s)")
    print(f"{'run':34} {'wall s':>8} {'vs by hand':>11}")
    print(f"{'the trials by hand (nlpcli ner)':34} {hand_s:8.2f} {1.0:10.2f}x")
    print(f"{'nlpcli tune':34} {tune_s:8.2f} {tune_s / hand_s:10.2f}x")
    print(f"overhead per trial: {(tune_s - hand_s) / TRIALS:.2f} s")


if __name__ == "__main__":
    main()
