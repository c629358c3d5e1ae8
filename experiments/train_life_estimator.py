"""Life estimator: predict cycles to 90 % of a repeated protocol from its first cycles' I, V, T, against the DFN.

    python experiments/train_life_estimator.py                 # lives, fit, report in runs/life
    python experiments/train_life_estimator.py --ship          # ... and ship surrogates/diagnostics/checkpoints/nmc-life.pt
    python experiments/train_life_estimator.py --n-protocols 8 --n-cycles 5 --out runs/life-quick

Top to bottom: config -> protocols (random multi-stage constant-current charges from random start SOC and
ambient, and held out: the CC-CV family and the tuned protocols as the committed baselines charged them)
-> each protocol's life on the degradation DFN (:func:`agents.ageing.life.life`: charge, 1 h rest, discharge of
the same charge, 1 h rest, ``n_cycles`` times; the first cycles logged as a BMS would) -> one JSON per life
under ``<out>/lives/`` (atomic; a stopped run resumes) -> :class:`surrogates.diagnostics.life.LifeCNN` fitted
on the training protocols -> its error on held-out random protocols and on the held-out families, beside the
error of predicting the training mean -> ``<out>/life.md``, ``life.png``, ``life.pt``.

The DFN's cycles to 90 % are extrapolated from the simulated cycles with the SEI law (agents.ageing.life: a fit to
30 cycles gives cycles to 90 % to 0.3 % of a fit to 100), so the label is that extrapolation.
The default simulates 96 + 18 lives (run time: docs/degradation.md).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

from agents.ageing.life import LifeConfig  # noqa: E402
from agents.ageing.measure import measure_lives  # noqa: E402
from agents.ageing.report import load_baselines  # noqa: E402
from agents.charge import Start  # noqa: E402
from surrogates.common.channels import DEFAULT_DT  # noqa: E402
from surrogates.common.cli import parse_config  # noqa: E402
from surrogates.common.files import atomic_write_text  # noqa: E402
from surrogates.diagnostics import life as estimator  # noqa: E402
from surrogates.physics.chemistry import get_chemistry  # noqa: E402

CHECKPOINTS = Path(__file__).resolve().parents[1] / "surrogates" / "diagnostics" / "checkpoints"


@dataclass
class LifeEstimatorConfig:
    """The life estimator's data, fit and report (defaults: the shipped estimator)."""

    chemistry: str = "nmc"
    n_protocols: int = 96
    """Random multi-stage CC protocols (training and test)."""
    test_fraction: float = 0.25
    """Share of the random protocols held out."""
    holdout: list = field(default_factory=lambda: ["CC-CV 0.5C", "CC-CV 0.75C", "CC-CV 1C", "CC-CV 1.25C",
                                                   "CC-CV 1.5C", "tuned 5-stage"])
    """Committed baselines (agents/references/<chemistry>-degradation.json) whose charges from ``holdout_soc`` at
    every grid ambient are held-out protocols: CC-CV is a family no training charge came from."""
    holdout_soc: float = 0.1
    n_cycles: int = 30
    """Cycles of each life (the label: cycles to 90 % by the SEI law fitted to them)."""
    soc_range: tuple = (0.05, 0.3)
    """Start SOC of the random protocols (charged to 80 %)."""
    ambient_range: tuple = (283.15, 313.15)
    """Ambient of the random protocols [K]."""
    c_range: tuple = (0.3, 2.0)
    """C-rates of the random protocols' stages [1/h]: the first log-uniform in it, each next one 0.4-1x the last."""
    features: dict = field(default_factory=dict)
    """Overrides of surrogates.diagnostics.life.LifeFeatures."""
    training: dict = field(default_factory=dict)
    """Overrides of surrogates.diagnostics.life.LifeTraining."""
    seed: int = 0
    out: str = "runs/life"
    ship: bool = False
    """Copy the estimator to surrogates/diagnostics/checkpoints/<chemistry>-life.pt with its card and figure."""
    progress: bool = True


def random_protocol(rng: np.random.Generator, cfg: LifeEstimatorConfig, dt: float) -> tuple[list, Start]:
    """A multi-stage constant-current charge to 80 %: (C-rate per interval of ``dt`` [1/h], start)."""
    soc0, ambient = rng.uniform(*cfg.soc_range), rng.uniform(*cfg.ambient_range)
    n = int(rng.integers(1, 5))
    rates = [math.exp(rng.uniform(math.log(cfg.c_range[0]), math.log(cfg.c_range[1])))]
    for _ in range(n - 1):
        rates.append(max(cfg.c_range[0], rates[-1] * rng.uniform(0.4, 1.0)))
    bounds = [soc0, *np.sort(rng.uniform(soc0, 0.8, n - 1)), 0.8]
    profile = []
    for c, lo, hi in zip(rates, bounds[:-1], bounds[1:]):
        intervals = (hi - lo) / (c * dt / 3600.0)
        whole = int(intervals)
        profile += [c] * whole
        if intervals > whole:
            profile.append(c * (intervals - whole))  # the stage's last fraction as the same charge in one interval
    return [round(float(c), 6) for c in profile], Start(round(float(soc0), 4), round(float(ambient), 2))


def protocols(cfg: LifeEstimatorConfig, dt: float):
    """(name, group, C-rate profile, start) of every protocol; group: ``train``, ``test`` or the held-out family."""
    rng = np.random.default_rng(cfg.seed)
    n_test = int(round(cfg.test_fraction * cfg.n_protocols))
    test = set(rng.permutation(cfg.n_protocols)[:n_test].tolist())
    for i in range(cfg.n_protocols):
        profile, start = random_protocol(np.random.default_rng([cfg.seed, i]), cfg, dt)
        yield f"random-{i:03d}", "test" if i in test else "train", profile, start
    baselines = load_baselines(cfg.chemistry)
    for name in cfg.holdout:
        if name not in baselines:
            raise ValueError(f"holdout {name!r} is not among the committed baselines {sorted(baselines)}; "
                             "run experiments/measure_degradation.py --ship first")
        for key, row in baselines[name]["grid"].items():
            soc, ambient = (float(v) for v in key.split("@"))
            if abs(soc - cfg.holdout_soc) < 1e-6 and row.charge.reached_target:
                yield f"{name} {key}", name.split(" ")[0], list(row.charge.c_rate_profile), Start(soc, ambient)


def main(argv=None) -> dict:
    # -- config
    cfg, _ = parse_config(LifeEstimatorConfig, argv, description=__doc__)
    spec = estimator.LifeFeatures(**cfg.features)
    train_cfg = estimator.LifeTraining(**{"seed": cfg.seed, **cfg.training})
    out = Path(cfg.out)
    one_c = get_chemistry(cfg.chemistry).capacity_ah
    life_config = LifeConfig(n_cycles=cfg.n_cycles, segment_s=spec.dt)

    # -- every protocol's life on the DFN (resumable: one JSON each)
    lives, t0 = [], time.time()
    todo = list(protocols(cfg, DEFAULT_DT))
    done = measure_lives([(name, profile, start) for name, _, profile, start in todo], cfg.chemistry, DEFAULT_DT,
                         life_config, out / "lives", record=spec.n_cycles, progress=cfg.progress)
    for name, group, _, _ in todo:
        res = done[name]
        if res["cycles"] == cfg.n_cycles and math.isfinite(res["cycles_to_90"]) and res["cycles_to_90"] > 0:
            lives.append((name, group, res))
        else:
            print(f"{name}: left out ({res['cycles']} of {cfg.n_cycles} cycles; {res.get('stopped')})")
    print(f"{len(lives)} lives in {(time.time() - t0) / 60:.1f} min")

    # -- fit on the training protocols, judge on the rest
    x = np.stack([estimator.features(res["traces"], one_c, spec) for _, _, res in lives])
    y = np.array([res["cycles_to_90"] for _, _, res in lives])
    groups = np.array([g for _, g, _ in lives])
    train = groups == "train"
    model = estimator.fit(x[train], np.log10(y[train]), train_cfg, progress=cfg.progress)
    pred = estimator.predict(model, x)
    mean_pred = 10.0 ** np.log10(y[train]).mean()
    h = np.stack([hand_features(res) for _, _, res in lives])  # what a simpler model would read
    h = np.c_[np.ones(len(h)), (h - h[train].mean(0)) / h[train].std(0)]
    linear_pred = 10.0 ** (h @ np.linalg.lstsq(h[train], np.log10(y[train]), rcond=None)[0])
    metrics = {}
    for g in dict.fromkeys(groups):
        m = groups == g
        err = pred[m] / y[m] - 1.0
        metrics[g] = {"n": int(m.sum()), "mape_pct": float(100 * np.mean(np.abs(err))),
                      "max_abs_pct": float(100 * np.max(np.abs(err))),
                      "mean_predictor_mape_pct": float(100 * np.mean(np.abs(mean_pred / y[m] - 1.0))),
                      "linear_mape_pct": float(100 * np.mean(np.abs(linear_pred[m] / y[m] - 1.0))),
                      "r2_log": _r2(np.log10(y[m]), np.log10(pred[m]))}

    # -- report, figure, checkpoint
    rows = [{"name": n, "group": g, "dfn_cycles_to_90": float(t), "predicted": float(p),
             "start": res["start"], "fade_per_100": res["fade_per_100"]}
            for (n, g, res), t, p in zip(lives, y, pred)]
    result = {"metrics": metrics, "lives": rows, "config": asdict(cfg), "features": asdict(spec),
              "training": asdict(train_cfg)}
    atomic_write_text(out / "life.json", json.dumps(result, indent=1, default=float))
    text = report(result, cfg)
    atomic_write_text(out / "life.md", text)
    plot(rows, out / "life.png")
    meta = {"chemistry": cfg.chemistry, "one_c": one_c, "metrics": metrics, "n_cycles": cfg.n_cycles}
    estimator.save(model, out / "life.pt", spec, meta)
    print(text)
    if cfg.ship:
        stem = CHECKPOINTS / f"{cfg.chemistry}-life"
        estimator.save(model, stem.with_suffix(".pt"), spec, meta)
        atomic_write_text(stem.with_suffix(".md"), text)
        plot(rows, stem.with_suffix(".png"))
        print(f"shipped {stem.with_suffix('.pt')} (card {stem.with_suffix('.md')})")
    return result


def hand_features(res: dict) -> np.ndarray:
    """The baseline's inputs from the first cycle's log: start SOC, ambient [K], charge time [min], mean and peak
    temperature [K]."""
    tr = res["traces"][0]
    temperature = np.asarray(tr["temperature"])
    charge_min = float(np.sum(np.asarray(tr["current"]) < 0) * res["segment_s"] / 60.0)
    return np.array([res["start"][0], res["start"][1], charge_min, temperature.mean(), temperature.max()])


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return float(1.0 - np.sum((y - p) ** 2) / ss) if ss > 0 else math.nan


def report(result: dict, cfg: LifeEstimatorConfig) -> str:
    """The estimator's card: what it reads, what it predicts, its error per group."""
    lines = [
        f"# Life estimator ({cfg.chemistry}): cycles to 90 % from the first cycles' I, V, T",
        "",
        f"A 1D CNN (`surrogates/diagnostics/life.py`) reads the first {result['features']['n_cycles']} cycles of a "
        f"repeated protocol as a BMS logs them (current, voltage, temperature every {result['features']['dt']:g} s) "
        "and predicts cycles to 90 % retention. The DFN's figure: the cycle (charge, 1 h rest, discharge of the "
        f"same charge, 1 h rest) repeated {cfg.n_cycles} times on the degradation DFN, extrapolated with the SEI law "
        "(`agents/ageing.py`). Trained on random multi-stage constant-current charges (1-4 stages, "
        f"{cfg.c_range[0]:g}-{cfg.c_range[1]:g}C, start SOC {cfg.soc_range[0]:g}-{cfg.soc_range[1]:g}, ambient "
        f"{cfg.ambient_range[0] - 273.15:.0f}-{cfg.ambient_range[1] - 273.15:.0f} C); judged on held-out random "
        f"protocols and on the committed baselines' charges from {cfg.holdout_soc:.0%} SOC (CC-CV: a family no "
        "training charge came from).",
        "",
        "Reproduce: `python experiments/train_life_estimator.py --ship`",
        "",
        "Baselines: the training mean, and a linear fit of log10(cycles) to start SOC, ambient, charge time and the "
        "first cycle's mean and peak temperature (hand features, the same training protocols).",
        "",
        "| protocols | n | mean abs error [%] | max abs error [%] | R2 of log10 | training mean: mean abs error [%] | "
        "linear on hand features: mean abs error [%] |",
        "|---|---|---|---|---|---|---|",
    ]
    for g, m in result["metrics"].items():
        lines.append(f"| {g} | {m['n']} | {m['mape_pct']:.1f} | {m['max_abs_pct']:.1f} | {m['r2_log']:.3f} | "
                     f"{m['mean_predictor_mape_pct']:.1f} | {m['linear_mape_pct']:.1f} |")
    lines += ["", "| held out | start | DFN cycles to 90 % | predicted | error [%] |", "|---|---|---|---|---|"]
    for r in result["lives"]:
        if r["group"] not in ("train", "test"):
            lines.append(f"| {r['name'].rsplit(' ', 1)[0]} | {r['start'][0]:.0%} SOC, {r['start'][1] - 273.15:.0f} C | "
                         f"{r['dfn_cycles_to_90']:.0f} | {r['predicted']:.0f} | "
                         f"{100 * (r['predicted'] / r['dfn_cycles_to_90'] - 1):+.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Predicted vs the DFN's cycles to 90 %, log-log, one marker per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for g, marker in zip(dict.fromkeys(r["group"] for r in rows), "o^sDvP"):
        pts = [(r["dfn_cycles_to_90"], r["predicted"]) for r in rows if r["group"] == g]
        ax.scatter(*zip(*pts), marker=marker, s=22, label=g, alpha=0.8)
    lo = min(min(r["dfn_cycles_to_90"], r["predicted"]) for r in rows) * 0.9
    hi = max(max(r["dfn_cycles_to_90"], r["predicted"]) for r in rows) * 1.1
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="DFN cycles to 90 % (SEI-law extrapolation)",
           ylabel="predicted from the first cycles' I, V, T", title="Life estimator")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
