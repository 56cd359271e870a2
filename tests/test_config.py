"""Config layering: task YAML < --config file < --set < CLI options; typed values; saved config."""

from __future__ import annotations

import pytest
import yaml

from nlpcli.config import resolve_config, save_config
from nlpcli.errors import UserError
from nlpcli.tasks.ner import NerConfig


def test_task_defaults_come_from_configs_yaml():
    cfg = resolve_config(NerConfig, "ner")
    assert (cfg.model, cfg.dataset, cfg.learning_rate, cfg.weight_decay, cfg.epochs, cfg.batch_size) == (
        "bert-base-cased", "lhoestq/conll2003", 2e-5, 0.01, 3.0, 8,
    )


def test_precedence_file_then_set_then_cli(tmp_path):
    override = tmp_path / "exp.yaml"
    override.write_text("learning_rate: 1.0e-4\nepochs: 5\nbatch_size: 16\nlabel_all_tokens: false\n")
    cfg = resolve_config(NerConfig, "ner", override, {"epochs": 7, "model": None}, {"batch_size": "32"})
    assert cfg.learning_rate == 1e-4  # file beats task defaults
    assert cfg.batch_size == 32  # --set beats file
    assert cfg.epochs == 7.0  # CLI option beats file
    assert cfg.model == "bert-base-cased"  # an option not given (None) leaves the value alone
    assert cfg.label_all_tokens is False


def test_values_are_coerced_and_checked():
    cfg = resolve_config(NerConfig, "ner", set_values={"labels": "O,B-PER,I-PER", "max_length": "none",
                                                       "resume": "yes"})
    assert cfg.labels == ["O", "B-PER", "I-PER"] and cfg.max_length is None and cfg.resume is True
    with pytest.raises(UserError, match="'batch_size' must be int"):
        resolve_config(NerConfig, "ner", set_values={"batch_size": "eight"})
    with pytest.raises(UserError, match="'precision' must be one of"):
        resolve_config(NerConfig, "ner", set_values={"precision": "fp8"})


def test_bad_yaml_names_the_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: 3\nmodel: [unclosed\n")
    with pytest.raises(UserError, match="broken.yaml line"):
        resolve_config(NerConfig, "ner", broken)


def test_saved_config_reloads_to_the_same_values(tmp_path):
    cfg = resolve_config(NerConfig, "ner", set_values={"epochs": "2", "labels": "O,B-X"})
    save_config(cfg, tmp_path / "nlpcli_config.yaml")
    assert yaml.safe_load((tmp_path / "nlpcli_config.yaml").read_text())["epochs"] == 2.0
    assert resolve_config(NerConfig, "ner", tmp_path / "nlpcli_config.yaml") == cfg
