"""What the commands print as tables: a run's metrics (overall, and per group), and predictions (boxed on a
terminal, plain text in a log or a pipe: `console.show_table`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from nlpcli.console import console, is_main_process, say, show_table
from nlpcli.metrics.kinds import metric_kind


def metrics_tables(metrics: dict[str, Any]) -> list[Table]:
    """One table of overall metrics, and one of per-group metrics (per entity, HasAns/NoAns, ...)."""
    overall = Table("metric", "value", title="metrics", title_justify="left")
    groups: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        kind = metric_kind(key)
        if kind.per_group and kind.split == "eval" and not kind.before:
            groups.setdefault(str(kind.group), {})[str(kind.measure)] = value
        else:
            overall.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    tables = [overall]
    if groups:
        kinds = sorted({k for values in groups.values() for k in values})
        grouped = Table("group", *kinds, title="per group", title_justify="left")
        for group, values in sorted(groups.items()):
            grouped.add_row(group, *(cell(values.get(k)) for k in kinds))
        tables.append(grouped)
    return tables


def cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def show_result(result: dict[str, Any]) -> None:
    if not is_main_process():
        return
    for table in metrics_tables(result["metrics"]):
        show_table(table)
    console.print(f"saved to [bold]{result['output_dir']}[/bold]")


def print_predictions(table: Any) -> None:
    rich_table = Table(*table.columns, title=table.title or None, title_justify="left")
    for row in table.rows:
        rich_table.add_row(*(cell(row.get(c)) for c in table.columns))
    if table.rows:
        show_table(rich_table)
    else:
        say("[dim]no predictions[/dim]")
