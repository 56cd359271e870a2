"""Drawing curves with matplotlib (the optional `plot` extra), headless: a Figure on the Agg canvas, never
pyplot, so no display and no global state. `write_curves` is what a training command has the runner call
once a run's files are saved."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from rich.markup import escape

from nlpcli import layout
from nlpcli.console import is_main_process, say, warn
from nlpcli.errors import UserError
from nlpcli.files import write_bytes_atomic
from nlpcli.metrics.kinds import BASELINES, EVAL_PREFIX, metric_kind
from nlpcli.reporting.runs import TRAIN_LOSS, Curves, read_history, read_json_object

EVAL_LOSS = "eval_loss"
INSTALL_HINT = "pip install 'nlpcli[plot]'"
COLUMNS = 3
PANEL_WIDTH, PANEL_HEIGHT, TITLE_HEIGHT = 5.0, 3.4, 0.7  # inches


def load_matplotlib() -> tuple[Any, Any] | None:
    """(Figure, FigureCanvasAgg), or None when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401  (first: a missing package fails here, not inside a submodule)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def not_installed(path: Path) -> str:
    return f"{Path(path).name} not drawn: matplotlib is not installed ({INSTALL_HINT})."


def panels(runs: list[tuple[str, Curves]]) -> list[str]:
    """The quantities to draw, one subplot each: the loss (training and evaluation together) first, then
    every evaluation metric in the order the runs first logged it. A baseline's figures (lead-3) get no panel of
    their own: they are a reference line on the panel of the metric they score (`baselines`)."""
    order: list[str] = []
    for _, curves in runs:
        for key in curves:
            if metric_kind(key).baseline:
                continue
            name = TRAIN_LOSS if key in (TRAIN_LOSS, EVAL_LOSS) else key
            if name not in order:
                order.append(name)
    return sorted(order, key=lambda name: name != TRAIN_LOSS)


def baselines(curves: Curves, name: str) -> dict[str, float]:
    """The baselines scored on metric `name` in these curves, by their display name: their latest value
    (`{"lead-3": 15.4}` on the eval_rouge1 panel)."""
    found = {}
    for key, points in curves.items():
        kind = metric_kind(key)
        if kind.baseline and kind.baseline_of == name and points:
            found[BASELINES[kind.baseline]] = points[-1][1]
    return found


def draw_panel(axes: Any, name: str, runs: list[tuple[str, Curves]], colors: list[str]) -> None:
    """One subplot: quantity `name` of every run (the loss panel: training and evaluation loss), with each run's
    baselines on it as dotted horizontal lines."""
    several = len(runs) > 1
    for (label, curves), color in zip(runs, colors, strict=True):
        prefix = f"{label} " if several else ""
        if name == TRAIN_LOSS:
            if TRAIN_LOSS in curves:
                steps, values = zip(*curves[TRAIN_LOSS], strict=True)
                axes.plot(steps, values, color=color, linewidth=1.5, label=f"{prefix}train",
                          marker="o" if len(steps) == 1 else None)  # a single logged loss shows as a dot
            if EVAL_LOSS in curves:
                steps, values = zip(*curves[EVAL_LOSS], strict=True)
                axes.plot(steps, values, color=color, linestyle="--", marker="o", markersize=4,
                          label=f"{prefix}eval")
        elif name in curves:
            steps, values = zip(*curves[name], strict=True)
            axes.plot(steps, values, color=color, marker="o", markersize=4, label=label if several else "model")
        for baseline, value in baselines(curves, name).items():
            axes.axhline(value, color=color, linestyle=":", linewidth=1.2, label=f"{prefix}{baseline}")
    axes.set_title(name.removeprefix(EVAL_PREFIX) if name != TRAIN_LOSS else "loss")
    axes.set_xlabel("step")
    axes.xaxis.get_major_locator().set_params(integer=True)  # steps are whole numbers
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0] and (several or name == TRAIN_LOSS or len(axes.get_lines()) > 1):
        axes.legend(fontsize="small")


def draw_curves(runs: list[tuple[str, Curves]], path: Path, title: str) -> Path | None:
    """Draw each run's curves (one line per run per quantity) into the PNG `path`, written atomically.
    Returns None, drawing nothing, when matplotlib is not installed (the caller says so: `not_installed`)."""
    loaded = load_matplotlib()
    if loaded is None:
        return None
    figure_class, canvas_class = loaded
    names = panels(runs)
    columns = min(COLUMNS, len(names))
    rows = math.ceil(len(names) / columns)
    width, height = PANEL_WIDTH * columns, PANEL_HEIGHT * rows + TITLE_HEIGHT
    figure = figure_class(figsize=(width, height), dpi=100)
    canvas_class(figure)
    # fixed margins in inches (a constrained layout would cost as much as the drawing itself)
    figure.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.55 / height,
                           top=1 - TITLE_HEIGHT / height, wspace=0.2, hspace=0.35)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for index, name in enumerate(names):
        draw_panel(figure.add_subplot(rows, columns, index + 1), name, runs, colors)
    figure.suptitle(title, y=1 - 0.12 / height, verticalalignment="top")
    image = io.BytesIO()
    figure.savefig(image, format="png")
    write_bytes_atomic(Path(path), image.getvalue())
    return Path(path)


def write_curves(run_dir: Path) -> Path | None:
    """`<run_dir>/curves.png` from the run's log_history.jsonl: training loss and each evaluation metric
    against the step. None (and nothing written) on other processes than the main one, when the history is
    missing or empty, or when matplotlib is not installed (with a one-line note)."""
    run_dir = Path(run_dir)
    if not is_main_process():
        return None
    try:
        curves = read_history(run_dir)
        info = read_json_object(run_dir / layout.RUN_INFO) or {}
    except UserError as err:  # the run itself went well: say why there is no chart, do not fail it
        warn(f"{layout.CURVES} not drawn: {err.message}")
        return None
    if not curves:
        return None
    facts = [str(info[key]) for key in ("task", "model") if key in info]
    if "loop" in info:
        facts.append(f"{info['loop']} loop")
    title = f"{run_dir.name} ({', '.join(facts)})" if facts else run_dir.name
    try:
        drawn = draw_curves([(run_dir.name, curves)], run_dir / layout.CURVES, title=title)
    except OSError as err:  # e.g. a full disk: the model and metrics are saved, the chart is not
        warn(f"{run_dir / layout.CURVES} not written: {err.strerror or err}")
        return None
    if drawn is None:
        say(escape(not_installed(run_dir / layout.CURVES)))
    return drawn
