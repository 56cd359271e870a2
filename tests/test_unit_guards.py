"""runner.guards without a training run: the non-finite loss flag, the weight check, the error message and
the Trainer callback's decisions, on small tensors and a fake accelerator."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerControl, TrainerState

from nlpcli.runner import guards


class FakeAccelerator:
    """`reduce(sum)` over this process and `others` (flags of the other processes)."""

    def __init__(self, *others: float) -> None:
        self.num_processes = 1 + len(others)
        self.others = others
        self.reduced = 0

    def reduce(self, tensor, reduction):
        assert reduction == "sum" and tensor.shape == (1,)
        self.reduced += 1
        return tensor + sum(self.others)


def test_the_message_names_the_step_and_the_last_good_checkpoint(tmp_path):
    error = guards.non_finite_loss(7, tmp_path)
    assert error.exit_code == 2
    assert error.message == ("The training loss is no longer finite (NaN or inf) at step 7; the run stopped and no "
                             "checkpoint had been saved yet.")
    assert "--learning-rate" in error.hint and "--max-grad-norm 1.0" in error.hint
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / ".checkpoints.partial" / "checkpoint-6").mkdir(parents=True)  # being written: not a checkpoint yet
    assert guards.non_finite_loss(7, tmp_path).message.endswith(
        f"the last good checkpoint is {tmp_path / 'checkpoint-4'}.")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_the_loss_guard_remembers_one_bad_loss(bad):
    guard = guards.LossGuard()
    guard.accelerator = FakeAccelerator()
    assert not guard.tripped()  # nothing observed yet
    guard.observe(torch.tensor(0.5))
    assert not guard.tripped()
    guard.observe(torch.tensor(bad))
    guard.observe(torch.tensor(0.25))  # a later finite loss does not clear it
    assert guard.tripped()


def test_the_loss_guard_looks_at_every_element_and_needs_no_grad():
    guard = guards.LossGuard()
    guard.accelerator = FakeAccelerator()
    guard.observe(torch.tensor([1.0, 2.0], requires_grad=True))
    assert not guard.tripped()
    guard.observe(torch.tensor([1.0, math.nan], requires_grad=True))
    assert guard.tripped()


def test_any_process_agrees_across_processes():
    assert guards.any_process(FakeAccelerator(), torch.tensor(True))
    assert not guards.any_process(FakeAccelerator(), torch.tensor(False))
    elsewhere = FakeAccelerator(0.0, 1.0)  # set on the third process only
    assert guards.any_process(elsewhere, torch.tensor(False)) and elsewhere.reduced == 1
    assert not guards.any_process(FakeAccelerator(0.0, 0.0), torch.tensor(False))
    guard = guards.LossGuard()
    guard.accelerator = FakeAccelerator(1.0)
    guard.observe(torch.tensor(1.0))  # finite here, not on the other process
    assert guard.tripped()


def test_weights_finite():
    model = torch.nn.Linear(3, 2)
    assert guards.weights_finite(FakeAccelerator(), model)
    assert not guards.weights_finite(FakeAccelerator(1.0), model)  # another process's weights went bad
    with torch.no_grad():
        model.bias[1] = math.inf
    assert not guards.weights_finite(FakeAccelerator(), model)
    assert guards.weights_finite(FakeAccelerator(), torch.nn.Sequential())  # no parameters: nothing to check


def callback_and_guard(model_ok: bool = True):
    guard = guards.LossGuard()
    guard.accelerator = FakeAccelerator()
    model = torch.nn.Linear(2, 1)
    if not model_ok:
        with torch.no_grad():
            model.weight.fill_(math.nan)
    return guards.trainer_guard_callback(guard), guard, model


def state_at(step: int):
    state = TrainerState()
    state.global_step = step
    return state


def control(**flags):
    return TrainerControl(**flags)


def stopped(ctl) -> bool:
    return (ctl.should_training_stop and not ctl.should_log and not ctl.should_evaluate and not ctl.should_save)


def test_the_callback_stops_before_logging_evaluating_or_saving_a_bad_loss():
    callback, guard, model = callback_and_guard()
    guard.observe(torch.tensor(math.nan))
    quiet = callback.on_step_end(None, state_at(3), control(), model=model)  # nothing due: not checked yet
    assert not quiet.should_training_stop and guard.stopped_at is None
    due = callback.on_step_end(None, state_at(4), control(should_log=True, should_save=True), model=model)
    assert stopped(due) and guard.stopped_at == 4
    later = callback.on_epoch_end(None, state_at(5), control(should_evaluate=True), model=model)
    assert stopped(later) and guard.stopped_at == 4  # the first step it was seen at is kept


def test_the_callback_checks_the_weights_before_a_save_only():
    callback, guard, model = callback_and_guard(model_ok=False)  # finite losses, NaN weights
    logged = callback.on_step_end(None, state_at(2), control(should_log=True), model=model)
    assert logged.should_log and not logged.should_training_stop
    saved = callback.on_step_end(None, state_at(3), control(should_save=True), model=model)
    assert stopped(saved) and guard.stopped_at == 3


def test_the_callback_lets_a_good_run_go_on():
    callback, guard, model = callback_and_guard()
    guard.observe(torch.tensor(0.7))
    ctl = callback.on_step_end(None, state_at(5), control(should_log=True, should_save=True), model=model)
    assert ctl.should_log and ctl.should_save and not ctl.should_training_stop
    ctl = callback.on_epoch_end(None, state_at(5), control(should_evaluate=True), model=model)
    assert ctl.should_evaluate and not ctl.should_training_stop and guard.stopped_at is None


class DataParallel:
    """Two processes under `kind` (accelerate's name): `gather` adds the other process's figures, `scale` times
    this one's (1.0: the same weights)."""

    def __init__(self, scale: float, kind: str = "MULTI_GPU") -> None:
        from accelerate.utils import DistributedType

        self.num_processes, self.device, self.scale = 2, "cpu", scale
        self.distributed_type = DistributedType(kind)

    def gather(self, tensor):
        return torch.cat([tensor, tensor * self.scale])


def test_replicas_agree_unless_a_process_trained_its_own_weights():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    assert guards.replicas_agree(DataParallel(1.0), model)
    assert guards.replicas_agree(DataParallel(1 + 1e-9), model)  # rounding: not a disagreement
    assert not guards.replicas_agree(DataParallel(1.001), model)  # one step apart is far more than this
    assert guards.replicas_agree(DataParallel(1.001, "FSDP"), model)  # sharded: each holds other parts, not compared
    assert "different weights" in str(guards.unsynchronised_replicas(2))
