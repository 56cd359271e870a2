"""--report-to: experiment trackers, for real and offline (wandb's offline run file, MLflow's local file store),
in both loops: what they hold is what log_history.jsonl holds. And the refusals, before anything is written."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import TRACKERS_DIR, read_jsonl, run_cli

LOOPS = ["trainer", "accelerate"]
SMOKE = ["ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "2", "--learning-rate", "5e-3"]


def wandb_records(path: Path) -> list:
    """The records of an offline run's `.wandb` file (a LevelDB-style log of protobuf records: 7-byte header,
    32 KiB blocks, each record chunk with a crc32, a length and a type: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data, block, records, pending, pos = path.read_bytes(), 32768, [], b"", 7
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left in this block for a chunk header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending, pos = pending + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or its last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_run(name: str) -> tuple[dict, list[dict]]:
    """(config, history rows) of the offline run called `name` (wandb reads WANDB_DIR once a process: the
    suite's folder, see conftest)."""
    for path in TRACKERS_DIR.glob("wandb/offline-run-*/run-*.wandb"):
        records = wandb_records(path)
        if any(r.WhichOneof("record_type") == "run" and r.run.display_name == name for r in records):
            break
    else:
        raise AssertionError(f"no offline wandb run called {name}")
    config, rows = {}, []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            update = record.run.config.update if kind == "run" else record.config.update
            config.update({item.key: json.loads(item.value_json) for item in update})
        elif kind == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return config, rows


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    """MLflow's local file store under this test's folder."""
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # the Trainer's callback sets it for the process: the next test starts from its own
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_wandb_and_mlflow_hold_the_logged_history(tmp_path, loop, mlflow_uri):
    from mlflow.tracking import MlflowClient

    out = tmp_path / f"tracked-{loop}-{tmp_path.name}"  # the wandb run's name: one of its own
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "4", "--logging-steps", "1", "--save-strategy", "no",
                     "--report-to", "wandb,mlflow", "--output-dir", out)
    assert result.exit_code == 0, result.output
    history = read_jsonl(out / "log_history.jsonl")
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    evaluations = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
    assert [step for step, _ in train] == [1, 2, 3, 4] and evaluations

    config, rows = wandb_run(out.name)
    assert config["learning_rate"] == 5e-3 and config["max_steps"] == 4  # the TrainingArguments
    step = "train/global_step" if loop == "trainer" else "_step"  # the Trainer's callback: its own x axis
    assert [(row[step], row["train/loss"]) for row in rows if "train/loss" in row] == train
    assert [(row[step], row["eval/loss"]) for row in rows if "eval/loss" in row] == evaluations
    assert [row["train/learning_rate"] for row in rows if "train/loss" in row] == [
        r["learning_rate"] for r in history if "loss" in r]

    client = MlflowClient(tracking_uri=mlflow_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "nlpcli"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == out.name and run.data.params["learning_rate"] == "0.005"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")] == train
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "eval/loss")] == evaluations


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_a_tracker_that_cannot_start_stops_the_run_with_its_reason(tmp_path, loop, mlflow_uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # MLflow 3 refuses a file store unless this is set
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "2", "--report-to", "mlflow", "--no-eval-before",
                     "--output-dir", tmp_path / "run")
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "--report-to mlflow: the tracker could not start: The filesystem tracking backend" in output
    assert "MLFLOW_ALLOW_FILE_STORE" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()  # refused before its first step: a new run leaves no folder


def test_an_unknown_tracker_is_refused_naming_the_known_ones(tmp_path):
    out = tmp_path / "x"
    result = run_cli(*SMOKE, "--max-steps", "1", "--report-to", "tensorboard,wandbb", "--output-dir", out)
    assert result.exit_code == 2 and "--report-to wandbb" in result.output
    assert "wandb, mlflow, trackio, comet_ml" in result.output
    assert not out.exists()


@pytest.mark.parametrize(("name", "install"), [("wandb", "pip install wandb"), ("mlflow", "pip install mlflow"),
                                               ("comet_ml", "pip install comet_ml")])
def test_a_tracker_without_its_package_names_it(tmp_path, monkeypatch, name, install):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None if module == name else real(module, *a))
    out = tmp_path / "x"
    result = run_cli(*SMOKE, "--max-steps", "1", "--report-to", f"tensorboard,{name}", "--output-dir", out)
    assert result.exit_code == 2 and install in result.output, result.output
    assert not out.exists()


def test_report_to_reads_a_comma_list_or_a_yaml_list():
    from nlpcli.config import RunConfig, coerce
    from nlpcli.runner import trackers

    assert coerce(RunConfig, "report_to", "wandb, mlflow", "--report-to") == ["wandb", "mlflow"]
    assert coerce(RunConfig, "report_to", ["wandb", "tensorboard"], "config.yaml") == ["wandb", "tensorboard"]
    assert coerce(RunConfig, "report_to", "none", "--report-to") is None
    assert trackers.requested(["none", "wandb", "wandb"]) == ["wandb"]
    assert trackers.trainer_report_to(["tensorboard", "wandb"]) == ["wandb"]  # TensorBoard: nlpcli's callback
    assert trackers.trainer_report_to(["tensorboard"]) == "none"
