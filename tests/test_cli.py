"""CLI surface: fast help (no heavy imports), options generated from the config, predict errors."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, run_cli


def test_importing_the_cli_loads_no_heavy_library():
    code = ("import sys, nlpcli.cli; heavy = [m for m in ('torch', 'transformers', 'datasets', 'accelerate') "
            "if m in sys.modules]; print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert loaded.stdout.strip() == ""


def test_task_help_lists_every_config_key_with_its_default():
    result = run_cli("ner", "--help")
    assert result.exit_code == 0
    for flag in ("--learning-rate", "--label-all-tokens", "--eval-only", "--loop", "--set", "--config"):
        assert flag in result.output
    assert "2e-05" in result.output  # the default shown comes from configs/ner.yaml


def test_predict_refuses_a_folder_without_a_model(tmp_path):
    result = run_cli("predict", "ner", tmp_path, "some text")
    assert result.exit_code == 2 and "not a saved model folder" in result.output
    result = run_cli("predict", "pos", tmp_path, "some text")
    assert result.exit_code == 2 and "Unknown task 'pos'" in result.output


def test_predict_refuses_a_blank_text_as_it_refuses_a_blank_file_line(tmp_path):
    missing = tmp_path / "no-model"  # refused before any model is looked for
    for args, message in ((["clm", missing, ""], "text 1: blank"), (["ner", missing, "a", "  "], "text 2: blank"),
                          (["qa", missing, "--question", "", "--context", "c"], "--question: blank")):
        result = run_cli("predict", *args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_predict_output_is_not_replaced_without_overwrite_and_its_folder_must_exist(tmp_path):
    missing = tmp_path / "no-model"
    existing = tmp_path / "out.jsonl"
    existing.write_text("kept\n")
    result = run_cli("predict", "ner", missing, "text", "--output", existing)
    assert result.exit_code == 2 and f"--output {existing} exists" in result.output and "--overwrite" in result.output
    assert existing.read_text() == "kept\n"
    result = run_cli("predict", "ner", missing, "text", "--output", existing, "--overwrite")
    assert result.exit_code == 2 and "not a saved model folder" in result.output  # past the --output check
    nowhere = tmp_path / "nowhere" / "out.jsonl"
    result = run_cli("predict", "ner", missing, "text", "--output", nowhere)
    assert result.exit_code == 2 and f"the folder {nowhere.parent} does not exist" in result.output
    result = run_cli("predict", "ner", missing, "text", "--output", tmp_path)
    assert result.exit_code == 2 and "is a folder" in result.output


def test_predict_from_a_closed_stdin_is_refused(monkeypatch):
    import pytest

    from nlpcli.errors import UserError
    from nlpcli.predict_io import read_inputs

    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed file descriptor 0
    with pytest.raises(UserError, match="--file -: stdin is closed"):
        read_inputs("-", {"text": "text"})


def test_tables_in_a_log_or_a_pipe_are_plain_text(capsys):
    """A redirected run's final tables: aligned text, no box characters (a terminal still gets the boxes)."""
    from nlpcli.commands.tables import show_result

    show_result({"metrics": {"eval_loss": 0.8574, "eval_overall_f1": 0.5, "eval_LOC_f1": 0.25, "eval_LOC_number": 15},
                 "output_dir": "runs/x"})
    out = capsys.readouterr().out
    assert out.splitlines() == ["metrics", "metric           value", "eval_loss        0.8574",
                                "eval_overall_f1  0.5000", "per group", "group  f1      number", "LOC    0.2500  15",
                                "saved to runs/x"]
