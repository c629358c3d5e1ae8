"""One charge of a policy on an env, recorded interval by interval (a trace).

Every policy acts through the same env API (``predict(obs) -> action``), so a trained agent,
CC-CV and multi-step CC are judged by the same code on the surrogate or on PyBaMM's DFN.
"""

from __future__ import annotations

import math

import numpy as np

from agents.charge.start import Start
from surrogates.common.channels import DEGRADATION_CHANNELS

TRACE_KEYS = ("elapsed", "c_rate", "current", "voltage", "voltage_max", "temperature", "temperature_max",
              "plating_margin", "plating_margin_min", "soc")
OPTIONAL_TRACE_KEYS = DEGRADATION_CHANNELS
"""Recorded when the env's info has them (a PyBaMM backend with degradation submodels)."""


def rollout(policy, env, start: Start, seed: int = 0) -> dict:
    """Run one episode of ``policy`` on ``env`` (a ``FastChargeEnv``) from ``start``.

    Returns per-interval arrays (:data:`TRACE_KEYS`, with the rest state at index 0) and the
    episode's outcome flags and return.
    """
    obs, info = env.reset(seed=seed, options=start.options)
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


__all__ = ["TRACE_KEYS", "OPTIONAL_TRACE_KEYS", "rollout"]
