"""One trial of a study: an ordinary run of the task in `STUDY/trial-<number>/`, with the parameters the sampler
drew, each evaluation made while training reported to Optuna (`PruningHook`, the runner's evaluation hook), and the
objective read back from the trial's own metrics.json. A pruned trial keeps its files (its run ended as an
early-stopped one does) and loses its checkpoints; `tune_trial.json` in each trial's folder says what the study
recorded for it. `--keep best` then removes the weights of every finished trial but the best.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from nlpcli import layout
from nlpcli.config import RunConfig, config_yaml
from nlpcli.console import say
from nlpcli.errors import TrainingDiverged, UserError
from nlpcli.files import write_text_atomic
from nlpcli.run_folder import RUN_ONLY_KEYS
from nlpcli.runner.context import EvaluationHook, Stop
from nlpcli.tuning.space import Space, sample
from nlpcli.tuning.study import WORKER, this_worker

FOLDER, CONFIG, DIVERGED = "folder", "config", "diverged"  # trial user attributes
WEIGHTS = (layout.SAFE_WEIGHTS, layout.WEIGHTS)
RunTrial = Callable[[RunConfig, EvaluationHook], object]  # runs the task with this configuration and hook


class Diverged(Exception):
    """The trial's training loss turned NaN or infinite: the trial failed, the study goes on."""


@dataclass
class PruningHook:
    """Reports each evaluation made while training to the trial (`metric`'s value at the optimizer step) and
    stops the run when the study's pruner says so."""

    trial: Any
    metric: str
    pruner: str
    pruned_at: int | None = None
    reported: dict[int, float] = field(default_factory=dict)

    def __call__(self, step: int, metrics: dict[str, Any]) -> Stop | None:
        if self.metric not in metrics:
            found = ", ".join(k for k in metrics if isinstance(metrics[k], int | float) and k.startswith("eval_"))
            raise UserError(f"--metric {self.metric}: the trial's evaluations report {found}.")
        value = metrics[self.metric]
        if value is None or not math.isfinite(float(value)):
            return None
        self.trial.report(float(value), step)
        self.reported[step] = float(value)
        if not self.trial.should_prune():
            return None
        self.pruned_at = step
        return Stop(f"pruned by the study's {self.pruner} pruner: {self.metric} {float(value):.4g} at step {step}")


def release_memory() -> None:
    """What one trial's run left behind in this process (its model, optimizer, loaders: reference cycles) goes
    before the next trial allocates its own; on a GPU, the cached blocks are handed back too."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def saved_config(cfg: RunConfig, task: str) -> str:
    """A trial's configuration as `--config` reads it: its task and keys, without those of the run's folder."""
    import yaml

    values = yaml.safe_load(config_yaml(cfg, task))
    return yaml.safe_dump({k: v for k, v in values.items() if k not in RUN_ONLY_KEYS}, sort_keys=False)


def mark(folder: Path, **facts: Any) -> None:
    """`tune_trial.json` in a trial's folder: what the study recorded for it (facts already there are kept)."""
    path = folder / layout.TRIAL_STATE
    known = json.loads(path.read_text()) if path.is_file() else {}
    if folder.is_dir():
        write_text_atomic(path, json.dumps({**known, **facts}, indent=2))


def remove_checkpoints(folder: Path) -> None:
    for checkpoint in folder.glob(f"{layout.CHECKPOINT_PREFIX}*"):
        if checkpoint.is_dir():
            shutil.rmtree(checkpoint, ignore_errors=True)


def read_objective(folder: Path, metric: str) -> float | None:
    """`metric` from the trial's own metrics.json (None: not finite); a UserError naming what it holds when the
    metric is not there."""
    metrics = json.loads((folder / layout.METRICS).read_text())
    if metric not in metrics:
        found = ", ".join(k for k, v in metrics.items() if isinstance(v, int | float) and k.startswith("eval_"))
        raise UserError(f"--metric {metric}: {folder / layout.METRICS} holds {found}.",
                        hint="Give one of them as --metric (or --metric-for-best-model).")
    value = metrics[metric]
    return float(value) if value is not None and math.isfinite(float(value)) else None


@dataclass
class Objective:
    """What Optuna calls for each trial: sample, run, read the objective back."""

    task: str
    study_dir: Path
    space: Space
    resolve: Callable[..., RunConfig]  # task options -> configuration, with the trial's values as overrides
    run: RunTrial
    metric: str
    pruner: str
    current: int | None = None  # the trial under way in this process

    def __call__(self, trial: Any) -> float:
        import optuna

        self.current = trial.number
        folder = self.study_dir / layout.trial_name(trial.number)
        trial.set_user_attr(WORKER, this_worker())
        trial.set_user_attr(FOLDER, str(folder.resolve()))
        params = sample(self.space, trial)
        cfg = self.resolve(**params, output_dir=str(folder), resume="no", overwrite=False)
        trial.set_user_attr(CONFIG, saved_config(cfg, self.task))
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        say(f"\n[bold magenta]== trial {trial.number} ==[/bold magenta] {escape(shown)}")
        hook = PruningHook(trial, self.metric, self.pruner)
        base = {"study": str(self.study_dir), "number": trial.number, "params": params, "metric": self.metric}
        try:
            self.run(cfg, hook)
        except TrainingDiverged as err:
            trial.set_user_attr(DIVERGED, True)
            mark(folder, **base, state="FAIL", reason=err.message)
            raise Diverged(err.message) from None
        finally:
            release_memory()
        value = read_objective(folder, self.metric)
        if value is None:
            trial.set_user_attr(DIVERGED, True)
            mark(folder, **base, state="FAIL", reason=f"{self.metric} is not finite")
            raise Diverged(f"{self.metric} is not finite")
        if hook.pruned_at is not None:
            remove_checkpoints(folder)
            mark(folder, **base, state="PRUNED", value=hook.reported[hook.pruned_at], pruned_at_step=hook.pruned_at,
                 checkpoints="removed")
            raise optuna.TrialPruned(f"pruned at step {hook.pruned_at}")
        mark(folder, **base, state="COMPLETE", value=value)
        return value


def keep_models(trials: list[Any], best: int | None, keep: str) -> list[int]:
    """`--keep best`: remove the weights and checkpoints of every finished trial of this host but the best one
    (their metrics, predictions, history and configuration stay). Returns the trials whose weights went."""
    if keep != "best":
        return []
    removed = []
    for trial in trials:
        folder = Path(trial.user_attrs.get(FOLDER, ""))
        if trial.number == best or not trial.state.is_finished() or not folder.is_dir():
            continue
        present = [folder / name for name in WEIGHTS if (folder / name).is_file()]
        if not present and not any(folder.glob(f"{layout.CHECKPOINT_PREFIX}*")):
            continue
        for path in present:
            path.unlink()
        remove_checkpoints(folder)
        mark(folder, model="removed (--keep best)")
        removed.append(trial.number)
    return removed
