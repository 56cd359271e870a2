"""Cost that grows linearly with the data, memory that does not grow with it (`make bench`).

For ner, translate and clm, training files at 1x, 10x and 100x a base size, built from the bundled samples
repeated with small variations (a number in every repeat, so that no two records are the same), and a fixed
validation file. Every run is a fresh `nlpcli` process on a cold datasets cache (its own HF_DATASETS_CACHE),
from the same starting weights (the tiny preset's for the 1x data, saved once: the tokenizer does not change
with the scale), training a fixed number of steps with no evaluation or checkpoint inside the loop; then the
100x run once more, into another output folder, on the warm cache (its features `reused`).

Printed per task and scale: records; preparation seconds (read and clean: `splits.read`; features: the task's
`setup` and `prepare`), timed inside the process around those calls, and per 10,000 records; the training
loop's seconds for the fixed steps (`run.json` train_runtime_s; with BENCH_ROUNDS=N the best of N runs, the
others on the warm cache) and from it one epoch's estimate (seconds per sample x training samples); peak RSS of
the whole process, and its anonymous (not file-mapped) memory once the data is prepared; and the ratios to 1x.
Linear cost: the preparation and epoch ratios at most the data ratio (10, 100; below it where fixed costs weigh
at 1x), the training seconds for the fixed steps near 1. Flat memory: the RSS ratio near 1.

Environment: BENCH_SCALING_TASKS (default ner,translate,clm), BENCH_SCALES (default 1,10,100),
BENCH_SCALING_STEPS (default 20), BENCH_BATCH (default 8), BENCH_THREADS (torch threads, default 1),
BENCH_ROUNDS (default 1).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import peer_data  # noqa: E402
from peers import timed_process  # noqa: E402
from trainer_baseline import SEED, THREADS  # noqa: E402

TASKS = os.environ.get("BENCH_SCALING_TASKS", "ner,translate,clm").split(",")
SCALES = [int(s) for s in os.environ.get("BENCH_SCALES", "1,10,100").split(",")]
STEPS = int(os.environ.get("BENCH_SCALING_STEPS", "20"))
BATCH = int(os.environ.get("BENCH_BATCH", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
BASE = {"ner": 500, "translate": 500, "clm": 43}  # records at 1x (clm: the sample's 43 source files)
EVAL_RECORDS = 16
BLOCK = 128
TASK_OPTIONS = {"translate": ["--generation-max-length", "16", "--num-beams", "1"],
                "clm": ["--context-length", str(BLOCK)]}


def varied(task: str, row: dict[str, Any], repeat: int) -> dict[str, Any]:
    """A record of the sample, changed a little for its `repeat`-th copy (the first copy is the record itself)."""
    if repeat == 0:
        return row
    if task == "ner":  # one word gets the repeat's number: labels stay aligned
        words = list(row["words"])
        words[repeat % len(words)] += str(repeat)
        return {**row, "words": words}
    if task == "translate":
        pair = row["translation"]
        return {"translation": {"en": f"{pair['en']} ({repeat})", "ro": f"{pair['ro']} ({repeat})"}}
    if task == "clm":
        return {"content": f"# copy {repeat}\n{row['content']}"}
    raise ValueError(task)


def write_data(task: str, folder: Path, records: int) -> tuple[Path, Path]:
    """train.jsonl (`records` varied records) and valid.jsonl (the sample's first EVAL_RECORDS, repeated)."""
    rows = peer_data.sample_rows(task)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w", encoding="utf-8") as out:
        for index in range(records):
            out.write(json.dumps(varied(task, rows[index % len(rows)], index // len(rows))) + "\n")
    valid = [varied(task, rows[i % len(rows)], i // len(rows)) for i in range(EVAL_RECORDS)]
    (folder / "valid.jsonl").write_text("".join(json.dumps(row) + "\n" for row in valid), encoding="utf-8")
    return folder / "train.jsonl", folder / "valid.jsonl"


def nlpcli_args(task: str, model: Path, train: Path, valid: Path, out: Path) -> list[str]:
    args = [task, "--model", str(model), "--train-file", str(train), "--validation-file", str(valid),
            *peer_data.FILE_OPTIONS[task], *TASK_OPTIONS.get(task, []), "--max-steps", str(STEPS),
            "--batch-size", str(BATCH), "--eval-batch-size", str(BATCH), "--learning-rate", "1e-3",
            "--seed", str(SEED), "--logging-steps", str(STEPS), "--eval-strategy", "no", "--save-strategy", "no",
            "--output-dir", str(out), "--overwrite"]
    return args + (["--tokenizer", str(model)] if task == "clm" else [])


# ---------------------------------------------------------------- the measured process


def anonymous_rss_mb() -> float:
    """This process's resident memory that is not a mapped file (Linux `RssAnon`: the datasets cache's arrow files
    are memory-mapped, and the pages of them that were read count in RSS as file pages the system can drop); the
    peak RSS where the system does not say."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(timings_file: str, args: list[str]) -> None:
    """Run `nlpcli ARGS` in this process, timing the steps that read the data (`splits.read`: load and clean) and
    make its features (the task's `setup` and `prepare`); their seconds and the peak RSS after them go to
    `timings_file`."""
    from nlpcli.cli import main
    from nlpcli.runner import splits
    from nlpcli.tasks import get_task

    timings: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*positional: Any, **named: Any) -> Any:
            started = time.perf_counter()
            result = function(*positional, **named)
            timings[f"{name}_s"] = timings.get(f"{name}_s", 0.0) + time.perf_counter() - started
            timings["prepared_anon_mb"] = anonymous_rss_mb()
            return result
        return wrapper

    splits.read = timed("read", splits.read)  # run.py calls it through its module: the run's own call
    task_class = type(get_task(args[0]))
    task_class.setup = timed("features", task_class.setup)
    task_class.prepare = timed("features", task_class.prepare)
    sys.argv = ["nlpcli", *args]
    try:
        main()
    except SystemExit as done:
        if done.code:
            raise
    Path(timings_file).write_text(json.dumps(timings))


def measure(task: str, model: Path, train: Path, valid: Path, out: Path, cache: Path) -> dict[str, Any]:
    timings = out.parent / f"{out.name}-timings.json"
    command = ["env", f"HF_DATASETS_CACHE={cache}", sys.executable, str(Path(__file__).resolve()), "--child",
               str(timings), *nlpcli_args(task, model, train, valid, out)]
    wall, rss, _ = timed_process(command)
    info = json.loads((out / "run.json").read_text())
    seconds_per_sample = info["train_runtime_s"] / info["train_samples_seen"]
    return {**json.loads(timings.read_text()), "wall_s": wall, "rss_mb": rss, "train_s": info["train_runtime_s"],
            "samples": info["train_samples"], "epoch_s": seconds_per_sample * info["train_samples"],
            "cache": info.get("features_cache", {}).get("train", "?")}


# ---------------------------------------------------------------- the table


def row(task: str, label: str, records: int, m: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    prep = m["read_s"] + m["features_s"]
    ratios = ["", "", "", ""] if base is None else [
        f"{prep / (base['read_s'] + base['features_s']):.1f}", f"{m['train_s'] / base['train_s']:.2f}",
        f"{m['epoch_s'] / base['epoch_s']:.1f}", f"{m['rss_mb'] / base['rss_mb']:.2f}"]
    # anon MiB: RssAnon once the data is prepared (`anonymous_rss_mb`)
    return [task, label, f"{records:,}", f"{m['samples']:,}", m["cache"], f"{m['read_s']:.1f}",
            f"{m['features_s']:.1f}", f"{prep / records * 10_000:.2f}", f"{m['train_s']:.1f}", f"{m['epoch_s']:.0f}",
            f"{m['rss_mb']:.0f}", f"{m['prepared_anon_mb']:.0f}", *ratios]


HEADER = ["task", "scale", "records", "train samples", "features", "read s", "features s", "prep s/10k",
          f"{STEPS} steps s", "epoch s", "peak RSS MiB", "anon MiB", "prep ratio", "steps ratio", "epoch ratio",
          "RSS ratio"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(HEADER)]
    lines = ["".join(f"{h:>{w}}" for h, w in zip(HEADER, widths, strict=True))]
    lines += ["".join(f"{v:>{w}}" for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    rows: list[list[str]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        os.environ["HF_DATASETS_CACHE"] = str(scratch / "cache" / "start")  # this process's, not the user's
        for task in TASKS:
            cache = scratch / "cache" / task  # cold for the task's first run of each scale: new files
            runs, measured = {}, {}
            for scale in SCALES:
                train, valid = write_data(task, scratch / "data" / task / f"{scale}x", BASE[task] * scale)
                model = peer_data.save_start_model(task, train, valid, scratch / "model" / task)  # made at 1x
                runs[scale] = (model, train, valid)
                measured[scale] = measure(task, *runs[scale], scratch / "out" / f"{task}-{scale}x", cache)
                print(f"{task} {scale}x: {time.perf_counter() - started:.0f} s so far", file=sys.stderr, flush=True)
            # warm runs into other output folders, interleaved over the scales so that a neighbour's load falls on
            # all of them: the steps' seconds are the best of ROUNDS; the last scale's first is the 'again' row
            again = None
            for round_ in range(1, max(ROUNDS, 2)):
                for scale in SCALES if round_ < ROUNDS else SCALES[-1:]:
                    warm = measure(task, *runs[scale], scratch / "out" / f"{task}-{scale}x-{round_}", cache)
                    again = again or (warm if scale == SCALES[-1] else None)
                    if round_ < ROUNDS and warm["train_s"] < measured[scale]["train_s"]:
                        measured[scale].update(train_s=warm["train_s"], epoch_s=warm["epoch_s"])
            base = measured[SCALES[0]]
            rows += [row(task, f"{scale}x", BASE[task] * scale, measured[scale], None if scale == SCALES[0] else base)
                     for scale in SCALES]
            rows.append(row(task, f"{SCALES[-1]}x again", BASE[task] * SCALES[-1], again, base))
    print(f"\nScaling: {STEPS} training steps x batch {BATCH} at every scale, tiny preset weights, {THREADS} torch "
          f"thread(s), fresh process per run, cold datasets cache except 'again' (the last scale once more, another "
          f"output folder); steps' seconds best of {ROUNDS}; epoch s: an estimate from the steps' seconds per "
          f"sample; ratios to {SCALES[0]}x; {time.perf_counter() - started:.0f} s in all")
    print(table(rows))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
