"""Why mlm keeps its own whole-word masking instead of transformers' `DataCollatorForLanguageModeling(
whole_word_mask=True)` (issue 13, item 12): both draw one Bernoulli(p) per word start from the generator and
replace every sub-token of a chosen word by [MASK], so on text whose words are whitespace-separated they give
the same masks for the same generator. But transformers finds words from offset gaps (a run of characters
without whitespace is one word), while nlpcli uses the tokenizer's word ids, as the course and BERT's own
whole-word masking do: "anti-authoritarian," is three words and a comma to nlpcli, one word to transformers."""

from __future__ import annotations

import warnings

import pytest
import torch

from nlpcli.sources.presets import train_wordpiece_tokenizer
from nlpcli.tasks.mlm import NOT_A_WORD, batch_word_ids, whole_word_mask

PLAIN = ["anarchism is a political philosophy", "the anarchists met in paris and london"]
PUNCTUATED = ["anarchism, broadly: an anti-authoritarian philosophy.", "they met (in paris) and london's docks"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece_tokenizer(PLAIN * 3 + PUNCTUATED * 3, 120, 64)


def masks(tokenizer, texts: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(nlpcli's labels, transformers' labels) for `texts`, each drawn from a generator seeded `seed`."""
    from transformers import DataCollatorForLanguageModeling

    encoded = tokenizer(texts, return_offsets_mapping=True, return_special_tokens_mask=True, padding=True)
    word_ids = batch_word_ids([encoded.word_ids(i) for i in range(len(texts))])
    ids = torch.tensor(encoded["input_ids"])
    _, ours = whole_word_mask(ids.clone(), torch.tensor(word_ids), 0.3, tokenizer.mask_token_id,
                              torch.Generator().manual_seed(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        library = DataCollatorForLanguageModeling(tokenizer, whole_word_mask=True, mlm_probability=0.3,
                                                  mask_replace_prob=1.0, random_replace_prob=0.0)
    library.generator = torch.Generator().manual_seed(seed)  # what MlmCollator does per (epoch, batch)
    features = [{name: encoded[name][i] for name in ("input_ids", "special_tokens_mask", "offset_mapping")}
                for i in range(len(texts))]
    return ours, library(features)["labels"]


def test_same_masks_when_words_are_whitespace_separated(tokenizer):
    for seed in range(20):
        ours, library = masks(tokenizer, PLAIN, seed)
        assert torch.equal(ours, library), seed


def test_words_differ_where_the_tokenizer_splits_punctuation(tokenizer):
    differing = sum(not torch.equal(*masks(tokenizer, PUNCTUATED, seed)) for seed in range(20))
    assert differing >= 10  # transformers masks "anti-authoritarian," as one unit; nlpcli as four words
    encoded = tokenizer(["anti-authoritarian,"])
    words = [w for w in batch_word_ids([encoded.word_ids(0)])[0] if w != NOT_A_WORD]
    assert len(set(words)) == 4  # anti, -, authoritarian, ","
