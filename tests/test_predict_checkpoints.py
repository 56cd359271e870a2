"""`predict` (and `inspect`) from checkpoints nlpcli did not train: folders written by transformers' own
`save_pretrained` (tiny models built here with transformers' classes and a `tokenizers` tokenizer), and hub ids (a
repo in the hub cache, offline; one that is not there fails at once). The task's defaults stand in for the settings
no run saved, and a model of another task is refused by its architecture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli

WORDS = ("my name is Sylvain and I work at Hugging Face in Brooklyn where the Normans came from Denmark . ? ,"
         .split())
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def word_tokenizer(specials: list[str], template: str, **named: str):
    """A word-level fast tokenizer over WORDS (no nlpcli code)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(dict.fromkeys([*specials, *WORDS]))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=named["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    if template:
        pair = template.replace("$A", "$A $B:1") if "[SEP]" not in template else "[CLS] $A [SEP] $B:1 [SEP]:1"
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, pair=pair, special_tokens=[(t, vocab[t]) for t in specials if t in template])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=64, **named)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict[str, Path]:
    """One folder per kind of head, written by save_pretrained."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForQuestionAnswering,
        BertForTokenClassification,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("plain")
    bert_tokens = word_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[CLS] $A [SEP]", unk_token="[UNK]",
                                 pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    bert = dict(vocab_size=len(bert_tokens), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=64)
    t5_tokens = word_tokenizer(["<pad>", "</s>", "<unk>"], "$A </s>", unk_token="<unk>", pad_token="<pad>",
                               eos_token="</s>")
    gpt_tokens = word_tokenizer(["<|endoftext|>", "<unk>"], "", unk_token="<unk>", eos_token="<|endoftext|>")
    models = {
        "ner": (BertForTokenClassification(BertConfig(**bert, id2label=dict(enumerate(LABELS)),
                                                      label2id={name: i for i, name in enumerate(LABELS)})),
                bert_tokens),
        "mlm": (BertForMaskedLM(BertConfig(**bert)), bert_tokens),
        "qa": (BertForQuestionAnswering(BertConfig(**bert)), bert_tokens),
        "seq2seq": (T5ForConditionalGeneration(T5Config(vocab_size=len(t5_tokens), d_model=16, d_kv=8, d_ff=32,
                                                        num_layers=1, num_heads=2, decoder_start_token_id=0,
                                                        pad_token_id=0, eos_token_id=1)), t5_tokens),
        "clm": (GPT2LMHeadModel(GPT2Config(vocab_size=len(gpt_tokens), n_embd=16, n_layer=1, n_head=2, n_positions=64,
                                           bos_token_id=0, eos_token_id=0)), gpt_tokens),
    }
    for name, (model, tokenizer) in models.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return {name: root / name for name in models}


def predicted(*args) -> list[dict]:
    result = run_cli("predict", *map(str, args), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("["):])


def test_predict_from_save_pretrained_folders_of_every_task(plain):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    text = "my name is Sylvain and I work at Hugging Face in Brooklyn"
    tagger = pipeline("token-classification", model=str(plain["ner"]), aggregation_strategy="simple")
    expected = [{"entity": e["entity_group"], "word": e["word"], "start": e["start"], "end": e["end"]}
                for e in tagger(text)]
    found = predicted("ner", plain["ner"], text)[0]["entities"]
    assert [{k: e[k] for k in ("entity", "word", "start", "end")} for e in found] == expected
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(plain["seq2seq"]), AutoTokenizer.from_pretrained(
        plain["seq2seq"])
    generated = model.generate(**tokenizer([text], return_tensors="pt"), max_length=128)  # configs/translate.yaml
    assert predicted("translate", plain["seq2seq"], text) == [
        {"source": text, "translation": tokenizer.decode(generated[0], skip_special_tokens=True)}]
    assert predicted("summarize", plain["seq2seq"], text)[0]["source"] == text
    fills = predicted("mlm", plain["mlm"], "my name is [MASK] .", "--top-k", "3")[0]["predictions"]
    assert len(fills) == 3 and all(f["sequence"].startswith("my name is") for f in fills)
    context = " ".join(["the Normans came from Denmark ."] * 30)  # 180 tokens: windows of the model's 64 positions
    answer = predicted("qa", plain["qa"], "--question", "Where ?", "--context", context)[0]
    assert answer["answer"] == context[answer["start"]:answer["end"]] and answer["answer"]
    completion = predicted("clm", plain["clm"], "my name", "--max-new-tokens", "3")[0]
    assert completion["generated_text"].startswith("my name")


def test_predict_refuses_a_checkpoint_of_another_task_by_its_architecture(plain):
    for task, folder, architecture, fits in (("ner", "mlm", "BertForMaskedLM", "mlm"),
                                             ("translate", "ner", "BertForTokenClassification", "ner"),
                                             ("qa", "seq2seq", "T5ForConditionalGeneration", "translate, summarize"),
                                             ("mlm", "clm", "GPT2LMHeadModel", "clm")):
        args = ("--question", "q", "--context", "c") if task == "qa" else ("text",)
        result = run_cli("predict", task, plain[folder], *args)
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and f"holds a {architecture}, which has no {task} head; it fits {fits}" in text


def test_predict_settings_are_the_runs_else_the_task_defaults(plain, tmp_path):
    from nlpcli.config_layers import predict_settings
    from nlpcli.tasks.qa_windows import QaConfig

    cfg, from_run = predict_settings(QaConfig, "qa", str(plain["qa"]))
    assert not from_run and cfg.doc_stride == 128  # configs/qa.yaml
    assert cfg.max_length == 64  # configs/qa.yaml's 384, within the model's 64 positions
    run = tmp_path / "run"
    shutil.copytree(plain["qa"], run / "checkpoint-4")
    (run / "nlpcli_config.yaml").write_text("task: qa\nmax_length: 48\ndoc_stride: 16\n")
    cfg, from_run = predict_settings(QaConfig, "qa", str(run / "checkpoint-4"))  # its run folder's settings
    assert from_run and (cfg.max_length, cfg.doc_stride) == (48, 16)
    result = run_cli("predict", "ner", run / "checkpoint-4", "text")
    assert result.exit_code == 2 and "trained for qa" in result.output


def test_predict_from_a_hub_id_in_the_cache_and_at_once_offline_for_one_that_is_not(plain, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--plain-t5"  # as huggingface_hub caches a download
    shutil.copytree(plain["seq2seq"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    text = "my name is Sylvain"
    assert predicted("translate", "someone/plain-t5", text) == predicted("translate", plain["seq2seq"], text)
    wrong = run_cli("predict", "ner", "someone/plain-t5", text)
    assert wrong.exit_code == 2 and "holds a T5ForConditionalGeneration" in wrong.output
    missing = run_cli("predict", "translate", "someone/not-cached", text)
    assert missing.exit_code == 2 and "not in the local cache and HF_HUB_OFFLINE is set" in " ".join(
        missing.output.split()) and "Traceback" not in missing.output
    preset = run_cli("predict", "ner", "tiny", text)
    assert preset.exit_code == 2 and "a preset with random weights" in preset.output


def test_inspect_from_a_save_pretrained_folder(plain):
    result = run_cli("inspect", "ner", "--model", plain["ner"], "--dataset", "sample", "--json")
    report = json.loads(result.output[result.output.index("{"):])
    checks = {check["name"]: check for check in report["checks"]}
    assert result.exit_code == 0 and checks["forward"]["status"] == "ok", result.output
    assert checks["model"]["details"]["class"] == "BertForTokenClassification"
    assert len(checks["model"]["details"]["labels"]) == 6  # the head resized to the sample's labels, as a run does
    assert checks["batch"]["status"] == "warning" and checks["batch"]["details"]["unknown tokens"] > 0.05
