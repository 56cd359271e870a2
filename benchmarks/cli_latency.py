"""Measure CLI latency targets: help time, offline hub failure time, tiny training throughput (ner
samples/s, clm tokens/s), a tiny summarize run (time, ROUGE-L beside the lead-3 baseline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NLPCLI = [sys.executable, "-m", "nlpcli"]


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env or dict(os.environ))
    return time.perf_counter() - started, done.returncode


def clm_throughput(scratch: Path, steps: int = 40) -> list[tuple[str, str, str]]:
    """The demo's tiny GPT-2 on the bundled Python sample: training tokens/s of each loop (from run.json)."""
    rows = []
    for loop in ("trainer", "accelerate"):
        out = scratch / f"clm-{loop}"
        seconds, code = timed(NLPCLI + ["clm", "--config", str(REPO / "configs/demo/clm.yaml"), "--max-steps",
                                        str(steps), "--loop", loop, "--output-dir", str(out)])
        info = json.loads((out / "run.json").read_text()) if code == 0 else {}
        rate = info.get("train_tokens_per_second") or 0
        rows.append((f"clm tiny, {steps} steps, {loop}", f"{seconds:.1f} s, {rate:.0f} tokens/s", "reported"))
    return rows


def main() -> None:
    rows = []
    for args in (["--help"], ["ner", "--help"]):
        best = min(timed(NLPCLI + args)[0] for _ in range(3))
        rows.append((f"nlpcli {' '.join(args)}", f"{best:.2f} s", "< 1 s"))

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    with tempfile.TemporaryDirectory() as scratch:
        env["HF_HOME"] = scratch
        seconds, code = timed(NLPCLI + ["ner", "--model", "bert-base-cased", "--dataset", "sample",
                                        "--output-dir", f"{scratch}/out"], env)
        rows.append(("hub id, no network", f"{seconds:.1f} s (exit {code})", "< 15 s, exit 2"))

        for loop in ("trainer", "accelerate"):
            out = Path(scratch) / loop
            seconds, code = timed(NLPCLI + ["ner", "--model", "tiny", "--dataset", "sample", "--epochs", "10",
                                            "--loop", loop, "--output-dir", str(out)])
            info = json.loads((out / "run.json").read_text()) if code == 0 else {}
            rate = info.get("train_samples", 0) * 10 / info["wall_time_s"] if info else 0
            rows.append((f"ner tiny, 10 epochs, {loop}", f"{seconds:.1f} s, {rate:.0f} samples/s", "reported"))

        out = Path(scratch) / "summarize"
        seconds, code = timed(NLPCLI + ["summarize", "--config", "configs/demo/summarize.yaml", "--epochs", "10",
                                        "--output-dir", str(out)])
        metrics = json.loads((out / "metrics.json").read_text()) if code == 0 else {}
        rows.append(("summarize tiny, xsum sample, 10 epochs",
                     f"{seconds:.1f} s, rougeL {metrics.get('eval_rougeL', 0):.1f} "
                     f"(lead-3 {metrics.get('eval_lead3_rougeL', 0):.1f})", "reported"))
        rows += clm_throughput(Path(scratch))

    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<28}  {target}")


if __name__ == "__main__":
    main()
