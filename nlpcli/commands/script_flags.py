"""The transformers example scripts' flags (run_ner.py, run_mlm.py, run_clm.py, run_translation.py,
run_summarization.py, run_qa.py: `--do_train`, `--num_train_epochs`, `--model_name_or_path`, ...), answered with
the nlpcli option to use, or, where nlpcli has none, with what to do instead: one line, for someone who knows
the scripts."""

from __future__ import annotations

from nlpcli.config_fields import flag

# script flag (underscores) -> (nlpcli spellings to try, in order: the first this command has is the answer;
# what to say when it has none of them). A flag whose dashed spelling is an nlpcli option needs no entry
# (`--learning_rate` -> `--learning-rate`), nor a TrainingArguments field nlpcli has an option for
# (config_layers.TRAINER_ARG_OPTIONS: `--num_train_epochs` -> `--epochs`).
SCRIPT_FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    # TrainingArguments
    "do_train": ((), "nlpcli trains by default: leave it out (--eval-only evaluates without training)"),
    "do_eval": ((), "nlpcli evaluates by default, after each epoch (--eval-strategy, --eval-steps) and at the end: "
                    "leave it out"),
    "overwrite_output_dir": (("--overwrite",), ""),
    "per_gpu_train_batch_size": (("--batch-size",), ""),
    "per_gpu_eval_batch_size": (("--eval-batch-size",), ""),
    "evaluation_strategy": (("--eval-strategy",), ""),
    "fp16": (("--precision fp16",), ""),
    "bf16": (("--precision bf16",), ""),
    "resume_from_checkpoint": (("--resume PATH",), ""),
    "predict_with_generate": ((), "translate and summarize always score generated text: leave it out"),
    "generation_num_beams": (("--num-beams",), ""),
    "no_cuda": ((), "nlpcli picks the device: hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPU"),
    "use_cpu": ((), "nlpcli picks the device: hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPU"),
    "local_rank": ((), "launch with torchrun or accelerate launch: they give each process its rank"),
    # ModelArguments
    "model_name_or_path": (("--model",), ""),
    "config_name": ((), "the model's configuration is --model's own (clm builds it with random weights: "
                        "--from-scratch)"),
    "model_type": ((), "--model names the model and its configuration"),
    "tokenizer_name": (("--tokenizer",), "the tokenizer is --model's own (a folder with both can be --model)"),
    "cache_dir": ((), "set HF_HOME (or HF_HUB_CACHE, HF_DATASETS_CACHE) in the environment"),
    "model_revision": ((), "download that revision to a folder (hf download MODEL --revision R --local-dir DIR) "
                           "and give the folder as --model"),
    "token": ((), "log in with `hf auth login`, or set HF_TOKEN"),
    "use_auth_token": ((), "log in with `hf auth login`, or set HF_TOKEN"),
    "trust_remote_code": ((), "nlpcli runs the models transformers implements, never a model repository's code"),
    "use_fast_tokenizer": ((), "nlpcli always uses the fast tokenizer: leave it out"),
    "torch_dtype": (("--precision",), ""),
    # DataTrainingArguments
    "dataset_name": (("--dataset",), ""),
    "dataset_config_name": (("--dataset-config",), ""),
    "text_column_name": (("--text-column",), ""),
    "label_column_name": (("--label-column",), ""),
    "answer_column": (("--answers-column",), ""),
    "max_seq_length": (("--max-length", "--chunk-size", "--context-length"), ""),
    "block_size": (("--context-length", "--chunk-size"), ""),
    "max_source_length": (("--max-length",), ""),
    "val_max_target_length": (("--generation-max-length",), ""),
    "n_best_size": (("--n-best",), ""),
    "forced_bos_token": (("--target-lang-code",), ""),
    "max_predict_samples": ((), "--test-file and --do-predict predict the whole test split: give a shorter "
                                "--test-file"),
    "overwrite_cache": ((), "datasets recomputes the features when the data or the settings change; to drop its "
                            "cache, delete the data set's folder under HF_HOME"),
    "preprocessing_num_workers": (("--preprocessing-workers",), ""),
    "pad_to_max_length": ((), "batches are padded to their longest example: leave it out"),
    "ignore_pad_token_for_loss": ((), "padding never counts in the loss: leave it out"),
    "return_entity_level_metrics": ((), "metrics.json always has the per-entity figures (eval_PER_f1, ...)"),
    "task_name": ((), "the task is the command: nlpcli ner, nlpcli qa, ..."),
    "validation_split_percentage": ((), "without a validation split 10% of the training data is held out "
                                        "(--split-seed picks which)"),
    "line_by_line": ((), "mlm concatenates the texts and cuts them into --chunk-size chunks, as the course does"),
}


def _normalized(typed: str) -> str:
    return typed.lstrip("-").replace("-", "_").lower()


def script_flag_answer(typed: str, known: set[str], trains: bool) -> str | None:
    """The answer to `typed` (an option the command does not have) when it is a script's spelling of an nlpcli
    option (`known`: the command's options) or, on a task command (`trains`), a script flag nlpcli answers
    otherwise; None when it is neither (then the closest options are suggested)."""
    from nlpcli.config_layers import TRAINER_ARG_OPTIONS

    name = _normalized(typed)
    dashed = flag(name)
    if dashed in known:
        return f"{typed}: nlpcli spells it {dashed}."
    tries, otherwise = SCRIPT_FLAGS.get(name, ((), ""))
    if name in TRAINER_ARG_OPTIONS and not tries:
        tries = (flag(TRAINER_ARG_OPTIONS[name]),)
    usable = next((spelling for spelling in tries if spelling.split()[0] in known), None)
    if usable is not None:
        return f"{typed} is the transformers scripts' flag; nlpcli's is {usable}."
    if not trains:
        return None
    if otherwise:
        return f"{typed}: {otherwise}."
    return _trainer_field_answer(typed, name) if "_" in typed else None


def _trainer_field_answer(typed: str, name: str) -> str | None:
    """A TrainingArguments field nlpcli has no option for: pass it with --trainer-arg (or why not). Only asked
    of the scripts' underscore spellings (`--adam_beta1`): it imports transformers, seconds a typo need not wait."""
    from nlpcli.runner.settings import MANAGED, training_argument_names

    if name in MANAGED:
        return f"{typed}: nlpcli sets this TrainingArguments field itself ({MANAGED[name]})."
    if name in training_argument_names():
        return (f"{typed}: nlpcli has no option for this TrainingArguments field; pass it as --trainer-arg "
                f"{name}=VALUE (Trainer loop).")
    return None
