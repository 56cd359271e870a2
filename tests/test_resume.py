"""`--resume PATH`: which checkpoints it takes (and refuses), the one line every resume prints, and checkpoints of
both loops being model folders (predict, --eval-only)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import read_json, read_jsonl, run_cli

NER = ("ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "4", "--learning-rate", "5e-3")


def timeless(rows):
    return [{k: v for k, v in row.items() if k != "samples_per_second"} for row in rows]


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_resume_from_an_older_checkpoint_ends_as_an_uninterrupted_run(tmp_path, loop):
    """10 sentences / 4 = 3 steps per epoch: checkpoint-4 stands inside epoch 2, and checkpoint-6 is newer."""
    out = tmp_path / "run"
    args = (*NER, "--loop", loop, "--max-steps", "6", "--save-steps", "2", "--logging-steps", "1")
    first = run_cli(*args, "--output-dir", out)
    assert first.exit_code == 0, first.output
    assert "resuming from" not in first.output
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-4", "checkpoint-6"}  # --save-total-limit 2
    metrics, history = read_json(out / "metrics.json"), timeless(read_jsonl(out / "log_history.jsonl"))
    again = run_cli(*args, "--resume", out / "checkpoint-4")  # no --output-dir: the checkpoint's folder
    assert again.exit_code == 0, again.output
    lines = [line for line in again.output.splitlines() if "resuming" in line]
    assert lines == ["resuming from checkpoint-4 (step 4, epoch 1.33)"]
    assert "deleting the newer checkpoint-6" in again.output
    assert "4/6" in again.output or "6/6" in again.output  # it trained steps 5 and 6
    # rotation kept the checkpoint it resumed from until a new one was saved, then as the second newest
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-4", "checkpoint-6"}
    assert read_json(out / "metrics.json") == metrics
    assert timeless(read_jsonl(out / "log_history.jsonl")) == history
    latest = run_cli(*args, "--max-steps", "7", "--resume", "--output-dir", out)  # plain --resume: the same line
    assert latest.exit_code == 0, latest.output
    assert [line for line in latest.output.splitlines() if "resuming" in line] == [
        "resuming from checkpoint-6 (step 6, epoch 2.00)"]


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as a Trainer-loop ner run leaves it (the files --resume PATH looks at)."""
    out = tmp_path / "run"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"global_step": 4, "epoch": 1.33}))
    import safetensors.torch
    import torch

    safetensors.torch.save_file({"w": torch.zeros(4)}, str(out / "checkpoint-4" / "model.safetensors"))  # reads back
    (out / "nlpcli_config.yaml").write_text("task: ner\nmodel: tiny\n")
    return out


def refused(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), result.output


def test_resume_path_refusals(tmp_path, run_folder):
    out = run_folder
    refused(run_cli(*NER, "--resume", out), "is not a checkpoint")
    refused(run_cli(*NER, "--resume", out / "checkpoint-9"), "no such folder")
    (out / "notes").mkdir()
    refused(run_cli(*NER, "--resume", out / "notes"), "is not a checkpoint")
    staged = out / ".checkpoints.partial" / "checkpoint-6"
    staged.mkdir(parents=True)
    (staged / "trainer_state.json").write_text("{}")
    refused(run_cli(*NER, "--resume", staged), "is not complete", "cut short")
    (out / "checkpoint-2").mkdir()
    refused(run_cli(*NER, "--resume", out / "checkpoint-2"), "is not complete", "trainer_state.json")
    refused(run_cli(*NER, "--loop", "accelerate", "--resume", out / "checkpoint-4"),
            "--loop: trainer in the run (checkpoint-4 holds its state), accelerate now")
    refused(run_cli(*NER, "--resume", out / "checkpoint-4", "--output-dir", tmp_path / "other"),
            f"--output-dir: {out} holds the checkpoint, {tmp_path / 'other'} now")
    refused(run_cli("mlm", "--model", "tiny", "--dataset", "sample", "--resume", out / "checkpoint-4"),
            "task: ner in the run, mlm now", "Resume it with nlpcli ner")
    refused(run_cli(*NER, "--model", "bert-base-cased", "--resume", out / "checkpoint-4"),
            "--model: tiny in the run, bert-base-cased now")
    assert sorted(p.name for p in out.iterdir()) == [".checkpoints.partial", "checkpoint-2", "checkpoint-4",
                                                     "nlpcli_config.yaml", "notes"]  # nothing written


def test_resume_takes_a_path_on_the_command_line():
    from nlpcli.config_args import with_resume_values
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks.ner import NerConfig

    assert with_resume_values(["ner", "--resume", "runs/x/checkpoint-40", "--epochs", "2"]) == [
        "ner", "--resume", "runs/x/checkpoint-40", "--epochs", "2"]
    assert with_resume_values(["ner", "--resume", "--epochs", "2"]) == ["ner", "--resume", "yes", "--epochs", "2"]
    cfg = resolve_config(NerConfig, "ner", cli_values={"resume": "runs/x/checkpoint-40"})
    assert cfg.resume == "runs/x/checkpoint-40"


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_every_checkpoint_is_a_model_that_predict_and_eval_only_take(tmp_path, loop):
    out = tmp_path / "run"
    result = run_cli(*NER, "--loop", loop, "--max-steps", "6", "--save-steps", "2", "--eval-strategy", "steps",
                     "--eval-steps", "2", "--output-dir", out)
    assert result.exit_code == 0, result.output
    checkpoint = out / "checkpoint-4"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in checkpoint.iterdir()}
    predicted = run_cli("predict", "ner", checkpoint, "Bill Clinton visited Paris")
    assert predicted.exit_code == 0, predicted.output
    evaluated = run_cli("ner", "--model", checkpoint, "--eval-only", "--output-dir", tmp_path / "ev")
    assert evaluated.exit_code == 0, evaluated.output
    logged = next(r for r in read_jsonl(out / "log_history.jsonl") if r.get("step") == 4 and "eval_loss" in r)
    figures = read_json(tmp_path / "ev" / "metrics.json")
    assert {k: figures[k] for k in logged if k.startswith("eval_") and not k.endswith("_per_second")
            and k != "eval_runtime"} == pytest.approx({k: v for k, v in logged.items() if k.startswith("eval_")
                                                       and not k.endswith("_per_second") and k != "eval_runtime"})
    # and the run resumes from that checkpoint as before (the loop state stays beside the model)
    shutil.rmtree(tmp_path / "ev")
    again = run_cli(*NER, "--loop", loop, "--max-steps", "6", "--save-steps", "2", "--eval-strategy", "steps",
                    "--eval-steps", "2", "--resume", checkpoint)
    assert again.exit_code == 0, again.output
    assert "resuming from checkpoint-4 (step 4, epoch 1.33)" in again.output
