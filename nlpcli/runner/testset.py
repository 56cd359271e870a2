"""--test-file / --do-predict: the final model on a test set, after training, in both loops.

The test split is read like the other splits (filters, the task's checks and features), kept out of
training and validation, and evaluated with the one evaluation every run uses
(`runner.evaluation.evaluate_batches`) on the model the loop leaves in the run context: its rows go to
test_predictions.jsonl and its metrics, as `test_*` keys, to metrics.json.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from nlpcli import layout
from nlpcli.config import RunConfig
from nlpcli.errors import UserError
from nlpcli.runner.context import RunContext
from nlpcli.sources import data

TEST_SPLIT = "test"


def wanted(cfg: RunConfig) -> bool:
    return bool(cfg.test_file or cfg.do_predict)


def refuse_streaming(cfg: RunConfig) -> None:
    if wanted(cfg):
        raise UserError("--test-file / --do-predict read a whole test set; drop --streaming to use them.")


def add_test_split(raw: Any, cfg: RunConfig, task: Any, text_column: str, label_column: str) -> tuple[Any, bool]:
    """(`raw` with its `test` split, whether that split has labels): --test-file's records, or the data set's
    own test split (--do-predict), which must exist. Test data without the task's label columns gets the
    task's placeholder labels (`Task.without_labels`), when it has a way to predict without them.
    Without either option, (`raw` as it is, True)."""
    if cfg.test_file:
        raw[TEST_SPLIT] = data.load_split_file(cfg, task.sample, TEST_SPLIT, text_column, label_column)
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


def take_test_split(raw: Any, cfg: RunConfig) -> tuple[Any, Any | None]:
    """(`raw` without the test split, the test split when --test-file / --do-predict asks for it)."""
    test = raw.pop(TEST_SPLIT) if wanted(cfg) else None
    return raw, test


def with_test(raw: Any, test: Any | None) -> Any:
    """`raw` plus the test split (for the column and record checks), `raw` itself when there is none."""
    import datasets

    return raw if test is None else datasets.DatasetDict({**raw, TEST_SPLIT: test})


def test_features(task: Any, test: Any, tokenizer: Any, cfg: RunConfig) -> Any:
    """The test split's features, made as the task makes evaluation features. A copy of the task makes them,
    so that the facts it keeps about the validation data (run.json) stay those of the validation data; and
    --max-eval-samples does not cut the test set."""
    import datasets

    _, features = copy.deepcopy(task).prepare(datasets.DatasetDict({"validation": test}), tokenizer,
                                              dataclasses.replace(cfg, max_eval_samples=None))
    if len(features) == 0:
        raise UserError(f"{data.describe(cfg, TEST_SPLIT)}: no test features after tokenization.")
    return features


def evaluate_test(ctx: RunContext, features: Any, raw_test: Any, labelled: bool) -> dict[str, Any]:
    """The final model on the test set: test_predictions.jsonl (main process) and the `test_*` metrics. An
    unlabelled test set gives predictions only: no metrics, and its rows lose the placeholder references."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from nlpcli.runner.accelerate import loader_generator
    from nlpcli.runner.evaluation import evaluate_batches

    accelerator = Accelerator(mixed_precision=ctx.mixed_precision, cpu=not torch.cuda.is_available())
    loader = DataLoader(
        ctx.model_inputs(features),
        batch_size=ctx.cfg.per_device_eval_batch_size,
        collate_fn=ctx.task.collator(ctx.tokenizer, ctx.model, ctx.cfg),
        generator=loader_generator(ctx.cfg.seed),
    )
    model = accelerator.prepare_model(ctx.model, evaluation_mode=True)
    loader = accelerator.prepare_data_loader(loader)
    test_ctx = dataclasses.replace(ctx, eval_features=features, raw_eval=raw_test,
                                   predictions_file=layout.TEST_PREDICTIONS, unlabelled=not labelled)
    metrics = evaluate_batches(accelerator, model, loader, test_ctx)
    if not labelled:
        return {}
    return {"test_" + key.removeprefix("eval_"): value for key, value in metrics.items()}
