"""Read a generated dataset: arrays per channel, lengths, initial state, metadata, splits.

>>> ds = open_dataset("data/nmc", dt=10.0)        # refuses a dataset made for another dt
>>> ds.arrays["voltage"].shape                     # (n_sequences, n_steps), float32, NaN-padded
>>> split = ds.split(val_fraction=0.1, test_fraction=0.1, holdout_family="pulse")
>>> train = ds.subset(split["train"])
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from surrogates.common.files import atomic_write_text
from surrogates.data.protocols import FAMILIES
from surrogates.data.schema import MANIFEST, DatagenConfig, shard_path


@dataclass
class Dataset:
    """Sequences of a DFN dataset held in memory.

    Attributes:
        arrays: channel -> float32 ``[n_sequences, n_steps]``, NaN after each length.
        lengths: int32 ``[n_sequences]``, valid intervals per sequence.
        initial: ``{"soc": float32 [n_sequences], "ambient_temperature": float32 [n_sequences]}``.
        families: protocol family per sequence (numpy array of str).
        terminations: why each sequence ended (numpy array of str).
        specs: the protocol of each sequence as JSON (replayable).
        indices: global sequence index of each row (a subset keeps the originals).
        meta: manifest: ``pybamm_version``, ``parameter_set``, ``dt``, ``seed``,
            ``package_versions``, ``git_revision``, ``config``... plus ``family`` per sequence.
    """

    arrays: dict[str, np.ndarray]
    lengths: np.ndarray
    initial: dict[str, np.ndarray]
    families: np.ndarray
    terminations: np.ndarray
    specs: np.ndarray
    indices: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return int(len(self.lengths))

    @property
    def dt(self) -> float:
        return float(self.meta["dt"])

    @property
    def tables(self) -> dict:
        """Rest tables of the cell (OCV, U_n vs SOC, capacity): see :mod:`surrogates.physics.rest_tables`."""
        return self.meta["tables"]

    def subset(self, rows: np.ndarray) -> "Dataset":
        """The sequences at ``rows`` (positions in this dataset)."""
        rows = np.asarray(rows, dtype=np.int64)
        meta = dict(self.meta)
        meta["family"] = [str(f) for f in self.families[rows]]
        return Dataset(
            arrays={k: v[rows] for k, v in self.arrays.items()},
            lengths=self.lengths[rows],
            initial={k: v[rows] for k, v in self.initial.items()},
            families=self.families[rows],
            terminations=self.terminations[rows],
            specs=self.specs[rows],
            indices=self.indices[rows],
            meta=meta,
        )

    def split(self, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
              holdout_family: str | None = None, min_length: int = 1) -> dict[str, np.ndarray]:
        """Split by sequence into ``train``/``val``/``test`` row indices (and ``holdout``).

        Sequences shorter than ``min_length`` are left out of every split. With
        ``holdout_family``, every sequence of that protocol family goes to ``holdout`` and
        none to the other splits, to measure generalisation to an unseen protocol family.
        The split depends on ``seed`` and the sequences' global indices only.
        """
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum to < 1")
        if holdout_family is not None and holdout_family not in FAMILIES:
            raise ValueError(f"unknown protocol family {holdout_family!r}; valid families are: {', '.join(FAMILIES)}")
        usable = np.flatnonzero(self.lengths >= min_length)
        held = usable[self.families[usable] == holdout_family] if holdout_family else usable[:0]
        rest = np.setdiff1d(usable, held)
        # Order by a hash of the global index so a split does not change when shards are added.
        keys = np.array([_hash_index(seed, int(i)) for i in self.indices[rest]])
        rest = rest[np.argsort(keys, kind="stable")]
        n_val, n_test = int(round(val_fraction * len(rest))), int(round(test_fraction * len(rest)))
        out = {
            "val": np.sort(rest[:n_val]),
            "test": np.sort(rest[n_val:n_val + n_test]),
            "train": np.sort(rest[n_val + n_test:]),
        }
        if holdout_family:
            out["holdout"] = np.sort(held)
        return out

    def fingerprint(self) -> str:
        """SHA-256 over the arrays and lengths: names the exact data a model was trained on."""
        h = hashlib.sha256()
        for ch in sorted(self.arrays):
            h.update(ch.encode())
            h.update(np.ascontiguousarray(self.arrays[ch]).tobytes())
        h.update(self.lengths.tobytes())
        return h.hexdigest()[:16]


def _add_rest_tables(manifest_path: Path, meta: dict) -> dict:
    """Datasets made before manifests carried the rest tables get them once (this needs PyBaMM)."""
    try:
        from surrogates.physics.rest_tables import rest_tables
    except ImportError as err:
        raise ImportError(f"{manifest_path} predates rest tables in the manifest and PyBaMM is not importable "
                          f"to add them ({err}); open it once where PyBaMM is installed") from None
    print(f"adding the rest tables (OCV, U_n, capacity) of {meta['chemistry']} to {manifest_path} (once)")
    meta = {**meta, "tables": rest_tables(meta["chemistry"])}
    atomic_write_text(manifest_path, json.dumps(meta, indent=2, sort_keys=True))
    return meta


def _hash_index(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest(), "little")


def open_dataset(path: str | Path, dt: float | None = None, chemistry: str | None = None,
                 allow_partial: bool = False) -> Dataset:
    """Load the dataset in folder ``path``.

    ``dt`` / ``chemistry``, if given, must match what the dataset was made for (a surrogate
    trained for one ``dt`` is wrong for another). A dataset whose generation has not
    finished is refused unless ``allow_partial``; then the finished shards are loaded.
    """
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{root} is not a dataset folder (no {MANIFEST}); make one with "
            f"`python experiments/generate_data.py --out {root}`"
        )
    meta = json.loads(manifest_path.read_text())
    if "tables" not in meta:
        meta = _add_rest_tables(manifest_path, meta)
    config = DatagenConfig.from_dict(meta["config"])
    if dt is not None and abs(float(dt) - float(meta["dt"])) > 1e-9:
        raise ValueError(f"{root} was made for dt={meta['dt']} s, not dt={dt} s; regenerate it with --dt {dt}")
    if chemistry is not None and chemistry != meta["chemistry"]:
        raise ValueError(f"{root} holds {meta['chemistry']} ({meta['parameter_set']}) data, not {chemistry}")

    shards = [s for s in range(config.num_shards) if shard_path(root, s).exists()]
    missing = config.num_shards - len(shards)
    if missing and not allow_partial:
        raise ValueError(
            f"{root} is incomplete: {missing} of {config.num_shards} shards missing; finish it by rerunning "
            "generate_data.py with the same settings (it resumes), or pass allow_partial=True"
        )
    if not shards:
        raise ValueError(f"{root} holds no finished shards yet")

    channels = config.channels
    parts: dict[str, list] = {k: [] for k in (*channels, "lengths", "initial_soc", "family", "termination", "spec", "index")}
    for s in shards:
        with h5py.File(shard_path(root, s), "r") as f:
            for ch in channels:
                parts[ch].append(f[ch][...])
            parts["lengths"].append(f["lengths"][...])
            parts["initial_soc"].append(f["initial_soc"][...])
            for key in ("family", "termination", "spec"):
                parts[key].append(f[key].asstr()[...])
            start = int(f.attrs["first_sequence"])
            parts["index"].append(np.arange(start, start + len(f["lengths"])))
    arrays = {ch: np.concatenate(parts[ch]) for ch in channels}
    families = np.concatenate(parts["family"]).astype(str)
    meta["family"] = [str(f) for f in families]
    meta["shards_loaded"] = len(shards)
    specs = np.concatenate(parts["spec"]).astype(str)
    return Dataset(
        arrays=arrays,
        lengths=np.concatenate(parts["lengths"]),
        initial={
            "soc": np.concatenate(parts["initial_soc"]),
            # The cell starts at the ambient temperature, which is constant per sequence.
            "ambient_temperature": np.array([json.loads(s)["ambient_temperature"] for s in specs], dtype=np.float32)
            if len(specs) else np.empty(0, np.float32),
        },
        families=families,
        terminations=np.concatenate(parts["termination"]).astype(str),
        specs=specs,
        indices=np.concatenate(parts["index"]),
        meta=meta,
    )
