"""One typed run configuration: configs/<task>.yaml < --config FILE < CLI options / --set key=value.

Every field of `RunConfig` (and of a task's subclass of it) is a config key, a YAML key and a CLI
option (`learning_rate` <-> `--learning-rate`). This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlpcli.errors import UserError


def _config_dir() -> Path:
    """configs/ beside the package (source checkout, editable install), else where a wheel put it."""
    beside = Path(__file__).resolve().parent.parent / "configs"
    return beside if beside.is_dir() else Path(sys.prefix) / "share" / "nlpcli" / "configs"


CONFIG_DIR = _config_dir()


# transformers' SchedulerType names that need no arguments beyond warm-up and training steps
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its help text (shown by `--help`) and, optionally, its allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class RunConfig:
    """The keys every task shares. Task modules subclass this to add their own."""

    model: str = option("bert-base-cased", "Hub id, local model folder, or preset (tiny, minilm).")
    dataset: str | None = option(None, "Hub data set name, or 'sample' for the bundled sample.")
    dataset_config: str | None = option(None, "Hub data set configuration name.")
    validation_dataset: str | None = option(
        None, "With --dataset: a separate hub data set to validate on (its 'validation' split, else its only one)."
    )
    train_file: str | None = option(None, "Local training file (json, jsonl, csv, txt, conll).")
    streaming: bool = option(False, "Read the training split while training instead of loading it first (needs "
                                    "--max-steps; tasks that support it).")
    validation_file: str | None = option(None, "Local validation file (same formats).")
    field: str | None = option(None, "JSON key holding the records (e.g. 'data' for nested files).")
    text_column: str | None = option(None, "Column holding the input text/tokens.")
    label_column: str | None = option(None, "Column holding the labels.")
    output_dir: str | None = option(None, "Where to write the model and metrics [runs/<task>-<time>].")
    loop: str = option("trainer", "Training loop.", choices=("trainer", "accelerate"))
    epochs: float = option(3.0, "Number of training epochs.")
    max_steps: int = option(-1, "Stop after this many optimizer steps (overrides epochs when > 0).")
    learning_rate: float = option(2e-5, "Peak learning rate for AdamW.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    warmup_ratio: float = option(0.0, "Fraction of steps used for linear warm-up.")
    warmup_steps: int = option(0, "Warm-up steps (overrides --warmup-ratio when > 0).")
    lr_scheduler: str = option("linear", "Learning-rate schedule after warm-up (transformers' get_scheduler names).",
                               choices=LR_SCHEDULERS)
    eval_steps: int | None = option(None, "Evaluate every N optimizer steps [at each epoch's end].")
    batch_size: int = option(8, "Training batch size per device.")
    eval_batch_size: int | None = option(None, "Evaluation batch size per device [batch_size].")
    gradient_accumulation_steps: int = option(1, "Accumulate gradients over this many batches.")
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this value (0: no clipping).")
    max_length: int | None = option(None, "Truncate inputs to this many tokens [model maximum].")
    max_train_samples: int | None = option(None, "Use only the first N training examples.")
    max_eval_samples: int | None = option(None, "Use only the first N evaluation examples.")
    seed: int = option(42, "Random seed.")
    precision: str = option(
        "auto", "auto: fp16 on CUDA, fp32 on CPU.", choices=("auto", "fp32", "fp16", "bf16")
    )
    resume: bool = option(False, "Continue from the last checkpoint in the output folder.")
    eval_only: bool = option(False, "Evaluate --model on the validation set without training.")
    logging_steps: int = option(50, "Log the training loss every N steps.")
    save_total_limit: int | None = option(2, "Keep at most N checkpoints.")
    save_steps: int | None = option(None, "Also checkpoint every N optimizer steps [only at each epoch's end].")
    preset_vocab_size: int = option(2000, "Vocabulary size of the tokenizer the tiny preset trains.")

    @property
    def per_device_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size


def config_fields(cls: type[RunConfig]) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


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
    try:
        if hint is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes", "on")
            return bool(value)
        if typing.get_origin(hint) is list:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(item).strip() for item in items if str(item).strip()]
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        converted = hint(value)
    except (TypeError, ValueError):
        type_name = getattr(hint, "__name__", str(hint))
        raise UserError(f"{source}: '{key}' must be {type_name}, got {value!r}.") from None
    choices = next(f.metadata.get("choices") for f in dataclasses.fields(cls) if f.name == key)
    if choices and converted not in choices:
        raise UserError(f"{source}: '{key}' must be one of {', '.join(choices)}; got {converted!r}.")
    return converted


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"Config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(data).__name__}.")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_set_options(pairs: list[str]) -> dict[str, str]:
    """`--set key=value` pairs to a dict; values stay strings until coerced."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {pair!r}.")
        parsed[key.strip().replace("-", "_")] = value
    return parsed


def _apply(cls: type[RunConfig], values: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in layer.items():
        if key not in known:
            raise UserError(
                f"{source}: unknown config key '{key}'.", hint=f"Known keys: {', '.join(sorted(known))}."
            )
        values[key] = coerce(cls, key, value, source)


def resolve_config(
    cls: type[RunConfig],
    task_name: str,
    config_file: str | Path | None = None,
    cli_values: dict[str, Any] | None = None,
    set_values: dict[str, str] | None = None,
) -> RunConfig:
    """Merge the layers in order of precedence: task defaults < --config < --set < CLI options."""
    values: dict[str, Any] = {}
    defaults = CONFIG_DIR / f"{task_name}.yaml"
    if defaults.is_file():
        _apply(cls, values, read_yaml(defaults), str(defaults))
    if config_file:
        _apply(cls, values, read_yaml(Path(config_file)), str(config_file))
    _apply(cls, values, set_values or {}, "--set")
    _apply(cls, values, {k: v for k, v in (cli_values or {}).items() if v is not None}, "command line")
    return cls(**values)


def save_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
