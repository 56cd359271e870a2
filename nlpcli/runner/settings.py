"""The training settings both loops share, as transformers' `TrainingArguments`: built once from the run
configuration (and `--trainer-arg` pass-through), checked before any data is read, and the source of the
Accelerate loop's optimizer (the Trainer's own optimizer choice: `--optim`, fused AdamW by default). Also what a
run will train once its features are made (`plan`: steps, epochs, the effective batch) and the logging interval
chosen for that length when --logging-steps was not given (`with_logging_interval`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from typing import Any

from nlpcli.config import RunConfig, chosen
from nlpcli.config_fields import flag
from nlpcli.config_layers import TRAINER_ARG_OPTIONS
from nlpcli.errors import UserError
from nlpcli.runner import devices, optimization, trackers
from nlpcli.suggestions import closest, did_you_mean

# TrainingArguments fields nlpcli sets itself from how it runs: a pass-through value would break a guarantee (the
# fields that are nlpcli options are refused by config_layers.TRAINER_ARG_OPTIONS, naming the option)
MANAGED = {
    "remove_unused_columns": "the runner drops the columns the model does not take",
    "disable_tqdm": "nlpcli shows its own progress",
    "use_cpu": "nlpcli picks the device",
    "logging_nan_inf_filter": "a non-finite loss must stop the run",
    "average_tokens_across_devices": "both loops average the loss per process",
    "logging_dir": "TensorBoard logs go to <output>/tensorboard",
    "train_sampling_strategy": "use --group-by-length",
    "run_name": "trackers name the run after the output folder",
}


def training_argument_names() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}


def _typed(name: str, value: Any) -> Any:
    """A pass-through value read as YAML ('1e-3' stays a string there) converted to the field default's type."""
    from transformers import TrainingArguments

    default = next(f.default for f in dataclasses.fields(TrainingArguments) if f.name == name)
    if isinstance(value, str) and isinstance(default, int | float) and not isinstance(default, bool):
        try:
            return type(default)(float(value)) if isinstance(default, int) else float(value)
        except ValueError:
            raise UserError(f"--trainer-arg {name}: expected a number, got {value!r}.") from None
    return value


SHARDING = {"fsdp": "fsdp2.yaml", "deepspeed": "deepspeed_zero2.yaml"}  # --trainer-arg key -> a shipped config


def check_sharding(passed: dict[str, Any]) -> None:
    """`--trainer-arg fsdp=...` / `deepspeed=...` need a distributed launch (and DeepSpeed its package): refuse
    them otherwise, naming the command that works, before anything is written."""
    import os

    from nlpcli.config_layers import CONFIG_DIR

    for key, config in SHARDING.items():
        if not passed.get(key):
            continue
        launch = (f"accelerate launch --config_file {CONFIG_DIR / 'accelerate' / config} --num_processes N "
                  "-m nlpcli TASK ... (or torchrun --nproc_per_node N -m nlpcli TASK ... with this --trainer-arg)")
        if key == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
            raise UserError("--trainer-arg deepspeed needs the deepspeed package.",
                            hint=f"pip install deepspeed, then: {launch}")
        if int(os.environ.get("WORLD_SIZE", "1")) < 2:
            raise UserError(f"--trainer-arg {key}: sharded training needs a distributed launch of 2 or more "
                            "processes; this is one process.", hint=f"Run: {launch}")


def trainer_arg_hint(name: str, known: set[str]) -> str:
    """The fields closest to an unknown `--trainer-arg` key, those nlpcli has an option for named by the option
    (`lerning_rate` -> --learning-rate: `--trainer-arg learning_rate` would be refused)."""
    found = closest(name, known)
    shown = [flag(TRAINER_ARG_OPTIONS[field]) if field in TRAINER_ARG_OPTIONS else field for field in found]
    return f"Did you mean {', '.join(dict.fromkeys(shown))}?" if shown else "See transformers' TrainingArguments."


def check_training_settings(cfg: RunConfig) -> None:
    """Refuse, before any data is read, what neither loop can run: unknown or managed `--trainer-arg` keys
    (naming the closest fields), pass-through keys the Accelerate loop cannot honour, an unknown `--optim`,
    --group-by-length on a stream, and an unknown tracker or one without its package."""
    passed = cfg.trainer_args or {}
    if passed:
        known = training_argument_names()
        for name in passed:
            if name in MANAGED:
                raise UserError(f"--trainer-arg {name}: nlpcli sets this itself ({MANAGED[name]}).")
            if name not in known:
                raise UserError(f"--trainer-arg {name}: not a TrainingArguments field.",
                                hint=trainer_arg_hint(name, known))
        check_sharding(passed)
        if cfg.loop == "accelerate":
            raise UserError(
                f"--trainer-arg {', '.join(sorted(passed))}: the accelerate loop cannot honour Trainer-only "
                "settings; use --loop trainer, or nlpcli's own options."
            )
    from transformers.training_args import OptimizerNames

    names = [o.value for o in OptimizerNames]
    if cfg.optim not in names:
        raise UserError(f"--optim {cfg.optim}: not a transformers optimizer name.",
                        hint=did_you_mean(cfg.optim, names, otherwise=f"Known: {', '.join(names)}."))
    if cfg.group_by_length and cfg.streaming:
        raise UserError("--group-by-length sorts a whole training set by length; a --streaming one is read as it "
                        "comes: drop one of them.")
    devices.check_precision_request(cfg.precision)
    trackers.check(cfg.report_to)


LOGGED_POINTS = 25  # training-loss records over a run whose --logging-steps was not given (about 25 to 50)
FALLBACK_LOGGING_STEPS = 50  # TrainingArguments built before the run's length is known


def steps_per_epoch(cfg: RunConfig, batches: int) -> int:
    """Optimizer steps in an epoch of `batches` batches (per process): the last, shorter accumulation counts."""
    return max(1, math.ceil(batches / cfg.gradient_accumulation_steps))


def total_steps(cfg: RunConfig, batches: int | None) -> int:
    """The optimizer steps a run trains in all, as both loops count them: --max-steps, or its epochs' worth of
    epochs of `batches` batches per process (None: a stream, whose length is not known; it needs --max-steps)."""
    if cfg.max_steps > 0 or batches is None:
        return cfg.max_steps
    return math.ceil(cfg.epochs * steps_per_epoch(cfg, batches))


def plan(cfg: RunConfig, features: int | None, world_size: int) -> dict[str, Any]:
    """What a training run will do, for the run report (run.json, the header, the model card): its steps and
    epochs, and the batch (per device x accumulation x processes). `features`: training features (None: a
    stream); each process takes every `world_size`-th batch, as accelerate shards a DataLoader."""
    batches = None if features is None else math.ceil(math.ceil(features / cfg.batch_size) / world_size)
    steps = total_steps(cfg, batches)
    return {
        "planned_steps": steps,
        "planned_epochs": None if batches is None else round(steps / steps_per_epoch(cfg, batches), 4),
        "batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "total_train_batch_size": cfg.batch_size * cfg.gradient_accumulation_steps * world_size,
    }


def logging_interval(steps: int, checkpoint_every: int | None = None) -> int:
    """About LOGGED_POINTS training logs over `steps` optimizer steps (every step for a run of fewer). With
    `checkpoint_every`, a divisor of it: evaluations follow the logging interval, and each checkpoint must fall on
    one (--load-best-model-at-end)."""
    interval = max(1, steps // LOGGED_POINTS)
    if checkpoint_every:
        interval = max(n for n in range(1, min(interval, checkpoint_every) + 1) if checkpoint_every % n == 0)
    return interval


def with_logging_interval(cfg: RunConfig, steps: int) -> RunConfig:
    """`cfg` with --logging-steps chosen for a run of `steps` optimizer steps when no layer set it (its source:
    'chosen for the run's N steps', which the run header shows); as it was otherwise."""
    if cfg.logging_steps is not None:
        return cfg
    follows = cfg.load_best_model_at_end and cfg.evaluation_strategy == "steps" and not cfg.eval_steps
    return chosen(cfg, "logging_steps", logging_interval(steps, cfg.saving_interval if follows else None),
                  f"chosen for the run's {steps} steps")


def training_arguments(cfg: RunConfig, output_dir: str, mixed_precision: str, run_folder: str | None = None) -> Any:
    """The TrainingArguments both loops train by: the Trainer runs on them, the Accelerate loop takes its
    optimizer from them. `run_folder` (default: `output_dir`) names the trackers' run."""
    import torch
    from transformers import TrainingArguments

    evaluation, saving = cfg.evaluation_strategy, cfg.saving_strategy
    values = dict(
        output_dir=output_dir,
        eval_strategy=evaluation,
        eval_steps=(cfg.evaluation_interval or FALLBACK_LOGGING_STEPS) if evaluation == "steps" else None,
        save_strategy=saving,
        save_steps=cfg.saving_interval,
        save_total_limit=cfg.save_total_limit,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=optimization.warmup(cfg),
        lr_scheduler_type=cfg.lr_scheduler,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        optim=cfg.optim,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs=GRADIENT_CHECKPOINTING if cfg.gradient_checkpointing else None,
        torch_compile=cfg.torch_compile,
        fp16=mixed_precision == "fp16",
        bf16=mixed_precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        logging_steps=cfg.logging_steps or FALLBACK_LOGGING_STEPS,
        report_to=trackers.trainer_report_to(trackers.chosen(cfg)),  # TensorBoard: nlpcli's callback (trainer.py)
        run_name=trackers.run_name(run_folder or output_dir),
        project=trackers.PROJECT,
        remove_unused_columns=False,  # the runner drops them itself (RunContext.model_inputs), as for Accelerate
        average_tokens_across_devices=False,  # per-process mean loss, as the Accelerate loop (and DDP) do
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # a NaN loss must show (and stop the run), not be averaged away
        ddp_find_unused_parameters=False,  # every parameter gets a gradient; spares DDP's warning on each rank
    )
    values.update({name: _typed(name, value) for name, value in (cfg.trainer_args or {}).items()})
    try:
        args = TrainingArguments(**values)
    except (ValueError, TypeError) as err:
        keys = ", ".join(sorted(cfg.trainer_args or {})) or "the options"
        raise UserError(f"Training settings refused by transformers ({keys}): {err}") from None
    # With neither fp16 nor bf16 set, TrainingArguments takes the launcher's ACCELERATE_MIXED_PRECISION, and the
    # Trainer builds its Accelerator from this attribute: fp32 must stay fp32 when nlpcli resolved it so.
    args.mixed_precision = mixed_precision
    return args


GRADIENT_CHECKPOINTING = {"use_reentrant": False}  # the non-reentrant variant: works with frozen inputs, and DDP


def optimizer(args: Any, model: Any) -> Any:
    """The optimizer the Trainer would build from `args` (`--optim`: its class and settings, fused AdamW where
    torch has it), over nlpcli's weight-decay groups."""
    from transformers import Trainer

    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return optimizer_cls(optimization.parameter_groups(model, args.weight_decay), **kwargs)


def accelerator_options(cfg: RunConfig) -> dict[str, Any]:
    """The Accelerate loop's Accelerator settings that follow nlpcli options (--torch-compile)."""
    return {"dynamo_backend": "inductor" if cfg.torch_compile else None}
