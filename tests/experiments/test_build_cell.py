"""experiments/build_cell.py: a cell from a parameter set or a BPX file, end to end, with clear errors and resume."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from surrogates.physics.cell_check import CellError

BPX_EXAMPLE = Path(__file__).resolve().parents[1] / "support" / "bpx" / "nmc_pouch_cell_BPX.json"
HEAT = "Total heat transfer coefficient [W.m-2.K-1]"


@pytest.fixture
def cells(tmp_path, monkeypatch):
    """An empty user cell directory for this test."""
    root = tmp_path / "cells"
    monkeypatch.setenv("CELLGYM_CELLS", str(root))
    return root


def _values(tmp_path, text: str) -> str:
    path = tmp_path / "values.yml"
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- bad input, before any work
@pytest.mark.parametrize("argv, expected", [
    (["--parameter-set", "Chen2021", "--name", "mine"], ["unknown PyBaMM parameter set 'Chen2021'", "Chen2020", "Ecker2015"]),
    (["--parameter-set", "Prada2013", "--name", "mine"], ["lacks 17 parameter(s)", "Cell volume [m3]", "extra_parameters:"]),
    (["--parameter-set", "Chen2020", "--name", "nmc"], ["'nmc' is a shipped cell", "choose another --name"]),
    (["--parameter-set", "Chen2020", "--name", "My Cell"], ["lower-case letters"]),
    (["--name", "mine"], ["no cell 'mine' to resume", "--parameter-set"]),
    (["--bpx", str(BPX_EXAMPLE), "--name", "mine"], [f"lacks 1 parameter(s)", HEAT]),
])
def test_bad_input_fails_before_any_work(argv, expected, script, cells, tmp_path):
    with pytest.raises(CellError) as err:
        script("build_cell").main(argv + ["--data-root", str(tmp_path / "data")])
    for text in expected:
        assert text in str(err.value), str(err.value)
    assert not cells.exists() and not (tmp_path / "data").exists()


def test_a_bpx_file_that_fails_validation_names_the_field(script, cells, tmp_path):
    broken = json.loads(BPX_EXAMPLE.read_text())
    del broken["Parameterisation"]["Cell"]["Nominal cell capacity [A.h]"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(CellError) as err:
        script("build_cell").main(["--bpx", str(path), "--name", "mine"])
    assert "not a valid BPX file" in str(err.value) and "Nominal cell capacity [A.h]" in str(err.value)
    assert "Field required" in str(err.value) and not cells.exists()


def test_a_changed_cell_under_an_existing_name_is_refused(script, cells, tmp_path):
    from surrogates.physics.cell_check import new_cell

    (cells / "mine").mkdir(parents=True)
    (cells / "mine" / "cell.yml").write_text(new_cell("mine", parameter_set="Chen2020").to_yaml())
    with pytest.raises(CellError, match="already exists .* differs in v_max"):
        script("build_cell").main(["--parameter-set", "Chen2020", "--name", "mine",
                                   "--values", _values(tmp_path, "v_max: 4.1\n")])


def test_shipped_cells_are_the_same_yaml_a_build_writes():
    """nmc and lfp are data: the YAML a build writes reads back to the same cell (lfp's thermal values included)."""
    from surrogates.physics.chemistry import CHEMISTRIES, cell_from_mapping

    assert {"nmc", "lfp", "lco"} <= set(CHEMISTRIES)
    import yaml

    for name, cell in CHEMISTRIES.items():
        assert cell_from_mapping(yaml.safe_load(cell.to_yaml()), "<test>") == cell
    assert CHEMISTRIES["lfp"].extra_parameters["Cell volume [m3]"] == pytest.approx(3.14159265 * 0.013**2 * 0.065, rel=1e-15)


# --------------------------------------------------------------------------- BPX round trip
@pytest.mark.slow
def test_a_bpx_cell_round_trips_to_the_same_dfn_voltage(script, cells, tmp_path):
    """BPX -> a user cell (its YAML and a copy of the file) -> our DFN, against PyBaMM reading the file itself."""
    import pybamm

    from surrogates.physics.chemistry import get_chemistry
    from surrogates.physics.dfn import DFNSimulator

    build = script("build_cell")
    cfg = build.BuildConfig(name="pouch", bpx=str(BPX_EXAMPLE), values=_values(tmp_path, f"extra_parameters:\n  {HEAT}: 10.0\n"))
    cell = build.resolve_cell(cfg)
    b = build.Build(cfg, cell, cores=1)
    build.stage_cell(b)
    assert (cells / "pouch" / BPX_EXAMPLE.name).exists()
    cell = get_chemistry("pouch")
    assert cell.parameter_set == f"bpx:{BPX_EXAMPLE.name}" and Path(cell.bpx).parent == cells / "pouch"
    assert cell.capacity_ah == 12.5 and (cell.v_min, cell.v_max) == (2.7, 4.2)

    sim = DFNSimulator("pouch", dt=10.0)
    sim.reset(0.2, 298.15)
    ours = sim.run(-cell.capacity_ah, 60)["voltage"]  # 1C charge, 10 min

    params = pybamm.ParameterValues.create_from_bpx(BPX_EXAMPLE)
    params.update({HEAT: 10.0, "Ambient temperature [K]": 298.15, "Initial temperature [K]": 298.15})
    params.set_initial_state(0.2)
    experiment = pybamm.Experiment([f"Charge at {cell.capacity_ah} A for 600 seconds"], period="10 seconds")
    solution = pybamm.Simulation(pybamm.lithium_ion.DFN(options={"thermal": "lumped"}), parameter_values=params,
                                 experiment=experiment, solver=pybamm.IDAKLUSolver()).solve()
    theirs = np.asarray(solution["Voltage [V]"](10.0 * np.arange(1, 61)))
    assert np.max(np.abs(ours - theirs)) < 1e-3


# --------------------------------------------------------------------------- the whole command
@pytest.mark.slow
def test_quick_build_from_a_parameter_set_resumes_after_a_kill(script, cells, tmp_path, monkeypatch):
    """--quick end to end; killed in a stage, the rerun skips the finished stages; the cell is then found by name."""
    build = script("build_cell")
    argv = ["--parameter-set", "Marquis2019", "--name", "tiny", "--quick", "--sequences", "40", "--workers", "1",
            "--threads", "1", "--data-root", str(tmp_path / "data"), "--runs-root", str(tmp_path / "runs")]
    real = build.RUN["validation"]

    def killed(b):
        raise KeyboardInterrupt  # as Ctrl-C in the middle of the stage

    monkeypatch.setitem(build.RUN, "validation", killed)
    with pytest.raises(KeyboardInterrupt):
        build.main(argv)
    checkpoint = cells / "tiny" / "surrogates" / "tiny-jepa.pt"
    stamp = checkpoint.stat().st_mtime_ns
    assert json.loads((cells / "tiny" / "build.json").read_text())["stages"].keys() == {"cell", "data", "surrogate"}

    monkeypatch.setitem(build.RUN, "validation", real)
    for stage in ("data", "surrogate"):  # finished stages must not run again
        monkeypatch.setitem(build.RUN, stage, lambda b, s=stage: pytest.fail(f"{s} ran again"))
    report = build.main(argv)
    assert checkpoint.stat().st_mtime_ns == stamp
    assert set(report["log"]["stages"]) == {"cell", "data", "surrogate", "validation", "diagnostics", "references"}
    for path in ("cell.yml", "README.md", "validation/tiny.h5", "validation/tiny.md", "validation/tiny.png",
                 "baselines/tiny-ecm.json", "surrogates/tiny-jepa.md", "diagnostics/tiny-plating.pt",
                 "diagnostics/tiny-ood.pt", "references/tiny.json"):
        assert (cells / "tiny" / path).exists(), path
    assert "V MAE [mV]" in (cells / "tiny" / "README.md").read_text()

    # found by name: the surrogate, the env on it, the reference table
    import gymnasium as gym

    from agents.evaluation.references import load_references
    from envs import FAST_CHARGE_ID  # registers the ids; the constant names the current version
    from envs.config import ChargingConfig
    from surrogates.models.surrogate import load_surrogate

    assert load_surrogate("tiny", "jepa").capacity_ah == pytest.approx(0.680616)
    env = gym.make(FAST_CHARGE_ID, chemistry="tiny")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.0], dtype=np.float32))
    assert np.isfinite(info["voltage"]) and 3.1 < info["voltage"] < 4.1
    table = load_references(ChargingConfig(chemistry="tiny"))
    assert len(table["points"]) == 1
    shutil.rmtree(tmp_path / "data")
