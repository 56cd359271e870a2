"""The run folder's layout: the name of every file and folder a run writes into its output folder or reads
back from one. Every module takes these names from here; none spells them itself.

A run folder holds the saved model (transformers' own files, named below as transformers names them), and:
- `nlpcli_config.yaml`: the resolved configuration, with its task (read back by --eval-only, --config, predict);
- `metrics.json` and `run.json`: the final metrics and the facts of the run; `README.md`: its model card;
- `train_results.json`, `eval_results.json`, `predict_results.json`, `all_results.json`: the same figures as the
  transformers example scripts name them;
- `metrics_before.json`, `eval_predictions_before.jsonl`: the evaluation before training;
- `eval_predictions.jsonl`, `test_predictions.jsonl`: one row per evaluated example;
- `log_history.jsonl`, `curves.png`, `tensorboard/`: what the run logged as it went, and its curves;
- `checkpoint-<step>/`, each written in `.checkpoints.partial/` and renamed into place once complete; each is a
  saved model (both loops), with the loop's state (`trainer_state.json` or `nlpcli_state.json`) and the run
  record (`nlpcli_record.json`);
- `preset-tokenizer/`: the tokenizer a preset fitted to this run's text; `.nlpcli.lock`: the running run's lock.

A study's folder (`nlpcli tune`) holds one run folder per trial (`trial-<number>/`, each with `tune_trial.json`: the
trial's state as the study recorded it), the study's journal (`tune.journal`, unless --storage names a database),
`tune.json` (the trials, the best one), `tune.png` (history and importances) and `best_config.yaml`.

Imports nothing from nlpcli, so every layer may use it.
"""

from __future__ import annotations

from pathlib import Path

RUN_CONFIG = "nlpcli_config.yaml"  # the resolved configuration a run saves beside its model
METRICS = "metrics.json"  # the final evaluation (Trainer key names)
RUN_INFO = "run.json"  # world size, device, precision, seed, versions, wall time, sample counts
CARD = "README.md"  # the model card
METRICS_BEFORE = "metrics_before.json"  # the evaluation before training, as *_before keys
EVAL_PREDICTIONS = "eval_predictions.jsonl"
EVAL_PREDICTIONS_BEFORE = "eval_predictions_before.jsonl"
TEST_PREDICTIONS = "test_predictions.jsonl"
HISTORY = "log_history.jsonl"  # one JSON object per logging interval and per evaluation
CURVES = "curves.png"
# the transformers example scripts' result files (Trainer.save_metrics), for scripts built around them
TRAIN_RESULTS = "train_results.json"
EVAL_RESULTS = "eval_results.json"
PREDICT_RESULTS = "predict_results.json"
ALL_RESULTS = "all_results.json"
TENSORBOARD = "tensorboard"  # a folder, for both loops
LOCK = ".nlpcli.lock"  # held by the run writing into the folder
PRESET_TOKENIZER = "preset-tokenizer"  # a folder: the tokenizer a preset fitted to this run's text
PRESET_TOKENIZER_STAGING = ".preset-tokenizer.partial"  # a folder: that tokenizer, until the features are made

CHECKPOINT_PREFIX = "checkpoint-"  # checkpoint-<step>, as the Trainer names them
STAGING = ".checkpoints.partial"  # a folder: checkpoints being written (or deleted) under their own names
DISCARDED_SUFFIX = ".discarded"  # in STAGING: a checkpoint being deleted
LOOP_STATE = "nlpcli_state.json"  # in an Accelerate loop checkpoint: where in training it stands
RECORD = "nlpcli_record.json"  # in each checkpoint: the run record (loss total, best model, early stopping)

# transformers' names for a saved model's and a checkpoint's files (tests/test_layers.py checks them against
# transformers' own constants, which this module does not import: it must stay light)
MODEL_CONFIG = "config.json"  # transformers.utils.CONFIG_NAME
SAFE_WEIGHTS = "model.safetensors"  # transformers.utils.SAFE_WEIGHTS_NAME
WEIGHTS = "pytorch_model.bin"  # transformers.utils.WEIGHTS_NAME
TRAINER_STATE = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME
TOKENIZER_FILE = "tokenizer.json"  # transformers.tokenization_utils_fast.TOKENIZER_FILE
TOKENIZER_CONFIG = "tokenizer_config.json"  # transformers.tokenization_utils_base.TOKENIZER_CONFIG_FILE
TOKENIZER_VOCABS = ("vocab.txt", "vocab.json")  # WordPiece's, byte-level BPE's: a tokenizer saved without its JSON

# a study's folder (nlpcli tune)
TRIAL_PREFIX = "trial-"  # trial-<number>: one run folder per trial
TRIAL_STATE = "tune_trial.json"  # in a trial's folder: its number, state, parameters and objective
TUNE_JOURNAL = "tune.journal"  # the study's default storage (Optuna's journal file)
TUNE_RESULTS = "tune.json"  # the trials and the best one
TUNE_CHART = "tune.png"  # optimisation history and parameter importances
BEST_CONFIG = "best_config.yaml"  # the best trial's configuration, for `nlpcli TASK --config`

DEFAULT_ROOT = "runs"  # where a run without --output-dir goes: runs/<task>-<timestamp>

# what shows that a folder holds a finished run
FINISHED_RUN_FILES = (MODEL_CONFIG, SAFE_WEIGHTS, WEIGHTS, METRICS)
# what stays local with --push-to-hub: checkpoints (pushed on their own with every_save), the lock, staging and
# temporary files, the preset's tokenizer (the final tokenizer is saved beside the model)
NOT_PUSHED = (f"{CHECKPOINT_PREFIX}*", ".*", f"{PRESET_TOKENIZER}*")
# the files an evaluation writes its rows to, and where they go once it was the evaluation before training
BEFORE_TRAINING = {EVAL_PREDICTIONS: EVAL_PREDICTIONS_BEFORE}


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_step(name: str) -> int | None:
    """The step of a `checkpoint-<step>` name; None for any other name."""
    number = name[len(CHECKPOINT_PREFIX):] if name.startswith(CHECKPOINT_PREFIX) else ""
    return int(number) if number.isdigit() else None


def default_output_dir(task: str, stamp: str) -> Path:
    return Path(DEFAULT_ROOT) / f"{task}-{stamp}"


def trial_name(number: int) -> str:
    return f"{TRIAL_PREFIX}{number}"


def default_study_dir(task: str) -> Path:
    """Where `nlpcli tune TASK` keeps its study without --output-dir: the same folder for every worker started
    with the same command."""
    return Path(DEFAULT_ROOT) / f"tune-{task}"
