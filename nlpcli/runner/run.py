"""Orchestration of one run: data -> model -> features -> loop -> files, the same for every task.

`run_task` checks the options and locks the output folder; `_run_locked` then goes through the steps
of the data path (docs/architecture.md): read the data (load -> check and normalise -> split off the test
set, `runner/splits.py`), build the model and the features (`build`), run the loop, evaluate the test set,
and write the files (`write_results`).

Writes into the output folder: the model and tokenizer, `metrics.json` (final evaluation, Trainer key
names), `run.json` (the run report: world size, device, precision, seed, versions, wall time, sample
counts, ...) and `nlpcli_config.yaml` (the resolved configuration). Only the main process writes and prints.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config import RunConfig, resuming
from nlpcli.console import say
from nlpcli.errors import RefusedBeforeTraining, UserError
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import metric_kind
from nlpcli.runner import (
    allocator,
    announce,
    checkpoints,
    continuity,
    disk_full,
    interrupt,
    overfit,
    settings,
    sharing,
    splits,
    testset,
)
from nlpcli.runner.context import EvaluationHook, RunContext
from nlpcli.runner.devices import device_name, distributed_type, precision_name, resolve_precision
from nlpcli.runner.evaluation import final_metrics
from nlpcli.runner.history import read_history
from nlpcli.runner.output_folder import FolderLock, check_output_dir, clear, create, drop_newer, output_dir_of
from nlpcli.runner.report import RunReport
from nlpcli.runner.results import write_example_script_results
from nlpcli.runner.threads import apply_threads
from nlpcli.sources import data, models, presets
from nlpcli.tasks import get_task
from nlpcli.tasks.base import Prepared, Task, TaskSetup

LARGE_DATA = 5000  # records; above this, tokenization shows a progress bar
STREAM_SHUFFLE_BUFFER = 10_000  # features a streamed training set is shuffled within


def _output_dir(cfg: RunConfig, task_name: str) -> Path:
    """cfg.output_dir (or the run folder of `--resume PATH`), or runs/<task>-<timestamp> (an overfit check:
    runs/<task>-overfit-<timestamp>); every process agrees on the same folder."""
    given = output_dir_of(cfg)
    if given is not None:
        return given
    from accelerate.utils import broadcast_object_list

    stamp = [datetime.now().strftime("%Y%m%d-%H%M%S")]
    broadcast_object_list(stamp)
    return layout.default_output_dir(f"{task_name}-overfit" if cfg.overfit_batch else task_name, stamp[0])


def quiet_libraries() -> None:
    import logging

    import datasets
    import transformers

    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)  # "Removed shared tensor" of tied weights

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


RunHook = Callable[[Path], object]  # called with the output folder


def run_task(task_name: str, cfg: RunConfig, on_saved: RunHook | None = None,
             on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Run one task end to end and return the final metrics (also written to metrics.json). `on_saved` is
    called by the main process once the run's files are written, before --push-to-hub uploads them (the
    training command draws the curves there). `on_evaluation` is asked after each evaluation made while
    training whether to go on (`runner.context.EvaluationHook`)."""
    started = time.time()
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list
    from transformers import set_seed

    quiet_libraries()
    state = PartialState(cpu=not torch.cuda.is_available())  # cpu=True: torchrun on a CPU box -> gloo DDP
    task = get_task(task_name)
    set_seed(cfg.seed)
    overfit.check(cfg)
    cfg = overfit.configure(cfg)  # --overfit-batch: one batch, trained on and evaluated on
    check_options(task, cfg)
    machine = {"threads": apply_threads(cfg.threads),  # by the CPUs this process may use, not the host's cores
               "cpu_memory": allocator.keep_freed_memory()}  # freed heap kept for the next step
    output_dir = _output_dir(cfg, task_name)
    check_output_dir(output_dir, cfg)
    continuity.check(task, task_name, cfg, output_dir, state.num_processes)  # a resume continues its own run
    created = not output_dir.exists()
    lock = FolderLock(output_dir)
    refusal = [_take(output_dir, lock) if state.is_main_process else None]
    broadcast_object_list(refusal)
    if refusal[0]:
        raise UserError(*refusal[0])
    previous = interrupt.install(output_dir)  # SIGTERM, SIGINT: the run stops, the lock goes (runner/interrupt.py)
    refused = False
    try:
        if cfg.overwrite and state.is_main_process:
            clear(output_dir)
        if state.is_main_process:
            checkpoints.remove_incomplete(output_dir)
            drop_newer(output_dir, cfg)
        state.wait_for_everyone()
        hooks = [on_evaluation] if on_evaluation is not None else []
        return _run_locked(task, task_name, cfg, state, output_dir, started, on_saved, machine, hooks)
    except RefusedBeforeTraining:
        refused = True
        raise
    except Exception as err:
        full = disk_full.stopped(err, output_dir)  # a full disk or `ulimit -f`: exit 2, what it cut short removed
        if full is None:
            raise
        raise full from None
    finally:
        lock.release()
        interrupt.uninstall(previous)
        if created and state.is_main_process and output_dir.is_dir() and (refused or not any(output_dir.iterdir())):
            shutil.rmtree(output_dir)  # a new run refused before its first step leaves no folder behind


def check_options(task: Task, cfg: RunConfig) -> None:
    """Refuse, before any data is read, options that no run could follow (a run and `nlpcli inspect` alike)."""
    settings.check_training_settings(cfg)
    if cfg.eval_only and cfg.push_to_hub:
        raise UserError("--push-to-hub shares a trained model, and --eval-only trains none: drop one of them.")
    preset = presets.find(cfg.model)
    if cfg.eval_only and preset is not None and preset.random_weights:
        raise UserError("--eval-only evaluates a trained model: give its folder (--model runs/...); the "
                        f"{preset.name} preset has random weights.")
    check_max_length(task, cfg)
    models.check_attention(cfg.attn_implementation)


def check_max_length(task: Task, cfg: RunConfig) -> None:
    """--max-length beyond the model's positions would crash on the first long input: refused before anything is
    written, naming the model's maximum."""
    if not cfg.max_length or "max_length" in task.unused_options:
        return
    positions = models.model_positions(cfg.model, task.model_class)
    if positions and cfg.max_length > positions:
        raise UserError(f"--max-length {cfg.max_length} is longer than --model {cfg.model} allows: at most "
                        f"{positions} tokens (its positions).", hint=f"Give --max-length {positions} or less.")


def _take(output_dir: Path, lock: FolderLock) -> tuple[str, str | None] | None:
    """Create the output folder and lock it (main process); the refusal (message, hint) when either fails."""
    cannot = create(output_dir)
    if cannot:
        return cannot, None
    held = lock.acquire()
    return (held, "Wait for it to finish, or choose another --output-dir.") if held else None


@dataclass(frozen=True)
class Built:
    """What the data turns into before the loop: the model, its tokenizer, what the task's setup learned and the
    features of every split (the test split's included, in `prepared.test`)."""

    model: Any
    tokenizer: Any
    setup: TaskSetup
    prepared: Prepared
    features_cache: dict[str, str] = dataclasses.field(default_factory=dict)  # run.json: per split, reused/made


def _run_locked(task: Task, task_name: str, cfg: RunConfig, state: Any, output_dir: Path, started: float,
                on_saved: RunHook | None, machine: dict[str, Any] | None = None,
                evaluation_hooks: list[EvaluationHook] | None = None) -> dict:
    """The run, once its output folder is locked (the first step that reads data)."""
    run_data = splits.read(task, cfg)
    built = build(task, cfg, state, run_data, output_dir)
    if cfg.overfit_batch:
        prepared, cfg = overfit.one_batch(task, built.prepared, cfg)
        built = dataclasses.replace(built, prepared=prepared)
    ctx = context(task, cfg, state, run_data, built, output_dir, machine)  # ctx.cfg: the logging interval chosen
    ctx.evaluation_hooks.extend(evaluation_hooks or [])
    announce.announce(task_name, cfg, state, ctx)
    pusher = sharing.HubPush(cfg, output_dir) if cfg.push_to_hub and state.is_main_process else None
    if pusher is not None:
        ctx.checkpoint_hooks.append(pusher.checkpoint_saved)
    metrics = run_loop(ctx)
    if built.prepared.test is not None:
        metrics.update(testset.evaluate_test(ctx, run_data.test, run_data.test_labelled))
    metrics = final_metrics({**metrics, **({"train_loss": ctx.train_loss} if ctx.train_loss is not None else {})})
    if cfg.overfit_batch:
        ctx.report.overfit = overfit.judge(task, cfg, metrics, read_history(output_dir / layout.HISTORY))
    if state.is_main_process:
        write_results(ctx, metrics, started, on_saved)
    state.wait_for_everyone()
    if pusher is not None:  # everything is saved locally: a failed push loses nothing
        say(f"pushed to {pusher.finish()}")
    return {"output_dir": str(output_dir), "metrics": metrics,
            **({"overfit": ctx.report.overfit} if cfg.overfit_batch else {})}


def build(task: Task, cfg: RunConfig, state: Any, run_data: splits.RunData, output_dir: Path) -> Built:
    """`assemble` with the run's preset tokenizer folder: a new run fits its own preset tokenizer in a staging
    folder, moved into place once every split's features are made (a run refused for its data leaves the output
    folder as it found it); a resume loads the kept one."""
    kept = output_dir / layout.PRESET_TOKENIZER
    tokenizer_dir = kept if resuming(cfg) else output_dir / layout.PRESET_TOKENIZER_STAGING
    if state.is_main_process:
        shutil.rmtree(output_dir / layout.PRESET_TOKENIZER_STAGING, ignore_errors=True)  # a killed run's
    try:
        built = assemble(task, cfg, state, run_data, tokenizer_dir)
        state.wait_for_everyone()  # every process has loaded the staged tokenizer before it moves
        if state.is_main_process and tokenizer_dir != kept:
            shutil.rmtree(kept, ignore_errors=True)  # a new run's tokenizer replaces an earlier run's
            if tokenizer_dir.is_dir():
                tokenizer_dir.rename(kept)
    finally:
        if state.is_main_process and tokenizer_dir != kept:
            shutil.rmtree(tokenizer_dir, ignore_errors=True)
    return built


def assemble(task: Task, cfg: RunConfig, state: Any, run_data: splits.RunData, tokenizer_dir: Path) -> Built:
    """setup (on every split, test included: its records must fit the label list the task builds) -> the model
    and tokenizer (a preset's tokenizer fitted into, or loaded from, `tokenizer_dir`) -> the features of train,
    validation and test. What a run trains on, and what `nlpcli inspect` looks at; it writes nothing else (but
    datasets' cache of the features, which the next run with the same data and settings reuses)."""
    raw = run_data.raw
    began = time.time()
    if state.is_main_process and sum(data.count(split) or 0 for split in raw.values()) > LARGE_DATA:
        import datasets

        datasets.enable_progress_bars()  # tokenizing a hub-sized data set takes a while: show it
    setup = task.setup(run_data.with_test(), cfg, models.pretrained_config(cfg.model))
    # The main process goes first: it fits the tiny preset's tokenizer (the others load it) and fills the
    # datasets cache the others then read.
    model_kwargs = {**setup.model_kwargs, **models.attention_kwargs(cfg.attn_implementation)}
    with state.main_process_first():
        texts = lambda: task.preset_texts(raw, cfg)  # noqa: E731
        with models.explained_attention(cfg.attn_implementation):
            model, tokenizer = task.load_model(cfg, model_kwargs, texts, tokenizer_dir) or (
                models.load_model_and_tokenizer(cfg.model, task.model_class, model_kwargs, texts,
                                                cfg.preset_vocab_size, tokenizer_dir))
        prepared = task.prepare(raw, tokenizer, cfg, setup)
        if run_data.test is not None:
            prepared = dataclasses.replace(prepared, test=task.prepare_test(run_data.test, tokenizer, cfg, setup))
    _check_features(prepared, cfg)
    train = prepared.train
    if train is not None and data.is_streamed(train):  # no sampler shuffles a stream
        prepared = dataclasses.replace(prepared, train=train.shuffle(seed=cfg.seed,
                                                                     buffer_size=STREAM_SHUFFLE_BUFFER))
    return Built(model, tokenizer, setup, prepared, features_cache(prepared, began))


def features_cache(prepared: Prepared, began: float) -> dict[str, str]:
    """Per split, whether its features came from datasets' cache (`reused`: a run before this one made them from
    the same data, tokenizer and settings), were made now (`made`, and cached for the next run), or live in
    memory only (`not cached`: a stream, or data built in memory)."""
    found = {}
    for split, features in (("train", prepared.train), ("validation", prepared.eval), ("test", prepared.test)):
        if features is None:
            continue
        files = [Path(entry["filename"]) for entry in getattr(features, "cache_files", None) or []]
        if not files:
            found[split] = "not cached"
        else:
            found[split] = "reused" if all(f.exists() and f.stat().st_mtime < began for f in files) else "made"
    return found


def _check_features(prepared: Prepared, cfg: RunConfig) -> None:
    """A test or training split that gave no features is refused."""
    if prepared.test is not None and len(prepared.test) == 0:
        raise UserError(f"{data.describe(cfg, splits.TEST_SPLIT)}: no test features after tokenization.")
    if prepared.train is not None and data.count(prepared.train) == 0:
        raise UserError(f"{data.describe(cfg, 'train')}: no training features after tokenization.")


def context(task: Task, cfg: RunConfig, state: Any, run_data: splits.RunData, built: Built,
            output_dir: Path, machine: dict[str, Any] | None = None) -> RunContext:
    """What the loop is handed, with the run report started: what ran where, what training will do (steps,
    epochs, batch; the logging interval chosen for that length when --logging-steps was not given), the sample
    counts and what reading and preparing the data reported."""

    precision = resolve_precision(cfg.precision, getattr(built.model.config, "model_type", None))
    prepared = built.prepared
    plan = {} if cfg.eval_only else settings.plan(cfg, data.count(prepared.train), state.num_processes)
    if plan:
        cfg = settings.with_logging_interval(cfg, plan["planned_steps"])
        plan["logging_steps"] = cfg.logging_steps
    report = RunReport(
        header={"task": task.name, "model": cfg.model, "loop": cfg.loop, "eval_only": cfg.eval_only,
                "world_size": state.num_processes, "distributed": distributed_type(state), "device": device_name(),
                "precision": precision_name(precision),
                "attn_implementation": models.attention_that_ran(built.model), "seed": cfg.seed,
                **(machine or {}), **plan},
        samples={"train_examples": data.count(run_data.raw.get("train")), "train_samples": data.count(prepared.train),
                 "eval_samples": len(run_data.raw["validation"]), "eval_features": len(prepared.eval)},
        filters=run_data.filter_counts,
        data=run_data.data_report,
        task={**run_data.task_facts, **prepared.facts, "features_cache": built.features_cache},
        test={"test_samples": len(run_data.test), "test_labelled": run_data.test_labelled}
        if run_data.test is not None else {},
        resumes=continuity.resumes(cfg),
    )
    return RunContext(task=task, cfg=cfg, model=built.model, tokenizer=built.tokenizer, prepared=prepared,
                      raw_eval=run_data.raw["validation"], output_dir=output_dir, mixed_precision=precision,
                      report=report)


def run_loop(ctx: RunContext) -> dict[str, Any]:
    """The configured loop: training (unless --eval-only) and the final evaluation on the validation split."""
    from nlpcli.runner import accelerate as accelerate_loop
    from nlpcli.runner import trainer as trainer_loop

    before = ctx.cfg.eval_before and not ctx.cfg.eval_only
    loop = accelerate_loop if ctx.cfg.loop == "accelerate" else trainer_loop
    metrics = loop.run(ctx, resume=resuming(ctx.cfg), before=before)
    ctx.report.header["eval_before"] = any(metric_kind(key).before for key in metrics)  # measured, or read back
    return metrics


def write_results(ctx: RunContext, metrics: dict[str, Any], started: float, on_saved: RunHook | None) -> None:
    """metrics.json, run.json (the run report), the model card and what `on_saved` adds (main process only)."""
    from accelerate.state import PartialState

    output_dir = ctx.output_dir
    write_text_atomic(output_dir / layout.METRICS, json.dumps(metrics, indent=2, allow_nan=False))
    ctx.report.header["distributed"] = distributed_type(PartialState())  # the loop's Accelerator: what ran
    info = ctx.report.as_json(started)
    write_text_atomic(output_dir / layout.RUN_INFO, json.dumps(info, indent=2))
    write_example_script_results(output_dir, metrics, info)
    if not ctx.cfg.eval_only and not ctx.cfg.overfit_batch:  # the card describes a model to use: an evaluation
        # leaves it as it was, an overfit check (which learnt one batch by heart) writes none
        sharing.write_model_card(ctx.task, ctx.cfg, metrics, info, output_dir)
    if on_saved is not None:
        on_saved(output_dir)
