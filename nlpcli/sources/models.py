"""Model sources: a hub id, a local folder, or a built-in preset -> (model, tokenizer).

Every failure becomes one `UserError`: a missing local folder is called a missing folder (not an
"invalid repo id"), and an unreachable hub is detected in seconds (see `sources.hub`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.errors import UserError, first_line
from nlpcli.files import model_folder_problem, unreadable
from nlpcli.run_folder import architectures, model_types, settings_file
from nlpcli.sources import hub, presets

LOCAL_EXAMPLE = "--model tiny (random weights, trained tokenizer), --model minilm, or --model path/to/folder"


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith("/") or spec.count("/") > 1 or "\\" in spec


def locate(spec: str, weights: bool = True) -> str:
    """The folder or hub id that `from_pretrained` should receive for `spec`; '' for a preset that is built
    (the tiny one). `weights=False`: only the configuration will be read (a model's facts, or a model trained from
    scratch), so a folder with a configuration and no weights will do."""
    preset = presets.find(spec)
    if preset is not None:
        return str(preset.folder()) if preset.folder is not None else ""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / layout.MODEL_CONFIG).is_file():
            raise UserError(f"Model folder {path} has no {layout.MODEL_CONFIG}: it does not hold a saved model.")
        damaged = model_folder_problem(path) if weights else unreadable(path / layout.MODEL_CONFIG)
        if damaged:
            raise UserError(f"Model folder {path} is damaged: {damaged}.")
        return str(path)
    if path.exists():
        raise UserError(f"--model {spec}: this is a file; give the folder that holds {layout.MODEL_CONFIG}.")
    if _looks_like_path(spec):
        raise UserError(f"Model folder not found: {path}", hint=f"Check the path, or use {LOCAL_EXAMPLE}.")
    return spec


def _from_hub_or_folder(loader: Callable[..., Any], where: str, spec: str, local_example: str = LOCAL_EXAMPLE,
                        **kwargs: Any) -> Any:
    is_local = Path(where).is_dir()
    reachable = True if is_local else hub.prepare_hub_access()
    try:
        return loader(where, **kwargs)
    except OSError as err:
        if is_local:
            raise UserError(f"Cannot load the model in {where}: {first_line(err)}") from None
        if not reachable:
            raise UserError(hub.unreachable_hint("model", spec, local_example)) from None
        raise UserError(
            f"'{spec}' is not a local folder, and the Hub could not provide it: {first_line(err)}",
            hint=f"Check the model id, or use {local_example}.",
        ) from None


def pretrained_config(spec: str) -> Any | None:
    """The saved model configuration (e.g. its id2label), or None for the tiny preset."""
    where = locate(spec, weights=False)
    if not where:
        return None
    from transformers import AutoConfig

    return _from_hub_or_folder(AutoConfig.from_pretrained, where, spec)


# model types whose learned positions start after the padding index: max_position_embeddings - 2 are usable
OFFSET_POSITIONS = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2, "mpnet": 2, "xlm-roberta-xl": 2}


def config_positions(config: Any) -> int | None:
    """The longest input (in tokens) a model configuration has positions for; None: no fixed limit (relative
    positions, as T5's)."""
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not isinstance(positions, int):
        return None
    return positions - OFFSET_POSITIONS.get(getattr(config, "model_type", ""), 0)


def model_positions(spec: str, model_class_name: str) -> int | None:
    """The positions of the model `--model spec` gives this task's model class (a preset's from what it builds)."""
    preset = presets.find(spec)
    if preset is not None and preset.random_weights:
        return presets.tiny_positions(model_class_name)
    return config_positions(pretrained_config(spec))


KINDS = {
    "AutoModelForSeq2SeqLM": "an encoder-decoder (sequence-to-sequence) model such as T5, BART or Marian",
    "AutoModelForCausalLM": "a causal language model such as GPT-2",
    "AutoModelForMaskedLM": "a masked language model such as BERT",
}


def _check_architecture(spec: str, model_class: Any) -> None:
    """Refuse a model the task's AutoModel class cannot build (e.g. a BERT encoder for translation)."""
    config = pretrained_config(spec)
    types = model_types(model_class.__name__)
    if config is None or not types or config.model_type in types:
        return
    needed = KINDS.get(model_class.__name__, f"a model {model_class.__name__} can load")
    raise UserError(f"--model {spec} is a {config.model_type} model; this task needs {needed}.",
                    hint="Offline, --model tiny builds a small random model of the right kind.")


def tokenizer_location(spec: str) -> str:
    """`locate` for a tokenizer: a folder needs the tokenizer's files (what `save_pretrained` of a tokenizer
    writes), not a model's."""
    path = Path(spec).expanduser()
    if not path.is_dir() or presets.find(spec) is not None:
        return locate(spec, weights=False)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"Tokenizer folder {path} holds no tokenizer ({' or '.join(TOKENIZER_FILES)}).")
    return str(path)


TOKENIZER_FILES = (layout.TOKENIZER_FILE, layout.TOKENIZER_CONFIG, *layout.TOKENIZER_VOCABS)


def load_tokenizer(spec: str) -> Any:
    """The tokenizer saved in a folder or on the Hub under `spec`."""
    from transformers import AutoTokenizer

    where = tokenizer_location(spec)
    if not where:
        raise UserError(f"'{spec}' is a model preset, not a tokenizer: give a hub id or a folder.")
    return _from_hub_or_folder(AutoTokenizer.from_pretrained, where, spec)


def attention_kwargs(attn_implementation: str | None) -> dict[str, Any]:
    """What --attn-implementation adds to the model's `from_pretrained` (or a preset's configuration)."""
    return {"attn_implementation": attn_implementation} if attn_implementation else {}


def check_attention(attn_implementation: str | None) -> None:
    """--attn-implementation must name a kernel transformers knows (its AttentionInterface's, or eager), or a hub
    kernel (`org/repo`, looked up when the model loads): refused before any data is read."""
    if not attn_implementation or "/" in attn_implementation:
        return
    from transformers import AttentionInterface

    known = ["eager", *AttentionInterface().valid_keys()]
    if attn_implementation not in known:
        raise UserError(f"--attn-implementation {attn_implementation}: not an attention kernel transformers knows.",
                        hint=f"Known: {', '.join(known)}, or a hub kernel (org/repo).")


@contextmanager
def explained_attention(attn_implementation: str | None) -> Iterator[None]:
    """A model that cannot run --attn-implementation (a kernel whose package is missing, a name transformers does
    not know, a model without it): exit 2 with transformers' reason, not a traceback."""
    try:
        yield
    except (ImportError, ValueError) as err:
        reason = first_line(err)
        if not attn_implementation or not any(w in reason.lower() for w in ("attn", "attention")):
            raise
        raise UserError(f"--attn-implementation {attn_implementation}: {reason}",
                        hint="sdpa and eager run on every device; leave the option out for transformers' "
                             "choice.") from None


def attention_that_ran(model: Any) -> str | None:
    """The attention implementation the loaded model runs (its configuration's, as transformers records it)."""
    chosen = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return chosen if isinstance(chosen, str) else None


def load_model_and_tokenizer(
    spec: str,
    model_class_name: str,
    model_kwargs: dict[str, Any],
    preset_texts: Callable[[], Iterable[str]],
    preset_vocab_size: int,
    preset_tokenizer_dir: Path,
) -> tuple[Any, Any]:
    """Load `spec` with the task's AutoModel class; `preset_texts` trains the tiny preset's tokenizer
    (kept in `preset_tokenizer_dir`, and loaded from there when it is already there)."""
    import transformers

    model_class = getattr(transformers, model_class_name)
    where = locate(spec)
    if not where:
        return presets.build_tiny(model_class, preset_texts(), preset_vocab_size, model_kwargs, preset_tokenizer_dir)
    _check_architecture(spec, model_class)
    tokenizer = _from_hub_or_folder(transformers.AutoTokenizer.from_pretrained, where, spec)
    if model_kwargs.get("num_labels") is not None:
        model_kwargs = {**model_kwargs, "ignore_mismatched_sizes": True}
    model = _from_hub_or_folder(model_class.from_pretrained, where, spec, **model_kwargs)
    return model, tokenizer


@dataclass(frozen=True)
class Checkpoint:
    """A saved model to predict with: what `from_pretrained` receives (a folder or a hub id), its architectures
    (config.json's), and the nlpcli_config.yaml that describes it (None: not trained by nlpcli)."""

    where: str
    architectures: list[str]
    settings: Path | None


PREDICT_EXAMPLE = "the output folder of a run (runs/...), or any folder written by save_pretrained"


def checkpoint(spec: str) -> Checkpoint:
    """The model `nlpcli predict` is given: a local folder (an nlpcli run, a checkpoint, or any `save_pretrained`
    folder), a preset with real weights, or a hub id (online, or in the cache: offline it fails at once)."""
    folder = Path(spec).expanduser()
    preset = presets.find(spec)
    if not folder.exists() and preset is not None:
        if preset.folder is None:
            raise UserError(f"'{spec}' is a preset with random weights: there is nothing to predict with.",
                            hint=f"Give {PREDICT_EXAMPLE}, or a hub model id.")
        folder = Path(preset.folder())
    if folder.exists() or _looks_like_path(spec):
        if not (folder / layout.MODEL_CONFIG).is_file():
            raise UserError(f"{spec}: not a saved model folder (no {layout.MODEL_CONFIG}).")
        damaged = model_folder_problem(folder)
        if damaged:
            raise UserError(f"{spec}: the saved model is damaged: {damaged}.")
        return Checkpoint(str(folder), architectures(folder), settings_source(str(folder)))
    config = _from_hub_or_folder(_auto_config(), spec, spec, local_example=PREDICT_EXAMPLE)
    return Checkpoint(spec, [str(a) for a in getattr(config, "architectures", None) or []], settings_source(spec))


def _auto_config() -> Callable[..., Any]:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained


def settings_source(spec: str) -> Path | None:
    """The nlpcli_config.yaml that describes model `spec` (a folder, a checkpoint of a run, or a hub id whose repo
    holds one); None when there is none."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        saved = settings_file(folder)
        return saved if saved.is_file() else None
    return hub.repo_file(spec, layout.RUN_CONFIG)
