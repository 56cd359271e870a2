"""mlm: chunking, whole-word masking, repeatable evaluation, and end-to-end runs on the tiny preset."""

from __future__ import annotations

import json

import pytest

from conftest import read_json, run_cli
from nlpcli.tasks.mlm import IGNORE, NOT_A_WORD, MlmCollator, batch_word_ids, group_texts

CORPUS = [
    "Anarchism is a political philosophy and movement that rejects hierarchy.",
    "Autism is a neurodevelopmental condition of variable severity.",
    "The anarchist movement flourished in most parts of the world.",
] * 3
SENTENCE = "Anarchists and neurodevelopmental researchers rejected hierarchical philosophies."
SAMPLE = ["--dataset", "sample", "--chunk-size", "32", "--batch-size", "8", "--max-eval-samples", "16"]


@pytest.fixture(scope="module")
def tokenizer():
    from nlpcli.sources.presets import train_wordpiece_tokenizer

    # A small vocabulary, so that the long words of SENTENCE split into several sub-tokens.
    return train_wordpiece_tokenizer(CORPUS, vocab_size=120, max_length=64)


def test_group_texts_cuts_chunks_and_drops_the_short_tail():
    batch = {"input_ids": [[1, 2, 3, 4], [5, 6], [7, 8, 9]], "word_ids": [[-1, 0, 1, -1], [-1, -1], [-1, 2, -1]]}
    chunks = group_texts(batch, chunk_size=4)
    assert chunks["input_ids"] == [[1, 2, 3, 4], [5, 6, 7, 8]]  # 9 tokens: the last one is dropped
    assert chunks["word_ids"] == [[-1, 0, 1, -1], [-1, -1, -1, 2]]
    assert chunks["labels"] == chunks["input_ids"]
    assert chunks["labels"][0] is not chunks["input_ids"][0]  # a copy, not the same list

    exact = group_texts(batch, chunk_size=3)
    assert exact["input_ids"] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert group_texts({"input_ids": [[1, 2]]}, chunk_size=3) == {"input_ids": [], "labels": []}


def test_word_ids_stay_apart_across_texts():
    assert batch_word_ids([[None, 0, 0, 1, None], [None, 0, None]]) == [[-1, 0, 0, 1, -1], [-1, 2, -1]]


def _features(tokenizer, text: str) -> dict:
    encoded = tokenizer(text)
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "word_ids": batch_word_ids([encoded.word_ids()])[0],
    }


def test_whole_word_masking_masks_every_sub_token_of_a_chosen_word(tokenizer):
    feature = _features(tokenizer, SENTENCE)
    word_ids = feature["word_ids"]
    words: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word != NOT_A_WORD:
            words.setdefault(word, []).append(position)
    split_words = [positions for positions in words.values() if len(positions) > 1]
    assert split_words, "the test needs words made of several sub-tokens"

    masked_split_words = unmasked_words = 0
    for seed in range(10):
        batch = MlmCollator(tokenizer, 0.4, whole_word=True, seed=seed)([dict(feature) for _ in range(4)])
        assert "word_ids" not in batch
        for inputs, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
            masked = {p for p, label in enumerate(labels) if label != IGNORE}
            for positions in words.values():
                chosen = [p in masked for p in positions]
                assert all(chosen) or not any(chosen), "a word is masked only in part"
                if all(chosen):
                    masked_split_words += len(positions) > 1
                else:
                    unmasked_words += 1
            for position, (original, label, given) in enumerate(zip(feature["input_ids"], labels, inputs,
                                                                     strict=True)):
                if position in masked:
                    assert word_ids[position] != NOT_A_WORD
                    assert label == original and given == tokenizer.mask_token_id
                else:
                    assert label == IGNORE and given == original
    assert masked_split_words and unmasked_words


def test_token_masking_never_masks_special_tokens(tokenizer):
    feature = _features(tokenizer, SENTENCE)
    batch = MlmCollator(tokenizer, 1.0, whole_word=False, seed=0)([feature])
    labels = batch["labels"][0].tolist()
    for word, original, label in zip(feature["word_ids"], feature["input_ids"], labels, strict=True):
        assert label == (IGNORE if word == NOT_A_WORD else original)


def test_premasked_chunks_are_only_padded(tokenizer):
    feature = _features(tokenizer, SENTENCE)
    premasked = MlmCollator(tokenizer, 0.5, whole_word=True, seed=3)([feature])
    rows = [{name: tensor[0].tolist() for name, tensor in premasked.items()}]
    again = MlmCollator(tokenizer, 0.5, whole_word=True)(rows)  # no seed: would mask differently
    for name in premasked:
        assert again[name].tolist() == premasked[name].tolist()
    with pytest.raises(ValueError):
        MlmCollator(tokenizer, 0.5, whole_word=True)([rows[0], feature])


def _train(out, loop: str, *extra: str):
    result = run_cli("mlm", "--model", "tiny", *SAMPLE, "--learning-rate", "5e-3", "--max-train-samples", "40",
                     "--max-steps", "4", "--logging-steps", "2", "--loop", loop, "--output-dir", out, *extra)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.e2e
@pytest.mark.parametrize(
    "loop, masking", [("trainer", "--whole-word-masking"), ("accelerate", "--no-whole-word-masking")]
)
def test_train_save_reload_predict(tmp_path, loop, masking):
    out = tmp_path / loop
    _train(out, loop, masking)
    metrics = read_json(out / "metrics.json")
    assert set(metrics) == {"eval_loss", "eval_perplexity", "eval_loss_before", "eval_perplexity_before", "train_loss"}
    for when in ("", "_before"):
        assert metrics[f"eval_perplexity{when}"] == pytest.approx(2.718281828 ** metrics[f"eval_loss{when}"])
    info = read_json(out / "run.json")
    assert info["loop"] == loop
    assert info["train_samples"] == 40 and info["eval_features"] == 16  # the limits count chunks...
    assert info["eval_samples"] > 16  # ...and leave the raw texts whole

    predicted = run_cli("predict", "mlm", out, "Anarchism is a political [MASK].", "--top-k", "3", "--json")
    assert predicted.exit_code == 0, predicted.output
    (record,) = json.loads(predicted.output)  # one object per input text
    rows = record["predictions"]
    assert len(rows) == 3
    assert all(row["sequence"].startswith("Anarchism is a political") for row in rows)
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)

    refused = run_cli("predict", "mlm", out, "This is a great <mask>.")
    assert refused.exit_code == 2
    assert "[MASK]" in refused.output


@pytest.mark.e2e
def test_evaluation_is_repeatable(tmp_path):
    trained = tmp_path / "trained"
    _train(trained, "trainer")
    final = read_json(trained / "metrics.json")["eval_perplexity"]
    seen = []
    for run, loop in enumerate(["trainer", "trainer", "accelerate"]):
        out = tmp_path / f"eval-{run}"
        result = run_cli("mlm", *SAMPLE, "--model", trained, "--eval-only", "--loop", loop, "--output-dir", out)
        assert result.exit_code == 0, result.output
        seen.append(read_json(out / "metrics.json")["eval_perplexity"])
    assert seen[0] == seen[1]  # same model, same loop: the very same number
    assert seen[2] == pytest.approx(seen[0], rel=1e-5)  # the other loop: same masks, same mean
    assert seen[0] == pytest.approx(final, rel=1e-5)  # the run's own final evaluation agrees
