import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from surrogates.data.dataset import open_dataset
from surrogates.data.generate import DatagenConfig, generate, shard_path
from surrogates.data.protocols import ProtocolConfig
from surrogates.physics.reference import experiment_voltage


def tiny_config(**kw) -> DatagenConfig:
    # 3-minute sequences: long enough to exercise every family, short enough for CI.
    return DatagenConfig(num_sequences=6, shard_size=2, seed=7,
                         protocols=ProtocolConfig(max_duration_s=180.0), **kw)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*.h5"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate(tiny_config(), out, workers=1, progress=False)
    return out


@pytest.mark.slow
def test_round_trip_and_metadata(tiny):
    ds = open_dataset(tiny, dt=10.0, chemistry="nmc")
    assert len(ds) == 6 and ds.arrays["voltage"].shape == (6, 18)
    assert all(a.dtype == np.float32 for a in ds.arrays.values())
    for key in ("pybamm_version", "parameter_set", "dt", "seed", "family", "package_versions", "git_revision"):
        assert key in ds.meta, key
    assert ds.meta["parameter_set"] == "Chen2020" and len(ds.meta["family"]) == 6
    for i, n in enumerate(ds.lengths):
        assert np.all(np.isfinite(ds.arrays["voltage"][i, :n])) and np.all(np.isnan(ds.arrays["voltage"][i, n:]))
    assert np.allclose(ds.initial["soc"], [json.loads(s)["soc0"] for s in ds.specs])


@pytest.mark.slow
def test_sequence_replays_in_pybamm(tiny):
    ds = open_dataset(tiny)
    # The first sequence that stays inside the operating window (the reference stops at 4.2 V).
    i = next(i for i in range(len(ds)) if ds.lengths[i] > 5 and np.nanmax(ds.arrays["voltage_max"][i]) < 4.19
             and np.nanmin(ds.arrays["voltage"][i]) > 2.6)
    n = ds.lengths[i]
    spec = json.loads(ds.specs[i])
    ref = experiment_voltage("nmc", ds.arrays["current"][i, :n].astype(float).round(6), 10.0, spec["soc0"],
                             spec["ambient_temperature"])
    assert np.abs(ds.arrays["voltage"][i, :n] - ref).max() < 2e-3  # < 2 mV


@pytest.mark.slow
def test_same_seed_same_bytes_and_resume(tiny, tmp_path):
    # A run killed after one shard (and a half-written temporary file) resumes to the same bytes.
    config = tiny_config()
    generate(DatagenConfig(**{**config.__dict__}), tmp_path, workers=1, progress=False)
    assert _digest(tmp_path) == _digest(tiny)
    shard_path(tmp_path, 1).unlink()
    shard_path(tmp_path, 2).unlink()
    shard_path(tmp_path, 2).with_suffix(".h5.tmp-999").write_bytes(b"half a shard")
    with pytest.raises(ValueError, match="incomplete"):
        open_dataset(tmp_path)
    assert len(open_dataset(tmp_path, allow_partial=True)) == 2
    summary = generate(config, tmp_path, workers=1, progress=False)
    assert summary["shards_written"] == 2 and summary["shards_done_before"] == 1
    assert _digest(tmp_path) == _digest(tiny)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_other_settings_are_refused(tiny):
    with pytest.raises(ValueError, match="other settings.*seed"):
        generate(DatagenConfig(**{**tiny_config().__dict__, "seed": 8}), tiny, workers=1, progress=False)
    with pytest.raises(ValueError, match="dt=10.0 s, not dt=30"):
        open_dataset(tiny, dt=30.0)
    with pytest.raises(ValueError, match="nmc"):
        open_dataset(tiny, chemistry="lfp")
    with pytest.raises(FileNotFoundError, match="generate_data.py"):
        open_dataset(tiny / "nowhere")
    with pytest.raises(ValueError, match="valid chemistries"):
        generate(DatagenConfig(chemistry="nca", num_sequences=1), tiny / "nca", workers=1, progress=False)


def test_splits_by_sequence_with_holdout_family(tiny):
    ds = open_dataset(tiny)
    family = str(ds.families[0])
    split = ds.split(val_fraction=0.2, test_fraction=0.2, holdout_family=family)
    rows = np.concatenate(list(split.values()))
    assert len(rows) == len(np.unique(rows)) == int((ds.lengths >= 1).sum())
    assert set(ds.families[split["holdout"]]) == {family}
    for name in ("train", "val", "test"):
        assert family not in set(ds.families[split[name]])
    assert all(np.array_equal(split[k], ds.split(0.2, 0.2, holdout_family=family)[k]) for k in split)
    sub = ds.subset(split["holdout"])
    assert len(sub) == len(split["holdout"]) and set(sub.meta["family"]) == {family}


@pytest.mark.slow
def test_parallel_workers_give_the_same_data(tiny, tmp_path):
    generate(tiny_config(), tmp_path, workers=2, progress=False)
    assert _digest(tmp_path) == _digest(tiny)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (extra: distributed)")
@pytest.mark.slow
def test_ray_backend_gives_the_same_data(tiny, tmp_path):
    generate(tiny_config(), tmp_path, workers=2, backend="ray", progress=False)
    assert _digest(tmp_path) == _digest(tiny)


@pytest.mark.slow
def test_generate_data_script(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "experiments"))
    import generate_data

    summary = generate_data.main(["--num-sequences", "2", "--shard-size", "2", "--protocols.max-duration-s", "60",
                                  "--workers", "1", "--out", str(tmp_path / "d")])
    assert summary["sequences"] == 2
    assert len(open_dataset(tmp_path / "d")) == 2


@pytest.mark.slow
def test_degradation_dataset_records_capacity_lost(tmp_path):
    """The degradation estimator's data: the same pipeline, plus the DFN's lithium-inventory loss."""
    protocols = ProtocolConfig(family_weights={"cccv": 1.0}, max_duration_s=300.0)
    config = DatagenConfig(chemistry="nmc", num_sequences=2, seed=3, shard_size=2, protocols=protocols, degradation=True)
    generate(config, tmp_path, workers=1, progress=False)
    ds = open_dataset(tmp_path)
    assert "capacity_lost" in ds.arrays and ds.meta["degradation_parameter_set"] == "OKane2022"
    assert ds.meta["channels"]["capacity_lost"] == "A.h"
    for i, n in enumerate(ds.lengths):
        lost = ds.arrays["capacity_lost"][i, :n]
        assert n > 0 and np.all(lost > 0) and np.all(np.diff(lost) > 0)  # a charge only loses lithium
    with pytest.raises(ValueError, match="no degradation parameters"):
        generate(DatagenConfig(chemistry="lfp", num_sequences=1, degradation=True), tmp_path / "lfp", workers=1,
                 progress=False)


@pytest.mark.slow
def test_manifest_carries_the_rest_tables_and_older_manifests_get_them(tmp_path):
    from surrogates.models.features import Featurizer

    generate(DatagenConfig(num_sequences=2, shard_size=2, seed=1, protocols=ProtocolConfig(max_duration_s=60.0)),
             tmp_path / "d", workers=1, progress=False)
    ds = open_dataset(tmp_path / "d")
    assert Featurizer.from_dataset(ds).ocv == Featurizer.from_dfn("nmc").ocv
    manifest = tmp_path / "d" / "dataset.json"
    old = json.loads(manifest.read_text())
    del old["tables"]
    manifest.write_text(json.dumps(old))
    assert open_dataset(tmp_path / "d").tables == ds.tables
    assert "tables" in json.loads(manifest.read_text())  # written back, once
