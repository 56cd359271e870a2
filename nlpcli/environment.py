"""`nlpcli env`: what this machine offers nlpcli (versions, device, precision, hub, presets), for bug reports."""

from __future__ import annotations

import os
from typing import Any

from nlpcli.config_layers import CONFIG_DIR
from nlpcli.sources import hub, presets


def describe_environment() -> dict[str, Any]:
    """The facts, keyed in snake_case (`nlpcli env --json` prints them as they are)."""
    import torch

    from nlpcli.runner.devices import device_name, precision_name, resolve_precision
    from nlpcli.runner.report import library_versions

    cuda = torch.cuda.is_available()
    if hub.offline_requested():
        hub_state = "offline (HF_HUB_OFFLINE is set): cached models and data sets only"
    else:
        hub_state = "reachable" if hub.hub_reachable() else "unreachable: cached models and data sets only"
    return {
        **{f"version_{name}": version for name, version in library_versions().items()},
        "device": device_name(),
        "gpus": torch.cuda.device_count() if cuda else 0,
        "default_precision": precision_name(resolve_precision("auto")),  # what --precision auto picks here
        "bf16_available": bool(cuda and torch.cuda.is_bf16_supported()),
        "hugging_face_hub": hub_state,
        "hf_cache": os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")),
        "presets": ", ".join(preset.name for preset in presets.BY_NAME.values() if preset.installed),
        "task_defaults": str(CONFIG_DIR),
    }
