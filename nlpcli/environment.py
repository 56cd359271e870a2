"""`nlpcli env`: what this machine offers nlpcli, for bug reports: the platform, Python, every package a run
uses (read from the installed distributions' metadata, without importing them), torch's threads and the CPUs
the process may use, CUDA / cuDNN and the GPUs, the precision `--precision auto` picks, the accelerate config
`accelerate launch` would read, the Hugging Face caches and hub variables (a token only as set/unset), the hub's
reachability and the presets. `describe_environment` gathers the facts (`--json` prints them as they are);
`as_markdown` lays them out to paste into an issue. Only torch (and accelerate's config module) are imported:
no model, no data set, nothing written."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from nlpcli.config_files import read_yaml
from nlpcli.config_layers import CONFIG_DIR
from nlpcli.errors import first_line
from nlpcli.sources import hub, presets

# distribution names: a tuple lists the names one package is published under (the first installed one counts)
PACKAGES: dict[str, tuple[str, ...]] = {
    "nlpcli": ("nlpcli",), "torch": ("torch",), "transformers": ("transformers",), "datasets": ("datasets",),
    "accelerate": ("accelerate",), "tokenizers": ("tokenizers",), "huggingface_hub": ("huggingface_hub",),
    "safetensors": ("safetensors",), "numpy": ("numpy",),
    # metrics: ner, translate, summarize (ROUGE and its sentence splitters)
    "seqeval": ("seqeval",), "sacrebleu": ("sacrebleu",), "rouge_score": ("rouge_score",), "nltk": ("nltk",),
    "nupunkt": ("nupunkt",),
    # optional: trackers (--report-to), hyper-parameter search, DeepSpeed through accelerate's config
    "wandb": ("wandb",), "mlflow": ("mlflow", "mlflow-skinny"), "tensorboard": ("tensorboard",),
    "trackio": ("trackio",), "optuna": ("optuna",), "deepspeed": ("deepspeed",),
}
NOT_INSTALLED = "not installed"
HUB_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")
SECRET_VARIABLES = ("HF_TOKEN",)  # shown as set / unset, never their value
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
ACCELERATE_VARIABLE = "ACCELERATE_CONFIG_FILE"  # a config file named by the environment (see accelerate_config)
ACCELERATE_KEYS = ("compute_environment", "distributed_type", "mixed_precision", "num_processes", "num_machines",
                   "machine_rank", "gpu_ids", "use_cpu")
GIB = 1024**3


def package_version(names: tuple[str, ...]) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def cpus() -> dict[str, Any]:
    """The machine's CPUs, those this process may run on (its affinity: a container's or a job's share), and
    the threads torch uses."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpus": os.cpu_count(), "cpus_usable": usable, "torch_threads": torch.get_num_threads()}


def gpus() -> dict[str, Any]:
    """CUDA and cuDNN as torch sees them, each GPU's name, memory and compute capability, and bf16 support."""
    import torch

    cuda = torch.cuda.is_available()
    found = []
    for index in range(torch.cuda.device_count() if cuda else 0):
        props = torch.cuda.get_device_properties(index)
        found.append({"name": props.name, "memory_gib": round(props.total_memory / GIB, 1),
                      "compute_capability": f"{props.major}.{props.minor}"})
    return {
        "torch_cuda": torch.version.cuda or "none (a CPU build of torch)",
        "cuda_available": cuda,
        "cudnn": torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None,
        "gpus": found,
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "mps_available": bool(torch.backends.mps.is_available()),
    }


def accelerate_config() -> dict[str, Any]:
    """The accelerate config file: the one $ACCELERATE_CONFIG_FILE names when set, else accelerate's default
    (`accelerate config` writes it; `accelerate launch` reads it without --config_file), and its main settings."""
    from accelerate.commands.config import default_config_file

    named = os.environ.get(ACCELERATE_VARIABLE)
    path = Path(named).expanduser() if named else Path(default_config_file)
    found: dict[str, Any] = {"file": str(path), "source": ACCELERATE_VARIABLE if named else "accelerate's default",
                             "found": path.is_file()}
    if not path.is_file():
        return found
    try:
        settings = read_yaml(path)  # JSON is YAML too
    except Exception as err:  # a broken file is a fact to report, not a reason to fail
        return {**found, "problem": first_line(err)}
    return {**found, **{key: settings[key] for key in ACCELERATE_KEYS if key in settings}}


def variables() -> dict[str, str]:
    """The hub, cache and thread variables as set (`unset` when not), secrets as set / unset only."""
    shown = {name: os.environ.get(name, "unset") for name in (*HUB_VARIABLES, *THREAD_VARIABLES)}
    shown.update({name: "set" if os.environ.get(name) else "unset" for name in SECRET_VARIABLES})
    return shown


def describe_environment() -> dict[str, Any]:
    """The facts, keyed in snake_case (`nlpcli env --json` prints them as they are)."""
    from huggingface_hub import constants

    from nlpcli.runner.devices import device_name, precision_name, resolve_precision

    if hub.offline_requested():
        hub_state = "offline (HF_HUB_OFFLINE is set): cached models and data sets only"
    else:
        hub_state = "reachable" if hub.hub_reachable() else "unreachable: cached models and data sets only"
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        **{f"version_{name}": package_version(names) for name, names in PACKAGES.items()},
        **cpus(),
        **gpus(),
        "device": device_name(),
        "default_precision": precision_name(resolve_precision("auto")),  # what --precision auto picks here
        "accelerate_config": accelerate_config(),
        "hf_home": constants.HF_HOME,
        "hf_hub_cache": constants.HF_HUB_CACHE,
        "variables": variables(),
        "hugging_face_hub": hub_state,
        "presets": ", ".join(preset.name for preset in presets.BY_NAME.values() if preset.installed),
        "task_defaults": str(CONFIG_DIR),
    }


def _gpu_lines(facts: dict[str, Any]) -> list[str]:
    if not facts["gpus"]:
        return ["- GPUs: none"]
    return [f"- GPU {index}: {gpu['name']}, {gpu['memory_gib']} GiB, compute capability {gpu['compute_capability']}"
            for index, gpu in enumerate(facts["gpus"])]


def _variables_line(shown: dict[str, str]) -> str:
    given = [f"{name}={value}" for name, value in shown.items() if value != "unset"]
    unset = [name for name, value in shown.items() if value == "unset"]
    return f"- Variables: {', '.join(given) or 'none set'}" + (f"; unset: {', '.join(unset)}" if unset else "")


def as_markdown(facts: dict[str, Any]) -> str:
    """The facts as a Markdown list to paste into a GitHub issue."""
    versions = {key.removeprefix("version_"): value for key, value in facts.items() if key.startswith("version_")}
    accelerate = facts["accelerate_config"]
    settings = ", ".join(f"{key}={accelerate[key]}" for key in ACCELERATE_KEYS if key in accelerate)
    lines = [
        "Copy and paste this into your issue:",
        "",
        f"- nlpcli: {versions.pop('nlpcli')}",
        f"- Platform: {facts['platform']} ({facts['machine']})",
        f"- Python: {facts['python']}",
        "- Packages:",
        *(f"  - {name}: {version}" for name, version in versions.items()),
        f"- CPUs: {facts['cpus']} ({facts['cpus_usable']} usable by this process), torch threads: "
        f"{facts['torch_threads']}",
        f"- CUDA (torch build): {facts['torch_cuda']}, available: {'yes' if facts['cuda_available'] else 'no'}"
        + (f", cuDNN: {facts['cudnn']}" if facts["cudnn"] else ""),
        *_gpu_lines(facts),
        f"- bf16 supported: {'yes' if facts['bf16_supported'] else 'no'}; device: {facts['device']}; "
        f"--precision auto: {facts['default_precision']}",
        f"- Accelerate config: {accelerate['file']} ({accelerate['source']}"
        + (f"): {settings or 'no main settings'}" if accelerate["found"] else ", not found)")
        + (f"; cannot read it: {accelerate['problem']}" if "problem" in accelerate else ""),
        f"- HF home: {facts['hf_home']}; hub cache: {facts['hf_hub_cache']}",
        _variables_line(facts["variables"]),
        f"- Hugging Face Hub: {facts['hugging_face_hub']}",
        f"- Presets: {facts['presets']}; task defaults: {facts['task_defaults']}",
    ]
    return "\n".join(lines) + "\n"
