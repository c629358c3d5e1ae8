"""N fast-charging cells on one surrogate, stepped as one batch: the core both vector envs share.

:class:`CellBatch` holds the cells (one batch of surrogate states, their channels, start-state
generators and diagnostic histories) and does everything that is not a library's protocol:
checking actions, one forward pass per step, reward, termination and truncation (the batch
functions of :mod:`envs.charging`, so a cell behaves exactly as ``cellgym/FastCharge-v2`` on
the surrogate backend), and the auto-reset of finished cells in the same step. Two thin
adapters put a protocol on it:

* :class:`envs.vector.SurrogateVecEnv`: stable-baselines3's ``VecEnv`` (infos: a list of N dicts,
  with every key or only SB3's, ``info_mode``);
* :class:`envs.gym_vector.FastChargeVectorEnv`: Gymnasium's ``VectorEnv``
  (``gym.make_vec(..., vectorization_mode="vector_entry_point")``; infos: a dict of arrays).

Randomness: cell i draws its start states from a generator of its own (``np_random``); a seed
given for it (:meth:`CellBatch.seed`) re-creates that generator at the cell's next restart, so
cell i replays what a ``FastChargeEnv`` reset with ``seed=seed + i`` (then reset without a seed)
would do. Options (``{"soc_start": s, "ambient_temperature": T}``) pending for a cell fix its
next start state.

Rendering: with a ``render_mode`` (:mod:`envs.render`) the batch records one cell's charge, cell
``render_cell`` (default 0; settable: the history then restarts from that cell's present state), in
one :class:`envs.render.ChargeRenderer` (:attr:`CellBatch.renderer`); a cell restarted by the
same-step auto-reset keeps its finished charge drawn until its next step. Without one, nothing is recorded.

Arrays the batch hands out (observations, info columns) are never written again: restarts
replace the per-cell arrays, they do not write into them.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from envs.backends import apply_torch_settings, check_episode_length, resolve_surrogate, surrogate_rest_channels
from envs.charging import action_to_c_rate, check_actions, evaluate_step, info_columns, observe, sample_starts
from envs.config import DEFAULT_SURROGATE, ChargingConfig, check_keywords
from envs.diagnostic_terms import DiagnosticTerms
from envs.render import ChargeRenderer, check_render_cell, check_render_mode, outcome, row


@dataclass
class BatchStep:
    """One step of the N cells, finished cells already restarted (same-step auto-reset).

    obs ``[N, 6]`` float32: the next observations (a restarted cell's first one); reward ``[N]``
    float64; terminated, truncated ``[N]`` bool; infos: the step's info columns ``{key: [N]}``;
    done ``[M]``: indices of the cells that finished (terminated or truncated), restarted;
    final_obs ``[M, 6]``: their last observations; reset_infos: their reset info columns ``{key: [M]}``.
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: dict[str, np.ndarray]
    done: np.ndarray
    final_obs: np.ndarray
    reset_infos: dict[str, np.ndarray]


class CellBatch:
    """``num_envs`` fast-charging cells on one surrogate (see the module docstring).

    Args:
        num_envs: number of cells N.
        chemistry: ``"nmc"`` or ``"lfp"``.
        surrogate: an architecture name (the shipped checkpoint), a checkpoint path or a ``Surrogate``.
        device: torch device of the surrogate and the diagnostics (``"cpu"``, ``"cuda"``).
        **env_kwargs: any field of :class:`envs.config.ChargingConfig` (anything else: Python's ``TypeError``,
            :func:`envs.config.check_keywords`; the adapters check their own keywords first).
        render_mode: None, ``"rgb_array"`` or ``"human"`` (:mod:`envs.render`): record and draw cell ``render_cell``.
        render_cell: the cell drawn (an index in ``[0, num_envs)``).
    """

    PER_CELL = ("soc", "steps", "ambient_temperature", "np_random")
    """Per-cell attributes (:meth:`cell_attr`)."""

    def __init__(self, num_envs: int, chemistry: str = "nmc", surrogate=DEFAULT_SURROGATE, device: str = "cpu",
                 render_mode: str | None = None, render_cell: int = 0, **env_kwargs):
        check_keywords(CellBatch.__init__, env_kwargs)
        check_render_mode(render_mode, "CellBatch")
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs!r}")
        self._render_cell = check_render_cell(render_cell, int(num_envs))
        n = self.num_envs = int(num_envs)
        self.config = ChargingConfig(chemistry=chemistry, **env_kwargs)
        apply_torch_settings(self.config)
        self.surrogate = resolve_surrogate(surrogate, chemistry, device)
        self.surrogate._check_dt(self.config.dt)
        check_episode_length(self.surrogate, self.config)
        self.diagnostic_terms = DiagnosticTerms(self.config, n, device=device) if self.config.diagnostics else None
        """The learned-diagnostic reward terms of the N cells, or None."""
        self.rngs: list[np.random.Generator | None] = [None] * n
        self.seeds: list[int | None] = [None] * n
        """Seeds pending for each cell's next restart."""
        self.options: list[dict] = [{} for _ in range(n)]
        """Start-state options pending for each cell's next restart."""
        self.state = None
        self.channels: dict[str, np.ndarray] = {}
        self.ambient = np.zeros(n)
        self.c_rate = np.zeros(n)
        self.steps = np.zeros(n, dtype=np.int64)
        self.render_mode = render_mode
        self.renderer = ChargeRenderer(render_mode, self.config, self._render_label()) if render_mode is not None else None
        """The history and figure of cell :attr:`render_cell` (:class:`envs.render.ChargeRenderer`), or None."""

    # ------------------------------------------------------------------ rendering
    @property
    def render_cell(self) -> int:
        """The cell drawn by ``render()``; setting it restarts the drawn history from that cell's present state."""
        return self._render_cell

    @render_cell.setter
    def render_cell(self, value: int) -> None:
        self._render_cell = check_render_cell(value, self.num_envs)
        if self.renderer is not None:
            self.renderer.label = self._render_label()
            if self.channels:
                cols = info_columns(self.channels, self.c_rate, self.steps, self.ambient, self.config)
                self.renderer.reset(row(cols, self._render_cell))

    def _render_label(self) -> str:
        return f"cell {self._render_cell} of {self.num_envs}"

    def render(self):
        """Cell :attr:`render_cell`'s frame (``"rgb_array"``), or show it (``"human"``: None); None without a mode."""
        return self.renderer.render() if self.renderer is not None else None

    # ------------------------------------------------------------------ seeds, options, settings
    def seed(self, seeds) -> list[int | None]:
        """Pending seeds: an int s gives cell i ``s + i``; a list gives one per cell (None: no reseed)."""
        if isinstance(seeds, (int, np.integer)):
            seeds = [int(seeds) + i for i in range(self.num_envs)]
        seeds = list(seeds)
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} cells")
        self.seeds = seeds
        return list(seeds)

    def set_options(self, options: dict | list[dict] | None) -> None:
        """Pending start-state options: one dict for every cell, or a list of one per cell."""
        options = {} if options is None else options
        options = [options] * self.num_envs if isinstance(options, dict) else list(options)
        if len(options) != self.num_envs:
            raise ValueError(f"got {len(options)} option dicts for {self.num_envs} cells")
        self.options = deepcopy(options)

    def set_config(self, name: str, value: Any) -> None:
        """Set a :class:`ChargingConfig` field for every cell (checked; refused if it cannot apply)."""
        if name == "diagnostics":
            raise ValueError("diagnostics are loaded when the env is made; make a new one to change them "
                             "(diagnostic_weights can be set)")
        old = getattr(self.config, name)
        setattr(self.config, name, value)
        try:
            self.config.__post_init__()
            self.surrogate._check_dt(self.config.dt)
            check_episode_length(self.surrogate, self.config)
        except Exception:
            setattr(self.config, name, old)
            self.config.__post_init__()
            raise
        apply_torch_settings(self.config)

    def cell_attr(self, name: str, i: int) -> Any:
        """Cell i's ``soc``, ``steps``, ``ambient_temperature`` or ``np_random`` (:data:`PER_CELL`)."""
        if name == "soc":
            return float(self.channels["soc"][i]) if self.channels else None
        if name == "steps":
            return int(self.steps[i])
        if name == "ambient_temperature":
            return float(self.ambient[i])
        if name == "np_random":
            return self.rngs[i]
        raise AttributeError(name)

    # ------------------------------------------------------------------ resets
    def _draw_starts(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start states of cells ``rows`` from their generators (seeded if a seed is pending)."""
        for i in rows:
            if self.seeds[i] is not None or self.rngs[i] is None:
                self.rngs[i], _ = seeding.np_random(self.seeds[i])
                self.seeds[i] = None
        options = [self.options[i] for i in rows]
        for i in rows:
            self.options[i] = {}
        return sample_starts([self.rngs[i] for i in rows], self.config, options)

    def restart(self, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Restart cells ``rows`` (indices ``[M]``): new start states, fresh model state, rest channels.

        Returns their observations ``[M, 6]`` and reset info columns ``{key: [M]}``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        soc, amb = self._draw_starts(rows)
        rest = surrogate_rest_channels(self.surrogate, soc, amb)
        if self.state is None:
            self.state = self.surrogate.initial_state(soc, amb)
            self.channels = rest
        else:
            self.state = self.surrogate.reset_rows(self.state, rows, soc, amb)
            self.channels = {k: _replace_rows(v, rows, rest[k]) for k, v in self.channels.items()}
        self.ambient = _replace_rows(self.ambient, rows, amb)
        self.c_rate = _replace_rows(self.c_rate, rows, 0.0)
        self.steps = _replace_rows(self.steps, rows, 0)
        if self.diagnostic_terms is not None:
            self.diagnostic_terms.reset_rows(rows, rest["voltage"], rest["temperature"])
        c_rate, steps, ambient = self.c_rate[rows], self.steps[rows], self.ambient[rows]
        return (observe(rest, c_rate, steps, ambient, self.config),
                info_columns(rest, c_rate, steps, ambient, self.config))

    def reset(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Restart every cell (pending seeds and options apply): observations ``[N, 6]``, info columns."""
        self.state = None
        obs, columns = self.restart(np.arange(self.num_envs))
        if self.renderer is not None:
            self.renderer.reset(row(columns, self._render_cell))
        return obs, columns

    # ------------------------------------------------------------------ stepping
    def step(self, actions) -> BatchStep:
        """Apply ``actions`` (N values in [-1, 1], clipped) for one interval; finished cells restart."""
        if self.state is None:
            raise RuntimeError("step called before reset()")
        cfg = self.config
        c_rate = action_to_c_rate(check_actions(actions, self.num_envs), cfg)
        soc_prev = self.channels["soc"]
        out, self.state = self.surrogate.step(self.state, -c_rate * cfg.one_c)
        self.channels = {k: np.array(v) for k, v in out.items()}  # own copies (a model state may share them)
        self.c_rate = c_rate
        self.steps = self.steps + 1
        scores = diag_terms = None
        if self.diagnostic_terms is not None:
            scores, diag_terms = self.diagnostic_terms.step(0.0 - c_rate * cfg.one_c, self.channels["voltage"],
                                                            self.channels["temperature"])
        reward, terminated, truncated, terms = evaluate_step(self.channels, soc_prev, self.steps, cfg,
                                                             diagnostics=diag_terms)
        obs = observe(self.channels, c_rate, self.steps, self.ambient, cfg)
        infos = info_columns(self.channels, c_rate, self.steps, self.ambient, cfg, terms, scores)
        done = np.flatnonzero(terminated | truncated)
        final_obs = obs[done]
        reset_infos = {}
        if len(done):
            obs[done], reset_infos = self.restart(done)
        if self.renderer is not None:
            c = self._render_cell
            at = np.flatnonzero(done == c)
            info = row(infos, c)
            self.renderer.step(info, outcome(info, bool(terminated[c]), bool(truncated[c])),
                               row(reset_infos, int(at[0])) if len(at) else None)
        return BatchStep(obs, reward, terminated, truncated, infos, done, final_obs, reset_infos)


def _replace_rows(values: np.ndarray, rows: np.ndarray, new) -> np.ndarray:
    """A copy of ``values`` with ``rows`` set to ``new`` (arrays handed out are never written)."""
    out = values.copy()
    out[rows] = new
    return out
