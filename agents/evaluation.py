"""Replay charging policies (agents and baselines) on one backend and compare them.

Glossary (units as in :mod:`surrogates.common.channels`):

    charge time     minutes from the start SOC to the target SOC (NaN if never reached)
    violating step  an interval whose extremes break a limit: V_max > v_max, T_max > t_max,
                    or plating margin min < plating_limit (the env's limits, checked on the
                    interval's sub-samples, every dt / substeps seconds on the DFN)

Every policy acts through the same env API (``predict(obs) -> action``), so a trained agent,
CC-CV and multi-step CC are judged by the same code on the surrogate or on PyBaMM's DFN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surrogates.common.channels import DEGRADATION_CHANNELS

TRACE_KEYS = ("elapsed", "c_rate", "current", "voltage", "voltage_max", "temperature", "temperature_max",
              "plating_margin", "plating_margin_min", "soc")
OPTIONAL_TRACE_KEYS = DEGRADATION_CHANNELS
"""Recorded when the env's info has them (a PyBaMM backend with degradation submodels)."""


@dataclass
class Start:
    """A start condition: SOC [1] and ambient temperature [K] (the cell starts at it)."""

    soc: float = 0.1
    ambient_temperature: float = 298.15

    @property
    def label(self) -> str:
        return f"{self.soc:.0%} SOC, {self.ambient_temperature - 273.15:.0f} C"


def rollout(policy, env, start: Start, seed: int = 0) -> dict:
    """Run one episode of ``policy`` on ``env`` (a ``FastChargeEnv``) from ``start``.

    Returns per-interval arrays (:data:`TRACE_KEYS`, with the rest state at index 0) and the
    episode's outcome flags and return.
    """
    obs, info = env.reset(seed=seed, options={"soc_start": start.soc, "ambient_temperature": start.ambient_temperature})
    keys = TRACE_KEYS + tuple(k for k in OPTIONAL_TRACE_KEYS if k in info)
    trace = {k: [info[k]] for k in keys}
    total, done, flags = 0.0, False, {}
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
        for k in keys:
            trace[k].append(info.get(k, math.nan))  # a failed DFN step has no capacity_lost
        flags = {k: bool(info[k]) for k in ("reached_target", "hard_violation", "solver_failure")}
        flags["truncated"] = bool(truncated)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in trace.items()}
    out.update(flags)
    out["return"] = total
    return out


def limit_slack(trace: dict, config) -> dict[str, np.ndarray]:
    """Signed distance of every interval of a trace to each limit, ``[n_intervals]`` (negative: broken).

    ``V`` = v_max - voltage_max [V], ``T`` = t_max - temperature_max [K], ``plating`` =
    plating_margin_min - plating_limit [V]. The one definition of a broken limit: the results rows,
    the yardstick's worst excess and the protocol search's penalty and constraints all read it.
    """
    steps = slice(1, None)  # the intervals, not the rest state
    return {"V": config.v_max - trace["voltage_max"][steps], "T": config.t_max - trace["temperature_max"][steps],
            "plating": trace["plating_margin_min"][steps] - config.plating_limit}


def summarize(trace: dict, config) -> dict:
    """One row of the results table for a trace from :func:`rollout`."""
    steps = slice(1, None)  # the intervals, not the rest state
    slack = limit_slack(trace, config)
    over_v, over_t, plating = slack["V"] < 0, slack["T"] < 0, slack["plating"] < 0
    reached = trace["reached_target"]
    return {
        "charge_time_min": float(trace["elapsed"][-1] / 60.0) if reached else math.nan,
        "reached_target": reached,
        "max_voltage_V": float(np.max(trace["voltage_max"][steps])),
        "max_temperature_C": float(np.max(trace["temperature_max"][steps]) - 273.15),
        "min_plating_margin_mV": float(np.min(trace["plating_margin_min"][steps]) * 1e3),
        "violating_steps": int(np.sum(over_v | over_t | plating)),
        "voltage_steps": int(over_v.sum()),
        "temperature_steps": int(over_t.sum()),
        "plating_steps": int(plating.sum()),
        "time_plating_min": float(plating.sum() * config.dt / 60.0),
        "solver_failure": trace["solver_failure"],
        "hard_violation": trace["hard_violation"],
        "return": float(trace["return"]),
    }


def charge_row(trace: dict, config) -> dict:
    """:func:`summarize`'s row plus the C-rate profile (3 decimals, one per interval): enough to redraw the charge."""
    return {**summarize(trace, config), "c_rate_profile": [round(float(c), 3) for c in trace["c_rate"][1:]]}


def is_safe(row: dict) -> bool:
    """Reached the target with no violating step and no solver failure."""
    return bool(row["reached_target"] and row["violating_steps"] == 0 and not row["solver_failure"])


CV_MARGIN = 0.005
"""The baselines' constant-voltage set point sits this far below v_max [V]: a 10 s CV loop holds
V a few mV above its set point (see :mod:`agents.baselines`), and the limit is checked strictly."""


def plot_traces(traces: dict[str, dict], config, path=None, title: str = ""):
    """C-rate, voltage, temperature and plating margin against time, one line per policy.

    Saves to ``path`` and closes the figure; without ``path`` returns the open figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(8, 10), sharex=True)
    for name, tr in traces.items():
        t = tr["elapsed"] / 60.0
        axes[0].step(t[1:], tr["c_rate"][1:], where="pre", label=name, lw=1.2)
        axes[1].plot(t, tr["voltage"], lw=1.2)
        axes[2].plot(t, tr["temperature"] - 273.15, lw=1.2)
        axes[3].plot(t, tr["plating_margin"] * 1e3, lw=1.2)
    axes[1].axhline(config.v_max, color="k", ls="--", lw=0.8)
    axes[2].axhline(config.t_max - 273.15, color="k", ls="--", lw=0.8)
    axes[3].axhline(config.plating_limit * 1e3, color="k", ls="--", lw=0.8)
    for ax, label in zip(axes, ("C-rate [1/h]", "voltage [V]", "temperature [C]", "plating margin [mV]")):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time [min]")
    axes[0].legend(fontsize=7, ncol=2)
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path=None):
    """Save ``fig`` to ``path`` and close it (returns None); without ``path`` return the open figure."""
    if path is None:
        return fig
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return None
