"""What a metric key says about itself: the one rule every table, curve, card and log line reads keys by.

A key is `[<split>_]<name>[_before]`: the split is `eval` or `test` (none for `train_loss`, `epoch`), `_before`
marks the evaluation before training. A name `<group>_<measure>` (measure: precision, recall, f1, accuracy,
exact, exact_match, number, total, samples) is a per-group breakdown (per entity type, HasAns/NoAns), unless
its group is `overall`; the group may hold underscores (`WORK_OF_ART_f1`). Timings (runtime, samples and
steps per second, preparation time) are no metrics; counts (number, total, samples) are no scores; a loss or
a perplexity is better lower, any other metric higher. A name `<baseline>_<metric>` (`lead3_rouge1`) is a
baseline's score on the metric the model is scored by (`rouge1`): the same at every evaluation of a run, drawn
as a reference line on that metric's curve and printed once.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("eval", "test")
EVAL_PREFIX = "eval_"
BEFORE_SUFFIX = "_before"
TIMINGS = ("runtime", "samples_per_second", "steps_per_second", "preparation_time")
COUNTS = ("number", "total", "samples")
# longest first: `HasAns_exact_match` is group HasAns, measure exact_match
MEASURES = ("exact_match", "precision", "accuracy", "recall", "exact", "f1", *COUNTS)
OVERALL = "overall"
LOWER_IS_BETTER = ("loss", "perplexity")
BASELINES = {"lead3": "lead-3"}  # a baseline's key prefix -> its name in charts and logs (summarize's lead-3)


@dataclass(frozen=True)
class MetricKind:
    split: str | None  # eval, test, or None (e.g. train_loss)
    name: str  # the key without its split and _before
    before: bool  # from the evaluation before training
    timing: bool
    group: str | None  # the per-group breakdown it belongs to (None: an overall figure)
    measure: str | None  # f1, precision, number, ... (None: e.g. loss, bleu)
    baseline: str | None = None  # the baseline it scores (`lead3`), None for the model's own figures

    @property
    def baseline_of(self) -> str | None:
        """The key of the model's figure this baseline figure sits beside: eval_lead3_rouge1 -> eval_rouge1."""
        if self.baseline is None:
            return None
        split = f"{self.split}_" if self.split else ""
        return f"{split}{self.name.removeprefix(self.baseline + '_')}{BEFORE_SUFFIX if self.before else ''}"

    @property
    def per_group(self) -> bool:
        return self.group is not None

    @property
    def count(self) -> bool:
        return self.measure in COUNTS

    @property
    def higher_is_better(self) -> bool:
        return not self.name.endswith(LOWER_IS_BETTER)


def metric_kind(key: str) -> MetricKind:
    """The kind of metric `key` names (see the module docstring)."""
    before = key.endswith(BEFORE_SUFFIX)
    name = key.removesuffix(BEFORE_SUFFIX)
    split, _, rest = name.partition("_")
    if split in SPLITS and rest:
        name = rest
    else:
        split = None
    timing = name in TIMINGS or name.endswith(tuple(f"_{t}" for t in TIMINGS))
    measure = next((m for m in MEASURES if name == m or name.endswith(f"_{m}")), None)
    group = name[: -len(measure) - 1] or None if measure and name != measure else None
    baseline = next((prefix for prefix in BASELINES if name.startswith(prefix + "_")), None)
    return MetricKind(split=split, name=name, before=before, timing=timing,
                      group=None if timing or group == OVERALL else group, measure=None if timing else measure,
                      baseline=baseline)


def is_timing(key: str) -> bool:
    return metric_kind(key).timing


def higher_is_better(key: str) -> bool:
    return metric_kind(key).higher_is_better
