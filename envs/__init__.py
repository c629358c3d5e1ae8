"""Gymnasium fast-charging environments; ``import envs`` registers them.

* ``cellgym/FastCharge-v0``: :class:`envs.charging.FastChargeEnv`, one cell on a neural
  surrogate (``backend="surrogate"``, default) or on PyBaMM's DFN (``backend="pybamm"``).
  Bump the version on any change of dynamics, observation, reward or defaults.
* :class:`envs.vector.SurrogateVecEnv`: N cells as one batch of surrogate states, a
  stable-baselines3 ``VecEnv`` with the same per-cell semantics.

>>> import gymnasium as gym, envs
>>> env = gym.make("cellgym/FastCharge-v0", chemistry="nmc", backend="surrogate", surrogate="jepa")

The env enforces its own time limit (``time_limit``, truncation), so it is registered without
``max_episode_steps``.
"""

from gymnasium.envs.registration import register, registry

from envs.config import ChargingConfig, c_rate_to_action, obs_to_physical

FAST_CHARGE_ID = "cellgym/FastCharge-v0"

if FAST_CHARGE_ID not in registry:
    register(id=FAST_CHARGE_ID, entry_point="envs.charging:FastChargeEnv", nondeterministic=False)


def __getattr__(name):
    # Lazy: `import envs` registers ids without importing torch.
    if name == "FastChargeEnv":
        from envs.charging import FastChargeEnv

        return FastChargeEnv
    if name == "SurrogateVecEnv":
        from envs.vector import SurrogateVecEnv

        return SurrogateVecEnv
    raise AttributeError(name)


__all__ = ["FAST_CHARGE_ID", "ChargingConfig", "FastChargeEnv", "SurrogateVecEnv", "c_rate_to_action", "obs_to_physical"]
