"""What a dataset folder holds, readable without PyBaMM: the generation settings and the file layout.

Layout of a dataset folder::

    DIR/dataset.json        manifest: settings, provenance, rest tables, shard list (written first)
    DIR/shard-00000.h5      sequences [0, shard_size), one file per shard
    ...

The manifest's ``tables`` (OCV and plating margin at rest vs SOC, and the capacity; see
:mod:`surrogates.physics.rest_tables`) are what training needs from the physics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from surrogates.common.channels import DEFAULT_DT, DEGRADATION_CHANNELS, INPUT_CHANNELS, OUTPUT_CHANNELS
from surrogates.data.protocols import ProtocolConfig

DATASET_CHANNELS: tuple[str, ...] = INPUT_CHANNELS + OUTPUT_CHANNELS
"""Channels of every dataset; one made with ``degradation=True`` adds :data:`DEGRADATION_CHANNELS`."""
MANIFEST = "dataset.json"
FORMAT_VERSION = 1


@dataclass
class DatagenConfig:
    """What to simulate. Two runs with equal configs write identical data."""

    chemistry: str = "nmc"
    """Chemistry name (``nmc``, ``lfp``)."""
    num_sequences: int = 3000
    """Number of protocol sequences."""
    seed: int = 0
    """Master seed; sequence i uses ``default_rng([seed, i])``."""
    dt: float = DEFAULT_DT
    """Control interval [s]."""
    shard_size: int = 25
    """Sequences per shard file (the unit of resumption)."""
    substeps: int = 5
    """Samples per interval for the interval extremes."""
    protocols: ProtocolConfig = field(default_factory=ProtocolConfig)
    """The protocol distribution."""
    degradation: bool = False
    """Simulate with SEI growth and lithium plating (``DFNSimulator(degradation=True)``) and record
    ``capacity_lost`` [A.h]: the data of the degradation estimator."""

    @property
    def channels(self) -> tuple[str, ...]:
        """Channels this dataset records."""
        return DATASET_CHANNELS + (DEGRADATION_CHANNELS if self.degradation else ())

    @property
    def max_steps(self) -> int:
        return int(round(self.protocols.max_duration_s / self.dt))

    @property
    def num_shards(self) -> int:
        return (self.num_sequences + self.shard_size - 1) // self.shard_size

    def shard_range(self, shard: int) -> tuple[int, int]:
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.num_sequences)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DatagenConfig":
        d = dict(d)
        proto = dict(d.pop("protocols", {}))
        for key in ("ambient_c", "charge_soc0", "any_soc0", "soc_bounds"):
            if key in proto:
                proto[key] = tuple(proto[key])
        return cls(protocols=ProtocolConfig(**proto), **d)


def shard_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / f"shard-{shard:05d}.h5"
