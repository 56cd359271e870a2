"""End to end: `nlpcli ner` with the tiny preset on the bundled sample, both loops, then predict.

Evaluations are auditable: eval_predictions.jsonl and test_predictions.jsonl hold word-level label lists from
which seqeval recomputes every figure of metrics.json; --test-file / --do-predict run the final model on a test set.
"""

from __future__ import annotations

import json

import pytest
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

from conftest import read_json, read_jsonl, run_cli
from nlpcli.metrics.seqeval_scores import seqeval_scores
from nlpcli.sources.data import SAMPLES_DIR

COMMON = ["--model", "tiny", "--dataset", "sample", "--epochs", "8", "--learning-rate", "5e-3", "--batch-size", "4"]


def sample_sentences() -> list[dict]:
    return [json.loads(line) for line in (SAMPLES_DIR / "conll2003_sample.jsonl").read_text().splitlines()]


def write_test_file(path, sentences: list[dict], labelled: bool = True):
    with path.open("w") as out:
        for sentence in sentences:
            record = {"tokens": sentence["words"], **({"ner_tags": sentence["ner"]} if labelled else {})}
            out.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module", params=["trainer", "accelerate"])
def trained(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"ner-{request.param}")
    test_file = write_test_file(folder / "test.jsonl", sample_sentences()[2:6])
    out = folder / "run"
    result = run_cli("ner", *COMMON, "--loop", request.param, "--test-file", test_file, "--output-dir", out)
    assert result.exit_code == 0, result.output
    return out


def recomputed(rows: list[dict], prefix: str) -> dict:
    references, predictions = [r["reference"] for r in rows], [r["prediction"] for r in rows]
    return {f"{prefix}_{k}": v for k, v in seqeval_scores(references, predictions).items()}


@pytest.mark.e2e
def test_train_save_reload_predict(trained):
    out = trained
    metrics = read_json(out / "metrics.json")
    for key in ("eval_loss", "eval_overall_f1", "eval_overall_precision", "eval_overall_recall",
                "eval_overall_accuracy", "eval_PER_f1", "eval_LOC_number"):
        assert key in metrics, key
    assert metrics["eval_LOC_number"] == 15  # entity count of the bundled sample
    assert 0.0 <= metrics["eval_overall_f1"] <= 1.0
    info = read_json(out / "run.json")
    assert info["world_size"] == 1 and info["eval_samples"] == 10
    # sentences of 9 to 40 words in batches: some positions are padding, most are tokens
    assert 0 < info["train_padding_share"] < 0.5
    assert info["evaluation"]["examples"] == 10 and info["evaluation"]["seconds"] > 0  # the final evaluation
    assert out.parent.name.startswith(f"ner-{info['loop']}")  # the loop asked for ran
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


@pytest.mark.e2e
def test_metrics_recompute_from_eval_predictions(trained):
    rows = read_jsonl(trained / "eval_predictions.jsonl")
    sentences = sample_sentences()
    assert [r["tokens"] for r in rows] == [s["words"] for s in sentences]  # every sentence, in data order
    assert [r["reference"] for r in rows] == [s["ner"] for s in sentences]  # word-level gold labels
    assert all(len(r["prediction"]) == len(r["tokens"]) for r in rows)
    metrics = read_json(trained / "metrics.json")
    references, predictions = [r["reference"] for r in rows], [r["prediction"] for r in rows]
    assert metrics["eval_overall_f1"] == f1_score(references, predictions) > 0
    assert metrics["eval_overall_precision"] == precision_score(references, predictions)
    assert metrics["eval_overall_recall"] == recall_score(references, predictions)
    assert metrics["eval_overall_accuracy"] == accuracy_score(references, predictions)
    assert {k: v for k, v in metrics.items() if k.startswith("eval_") and k != "eval_loss"
            and not k.endswith("_before")} == recomputed(rows, "eval")


@pytest.mark.e2e
def test_test_file_gives_test_predictions_and_metrics(trained):
    rows = read_jsonl(trained / "test_predictions.jsonl")
    assert [r["tokens"] for r in rows] == [s["words"] for s in sample_sentences()[2:6]]
    metrics = read_json(trained / "metrics.json")
    assert {k: v for k, v in metrics.items() if k.startswith("test_") and k != "test_loss"} == recomputed(rows, "test")
    assert metrics["test_loss"] > 0
    info = read_json(trained / "run.json")
    assert info["test_samples"] == 4 and info["test_labelled"] is True
    # the same sentences in the validation set got the same predictions from the same final model
    evaluated = {tuple(r["tokens"]): r["prediction"] for r in read_jsonl(trained / "eval_predictions.jsonl")}
    assert all(evaluated[tuple(r["tokens"])] == r["prediction"] for r in rows)


@pytest.mark.e2e
def test_unlabelled_test_file_gives_predictions_only(trained, tmp_path):
    test_file = write_test_file(tmp_path / "unlabelled.jsonl", sample_sentences()[:3], labelled=False)
    out = tmp_path / "eval"
    result = run_cli("ner", "--model", trained, "--eval-only", "--dataset", "sample", "--test-file", test_file,
                     "--output-dir", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "test_predictions.jsonl")
    assert [set(r) for r in rows] == [{"tokens", "prediction"}] * 3
    evaluated = read_jsonl(out / "eval_predictions.jsonl")
    assert [r["prediction"] for r in rows] == [r["prediction"] for r in evaluated[:3]]
    assert not any(k.startswith("test_") for k in read_json(out / "metrics.json"))
    assert read_json(out / "run.json")["test_labelled"] is False


@pytest.mark.e2e
def test_do_predict_reads_the_test_split(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    sentences = sample_sentences()
    write_test_file(folder / "train.jsonl", sentences)
    write_test_file(folder / "validation.jsonl", sentences[:5])
    write_test_file(folder / "test.jsonl", sentences[5:])
    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", folder, "--do-predict", "--max-steps", "1",
                     "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert [r["tokens"] for r in read_jsonl(out / "test_predictions.jsonl")] == [s["words"] for s in sentences[5:]]
    assert read_json(out / "metrics.json")["test_PER_number"] == recomputed(
        read_jsonl(out / "test_predictions.jsonl"), "test")["test_PER_number"]


def test_do_predict_without_a_test_split_is_refused(tmp_path):
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--do-predict", "--max-steps", "1",
                     "--output-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert "--do-predict: the bundled sample has no test split" in result.output and "--test-file" in result.output
    assert not (tmp_path / "run").exists()


def test_test_file_with_an_unknown_label_names_its_record(tmp_path):
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(json.dumps({"tokens": ["Bill", "sang"], "ner_tags": ["B-PER", "O"]}) + "\n"
                         + json.dumps({"tokens": ["Paris"], "ner_tags": ["B-CITY"]}) + "\n")
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--test-file", test_file, "--max-steps", "1",
                     "--output-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert f"{test_file}, record 2: label 'B-CITY' is not in the label list" in result.output


@pytest.mark.e2e
def test_the_example_scripts_result_files_hold_the_runs_figures(trained):
    """run_ner.py's train_results / eval_results / predict_results / all_results.json, in both loops."""
    metrics, info = read_json(trained / "metrics.json"), read_json(trained / "run.json")
    history = read_jsonl(trained / "log_history.jsonl")
    train = read_json(trained / "train_results.json")
    assert train == {"train_loss": metrics["train_loss"], "train_samples": info["train_samples"],
                     "train_runtime": info["train_runtime_s"], "epoch": history[-1]["epoch"],
                     "train_samples_per_second": info["train_samples_per_second"],
                     "train_steps_per_second": round(history[-1]["step"] / info["train_runtime_s"], 3)}
    evaluation = read_json(trained / "eval_results.json")
    assert evaluation == {**{k: v for k, v in metrics.items() if k.startswith("eval_") and not k.endswith("_before")},
                          "eval_samples": 10, "epoch": history[-1]["epoch"]}
    predicted = read_json(trained / "predict_results.json")
    assert predicted["predict_overall_f1"] == metrics["test_overall_f1"] and predicted["predict_samples"] == 4
    assert set(predicted) == {k.replace("test_", "predict_", 1) for k in metrics if k.startswith("test_")} | {
        "predict_samples", "epoch"}
    assert read_json(trained / "all_results.json") == {**train, **evaluation, **predicted}
    assert (trained / "eval_results.json").read_text().startswith('{\n    "epoch"')  # save_metrics: sorted, indent 4
