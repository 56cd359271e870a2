"""What a run folder says about itself: the task it was trained for and the settings it saved.

A run saves its resolved configuration, with its task name, as `nlpcli_config.yaml`; `saved_settings` is
the one reader of that file (a checkpoint folder is described by its run folder's). It is read back in three places:
- `--eval-only --model RUN_DIR`: the saved settings become a config layer between the task defaults and
  `--config` (task options, and the data unless a later layer names data), so a SQuAD v2 run is evaluated
  as v2 on the data it used (`config.saved_run_layer`);
- `--config RUN_DIR/nlpcli_config.yaml`: repeats the run, but not into the old folder;
- `predict`: the model (a folder, or a hub repo's own nlpcli_config.yaml) must be of the task asked for (its saved
  task, else its architecture), and predicts with the saved settings.
Keys that belong to the run that wrote the folder (its output folder, resume, overwrite) are not carried.
Beside the config keys the file records what a later `--resume` checks (`RECORD_KEYS`, never config keys): the
world size and the sha256 of the local data files of the first run, and `resumes:`, one entry per resume with
what it changed ({key: [old, new]}). The config keys stay the first run's; `saved_settings` reads them with
every resume's changes applied (what the run is now).
This module imports nothing heavy at module level, and nothing from `config`, which reads run folders
through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config_files import read_yaml
from nlpcli.errors import UserError

TASK_KEY = "task"
RUN_ONLY_KEYS = ("output_dir", "resume", "overwrite")  # what the run that wrote the folder did with it
RESUMES_KEY = "resumes"  # [{at, checkpoint, step, changed: {key: [old, new]}}], one per resume
WORLD_SIZE_KEY = "world_size"  # processes of the first run (its effective batch)
FINGERPRINTS_KEY = "data_sha256"  # {train_file: sha256, validation_file: sha256} of the first run's local files
RECORD_KEYS = (RESUMES_KEY, WORLD_SIZE_KEY, FINGERPRINTS_KEY)  # recorded beside the config keys, not config keys


def settings_file(folder: str | Path) -> Path:
    """The nlpcli_config.yaml that describes `folder`: its own, or for a checkpoint (`checkpoint-<step>`, which
    holds a model but no settings of its own) its run folder's."""
    folder = Path(folder)
    own = folder / layout.RUN_CONFIG
    if not own.is_file() and layout.checkpoint_step(folder.name) is not None:
        return folder.parent / layout.RUN_CONFIG
    return own


def saved_settings(folder: str | Path) -> dict[str, Any] | None:
    """The keys a run folder's (or a checkpoint's run folder's) nlpcli_config.yaml holds (its task included);
    None when it has none. The one reader of that file."""
    path = settings_file(folder)
    return current(read_yaml(path)) if path.is_file() else None


def current(values: dict[str, Any]) -> dict[str, Any]:
    """A saved nlpcli_config.yaml's keys with each recorded resume's changes applied (the first run's keys, then
    every `resumes:` entry's new values, in order)."""
    values = dict(values)
    resumes = values.get(RESUMES_KEY)
    for resume in resumes if isinstance(resumes, list) else []:
        changed = resume.get("changed") if isinstance(resume, dict) else None
        for key, change in (changed if isinstance(changed, dict) else {}).items():
            if isinstance(change, list) and len(change) == 2:
                values[key] = change[1]
    return values


def check_task_of_file(values: dict[str, Any], task_name: str, source: str) -> dict[str, Any]:
    """The config keys of a YAML layer without its `task` key, which must name this task when present."""
    values = dict(values)
    task = values.pop(TASK_KEY, None)
    if task is not None and str(task) != task_name:
        raise UserError(f"{source} is a {task} configuration (task: {task}), not a {task_name} one.",
                        hint=f"Run nlpcli {task} --config {source}.")
    return values


def config_file_layer(path: Path, task_name: str) -> dict[str, Any]:
    """The keys of a `--config` file. A run's saved nlpcli_config.yaml repeats that run: its task must be
    this one, and the new run does not write into (or resume, or clear) the old run's folder."""
    values = {k: v for k, v in current(read_yaml(path)).items() if k not in RECORD_KEYS}
    output_dir = values.get("output_dir")
    from_run = path.name == layout.RUN_CONFIG or (
        output_dir is not None and Path(str(output_dir)).expanduser().resolve() == path.parent.resolve())
    values = check_task_of_file(values, task_name, str(path))
    if from_run:
        values = {k: v for k, v in values.items() if k not in RUN_ONLY_KEYS}
    return values


def architectures(folder: str | Path) -> list[str]:
    path = Path(folder) / layout.MODEL_CONFIG
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("architectures")
    except (OSError, ValueError, AttributeError):
        return []
    return [str(a) for a in found] if isinstance(found, list) else []


def model_types(auto_class: str) -> Mapping[str, Any]:
    """transformers' own table of what `auto_class` (e.g. AutoModelForTokenClassification) builds: model type ->
    model class name(s). Empty for an auto class no task uses."""
    from transformers.models.auto import modeling_auto as auto

    return {
        "AutoModelForTokenClassification": auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
        "AutoModelForSequenceClassification": auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        "AutoModelForQuestionAnswering": auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES,
        "AutoModelForMaskedLM": auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        "AutoModelForCausalLM": auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        "AutoModelForSeq2SeqLM": auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    }.get(auto_class, {})


def auto_class_architectures(auto_class: str) -> set[str]:
    """The model classes transformers' `auto_class` (e.g. AutoModelForTokenClassification) builds."""
    names = model_types(auto_class)
    found: set[str] = set()
    for value in names.values():
        found.update(value if isinstance(value, list | tuple) else [value])
    return found


def check_model_task(name: str | Path, task_name: str, model_classes: dict[str, str], settings: Path | None,
                     found: list[str]) -> None:
    """Refuse a model (a folder or a hub id, `name`) trained for another task: the task its nlpcli_config.yaml
    (`settings`, None when it has none) records, else its architectures (`found`, config.json's `architectures`)
    against the classes of each task's auto class (`model_classes`: task name -> auto class). A model that says
    neither is let through."""
    recorded = (current(read_yaml(settings)).get(TASK_KEY) if settings is not None else None) or None
    if recorded is not None:
        if str(recorded) != task_name:
            raise UserError(f"{name} holds a model trained for {recorded} ({settings} says task: {recorded}), not "
                            f"for {task_name}.", hint=f"Use nlpcli predict {recorded} {name} ...")
        return
    if not found or set(found) & auto_class_architectures(model_classes[task_name]):
        return
    fits = [task for task, auto in model_classes.items() if set(found) & auto_class_architectures(auto)]
    where = f"; it fits {', '.join(fits)}" if fits else ""
    raise UserError(f"{name} holds a {', '.join(found)}, which has no {task_name} head{where}.",
                    hint=f"Use nlpcli predict {fits[0]} {name} ..." if fits else None)
