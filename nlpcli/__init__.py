"""nlpcli: train and fine-tune transformers for the classic NLP tasks from one command line.

The package's layers, from top to bottom; a module imports only from its own layer or the layers below it,
and no import circle (tests/test_layers.py checks both, function-level imports included):
1. cli: `cli`, `commands.*`, `__main__`, `environment` (the commands);
2. tuning: `tuning.*` (`nlpcli tune`: a study of runs, with Optuna);
3. reporting: `reporting.*` (what a run's files say: curves, `nlpcli report`);
4. runner: `runner.*` (one run: data -> model -> loop -> files);
5. tasks: `tasks.*` (what each task adds: data, features, metrics, predict);
6. sources/config: `sources.*`, `config`, `config_layers`, `config_values`, `config_args`, `config_fields`,
   `run_folder`, `predict_io` (data, models, settings);
7. metrics/helpers: `metrics.*`, `layout` (the run folder's file names), `files`, `config_files`, `console`,
   `errors`, `generation`, `help_panels`, `suggestions` (the closest names to an unknown one).
"""

__version__ = "0.1.0"
