"""The validation's speed measurement steps every shipped architecture as the env does."""

from __future__ import annotations

import math

import pytest

from surrogates.models.surrogate import checkpoint_path, load_surrogate
from surrogates.validation.heldout import step_time


@pytest.mark.parametrize("arch", ["transformer", "mamba", "jepa"])
def test_step_time_runs_every_shipped_architecture(arch):
    if not checkpoint_path("nmc", arch).exists():
        pytest.skip(f"no shipped nmc {arch}")
    seconds = step_time(load_surrogate("nmc", arch), batch=2, steps=2)
    assert math.isfinite(seconds) and seconds > 0
