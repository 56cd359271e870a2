"""Which panel of `nlpcli TASK --help` each option is listed in: one table for the shared config keys (a test
checks that it names every one), and the task panel for the keys a task adds. Nothing here changes what an
option does."""

from __future__ import annotations

DATA, MODEL, TRAINING, EVALUATION, OUTPUT, TASK, CONFIG = (
    "Data", "Model", "Training", "Evaluation", "Output", "Task", "Config files")
ORDER = (TASK, DATA, MODEL, TRAINING, EVALUATION, OUTPUT, CONFIG)  # the order panels are shown in

PANELS = {
    **dict.fromkeys(("dataset", "dataset_config", "dataset_revision", "data_dir", "validation_dataset",
                     "train_file", "validation_file", "streaming", "field", "text_column", "label_column",
                     "filter", "split_seed", "max_train_samples", "max_eval_samples", "preprocessing_workers"), DATA),
    **dict.fromkeys(("model", "max_length", "preset_vocab_size"), MODEL),
    **dict.fromkeys(("loop", "epochs", "max_steps", "learning_rate", "weight_decay", "warmup_ratio",
                     "warmup_steps", "lr_scheduler", "batch_size", "gradient_accumulation_steps", "max_grad_norm",
                     "seed", "precision", "logging_steps", "optim", "gradient_checkpointing", "torch_compile",
                     "attn_implementation",
                     "group_by_length", "length_split", "threads", "trainer_args", "overfit_batch"), TRAINING),
    **dict.fromkeys(("eval_only", "eval_before", "eval_strategy", "eval_steps", "eval_batch_size",
                     "load_best_model_at_end", "metric_for_best_model", "greater_is_better",
                     "early_stopping_patience", "test_file", "do_predict"), EVALUATION),
    **dict.fromkeys(("output_dir", "resume", "overwrite", "save_strategy", "save_total_limit", "save_steps",
                     "report_to", "push_to_hub", "hub_model_id", "hub_private", "hub_strategy"), OUTPUT),
    **dict.fromkeys(("config_file", "set_values", "print_config"), CONFIG),
}


def panel_for(name: str, task_specific: bool = False) -> str:
    """The panel of config key `name`; keys a task adds to the shared ones go to the task panel."""
    return TASK if task_specific else PANELS.get(name, TRAINING)


def panel_title(panel: str, task: str) -> str:
    return f"{task} options" if panel == TASK else panel
