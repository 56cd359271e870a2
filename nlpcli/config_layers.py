"""The layers of a run's configuration and their order: task defaults (configs/<task>.yaml) < model preset
(configs/presets/<model>.yaml) < saved run (`--eval-only --model RUN_DIR`) < --config FILE < --set key=value <
command-line options. `resolve_config` merges them into one checked `RunConfig` and records where each value
came from."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from nlpcli import run_folder
from nlpcli.config import ORIGINS, RunConfig, check_model_selection
from nlpcli.config_fields import flag
from nlpcli.config_files import read_yaml
from nlpcli.config_values import coerce
from nlpcli.errors import UserError


def _config_dir() -> Path:
    """The task defaults, shipped as package data (`nlpcli/configs`, a link to the repository's top-level
    `configs/` in a checkout), so every install finds them: editable, wheel, `pip install --target`, `--user`."""
    return Path(str(resources.files("nlpcli").joinpath("configs")))


CONFIG_DIR = _config_dir()
PRESET_DIR = CONFIG_DIR / "presets"  # a model preset's own defaults (e.g. a random-init model's learning rate)
DATA_SOURCE_KEYS = ("dataset", "train_file", "validation_file")  # which data a run reads
TASK_DEFAULTS = "task defaults"  # the origin of a value from configs/<task>.yaml

# TrainingArguments fields that are nlpcli options: `--trainer-arg KEY=VALUE` is refused naming the option (one way
# to say each thing, which both loops honour)
TRAINER_ARG_OPTIONS = {
    "learning_rate": "learning_rate", "weight_decay": "weight_decay", "num_train_epochs": "epochs",
    "max_steps": "max_steps", "warmup_steps": "warmup_steps", "warmup_ratio": "warmup_ratio",
    "lr_scheduler_type": "lr_scheduler", "per_device_train_batch_size": "batch_size",
    "per_device_eval_batch_size": "eval_batch_size", "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_grad_norm": "max_grad_norm", "seed": "seed", "logging_steps": "logging_steps",
    "eval_strategy": "eval_strategy", "eval_steps": "eval_steps", "save_strategy": "save_strategy",
    "save_steps": "save_steps", "save_total_limit": "save_total_limit", "output_dir": "output_dir",
    "load_best_model_at_end": "load_best_model_at_end", "metric_for_best_model": "metric_for_best_model",
    "greater_is_better": "greater_is_better", "optim": "optim", "gradient_checkpointing": "gradient_checkpointing",
    "torch_compile": "torch_compile", "group_by_length": "group_by_length", "report_to": "report_to",
    "push_to_hub": "push_to_hub", "hub_model_id": "hub_model_id", "hub_strategy": "hub_strategy",
    "hub_private_repo": "hub_private", "resume_from_checkpoint": "resume", "fp16": "precision", "bf16": "precision",
}


def _check_trainer_args(cls: type[RunConfig], layer: dict[str, Any], source: str) -> None:
    """Refuse a `trainer_args` field that is an nlpcli option, naming the option."""
    for name in coerce(cls, "trainer_args", layer["trainer_args"], source) if layer.get("trainer_args") else ():
        if name in TRAINER_ARG_OPTIONS:
            raise UserError(f"{source}: --trainer-arg {name}: nlpcli has an option for it; use "
                            f"{flag(TRAINER_ARG_OPTIONS[name])} (both loops honour it).")


def _apply(cls: type[RunConfig], values: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    _check_trainer_args(cls, layer, source)
    for key, value in layer.items():
        if key not in known:
            raise UserError(
                f"{source}: unknown config key '{key}'.", hint=f"Known keys: {', '.join(sorted(known))}."
            )
        coerced = coerce(cls, key, value, source)
        if isinstance(coerced, dict) and isinstance(values.get(key), dict):
            coerced = {**values[key], **coerced}  # mappings (trainer_args) merge across layers
        values[key] = coerced


def task_defaults_file(task_name: str) -> Path:
    return CONFIG_DIR / f"{task_name}.yaml"


def task_defaults(task_name: str) -> dict[str, Any]:
    """The keys of configs/<task>.yaml as written (the lowest layer; `--help` shows them as the defaults)."""
    path = task_defaults_file(task_name)
    return read_yaml(path) if path.is_file() else {}


NOT_EVALUATED_KEYS = (*run_folder.RUN_ONLY_KEYS, "eval_only", "model")  # the evaluation names its own model


def _latest(layers: list[dict[str, Any]], key: str) -> Any:
    found = [layer[key] for layer in layers if layer.get(key) is not None]
    return found[-1] if found else None


def saved_run_layer(cls: type, task_name: str, later: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """With `--eval-only` and `--model RUN_DIR`: the settings RUN_DIR saved, as a config layer below `later`
    (the --config, --set and command-line layers, which still win). Its data is left out when a later
    layer names data (`--dataset`, `--train-file`, `--validation-file`). ({}, "") otherwise."""
    model, eval_only = _latest(later, "model"), _latest(later, "eval_only")
    if model is None or eval_only is None or not coerce(cls, "eval_only", eval_only, "--eval-only"):
        return {}, ""
    saved = run_folder.saved_settings(str(model))
    if saved is None:
        return {}, ""
    path = run_folder.settings_file(str(model))
    values = run_folder.check_task_of_file(saved, task_name, str(path))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    layer = {k: v for k, v in values.items() if k in fields and k not in NOT_EVALUATED_KEYS}
    if any(_latest(later, key) is not None for key in DATA_SOURCE_KEYS):
        data_bound = {name for name, f in fields.items() if f.metadata.get("data_bound")}
        layer = {k: v for k, v in layer.items() if k not in (*DATA_SOURCE_KEYS, *data_bound)}
    return layer, str(path)


def resolve_config(
    cls: type[RunConfig],
    task_name: str,
    config_file: str | Path | None = None,
    cli_values: dict[str, Any] | None = None,
    set_values: dict[str, str] | None = None,
) -> RunConfig:
    """Merge the layers in order of precedence: task defaults < preset < saved run < --config < --set < CLI
    options. The saved-run layer is the run's nlpcli_config.yaml with `--eval-only --model RUN_DIR` (see
    `saved_run_layer`).

    The preset layer is `configs/presets/<model>.yaml` when the model the other layers choose is a preset that
    has one (the tiny preset's random weights need a larger learning rate than the course's fine-tuning).
    When a later layer picks other data than the task defaults (`dataset`, `train_file`, `validation_file`),
    the defaults' data-bound keys (configurations, columns, filters of the default data set) are dropped:
    `--dataset sample` must not inherit the course data set's `--filter`.
    Where each value came from is kept for the run header (see `value_origins`).
    """
    values: dict[str, Any] = {}
    defaults = task_defaults(task_name)
    _apply(cls, values, defaults, str(task_defaults_file(task_name)))
    origins = dict.fromkeys(defaults, TASK_DEFAULTS)
    layers = [
        (run_folder.config_file_layer(Path(config_file), task_name) if config_file else {}, str(config_file)),
        (set_values or {}, "--set"),
        ({k: v for k, v in (cli_values or {}).items() if v is not None}, "command line"),
    ]
    saved, saved_file = saved_run_layer(cls, task_name, [layer for layer, _ in layers])  # --eval-only RUN_DIR
    layers.insert(0, (saved, saved_file))
    if any(layer.get(key) not in (None, defaults.get(key)) for layer, _ in layers for key in DATA_SOURCE_KEYS):
        for bound in (f.name for f in dataclasses.fields(cls) if f.metadata.get("data_bound")):
            values.pop(bound, None)
            origins.pop(bound, None)
    model = next((layer["model"] for layer, _ in reversed(layers) if layer.get("model") is not None),
                 values.get("model", cls.model))
    preset, preset_file = preset_layer(str(model))
    labels = [f"preset {model}", f"saved run {saved_file}", f"--config {config_file}", "--set", "command line"]
    for (layer, source), label in zip([(preset, str(preset_file)), *layers], labels, strict=True):
        _apply(cls, values, layer, source)
        origins.update(dict.fromkeys(layer, label))
    cfg = cls(**values)
    cfg.__dict__[ORIGINS] = origins
    if cfg.epochs == 0 and cfg.max_steps <= 0:
        raise UserError("--epochs 0 trains nothing: give --epochs above 0, or --max-steps N.")
    check_model_selection(cfg)
    return cfg



def preset_layer(model: str) -> tuple[dict[str, Any], Path]:
    """The defaults of model preset `model` (configs/presets/<model>.yaml) and that file; empty for a model
    that is no preset (a hub id, a folder), or a preset without defaults of its own."""
    path = PRESET_DIR / f"{model}.yaml"
    if not model.isidentifier() or not path.is_file():
        return {}, path
    return read_yaml(path), path
