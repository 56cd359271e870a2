"""The order of training data in both loops: `--group-by-length` (transformers' LengthGroupedSampler, drawn
per (seed, epoch)), and the seeded generator every DataLoader draws from.

Seeding each epoch's order from the run's seed and the epoch number (not from torch's global generator)
gives every DDP process the same order to shard, and a resumed run the order its epoch started with.
"""

from __future__ import annotations

from typing import Any


def length_grouped_sampler(features: Any, batch_size: int, seed: int) -> Any:
    """A sampler over `features` (a datasets.Dataset with input_ids) that batches similar lengths together."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochLengthGroupedSampler(LengthGroupedSampler):
        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator = torch.Generator().manual_seed(seed + self.epoch)
            return super().__iter__()

    from nlpcli.sources.data import values_of

    lengths = [len(ids) for ids in values_of(features, "input_ids")]  # a batch of records at a time
    return EpochLengthGroupedSampler(batch_size, lengths=lengths)


def loader_generator(seed: int) -> Any:
    """A DataLoader's own generator: starting an iterator (each epoch, each evaluation, a resumed epoch) then
    draws its base seed from it, not from torch's global generator, whose state dropout uses and checkpoints
    restore. Without it a resumed run's dropout masks drift from the uninterrupted run's."""
    import torch

    return torch.Generator().manual_seed(seed)
