"""runner.optimization without a training run: how an epoch's last, short accumulation is weighted."""

from __future__ import annotations

import pytest

from nlpcli.runner.optimization import accumulation_scale


@pytest.mark.parametrize(("batch_number", "epoch_length", "accumulation", "scale"), [
    (1, 5, 1, 1.0),
    (3, 5, 2, 1.0),  # batches 3-4 make a full step
    (5, 5, 2, 2.0),  # batch 5 is its step's only batch: its mean is the step's loss
    (7, 7, 4, 4 / 3),  # batches 5-7 are the last step's three
    (5, 7, 4, 4 / 3),
    (4, 7, 4, 1.0),
    (9, None, 4, 1.0),  # a stream: no known end
])
def test_an_epochs_short_last_step_weighs_its_batches_as_a_full_one(batch_number, epoch_length, accumulation,
                                                                    scale):
    assert accumulation_scale(batch_number, epoch_length, accumulation) == pytest.approx(scale)
