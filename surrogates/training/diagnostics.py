"""Train a diagnostic on rest-padded windows of DFN sequences, calibrate it, test it, publish it as a new version.

What differs between kinds (network, windows, loss, threshold, figures) is the kind's plug-in
(:mod:`surrogates.diagnostics.kinds`); the loop is :mod:`surrogates.training.loop`. A kind with a
pretrainer (the plating detector's masked-patch decoder) first trains it on unlabelled training
windows (``pretrain_epochs``, ``pretrain_max_minutes``); then the supervised phase (``max_epochs``,
0: the kind's default) trains the network on its loss; the best validation loss is kept, and
the kind calibrates its threshold on validation windows with it.

Windows end at every ``train_stride``-th interval of the training sequences (every
``eval_stride``-th for validation and tests), the first ones padded with the cell at rest before
the sequence, as the env serves them. The split is the surrogates' (``Dataset.split(val, test,
seed, holdout_family="pulse", min_length=2)``), so the held-out family was never seen by the
surrogates nor the diagnostics.

The run folder holds ``last.pt`` and ``best.pt`` while training (rerunning an interrupted run
resumes it) and, at the end, ``versions/vNNN/diagnostic.pt`` with its threshold and figures
(:class:`~surrogates.diagnostics.registry.VersionRegistry`); rerunning a finished run retrains and
publishes the next version.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surrogates.common.checkpoints import load_checkpoint, write_checkpoint
from surrogates.common.metadata import git_revision, package_versions
from surrogates.diagnostics.diagnostic import Diagnostic, make_blob
from surrogates.diagnostics.evaluate import evaluate_sets
from surrogates.diagnostics.kinds import diagnostic_kind
from surrogates.diagnostics.registry import VersionRegistry
from surrogates.diagnostics.windows import Normalizer, Windows
from surrogates.training import loop
from surrogates.training.config import TrainingConfig, data_meta, load_split


@dataclass
class DiagnosticConfig(TrainingConfig):
    """Diagnostic training settings (defaults: the shipped checkpoints, a few minutes on one CPU core)."""

    kind: str = "plating"
    """Diagnostic: a kind of surrogates.diagnostics.KINDS (plating, ood, degradation)."""
    window: int = 0
    """Window length W [intervals]; 0: the kind's default (32; degradation 64)."""
    train_stride: int = 2
    """Stride between the ends of training windows [intervals]."""
    eval_stride: int = 1
    """Stride between the ends of validation/test windows [intervals] (1: every window)."""
    batch_size: int = 256
    lr: float = 2e-3
    warmup_steps: int = 100
    max_epochs: int = 0
    """Epochs of the supervised phase; 0: the kind's default (plating 10, ood 60, degradation 40)."""
    pretrain_epochs: int = 4
    """Epochs of self-supervised pretraining, for a kind that has a pretrainer (plating: masked patches)."""
    pretrain_max_minutes: float = 2.5
    """Wall-clock minutes after which the pretraining phase ends early."""
    mask_ratio: float = 0.5
    """plating: share of each window's patches hidden in pretraining."""
    max_minutes: float = 7.0
    patience: int = 6
    label_fraction: float = 1.0
    """Share of training sequences whose windows the supervised phase uses (label-efficiency studies;
    pretraining always sees every training window)."""
    threshold_quantile: float = 0.95
    """ood: quantile of the validation sequences' max window error taken as the threshold."""
    aggregate: str = "max"
    """How window scores become a sequence score: max or mean."""
    ood_data: tuple[str, ...] = ("data/lfp",)
    """Other chemistries' dataset folders a kind judged on them (ood) is tested on, when present."""
    threads: int = 1

    def main_epochs(self) -> int:
        return self.max_epochs or diagnostic_kind(self.kind).epochs

    def window_length(self) -> int:
        return self.window or diagnostic_kind(self.kind).window

    def data_dir(self) -> str:
        return self.data or f"data/{self.chemistry}{diagnostic_kind(self.kind).data_suffix}"

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/diagnostics/{self.chemistry}-{self.kind}")

    def check(self) -> None:
        diagnostic_kind(self.kind)  # a clear error for an unknown kind
        if self.main_epochs() < 1 or self.pretrain_epochs < 0:
            raise ValueError("max_epochs must be >= 1 (0: the kind's default) and pretrain_epochs >= 0")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if not 0.0 < self.threshold_quantile < 1.0:
            raise ValueError(f"threshold_quantile must be in (0, 1), got {self.threshold_quantile}")
        if self.aggregate not in ("max", "mean"):
            raise ValueError(f"aggregate must be max or mean, got {self.aggregate!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")


@torch.no_grad()
def _outputs(plugin, model, z: np.ndarray, device, batch: int = 8192) -> tuple[torch.Tensor, np.ndarray]:
    """The network's output per standardised window ``(M,)`` float64 on ``device`` (what the kind's loss
    reads) and the raw scores ``[M]`` (what its threshold and figures read)."""
    model.eval()
    out = torch.cat([plugin.forward(model, torch.from_numpy(z[i:i + batch]).to(device)).double()
                     for i in range(0, len(z), batch)] or [torch.zeros(0, dtype=torch.float64, device=device)])
    return out, plugin.raw(model, out).double().cpu().numpy()


class DiagnosticTask:
    """What the loop trains for a diagnostic: an optional pretraining phase, the supervised phase, validation."""

    def __init__(self, cfg: DiagnosticConfig, plugin, model: torch.nn.Module, wins: dict[str, Windows],
                 sequences: dict[str, int], normalizer: Normalizer, device: torch.device):
        self.cfg, self.plugin, self.model, self.wins, self.device = cfg, plugin, model, wins, device
        self.name = cfg.kind
        self.sequences = sequences  # split name -> number of sequences the windows come from
        self.z = {name: normalizer(w.x) for name, w in wins.items()}  # standardised windows
        plugin.prepare(model, wins["train"])
        self.y = {name: torch.from_numpy(plugin.targets(model, w)) for name, w in wins.items()}
        self.pretrainer = plugin.pretrainer(model) if cfg.pretrain_epochs else None
        self.modules = {"model": model} | ({"pretrainer": self.pretrainer.to(device)} if self.pretrainer else {})
        self.shown = ("val_mae_reconstruction", "val_auroc", "val_charge_r2")
        self.generator = torch.Generator(device=device)
        seqs = np.unique(wins["train"].seq)  # the supervised phase may see the labels of some sequences only
        keep = np.random.default_rng(cfg.seed).permutation(seqs)[:max(1, int(round(cfg.label_fraction * len(seqs))))]
        self.supervised_rows = np.flatnonzero(np.isin(wins["train"].seq, keep))
        if cfg.label_fraction < 1.0:
            print(f"supervised phase on {len(keep)} of {len(seqs)} training sequences ({len(self.supervised_rows)} windows)")

    def phases(self) -> list[loop.Phase]:
        out = []
        if self.pretrainer is not None:
            out.append(loop.Phase("pretrain", self.cfg.pretrain_epochs,
                                  self.plugin.pretrain_parameters(self.model, self.pretrainer), self.pretrain_loss,
                                  select=False, max_minutes=self.cfg.pretrain_max_minutes))
        out.append(loop.Phase("main", self.cfg.main_epochs(), list(self.model.parameters()), self.supervised_loss))
        return out

    def batches(self, phase: loop.Phase, epoch: int) -> list[np.ndarray]:
        rows = self.supervised_rows if phase.select else np.arange(len(self.wins["train"]))
        order = rows[np.random.default_rng([self.cfg.seed, epoch]).permutation(len(rows))]
        self.generator.manual_seed(self.cfg.seed * 100003 + epoch)  # the epoch's masks
        return [order[i:i + self.cfg.batch_size] for i in range(0, len(order), self.cfg.batch_size)]

    def supervised_loss(self, rows: np.ndarray) -> torch.Tensor:
        xb = torch.from_numpy(self.z["train"][rows]).to(self.device)
        return self.plugin.loss(self.plugin.forward(self.model, xb), self.y["train"][rows].to(self.device)).mean()

    def pretrain_loss(self, rows: np.ndarray) -> torch.Tensor:
        xb = torch.from_numpy(self.z["train"][rows]).to(self.device)
        return self.plugin.pretrain_loss(self.model, self.pretrainer, xb, self.cfg, self.generator)

    @torch.no_grad()
    def validate(self, phase: loop.Phase) -> tuple[float, dict]:
        if not phase.select:  # pretraining: its own loss on (at most 8192) validation windows, fixed masks
            for m in self.modules.values():
                m.eval()
            xb = torch.from_numpy(self.z["val"][:8192]).to(self.device)
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
            loss = float(self.plugin.pretrain_loss(self.model, self.pretrainer, xb, self.cfg, gen))
            return loss, {"val_mae_reconstruction": loss}
        out, raw = _outputs(self.plugin, self.model, self.z["val"], self.device)
        loss = float(self.plugin.loss(out, self.y["val"].to(self.device).double()).mean())
        return loss, self.plugin.progress(raw, self.wins["val"], self.sequences["val"])

    def save_best(self, path: Path, history: list) -> None:
        write_checkpoint({"state_dict": self.model.state_dict(), "epoch": history[-1]["epoch"]}, path)


def train_diagnostic(cfg: DiagnosticConfig, dataset=None, ood_datasets: dict | None = None) -> dict:
    """Train per ``cfg``, publish the result as a new version in the run folder and return a summary
    (``version``, ``path`` of its checkpoint, ``meta`` with the figures).

    ``dataset`` (a :class:`surrogates.data.dataset.Dataset`) replaces ``cfg.data``; ``ood_datasets``
    (name -> Dataset) replaces ``cfg.ood_data`` (tests use both).
    """
    cfg.check()
    ctx = loop.start(cfg)
    plugin = diagnostic_kind(cfg.kind)

    # -- data: the kind's windows of the surrogates' split, standardised with training statistics
    splits, ds = load_split(cfg, dataset)
    window = cfg.window_length()
    normalizer = Normalizer.fit(splits["train"].arrays, splits["train"].lengths)
    wins = {name: plugin.windows(sub, window, cfg.train_stride if name == "train" else cfg.eval_stride)
            for name, sub in splits.items()}
    if len(wins["train"]) == 0 or len(wins["val"]) == 0:
        raise ValueError(f"no training/validation windows of {window} intervals; the split has no sequences")

    # -- model
    model = plugin.build(window, cfg.model).to(ctx.device)
    task = DiagnosticTask(cfg, plugin, model, wins, {k: len(v) for k, v in splits.items()}, normalizer, ctx.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{cfg.kind} diagnostic ({n_params / 1e3:.1f}k params) on {cfg.chemistry}: "
          + ", ".join(f"{len(splits[k])} {k} seq / {len(wins[k])} windows" for k in wins))

    # -- loop
    result = loop.fit(task, cfg, ctx)
    if not ctx.main:
        return {}

    # -- calibrate the threshold on validation windows with the best model
    run_dir = cfg.run_dir()
    model.load_state_dict(load_checkpoint(run_dir / "best.pt", map_location=ctx.device)["state_dict"])
    model.eval()
    threshold, threshold_info = plugin.calibrate(_outputs(plugin, model, task.z["val"], ctx.device)[1], wins["val"], cfg)
    print(f"threshold {threshold:.5g} ({threshold_info['rule']})")

    # -- test: held-out sequences of the seen families, the unseen family, other chemistries
    data = data_meta(cfg, ds, splits, dataset is not None, train_windows=len(wins["train"]), model=ds.meta.get("model"),
                     degradation_parameter_set=ds.meta.get("degradation_parameter_set"))
    meta = {"kind": cfg.kind, "chemistry": cfg.chemistry, "dt": cfg.dt, "window": window, "seed": cfg.seed,
            "parameters": n_params, "epochs_run": len(result.history), "train_minutes": round(result.minutes, 2),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
            "config": cfg.to_dict(), "data": data, "history": result.history,
            "package_versions": package_versions(), "git_revision": git_revision()}
    blob = make_blob(model, normalizer, cfg.chemistry, cfg.dt, threshold, meta, threshold_info)
    sets = {name: splits[name] for name in ("val", "test", "holdout") if name in splits}
    if plugin.judged_on_other_chemistries:
        sets.update({f"ood:{k}": v for k, v in (ood_datasets if ood_datasets is not None else _open_ood_data(cfg)).items()})
    metrics = evaluate_sets(Diagnostic(blob, device=ctx.device), sets, cfg.eval_stride, cfg.aggregate)
    meta["metrics"] = metrics
    for name, m in metrics.items():
        for k, v in m.items():
            if isinstance(v, float) and not k.startswith("threshold"):
                result.writer.add_scalar(f"eval/{name}/{k}", v, len(result.history))
    result.writer.close()

    # -- publish as the next version; the interrupted-run state is no longer needed
    registry = VersionRegistry(run_dir)
    version = registry.publish(blob, {"threshold_info": threshold_info, "metrics": metrics,
                                      "train_minutes": round(result.minutes, 2), "data": data})
    for name in ("last.pt", "best.pt"):
        (run_dir / name).unlink(missing_ok=True)
    loop.write_history(run_dir, result.history)
    print(f"published {version}: {registry.path(version)}")
    print({name: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()} for name, m in metrics.items()})
    meta["version"] = version
    return {"version": version, "path": str(registry.path(version)), "meta": meta}


def _open_ood_data(cfg: DiagnosticConfig) -> dict:
    """Every dataset of ``cfg.ood_data`` that exists (a missing one is reported and skipped)."""
    from surrogates.data.dataset import open_dataset

    out = {}
    for path in cfg.ood_data:
        if not Path(path).exists():
            print(f"skipping OOD set {path}: not found (generate it with experiments/generate_data.py)")
            continue
        other = open_dataset(path, dt=cfg.dt)
        out[f"{other.meta['chemistry']} ({Path(path).name})"] = other.subset(np.flatnonzero(other.lengths >= cfg.min_length))
    return out
