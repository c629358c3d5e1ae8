"""Train a diagnostic on windows of DFN sequences, calibrate it, test it, publish it as a new version.

* ``plating``: masked-patch pretraining of the patch transformer on unlabelled training
  windows (``pretrain_epochs``), then fine-tuning with the classification head (``epochs``,
  binary cross-entropy); the decision threshold is the one with the best F1 on validation windows.
* ``ood``: the conditional window autoencoder (``epochs``, mean squared error of the reconstructed
  voltage and temperature); the threshold is the ``threshold_quantile`` of the validation
  sequences' max window error, recomputed at every (re)training, so ``1 - threshold_quantile``
  is the intended false-positive rate per sequence.
* ``degradation``: the causal CNN on rest-padded windows ending at every interval of the
  charges of a degradation dataset (``generate_data.py --config
  experiments/configs/degradation_data.yml``); mean squared error of the capacity lost in the
  window's last interval, in units of the training targets' standard deviation. No threshold.

The split is the surrogates' (``Dataset.split(val, test, seed, holdout_family="pulse",
min_length=2)``), so the held-out family was never seen by the surrogates nor the diagnostics.

Checkpoints are atomic: ``last.pt`` (everything needed to resume, written every epoch; removed
once the run is published) and, at the end, ``versions/vNNN/diagnostic.pt`` with its threshold and
metrics (:class:`~surrogates.diagnostics.registry.VersionRegistry`). Rerunning a finished run
retrains and publishes the next version; rerunning an interrupted one resumes it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from surrogates.common.channels import DEFAULT_DT
from surrogates.diagnostics.diagnostic import Diagnostic, make_blob
from surrogates.diagnostics.evaluate import degradation_metrics, degradation_windows, evaluate, public, separation
from surrogates.diagnostics.metrics import auroc, best_f1_threshold, per_sequence
from surrogates.diagnostics.models import DIAGNOSTIC_MODELS, MAEDecoder, mae_loss
from surrogates.diagnostics.registry import VersionRegistry
from surrogates.diagnostics.windows import Normalizer, make_windows
from surrogates.common.metadata import git_revision, package_versions


@dataclass
class DiagnosticConfig:
    """Diagnostic training settings (defaults: the shipped checkpoints, a few minutes on one CPU core)."""

    kind: str = "plating"
    """Diagnostic: plating, ood or degradation."""
    chemistry: str = "nmc"
    """Chemistry of the dataset (checked against it)."""
    data: str = ""
    """Dataset folder made by experiments/generate_data.py; '' = data/<chemistry>, or
    data/<chemistry>-degradation for the degradation estimator."""
    out: str = ""
    """Run folder (default runs/diagnostics/<chemistry>-<kind>)."""
    dt: float = DEFAULT_DT
    """Control interval [s]; the dataset must have been made for it."""
    seed: int = 0
    """Seed for initialisation, batch order, masks and the split."""
    holdout_family: str = "pulse"
    """Protocol family kept out of training entirely (tested separately); '' for none."""
    val_fraction: float = 0.1
    """Share of sequences for validation (model selection, thresholds)."""
    test_fraction: float = 0.1
    """Share of sequences for the final test."""
    min_length: int = 2
    """Shortest sequence in the split [intervals] (the surrogates' split)."""
    window: int = 0
    """Window length W [intervals]; 0: the kind's default (32; degradation 64)."""
    train_stride: int = 2
    """Stride between training windows [intervals]."""
    eval_stride: int = 1
    """Stride between validation/test windows [intervals] (1: every window)."""
    batch_size: int = 256
    """Windows per batch."""
    lr: float = 2e-3
    """Peak learning rate (AdamW), cosine-decayed to lr/20 over each phase."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices."""
    warmup_steps: int = 100
    """Linear warm-up steps at the start of each phase."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    pretrain_epochs: int = 4
    """plating: epochs of masked-patch reconstruction before fine-tuning (0: none)."""
    mask_ratio: float = 0.5
    """plating: share of each window's patches hidden in pretraining."""
    epochs: int = 0
    """Epochs of the main phase (plating: fine-tuning with the head; ood: the autoencoder); 0: the
    kind's default (plating 10, ood 60)."""
    max_minutes: float = 7.0
    """Wall-clock budget for the whole run; the best checkpoint so far is kept when it is spent."""
    pretrain_max_minutes: float = 2.5
    """plating: wall-clock budget of the pretraining phase."""
    patience: int = 6
    """Stop after this many epochs of the main phase without a better validation loss."""
    label_fraction: float = 1.0
    """plating: share of training sequences whose labels fine-tuning uses (label-efficiency studies;
    masked-patch pretraining always sees every training window)."""
    threshold_quantile: float = 0.95
    """ood: quantile of the validation sequences' max window error taken as the threshold."""
    aggregate: str = "max"
    """How window scores become a sequence score: max or mean."""
    ood_data: tuple[str, ...] = ("data/lfp",)
    """ood: further dataset folders (other chemistries) reported as out of distribution when present."""
    model: dict = field(default_factory=dict)
    """Overrides of the model config (PatchConfig / AEConfig), e.g. {d_model: 32, n_layer: 2}."""
    threads: int = 1
    """torch CPU threads (0: all cores)."""
    max_sequences: int = 0
    """Use only the first N sequences of the dataset (0: all); for smoke tests."""
    resume: bool = True
    """Continue an interrupted run from out/last.pt when it has the same config."""
    progress: bool = True
    """Show a progress bar."""

    def main_epochs(self) -> int:
        return self.epochs or {"plating": 10, "ood": 60, "degradation": 40}.get(self.kind, 10)

    def window_length(self) -> int:
        return self.window or (64 if self.kind == "degradation" else 32)

    def data_dir(self) -> str:
        return self.data or (f"data/{self.chemistry}-degradation" if self.kind == "degradation" else f"data/{self.chemistry}")

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/diagnostics/{self.chemistry}-{self.kind}")


# --------------------------------------------------------------------------- helpers
def _lr_at(cfg: DiagnosticConfig, step: int, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr / 20 + (cfg.lr - cfg.lr / 20) * 0.5 * (1 + math.cos(math.pi * frac))


def _optimizer(modules, cfg: DiagnosticConfig) -> torch.optim.Optimizer:
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _json(obj):
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


@torch.no_grad()
def _outputs(model, z: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Model outputs over standardised windows: plating logits, OOD errors or degradation outputs ``[M]``."""
    model.eval()
    out = []
    for i in range(0, len(z), batch):
        xb = torch.from_numpy(z[i:i + batch])
        out.append((model.errors(xb) if model.kind == "ood" else model(xb)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def load_split(cfg: DiagnosticConfig, dataset=None) -> tuple[dict, object]:
    """The dataset (opened from ``cfg.data`` unless given) and its split ``{name: Dataset}``."""
    from surrogates.data.dataset import open_dataset

    ds = dataset if dataset is not None else open_dataset(cfg.data_dir(), dt=cfg.dt, chemistry=cfg.chemistry)
    if cfg.max_sequences:
        ds = ds.subset(np.arange(min(cfg.max_sequences, len(ds))))
    rows = ds.split(cfg.val_fraction, cfg.test_fraction, seed=cfg.seed, holdout_family=cfg.holdout_family or None,
                    min_length=cfg.min_length)
    return {name: ds.subset(r) for name, r in rows.items()}, ds


def calibrate_ood_threshold(errors: np.ndarray, seq: np.ndarray, quantile: float, aggregate: str = "max") -> tuple[float, dict]:
    """Threshold on raw window errors: the ``quantile`` of the per-sequence aggregate over validation sequences."""
    if len(errors) == 0:
        raise ValueError("no validation windows to calibrate the OOD threshold on (sequences shorter than the window?)")
    _, agg = per_sequence(errors, seq, aggregate)
    thr = float(np.quantile(agg, quantile))
    return thr, {"rule": f"quantile {quantile} of the per-sequence {aggregate} window error over validation sequences",
                 "quantile": quantile, "aggregate": aggregate, "validation_sequences": int(len(agg)),
                 "intended_false_positive_rate": round(1.0 - quantile, 6)}


# --------------------------------------------------------------------------- training
def train_diagnostic(cfg: DiagnosticConfig, dataset=None, ood_datasets: dict | None = None) -> dict:
    """Train per ``cfg``, publish the result as a new version in the run folder and return a summary
    (``version``, ``path`` of its checkpoint, ``meta`` with the metrics).

    ``dataset`` (a :class:`surrogates.data.Dataset`) replaces ``cfg.data``; ``ood_datasets``
    (name -> Dataset) replaces ``cfg.ood_data`` (tests use both).
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    _check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    # -- data: windows of the surrogates' split, standardised with training statistics
    splits, ds = load_split(cfg, dataset)
    normalizer = Normalizer.fit(splits["train"].arrays, splits["train"].lengths)
    window = cfg.window_length()
    if cfg.kind == "degradation":
        wins = {name: degradation_windows(sub, window, cfg.train_stride if name == "train" else cfg.eval_stride)
                for name, sub in splits.items()}
    else:
        wins = {name: make_windows(sub.arrays, sub.lengths, window, cfg.train_stride if name == "train" else cfg.eval_stride)
                for name, sub in splits.items()}
    if len(wins["train"]) == 0 or len(wins["val"]) == 0:
        raise ValueError(f"no training/validation windows of {window} intervals; sequences are too short")
    z = {name: normalizer(w.x) for name, w in wins.items()}
    ytr, target_scale = None, 1.0
    if cfg.kind == "plating":
        ytr = torch.from_numpy(wins["train"].label.astype(np.float32))
    elif cfg.kind == "degradation":
        target_scale = float(max(np.std(wins["train"].target), 1e-12))  # A.h per model output unit
        ytr = torch.from_numpy((wins["train"].target / target_scale).astype(np.float32))
    rows_of = {"pretrain": np.arange(len(wins["train"])), "main": np.arange(len(wins["train"]))}
    if cfg.kind == "plating" and cfg.label_fraction < 1.0:
        seqs = np.unique(wins["train"].seq)
        keep = np.random.default_rng(cfg.seed).permutation(seqs)[:max(1, int(round(cfg.label_fraction * len(seqs))))]
        rows_of["main"] = np.flatnonzero(np.isin(wins["train"].seq, keep))
        print(f"fine-tuning on the labels of {len(keep)} of {len(seqs)} training sequences ({len(rows_of['main'])} windows)")

    # -- model, run folder
    cfg_cls, model_cls = DIAGNOSTIC_MODELS[cfg.kind]
    model = model_cls(cfg_cls(window=window, **cfg.model))
    if cfg.kind == "degradation":
        model.scale.fill_(target_scale)
    decoder = MAEDecoder(model.cfg) if cfg.kind == "plating" and cfg.pretrain_epochs else None
    n_params = sum(p.numel() for p in model.parameters())
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_dict = _json(asdict(cfg))
    phases = ([("pretrain", cfg.pretrain_epochs)] if decoder is not None else []) + [("main", cfg.main_epochs())]
    schedule = [ph for ph, n in phases for _ in range(n)]  # phase of each epoch

    # -- resume an interrupted run
    last_path = run_dir / "last.pt"
    epoch, best, stale, history, best_state, minutes_before, pretrain_done = 0, float("inf"), 0, [], None, 0.0, False
    opt_state = None
    if cfg.resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        if state["config"] != cfg_dict:
            raise ValueError(f"{last_path} is from an interrupted run with other settings; use another --out, "
                             "--resume false, or delete it")
        model.load_state_dict(state["model"])
        if decoder is not None and state.get("decoder") is not None:
            decoder.load_state_dict(state["decoder"])
        epoch, best, stale, history = state["epoch"], state["best"], state["stale"], state["history"]
        best_state, minutes_before, pretrain_done = state["best_state"], state["minutes"], state["pretrain_done"]
        opt_state = state["optimizer"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {last_path} at epoch {epoch}")
    writer = SummaryWriter(str(run_dir / "tb"))
    if epoch == 0:
        writer.add_text("config", "```\n" + json.dumps(cfg_dict, indent=2) + "\n```")
    (run_dir / "config.json").write_text(json.dumps(cfg_dict, indent=2))
    print(f"{cfg.kind} diagnostic ({n_params / 1e3:.1f}k params) on {cfg.chemistry}: "
          + ", ".join(f"{len(splits[k])} {k} seq / {len(wins[k])} windows" for k in wins))

    # -- loop
    t0 = time.perf_counter()
    minutes = minutes_before
    phase_prev, opt, step = None, None, 0
    while epoch < len(schedule):
        phase = schedule[epoch]
        if phase == "pretrain" and pretrain_done:
            epoch += 1
            continue
        rows_phase = rows_of[phase]
        n_batches = math.ceil(len(rows_phase) / cfg.batch_size)
        phase_first = schedule.index(phase)
        total = n_batches * schedule.count(phase)
        if phase != phase_prev:
            modules = [model.encoder, decoder] if phase == "pretrain" else [model]
            opt = _optimizer(modules, cfg)
            if opt_state is not None and opt_state["phase"] == phase:
                opt.load_state_dict(opt_state["state"])
            opt_state = None
            phase_prev = phase
        step = (epoch - phase_first) * n_batches
        model.train()
        if decoder is not None:
            decoder.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        order = rows_phase[rng.permutation(len(rows_phase))]
        bar = tqdm(range(n_batches), desc=f"{cfg.kind} epoch {epoch} [{phase}]", disable=not cfg.progress, leave=False)
        loss_sum = 0.0
        for b in bar:
            rows = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb = torch.from_numpy(z["train"][rows])
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step, total)
            if phase == "pretrain":
                loss = mae_loss(model.encoder, decoder, xb, cfg.mask_ratio, gen)
            elif cfg.kind == "plating":
                loss = F.binary_cross_entropy_with_logits(model(xb), ytr[rows])
            elif cfg.kind == "degradation":
                loss = F.mse_loss(model(xb), ytr[rows])
            else:
                loss = model.errors(xb).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
            opt.step()
            step += 1
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        train_loss = loss_sum / max(1, n_batches)
        writer.add_scalar(f"losses/train_{phase}", train_loss, epoch)

        # -- validate
        record = {"epoch": epoch, "phase": phase, "train_loss": round(train_loss, 6)}
        if phase == "pretrain":
            with torch.no_grad():
                model.eval()
                decoder.eval()
                vgen = torch.Generator().manual_seed(cfg.seed)
                vz = torch.from_numpy(z["val"][:8192])
                val_loss = float(mae_loss(model.encoder, decoder, vz, cfg.mask_ratio, vgen))
            writer.add_scalar("losses/val_mae_reconstruction", val_loss, epoch)
            record["val_mae_reconstruction"] = round(val_loss, 6)
            improved = False
        else:
            out = _outputs(model, z["val"])
            if cfg.kind == "plating":
                yv = wins["val"].label
                val_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(out), torch.from_numpy(yv.astype(np.float64))))
                record["val_auroc"] = round(auroc(out, yv), 5)
                writer.add_scalar("eval/val_window_auroc", record["val_auroc"], epoch)
            elif cfg.kind == "degradation":
                val_loss = float(np.mean((out - wins["val"].target / target_scale) ** 2))
                m = degradation_metrics(out * target_scale, wins["val"].target, wins["val"].seq, len(splits["val"]))
                record["val_charge_r2"] = round(m["charge_r2"], 5)
                writer.add_scalar("eval/val_charge_r2", record["val_charge_r2"], epoch)
            else:
                val_loss = float(out.mean())
            writer.add_scalar("losses/val", val_loss, epoch)
            improved = val_loss < best
            if improved:
                best, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        minutes = minutes_before + (time.perf_counter() - t0) / 60
        record.update(val_loss=round(val_loss, 6), minutes=round(minutes, 2))
        history.append(record)
        print(f"epoch {epoch} [{phase}] train {train_loss:.5f} val {val_loss:.5f}"
              + (f" AUROC {record['val_auroc']:.4f}" if "val_auroc" in record else "")
              + (f" charge R2 {record['val_charge_r2']:.4f}" if "val_charge_r2" in record else "")
              + f" ({minutes:.1f} min){'  *' if improved else ''}")
        epoch += 1
        pretrain_over = phase == "pretrain" and (minutes >= cfg.pretrain_max_minutes or epoch >= len(schedule)
                                                  or schedule[epoch] != "pretrain")
        if pretrain_over and not pretrain_done:
            pretrain_done = True
            if epoch < len(schedule) and schedule[epoch] == "pretrain":
                print(f"pretraining budget of {cfg.pretrain_max_minutes} min spent")
        stop = phase == "main" and (stale >= cfg.patience or minutes >= cfg.max_minutes)
        _atomic_save({"model": model.state_dict(), "decoder": decoder.state_dict() if decoder is not None else None,
                      "optimizer": {"phase": phase, "state": opt.state_dict()}, "epoch": len(schedule) if stop else epoch,
                      "best": best, "stale": stale, "history": history, "best_state": best_state,
                      "minutes": minutes, "pretrain_done": pretrain_done, "config": cfg_dict,
                      "torch_rng": torch.get_rng_state()}, last_path)
        if stop:
            print("early stop: no better validation loss" if stale >= cfg.patience else f"time budget of {cfg.max_minutes} min spent")
            break
    writer.flush()

    # -- calibrate the threshold on validation with the best model
    model.load_state_dict(best_state)
    model.eval()
    out_val = _outputs(model, z["val"])
    if cfg.kind == "plating":
        threshold = best_f1_threshold(1 / (1 + np.exp(-out_val)), wins["val"].label)
        threshold_info = {"rule": "probability with the best F1 on validation windows",
                          "validation_windows": int(len(out_val))}
    elif cfg.kind == "degradation":
        threshold, threshold_info = 1.0, {"rule": "none: the degradation estimator predicts an amount (A.h)"}
    else:
        threshold, threshold_info = calibrate_ood_threshold(out_val, wins["val"].seq, cfg.threshold_quantile, cfg.aggregate)
    print(f"threshold {threshold:.5g} ({threshold_info['rule']})")

    # -- test: held-out sequences of the seen families, the unseen family, other chemistries
    data_meta = {
        "path": cfg.data_dir() if dataset is None else "<in memory>", "fingerprint": ds.fingerprint(),
        "sequences": len(ds), "train_sequences": len(splits["train"]), "train_windows": len(wins["train"]),
        "parameter_set": ds.meta.get("parameter_set"), "pybamm_version": ds.meta.get("pybamm_version"),
        "holdout_family": cfg.holdout_family, "dataset_seed": ds.meta.get("seed"),
        "model": ds.meta.get("model"), "degradation_parameter_set": ds.meta.get("degradation_parameter_set"),
    }
    meta = {"kind": cfg.kind, "chemistry": cfg.chemistry, "dt": cfg.dt, "window": window, "seed": cfg.seed,
            "parameters": n_params, "epochs_run": len(history), "train_minutes": round(minutes, 2),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
            "config": cfg_dict, "data": data_meta, "history": history,
            "package_versions": package_versions(), "git_revision": git_revision()}
    blob = make_blob(model, normalizer, cfg.chemistry, cfg.dt, threshold, meta, threshold_info)
    diag = Diagnostic(blob)
    results = {name: evaluate(diag, splits[name], cfg.eval_stride, cfg.aggregate)
               for name in ("val", "test", "holdout") if name in splits}
    if cfg.kind == "ood":
        extra = ood_datasets if ood_datasets is not None else _open_ood_data(cfg)
        for name, other in extra.items():
            results[f"ood:{name}"] = evaluate(diag, other, cfg.eval_stride, cfg.aggregate)
        for name in list(results):
            if name not in ("val", "test") and "test" in results and results[name]["sequences"]:
                results[name]["auroc_vs_test"] = separation(results[name], results["test"])
    metrics = {name: public(m) for name, m in results.items()}
    meta["metrics"] = metrics
    blob["meta"] = meta
    for name, m in metrics.items():
        for k, v in m.items():
            if isinstance(v, float) and not k.startswith("threshold"):
                writer.add_scalar(f"eval/{name}/{k}", v, len(history))
    writer.close()

    # -- publish as the next version; the interrupted-run state is no longer needed
    registry = VersionRegistry(run_dir)
    version = registry.publish(blob, {"threshold_info": threshold_info, "metrics": metrics,
                                      "train_minutes": round(minutes, 2), "data": data_meta})
    last_path.unlink(missing_ok=True)
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    print(f"published {version}: {registry.path(version)}")
    print(json.dumps(metrics, indent=2))
    meta["version"] = version
    return {"version": version, "path": str(registry.path(version)), "meta": meta}


def _check_config(cfg: DiagnosticConfig) -> None:
    if cfg.kind not in DIAGNOSTIC_MODELS:
        raise ValueError(f"unknown diagnostic kind {cfg.kind!r}; valid: {', '.join(DIAGNOSTIC_MODELS)}")
    if cfg.main_epochs() < 1 or cfg.pretrain_epochs < 0:
        raise ValueError("epochs must be >= 1 (0: the kind's default) and pretrain_epochs >= 0")
    if not 0.0 < cfg.label_fraction <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {cfg.label_fraction}")
    if not 0.0 < cfg.threshold_quantile < 1.0:
        raise ValueError(f"threshold_quantile must be in (0, 1), got {cfg.threshold_quantile}")
    if cfg.aggregate not in ("max", "mean"):
        raise ValueError(f"aggregate must be max or mean, got {cfg.aggregate!r}")
    if not 0.0 < cfg.mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {cfg.mask_ratio}")


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
