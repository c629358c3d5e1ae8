"""Settings every training run shares (surrogates and diagnostics extend them), and the split they train on."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surrogates.common.channels import DEFAULT_DT


@dataclass
class TrainingConfig:
    """What the training loop (:func:`surrogates.training.loop.fit`) reads; a model's config adds its own fields."""

    chemistry: str = "nmc"
    """Chemistry of the dataset (checked against it)."""
    data: str = ""
    """Dataset folder made by experiments/generate_data.py; '' = the model's default folder."""
    out: str = ""
    """Run folder; '' = the model's default (runs/...)."""
    dt: float = DEFAULT_DT
    """Control interval [s]; the dataset must have been made for it."""
    seed: int = 0
    """Seed for initialisation, batch order, masks and the split."""
    holdout_family: str = "pulse"
    """Protocol family kept out of training entirely (tested separately); '' for none."""
    val_fraction: float = 0.1
    """Share of sequences for validation (model selection, early stopping, thresholds)."""
    test_fraction: float = 0.1
    """Share of sequences for the final test."""
    min_length: int = 2
    """Shortest sequence in the split [intervals]."""
    max_sequences: int = 0
    """Use only the first N sequences of the dataset (0: all); for smoke tests."""
    batch_size: int = 16
    """Training examples per optimiser step (per process under torchrun)."""
    lr: float = 3e-3
    """Peak learning rate (AdamW): linear warm-up, then cosine decay to lr/20 over each scheduled phase."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices."""
    warmup_steps: int = 50
    """Linear warm-up optimiser steps at the start of each scheduled phase."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    max_epochs: int = 40
    """Epochs of the supervised phase (the cosine schedule's length)."""
    pretrain_epochs: int = 0
    """Epochs of self-supervised pretraining before it, for a model that has one (0: none)."""
    max_minutes: float = 40.0
    """Wall-clock budget; training stops (keeping the best checkpoint) once it is spent and a best exists."""
    patience: int = 8
    """Stop after this many supervised epochs without a better validation loss."""
    model: dict = field(default_factory=dict)
    """Overrides of the network's config, e.g. {d_model: 32, n_layer: 2}."""
    threads: int = 0
    """torch CPU threads (0: all cores)."""
    device: str = "auto"
    """cpu, cuda or auto (cuda:<LOCAL_RANK> when there is one)."""
    resume: bool = True
    """Continue from out/last.pt when it exists with the same config."""
    progress: bool = True
    """Show a progress bar."""

    def data_dir(self) -> str:
        return self.data or f"data/{self.chemistry}"

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.chemistry}")

    def to_dict(self) -> dict:
        """The config as JSON-ready values (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict):
        """A config from :meth:`to_dict` output; settings this version no longer has are dropped (old checkpoints)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        for k, v in values.items():
            if isinstance(v, list) and isinstance(getattr(cls(), k), tuple):
                values[k] = tuple(v)
        return cls(**values)


RESUME_INDIFFERENT = ("resume", "progress", "threads", "device")
"""Settings a run may change when it resumes (they do not change what is computed)."""


def load_split(cfg: TrainingConfig, dataset=None) -> tuple[dict, object]:
    """The dataset (opened from ``cfg.data_dir()`` unless given) and its split ``{name: Dataset}``:
    ``train``, ``val``, ``test`` and, with ``cfg.holdout_family``, ``holdout`` (see ``Dataset.split``)."""
    from surrogates.data.dataset import open_dataset

    ds = dataset if dataset is not None else open_dataset(cfg.data_dir(), dt=cfg.dt, chemistry=cfg.chemistry)
    if cfg.max_sequences:
        ds = ds.subset(np.arange(min(cfg.max_sequences, len(ds))))
    rows = ds.split(cfg.val_fraction, cfg.test_fraction, seed=cfg.seed, holdout_family=cfg.holdout_family or None,
                    min_length=cfg.min_length)
    return {name: ds.subset(r) for name, r in rows.items()}, ds


def data_meta(cfg: TrainingConfig, ds, splits: dict, dataset_given: bool, **extra) -> dict:
    """Provenance of the training data for a checkpoint's ``meta["data"]``."""
    return {
        "path": "<in memory>" if dataset_given else cfg.data_dir(), "fingerprint": ds.fingerprint(),
        "sequences": len(ds), "train_sequences": len(splits["train"]),
        "parameter_set": ds.meta.get("parameter_set"), "pybamm_version": ds.meta.get("pybamm_version"),
        "holdout_family": cfg.holdout_family, "dataset_seed": ds.meta.get("seed"), **extra,
    }
