"""Reading a YAML file of config keys (task defaults, presets, --config, a run's saved settings): a mapping
with `-` read as `_` in its keys, or one UserError that names the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nlpcli.errors import UserError


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
