"""A resume knows its run: before anything is written, `--resume` (yes, auto with a checkpoint, or PATH)
compares the command's resolved configuration with the run's nlpcli_config.yaml (with the changes of earlier
resumes applied): the output folder's, or for `--resume PATH` the one of the checkpoint's run folder. The
command inherits the run's settings (`config_layers.resumed_run_layer`), so what it gives is what it changes.

- Refused (exit 2, one message naming each difference): a checkpoint of another run folder than --output-dir,
  or written by the other loop, another task or model, other data (the data set and
  its configuration, the local files: the same path with other content is other data, by the sha256 the
  first run recorded), and every setting not listed below: what makes the features (max_length, labels,
  columns, doc_stride, context_length, pack, chunk_size, whole-word masking, filters, max_*_samples, ...) and
  what sets the trajectory (learning rate, schedule, warm-up, optimizer, weight decay, gradient clipping,
  seed). A key no list names is refused: a new setting is safe until someone decides it may change.
- Accepted with one warning line and recorded (`RESUMABLE`, and a task's `resumable_options`): how long to
  train, when to log, evaluate and save, what is kept, reported and pushed, evaluation-only settings, and the
  per-device batch size or gradient accumulation when the effective batch (batch size x accumulation x world
  size) stays the same.
- Not compared: what the command does with the folder (`IGNORED`), and the shared keys the task does not read.

The accepted changes become one entry of `resumes:` in nlpcli_config.yaml (the first run's keys stay as they
were) and of run.json's `resumes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from nlpcli import layout, run_folder
from nlpcli.config import resume_checkpoint, resuming
from nlpcli.config_fields import flag
from nlpcli.config_values import coerce
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.runner import checkpoints
from nlpcli.runner.output_folder import same_model, written_by

RESUME = "_nlpcli_resume"  # where `check` leaves the run's settings and resumes on the cfg (not a config key)
IGNORED = (*run_folder.RUN_ONLY_KEYS, "eval_only")
RESUMABLE = (
    "epochs", "max_steps", "logging_steps", "eval_strategy", "eval_steps", "save_strategy", "save_steps",
    "save_total_limit", "report_to", "push_to_hub", "hub_model_id", "hub_private", "hub_strategy",
    "eval_batch_size", "test_file", "do_predict", "precision", "gradient_checkpointing", "torch_compile",
    "load_best_model_at_end", "early_stopping_patience", "eval_before",
    "threads", "preprocessing_workers", "length_split", "attn_implementation",
)
BATCH_KEYS = ("batch_size", "gradient_accumulation_steps")  # may change when the effective batch does not
DATA_FILES = ("train_file", "validation_file")  # compared by content when the first run recorded it


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_run_record(cfg: Any, world_size: int) -> dict[str, Any]:
    """What a new run records beside its config keys for a later --resume: the world size and the sha256 of
    each local data file."""
    files = {key: sha256(getattr(cfg, key)) for key in DATA_FILES
             if getattr(cfg, key, None) and Path(getattr(cfg, key)).expanduser().is_file()}
    return {run_folder.WORLD_SIZE_KEY: world_size, **({run_folder.FINGERPRINTS_KEY: files} if files else {})}


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _same_file(saved: Any, now: Any, fingerprint: str | None) -> bool:
    """One local data file: by content when the run recorded its sha256, else by path."""
    if saved == now:
        return fingerprint is None or not Path(str(now)).expanduser().is_file() or sha256(now) == fingerprint
    if saved is None or now is None:
        return False
    if fingerprint is not None and Path(str(now)).expanduser().is_file():
        return sha256(now) == fingerprint
    return Path(str(saved)).expanduser().resolve() == Path(str(now)).expanduser().resolve()


def _batch(cfg: Any, saved: dict[str, Any], accepted: dict[str, list[Any]], world_size: int) -> list[str]:
    """The refusal of another effective batch (batch size x accumulation x processes); with the same one, another
    split of it is accepted (another number of processes too, as `processes`)."""
    world_then = int(saved.get(run_folder.WORLD_SIZE_KEY) or world_size)
    then = [*(accepted[key][0] if key in accepted else getattr(cfg, key) for key in BATCH_KEYS), world_then]
    now = [*(getattr(cfg, key) for key in BATCH_KEYS), world_size]
    if then[0] * then[1] * then[2] == now[0] * now[1] * now[2]:
        if world_then != world_size:
            accepted["processes"] = [world_then, world_size]
        return []
    for key in BATCH_KEYS:
        accepted.pop(key, None)
    shown = [f"{' x '.join(map(str, sizes))} = {sizes[0] * sizes[1] * sizes[2]}" for sizes in (then, now)]
    return [f"effective batch (--batch-size x --gradient-accumulation-steps x processes): {shown[0]} in the run, "
            f"{shown[1]} now"]


def _whose(checkpoint: Path | None, cfg: Any, output_dir: Path) -> tuple[Path, dict[str, str]]:
    """The run folder a resume continues (the output folder, or the folder of the checkpoint `--resume PATH`
    names), and what the command says otherwise of a PATH, by config key: another --output-dir, the other loop
    (by the loop state the checkpoint holds)."""
    if checkpoint is None:
        return output_dir, {}
    run_dir = checkpoint.absolute().parent
    refused = {}
    if run_dir.resolve() != output_dir.absolute().resolve():
        refused["output_dir"] = (f"--output-dir: {run_dir} holds the checkpoint, {output_dir} now (leave --output-dir "
                                 "out, or give that folder)")
    loops = written_by(checkpoint)
    if loops and cfg.loop not in loops:
        refused["loop"] = f"--loop: {loops[0]} in the run ({checkpoint.name} holds its state), {cfg.loop} now"
    return run_dir, refused


def _differences(task: Any, cfg: Any, path: Path, saved: dict[str, Any], accepted: dict[str, list[Any]],
                 skip: set[str]) -> list[str]:
    """Each config key the command gives another value than the run saved (`path`): the refusals returned, the
    accepted changes put in `accepted`."""
    refused: list[str] = []
    fields = {f.name for f in dataclasses.fields(cfg)}
    fingerprints = saved.get(run_folder.FINGERPRINTS_KEY) or {}
    for key in (k for k in saved if k in fields and k not in IGNORED and k not in task.unused_options):
        if key in skip:
            continue
        try:
            then = coerce(type(cfg), key, saved[key], str(path))
        except UserError:
            then = saved[key]
        now = getattr(cfg, key)
        if key == "model":
            differs = not same_model(then, now)
        elif key in DATA_FILES:
            differs = not _same_file(then, now, fingerprints.get(key) if isinstance(fingerprints, dict) else None)
            if differs and then == now:
                refused.append(f"{flag(key)} {now}: its content changed since the run (sha256 differs)")
                continue
        else:
            differs = then != now
        if not differs:
            continue
        if key in RESUMABLE or key in task.resumable_options or key in BATCH_KEYS:
            accepted[key] = [then, now]
        else:
            refused.append(f"{flag(key)}: {_shown(then)} in the run, {_shown(now)} now")
    return refused


def check(task: Any, task_name: str, cfg: Any, output_dir: Path, world_size: int) -> None:
    """Refuse a resume whose settings differ from the run's in what it may not change; warn of (and keep on
    the cfg, for nlpcli_config.yaml and run.json) what it may. Nothing for a run that resumes nothing."""
    if not resuming(cfg):
        return
    given = resume_checkpoint(cfg)
    checkpoint = given or checkpoints.latest(output_dir)
    if checkpoint is None:
        return
    run_dir, whose = _whose(given, cfg, output_dir)
    refused = list(whose.values())
    path = run_folder.settings_file(run_dir)
    from nlpcli.config_files import read_yaml

    original = read_yaml(path) if path.is_file() else {}
    saved = run_folder.current(original)
    accepted: dict[str, list[Any]] = {}
    task_then = saved.get(run_folder.TASK_KEY)
    if task_then is not None and str(task_then) != task_name:
        refused.append(f"task: {task_then} in the run, {task_name} now")
    refused += _differences(task, cfg, path, saved, accepted, set(whose))
    if original:
        refused += _batch(cfg, saved, accepted, world_size)
    if refused:
        resume = f"--resume {given}" if given is not None else "--resume"
        raise UserError(f"{resume} continues the run in {run_dir} as it was set up ({path}); this command "
                        f"differs: {'; '.join(refused)}.",
                        hint=(f"Resume it with nlpcli {task_then}, " if task_then not in (None, task_name) else
                              "Give the run's values to resume it (or leave them out: a resume keeps them), ")
                        + "or start a new run: --overwrite (it deletes the run) or another --output-dir.")
    if not original:
        return
    if accepted:
        warn(f"--resume: continuing {run_dir} with changed settings: "
             + ", ".join(f"{flag(key)} {_shown(old)} -> {_shown(new)}" for key, (old, new) in accepted.items())
             + (" (the same effective batch)" if set(accepted) & {*BATCH_KEYS, "processes"} else "") + ".")
    if "epochs" in accepted and "max_steps" not in accepted and cfg.max_steps > 0:
        warn(f"--epochs {_shown(cfg.epochs)} changes nothing: the run stops at --max-steps {cfg.max_steps}, which it "
             "keeps (give --max-steps -1 to train by epochs).")
    resumes = original.get(run_folder.RESUMES_KEY)
    entry = {"at": datetime.now().isoformat(timespec="seconds"), "checkpoint": checkpoint.name,
             "step": layout.checkpoint_step(checkpoint.name), "changed": accepted}
    cfg.__dict__[RESUME] = {"original": original,
                            "resumes": [*(resumes if isinstance(resumes, list) else []), entry]}


def resumes(cfg: Any) -> list[dict[str, Any]]:
    """Every resume of the run, this one last (empty for a run that resumes nothing)."""
    return list(cfg.__dict__.get(RESUME, {}).get("resumes", []))


def settings_to_save(cfg: Any) -> dict[str, Any] | None:
    """A resumed run's nlpcli_config.yaml: the first run's keys and record, and every resume, this one
    included; None for a new run (it saves its resolved configuration)."""
    plan = cfg.__dict__.get(RESUME)
    if plan is None:
        return None
    return {**{k: v for k, v in plan["original"].items() if k != run_folder.RESUMES_KEY},
            run_folder.RESUMES_KEY: plan["resumes"]}
