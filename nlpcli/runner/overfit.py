"""--overfit-batch N: the course's overfit-one-batch check (chapter 8), the same for every task and both loops.

A model and a training set-up that work learn one small batch by heart: trained on it for some steps (tens for a
pretrained checkpoint; OVERFIT_STEPS by default, which random weights need) and evaluated on that same batch, the
loss falls near 0 and the task's metrics near the best their scale allows (`Task.best_scores`: F1 1.0, BLEU 100,
perplexity 1, ...). One that does not shows a broken set-up in minutes (a learning rate too low or too high, labels
misaligned with their inputs, a loss that never reaches the weights) instead of after hours of training.

- `check(cfg)`: what an overfit check cannot be combined with (exit 2, before anything is written);
- `configure(cfg)`: the run's settings: N training examples (records, or features for a task that counts
  features), the validation split a copy of the training split (`runner/splits.py`), one batch per step,
  OVERFIT_STEPS steps (or --max-steps) of a bare optimizer (a constant learning rate, no warm-up, no clipping),
  no evaluation or checkpoint while training; the run header shows each value it changed as coming from
  --overfit-batch;
- `one_batch(task, prepared, cfg)`: the features of that batch (`Task.overfit_features`), and the batch sizes
  that make them one batch;
- `judge(task, cfg, metrics, history)`: the verdict, kept in run.json (`overfit`); `verdict_lines` says it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from nlpcli.config import ORIGINS, RunConfig, resuming, value_origins
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.metrics.kinds import best_bound, higher_is_better, near_best
from nlpcli.runner.splits import wanted
from nlpcli.sources import presets
from nlpcli.tasks.base import Prepared, Task

OVERFIT_STEPS = 200  # optimizer steps of a check, unless --max-steps says otherwise (random weights need them)
# the rate of a model with random weights (the tiny preset), unless --learning-rate says otherwise: its preset's 5e-3,
# chosen for tens of steps of real training, keeps qa's start and end logits from settling on one batch
RANDOM_WEIGHTS_RATE = 2e-3
TOLERANCE = 0.1  # near the best: within 10% of it (F1 0.9, BLEU 90, perplexity 1.1); a loss: at most 0.1
LOSS = "eval_loss"
TRAIN_LOSS = "loss"  # a training line's loss (log_history.jsonl)
ORIGIN = "--overfit-batch"
# the course's check steps a bare optimizer: a constant learning rate, no warm-up, no gradient clipping
BARE_OPTIMIZER = {"lr_scheduler": "constant", "warmup_ratio": 0.0, "warmup_steps": 0, "max_grad_norm": 0.0}
GIVEN = ("command line", "--set", "--config")  # where a value the check keeps comes from: the user said it


def check(cfg: RunConfig) -> None:
    """An overfit check trains a new model on one batch and evaluates it on that batch: nothing to resume, test,
    stream or share."""
    if not cfg.overfit_batch:
        return
    clashes = [flag for on, flag in ((cfg.eval_only, "--eval-only"), (resuming(cfg), "--resume"),
                                     (cfg.push_to_hub, "--push-to-hub"), (cfg.streaming, "--streaming"),
                                     (wanted(cfg), "--test-file / --do-predict")) if on]
    if clashes:
        raise UserError(f"--overfit-batch trains a new model on one batch and evaluates it on that batch; it does "
                        f"not go with {', '.join(clashes)}.", hint=f"Drop {' and '.join(clashes)}, or --overfit-batch.")


def _given(cfg: RunConfig, key: str) -> bool:
    return value_origins(cfg).get(key, "").startswith(GIVEN)


def replaced(cfg: RunConfig, **changes: Any) -> RunConfig:
    """`cfg` with `changes`, each shown in the run header as coming from --overfit-batch (where the others came
    from is kept)."""
    changed = {key: value for key, value in changes.items() if getattr(cfg, key) != value}
    new = dataclasses.replace(cfg, **changed)
    new.__dict__.update({key: value for key, value in cfg.__dict__.items() if key.startswith("_")})
    new.__dict__[ORIGINS] = {**value_origins(cfg), **dict.fromkeys(changed, ORIGIN)}
    return new


def configure(cfg: RunConfig) -> RunConfig:
    """The settings of an overfit check (see the module docstring); `cfg` itself without --overfit-batch. The
    learning rate is the run's (RANDOM_WEIGHTS_RATE for a preset with random weights), constant, without warm-up
    or clipping: the course's check steps a bare optimizer. The steps, learning rate, logging interval, schedule,
    warm-up and clipping stay as given on the command line, --set or --config."""
    if not cfg.overfit_batch:
        return cfg
    count = cfg.overfit_batch
    steps = cfg.max_steps if _given(cfg, "max_steps") and cfg.max_steps > 0 else OVERFIT_STEPS
    preset = presets.find(cfg.model)
    random_weights = preset is not None and preset.random_weights
    rate = RANDOM_WEIGHTS_RATE if random_weights and not _given(cfg, "learning_rate") else cfg.learning_rate
    return replaced(
        cfg, learning_rate=rate, max_train_samples=count, max_eval_samples=count, batch_size=count,
        eval_batch_size=count, gradient_accumulation_steps=1, max_steps=steps,
        logging_steps=cfg.logging_steps if _given(cfg, "logging_steps") else max(1, steps // 4),
        **{key: getattr(cfg, key) if _given(cfg, key) else value for key, value in BARE_OPTIMIZER.items()},
        eval_strategy="no", eval_steps=None, save_strategy="no", save_steps=None,
        load_best_model_at_end=False, early_stopping_patience=None,
    )


def one_batch(task: Task, prepared: Prepared, cfg: RunConfig) -> tuple[Prepared, RunConfig]:
    """The features of the check's batch, and `cfg` with batch sizes that hold each split in one batch."""
    chosen = task.overfit_features(prepared, cfg.overfit_batch)
    size = len(chosen.train)
    if size < cfg.overfit_batch:
        warn(f"--overfit-batch {cfg.overfit_batch}: the training data gives {size} example(s); the batch holds "
             f"{'it' if size == 1 else 'them all'}.")
    return chosen, replaced(cfg, batch_size=size, eval_batch_size=len(chosen.eval))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def judge(task: Task, cfg: RunConfig, metrics: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict of an overfit check, as run.json keeps it: each figure (the evaluation's loss, near 0, and the
    task's `best_scores`) before and after training, the value it had to reach and whether it did; the advice
    when not. An evaluation without a loss (qa's features carry no labels) has the last logged training loss
    reported instead, not judged: it is measured with dropout, averaged over the logging interval. Without an
    evaluation before training, the loss starts from the first logged training loss."""
    logged = [line["loss"] for line in history if "loss" in line]
    loss_key = LOSS if LOSS in metrics or not logged else TRAIN_LOSS
    found = {**metrics, **({TRAIN_LOSS: logged[-1]} if loss_key == TRAIN_LOSS else {})}
    checks = []
    for key, best in {loss_key: 0.0, **task.best_scores}.items():
        if key not in found:
            continue
        before = metrics.get(f"{key}_before", logged[0] if key == loss_key and logged else None)
        after = _number(found[key])
        checks.append({"metric": key, "before": _number(before), "after": after, "best": best,
                       "bound": best_bound(key, best, TOLERANCE),
                       "passed": None if key == TRAIN_LOSS else near_best(key, after, best, TOLERANCE)})
    judged = [entry["passed"] for entry in checks if entry["passed"] is not None]
    overfits = bool(judged) and all(judged)
    return {"batch": cfg.batch_size, "steps": cfg.max_steps, "learning_rate": cfg.learning_rate,
            "overfits": overfits, "checks": checks, "advice": [] if overfits else advice(task, checks)}


def advice(task: Task, checks: list[dict[str, Any]]) -> list[str]:
    """What to look at when the batch was not learnt, read from how the loss and the metrics moved."""
    loss = next((entry for entry in checks if entry["metric"] in (LOSS, TRAIN_LOSS)), None)
    start, end = (loss["before"], loss["after"]) if loss is not None else (None, None)
    if loss is not None and end is None:
        found = "the loss is not finite: lower --learning-rate"
    elif start is not None and end is not None and end > start:
        found = f"the loss rose ({start:.4g} -> {end:.4g}): the learning rate may be too high (--learning-rate)"
    elif start is not None and end is not None and end > 0.8 * start:
        found = (f"the loss hardly fell ({start:.4g} -> {end:.4g}): the learning rate may be too low "
                 "(--learning-rate), or the loss does not reach the weights")
    elif loss is not None and loss["passed"] is False:
        found = "the loss fell, but not near 0: give it more steps (--max-steps) or a higher --learning-rate"
    elif loss is not None and loss["passed"]:
        found = ("the loss fell near 0 but the metric did not follow: the labels may be misaligned with their inputs "
                 "(truncation, sub-token labels, answer offsets), or the evaluation reads them otherwise than "
                 "training does")
    else:
        found = ("the metric did not reach its best: give it more steps (--max-steps) or another --learning-rate, "
                 "or the labels may be misaligned with their inputs (truncation, sub-token labels, answer offsets)")
    return [found, f"look at the batch, its labels and the first loss with: nlpcli inspect {task.name} (same "
                   "options)"]


def verdict_lines(verdict: dict[str, Any]) -> list[str]:
    """The verdict as the command prints it (rich markup)."""
    lines = [f"overfit check: one batch of {verdict['batch']} training example(s), {verdict['steps']} steps at "
             f"learning rate {verdict['learning_rate']:g}, evaluated on the same batch"]
    for entry in verdict["checks"]:
        moved = f"{_shown(entry['before'])} -> {_shown(entry['after'])}"
        if entry["passed"] is None:
            lines.append(f"  training loss (last logged, with dropout): {moved}  (reported, not judged)")
            continue
        relation = "at least" if higher_is_better(entry["metric"]) else "at most"
        mark = "[green]yes[/green]" if entry["passed"] else "[red]no[/red]"
        lines.append(f"  {entry['metric']}: {moved}  near {entry['best']:g} ({relation} {entry['bound']:g}): {mark}")
    if verdict["overfits"]:
        lines.append("[bold green]verdict: it overfits[/bold green]: the model and its training set-up can learn "
                     "this batch")
    else:
        lines.append("[bold red]verdict: it does not overfit[/bold red]: the model or its training set-up cannot "
                     "learn one batch")
        lines += [f"  - {hint}" for hint in verdict["advice"]]
    return lines


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
