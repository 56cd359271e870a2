"""The data and starting weights `peers.py` gives nlpcli and the plain-transformers baselines: for each task,
train and validation files built from the bundled samples (the training file repeated to fill the steps, in a
layout both read without options of their own), and the tiny preset's model for that data, saved once so that
every run starts from the same weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "nlpcli" / "samples"


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _read_jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def sample_rows(task: str) -> list[dict[str, Any]]:
    """The records of a task's bundled sample, in the layout the files get."""
    if task == "ner":
        return _read_jsonl("conll2003_sample.jsonl")
    if task == "translate":
        return _read_jsonl("wmt16_en_ro_sample.jsonl")
    if task == "summarize":
        return _read_jsonl("xsum_sample.jsonl")
    if task == "clm":
        return [{"content": row["content"]} for row in _read_jsonl("python_code.jsonl")]
    if task == "mlm":
        lines = (SAMPLES / "wiki_00.txt").read_text(encoding="utf-8").splitlines()
        return [{"text": line} for line in lines if line.strip() and not line.startswith("<")]
    if task == "qa":  # answerable questions only: the example script's SQuAD v1 path
        records = json.loads((SAMPLES / "squad_v2_sample.json").read_text(encoding="utf-8"))["data"]
        return [{**r, "title": ""} for r in records if r["answers"]["text"]]
    raise ValueError(task)


def write_files(task: str, folder: Path, train_records: int, eval_records: int) -> tuple[Path, Path]:
    """train and validation files: the sample repeated to `train_records` records, and its first `eval_records`
    (repeated when it has fewer)."""
    rows = sample_rows(task)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".txt" if task == "mlm" else ".jsonl"
    train = _repeated(rows, train_records)
    valid = _repeated(rows, eval_records)
    if task == "mlm":
        (folder / f"train{suffix}").write_text("\n".join(r["text"] for r in train) + "\n", encoding="utf-8")
        (folder / f"valid{suffix}").write_text("\n".join(r["text"] for r in valid) + "\n", encoding="utf-8")
        return folder / f"train{suffix}", folder / f"valid{suffix}"
    return _jsonl(folder / "train.jsonl", train), _jsonl(folder / "valid.jsonl", valid)


def _repeated(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` records cycling through `rows`; ids (qa) made unique per repeat."""
    out = (rows * math.ceil(count / len(rows)))[:count]
    return [{**row, "id": f"{row['id']}-{i}"} if "id" in row else row for i, row in enumerate(out)]


# nlpcli's options for the files above (columns, languages, what matches the example script's defaults)
FILE_OPTIONS: dict[str, list[str]] = {
    "ner": ["--text-column", "words", "--label-column", "ner", "--no-label-all-tokens"],
    "mlm": [],
    "translate": ["--source-lang", "en", "--target-lang", "ro", "--max-length", "128", "--max-target-length", "128"],
    "summarize": ["--text-column", "document", "--summary-column", "summary", "--max-length", "512",
                  "--max-target-length", "64"],
    "clm": ["--text-column", "content", "--pack", "--no-from-scratch"],  # run_clm.py concatenates and cuts blocks
    "qa": ["--max-length", "384", "--doc-stride", "128"],
}


# model sizes beyond the tiny preset's (BENCH_SIZE): "mini" is MiniLM-L6's shape (384 wide, 6 layers, 12 heads,
# 1536 feed-forward; about 11M parameters besides the embeddings) in each architecture the presets use
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "tiny": {},
    "mini": {
        "bert": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
        "t5": {"d_model": 384, "d_kv": 32, "d_ff": 1536, "num_layers": 6, "num_decoder_layers": 6, "num_heads": 12},
        "gpt2": {"n_embd": 384, "n_layer": 6, "n_head": 12},
    },
}


def save_start_model(task: str, train: Path, valid: Path, folder: Path, size: str = "tiny") -> Path:
    """The tiny preset's model and tokenizer for this data, built by nlpcli's own run path and saved; at another
    `size` (SIZES) the same architecture, tokenizer and labels at that size, with fresh random weights."""
    import tempfile

    from accelerate import PartialState

    from nlpcli.config_layers import resolve_config
    from nlpcli.runner import run, splits
    from nlpcli.tasks import get_task

    if (folder / "config.json").is_file():
        return folder
    spec = get_task(task)
    values = {"model": "tiny", "train_file": str(train), "validation_file": str(valid)}
    values.update(_option_values(FILE_OPTIONS[task]))
    values.pop("from_scratch", None)
    cfg = resolve_config(spec.config_class, task, cli_values=values)
    run.quiet_libraries()
    from transformers import set_seed

    set_seed(cfg.seed)  # the same starting weights in every benchmark run, so that runs compare
    with tempfile.TemporaryDirectory() as scratch:
        built = run.build(spec, cfg, PartialState(cpu=True), splits.read(spec, cfg), Path(scratch))
        model = built.model
        if SIZES[size]:
            model.config.update(SIZES[size][model.config.model_type])
            model = type(model)(model.config)
        model.save_pretrained(folder)
        built.tokenizer.save_pretrained(folder)
    return folder


def _option_values(options: list[str]) -> dict[str, Any]:
    """`--flag value` / `--flag` / `--no-flag` pairs as config values."""
    values: dict[str, Any] = {}
    index = 0
    while index < len(options):
        name = options[index].removeprefix("--")
        following = options[index + 1] if index + 1 < len(options) else None
        if following is None or following.startswith("--"):
            key = name.removeprefix("no-").replace("-", "_")
            values[key] = not name.startswith("no-")
            index += 1
        else:
            values[name.replace("-", "_")] = following if not following.isdigit() else int(following)
            index += 2
    return values
