"""`nlpcli qa`: windows and labels, post-processing, SQuAD metric, bad records, end to end on the tiny preset."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import REPO, assert_agree, read_json, read_jsonl, run_cli, torchrun
from nlpcli.metrics.squad import squad_scores
from nlpcli.sources.presets import train_wordpiece_tokenizer
from nlpcli.tasks.qa import QaConfig, answers, columns_of, window_features

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()
CONTEXT = " ".join(WORDS)
QUESTION = "where ?"


def word_offsets(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


@pytest.fixture(scope="module")
def tokenizer():
    tok = train_wordpiece_tokenizer([CONTEXT, QUESTION] * 5, vocab_size=300, max_length=512)
    assert tok.tokenize(CONTEXT) == WORDS, "every word is one token, so windows can be checked by word"
    return tok


def test_windows_offsets_and_labels(tokenizer):
    # max_length 12 - [CLS] where ? [SEP] ... [SEP] leaves 7 context words per window; stride 2 -> step 5:
    # windows hold words 0-6, 5-11, 10-13.
    columns = columns_of(QaConfig())
    spans = word_offsets(CONTEXT)
    inside = {"text": ["kilo lima"], "answer_start": [spans[10][0]]}  # words 10-11: in windows 1 and 2
    cut = {"text": ["golf hotel"], "answer_start": [spans[6][0]]}  # words 6-7: window 0 holds only "golf"
    batch = {"id": ["in", "cut", "none"], "question": [QUESTION] * 3, "context": [CONTEXT] * 3,
             "answers": [inside, cut, {"text": [], "answer_start": []}]}
    features = window_features(batch, tokenizer, columns, max_length=12, doc_stride=2, for_eval=True)

    words_per_window = [range(0, 7), range(5, 12), range(10, 14)]
    assert features["example_id"] == ["in"] * 3 + ["cut"] * 3 + ["none"] * 3
    for ids, offsets, words in zip(features["input_ids"], features["offset_mapping"], words_per_window * 3,
                                   strict=True):
        expected = ["[CLS]", "where", "?", "[SEP]", *(WORDS[w] for w in words), "[SEP]"]
        assert tokenizer.convert_ids_to_tokens(ids) == expected
        assert offsets == [None] * 4 + [spans[w] for w in words] + [None]
    labels = list(zip(features["start_positions"], features["end_positions"], strict=True))
    assert labels[:3] == [(0, 0), (4 + 10 - 5, 4 + 11 - 5), (4, 5)]  # first context token is at position 4
    assert labels[3:6] == [(0, 0), (4 + 6 - 5, 4 + 7 - 5), (0, 0)]
    assert labels[6:] == [(0, 0)] * 3

    train = window_features(batch, tokenizer, columns, max_length=12, doc_stride=2, for_eval=False)
    assert "offset_mapping" not in train and "example_id" not in train
    assert train["start_positions"] == features["start_positions"]



def test_the_stride_check_names_the_longest_question_read_a_batch_at_a_time(tokenizer, monkeypatch):
    import datasets

    from nlpcli.errors import UserError
    from nlpcli.tasks import qa_windows

    monkeypatch.setattr(qa_windows, "READ_BATCH", 2)  # the questions in batches of 2: the longest is in the third
    questions = ["where ?", "alpha ?", "where ?", "where ?", " alpha bravo charlie delta ?", "alpha bravo ?", "?"]
    data = datasets.Dataset.from_dict({"id": [f"q{i}" for i in range(7)], "question": questions})
    cfg = QaConfig(doc_stride=3)
    qa_windows.check_stride(tokenizer, data, cfg, max_length=12, split="train")  # 12 - 3 special - 5 = 4 > 3
    with pytest.raises(UserError, match=r"record 'q4': with --max-length 11 the question leaves 3 context tokens"):
        qa_windows.check_stride(tokenizer, data, cfg, max_length=11, split="train")  # 11 - 3 - 5 = 3

# ---------------------------------------------------------------- post-processing on hand-made logits

PASSAGE = "aaaaa bbbbb ccccc ddddd"
OFFSETS = [None, None, (0, 5), (6, 11), (12, 17), (18, 23), None]  # [CLS] question [tokens] [SEP]


def logits(values: list[float], pad_to: int = 10, pad: float = 50.0) -> np.ndarray:
    """Window logits, padded beyond the window with a value that would win if padding were not ignored."""
    return np.array(values + [pad] * (pad_to - len(values)))


def predict(starts: list[list[float]], ends: list[list[float]], **options) -> str:
    cfg = QaConfig(**options)
    features = {"example_id": ["q"] * len(starts), "offset_mapping": [OFFSETS] * len(starts)}
    raw = {"id": ["q"], "context": [PASSAGE]}
    start_logits = np.stack([logits(s) for s in starts])
    end_logits = np.stack([logits(e) for e in ends])
    text, _ = answers(start_logits, end_logits, features, raw, cfg)["q"]
    return text


def test_best_span_ignores_question_special_and_padding_tokens():
    start = [0, 30, 5, 1, 0, 0, 30]  # the question token and [SEP] score high but are not context
    end = [0, 30, 0, 4, 1, 2, 30]
    assert predict([start], [end]) == "aaaaa bbbbb"


def test_max_answer_length_and_order():
    start = [0, 0, 5, 0.5, 0, 0, 0]
    end = [0, 0, 0, 4, 0, 8, 0]
    assert predict([start], [end], max_answer_length=4) == PASSAGE  # tokens 2..5: 5 + 8
    assert predict([start], [end], max_answer_length=2) == "aaaaa bbbbb"  # 2..3 (9) beats 3..4, 4..5
    backwards = [0, 0, 0, 0, 9, 0, 0], [0, 0, 9, 0, 0, 1, 0]  # best end is before the best start
    assert predict([backwards[0]], [backwards[1]]) == "ccccc ddddd"


def test_best_span_over_windows():
    low = [0, 0, 2, 0, 0, 0, 0], [0, 0, 2, 0, 0, 0, 0]
    high = [0, 0, 0, 0, 3, 0, 0], [0, 0, 0, 0, 0, 3, 0]
    assert predict([low[0], high[0]], [low[1], high[1]]) == "ccccc ddddd"
    assert predict([high[0], low[0]], [high[1], low[1]]) == "ccccc ddddd"


def test_null_threshold():
    start = [6, 0, 5, 0, 0, 0, 0]  # null score 6 + 4 = 10, best span 5 + 4 = 9
    end = [4, 0, 0, 4, 0, 0, 0]
    assert predict([start], [end]) == "aaaaa bbbbb"  # SQuAD v1: always a span
    assert predict([start], [end], version_2_with_negative=True) == ""
    assert predict([start], [end], version_2_with_negative=True, null_score_diff_threshold=0.5) == ""
    assert predict([start], [end], version_2_with_negative=True, null_score_diff_threshold=1.5) == "aaaaa bbbbb"
    # the null score is the lowest over the example's windows: a window with a low [CLS] score lets the span win
    other = [1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]
    assert predict([start, other[0]], [end, other[1]], version_2_with_negative=True) == "aaaaa bbbbb"


# ---------------------------------------------------------------- metric


def test_squad_metric_v1_and_v2():
    references = {"a": ["France", "france!"], "b": ["Denmark, Iceland and Norway"]}
    predictions = {"a": "the France", "b": "Denmark and Norway"}
    f1_b = 2 * 1.0 * 0.75 / 1.75  # 3 common tokens: precision 3/3, recall 3/4
    scores = squad_scores(predictions, references)
    assert scores == pytest.approx({"exact_match": 50.0, "f1": 100 * (1 + f1_b) / 2})

    references.update({"c": [], "d": [], "e": ["x y"]})
    predictions.update({"c": "", "d": "Paris"})  # "e" has no prediction: counts as ""
    scores = squad_scores(predictions, references, with_negative=True)
    assert scores == pytest.approx({
        "exact_match": 40.0, "f1": 100 * (1 + f1_b + 1) / 5,
        "HasAns_exact_match": 100 / 3, "HasAns_f1": 100 * (1 + f1_b) / 3, "HasAns_total": 3,
        "NoAns_exact_match": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
    })


# ---------------------------------------------------------------- data errors (CLI)

FAST = ["--model", "tiny", "--max-length", "64", "--doc-stride", "16", "--max-steps", "2", "--batch-size", "4",
        "--preset-vocab-size", "300"]


def record(record_id: str, question: str, context: str, answer: str | None) -> dict:
    start = [] if answer is None else [context.index(answer)]
    return {"id": record_id, "question": question, "context": context,
            "answers": {"text": [] if answer is None else [answer], "answer_start": start}}


def records() -> list[dict]:
    context = "Normandy is a region in France. The Normans came from Denmark, Iceland and Norway."
    return [record("r1", "Where is Normandy?", context, "France"),
            record("r2", "Where did the Normans come from?", context, "Denmark, Iceland and Norway"),
            record("r3", "Who came from Denmark?", context, "The Normans")]


def run_files(tmp_path, rows: list[dict], *extra: str, nested: bool = True):
    path = tmp_path / ("data.json" if nested else "data.jsonl")
    if nested:
        path.write_text(json.dumps({"version": "test", "data": rows}))
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows))
    field = ["--field", "data"] if nested else []
    return run_cli("qa", *FAST, "--train-file", path, "--validation-file", path, *field,
                   "--output-dir", tmp_path / "out", *extra)


def test_bad_answer_start_names_the_record(tmp_path):
    rows = records()
    rows[1]["answers"]["answer_start"] = [3]
    result = run_files(tmp_path, rows)
    assert result.exit_code == 2, result.output
    assert "'r2'" in result.output and "answer_start 3" in result.output and "--skip-bad-records" in result.output


def test_missing_field_names_the_record(tmp_path):
    rows = records()
    del rows[2]["question"]
    result = run_files(tmp_path, rows, nested=False)
    assert result.exit_code == 2, result.output
    assert "'r3'" in result.output and "no question" in result.output


def test_duplicate_id_names_the_record(tmp_path):
    rows = records()
    rows[2]["id"] = "r1"
    result = run_files(tmp_path, rows, nested=False)
    assert result.exit_code == 2, result.output
    assert "'r1'" in result.output and "duplicate id" in result.output


def test_unanswerable_needs_version_2(tmp_path):
    rows = [*records(), record("r4", "Who?", "Nobody knows.", None)]
    result = run_files(tmp_path, rows)
    assert result.exit_code == 2, result.output
    assert "'r4'" in result.output and "--version-2-with-negative" in result.output


def test_test_file_without_answers_is_refused(tmp_path):
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(json.dumps({"id": "q1", "question": "Who?", "context": "Bill sang."}) + "\n")
    result = run_cli("qa", "--model", "tiny", "--dataset", "sample", "--max-steps", "1", "--version-2-with-negative",
                     "--test-file", test_file, "--output-dir", tmp_path / "run")
    assert result.exit_code == 2 and f"{test_file}: no column 'answers'" in result.output


@pytest.mark.slow
def test_stride_too_large_for_window(tmp_path):
    result = run_files(tmp_path, records(), "--max-length", "16", "--doc-stride", "8")
    assert result.exit_code == 2, result.output
    assert "--doc-stride 8" in result.output


@pytest.mark.e2e
def test_skip_bad_records_nested_squad_layout_then_predict(tmp_path):
    """Official nested layout (data -> paragraphs -> qas), one bad answer skipped and counted."""
    rows = records()
    rows[0]["answers"]["answer_start"] = [0]
    qas = [{"id": r["id"], "question": r["question"],
            "answers": [{"text": t, "answer_start": s}
                        for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True)]}
           for r in rows]
    nested = [{"title": "Normans", "paragraphs": [{"context": rows[0]["context"], "qas": qas}]}]
    result = run_files(tmp_path, nested, "--skip-bad-records")
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad record(s) of 3" in " ".join(result.output.split()), result.output
    out = tmp_path / "out"
    info = read_json(out / "run.json")
    assert info["eval_samples"] == 2
    assert set(read_json(out / "metrics.json")) >= {"eval_exact_match", "eval_f1"}

    context = rows[0]["context"]
    predicted = run_cli("predict", "qa", out, "--question", "Where is Normandy?", "--context", context, "--json")
    assert predicted.exit_code == 0, predicted.output
    (row,) = json.loads(predicted.output)
    assert row["answer"] and context[row["start"]:row["end"]] == row["answer"]  # v1: always a span
    assert 0.0 <= row["score"] <= 1.0


def test_predict_needs_question_and_context(tmp_path):
    import safetensors.torch
    import torch

    (tmp_path / "config.json").write_text("{}")
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    result = run_cli("predict", "qa", tmp_path, "--question", "Where?")
    assert result.exit_code == 2 and "--context" in result.output


# ---------------------------------------------------------------- end to end on the bundled sample


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_sample_v2_both_loops_then_predict(tmp_path, loop):
    out = tmp_path / loop
    test_file = tmp_path / "test.jsonl"  # five of the sample's questions, flat records
    test_file.write_text("".join(json.dumps(record) + "\n" for record in squad_sample()[4:9]))
    result = run_cli("qa", "--model", "tiny", "--dataset", "sample", "--version-2-with-negative",
                     "--max-length", "96", "--doc-stride", "32", "--max-steps", "4", "--batch-size", "8",
                     "--learning-rate", "5e-3", "--loop", loop, "--test-file", test_file, "--output-dir", out)
    assert result.exit_code == 0, result.output
    metrics = read_json(out / "metrics.json")
    rows = read_jsonl(out / "eval_predictions.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in squad_sample()]  # every question, in data order
    assert [r["references"] for r in rows] == [r["answers"]["text"] for r in squad_sample()]
    assert recomputed(rows, "eval") == {k: v for k, v in metrics.items() if k.startswith("eval_") and k != "eval_loss"
                                        and not k.endswith("_before")}
    assert all((r["prediction"] == "") == (r["null_score_diff"] is None or r["null_score_diff"] > 0.0) for r in rows)
    tested = read_jsonl(out / "test_predictions.jsonl")
    # the same questions, the same final model (batched with other padding: scores equal to float precision)
    assert [(r["id"], r["prediction"], r["references"]) for r in tested] == [
        (r["id"], r["prediction"], r["references"]) for r in rows[4:9]]
    assert [r["null_score_diff"] for r in tested] == pytest.approx([r["null_score_diff"] for r in rows[4:9]])
    test_metrics = {k: v for k, v in metrics.items() if k.startswith("test_") and k != "test_loss"}
    assert recomputed(tested, "test") == test_metrics
    for key in ("eval_exact_match", "eval_f1", "eval_HasAns_exact_match", "eval_HasAns_f1",
                "eval_NoAns_exact_match", "eval_NoAns_f1"):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert (metrics["eval_HasAns_total"], metrics["eval_NoAns_total"]) == (8, 6)  # the bundled sample
    info = read_json(out / "run.json")
    assert info["eval_samples"] == 14 and info["eval_features"] > 14, "long contexts are split into windows"

    contexts = " ".join(dict.fromkeys(r["context"] for r in squad_sample()))  # far longer than 96 tokens
    predicted = run_cli("predict", "qa", out, "--question", "Who was the duke in the battle of Hastings?",
                        "--context", contexts, "--json")
    assert predicted.exit_code == 0, predicted.output
    (row,) = json.loads(predicted.output)
    assert set(row) == {"question", "answer", "score", "start", "end"}
    assert contexts[row["start"]:row["end"]] == row["answer"]
    assert row["answer"] or row["start"] == row["end"] == 0  # v2: "" is the null answer

    if loop == "trainer":  # batched predict: the windows of several questions in one forward pass
        questions = tmp_path / "questions.jsonl"
        asked = [{"question": r["question"], "context": r["context"]} for r in squad_sample()[:3]]
        asked.append({"question": "Who was the duke in the battle of Hastings?", "context": contexts})
        questions.write_text("".join(json.dumps(r) + "\n" for r in asked))
        batched = run_cli("predict", "qa", out, "--file", questions, "--batch-size", "4")
        assert batched.exit_code == 0, batched.output
        together = [json.loads(line) for line in batched.output.splitlines() if line.startswith("{")]
        alone = []
        for r in asked:
            one = run_cli("predict", "qa", out, "--question", r["question"], "--context", r["context"], "--json")
            assert one.exit_code == 0, one.output
            alone += json.loads(one.output)
        assert [(r["answer"], r["start"], r["end"]) for r in together] == [(r["answer"], r["start"], r["end"])
                                                                          for r in alone]
        assert [r["score"] for r in together] == pytest.approx([r["score"] for r in alone], abs=1e-3)


def recomputed(rows: list[dict], prefix: str) -> dict:
    """The SQuAD v2 scores of eval_predictions.jsonl rows, as metrics.json names them."""
    scores = squad_scores({r["id"]: r["prediction"] for r in rows}, {r["id"]: r["references"] for r in rows}, True)
    return {f"{prefix}_{k}": v for k, v in scores.items()}


def squad_sample() -> list[dict]:
    from nlpcli.sources.data import SAMPLES_DIR

    return json.loads((SAMPLES_DIR / "squad_v2_sample.json").read_text(encoding="utf-8"))["data"]


@pytest.mark.e2e
def test_two_processes_score_like_one(tmp_path):
    """Accelerate loop under torchrun: start/end logits padded and gathered across processes, then post-processed."""

    model = tmp_path / "model"
    trained = run_cli("qa", "--config", REPO / "configs" / "demo" / "qa.yaml", "--output-dir", model)
    assert trained.exit_code == 0, trained.output
    common = ["qa", "--model", model, "--eval-only", "--dataset", "sample", "--version-2-with-negative",
              "--max-length", "128", "--doc-stride", "32", "--eval-batch-size", "3", "--loop", "accelerate"]
    single = run_cli(*common, "--output-dir", tmp_path / "one")
    assert single.exit_code == 0, single.output
    result = torchrun(2, *common, "--output-dir", tmp_path / "two")  # uneven last batch: one duplicate dropped
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = read_json(tmp_path / "one" / "metrics.json"), read_json(tmp_path / "two" / "metrics.json")
    assert_agree(one, two)
    assert one["eval_HasAns_f1"] > 0
    rows = read_jsonl(tmp_path / "one" / "eval_predictions.jsonl")
    # the same answers in the same order; each answer's score (a logit sum) within a relative 1e-6
    assert_agree(read_jsonl(tmp_path / "two" / "eval_predictions.jsonl"), rows)
    assert recomputed(rows, "eval") == {k: v for k, v in one.items() if k != "eval_loss"}
    assert any(r["prediction"] for r in rows) and any(not r["prediction"] for r in rows)
    assert read_json(tmp_path / "two" / "run.json")["world_size"] == 2
