"""--test-file / --do-predict: the final model on a test set, after training, in both loops.

The test split is read like the other splits (`runner/splits.py`: filters, the task's checks), kept out of
training and validation, made into features as evaluation features are (`Task.prepare_test`, into
`Prepared.test`), and evaluated here with the one evaluation every run uses
(`runner.evaluation.evaluate_batches`) on the model the loop leaves in the run context: its rows go to
test_predictions.jsonl and its metrics, as `test_*` keys, to metrics.json.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nlpcli import layout
from nlpcli.runner.context import RunContext
from nlpcli.runner.report import RunReport


def evaluate_test(ctx: RunContext, raw_test: Any, labelled: bool) -> dict[str, Any]:
    """The final model on the test set (`ctx.prepared.test`, made from `raw_test`): test_predictions.jsonl (main
    process) and the `test_*` metrics. An unlabelled test set gives predictions only: no metrics, and its rows
    lose the placeholder references. The run report keeps the validation evaluations' facts."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from nlpcli.runner.evaluation import evaluate_batches
    from nlpcli.runner.sampling import loader_generator

    accelerator = Accelerator(mixed_precision=ctx.mixed_precision, cpu=not torch.cuda.is_available())
    features = ctx.prepared.test
    loader = DataLoader(
        ctx.model_inputs(features),
        batch_size=ctx.cfg.per_device_eval_batch_size,
        collate_fn=ctx.task.collator(ctx.tokenizer, ctx.model, ctx.cfg),
        generator=loader_generator(ctx.cfg.seed),
    )
    model = accelerator.prepare_model(ctx.model, evaluation_mode=True)
    loader = accelerator.prepare_data_loader(loader)
    test_ctx = dataclasses.replace(ctx, prepared=dataclasses.replace(ctx.prepared, eval=features), raw_eval=raw_test,
                                   predictions_file=layout.TEST_PREDICTIONS, unlabelled=not labelled,
                                   report=RunReport())
    metrics = evaluate_batches(accelerator, model, loader, test_ctx)
    if not labelled:
        return {}
    return {"test_" + key.removeprefix("eval_"): value for key, value in metrics.items()}
