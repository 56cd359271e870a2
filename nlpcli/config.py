"""One typed run configuration: `RunConfig`, the keys every task shares (a task's subclass adds its own), and
what a resolved one says about itself: where each value came from (the run header), its YAML
(nlpcli_config.yaml, read back by `saved_config`), and whether its model selection can work.

Every field of `RunConfig` (and of a task's subclass of it) is a config key, a YAML key and a CLI
option (`learning_rate` <-> `--learning-rate`). The layers it is resolved from are `config_layers`'s; how
a value is typed and checked, `config_values`'s. This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nlpcli import run_folder
from nlpcli.config_args import RESUME_CHOICES
from nlpcli.config_fields import option
from nlpcli.config_values import coerce
from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import EVAL_PREFIX, higher_is_better

# transformers' SchedulerType names that need no arguments beyond warm-up and training steps
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")


STRATEGIES = ("epoch", "steps", "no")  # when to evaluate or save
DEFAULT_SAVE_STEPS = 500  # the Trainer's
MAX_SEED = 2**32 - 1  # NumPy's seeds (transformers.set_seed seeds NumPy too) are 0 .. 2**32 - 1
HUB_STRATEGIES = ("end", "every_save")


@dataclass
class RunConfig:
    """The keys every task shares. Task modules subclass this to add their own."""

    model: str = option("bert-base-cased", "Hub id, local model folder, or preset (tiny, minilm).")
    dataset: str | None = option(None, "Hub data set name, or 'sample' for the bundled sample.")
    dataset_config: list[str] | None = option(
        None, "Hub data set configuration name; several (en,es) are concatenated split by split, shuffled with --seed.",
        data_bound=True,
    )
    dataset_revision: str | None = option(None, "Hub data set revision: branch, tag or commit.", data_bound=True)
    data_dir: str | None = option(None, "Folder inside the hub data set repository to load.", data_bound=True)
    validation_dataset: str | None = option(
        None, "With --dataset: a separate hub data set to validate on (its 'validation' split, else its only one).",
        data_bound=True,  # another --dataset must not be validated on the default data set's companion
    )
    train_file: str | None = option(None, "Local training file (json, jsonl, csv, txt, conll).")
    streaming: bool = option(False, "Read the training split while training instead of loading it first (needs "
                                    "--max-steps; tasks that support it).")
    validation_file: str | None = option(None, "Local validation file (same formats).")
    test_file: str | None = option(
        None, "After training, run the final model on this file (same formats): test_predictions.jsonl, and test_* "
        "metrics when it has labels."
    )
    do_predict: bool = option(False, "After training, run the final model on the data set's test split, as "
                                     "--test-file does.")
    field: str | None = option(
        None, "JSON key holding the records (e.g. 'data' for nested files).", data_bound=True
    )
    text_column: str | None = option(None, "Column holding the input text/tokens.", data_bound=True)
    label_column: str | None = option(None, "Column holding the labels.", data_bound=True)
    filter: list[str] | None = option(
        None, "Keep only rows whose COLUMN is one of the values: COLUMN=V1,V2 (repeatable).", repeatable=True,
        data_bound=True,
    )
    output_dir: str | None = option(None, "Where to write the model and metrics [runs/<task>-<time>].")
    loop: str = option("trainer", "Training loop.", choices=("trainer", "accelerate"))
    epochs: float = option(3.0, "Number of training epochs.", at_least=0)
    max_steps: int = option(-1, "Stop after this many optimizer steps (overrides epochs when > 0).", at_least=-1)
    learning_rate: float = option(2e-5, "Peak learning rate for AdamW.", above=0)
    weight_decay: float = option(0.0, "AdamW weight decay.", at_least=0)
    warmup_ratio: float = option(0.0, "Fraction of steps used for linear warm-up.", at_least=0, below=1)
    warmup_steps: int = option(0, "Warm-up steps (overrides --warmup-ratio when > 0).", at_least=0)
    lr_scheduler: str = option("linear", "Learning-rate schedule after warm-up (transformers' get_scheduler names).",
                               choices=LR_SCHEDULERS)
    eval_strategy: str | None = option(
        None, "When to evaluate while training [steps with --eval-steps, else epoch].", choices=STRATEGIES
    )
    eval_steps: int | None = option(
        None, "With --eval-strategy steps: evaluate every N optimizer steps [--logging-steps].", at_least=1
    )
    batch_size: int = option(8, "Training batch size per device.", at_least=1)
    eval_batch_size: int | None = option(None, "Evaluation batch size per device [batch_size].", at_least=1)
    gradient_accumulation_steps: int = option(1, "Accumulate gradients over this many batches.", at_least=1)
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this value (0: no clipping).", at_least=0)
    max_length: int | None = option(None, "Truncate inputs to this many tokens [model maximum].", at_least=1)
    max_train_samples: int | None = option(None, "Use only the first N training examples.", at_least=1)
    max_eval_samples: int | None = option(None, "Use only the first N evaluation examples.", at_least=1)
    seed: int = option(42, "Random seed.", at_least=0, at_most=MAX_SEED)
    split_seed: int | None = option(
        None, "Seed of the 90/10 split when the data has no validation split [seed].", data_bound=True, at_least=0,
        at_most=MAX_SEED,
    )
    precision: str = option(
        "auto", "auto: the launcher's mixed precision if it set one, else bf16 on GPUs that support it, fp16 on "
        "other GPUs, fp32 on CPU.", choices=("auto", "fp32", "fp16", "bf16")
    )
    resume: str = option(
        "no", "yes (or a bare --resume): continue from the newest complete checkpoint in the output folder; auto: "
        "the same when there is one, else start a new run (one command line starts and restarts a job); PATH: "
        "continue from that checkpoint-<step> folder of the run (its folder is the output folder).",
    )
    overwrite: bool = option(False, "Delete what the output folder holds (a finished run, checkpoints) first.")
    eval_only: bool = option(False, "Evaluate --model on the validation set without training.")
    eval_before: bool = option(True, "Evaluate the model before training too (*_before metrics, "
                                     "metrics_before.json, eval_predictions_before.jsonl).")
    overfit_batch: int | None = option(
        None, "Overfit check: train on one batch of N training examples (a bare --overfit-batch: 8) for "
              "--max-steps steps [200], evaluate on that batch, exit 1 unless the loss falls near 0 and the "
              "metric near its best.", at_least=1,
    )
    logging_steps: int | None = option(
        None, "Log the training loss every N optimizer steps [chosen for the run's length: about 25 logs, at least "
              "every step].", at_least=1,
    )
    save_total_limit: int | None = option(2, "Keep at most N checkpoints.", at_least=1)
    save_strategy: str | None = option(
        None, "When to write a checkpoint [steps with --save-steps, else epoch]; the final model is saved anyway.",
        choices=STRATEGIES,
    )
    save_steps: int | None = option(
        None, "With --save-strategy steps: checkpoint every N optimizer steps [500].", at_least=1
    )
    load_best_model_at_end: bool = option(
        False, "Keep the best evaluated checkpoint (by --metric-for-best-model) as the output model."
    )
    metric_for_best_model: str = option("eval_loss", "Metric that picks the best model and drives early stopping.")
    greater_is_better: bool | None = option(None, "Whether a higher --metric-for-best-model is better [no for losses "
                                                  "and perplexity, else yes].")
    early_stopping_patience: int | None = option(
        None, "Stop after N evaluations in a row without improvement of --metric-for-best-model.", at_least=1
    )
    report_to: list[str] | None = option(
        None, "Also log the training to these trackers: none, or some of tensorboard (<output>/tensorboard), wandb, "
              "mlflow, trackio, comet_ml, clearml, dvclive, swanlab (comma-separated; a YAML list).",
    )
    optim: str = option("adamw_torch_fused", "Optimizer, by transformers' OptimizerNames (adamw_torch, "
                                             "adamw_torch_fused, adafactor, ...).")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass: less memory, "
                                                 "more compute.")
    torch_compile: bool = option(False, "Compile the model with torch.compile before training.")
    attn_implementation: str | None = option(
        None, "Attention kernel, by transformers' attn_implementation: sdpa, eager, flash_attention_2, "
              "flash_attention_3, flex_attention, or a hub kernel [transformers' choice: sdpa where the model has "
              "it, else eager].",
    )
    preprocessing_workers: int | None = option(
        None, "Tokenize and prepare the data with N processes (datasets' num_proc) [1].", at_least=1,
    )
    threads: int | None = option(
        None, "Torch's intra-op CPU threads [OMP_NUM_THREADS if set, else the CPUs this process may use (affinity, "
              "cgroup quota) divided among this machine's processes].", at_least=1,
    )
    group_by_length: bool = option(False, "Batch training inputs of similar length together (less padding).")
    length_split: int | None = option(
        None, "Run a training batch whose rows differ much in length as length-sorted pieces, each padded to its own "
              "longest row and at least N token positions: the same step with less padding; 0: never [on a CPU "
              "1024, or 256 for models of 10M parameters or more; 4096 on a GPU].", at_least=0,
    )
    trainer_args: dict[str, Any] | None = option(
        None, "Set a transformers TrainingArguments field: KEY=VALUE (repeatable; a trainer_args: mapping in YAML). "
              "Fields nlpcli has an option for set that option.", repeatable=True, cli_flag="--trainer-arg",
    )
    preset_vocab_size: int = option(2000, "Vocabulary size of the tokenizer the tiny preset trains.", at_least=8)
    push_to_hub: bool = option(False, "Upload the output folder to the Hugging Face Hub when training ends (needs "
                                      "a token: `hf auth login` or HF_TOKEN).")
    hub_model_id: str | None = option(None, "Hub repository to push to: NAME or OWNER/NAME [the output folder's name].")
    hub_private: bool = option(False, "Create the hub repository private.")
    hub_strategy: str = option("end", "With --push-to-hub: end (the final folder), or every_save (also each "
                                      "checkpoint, to last-checkpoint/ in the repository).", choices=HUB_STRATEGIES)

    @property
    def per_device_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    @property
    def evaluation_strategy(self) -> str:
        return self._strategy(self.eval_strategy, self.eval_steps)

    @property
    def evaluation_interval(self) -> int | None:
        """Optimizer steps between evaluations under the steps strategy (the Trainer's default: logging steps);
        None while the logging interval is still to be chosen for the run's length (`runner.settings`)."""
        return self.eval_steps or self.logging_steps

    @property
    def saving_strategy(self) -> str:
        return self._strategy(self.save_strategy, self.save_steps)

    def _strategy(self, chosen: str | None, steps: int | None) -> str:
        """An --eval-strategy / --save-strategy: as given, else steps when its --*-steps is, else epoch; none with
        --eval-only."""
        if self.eval_only:
            return "no"
        return chosen or ("steps" if steps else "epoch")

    @property
    def saving_interval(self) -> int:
        return self.save_steps or DEFAULT_SAVE_STEPS

    @property
    def best_metric_key(self) -> str:
        return self.metric_for_best_model if self.metric_for_best_model.startswith(EVAL_PREFIX) else (
            EVAL_PREFIX + self.metric_for_best_model)

    @property
    def higher_is_better(self) -> bool:
        if self.greater_is_better is not None:
            return self.greater_is_better
        return higher_is_better(self.best_metric_key)


ORIGINS = "_nlpcli_origins"  # where `resolve_config` keeps each value's source (not a config key)
REPLACED = "_nlpcli_replaced"  # the keys a layer set over another value (not a config key)
SOURCE_ORDER = ("task defaults", "bundled sample", "preset", "saved run", "--config", "--set", "command line")
USER_SOURCES = ("--config", "--set", "command line")  # the layers a user writes (--trainer-arg: command line)


def with_origins(cfg: RunConfig, origins: dict[str, str], replaced: set[str] | None = None) -> RunConfig:
    """`cfg`, knowing where each value came from (`origins`: key -> 'task defaults', 'preset tiny', '--config FILE',
    '--set', 'command line') and which keys a layer set over a different value (`replaced`)."""
    cfg.__dict__[ORIGINS] = dict(origins)
    cfg.__dict__[REPLACED] = set(replaced or ())
    return cfg


def chosen(cfg: RunConfig, key: str, value: Any, why: str) -> RunConfig:
    """A copy of `cfg` with `key` set to a value nlpcli chose (`why` is its source, e.g. "chosen for the run's 30
    steps"), keeping what else `cfg` knows about itself (origins, a resume's plan)."""
    copy = dataclasses.replace(cfg, **{key: value})
    names = {f.name for f in dataclasses.fields(cfg)}
    copy.__dict__.update({k: v for k, v in cfg.__dict__.items() if k not in names})
    return with_origins(copy, {**value_origins(cfg), key: why}, {*cfg.__dict__.get(REPLACED, ()), key})


def value_origins(cfg: RunConfig) -> dict[str, str]:
    """Which layer set each key `resolve_config` took from a layer: 'task defaults', 'preset tiny',
    '--config FILE', '--set' or 'command line'."""
    return dict(cfg.__dict__.get(ORIGINS, {}))


def user_given(cfg: RunConfig) -> set[str]:
    """The keys whose value comes from a layer the user wrote: --config, --set or an option (--trainer-arg
    included), not from the task defaults, the bundled sample's settings, a preset or a saved run."""
    return {key for key, origin in value_origins(cfg).items() if origin.startswith(USER_SOURCES)}


def given_by_user(cfg: RunConfig, key: str) -> bool:
    return key in user_given(cfg)


def stated_values(cfg: RunConfig) -> dict[str, str]:
    """Key -> where its value came from, for each value a layer stated: one that differs from the built-in default,
    or that a layer set over a different value (`--warmup-ratio 0` over the tiny preset's 0.1; the preset's
    `warmup_steps: 0` over clm's 1000). What the run header and --print-config name ('set by nlpcli' for a value
    with no recorded source)."""
    origins, replaced = value_origins(cfg), cfg.__dict__.get(REPLACED, set())
    return {item.name: origins.get(item.name, "set by nlpcli") for item in dataclasses.fields(cfg)
            if getattr(cfg, item.name) != item.default or item.name in replaced}


def non_default_values(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """The values `stated_values` names, grouped by where they came from, in order of precedence."""
    grouped: dict[str, dict[str, Any]] = {}
    for key, source in stated_values(cfg).items():
        grouped.setdefault(source, {})[key] = getattr(cfg, key)
    return dict(sorted(grouped.items(), key=lambda item: _rank(item[0])))


def _rank(source: str) -> int:
    """The place of a value's source in SOURCE_ORDER (later: of higher precedence)."""
    return next((i for i, known in enumerate(SOURCE_ORDER) if source.startswith(known)), len(SOURCE_ORDER))


def origin_lines(cfg: RunConfig) -> list[str]:
    """One line per source for the run header: `preset tiny: learning_rate=0.001 weight_decay=0.01`."""
    return [f"{source}: " + " ".join(f"{key}={_shown(value)}" for key, value in values.items())
            for source, values in non_default_values(cfg).items()]


def _shown(value: Any) -> str:
    if isinstance(value, dict):  # trainer_args: as --trainer-arg takes them
        return ",".join(f"{key}={item}" for key, item in value.items())
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def check_strategies(cfg: RunConfig) -> None:
    """--eval-steps N with --eval-strategy epoch/no (and --save-steps N with --save-strategy epoch/no) contradict
    each other: refused when both come from the same place (or the steps from a later one). A strategy from a
    later layer than the steps (`--eval-strategy no` over a task default's eval_steps) overrides them."""
    origins = value_origins(cfg)
    for kind in ("eval", "save"):
        strategy, steps = getattr(cfg, f"{kind}_strategy"), getattr(cfg, f"{kind}_steps")
        if strategy in (None, "steps") or steps is None:
            continue
        strategy_from = origins.get(f"{kind}_strategy", "command line")
        steps_from = origins.get(f"{kind}_steps", "command line")
        if _rank(strategy_from) > _rank(steps_from) or (
                strategy_from == steps_from and strategy_from.startswith("saved run")):
            continue  # a later strategy overrides; a run's saved settings passed this check when it ran
        where = ("" if strategy_from == steps_from == "command line" else f" (both from {steps_from})"
                 if strategy_from == steps_from else f" ({kind}_steps from {steps_from}, {kind}_strategy from "
                                                     f"{strategy_from})")
        raise UserError(f"--{kind}-steps {steps} and --{kind}-strategy {strategy} contradict each other{where}: "
                        f"--{kind}-steps only counts with --{kind}-strategy steps.",
                        hint=f"Drop --{kind}-steps, or give --{kind}-strategy steps.")


def check_model_selection(cfg: RunConfig) -> None:
    """Best-model selection needs a checkpoint at every evaluation; early stopping needs evaluations."""
    if cfg.eval_only:
        return
    check_strategies(cfg)
    evaluation, saving = cfg.evaluation_strategy, cfg.saving_strategy
    if cfg.early_stopping_patience and evaluation == "no":
        raise UserError("--early-stopping-patience counts evaluations: drop --eval-strategy no.")
    if not cfg.load_best_model_at_end:
        return
    if evaluation == "no":
        raise UserError("--load-best-model-at-end picks among evaluations: drop --eval-strategy no.")
    if saving != evaluation:
        raise UserError(f"--load-best-model-at-end needs a checkpoint at each evaluation: --save-strategy must be "
                        f"the --eval-strategy ({evaluation}), got {saving}.")
    if evaluation == "steps" and cfg.evaluation_interval and cfg.saving_interval % cfg.evaluation_interval:
        raise UserError(f"--load-best-model-at-end needs a checkpoint at each evaluation: --save-steps "
                        f"({cfg.saving_interval}) must be a multiple of --eval-steps ({cfg.evaluation_interval}).")


def saved_config(cls: type[RunConfig], folder: str | Path) -> RunConfig:
    """The settings a run saved beside its model (nlpcli_config.yaml), or the defaults; keys `cls` does not
    know are left out."""
    path = run_folder.settings_file(folder)
    saved = run_folder.saved_settings(folder) or {}
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: coerce(cls, k, v, str(path)) for k, v in saved.items() if k in known})


def resuming(cfg: RunConfig) -> bool:
    return cfg.resume != "no"


def resume_checkpoint(cfg: RunConfig) -> Path | None:
    """The checkpoint folder `--resume PATH` names; None for yes, auto and no."""
    return None if cfg.resume in RESUME_CHOICES else Path(cfg.resume).expanduser()


def save_config(cfg: RunConfig, path: Path, task: str | None = None, record: dict[str, Any] | None = None) -> None:
    """The resolved configuration as YAML that `--config` reads back; `task` first when given, `record` (see
    `run_folder.RECORD_KEYS`) after the config keys. Written atomically: `predict` and `--eval-only` read it back."""
    write_text_atomic(path, config_yaml(cfg, task, record))


def save_settings(values: dict[str, Any], path: Path) -> None:
    """A run folder's nlpcli_config.yaml as given (a resumed run: the first run's keys and its record)."""
    write_text_atomic(path, yaml.safe_dump(values, sort_keys=False))


def config_yaml(cfg: RunConfig, task: str | None = None, record: dict[str, Any] | None = None) -> str:
    values = {"task": task} if task else {}
    return yaml.safe_dump({**values, **dataclasses.asdict(cfg), **(record or {})}, sort_keys=False)
