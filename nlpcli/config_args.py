"""How the command line spells config values: `--set KEY=VALUE` and `--trainer-arg KEY=VALUE` pairs (and a
`trainer_args:` mapping in YAML), and the options that may stand alone (`--resume`, `--overfit-batch`). Values
stay as given here; `config_values.coerce` types them."""

from __future__ import annotations

from typing import Any

import yaml

from nlpcli.errors import UserError

RESUME_CHOICES = ("no", "yes", "auto")


def key_values(value: Any, option_name: str, source: str) -> dict[str, Any]:
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


BARE_OVERFIT_BATCH = 8  # the examples of a bare `--overfit-batch`


def with_bare_values(args: list[str]) -> list[str]:
    """The command line with the options that may stand alone given their value: a bare `--resume` read as
    `--resume yes` and `--no-resume` as `--resume no` (the option also takes `auto`, or a checkpoint folder: any
    value that is not an option), a bare `--overfit-batch` as `--overfit-batch 8`."""
    out: list[str] = []
    for index, arg in enumerate(args):
        bare = index + 1 == len(args) or args[index + 1].startswith("-")
        if arg == "--no-resume":
            out += ["--resume", "no"]
        elif arg == "--resume" and bare:
            out += ["--resume", "yes"]
        elif arg == "--overfit-batch" and bare:
            out += ["--overfit-batch", str(BARE_OVERFIT_BATCH)]
        else:
            out.append(arg)
    return out
