"""clm: windows and packing, the key-token loss, no-decay groups, schedules, end-to-end runs, predict."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from conftest import REPO, assert_agree, read_json, read_jsonl, run_cli, run_processes
from nlpcli.sources.data import SAMPLES_DIR
from nlpcli.sources.presets import train_byte_level_bpe
from nlpcli.tasks.base import Prepared, TaskSetup
from nlpcli.tasks.clm import (
    ClmConfig,
    ClmTask,
    keytoken_ids,
    keytoken_weighted_loss,
)
from nlpcli.tasks.clm_chunks import pack_blocks

CODE = [
    "import numpy as np\nimport matplotlib.pyplot as plt\n\nx = np.arange(10)\nplt.plot(x, x ** 2)\n",
    "def add(a, b):\n    return a + b\n",
    "class Model:\n    def fit(self, X, y):\n        self.coef_ = (X.T @ y) / (X.T @ X)\n        return self\n"
    "\n    def predict(self, X):\n        return X @ self.coef_\n",
    "x = 1\n",
]
# The course's gradient accumulation (8) and warm-up (1000 steps) would make these runs long or static.
SAMPLE = ["--dataset", "sample", "--context-length", "32", "--batch-size", "8", "--learning-rate", "5e-3",
          "--gradient-accumulation-steps", "1", "--warmup-steps", "0",
          "--max-train-samples", "6", "--max-eval-samples", "2", "--tokenizer", "none"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_byte_level_bpe(CODE * 3, vocab_size=400, max_length=1024)


def _raw(texts: list[str]):
    import datasets

    split = datasets.Dataset.from_dict({"content": texts})
    return datasets.DatasetDict({"train": split, "validation": split})


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


# ---------------------------------------------------------------- chunking


def test_windows_keep_only_full_windows_and_count_the_rest_as_dropped(tokenizer):
    length = 8
    counts = _token_counts(tokenizer, CODE)
    assert any(n % length for n in counts) and min(counts) < length, "the test needs partial and short texts"
    prepared = ClmTask().prepare(_raw(CODE), tokenizer, ClmConfig(context_length=length), TaskSetup())
    windows = [list(ids) for ids in prepared.train["input_ids"]]
    assert all(len(ids) == length for ids in windows)
    expected = []
    for text in CODE:  # each text's own full windows, in order; a text never spills into the next window
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        expected += [ids[i:i + length] for i in range(0, len(ids) // length * length, length)]
    assert windows == expected
    facts = prepared.facts
    assert facts["chunking"] == "windows"
    assert facts["tokens_kept"]["train"] == sum(n // length * length for n in counts) == len(windows) * length
    assert facts["tokens_dropped"]["train"] == sum(n % length for n in counts) > 0


def test_packing_loses_nothing_but_the_last_partial_block(tokenizer):
    length = 8
    prepared = ClmTask().prepare(_raw(CODE), tokenizer, ClmConfig(context_length=length, pack=True), TaskSetup())
    joined = [i for ids in tokenizer(CODE, add_special_tokens=False)["input_ids"] for i in
              ids + [tokenizer.eos_token_id]]
    blocks = [list(ids) for ids in prepared.train["input_ids"]]
    assert blocks == [joined[i:i + length] for i in range(0, len(joined) // length * length, length)]
    facts = prepared.facts
    assert facts["tokens_kept"]["train"] == len(joined) // length * length
    assert facts["tokens_dropped"]["train"] == len(joined) % length < length
    windows = ClmTask().prepare(_raw(CODE), tokenizer, ClmConfig(context_length=length), TaskSetup())
    assert facts["tokens_kept"]["train"] > windows.facts["tokens_kept"]["train"]


def test_pack_blocks_carries_tokens_across_texts():
    assert list(pack_blocks([[1, 2, 3], [4], [5, 6, 7, 8, 9]], 4)) == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert list(pack_blocks([[1, 2]], 4)) == []


# ---------------------------------------------------------------- key-token loss


def _log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    norm = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - norm for v in row]


def test_keytoken_loss_matches_a_hand_computed_value():
    import torch

    logits = torch.tensor([
        [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]],
        [[0.5, 0.0, 1.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    ])
    input_ids = torch.tensor([[0, 2, 2, 1], [1, 0, 0, 0]])
    # sample 0: targets 2, 2, 1 (positions 0..2 predict 1..3); sample 1: targets 0, 0, 0
    nll = [[-_log_softmax(logits[s, t].tolist())[int(input_ids[s, t + 1])] for t in range(3)] for s in range(2)]
    per_sample = [sum(row) / 3 for row in nll]
    keytokens, alpha = [2], 0.5  # token 2 appears twice in sample 0, never in sample 1
    expected = (per_sample[0] * (1 + alpha * 2) + per_sample[1] * 1) / 2
    got = keytoken_weighted_loss(logits, input_ids.clone(), input_ids, keytokens, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    plain = sum(per_sample) / 2
    assert float(keytoken_weighted_loss(logits, input_ids.clone(), input_ids, keytokens, 0.0)) == pytest.approx(plain)


@pytest.mark.slow
def test_keytoken_loss_at_alpha_0_is_the_models_own_loss(tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from nlpcli.sources.presets import causal_lm_config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(causal_lm_config(tokenizer))
    ids = torch.tensor([tokenizer(CODE[2])["input_ids"][:16], tokenizer(CODE[0])["input_ids"][:16]])
    with torch.no_grad():
        outputs = model(input_ids=ids, labels=ids)
    keys = keytoken_ids(tokenizer, ["fit", "plt"])
    flat = [i for found in keys.values() for i in found]
    assert float(keytoken_weighted_loss(outputs.logits, ids, ids, flat, 0.0)) == pytest.approx(float(outputs.loss))
    assert float(keytoken_weighted_loss(outputs.logits, ids, ids, flat, 1.0)) > float(outputs.loss)


def test_keytokens_are_looked_up_with_and_without_a_leading_space(tokenizer):
    found = keytoken_ids(tokenizer, ["plt", "fit"])
    for word, ids in found.items():
        forms = [tokenizer(f, add_special_tokens=False)["input_ids"] for f in (word, " " + word)]
        assert ids == [f[0] for f in forms if len(f) == 1] and ids
    from nlpcli.errors import UserError

    with pytest.raises(UserError, match="'coefficientized'"):
        keytoken_ids(tokenizer, ["fit", "coefficientized"])


# ---------------------------------------------------------------- optimizer groups and schedules


def _tiny_models(tokenizer):
    from transformers import AutoModelForCausalLM, BertConfig, BertForTokenClassification

    from nlpcli.sources.presets import TINY_BERT, causal_lm_config

    bert = BertForTokenClassification(BertConfig(vocab_size=100, num_labels=3, **TINY_BERT))
    return [AutoModelForCausalLM.from_config(causal_lm_config(tokenizer)), bert]


def test_no_decay_groups_hold_exactly_the_biases_and_layernorm_weights_in_both_loops(tokenizer, tmp_path):
    from torch import nn
    from transformers import TrainingArguments

    from nlpcli.runner import settings
    from nlpcli.runner.context import RunContext
    from nlpcli.runner.trainer import trainer_class

    for model in _tiny_models(tokenizer):
        norm_params = {f"{m}.{p}" if m else p for m, module in model.named_modules()
                       if isinstance(module, nn.LayerNorm) for p, _ in module.named_parameters(recurse=False)}
        names = {id(p): n for n, p in model.named_parameters()}
        expected = {n for n in names.values() if n.endswith(".bias")} | norm_params
        assert any("ln_" in n or "LayerNorm" in n for n in expected)  # GPT-2's ln_1/ln_2/ln_f are caught too

        args = TrainingArguments(output_dir=str(tmp_path), weight_decay=0.1, use_cpu=True, report_to="none")
        accelerate_groups = settings.optimizer(args, model).param_groups
        ctx = RunContext(task=ClmTask(), cfg=ClmConfig(), model=model, tokenizer=None, prepared=Prepared(None, None),
                         raw_eval=None, output_dir=tmp_path, mixed_precision="no")
        trainer = trainer_class(ctx)(model=model, args=args)
        trainer.create_optimizer()
        for groups in (accelerate_groups, trainer.optimizer.param_groups):
            by_decay = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in groups}
            assert by_decay[0.0] == expected
            assert by_decay[0.1] == set(names.values()) - expected


@pytest.mark.parametrize("scheduler, warmup", [("cosine", "--warmup-steps"), ("linear", "--warmup-ratio"),
                                               ("constant_with_warmup", "--warmup-steps")])
def test_both_loops_follow_the_same_learning_rate_schedule(tokenizer, tmp_path, scheduler, warmup):
    import torch
    from transformers import AutoModelForCausalLM, Trainer

    from nlpcli.runner import optimization
    from nlpcli.runner.context import RunContext
    from nlpcli.runner.trainer import training_arguments
    from nlpcli.sources.presets import causal_lm_config

    value = 3 if warmup == "--warmup-steps" else 0.25
    cfg = ClmConfig(lr_scheduler=scheduler, learning_rate=1e-2, eval_only=True,  # eval_only: no eval set needed
                    **({"warmup_steps": value} if warmup == "--warmup-steps" else {"warmup_ratio": value}))
    model = AutoModelForCausalLM.from_config(causal_lm_config(tokenizer))
    ctx = RunContext(task=ClmTask(), cfg=cfg, model=model, tokenizer=None, prepared=Prepared(None, None),
                     raw_eval=None, output_dir=tmp_path, mixed_precision="no")
    trainer = Trainer(model=model, args=training_arguments(ctx))
    trainer.create_optimizer_and_scheduler(num_training_steps=12)
    ours = optimization.scheduler(cfg, torch.optim.AdamW(model.parameters(), lr=1e-2), 12)
    theirs = trainer.lr_scheduler
    rates = []
    for _ in range(12):
        rates.append((ours.get_last_lr()[0], theirs.get_last_lr()[0]))
        ours.optimizer.step(), ours.step(), theirs.optimizer.step(), theirs.step()
    assert [a for a, _ in rates] == pytest.approx([b for _, b in rates])
    assert rates[0][0] < rates[3][0]  # warm-up happened (3 steps either way)


def test_scheduler_choices_are_transformers_names():
    from transformers.trainer_utils import SchedulerType

    from nlpcli.config import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}


# ---------------------------------------------------------------- the tiny preset


@pytest.mark.slow
def test_tiny_gpt2_tokenizer_is_the_same_in_every_process(tmp_path):
    code = ("import hashlib, json; from nlpcli.sources.data import SAMPLES_DIR; "
            "from nlpcli.sources.presets import train_byte_level_bpe; "
            "texts = [json.loads(l)['content'] for l in (SAMPLES_DIR / 'python_code.jsonl').open()]; "
            "t = train_byte_level_bpe(texts, 800, 1024); "
            "print(hashlib.sha256(t.backend_tokenizer.to_str().encode()).hexdigest(), len(t))")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                              check=True, env={"PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(digests) == 1 and digests.pop().split()[1] == "800"


def test_tiny_preset_builds_a_gpt2_for_causal_lm_tasks(tmp_path):
    from transformers import AutoModelForCausalLM

    from nlpcli.sources.presets import build_tiny

    model, tok = build_tiny(AutoModelForCausalLM, CODE * 3, 350, {}, tmp_path / "tok")
    assert model.config.model_type == "gpt2" and model.config.vocab_size == len(tok)
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"
    assert model.config.pad_token_id == model.config.eos_token_id == tok.eos_token_id
    assert tok.decode(tok(CODE[2])["input_ids"]) == CODE[2]  # byte-level: every text round-trips


# ---------------------------------------------------------------- end to end


def _train(out, *extra: str, loop: str = "trainer"):
    result = run_cli("clm", "--model", "tiny", *SAMPLE, "--max-steps", "4", "--logging-steps", "2",
                     "--loop", loop, "--output-dir", out, *extra)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("clm") / "model"
    _train(out, "--max-steps", "8")
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_train_report_reload_and_predict(tmp_path, loop):
    out = tmp_path / loop
    result = _train(out, "--eval-steps", "2", "--lr-scheduler", "cosine", "--warmup-steps", "1", loop=loop)
    # before training, at steps 2 and 4 (no epoch ends before)
    assert len(re.findall(r"eval_loss(?:_before)?=", result.output)) == 3
    metrics = read_json(out / "metrics.json")
    assert set(metrics) == {f"eval_{m}{when}" for m in ("loss", "perplexity", "accuracy")
                            for when in ("", "_before")} | {"train_loss"}
    for when in ("", "_before"):
        assert metrics[f"eval_perplexity{when}"] == pytest.approx(math.exp(metrics[f"eval_loss{when}"]))
        assert 0 <= metrics[f"eval_accuracy{when}"] <= 1
    assert metrics["eval_loss"] < metrics["eval_loss_before"]
    for when in ("", "_before"):  # the metrics recompute from the predictions file, one row per eval window
        rows = [json.loads(line) for line in (out / f"eval_predictions{when}.jsonl").read_text().splitlines()]
        tokens = sum(row["tokens"] for row in rows)
        assert [row["index"] for row in rows] == list(range(read_json(out / "run.json")["eval_features"]))
        assert sum(row["loss_sum"] for row in rows) / tokens == pytest.approx(metrics[f"eval_loss{when}"], rel=1e-9)
        assert sum(row["correct"] for row in rows) / tokens == pytest.approx(metrics[f"eval_accuracy{when}"])
    info = read_json(out / "run.json")
    assert info["train_tokens"] == 4 * 8 * 32 and info["train_tokens_per_second"] > 0
    assert info["train_samples"] * 32 == info["tokens_kept"]["train"] and info["tokens_dropped"]["train"] > 0
    config = read_json(out / "config.json")
    assert config["model_type"] == "gpt2" and config["pad_token_id"] == config["eos_token_id"]

    predicted = run_cli("predict", "clm", out, "def prepare(self", "--max-new-tokens", "8", "--json")
    assert predicted.exit_code == 0, predicted.output
    (row,) = json.loads(predicted.output)
    assert row["prompt"] == "def prepare(self" and row["generated_text"].startswith("def prepare(self")
    assert len(row["generated_text"]) > len("def prepare(self")


def _sample_records() -> list[dict]:
    return [json.loads(line) for line in (SAMPLES_DIR / "python_code.jsonl").open()]


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_keytoken_loss_trains_both_loops_and_is_the_plain_loss_at_alpha_0(tmp_path, loop):
    seen = {}
    for name, extra in (("plain", []), ("alpha0", ["--keytokens", "self,return", "--keytoken-alpha", "0"]),
                        ("alpha5", ["--keytokens", "self,return", "--keytoken-alpha", "5"])):
        result = _train(tmp_path / name, *extra, loop=loop)
        seen[name] = read_json(tmp_path / name / "metrics.json")["eval_loss"]
        if extra:
            assert "key tokens (alpha" in result.output and "self=" in result.output
    assert seen["alpha0"] == pytest.approx(seen["plain"], rel=1e-4)
    assert seen["alpha5"] != pytest.approx(seen["plain"], rel=1e-4)  # the weighted loss is what trained


def test_a_keyword_that_is_no_single_token_is_refused(tmp_path):
    result = run_cli("clm", "--model", "tiny", *SAMPLE, "--keytokens", "self,zqxjkvw", "--max-steps", "1",
                     "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and "'zqxjkvw' is not a single token" in result.output


@pytest.mark.e2e
def test_filter_keywords_keeps_the_texts_that_mention_one(tmp_path):
    out = tmp_path / "out"
    result = run_cli("clm", "--model", "tiny", *SAMPLE[:-4], "--filter-keywords", "torchrun,seqeval",
                     "--max-steps", "1", "--output-dir", out, "--tokenizer", "none")
    assert result.exit_code == 0, result.output
    records = _sample_records()
    expected = sum(("torchrun" in r["content"]) or ("seqeval" in r["content"]) for r in records)
    info = read_json(out / "run.json")
    filtered = info["filter"]
    # the filter reads the whole file, before 10% of what it kept is held out for validation
    assert filtered["train"] == {"seen": len(records), "kept": expected} and expected < len(records)
    assert filtered["keywords"] == ["torchrun", "seqeval"]


@pytest.mark.e2e
def test_train_tokenizer_fits_a_new_tokenizer_from_a_local_one_and_from_scratch_offline(trained, tmp_path):
    fitted = tmp_path / "fitted"
    result = run_cli("clm", "--model", trained, "--from-scratch", "--tokenizer", trained, "--train-tokenizer",
                     "--vocab-size", "500", *SAMPLE[:-2], "--max-steps", "1", "--output-dir", fitted)
    assert result.exit_code == 0, result.output
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fitted)
    assert len(tokenizer) == 500 == read_json(fitted / "config.json")["vocab_size"]
    assert tokenizer.get_vocab() != AutoTokenizer.from_pretrained(trained).get_vocab()

    offline = tmp_path / "offline"
    result = run_cli("clm", "--model", trained, "--tokenizer", "gpt2", "--train-tokenizer", "--vocab-size", "600",
                     *SAMPLE[:-2], "--max-steps", "1", "--output-dir", offline)
    assert result.exit_code == 0, result.output
    assert "byte-level BPE tokenizer from scratch" in " ".join(result.output.split())  # rich wraps lines
    assert len(AutoTokenizer.from_pretrained(offline)) == 600 == read_json(offline / "config.json")["vocab_size"]


@pytest.mark.parametrize("pack", [False, True])
def test_a_stream_is_cut_exactly_as_the_loaded_data(tokenizer, pack):
    import datasets

    cfg = ClmConfig(context_length=8, pack=pack)
    loaded = datasets.Dataset.from_dict({"content": CODE * 2})
    whole = ClmTask().prepare({"train": loaded, "validation": loaded}, tokenizer, cfg, TaskSetup()).train
    streamed = ClmTask().prepare({"train": loaded.to_iterable_dataset(), "validation": loaded}, tokenizer, cfg,
                                 TaskSetup()).train
    assert [row["input_ids"] for row in streamed] == [list(ids) for ids in whole["input_ids"]]


@pytest.mark.e2e
@pytest.mark.parametrize("loop, pack", [("trainer", "--no-pack"), ("accelerate", "--pack")])
def test_streaming_trains_both_loops(tmp_path, loop, pack):
    out = tmp_path / "out"
    data = SAMPLES_DIR / "python_code.jsonl"
    result = _train(out, "--streaming", "--train-file", data, "--validation-file", data, "--dataset", "none",
                    "--filter-keywords", "torch", pack, loop=loop)
    assert "train=streamed" in result.output
    info = read_json(out / "run.json")
    assert info["train_tokens"] == 4 * 8 * 32 and info["train_samples"] is None
    assert info["tokens_kept"]["train"] == "streamed: not counted" and info["tokens_kept"]["validation"] > 0
    assert info["filter"]["train"] == "streamed: not counted"
    assert info["filter"]["validation"]["kept"] < info["filter"]["validation"]["seen"] == 43  # filtered whole
    metrics = read_json(out / "metrics.json")
    assert metrics["eval_loss"] < metrics["eval_loss_before"]


def test_streaming_refusals(tmp_path):
    data = SAMPLES_DIR / "python_code.jsonl"
    cases = [
        (["clm", "--dataset", "sample"], "--streaming needs --max-steps"),
        (["clm", "--dataset", "sample", "--max-steps", "2"], "--streaming reads a hub data set"),
        (["clm", "--dataset", "none", "--train-file", data, "--max-steps", "2"], "no validation data"),
        (["ner", "--dataset", "sample", "--max-steps", "2"], "the ner task reads its data whole"),
        (["clm", "--dataset", "none", "--train-file", data, "--validation-file", data, "--max-steps", "2",
          "--filter", "repo_name=nlpcli"], "--filter reads the data whole"),
    ]
    for args, message in cases:
        result = run_cli(*args, "--model", "tiny", "--streaming", "--output-dir", tmp_path / "out")
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.e2e
def test_predict_is_reproducible_with_a_seed(trained):
    def generate(*extra: str) -> list[str]:
        result = run_cli("predict", "clm", trained, "def ", "class ", "--max-new-tokens", "12", "--json", *extra)
        assert result.exit_code == 0, result.output
        return [row["generated_text"] for row in json.loads(result.output)]

    sampled = ["--temperature", "1.5", "--top-p", "0.95", "--num-return-sequences", "3"]
    first = generate(*sampled, "--seed", "1")
    assert len(first) == 6 and len(set(first)) > 1  # 2 prompts x 3 completions, not all the same
    assert generate(*sampled, "--seed", "1") == first
    assert generate(*sampled, "--seed", "2") != first
    assert generate() == generate()  # greedy: the same without a seed
    refused = run_cli("predict", "clm", trained, "def ", "--num-return-sequences", "2")
    assert refused.exit_code == 2 and "needs sampling" in refused.output


@pytest.mark.e2e
def test_predict_file_gives_one_line_per_prompt_in_order_across_batches(trained, tmp_path):
    prompts = [f"def f{n}(" for n in range(9)]  # more than one batch of PREDICT_BATCH
    source = tmp_path / "prompts.txt"
    source.write_text("\n".join(prompts) + "\n")
    result = run_cli("predict", "clm", trained, "--file", source, "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [row["prompt"] for row in rows] == prompts
    assert all(row["generated_text"].startswith(row["prompt"]) for row in rows)


@pytest.mark.e2e
def test_perplexity_is_the_same_with_1_and_2_processes(trained, tmp_path):
    metrics = {}
    for nproc in (1, 2):
        out = tmp_path / f"eval{nproc}"
        run_processes(nproc, "clm", "--model", trained, "--eval-only", "--dataset", "sample", "--context-length",
                      "32", "--max-eval-samples", "1", "--eval-batch-size", "3", "--output-dir", out)
        metrics[nproc] = read_json(out / "metrics.json")
        info = read_json(out / "run.json")
        assert info["world_size"] == nproc
        assert info["eval_features"] % 6, "an uneven last step (a duplicated sample) is what the test is about"
    assert_agree(metrics[1], metrics[2])
    assert set(metrics[1]) == {"eval_loss", "eval_perplexity", "eval_accuracy"}
    predictions = [read_jsonl(tmp_path / f"eval{n}" / "eval_predictions.jsonl") for n in (1, 2)]
    assert_agree(predictions[0], predictions[1])  # every window once, in data order: token counts exact


def test_the_course_validation_set_goes_with_the_course_data_only():
    from nlpcli.config_layers import resolve_config

    course = resolve_config(ClmConfig, "clm")
    assert course.dataset == "huggingface-course/codeparrot-ds-train"
    assert course.validation_dataset == "huggingface-course/codeparrot-ds-valid"
    for other in ({"dataset": "sample"}, {"dataset": "codeparrot/codeparrot-clean"}, {"train_file": "code.jsonl"}):
        assert resolve_config(ClmConfig, "clm", cli_values=other).validation_dataset is None


def test_clm_options_are_checked_against_their_ranges(tmp_path):
    for option, value, message in (("--context-length", "1", "at least 2"), ("--vocab-size", "100", "at least 300"),
                                   ("--keytoken-alpha", "-1", "at least 0")):
        result = run_cli("clm", "--model", "tiny", "--dataset", "sample", option, value, "--output-dir", tmp_path)
        assert result.exit_code == 2 and f"{option} must be {message}" in result.output, result.output


def test_a_txt_file_is_one_text_per_line_without_text_column(tmp_path):
    from nlpcli.config_layers import resolve_config
    from nlpcli.runner import splits
    from nlpcli.tasks import get_task

    lines = ["def add(a, b):", "    return a + b", "", "   ", "class Model:", "", "x = 1"]
    source = tmp_path / "code.txt"
    source.write_text("\n".join(lines) + "\n")
    validation = tmp_path / "valid.txt"
    validation.write_text("import os\n\nprint(os.sep)\n")
    task = get_task("clm")
    cfg = resolve_config(ClmConfig, "clm", cli_values={"model": "tiny", "train_file": str(source),
                                                       "validation_file": str(validation)})
    read = splits.read(task, cfg)  # no --text-column: the lines are read into clm's text column
    assert read.raw["train"]["content"] == [line for line in lines if line.strip()]
    assert read.raw["validation"]["content"] == ["import os", "print(os.sep)"]
    assert read.data_report == {"train": {"lines": 7, "blank_lines": 3}, "validation": {"lines": 3, "blank_lines": 1}}


@pytest.mark.e2e
def test_predict_top_k_limits_sampling(trained):
    def generate(*extra: str) -> str:
        result = run_cli("predict", "clm", trained, "def ", "class ", "--max-new-tokens", "10", *extra)
        assert result.exit_code == 0, result.output
        return result.output

    greedy = json.loads(generate("--json"))
    # top-k 1 keeps only the most likely token: sampling at any temperature is then greedy decoding
    assert json.loads(generate("--json", "--temperature", "2.0", "--top-k", "1", "--seed", "3")) == greedy
    wide = json.loads(generate("--json", "--temperature", "2.0", "--top-k", "0", "--seed", "3"))
    assert wide != greedy  # no limit: a temperature of 2 leaves the greedy path
    shown = generate("--temperature", "0.7", "--top-k", "5", "--top-p", "0.9", "--seed", "1")
    assert "10 new tokens, temperature 0.7, top-k 5, top-p 0.9" in shown
    ignored = generate("--top-k", "5")
    assert "--top-k: used only when sampling" in ignored and "10 new tokens, greedy" in ignored
    refused = run_cli("predict", "clm", trained, "def ", "--top-k", "-1", "--temperature", "1")
    assert refused.exit_code == 2 and "--top-k must be 0 (no limit) or more, got -1" in refused.output


@pytest.mark.e2e
def test_from_scratch_needs_a_configuration_and_a_tokenizer_not_weights(trained, tmp_path):
    import shutil

    shape, tokenizer_only = tmp_path / "shape", tmp_path / "tokenizer"
    shape.mkdir()
    tokenizer_only.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(trained / name, shape / name)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(trained / name, tokenizer_only / name)
    # run_clm.py's --config_name: a model's shape, trained from random weights
    result = run_cli("clm", "--model", shape, "--tokenizer", tokenizer_only, *SAMPLE[:-2], "--max-steps", "1",
                     "--attn-implementation", "eager", "--output-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    info = read_json(tmp_path / "run" / "run.json")
    assert (info["steps"], info["attn_implementation"]) == (1, "eager")
    assert read_json(tmp_path / "run" / "config.json")["n_embd"] == read_json(shape / "config.json")["n_embd"]
    # its weights are asked for: refused, naming what is missing
    refused = run_cli("clm", "--model", shape, "--no-from-scratch", *SAMPLE[:-2], "--max-steps", "1",
                      "--output-dir", tmp_path / "weights")
    assert refused.exit_code == 2 and "holds no weights file (model.safetensors)" in refused.output, refused.output
    assert not (tmp_path / "weights").exists()
