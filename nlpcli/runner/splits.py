"""The data of a run, read the same way for every task: load -> check and normalise -> split off the test set.

- load: the configured source (a stream with --streaming), plus the test split of --test-file /
  --do-predict (given the task's placeholder labels when it has none), then the --filter rows;
- normalise: the task's `normalize` over every split, test included (records are checked, and bad ones
  named or skipped, before a validation part is held out of train);
- split off the test set: exactly train and validation remain (10% of train held out when there is no
  validation split), --max-*-samples cut them, and every split, test included, must have the task's columns.
The result, `RunData`, carries the test split as one of its parts; `runner/run.py` goes on from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nlpcli.config import RunConfig
from nlpcli.errors import UserError
from nlpcli.sources import data
from nlpcli.tasks.base import Normalized, Task

TEST_SPLIT = "test"


@dataclass(frozen=True)
class RunData:
    """A run's raw splits, read and checked, and what reading them reported (for run.json)."""

    raw: Any  # {"train" (none with --eval-only), "validation"}: what the model trains and is evaluated on
    test: Any | None = None  # the test split of --test-file / --do-predict
    test_labelled: bool = True  # False: the test split has the task's placeholder labels
    filter_counts: list[dict[str, Any]] = field(default_factory=list)  # per --filter: rows seen/kept per split
    data_report: dict[str, Any] = field(default_factory=dict)  # `Normalized.data_report`
    task_facts: dict[str, Any] = field(default_factory=dict)  # `Normalized.facts`

    def with_test(self) -> Any:
        """The splits plus the test split (for the column and record checks), `raw` itself when there is none."""
        import datasets

        return self.raw if self.test is None else datasets.DatasetDict({**self.raw, TEST_SPLIT: self.test})


def wanted(cfg: RunConfig) -> bool:
    """True when the run evaluates on a test set (--test-file / --do-predict)."""
    return bool(cfg.test_file or cfg.do_predict)


def read(task: Task, cfg: RunConfig) -> RunData:
    """Load, check and normalise, split off the test set."""
    if cfg.streaming:
        normalized = task.normalize(load_streamed(task, cfg), cfg)
        raw, test, test_labelled, filter_counts = normalized.raw, None, True, []
    else:
        loaded, test_labelled, filter_counts = load(task, cfg)
        normalized = task.normalize(loaded, cfg)
        raw, test = split_off_test(normalized, cfg)
    if cfg.eval_only and "train" in raw:
        del raw["train"]
    if not task.limits_count_features:
        raw = data.subsample(raw, cfg.max_train_samples, cfg.max_eval_samples)
    found = RunData(raw, test, test_labelled, filter_counts, normalized.data_report, normalized.facts)
    data.check_columns(found.with_test(), task.required_columns(cfg), cfg)
    return found


def split_off_test(normalized: Normalized, cfg: RunConfig) -> tuple[Any, Any | None]:
    """(exactly train and validation, the test split when --test-file / --do-predict asks for one)."""
    raw = dict(normalized.raw)
    test = raw.pop(TEST_SPLIT) if wanted(cfg) else None
    return data.ensure_splits(raw, cfg, split_seed(cfg)), test


def split_seed(cfg: RunConfig) -> int:
    return cfg.seed if cfg.split_seed is None else cfg.split_seed


def columns(cfg: RunConfig, task: Task) -> tuple[str, str]:
    """The text and label columns a file's reader names its columns by (a .txt file's lines: the text column)."""
    return cfg.text_column or task.default_text_column, cfg.label_column or "label"


def load_streamed(task: Task, cfg: RunConfig) -> Any:
    """--streaming: a streamed training split and a whole validation split; no test set, no --filter."""
    if not task.supports_streaming:
        raise UserError(f"--streaming: the {task.name} task reads its data whole; drop --streaming.")
    if cfg.max_steps <= 0 and not cfg.eval_only:
        raise UserError("--streaming needs --max-steps: a stream has no length to count epochs in.")
    if wanted(cfg):
        raise UserError("--test-file / --do-predict read a whole test set; drop --streaming to use them.")
    return data.load_streamed(cfg, task.sample, *columns(cfg, task))


def load(task: Task, cfg: RunConfig) -> tuple[Any, bool, list[dict[str, Any]]]:
    """(the splits, test included, whether the test split has labels, the --filter counts)."""
    raw, test_labelled = add_test_split(data.load_raw(cfg, task.sample, *columns(cfg, task)), cfg, task)
    if cfg.eval_only and "train" in raw and ("validation" in raw or "test" in raw):
        del raw["train"]  # not needed: the evaluation data is there
    raw, filter_counts = data.apply_filters(raw, cfg.filter, cfg)
    return raw, test_labelled, filter_counts


def add_test_split(raw: Any, cfg: RunConfig, task: Task) -> tuple[Any, bool]:
    """(`raw` with its `test` split, whether that split has labels): --test-file's records, or the data set's
    own test split (--do-predict), which must exist. Test data without the task's label columns gets the
    task's placeholder labels (`Task.without_labels`), when it has a way to predict without them.
    Without either option, (`raw` as it is, True)."""
    if cfg.test_file:
        raw[TEST_SPLIT] = data.load_split_file(cfg, task.sample, TEST_SPLIT, *columns(cfg, task))
    elif cfg.do_predict and TEST_SPLIT not in raw:
        source = "the bundled sample" if cfg.dataset == "sample" else (
            cfg.dataset if cfg.dataset and not cfg.train_file else "the local files")
        raise UserError(f"--do-predict: {source} has no test split (splits: {', '.join(raw)}).",
                        hint="Give the test data with --test-file FILE.")
    if not wanted(cfg):
        return raw, True
    missing = [c for c in task.required_columns(cfg) if c not in raw[TEST_SPLIT].column_names]
    filled = task.without_labels(raw[TEST_SPLIT], cfg) if missing else None
    if filled is None:
        return raw, True  # a test split that lacks other columns is refused with the others (check_columns)
    raw[TEST_SPLIT] = filled
    return raw, False
