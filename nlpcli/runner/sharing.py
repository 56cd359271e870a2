"""Sharing a run: the model card every training run writes, and `--push-to-hub`.

- `write_model_card`: `README.md` in the output folder, in the Hub's model-card format (huggingface_hub's
  `ModelCard`/`ModelCardData`): YAML metadata (pipeline tag, base model, data set, metrics as a model-index,
  hyperparameters, the command line) and a readable body. Written atomically by the main process.
- `HubPush`: uploads the output folder with huggingface_hub once the run has saved everything locally
  (`--hub-strategy end`), and with `every_save` also each checkpoint as it is put in place (to
  `last-checkpoint/` in the repository, the newest only, so a job can resume from the Hub's copy).
  No token, `HF_HUB_OFFLINE` or an unreachable Hub are found in seconds: the run warns at its start, trains
  and saves as usual, and ends with one message and exit 2; nothing local is lost.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config import RunConfig
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import metric_kind
from nlpcli.sources import presets

LAST_CHECKPOINT = "last-checkpoint"  # in the hub repository, as the Trainer names it
NOT_PUSHED = list(layout.NOT_PUSHED)
TRAINING_KEYS = ("loop", "optim", "learning_rate", "weight_decay", "warmup_ratio", "warmup_steps", "lr_scheduler",
                 "batch_size", "eval_batch_size", "gradient_accumulation_steps", "max_grad_norm", "seed", "max_length",
                 "max_train_samples", "max_eval_samples", "trainer_args")
# what ran, from the run report (run.json), not what was asked: --precision auto resolved (or fp16 asked on a CPU,
# which ran fp32), the steps and epochs trained (--max-steps ends a run before its --epochs), the processes
RAN = ("precision", "steps", "epochs", "world_size", "total_train_batch_size")


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, as a shell would take it back (`nlpcli ...` for the script
    and for `python -m nlpcli`)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("nlpcli", "__main__.py"):
        argv[0] = "nlpcli"
    return shlex.join(argv)


def repo_name(cfg: RunConfig, output_dir: Path) -> str:
    """--hub-model-id, or the output folder's name (in the token owner's namespace)."""
    return cfg.hub_model_id or Path(output_dir).resolve().name


def hyperparameters(cfg: RunConfig, info: dict[str, Any]) -> dict[str, Any]:
    """The training settings, then the task's own keys, leaving out those not set; then what ran, as the run report
    `info` (run.json) says."""
    shared = {f.name for f in dataclasses.fields(RunConfig)}
    task_keys = [f.name for f in dataclasses.fields(cfg) if f.name not in shared]
    chosen = {key: getattr(cfg, key) for key in (*TRAINING_KEYS, *task_keys) if getattr(cfg, key, None) is not None}
    return {**chosen, **{key: info[key] for key in RAN if info.get(key) is not None}}


def base_model(spec: str) -> str | None:
    """The hub id the run started from; None for a preset or a local folder."""
    from nlpcli.sources import models

    try:
        where = models.locate(spec, weights=False)
    except UserError:
        return None
    return spec if where == spec and not Path(spec).exists() else None


def card_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The final figures per split ('validation' from eval_*, 'test' from test_*), without timings and
    before-training values."""
    splits: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        kind = metric_kind(key)
        split = {"eval": "validation", "test": "test"}.get(kind.split or "")
        if split and isinstance(value, int | float) and not isinstance(value, bool) and not kind.before \
                and not kind.timing:
            splits.setdefault(split, {})[kind.name] = value
    return splits


def build_model_card(task: Any, cfg: RunConfig, metrics: dict[str, Any], info: dict[str, Any], name: str) -> Any:
    """The run's `huggingface_hub.ModelCard` (YAML metadata + markdown body)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    pipeline_tag = task.hub_task or task.pipeline_task
    figures = card_metrics(metrics)
    hub_data = cfg.dataset if cfg.dataset and cfg.dataset != "sample" else None
    data_name = hub_data or ("nlpcli bundled sample" if cfg.dataset == "sample" else cfg.train_file or "local files")
    params = hyperparameters(cfg, info)
    command = command_line()
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        base_model=base_model(cfg.model),
        datasets=[hub_data] if hub_data else None,
        tags=["nlpcli", task.name],
        model_name=name,
        eval_results=[
            EvalResult(task_type=pipeline_tag, dataset_type=hub_data or "local", dataset_name=data_name,
                       dataset_split=split, metric_type=key, metric_value=value)
            for split, values in figures.items()
            for key, value in values.items() if isinstance(value, float)  # counts (support, totals) are no scores
        ] or None,
        hyperparameters=params,
        nlpcli_command=command,
    )
    preset = presets.find(cfg.model)
    started_from = f"`{cfg.model}`" + (" (random initial weights)" if preset and preset.random_weights else "")
    rows = "\n".join(f"| {split} | {key} | {_figure(value)} |" for split, values in figures.items()
                     for key, value in values.items())
    settings = "\n".join(f"- {key}: {value}" for key, value in params.items())
    local = name.replace("/", "-")
    versions = "\n".join(f"- {lib} {version}" for lib, version in info.get("versions", {}).items())
    body = f"""
# {name}

Trained with `nlpcli {task.name}` from {started_from} on {data_name} ({info.get("train_samples")} training
features, {info.get("eval_samples")} evaluation examples), {info.get("world_size", 1)} process(es) on
{info.get("device", "?")}. {task.help}

## Command

```bash
{command}
```

## Evaluation

| split | metric | value |
|---|---|---|
{rows}

## Training hyperparameters

{settings}

## Use it

```bash
hf download {name} --local-dir {local}   # or use the run's output folder
nlpcli predict {task.name} {local} ...
```

## Framework versions

{versions}
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(task: Any, cfg: RunConfig, metrics: dict[str, Any], info: dict[str, Any],
                     output_dir: Path) -> Path:
    """README.md in the output folder, replaced in one step (main process only)."""
    path = Path(output_dir) / layout.CARD
    write_text_atomic(path, str(build_model_card(task, cfg, metrics, info, repo_name(cfg, output_dir))))
    return path


def access_problem() -> str | None:
    """Why the Hub cannot take an upload now (no token, offline, unreachable), found in seconds; else None."""
    from huggingface_hub import get_token

    from nlpcli.sources import hub

    if hub.offline_requested():
        return "HF_HUB_OFFLINE is set"
    if not get_token():
        return "no Hugging Face token (run `hf auth login`, or set HF_TOKEN)"
    if not hub.hub_reachable():
        return "the Hugging Face Hub cannot be reached from this machine"
    return None


class HubPush:
    """`--push-to-hub` for one run: created by the main process before training; `checkpoint_saved` is the
    loops' checkpoint hook (every_save), `finish` the upload of the saved output folder."""

    def __init__(self, cfg: RunConfig, output_dir: Path) -> None:
        self.cfg, self.output_dir = cfg, Path(output_dir)
        self.repo_id: str | None = None  # OWNER/NAME once the repository exists
        self.last_pushed: str | None = None  # the newest checkpoint uploaded
        self.problem = access_problem()
        if self.problem:
            warn(f"--push-to-hub: {self.problem}. The run trains and saves locally, then stops with an error "
                 "instead of pushing.")

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        api = HfApi()
        if self.repo_id is None:
            name = repo_name(self.cfg, self.output_dir)
            self.repo_id = api.create_repo(name, private=self.cfg.hub_private, exist_ok=True).repo_id
        return api

    def checkpoint_saved(self, checkpoint: Path) -> None:
        """every_save: upload the checkpoint just put in place; a failure warns and training goes on (the end
        of the run pushes again)."""
        if self.cfg.hub_strategy != "every_save" or self.problem or checkpoint.name == self.last_pushed:
            return  # (the Trainer may save the last step twice: at --save-steps and at the epoch's end)
        self.last_pushed = checkpoint.name
        try:
            self._api().upload_folder(repo_id=self.repo_id, folder_path=str(checkpoint), path_in_repo=LAST_CHECKPOINT,
                                      delete_patterns="*", commit_message=f"Training in progress, {checkpoint.name}")
        except Exception as err:  # a network or hub failure must not stop the training
            warn(f"--push-to-hub: pushing {checkpoint.name} failed ({_reason(err)}); training goes on.")

    def finish(self) -> str:
        """Upload the output folder (after everything is saved); exit 2 with one message when it cannot."""
        if self.problem is None:
            try:
                api = self._api()
                api.upload_folder(repo_id=self.repo_id, folder_path=str(self.output_dir), ignore_patterns=NOT_PUSHED,
                                  commit_message="End of training")
                return f"https://huggingface.co/{self.repo_id}"
            except Exception as err:  # whatever the hub or the network says, the local run is complete
                self.problem = _reason(err)
        target = self.repo_id or repo_name(self.cfg, self.output_dir)
        raise UserError(f"--push-to-hub: not pushed: {self.problem}. The run is saved in {self.output_dir}.",
                        hint=f"Push it later with: hf upload {target} {self.output_dir} ."
                             + "".join(f" --exclude {shlex.quote(p)}" for p in NOT_PUSHED)
                             + (" --private" if self.cfg.hub_private else ""))


def _figure(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _reason(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
