"""`nlpcli tune`: hyperparameter search with Optuna (the optional `tune` extra). Each trial is an ordinary run of
the task (`STUDY/trial-<number>/`), reported to its study through the runner's evaluation hook; the study lives in
storage that survives a kill (a journal file, or a database that workers of several machines share).

`space` (what a study varies), `study` (Optuna: storage, sampler, pruner, dead workers' trials), `trial` (one
trial: run, prune, objective, kept models), `results` (tune.json, best_config.yaml, the table), `chart` (tune.png),
`loop` (the steps of `nlpcli tune`). Only `study`, `trial` (TrialPruned) and `chart` (importances) import Optuna,
inside functions: `nlpcli --help` stays quick and `--print-space` works without it.
"""
