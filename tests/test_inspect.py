"""`nlpcli inspect`: every task on the tiny preset (one in-process build and forward pass each: no loop), its JSON
report, broken inputs it must report as a problem (exit 1), and the checks on batches that no run builds (label ids
beyond the model's labels, a key forward() does not take, a forward pass that fails)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest

from conftest import read_json, run_cli
from nlpcli.tasks import TASK_MODULES

SAMPLES = Path(__file__).resolve().parent.parent / "nlpcli" / "samples"
TASK_ARGS = {
    "ner": (), "mlm": (), "translate": ("--target-lang", "ro", "--length-split", "8"),
    "summarize": ("--max-length", "64"),
    "qa": ("--version-2-with-negative",), "clm": (), "classify": (),
}
CHECKS = ["data", "example", "targets", "batch", "signature", "forward", "model"]


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("nlpcli-inspect-*")}


def first_record(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8").splitlines()[0])


def test_every_task_is_inspected():
    assert set(TASK_ARGS) == set(TASK_MODULES)


@pytest.mark.parametrize("task", list(TASK_ARGS))
def test_inspect_builds_what_a_run_would_and_writes_nothing_but_its_report(task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run would make runs/<task>-<time> here
    private = tmp_path.parent / f"{tmp_path.name}-tmp"  # this test's temporary folders alone: another worker's
    private.mkdir()  # inspect (test_predict_checkpoints) would otherwise show up in the shared one
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    before = leftovers()
    report_file = tmp_path / "report.json"
    result = run_cli("inspect", task, "--model", "tiny", "--dataset", "sample", "--batch-size", "4",
                     *TASK_ARGS[task], "--json", "--output", report_file)
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == [report_file] and leftovers() == before  # no folder, no preset tokenizer
    report = read_json(report_file)
    assert json.loads(result.output[result.output.index("{"):]) == report  # --json prints the object --output writes
    assert report["task"] == task and report["split"] == "train" and report["status"] in ("ok", "warning")
    assert [check["name"] for check in report["checks"]][: len(CHECKS)] == CHECKS
    for check in report["checks"]:
        assert set(check) == {"name", "status", "summary", "details", "notes"} and check["status"] != "problem"
    checks = {check["name"]: check["details"] for check in report["checks"]}
    assert checks["batch"]["keys"]["input_ids"]["shape"][0] == 4
    assert checks["signature"]["not named by forward"] == []
    forward = checks["forward"]
    assert math.isfinite(forward["loss"]) and forward["loss"] <= forward["baseline"]["far above"]
    assert forward["baseline"]["far above"] == pytest.approx(3 * forward["baseline"]["loss"] + 1, abs=1e-3)
    assert checks["model"]["parameters"] > 0 and checks["model"]["longest input"] > 0
    example = checks["example"]
    if task == "ner":  # word / label / sub-tokens, -100 on the special tokens
        words = first_record("conll2003_sample.jsonl")["words"]
        assert example["sentence"] == " ".join(words)
        assert example["words"][0] == {"word": "(special)", "label": "", "sub-tokens (label)": "[CLS] (-100)"}
        assert [row["word"] for row in example["words"][1:-1]] == words
        angels = next(row for row in example["words"] if row["word"] == "Angels")
        assert angels["label"] == "B-ORG" and angels["sub-tokens (label)"].startswith("Angels (B-ORG)")
        assert checks["model"]["labels"]["3"] == "B-ORG" and math.isclose(forward["baseline"]["loss"], math.log(6),
                                                                          rel_tol=1e-3)
    elif task == "translate":  # the target decoded back to the Romanian text, with its </s>
        pair = first_record("wmt16_en_ro_sample.jsonl")["translation"]
        assert example["target"] == pair["ro"] + "</s>" and example["source"] == pair["en"] + "</s>"
        assert example["decoder input"].startswith("<pad> ")  # the target shifted right
        pieces = checks["batch"]["as length-sorted pieces (--length-split)"]  # what the run computes of the batch
        assert pieces["pieces"] >= 2 and pieces["padding"] < checks["batch"]["padding"]
    elif task == "summarize":
        assert example["target"].endswith("</s>") and example["target tokens"] > 1
    elif task == "qa":  # the span read back from the window is one of the sample's answers
        gold = {"".join(text.split()) for record in read_json(SAMPLES / "squad_v2_sample.json")["data"]
                for text in record["answers"]["text"]}
        assert "".join(example["answer read back"].split()) in gold and example["start_positions"] > 0
    elif task == "classify":  # the first training sentence and its article; two of each in the batch: ln 2
        record = first_record("wiki_topics_train.jsonl")
        assert example == {"text": f"[CLS] {record['text']} [SEP]", "label": record["label"]}
        assert math.isclose(forward["baseline"]["loss"], math.log(2), rel_tol=1e-3)  # the report rounds to 4 places
    elif task == "mlm":  # masked positions, each with the token to predict
        assert example["targets"] and all(row["position"] < 128 for row in example["targets"])
        assert any(row["input"] == "[MASK]" for row in example["targets"])
    elif task == "clm":  # the target at each position is the next position's input
        rows = example["shifted targets"]
        assert all(row["target (next token)"] == after["input"] for row, after in zip(rows, rows[1:], strict=False))


def long_answer_records(path: Path) -> Path:
    """QA records whose answers (25 words) are longer than any window of --max-length 24 holds."""
    answer = " ".join(f"word{i}" for i in range(25))
    lines = []
    for n in range(4):
        context = f"Before the answer {n} comes this. {answer}. After the answer comes that."
        lines.append(json.dumps({"id": f"q{n}", "question": "What is said?", "context": context,
                                 "answers": {"text": [answer], "answer_start": [context.index(answer)]}}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_inspect_reports_a_truncation_that_cuts_every_answer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = long_answer_records(tmp_path / "qa.jsonl")
    result = run_cli("inspect", "qa", "--model", "tiny", "--train-file", data, "--validation-file", data,
                     "--max-length", "24", "--doc-stride", "4")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "problem targets: 0 of" in text and "windows that hold their answer" in text
    assert "Check the truncation" in text and text.rstrip().endswith("problem: targets problem")
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == [data]


def test_inspect_refuses_user_errors_with_exit_2(tmp_path):
    existing = tmp_path / "report.json"
    existing.write_text("kept\n")
    result = run_cli("inspect", "ner", "--model", "tiny", "--dataset", "sample", "--output", existing)
    assert result.exit_code == 2 and "exists" in result.output and existing.read_text() == "kept\n"
    result = run_cli("inspect", "translate", "--model", "tiny", "--dataset", "sample", "--target-lang", "de")
    assert result.exit_code == 2 and "--target-lang de is not in the 'translation' column" in result.output


# ---------------------------------------------------------------- checks of batches no run builds


def token_classifier(num_labels: int, positions: int = 16):
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=positions, num_labels=num_labels)
    return BertForTokenClassification(config)


def batch(labels: list[int], **extra):
    import torch

    return {"input_ids": torch.tensor([[2, 5, 6, 7, 3][: len(labels)]]), "attention_mask": torch.ones(1, len(labels),
                                                                                                         dtype=torch.long),
            "labels": torch.tensor([labels]), **extra}


def test_forward_check_reports_label_ids_beyond_the_models_labels_before_the_call():
    import torch

    from nlpcli.runner.forward_check import forward_check
    from nlpcli.tasks import get_task
    from nlpcli.tasks.base import Prepared

    ner, nothing = get_task("ner"), Prepared(None, None)
    model, broken = token_classifier(num_labels=2), batch([-100, 0, 5, 1, -100])
    with pytest.raises(IndexError):  # what the first training step would do
        model(**broken)
    check = forward_check(ner, model, broken, nothing)
    assert check.status == "problem" and "label ids run from 0 to 5" in check.notes[0]
    assert "scores 2 classes (ids 0 to 1" in check.notes[0] and "num_labels" in check.notes[0]
    torch.manual_seed(0)
    fine = forward_check(ner, token_classifier(num_labels=2), batch([-100, 0, 1, 1, -100]), nothing)
    assert fine.status == "ok" and fine.details["baseline"]["loss"] == round(math.log(2), 4)
    assert math.isfinite(fine.details["loss"])


def test_forward_check_explains_a_failed_call_and_the_model_check_names_its_cause():
    from nlpcli.runner.checks import model_check
    from nlpcli.runner.forward_check import forward_check
    from nlpcli.tasks import get_task
    from nlpcli.tasks.base import Prepared, TaskSetup

    model, too_long = token_classifier(num_labels=2, positions=3), batch([-100, 0, 1, 1, -100])
    check = forward_check(get_task("ner"), model, too_long, Prepared(None, None))
    assert check.status == "problem" and check.summary.startswith("the forward pass failed")
    assert "beyond one of the model's tables" in check.notes[0] and "Traceback" not in check.notes[0]

    class Tokenizer:
        def __len__(self) -> int:
            return 20

    found = model_check(model, Tokenizer(), TaskSetup(), Prepared(None, None), too_long)
    assert found.status == "problem" and "5 tokens is longer than the model's 3 positions" in found.notes[0]


def test_signature_check_reports_a_key_forward_does_not_take():
    from nlpcli.runner.checks import signature_check

    model = token_classifier(num_labels=2)
    labelled = batch([0, 1, 1])
    misnamed = {"input_ids": labelled["input_ids"], "label": labelled["labels"]}
    check = signature_check(misnamed, model)
    assert check.status == "problem" and check.details["not named by forward"] == ["label"]
    assert "go to **kwargs and be ignored" in check.notes[0]
    assert signature_check(labelled, model).status == "ok"
