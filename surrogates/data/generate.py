"""Simulate randomized protocols on the DFN into a sharded, resumable HDF5 dataset.

The folder layout and the settings are in :mod:`surrogates.data.schema`. Sequence ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` alone, so the data do
not depend on the number of workers or on which shards were already on disk: a killed
run resumes by skipping the finished shards (each written to a temporary file and renamed,
so a shard on disk is always complete) and produces the same bytes as an uninterrupted run.

Each HDF5 shard holds, per channel of :mod:`surrogates.common.channels`, a float32 array
``[n_sequences, max_steps]`` padded with NaN after each sequence's length, plus
``lengths``, ``initial_soc``, ``family``, ``termination`` and ``spec`` (the protocol as
JSON, enough to replay it).

The one worker function, :func:`simulate_shard`, runs in a local process pool or as Ray
tasks (``backend="ray"``, extra ``distributed``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from surrogates.common.channels import INPUT_CHANNELS, UNITS
from surrogates.common.files import atomic_path, atomic_write_text
from surrogates.common.metadata import git_revision, package_versions
from surrogates.data.protocols import Observation, ProtocolSpec, build_protocol, sample_spec
from surrogates.data.schema import FORMAT_VERSION, MANIFEST, DatagenConfig, shard_path
from surrogates.physics.dfn import DFNSimulator, DFNSolverError, SimulationWindowError
from surrogates.physics.rest_tables import rest_tables

def spec_for(config: DatagenConfig, index: int) -> ProtocolSpec:
    """The protocol of sequence ``index``: a function of (seed, index) and nothing else."""
    return sample_spec(np.random.default_rng([config.seed, index]), config.protocols)


# --------------------------------------------------------------------------- one sequence
def simulate_spec(sim: DFNSimulator, spec: ProtocolSpec, max_steps: int) -> dict:
    """Run one protocol on ``sim`` until it ends, leaves the window, fails, or hits ``max_steps``.

    Returns ``{"arrays": {channel: float64 [length]}, "length", "termination", "message"}``;
    ``termination`` is one of ``protocol_end``, ``max_duration``, ``simulation_window``,
    ``solver_failure``.
    """
    init = sim.reset(spec.soc0, spec.ambient_temperature)
    protocol = build_protocol(spec, one_c=sim.one_c, v_max=sim.chemistry.v_max, dt=sim.dt)
    protocol.max_steps = min(protocol.max_steps, max_steps)
    obs = Observation(step=0, soc=init["soc"], voltage=init["voltage"], voltage_max=init["voltage_max"],
                      temperature=init["temperature"], current=0.0)
    pieces: list[dict[str, np.ndarray]] = []
    termination, message = "max_duration", ""
    while True:
        decision = protocol.next(obs)
        if decision is None:
            termination = "max_duration" if obs.step >= protocol.max_steps else "protocol_end"
            break
        current, n = decision
        failed = False
        try:
            out = sim.run(current, n)
        except SimulationWindowError as err:
            out, termination, message, failed = err.partial, "simulation_window", str(err), True
        except DFNSolverError as err:
            out, termination, message, failed = err.partial, "solver_failure", str(err), True
        k = len(out["voltage"])
        if k:
            out = dict(out)
            out["current"] = np.full(k, current)
            out["ambient_temperature"] = np.full(k, spec.ambient_temperature)
            pieces.append(out)
            obs = Observation(step=obs.step + k, soc=float(out["soc"][-1]), voltage=float(out["voltage"][-1]),
                              voltage_max=float(out["voltage_max"][-1]), temperature=float(out["temperature"][-1]),
                              current=current)
        if failed:
            break
    channels = INPUT_CHANNELS + sim.channels
    arrays = {ch: (np.concatenate([p[ch] for p in pieces]) if pieces else np.empty(0)) for ch in channels}
    return {"arrays": arrays, "length": int(len(arrays["voltage"])), "termination": termination, "message": message}


# --------------------------------------------------------------------------- one shard
_SIMULATORS: dict[tuple, DFNSimulator] = {}


def _simulator(config: DatagenConfig) -> DFNSimulator:
    """One DFN per worker process and settings: building it costs about a second."""
    key = (config.chemistry, config.dt, config.substeps, config.degradation)
    if key not in _SIMULATORS:
        _SIMULATORS[key] = DFNSimulator(config.chemistry, dt=config.dt, substeps=config.substeps,
                                        degradation=config.degradation)
    return _SIMULATORS[key]


def simulate_shard(config_dict: dict, shard: int, out_dir: str) -> dict:
    """Simulate shard ``shard`` of the dataset and write it atomically. Ray- and pickle-friendly.

    Returns a summary: shard index, sequences, simulated steps, terminations.
    """
    config = DatagenConfig.from_dict(config_dict)
    sim = _simulator(config)
    start, stop = config.shard_range(shard)
    n, width = stop - start, config.max_steps
    data = {ch: np.full((n, width), np.nan, dtype=np.float32) for ch in config.channels}
    lengths = np.zeros(n, dtype=np.int32)
    initial_soc = np.zeros(n, dtype=np.float32)
    families, terminations, specs, messages = [], [], [], []
    for j, index in enumerate(range(start, stop)):
        spec = spec_for(config, index)
        result = simulate_spec(sim, spec, width)
        length = result["length"]
        for ch in config.channels:
            data[ch][j, :length] = result["arrays"][ch]
        lengths[j] = length
        initial_soc[j] = spec.soc0
        families.append(spec.family)
        terminations.append(result["termination"])
        specs.append(spec.to_json())
        messages.append(result["message"])

    path = shard_path(out_dir, shard)
    strings = h5py.string_dtype()
    # track_times=False: HDF5 would otherwise stamp creation times and the same seed
    # would not give the same bytes.
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["shard"] = shard
        f.attrs["first_sequence"] = start
        f.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        for ch in config.channels:
            ds = f.create_dataset(ch, data=data[ch], compression="gzip", compression_opts=4, shuffle=True,
                                  track_times=False)
            ds.attrs["units"] = UNITS[ch]
        f.create_dataset("lengths", data=lengths, track_times=False)
        f.create_dataset("initial_soc", data=initial_soc, track_times=False)
        f.create_dataset("family", data=np.array(families, dtype=object), dtype=strings, track_times=False)
        f.create_dataset("termination", data=np.array(terminations, dtype=object), dtype=strings, track_times=False)
        f.create_dataset("spec", data=np.array(specs, dtype=object), dtype=strings, track_times=False)
        f.create_dataset("message", data=np.array(messages, dtype=object), dtype=strings, track_times=False)
    return {
        "shard": shard,
        "sequences": n,
        "steps": int(lengths.sum()),
        "terminations": {t: terminations.count(t) for t in sorted(set(terminations))},
    }


# --------------------------------------------------------------------------- the dataset
def write_manifest(config: DatagenConfig, out_dir: str | Path) -> dict:
    """Write (or check) ``dataset.json``; refuse a folder holding a dataset of other settings."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    settings = config.to_dict()
    if path.exists():
        existing = json.loads(path.read_text())
        if existing["config"] != json.loads(json.dumps(settings)):
            diff = sorted(k for k in settings if existing["config"].get(k) != json.loads(json.dumps(settings[k])))
            raise ValueError(
                f"{out} already holds a dataset made with other settings (differs in: {', '.join(diff)}); "
                "resume with the same settings or choose another --out"
            )
        return existing
    from surrogates.physics.chemistry import get_chemistry

    chem = get_chemistry(config.chemistry)
    if config.degradation:
        chem.degradation_parameters()  # a chemistry without them fails here, before any work
    import pybamm
    from surrogates.physics.chemistry import DEGRADATION_OPTIONS

    manifest = {
        "format_version": FORMAT_VERSION,
        "config": settings,
        "chemistry": chem.name,
        "parameter_set": chem.parameter_set,
        "cell": chem.cell,
        "dt": config.dt,
        "seed": config.seed,
        "pybamm_version": pybamm.__version__,
        "model": "DFN, lumped thermal" + (f", {DEGRADATION_OPTIONS}" if config.degradation else ""),
        "degradation_parameter_set": chem.degradation_parameter_set if config.degradation else None,
        "package_versions": package_versions(),
        "git_revision": git_revision(),
        "channels": {ch: UNITS[ch] for ch in config.channels},
        "num_shards": config.num_shards,
        # What the surrogates subtract (OCV, U_n) and count with (capacity): read by training
        # and featurizers without PyBaMM.
        "tables": rest_tables(chem.name),
    }
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def pending_shards(config: DatagenConfig, out_dir: str | Path) -> list[int]:
    """Shards not yet on disk (stray temporary files from a killed run are removed)."""
    out = Path(out_dir)
    for stray in out.glob("shard-*.h5.tmp-*"):
        stray.unlink(missing_ok=True)
    return [s for s in range(config.num_shards) if not shard_path(out, s).exists()]


def generate(config: DatagenConfig, out_dir: str | Path, workers: int | None = None, backend: str = "local",
             progress: bool = True) -> dict:
    """Simulate every pending shard of ``config`` into ``out_dir``; returns a summary.

    ``backend``: ``local`` (a process pool of ``workers``, all cores by default; ``workers=1``
    runs in this process) or ``ray`` (the same worker as Ray tasks; connects to a running
    cluster if ``RAY_ADDRESS`` is set, else starts a local one with ``workers`` CPUs).
    """
    from tqdm.auto import tqdm

    write_manifest(config, out_dir)
    todo = pending_shards(config, out_dir)
    workers = workers or os.cpu_count() or 1
    done_before = config.num_shards - len(todo)
    summary = {"shards_done_before": done_before, "shards_written": 0, "sequences": 0, "steps": 0, "terminations": {}}
    bar = tqdm(total=config.num_sequences, initial=done_before * config.shard_size if todo else config.num_sequences,
               unit="seq", desc=f"DFN {config.chemistry}", disable=not progress)
    cfg = config.to_dict()

    def record(result: dict) -> None:
        summary["shards_written"] += 1
        summary["sequences"] += result["sequences"]
        summary["steps"] += result["steps"]
        for k, v in result["terminations"].items():
            summary["terminations"][k] = summary["terminations"].get(k, 0) + v
        bar.update(result["sequences"])

    try:
        if backend == "local" and (workers == 1 or len(todo) <= 1):
            for shard in todo:
                record(simulate_shard(cfg, shard, str(out_dir)))
        elif backend == "local":
            import multiprocessing as mp

            # spawn: PyBaMM/CasADi objects must not be shared across fork.
            with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
                jobs = [(cfg, s, str(out_dir)) for s in todo]
                for result in pool.imap_unordered(_simulate_shard_star, jobs):
                    record(result)
        elif backend == "ray":
            _generate_ray(cfg, todo, str(out_dir), workers, record)
        else:
            raise ValueError(f"backend must be 'local' or 'ray', not {backend!r}")
    finally:
        bar.close()
    return summary


def _simulate_shard_star(args: tuple) -> dict:
    return simulate_shard(*args)


def _generate_ray(cfg: dict, todo: list[int], out_dir: str, workers: int, record) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install -e '.[distributed]'") from None
    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init()
        else:
            # Workers import this package as the driver does, also when it runs from a checkout
            # without installing (the scripts put the checkout on sys.path; workers start fresh).
            root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path}})
        started = True
    try:
        task = ray.remote(num_cpus=1)(simulate_shard)
        pending = [task.remote(cfg, s, out_dir) for s in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                record(ray.get(ref))
    finally:
        if started:
            ray.shutdown()
