"""The result files of the transformers example scripts (`run_ner.py`, `run_translation.py`, ...), written beside
nlpcli's own so that shell scripts built around those scripts keep working: `train_results.json`,
`eval_results.json`, `predict_results.json` (a run with a test set; the scripts' `predict_` prefix for what
nlpcli names `test_`) and `all_results.json`, their union. Keys as the scripts' `Trainer.save_metrics` writes
them (sorted, indented by 4); the figures are the ones metrics.json and run.json hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import metric_kind
from nlpcli.runner.history import read_history


def example_script_results(metrics: dict[str, Any], info: dict[str, Any],
                           last_logged: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """{file name: its figures} from the final metrics and the run report: the step and epoch training ended at
    are the report's (`steps`, `epochs`), else the last log_history line's."""
    epoch = info["epochs"] if info.get("epochs") is not None else (last_logged or {}).get("epoch")
    step = info["steps"] if info.get("steps") is not None else (last_logged or {}).get("step")
    files: dict[str, dict[str, Any]] = {}
    if "train_loss" in metrics:
        train = {"train_loss": metrics["train_loss"], "train_samples": info.get("train_samples"),
                 "train_runtime": info.get("train_runtime_s"),
                 "train_samples_per_second": info.get("train_samples_per_second")}
        runtime = info.get("train_runtime_s")
        if step and runtime:
            train["train_steps_per_second"] = round(step / runtime, 3)
        files[layout.TRAIN_RESULTS] = {**train, **({"epoch": epoch} if epoch is not None else {})}
    for split, prefix, samples, name in (("eval", "eval_", "eval_samples", layout.EVAL_RESULTS),
                                        ("test", "predict_", "test_samples", layout.PREDICT_RESULTS)):
        kinds = {key: metric_kind(key) for key in metrics}
        chosen = {prefix + kind.name: metrics[key] for key, kind in kinds.items()
                  if kind.split == split and not kind.before}
        if chosen:
            chosen[prefix + "samples"] = info.get(samples)
            files[name] = {**chosen, **({"epoch": epoch} if epoch is not None else {})}
    files = {name: {k: v for k, v in figures.items() if v is not None} for name, figures in files.items()}
    if files:
        files[layout.ALL_RESULTS] = {k: v for figures in files.values() for k, v in figures.items()}
    return files


def write_example_script_results(output_dir: Path, metrics: dict[str, Any], info: dict[str, Any]) -> None:
    """Write the example scripts' result files into `output_dir` (main process), each replaced in one step."""
    logged = read_history(output_dir / layout.HISTORY)
    for name, figures in example_script_results(metrics, info, logged[-1] if logged else None).items():
        write_text_atomic(output_dir / name, json.dumps(figures, indent=4, sort_keys=True, allow_nan=False) + "\n")
