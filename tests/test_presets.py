"""The tiny preset: a trained tokenizer kept per run, so resumes and DDP processes share it."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForTokenClassification

from nlpcli.sources.models import attention_that_ran
from nlpcli.sources.presets import build_tiny


def test_tiny_preset_reuses_the_tokenizer_kept_in_its_folder(tmp_path):
    folder = tmp_path / "preset-tokenizer"
    model, tokenizer = build_tiny(AutoModelForTokenClassification, ["Bill Clinton visited Paris"] * 5, 60,
                                  {"num_labels": 3}, folder)
    assert (folder / "tokenizer.json").is_file()
    assert model.config.vocab_size == len(tokenizer) and model.config.num_labels == 3
    # other text would train another vocabulary: the kept tokenizer wins
    _, again = build_tiny(AutoModelForTokenClassification, ["completely different words here"] * 5, 60,
                          {"num_labels": 3}, folder)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert again("Bill Clinton").input_ids == tokenizer("Bill Clinton").input_ids


def test_tokenizer_fitting_is_deterministic_and_covers_every_character():
    from nlpcli.sources.data import SAMPLES_DIR
    from nlpcli.sources.presets import train_wordpiece_tokenizer

    texts = [line for line in (SAMPLES_DIR / "wiki_00.txt").read_text().splitlines() if line.strip()]
    first = train_wordpiece_tokenizer(texts, 500, 128)
    second = train_wordpiece_tokenizer(list(texts), 500, 128)
    assert first.get_vocab() == second.get_vocab() and len(first) == 500
    encoded = first(texts[5])
    assert first.unk_token_id not in encoded.input_ids  # unseen words split into characters, never [UNK]
    assert "the" in first.get_vocab()  # the most frequent words are whole tokens


def test_presets_say_what_they_are_instead_of_being_asked_by_name():
    from nlpcli.sources import presets

    tiny, minilm = presets.find("tiny"), presets.find("minilm")
    assert tiny.random_weights and tiny.fits_tokenizer and tiny.folder is None
    assert tiny.causal_lm_positions == presets.TINY_GPT2["n_positions"]
    assert not minilm.random_weights and not minilm.fits_tokenizer and minilm.folder is presets.minilm_folder
    assert presets.find("bert-base-cased") is None and presets.PRESETS == ("tiny", "minilm")


def test_eval_only_refuses_a_preset_with_random_weights(tmp_path):
    from conftest import run_cli

    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--eval-only", "--output-dir", tmp_path / "x")
    said = result.output.replace("\n", " ")
    assert result.exit_code == 2
    assert "--eval-only evaluates a trained model" in said and "tiny preset has random weights" in said


def test_every_tiny_preset_runs_the_attention_kernel_asked_for_with_the_same_numbers(tmp_path):
    texts = ["Bill Clinton visited Paris in the spring of 1998 ."] * 5
    for name in ("AutoModelForTokenClassification", "AutoModelForSeq2SeqLM", "AutoModelForCausalLM"):
        model_class = getattr(transformers, name)
        default, tokenizer = build_tiny(model_class, texts, 80, {}, tmp_path / name)
        eager, _ = build_tiny(model_class, texts, 80, {"attn_implementation": "eager"}, tmp_path / name)
        assert (attention_that_ran(default), attention_that_ran(eager)) == ("sdpa", "eager"), name
        eager.load_state_dict(default.state_dict())  # the same weights, another kernel: the same outputs
        inputs = dict(tokenizer(texts[:2], return_tensors="pt"))
        inputs.pop("token_type_ids", None)
        if default.config.is_encoder_decoder:
            inputs["decoder_input_ids"] = inputs["input_ids"][:, :4]
        with torch.no_grad():
            torch.testing.assert_close(eager.eval()(**inputs).logits, default.eval()(**inputs).logits,
                                       rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="bogus"):
        build_tiny(transformers.AutoModelForCausalLM, texts, 80, {"attn_implementation": "bogus"}, tmp_path / "c")
