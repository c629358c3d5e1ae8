"""A policy's charges over the grid, joined with the reference table: the ratio to the oracle and who beats whom.

Glossary (units as in :mod:`surrogates.common.channels`; the references in :mod:`agents.evaluation.references`):

    ratio           a policy's charge time over the oracle's at the same grid point (1.0: the physical limit)
    geo-mean ratio  the geometric mean of the ratios over the grid points the policy charged at
    beaten          a grid point where the tuned protocol charges faster than the policy, or the policy
                    breaks a limit or never arrives
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agents.charge import ChargeResult, Start, rollout
from agents.evaluation.references import REFERENCES, reference_time


def replay_grid(policy, env, starts: list[Start], progress: bool = False) -> dict[str, ChargeResult]:
    """``policy`` from every start on ``env`` (a ``FastChargeEnv``): point key -> its record (profile and worst excess)."""
    from tqdm.auto import tqdm

    config = env.unwrapped.config
    return {start.key: ChargeResult.of(rollout(policy, env.unwrapped, start), config, profile=True, excess=True)
            for start in tqdm(starts, desc="replay", disable=not progress, unit="charge")}


@dataclass(frozen=True)
class ScoredPoint:
    """A policy's charge at one grid point beside the references' charge times there [min]."""

    start: Start
    charge: ChargeResult
    references: dict
    """Reference name -> its charge time [min] (NaN: never arrived), for the references the table has here."""

    @property
    def key(self) -> str:
        return self.start.key

    @property
    def t(self) -> float:
        return self.charge.time

    def reference(self, name: str) -> float:
        """Reference ``name``'s charge time [min]; NaN if it never arrived or the table lacks it."""
        return self.references.get(name, math.nan)

    @property
    def missing(self) -> list[str]:
        return [name for name in REFERENCES if name not in self.references]

    @property
    def ratio(self) -> float:
        return self.t / self.reference("oracle")

    @property
    def ratio_buffered(self) -> float:
        return self.t / self.reference("oracle_buffered")

    @property
    def violating(self) -> bool:
        return self.charge.violating_steps > 0 or self.charge.solver_failure

    def faster(self, name: str) -> bool:
        """Reference ``name`` charges faster than the policy (a policy that never arrives counts as slower; a
        reference not in the table beats nothing)."""
        ref = self.reference(name)
        return math.isfinite(ref) and not (self.t <= ref)

    @property
    def tuned_faster(self) -> bool:
        return self.faster("tuned")

    @property
    def cccv_faster(self) -> bool:
        return self.faster("cccv")


def geometric_mean(xs) -> float:
    xs = list(xs)
    return float(math.exp(np.mean(np.log(xs)))) if xs else math.nan


def score(rows: dict, table: dict) -> tuple[list[ScoredPoint], dict]:
    """Join a policy's grid rows (point key -> :class:`ChargeResult`, or its JSON) with the reference table; the
    scored points and the summary.

    Summary keys: ``geo_mean_ratio`` and ``worst_ratio`` (to the oracle, over the points charged),
    ``geo_mean_ratio_buffered`` (to the buffered oracle), ``points``, ``violating_points``,
    ``violating_steps``, ``not_reached``, ``tuned_faster`` and ``cccv_faster`` (points where that
    protocol charges faster than the policy), ``beaten`` (points tuned-faster, violating or not reached),
    ``geo_mean_ratio_tuned`` (the tuned protocols' own ratio).
    """
    out = []
    for key, ref in table["points"].items():
        row = rows.get(key)
        if row is None:
            continue
        charge = row if isinstance(row, ChargeResult) else ChargeResult.from_json(row)
        out.append(ScoredPoint(Start(ref["soc"], ref["ambient_temperature"]), charge,
                               {name: reference_time(ref, name) for name in REFERENCES if name in ref}))
    ok = [p for p in out if math.isfinite(p.ratio)]
    summary = {
        "points": len(out),
        "geo_mean_ratio": geometric_mean(p.ratio for p in ok),
        "worst_ratio": max((p.ratio for p in ok), default=math.nan),
        "geo_mean_ratio_buffered": geometric_mean(p.ratio_buffered for p in ok),
        "violating_points": sum(p.violating for p in out),
        "violating_steps": int(sum(p.charge.violating_steps for p in out)),
        "not_reached": sum(not math.isfinite(p.t) for p in out),
        "tuned_faster": sum(p.tuned_faster for p in out),
        "cccv_faster": sum(p.cccv_faster for p in out),
    }
    summary["beaten"] = sum(p.tuned_faster or p.violating or not math.isfinite(p.t) for p in out)
    summary["geo_mean_ratio_tuned"] = geometric_mean(p.reference("tuned") / p.reference("oracle") for p in out
                                                     if math.isfinite(p.reference("tuned")))
    return out, summary


__all__ = ["replay_grid", "ScoredPoint", "score", "geometric_mean"]
