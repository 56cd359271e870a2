"""Config layering: task YAML < --config file < --set < CLI options; typed values; saved config."""

from __future__ import annotations

import pytest
import yaml

from nlpcli.config import save_config
from nlpcli.config_args import parse_set_options
from nlpcli.config_layers import resolve_config
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
    assert cfg.labels == ["O", "B-PER", "I-PER"] and cfg.max_length is None and cfg.resume == "yes"
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


@pytest.mark.parametrize(
    ("task", "key", "value", "message"),
    [
        ("ner", "batch_size", "0", "--batch-size must be at least 1, got 0"),
        ("ner", "batch_size", "-1", "--batch-size must be at least 1, got -1"),
        ("ner", "eval_batch_size", "0", "--eval-batch-size must be at least 1"),
        ("ner", "gradient_accumulation_steps", "0", "--gradient-accumulation-steps must be at least 1"),
        ("ner", "learning_rate", "-1", "--learning-rate must be above 0, got -1"),
        ("ner", "learning_rate", "nan", "--learning-rate must be a finite number"),
        ("ner", "epochs", "-1", "--epochs must be at least 0"),
        ("ner", "save_steps", "0", "--save-steps must be at least 1"),
        ("ner", "save_steps", "-5", "--save-steps must be at least 1"),
        ("ner", "max_length", "0", "--max-length must be at least 1"),
        ("ner", "warmup_ratio", "2", "--warmup-ratio must be at least 0 and below 1, got 2"),
        ("ner", "max_train_samples", "0", "--max-train-samples must be at least 1"),
        ("qa", "n_best", "0", "--n-best must be at least 1"),
        ("qa", "max_answer_length", "0", "--max-answer-length must be at least 1"),
        ("mlm", "mlm_probability", "0", "--mlm-probability must be above 0 and at most 1"),
        ("translate", "num_beams", "0", "--num-beams must be at least 1"),
    ],
)
def test_out_of_range_options_are_refused_with_their_range(task, key, value, message):
    from nlpcli.tasks import task_class

    with pytest.raises(UserError) as raised:
        resolve_config(task_class(task).config_class, task, cli_values={key: value})
    assert message in raised.value.message


def test_zero_epochs_needs_max_steps():
    with pytest.raises(UserError, match="--epochs 0 trains nothing"):
        resolve_config(NerConfig, "ner", cli_values={"epochs": "0"})
    assert resolve_config(NerConfig, "ner", cli_values={"epochs": "0", "max_steps": "5"}).max_steps == 5


def test_a_refused_option_writes_nothing(tmp_path):
    from conftest import run_cli

    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "0", "--output-dir", out)
    assert result.exit_code == 2 and "--batch-size must be at least 1" in result.output
    assert not out.exists()


def test_seeds_must_be_ones_numpy_takes():
    """transformers.set_seed seeds NumPy, which takes 0 .. 2**32 - 1: a traceback, not exit 2, before."""
    for key in ("seed", "split_seed"):
        with pytest.raises(UserError, match=f"--{key.replace('_', '-')} must be at least 0 and at most 4294967295"):
            resolve_config(NerConfig, "ner", cli_values={key: "-1"})
        with pytest.raises(UserError, match="got 4294967296"):
            resolve_config(NerConfig, "ner", cli_values={key: str(2**32)})
    assert resolve_config(NerConfig, "ner", cli_values={"seed": str(2**32 - 1)}).seed == 2**32 - 1


def test_predict_refuses_out_of_range_numbers_before_loading_anything(tmp_path):
    from conftest import run_cli

    missing = tmp_path / "no-model"  # the checks come first: no model folder needed
    result = run_cli("predict", "ner", missing, "text", "--batch-size", "0")
    assert result.exit_code == 2 and "--batch-size must be at least 1, got 0" in result.output
    result = run_cli("predict", "clm", missing, "def f(", "--seed", "-1")
    assert result.exit_code == 2 and "--seed must be at least 0" in result.output
    assert "Traceback" not in result.output


def test_a_bad_trainer_arg_names_the_flag_as_typed():
    with pytest.raises(UserError, match="command line: --trainer-arg expects KEY=VALUE, got 'warmup'"):
        resolve_config(NerConfig, "ner", cli_values={"trainer_args": ["warmup"]})
    with pytest.raises(UserError, match="--set expects KEY=VALUE, got 'epochs'"):
        resolve_config(NerConfig, "ner", set_values=parse_set_options(["epochs"]))


@pytest.mark.parametrize("kind", ["eval", "save"])
@pytest.mark.parametrize("strategy", ["no", "epoch"])
def test_steps_with_another_strategy_are_refused_naming_both(kind, strategy):
    with pytest.raises(UserError, match=f"--{kind}-steps 5 and --{kind}-strategy {strategy} contradict"):
        resolve_config(NerConfig, "ner", None, {f"{kind}_steps": 5, f"{kind}_strategy": strategy})
    fine = resolve_config(NerConfig, "ner", None, {f"{kind}_steps": 5, f"{kind}_strategy": "steps"})
    assert getattr(fine, f"{kind}_steps") == 5


def test_a_strategy_given_later_overrides_the_steps_of_an_earlier_layer(tmp_path):
    """clm's defaults count steps (eval_steps, save_steps: 5000): --eval-strategy no on the command line turns
    evaluation off; the same two in one --config file contradict each other."""
    from nlpcli.tasks.clm import ClmConfig

    cfg = resolve_config(ClmConfig, "clm", None, {"eval_strategy": "no", "save_strategy": "epoch"})
    assert cfg.evaluation_strategy == "no" and cfg.saving_strategy == "epoch"
    config = tmp_path / "c.yaml"
    config.write_text("eval_steps: 5\neval_strategy: epoch\n")
    with pytest.raises(UserError, match=r"--eval-steps 5 and --eval-strategy epoch contradict .*c\.yaml"):
        resolve_config(NerConfig, "ner", config)


def test_tasks_with_a_per_example_loss_group_batches_by_length_by_default():
    """qa and classify group by length unless told not to (measured: same scores, less padding); ner and the
    seq2seq tasks keep random batches (grouped runs ended with a higher loss); a stream, read as it comes, has
    nothing to sort, so the task's default gives way to --streaming (and says so)."""
    from nlpcli.config import value_origins
    from nlpcli.tasks import task_class

    for name, grouped in (("qa", True), ("classify", True), ("ner", False), ("translate", False),
                          ("summarize", False), ("mlm", False), ("clm", False)):
        cls = task_class(name).config_class
        assert resolve_config(cls, name).group_by_length is grouped, name
        assert resolve_config(cls, name, cli_values={"group_by_length": False}).group_by_length is False
    qa = task_class("qa").config_class
    streamed = resolve_config(qa, "qa", cli_values={"streaming": True})
    assert streamed.group_by_length is False and value_origins(streamed)["group_by_length"] == "--streaming"
    asked = resolve_config(qa, "qa", cli_values={"streaming": True, "group_by_length": True})
    assert asked.group_by_length is True  # given: the run's checks refuse the pair with one message
