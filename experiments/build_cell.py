"""Build your own cell end to end: dataset, surrogate, validation, diagnostics and the yardstick's references.

    python experiments/build_cell.py --parameter-set Ecker2015 --name kokam
    python experiments/build_cell.py --bpx my_cell.json --values my_cell.yml --name mycell
    python experiments/build_cell.py --parameter-set Marquis2019 --name tiny --quick     # smoke build, minutes
    python experiments/build_cell.py --name kokam                                       # resume / finish a build

A cell is named by a PyBaMM parameter set or a BPX file, plus a values YAML for what it lacks
(operating voltage window, lumped thermal parameters: the command lists the missing ones and prints
a template). Everything is checked before any work starts. The stages:

    cell         the cell's YAML (limits, parameters) and a DFN that starts
    data         randomized protocols on the DFN (experiments/generate_data.py)
    surrogate    the default surrogate, trained and shipped with its card (train_surrogate.py)
    validation   held-out set, fitted ECM, errors vs the DFN: table and figure (validate_surrogates.py)
    diagnostics  plating and OOD detectors with their cards (train_diagnostics.py)
    references   the yardstick's grid on the DFN: oracle, tuned protocol, CC-CV (build_references.py)

Each stage calls the library functions the script in parentheses calls (no script runs another),
resumes where it stopped after a kill, and is skipped when its output exists. The cell lands in the
user cell directory ($CELLGYM_CELLS, default ~/.cellgym/cells/<name>/), where load_surrogate,
gym.make("cellgym/FastCharge-v2", chemistry=<name>) and train_agent.py --chemistry <name> find it
by name. ``--ship`` (maintainers) writes it beside the shipped cells instead. Datasets go to
data/<name>, training runs to runs/cells/<name>/.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tqdm.auto import tqdm  # noqa: E402

from agents.evaluation.grid import GRID_AMBIENTS, GRID_SOCS  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.common.files import atomic_write_text  # noqa: E402

HERE = Path(__file__).resolve().parent


def shown(path) -> str:
    """A path as the card shows it: relative to the checkout when inside it (shipped cells), else as is."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(HERE.parent))
    except ValueError:
        return str(path)


@dataclass
class BuildConfig:
    """What to build, and how much compute each stage gets (defaults: the lco build of docs/cells.md)."""

    name: str = ""
    """The cell's name (lower case): how the env, the surrogates and train_agent.py find it."""
    parameter_set: str = ""
    """A PyBaMM parameter set (Ecker2015, Mohtat2020, ...); or give --bpx."""
    bpx: str = ""
    """A BPX file (Battery Parameter eXchange); copied into the cell's folder."""
    values: str = ""
    """YAML with what the set lacks or what to override: v_max, v_min, sim_v_max, sim_v_min, capacity_ah,
    cell (a description), extra_parameters: {PyBaMM parameter name: value}."""
    ship: bool = False
    """Write the cell beside the shipped ones (surrogates/physics/cells/, the package's checkpoint folders)."""
    quick: bool = False
    """Smoke build in a few minutes: tiny dataset and budgets, one reference point (overrides the defaults
    below, not flags you give)."""
    sequences: int = 800
    """Randomized DFN protocols in the dataset."""
    arch: str = "jepa"
    """Surrogate architecture."""
    surrogate_minutes: float = 30.0
    """Training budget of the surrogate [min]."""
    surrogate_epochs: int = 150
    """Epoch cap of the surrogate."""
    pretrain_epochs: int = 6
    """JEPA only: epochs of the JEPA objective before supervised training."""
    diagnostics: tuple[str, ...] = ("plating", "ood")
    """Diagnostics to train (degradation needs a cell with degradation parameters)."""
    diagnostic_minutes: float = 7.0
    """Training budget per diagnostic [min]."""
    references: bool = True
    """Build the yardstick's reference table (train_agent.py judges agents against it)."""
    socs: tuple[float, ...] = GRID_SOCS
    """Reference grid: start SOCs."""
    ambients: tuple[float, ...] = GRID_AMBIENTS
    """Reference grid: ambient temperatures [K]."""
    evaluations: int = 200
    """DFN charges per grid point for the tuned protocol."""
    workers: int = 0
    """Processes for data generation and references (0: all cores)."""
    threads: int = 0
    """Torch threads for training (0: all cores)."""
    device: str = "auto"
    """Training device: auto (a GPU when there is one), cpu, cuda."""
    data_backend: str = "local"
    """Where the data workers run: local or ray (extra `distributed`; RAY_ADDRESS for a cluster)."""
    data_root: str = "data"
    """Datasets go to <data_root>/<name>."""
    runs_root: str = "runs/cells"
    """Training runs go to <runs_root>/<name>/."""


QUICK = dict(sequences=40, surrogate_minutes=1.0, surrogate_epochs=3, pretrain_epochs=1, diagnostic_minutes=0.3, socs=(0.3,),
             ambients=(298.15,), evaluations=6)
"""What --quick changes (fields left at their defaults only)."""
STAGES = ("cell", "data", "surrogate", "validation", "diagnostics", "references")


# --------------------------------------------------------------------------- where a build writes
class Build:
    """The cell being built and where each stage's output goes."""

    def __init__(self, cfg: BuildConfig, cell, cores: int):
        from surrogates.physics import chemistry

        self.cfg, self.cell, self.name = cfg, cell, cell.name
        self.home = chemistry.SHIPPED_CELLS_DIR if cfg.ship else chemistry.user_cells_dir() / self.name
        self.spec_path = self.home / (f"{self.name}.yml" if cfg.ship else chemistry.CELL_FILE)
        self.card_path = self.home / (f"{self.name}.md" if cfg.ship else "README.md")
        self.log_path = self.home / (f"{self.name}-build.json" if cfg.ship else "build.json")
        self.data = Path(cfg.data_root) / self.name
        self.runs = Path(cfg.runs_root) / self.name
        self.workers = cfg.workers or cores
        self.log = json.loads(self.log_path.read_text()) if self.log_path.exists() else {"stages": {}}

    def record(self, stage: str, **info) -> None:
        self.log["stages"].setdefault(stage, {}).update(info)
        atomic_write_text(self.log_path, json.dumps(self.log, indent=1))

    def datagen(self):
        """The dataset's settings (a :class:`surrogates.data.schema.DatagenConfig`): what the data stage
        simulates and what its check for pending shards compares with."""
        from surrogates.data.schema import DatagenConfig

        return DatagenConfig(chemistry=self.name, num_sequences=self.cfg.sequences, seed=0)

    def validation_report(self) -> Path:
        from surrogates.validation.heldout import validation_dir

        return validation_dir(self.name) / f"{self.name}.md"


# --------------------------------------------------------------------------- resolving the cell
def resolve_cell(cfg: BuildConfig):
    """The cell to build, checked (:class:`surrogates.physics.cell_check.CellError` otherwise): a given
    parameter set or BPX file makes a new cell (refused if one of that name differs); a bare --name resumes one."""
    from surrogates.physics import chemistry
    from surrogates.physics.cell_check import CellError, new_cell, read_values, same_cell

    if not cfg.name:
        raise CellError("give the cell a --name")
    shipped = chemistry.CHEMISTRIES.get(cfg.name)
    existing = shipped or chemistry.find_user_cell(cfg.name)
    if shipped and not cfg.ship:
        raise CellError(f"{cfg.name!r} is a shipped cell ({chemistry.SHIPPED_CELLS_DIR / (cfg.name + '.yml')}); choose "
                        f"another --name for your cell (shipped: {', '.join(sorted(chemistry.CHEMISTRIES))})")
    if not (cfg.parameter_set or cfg.bpx):
        if existing is None:
            raise CellError(f"no cell {cfg.name!r} to resume; name its parameters with --parameter-set NAME or --bpx FILE")
        return existing
    cell = new_cell(cfg.name, parameter_set=cfg.parameter_set or None, bpx=cfg.bpx or None, values=read_values(cfg.values))
    if existing is not None:
        diff = same_cell(cell, existing)
        if diff:
            where = chemistry.SHIPPED_CELLS_DIR if shipped else existing.folder
            raise CellError(f"a cell {cfg.name!r} already exists in {where} and differs in {', '.join(diff)}; resume it "
                            f"with the same settings (or a bare --name {cfg.name}), or choose another --name")
    return cell


# --------------------------------------------------------------------------- the stages
def stage_cell(b: Build) -> str:
    """Write the cell's YAML (and its BPX file) and start its DFN once."""
    from surrogates.physics import chemistry
    from surrogates.physics.cell_check import same_cell
    from surrogates.physics.dfn import DFNSimulator

    cell = b.cell
    if cell.bpx and Path(cell.bpx).resolve().parent != b.home.resolve():
        b.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cell.bpx, b.home / Path(cell.bpx).name)
    if not (b.spec_path.exists() and not same_cell(chemistry.load_cell(b.spec_path), cell)):
        # a resumed build keeps the file as it is (with its comments: where each value comes from)
        atomic_write_text(b.spec_path, "# A cell as plain data (surrogates.physics.chemistry.Chemistry); built by\n"
                          f"# python experiments/build_cell.py {' '.join(b.log.get('argv', []))}\n" + cell.to_yaml())
    b.cell = chemistry.load_cell(b.spec_path, None if b.cfg.ship else str(b.home))
    if b.cfg.ship:
        chemistry.CHEMISTRIES[b.name] = b.cell  # this process's registry; fresh ones read the YAML
    sim = DFNSimulator(b.name)
    rest = sim.reset(0.5, 298.15)
    return f"{shown(b.spec_path)} (DFN at 50 % SOC, 25 C: {rest['voltage']:.3f} V)"


def stage_data(b: Build) -> str:
    """Simulate the dataset's pending shards into data/<name> (a killed run resumes shard by shard)."""
    from surrogates.data.generate import generate

    generate(b.datagen(), b.data, workers=b.workers, backend=b.cfg.data_backend)
    return str(b.data)


def data_done(b: Build) -> bool:
    from surrogates.data.generate import pending_shards
    from surrogates.data.schema import MANIFEST

    return (b.data / MANIFEST).exists() and not pending_shards(b.datagen(), b.data)


def stage_surrogate(b: Build) -> str:
    """Train the surrogate (resuming its run folder) and ship it into the cell with its card."""
    from surrogates.models.surrogate import checkpoint_path
    from surrogates.training.ship import ship_surrogate
    from surrogates.training.surrogate import TrainConfig, train

    c = b.cfg
    # patience 25, not TrainConfig's 8: the build's time and epoch budgets end training, not a short plateau
    config = TrainConfig(arch=c.arch, chemistry=b.name, data=str(b.data), out=str(b.runs / f"surrogate-{c.arch}"),
                         max_epochs=c.surrogate_epochs, pretrain_epochs=c.pretrain_epochs, patience=25,
                         max_minutes=c.surrogate_minutes, threads=c.threads, device=c.device, progress=False)
    ship_surrogate(train(config))
    return shown(checkpoint_path(b.name, c.arch))


def surrogate_done(b: Build) -> bool:
    from surrogates.models.surrogate import checkpoint_path

    return checkpoint_path(b.name, b.cfg.arch).exists()


def stage_validation(b: Build) -> str:
    """Export the held-out set, fit the ECM on the training split and validate the surrogate; the report lands
    beside the held-out set (the cell's validation/ folder), where the card reads it."""
    from surrogates.validation.report import ValidationConfig, validate_surrogates

    validate_surrogates(ValidationConfig(chemistry=(b.name,), arch=(b.cfg.arch,), export=True, fit_ecm=True,
                                         data=str(b.data), out=str(b.validation_report().parent), threads=b.cfg.threads))
    return shown(b.validation_report())


def stage_diagnostics(b: Build) -> str:
    """Train and ship each diagnostic the cell lacks (one already shipped is kept)."""
    from surrogates.diagnostics import checkpoint_path
    from surrogates.physics import chemistry
    from surrogates.training.diagnostics import DiagnosticConfig, train_diagnostic
    from surrogates.training.ship import ship_diagnostic

    # the OOD detector is tested on the shipped cells' datasets, those that exist under data_root
    others = tuple(str(Path(b.cfg.data_root) / n) for n in sorted(chemistry.CHEMISTRIES) if n != b.name)
    done = []
    for kind in b.cfg.diagnostics:
        if not checkpoint_path(b.name, kind).exists():
            config = DiagnosticConfig(kind=kind, chemistry=b.name, data=str(b.data), out=str(b.runs / f"diagnostic-{kind}"),
                                      max_minutes=b.cfg.diagnostic_minutes, ood_data=others, device=b.cfg.device,
                                      progress=False)
            train_diagnostic(config)
            ship_diagnostic(config.run_dir(), b.name, kind)
        done.append(shown(checkpoint_path(b.name, kind)))
    return ", ".join(done)


def diagnostics_done(b: Build) -> bool:
    from surrogates.diagnostics import checkpoint_path

    return all(checkpoint_path(b.name, k).exists() for k in b.cfg.diagnostics)


def stage_references(b: Build) -> str:
    """The yardstick's references on the cell's DFN over the grid (resuming point by point)."""
    from agents.evaluation.build import build_references
    from agents.evaluation.grid import grid
    from agents.evaluation.references import reference_path
    from agents.rl.algorithms import agent_buffers
    from envs.config import ChargingConfig

    c = b.cfg
    config = ChargingConfig(chemistry=b.name)  # the env's task, the cell's own limits
    starts = grid(c.socs, c.ambients)
    build_references(config, starts, reference_path(b.name), agent_buffers(config), evaluations=c.evaluations,
                     workers=min(b.workers, len(starts)))  # a worker per grid point at most
    return shown(reference_path(b.name))


def references_done(b: Build) -> bool:
    from agents.charge import point_key
    from agents.evaluation.grid import grid
    from agents.evaluation.references import REFERENCES, reference_path

    path = reference_path(b.name)
    if not path.exists():
        return False
    points = json.loads(path.read_text()).get("points", {})
    return all(all(r in points.get(point_key(s), {}) for r in REFERENCES) for s in grid(b.cfg.socs, b.cfg.ambients))


RUN = {"cell": stage_cell, "data": stage_data, "surrogate": stage_surrogate, "validation": stage_validation,
       "diagnostics": stage_diagnostics, "references": stage_references}
DONE = {"cell": lambda b: False, "data": data_done, "surrogate": surrogate_done,
        "validation": lambda b: b.validation_report().exists(), "diagnostics": diagnostics_done,
        "references": references_done}


# --------------------------------------------------------------------------- the report
def write_card(b: Build) -> str:
    """The cell's card: what it is, each stage's wall time, the validation table, how to use it."""
    from surrogates.models.surrogate import checkpoint_path

    cell, stages = b.cell, b.log["stages"]
    times = "\n".join(f"| {s} | {stages[s].get('minutes', 0):.1f} | {stages[s].get('output', '')} |"
                      for s in STAGES if s in stages)
    report = b.validation_report()
    table = report.read_text().split("\n", 1)[1].strip() if report.exists() else "(no validation report yet)"
    env_var = "" if b.cfg.ship else f"CELLGYM_CELLS={b.home.parent} "
    text = f"""# Cell `{cell.name}`: {cell.cell}

{cell.parameter_set} (PyBaMM), DFN with a lumped thermal model; operating window {cell.v_min}-{cell.v_max} V,
simulation window {cell.sim_v_min}-{cell.sim_v_max} V, capacity {cell.capacity_ah:g} A.h. Cell file: `{b.spec_path.name}`.
Built with `python experiments/build_cell.py {' '.join(b.log.get('argv', []))}`.

| stage | wall time [min] | output |
|---|---|---|
{times}

## Surrogate against the DFN

Card: `{shown(checkpoint_path(cell.name, b.cfg.arch).with_suffix('.md'))}`.

{table}

## Use it

```bash
{env_var}python experiments/train_agent.py --chemistry {cell.name}
{env_var}python -c "import gymnasium as gym, envs; env = gym.make('cellgym/FastCharge-v2', chemistry='{cell.name}')"
```
"""
    atomic_write_text(b.card_path, text)
    return text


def main(argv=None) -> dict:
    # -- config: every input checked before any work
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, _ = parse_config(BuildConfig, argv, description=__doc__)
    if cfg.quick:
        defaults = BuildConfig()
        for key, value in QUICK.items():
            if getattr(cfg, key) == getattr(defaults, key):
                setattr(cfg, key, value)
    import os

    from surrogates.diagnostics import diagnostic_kind

    for kind in cfg.diagnostics:
        diagnostic_kind(kind)  # an unknown kind fails here
    cell = resolve_cell(cfg)
    if "degradation" in cfg.diagnostics and not cell.degradation_parameter_set:
        raise SystemExit(f"cell {cell.name!r} has no degradation parameters: leave `degradation` out of --diagnostics")
    b = Build(cfg, cell, cores=os.cpu_count() or 1)
    b.log.setdefault("argv", [a for a in argv])
    stages = [s for s in STAGES if s != "references" or cfg.references]

    # -- build: one progress display over the stages; each resumes, each finished one is skipped
    print(f"building cell {cell.name!r} from {cell.parameter_set} into {b.home} ({len(stages)} stages)")
    bar = tqdm(stages, desc=f"cell {cell.name}", unit="stage", position=0, leave=True, dynamic_ncols=True)
    for stage in bar:
        bar.set_postfix_str(stage)
        if DONE[stage](b):
            tqdm.write(f"[{stage}] done already, skipped")
            continue
        tqdm.write(f"[{stage}] running")
        t0 = time.perf_counter()
        output = RUN[stage](b)
        minutes = (time.perf_counter() - t0) / 60  # of this run: a resumed stage counts only what was left
        b.record(stage, minutes=round(minutes, 2), output=output)
        tqdm.write(f"[{stage}] {minutes:.1f} min: {output}")
    bar.close()

    # -- report
    card = write_card(b)
    print(card)
    return {"cell": dataclasses.asdict(b.cell), "home": str(b.home), "card": str(b.card_path), "log": b.log}


if __name__ == "__main__":
    main()
