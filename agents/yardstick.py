"""The yardstick: a policy replayed on the DFN at every grid point, against the oracle and the tuned protocols.

Glossary (units as in :mod:`surrogates.common.channels`; the references in :mod:`agents.references`):

    ratio           a policy's charge time over the oracle's at the same grid point (1.0: the physical limit)
    geo-mean ratio  the geometric mean of the ratios over the grid points the policy charged at
    beaten          a grid point where the tuned protocol or the fastest CC-CV charges faster than the
                    policy, or the policy breaks a limit or never arrives
    worst excess    the largest single-interval excess over each limit: voltage [mV], temperature [K],
                    plating margin below its limit [mV]

:func:`evaluate_run` is what ``experiments/evaluate_policy.py RUN_DIR`` and the end of
``experiments/train_agent.py`` run: it replays the run's policy at the committed table's grid points
on the DFN (and on the surrogate, for the gap between them), then writes ``evaluation.md`` (the grid
table and the summary line), ``evaluation.png`` (charge time vs ambient temperature, one panel per
start SOC, the band between the oracle and the buffered oracle shaded), ``evaluation-profile.png``
(the charge at 10 % SOC / 25 C next to the oracle's and the tuned protocol's) and ``evaluation.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from agents.evaluation import Start, charge_row, limit_slack, plot_traces, rollout, save_figure
from agents.references import REFERENCES, load_references, point_key, reference_starts
from surrogates.physics.chemistry import get_chemistry
from surrogates.common.tables import markdown_table

AGENT = "agent"
PROFILE_START = Start(0.1, 298.15)
"""Where the profile figure is drawn (the issue's headline condition)."""


def worst_excess(trace: dict, config) -> dict:
    """The largest single-interval excess over each limit (0 when safe): ``{"V_mV", "T_K", "plating_mV"}``."""
    slack = limit_slack(trace, config)
    return {"V_mV": float(max(-np.min(slack["V"]), 0.0) * 1e3), "T_K": float(max(-np.min(slack["T"]), 0.0)),
            "plating_mV": float(max(-np.min(slack["plating"]), 0.0) * 1e3)}


def replay_grid(policy, env, starts: list[Start], progress: bool = False) -> dict[str, dict]:
    """``policy`` from every start on ``env`` (a ``FastChargeEnv``): point key -> summary row with the worst excess."""
    from tqdm.auto import tqdm

    config = env.unwrapped.config
    rows = {}
    for start in tqdm(starts, desc="replay", disable=not progress, unit="charge"):
        trace = rollout(policy, env.unwrapped, start)
        rows[point_key(start)] = {**charge_row(trace, config), "worst_excess": worst_excess(trace, config)}
    return rows


def _t(row: dict | None) -> float:
    t = math.nan if row is None else row["charge_time_min"]
    return math.nan if t is None else float(t)


def score(rows: dict[str, dict], table: dict) -> tuple[list[dict], dict]:
    """Join a policy's grid rows with the reference table; the per-point rows and the summary.

    Summary keys: ``geo_mean_ratio`` and ``worst_ratio`` (to the oracle, over the points charged),
    ``geo_mean_ratio_buffered`` (to the buffered oracle), ``points``, ``violating_points``,
    ``violating_steps``, ``not_reached``, ``tuned_faster`` and ``cccv_faster`` (points where that
    protocol charges faster than the policy), ``beaten`` (points tuned-faster, violating or not reached).
    """
    out = []
    for key, ref in table["points"].items():
        row = rows.get(key)
        if row is None:
            continue
        t = _t(row)
        r = {"key": key, "start": Start(ref["soc"], ref["ambient_temperature"]), "row": row, "t": t,
             **{f"t_{name}": _t(ref.get(name)) for name in REFERENCES},
             "missing": [name for name in REFERENCES if name not in ref]}
        r["ratio"] = t / r["t_oracle"]
        r["ratio_buffered"] = t / r["t_oracle_buffered"]
        r["violating"] = row["violating_steps"] > 0 or row["solver_failure"]
        # a policy that never arrives counts as slower; a reference not (yet) in the table beats nothing
        r["tuned_faster"] = math.isfinite(r["t_tuned"]) and not (t <= r["t_tuned"])
        r["cccv_faster"] = math.isfinite(r["t_cccv"]) and not (t <= r["t_cccv"])
        out.append(r)
    ok = [r for r in out if math.isfinite(r["ratio"])]
    gm = lambda xs: float(math.exp(np.mean(np.log(xs)))) if xs else math.nan  # noqa: E731
    summary = {
        "points": len(out),
        "geo_mean_ratio": gm([r["ratio"] for r in ok]),
        "worst_ratio": max((r["ratio"] for r in ok), default=math.nan),
        "geo_mean_ratio_buffered": gm([r["ratio_buffered"] for r in ok]),
        "violating_points": sum(r["violating"] for r in out),
        "violating_steps": int(sum(r["row"]["violating_steps"] for r in out)),
        "not_reached": sum(not math.isfinite(r["t"]) for r in out),
        "tuned_faster": sum(r["tuned_faster"] for r in out),
        "cccv_faster": sum(r["cccv_faster"] for r in out),
    }
    summary["beaten"] = sum(r["tuned_faster"] or r["violating"] or not math.isfinite(r["t"]) for r in out)
    summary["geo_mean_ratio_tuned"] = gm([r["t_tuned"] / r["t_oracle"] for r in out if math.isfinite(r["t_tuned"])])
    return out, summary


def _min(t: float) -> str:
    return "not reached" if not math.isfinite(t) else f"{t:.1f}"


def _ref(r: dict, name: str) -> str:
    return "-" if name in r["missing"] else _min(r[f"t_{name}"])


def _excess(r: dict) -> str:
    w = r["row"]["worst_excess"]
    if not r["violating"]:
        return "0"
    return (f"{r['row']['violating_steps']} (V +{w['V_mV']:.1f} mV, T +{w['T_K']:.2f} K, "
            f"plating -{w['plating_mV']:.1f} mV)")


def summary_line(summary: dict, name: str = AGENT) -> str:
    """One line: how the policy stands against the references."""
    return (f"{name}: geo-mean ratio to the oracle {summary['geo_mean_ratio']:.3f} (worst {summary['worst_ratio']:.3f}; "
            f"to the buffered oracle {summary['geo_mean_ratio_buffered']:.3f}; the tuned protocols "
            f"{summary['geo_mean_ratio_tuned']:.3f}), {summary['violating_points']}/{summary['points']} points with "
            f"violations ({summary['violating_steps']} intervals), {summary['not_reached']} not reached; the tuned "
            f"protocol is faster at {summary['tuned_faster']}/{summary['points']} points, the fastest CC-CV at "
            f"{summary['cccv_faster']}/{summary['points']}")


def markdown(scored: list[dict], summary: dict, name: str = AGENT) -> str:
    """The grid table (charge times [min], ratios, violations) and the summary line."""
    cols = [
        ("start", lambda r: r["start"].label),
        (f"{name} [min]", lambda r: _min(r["t"])),
        ("oracle", lambda r: _ref(r, "oracle")),
        ("oracle, agent's buffers", lambda r: _ref(r, "oracle_buffered")),
        ("tuned 5-stage CC-CV", lambda r: _ref(r, "tuned")),
        ("fastest CC-CV", lambda r: _ref(r, "cccv")),
        ("ratio to oracle", lambda r: f"{r['ratio']:.3f}" if math.isfinite(r["ratio"]) else "-"),
        ("beaten by", lambda r: ", ".join(n for n, f in (("tuned", r["tuned_faster"]), ("CC-CV", r["cccv_faster"])) if f)
         or "-"),
        ("violating intervals (worst excess)", _excess),
    ]
    return markdown_table(scored, cols) + "\n\n" + summary_line(summary, name) + ".\n"


def plot_grid(scored: list[dict], path, title: str = "", name: str = AGENT):
    """Charge time vs ambient temperature, one panel per start SOC; the oracle band shaded.

    Saves to ``path`` and closes the figure; without ``path`` returns the open figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    socs = sorted({r["start"].soc for r in scored})
    fig, axes = plt.subplots(1, len(socs), figsize=(3.6 * len(socs), 3.6), sharey=True, squeeze=False)
    styles = [("t", name, dict(color="C3", marker="o", lw=2)),
              ("t_tuned", "tuned 5-stage CC-CV", dict(color="C0", marker="s", ls="--")),
              ("t_cccv", "fastest CC-CV", dict(color="C7", marker="^", ls=":"))]
    for ax, soc in zip(axes[0], socs):
        rs = sorted((r for r in scored if r["start"].soc == soc), key=lambda r: r["start"].ambient_temperature)
        amb = [r["start"].ambient_temperature - 273.15 for r in rs]
        ax.fill_between(amb, [r["t_oracle"] for r in rs], [r["t_oracle_buffered"] for r in rs], color="C2", alpha=0.25,
                        label="oracle .. oracle with buffers")
        ax.plot(amb, [r["t_oracle"] for r in rs], color="C2", lw=1)
        for key, label, kw in styles:
            ax.plot(amb, [r[key] for r in rs], label=label, **kw)
        bad = [r for r in rs if r["violating"]]
        if bad:
            ax.scatter([r["start"].ambient_temperature - 273.15 for r in bad], [r["t"] for r in bad], s=120,
                       facecolors="none", edgecolors="k", label="violates a limit", zorder=5)
        ax.set_xticks(amb)
        ax.set_title(f"start {soc:.0%} SOC", fontsize=10)
        ax.set_xlabel("ambient temperature [C]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("charge time to 80 % [min]")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


class ProfilePolicy:
    """Plays back a C-rate profile [1/h], one value per interval (then rests): a stored charge, redrawn."""

    def __init__(self, c_rate, config):
        from envs.config import c_rate_to_action

        self.actions = c_rate_to_action(np.asarray(c_rate, dtype=np.float64), config)
        self.config, self.k = config, 0

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        from envs.config import obs_to_physical

        k = int(round(float(obs_to_physical(np.asarray(observation), self.config)["elapsed"]) / self.config.dt))
        return np.array([self.actions[k] if k < len(self.actions) else -1.0], dtype=np.float32), state


def evaluate_run(run_dir, backend: str = "pybamm", references=None, out_name: str = "evaluation",
                 surrogate_gap: bool = True, extra: dict | None = None, progress: bool = True,
                 degradation: bool = True, life_cycles: int = 0) -> dict:
    """Replay a run's policy over the reference grid on ``backend``; write ``<out_name>.md/.png/.json``
    and ``<out_name>-profile.png`` in the run folder; print the table. The report (summary and rows).

    With ``degradation`` (and a pybamm backend, for a cell with degradation parameters), the policy's ground
    truth follows (:func:`agents.ageing.measure`: irreversible loss per cycle and plating exposure over the grid,
    life at 10 % SOC, 25 C and the hottest ambient) beside the committed baselines'
    (``experiments/measure_degradation.py``): a section of ``<out_name>.md``, ``<out_name>-fronts.png`` (charge
    time vs loss) and ``<out_name>-capacity.png`` (capacity vs cycle), and ``"degradation"`` in the report.
    ``life_cycles``: cycles of each life (0: the baselines', for a like-for-like fade).

    The envs use the run's shared env settings (``config.env``) with the env's own limits, not the
    training env's tightened ones; the references (``references``: a table's path, default the
    chemistry's committed one) must have been built for that task.
    """
    import gymnasium as gym

    import envs
    from agents.algorithms import load_agent
    from agents.tuning import Protocol

    run_dir = Path(run_dir)
    agent, resolved = load_agent(run_dir)
    rc = resolved["config"]
    make = lambda b: gym.make(envs.FAST_CHARGE_ID, chemistry=rc["chemistry"], backend=b,  # noqa: E731
                              surrogate=rc["surrogate"], **rc["env"])
    env = make(backend)
    config = env.unwrapped.config
    table = load_references(config, references)
    starts = reference_starts(table)
    rows = replay_grid(agent, env, starts, progress=progress)
    scored, summary = score(rows, table)
    gaps = []
    if surrogate_gap and backend != "surrogate":
        s_env = make("surrogate")
        s_rows = replay_grid(agent, s_env, starts)
        s_env.close()
        for r in scored:
            t_s = _t(s_rows[r["key"]])
            gaps.append({"start": r["start"].label, "surrogate": t_s, backend: r["t"],
                         "gap": 100.0 * (t_s - r["t"]) / r["t"] if math.isfinite(t_s * r["t"]) else math.nan})

    # the profile figure: the agent, the oracle (its stored profile replayed) and the tuned protocol
    traces = {}
    ref = table["points"].get(point_key(PROFILE_START))
    if ref is not None:
        traces[f"agent ({rc['algo'].upper()})"] = rollout(agent, env.unwrapped, PROFILE_START)
        if "oracle" in ref:
            traces["oracle"] = rollout(ProfilePolicy(ref["oracle"]["c_rate_profile"], config), env.unwrapped,
                                       PROFILE_START)
        if "tuned" in ref:
            tuned = Protocol.from_json(ref["tuned"]["protocol"])
            traces[f"tuned: {tuned.label}"] = rollout(tuned.policy(config), env.unwrapped, PROFILE_START)
    env.close()

    algo = rc["algo"].upper()
    text = (f"# {algo} on the {backend} backend over the reference grid ({rc['chemistry']}, policy from `{run_dir}`)\n\n"
            f"Limits: V <= {config.v_max} V, T <= {config.t_max - 273.15:.0f} C, plating margin >= "
            f"{config.plating_limit * 1e3:.0f} mV, checked on every interval's sub-samples; charge to "
            f"{config.soc_target:.0%} SOC; times in minutes. References built on PyBaMM {table['task']['pybamm']} "
            f"by `{table['command']}`.\n\n" + markdown(scored, summary, f"agent ({algo})"))
    if gaps:
        text += f"\nAgent charge time, surrogate vs {backend}:\n\n" + markdown_table(gaps, [
            ("start", lambda g: g["start"]), ("surrogate [min]", lambda g: _min(g["surrogate"])),
            (f"{backend} [min]", lambda g: _min(g[backend])),
            ("gap", lambda g: f"{g['gap']:+.1f} %" if math.isfinite(g["gap"]) else "-"),
        ]) + "\n"
    plot_grid(scored, run_dir / f"{out_name}.png", title=f"{algo} ({run_dir.name}) vs references, {backend}",
              name=f"agent ({algo})")
    if traces:
        plot_traces(traces, config, run_dir / f"{out_name}-profile.png", title=f"{PROFILE_START.label}, {backend}")
    ground_truth = None
    if degradation and backend == "pybamm" and get_chemistry(rc["chemistry"]).degradation_parameter_set:
        ground_truth, section = degradation_section(agent, rc, table, starts, run_dir, out_name, progress, life_cycles)
        text += section
    (run_dir / f"{out_name}.md").write_text(text)
    print(text)
    report = {"backend": backend, "algo": rc["algo"], "seed": rc["seed"], "summary": summary, "rows": {r["key"]: r["row"] for r in scored},
              "surrogate_gap": gaps, "degradation": ground_truth, **(extra or {})}
    (run_dir / f"{out_name}.json").write_text(json.dumps(report, indent=1, default=float))
    return report


def degradation_section(agent, rc: dict, table: dict, starts: list[Start], run_dir: Path, out_name: str,
                        progress: bool, life_cycles: int = 0) -> tuple[dict, str]:
    """The agent's ground truth beside the committed baselines': its results and the markdown section."""
    import gymnasium as gym

    import envs
    from agents.ageing import DEGRADATION, LifeConfig, life_starts, measure
    from agents.degradation_report import judge, load_baselines, plot_capacity, plot_fronts, summary_table
    from surrogates.diagnostics import load_diagnostic

    baselines = load_baselines(rc["chemistry"])
    lives_at = life_starts(starts)
    env = gym.make(envs.FAST_CHARGE_ID, chemistry=rc["chemistry"], backend="pybamm", surrogate=rc["surrogate"],
                   pybamm_options=DEGRADATION, **rc["env"])
    try:
        estimator = load_diagnostic("degradation", rc["chemistry"])
    except FileNotFoundError:
        estimator = None
    name = f"agent ({rc['algo'].upper()})"
    life_config = LifeConfig(**next(iter(baselines.values()))["settings"]["life"]) if baselines else LifeConfig()
    if life_cycles:
        life_config = LifeConfig(n_cycles=life_cycles, segment_s=life_config.segment_s)
    res = measure(lambda start: agent, env, starts, lives_at, life_config, progress=progress, estimator=estimator)
    env.close()
    res["settings"] = {"family": "agent", "name": name}
    results = judge({name: res, **baselines}, table)
    plot_fronts(results, run_dir / f"{out_name}-fronts.png", lives_at)
    plot_capacity(results, run_dir / f"{out_name}-capacity.png", lives_at)
    est = [r.get("estimated_charge_mAh") for r in res["grid"].values()]
    true = [r["irreversible_charge_mAh"] for r in res["grid"].values()]
    est_line = ""
    if estimator is not None and all(e is not None and math.isfinite(e) for e in est):
        est_line = (f" The degradation estimator, from the charges' I, V, T, puts the agent's loss during the charges at "
                    f"{np.mean(est):.3f} mA.h on average; the DFN at {np.mean(true):.3f}.")
    text = ("\n## Degradation on the DFN (SEI + partially reversible plating)\n\n"
            "Each charge of the grid again on the DFN with its degradation submodels, then 1 h rest, 1C discharge to "
            "v_min, 1 h rest (loss/cycle: lithium lost for good, SEI + dead lithium); plating exposure: the margin below "
            "0 V integrated over the charge; life: the charge replayed for "
            f"{life_config.n_cycles} cycles from {', '.join(s.label for s in lives_at)} "
            "(`~`: cycles to 90 % extrapolated). Baselines from "
            f"`{'experiments/measure_degradation.py --ship' if baselines else 'none committed for this cell'}`."
            + est_line + "\n\n" + summary_table(results, lives_at) + "\n")
    return res, text


COMPARED = (("geo_mean_ratio", "geo-mean ratio to oracle", "{:.3f}"), ("worst_ratio", "worst ratio", "{:.3f}"),
            ("not_reached", "points not reached in 2 h", "{:.1f}"), ("violating_points", "points with violations", "{:.1f}"), ("tuned_faster", "points the tuned protocol wins",
                                                                        "{:.1f}"),
            ("cccv_faster", "points CC-CV wins", "{:.1f}"))
"""Summary keys compared across runs, their headers and formats."""


def compare_runs(reports: dict) -> tuple[str, dict]:
    """Runs' reports (run dir -> :func:`evaluate_run`'s report) -> a markdown comparison and its data.

    One row per run, then one per algorithm with the mean +- standard deviation over its runs (seeds).
    """
    runs = [{"run": str(d), "algo": r["algo"], "seed": r["seed"], **r["summary"]} for d, r in reports.items()]
    algos = {}
    for r in runs:
        algos.setdefault(r["algo"], []).append(r)
    groups = []
    for algo, rs in algos.items():
        g = {"run": f"{algo.upper()} mean +- sd over {len(rs)} seed(s)", "algo": algo, "seed": ""}
        for key, _, _ in COMPARED:
            v = np.array([r[key] for r in rs], dtype=np.float64)
            g[key], g[key + "_sd"] = float(np.nanmean(v)), float(np.nanstd(v))
        groups.append(g)
    cols = [("run", lambda r: r["run"]), ("algo", lambda r: r["algo"].upper()), ("seed", lambda r: r["seed"])]
    cols += [(head, (lambda k, f: lambda r: f.format(r[k]) + (f" +- {f.format(r[k + '_sd'])}" if k + "_sd" in r else ""))
              (key, fmt)) for key, head, fmt in COMPARED]
    text = "# Policies over the reference grid\n\n" + markdown_table(runs + groups, cols) + "\n"
    return text, {"runs": runs, "algorithms": groups}


__all__ = ["compare_runs", "replay_grid", "score", "summary_line", "markdown", "plot_grid", "evaluate_run", "worst_excess",
           "ProfilePolicy", "PROFILE_START"]
