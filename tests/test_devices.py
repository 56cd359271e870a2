"""Precision choice: fp16 on CUDA by default, bf16 when asked and supported, fp32 on the CPU."""

from __future__ import annotations

import pytest
import torch

from nlpcli.runner.devices import resolve_precision


@pytest.mark.parametrize(
    ("cuda", "bf16_ok", "requested", "expected"),
    [
        (False, False, "auto", "no"),
        (False, False, "fp16", "no"),
        (True, True, "auto", "fp16"),
        (True, True, "bf16", "bf16"),
        (True, False, "bf16", "fp16"),
        (True, True, "fp32", "no"),
    ],
)
def test_resolve_precision(monkeypatch, cuda, bf16_ok, requested, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    assert resolve_precision(requested) == expected


@pytest.mark.parametrize(("model_type", "bf16_ok", "expected"), [("t5", True, "bf16"), ("mt5", True, "bf16"),
                                                                  ("t5", False, "fp16"), ("marian", True, "fp16")])
def test_auto_precision_picks_bf16_for_models_that_overflow_fp16(monkeypatch, model_type, bf16_ok, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    assert resolve_precision("auto", model_type) == expected
    assert resolve_precision("fp16", model_type) == "fp16"  # asked for explicitly: kept (with a warning)
