"""Records that say what happened (issue 22, items 1-4), without a training loop: the logging interval chosen for
a run's length, where each value of the header came from (--trainer-arg, a value set back to the built-in default),
the header's and the model card's account of what ran (from the run report's facts), and the tiny preset's
CPU-sized batches and warnings."""

from __future__ import annotations

import pytest

from nlpcli.config import config_yaml, given_by_user, origin_lines, value_origins
from nlpcli.config_layers import resolve_config
from nlpcli.runner import settings, sharing
from nlpcli.runner.report import training_lines
from nlpcli.tasks import get_task
from nlpcli.tasks.clm import ClmConfig
from nlpcli.tasks.mlm import MlmConfig
from nlpcli.tasks.ner import NerConfig
from nlpcli.tasks.translate import TranslateConfig

# ---------------------------------------------------------------- 1. the logging interval


@pytest.mark.parametrize(("steps", "interval"), [(1, 1), (20, 1), (49, 1), (50, 2), (74, 2), (1000, 40),
                                                 (60_000, 2400)])
def test_the_chosen_interval_gives_25_to_49_training_logs_and_at_least_every_step(steps, interval):
    assert settings.logging_interval(steps) == interval
    assert 25 <= steps // interval <= 49 or (steps < 25 and interval == 1)


def test_an_interval_that_evaluations_follow_divides_the_checkpoint_interval():
    assert settings.logging_interval(1000, checkpoint_every=500) == 25  # 40 would leave checkpoints off evaluations
    assert settings.logging_interval(1000, checkpoint_every=7) == 7
    cfg = resolve_config(NerConfig, "ner", cli_values={"load_best_model_at_end": True, "eval_strategy": "steps",
                                                       "save_strategy": "steps", "save_steps": 90})
    assert settings.with_logging_interval(cfg, 3000).evaluation_interval == 90


def test_logging_steps_are_chosen_for_the_run_unless_a_layer_gave_them(tmp_path):
    course = resolve_config(ClmConfig, "clm")  # configs/clm.yaml leaves logging to the run's length
    assert course.logging_steps is None and "logging_steps: null" in config_yaml(course, "clm")  # saved as not set
    short = settings.with_logging_interval(resolve_config(NerConfig, "ner", cli_values={"model": "tiny"}), 30)
    assert short.logging_steps == 1 and value_origins(short)["logging_steps"] == "chosen for the run's 30 steps"
    assert "chosen for the run's 30 steps: logging_steps=1" in origin_lines(short)  # the header says it was chosen
    assert value_origins(short)["learning_rate"] == "preset tiny"  # the copy keeps what the config knew
    config = tmp_path / "c.yaml"
    config.write_text("logging_steps: 7\n")
    for given in (resolve_config(NerConfig, "ner", config), resolve_config(NerConfig, "ner", set_values={
            "logging_steps": "7"}), resolve_config(NerConfig, "ner", cli_values={"logging_steps": 7})):
        assert settings.with_logging_interval(given, 30).logging_steps == 7  # an explicit value is kept


def test_the_plan_counts_steps_epochs_and_the_effective_batch():
    cfg = resolve_config(NerConfig, "ner", cli_values={"batch_size": 4, "gradient_accumulation_steps": 2,
                                                       "epochs": 3})
    # 10 features, batches of 4 over 2 processes: 3 batches -> 2 per process -> 1 optimizer step (of 2 batches)
    assert settings.plan(cfg, 10, 2) == {"planned_steps": 3, "planned_epochs": 3.0, "batch_size": 4,
                                         "gradient_accumulation_steps": 2, "total_train_batch_size": 16}
    stopped = resolve_config(NerConfig, "ner", cli_values={"max_steps": 30})
    assert settings.plan(stopped, 10, 1)["planned_epochs"] == 15.0  # 2 steps an epoch; not the 3 of --epochs
    assert settings.plan(stopped, None, 1)["planned_epochs"] is None  # a stream's epochs are not known


# ---------------------------------------------------------------- 2. where each value came from


def test_trainer_args_are_the_command_lines_and_a_saved_run_repeats_them(tmp_path):
    cfg = resolve_config(NerConfig, "ner", cli_values={"model": "tiny", "trainer_args": ["adam_beta2=0.99",
                                                                                         "label_smoothing_factor=0"]})
    assert value_origins(cfg)["trainer_args"] == "command line" and given_by_user(cfg, "trainer_args")
    assert "adam_beta2=0.99,label_smoothing_factor=0" in next(line for line in origin_lines(cfg)
                                                              if line.startswith("command line:"))
    saved = tmp_path / "run" / "nlpcli_config.yaml"
    saved.parent.mkdir()
    saved.write_text(config_yaml(cfg, "ner", {"world_size": 1}))  # as the run saves it
    again = resolve_config(NerConfig, "ner", saved, {"output_dir": str(tmp_path / "again")})
    assert again.trainer_args == {"adam_beta2": 0.99, "label_smoothing_factor": 0}
    assert value_origins(again)["trainer_args"] == f"--config {saved}" and again.model == "tiny"


def test_a_value_set_back_to_the_built_in_default_is_listed_where_it_was_given(tmp_path):
    cfg = resolve_config(NerConfig, "ner", cli_values={"model": "tiny", "warmup_ratio": 0.0},
                         set_values={"weight_decay": "0"})
    lines = origin_lines(cfg)  # the tiny preset's 0.1 and 0.01 were replaced: say by what, and where
    assert "warmup_ratio=0.0" in next(line for line in lines if line.startswith("command line:"))
    assert "weight_decay=0.0" in next(line for line in lines if line.startswith("--set:"))
    assert "warmup_ratio" not in next(line for line in lines if line.startswith("preset tiny:"))
    quiet = resolve_config(NerConfig, "ner", cli_values={"seed": 42})  # 42 replaced nothing: not listed
    assert not any("seed" in line for line in origin_lines(quiet))
    clm = resolve_config(ClmConfig, "clm", cli_values={"model": "tiny"})  # the preset's 0 replaced clm's 1000
    assert "warmup_steps=0" in next(line for line in origin_lines(clm) if line.startswith("preset tiny:"))


# ---------------------------------------------------------------- 3. what ran: the header and the card


def test_the_header_says_what_training_will_do_from_the_run_reports_facts():
    facts = {"world_size": 2, "planned_steps": 30, "planned_epochs": 15.0, "batch_size": 8,
             "gradient_accumulation_steps": 4, "total_train_batch_size": 64, "logging_steps": 1}
    assert training_lines(facts) == ["training: 30 steps (15 epochs), batch 64 = 8 per device x 4 accumulation x 2 "
                                     "processes"]
    assert training_lines({**facts, "planned_steps": 1, "planned_epochs": 0.3922, "world_size": 1}) == [
        "training: 1 step (0.392 epochs), batch 64 = 8 per device x 4 accumulation x 1 process"]
    assert training_lines({**facts, "planned_epochs": None})[0].startswith("training: 30 steps, batch 64")  # a stream
    assert training_lines({"world_size": 1, "precision": "fp32"}) == []  # an evaluation trains nothing


def test_the_model_card_says_what_ran_not_what_was_asked():
    """--precision fp16 on a CPU ran fp32; --max-steps 30 stopped after 15 of the 3 epochs asked for... and 2
    processes made the batch 16."""
    cfg = resolve_config(NerConfig, "ner", cli_values={"precision": "fp16", "max_steps": 30, "epochs": 3})
    info = {"precision": "fp32", "steps": 30, "epochs": 15.0, "world_size": 2, "total_train_batch_size": 16,
            "versions": {}}
    card = sharing.build_model_card(get_task("ner"), cfg, {"eval_loss": 0.1}, info, "me/m")
    params = card.data.to_dict()["hyperparameters"]
    assert {key: params[key] for key in sharing.RAN} == {"precision": "fp32", "steps": 30, "epochs": 15.0,
                                                         "world_size": 2, "total_train_batch_size": 16}
    assert "max_steps" not in params and "- epochs: 15.0" in card.text and "fp16" not in card.text.split("## ")[3]


# ---------------------------------------------------------------- 4. the tiny preset on a CPU


@pytest.mark.parametrize(("cls", "task", "batch", "eval_batch", "accumulation"), [
    (ClmConfig, "clm", 8, 8, 1),  # the course: 32 (eval 32) x 8 accumulation
    (MlmConfig, "mlm", 8, None, 1),  # 64
    (TranslateConfig, "translate", 8, 8, 1),  # 32, eval 64
    (NerConfig, "ner", 8, None, 1),  # the course's 8 stays
])
def test_the_tiny_preset_sizes_the_batches_for_a_cpu(cls, task, batch, eval_batch, accumulation):
    tiny = resolve_config(cls, task, cli_values={"model": "tiny"})
    assert (tiny.batch_size, tiny.eval_batch_size, tiny.gradient_accumulation_steps) == (batch, eval_batch,
                                                                                        accumulation)
    assert resolve_config(cls, task, cli_values={"model": "tiny", "batch_size": 2}).batch_size == 2  # options win
    if task == "clm":
        assert value_origins(tiny)["gradient_accumulation_steps"] == "preset tiny"
        assert resolve_config(cls, task).gradient_accumulation_steps == 8  # the course's run keeps its numbers


def test_the_tiny_clm_warns_only_about_a_tokenizer_the_user_gave(capsys):
    task = get_task("clm")
    task.setup({}, resolve_config(ClmConfig, "clm", cli_values={"model": "tiny"}), None)
    assert "not used" not in capsys.readouterr().err  # clm.yaml's tokenizer is the course's, not the user's
    task.setup({}, resolve_config(ClmConfig, "clm", cli_values={"model": "tiny", "tokenizer": "gpt2"}), None)
    assert "--tokenizer is not used" in " ".join(capsys.readouterr().err.split())
