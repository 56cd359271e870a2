"""Run folders read back: batch predict (file and stdin) for ner, mlm and qa, the wrong-task refusal, the evaluation
before training (ner and qa; --no-eval-before), and the saved settings that --eval-only and --config reuse. Three
tiny runs on the bundled samples, trained once."""

from __future__ import annotations

import json
import shutil

import pytest
import seqeval.metrics
import yaml
from typer.testing import CliRunner

from conftest import MLM_MODEL, NER_MODEL, read_json, read_jsonl, run_cli, trained_once
from nlpcli.config_layers import resolve_config
from nlpcli.layout import RUN_CONFIG
from nlpcli.metrics.squad import squad_scores
from nlpcli.tasks.mlm import MlmConfig

QA = ["--model", "tiny", "--dataset", "sample", "--version-2-with-negative", "--max-length", "96", "--doc-stride", "32",
      "--max-steps", "4", "--learning-rate", "5e-3", "--batch-size", "8"]
SENTENCE = "President Bill Clinton earlier this month invoked special powers to appoint Fowler ."
CONTEXT = "Normandy is a region in France. The Normans came from Denmark, Iceland and Norway."


def train(folder, task: str, options: list[str]):
    result = run_cli(task, *options, "--output-dir", folder)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"ner": trained_once(tmp_path_factory, "ner", *NER_MODEL),
            "mlm": trained_once(tmp_path_factory, "mlm", *MLM_MODEL), "qa": train(root / "qa", "qa", QA)}


def predict(*args, stdin: str | None = None):
    """`nlpcli predict ARGS`, with stdout and stderr apart (JSON lines on stdout, counts on stderr)."""
    from nlpcli.cli import app

    return CliRunner().invoke(app, ["predict", *map(str, args)], input=stdin, catch_exceptions=False)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- batch predict: ner, mlm, qa


@pytest.mark.e2e
def test_ner_file_and_stdin_one_line_per_input(runs, tmp_path):
    texts = [SENTENCE, ".", "Peter Blackburn"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.jsonl"
    result = predict("ner", runs["ner"], "--file", source, "--output", out, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    written = read_jsonl(out)
    assert [r["text"] for r in written] == texts  # input order, one line per input
    assert written[1]["entities"] == []  # an input with no entity still gets its line
    assert "PER" in {e["entity"] for e in written[0]["entities"]}
    assert all(SENTENCE[e["start"]:e["end"]] for e in written[0]["entities"])

    piped = predict("ner", runs["ner"], "--file", "-", "--batch-size", "2", stdin="\n".join(texts) + "\n")
    assert piped.exit_code == 0, piped.output
    assert json_lines(piped.stdout) == written

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"sentence": t}) + "\n" for t in texts))
    from_json = predict("ner", runs["ner"], "--file", jsonl, "--text-column", "sentence", "--batch-size", "2")
    assert json_lines(from_json.stdout) == written
    piped_json = predict("ner", runs["ner"], "--file", "-", "--text-column", "sentence", "--batch-size", "2",
                         stdin=jsonl.read_text())  # JSON lines on stdin: the first line is an object
    assert json_lines(piped_json.stdout) == written

    several = predict("ner", runs["ner"], *texts, "--json", "--batch-size", "2")  # one object per text
    assert several.exit_code == 0, several.output
    assert json.loads(several.stdout) == written


@pytest.mark.e2e
def test_mlm_file_and_stdin_bad_lines_stop_or_are_skipped(runs, tmp_path):
    lines = ["Anarchism is a political [MASK].", "no mask here", "The [MASK] of the [MASK]."]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    refused = predict("mlm", runs["mlm"], "--file", source)
    assert refused.exit_code == 2
    assert f"{source}, line 2:" in refused.output and "[MASK]" in refused.output and refused.stdout == ""

    out = tmp_path / "out.jsonl"
    result = predict("mlm", runs["mlm"], "--file", source, "--skip-bad-records", "--top-k", "3", "--output", out)
    assert result.exit_code == 0, result.output
    assert f"skipped 1 bad input(s) of 3: {source}, line 2" in " ".join(result.stderr.split())
    written = read_jsonl(out)
    assert [r["text"] for r in written] == [lines[0], lines[2]]
    assert [len(r["predictions"]) for r in written] == [3, 6]  # top 3 for each mask
    assert [p["mask"] for p in written[1]["predictions"]] == [1, 1, 1, 2, 2, 2]
    scores = [p["score"] for p in written[0]["predictions"]]
    assert scores == sorted(scores, reverse=True)

    piped = predict("mlm", runs["mlm"], "--file", "-", "--skip-bad-records", "--top-k", "3",
                    stdin="\n".join(lines) + "\n")
    assert piped.exit_code == 0, piped.output
    assert json_lines(piped.stdout) == written and "stdin, line 2" in piped.stderr

    blank = predict("mlm", runs["mlm"], "--file", "-", stdin=f"{lines[0]}\n\n{lines[2]}\n")
    assert blank.exit_code == 2 and "stdin, line 2: blank" in blank.output


@pytest.mark.e2e
def test_qa_file_and_stdin(runs, tmp_path):
    questions = ["Where is Normandy?", "Where did the Normans come from?"]
    rows = [{"question": q, "context": CONTEXT} for q in questions]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = predict("qa", runs["qa"], "--file", source)
    assert result.exit_code == 0, result.output
    written = json_lines(result.stdout)
    assert [r["question"] for r in written] == questions
    for row in written:
        assert CONTEXT[row["start"]:row["end"]] == row["answer"] and 0 <= row["score"] <= 1
    single = predict("qa", runs["qa"], "--question", questions[1], "--context", CONTEXT, "--json")
    assert json.loads(single.stdout) == written[1:]  # the same answer, whether batched or asked alone

    piped = predict("qa", runs["qa"], "--file", "-", stdin="".join(json.dumps(r) + "\n" for r in rows))
    assert piped.exit_code == 0, piped.output
    assert json_lines(piped.stdout) == written

    loose = predict("qa", runs["qa"], questions[0])
    assert loose.exit_code == 2 and "not text arguments" in loose.output
    no_context = predict("qa", runs["qa"], "--file", "-", stdin=json.dumps({"question": "Who?"}) + "\n")
    assert no_context.exit_code == 2 and "stdin, line 1: no text in 'context'" in no_context.output
    as_text = tmp_path / "questions.txt"
    as_text.write_text("Who?\n")
    refused = predict("qa", runs["qa"], "--file", as_text)
    assert refused.exit_code == 2 and f"{as_text}, line 1: not JSON" in refused.output
    refused = predict("qa", runs["qa"], "--file", "-", stdin="Who?\n")
    assert refused.exit_code == 2 and "stdin, line 1: not valid JSON" in refused.output


def test_batches_keep_order_and_show_a_progress_bar_on_a_terminal():
    import io

    from rich.console import Console

    from nlpcli.predict_io import in_batches

    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    assert list(in_batches(list(range(5)), 2, console=terminal)) == [[0, 1], [2, 3], [4]]
    assert "predicting" in terminal.file.getvalue()
    piped = Console(file=io.StringIO(), force_terminal=False)
    assert list(in_batches(list(range(5)), 2, console=piped)) == [[0, 1], [2, 3], [4]]
    assert piped.file.getvalue() == ""  # off a terminal, no bar and no stray line


# ---------------------------------------------------------------- the model must be of the task asked for


@pytest.mark.e2e
def test_runs_record_their_task_and_predict_refuses_another(runs, tmp_path):
    assert yaml.safe_load((runs["ner"] / RUN_CONFIG).read_text())["task"] == "ner"
    wrong = predict("ner", runs["mlm"], "Peter Blackburn")
    assert wrong.exit_code == 2 and "trained for mlm" in wrong.output
    wrong = predict("qa", runs["ner"], "--question", "Who?", "--context", CONTEXT)
    assert wrong.exit_code == 2 and "trained for ner" in wrong.output and "Traceback" not in wrong.output
    bare = tmp_path / "bare"
    shutil.copytree(runs["mlm"], bare)
    (bare / RUN_CONFIG).unlink()  # no saved task: the architecture tells
    wrong = predict("ner", bare, "Peter Blackburn")
    assert wrong.exit_code == 2 and "BertForMaskedLM" in wrong.output and "fits mlm" in " ".join(wrong.output.split())
    nothing = predict("ner", runs["ner"])
    assert nothing.exit_code == 2 and "--file" in nothing.output


# ---------------------------------------------------------------- the evaluation before training: ner and qa too


@pytest.mark.e2e
def test_ner_and_qa_evaluate_before_training_and_the_figures_recompute_from_their_rows(runs):
    for task in ("ner", "qa"):
        metrics = read_json(runs[task] / "metrics.json")
        before = read_json(runs[task] / "metrics_before.json")
        assert before == {k: v for k, v in metrics.items() if k.endswith("_before")} and "eval_loss_before" not in (
            before if task == "qa" else {})  # qa's evaluation features carry no labels: no loss
        assert read_json(runs[task] / "run.json")["eval_before"] is True
        first = read_jsonl(runs[task] / "log_history.jsonl")[0]  # logged once, at step 0
        assert first["step"] == 0 and {k.removesuffix("_before"): v for k, v in before.items()}.items() <= first.items()
    rows = read_jsonl(runs["ner"] / "eval_predictions_before.jsonl")
    references, predictions = [r["reference"] for r in rows], [r["prediction"] for r in rows]
    before = read_json(runs["ner"] / "metrics_before.json")
    assert before["eval_overall_f1_before"] == pytest.approx(seqeval.metrics.f1_score(references, predictions))
    assert before["eval_overall_accuracy_before"] == pytest.approx(
        seqeval.metrics.accuracy_score(references, predictions))
    assert before["eval_overall_f1_before"] < read_json(runs["ner"] / "metrics.json")["eval_overall_f1"]
    rows = read_jsonl(runs["qa"] / "eval_predictions_before.jsonl")
    scores = squad_scores({r["id"]: r["prediction"] for r in rows}, {r["id"]: r["references"] for r in rows}, True)
    before = read_json(runs["qa"] / "metrics_before.json")
    assert {f"eval_{k}_before": v for k, v in scores.items()} == before
    assert len(rows) == read_json(runs["qa"] / "run.json")["eval_samples"] == before["eval_HasAns_total_before"] + \
        before["eval_NoAns_total_before"]


@pytest.mark.e2e
def test_no_eval_before_skips_it(runs, tmp_path):
    out = tmp_path / "ner"
    result = run_cli(*NER_MODEL, "--no-eval-before", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "before training" not in result.output
    assert not (out / "metrics_before.json").exists() and not (out / "eval_predictions_before.jsonl").exists()
    trained = read_json(runs["ner"] / "metrics.json")  # the same settings, evaluated before training
    assert set(read_json(out / "metrics.json")) == {k for k in trained if not k.endswith("_before")}
    assert read_jsonl(out / "log_history.jsonl")[0]["step"] > 0  # no step-0 evaluation
    assert read_json(out / "run.json")["eval_before"] is False
    assert yaml.safe_load((out / RUN_CONFIG).read_text())["eval_before"] is False


# ---------------------------------------------------------------- saved settings: --eval-only, --config


@pytest.mark.e2e
def test_eval_only_reads_the_runs_settings_and_data(runs, tmp_path):
    # no --dataset, no --version-2-with-negative, no --max-length: all from the run (the course default,
    # rajpurkar/squad, is not reachable offline)
    result = run_cli("qa", "--model", runs["qa"], "--eval-only", "--output-dir", tmp_path / "qa")
    assert result.exit_code == 0, result.output
    evaluated = read_json(runs["qa"] / "metrics.json")
    assert read_json(tmp_path / "qa" / "metrics.json") == {k: v for k, v in evaluated.items()
                                                          if k.startswith("eval_") and not k.endswith("_before")}
    assert evaluated["eval_NoAns_total"] == 6  # v2, on the bundled sample

    result = run_cli("mlm", "--model", runs["mlm"], "--eval-only", "--output-dir", tmp_path / "mlm")
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "mlm" / "metrics.json")["eval_perplexity"] == pytest.approx(
        read_json(runs["mlm"] / "metrics.json")["eval_perplexity"])  # the same chunks, masked the same way
    assert read_json(tmp_path / "mlm" / "run.json")["eval_features"] == 16

    # the command line still wins
    result = run_cli("mlm", "--model", runs["mlm"], "--eval-only", "--max-eval-samples", "8",
                     "--output-dir", tmp_path / "mlm8")
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "mlm8" / "run.json")["eval_features"] == 8


@pytest.mark.e2e
def test_saved_layer_keeps_its_own_folder_model_and_gives_way_to_other_data(runs, tmp_path):
    cfg = resolve_config(MlmConfig, "mlm", None, {"model": str(runs["mlm"]), "eval_only": True})
    assert (cfg.model, cfg.output_dir, cfg.eval_only) == (str(runs["mlm"]), None, True)
    assert (cfg.dataset, cfg.chunk_size, cfg.max_eval_samples) == ("sample", 32, 16)
    other = resolve_config(MlmConfig, "mlm", None, {"model": str(runs["mlm"]), "eval_only": True,
                                                    "validation_file": "valid.txt"})
    assert (other.dataset, other.validation_file, other.chunk_size) == ("imdb", "valid.txt", 32)
    training = resolve_config(MlmConfig, "mlm", None, {"model": str(runs["mlm"])})  # not --eval-only: defaults
    assert (training.dataset, training.chunk_size) == ("imdb", 128)
    refused = run_cli("ner", "--model", runs["mlm"], "--eval-only", "--output-dir", tmp_path / "x")
    assert refused.exit_code == 2 and "mlm configuration" in refused.output


@pytest.mark.e2e
def test_config_of_a_run_folder_repeats_the_run_elsewhere(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("ner", "--config", runs["ner"] / RUN_CONFIG)
    assert result.exit_code == 0, result.output
    (repeat,) = (tmp_path / "runs").glob("ner-*")  # the default output folder, not the old run's
    assert read_json(repeat / "metrics.json") == read_json(runs["ner"] / "metrics.json")
    assert yaml.safe_load((repeat / RUN_CONFIG).read_text())["output_dir"] is None
    refused = run_cli("mlm", "--config", runs["ner"] / RUN_CONFIG)
    assert refused.exit_code == 2 and "ner configuration" in refused.output
