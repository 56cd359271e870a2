"""Orchestration of one run: data -> model -> features -> loop -> files, the same for every task.

Writes into the output folder: the model and tokenizer, `metrics.json` (final evaluation, Trainer key
names), `run.json` (world size, device, precision, seed, versions, wall time, sample counts) and
`nlpcli_config.yaml` (the resolved configuration). Only the main process writes and prints.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.markup import escape

from nlpcli import layout
from nlpcli.config import RunConfig, origin_lines, resuming, save_config
from nlpcli.console import say
from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic
from nlpcli.runner import checkpoints, settings, sharing, testset
from nlpcli.runner.context import RunContext
from nlpcli.runner.evaluation import final_metrics
from nlpcli.runner.output_folder import FolderLock, check_output_dir, clear
from nlpcli.runner.results import write_example_script_results
from nlpcli.sources import data, models, presets
from nlpcli.tasks import get_task

LARGE_DATA = 5000  # records; above this, tokenization shows a progress bar
STREAM_SHUFFLE_BUFFER = 10_000  # features a streamed training set is shuffled within
VERSIONED = ("nlpcli", "torch", "transformers", "datasets", "accelerate", "tokenizers")


def _output_dir(cfg: RunConfig, task_name: str) -> Path:
    """cfg.output_dir, or runs/<task>-<timestamp>; every process agrees on the same folder."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    from accelerate.utils import broadcast_object_list

    stamp = [datetime.now().strftime("%Y%m%d-%H%M%S")]
    broadcast_object_list(stamp)
    return layout.default_output_dir(task_name, stamp[0])


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_info(ctx: RunContext, world_size: int, started: float) -> dict[str, Any]:
    from nlpcli.runner.devices import device_name, precision_name

    return {
        "task": ctx.task.name,
        "model": ctx.cfg.model,
        "loop": ctx.cfg.loop,
        "eval_only": ctx.cfg.eval_only,
        "world_size": world_size,
        "device": device_name(),
        "precision": precision_name(ctx.mixed_precision),
        "seed": ctx.cfg.seed,
        "train_examples": ctx.train_examples,
        "train_samples": count(ctx.train_features),
        "eval_samples": len(ctx.raw_eval),
        "eval_features": len(ctx.eval_features),
        "filters": ctx.filter_counts,
        "data": ctx.task.data_report,
        **({"generation": ctx.generation} if ctx.generation else {}),
        **ctx.training,
        **ctx.task.run_details(ctx.cfg),
        "wall_time_s": round(time.time() - started, 2),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
        "command": sharing.command_line(),  # quoted as a shell takes it back
        "versions": library_versions(),
    }


def quiet_libraries() -> None:
    import logging

    import datasets
    import transformers

    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)  # "Removed shared tensor" of tied weights

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def count(split: Any | None) -> int | None:
    """Records in a split; None for a streamed one (its length is not known before it is read)."""
    if split is None:
        return 0
    return None if data.is_streamed(split) else len(split)


def check_streaming(task: Any, cfg: RunConfig) -> None:
    if not task.supports_streaming:
        raise UserError(f"--streaming: the {task.name} task reads its data whole; drop --streaming.")
    if cfg.max_steps <= 0 and not cfg.eval_only:
        raise UserError("--streaming needs --max-steps: a stream has no length to count epochs in.")


RunHook = Callable[[Path], object]  # called with the output folder


def run_task(task_name: str, cfg: RunConfig, on_saved: RunHook | None = None) -> dict[str, Any]:
    """Run one task end to end and return the final metrics (also written to metrics.json). `on_saved` is
    called by the main process once the run's files are written, before --push-to-hub uploads them (the
    training command draws the curves there)."""
    started = time.time()
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list
    from transformers import set_seed

    quiet_libraries()
    state = PartialState(cpu=not torch.cuda.is_available())  # cpu=True: torchrun on a CPU box -> gloo DDP
    task = get_task(task_name)
    set_seed(cfg.seed)
    settings.check_training_settings(cfg)
    if cfg.eval_only and cfg.push_to_hub:
        raise UserError("--push-to-hub shares a trained model, and --eval-only trains none: drop one of them.")
    preset = presets.find(cfg.model)
    if cfg.eval_only and preset is not None and preset.random_weights:
        raise UserError("--eval-only evaluates a trained model: give its folder (--model runs/...); the "
                        f"{preset.name} preset has random weights.")
    output_dir = _output_dir(cfg, task_name)
    check_output_dir(output_dir, cfg)
    created = not output_dir.exists()
    lock = FolderLock(output_dir)
    refusal = [lock.acquire() if state.is_main_process else None]
    broadcast_object_list(refusal)
    if refusal[0]:
        raise UserError(refusal[0], hint="Wait for it to finish, or choose another --output-dir.")
    try:
        if cfg.overwrite and state.is_main_process:
            clear(output_dir)
        if state.is_main_process:
            checkpoints.remove_incomplete(output_dir)
        state.wait_for_everyone()
        return _run_locked(task, task_name, cfg, state, output_dir, started, on_saved)
    finally:
        lock.release()
        if created and state.is_main_process and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # a run refused before it wrote anything leaves no empty folder behind


def _run_locked(task: Any, task_name: str, cfg: RunConfig, state: Any, output_dir: Path, started: float,
                on_saved: RunHook | None) -> dict:
    from nlpcli.runner import accelerate as accelerate_loop
    from nlpcli.runner import trainer as trainer_loop
    from nlpcli.runner.devices import precision_name, resolve_precision

    cfg_text, cfg_label = cfg.text_column or "text", cfg.label_column or "label"
    test, test_labelled = None, True  # the test split of --test-file / --do-predict
    if cfg.streaming:
        check_streaming(task, cfg)
        testset.refuse_streaming(cfg)
        raw, filter_counts = task.normalize(data.load_streamed(cfg, task.sample, cfg_text, cfg_label), cfg), []
    else:
        raw, test_labelled = testset.add_test_split(data.load_raw(cfg, task.sample, cfg_text, cfg_label), cfg,
                                                    task, cfg_text, cfg_label)
        if cfg.eval_only and "train" in raw and ("validation" in raw or "test" in raw):
            del raw["train"]  # not needed: the evaluation data is there
        raw, filter_counts = data.apply_filters(raw, cfg.filter, cfg)
        # records are checked (and bad ones named or skipped) before a validation part is held out of train
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        raw, test = testset.take_test_split(task.normalize(raw, cfg), cfg)
        raw = data.ensure_splits(raw, cfg, split_seed)
    if cfg.eval_only and "train" in raw:
        del raw["train"]
    if not task.limits_count_features:
        raw = data.subsample(raw, cfg.max_train_samples, cfg.max_eval_samples)
    data.check_columns(testset.with_test(raw, test), task.required_columns(cfg), cfg)
    if state.is_main_process and sum(count(split) or 0 for split in raw.values()) > LARGE_DATA:
        import datasets

        datasets.enable_progress_bars()  # tokenizing a hub-sized data set takes a while: show it

    # the task checks the test records too (they must fit the label list it builds)
    model_kwargs = task.setup(testset.with_test(raw, test), cfg, models.pretrained_config(cfg.model))
    if state.is_main_process and not resuming(cfg):  # a new run trains its own preset tokenizer
        shutil.rmtree(output_dir / layout.PRESET_TOKENIZER, ignore_errors=True)
    # The main process goes first: it fits the tiny preset's tokenizer (the others load it) and fills the
    # datasets cache the others then read.
    with state.main_process_first():
        texts, tokenizer_dir = lambda: task.preset_texts(raw, cfg), output_dir / layout.PRESET_TOKENIZER
        model, tokenizer = task.load_model(cfg, model_kwargs, texts, tokenizer_dir) or models.load_model_and_tokenizer(
            cfg.model, task.model_class, model_kwargs, texts, cfg.preset_vocab_size, tokenizer_dir
        )
        train_features, eval_features = task.prepare(raw, tokenizer, cfg)
        test_features = testset.test_features(task, test, tokenizer, cfg) if test is not None else None
    if train_features is not None and data.is_streamed(train_features):  # no sampler shuffles a stream
        train_features = train_features.shuffle(seed=cfg.seed, buffer_size=STREAM_SHUFFLE_BUFFER)
    if count(train_features) == 0 and train_features is not None:
        raise UserError(f"{data.describe(cfg, 'train')}: no training features after tokenization.")

    ctx = RunContext(
        task=task,
        cfg=cfg,
        model=model,
        tokenizer=tokenizer,
        train_features=train_features,
        eval_features=eval_features,
        raw_eval=raw["validation"],
        output_dir=output_dir,
        mixed_precision=resolve_precision(cfg.precision, getattr(model.config, "model_type", None)),
        train_examples=count(raw.get("train")),
        filter_counts=filter_counts,
    )
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output_dir / layout.RUN_CONFIG, task_name)
    say(
        f"[bold]{task_name}[/bold] model={cfg.model} loop={cfg.loop} processes={state.num_processes} "
        f"precision={precision_name(ctx.mixed_precision)} "
        f"train={count(train_features) if not cfg.streaming else 'streamed'} eval={len(eval_features)} "
        f"-> {output_dir}"
    )
    for line in origin_lines(cfg):  # where each value that differs from the built-in defaults came from
        say(f"  [dim]{escape(line)}[/dim]")
    pusher = sharing.HubPush(cfg, output_dir) if cfg.push_to_hub and state.is_main_process else None
    if pusher is not None:
        ctx.checkpoint_hooks.append(pusher.checkpoint_saved)
    before = task.evaluate_before_training and not cfg.eval_only
    loop = accelerate_loop if cfg.loop == "accelerate" else trainer_loop
    metrics = loop.run(ctx, resume=resuming(cfg), before=before)
    if test_features is not None:
        metrics.update(testset.evaluate_test(ctx, test_features, test, test_labelled))

    if ctx.train_loss is not None:
        metrics["train_loss"] = ctx.train_loss
    metrics = final_metrics(metrics)
    if state.is_main_process:
        write_text_atomic(output_dir / layout.METRICS, json.dumps(metrics, indent=2, allow_nan=False))
        info = run_info(ctx, state.num_processes, started)
        if test is not None:
            info["test_samples"], info["test_labelled"] = len(test), test_labelled
        write_text_atomic(output_dir / layout.RUN_INFO, json.dumps(info, indent=2))
        write_example_script_results(output_dir, metrics, info)
        if not cfg.eval_only:  # the card describes a trained model; an evaluation leaves it as it was
            sharing.write_model_card(task, cfg, metrics, info, output_dir)
        if on_saved is not None:
            on_saved(output_dir)
    state.wait_for_everyone()
    if pusher is not None:  # everything is saved locally: a failed push loses nothing
        say(f"pushed to {pusher.finish()}")
    return {"output_dir": str(output_dir), "metrics": metrics}
