"""configs/ ships as package data: a wheel holds it, and an install outside the source tree finds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

import nlpcli
from conftest import REPO
from nlpcli.config_layers import CONFIG_DIR
from nlpcli.tasks import TASK_MODULES

FIND_DEFAULTS = """
import json, nlpcli
from nlpcli.config_layers import CONFIG_DIR, resolve_config
from nlpcli.tasks.mlm import MlmConfig
cfg = resolve_config(MlmConfig, "mlm")
print(json.dumps({"package": nlpcli.__file__, "configs": str(CONFIG_DIR), "model": cfg.model,
                  "dataset": cfg.dataset, "demo": sorted(p.name for p in (CONFIG_DIR / "demo").glob("*.yaml"))}))
"""


def test_task_defaults_are_package_resources():
    shipped = resources.files("nlpcli").joinpath("configs")
    assert CONFIG_DIR.parent == Path(nlpcli.__file__).parent  # inside the package, not under sys.prefix
    for task in TASK_MODULES:
        assert shipped.joinpath(f"{task}.yaml").is_file() and shipped.joinpath("demo", f"{task}.yaml").is_file()
    # in the repository they are the top-level configs/ (one copy, edited in one place)
    assert (REPO / "nlpcli" / "configs").resolve() == (REPO / "configs").resolve()


@pytest.mark.slow
def test_a_wheel_installed_with_target_finds_the_task_defaults(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path, timeout=120)
    wheel = next(wheels.glob("nlpcli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for task in TASK_MODULES:
        assert f"nlpcli/configs/{task}.yaml" in names and f"nlpcli/configs/demo/{task}.yaml" in names
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, cwd=tmp_path, timeout=120)
    env = {**os.environ, "PYTHONPATH": str(target)}
    found = subprocess.run([sys.executable, "-c", FIND_DEFAULTS], check=True, capture_output=True, text=True,
                           cwd=tmp_path, env=env, timeout=120)
    facts = json.loads(found.stdout)
    assert Path(facts["package"]).is_relative_to(target)  # the installed copy, not this checkout
    assert Path(facts["configs"]).is_relative_to(target)
    assert (facts["model"], facts["dataset"]) == ("distilbert-base-uncased", "imdb")  # configs/mlm.yaml
    assert facts["demo"] == sorted(f"{task}.yaml" for task in TASK_MODULES)
