"""Gymnasium fast-charging environments; ``import envs`` registers them.

* ``cellgym/FastCharge-v0``: :class:`envs.charging.FastChargeEnv`, one cell on a neural
  surrogate (``backend="surrogate"``, default) or on PyBaMM's DFN (``backend="pybamm"``).
  Bump the version on any change of dynamics, observation, reward or defaults.
* ``cellgym/FastCharge-v1``: v0 with the learned-diagnostic reward terms ``plating`` and
  ``degradation`` on by default (``diagnostics=("plating", "degradation")``, weights
  ``diagnostic_weights``; see :mod:`envs.diagnostic_terms`). Needs both diagnostics shipped
  for the chemistry (``surrogates/diagnostics/checkpoints/{chemistry}-{kind}.pt``).
* :class:`envs.vector.SurrogateVecEnv`: N cells as one batch of surrogate states, a
  stable-baselines3 ``VecEnv`` with the same per-cell semantics.

>>> import gymnasium as gym, envs
>>> env = gym.make("cellgym/FastCharge-v0", chemistry="nmc", backend="surrogate", surrogate="jepa")

The env enforces its own time limit (``time_limit``, truncation), so it is registered without
``max_episode_steps``.
"""

import warnings

from gymnasium.envs.registration import register, registry

from envs.config import ChargingConfig, c_rate_to_action, obs_to_physical

FAST_CHARGE_ID = "cellgym/FastCharge-v0"
FAST_CHARGE_V1_ID = "cellgym/FastCharge-v1"
V1_DIAGNOSTICS: tuple[str, ...] = ("plating", "degradation")
"""The diagnostics whose reward terms ``cellgym/FastCharge-v1`` turns on by default."""

if FAST_CHARGE_ID not in registry:
    register(id=FAST_CHARGE_ID, entry_point="envs.charging:FastChargeEnv", nondeterministic=False)
if FAST_CHARGE_V1_ID not in registry:
    register(id=FAST_CHARGE_V1_ID, entry_point="envs.charging:FastChargeEnv", nondeterministic=False,
             kwargs={"diagnostics": V1_DIAGNOSTICS})
# v1 is v0 plus diagnostic reward terms, not its replacement: v0 stays the task without them (and the
# one policies are replayed on), so Gymnasium's "v0 is out of date, consider v1" warning is noise.
warnings.filterwarnings("ignore", message=r".*environment cellgym/FastCharge-v0 is out of date",
                        category=DeprecationWarning)


def __getattr__(name):
    # Lazy: `import envs` registers ids without importing torch.
    if name == "FastChargeEnv":
        from envs.charging import FastChargeEnv

        return FastChargeEnv
    if name == "SurrogateVecEnv":
        from envs.vector import SurrogateVecEnv

        return SurrogateVecEnv
    raise AttributeError(name)


__all__ = ["FAST_CHARGE_ID", "FAST_CHARGE_V1_ID", "V1_DIAGNOSTICS", "ChargingConfig", "FastChargeEnv", "SurrogateVecEnv", "c_rate_to_action", "obs_to_physical"]
