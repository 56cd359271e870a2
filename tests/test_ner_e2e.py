"""End to end: `nlpcli ner` with the tiny preset on the bundled sample, both loops, then predict."""

from __future__ import annotations

import json

import pytest

from conftest import read_json, run_cli

COMMON = ["--model", "tiny", "--dataset", "sample", "--epochs", "8", "--learning-rate", "5e-3", "--batch-size", "4"]


@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_train_save_reload_predict(tmp_path, loop):
    out = tmp_path / loop
    result = run_cli("ner", *COMMON, "--loop", loop, "--output-dir", out)
    assert result.exit_code == 0, result.output
    metrics = read_json(out / "metrics.json")
    for key in ("eval_loss", "eval_overall_f1", "eval_overall_precision", "eval_overall_recall",
                "eval_overall_accuracy", "eval_PER_f1", "eval_LOC_number"):
        assert key in metrics, key
    assert metrics["eval_LOC_number"] == 15  # entity count of the bundled sample
    assert 0.0 <= metrics["eval_overall_f1"] <= 1.0
    info = read_json(out / "run.json")
    assert info["world_size"] == 1 and info["loop"] == loop and info["eval_samples"] == 10
    assert (out / "nlpcli_config.yaml").is_file()
    assert list(out.glob("checkpoint-*")), "an epoch checkpoint is kept"

    sentence = "President Bill Clinton earlier this month invoked special powers to appoint Fowler ."
    predicted = run_cli("predict", "ner", out, sentence, "--json")
    assert predicted.exit_code == 0, predicted.output
    (record,) = json.loads(predicted.output)  # one object per input text
    assert record["text"] == sentence
    rows = record["entities"]
    labels = set(read_json(out / "config.json")["id2label"].values())
    assert rows, "the model reloads and finds entities in a sentence it was trained on"
    assert all(f"B-{row['entity']}" in labels for row in rows)
    assert all(sentence[row["start"]:row["end"]] for row in rows)
    assert "PER" in {row["entity"] for row in rows}
