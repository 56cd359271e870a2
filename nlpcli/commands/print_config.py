"""`--print-config` (on every task command) and `nlpcli config TASK`: the configuration a command line resolves to,
as YAML that `--config` reads back, each value that a layer above the built-in defaults set followed by a comment
naming that layer (`preset tiny`, `--config x.yaml`, `--set`, `command line`, ...). Which values, and their layers'
names, come from `config.stated_values`, which the run header reads too. With `--resume`, a value that the run being
resumed saved differently also says what the run has. Only configuration files are read: no data, no model,
nothing written."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from nlpcli import run_folder
from nlpcli.config import RunConfig, resuming, stated_values
from nlpcli.config_values import coerce
from nlpcli.errors import UserError

ORDER_LINE = ("# sources, lowest first: task defaults < bundled sample < preset < saved run < --config < --set < "
              "command line")


def _flow(value: Any) -> str:
    """A value as YAML in flow style (`[a, b]`, `{k: v}`), on one line unless a string holds line breaks."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")


def _yaml_line(key: str, value: Any) -> str:
    return f"{key}: {_flow(value)}"


def annotated_yaml(cfg: RunConfig, task: str, notes: dict[str, str] | None = None) -> str:
    """The resolved configuration as YAML, `task` first, each key's source (and `notes[key]`) as a comment: at the
    end of its line, or above a key that takes several lines."""
    sources, notes = stated_values(cfg), notes or {}  # what the run header names too
    lines = [_yaml_line(run_folder.TASK_KEY, task)]
    for item in dataclasses.fields(cfg):
        text = _yaml_line(item.name, getattr(cfg, item.name))
        comment = "; ".join(part for part in (sources.get(item.name), notes.get(item.name)) if part)
        if not comment:
            lines.append(text)
        elif "\n" in text:
            lines += [f"# {item.name}: {comment}", text]
        else:
            lines.append(f"{text}  # {comment}")
    return "\n".join(lines) + "\n"


def resume_notes(cfg: RunConfig) -> tuple[dict[str, str], str | None]:
    """With --resume: (key -> what the run being resumed saved, where it differs; the saved file), so the printed
    configuration shows what the resume will be checked against (runner/continuity.py decides what it may
    change). ({}, None) without --resume or a saved run."""
    from nlpcli.runner.continuity import IGNORED
    from nlpcli.runner.output_folder import output_dir_of, same_model

    folder = output_dir_of(cfg) if resuming(cfg) else None
    saved = run_folder.saved_settings(folder) if folder is not None else None
    if saved is None:
        return {}, None
    path = run_folder.settings_file(folder)
    notes = {}
    for item in dataclasses.fields(cfg):
        if item.name in IGNORED or item.name not in saved:
            continue
        try:
            then = coerce(type(cfg), item.name, saved[item.name], str(path))
        except UserError:
            then = saved[item.name]
        now = getattr(cfg, item.name)
        if not (same_model(then, now) if item.name == "model" else then == now):
            notes[item.name] = f"the run: {_flow(then)}"
    return notes, str(path)


def print_config(cfg: RunConfig, task: str) -> None:
    """Print the annotated configuration (stdout), for `--print-config` and `nlpcli config TASK`."""
    notes, saved = resume_notes(cfg)
    lines = [f"# nlpcli {task}: resolved configuration (use it with: nlpcli {task} --config FILE)", ORDER_LINE]
    if saved is not None:
        lines.append(f"# --resume: the run's settings are {Path(saved)}; a value it saved differently says "
                     f"'the run: ...' (the run refuses what a resume may not change)")
    print("\n".join(lines))
    print(annotated_yaml(cfg, task, notes), end="")
