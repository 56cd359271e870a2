"""curves.png and `nlpcli report`, on hand-written run folders in the format the runner writes
(log_history.jsonl lines, metrics.json, run.json)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import read_json, run_cli
from nlpcli.layout import CURVES as CURVES_FILE
from nlpcli.reporting.plot import panels, write_curves
from nlpcli.reporting.runs import parse_history, read_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def history_lines(steps: int = 20, eval_every: int = 5, start_loss: float = 2.0) -> list[dict]:
    lines: list[dict] = []
    for step in range(1, steps + 1):
        if step % 2 == 0:
            lines.append({"step": step, "epoch": step / 10, "loss": start_loss / step, "learning_rate": 1e-3,
                          "grad_norm": None if step == 2 else 1.5, "samples_per_second": 40.0})
        if step % eval_every == 0:
            lines.append({"step": step, "epoch": step / 10, "eval_loss": start_loss / (step + 1),
                          "eval_overall_f1": step / steps, "eval_overall_accuracy": 0.5 + step / (4 * steps),
                          "eval_LOC_f1": 0.1, "eval_LOC_number": 15, "eval_runtime": 0.3,
                          "eval_samples_per_second": 33.3, "eval_steps_per_second": 4.0})
    lines.append({"train_loss": 0.4, "train_runtime": 5.0, "step": steps, "epoch": steps / 10})
    return lines


def make_run(folder: Path, metrics: dict | None, history: list[dict] | None, info: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if history is not None:
        (folder / "log_history.jsonl").write_text("".join(json.dumps(line) + "\n" for line in history))
    if info is not None:
        (folder / "run.json").write_text(json.dumps(info))
    return folder


def assert_png(path: Path, min_bytes: int = 20_000) -> tuple[int, int]:
    """A PNG matplotlib reads back: returns its (height, width) in pixels."""
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > min_bytes
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.std() > 0.05  # drawn lines and text, not a blank canvas
    return pixels.shape[0], pixels.shape[1]


def test_history_gives_the_training_loss_and_each_eval_metric_against_the_step(tmp_path):
    run = make_run(tmp_path / "run", None, history_lines())
    curves = read_history(run)
    assert curves["loss"] == [(s, pytest.approx(2.0 / s)) for s in range(2, 21, 2)]
    assert [s for s, _ in curves["eval_overall_f1"]] == [5, 10, 15, 20]
    assert curves["eval_overall_f1"][-1] == (20, 1.0)
    # timings, counts and per-group breakdowns are not curves; the run summary line is no training log
    assert set(curves) == {"loss", "eval_loss", "eval_overall_f1", "eval_overall_accuracy"}
    assert panels([("run", curves)]) == ["loss", "eval_overall_f1", "eval_overall_accuracy"]


def test_history_keeps_the_last_value_of_a_step_logged_again_after_a_resume(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in (2, 4, 6)] + [json.dumps({"step": 6, "loss": 0.5})]
    curves = parse_history([*lines, '{"step": 8, "lo'], tmp_path / "log_history.jsonl")  # last line cut short
    assert curves == {"loss": [(2, 1.0), (4, 1.0), (6, 0.5)]}


def test_a_broken_history_line_is_refused_with_its_number(tmp_path):
    run = make_run(tmp_path / "run", {"eval_loss": 1.0}, None)
    (run / "log_history.jsonl").write_text('{"step": 1, "loss": 1.0}\nnot json\n{"step": 2, "loss": 0.9}\n')
    result = run_cli("report", run)
    assert result.exit_code == 2
    assert "log_history.jsonl, line 2: not JSON" in result.output


def test_write_curves_draws_a_png_matplotlib_reads_back(tmp_path):
    run = make_run(tmp_path / "run", None, history_lines())
    path = write_curves(run)
    assert path == run / CURVES_FILE
    height, width = assert_png(path)
    assert width == 1500 and height > 300  # three subplots side by side, 5 inches each at 100 dpi
    assert not list(run.glob(".curves.png.*"))  # written through a temporary file, none left behind


def test_write_curves_without_matplotlib_skips_with_a_note(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "run", None, history_lines())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert write_curves(run) is None
    assert not (run / CURVES_FILE).exists()
    said = capsys.readouterr().out
    assert "matplotlib is not installed" in said and "nlpcli[plot]" in said and len(said.strip().splitlines()) == 1


def test_write_curves_without_a_history_draws_nothing(tmp_path):
    run = make_run(tmp_path / "run", {"eval_loss": 1.0}, None)
    assert write_curves(run) is None and not (run / CURVES_FILE).exists()


def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    first = make_run(tmp_path / "lr-1e-3", {"eval_loss": 0.25, "eval_overall_f1": 0.8125, "train_loss": 0.5},
                     history_lines(), {"task": "ner", "model": "tiny", "loop": "trainer", "wall_time_s": 12.5})
    second = make_run(tmp_path / "lr-5e-3", {"eval_loss": 0.375, "eval_overall_f1": 0.6875},
                      history_lines(start_loss=3.0), {"task": "ner", "model": "tiny", "loop": "accelerate"})
    return first, second


def test_report_shows_the_metrics_of_both_runs_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = two_runs(tmp_path)
    result = run_cli("report", first, second)
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output  # not a terminal: plain text
    lines = result.output.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["lr-1e-3", "lr-5e-3"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.strip()}
    assert rows["eval_overall_f1"] == ["0.8125", "0.6875"]
    assert rows["eval_loss"] == ["0.2500", "0.3750"]
    assert rows["loop"] == ["trainer", "accelerate"]
    assert rows["train_loss"] == ["0.5000"]  # only the first run has it
    assert_png(tmp_path / "comparison.png")  # the default chart, in the current folder
    assert "curves: comparison.png" in result.output


def test_report_output_draws_one_chart_and_json_lists_the_runs(tmp_path):
    first, second = two_runs(tmp_path)
    chart = tmp_path / "charts" / "lr.png"
    result = run_cli("report", first, second, "--output", chart, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["label"] for r in report["runs"]] == ["lr-1e-3", "lr-5e-3"]
    assert report["runs"][1]["metrics"] == read_json(second / "metrics.json")
    assert report["chart"] == str(chart)
    height, width = assert_png(chart)
    assert width == 1500


def test_report_of_a_run_without_history_is_a_table_with_a_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path / "old", {"eval_loss": 0.5}, None)
    result = run_cli("report", run)
    assert result.exit_code == 0, result.output
    assert "no log_history.jsonl" in result.output and "0.5000" in result.output
    assert not (tmp_path / "comparison.png").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "bad-metrics", "file"])
def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, case):
    good = make_run(tmp_path / "good", {"eval_loss": 0.5}, history_lines())
    bad = tmp_path / case
    if case == "file":
        bad.write_text("{}")
    elif case != "missing":
        bad.mkdir()
    if case == "bad-metrics":
        (bad / "metrics.json").write_text("{not json")
    result = run_cli("report", good, bad, "--output", tmp_path / "chart.png")
    assert result.exit_code == 2
    assert str(bad) in result.output and "Traceback" not in result.output
    assert not (tmp_path / "chart.png").exists()


def test_report_output_without_matplotlib_exits_2_with_the_pip_command(tmp_path, monkeypatch):
    first, second = two_runs(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run_cli("report", first, second, "--output", tmp_path / "chart.png")
    assert result.exit_code == 2
    assert "pip install 'nlpcli[plot]'" in result.output


@pytest.mark.e2e
def test_report_reads_a_real_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    trained = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "4", "--learning-rate",
                      "5e-3", "--max-steps", "6", "--logging-steps", "2", "--output-dir", out)
    assert trained.exit_code == 0, trained.output
    curves = read_history(out)  # steps 2, 4, 6 logged; an evaluation at the end of each 3-step epoch
    assert [step for step, _ in curves["loss"]] == [2, 4, 6]
    assert [step for step, _ in curves["eval_overall_f1"]] == [3, 6]
    assert_png(out / CURVES_FILE)  # drawn at the end of the run
    result = run_cli("report", out, "--json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    assert run["metrics"] == read_json(out / "metrics.json")
    assert run["run"]["task"] == "ner" and run["run"]["loop"] == "trainer" and run["history"] is True


@pytest.mark.parametrize("output", ["chart.jpg", "folder"])
def test_report_refuses_an_output_that_is_not_a_png_path(tmp_path, output):
    first, second = two_runs(tmp_path)
    (tmp_path / "folder").mkdir()
    result = run_cli("report", first, second, "--output", tmp_path / output)
    assert result.exit_code == 2
    assert f"--output {tmp_path / output}: expected the path of a .png file" in result.output
    assert not (tmp_path / "chart.jpg").exists()


def test_report_of_a_run_still_going_draws_its_curves_with_an_empty_column(tmp_path):
    done = make_run(tmp_path / "done", {"eval_loss": 0.5}, history_lines())
    going = make_run(tmp_path / "going", None, history_lines(steps=10))
    with (going / "log_history.jsonl").open("a") as history:
        history.write('{"step": 12, "epoch": 1.2, "lo')  # the line the run is writing right now
    result = run_cli("report", done, going, "--output", tmp_path / "now.png")
    assert result.exit_code == 0, result.output
    assert "going: no metrics.json (still running?)" in result.output
    assert re.search(r"^eval_loss\s+0\.5000$", result.output, re.MULTILINE)  # nothing under the running one
    assert_png(tmp_path / "now.png")


def test_the_cli_table_and_the_report_agree_on_per_group_metrics(tmp_path):
    """A key is a per-group row in the CLI's table exactly when `nlpcli report` draws no curve of its own for
    it (entity types may hold underscores: WORK_OF_ART)."""
    from nlpcli.commands.tables import metrics_tables
    from nlpcli.reporting.runs import plotted

    keys = ["eval_loss", "eval_overall_f1", "eval_overall_accuracy", "eval_PER_f1", "eval_PER_number",
            "eval_WORK_OF_ART_f1", "eval_WORK_OF_ART_precision", "eval_exact_match", "eval_f1",
            "eval_HasAns_exact_match", "eval_HasAns_f1", "eval_rougeL", "eval_lead3_rouge1", "eval_perplexity"]
    overall, grouped = metrics_tables(dict.fromkeys(keys, 0.5))
    in_overall = set(overall.columns[0]._cells)
    assert set(grouped.columns[0]._cells) == {"PER", "WORK_OF_ART", "HasAns"}
    per_group = set(keys) - in_overall
    assert per_group == {"eval_PER_f1", "eval_PER_number", "eval_WORK_OF_ART_f1", "eval_WORK_OF_ART_precision",
                         "eval_HasAns_exact_match", "eval_HasAns_f1"}
    assert {key for key in keys if not plotted(key)} == per_group
    history = [{"step": 1, **dict.fromkeys(keys, 0.5)}]
    curves = parse_history([json.dumps(line) for line in history], tmp_path / "log_history.jsonl")
    assert set(curves) == in_overall


def ner_run(folder: Path, settings: dict, resumed_to: int | None = None, precision: str = "fp32") -> Path:
    """A run folder as a tiny ner run writes it: nlpcli_config.yaml (from the resolved configuration, with a
    resume's changes when `resumed_to`), run.json, metrics.json and a history."""
    from nlpcli.config import config_yaml
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks.ner import NerConfig

    cfg = resolve_config(NerConfig, "ner", cli_values={"model": "tiny", "dataset": "sample",
                                                       "output_dir": str(folder), **settings})
    record: dict = {"world_size": 1}
    if resumed_to is not None:
        record["resumes"] = [{"at": "2026-01-01T00:00:00", "checkpoint": "checkpoint-30", "step": 30,
                              "changed": {"max_steps": [cfg.max_steps, resumed_to]}}]
    run = make_run(folder, {"eval_loss": 0.5, "eval_overall_f1": 0.75}, history_lines(),
                   {"task": "ner", "model": "tiny", "loop": cfg.loop, "precision": precision, "world_size": 1})
    (run / "nlpcli_config.yaml").write_text(config_yaml(cfg, "ner", record))
    return run


def three_ner_runs(tmp_path: Path) -> list[Path]:
    """30 steps; 30 then resumed to 40; 30 steps at another learning rate (the issue's three runs)."""
    return [ner_run(tmp_path / "ner-a", {"max_steps": 30}), ner_run(tmp_path / "ner-b", {"max_steps": 30}, 40),
            ner_run(tmp_path / "ner-c", {"max_steps": 30, "learning_rate": 1e-3})]


def test_report_shows_the_settings_that_differ_between_the_runs(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr("nlpcli.reporting.compare.draw_curves", lambda runs, path, title: drawn.append(runs) or path)
    runs = three_ner_runs(tmp_path)
    result = run_cli("report", *runs, "--output", tmp_path / "chart.png")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:] if line.strip()}
    assert rows["max_steps"] == ["30", "40", "30"]  # the resume's value, not the first run's
    assert rows["learning_rate"] == ["0.005", "0.005", "0.001"]
    assert rows["resumes"] == ["0", "1", "0"]
    assert not {"batch_size", "precision", "output_dir", "seed", "dataset"} & set(rows)  # the same in every run
    keys = list(rows)
    assert keys.index("loop") < keys.index("max_steps") < keys.index("eval_loss")  # between the facts and metrics
    (legend,) = drawn
    assert [label for label, _ in legend] == ["ner-a (max_steps=30, learning_rate=0.005, resumes=0)",
                                              "ner-b (max_steps=40, learning_rate=0.005, resumes=1)",
                                              "ner-c (max_steps=30, learning_rate=0.001, resumes=0)"]
    report = json.loads(run_cli("report", *runs, "--output", tmp_path / "chart.png", "--json").output)
    assert report["differing_settings"] == ["max_steps", "learning_rate", "resumes"]
    assert report["runs"][1]["settings"] == {"max_steps": 40, "learning_rate": 0.005, "resumes": 1}


def test_report_settings_say_what_ran_and_stay_out_of_a_single_run(tmp_path, monkeypatch):
    from nlpcli.reporting.compare import differing_settings, legend_labels
    from nlpcli.reporting.runs import read_run

    cpu = read_run(ner_run(tmp_path / "cpu", {"max_steps": 30, "precision": "auto"}))
    gpu = read_run(ner_run(tmp_path / "gpu", {"max_steps": 30, "precision": "auto"}, precision="bf16"))
    assert cpu.settings["precision"] == "fp32"  # what run.json says ran, not the configuration's auto
    assert differing_settings([cpu, gpu]) == ["precision"]
    assert differing_settings([cpu]) == [] and legend_labels([cpu]) == ["cpu"]
    old = make_run(tmp_path / "old", {"eval_loss": 0.5}, None)  # no nlpcli_config.yaml: nothing to compare
    assert differing_settings([cpu, read_run(old)]) == []


def test_lead3_is_a_reference_line_on_its_rouge_panel_not_a_panel_of_its_own():
    from matplotlib.figure import Figure

    from nlpcli.reporting.plot import draw_panel

    steps = [(10, 1.0), (20, 2.0)]
    curves = {"loss": steps, "eval_loss": steps, **{f"eval_{key}": steps for key in ("rouge1", "rouge2", "gen_len")},
              **{f"eval_lead3_{key}": [(0, 15.4), (10, 15.4), (20, 15.4)] for key in ("rouge1", "rouge2")}}
    assert panels([("run", curves)]) == ["loss", "eval_rouge1", "eval_rouge2", "eval_gen_len"]
    axes = Figure().add_subplot()
    draw_panel(axes, "eval_rouge1", [("run", curves)], ["C0"])
    model, lead3 = axes.get_lines()
    assert list(model.get_ydata()) == [1.0, 2.0]
    assert list(lead3.get_ydata()) == [15.4, 15.4] and lead3.get_linestyle() == ":"  # a horizontal line
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["model", "lead-3"]
    axes = Figure().add_subplot()
    draw_panel(axes, "eval_gen_len", [("run", curves)], ["C0"])
    assert len(axes.get_lines()) == 1  # no baseline scores the generated length
