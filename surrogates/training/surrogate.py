"""Train a surrogate on a DFN dataset: whole sequences, open loop, in parallel.

The loss is the masked mean squared error of the standardised residual channels
(:mod:`surrogates.models.features`) over every valid interval of every sequence, with the model
fed only the applied currents and the initial condition: exactly what it sees when it
simulates. JEPA first pretrains its latent dynamics with the JEPA objective, then trains the
readout alone (reported as ``readout_only``), then fine-tunes everything.

Checkpoints are atomic: ``last.pt`` (everything needed to resume, written every epoch) and
``best.pt`` (the surrogate with the lowest validation loss, loadable by
:func:`surrogates.surrogate.load_surrogate`). Under ``torchrun`` each rank trains on its
share of every epoch's batches and gradients are all-reduced (averaged) before each step,
as DDP does; rank 0 validates, checkpoints and decides when to stop.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from surrogates.common.channels import DEFAULT_DT
from surrogates.models.features import MODEL_CHANNELS, Featurizer
from surrogates.common.metadata import git_revision, package_versions
from surrogates.models import build_model
from surrogates.models.surrogate import save_checkpoint


@dataclass
class TrainConfig:
    """Surrogate training settings (defaults: the shipped checkpoints, on a 2-core CPU)."""

    arch: str = "mamba"
    """Architecture: transformer, mamba or jepa."""
    chemistry: str = "nmc"
    """Chemistry of the dataset (checked against it)."""
    data: str = "data/nmc"
    """Dataset folder made by experiments/generate_data.py."""
    out: str = ""
    """Run folder (default runs/surrogates/<chemistry>-<arch>)."""
    dt: float = DEFAULT_DT
    """Control interval [s]; the dataset must have been made for it."""
    seed: int = 0
    """Seed for initialisation, batch order and the split."""
    holdout_family: str = "pulse"
    """Protocol family kept out of training entirely (validated separately); '' for none."""
    val_fraction: float = 0.1
    """Share of sequences for validation (early stopping)."""
    test_fraction: float = 0.1
    """Share of sequences for the final test."""
    min_length: int = 2
    """Shortest sequence used [intervals]."""
    batch_size: int = 16
    """Sequences per batch (batches group sequences of similar length)."""
    lr: float = 3e-3
    """Peak learning rate (AdamW), cosine-decayed to lr/20 over max_epochs."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    max_epochs: int = 40
    """Epochs (the cosine schedule's length)."""
    max_minutes: float = 40.0
    """Wall-clock budget; training stops (and keeps the best checkpoint) when it is spent."""
    patience: int = 8
    """Stop after this many epochs without a better validation loss."""
    channel_weights: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 0.5, 1.0)
    """Loss weight per MODEL_CHANNELS entry (voltage counts double)."""
    pretrain_epochs: int = 6
    """JEPA only: epochs of the JEPA objective before supervised training."""
    readout_epochs: int = 3
    """JEPA only: epochs training the readout alone on frozen latents (reported)."""
    model: dict = field(default_factory=dict)
    """Overrides of the architecture's config, e.g. {d_model: 32, n_layer: 2}."""
    threads: int = 0
    """torch CPU threads (0: all cores)."""
    device: str = "auto"
    """cpu, cuda or auto."""
    max_sequences: int = 0
    """Use only the first N sequences of the dataset (0: all); for smoke tests."""
    resume: bool = True
    """Continue from out/last.pt when it exists with the same config."""
    progress: bool = True
    """Show a progress bar."""

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


# --------------------------------------------------------------------------- training
def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr / 20 + (cfg.lr - cfg.lr / 20) * 0.5 * (1 + math.cos(math.pi * frac))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, params=None) -> torch.optim.Optimizer:
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def _phase_of(cfg: TrainConfig, epoch: int) -> str:
    if cfg.arch != "jepa":
        return "supervised"
    if epoch < cfg.pretrain_epochs:
        return "pretrain"
    if epoch < cfg.pretrain_epochs + cfg.readout_epochs:
        return "readout"
    return "finetune"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> dict:
    """Train per ``cfg``; returns a summary with the best checkpoint's path and its test metrics."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from surrogates.data.dataset import open_dataset

    # -- distributed (torchrun) or single process
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if cfg.device == "auto":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # decaying SSM/GRU states underflow; denormals slow CPUs ~30x
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if len(cfg.channel_weights) != len(MODEL_CHANNELS):
        raise ValueError(f"channel_weights needs {len(MODEL_CHANNELS)} entries ({', '.join(MODEL_CHANNELS)})")

    # -- data
    ds = open_dataset(cfg.data, dt=cfg.dt, chemistry=cfg.chemistry)
    if cfg.max_sequences:
        ds = ds.subset(np.arange(min(cfg.max_sequences, len(ds))))
    split = ds.split(cfg.val_fraction, cfg.test_fraction, seed=cfg.seed,
                     holdout_family=cfg.holdout_family or None, min_length=cfg.min_length)
    featurizer = Featurizer.from_dfn(cfg.chemistry, dt=cfg.dt)
    train_ds = ds.subset(split["train"])
    featurizer.fit_statistics(train_ds.arrays, train_ds.lengths, train_ds.initial)
    tensors = {name: make_tensors(ds.subset(rows), featurizer) for name, rows in split.items() if len(rows)}
    tr = tensors["train"]

    # -- model, optimiser
    model = build_model(cfg.arch, **cfg.model).to(device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = torch.tensor(cfg.channel_weights, dtype=torch.float32, device=device)
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_dict = asdict(cfg)
    opt = _optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(tr.lengths) / cfg.batch_size)
    total_steps = cfg.max_epochs * steps_per_epoch
    start_epoch, step, best, stale, history = 0, 0, float("inf"), 0, []
    readout_only: dict | None = None
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if cfg.resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        if state["config"] != json.loads(json.dumps(cfg_dict)):
            raise ValueError(f"{last_path} is from a run with other settings; use another --out or --resume false")
        model.load_state_dict(state["model"])
        opt = _optimizer(model, cfg, _trainable(model, _phase_of(cfg, state["epoch"])))
        if state.get("optimizer_phase") == _phase_of(cfg, state["epoch"]):
            opt.load_state_dict(state["optimizer"])
        start_epoch, step, best, stale, history = state["epoch"], state["step"], state["best"], state["stale"], state["history"]
        readout_only = state.get("readout_only")
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {last_path} at epoch {start_epoch}")
    writer = SummaryWriter(str(run_dir / "tb")) if rank == 0 else None
    if writer is not None and start_epoch == 0:
        writer.add_text("config", "```\n" + json.dumps(cfg_dict, indent=2) + "\n```")
        (run_dir / "config.json").write_text(json.dumps(cfg_dict, indent=2))
    data_meta = {
        "path": str(cfg.data), "fingerprint": ds.fingerprint(), "sequences": len(ds),
        "train_sequences": len(split["train"]), "train_steps": int(tr.lengths.sum()),
        "parameter_set": ds.meta["parameter_set"], "pybamm_version": ds.meta["pybamm_version"],
        "holdout_family": cfg.holdout_family, "dataset_seed": ds.meta["seed"],
    }
    print(f"{cfg.arch} ({n_params / 1e3:.0f}k params) on {cfg.chemistry}: {len(split['train'])} train / "
          f"{len(split['val'])} val / {len(split['test'])} test sequences, {device}, world {world}")

    # -- loop
    t_start = time.perf_counter()
    elapsed_before = history[-1]["minutes"] if history else 0.0
    phase_prev = _phase_of(cfg, start_epoch - 1) if start_epoch else None
    for epoch in range(start_epoch, cfg.max_epochs + (cfg.pretrain_epochs + cfg.readout_epochs if cfg.arch == "jepa" else 0)):
        phase = _phase_of(cfg, epoch)
        if phase != phase_prev and phase_prev is not None:
            opt = _optimizer(model, cfg, _trainable(model, phase))
            if phase == "finetune":
                readout_only = physical_metrics(predict(model, tensors["val"], device=device), tensors["val"], featurizer)
                print(f"readout-only (frozen JEPA latents) val: {json.dumps(readout_only)}")
        phase_prev = phase
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = length_batches(tr.lengths, cfg.batch_size, rng)
        batches = batches[: len(batches) // world * world][rank::world]  # equal counts: every rank all-reduces alike
        bar = tqdm(batches, desc=f"{cfg.arch} epoch {epoch} [{phase}]", disable=not cfg.progress or rank != 0, leave=False)
        sums, n = np.zeros(len(MODEL_CHANNELS)), 0
        for rows in bar:
            L = int(tr.lengths[rows].max())
            x, init = tr.x[rows, :L].to(device), tr.init[rows].to(device)
            y, mask = tr.y[rows, :L].to(device), tr.mask[rows, :L].to(device)
            lr = _lr_at(cfg, step, total_steps) if phase in ("supervised", "finetune") else cfg.lr
            for g in opt.param_groups:
                g["lr"] = lr
            if phase == "pretrain":
                loss = model.pretrain_loss(x, init, y.masked_fill(~mask.unsqueeze(-1), float("nan")), mask)
                per_channel = torch.zeros(len(MODEL_CHANNELS))
            else:
                loss, per_channel = masked_loss(model(x, init), y, mask, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                _average_gradients(model, world)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if phase == "pretrain":
                model.ema_update(model.ema_momentum(epoch / max(1, cfg.pretrain_epochs)))
            else:
                step += 1
            sums += per_channel.cpu().numpy()
            n += 1
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if writer is not None:
                writer.add_scalar(f"train/loss_{phase}", loss.item(), step)
        minutes = elapsed_before + (time.perf_counter() - t_start) / 60

        # -- validate (open loop, whole sequences), on rank 0; the others wait for its verdict
        if rank != 0:
            if _broadcast_stop(False, world):
                break
            continue
        val_pred = predict(model, tensors["val"], device=device)
        val_loss = float(masked_loss(torch.from_numpy(val_pred), tensors["val"].y, tensors["val"].mask, weights.cpu())[0])
        metrics = physical_metrics(val_pred, tensors["val"], featurizer)
        for i, ch in enumerate(MODEL_CHANNELS):
            writer.add_scalar(f"train/mse_{ch}", sums[i] / max(n, 1), step)
        writer.add_scalar("val/loss", val_loss, step)
        for k in ("voltage_mae_mV", "temperature_mae_K", "plating_margin_mae_mV"):
            writer.add_scalar(f"val/{k}", metrics[k], step)
        improved = phase in ("supervised", "finetune") and val_loss < best
        if improved:
            best, stale = val_loss, 0
            meta = _meta(cfg, data_meta, n_params, epoch, minutes, metrics, readout_only)
            save_checkpoint(best_path, model, featurizer, meta)
        elif phase in ("supervised", "finetune"):
            stale += 1
        history.append({"epoch": epoch, "phase": phase, "val_loss": val_loss, "minutes": round(minutes, 2), **{
            k: round(metrics[k], 4) for k in ("voltage_mae_mV", "temperature_mae_K", "plating_margin_mae_mV")}})
        print(f"epoch {epoch} [{phase}] val loss {val_loss:.5f}  V MAE {metrics['voltage_mae_mV']:.2f} mV  "
              f"T MAE {metrics['temperature_mae_K']:.3f} K  eta MAE {metrics['plating_margin_mae_mV']:.2f} mV  "
              f"({minutes:.1f} min){'  *' if improved else ''}")
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "optimizer_phase": phase,
                      "epoch": epoch + 1, "step": step, "best": best, "stale": stale, "history": history,
                      "readout_only": readout_only, "config": json.loads(json.dumps(cfg_dict)),
                      "torch_rng": torch.get_rng_state()}, last_path)
        stop = stale >= cfg.patience or minutes >= cfg.max_minutes
        if stale >= cfg.patience:
            print(f"early stop: no better validation loss in {cfg.patience} epochs")
        elif stop:
            print(f"time budget of {cfg.max_minutes} min spent")
        if _broadcast_stop(stop, world):
            break

    # -- test the best checkpoint
    if rank != 0:
        return {}
    from surrogates.models.surrogate import load_surrogate

    best_surrogate = load_surrogate(cfg.chemistry, cfg.arch, path=best_path)
    best_model = best_surrogate.model.to(device)
    results = {name: physical_metrics(predict(best_model, t, device=device), t, featurizer)
               for name, t in tensors.items() if name in ("test", "holdout")}
    meta = best_surrogate.meta
    meta["test"] = results
    save_checkpoint(best_path, best_model, featurizer, meta)
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    writer.close()
    print("test:", json.dumps(results, indent=2))
    return {"best": str(best_path), "meta": meta}


def _average_gradients(model: torch.nn.Module, world: int) -> None:
    """All-reduce the mean gradient over ranks, as DDP does (also for JEPA's pretraining loss,
    which is not a forward call DDP could hook)."""
    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def _broadcast_stop(stop: bool, world: int) -> bool:
    """Rank 0's decision to stop, on every rank."""
    if world == 1:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0])
    torch.distributed.broadcast(flag, 0)
    return bool(flag.item())


def _trainable(model: torch.nn.Module, phase: str):
    """Parameters an optimiser steps in ``phase`` (JEPA's readout phase freezes the rest)."""
    if phase == "readout":
        return list(model.readout_parameters())
    return [p for p in model.parameters() if p.requires_grad]


def _meta(cfg: TrainConfig, data_meta: dict, n_params: int, epoch: int, minutes: float, val: dict,
          readout_only: dict | None) -> dict:
    import platform

    meta = {
        "arch": cfg.arch, "chemistry": cfg.chemistry, "dt": cfg.dt, "seed": cfg.seed,
        "parameters": n_params, "epoch": epoch, "train_minutes": round(minutes, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "config": json.loads(json.dumps(asdict(cfg))), "data": data_meta, "validation": val,
        "package_versions": package_versions(), "git_revision": git_revision(),
    }
    if readout_only is not None:
        meta["jepa_readout_only_validation"] = readout_only
    return meta
