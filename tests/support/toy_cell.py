"""Support for tests (not a test module): a toy cell's dataset in memory (no DFN, no data folder), for the
diagnostics' and the training loop's tests; a plain module so that spawned DDP ranks can import it."""

import json

import numpy as np

from surrogates.data.dataset import Dataset

FAMILIES = ("random_steps", "cccv", "multistep_cc", "random_walk", "pulse")


def toy_dataset(n: int = 60, length: int = 72, seed: int = 0, slope: float = 0.8, resistance: float = 0.02) -> Dataset:
    """A toy cell: random current steps, V = OCV(soc) - R I, first-order heating, and a plating
    margin that goes negative when charging hard at high SOC. ``slope`` [V per unit SOC] and
    ``resistance`` [ohm] make another "chemistry" (a flat OCV and a higher resistance look like LFP).
    The manifest carries the cell's rest tables (OCV, U_n vs SOC, capacity), as a generated dataset's does."""
    rng = np.random.default_rng(seed)
    dt, cap = 10.0, 5.0
    L = length + 8
    arrays = {k: np.full((n, L), np.nan, np.float32) for k in
              ("current", "ambient_temperature", "voltage", "temperature", "plating_margin", "soc",
               "voltage_max", "temperature_max", "plating_margin_min", "capacity_lost", "lithium_irreversible")}
    lengths = np.where(np.arange(n) % 10 == 9, 20, length).astype(np.int32)  # some shorter than a window
    soc0 = rng.uniform(0.1, 0.5, n)
    amb = rng.uniform(288.0, 308.0, n)
    for i in range(n):
        cur, k = [], 0
        while k < lengths[i]:
            seg = int(rng.integers(3, 12))
            cur += [float(rng.choice([-20.0, -12.0, -5.0, 0.0, 4.0]))] * seg
            k += seg
        cur = np.array(cur[:lengths[i]])
        soc = np.clip(soc0[i] - np.cumsum(cur) * dt / 3600 / cap, 0, 1)
        temp = amb[i] + np.convolve(cur ** 2 * resistance, np.exp(-np.arange(30) / 10.0))[:len(cur)]
        v = 3.3 + slope * soc - resistance * cur
        eta = 0.25 - 0.3 * soc + 0.008 * cur + 0.002 * (temp - 298.0)
        m = lengths[i]
        # lithium lost for good per interval: SEI-like (grows with SOC and T) plus plating-like (charging below eta = 0)
        loss = 1e-6 * (1 + soc) * np.exp((temp - 298.0) / 20) + 2e-5 * np.maximum(0.0, -eta) * np.abs(cur)
        for name, val in (("current", cur), ("voltage", v), ("temperature", temp), ("plating_margin", eta), ("soc", soc),
                          ("capacity_lost", np.cumsum(loss)), ("lithium_irreversible", np.cumsum(loss)),
                          ("voltage_max", v), ("temperature_max", temp), ("plating_margin_min", eta - 0.01),
                          ("ambient_temperature", np.full(m, amb[i]))):
            arrays[name][i, :m] = val
    fam = np.array([FAMILIES[i % len(FAMILIES)] for i in range(n)])
    specs = np.array([json.dumps({"ambient_temperature": float(a)}) for a in amb])
    grid = np.linspace(0.0, 1.0, 11)
    tables = {"soc_grid": grid.tolist(), "ocv": (3.3 + slope * grid).tolist(), "u_neg": (0.25 - 0.3 * grid).tolist(),
              "capacity_ah": cap, "temperature": 298.15}
    meta = {"dt": dt, "parameter_set": "toy", "pybamm_version": "none", "seed": seed, "chemistry": "nmc", "tables": tables}
    initial = {"soc": soc0.astype(np.float32), "ambient_temperature": amb.astype(np.float32)}
    return Dataset(arrays=arrays, lengths=lengths, initial=initial,
                   families=fam, terminations=np.array(["end"] * n), specs=specs, indices=np.arange(n), meta=meta)
