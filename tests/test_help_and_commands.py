"""Help pages (panels, only the options a task reads, whole flags at 80 columns), --version, `nlpcli config`,
and the predict command line the demo shows (`nlpcli env`: test_env.py)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from conftest import REPO, read_json, run_cli
from nlpcli.config import RunConfig
from nlpcli.config_layers import resolve_config
from nlpcli.tasks import TASK_MODULES, task_class


@functools.cache  # one process per page: several tests read the same one
def help_page(task: str, columns: int = 80) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb", "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "nlpcli", *task.split(), "--help"], capture_output=True, text=True,
                            cwd=REPO, env=env, check=True)
    return result.stdout


def panels(page: str) -> dict[str, str]:
    """Panel title -> the text inside it."""
    found, title = {}, None
    for line in page.splitlines():
        head = re.match(r"^╭─ (.+?) ─", line)
        if head:
            title = head.group(1)
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
    return found


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASK_MODULES))
def test_help_groups_the_options_a_task_reads_and_keeps_flags_whole(task):
    page = help_page(task)
    assert all(len(line) <= 80 for line in page.splitlines())
    assert "…" not in page
    cls, chosen = task_class(task).config_class, task_class(task)
    hidden = set(chosen.unused_options) | (set() if chosen.supports_streaming else {"streaming"})
    shared = {f.name for f in dataclasses.fields(RunConfig)}
    flags = re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", page)  # every flag shown, whole tokens only
    by_panel = panels(page)
    assert {"Data", "Model", "Training", "Evaluation", "Output"} <= set(by_panel)
    for field in dataclasses.fields(cls):
        flag = field.metadata.get("cli_flag") or "--" + field.name.replace("_", "-")
        if field.name in hidden:
            assert flag not in flags, f"{task} does not read {field.name}"
            continue
        assert flag in flags, f"{flag} missing or split in `{task} --help`"
        if field.name not in shared:
            assert re.search(rf"(?<![\w-]){flag}(?![\w-])", by_panel[f"{task} options"]), flag


def test_every_shared_key_has_its_panel():
    from nlpcli.help_panels import PANELS

    assert {f.name for f in dataclasses.fields(RunConfig)} <= set(PANELS)  # a new key: name its panel


@pytest.mark.slow
def test_unused_options_are_refused_and_help_agrees_with_the_readme():
    assert "--label-column" not in help_page("qa") and "--max-length" not in help_page("mlm")
    result = run_cli("qa", "--label-column", "label")
    assert result.exit_code == 2 and "--label-column: the qa task does not use this option" in result.output
    mlm = " ".join(panels(help_page("mlm", columns=200))["Data"].split())
    assert "--max-train-samples" in mlm and "N chunks (of --chunk-size tokens), not N texts" in mlm
    qa = " ".join(panels(help_page("qa", columns=200))["Model"].split())
    window = qa[qa.index("--max-length"):qa.index("--preset-vocab-size")]
    assert window.count("default") == 1 and "[default: 384]" in window  # one default, the YAML's
    readme = (REPO / "README.md").read_text()
    assert "| `--max-length` | 384 | tokens per window" in readme
    assert "count **chunks**, not texts" in readme


def test_negated_boolean_flags_still_work():
    from nlpcli.commands.task import _with_negations
    from nlpcli.errors import UserError

    assert _with_negations({"label_all_tokens": None, "label_all_tokens__off": True}) == {"label_all_tokens": False}
    assert _with_negations({"label_all_tokens": True, "label_all_tokens__off": None}) == {"label_all_tokens": True}
    with pytest.raises(UserError, match="contradict"):
        _with_negations({"label_all_tokens": True, "label_all_tokens__off": True})
    # and through the command line: the hidden --no-FLAG is parsed and folded in before anything runs
    both = run_cli("ner", "--label-all-tokens", "--no-label-all-tokens")
    assert both.exit_code == 2 and "--label-all-tokens and --no-label-all-tokens contradict" in both.output


def test_version():
    result = run_cli("--version")
    assert result.exit_code == 0 and result.output.strip() == f"nlpcli {metadata.version('nlpcli')}"


@pytest.mark.e2e
def test_config_command_prints_yaml_that_config_reads_back(tmp_path):
    from nlpcli.tasks.ner import NerConfig

    result = run_cli("config", "ner", "--set", "epochs=2")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["task"] == "ner" and printed["epochs"] == 2.0 and printed["learning_rate"] == 2e-5
    saved = tmp_path / "ner.yaml"
    saved.write_text(result.output)
    assert resolve_config(NerConfig, "ner", saved) == resolve_config(NerConfig, "ner", set_values={"epochs": "2"})

    # round trip into a real run: edit the printed file, train with it, the run saves the same settings
    demo = run_cli("config", "ner", "--config", REPO / "configs" / "demo" / "ner.yaml", "--set", "max_steps=2",
                   "--set", f"output_dir={tmp_path / 'run'}")
    (tmp_path / "demo.yaml").write_text(demo.output)
    trained = run_cli("ner", "--config", tmp_path / "demo.yaml")
    assert trained.exit_code == 0, trained.output
    ran = yaml.safe_load((tmp_path / "run" / "nlpcli_config.yaml").read_text())
    from nlpcli.run_folder import RECORD_KEYS

    assert {k: v for k, v in ran.items() if k not in RECORD_KEYS} == {**yaml.safe_load(demo.output)}
    assert ran["world_size"] == 1  # what a later --resume checks its effective batch against
    assert read_json(tmp_path / "run" / "run.json")["train_samples"] == 10

    wrong = run_cli("mlm", "--config", saved)
    assert wrong.exit_code == 2 and "ner configuration" in wrong.output
    assert run_cli("config", "pos").exit_code == 2


def test_demo_shows_the_predict_input_as_a_command_line():
    from nlpcli.commands.predict import predict_command
    from nlpcli.tasks import get_task

    ner = predict_command("ner", Path("runs/demo/ner"), get_task("ner").demo_request)
    assert ner == "nlpcli predict ner runs/demo/ner 'My name is Sylvain and I work at Hugging Face in Brooklyn.'"
    qa = predict_command("qa", Path("runs/demo/qa"), get_task("qa").demo_request)
    assert qa.startswith("nlpcli predict qa runs/demo/qa --question 'What branch of") and "--context '" in qa
    assert "[" not in ner and "[" not in qa
    clm = predict_command("clm", Path("runs/demo/clm"), get_task("clm").demo_request)
    assert clm.startswith("nlpcli predict clm runs/demo/clm 'def prepare(self, raw' --max-new-tokens ")


@pytest.mark.slow
def test_every_option_in_help_is_in_a_readme_options_table():
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `")]
    documented = set(re.findall(r"--[a-z0-9][a-z0-9-]*", "\n".join(rows)))
    documented |= {"--help", "--config", "--set"}  # --config and --set: the Configuration section's layer list
    for command in [*TASK_MODULES, "predict", "inspect ner"]:
        flags = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", help_page(command, columns=200)))
        assert flags <= documented, f"nlpcli {command} --help: {sorted(flags - documented)} in no README table"
