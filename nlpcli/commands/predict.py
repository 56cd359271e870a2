"""`nlpcli predict`: a saved model on new input, from arguments or a --file, as a table or JSON lines; and the
command line that asks a prediction (the demo prints it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from nlpcli.commands.exits import reports_user_errors
from nlpcli.commands.tables import print_predictions
from nlpcli.config import MAX_SEED
from nlpcli.console import err_console
from nlpcli.errors import UserError
from nlpcli.tasks import TASK_MODULES, task_class

INPUT, SETTINGS, OUTPUT = "Input", "Prediction", "Output"  # the panels of `nlpcli predict --help`


@reports_user_errors
def predict(
    task: str = typer.Argument(..., help=f"Task of the saved model: {', '.join(TASK_MODULES)}."),
    model: str = typer.Argument(
        ..., help="A run's output folder, any folder written by save_pretrained, or a hub model id."),
    texts: list[str] | None = typer.Argument(None, metavar="TEXT", help="Input text(s)."),
    question: str | None = typer.Option(None, help="Question (qa).", rich_help_panel=INPUT),
    context: str | None = typer.Option(None, help="Context passage (qa).", rich_help_panel=INPUT),
    input_file: str | None = typer.Option(
        None, "--file", metavar="FILE", rich_help_panel=INPUT,
        help="Inputs, one per line: a text file, a .jsonl file (see --text-column; qa: question and context), "
        "or - for stdin.",
    ),
    text_column: str = typer.Option("text", help="Key of the input text in a .jsonl --file.", rich_help_panel=INPUT),
    text_pair: list[str] | None = typer.Option(
        None, "--text-pair", rich_help_panel=INPUT,
        help="The second text of a pair, once per text argument, in order (classify models trained on pairs).",
    ),
    text_pair_column: str | None = typer.Option(
        None, help="Key of the second text of a pair in a .jsonl input file (classify).", rich_help_panel=INPUT),
    skip_bad_records: bool = typer.Option(
        False, "--skip-bad-records", rich_help_panel=INPUT,
        help="Skip (and count, on stderr) bad input lines instead of stopping.",
    ),
    top_k: int | None = typer.Option(
        None, help="mlm: candidates per mask [5]. clm, when sampling: draw from the K most likely tokens only "
        "[50]; 0: no limit. classify: labels shown with their scores [5].", rich_help_panel=SETTINGS,
    ),
    max_new_tokens: int = typer.Option(50, help="Tokens to generate (clm).", rich_help_panel=SETTINGS),
    temperature: float = typer.Option(0.0, help="Sampling temperature; 0: greedy (clm).", rich_help_panel=SETTINGS),
    top_p: float = typer.Option(
        1.0, help="Nucleus sampling: smallest token set of this probability (clm).", rich_help_panel=SETTINGS
    ),
    num_return_sequences: int = typer.Option(
        1, help="Completions per prompt; needs --temperature > 0 (clm).", rich_help_panel=SETTINGS
    ),
    seed: int | None = typer.Option(
        None, help="Seed for sampling, for reproducible completions (clm).", rich_help_panel=SETTINGS
    ),
    batch_size: int = typer.Option(16, help="Inputs per forward pass (ner, mlm, qa).", rich_help_panel=SETTINGS),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON instead of a table: one object per input.", rich_help_panel=OUTPUT
    ),
    output: Path | None = typer.Option(
        None, metavar="FILE", help="Write JSON lines here instead of stdout (its folder must exist).",
        rich_help_panel=OUTPUT
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file.",
                                   rich_help_panel=OUTPUT),
) -> None:
    """Run a saved model on new input: a run's folder, any save_pretrained folder, or a hub model id.

    The task's pipeline (generation for seq2seq tasks), with the settings the run saved, else the task's defaults.

    With --file: every line is an input, and the output is one JSON object per input, in input order."""
    from nlpcli.predict_io import Inputs, read_inputs, write_json_lines
    from nlpcli.run_folder import check_model_task
    from nlpcli.sources.models import checkpoint
    from nlpcli.tasks import get_task
    from nlpcli.tasks.base import PredictRequest

    if task not in TASK_MODULES:
        raise UserError(f"Unknown task '{task}'. Known: {', '.join(TASK_MODULES)}.")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}.")
    if seed is not None and not 0 <= seed <= MAX_SEED:  # else a traceback from NumPy's seeding
        raise UserError(f"--seed must be at least 0 and at most {MAX_SEED}, got {seed}.")
    for number, text in enumerate(texts or [], start=1):
        if not text.strip():  # as a blank --file line is
            raise UserError(f"text {number}: blank; every input must hold text.")
    given = [("--question", question), ("--context", context), *(("--text-pair", pair) for pair in text_pair or [])]
    for name, value in given:
        if value is not None and not value.strip():
            raise UserError(f"{name}: blank; give the text.")
    if output is not None:
        check_output_file(output, overwrite)
    chosen = get_task(task)
    if input_file and (texts or question or context):
        raise UserError("Give the input as arguments (or --question/--context) or as --file, not both.")
    if chosen.predict_fields and texts:
        raise UserError(f"predict {task} reads {', '.join(chosen.predict_fields)}, not text arguments.",
                        hint=" ".join(f'--{name} "..."' for name in chosen.predict_fields) + ", or --file.")
    check_pairs(chosen, texts or [], text_pair or [], text_pair_column, input_file)
    saved = checkpoint(model)  # a folder (a run's, or any save_pretrained one) or a hub id
    check_model_task(model, task, {name: task_class(name).model_class for name in TASK_MODULES}, saved.settings,
                     saved.architectures)
    fields = {name: name for name in chosen.predict_fields} or {"text": text_column}
    if text_pair_column:
        fields["text_pair"] = text_pair_column
    if input_file:
        inputs = read_inputs(input_file, fields, skip_bad_records)
    else:
        given = list(texts or [])
        inputs = Inputs(records=[{"text": t} for t in given], where=[f"text {i}" for i in range(1, len(given) + 1)])
    pairs = [r["text_pair"] for r in inputs.records if "text_pair" in r] or list(text_pair or [])
    request = PredictRequest(texts=[r["text"] for r in inputs.records if "text" in r], text_pairs=pairs,
                             question=question, context=context, top_k=top_k, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p, num_return_sequences=num_return_sequences, seed=seed,
                             records=inputs.records if chosen.predict_fields else [], batch_size=batch_size,
                             where=inputs.where, skip_bad_records=skip_bad_records, skipped=list(inputs.skipped))
    from nlpcli.runner.run import quiet_libraries

    quiet_libraries()
    table = chosen.predict(saved.where, request)
    if request.skipped:
        total = len(inputs.records) + len(inputs.skipped)
        shown = ", ".join(request.skipped[:10]) + (", ..." if len(request.skipped) > 10 else "")
        err_console.print(f"[yellow]skipped {len(request.skipped)} bad input(s) of {total}[/yellow]: {escape(shown)}",
                          soft_wrap=True)
    if input_file or output:
        write_json_lines(table.per_input, output)
        return
    if as_json:
        print(json.dumps(table.per_input, indent=2, ensure_ascii=False))
        return
    print_predictions(table)


def check_pairs(task: Any, texts: list[str], text_pairs: list[str], pair_column: str | None,
                input_file: str | None) -> None:
    """--text-pair (one per text argument) and --text-pair-column (with --file), for a task that reads pairs."""
    if not (text_pairs or pair_column):
        return
    if not task.reads_text_pairs:
        raise UserError(f"--text-pair / --text-pair-column: predict {task.name} reads no text pairs.")
    if pair_column and not input_file:
        raise UserError("--text-pair-column names a key of the --file lines; give --file, or --text-pair TEXT.")
    if text_pairs and input_file:
        raise UserError("With --file, each line holds its pair: name its key with --text-pair-column.")
    if text_pairs and len(text_pairs) != len(texts):
        raise UserError(f"{len(texts)} text(s) and {len(text_pairs)} --text-pair: give one pair per text.")


def check_output_file(output: Path, overwrite: bool) -> None:
    """Refuse, before any model loads, an --output that is a folder, whose folder does not exist (nothing is
    created for a typo), or that exists without --overwrite."""
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; give a file name.")
    parent = output.parent
    if not parent.is_dir():
        raise UserError(f"--output {output}: the folder {parent} does not exist.", hint="Create it first.")
    if output.exists() and not overwrite:
        raise UserError(f"--output {output} exists.", hint="Pass --overwrite to replace it, or choose another file.")


def predict_command(task: str, folder: Path, request: Any) -> str:
    """The `nlpcli predict` command line that asks `request`, quoted as a shell would need it."""
    import shlex

    return shlex.join(["nlpcli", "predict", task, str(folder), *request.command_line()])
