"""Precision choice: the launcher's when it set one, else bf16 on GPUs that support it, fp16 on other GPUs,
fp32 on the CPU; a --precision that contradicts the launcher is refused before anything runs."""

from __future__ import annotations

import pytest
import torch
import yaml

from conftest import read_json, read_jsonl, run_cli
from nlpcli.errors import UserError
from nlpcli.runner.devices import LAUNCHER_VARIABLE, check_precision_request, resolve_precision


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA GPU as torch reports it; `gpu(bf16_ok)` says whether it supports bf16."""
    def make(bf16_ok: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    return make


@pytest.mark.parametrize(
    ("cuda", "bf16_ok", "requested", "expected"),
    [
        (False, False, "auto", "no"),
        (False, False, "fp16", "no"),
        (True, True, "auto", "bf16"),  # every GPU since Ampere: bf16, no loss scaling
        (True, False, "auto", "fp16"),
        (True, True, "fp16", "fp16"),
        (True, True, "bf16", "bf16"),
        (True, False, "bf16", "fp16"),
        (True, True, "fp32", "no"),
    ],
)
def test_resolve_precision(monkeypatch, gpu, cuda, bf16_ok, requested, expected):
    monkeypatch.delenv(LAUNCHER_VARIABLE, raising=False)
    if cuda:
        gpu(bf16_ok)
    else:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision(requested) == expected


@pytest.mark.parametrize(("model_type", "bf16_ok", "expected"), [("t5", True, "bf16"), ("mt5", True, "bf16"),
                                                                  ("t5", False, "fp16"), ("bert", True, "bf16")])
def test_auto_precision_and_models_that_overflow_fp16(monkeypatch, gpu, capsys, model_type, bf16_ok, expected):
    monkeypatch.delenv(LAUNCHER_VARIABLE, raising=False)
    gpu(bf16_ok)
    assert resolve_precision("auto", model_type) == expected
    assert ("overflow" in capsys.readouterr().err) == (expected == "fp16")  # warned where fp16 risks NaN
    assert resolve_precision("fp16", model_type) == "fp16"  # asked for explicitly: kept (with a warning)


@pytest.mark.parametrize(("launcher", "bf16_ok", "expected"), [("bf16", True, "bf16"), ("fp16", True, "fp16"),
                                                               ("no", True, "bf16"), ("bf16", False, "fp16")])
def test_auto_follows_the_launcher(monkeypatch, gpu, launcher, bf16_ok, expected):
    monkeypatch.setenv(LAUNCHER_VARIABLE, launcher)  # `no` is accelerate launch's default: no request
    gpu(bf16_ok)
    check_precision_request("auto")
    assert resolve_precision("auto") == expected


@pytest.mark.parametrize(("launcher", "requested", "refused"), [("bf16", "fp16", True), ("bf16", "fp32", True),
                                                               ("fp16", "bf16", True), ("bf16", "bf16", False),
                                                               ("no", "fp16", False), ("fp8", "auto", True)])
def test_a_precision_that_contradicts_the_launcher_is_refused(monkeypatch, launcher, requested, refused):
    monkeypatch.setenv(LAUNCHER_VARIABLE, launcher)
    if not refused:
        check_precision_request(requested)
        return
    with pytest.raises(UserError) as err:
        check_precision_request(requested)
    assert launcher in err.value.message and LAUNCHER_VARIABLE in err.value.message
    assert requested == "auto" or f"--precision {requested}" in err.value.message


def test_the_refusal_comes_before_anything_is_written(monkeypatch, tmp_path):
    monkeypatch.setenv(LAUNCHER_VARIABLE, "bf16")
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--precision", "fp16", "--output-dir",
                     tmp_path / "run")
    assert result.exit_code == 2 and "--precision fp16 contradicts the launcher's mixed precision bf16" in " ".join(
        result.output.split())
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_what_ran_is_recorded_and_the_launchers_bf16_does_not_sneak_into_a_cpu_run(monkeypatch, tmp_path, loop):
    from transformers import Trainer

    monkeypatch.setenv(LAUNCHER_VARIABLE, "bf16")  # as `accelerate launch --mixed_precision bf16` sets it
    seen = []
    if loop == "trainer":  # the precision of the Accelerator the Trainer builds for itself
        original = Trainer.create_accelerator_and_postprocess
        monkeypatch.setattr(Trainer, "create_accelerator_and_postprocess",
                            lambda self: (original(self), seen.append(self.accelerator.mixed_precision))[0])
    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "3", "--loop", loop,
                     "--output-dir", out)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "the launcher's bf16 needs a CUDA GPU; running in fp32" in output
    assert seen in ([], ["no"]) and (loop == "accelerate" or seen == ["no"])
    # what ran, the same in the header, run.json and the model card: 10 sentences in batches of 8 are 2 steps an
    # epoch, so --max-steps 3 ends in the middle of the second epoch (not at the 3 epochs --epochs asks for)
    assert "precision=fp32" in output
    assert "training: 3 steps (1.5 epochs), batch 8 = 8 per device x 1 accumulation x 1 process" in output
    info = read_json(out / "run.json")
    assert (info["precision"], info["steps"], info["epochs"], info["world_size"], info["total_train_batch_size"]) \
        == ("fp32", 3, 1.5, 1, 8)
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])["hyperparameters"]
    assert (card["precision"], card["steps"], card["epochs"], card["world_size"], card["total_train_batch_size"]) \
        == ("fp32", 3, 1.5, 1, 8)
    assert read_json(out / "train_results.json")["epoch"] == 1.5
    # no --logging-steps: an interval chosen for 3 steps (every step), said in the header, in both loops
    assert "chosen for the run's 3 steps: logging_steps=1" in output and info["logging_steps"] == 1
    assert [line["step"] for line in read_jsonl(out / "log_history.jsonl") if "loss" in line] == [1, 2, 3]


def test_an_attention_kernel_transformers_does_not_know_is_refused_before_the_data_is_read(tmp_path):
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--attn-implementation", "bogus",
                     "--output-dir", tmp_path / "run")
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "--attn-implementation bogus: not an attention kernel transformers knows" in output
    assert "Known: eager, " in output and "sdpa" in output and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_attention_kernel_the_machine_cannot_run_is_refused(tmp_path):
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--attn-implementation", "flash_attention_2",
                     "--output-dir", tmp_path / "run")  # its package is not installed here
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "--attn-implementation flash_attention_2: FlashAttention2 has been toggled on, but it cannot be used" \
        in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()  # refused: nothing left behind


@pytest.mark.e2e
def test_the_attention_kernel_asked_for_is_the_one_recorded(tmp_path):
    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "1", "--no-eval-before",
                     "--attn-implementation", "eager", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "attention=eager" in result.output and read_json(out / "run.json")["attn_implementation"] == "eager"
