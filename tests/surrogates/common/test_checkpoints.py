"""Checkpoints are data, not code: every loader reads with weights_only=True through one helper, and a crafted,
truncated or foreign file raises CheckpointError before anything in it runs."""

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from surrogates import load_surrogate
from surrogates.common.checkpoints import CheckpointError, load_checkpoint, plain, upgrade, write_checkpoint
from surrogates.diagnostics import DiagnosticCheckpointError, life, load_diagnostic
from surrogates.physics.chemistry import SHIPPED_CELLS_DIR
from surrogates.training import loop

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "surrogates").glob("**/*.pt"))


class _Pwn:
    """Unpickling this opens (creates) a file: what a crafted checkpoint's code could do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def _crafted(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 2, "arch": "jepa", "kind": "plating", "chemistry": "x", "meta": _Pwn(target)}, path)
    return path


def _truncated(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.arange(10_000.0)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a README, not a checkpoint\n")
    return path


def _user_cell(root: Path, name: str = "mycell") -> Path:
    data = yaml.safe_load((SHIPPED_CELLS_DIR / "nmc.yml").read_text())
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "cell.yml").write_text(yaml.safe_dump({**data, "name": name}))
    return folder


def _training_resume(path: Path):
    """A training run whose out folder holds ``path`` as last.pt, resumed."""
    from surrogates.training.surrogate import TrainConfig, train
    from tests.support.toy_cell import toy_dataset

    out = path.parent
    if path.name != "last.pt":
        (out / "last.pt").write_bytes(path.read_bytes())
    cfg = TrainConfig(arch="jepa", out=str(out), data="<toy>", batch_size=8, pretrain_epochs=1, readout_epochs=1,
                      max_epochs=1, val_fraction=0.2, test_fraction=0.2, holdout_family="", threads=1, progress=False,
                      model={"d_latent": 8, "n_layer": 1, "d_action": 4, "d_embed": 4, "d_hidden": 8, "horizon": 2,
                             "n_cuts": 1})
    return train(cfg, dataset=toy_dataset(n=10, length=20))


LOADERS = {
    "load_surrogate(path)": lambda p: load_surrogate("nmc", "jepa", path=p),
    "load_diagnostic(path)": lambda p: load_diagnostic("plating", "nmc", path=p),
    "life.load": life.load,
    "load_checkpoint": load_checkpoint,
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_crafted_pickle_runs_nothing_and_raises(loader, tmp_path):
    pwned = tmp_path / "pwned"
    path = _crafted(tmp_path / "ckpt.pt", pwned)
    with pytest.raises(CheckpointError) as err:
        LOADERS[loader](path)
    assert not pwned.exists()
    assert str(path) in str(err.value) and "upgrade" in str(err.value) and "re-download or retrain" in str(err.value)


def test_a_crafted_pickle_in_a_user_cell_folder_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLGYM_CELLS", str(tmp_path / "cells"))
    folder = _user_cell(tmp_path / "cells")
    pwned = tmp_path / "pwned"
    _crafted(folder / "surrogates" / "mycell-jepa.pt", pwned)
    _crafted(folder / "diagnostics" / "mycell-plating.pt", pwned)
    with pytest.raises(CheckpointError, match="mycell-jepa.pt"):
        load_surrogate("mycell", "jepa")
    with pytest.raises(DiagnosticCheckpointError, match="mycell-plating.pt"):
        load_diagnostic("plating", "mycell")
    assert not pwned.exists()


def test_a_crafted_last_pt_stops_the_training_resume_before_it_runs(tmp_path):
    pwned = tmp_path / "pwned"
    path = _crafted(tmp_path / "run" / "last.pt", pwned)
    with pytest.raises(CheckpointError, match="last.pt"):
        _training_resume(path)
    assert not pwned.exists()


@pytest.mark.parametrize("bad", [_truncated, _text])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_truncated_and_text_files_raise_checkpoint_error(loader, bad, tmp_path):
    path = bad(tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError) as err:
        LOADERS[loader](path)
    assert str(path) in str(err.value) and "re-download or retrain" in str(err.value)


def test_a_truncated_last_pt_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="truncated"):
        _training_resume(_truncated(tmp_path / "run" / "last.pt"))


def test_one_error_type():
    from surrogates.models.surrogate import CheckpointError as SurrogateCheckpointError

    assert SurrogateCheckpointError is CheckpointError and DiagnosticCheckpointError is CheckpointError
    assert issubclass(CheckpointError, ValueError)  # what callers caught before


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoints_are_plain_data(path):
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(blob, dict) and "state_dict" in blob


def test_the_shipped_checkpoints_load():
    assert len(SHIPPED) >= 11
    model, spec, meta = life.load(ROOT / "surrogates/diagnostics/checkpoints/nmc-life.pt")
    assert spec.channels == 8 and all(type(k) is str for k in meta["metrics"])
    out = model(torch.zeros(2, spec.channels, spec.cycle_len))
    assert torch.isfinite(out).all()


def test_plain_converts_numpy_scalars_and_refuses_objects(tmp_path):
    @dataclass
    class Spec:
        a: int = 1

    blob = plain({np.str_("k"): np.float64(1.5), "n": np.int64(3), "b": np.bool_(True), "p": Path("/x"),
                  "t": (1, [np.float32(0.25)]), "w": torch.ones(2)})
    assert blob == {"k": 1.5, "n": 3, "b": True, "p": "/x", "t": (1, [0.25]), "w": blob["w"]}
    assert [type(v) for v in (blob["k"], blob["n"], blob["b"])] == [float, int, bool]
    assert all(type(k) is str for k in blob)
    with pytest.raises(TypeError, match=r"checkpoint\['meta'\]\['spec'\] is a .*Spec"):
        write_checkpoint({"meta": {"spec": Spec()}}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="ndarray"):
        plain({"a": np.zeros(2)})
    assert not (tmp_path / "x.pt").exists()


def test_upgrade_makes_an_old_trusted_checkpoint_plain_with_the_same_values(tmp_path):
    random.seed(4), np.random.seed(5), torch.manual_seed(6)
    old_rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # the old form
    expected = (random.random(), np.random.random(3).tolist(), torch.rand(3).tolist())
    old = {"state_dict": torch.nn.Linear(3, 2).state_dict(),
           "meta": {"metrics": {np.str_("test"): {"mape": np.float64(0.5)}}, "grid": np.linspace(0, 1, 5)},
           "rng": old_rng}
    path = tmp_path / "old.pt"
    torch.save(old, path)
    with pytest.raises(CheckpointError, match="upgrade"):
        load_checkpoint(path)
    assert upgrade(path) == path
    new = load_checkpoint(path)
    assert new["meta"]["metrics"] == {"test": {"mape": 0.5}} and type(list(new["meta"]["metrics"])[0]) is str
    assert new["meta"]["grid"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(torch.equal(new["state_dict"][k], v) for k, v in old["state_dict"].items())
    loop.set_rng_state(new["rng"])  # the old RNG form, upgraded, still resumes exactly
    assert (random.random(), np.random.random(3).tolist(), torch.rand(3).tolist()) == expected
    before = path.read_bytes()
    upgrade(path)  # already plain: left as it is
    assert path.read_bytes() == before


def test_rng_state_is_plain_and_resumes_every_generator_exactly(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # a cached gaussian in numpy's state
    random.gauss(0, 1)
    write_checkpoint({"rng": loop.rng_state()}, tmp_path / "last.pt")
    expected = (random.random(), random.gauss(0, 1), np.random.random(4).tolist(), np.random.standard_normal(),
                torch.rand(4).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    loop.set_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.random(4).tolist(), np.random.standard_normal(),
           torch.rand(4).tolist())
    assert got == expected
