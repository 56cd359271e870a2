"""Data files and options refused with one message (file, line, what was expected), or read despite a
byte-order mark."""

from __future__ import annotations

import json

import pytest

from conftest import read_json, run_cli

NER = ("ner", "--model", "tiny", "--max-steps", "1")
GOOD = [{"tokens": ["EU", "rejects", "German", "call"], "ner_tags": ["B-ORG", "O", "B-MISC", "O"]},
        {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]}] * 3


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(jsonl(GOOD[:2]) + '{"tokens": ["Müller"], "ner_tags": ["B-PER"]}\n'.encode("latin-1"))
    result = run_cli(*NER, "--train-file", bad, "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and f"{bad}, line 3: not UTF-8 text (byte 0xfc)" in result.output.replace("\n", "")
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_a_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    for name, content in (("bom.jsonl", jsonl(GOOD)),
                          ("bom.conll", b"EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n\n" * 3)):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + content)
        out = tmp_path / f"out-{name}"
        result = run_cli(*NER, "--train-file", path, "--validation-file", path, "--output-dir", out)
        assert result.exit_code == 0, result.output
        vocab = json.loads((out / "preset-tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
        assert "EU" in vocab and not any("\ufeff" in token for token in vocab)
        assert read_json(out / "run.json")["train_examples"] == 6


def test_a_byte_order_mark_is_not_part_of_a_csv_header_a_json_key_or_a_text_line(tmp_path):
    from nlpcli.sources.data_files import load_file, stream_file

    files = {"bom.csv": "tokens,ner_tags\nEU rejects,B-ORG O\n",
             "bom.json": json.dumps([{"tokens": "EU rejects", "ner_tags": "B-ORG O"}]),
             "bom.txt": "EU rejects\nPeter Blackburn\n"}
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))
        loaded = load_file(path, "text", None, "tokens", "ner_tags")
        assert loaded.column_names[0] == "tokens" and loaded[0]["tokens"] == "EU rejects", name
        if name != "bom.json":  # --streaming reads JSON lines, csv and text
            assert next(iter(stream_file(path, "text", None, "tokens")))["tokens"] == "EU rejects", name


def test_folders_empty_files_and_truncated_json_are_named(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    result = run_cli(*NER, "--train-file", folder, "--output-dir", tmp_path / "a")
    assert result.exit_code == 2 and f"{folder} is a folder" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run_cli("mlm", "--model", "tiny", "--train-file", empty, "--output-dir", tmp_path / "b")
    assert result.exit_code == 2 and f"{empty} is empty" in result.output
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps({"data": GOOD})[:-40])
    result = run_cli(*NER, "--train-file", truncated, "--field", "data", "--output-dir", tmp_path / "c")
    assert result.exit_code == 2 and "ends inside a JSON value" in result.output and "truncated" in result.output


def test_duplicate_labels_and_eval_only_on_a_preset_are_refused(tmp_path):
    result = run_cli(*NER, "--dataset", "sample", "--labels", "O,B-PER,I-PER,B-PER", "--output-dir", tmp_path / "a")
    assert result.exit_code == 2 and "B-PER given more than once" in result.output
    result = run_cli(*NER, "--dataset", "sample", "--eval-only", "--output-dir", tmp_path / "b")
    assert result.exit_code == 2 and "--eval-only evaluates a trained model" in result.output
    assert not (tmp_path / "b").exists()


def test_a_single_record_cannot_be_split(tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_bytes(jsonl(GOOD[:1]))
    result = run_cli(*NER, "--train-file", one, "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and "too few to hold out a validation split" in result.output


def test_labels_that_mix_names_and_ids_name_the_record(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    rows = GOOD[:2] + [{"tokens": ["Peter", "Blackburn"], "ner_tags": [1, 2]}] + GOOD[:2]
    mixed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli(*NER, "--train-file", mixed, "--validation-file", mixed, "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and "record 3: labels mix names and class ids" in result.output


@pytest.mark.e2e
def test_a_bad_record_of_a_single_train_file_is_named_by_that_file(tmp_path):
    good = {"question": "Where?", "context": "In Paris.", "answers": {"text": ["Paris"], "answer_start": [3]}}
    rows = [dict(good, id=f"q{i}") for i in range(12)]
    rows[7]["answers"] = {"text": ["London"], "answer_start": [3]}
    data = tmp_path / "squad.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("qa", "--model", "tiny", "--train-file", data, "--skip-bad-records", "--max-steps", "1",
                     "--output-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"skipped 1 bad record(s) of 12 in {data} (first: {data}, record 'q7'" in result.output.replace("\n", "")


def test_qa_answers_of_the_wrong_type_name_the_record(tmp_path):
    rows = [{"id": f"q{i}", "question": "Where?", "context": "In Paris.", "answers": "Paris"} for i in range(3)]
    data = tmp_path / "squad.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("qa", "--model", "tiny", "--train-file", data, "--validation-file", data, "--max-steps", "1",
                     "--output-dir", tmp_path / "out")
    assert result.exit_code == 2
    assert f"{data}, record 'q0': no answers (expected answers: {{text: [...], answer_start: [...]}})" in (
        result.output.replace("\n", ""))


@pytest.mark.parametrize(("task", "name", "good", "bad_line"), [
    ("ner", "train.conll", "EU B-ORG\nrejects O\n\n", "Müller B-PER\n"),
    ("mlm", "train.txt", "A first line of text.\nA second line.\n", "Müller wrote this.\n"),
])
def test_non_utf8_conll_and_text_files_are_named_with_their_line(tmp_path, task, name, good, bad_line):
    path = tmp_path / name
    path.write_bytes(good.encode("utf-8") * 2 + bad_line.encode("latin-1"))
    line = good.count("\n") * 2 + 1
    result = run_cli(task, "--model", "tiny", "--train-file", path, "--output-dir", tmp_path / "out")
    assert result.exit_code == 2
    assert f"{path}, line {line}: not UTF-8 text (byte 0xfc)" in result.output.replace("\n", "")


def test_blank_header_only_and_ragged_files_say_what_they_hold(tmp_path):
    from nlpcli.errors import UserError
    from nlpcli.sources.data_files import load_file

    cases = {
        "blank.jsonl": ("\n  \n\n", " holds no records: it has only blank lines"),
        "header.csv": ("tokens,ner_tags\n", ": it has a header line (tokens, ner_tags) and no rows"),
        "ragged.tsv": ("tokens\tner_tags\nEU\tB-ORG\nPeter\tB-PER\textra\n", ", line 3: 3 fields, but the header "
                                                                             "has 2 (tokens, ner_tags)"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(UserError) as raised:
            load_file(path, "text", None, "tokens", "ner_tags")
        assert raised.value.message == f"{path}{message}."


def test_a_labels_value_that_looks_like_a_missing_file_is_refused(tmp_path):
    from nlpcli.errors import UserError
    from nlpcli.tasks.ner import label_names

    missing = tmp_path / "labels.txt"
    for value in (str(missing), "labels.txt"):
        with pytest.raises(UserError, match=f"--labels {value}: no such file"):
            label_names({}, type("Cfg", (), {"labels": [value]})(), None)
    assert label_names({}, type("Cfg", (), {"labels": ["O"]})(), None) == ["O"]  # one label is one label
    missing.write_text("O\nB-PER\n")
    assert label_names({}, type("Cfg", (), {"labels": [str(missing)]})(), None) == ["O", "B-PER"]


def test_words_that_are_not_strings_name_the_record(tmp_path):
    rows = [*GOOD[:2], {"tokens": ["Peter", 5, None], "ner_tags": ["B-PER", "O", "O"]}]
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl(rows))
    result = run_cli(*NER, "--train-file", train, "--validation-file", train, "--output-dir", tmp_path / "a")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{train}, record 3: 'tokens' must hold strings; word 2 is 5 (int)" in " ".join(result.output.split())
    assert not (tmp_path / "a").exists()
