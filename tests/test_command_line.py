"""How every command reads its command line: one metavar style in every help page, flags that take no value,
the transformers example scripts' flags answered with the nlpcli option, and unknown names answered with the
closest known ones the same way whatever their source (option, --set, config file, --trainer-arg)."""

from __future__ import annotations

import re

import pytest

from conftest import run_cli

PYTHON_TYPE = re.compile(r"<(?:bool|str|int|float|path|list\[[^\]]*\])>")


def one_line_error(result, fragment: str) -> str:
    """The error a refused command printed: exit code 2, one line, holding `fragment`."""
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert len(text.splitlines()) == 1, text
    assert text.startswith("error: ") and fragment in text, text
    return text


@pytest.mark.parametrize("command", [[], ["predict"], ["config"], ["config", "ner"], ["report"], ["env"], ["demo"],
                                     ["ner"], ["inspect"], ["inspect", "qa"]])
def test_every_help_page_names_values_the_same_way(command):
    page = run_cli(*command, "--help").output
    assert not PYTHON_TYPE.search(page), PYTHON_TYPE.search(page).group()
    rows = {line.split()[1]: line.split()[2:] for line in page.splitlines() if re.match(r"^│ +\*? *--", line)}
    rows |= {line.split()[1]: line.split()[2:] for line in page.splitlines() if re.match(r"^│ \*? +--", line)}
    assert rows["--help"][0] == "Show"  # a flag shows no metavar
    expected = {"predict": {"--top-k": "N", "--temperature": "X", "--question": "TEXT", "--file": "FILE",
                            "--output": "FILE", "--json": "Print"},
                "config ner": {"--set": "KEY=VALUE", "--config": "FILE"},
                "inspect qa": {"--output": "FILE", "--json": "Print", "--doc-stride": "N"},
                "ner": {"--epochs": "X", "--eval-only": "Evaluate"},
                "report": {"--output": "FILE", "--json": "Print"},
                "demo": {"--output-root": "DIR", "--task": "TEXT"}, "": {"--version": "Show"}}
    for flag, first in expected.get(" ".join(command), {}).items():
        assert rows[flag][0] == first, (flag, rows[flag])


def test_predict_and_config_arguments_are_named_not_typed():
    page = run_cli("predict", "--help").output
    assert re.search(r"\{TASK\} \{MODEL\} \[TEXT\]", page)
    assert re.search(r"│ \*\s+TASK\s+Task of the saved model", page)


def test_a_flag_takes_no_value_and_true_is_not_read_as_a_text(tmp_path):
    # `--json true` used to predict a second text, "true"
    one_line_error(run_cli("predict", "ner", tmp_path, "Peter", "--json", "true"),
                   "--json is a flag and takes no value, not 'true'")
    one_line_error(run_cli("ner", "--label-all-tokens", "false"), "--no-label-all-tokens turns it off")
    one_line_error(run_cli("env", "--json", "yes"), "--json alone turns it on")
    # a text "true" before the flags, or after `--`, is a text: the command goes on (to refuse the empty folder)
    for args in (["true", "--json"], ["--json", "--", "true"]):
        result = run_cli("predict", "ner", tmp_path, *args)
        assert result.exit_code == 2 and "not a saved model folder" in result.output, result.output


@pytest.mark.parametrize(("args", "answer"), [
    (["--do_train"], "nlpcli trains by default: leave it out"),
    (["--do-train"], "nlpcli trains by default"),
    (["--do_eval"], "nlpcli evaluates by default"),
    (["--do_predict"], "nlpcli spells it --do-predict"),
    (["--num_train_epochs", "3"], "nlpcli's is --epochs"),
    (["--per_device_train_batch_size", "8"], "nlpcli's is --batch-size"),
    (["--output_dir", "out"], "nlpcli spells it --output-dir"),
    (["--model_name_or_path", "bert-base-cased"], "nlpcli's is --model"),
    (["--learning_rate", "1e-3"], "nlpcli spells it --learning-rate"),
    (["--max_seq_length", "128"], "nlpcli's is --max-length"),
    (["--dataset_name", "conll2003"], "nlpcli's is --dataset"),
    (["--train_file", "train.json"], "nlpcli spells it --train-file"),
    (["--fp16"], "nlpcli's is --precision fp16"),
    (["--overwrite_output_dir"], "nlpcli's is --overwrite"),
    (["--trust_remote_code"], "never a model repository's code"),
    (["--preprocessing_num_workers", "4"], "nlpcli's is --preprocessing-workers"),
])
def test_the_example_scripts_flags_are_answered_with_the_nlpcli_option(args, answer):
    text = one_line_error(run_cli("ner", *args), answer)
    assert "--streaming" not in text  # the old answer to --do-train


def test_a_script_flag_is_answered_with_the_option_of_the_task_at_hand():
    one_line_error(run_cli("mlm", "--max_seq_length", "64"), "nlpcli's is --chunk-size")
    one_line_error(run_cli("clm", "--max_seq_length", "64"), "nlpcli's is --context-length")
    one_line_error(run_cli("clm", "--tokenizer_name", "gpt2"), "nlpcli's is --tokenizer")
    one_line_error(run_cli("ner", "--tokenizer_name", "gpt2"), "the tokenizer is --model's own")


def test_a_trainer_field_without_an_nlpcli_option_goes_through_trainer_arg(monkeypatch):
    from nlpcli.runner import settings

    # TrainingArguments' fields, without importing transformers (test_surfaces checks the real ones)
    monkeypatch.setattr(settings, "training_argument_names", lambda: {"adam_beta1", "disable_tqdm", "learning_rate"})
    one_line_error(run_cli("ner", "--adam_beta1", "0.8"), "pass it as --trainer-arg adam_beta1=VALUE")
    one_line_error(run_cli("ner", "--disable_tqdm"), "nlpcli sets this TrainingArguments field itself")


def test_closest_names_first_those_that_start_with_what_was_typed():
    from nlpcli.suggestions import closest

    flags = ["--train-file", "--streaming", "--do-predict", "--learning-rate", "--eval-only", "--eval-steps"]
    assert closest("--do-train", flags) == []  # not --streaming
    assert closest("--train", flags)[0] == "--train-file"
    assert closest("--eval", flags) == ["--eval-only", "--eval-steps"]
    assert closest("lerning_rate", flags) == ["--learning-rate"]  # dashes and underscores alike


def test_every_source_of_names_suggests_the_same_way(tmp_path, monkeypatch):
    from nlpcli.config import RunConfig
    from nlpcli.errors import UserError
    from nlpcli.runner import settings

    one_line_error(run_cli("ner", "--lerning-rate", "1"),
                   "No such option: --lerning-rate. Did you mean --learning-rate?")
    for args in (["--set", "lerning_rate=1"], ["--config", tmp_path / "typo.yaml"]):
        (tmp_path / "typo.yaml").write_text("lerning_rate: 1\n")
        result = run_cli("ner", *args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[1:] == ["Did you mean learning_rate?"]  # not every key
    # --trainer-arg learning_rate would be refused: the closest field is named by its option
    monkeypatch.setattr(settings, "training_argument_names", lambda: {"learning_rate", "adam_beta1"})
    with pytest.raises(UserError) as refused:
        settings.check_training_settings(RunConfig(trainer_args={"lerning_rate": 1}))
    assert refused.value.hint == "Did you mean --learning-rate?"
    result = run_cli("ner", "--set", "num_train_epochs=1")
    assert "Did you mean epochs? (num_train_epochs is transformers' name for it.)" in result.output
    assert "nlpcli config ner` lists every key" in run_cli("ner", "--set", "xyzzy=1").output
