"""N cells as one batch of surrogate states behind Gymnasium's vector API (``gymnasium.vector.VectorEnv``).

>>> import gymnasium as gym, envs
>>> venv = gym.make_vec("cellgym/FastCharge-v2", num_envs=1024, vectorization_mode="vector_entry_point")
>>> obs, infos = venv.reset(seed=0)              # obs [1024, 6]; infos["voltage"] [1024]

The cells are :class:`envs.batch.CellBatch`, the same batched core as the stable-baselines3
:class:`envs.vector.SurrogateVecEnv`; this class only speaks Gymnasium 1.x's protocol:

* autoreset: ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``). A cell that terminates
  or truncates is reset within the same ``step``: the returned observation and info of that cell
  are its reset's, its last observation is ``infos["final_obs"][i]`` and its last info
  ``infos["final_info"][key][i]`` (masks ``infos["_final_obs"]``, ``infos["final_info"]["_key"]``),
  present only in steps where some cell finished; ``terminated``/``truncated``/``reward`` are the
  finished episode's. This is what ``SyncVectorEnv(..., autoreset_mode=AutoresetMode.SAME_STEP)``
  over ``cellgym/FastCharge-v2`` envs returns, and what SB3's auto-reset does too.
* infos: a dict of arrays, every ``info`` key of the single env ``[N]`` (float64, bool for the
  flags) with its ``_key`` mask (all True: every cell has every key); no per-cell dicts.
* ``reset(seed=s)`` seeds cell i with ``s + i`` (a list: one seed per cell); ``reset(seed=None)``
  continues each cell's generator. ``options`` (``soc_start``, ``ambient_temperature``) apply to
  every cell at that reset.
* rewards are float64 and observations float32, as ``SyncVectorEnv`` batches them.
* rendering draws one cell, ``render_cell`` (a keyword, default 0, and a settable attribute):
  ``render_mode="rgb_array"``: ``render()`` returns a tuple of one frame, that cell's ``[H, W, 3]``
  uint8 (:mod:`envs.render`; Gymnasium's vector video and human wrappers, which want one frame per
  cell, fit ``num_envs=1`` only); ``"human"``: that cell is shown live at every ``reset`` and ``step``.
"""

from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.batch import CellBatch
from envs.charging import action_space, observation_space
from envs.config import DEFAULT_SURROGATE, check_keywords
from envs.render import check_render_mode
from envs.render import metadata as render_metadata


class FastChargeVectorEnv(VectorEnv):
    """``num_envs`` fast-charging cells on one surrogate, stepped as a batch (see the module docstring).

    Arguments as :class:`envs.batch.CellBatch` (``num_envs``, ``chemistry``, ``surrogate``, ``device``,
    any field of :class:`envs.config.ChargingConfig`); ``backend``: ``"surrogate"`` only (the
    DFN does not batch: ``gym.make_vec(..., backend="pybamm", vectorization_mode="async")`` runs
    one per process); ``render_mode``: None, ``"rgb_array"`` or ``"human"``, drawing cell ``render_cell``
    (see the module docstring). An unknown keyword raises Python's ``TypeError``.
    """

    metadata = render_metadata(autoreset_mode=AutoresetMode.SAME_STEP)

    def __init__(self, num_envs: int = 1, chemistry: str = "nmc", surrogate=DEFAULT_SURROGATE, device: str = "cpu",
                 backend: str = "surrogate", render_mode: str | None = None, render_cell: int = 0, **env_kwargs):
        check_keywords(FastChargeVectorEnv.__init__, env_kwargs)
        if backend != "surrogate":
            raise ValueError(f"FastChargeVectorEnv batches the surrogate backend only, not {backend!r}; for the DFN use "
                             "gym.make_vec(id, num_envs, vectorization_mode='async', backend='pybamm')")
        check_render_mode(render_mode, "FastChargeVectorEnv")
        self.core = CellBatch(num_envs, chemistry, surrogate, device, render_mode=render_mode, render_cell=render_cell,
                              **env_kwargs)
        """The batched cells (:class:`envs.batch.CellBatch`)."""
        self.num_envs = self.core.num_envs
        self.render_mode = render_mode
        self.single_observation_space = observation_space()
        self.single_action_space = action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._all = np.ones(self.num_envs, dtype=bool)
        self._all.flags.writeable = False  # the `_key` mask of every key (shared, so read-only)

    config = property(lambda self: self.core.config)
    surrogate = property(lambda self: self.core.surrogate)
    diagnostic_terms = property(lambda self: self.core.diagnostic_terms)
    render_cell = property(lambda self: self.core.render_cell, lambda self, i: setattr(self.core, "render_cell", i),
                           doc="The cell ``render()`` draws (settable; see the module docstring).")

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Reset every cell; observations ``[N, 6]`` and infos (a dict of arrays)."""
        if seed is not None:
            self.core.seed(seed)
        self.core.set_options(options)
        obs, columns = self.core.reset()
        return obs, self._with_masks(columns)

    def step(self, actions):
        """Actions ``[N, 1]`` (or ``[N]``) in [-1, 1] -> obs, rewards, terminations, truncations, infos."""
        r = self.core.step(actions)
        infos = dict(r.infos)
        if len(r.done):
            done = np.zeros(self.num_envs, dtype=bool)
            done[r.done] = True
            final_info = {}
            for key, col in r.infos.items():
                final = np.zeros_like(col)
                final[r.done] = col[r.done]
                final_info[key], final_info["_" + key] = final, done
                infos[key] = col.copy()
                infos[key][r.done] = r.reset_infos[key]  # a restarted cell reports its reset
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i, o in zip(r.done, r.final_obs):
                final_obs[i] = o
            infos.update(final_obs=final_obs, _final_obs=done, final_info=final_info, _final_info=done)
        return r.obs, r.reward, r.terminated, r.truncated, self._with_masks(infos)

    def _with_masks(self, infos: dict) -> dict:
        """Add Gymnasium's ``_key`` mask (all cells) to every key that has none."""
        masks = {"_" + k: self._all for k in infos if not k.startswith("_") and "_" + k not in infos}
        return {**infos, **masks}

    def render(self) -> tuple[np.ndarray] | None:
        """``"rgb_array"``: ``(frame,)``, cell :attr:`render_cell`'s charge since its reset; ``"human"``: show it,
        None; None without a render mode."""
        frame = self.core.render()
        return (frame,) if frame is not None else None

    def close_extras(self, **kwargs) -> None:
        self.core.state = None
        if self.core.renderer is not None:
            self.core.renderer.close()
