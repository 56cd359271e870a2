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


def test_env_reports_versions_device_and_offline_hub():
    import json

    result = run_cli("env", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["device"] == "cpu" and facts["default_precision"] == "fp32"
    assert facts["version_torch"].startswith("2.") and "tiny" in facts["presets"]
    assert facts["hugging_face_hub"].startswith("offline")  # conftest sets HF_HUB_OFFLINE=1
