"""Gymnasium fast-charging environments; ``import envs`` registers them.

* ``cellgym/FastCharge-v2``: :class:`envs.charging.FastChargeEnv`, one cell on a neural
  surrogate (``backend="surrogate"``, default) or on PyBaMM's DFN (``backend="pybamm"``).
* ``cellgym/FastChargeDiagnostics-v1``: the same task with the learned-diagnostic reward terms
  ``plating`` and ``degradation`` on by default (``diagnostics=("plating", "degradation")``,
  weights ``diagnostic_weights``; see :mod:`envs.diagnostic_terms`). A sibling of
  ``FastCharge``, not its next version: ``FastCharge`` stays the task without them (and the one
  policies are replayed on). Needs both diagnostics shipped for the chemistry
  (``surrogates/diagnostics/checkpoints/{chemistry}-{kind}.pt``).
* ``cellgym/FastChargeBMS-v1``: the reward sees only what a BMS measures: the diagnostic terms
  ``plating`` and ``degradation`` on, and no penalty on the plating margin (``w_plating=0``), a
  quantity no BMS measures and the surrogate reports for free. With ``hard_plating_margin`` None
  (the default) nothing else in the reward or the termination reads the margin. What the
  privileged signal is worth is ``FastChargeDiagnostics`` against this id
  (``experiments/ablate_diagnostics.py``).
* All ids have a ``vector_entry_point``: ``gym.make_vec(id, num_envs=N,
  vectorization_mode="vector_entry_point")`` is :class:`envs.gym_vector.FastChargeVectorEnv`,
  N cells as one batch of surrogate states behind Gymnasium's vector API (same-step autoreset,
  infos as arrays).
* :class:`envs.vector.SurrogateVecEnv`: the same batch as a stable-baselines3 ``VecEnv``.

Callers name the ids by their constants (:data:`FAST_CHARGE_ID`, :data:`FAST_CHARGE_DIAGNOSTICS_ID`,
:data:`FAST_CHARGE_BMS_ID`), which keep their names across versions.

Versions. The rule (Gymnasium's and ours): bump an id on any change of its dynamics, observation, reward or defaults.

* ``FastCharge``: v0 8295aa0; v1 was the diagnostics task (3f38f58-7fef287); v2: surrogates retrained, voltage feature, diagnostics' weights and checkpoints (4b9b960-5d762b7).
* ``FastChargeDiagnostics``: v0 7fef287 (was FastCharge-v1); v1: detectors retrained (cf58605), degradation target (3c328c3), weight 0.1 -> 100 (5d762b7).
* ``FastChargeBMS``: v0 3c328c3; v1: the degradation estimator's default weight 0.1 -> 100 per mA.h (5d762b7).

Only the current versions are registered, and no version is reused: asking for an older one raises Gymnasium's
``DeprecatedEnv``, which names the current one.

>>> import gymnasium as gym, envs
>>> env = gym.make("cellgym/FastCharge-v2", chemistry="nmc", backend="surrogate", surrogate="jepa")

The env enforces its own time limit (``time_limit``, truncation), so it is registered without
``max_episode_steps``.
"""

from gymnasium.envs.registration import register, registry

from envs.config import ChargingConfig, c_rate_to_action, obs_to_physical

FAST_CHARGE_ID = "cellgym/FastCharge-v2"
"""The base task (history in the module docstring)."""
FAST_CHARGE_DIAGNOSTICS_ID = "cellgym/FastChargeDiagnostics-v1"
"""The base task with the plating and degradation terms on."""
FAST_CHARGE_BMS_ID = "cellgym/FastChargeBMS-v1"
"""The diagnostics task without the plating margin in the reward."""
FAST_CHARGE_DIAGNOSTICS_KINDS: tuple[str, ...] = ("plating", "degradation")
"""The diagnostics whose reward terms :data:`FAST_CHARGE_DIAGNOSTICS_ID` and :data:`FAST_CHARGE_BMS_ID` turn on by default."""

_ENTRY_POINTS = dict(entry_point="envs.charging:FastChargeEnv", vector_entry_point="envs.gym_vector:FastChargeVectorEnv",
                     nondeterministic=False)
if FAST_CHARGE_ID not in registry:
    register(id=FAST_CHARGE_ID, **_ENTRY_POINTS)
if FAST_CHARGE_DIAGNOSTICS_ID not in registry:
    register(id=FAST_CHARGE_DIAGNOSTICS_ID, kwargs={"diagnostics": FAST_CHARGE_DIAGNOSTICS_KINDS}, **_ENTRY_POINTS)
if FAST_CHARGE_BMS_ID not in registry:
    register(id=FAST_CHARGE_BMS_ID, kwargs={"diagnostics": FAST_CHARGE_DIAGNOSTICS_KINDS, "w_plating": 0.0}, **_ENTRY_POINTS)


def __getattr__(name):
    # Lazy: `import envs` registers ids without importing torch.
    if name == "FastChargeEnv":
        from envs.charging import FastChargeEnv

        return FastChargeEnv
    if name == "SurrogateVecEnv":
        from envs.vector import SurrogateVecEnv

        return SurrogateVecEnv
    if name == "FastChargeVectorEnv":
        from envs.gym_vector import FastChargeVectorEnv

        return FastChargeVectorEnv
    raise AttributeError(name)


__all__ = ["FAST_CHARGE_ID", "FAST_CHARGE_DIAGNOSTICS_ID", "FAST_CHARGE_BMS_ID", "FAST_CHARGE_DIAGNOSTICS_KINDS", "ChargingConfig", "FastChargeEnv",
           "FastChargeVectorEnv", "SurrogateVecEnv", "c_rate_to_action", "obs_to_physical"]
