"""`nlpcli env`: a Markdown block for bug reports (versions, CPUs, GPUs, accelerate config, hub variables with
the token hidden), the same facts as one JSON object."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from conftest import run_cli
from nlpcli.environment import GIB, PACKAGES, as_markdown, describe_environment, gpus, package_version


def test_markdown_names_versions_cpus_and_hub_variables_and_hides_the_token(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    config = tmp_path / "multi.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nmixed_precision: bf16\n"
                      "num_processes: 4\nnum_machines: 1\n")
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", str(config))
    result = run_cli("env")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "hf_secret_value" not in result.output and any("HF_TOKEN=set" in line for line in lines)
    (shown,) = [line for line in lines if line.startswith("- Variables: ")]
    assert "HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1, TRANSFORMERS_OFFLINE=1" in shown  # conftest's offline hub
    import torch

    assert f"  - torch: {torch.__version__}" in lines
    assert f"  - rouge_score: {package_version(('rouge_score',))}" in lines
    assert f"  - deepspeed: {package_version(('deepspeed',))}" in lines  # a version, or "not installed"
    assert f"torch threads: {torch.get_num_threads()}" in result.output and "- GPUs: none" in lines
    assert (f"- Accelerate config: {config} (ACCELERATE_CONFIG_FILE): compute_environment=LOCAL_MACHINE, "
            "distributed_type=MULTI_GPU, mixed_precision=bf16, num_processes=4, num_machines=1") in lines
    facts = json.loads(run_cli("env", "--json").output)
    assert facts["accelerate_config"]["num_processes"] == 4 and facts["variables"]["HF_TOKEN"] == "set"
    assert {f"version_{name}" for name in PACKAGES} <= set(facts) and facts["default_precision"] == "fp32"
    assert facts["cpus_usable"] >= 1 and facts["device"] == "cpu" and facts["gpus"] == []
    assert all(re.fullmatch(r"[a-z0-9_]+", key) for key in facts), list(facts)
    assert "tiny" in facts["presets"] and facts["hugging_face_hub"].startswith("offline")  # conftest: offline
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    assert facts != (missing := describe_environment()) and missing["accelerate_config"]["found"] is False


def test_gpus_are_named_with_memory_cudnn_and_bf16(monkeypatch):
    import torch

    h100 = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=int(79.2 * GIB), major=9, minor=0)
    for name, value in (("is_available", lambda: True), ("device_count", lambda: 2),
                        ("get_device_properties", lambda index: h100), ("is_bf16_supported", lambda: True)):
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    found = gpus()
    assert found["gpus"] == [{"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.2, "compute_capability": "9.0"}] * 2
    monkeypatch.undo()
    lines = as_markdown({**describe_environment(), **found}).splitlines()
    assert "- GPU 1: NVIDIA H100 80GB HBM3, 79.2 GiB, compute capability 9.0" in lines
    assert "- CUDA (torch build): 12.4, available: yes, cuDNN: 90100" in lines
    assert any(line.startswith("- bf16 supported: yes") for line in lines)
