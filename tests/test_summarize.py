"""summarize: course defaults, column errors, and end-to-end runs on the tiny preset with the xsum sample:
ROUGE + lead-3 recomputed from eval_predictions.jsonl, the same ROUGE from both loops and from 1 or 2
processes, predict."""

from __future__ import annotations

import json

import pytest

from conftest import assert_agree, read_json, read_jsonl, run_cli, run_processes
from nlpcli.config_layers import resolve_config
from nlpcli.metrics.rouge import lead3_scores, rouge_scores
from nlpcli.metrics.sentences import sentence_splitter
from nlpcli.sources.data import SAMPLES_DIR
from nlpcli.tasks.summarize import SummarizeConfig

TINY = ["--model", "tiny", "--dataset", "sample", "--max-length", "128", "--max-target-length", "16",
        "--learning-rate", "5e-3", "--batch-size", "5", "--source-prefix", "summarize: "]
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def test_course_defaults_and_their_data_settings_stay_with_the_course_data_set():
    cfg = resolve_config(SummarizeConfig, "summarize")
    assert (cfg.model, cfg.dataset, cfg.dataset_config) == ("google/mt5-small", "0xtimi/amazon_reviews_multi",
                                                            ["en", "es"])
    assert cfg.filter == ["product_category=book,digital_ebook_purchase"] and cfg.min_target_words == 3
    assert (cfg.text_column, cfg.summary_column, cfg.max_length, cfg.max_target_length) == (
        "review_body", "review_title", 512, 30)
    assert (cfg.learning_rate, cfg.batch_size, cfg.weight_decay, cfg.epochs) == (5.6e-5, 8, 0.01, 8.0)
    # Other data: the course data set's configurations, filter and columns no longer apply.
    sample = resolve_config(SummarizeConfig, "summarize", cli_values={"dataset": "sample"})
    assert (sample.dataset_config, sample.filter, sample.text_column, sample.summary_column) == (
        None, None, "document", "summary")
    assert sample.learning_rate == 5.6e-5  # training settings stay
    kept = resolve_config(SummarizeConfig, "summarize", cli_values={"dataset": "sample", "filter": ["a=b"]})
    assert kept.filter == ["a=b"]


def test_a_missing_text_column_stops_the_run_listing_the_columns(tmp_path):
    result = run_cli("summarize", *TINY, "--text-column", "article", "--output-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert "no column 'article' (--text-column). Columns: document, summary." in result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("summarize") / "model"
    result = run_cli("summarize", *TINY, "--max-steps", "12", "--output-dir", out)
    assert result.exit_code == 0, result.output
    return out


def _recomputed(path) -> dict[str, float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    splitter = sentence_splitter()
    predictions = [r["prediction"] for r in rows]
    references = [r["reference"] for r in rows]
    sources = [r["source"] for r in rows]
    return {**rouge_scores(predictions, references, splitter), **lead3_scores(sources, references, splitter)}


@pytest.mark.e2e
def test_metrics_recompute_from_eval_predictions_before_and_after_training(trained):
    metrics = read_json(trained / "metrics.json")
    for suffix, name in (("", "eval_predictions.jsonl"), ("_before", "eval_predictions_before.jsonl")):
        recomputed = _recomputed(trained / name)
        for key, value in recomputed.items():
            assert metrics[f"eval_{key}{suffix}"] == pytest.approx(value), key
        assert {f"eval_gen_len{suffix}", f"eval_loss{suffix}"} <= set(metrics)
    rows = [json.loads(line) for line in (trained / "eval_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and rows[0]["source"].startswith("The warning begins at 22:00 GMT")
    assert metrics["eval_lead3_rouge1"] > 0  # lead-3 shares words with the reference summaries
    assert metrics["eval_lead3_rouge1"] == metrics["eval_lead3_rouge1_before"]  # it does not depend on the model
    assert metrics["eval_loss"] < metrics["eval_loss_before"]
    info = read_json(trained / "run.json")
    assert info["sentence_splitter"] == sentence_splitter().name
    assert info["data"]["validation"] == {"records": 10, "bad_records_skipped": 0, "short_targets_dropped": 0,
                                          "kept": 10}


@pytest.mark.e2e
def test_both_loops_give_the_same_rouge_on_the_same_saved_model(trained, tmp_path):
    results = {}
    for loop in ("trainer", "accelerate"):
        out = tmp_path / loop
        result = run_cli("summarize", *TINY, "--model", trained, "--eval-only", "--loop", loop,
                         "--eval-batch-size", "3", "--output-dir", out)
        assert result.exit_code == 0, result.output
        results[loop] = read_json(out / "metrics.json")
    assert_agree(results["trainer"], results["accelerate"])
    assert set(ROUGE_KEYS) <= {k.removeprefix("eval_") for k in results["trainer"]}
    final = read_json(trained / "metrics.json")
    for key in ROUGE_KEYS:
        assert results["trainer"][f"eval_{key}"] == pytest.approx(final[f"eval_{key}"])


@pytest.mark.e2e
def test_evaluation_with_2_processes_equals_1_process(trained, tmp_path):
    metrics, rows = {}, {}
    for nproc in (1, 2):
        out = tmp_path / f"eval{nproc}"
        # 7 documents, 2 per device: the processes get unequal numbers of batches
        run_processes(nproc, "summarize", *TINY, "--model", trained, "--eval-only", "--max-eval-samples", "7",
                      "--eval-batch-size", "2", "--output-dir", out)
        metrics[nproc] = read_json(out / "metrics.json")
        rows[nproc] = read_jsonl(out / "eval_predictions.jsonl")
    assert rows[1] == rows[2] and len(rows[1]) == 7  # the same summaries in data order, so the same ROUGE
    assert_agree(metrics[1], metrics[2])  # the loss within a relative 1e-6


@pytest.mark.e2e
def test_predict_summarizes_text(trained):
    text = "The Met Office has warned of ice on untreated roads across Wales on Saturday night."
    result = run_cli("predict", "summarize", trained, text, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["source"] for r in rows] == [text] and isinstance(rows[0]["summary"], str) and rows[0]["summary"]


@pytest.mark.e2e
def test_predict_from_a_jsonl_file_gives_the_summaries_evaluation_generated(trained, tmp_path):
    # The bundled sample is the eval set: predicting its documents from a file (batched, JSON lines out) must
    # give the summaries written to eval_predictions.jsonl, in input order.
    out = tmp_path / "summaries.jsonl"
    sample = trained.parent / "docs.jsonl"
    sample.write_text((SAMPLES_DIR / "xsum_sample.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli("predict", "summarize", trained, "--file", sample, "--text-column", "document", "--output", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    evaluated = read_jsonl(trained / "eval_predictions.jsonl")
    assert [r["source"] for r in rows] == [r["source"] for r in evaluated]
    assert [r["summary"] for r in rows] == [r["prediction"] for r in evaluated]


def _tiny_checkpoint(folder, config_class: str, model_class: str, **config) -> None:
    import transformers

    from nlpcli.sources.presets import train_seq2seq_tokenizer

    rows = read_jsonl(SAMPLES_DIR / "xsum_sample.jsonl")
    tokenizer = train_seq2seq_tokenizer([r["document"] for r in rows] + [r["summary"] for r in rows], 300, 128)
    model_config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=16, num_layers=1, num_heads=2, decoder_start_token_id=0,
        **config,
    )
    getattr(transformers, model_class)(model_config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.mark.e2e
def test_the_prefix_hint_names_the_checkpoints_own_summarization_prefix_and_spares_mt5(tmp_path):
    t5, mt5 = tmp_path / "t5", tmp_path / "mt5"
    _tiny_checkpoint(t5, "T5Config", "T5ForConditionalGeneration",
                     task_specific_params={"summarization": {"prefix": "summarize: "}})
    _tiny_checkpoint(mt5, "MT5Config", "MT5ForConditionalGeneration")
    args = ("--dataset", "sample", "--eval-only", "--max-eval-samples", "2", "--generation-max-length", "4")
    result = run_cli("summarize", "--model", t5, *args, "--output-dir", tmp_path / "e1")
    assert result.exit_code == 0, result.output
    assert 'expects a task prefix' in result.output and '--source-prefix "summarize: "' in result.output
    result = run_cli("summarize", "--model", mt5, *args, "--output-dir", tmp_path / "e2")
    assert result.exit_code == 0, result.output
    assert "task prefix" not in result.output  # mT5 was not pretrained on prefixed tasks (the course uses none)


@pytest.mark.e2e
def test_length_split_runs_long_batches_as_pieces_with_less_padding(tmp_path):
    """The same 3 steps with and without --length-split: the same examples and tokens, fewer padded positions,
    and run.json says how many batches ran as pieces. (The Accelerate loop's pieces: test_distributed and
    test_recovery.)"""
    runs = {}
    for name, minimum in (("whole", "0"), ("pieces", "128")):
        out = tmp_path / name
        result = run_cli("summarize", *TINY, "--max-steps", "3", "--no-eval-before", "--length-split", minimum,
                         "--output-dir", out)
        assert result.exit_code == 0, result.output
        runs[name] = {**read_json(out / "run.json"), **read_json(out / "train_results.json")}
    whole, pieces = runs["whole"], runs["pieces"]
    assert whole["length_split"] == "off" and pieces["length_split"]["min_positions"] == 128
    assert 1 <= pieces["length_split"]["batches_split"] <= 3
    assert pieces["train_tokens"] == whole["train_tokens"]
    assert pieces["train_padding_share"] < whole["train_padding_share"]
    assert pieces["train_loss"] == pytest.approx(whole["train_loss"], rel=0.1)
