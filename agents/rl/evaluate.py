"""A trained run judged: its policy replayed over the reference grid on the DFN, beside the references, and its
ground-truth degradation beside the committed baselines'.

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

import gymnasium as gym
import numpy as np

import envs
from agents.ageing.cycle import DEGRADATION
from agents.ageing.life import LifeConfig, life_starts
from agents.ageing.measure import measure, result_to_json
from agents.ageing.report import judge, load_baselines, plot_capacity, plot_fronts, summary_table
from agents.charge import Start, minutes, rollout
from agents.charge.figures import plot_traces
from agents.control.rules import ProfilePolicy
from agents.control.tuning import Protocol
from agents.evaluation.grid import PROFILE_START
from agents.evaluation.references import load_references, reference_starts
from agents.evaluation.scoring import replay_grid, score
from agents.evaluation.yardstick import markdown, plot_grid
from agents.rl.algorithms import load_agent
from surrogates.common.tables import markdown_table
from surrogates.diagnostics import load_diagnostic
from surrogates.physics.chemistry import get_chemistry


def evaluate_run(run_dir, backend: str = "pybamm", references=None, out_name: str = "evaluation",
                 surrogate_gap: bool = True, extra: dict | None = None, progress: bool = True,
                 degradation: bool = True, life_cycles: int = 0) -> dict:
    """Replay a run's policy over the reference grid on ``backend``; write ``<out_name>.md/.png/.json``
    and ``<out_name>-profile.png`` in the run folder; print the table. The report (summary and rows).

    With ``degradation`` (and a pybamm backend, for a cell with degradation parameters), the policy's ground
    truth follows (:func:`agents.ageing.measure.measure`: irreversible loss per cycle and plating exposure over the grid,
    life at 10 % SOC, 25 C and the hottest ambient) beside the committed baselines'
    (``experiments/measure_degradation.py``): a section of ``<out_name>.md``, ``<out_name>-fronts.png`` (charge
    time vs loss) and ``<out_name>-capacity.png`` (capacity vs cycle), and ``"degradation"`` in the report.
    ``life_cycles``: cycles of each life (0: the baselines', for a like-for-like fade).

    The envs use the run's shared env settings (``config.env``) with the env's own limits, not the
    training env's tightened ones; the references (``references``: a table's path, default the
    chemistry's committed one) must have been built for that task.
    """
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
        for p in scored:
            t_s = s_rows[p.key].time
            gaps.append({"start": p.start.label, "surrogate": t_s, backend: p.t,
                         "gap": 100.0 * (t_s - p.t) / p.t if math.isfinite(t_s * p.t) else math.nan})

    # the profile figure: the agent, the oracle (its stored profile replayed) and the tuned protocol
    traces = {}
    ref = table["points"].get(PROFILE_START.key)
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
            ("start", lambda g: g["start"]), ("surrogate [min]", lambda g: minutes(g["surrogate"])),
            (f"{backend} [min]", lambda g: minutes(g[backend])),
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
    report = {"backend": backend, "algo": rc["algo"], "seed": rc["seed"], "summary": summary, "rows": {p.key: p.charge.to_json() for p in scored},
              "surrogate_gap": gaps, "degradation": ground_truth, **(extra or {})}
    (run_dir / f"{out_name}.json").write_text(json.dumps(report, indent=1, default=float))
    return report


def degradation_section(agent, rc: dict, table: dict, starts: list[Start], run_dir: Path, out_name: str,
                        progress: bool, life_cycles: int = 0) -> tuple[dict, str]:
    """The agent's ground truth beside the committed baselines': its results (as stored) and the markdown section."""
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
    est = [r.estimated_charge_mAh for r in res["grid"].values()]
    true = [r.irreversible_charge_mAh for r in res["grid"].values()]
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
    return result_to_json(res), text


def run_policies(runs: dict):
    """Trained runs as :data:`agents.ageing.measure.PolicySpec`: family label -> run folders (seeds)."""
    for family, dirs in runs.items():
        for d in dirs:
            agent, resolved = load_agent(d)
            env_kwargs = {"chemistry": resolved["config"]["chemistry"], **resolved["config"]["env"]}
            yield f"{family}: {Path(d).name}", family, (lambda start, a=agent: a), env_kwargs


__all__ = ["evaluate_run", "degradation_section", "run_policies"]
