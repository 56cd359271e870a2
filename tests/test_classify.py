"""classify: its scores on known inputs, label lists and refusals, GLUE's MRPC layout, and tiny runs (one loop each)
that reload and predict: single texts on the bundled sample, pairs, several labels, an `nlpcli mlm` run as the
starting model."""

from __future__ import annotations

import json
import math

import pytest

from conftest import MLM_MODEL, read_json, read_jsonl, run_cli, trained_once
from nlpcli.errors import UserError
from nlpcli.metrics.classification import classification_scores, multi_label_scores
from nlpcli.sources.data import SAMPLES_DIR
from nlpcli.tasks.classify import ClassifyConfig, ClassifyTask

TINY = ["--model", "tiny", "--learning-rate", "1e-3", "--save-strategy", "no", "--batch-size", "8"]


def jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------- scores, labels, data (no training)


def test_single_label_scores_on_known_inputs():
    scores = classification_scores(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], ("a", "b", "c", "d"))
    expected = {"accuracy": 0.6, "f1_macro": (0.5 + 0.8 + 0) / 3, "f1_weighted": (0.5 * 2 + 0.8 * 2) / 5,
                "a_precision": 0.5, "a_recall": 0.5, "a_f1": 0.5, "a_number": 2,
                "b_precision": 2 / 3, "b_recall": 1.0, "b_f1": 0.8, "b_number": 2,
                "c_precision": 0.0, "c_recall": 0.0, "c_f1": 0.0, "c_number": 1}  # d: in no row, not scored
    assert scores.keys() == expected.keys()
    assert all(math.isclose(scores[k], v) for k, v in expected.items()), scores


def test_multi_label_scores_on_known_inputs():
    scores = multi_label_scores([["a", "b"], ["b"], []], [["a"], ["b", "c"], []], ("a", "b", "c"))
    expected = {"accuracy": 1 / 3, "f1_micro": 2 / 3, "f1_macro": (1 + 2 / 3 + 0) / 3, "f1_weighted": (1 + 4 / 3) / 3,
                "a_precision": 1.0, "a_recall": 1.0, "a_f1": 1.0, "a_number": 1,
                "b_precision": 1.0, "b_recall": 0.5, "b_f1": 2 / 3, "b_number": 2,
                "c_precision": 0.0, "c_recall": 0.0, "c_f1": 0.0, "c_number": 0}
    assert scores.keys() == expected.keys()
    assert all(math.isclose(scores[k], v) for k, v in expected.items()), scores


def test_scores_agree_with_scikit_learn_on_random_labels():
    import random

    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    draw, labels = random.Random(0), ("a", "b", "c", "d")
    for _ in range(50):
        size = draw.randint(1, 12)
        refs, preds = ([draw.choice(labels[:3]) for _ in range(size)] for _ in range(2))
        ours = classification_scores(refs, preds, labels)
        classes = [label for label in labels if label in set(refs) | set(preds)]
        p, r, f, n = precision_recall_fscore_support(refs, preds, labels=classes, zero_division=0)
        theirs = {"accuracy": accuracy_score(refs, preds),
                  **{f"f1_{avg}": f1_score(refs, preds, labels=classes, average=avg, zero_division=0)
                     for avg in ("macro", "weighted")},
                  **{f"{c}_{k}": v[i] for i, c in enumerate(classes) for k, v in
                     (("precision", p), ("recall", r), ("f1", f), ("number", n))}}
        assert ours.keys() == theirs.keys() and all(math.isclose(ours[k], theirs[k]) for k in ours), (refs, preds)
        sets = [[sorted({draw.choice(labels) for _ in range(draw.randint(0, 3))}) for _ in range(size)]
                for _ in range(2)]
        ours = multi_label_scores(*sets, labels)
        classes = [label for label in labels if any(label in row for row in sets[0] + sets[1])]
        if len(classes) < 2:  # scikit-learn reads a one-column indicator matrix as binary labels
            continue
        truth, guess = (MultiLabelBinarizer(classes=classes).fit_transform(rows) for rows in sets)
        p, r, f, n = precision_recall_fscore_support(truth, guess, zero_division=0)
        theirs = {"accuracy": accuracy_score(truth, guess),
                  **{f"f1_{avg}": f1_score(truth, guess, average=avg, zero_division=0)
                     for avg in ("micro", "macro", "weighted")},
                  **{f"{c}_{k}": v[i] for i, c in enumerate(classes) for k, v in
                     (("precision", p), ("recall", r), ("f1", f), ("number", n))}}
        assert ours.keys() == theirs.keys() and all(math.isclose(ours[k], theirs[k]) for k in ours), sets


def test_the_multi_label_eval_loss_is_the_models_binary_cross_entropy():
    import torch

    from nlpcli.metrics.losses import per_sample_loss

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    sums, counts = per_sample_loss(logits, labels, shift=False)
    assert counts.tolist() == [3, 3]
    assert math.isclose(float(sums.sum() / counts.sum()),
                        float(torch.nn.BCEWithLogitsLoss()(logits, labels)), rel_tol=1e-6)


def _setup(train: list, validation: list, **options):
    import datasets

    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["t"] * len(train), "label": train}),
                                "validation": datasets.Dataset.from_dict({"text": ["v"] * len(validation),
                                                                          "label": validation})})
    return ClassifyTask().setup(raw, ClassifyConfig(dataset="hub/x", **options), None)


def test_label_lists_from_names_ids_and_the_labels_option():
    named = _setup(["pos", "neg", "pos"], ["neg"])
    assert named.labels == ("neg", "pos") and named.model_kwargs["problem_type"] == "single_label_classification"
    assert _setup([2, 0], [1]).labels == ("0", "1", "2")  # ids without names: named by their number
    assert _setup([1, 0], [1], labels=["not_equivalent", "equivalent"]).labels == ("not_equivalent", "equivalent")
    several = _setup([["b", "a"], []], [["a"]], multi_label=True)
    assert several.labels == ("a", "b") and several.model_kwargs["problem_type"] == "multi_label_classification"
    with pytest.raises(UserError, match=r"record 1: label 'z' is not one of the training data's labels \(neg, pos\)"):
        _setup(["pos", "neg"], ["z"])
    with pytest.raises(UserError, match=r"record 2: class id 5 is not in 0\.\.1"):
        _setup([0, 1], [1, 5], labels=["a", "b"])
    with pytest.raises(UserError, match="one label only"):
        _setup(["pos", "pos"], ["pos"])
    with pytest.raises(UserError, match="Several labels per text: --multi-label"):
        _setup([["a"], ["b"]], [["a"]])


def test_the_mrpc_tsv_layout_is_read_cell_for_cell():
    from nlpcli.sources.data_files import load_file

    rows = load_file(SAMPLES_DIR / "mrpc_train.tsv", "text", None, "text", "label")
    assert len(rows) == 6 and rows.column_names == ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    assert rows[0]["#2 String"] == '" The foodservice pie business does not fit our long-term growth strategy .'
    assert rows["Quality"] == [1, 0, 0, 1, 0, 1]


def test_an_unknown_label_in_eval_and_a_missing_column_are_refused(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", [{"text": "a b", "label": "x"}, {"text": "c", "label": "y"}])
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": "z"}\n')
    result = run_cli("classify", "--model", "tiny", "--train-file", train, "--validation-file", dev,
                     "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = f"{dev}, line 3: label 'z' is not one of the training data's labels (x, y)."
    assert message in " ".join(result.output.split())
    missing = run_cli("classify", "--model", "tiny", "--train-file", train, "--validation-file", dev,
                      "--text-pair-column", "sentence2", "--output-dir", tmp_path / "out")
    assert missing.exit_code == 2 and f"{train}: no column 'sentence2'. Columns: text, label." in missing.output
    assert not (tmp_path / "out").exists()


def test_the_default_hub_data_set_fails_fast_offline(tmp_path):
    result = run_cli("classify", "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and "stanfordnlp/imdb" in result.output and "HF_HUB_OFFLINE" in result.output


# ---------------------------------------------------------------- tiny runs that reload and predict


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classify")
    test_file = jsonl(folder / "test.jsonl", [{"text": "Anarchists reject the state."},
                                              {"text": "Autism in children."}])
    result = run_cli("classify", *TINY, "--dataset", "sample", "--max-steps", "4", "--max-train-samples", "32",
                     "--max-eval-samples", "8", "--test-file", test_file, "--output-dir", folder / "run")
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.mark.e2e
def test_a_sample_run_recomputes_from_its_predictions_and_reloads(sample_run):
    metrics, labels = read_json(sample_run / "metrics.json"), ("anarchism", "autism")
    for name in ("eval_predictions.jsonl", "eval_predictions_before.jsonl"):
        rows = read_jsonl(sample_run / name)
        assert len(rows) == 8 and set(rows[0]) == {"text", "prediction", "reference", "probabilities"}
        for row in rows:  # the prediction is the most probable class
            assert row["prediction"] == max(row["probabilities"], key=row["probabilities"].get)
        suffix = "_before" if "before" in name else ""
        recomputed = classification_scores([r["reference"] for r in rows], [r["prediction"] for r in rows], labels)
        assert all(math.isclose(metrics[f"eval_{k}{suffix}"], v) for k, v in recomputed.items())
    tested = read_jsonl(sample_run / "test_predictions.jsonl")  # unlabelled: predictions only
    assert [set(r) for r in tested] == [{"text", "prediction", "probabilities"}] * 2
    assert "pipeline_tag: text-classification" in (sample_run / "README.md").read_text()

    result = run_cli("predict", "classify", sample_run, "Anarchists reject the state.", "--top-k", "1", "--json")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)
    assert record["prediction"] == tested[0]["prediction"] and [s["label"] for s in record["scores"]] == [
        record["prediction"]]
    assert math.isclose(record["scores"][0]["score"], tested[0]["probabilities"][record["prediction"]], abs_tol=1e-4)


@pytest.mark.e2e
def test_text_pairs_in_the_mrpc_tsv_layout_train_and_predict(tmp_path):
    mrpc = SAMPLES_DIR / "mrpc_train.tsv"
    result = run_cli("classify", *TINY, "--loop", "accelerate", "--train-file", mrpc, "--validation-file", mrpc,
                     "--text-column", "#1 String", "--text-pair-column", "#2 String", "--label-column", "Quality",
                     "--labels", "not_equivalent,equivalent", "--max-steps", "2", "--output-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "run" / "eval_predictions.jsonl")
    assert [r["reference"] for r in rows] == ["equivalent", "not_equivalent", "not_equivalent", "equivalent",
                                             "not_equivalent", "equivalent"]  # Quality 1, 0, 0, 1, 0, 1
    assert rows[0]["text_pair"].startswith('" The foodservice')
    pair = run_cli("predict", "classify", tmp_path / "run", "He left .", "--text-pair", "He went away .", "--json")
    assert pair.exit_code == 0, pair.output
    assert json.loads(pair.output)[0]["text_pair"] == "He went away ."
    alone = run_cli("predict", "classify", tmp_path / "run", "He left .")
    assert alone.exit_code == 2 and "classifies text pairs" in alone.output


@pytest.mark.e2e
def test_several_labels_per_text_with_a_threshold(tmp_path):
    rows = [("the state and the war", ["politics", "war"]), ("autism in children", ["health"]),
            ("a war hospital", ["war", "health"]), ("nothing here", [])] * 2
    train = jsonl(tmp_path / "train.jsonl", [{"text": t, "label": labels} for t, labels in rows])
    dev = tmp_path / "dev.csv"  # names joined by commas; an empty cell: no label
    dev.write_text("text,label\n" + "".join(f'{t},"{",".join(labels)}"\n' for t, labels in rows[:4]))
    result = run_cli("classify", *TINY, "--train-file", train, "--validation-file", dev, "--multi-label",
                     "--threshold", "0.45", "--max-steps", "2", "--output-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    metrics = read_json(tmp_path / "run" / "metrics.json")
    written = read_jsonl(tmp_path / "run" / "eval_predictions.jsonl")
    assert [r["reference"] for r in written] == [["politics", "war"], ["health"], ["health", "war"], []]
    bce = []
    for row in written:
        assert row["prediction"] == [k for k, p in row["probabilities"].items() if p >= 0.45]
        bce += [-math.log(p if k in row["reference"] else 1 - p) for k, p in row["probabilities"].items()]
    assert math.isclose(metrics["eval_loss"], sum(bce) / len(bce), rel_tol=1e-4)
    labels = ("health", "politics", "war")
    recomputed = multi_label_scores([r["reference"] for r in written], [r["prediction"] for r in written], labels)
    assert all(math.isclose(metrics[f"eval_{k}"], v) for k, v in recomputed.items())
    predicted = run_cli("predict", "classify", tmp_path / "run", "a war", "--top-k", "2", "--json")
    (record,) = json.loads(predicted.output)
    assert len(record["scores"]) == 2 and isinstance(record["prediction"], list)


@pytest.mark.e2e
def test_an_mlm_run_is_a_starting_model_with_a_new_head(tmp_path_factory, tmp_path):
    mlm = trained_once(tmp_path_factory, "mlm", *MLM_MODEL)
    result = run_cli("classify", *TINY[2:], "--model", mlm, "--dataset", "sample", "--max-steps", "2",
                     "--max-train-samples", "16", "--max-eval-samples", "4", "--output-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (f"note: --model {mlm} holds a BertForMaskedLM (no classification head): its encoder is kept, and a new "
            "classification head (random weights) is trained for 2 labels.") in text
    assert "LOAD REPORT" not in text and "newly initialized" not in text
    vocab = [read_json(folder / "tokenizer.json")["model"]["vocab"] for folder in (tmp_path / "run", mlm)]
    assert vocab[0] == vocab[1]  # the mlm run's tokenizer
    assert read_json(tmp_path / "run" / "config.json")["architectures"] == ["BertForSequenceClassification"]
