"""A run refused for its data or options (while its features are prepared, before any loop) leaves no output
folder behind, or an existing one exactly as it was: the tiny preset's tokenizer is fitted in a staging folder
and moved into the run folder only once every split's features are made."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

CLM = ["--model", "tiny", "--batch-size", "8", "--max-steps", "1", "--tokenizer", "none"]
QA_CONTEXT = "Normandy is a region in France. The Normans came from Denmark, Iceland and Norway."


def _clm_files(tmp_path) -> list:
    path = tmp_path / "code.jsonl"
    path.write_text("\n".join(json.dumps({"content": f"def f{i}(x):\n    return x + {i}\n"}) for i in range(8)))
    return ["--train-file", path, "--validation-file", path]


def _qa_file(tmp_path):
    rows = [{"id": f"r{i}", "question": question, "context": QA_CONTEXT,
             "answers": {"text": [answer], "answer_start": [QA_CONTEXT.index(answer)]}}
            for i, (question, answer) in enumerate((("Where is Normandy?", "France"),
                                                    ("Who came from Denmark?", "The Normans")))]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    return path


REFUSALS = {
    "qa --doc-stride too large": lambda tmp_path: (
        ["qa", "--model", "tiny", "--train-file", _qa_file(tmp_path), "--validation-file", _qa_file(tmp_path),
         "--max-length", "16", "--doc-stride", "8", "--max-steps", "1"], "--doc-stride 8"),
    "clm without a full window": lambda tmp_path: (
        ["clm", *CLM, *_clm_files(tmp_path), "--context-length", "64"], "no text gives a full window of 64 tokens"),
    "clm keytokens that are no single token": lambda tmp_path: (
        ["clm", *CLM, *_clm_files(tmp_path), "--context-length", "8", "--keytokens", "return,zqxjkvw"],
        "'zqxjkvw' is not a single token"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_run_leaves_no_output_folder(tmp_path, case):
    args, message = REFUSALS[case](tmp_path)
    out = tmp_path / "out"
    result = run_cli(*args, "--output-dir", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))


def test_a_refused_run_leaves_an_existing_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    (out / "preset-tokenizer").mkdir(parents=True)
    (out / "preset-tokenizer" / "tokenizer.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    before = {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in out.rglob("*")}
    result = run_cli("clm", *CLM, *_clm_files(tmp_path), "--context-length", "64", "--output-dir", out)
    assert result.exit_code == 2, result.output
    assert {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in out.rglob("*")} == before
