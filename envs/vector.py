"""N cells as one batch of surrogate states: a stable-baselines3 ``VecEnv``, one forward pass per step.

Per cell, the semantics are exactly those of ``cellgym/FastCharge-v2`` on the surrogate backend
(:class:`envs.charging.FastChargeEnv`): the same action mapping and checks, observation,
reward terms, termination, truncation and ``info`` keys, computed by the batched core
:class:`envs.batch.CellBatch`, which :class:`envs.gym_vector.FastChargeVectorEnv` (Gymnasium's
vector API) shares. What this class adds is SB3's protocol:

* a finished cell is reset at once, its last observation in ``info["terminal_observation"]`` and
  ``info["TimeLimit.truncated"]`` set as in SB3's ``DummyVecEnv``; the reset's info lands in
  ``reset_infos``;
* cell i draws its start states from a generator of its own, seeded ``seed + i`` by
  :meth:`seed` (applied at the next :meth:`reset`), so cell i replays what a
  ``FastChargeEnv`` reset with ``seed=seed + i`` (then reset without a seed) would do;
* ``set_options({"soc_start": s, "ambient_temperature": T})`` fixes the next reset's start state;
* ``info_mode`` says what the N per-cell ``infos`` (and the auto-resets' ``reset_infos``) hold.
  ``"dicts"`` (default): every ``info`` key, as the single env reports it. ``"arrays"``: only
  what SB3 itself reads, ``TimeLimit.truncated`` and ``terminal_observation`` (the cells with
  nothing else to report share one read-only mapping); every ``info`` key stays an array in
  :attr:`last_step` (an :class:`envs.batch.BatchStep`: ``infos`` ``{key: [N]}``, the finished
  cells ``done``, their ``final_obs`` and ``reset_infos``), also ``get_attr("last_step")[0]``
  through wrappers such as ``VecMonitor``. Building N dicts of ~24 keys a step is a large share
  of a surrogate's step at large N (``benchmarks/bench_env.py`` measures it): train with ``"arrays"``
  when the callbacks read ``last_step``. ``last_step`` is set in both modes.

With ``diagnostics`` the N cells' histories live in one :class:`envs.diagnostic_terms.DiagnosticTerms`:
finished cells' rows are refilled with their rest state at the auto-reset, and each kind scores
all N windows in one call per step.

Rendering draws one cell, ``render_cell`` (a keyword, default 0, and an attribute, ``set_attr`` too): with
``render_mode="rgb_array"``, ``render()`` (and ``render("rgb_array")``) returns that cell's frame ``[H, W, 3]``
uint8 (:mod:`envs.render`), ``render("human")`` shows it with OpenCV as SB3's base class does, and
``get_images()`` is one entry per cell, the frame at ``render_cell`` and None for the others; with
``"human"`` the cell is shown live at every reset and step (``render()`` shows it again and returns None).

Torch runs under ``no_grad`` (inside :class:`~surrogates.models.surrogate.Surrogate`) on ``device``
(``"cuda"`` for a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
import warnings
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from envs.batch import BatchStep, CellBatch
from envs.charging import action_space, as_dicts, observation_space
from envs.config import DEFAULT_SURROGATE, ChargingConfig, check_keywords
from envs.render import check_render_mode
from envs.render import metadata as render_metadata

INFO_MODES = ("dicts", "arrays")
"""What :class:`SurrogateVecEnv`'s per-cell ``infos`` hold (see the module docstring)."""
_RUNNING = MappingProxyType({"TimeLimit.truncated": False})
"""The ``info`` of every cell still in its episode, in ``info_mode="arrays"`` (read-only: it is shared)."""


class SurrogateVecEnv(VecEnv):
    """``num_envs`` fast-charging cells on one surrogate, stepped as a batch.

    Args:
        num_envs: number of cells N.
        chemistry: ``"nmc"`` or ``"lfp"``.
        surrogate: an architecture name (the shipped checkpoint), a checkpoint path or a ``Surrogate``.
        device: torch device for the surrogate (``"cpu"``, ``"cuda"``).
        seed: if given, as :meth:`seed` (applied at the first reset).
        info_mode: ``"dicts"`` (every ``info`` key in each cell's dict) or ``"arrays"`` (only SB3's
            keys there; all of them in :attr:`last_step`). See the module docstring.
        render_mode: None, ``"rgb_array"`` or ``"human"``: draw cell ``render_cell`` (see the module docstring).
        render_cell: the cell drawn, an index in ``[0, num_envs)``.
        **env_kwargs: any field of :class:`envs.config.ChargingConfig` (anything else: Python's ``TypeError``).

    Attributes readable through ``get_attr`` (the same for every cell): ``config`` and its fields,
    ``surrogate``, ``diagnostic_terms``, ``render_mode``, ``render_cell``, ``info_mode``, ``last_step``, and the
    per-cell ``soc``, ``steps``, ``ambient_temperature``, ``np_random``. ``set_attr`` sets a config
    field for every cell (``time_limit`` included: the transformer's cache grows with the episode).
    """

    def __init__(self, num_envs: int, chemistry: str = "nmc", surrogate=DEFAULT_SURROGATE, device: str = "cpu",
                 seed: int | None = None, info_mode: str = "dicts", render_mode: str | None = None, render_cell: int = 0,
                 **env_kwargs):
        check_keywords(SurrogateVecEnv.__init__, env_kwargs)
        if info_mode not in INFO_MODES:
            raise ValueError(f"info_mode must be one of {INFO_MODES}, got {info_mode!r}")
        check_render_mode(render_mode, "SurrogateVecEnv")
        self.core = CellBatch(num_envs, chemistry, surrogate, device, render_mode=render_mode, render_cell=render_cell,
                              **env_kwargs)
        """The batched cells (:class:`envs.batch.CellBatch`)."""
        self.info_mode = info_mode
        self.render_mode = render_mode
        self.last_step: BatchStep | None = None
        """The last step as arrays (:class:`envs.batch.BatchStep`): ``infos`` ``{key: [N]}`` (float64, bool
        for the flags), the finished cells ``done``, their ``final_obs`` and ``reset_infos``; None before a step."""
        self._actions: np.ndarray | None = None
        super().__init__(self.core.num_envs, observation_space(), action_space())
        self.metadata = render_metadata()  # SB3's base lists the modes only when one is set; these are the env's
        if seed is not None:
            self.seed(seed)

    config = property(lambda self: self.core.config)
    surrogate = property(lambda self: self.core.surrogate)
    diagnostic_terms = property(lambda self: self.core.diagnostic_terms)
    render_cell = property(lambda self: self.core.render_cell, lambda self, i: setattr(self.core, "render_cell", i),
                           doc="The cell ``render()`` draws (settable; see the module docstring).")

    # ------------------------------------------------------------------ resets and stepping
    def reset(self) -> VecEnvObs:
        """Reset every cell (pending seeds and options apply); the observations ``[N, 6]``."""
        obs, columns = self.core.reset()
        self.reset_infos = as_dicts(columns)
        self.last_step = None
        self._actions = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self.core.state is None:
            raise RuntimeError("SurrogateVecEnv.step called before reset()")
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        actions, self._actions = self._actions, None
        r = self.last_step = self.core.step(actions)
        # r.truncated already excludes terminated cells: it is SB3's TimeLimit.truncated
        if self.info_mode == "dicts":
            infos = as_dicts({**r.infos, "TimeLimit.truncated": r.truncated})
            resets = as_dicts(r.reset_infos)
        else:
            infos = [_RUNNING] * self.num_envs
            for i in r.done:
                infos[i] = {"TimeLimit.truncated": bool(r.truncated[i])}
            resets = [{} for _ in r.done]
        for i, o, reset_info in zip(r.done, r.final_obs, resets):
            infos[i]["terminal_observation"] = o
            self.reset_infos[i] = reset_info
        return r.obs, r.reward.astype(np.float32), r.terminated | r.truncated, infos

    # ------------------------------------------------------------------ SB3 plumbing
    def close(self) -> None:
        self.core.state = None
        if self.core.renderer is not None:
            self.core.renderer.close()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Cell i gets ``seed + i`` at the next :meth:`reset` (SB3's convention; None: a random seed)."""
        return self.core.seed(super().seed(seed))

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """Start-state options for the next reset: one dict for every cell or a list of one per cell."""
        self.core.set_options(options)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One entry per cell: cell :attr:`render_cell`'s frame, None for the others (and for all without
        ``render_mode="rgb_array"``, with SB3's warning)."""
        images: list[np.ndarray | None] = [None] * self.num_envs
        if self.render_mode != "rgb_array":
            warnings.warn(f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images.")
            return images
        images[self.render_cell] = self.core.render()
        return images

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """SB3's contract, for the one cell :attr:`render_cell`: its frame with ``render_mode="rgb_array"`` (shown
        with OpenCV for ``mode="human"``), shown live with ``"human"`` (None); SB3's warnings and None otherwise."""
        if self.render_mode is None or (mode is not None and mode != self.render_mode
                                        and not (mode == "human" and self.render_mode == "rgb_array")):
            return super().render(mode)  # warns and returns None, as SB3's base does
        frame = self.core.render()
        if mode == "human" and self.render_mode == "rgb_array":
            import cv2  # SB3's base shows an rgb_array VecEnv with OpenCV

            cv2.imshow("vecenv", frame[:, :, ::-1])
            cv2.waitKey(1)
            return None
        return frame

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        idx = list(self._get_indices(indices))
        if attr_name in CellBatch.PER_CELL:
            return [self.core.cell_attr(attr_name, i) for i in idx]
        if attr_name in ChargingConfig.field_names():
            return [getattr(self.config, attr_name)] * len(idx)
        value = getattr(self, attr_name)  # AttributeError as SB3 expects
        return [value] * len(idx)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Shared attributes only: a config field (for every cell) or ``np_random`` per cell."""
        idx = list(self._get_indices(indices))
        if attr_name == "np_random":
            for i in idx:
                self.core.rngs[i] = value
            return
        if attr_name in CellBatch.PER_CELL:
            raise AttributeError(f"{attr_name!r} is simulation state; use reset / set_options instead")
        if len(idx) != self.num_envs:
            raise ValueError(f"{attr_name!r} is shared by every cell of a SurrogateVecEnv; set it for all of them")
        if attr_name in ChargingConfig.field_names():
            self.core.set_config(attr_name, value)
        else:
            setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of the VecEnv once per requested cell (the cells share one object)."""
        idx = list(self._get_indices(indices))
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """The cells are not gym envs, so never wrapped (wrap the VecEnv in ``VecMonitor`` instead)."""
        return [False] * len(list(self._get_indices(indices)))
