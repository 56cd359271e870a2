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
