"""A resume knows its run: `--resume` compares the command's settings with the run's nlpcli_config.yaml before
anything is written; what would make another run is refused (exit 2, naming each difference), what only changes
how long or how visibly it trains is accepted with one line and recorded (nlpcli_config.yaml, run.json)."""

from __future__ import annotations

import json

import pytest
import yaml

from before_the_loop import stop_before_the_loop
from conftest import read_json, run_cli

NER = ("ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "4", "--learning-rate", "5e-3")


def snapshot(folder):
    """Every file under `folder` with its bytes and mtime."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, result.output


@pytest.fixture
def ner_run(tmp_path):
    """A ner run folder as the first run of NER (with --train-file data.jsonl) leaves it, as far as --resume
    looks: its nlpcli_config.yaml (with the record) and a complete checkpoint-4."""
    from nlpcli.config import save_config
    from nlpcli.config_layers import resolve_config
    from nlpcli.runner.continuity import first_run_record
    from nlpcli.tasks.ner import NerConfig

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"tokens": ["Paris", "is", "big"], "ner_tags": ["B-LOC", "O", "O"]}) + "\n")
    out = tmp_path / "run"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"global_step": 4, "epoch": 1.33}))
    import safetensors.torch
    import torch

    safetensors.torch.save_file({"w": torch.zeros(4)}, str(out / "checkpoint-4" / "model.safetensors"))  # reads back
    cfg = resolve_config(NerConfig, "ner", cli_values={
        "model": "tiny", "train_file": str(data), "batch_size": 4, "learning_rate": 5e-3, "output_dir": str(out)})
    save_config(cfg, out / "nlpcli_config.yaml", "ner", first_run_record(cfg, 1))
    return out, data


def args_of(ner_run):
    out, data = ner_run
    return ("ner", "--model", "tiny", "--train-file", data, "--batch-size", "4", "--learning-rate", "5e-3",
            "--output-dir", out, "--resume")


def test_resume_with_the_run_settings_goes_on(ner_run, monkeypatch):
    reached = stop_before_the_loop(monkeypatch)
    result = run_cli(*args_of(ner_run))
    assert result.exit_code == 0, result.output
    assert "changed settings" not in result.output
    assert reached[0]["cfg"].resume == "yes"


def test_another_task_model_and_training_settings_are_refused_naming_each(ner_run):
    out, data = ner_run
    before = snapshot(out)
    refused(run_cli("mlm", "--model", "tiny", "--train-file", data, "--output-dir", out, "--resume"),
            "task: ner in the run, mlm now")
    refused(run_cli(*args_of(ner_run), "--learning-rate", "1e-3", "--seed", "7", "--max-length", "64"),
            "--learning-rate: 0.005 in the run, 0.001 now", "--seed: 42 in the run, 7 now",
            "--max-length: none in the run, 64 now", "--overwrite")
    refused(run_cli(*args_of(ner_run), "--labels", "O,B-LOC,I-LOC"), "--labels: none in the run, O,B-LOC,I-LOC now")
    refused(run_cli(*args_of(ner_run), "--resume", out / "checkpoint-4", "--lr-scheduler", "cosine"),
            "--lr-scheduler: linear in the run, cosine now")
    assert snapshot(out) == before  # nothing written


def test_a_bare_resume_inherits_the_run_settings(ner_run, monkeypatch):
    """`nlpcli ner --output-dir RUN --resume`, no other option: the run's model, data and settings, not the task
    defaults; an option given is a change (here an accepted one), checked as when every option is repeated."""
    out, data = ner_run
    reached = stop_before_the_loop(monkeypatch)
    result = run_cli("ner", "--output-dir", out, "--resume", "--epochs", "5")
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "changed settings" in line] == [
        f"warning: --resume: continuing {out} with changed settings: --epochs 3 -> 5."]
    cfg = reached[0]["cfg"]
    assert (cfg.model, cfg.train_file, cfg.batch_size, cfg.learning_rate, cfg.warmup_ratio, cfg.epochs) == (
        "tiny", str(data), 4, 5e-3, 0.1, 5.0)  # not the task defaults' bert-base-cased, conll2003, batch 8
    assert cfg.resume == "yes" and cfg.output_dir == str(out)
    seed = run_cli("ner", "--resume", out / "checkpoint-4", "--seed", "7")  # PATH: its folder's run
    refused(seed, "this command differs: --seed: 42 in the run, 7 now.")


def test_more_epochs_of_a_run_that_stops_at_max_steps_are_named_as_changing_nothing(ner_run, monkeypatch):
    out, _ = ner_run
    saved = yaml.safe_load((out / "nlpcli_config.yaml").read_text())
    (out / "nlpcli_config.yaml").write_text(yaml.safe_dump({**saved, "max_steps": 4}, sort_keys=False))
    stop_before_the_loop(monkeypatch)
    kept = run_cli("ner", "--output-dir", out, "--resume", "--epochs", "5")
    assert kept.exit_code == 0, kept.output
    assert ("--epochs 5 changes nothing: the run stops at --max-steps 4, which it keeps (give --max-steps -1 to "
            "train by epochs)") in " ".join(kept.output.split())
    by_epochs = run_cli("ner", "--output-dir", out, "--resume", "--epochs", "5", "--max-steps", "-1")
    assert by_epochs.exit_code == 0 and "changes nothing" not in by_epochs.output
    assert "--epochs 3 -> 5, --max-steps 4 -> -1" in by_epochs.output


def test_a_checkpoint_of_another_run_is_refused_naming_every_difference(ner_run, tmp_path):
    """`--resume PATH` of another folder, loop and task: one refusal that names each, nothing written anywhere."""
    out, data = ner_run
    before = snapshot(out)
    other = tmp_path / "other"
    refused(run_cli("mlm", "--model", "tiny", "--train-file", data, "--loop", "accelerate", "--learning-rate", "1e-3",
                    "--output-dir", other, "--resume", out / "checkpoint-4"),
            f"--resume {out / 'checkpoint-4'} continues the run in {out}",
            f"--output-dir: {out} holds the checkpoint, {other} now",
            "--loop: trainer in the run (checkpoint-4 holds its state), accelerate now",
            "task: ner in the run, mlm now", "--learning-rate: 0.005 in the run, 0.001 now",
            "Resume it with nlpcli ner")
    assert snapshot(out) == before and not other.exists()


def test_a_changed_train_file_is_refused(ner_run, tmp_path):
    out, data = ner_run
    before = snapshot(out)
    data.write_text(json.dumps({"tokens": ["Rome", "is", "old"], "ner_tags": ["B-LOC", "O", "O"]}) + "\n")
    refused(run_cli(*args_of(ner_run)), f"--train-file {data}: its content changed since the run")
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text())
    refused(run_cli(*args_of(ner_run), "--train-file", other), "--train-file")
    assert snapshot(out) == before


def test_more_epochs_and_the_same_effective_batch_are_accepted(ner_run, monkeypatch):
    out, _ = ner_run
    reached = stop_before_the_loop(monkeypatch)
    result = run_cli(*args_of(ner_run), "--epochs", "5", "--batch-size", "2", "--gradient-accumulation-steps", "2",
                     "--logging-steps", "1")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "changed settings" in line]
    assert len(lines) == 1 and "--epochs 3 -> 5" in lines[0] and "--batch-size 4 -> 2" in lines[0], result.output
    assert "same effective batch" in lines[0]
    from nlpcli.runner.continuity import resumes, settings_to_save

    cfg = reached[0]["cfg"]
    [entry] = resumes(cfg)
    assert entry["checkpoint"] == "checkpoint-4" and entry["step"] == 4
    assert entry["changed"] == {"epochs": [3.0, 5.0], "logging_steps": [None, 1], "batch_size": [4, 2],
                                "gradient_accumulation_steps": [1, 2]}
    saved = settings_to_save(cfg)
    assert saved["epochs"] == 3.0 and saved["batch_size"] == 4 and saved["resumes"] == [entry]  # the first run's
    refused(run_cli(*args_of(ner_run), "--batch-size", "2"), "effective batch", "4 x 1 x 1 = 4 in the run",
            "2 x 1 x 1 = 2 now")


def test_the_saved_settings_read_with_the_resumes_applied(tmp_path):
    from nlpcli import run_folder

    (tmp_path / "nlpcli_config.yaml").write_text(yaml.safe_dump({
        "task": "ner", "model": "tiny", "epochs": 3.0, "world_size": 1,
        "resumes": [{"at": "x", "checkpoint": "checkpoint-4", "step": 4, "changed": {"epochs": [3.0, 5.0]}}]}))
    assert run_folder.saved_settings(tmp_path)["epochs"] == 5.0
    layer = run_folder.config_file_layer(tmp_path / "nlpcli_config.yaml", "ner")
    assert layer == {"model": "tiny", "epochs": 5.0}


@pytest.mark.e2e
def test_a_trained_run_refuses_mlm_and_records_more_epochs(tmp_path):
    out = tmp_path / "run"
    args = (*NER, "--epochs", "1", "--output-dir", out)
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    refused(run_cli("mlm", "--model", "tiny", "--dataset", "sample", "--output-dir", out, "--resume"),
            "task: ner in the run, mlm now")
    assert snapshot(out) == before  # not a byte, not an mtime
    again = run_cli(*args, "--epochs", "2", "--resume")
    assert again.exit_code == 0, again.output
    assert "--epochs 1 -> 2" in again.output
    [entry] = read_json(out / "run.json")["resumes"]
    assert entry["changed"] == {"epochs": [1.0, 2.0]}
    saved = yaml.safe_load((out / "nlpcli_config.yaml").read_text())
    assert saved["task"] == "ner" and saved["epochs"] == 1.0 and saved["resumes"] == [entry]
    predicted = run_cli("predict", "ner", out, "Paris is big")
    assert predicted.exit_code == 0, predicted.output
