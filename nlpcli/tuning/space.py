"""A search space: which config keys a study varies, and how, in Optuna's distributions (`float` and `int`, each with
`low`, `high` and optionally `log` or `step`; `categorical` with `choices`). Read from a --space YAML file, or made
for a task from its resolved configuration (`default_space`); checked against the task's config keys (each bound and
choice as `--set` would check it) before anything runs; printed back in the same format (`space_yaml`); sampled for
a trial (`sample`). Optuna itself is not imported here: a trial is anything with `suggest_float`, `suggest_int` and
`suggest_categorical`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nlpcli.config import RunConfig
from nlpcli.config_fields import base_type, field_type
from nlpcli.config_files import read_yaml
from nlpcli.config_values import check_bounds, coerce
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.run_folder import RUN_ONLY_KEYS
from nlpcli.tasks.base import Task

KINDS = {"float": ("low", "high", "log", "step"), "int": ("low", "high", "log", "step"), "categorical": ("choices",)}
NOT_SEARCHED = (*RUN_ONLY_KEYS, "eval_only", "push_to_hub")  # keys of what a trial is, not of how it trains
LR_DECADES = 1.0  # the default learning-rate range: this many decades either side of the configured one
WARMUP_RATIO_HIGH = 0.2
WEIGHT_DECAY_HIGH = 0.1  # or twice the configured weight decay, when that is higher


@dataclass(frozen=True)
class Param:
    """One searched config key and its distribution."""

    name: str
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def as_yaml(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"type": self.kind, "choices": list(self.choices)}
        found: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            found["log"] = True
        if self.step is not None:
            found["step"] = self.step
        return found

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


Space = dict[str, Param]  # in the order it was written


def sample(space: Space, trial: Any) -> dict[str, Any]:
    """One value per searched key, drawn by `trial` (an Optuna trial)."""
    return {name: param.suggest(trial) for name, param in space.items()}


def space_yaml(space: Space) -> str:
    """The space as a --space file has it, one key per line."""
    return "".join(f"{name}: " + yaml.safe_dump(param.as_yaml(), sort_keys=False, default_flow_style=True,
                                                 width=10**6) for name, param in space.items())


def key_lines(path: Path) -> dict[str, int]:
    """The line of each top-level key of a YAML mapping file (for messages); empty when it cannot tell."""
    try:
        node = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value).replace("-", "_"): key.start_mark.line + 1 for key, _ in node.value}


def read_space(path: Path, task: Task) -> Space:
    """The space a --space file describes, checked (exit 2 naming the file, line and key otherwise)."""
    lines = key_lines(path)
    spec = read_yaml(path)
    if not spec:
        raise UserError(f"--space {path}: no options to search.",
                        hint="Give one option per line, e.g. learning_rate: {type: float, low: 1e-5, high: 1e-3, "
                             "log: true}.")
    return {name: parse_param(task, name, value, f"{path}, line {lines[name]}" if name in lines else str(path))
            for name, value in spec.items()}


def parse_param(task: Task, name: str, spec: Any, source: str) -> Param:
    """One key's distribution, refused (UserError naming `source` and the key) unless it can be sampled and every
    value it can give is a valid value of the key."""
    cls = task.config_class
    fields = {f.name for f in dataclasses.fields(cls)}
    where = f"{source}: {name}"
    if name not in fields or name in task.unused_options:
        raise UserError(f"{where}: unknown option: {task.name} has no config key '{name}'.",
                        hint=f"nlpcli config {task.name} lists its keys.")
    if name in NOT_SEARCHED:
        raise UserError(f"{where}: says what a trial is, not how it trains; it cannot be searched.")
    if not isinstance(spec, dict) or "type" not in spec:
        raise UserError(f"{where}: expected a distribution such as {{type: float, low: 1e-5, high: 1e-3, log: true}} "
                        f"or {{type: categorical, choices: [...]}}, got {spec!r}.")
    kind = str(spec["type"])
    if kind not in KINDS:
        raise UserError(f"{where}: unknown distribution type '{kind}': one of {', '.join(KINDS)}.")
    extra = [key for key in spec if key != "type" and key not in KINDS[kind]]
    if extra:
        raise UserError(f"{where}: a {kind} distribution takes {', '.join(KINDS[kind])}; not {', '.join(extra)}.")
    value_type, _ = base_type(field_type(cls, name))
    if kind == "categorical":
        return _categorical(cls, name, spec, value_type, where)
    if value_type not in (int, float) or (kind == "float" and value_type is int):
        fits = "int or categorical" if value_type is int else "categorical"
        raise UserError(f"{where}: a {kind} distribution does not fit this option (it takes "
                        f"{getattr(value_type, '__name__', value_type)} values): use type {fits}.")
    return _numeric(cls, name, spec, kind, where)


def _categorical(cls: type, name: str, spec: dict[str, Any], value_type: Any, where: str) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise UserError(f"{where}: a categorical distribution needs a non-empty list of choices, got {choices!r}.")
    if value_type not in (bool, int, float, str):
        raise UserError(f"{where}: this option takes {getattr(value_type, '__name__', value_type)} values, which a "
                        "search cannot vary.")
    for choice in choices:
        if not isinstance(choice, bool | int | float | str) or (isinstance(choice, bool) and value_type is not bool):
            raise UserError(f"{where}: choice {choice!r} is not a {value_type.__name__} value.")
        coerce(cls, name, choice, where)  # the field's type, choices and range
    if len(set(map(repr, choices))) < len(choices):
        raise UserError(f"{where}: choices {choices} repeat a value.")
    return Param(name, "categorical", choices=tuple(coerce(cls, name, choice, where) for choice in choices))


def _numeric(cls: type, name: str, spec: dict[str, Any], kind: str, where: str) -> Param:
    bounds = {}
    for end in ("low", "high"):
        value = spec.get(end)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UserError(f"{where}: '{end}' must be a number, got {value!r}.")
        if kind == "int" and not float(value).is_integer():
            raise UserError(f"{where}: an int distribution needs whole numbers; '{end}' is {value}.")
        check_bounds(cls, name, value, f"{where} ({end})")
        bounds[end] = int(value) if kind == "int" else float(value)
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise UserError(f"{where}: empty range: low {low} is above high {high}.")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise UserError(f"{where}: 'log' must be true or false, got {log!r}.")
    if log and low <= 0:
        raise UserError(f"{where}: a log distribution needs low above 0, got {low}.")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise UserError(f"{where}: 'step' must be a number above 0, got {step!r}.")
        if log:
            raise UserError(f"{where}: 'log' and 'step' cannot be combined (Optuna samples one or the other).")
        if kind == "int" and not float(step).is_integer():
            raise UserError(f"{where}: an int distribution needs a whole 'step', got {step}.")
        step = int(step) if kind == "int" else float(step)
    if low == high:
        warn(f"{where}: low and high are both {low}: every trial gets that value.")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def default_space(task: Task, cfg: RunConfig, fixed: set[str]) -> Space:
    """The space `nlpcli tune TASK` searches without --space, around `cfg` (the task's resolved configuration):
    the learning rate log-uniform a decade either side of it, the warm-up (its ratio, or its steps when the
    configuration counts steps), the weight decay, the batch size halved or quartered (never above the configured
    one, which is known to fit), and the task's own knobs (`Task.search_space`). Keys in `fixed` (what the command
    line set) are left out: what you set is fixed, the rest is searched."""
    spec: dict[str, dict[str, Any]] = {
        "learning_rate": {"type": "float", "low": _round(cfg.learning_rate / 10**LR_DECADES),
                          "high": _round(cfg.learning_rate * 10**LR_DECADES), "log": True},
    }
    if cfg.warmup_steps > 0:
        spec["warmup_steps"] = {"type": "int", "low": 0, "high": 2 * cfg.warmup_steps}
    else:
        spec["warmup_ratio"] = {"type": "float", "low": 0.0, "high": WARMUP_RATIO_HIGH}
    spec["weight_decay"] = {"type": "float", "low": 0.0, "high": _round(max(WEIGHT_DECAY_HIGH, 2 * cfg.weight_decay))}
    sizes = sorted({max(1, cfg.batch_size // 4), max(1, cfg.batch_size // 2), cfg.batch_size})
    if len(sizes) > 1:
        spec["batch_size"] = {"type": "categorical", "choices": sizes}
    spec.update(task.search_space)
    return {name: parse_param(task, name, value, f"the default {task.name} space")
            for name, value in spec.items() if name not in fixed}
