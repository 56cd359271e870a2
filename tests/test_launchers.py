"""Launchers and sharded training: the accelerate configs nlpcli ships, `accelerate launch` with them, and the
refusal of sharding settings that cannot run. test_distributed launches the DDP config."""

from __future__ import annotations

import pytest

from conftest import run_cli
from nlpcli.config_layers import CONFIG_DIR

SHIPPED = {"single_gpu": ("NO", None), "multi_gpu": ("MULTI_GPU", None), "fsdp2": ("FSDP", 2),
           "deepspeed_zero2": ("DEEPSPEED", 2), "deepspeed_zero3": ("DEEPSPEED", 3)}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_accelerate_configs_are_what_accelerate_reads(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIG_DIR / "accelerate" / f"{name}.yaml"))
    kind, level = SHIPPED[name]
    assert config.distributed_type.value == kind and config.mixed_precision == "bf16"
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == level
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == level


@pytest.mark.parametrize(("arg", "expected"), [
    ("fsdp=full_shard", "sharded training needs a distributed launch"),
    ("deepspeed=ds.json", "needs the deepspeed package"),
])
def test_sharding_without_a_launch_is_refused_naming_the_command(tmp_path, arg, expected):
    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--trainer-arg", arg, "--output-dir", out)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and expected in text and "Traceback" not in text
    shipped = "fsdp2.yaml" if arg.startswith("fsdp") else "deepspeed_zero2.yaml"
    assert f"accelerate launch --config_file {CONFIG_DIR / 'accelerate' / shipped}" in text
    assert not out.exists()  # nothing written for a refused run
