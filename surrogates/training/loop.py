"""The training loop: one for every model of the project, surrogates and diagnostics alike.

A *task* says what is trained and how it is judged; :func:`fit` does the rest the same way for all:

    phases      ``task.phases()``: a list of :class:`Phase` run one after the other (JEPA: pretrain,
                readout, finetune; the plating detector: pretrain, main; most models: one). Each
                phase has its own parameters, loss, AdamW optimiser and LR schedule (linear warm-up
                and cosine decay over the phase's optimiser steps, or constant).
    batches     ``task.batches(phase, epoch)``: row indices per optimiser step, from a generator
                seeded by the epoch; under ``torchrun`` each rank takes every world-th batch, and
                the schedule counts the optimiser steps of one rank.
    loss        ``phase.loss(rows)`` -> scalar, through :class:`~torch.nn.parallel.DistributedDataParallel`
                when there are several processes (it averages the gradients across ranks).
    validate    on rank 0 after every epoch: ``task.validate(phase)`` -> (loss, figures); in a
                ``select`` phase the lowest loss is the best model (``task.save_best``), and
                ``patience`` epochs without a better one stop the run. The others wait for rank 0's word.
    checkpoint  ``last.pt`` after every epoch, atomically: every module of ``task.modules``, the
                optimiser, the counters, the best loss, the history and the RNG states (python,
                numpy, torch, CUDA), so a rerun with the same config continues exactly where it stopped.
    logs        TensorBoard under ``<run>/tb`` (``losses/``, ``charts/``, ``eval/``, the hyperparameters
                as text), ``config.json``, a tqdm bar per epoch.

The task protocol (duck-typed): ``name`` (str), ``modules`` (name -> module, everything trained),
``phases()``, ``batches(phase, epoch)``, ``validate(phase)``, ``save_best(path, history)``, and
``shown`` (the figures printed each epoch).
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from surrogates.common.checkpoints import load_checkpoint, write_checkpoint
from surrogates.common.files import atomic_write_text
from surrogates.training.config import RESUME_INDIFFERENT, TrainingConfig


@dataclass
class Phase:
    """A stretch of training with one optimiser."""

    name: str
    epochs: int
    parameters: list
    """The parameters this phase trains (every other one is frozen)."""
    loss: Callable[[np.ndarray], torch.Tensor]
    """Rows of the training set -> scalar loss."""
    select: bool = True
    """Whether its validation loss selects the best model and counts towards ``patience``."""
    scheduled: bool = True
    """Warm-up and cosine decay over the phase (False: the peak learning rate throughout)."""
    max_minutes: float = math.inf
    """The phase ends early once the run's clock passes this many minutes."""
    after_step: Callable[[float], None] | None = None
    """Called after every optimiser step with the share of the phase's epochs done before this one
    (e.g. JEPA's EMA update)."""


@dataclass
class Context:
    """This process in the run: rank, number of processes and device."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def start(cfg: TrainingConfig) -> Context:
    """Processes (``torchrun`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``), device, threads and seeds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", local if device.index is None else device.index)  # one GPU per process
        torch.cuda.set_device(device)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # decaying SSM/GRU states underflow; denormals slow CPUs ~30x
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # every rank builds the same initial weights
    return Context(rank=rank, world=world, device=device, owns_group=owns)


def lr_at(cfg: TrainingConfig, step: int, total: int) -> float:
    """Learning rate at optimiser step ``step`` of ``total``: linear warm-up, then cosine to lr/20."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr / 20 + (cfg.lr - cfg.lr / 20) * 0.5 * (1 + math.cos(math.pi * frac))


def make_optimizer(parameters: list, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only."""
    decay = [p for p in parameters if p.dim() >= 2]
    no_decay = [p for p in parameters if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def rng_state() -> dict:
    """The global RNGs' states as plain data (a checkpoint holds no objects): python's ``random.getstate()``
    as a list (its version, its 625 ints, its cached gaussian), numpy's legacy generator as its
    ``bit_generator.state`` dict (key as a list of ints), torch's (and CUDA's) as byte tensors."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    np_state = {**np_state, "state": {**np_state["state"], "key": np_state["state"]["key"].tolist()}}
    state = {"python": [version, list(internal), gauss], "numpy": np_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` (also the older form: python's tuple, numpy's ``get_state()`` tuple)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    if isinstance(np_state, dict):
        np_state = {**np_state, "state": {**np_state["state"],
                                          "key": np.asarray(np_state["state"]["key"], dtype=np.uint32)}}
    else:  # ("MT19937", key, pos, has_gauss, cached_gaussian)
        np_state = (np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:])
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Objective(torch.nn.Module):
    """The modules being trained with a phase's loss as ``forward``: what DistributedDataParallel wraps, so
    its gradient all-reduce also covers losses that are not a plain forward (JEPA's, the MAE's)."""

    def __init__(self, modules: dict, phase: Phase):
        super().__init__()
        self.parts = torch.nn.ModuleDict(modules)
        self.phase = phase

    def forward(self, rows: np.ndarray) -> torch.Tensor:
        return self.phase.loss(rows)


@dataclass
class Fit:
    """What :func:`fit` leaves behind: the history (one record per epoch, rank 0), the run's minutes, the best
    validation loss and the open TensorBoard writer (rank 0; the task logs its test figures and closes it)."""

    history: list
    minutes: float
    best: float
    writer: object


def fit(task, cfg: TrainingConfig, ctx: Context) -> Fit:
    """Train ``task`` per ``cfg`` (resuming ``<run>/last.pt``); see the module docstring."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    cfg_dict = cfg.to_dict()
    phases = [ph for ph in task.phases() if ph.epochs > 0]
    schedule = [i for i, ph in enumerate(phases) for _ in range(ph.epochs)]  # phase of each epoch
    every = [p for m in task.modules.values() for p in m.parameters()]

    # -- resume
    epoch, global_step, best, stale, minutes_before, history, opt_state = 0, 0, math.inf, 0, 0.0, [], None
    if cfg.resume and last_path.exists():
        state = load_checkpoint(last_path)  # weights_only: a crafted last.pt runs nothing
        if _comparable(state["config"]) != _comparable(cfg_dict):
            raise ValueError(f"{last_path} is from a run with other settings; use another --out, --resume false, "
                             "or delete it")
        for name, m in task.modules.items():
            m.load_state_dict(state["modules"][name])
        epoch, global_step, best, stale = state["epoch"], state["global_step"], state["best"], state["stale"]
        minutes_before, history, opt_state = state["minutes"], state["history"], state["optimizer"]
        set_rng_state(state["rng"])
        print(f"resumed {last_path} at epoch {epoch}")
    writer = None
    if ctx.main:
        writer = SummaryWriter(str(run_dir / "tb"))
        if epoch == 0:
            writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in cfg_dict.items()))
        atomic_write_text(run_dir / "config.json", json.dumps(cfg_dict, indent=2))

    # -- loop
    t0 = time.perf_counter()
    minutes = minutes_before
    current, opt, objective = None, None, None
    while epoch < len(schedule):
        phase = phases[schedule[epoch]]
        if phase is not current:  # a new phase: its parameters, optimiser and (with several processes) DDP
            trained = {id(p) for p in phase.parameters}
            for p in every:
                p.requires_grad_(id(p) in trained)
            opt = make_optimizer(phase.parameters, cfg)
            if opt_state is not None and opt_state["phase"] == phase.name:
                opt.load_state_dict(opt_state["state"])
            opt_state = None
            objective = _Objective(task.modules, phase)
            if ctx.world > 1:
                objective = torch.nn.parallel.DistributedDataParallel(
                    objective, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                    find_unused_parameters=True)  # a phase's loss may leave some trained parameters out
            current = phase
        first = schedule.index(schedule[epoch])
        batches = task.batches(phase, epoch)
        batches = batches[: len(batches) // ctx.world * ctx.world][ctx.rank::ctx.world]  # equal counts on every rank
        total = phase.epochs * len(batches)  # this rank's optimiser steps in the phase
        step = (epoch - first) * len(batches)
        for m in task.modules.values():
            m.train()
        bar = tqdm(batches, desc=f"{task.name} epoch {epoch} [{phase.name}]", disable=not cfg.progress or not ctx.main,
                   leave=False)
        loss_sum = 0.0
        for rows in bar:
            lr = lr_at(cfg, step, total) if phase.scheduled else cfg.lr
            for g in opt.param_groups:
                g["lr"] = lr
            loss = objective(rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(phase.parameters, cfg.grad_clip)
            opt.step()
            step += 1
            global_step += 1
            if phase.after_step is not None:
                phase.after_step((epoch - first) / phase.epochs)
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if writer is not None:
                writer.add_scalar(f"losses/train_{phase.name}", loss.item(), global_step)
                writer.add_scalar("charts/learning_rate", lr, global_step)
        epoch += 1
        minutes = minutes_before + (time.perf_counter() - t0) / 60

        # -- validate and checkpoint on rank 0; every rank then follows its decision
        stop = False
        if ctx.main:
            val_loss, figures = task.validate(phase)
            record = {"epoch": epoch - 1, "phase": phase.name, "train_loss": loss_sum / max(1, len(batches)),
                      "val_loss": float(val_loss), "minutes": round(minutes, 3), **figures}
            history.append(record)
            improved = phase.select and val_loss < best
            if improved:
                best, stale = float(val_loss), 0
                task.save_best(best_path, history)
            elif phase.select:
                stale += 1
            writer.add_scalar(f"losses/val_{phase.name}", val_loss, global_step)
            writer.add_scalar("charts/minutes", minutes, global_step)
            for k, v in figures.items():
                if isinstance(v, float) and v == v:
                    writer.add_scalar(f"eval/{k}", v, global_step)
            print(f"epoch {epoch - 1} [{phase.name}] train {record['train_loss']:.5f} val {val_loss:.5f}"
                  + "".join(f"  {k} {figures[k]:.4g}" for k in task.shown if k in figures)
                  + f"  ({minutes:.1f} min){'  *' if improved else ''}")
            if phase.select and stale >= cfg.patience:
                stop = True
                print(f"early stop: no better validation loss in {cfg.patience} epochs")
            elif minutes >= cfg.max_minutes and best < math.inf:
                stop = True
                print(f"time budget of {cfg.max_minutes} min spent")
            elif minutes >= phase.max_minutes and epoch < len(schedule) and schedule[epoch] == schedule[epoch - 1]:
                print(f"{phase.name} budget of {phase.max_minutes} min spent")
                epoch = len(schedule) - schedule[::-1].index(schedule[epoch - 1])  # the next phase's first epoch
            write_checkpoint({
                "modules": {name: m.state_dict() for name, m in task.modules.items()},
                "optimizer": {"phase": phase.name, "state": opt.state_dict()},
                "epoch": len(schedule) if stop else epoch, "global_step": global_step, "best": best, "stale": stale,
                "minutes": minutes, "history": history, "config": cfg_dict, "rng": rng_state()}, last_path)
        stop, epoch = _agree(ctx, stop, epoch)
        if stop:
            break

    if ctx.owns_group:
        # DDP's reducer holds the process group: drop it while every rank is still there, or it is freed
        # after the group is destroyed and its gloo threads can hang the process on the way out.
        objective = None  # noqa: F841
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    if writer is not None:
        writer.flush()
    return Fit(history=history, minutes=minutes, best=best, writer=writer)


def _agree(ctx: Context, stop: bool, epoch: int) -> tuple[bool, int]:
    """Rank 0's decision (stop, next epoch) on every rank; the tensor lives on the process's device (NCCL)."""
    if ctx.world == 1:
        return stop, epoch
    t = torch.tensor([float(stop), float(epoch)], device=ctx.device)
    dist.broadcast(t, 0)
    return bool(t[0].item()), int(t[1].item())


def _comparable(cfg_dict: dict) -> dict:
    return {k: v for k, v in cfg_dict.items() if k not in RESUME_INDIFFERENT}


def write_history(run_dir: Path, history: list) -> None:
    """``history.json``: one record per epoch."""
    atomic_write_text(Path(run_dir) / "history.json", json.dumps(history, indent=2))
