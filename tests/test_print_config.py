"""--print-config and `nlpcli config TASK`: every layer resolved, each value's source in a comment, YAML that
--config reads back to the same configuration, nothing read but config files and nothing written."""

from __future__ import annotations

import pytest
import yaml

from conftest import run_cli
from nlpcli.config_layers import resolve_config
from nlpcli.tasks import TASK_MODULES
from nlpcli.tasks.ner import NerConfig


@pytest.fixture(autouse=True)
def no_data_or_model(monkeypatch, tmp_path):
    """Any data set or model read, or anything written under the working folder, fails the test."""
    from nlpcli.sources import data, models

    def refuse(*args, **kwargs):
        raise AssertionError("--print-config read data or a model")

    for module, name in ((data, "load_raw"), (data, "load_streamed"), (models, "load_model_and_tokenizer")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.chdir(tmp_path)


def body(output: str) -> dict:
    return yaml.safe_load(output)


def test_every_layer_is_resolved_and_named_and_the_yaml_reads_back(tmp_path):
    (tmp_path / "exp.yaml").write_text("batch_size: 4\nseed: 7\n")
    args = ["--model", "tiny", "--dataset", "sample", "--config", "exp.yaml", "--set", "save_total_limit=1",
            "--trainer-arg", "adam_beta2=0.99", "--epochs", "2", "--output-dir", "out"]
    result = run_cli("ner", *args, "--print-config")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for line in ("model: tiny  # command line", "learning_rate: 0.005  # preset tiny",
                 "batch_size: 4  # --config exp.yaml", "seed: 7  # --config exp.yaml", "save_total_limit: 1  # --set",
                 "trainer_args: {adam_beta2: 0.99}  # command line", "epochs: 2.0  # command line",
                 "weight_decay: 0.01  # preset tiny", "loop: trainer"):
        assert line in lines, line
    assert not any(p.name != "exp.yaml" for p in tmp_path.iterdir())  # no output folder, no runs/
    cli = {"model": "tiny", "dataset": "sample", "epochs": "2", "output_dir": "out",
           "trainer_args": ["adam_beta2=0.99"]}
    resolved = resolve_config(NerConfig, "ner", "exp.yaml", cli, {"save_total_limit": "1"})
    printed = tmp_path / "printed.yaml"
    printed.write_text(result.output)
    assert resolve_config(NerConfig, "ner", printed) == resolved  # the round trip
    again = run_cli("config", "ner", "--config", "printed.yaml")
    assert again.exit_code == 0 and body(again.output) == body(result.output)
    assert "batch_size: 4  # --config printed.yaml" in again.output.splitlines()
    assert run_cli("config", "ner", *args).output == result.output  # `nlpcli config TASK` takes the same options


def test_every_task_prints_its_configuration_and_refuses_what_a_run_refuses():
    for task in TASK_MODULES:
        result = run_cli(task, "--model", "tiny", "--print-config")
        assert result.exit_code == 0, result.output
        assert body(result.output)["task"] == task and "model: tiny  # command line" in result.output
    assert run_cli("config", "pos").exit_code == 2
    unused = run_cli("config", "qa", "--label-column", "label")
    assert unused.exit_code == 2 and "the qa task does not use this option" in unused.output
    contradiction = run_cli("ner", "--print-config", "--eval-steps", "5", "--eval-strategy", "epoch")
    assert contradiction.exit_code == 2 and "contradict each other" in contradiction.output


def test_saved_run_layers_and_resume_differences_are_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = run_cli("config", "ner", "--model", "tiny", "--dataset", "sample", "--learning-rate", "0.002",
                    "--output-dir", run)
    (run / "nlpcli_config.yaml").write_text(saved.output)
    evaluation = run_cli("ner", "--print-config", "--eval-only", "--model", run).output.splitlines()
    assert f"learning_rate: 0.002  # saved run {run / 'nlpcli_config.yaml'}" in evaluation
    resumed = run_cli("ner", "--print-config", "--resume", "--output-dir", run, "--model", "tiny", "--dataset",
                      "sample", "--epochs", "5").output.splitlines()
    # a resume keeps the run's settings (not the preset's 0.005): only what the command changes differs
    assert f"learning_rate: 0.002  # saved run {run / 'nlpcli_config.yaml'}" in resumed
    changed = run_cli("ner", "--print-config", "--resume", "--output-dir", run, "--learning-rate", "0.005").output
    assert "learning_rate: 0.005  # command line; the run: 0.002" in changed.splitlines()
    assert "epochs: 5.0  # command line; the run: 3.0" in resumed and "resume: 'yes'  # command line" in resumed
    assert not any(line.startswith("model:") and "the run" in line for line in resumed)
