"""The best protocol an engineer can tune: multi-stage CC-CV optimised on the DFN, per start condition.

Glossary (units as in :mod:`surrogates.common.channels`):

    stage      a constant current c_i [1/h] held while SOC < s_i (the last stage up to the target)
    v_cv       the CV set point [V]: v_max - CV_MARGIN, as for every rule baseline
    excess     how far one interval broke a limit, in units of 1 mV (voltage, plating margin) and
               0.1 K (temperature), summed over the charge

A protocol is a :class:`agents.control.rules.MultiStepCCPolicy`: ``STAGES`` (5) CC stages with SOC switch
points, then CV when V reaches ``v_cv`` (the baselines' integral CV loop). :func:`tune_protocol`
finds the fastest safe one for one start condition over the five rates and four switch points, in
two real optimisers' hands, from the fastest safe CC-CV (:func:`fastest_cccv`, bisected) or from the
oracle's profile held under its lowest rate in each window and scaled until safe, whichever is faster:

1. CMA-ES (the ``cma`` package), half the budget, on ``charge time [min] + EXCESS_COST * excess``;
2. COBYLA (``scipy.optimize``), the rest, from the fastest safe point so far: the charge time under
   one slack constraint per stage (:func:`stage_slack`), so it can ride each stage's limit, which a
   single penalty cannot tell apart.

It keeps the fastest sample that breaks no limit. The charge time it minimises is the interpolated time
at which SOC crosses the target (smooth in the rates); the time reported is the env's, in whole
intervals. What it finds per grid point is the reference table (``agents/references/<chemistry>.md``).

Each candidate is simulated by :func:`simulate_protocol`, which drives the policy's own decision
rule (``RulePolicy.c_rate`` on the env's own observation) but solves each run of constant-current
intervals in one PyBaMM call (``DFNSimulator.run``) instead of one call per interval: several times
faster than stepping, and equal to it up to the solver's tolerance. The winner is then replayed
through the env (:func:`agents.charge.rollout`) and that replay is what the reference table
records; if the replay breaks a limit the solver tolerance hid, the rates are scaled down by 0.5 %
steps until it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agents.charge import TRACE_KEYS, Start, limit_slack, summarize
from agents.control.rules import CV_MARGIN, MultiStepCCPolicy
from envs.charging import hard_violations, observe
from envs.config import ChargingConfig
from surrogates.common.channels import SECONDS_PER_HOUR
from surrogates.physics.dfn import DFNError, DFNSimulator

EXCESS_COST = 10.0
"""Objective cost of one unit of excess (1 mV or 0.1 K over a limit in one interval) [min]."""
C_MIN = 0.2
"""Lowest stage rate the optimiser tries [1/h]."""
STAGES = 5
"""CC stages of a tuned protocol (each with its own rate and SOC switch point)."""


@dataclass
class Protocol:
    """CC stages ``[(soc_upto, c_rate), ...]`` then CV at ``v_cv`` [V]."""

    stages: list[tuple[float, float]]
    v_cv: float

    def policy(self, config: ChargingConfig) -> MultiStepCCPolicy:
        return MultiStepCCPolicy(self.stages, v_max=self.v_cv, config=config)

    @property
    def label(self) -> str:
        if len(self.stages) == 1:
            return f"CC-CV {self.stages[0][1]:.2f}C"
        return "/".join(f"{c:.2f}C" + (f"<{s:.0%}" if i < len(self.stages) - 1 else "")
                        for i, (s, c) in enumerate(self.stages)) + " then CV"

    def to_json(self) -> dict:
        return {"stages": [[float(s), float(c)] for s, c in self.stages], "v_cv": float(self.v_cv), "label": self.label}

    @classmethod
    def from_json(cls, d: dict) -> Protocol:
        return cls([tuple(w) for w in d["stages"]], float(d["v_cv"]))


SLACK_UNITS = {"V": 1e-3, "T": 0.1, "plating": 1e-3}
"""The unit of excess and slack per limit (:func:`agents.charge.limit_slack`'s keys): 1 mV, 0.1 K, 1 mV."""


def scaled_slack(trace: dict, config: ChargingConfig) -> dict[str, np.ndarray]:
    """Every interval's slack to each limit in :data:`SLACK_UNITS` (negative: broken)."""
    return {k: v / SLACK_UNITS[k] for k, v in limit_slack(trace, config).items()}


def excess(trace: dict, config: ChargingConfig) -> float:
    """Total excess of a trace over the limits (see the glossary), 0 for a safe charge."""
    return float(np.sum(sum(np.maximum(-v, 0.0) for v in scaled_slack(trace, config).values())))


def crossing_time(trace: dict, config: ChargingConfig) -> float:
    """Time [s] at which SOC reaches the target, interpolated inside the last interval (inf if never)."""
    soc = trace["soc"]
    hit = np.nonzero(soc >= config.soc_target - 1e-9)[0]
    if len(hit) == 0:
        return math.inf
    k = int(hit[0])
    if k == 0:
        return 0.0
    frac = (config.soc_target - soc[k - 1]) / max(soc[k] - soc[k - 1], 1e-12)
    return float((k - 1 + min(max(frac, 0.0), 1.0)) * config.dt)


def simulate_protocol(sim: DFNSimulator, protocol: Protocol, start: Start, config: ChargingConfig) -> dict:
    """Charge from ``start`` under ``protocol`` on ``sim``; a trace like :func:`agents.charge.rollout`'s.

    Runs of intervals at the protocol's CC rate are solved in one call (see the module docstring).
    Stops at the target, at the time limit, at the first hard violation (the env's own termination,
    :func:`envs.charging.hard_violations`) or at a solver failure (``solver_failure`` True).
    """
    policy = protocol.policy(config)
    rest = sim.reset(start.soc, start.ambient_temperature)
    trace = {k: [np.array([rest[k]])] for k in TRACE_KEYS if k in rest}
    c_hist, amb = [0.0], np.array([start.ambient_temperature])
    step_c = config.dt / SECONDS_PER_HOUR  # SOC gained per interval at 1C
    k, failed, last = 0, False, {key: np.array([rest[key]]) for key in rest}

    def decide(ch: dict, c_prev: np.ndarray, steps: np.ndarray) -> np.ndarray:
        obs = observe(ch, c_prev, steps, np.broadcast_to(amb, c_prev.shape), config)
        return policy.c_rate(obs)

    def hard_at(ch: dict) -> np.ndarray:  # the env's own termination, per interval
        return np.logical_or.reduce(hard_violations(ch, config))

    def hard(ch: dict) -> bool:
        return bool(np.any(hard_at(ch)))

    while k < config.max_steps:
        c = float(decide(last, np.array([c_hist[-1]]), np.array([k]))[0])
        saturated = k == 0 or c == float(policy.cc_rate(np.array([last["soc"][0]]))[0])
        n = 1
        if saturated and c > 0:
            n = int(min(math.ceil((config.soc_target - last["soc"][0]) / (c * step_c)) + 1, config.max_steps - k))
        snap = sim.snapshot()
        out, failed = _run(sim, c, n)
        m = len(out["soc"])
        if n > 1 and m > 0:  # keep the intervals until the policy's own rule would choose another rate
            nxt = decide(out, np.full(m, c), k + 1 + np.arange(m))
            # the env ends the charge at the first hard violation: so does the batch of intervals
            stop = (nxt != c) | (out["soc"] >= config.soc_target - 1e-9) | hard_at(out)
            used = int(np.argmax(stop)) + 1 if stop.any() else m
            if used < m or (failed and stop.any()):
                sim.restore(snap)
                out, failed = _run(sim, c, used)
        m = len(out["soc"])
        for key in trace:
            trace[key].append(out[key])
        c_hist += [c] * m
        k += m
        if failed or m == 0:
            failed = True
            break
        last = {key: out[key][-1:] for key in out}
        if last["soc"][0] >= config.soc_target - 1e-9 or hard(out):
            break
    result = {key: np.concatenate(v).astype(np.float64) for key, v in trace.items()}
    result["c_rate"] = np.asarray(c_hist, dtype=np.float64)
    result["current"] = -result["c_rate"] * sim.one_c
    result["elapsed"] = np.arange(len(c_hist), dtype=np.float64) * config.dt
    reached = bool(result["soc"][-1] >= config.soc_target - 1e-9) and not failed
    result.update(reached_target=reached, hard_violation=hard(result) and not failed, solver_failure=failed,
                  truncated=not reached and not failed, **{"return": math.nan})
    return result


def _run(sim: DFNSimulator, c: float, n: int) -> tuple[dict, bool]:
    """``n`` intervals at ``c`` [1/h]: (channels, failed); a failure keeps the intervals before it."""
    try:
        return sim.run(-c * sim.one_c, n), False
    except DFNError as err:
        return err.partial, True


def objective(trace: dict, config: ChargingConfig) -> float:
    """Charge time [min] (interpolated) + EXCESS_COST * excess; a charge that never arrives costs the time limit twice."""
    t = crossing_time(trace, config)
    if trace["solver_failure"] or not math.isfinite(t):
        t = 2 * config.time_limit
    return t / 60.0 + EXCESS_COST * excess(trace, config)


def _safe(trace: dict, config: ChargingConfig) -> bool:
    return bool(trace["reached_target"]) and summarize(trace, config).safe  # a charge that arrived has intervals


def fastest_cccv(sim: DFNSimulator, start: Start, config: ChargingConfig, low: float = 0.5, tol: float = 0.01,
                 v_cv: float | None = None) -> tuple[Protocol, dict]:
    """Bisect the CC-CV rate [1/h] in [low, c_max] for the fastest charge that breaks no limit.

    Assumes safety is monotone in the rate (it is for CC-CV on the DFN). Returns the protocol and its trace.
    """
    v_cv = config.v_max - CV_MARGIN if v_cv is None else v_cv
    run = lambda c: simulate_protocol(sim, Protocol([(config.soc_target, c)], v_cv), start, config)  # noqa: E731
    trace = run(low)
    if not _safe(trace, config):
        raise RuntimeError(f"CC-CV at {low}C already breaks a limit from {start.label}; lower `low`")
    best = (low, trace)
    hi_trace = run(config.c_max)
    if _safe(hi_trace, config):
        return Protocol([(config.soc_target, config.c_max)], v_cv), hi_trace
    lo, hi = low, config.c_max
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        trace = run(mid)
        if _safe(trace, config):
            lo, best = mid, (mid, trace)
        else:
            hi = mid
    return Protocol([(config.soc_target, best[0])], v_cv), best[1]


def decode(x: np.ndarray, soc_start: float, config: ChargingConfig, v_cv: float) -> Protocol:
    """CMA-ES's point in [0, 1]^(2 STAGES - 1) -> STAGES rates in [C_MIN, c_max], then STAGES - 1 switch
    points, each a fraction of the SOC left between the previous one and the target."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    rates = C_MIN + x[:STAGES] * (config.c_max - C_MIN)
    edges, s = [], soc_start
    for u in x[STAGES:]:
        s = max(s + u * (config.soc_target - s), edges[-1] + 1e-6 if edges else s)
        edges.append(s)
    return Protocol(list(zip(edges + [config.soc_target], rates)), v_cv)


def equal_windows() -> np.ndarray:
    """The switch-point fractions that split the SOC range into STAGES equal windows."""
    return np.array([1.0 / (STAGES - i) for i in range(STAGES - 1)])


def encode_profile(c_rate: np.ndarray, start: Start, config: ChargingConfig) -> np.ndarray:
    """A point of :func:`decode` that stays under a C-rate profile (e.g. the oracle's, one rate per interval):
    equal SOC windows, each stage's rate the profile's lowest in its window (its first interval left out:
    the oracle opens with a one-interval spike)."""
    c_rate = np.asarray(c_rate, dtype=np.float64)
    soc = start.soc + np.concatenate([[0.0], np.cumsum(c_rate)[:-1]]) * config.dt / SECONDS_PER_HOUR  # at each start
    edges = start.soc + np.arange(STAGES + 1) / STAGES * (config.soc_target - start.soc)
    edges[-1] += 1.0
    rest = np.arange(len(c_rate)) > 0
    rates = [c_rate[rest & (soc >= a) & (soc < b)].min() if np.any(rest & (soc >= a) & (soc < b)) else c_rate[rest].min()
             for a, b in zip(edges, edges[1:])]
    return np.clip(np.r_[(np.asarray(rates) - C_MIN) / (config.c_max - C_MIN), equal_windows()], 0.0, 1.0)


def tune_protocol(sim: DFNSimulator, start: Start, config: ChargingConfig, cccv: Protocol, evaluations: int = 200,
                  seed: int = 0, guess: np.ndarray | None = None, progress=None) -> tuple[Protocol, dict, dict]:
    """CMA-ES over STAGES-stage CC-CV protocols from ``start``.

    The search starts from the faster of the CC-CV ``cccv`` and ``guess`` (a point of :func:`decode`,
    e.g. :func:`encode_profile` of the oracle's profile) with its rates scaled down until it is safe
    (bisection on the factor, 6 charges). Returns the fastest safe protocol found, its trace (fast
    path) and the search's record (evaluations, best objective, CMA-ES's stop reason). ``progress(n)``
    is called after each evaluation.
    """
    import cma

    v_cv = cccv.v_cv
    c0 = (cccv.stages[0][1] - C_MIN) / (config.c_max - C_MIN)
    x0 = np.r_[np.full(STAGES, c0), equal_windows()]
    best: list = [cccv, simulate_protocol(sim, cccv, start, config)]
    best_time = crossing_time(best[1], config) if _safe(best[1], config) else math.inf
    if guess is not None:  # scale the guess's rates down until it is safe (bisection), and start there if faster
        guess = np.asarray(guess, dtype=np.float64)
        lo, hi = 0.5, 1.0
        for _ in range(6):
            f = 0.5 * (lo + hi)
            rates = (C_MIN + guess[:STAGES] * (config.c_max - C_MIN)) * f
            x = np.r_[np.clip((rates - C_MIN) / (config.c_max - C_MIN), 0, 1), guess[STAGES:]]
            protocol = decode(x, start.soc, config, v_cv)
            trace = simulate_protocol(sim, protocol, start, config)
            if _safe(trace, config):
                lo = f
                if crossing_time(trace, config) < best_time:
                    best, best_time, x0 = [protocol, trace], crossing_time(trace, config), x
            else:
                hi = f
    dim = 2 * STAGES - 1
    n = 0

    def charge(x) -> dict:
        nonlocal best, best_time, n
        protocol = decode(x, start.soc, config, v_cv)
        trace = simulate_protocol(sim, protocol, start, config)
        if _safe(trace, config) and crossing_time(trace, config) < best_time:
            best, best_time = [protocol, trace], crossing_time(trace, config)
        n += 1
        if progress is not None:
            progress(1)
        return trace

    # 1. CMA-ES on the penalised objective: explores, and may move the start to a better basin
    opts = {"bounds": [[0.0] * dim, [1.0] * dim], "popsize": 10, "maxfevals": evaluations // 2, "seed": seed + 1,
            "verbose": -9, "tolfun": 1e-3}
    global_rng = np.random.get_state()  # cma seeds numpy's global generator: give the caller's back afterwards
    try:
        es = cma.CMAEvolutionStrategy(x0, 0.05, opts)
        while not es.stop():
            xs = es.ask()
            es.tell(xs, [objective(charge(x), config) for x in xs])
    finally:
        np.random.set_state(global_rng)

    # 2. COBYLA from the fastest safe point: the interpolated charge time under one slack constraint per
    # stage, so it can ride each stage's limit (a penalty cannot tell which stage is binding)
    from scipy.optimize import minimize

    cache: dict = {}

    def evaluated(x) -> dict:
        key = tuple(np.round(np.clip(x, 0.0, 1.0), 12))
        if key not in cache:
            cache[key] = charge(np.asarray(key))
        return cache[key]

    x_best = encode_protocol(best[0], start, config)
    res = minimize(lambda x: min(crossing_time(evaluated(x), config), 2 * config.time_limit) / 60.0, x_best,
                   method="COBYLA", bounds=[(0.0, 1.0)] * dim,
                   constraints=[{"type": "ineq", "fun": lambda x: stage_slack(evaluated(x), decode(x, start.soc, config, v_cv), config)}],
                   options={"maxiter": max(evaluations - n, 1), "rhobeg": 0.03})
    record = {"evaluations": n, "cma_best_objective_min": float(es.result.fbest), "cobyla": str(res.message),
              "best_time_min": best_time / 60.0}
    return best[0], best[1], record


def stage_slack(trace: dict, protocol: Protocol, config: ChargingConfig) -> np.ndarray:
    """Per stage, the smallest slack to any limit over the intervals that started in its SOC window, in
    units of 1 mV (voltage, plating margin) and 0.1 K (temperature); -100 for a charge that failed."""
    k = len(protocol.stages)
    if trace["solver_failure"] or not trace["reached_target"]:
        return np.full(k, -100.0)
    slack = np.minimum.reduce(list(scaled_slack(trace, config).values()))
    stage = np.searchsorted([e for e, _ in protocol.stages], trace["soc"][:-1], side="right")
    return np.array([slack[stage == i].min() if np.any(stage == i) else 100.0 for i in range(k)])


def encode_protocol(protocol: Protocol, start: Start, config: ChargingConfig) -> np.ndarray:
    """The point of :func:`decode` of a protocol (one stage: the same rate in every stage, equal windows)."""
    if len(protocol.stages) == 1:
        rates, edges = np.full(STAGES, protocol.stages[0][1]), None
    else:
        rates, edges = np.array([c for _, c in protocol.stages]), [e for e, _ in protocol.stages[:-1]]
    x = np.r_[(rates - C_MIN) / (config.c_max - C_MIN), equal_windows()]
    if edges is not None:
        prev = start.soc
        for i, e in enumerate(edges):
            x[STAGES + i] = (e - prev) / max(config.soc_target - prev, 1e-12)
            prev = e
    return np.clip(x, 0.0, 1.0)


def scaled(protocol: Protocol, factor: float) -> Protocol:
    """The protocol with every stage rate multiplied by ``factor``."""
    return Protocol([(s, c * factor) for s, c in protocol.stages], protocol.v_cv)


__all__ = ["Protocol", "simulate_protocol", "fastest_cccv", "tune_protocol", "decode", "excess", "crossing_time",
           "objective", "scaled", "encode_profile", "equal_windows", "EXCESS_COST", "STAGES", "C_MIN"]
