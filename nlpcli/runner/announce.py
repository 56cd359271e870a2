"""The run's first words: nlpcli_config.yaml written into the output folder, and the header lines (what will run,
where, and where each setting came from), from the run report's header."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from nlpcli import layout
from nlpcli.config import RunConfig, origin_lines, save_config, save_settings
from nlpcli.console import say
from nlpcli.runner import continuity
from nlpcli.runner.context import RunContext
from nlpcli.runner.report import training_lines
from nlpcli.sources import data


def announce(task_name: str, cfg: RunConfig, state: Any, ctx: RunContext) -> None:
    """nlpcli_config.yaml in the output folder (`cfg`: the configuration as resolved, which a `--config` of that
    file repeats), and the run's first lines (what the run report says will run, and where each value of
    `ctx.cfg` came from)."""
    if state.is_main_process:
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        resumed = continuity.settings_to_save(cfg)  # the first run's settings and every resume's changes
        if resumed is not None:
            save_settings(resumed, ctx.output_dir / layout.RUN_CONFIG)
        else:
            save_config(cfg, ctx.output_dir / layout.RUN_CONFIG, task_name,
                        continuity.first_run_record(cfg, state.num_processes))
    say(
        f"[bold]{task_name}[/bold] model={cfg.model} loop={cfg.loop} processes={state.num_processes} "
        f"precision={ctx.report.header['precision']}{_attention_shown(ctx)}{_threads_shown(ctx)} "
        f"train={data.count(ctx.train_features) if not cfg.streaming else 'streamed'} eval={len(ctx.eval_features)} "
        f"-> {ctx.output_dir}"
    )
    for line in [*training_lines(ctx.report.header), *origin_lines(ctx.cfg)]:  # then where each value came from
        say(f"  [dim]{escape(line)}[/dim]")


def _attention_shown(ctx: RunContext) -> str:
    """` attention=NAME` when --attn-implementation chose it (what the model runs, as transformers set it)."""
    return f" attention={ctx.report.header['attn_implementation']}" if ctx.cfg.attn_implementation else ""


def _threads_shown(ctx: RunContext) -> str:
    """` threads=N` on a CPU (a GPU run's speed does not hang on it)."""
    threads = ctx.report.header.get("threads")
    return f" threads={threads['count']}" if threads and ctx.report.header["device"] == "cpu" else ""
