"""Life estimator: cycles to 90 % retention of a repeated protocol, from what a BMS logs of its first cycles.

In the spirit of early-cycle life prediction (Severson et al., Nature Energy 4, 383-391, 2019), but with a
1D CNN on the raw logs instead of hand-made features: the first ``n_cycles`` cycles' current, voltage and
temperature, one sample per ``dt`` [s], each cycle cropped or zero-padded to ``cycle_len`` samples, stacked
as channels. The target is log10(cycles to 90 %). In the DFN with SEI growth the lithium lost per cycle is
~5e-5 of the capacity, far below what a BMS resolves in the voltage curves of the first cycles, so what the
network can read is how long and how hot the cell sat at which state of charge: the protocol and its ambient.

Features ``[n, 3 * n_cycles + n_cycles, cycle_len]`` (per cycle: C-rate = -I / I_1C, (V - 3.7 V) / 0.5 V,
(T - 298.15 K) / 15 K, then a mask of 1 where a sample exists) -> ``LifeCNN`` -> log10(cycles).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

V_REF, V_SCALE = 3.7, 0.5
"""Voltage normalisation [V]."""
T_REF, T_SCALE = 298.15, 15.0
"""Temperature normalisation [K]."""


@dataclass
class LifeFeatures:
    """How a life's first cycles become the network's input."""

    n_cycles: int = 2
    """Cycles read."""
    cycle_len: int = 360
    """Samples kept per cycle (at ``dt`` 60 s: 6 h, longer than any 2 h charge + 1 h rest + 1C discharge + 1 h rest)."""
    dt: float = 60.0
    """Sampling interval of the logs [s]."""

    @property
    def channels(self) -> int:
        return 4 * self.n_cycles


def features(traces: list[dict], one_c: float, spec: LifeFeatures = LifeFeatures()) -> np.ndarray:
    """One life's first cycles -> ``[channels, cycle_len]`` float32.

    ``traces``: per cycle, ``current`` [A] (PyBaMM sign), ``voltage`` [V], ``temperature`` [K] sampled every
    ``spec.dt`` (:func:`agents.ageing.life` with ``record``); ``one_c``: the cell's 1C current [A].
    """
    if len(traces) < spec.n_cycles:
        raise ValueError(f"the life estimator reads {spec.n_cycles} cycles, the log holds {len(traces)}: record more "
                         f"(agents.ageing.life(..., record={spec.n_cycles}))")
    x = np.zeros((spec.channels, spec.cycle_len), dtype=np.float32)
    for k, tr in enumerate(traces[:spec.n_cycles]):
        n = min(len(tr["voltage"]), spec.cycle_len)
        x[3 * k, :n] = -np.asarray(tr["current"][:n]) / one_c
        x[3 * k + 1, :n] = (np.asarray(tr["voltage"][:n]) - V_REF) / V_SCALE
        x[3 * k + 2, :n] = (np.asarray(tr["temperature"][:n]) - T_REF) / T_SCALE
        x[3 * spec.n_cycles + k, :n] = 1.0
    return x


class LifeCNN(nn.Module):
    """``[batch, channels, length]`` -> log10(cycles to 90 %) ``[batch]``: strided 1D convolutions, then the mean
    and the max over time (a short charge and a long one differ in where the sample mask ends)."""

    def __init__(self, channels: int, width: int = 32, depth: int = 4, kernel: int = 5):
        super().__init__()
        layers, c = [], channels
        for _ in range(depth):
            layers += [nn.Conv1d(c, width, kernel, stride=2, padding=kernel // 2), nn.GELU()]
            c = width
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, 1))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        z = self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=-1)).squeeze(-1)
        return z * self.y_std + self.y_mean


@dataclass
class LifeTraining:
    """The fit (defaults: the shipped estimator)."""

    epochs: int = 400
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    width: int = 32
    seed: int = 0


def fit(x: np.ndarray, log_cycles: np.ndarray, cfg: LifeTraining = LifeTraining(), progress: bool = False) -> LifeCNN:
    """Train a :class:`LifeCNN` on features ``[n, channels, length]`` and targets log10(cycles to 90 %) ``[n]``
    (AdamW, cosine schedule, mean squared error on the standardised target). Deterministic for a seed."""
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(log_cycles, dtype=torch.float32)
    model = LifeCNN(xt.shape[1], width=cfg.width)
    model.y_mean.fill_(float(yt.mean()))
    model.y_std.fill_(float(yt.std()) if len(yt) > 1 and float(yt.std()) > 0 else 1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(xt) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in tqdm(range(cfg.epochs), desc="life estimator", unit="epoch", disable=not progress, leave=False):
        for idx in torch.randperm(len(xt), generator=gen).split(cfg.batch_size):
            pred = model(xt[idx])
            loss = torch.mean(((pred - yt[idx]) / model.y_std) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: LifeCNN, x: np.ndarray) -> np.ndarray:
    """Cycles to 90 % ``[n]`` from features ``[n, channels, length]``."""
    return 10.0 ** model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def save(model: LifeCNN, path: Path, spec: LifeFeatures, meta: dict) -> None:
    """The checkpoint: weights, the feature spec, the width and ``meta`` (chemistry, one_c, metrics), atomically
    and as plain data (numpy scalars in ``meta`` become Python ones; :func:`~surrogates.common.checkpoints.write_checkpoint`)."""
    from surrogates.common.checkpoints import write_checkpoint

    write_checkpoint({"state_dict": model.state_dict(), "features": asdict(spec), "channels": spec.channels,
                      "width": model.head[0].out_features, "meta": meta}, path)


def load(path: Path) -> tuple[LifeCNN, LifeFeatures, dict]:
    """A checkpoint written by :func:`save` -> (model in eval mode, its feature spec, its meta).

    Read with ``weights_only=True`` (nothing in the file runs): a file that is not such a checkpoint raises
    :class:`~surrogates.common.checkpoints.CheckpointError`."""
    from surrogates.common.checkpoints import CheckpointError, load_checkpoint

    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or not {"state_dict", "features", "channels", "width"} <= set(ckpt):
        raise CheckpointError(f"{path} is not a life-estimator checkpoint (no state_dict/features/channels/width)")
    model = LifeCNN(ckpt["channels"], width=ckpt["width"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), LifeFeatures(**ckpt["features"]), ckpt["meta"]


__all__ = ["LifeFeatures", "LifeCNN", "LifeTraining", "features", "fit", "predict", "save", "load"]
