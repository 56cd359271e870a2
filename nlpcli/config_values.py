"""A config value from YAML or the command line, made the field's type: booleans, lists, KEY=VALUE mappings,
numbers; then checked against the field's choices and range. Every failure is a UserError naming the key (or
option) and where the value came from."""

from __future__ import annotations

import math
import typing
from typing import Any

from nlpcli.config_args import key_values
from nlpcli.config_fields import base_type, field_type, flag, is_repeatable, metadata
from nlpcli.errors import UserError

YES_NO = {"true": "yes", "1": "yes", "on": "yes", "yes": "yes", "false": "no", "0": "no", "off": "no", "no": "no"}

BOUND_CHECKS = {
    "at_least": (lambda value, bound: value >= bound, "at least"),
    "above": (lambda value, bound: value > bound, "above"),
    "at_most": (lambda value, bound: value <= bound, "at most"),
    "below": (lambda value, bound: value < bound, "below"),
}


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"  # 4294967295, not 4.29497e+09


def allowed_range(bounds: dict[str, float]) -> str:
    return " and ".join(f"{BOUND_CHECKS[kind][1]} {_number(bound)}" for kind, bound in bounds.items())


def check_bounds(cls: type, key: str, value: Any, source: str) -> None:
    """A UserError naming the option and its allowed range when a number is outside it (or not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{source}: {flag(key)} must be a finite number, got {value}.")
    bounds = metadata(cls, key).get("bounds") or {}
    for kind, bound in bounds.items():
        test, _ = BOUND_CHECKS[kind]
        if not test(value, bound):
            raise UserError(f"{source}: {flag(key)} must be {allowed_range(bounds)}, got {_number(value)}.")


def coerce(cls: type, key: str, value: Any, source: str) -> Any:
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
            return key_values(value, metadata(cls, key).get("cli_flag") or flag(key), source)
        if typing.get_origin(hint) is list:
            if isinstance(value, str):
                items = [value] if is_repeatable(cls, key) else value.split(",")
            else:
                items = list(value)
            return [str(item).strip() for item in items if str(item).strip()]
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        converted = hint(value)
    except (TypeError, ValueError):
        type_name = getattr(hint, "__name__", str(hint))
        raise UserError(f"{source}: '{key}' must be {type_name}, got {value!r}.") from None
    choices = metadata(cls, key).get("choices")
    if choices and converted not in choices:
        raise UserError(f"{source}: '{key}' must be one of {', '.join(choices)}; got {converted!r}.")
    check_bounds(cls, key, converted, source)
    return converted
