"""Helper for CLI tests whose subject comes before any data is read: `stop_before_the_loop` lets `nlpcli TASK`
run its option checks, output-folder refusals, lock and clean-up for real, and replaces what follows (data,
model, training loop, files) with a probe that records what it was handed."""

from __future__ import annotations

import json
from typing import Any

from nlpcli.layout import LOCK as LOCK_FILE


def stop_before_the_loop(monkeypatch) -> list[dict[str, Any]]:
    """Patch `nlpcli.runner.run._run_locked`; each run that reaches it appends {cfg, output_dir, entries (the
    folder's contents then), lock (the lock file's content then)} to the returned list."""
    from nlpcli.runner import run

    reached: list[dict[str, Any]] = []

    def probe(task, task_name, cfg, state, output_dir, *rest):
        lock = output_dir / LOCK_FILE
        reached.append({"cfg": cfg, "output_dir": output_dir, "entries": sorted(p.name for p in output_dir.iterdir()),
                        "lock": json.loads(lock.read_text()) if lock.is_file() else None})
        return {"output_dir": str(output_dir), "metrics": {}}

    monkeypatch.setattr(run, "_run_locked", probe)
    return reached
