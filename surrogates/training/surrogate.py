"""Train a surrogate on a DFN dataset: whole sequences, open loop, in parallel (the loop is :mod:`surrogates.training.loop`).

The loss is the masked mean squared error of the standardised residual channels
(:mod:`surrogates.models.features`) over every valid interval of every sequence, with the model
fed only the applied currents and the initial condition: exactly what it sees when it
simulates. JEPA first pretrains its latent dynamics with the JEPA objective (``pretrain``), then
trains the readout alone on the frozen latents (``readout``, its validation figures reported as
``jepa_readout_only_validation``), then fine-tunes everything (``finetune``).

The run folder holds ``last.pt`` (everything needed to resume) and ``best.pt`` (the surrogate with
the lowest validation loss, inference weights only, loadable by
:func:`surrogates.models.surrogate.load_surrogate`, with its test figures in ``meta["test"]``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surrogates.common.metadata import git_revision, package_versions
from surrogates.models import build_model
from surrogates.models.features import MODEL_CHANNELS, Featurizer
from surrogates.models.surrogate import save_checkpoint
from surrogates.training import loop
from surrogates.training.config import TrainingConfig, data_meta, load_split


@dataclass
class TrainConfig(TrainingConfig):
    """Surrogate training settings (defaults: the shipped checkpoints, on a 2-core CPU)."""

    arch: str = "mamba"
    """Architecture: transformer, mamba or jepa."""
    channel_weights: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 0.5, 1.0)
    """Loss weight per MODEL_CHANNELS entry (voltage counts double)."""
    pretrain_epochs: int = 6
    """JEPA only: epochs of the JEPA objective before supervised training."""
    readout_epochs: int = 3
    """JEPA only: epochs training the readout alone on frozen latents (reported)."""

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/surrogates/{self.chemistry}-{self.arch}")


# --------------------------------------------------------------------------- data
@dataclass
class Tensors:
    """A split as model tensors: x ``(N, L, n_in)``, init ``(N, n_init)``, y ``(N, L, n_out)`` (0 where
    padded), mask ``(N, L)`` bool, lengths ``(N,)``, plus what decoding needs."""

    x: torch.Tensor
    init: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    lengths: np.ndarray
    soc: np.ndarray
    ambient: np.ndarray
    arrays: dict


def make_tensors(ds, featurizer: Featurizer) -> Tensors:
    x, init, soc = featurizer.inputs(ds.arrays["current"], ds.initial["soc"], ds.initial["ambient_temperature"])
    y = featurizer.targets(ds.arrays, soc, ds.initial["ambient_temperature"])
    mask = np.arange(x.shape[1])[None, :] < ds.lengths[:, None]
    y = np.where(mask[..., None], np.nan_to_num(y), 0.0).astype(np.float32)
    return Tensors(torch.from_numpy(x), torch.from_numpy(init), torch.from_numpy(y), torch.from_numpy(mask),
                   ds.lengths.astype(np.int64), soc, ds.initial["ambient_temperature"], ds.arrays)


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of row indices grouping similar lengths (little padding); shuffled if ``rng``."""
    order = np.argsort(lengths, kind="stable")
    if rng is not None:  # shuffle within equal-ish lengths, then the batch order
        order = order[np.argsort(lengths[order] // 16 * 10**6 + rng.permutation(len(order)), kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def masked_loss(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of per-channel MSE over valid steps; also the per-channel MSE ``(C,)``."""
    m = mask.unsqueeze(-1).to(pred.dtype)
    per_channel = ((pred - y) ** 2 * m).sum((0, 1)) / m.sum().clamp_min(1.0)
    return (per_channel * weights).sum() / weights.sum(), per_channel.detach()


@torch.no_grad()
def predict(model: torch.nn.Module, t: Tensors, batch_size: int = 64, device="cpu") -> np.ndarray:
    """Open-loop predictions ``(N, L, n_out)`` for a whole split (padded steps are junk)."""
    model.eval()
    out = np.zeros(tuple(t.y.shape), dtype=np.float32)
    for rows in length_batches(t.lengths, batch_size, None):
        L = max(int(t.lengths[rows].max()), 1)
        out[rows, :L] = model(t.x[rows, :L].to(device), t.init[rows].to(device)).cpu().numpy()
    return out


def physical_metrics(pred: np.ndarray, t: Tensors, featurizer: Featurizer) -> dict[str, float]:
    """Errors in physical units over valid steps: voltage MAE/RMSE [mV], MSE [V^2], temperature MAE [K],
    plating-margin MAE [mV], and the extremes' MAE."""
    phys = featurizer.decode(pred, t.soc, t.ambient)
    mask = t.mask.numpy()
    err = {ch: (phys[ch] - t.arrays[ch])[mask] for ch in MODEL_CHANNELS}
    return {
        "voltage_mae_mV": float(np.mean(np.abs(err["voltage"])) * 1e3),
        "voltage_rmse_mV": float(np.sqrt(np.mean(err["voltage"] ** 2)) * 1e3),
        "voltage_mse_V2": float(np.mean(err["voltage"] ** 2)),
        "temperature_mae_K": float(np.mean(np.abs(err["temperature"]))),
        "plating_margin_mae_mV": float(np.mean(np.abs(err["plating_margin"])) * 1e3),
        "voltage_max_mae_mV": float(np.mean(np.abs(err["voltage_max"])) * 1e3),
        "plating_margin_min_mae_mV": float(np.mean(np.abs(err["plating_margin_min"])) * 1e3),
        "sequences": int(len(t.lengths)),
        "steps": int(mask.sum()),
    }


# --------------------------------------------------------------------------- the task
class SurrogateTask:
    """What the loop trains for a surrogate: phases, batches of sequences, validation and the best checkpoint."""

    shown = ("voltage_mae_mV", "temperature_mae_K", "plating_margin_mae_mV")

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, tensors: dict, featurizer: Featurizer,
                 device: torch.device, data: dict):
        self.cfg, self.model, self.tensors, self.featurizer, self.device, self.data = cfg, model, tensors, featurizer, device, data
        self.name = cfg.arch
        self.modules = {"model": model}
        self.weights = torch.tensor(cfg.channel_weights, dtype=torch.float32, device=device)
        self.trainable = [p for p in model.parameters() if p.requires_grad]  # JEPA's EMA target is not
        self.n_params = sum(p.numel() for p in self.trainable)

    def phases(self) -> list[loop.Phase]:
        cfg, model = self.cfg, self.model
        if not hasattr(model, "pretrain_loss"):
            return [loop.Phase("supervised", cfg.max_epochs, self.trainable, self.supervised_loss)]
        return [  # JEPA
            loop.Phase("pretrain", cfg.pretrain_epochs, self.trainable, self.pretrain_loss, select=False,
                       scheduled=False, after_step=lambda progress: model.ema_update(model.ema_momentum(progress))),
            loop.Phase("readout", cfg.readout_epochs, model.readout_parameters(), self.supervised_loss, select=False,
                       scheduled=False),
            loop.Phase("finetune", cfg.max_epochs, self.trainable, self.supervised_loss),
        ]

    def batches(self, phase: loop.Phase, epoch: int) -> list[np.ndarray]:
        return length_batches(self.tensors["train"].lengths, self.cfg.batch_size, np.random.default_rng([self.cfg.seed, epoch]))

    def _batch(self, rows: np.ndarray):
        tr = self.tensors["train"]
        L = int(tr.lengths[rows].max())
        return (tr.x[rows, :L].to(self.device), tr.init[rows].to(self.device), tr.y[rows, :L].to(self.device),
                tr.mask[rows, :L].to(self.device))

    def supervised_loss(self, rows: np.ndarray) -> torch.Tensor:
        x, init, y, mask = self._batch(rows)
        return masked_loss(self.model(x, init), y, mask, self.weights)[0]

    def pretrain_loss(self, rows: np.ndarray) -> torch.Tensor:
        x, init, y, mask = self._batch(rows)
        return self.model.pretrain_loss(x, init, y.masked_fill(~mask.unsqueeze(-1), float("nan")), mask)

    def validate(self, phase: loop.Phase) -> tuple[float, dict]:
        """Open loop over whole validation sequences: the weighted loss and errors in physical units."""
        val = self.tensors["val"]
        pred = predict(self.model, val, device=self.device)
        loss = float(masked_loss(torch.from_numpy(pred), val.y, val.mask, self.weights.cpu())[0])
        return loss, physical_metrics(pred, val, self.featurizer)

    def save_best(self, path: Path, history: list) -> None:
        save_checkpoint(path, self.model, self.featurizer, self.meta(history))

    def meta(self, history: list) -> dict:
        """Provenance and validation figures of the model after the last epoch of ``history``."""
        cfg, now = self.cfg, history[-1]
        figures = {k: v for k, v in now.items() if k not in ("epoch", "phase", "train_loss", "val_loss", "minutes")}
        meta = {
            "arch": cfg.arch, "chemistry": cfg.chemistry, "dt": cfg.dt, "seed": cfg.seed,
            "parameters": self.n_params, "epoch": now["epoch"], "train_minutes": round(now["minutes"], 2),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
            "config": cfg.to_dict(), "data": self.data, "validation": figures,
            "package_versions": package_versions(), "git_revision": git_revision(),
        }
        readout = [h for h in history if h["phase"] == "readout"]
        if readout:
            meta["jepa_readout_only_validation"] = {k: v for k, v in readout[-1].items() if k in figures}
        return meta


def train(cfg: TrainConfig, dataset=None) -> dict:
    """Train per ``cfg`` (``dataset``, a :class:`~surrogates.data.dataset.Dataset`, replaces ``cfg.data``);
    returns ``{"best": path, "meta": ...}`` with the best checkpoint's test figures on rank 0, ``{}`` elsewhere."""
    ctx = loop.start(cfg)
    if len(cfg.channel_weights) != len(MODEL_CHANNELS):
        raise ValueError(f"channel_weights needs {len(MODEL_CHANNELS)} entries ({', '.join(MODEL_CHANNELS)})")

    # -- data
    splits, ds = load_split(cfg, dataset)
    featurizer = Featurizer.from_dataset(ds)
    tr = splits["train"]
    featurizer.fit_statistics(tr.arrays, tr.lengths, tr.initial)
    tensors = {name: make_tensors(sub, featurizer) for name, sub in splits.items() if len(sub)}
    data = data_meta(cfg, ds, splits, dataset is not None, train_steps=int(tr.lengths.sum()))

    # -- model
    model = build_model(cfg.arch, **cfg.model).to(ctx.device)
    task = SurrogateTask(cfg, model, tensors, featurizer, ctx.device, data)
    print(f"{cfg.arch} ({task.n_params / 1e3:.0f}k params) on {cfg.chemistry}: {len(splits['train'])} train / "
          f"{len(splits['val'])} val / {len(splits['test'])} test sequences, {ctx.device}, world {ctx.world}")

    # -- loop
    result = loop.fit(task, cfg, ctx)
    if not ctx.main:
        return {}

    # -- test the best checkpoint
    from surrogates.models.surrogate import load_surrogate

    best_path = cfg.run_dir() / "best.pt"
    if not best_path.exists():
        raise RuntimeError(f"no best checkpoint in {cfg.run_dir()}: no supervised epoch ran; raise --max-epochs")
    best = load_surrogate(cfg.chemistry, cfg.arch, path=best_path, device=ctx.device)
    test = {name: physical_metrics(predict(best.model, t, device=ctx.device), t, featurizer)
            for name, t in tensors.items() if name in ("test", "holdout")}
    meta = best.meta
    meta["test"] = test
    save_checkpoint(best_path, best.model, featurizer, meta)
    for name, figures in test.items():
        for k in SurrogateTask.shown:
            result.writer.add_scalar(f"eval/{name}_{k}", figures[k], len(result.history))
    result.writer.close()
    loop.write_history(cfg.run_dir(), result.history)
    print("test:", {name: {k: round(v, 4) for k, v in m.items()} for name, m in test.items()})
    return {"best": str(best_path), "meta": meta}
