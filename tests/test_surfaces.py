"""nlpcli uses the libraries' public surfaces: no private Trainer method overridden, the auto classes' public
tables, and the TrainingArguments fields the Trainer loop's checkpoint staging relies on kept to nlpcli."""

from __future__ import annotations

import pytest

from nlpcli.config import RunConfig
from nlpcli.errors import UserError


def test_the_trainer_overrides_no_private_method():
    from transformers import Trainer

    from nlpcli.runner.context import RunContext
    from nlpcli.runner.trainer import trainer_class
    from nlpcli.tasks.base import Prepared
    from nlpcli.tasks.ner import NerConfig, NerTask

    ctx = RunContext(task=NerTask(), cfg=NerConfig(), model=None, tokenizer=None, prepared=Prepared(None, None),
                     raw_eval=None, output_dir=None, mixed_precision="no")
    ours = trainer_class(ctx)
    overridden = {name for name in vars(ours) if callable(getattr(Trainer, name, None))}
    assert overridden and not {name for name in overridden if name.startswith("_")}, sorted(overridden)


def test_every_task_model_class_has_its_public_table():
    from nlpcli.run_folder import auto_class_architectures, model_types
    from nlpcli.tasks import TASK_MODULES, task_class

    for name in TASK_MODULES:
        assert model_types(task_class(name).model_class), name
    assert "BertForTokenClassification" in auto_class_architectures("AutoModelForTokenClassification")
    assert "GPT2LMHeadModel" in auto_class_architectures("AutoModelForCausalLM")
    assert "MarianMTModel" in auto_class_architectures("AutoModelForSeq2SeqLM")
    assert "bert" not in model_types("AutoModelForSeq2SeqLM") and model_types("AutoModelForNothing") == {}


@pytest.mark.parametrize(("name", "option"), [("output_dir", "--output-dir"), ("push_to_hub", "--push-to-hub"),
                                              ("hub_model_id", "--hub-model-id"), ("hub_private_repo", "--hub-private"),
                                              ("report_to", "--report-to"), ("seed", "--seed"),
                                              ("learning_rate", "--learning-rate"), ("fp16", "--precision"),
                                              ("resume_from_checkpoint", "--resume")])
def test_a_trainer_arg_that_is_an_nlpcli_option_is_refused_naming_it(name, option):
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks.ner import NerConfig

    with pytest.raises(UserError, match=f"--trainer-arg {name}: nlpcli has an option for it; use {option} "):
        resolve_config(NerConfig, "ner", cli_values={"trainer_args": [f"{name}=x"]})


@pytest.mark.parametrize("name", ["disable_tqdm", "run_name", "use_cpu"])
def test_a_trainer_arg_nlpcli_sets_itself_is_refused(name):
    from nlpcli.runner.settings import check_training_settings

    with pytest.raises(UserError, match="nlpcli sets this itself"):
        check_training_settings(RunConfig(trainer_args={name: "x"}))


def test_the_trainer_writes_its_checkpoints_into_the_staging_folder(tmp_path):
    from types import SimpleNamespace

    from nlpcli.runner import checkpoints, trainer

    args = trainer.training_arguments(SimpleNamespace(cfg=RunConfig(), output_dir=tmp_path, mixed_precision="no"))
    assert args.output_dir == str(checkpoints.staging_root(tmp_path))
