"""A config field's metadata: `option` declares a field of `RunConfig` (or of a task's subclass) with its help
text, allowed values or range, and how the command line spells it; the readers here answer what it recorded
and which type the field holds. Works on any dataclass whose fields `option` made."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import field
from typing import Any


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


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def metadata(cls: type, key: str) -> typing.Mapping[str, Any]:
    """What `option` recorded for config key `key` (help, choices, bounds, ...)."""
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == key)


def is_repeatable(cls: type, key: str) -> bool:
    return bool(metadata(cls, key).get("repeatable"))


def field_type(cls: type, name: str) -> Any:
    return _type_hints(cls)[name]


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A config class's field types, evaluated once per class (every CLI option and every coerced value asks)."""
    return typing.get_type_hints(cls)


def base_type(hint: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for hints like `int | None` or `list[str] | None`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False
