"""Plain-transformers baselines: nlpcli's training samples/s in both loops against a plain `transformers.Trainer`
built here, in one run (`main`: ner on the minilm preset), and, for every task, a bare Trainer that does what
the transformers example script does (`train_peer`, run by `peers.py`).

All three train the same model (the `minilm` preset's weights), on the same data (the bundled conll2003
sample, repeated so that the steps fit in one epoch), with the same batch size, steps, learning rate,
logging interval, seed and torch thread count, offline on the CPU. samples/s = steps x batch / training
seconds: nlpcli's `train_runtime_s` (run.json) and, for the baseline, the Trainer's own `train_runtime`: the
same span, from the first batch to the end of training, each loop's set-up left out. Process start, model
loading and tokenization are outside it in all three.

Where nlpcli has --eval-strategy/--save-strategy, no run evaluates or checkpoints inside the timed span; where
it has not, nlpcli evaluates and checkpoints at the end of the epoch, and the baseline is told to do the same.

Environment: BENCH_STEPS (default 24), BENCH_THREADS (torch threads, default 1: on a shared CPU more threads
measure the neighbours more than the code), BENCH_ROUNDS (default 1; with more, each figure is the best round).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "nlpcli" / "samples" / "conll2003_sample.jsonl"
STEPS = int(os.environ.get("BENCH_STEPS", "24"))
THREADS = os.environ.get("BENCH_THREADS", "1")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
BATCH = 8
LEARNING_RATE = 5e-5
LOGGING_STEPS = 10
SEED = 42
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": THREADS,
       "MKL_NUM_THREADS": THREADS}


def write_data(scratch: Path) -> tuple[Path, Path]:
    """train.jsonl: the sample repeated to steps x batch sentences (one epoch); valid.jsonl: the sample."""
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    train, valid = scratch / "train.jsonl", scratch / "valid.jsonl"
    train.write_text("\n".join(lines * math.ceil(STEPS * BATCH / len(lines))) + "\n", encoding="utf-8")
    valid.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return train, valid


def nlpcli_quiet_options() -> list[str]:
    """No evaluation or checkpoint inside the timed training, where this nlpcli has the options for it; without
    them each loop evaluates and checkpoints once, at the end of the epoch (and so will the baseline)."""
    sys.path.insert(0, str(REPO))
    from nlpcli.config import RunConfig

    names = {f.name for f in dataclasses.fields(RunConfig)}
    if {"eval_strategy", "save_strategy"} <= names:
        return ["--eval-strategy", "no", "--save-strategy", "no"]
    return []


def nlpcli_seconds(loop: str, train: Path, valid: Path, out: Path, quiet: list[str]) -> float:
    command = [sys.executable, "-m", "nlpcli", "ner", "--model", "minilm", "--train-file", str(train),
               "--validation-file", str(valid), "--text-column", "words", "--label-column", "ner",
               "--max-steps", str(STEPS), "--batch-size", str(BATCH), "--learning-rate", str(LEARNING_RATE),
               "--logging-steps", str(LOGGING_STEPS), "--seed", str(SEED), "--loop", loop, "--output-dir", str(out),
               "--overwrite", *quiet]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV)
    if done.returncode != 0:
        sys.exit(f"nlpcli --loop {loop} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    info = json.loads((out / "run.json").read_text())
    if info.get("train_samples_seen", STEPS * BATCH) != STEPS * BATCH:
        sys.exit(f"nlpcli --loop {loop} trained on {info['train_samples_seen']} samples, not {STEPS * BATCH}.")
    return info["train_runtime_s"]


def baseline_seconds(train: Path, valid: Path, out: Path, strategy: str) -> float:
    """The plain Trainer, in a fresh process as nlpcli's runs are."""
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline", str(train), str(valid), str(out), strategy]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV)
    if done.returncode != 0:
        sys.exit(f"baseline failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def train_baseline(train: Path, valid: Path, out: Path, strategy: str) -> float:
    """Fine-tune MiniLM for token classification the way the course does it with a bare Trainer, evaluating and
    saving by `strategy` (no | epoch); returns the Trainer's own `train_runtime`: from the first batch (after its
    set-up) to the end of training, the span nlpcli's `train_runtime_s` times in both loops."""
    import torch
    import transformers
    from datasets import load_dataset
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    sys.path.insert(0, str(REPO))
    from nlpcli.sources.presets import minilm_folder  # only to find where the preset's weights are installed

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(int(THREADS))
    folder = str(minilm_folder())
    raw = load_dataset("json", data_files={"train": str(train), "validation": str(valid)})
    labels = sorted({tag for tags in raw["train"]["ner"] for tag in tags})
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def encode(batch: dict) -> dict:
        encoded = tokenizer(batch["words"], truncation=True, is_split_into_words=True)
        encoded["labels"] = [
            [-100 if word is None else label2id[tags[word]] for word in encoded.word_ids(i)]
            for i, tags in enumerate(batch["ner"])
        ]
        return encoded

    features = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    args = TrainingArguments(output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=BATCH,
                             learning_rate=LEARNING_RATE, logging_steps=LOGGING_STEPS, seed=SEED,
                             eval_strategy=strategy, save_strategy=strategy, report_to="none", disable_tqdm=True,
                             use_cpu=True)
    trainer = Trainer(model=model, args=args, train_dataset=features["train"], eval_dataset=features["validation"],
                      processing_class=tokenizer,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    return trainer.train().metrics["train_runtime"]


# ---------------------------------------------------------------- every task: what the example scripts do
# (`peers.py` drives these, one fresh process per run, with `--peer SPEC_JSON`)


class CountingCollator:
    """The script's collator, counting the training batches' tokens (attention mask) and positions."""

    def __init__(self, collator, counts: dict) -> None:
        self.collator, self.counts = collator, counts

    def __call__(self, features):
        batch = self.collator(features)
        if self.counts.get("training"):
            mask = batch.get("attention_mask")
            positions = int(batch["input_ids"].numel())
            self.counts["positions"] += positions
            self.counts["tokens"] += int(mask.sum()) if mask is not None else positions
        return batch


def group_texts(examples: dict, block: int) -> dict:
    """run_mlm.py / run_clm.py: concatenate the texts and cut blocks of `block` tokens (the rest is dropped)."""
    joined = {k: sum(examples[k], []) for k in examples}
    total = len(joined["input_ids"]) // block * block
    return {k: [t[i:i + block] for i in range(0, total, block)] for k, t in joined.items()}


def _features(task: str, spec: dict, tokenizer, raw):
    """The script's preprocessing of train and validation: (train features, eval features, collator, model class)."""
    from transformers import (
        DataCollatorForLanguageModeling,
        DataCollatorForTokenClassification,
        default_data_collator,
    )

    columns = raw["train"].column_names
    if task == "ner":
        def encode(batch):
            encoded = tokenizer(batch["words"], truncation=True, is_split_into_words=True)
            encoded["labels"] = [[-100 if w is None else spec["label2id"][tags[w]] for w in encoded.word_ids(i)]
                                 for i, tags in enumerate(batch["ner"])]
            return encoded
        data = raw.map(encode, batched=True, remove_columns=columns)
        return data["train"], data["validation"], DataCollatorForTokenClassification(tokenizer), "TokenClassification"
    if task in ("mlm", "clm"):
        column = "text" if task == "mlm" else "content"
        tokens = raw.map(lambda b: tokenizer(b[column]), batched=True, remove_columns=columns)
        data = tokens.map(group_texts, batched=True, fn_kwargs={"block": spec["block"]})
        if task == "mlm":
            masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
            return data["train"], data["validation"], masking, "MaskedLM"
        data = data.map(lambda b: {"labels": [list(ids) for ids in b["input_ids"]]}, batched=True)
        return data["train"], data["validation"], default_data_collator, "CausalLM"
    if task in ("translate", "summarize"):
        def encode(batch):
            if task == "translate":
                sources, targets = [p["en"] for p in batch["translation"]], [p["ro"] for p in batch["translation"]]
            else:
                sources, targets = batch["document"], batch["summary"]
            encoded = tokenizer(sources, max_length=spec["max_length"], truncation=True)
            encoded["labels"] = tokenizer(text_target=targets, max_length=spec["max_target_length"],
                                          truncation=True)["input_ids"]
            return encoded
        data = raw.map(encode, batched=True, remove_columns=columns)
        return data["train"], data["validation"], None, "Seq2SeqLM"
    if task == "qa":  # run_qa.py's prepare_train_features, padded to max_seq_length (its default)
        def encode(batch):
            encoded = tokenizer(batch["question"], batch["context"], truncation="only_second", max_length=384,
                                stride=128, return_overflowing_tokens=True, return_offsets_mapping=True,
                                padding="max_length")
            starts, ends = [], []
            for i, offsets in enumerate(encoded.pop("offset_mapping")):
                answers = batch["answers"][encoded["overflow_to_sample_mapping"][i]]
                first = answers["answer_start"][0]
                last = first + len(answers["text"][0])
                sequence = encoded.sequence_ids(i)
                context = [k for k, s in enumerate(sequence) if s == 1]
                if not (offsets[context[0]][0] <= first and offsets[context[-1]][1] >= last):
                    starts.append(0)
                    ends.append(0)
                    continue
                starts.append(next(k for k in context if offsets[k][1] > first))
                ends.append(next(k for k in reversed(context) if offsets[k][0] < last))
            encoded.pop("overflow_to_sample_mapping")
            encoded["start_positions"], encoded["end_positions"] = starts, ends
            return encoded
        data = raw.map(encode, batched=True, remove_columns=columns)
        return data["train"], data["validation"], default_data_collator, "QuestionAnswering"
    raise ValueError(task)


def _metrics(task: str, tokenizer, model):
    """The script's compute_metrics: seqeval for ner, sacrebleu for translate, rouge_score for summarize (what
    `evaluate.load` wraps); none for mlm and clm (perplexity is the loss) and qa (its post-processing is left out,
    which flatters the baseline)."""
    import numpy as np

    if task == "ner":
        from seqeval.metrics import classification_report

        names = model.config.id2label

        def ner(prediction):
            predicted = np.argmax(prediction.predictions, axis=-1)
            pairs = [[(names[p], names[r]) for p, r in zip(ps, rs, strict=True) if r != -100]
                     for ps, rs in zip(predicted, prediction.label_ids, strict=True)]
            return {"f1": classification_report([[r for _, r in row] for row in pairs],
                                                [[p for p, _ in row] for row in pairs], output_dict=True,
                                                zero_division=0)["micro avg"]["f1-score"]}
        return ner
    if task in ("translate", "summarize"):
        def texts(prediction):
            predicted = np.where(prediction.predictions != -100, prediction.predictions, tokenizer.pad_token_id)
            labels = np.where(prediction.label_ids != -100, prediction.label_ids, tokenizer.pad_token_id)
            return (tokenizer.batch_decode(predicted, skip_special_tokens=True),
                    tokenizer.batch_decode(labels, skip_special_tokens=True))

        def bleu(prediction):
            import sacrebleu

            hypotheses, references = texts(prediction)
            return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score}

        def rouge(prediction):
            from rouge_score import rouge_scorer

            hypotheses, references = texts(prediction)
            scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
            scores = [scorer.score(r, h) for h, r in zip(hypotheses, references, strict=True)]
            return {"rouge1": float(np.mean([s["rouge1"].fmeasure for s in scores]))}
        return bleu if task == "translate" else rouge
    return None


def _peer_parts(spec: dict) -> tuple:
    """What the example script builds before training: (tokenizer, train features, eval features, collator,
    model, whether it is a sequence-to-sequence model)."""
    import torch
    import transformers
    from datasets import load_dataset
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(int(THREADS))
    task = spec["task"]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    kind = "text" if spec["train"].endswith(".txt") else "json"
    raw = load_dataset(kind, data_files={"train": spec["train"], "validation": spec["valid"]})
    if task == "ner":
        config = transformers.AutoConfig.from_pretrained(spec["model"])
        spec["label2id"] = config.label2id
    train, valid, collator, head = _features(task, spec, tokenizer, raw)
    model = getattr(transformers, f"AutoModelFor{head}").from_pretrained(spec["model"])
    if collator is None:
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    return tokenizer, train, valid, collator, model, head == "Seq2SeqLM"


def train_peer(spec: dict) -> dict:
    """One task the example script's way with a bare Trainer (Seq2SeqTrainer with predict_with_generate for
    translate and summarize): train `steps` steps, then evaluate once; the seconds of each and the counts."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    tokenizer, train, valid, collator, model, seq2seq = _peer_parts(spec)
    counts = {"training": True, "tokens": 0, "positions": 0}
    args = Seq2SeqTrainingArguments(
        output_dir=spec["out"], max_steps=spec["steps"], per_device_train_batch_size=spec["batch"],
        per_device_eval_batch_size=spec["batch"], learning_rate=spec["lr"], weight_decay=0.0, warmup_steps=0,
        logging_steps=10, seed=SEED, eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=True, predict_with_generate=seq2seq, generation_max_length=spec.get("generation_max_length"),
    )
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train, eval_dataset=valid,
                             processing_class=tokenizer, data_collator=CountingCollator(collator, counts),
                             compute_metrics=_metrics(spec["task"], tokenizer, model))
    train_s = trainer.train().metrics["train_runtime"]  # the Trainer's own span: its set-up left out, as nlpcli's
    counts["training"] = False
    started = time.perf_counter()
    metrics = trainer.evaluate()
    return {"train_s": train_s, "eval_s": time.perf_counter() - started, "samples": spec["steps"] * spec["batch"],
            "tokens": counts["tokens"], "positions": counts["positions"], "metrics": metrics}


def bare_peer(spec: dict) -> dict:
    """The floor under any training loop on the script's batches: the same features, collator, random batch
    order, model and steps, and nothing but forward, backward, a fused AdamW step and zeroed gradients (no
    clipping, schedule, logging or callbacks). Its samples/s is what a loop could reach without computing
    less (fewer padded positions)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    _, train, _, collator, model, _ = _peer_parts(spec)
    accepted = inspect.signature(model.forward).parameters  # the Trainer drops the columns forward does not take
    train = train.select_columns([c for c in train.column_names if c in accepted])
    order = RandomSampler(train, generator=torch.Generator().manual_seed(SEED))
    loader = DataLoader(train, batch_size=spec["batch"], sampler=order, collate_fn=collator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.0, fused=True)
    model.train()
    epochs = itertools.chain.from_iterable(loader for _ in range(spec["steps"]))  # as many passes as the steps need
    started = time.perf_counter()
    for batch in itertools.islice(epochs, spec["steps"]):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"train_s": time.perf_counter() - started, "samples": spec["steps"] * spec["batch"]}


def main() -> None:
    quiet = nlpcli_quiet_options()
    runs = {"transformers.Trainer (baseline)": [], "nlpcli --loop trainer": [], "nlpcli --loop accelerate": []}
    with tempfile.TemporaryDirectory() as scratch:
        train, valid = write_data(Path(scratch))
        for _ in range(ROUNDS):
            baseline, trainer, accelerate = runs.values()
            baseline.append(baseline_seconds(train, valid, Path(scratch) / "baseline", "no" if quiet else "epoch"))
            trainer.append(nlpcli_seconds("trainer", train, valid, Path(scratch) / "trainer", quiet))
            accelerate.append(nlpcli_seconds("accelerate", train, valid, Path(scratch) / "accelerate", quiet))
    samples = STEPS * BATCH
    rates = {name: samples / min(seconds) for name, seconds in runs.items()}
    reference = rates["transformers.Trainer (baseline)"]
    print(f"ner, minilm preset, {STEPS} steps x batch {BATCH} ({samples} samples, one epoch), {THREADS} torch "
          f"thread(s), best of {ROUNDS} round(s)")
    if not quiet:
        print("(this nlpcli has no --eval-strategy/--save-strategy: every run, the baseline too, evaluates and "
              "checkpoints once, at the end of the epoch)")
    print(f"{'run':<34}{'train s':>9}{'samples/s':>11}{'vs baseline':>13}")
    for name, seconds in runs.items():
        print(f"{name:<34}{min(seconds):>9.2f}{rates[name]:>11.2f}{rates[name] / reference:>12.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer"]:
        print(json.dumps(train_peer(json.loads(sys.argv[2]))))
    elif sys.argv[1:2] == ["--bare"]:
        print(json.dumps(bare_peer(json.loads(sys.argv[2]))))
    elif sys.argv[1:2] == ["--baseline"]:
        print(train_baseline(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]))
    else:
        main()
