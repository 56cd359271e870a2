"""`--report-to`: the experiment trackers a training run also logs to, in both loops.

The Trainer loop uses transformers' integration callbacks (`TrainingArguments.report_to`; TensorBoard through
its `TensorBoardCallback`, writing to <output>/tensorboard); the Accelerate loop uses accelerate's trackers
(`Accelerator(log_with=...)`, `init_trackers`, `accelerator.log`) fed by the run log, with transformers'
`rewrite_logs` names. Both log under the same names: `train/loss`, `train/learning_rate`, `train/grad_norm`,
`train/epoch`, `eval/loss`, `eval/<metric>`, ... at the optimizer step; the run is named after the output
folder, its project (wandb project, MLflow experiment, trackio/comet project) is `nlpcli` unless the tracker's
own variable says otherwise, and its config is the TrainingArguments and the model config. Only the main
process logs; an --eval-only run logs to none.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from nlpcli.errors import RefusedBeforeTraining, UserError, first_line

# --report-to name -> (module to import, what to pip install); the trackers both transformers and accelerate have
TRACKERS = {
    "tensorboard": ("tensorboard", "'nlpcli[tensorboard]'"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),  # or mlflow-skinny
    "trackio": ("trackio", "trackio"),
    "comet_ml": ("comet_ml", "comet_ml"),
    "clearml": ("clearml", "clearml"),
    "dvclive": ("dvclive", "dvclive"),
    "swanlab": ("swanlab", "swanlab"),
}
PROJECT = "nlpcli"
# the project's name for a tracker that reads it from the environment (the Trainer's callbacks do)
PROJECT_VARIABLES = {"wandb": "WANDB_PROJECT", "mlflow": "MLFLOW_EXPERIMENT_NAME", "comet_ml": "COMET_PROJECT_NAME",
                     "clearml": "CLEARML_PROJECT", "swanlab": "SWANLAB_PROJECT"}


def requested(report_to: list[str] | str | None) -> list[str]:
    """The tracker names asked for, in order, once each ("none" and an empty value: no tracker)."""
    if isinstance(report_to, str):
        report_to = report_to.split(",")
    names = [name.strip() for name in report_to or [] if name.strip()]
    return list(dict.fromkeys(name for name in names if name != "none"))


def chosen(cfg: Any) -> list[str]:
    """The trackers this run logs to: none for an --eval-only run."""
    return [] if cfg.eval_only else requested(cfg.report_to)


def check(report_to: list[str] | str | None) -> None:
    """Refuse, before anything is written, an unknown tracker name and a tracker whose package is missing."""
    names = requested(report_to)
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"--report-to {name}: not a tracker nlpcli knows.",
                            hint=f"Known: none, {', '.join(TRACKERS)} (several: --report-to wandb,tensorboard).")
    for name in names:
        module, package = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"--report-to {name} needs the {module} package.",
                            hint=f"pip install {package}")


def run_name(output_dir: Path) -> str:
    return Path(output_dir).name


def set_project(names: list[str]) -> None:
    """The project the Trainer's callbacks read from the environment: nlpcli's, unless one is set."""
    for name in names:
        if name in PROJECT_VARIABLES:
            os.environ.setdefault(PROJECT_VARIABLES[name], PROJECT)


def trainer_report_to(names: list[str]) -> list[str] | str:
    """TrainingArguments.report_to: TensorBoard is left out (nlpcli adds its callback, writing to
    <output>/tensorboard)."""
    return [name for name in names if name != "tensorboard"] or "none"


def run_config(args: Any, model: Any) -> dict[str, Any]:
    """What the Trainer's callbacks store as the run config: the model config, then the TrainingArguments, as
    scalars (what every tracker takes)."""
    config = getattr(model, "config", None)
    values = {**(config.to_dict() if config is not None else {}), **args.to_dict()}
    return {key: value if type(value) in (bool, int, float, str) else str(value) for key, value in values.items()}


def accelerate_log_with(names: list[str], output_dir: Path) -> list[Any]:
    """accelerate's trackers for `names`; TensorBoard writes to <output>/tensorboard (as the Trainer loop)."""
    from accelerate.tracking import TensorBoardTracker

    from nlpcli import layout

    class TensorBoard(TensorBoardTracker):
        def store_init_configuration(self, values: dict) -> None:
            """The config as text, as the Trainer's callback writes it (not hparams, a second event file)."""
            self.writer.add_text("args", json.dumps(values, indent=2))

    return [TensorBoard(layout.TENSORBOARD, str(output_dir)) if name == "tensorboard" else name for name in names]


def accelerate_init_kwargs(names: list[str], run: str) -> dict[str, dict[str, Any]]:
    """Per tracker, what names the run `run` (accelerate names the project from `init_trackers`)."""
    kwargs: dict[str, dict[str, Any]] = {"wandb": {"name": run}, "mlflow": {"run_name": run}, "trackio": {"name": run},
                                         "clearml": {"task_name": os.environ.get("CLEARML_TASK", run)},
                                         "swanlab": {"experiment_name": run}}
    if "comet_ml" in names:
        import comet_ml

        kwargs["comet_ml"] = {"experiment_config": comet_ml.ExperimentConfig(name=run)}
    return {name: kwargs[name] for name in names if name in kwargs}


def accelerate_project(names: list[str]) -> str:
    """The project accelerate names the runs by: a tracker's own variable, else nlpcli's."""
    for name in names:
        if os.environ.get(PROJECT_VARIABLES.get(name, "")):
            return os.environ[PROJECT_VARIABLES[name]]
    return PROJECT


def could_not_start(names: list[str], err: Exception) -> RefusedBeforeTraining:
    """A tracker that fails to start (a tracking URI or store it refuses, a login it lacks): exit 2 naming it and
    its reason, not a traceback from inside the tracker's library."""
    return RefusedBeforeTraining(f"--report-to {','.join(names)}: the tracker could not start: {first_line(err)}",
                     hint="Check its settings (for example MLFLOW_TRACKING_URI, WANDB_MODE, WANDB_API_KEY), or "
                          "drop it from --report-to.")


def adapt_trainer_callbacks(trainer: Any) -> Any:
    """transformers' integration callbacks, made to log as the Accelerate loop does: MLflow's under
    `rewrite_logs` names too (train/loss, eval/loss, as the other callbacks), and the runs closed after the
    run's final evaluation, not when training ends: their `on_train_end` waits for the returned function. A
    callback that cannot start its run stops the run with `could_not_start`."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, MLflowCallback, rewrite_logs

    kinds = tuple(INTEGRATION_TO_CALLBACK.values())
    names = {kind: name for name, kind in INTEGRATION_TO_CALLBACK.items()}
    pending: list[Any] = []
    for callback in trainer.callback_handler.callbacks:
        if not isinstance(callback, kinds):
            continue

        def started(*args: Any, _original: Any = callback.on_train_begin, _name: str = names[type(callback)],
                    **kwargs: Any) -> Any:
            try:
                return _original(*args, **kwargs)
            except Exception as err:  # noqa: BLE001  (whatever the tracker's library raises)
                raise could_not_start([_name], err) from None

        callback.on_train_begin = started

        def later(*args: Any, _original: Any = callback.on_train_end, **kwargs: Any) -> None:
            pending.append(lambda: _original(*args, **kwargs))

        callback.on_train_end = later
        if isinstance(callback, MLflowCallback):
            def renamed(args: Any, state: Any, control: Any, logs: Any, _original: Any = callback.on_log,
                        **kwargs: Any) -> None:
                _original(args, state, control, rewrite_logs(logs), **kwargs)

            callback.on_log = renamed

    def end() -> None:
        for call in pending:
            call()
        pending.clear()

    return end


def end_trainer_runs(end_callbacks: Any, names: list[str]) -> None:
    """The Trainer loop's tracker runs end: the held-back callbacks, then the runs they leave open (wandb's
    lasts until the process exits), so that the next run in this process starts its own."""
    end_callbacks()
    if "wandb" in names:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    if "mlflow" in names:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.end_run()
