"""One typed run configuration: configs/<task>.yaml < configs/presets/<preset>.yaml < --config FILE < --set
key=value < CLI options.

Every field of `RunConfig` (and of a task's subclass of it) is a config key, a YAML key and a CLI
option (`learning_rate` <-> `--learning-rate`). This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nlpcli import layout, run_folder
from nlpcli.config_files import read_yaml
from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import EVAL_PREFIX, higher_is_better


def _config_dir() -> Path:
    """The task defaults, shipped as package data (`nlpcli/configs`, a link to the repository's top-level
    `configs/` in a checkout), so every install finds them: editable, wheel, `pip install --target`, `--user`."""
    return Path(str(resources.files("nlpcli").joinpath("configs")))


CONFIG_DIR = _config_dir()
PRESET_DIR = CONFIG_DIR / "presets"  # a model preset's own defaults (e.g. a random-init model's learning rate)
DATA_SOURCE_KEYS = ("dataset", "train_file", "validation_file")  # which data a run reads


# transformers' SchedulerType names that need no arguments beyond warm-up and training steps
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")


STRATEGIES = ("epoch", "steps", "no")  # when to evaluate or save
DEFAULT_SAVE_STEPS = 500  # the Trainer's
MAX_SEED = 2**32 - 1  # NumPy's seeds (transformers.set_seed seeds NumPy too) are 0 .. 2**32 - 1
# TrainingArguments fields that are nlpcli options: `--trainer-arg KEY=VALUE` sets the option (both loops honour it)
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
}

RESUME_CHOICES = ("no", "yes", "auto")
HUB_STRATEGIES = ("end", "every_save")
YES_NO = {"true": "yes", "1": "yes", "on": "yes", "yes": "yes", "false": "no", "0": "no", "off": "no", "no": "no"}


def option(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    repeatable: bool = False,
    data_bound: bool = False,
    cli_flag: str | None = None,
) -> Any:
    """A config field with its help text (shown by `--help`) and, optionally, its allowed values or range
    (checked whatever layer the value comes from, before anything runs).

    `repeatable` (list fields only): the CLI option may be given several times and each string value is
    one item, commas included (`--filter col=a,b --filter other=c`), instead of a comma-separated list.
    `data_bound`: the value describes the task's default data set (its configurations, columns, filters);
    a value from configs/<task>.yaml is dropped when another layer picks other data (see `resolve_config`).
    `cli_flag`: the command-line flag when it is not the key's (`--trainer-arg` for `trainer_args`).
    """
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    metadata = {"help": help, "choices": choices, "repeatable": repeatable, "data_bound": data_bound,
                "cli_flag": cli_flag, "bounds": {k: v for k, v in bounds.items() if v is not None}}
    return field(default=default, metadata=metadata)


BOUND_CHECKS = {
    "at_least": (lambda value, bound: value >= bound, "at least"),
    "above": (lambda value, bound: value > bound, "above"),
    "at_most": (lambda value, bound: value <= bound, "at most"),
    "below": (lambda value, bound: value < bound, "below"),
}


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"  # 4294967295, not 4.29497e+09


def allowed_range(bounds: dict[str, float]) -> str:
    return " and ".join(f"{BOUND_CHECKS[kind][1]} {_number(bound)}" for kind, bound in bounds.items())


def _metadata(cls: type[RunConfig], key: str) -> typing.Mapping[str, Any]:
    """What `option` recorded for config key `key` (help, choices, bounds, ...)."""
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == key)


def check_bounds(cls: type[RunConfig], key: str, value: Any, source: str) -> None:
    """A UserError naming the option and its allowed range when a number is outside it (or not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{source}: {flag(key)} must be a finite number, got {value}.")
    bounds = _metadata(cls, key).get("bounds") or {}
    for kind, bound in bounds.items():
        test, _ = BOUND_CHECKS[kind]
        if not test(value, bound):
            raise UserError(f"{source}: {flag(key)} must be {allowed_range(bounds)}, got {_number(value)}.")


@dataclass
class RunConfig:
    """The keys every task shares. Task modules subclass this to add their own."""

    model: str = option("bert-base-cased", "Hub id, local model folder, or preset (tiny, minilm).")
    dataset: str | None = option(None, "Hub data set name, or 'sample' for the bundled sample.")
    dataset_config: list[str] | None = option(
        None, "Hub data set configuration name; several (en,es) are concatenated split by split, shuffled with --seed.",
        data_bound=True,
    )
    dataset_revision: str | None = option(None, "Hub data set revision: branch, tag or commit.", data_bound=True)
    data_dir: str | None = option(None, "Folder inside the hub data set repository to load.", data_bound=True)
    validation_dataset: str | None = option(
        None, "With --dataset: a separate hub data set to validate on (its 'validation' split, else its only one).",
        data_bound=True,  # another --dataset must not be validated on the default data set's companion
    )
    train_file: str | None = option(None, "Local training file (json, jsonl, csv, txt, conll).")
    streaming: bool = option(False, "Read the training split while training instead of loading it first (needs "
                                    "--max-steps; tasks that support it).")
    validation_file: str | None = option(None, "Local validation file (same formats).")
    test_file: str | None = option(
        None, "After training, run the final model on this file (same formats): test_predictions.jsonl, and test_* "
        "metrics when it has labels."
    )
    do_predict: bool = option(False, "After training, run the final model on the data set's test split, as "
                                     "--test-file does.")
    field: str | None = option(
        None, "JSON key holding the records (e.g. 'data' for nested files).", data_bound=True
    )
    text_column: str | None = option(None, "Column holding the input text/tokens.", data_bound=True)
    label_column: str | None = option(None, "Column holding the labels.", data_bound=True)
    filter: list[str] | None = option(
        None, "Keep only rows whose COLUMN is one of the values: COLUMN=V1,V2 (repeatable).", repeatable=True,
        data_bound=True,
    )
    output_dir: str | None = option(None, "Where to write the model and metrics [runs/<task>-<time>].")
    loop: str = option("trainer", "Training loop.", choices=("trainer", "accelerate"))
    epochs: float = option(3.0, "Number of training epochs.", at_least=0)
    max_steps: int = option(-1, "Stop after this many optimizer steps (overrides epochs when > 0).", at_least=-1)
    learning_rate: float = option(2e-5, "Peak learning rate for AdamW.", above=0)
    weight_decay: float = option(0.0, "AdamW weight decay.", at_least=0)
    warmup_ratio: float = option(0.0, "Fraction of steps used for linear warm-up.", at_least=0, below=1)
    warmup_steps: int = option(0, "Warm-up steps (overrides --warmup-ratio when > 0).", at_least=0)
    lr_scheduler: str = option("linear", "Learning-rate schedule after warm-up (transformers' get_scheduler names).",
                               choices=LR_SCHEDULERS)
    eval_strategy: str | None = option(
        None, "When to evaluate while training [steps with --eval-steps, else epoch].", choices=STRATEGIES
    )
    eval_steps: int | None = option(
        None, "With --eval-strategy steps: evaluate every N optimizer steps [--logging-steps].", at_least=1
    )
    batch_size: int = option(8, "Training batch size per device.", at_least=1)
    eval_batch_size: int | None = option(None, "Evaluation batch size per device [batch_size].", at_least=1)
    gradient_accumulation_steps: int = option(1, "Accumulate gradients over this many batches.", at_least=1)
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this value (0: no clipping).", at_least=0)
    max_length: int | None = option(None, "Truncate inputs to this many tokens [model maximum].", at_least=1)
    max_train_samples: int | None = option(None, "Use only the first N training examples.", at_least=1)
    max_eval_samples: int | None = option(None, "Use only the first N evaluation examples.", at_least=1)
    seed: int = option(42, "Random seed.", at_least=0, at_most=MAX_SEED)
    split_seed: int | None = option(
        None, "Seed of the 90/10 split when the data has no validation split [seed].", data_bound=True, at_least=0,
        at_most=MAX_SEED,
    )
    precision: str = option(
        "auto", "auto: fp16 on CUDA, fp32 on CPU.", choices=("auto", "fp32", "fp16", "bf16")
    )
    resume: str = option(
        "no", "yes (or a bare --resume): continue from the newest complete checkpoint in the output folder; auto: "
        "the same when there is one, else start a new run (one command line starts and restarts a job).",
        choices=RESUME_CHOICES,
    )
    overwrite: bool = option(False, "Delete what the output folder holds (a finished run, checkpoints) first.")
    eval_only: bool = option(False, "Evaluate --model on the validation set without training.")
    logging_steps: int = option(50, "Log the training loss every N steps.", at_least=1)
    save_total_limit: int | None = option(2, "Keep at most N checkpoints.", at_least=1)
    save_strategy: str | None = option(
        None, "When to write a checkpoint [steps with --save-steps, else epoch]; the final model is saved anyway.",
        choices=STRATEGIES,
    )
    save_steps: int | None = option(
        None, "With --save-strategy steps: checkpoint every N optimizer steps [500].", at_least=1
    )
    load_best_model_at_end: bool = option(
        False, "Keep the best evaluated checkpoint (by --metric-for-best-model) as the output model."
    )
    metric_for_best_model: str = option("eval_loss", "Metric that picks the best model and drives early stopping.")
    greater_is_better: bool | None = option(None, "Whether a higher --metric-for-best-model is better [no for losses "
                                                  "and perplexity, else yes].")
    early_stopping_patience: int | None = option(
        None, "Stop after N evaluations in a row without improvement of --metric-for-best-model.", at_least=1
    )
    report_to: list[str] | None = option(
        None, "Also log the training to these trackers: none, or some of tensorboard (<output>/tensorboard), wandb, "
              "mlflow, trackio, comet_ml, clearml, dvclive, swanlab (comma-separated; a YAML list).",
    )
    optim: str = option("adamw_torch_fused", "Optimizer, by transformers' OptimizerNames (adamw_torch, "
                                             "adamw_torch_fused, adafactor, ...).")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass: less memory, "
                                                 "more compute.")
    torch_compile: bool = option(False, "Compile the model with torch.compile before training.")
    group_by_length: bool = option(False, "Batch training inputs of similar length together (less padding).")
    trainer_args: dict[str, Any] | None = option(
        None, "Set a transformers TrainingArguments field: KEY=VALUE (repeatable; a trainer_args: mapping in YAML). "
              "Fields nlpcli has an option for set that option.", repeatable=True, cli_flag="--trainer-arg",
    )
    preset_vocab_size: int = option(2000, "Vocabulary size of the tokenizer the tiny preset trains.", at_least=8)
    push_to_hub: bool = option(False, "Upload the output folder to the Hugging Face Hub when training ends (needs "
                                      "a token: `hf auth login` or HF_TOKEN).")
    hub_model_id: str | None = option(None, "Hub repository to push to: NAME or OWNER/NAME [the output folder's name].")
    hub_private: bool = option(False, "Create the hub repository private.")
    hub_strategy: str = option("end", "With --push-to-hub: end (the final folder), or every_save (also each "
                                      "checkpoint, to last-checkpoint/ in the repository).", choices=HUB_STRATEGIES)

    @property
    def per_device_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    @property
    def evaluation_strategy(self) -> str:
        return self._strategy(self.eval_strategy, self.eval_steps)

    @property
    def evaluation_interval(self) -> int:
        """Optimizer steps between evaluations under the steps strategy (the Trainer's default: logging steps)."""
        return self.eval_steps or self.logging_steps

    @property
    def saving_strategy(self) -> str:
        return self._strategy(self.save_strategy, self.save_steps)

    def _strategy(self, chosen: str | None, steps: int | None) -> str:
        """An --eval-strategy / --save-strategy: as given, else steps when its --*-steps is, else epoch; none with
        --eval-only."""
        if self.eval_only:
            return "no"
        return chosen or ("steps" if steps else "epoch")

    @property
    def saving_interval(self) -> int:
        return self.save_steps or DEFAULT_SAVE_STEPS

    @property
    def best_metric_key(self) -> str:
        return self.metric_for_best_model if self.metric_for_best_model.startswith(EVAL_PREFIX) else (
            EVAL_PREFIX + self.metric_for_best_model)

    @property
    def higher_is_better(self) -> bool:
        if self.greater_is_better is not None:
            return self.greater_is_better
        return higher_is_better(self.best_metric_key)


def field_type(cls: type[RunConfig], name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def base_type(hint: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for hints like `int | None` or `list[str] | None`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def coerce(cls: type[RunConfig], key: str, value: Any, source: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or fail naming the key and where it came from."""
    hint, optional = base_type(field_type(cls, key))
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise UserError(f"{source}: '{key}' cannot be empty.")
    if key == "resume" and (isinstance(value, bool) or str(value).lower() in YES_NO):
        value = ("yes" if value else "no") if isinstance(value, bool) else YES_NO[str(value).lower()]
    try:
        if hint is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes", "on")
            return bool(value)
        if typing.get_origin(hint) is dict:
            return _key_values(value, _metadata(cls, key).get("cli_flag") or flag(key), source)
        if typing.get_origin(hint) is list:
            if isinstance(value, str):
                items = [value] if _is_repeatable(cls, key) else value.split(",")
            else:
                items = list(value)
            return [str(item).strip() for item in items if str(item).strip()]
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        converted = hint(value)
    except (TypeError, ValueError):
        type_name = getattr(hint, "__name__", str(hint))
        raise UserError(f"{source}: '{key}' must be {type_name}, got {value!r}.") from None
    choices = _metadata(cls, key).get("choices")
    if choices and converted not in choices:
        raise UserError(f"{source}: '{key}' must be one of {', '.join(choices)}; got {converted!r}.")
    check_bounds(cls, key, converted, source)
    return converted


def _key_values(value: Any, option_name: str, source: str) -> dict[str, Any]:
    """A mapping from YAML, or KEY=VALUE strings from the command line (values read as YAML scalars)."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    parsed: dict[str, Any] = {}
    for name, text in _key_value_pairs([value] if isinstance(value, str) else list(value),
                                       f"{source}: {option_name}").items():
        try:
            parsed[name] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            parsed[name] = text
    return parsed


def _is_repeatable(cls: type[RunConfig], key: str) -> bool:
    return bool(_metadata(cls, key).get("repeatable"))


def _key_value_pairs(pairs: list[Any], option_name: str) -> dict[str, str]:
    """KEY=VALUE strings to a dict (keys with `_` for `-`, values still strings), or a UserError naming the
    option and the pair."""
    parsed = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option_name} expects KEY=VALUE, got {pair!r}.")
        parsed[key.strip().replace("-", "_")] = value
    return parsed


def parse_set_options(pairs: list[str]) -> dict[str, str]:
    """`--set key=value` pairs to a dict; values stay strings until coerced."""
    return _key_value_pairs(pairs, "--set")


def _trainer_args_as_options(cls: type[RunConfig], layer: dict[str, Any], source: str) -> dict[str, Any]:
    """The layer with its `trainer_args` that name an nlpcli option moved onto that option (so both loops honour
    them); a field given both ways in one layer is refused."""
    if layer.get("trainer_args") is None:
        return layer
    out = {k: v for k, v in layer.items() if k != "trainer_args"}
    passed = {}
    for name, value in coerce(cls, "trainer_args", layer["trainer_args"], source).items():
        option_key = TRAINER_ARG_OPTIONS.get(name)
        if option_key is None:
            passed[name] = value
        elif out.get(option_key) is not None:
            raise UserError(f"{source}: {flag(option_key)} is given twice (also as --trainer-arg {name}); give one.")
        else:
            out[option_key] = value
    if passed:
        out["trainer_args"] = passed
    return out


def _apply(cls: type[RunConfig], values: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in _trainer_args_as_options(cls, layer, source).items():
        if key not in known:
            raise UserError(
                f"{source}: unknown config key '{key}'.", hint=f"Known keys: {', '.join(sorted(known))}."
            )
        coerced = coerce(cls, key, value, source)
        if isinstance(coerced, dict) and isinstance(values.get(key), dict):
            coerced = {**values[key], **coerced}  # mappings (trainer_args) merge across layers
        values[key] = coerced


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
    path = Path(str(model)) / layout.RUN_CONFIG
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
    defaults_file = CONFIG_DIR / f"{task_name}.yaml"
    defaults = read_yaml(defaults_file) if defaults_file.is_file() else {}
    _apply(cls, values, defaults, str(defaults_file))
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


TASK_DEFAULTS = "task defaults"
ORIGINS = "_nlpcli_origins"  # where `resolve_config` keeps each value's source (not a config key)
SOURCE_ORDER = ("task defaults", "preset", "saved run", "--config", "--set", "command line")


def preset_layer(model: str) -> tuple[dict[str, Any], Path]:
    """The defaults of model preset `model` (configs/presets/<model>.yaml) and that file; empty for a model
    that is no preset (a hub id, a folder), or a preset without defaults of its own."""
    path = PRESET_DIR / f"{model}.yaml"
    if not model.isidentifier() or not path.is_file():
        return {}, path
    return read_yaml(path), path


def value_origins(cfg: RunConfig) -> dict[str, str]:
    """Which layer set each key `resolve_config` took from a layer: 'task defaults', 'preset tiny',
    '--config FILE', '--set' or 'command line'."""
    return dict(cfg.__dict__.get(ORIGINS, {}))


def non_default_values(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """The values that differ from the built-in defaults, grouped by where they came from (in order of
    precedence; 'set by nlpcli' for a value the run changed itself)."""
    origins = value_origins(cfg)
    grouped: dict[str, dict[str, Any]] = {}
    for item in dataclasses.fields(cfg):
        value = getattr(cfg, item.name)
        if value == item.default:
            continue
        grouped.setdefault(origins.get(item.name, "set by nlpcli"), {})[item.name] = value

    def rank(source: str) -> int:
        return next((i for i, known in enumerate(SOURCE_ORDER) if source.startswith(known)), len(SOURCE_ORDER))

    return dict(sorted(grouped.items(), key=lambda item: rank(item[0])))


def origin_lines(cfg: RunConfig) -> list[str]:
    """One line per source for the run header: `preset tiny: learning_rate=0.001 weight_decay=0.01`."""
    return [f"{source}: " + " ".join(f"{key}={_shown(value)}" for key, value in values.items())
            for source, values in non_default_values(cfg).items()]


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def check_model_selection(cfg: RunConfig) -> None:
    """Best-model selection needs a checkpoint at every evaluation; early stopping needs evaluations."""
    if cfg.eval_only:
        return
    evaluation, saving = cfg.evaluation_strategy, cfg.saving_strategy
    if cfg.early_stopping_patience and evaluation == "no":
        raise UserError("--early-stopping-patience counts evaluations: drop --eval-strategy no.")
    if not cfg.load_best_model_at_end:
        return
    if evaluation == "no":
        raise UserError("--load-best-model-at-end picks among evaluations: drop --eval-strategy no.")
    if saving != evaluation:
        raise UserError(f"--load-best-model-at-end needs a checkpoint at each evaluation: --save-strategy must be "
                        f"the --eval-strategy ({evaluation}), got {saving}.")
    if evaluation == "steps" and cfg.saving_interval % cfg.evaluation_interval:
        raise UserError(f"--load-best-model-at-end needs a checkpoint at each evaluation: --save-steps "
                        f"({cfg.saving_interval}) must be a multiple of --eval-steps ({cfg.evaluation_interval}).")


def saved_config(cls: type[RunConfig], folder: str | Path) -> RunConfig:
    """The settings a run saved beside its model (nlpcli_config.yaml), or the defaults; keys `cls` does not
    know are left out."""
    path = Path(folder) / layout.RUN_CONFIG
    saved = run_folder.saved_settings(folder) or {}
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: coerce(cls, k, v, str(path)) for k, v in saved.items() if k in known})


def resuming(cfg: RunConfig) -> bool:
    return cfg.resume != "no"


def with_resume_values(args: list[str]) -> list[str]:
    """The command line with a bare `--resume` read as `--resume yes` and `--no-resume` as `--resume no`
    (the option also takes `auto`)."""
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--no-resume":
            out += ["--resume", "no"]
        elif arg == "--resume" and (index + 1 == len(args) or args[index + 1] not in RESUME_CHOICES):
            out += ["--resume", "yes"]
        else:
            out.append(arg)
    return out


def save_config(cfg: RunConfig, path: Path, task: str | None = None) -> None:
    """The resolved configuration as YAML that `--config` reads back; `task` first when given. Written
    atomically: `predict` and `--eval-only` read it back."""
    write_text_atomic(path, config_yaml(cfg, task))


def config_yaml(cfg: RunConfig, task: str | None = None) -> str:
    values = {"task": task} if task else {}
    return yaml.safe_dump({**values, **dataclasses.asdict(cfg)}, sort_keys=False)
