"""runner.length_split without a training run: the plan of pieces, and a split batch's loss and gradients
against the whole batch's on small random models of each kind the tasks use."""

from __future__ import annotations

import pytest
import torch
import transformers

from nlpcli.runner.length_split import Splitting, batch_loss, min_positions, pieces, plan

LENGTHS = [3, 12, 4, 11, 5, 3]  # rows of a right-padded batch of width 12


def test_the_plan_puts_rows_of_similar_length_together():
    # 6 x 12 = 72 positions; at least 16 a piece: 4 x 5 + 2 x 12 = 44 beats 3 pieces (16 + 16 + 24 = 56)
    assert plan(LENGTHS, [0] * 6, 16) == [[0, 5, 2, 4], [3, 1]]
    assert plan(LENGTHS, [0] * 6, 0) == [[0, 5], [2], [4], [3], [1]]  # no minimum: as narrow as lengths allow


def test_a_piece_costs_at_least_the_minimum_so_short_batches_stay_whole():
    assert plan(LENGTHS, [0] * 6, 40) is None  # every split costs 2 x 40 >= 72
    assert plan([100, 100, 10, 10], [0] * 4, 64) == [[2, 3], [0, 1]]  # 64 + 200 < 400
    assert plan([100, 100], [0] * 2, 64) is None  # a tie: one forward pass


def test_targets_count_and_widths_round_up_to_the_padding_multiple():
    assert plan([4, 4], [4, 4], 0) is None
    assert plan([4, 4], [4, 60], 16) == [[0], [1]]  # the long target alone: 16 + 64 < 128
    assert plan([10, 10, 90, 90], [10, 10, 90, 90], 0) == [[0, 1], [2, 3]]
    assert plan([3, 5, 16, 16], [0] * 4, 0, multiple=8) == [[0, 1], [2, 3]]


def batch_of(lengths, width, vocab=50, *, labels="tokens", seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    ids = torch.randint(1, vocab, (len(lengths), width), generator=generator) * mask
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels == "tokens":
        batch["labels"] = torch.randint(0, 3, ids.shape, generator=generator).masked_fill(mask == 0, -100)
    elif labels == "same":
        batch["labels"] = ids.masked_fill(mask == 0, -100)
    elif labels == "spans":
        batch["start_positions"] = torch.tensor([min(1, n - 1) for n in lengths])
        batch["end_positions"] = torch.tensor([n - 1 for n in lengths])
    return batch


def bert_config(**extra):
    return transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, **extra)


def seq2seq_batch():
    batch = batch_of(LENGTHS, 12, labels=None)
    target_lengths = [2, 9, 3, 7, 2, 4]
    targets = batch_of(target_lengths, 9, seed=1, labels="same")["labels"]
    return {**batch, "labels": targets}


CASES = {
    "token classification": (lambda: transformers.BertForTokenClassification(bert_config(num_labels=3)),
                             lambda: batch_of(LENGTHS, 12), False),
    "masked LM": (lambda: transformers.BertForMaskedLM(bert_config()), lambda: batch_of(LENGTHS, 12, labels="same"),
                  False),
    "sequence classification": (lambda: transformers.BertForSequenceClassification(bert_config(num_labels=3)),
                                lambda: {**batch_of(LENGTHS, 12, labels=None), "labels": torch.tensor([0, 1, 2, 0, 1,
                                                                                                      2])}, False),
    "causal LM": (lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_embd=16, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)),
                  lambda: batch_of(LENGTHS, 12, labels="same"), True),
    "encoder-decoder": (lambda: transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=50, d_model=16, d_ff=32, d_kv=8, num_layers=2, num_heads=2, decoder_start_token_id=0,
        pad_token_id=0)), seq2seq_batch, False),
}


@pytest.mark.parametrize("case", CASES)
def test_a_split_batch_has_the_whole_batchs_loss_and_gradients(case):
    make_model, make_batch, shifts = CASES[case]
    torch.manual_seed(0)
    model = make_model().eval()  # no dropout: the two computations must agree to rounding
    batch = make_batch()
    split = Splitting(0, model.config.is_encoder_decoder, shifts)
    assert len(pieces(batch, split)) > 1
    results = []
    for splitting in (None, split):
        model.zero_grad()
        done = batch_loss(batch, splitting, lambda piece: model(**piece).loss)
        done.loss.backward()
        results.append((done, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (whole, whole_grads), (parts, part_grads) = results
    assert (whole.split, parts.split) == (False, True)
    assert parts.positions < whole.positions == batch["input_ids"].numel()
    assert float(parts.loss.detach()) == pytest.approx(float(whole.loss.detach()), rel=1e-5)
    assert len(part_grads) == len(whole_grads)
    for ours, theirs in zip(part_grads, whole_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_left_padded_and_short_batches_stay_whole():
    batch = batch_of(LENGTHS, 12)
    left = {key: value.flip(1) for key, value in batch.items()}
    split = Splitting(0, False, False)
    assert pieces(left, split) == [(left, 1.0)]
    assert pieces(batch, None) == [(batch, 1.0)]
    assert pieces(batch, Splitting(1024, False, False)) == [(batch, 1.0)]
    spans = batch_of(LENGTHS, 12, labels="spans")  # a loss over positions, padded ones included
    assert pieces(spans, split) == [(spans, 1.0)]
    classes = {**batch_of(LENGTHS, 12, labels=None), "labels": torch.zeros(6, 12)}  # 12 classes a row, 0/1 each
    assert pieces(classes, split) == [(classes, 1.0)]
    weights = [weight for _, weight in pieces(batch, split)]
    assert sum(weights) == pytest.approx(1.0)


def test_the_default_minimum_follows_the_device_and_the_models_size():
    assert min_positions(None, False, 200_000) == 1024  # the tiny presets on a CPU
    assert min_positions(None, False, 22_000_000) == 256  # MiniLM on a CPU
    assert min_positions(None, True, 22_000_000) == 4096
    assert min_positions(0, False, 22_000_000) == 0  # --length-split 0: off
    assert min_positions(512, True, 200_000) == 512
