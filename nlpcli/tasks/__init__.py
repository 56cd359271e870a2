"""Task registry: name -> Task class, imported lazily so `nlpcli --help` stays fast."""

from __future__ import annotations

import importlib

from nlpcli.tasks.base import Task

TASK_MODULES = {
    "ner": "nlpcli.tasks.ner:NerTask",
    "mlm": "nlpcli.tasks.mlm:MlmTask",
    "translate": "nlpcli.tasks.translate:TranslateTask",
    "summarize": "nlpcli.tasks.summarize:SummarizeTask",
    "qa": "nlpcli.tasks.qa:QaTask",
    "clm": "nlpcli.tasks.clm:ClmTask",
    "classify": "nlpcli.tasks.classify:ClassifyTask",
}


def task_class(name: str) -> type[Task]:
    module_name, _, class_name = TASK_MODULES[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_task(name: str) -> Task:
    return task_class(name)()
