"""What to suggest for a name nobody knows: the known names closest to it, by difflib's similarity ratio, the
same way for every source of names (command-line options, `--set` and config-file keys, `--trainer-arg` keys,
`--optim` names). Spellings are compared without their leading dashes and with `-` and `_` alike, so
`--lerning-rate`, `lerning_rate` and `--lerning_rate` all find `learning_rate` / `--learning-rate`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6  # difflib's default: below it a "suggestion" is noise (`--do-train` is not `--streaming`)
SHOWN = 3
PREFIX = 3  # a typed name this long or longer also suggests the names that start with it


def _plain(name: str) -> str:
    return name.lstrip("-").replace("-", "_").lower()


def closest(name: str, known: Iterable[str], limit: int = SHOWN) -> list[str]:
    """The known names most like `name`, best first, spelled as `known` spells them (at most `limit`): those
    that start with it (`--train` -> `--train-file`; from 3 letters on), then the closest by difflib's ratio."""
    by_plain: dict[str, str] = {}
    for candidate in known:
        by_plain.setdefault(_plain(candidate), candidate)
    typed = _plain(name)
    similar = difflib.get_close_matches(typed, list(by_plain), n=len(by_plain), cutoff=CUTOFF)
    starting = [plain for plain in by_plain if len(typed) >= PREFIX and plain.startswith(typed) and plain != typed]
    ranked = sorted(starting, key=lambda plain: similar.index(plain) if plain in similar else len(similar))
    found = ranked + [plain for plain in similar if plain not in ranked]
    return [by_plain[plain] for plain in found[:limit]]


def did_you_mean(name: str, known: Iterable[str], otherwise: str | None = None) -> str | None:
    """`Did you mean a, b?` for the names closest to `name`; `otherwise` when none is close."""
    found = closest(name, known)
    return f"Did you mean {', '.join(found)}?" if found else otherwise
