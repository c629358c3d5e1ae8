"""Shared fixtures: the repository on sys.path, no telemetry, tiny untrained surrogate checkpoints
(so env and agent tests never depend on the shipped ones) and the experiment scripts as modules.

Tiny checkpoints: the featurizer's tables (OCV, U_n) come from the DFN itself; the networks are a
few thousand parameters with their output layer scaled down, so the surrogate is the quasi-static
cell (V ~ OCV(soc), T ~ T_amb, eta ~ U_n(soc)) plus a small history-dependent residual: physically
meaningless, but every piece of plumbing (recurrent state, per-row resets) is exercised.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)

TINY_CONFIGS = {
    "mamba": dict(d_model=16, n_layer=1),
    "transformer": dict(d_model=16, n_layer=1, n_head=2, mlp_hidden=32, max_len=128),
    "jepa": dict(d_latent=16, n_layer=1, d_action=8, d_embed=8, d_hidden=16),
}


@functools.lru_cache(maxsize=None)
def tiny_featurizer(chemistry: str = "nmc"):
    from surrogates.models.features import Featurizer

    return Featurizer.from_dfn(chemistry, points=21)


def build_tiny_checkpoint(path: Path, arch: str = "mamba", chemistry: str = "nmc", seed: int = 0) -> Path:
    """Write a tiny untrained ``arch`` checkpoint for ``chemistry`` to ``path``."""
    from surrogates.models import build_model
    from surrogates.models.surrogate import save_checkpoint

    torch.manual_seed(seed)
    model = build_model(arch, **TINY_CONFIGS[arch])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("head.", "readout.")):  # small residuals; JEPA's readout starts at zero
                p.mul_(0.05) if p.abs().max() > 0 else p.normal_(0.0, 0.01)
    save_checkpoint(path, model, tiny_featurizer(chemistry), {"note": "tiny untrained test checkpoint"})
    return Path(path)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {arch: build_tiny_checkpoint(root / f"nmc-{arch}.pt", arch) for arch in TINY_CONFIGS}


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_checkpoints) -> Path:
    """The tiny mamba checkpoint (the env's default architecture)."""
    return tiny_checkpoints["mamba"]


@pytest.fixture(scope="session")
def tiny_configs() -> dict[str, dict]:
    """Model config of each architecture's tiny test network."""
    return TINY_CONFIGS


@pytest.fixture(scope="session")
def script():
    """``script("train_agent")``: an experiment script imported as a module (call its ``main(argv)``)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load
