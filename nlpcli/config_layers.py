"""The layers of a run's configuration and their order: task defaults (configs/<task>.yaml) < bundled sample
(configs/samples/<task>.yaml, with `--dataset sample`) < model preset (configs/presets/<model>.yaml) < saved run
(`--eval-only --model RUN_DIR`, or the run `--resume` continues) < --config FILE < --set key=value < command-line
options. `resolve_config` merges them into one checked `RunConfig` and records where each value came from.
`predict_settings` gives `nlpcli predict` a saved run's settings, or the task defaults."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from nlpcli import run_folder
from nlpcli.config import RunConfig, check_model_selection, saved_config, with_origins
from nlpcli.config_args import RESUME_CHOICES
from nlpcli.config_fields import flag
from nlpcli.config_files import read_yaml
from nlpcli.config_values import coerce
from nlpcli.errors import UserError
from nlpcli.suggestions import did_you_mean


def _config_dir() -> Path:
    """The task defaults, shipped as package data (`nlpcli/configs`, a link to the repository's top-level
    `configs/` in a checkout), so every install finds them: editable, wheel, `pip install --target`, `--user`."""
    return Path(str(resources.files("nlpcli").joinpath("configs")))


CONFIG_DIR = _config_dir()
PRESET_DIR = CONFIG_DIR / "presets"  # a model preset's own defaults (e.g. a random-init model's learning rate)
SAMPLE_DIR = CONFIG_DIR / "samples"  # what a task's bundled sample needs (e.g. translate's languages: en-ro)
SAMPLE = "sample"  # the --dataset value that picks the bundled sample
DATA_SOURCE_KEYS = ("dataset", "train_file", "validation_file")  # which data a run reads
TASK_DEFAULTS = "task defaults"  # the origin of a value from configs/<task>.yaml
PRESET_TASKS_KEY = "tasks"  # a preset file's per-task defaults: {task: {key: value}}
SAMPLE_LABEL = "bundled sample"  # the origin of a value from configs/samples/<task>.yaml

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


def unknown_key_hint(key: str, known: set[str], task_name: str) -> str:
    """The keys closest to an unknown one (transformers' name of an nlpcli key: that key), else where to look."""
    if key in TRAINER_ARG_OPTIONS and TRAINER_ARG_OPTIONS[key] in known:
        return f"Did you mean {TRAINER_ARG_OPTIONS[key]}? ({key} is transformers' name for it.)"
    return did_you_mean(key, known, otherwise=f"`nlpcli config {task_name}` lists every key.") or ""


def _apply(cls: type[RunConfig], values: dict[str, Any], layer: dict[str, Any], source: str,
           task_name: str) -> set[str]:
    """Apply one layer to `values`; the keys it set over a different value (the built-in default's included)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = set(fields)
    _check_trainer_args(cls, layer, source)
    replaced = set()
    for key, value in layer.items():
        if key not in known:
            raise UserError(f"{source}: unknown config key '{key}'.", hint=unknown_key_hint(key, known, task_name))
        coerced = coerce(cls, key, value, source)
        if isinstance(coerced, dict) and isinstance(values.get(key), dict):
            coerced = {**values[key], **coerced}  # mappings (trainer_args) merge across layers
        if coerced != values.get(key, fields[key].default):
            replaced.add(key)
        values[key] = coerced
    return replaced


def task_defaults_file(task_name: str) -> Path:
    return CONFIG_DIR / f"{task_name}.yaml"


def task_defaults(task_name: str) -> dict[str, Any]:
    """The keys of configs/<task>.yaml as written (the lowest layer; `--help` shows them as the defaults)."""
    path = task_defaults_file(task_name)
    return read_yaml(path) if path.is_file() else {}


# the evaluation names its own model, and shares none (an --eval-only run refuses --push-to-hub); an overfit
# check's run is evaluated as any other
NOT_EVALUATED_KEYS = (*run_folder.RUN_ONLY_KEYS, "eval_only", "model", "push_to_hub", "overfit_batch")


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


RESUME_NOT_INHERITED = (*run_folder.RUN_ONLY_KEYS, "eval_only")  # what the resuming command does with the folder


def resumed_run_layer(cls: type, task_name: str, later: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """With `--resume` (yes, auto or PATH): the settings of the run it continues (the folder of the checkpoint
    PATH names, else --output-dir), as its nlpcli_config.yaml holds them with every resume's changes applied, as
    a config layer below `later`. A resume continues its run: the options the command gives are the changes,
    which `runner.continuity` accepts or refuses. When `later` names other data than the run's, the run's data
    keys are left out (continuity names the difference). ({}, "") when the command resumes nothing, or the run
    saved no settings, or saved another task's (continuity refuses it, naming each difference)."""
    resume = _latest(later, "resume")
    if resume is None:
        return {}, ""
    resume = coerce(cls, "resume", resume, "--resume")
    if resume == "no":
        return {}, ""
    output_dir = _latest(later, "output_dir")
    folder = Path(str(resume)).expanduser().parent if resume not in RESUME_CHOICES else (
        Path(str(output_dir)).expanduser() if output_dir is not None else None)
    saved = run_folder.saved_settings(folder) if folder is not None else None
    if saved is None or str(saved.get(run_folder.TASK_KEY)) != task_name:
        return {}, ""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    layer = {k: v for k, v in saved.items() if k in fields and k not in RESUME_NOT_INHERITED}
    if any(_latest(later, key) not in (None, layer.get(key)) for key in DATA_SOURCE_KEYS):
        data_bound = {name for name, f in fields.items() if f.metadata.get("data_bound")}
        layer = {k: v for k, v in layer.items() if k not in (*DATA_SOURCE_KEYS, *data_bound)}
    return layer, str(run_folder.settings_file(folder))


def resolve_config(
    cls: type[RunConfig],
    task_name: str,
    config_file: str | Path | None = None,
    cli_values: dict[str, Any] | None = None,
    set_values: dict[str, str] | None = None,
) -> RunConfig:
    """Merge the layers in order of precedence: task defaults < bundled sample < preset < saved run < --config <
    --set < CLI options. The bundled-sample layer is configs/samples/<task>.yaml when the other layers choose
    `--dataset sample` (translate's sample is en-ro where the task defaults say en-fr). The saved-run layer is
    the run's nlpcli_config.yaml with `--eval-only --model RUN_DIR` (see `saved_run_layer`), or with `--resume`
    the one of the run it continues (see `resumed_run_layer`).

    The preset layer is `configs/presets/<model>.yaml` when the model the other layers choose is a preset that
    has one (the tiny preset's random weights need a larger learning rate than the course's fine-tuning).
    When a later layer picks other data than the task defaults (`dataset`, `train_file`, `validation_file`),
    the defaults' data-bound keys (configurations, columns, filters of the default data set) are dropped:
    `--dataset sample` must not inherit the course data set's `--filter`.
    Where each value came from is kept for the run header (see `value_origins`).
    """
    values: dict[str, Any] = {}
    defaults = task_defaults(task_name)
    replaced = _apply(cls, values, defaults, str(task_defaults_file(task_name)), task_name)
    origins = dict.fromkeys(defaults, TASK_DEFAULTS)
    layers = [
        (run_folder.config_file_layer(Path(config_file), task_name) if config_file else {}, str(config_file)),
        (set_values or {}, "--set"),
        ({k: v for k, v in (cli_values or {}).items() if v is not None}, "command line"),
    ]
    saved, saved_file = saved_run_layer(cls, task_name, [layer for layer, _ in layers])  # --eval-only RUN_DIR
    if not saved_file:
        saved, saved_file = resumed_run_layer(cls, task_name, [layer for layer, _ in layers])  # --resume
    layers.insert(0, (saved, saved_file))
    if any(layer.get(key) not in (None, defaults.get(key)) for layer, _ in layers for key in DATA_SOURCE_KEYS):
        for bound in (f.name for f in dataclasses.fields(cls) if f.metadata.get("data_bound")):
            values.pop(bound, None)
            origins.pop(bound, None)
            replaced.discard(bound)
    model, dataset = (next((layer[key] for layer, _ in reversed(layers) if layer.get(key) is not None),
                           values.get(key, getattr(cls, key))) for key in ("model", "dataset"))
    preset, preset_file = preset_layer(str(model), task_name)
    sample_file = SAMPLE_DIR / f"{task_name}.yaml"
    sample = read_yaml(sample_file) if dataset == SAMPLE and sample_file.is_file() else {}
    labels = [SAMPLE_LABEL, f"preset {model}", f"saved run {saved_file}", f"--config {config_file}", "--set",
              "command line"]
    defaults_layers = [(sample, str(sample_file)), (preset, str(preset_file))]
    for (layer, source), label in zip([*defaults_layers, *layers], labels, strict=True):
        replaced |= _apply(cls, values, layer, source, task_name)
        origins.update(dict.fromkeys(layer, label))
    if values.get("streaming") and values.get("group_by_length") and origins.get("group_by_length") == TASK_DEFAULTS:
        values["group_by_length"] = False  # the task's default; a stream is read as it comes, with nothing to sort
        origins["group_by_length"] = "--streaming"
    cfg = with_origins(cls(**values), origins, replaced)
    if cfg.epochs == 0 and cfg.max_steps <= 0:
        raise UserError("--epochs 0 trains nothing: give --epochs above 0, or --max-steps N.")
    check_model_selection(cfg)
    return cfg



def predict_settings(cls: type[RunConfig], task_name: str, model: str) -> tuple[RunConfig, bool]:
    """(the settings `nlpcli predict` uses with `model`, whether a run saved them): those of the nlpcli_config.yaml
    that describes it (its folder's, its run folder's for a checkpoint, or its hub repo's), else the task's defaults
    (configs/<task>.yaml) for a model nlpcli did not train, their --max-length within the model's positions."""
    from nlpcli.sources.models import config_positions, pretrained_config, settings_source

    saved = settings_source(model)
    if saved is not None:
        return saved_config(cls, saved.parent), True
    defaults = resolve_config(cls, task_name)
    positions = config_positions(pretrained_config(model))
    if defaults.max_length and positions and defaults.max_length > positions:  # the defaults' are for another model
        defaults = dataclasses.replace(defaults, max_length=positions)
    return defaults, False


def preset_layer(model: str, task_name: str) -> tuple[dict[str, Any], Path]:
    """The defaults of model preset `model` for task `task_name` (configs/presets/<model>.yaml: its keys, then
    those of its `tasks: {task_name: ...}` section) and that file; empty for a model that is no preset (a hub id, a
    folder), or a preset without defaults of its own."""
    path = PRESET_DIR / f"{model}.yaml"
    if not model.isidentifier() or not path.is_file():
        return {}, path
    values = read_yaml(path)
    by_task = values.pop(PRESET_TASKS_KEY, None) or {}
    return {**values, **(by_task.get(task_name) or {})}, path
