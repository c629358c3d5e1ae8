"""stable-baselines3 callbacks: charging statistics and a charging-profile figure in TensorBoard.

Tags (CleanRL-style namespaces):

* ``charts/charge_time_min``      mean time to the target SOC of the episodes that reached it [min]
* ``charts/success_rate``         share of finished episodes that reached the target
* ``charts/violations``           mean violating intervals per finished episode (V, T or plating)
* ``charts/plating_margin_min``   mean over finished episodes of their lowest plating margin [mV]
* ``charts/<reward term>``        mean per interval of each reward component (``reward_time``...,
                                  ``reward_diag_<kind>`` with diagnostic terms)
* ``charts/diag_<kind>``          mean per interval of each learned diagnostic's score
* ``charts/diagnostic_weight_scale`` the training env's diagnostic weights over their full values
  (:class:`DiagnosticWarmupCallback`)
* ``eval/charging_profile``       C-rate, V, T and plating margin of one deterministic charge
* ``eval/profile_charge_time_min`` its charge time [min]
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import SubprocVecEnv

from agents.charge import rollout, summarize
from agents.charge.figures import plot_traces
from envs.charging import REWARD_TERMS, FastChargeEnv


class ChargeStatsCallback(BaseCallback):
    """Per-episode charging statistics from the env's ``info``, logged at the end of each rollout."""

    def __init__(self, config_text: str = "", verbose: int = 0):
        super().__init__(verbose)
        self.config_text = config_text

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self._min_margin = np.full(n, np.inf)
        self._violations = np.zeros(n, dtype=np.int64)
        self._episodes: list[dict] = []
        self._terms = {k: [] for k in REWARD_TERMS}
        for fmt in self.logger.output_formats:  # hyperparameters as text at the start of the run
            if isinstance(fmt, TensorBoardOutputFormat) and self.config_text:
                fmt.writer.add_text("config", "```\n" + self.config_text + "\n```", 0)

    def _columns(self) -> dict[str, np.ndarray]:
        """This step's info of every cell as ``{key: [N]}``: the batched env's own arrays when it has them
        (``info_mode="arrays"`` builds no per-cell dicts), else gathered from SB3's info dicts."""
        try:
            last = self.training_env.get_attr("last_step")[0]
        except AttributeError:
            last = None
        if last is not None:
            return last.infos
        infos = self.locals["infos"]
        keys = [k for k, v in infos[0].items() if np.isscalar(v)]
        return {k: np.array([info[k] for info in infos]) for k in keys}

    def _on_step(self) -> bool:
        cols, dones = self._columns(), np.asarray(self.locals["dones"])
        self._min_margin = np.minimum(self._min_margin, cols["plating_margin_min"])
        self._violations += (cols["reward_voltage"] < 0) | (cols["reward_temperature"] < 0) | (cols["reward_plating"] < 0)
        for k, v in cols.items():
            if k in self._terms or k.startswith(("diag_", "reward_diag_")):
                self._terms.setdefault(k, []).append(float(np.mean(v)))
        for i in np.flatnonzero(dones):
            self._episodes.append({
                "reached": bool(cols["reached_target"][i]),
                "minutes": float(cols["elapsed"][i]) / 60.0,
                "violations": int(self._violations[i]),
                "margin_mV": float(self._min_margin[i] * 1e3),
            })
            self._min_margin[i], self._violations[i] = np.inf, 0
        return True

    def _on_rollout_end(self) -> None:
        eps = self._episodes
        if eps:
            reached = [e["minutes"] for e in eps if e["reached"]]
            if reached:
                self.logger.record("charts/charge_time_min", float(np.mean(reached)))
            self.logger.record("charts/success_rate", len(reached) / len(eps))
            self.logger.record("charts/violations", float(np.mean([e["violations"] for e in eps])))
            self.logger.record("charts/plating_margin_min", float(np.mean([e["margin_mV"] for e in eps])))
            self.logger.record("charts/episodes", len(eps))
        for k, v in self._terms.items():
            if v:
                self.logger.record(f"charts/{k}", float(np.mean(v)))
        self._episodes = []
        self._terms = {k: [] for k in REWARD_TERMS}


class DiagnosticWarmupCallback(BaseCallback):
    """Ramp the training env's learned-diagnostic weights linearly from 0 to their values over the first
    ``fraction`` of the training's environment steps (set at the start of every rollout).

    The agent first learns to charge under the physics penalties, then pays for what the
    diagnostics see. With the full weights from the first step, PPO's early, plating-heavy
    charges cost so much that some seeds learned to rest: the action saturates at "rest" and
    exploration never comes back. The evaluation env keeps the full weights, so the best policy
    is chosen against the final reward.

    The full weights are the training env's own (``config.diagnostic_weights`` when training
    starts), so the callback needs no env settings and works from a hyperparameter file's
    ``callback`` key (in rl_zoo3 too). It sets the weights on the env objects, so it needs a VecEnv
    whose envs live in this process (``SurrogateVecEnv``; ``DummyVecEnv``, rl_zoo3's default). A
    training env without diagnostics is left alone.
    """

    def __init__(self, fraction: float = 0.3, verbose: int = 0):
        super().__init__(verbose)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction is a share of the training's steps, in [0, 1]; got {fraction!r}")
        self.fraction = float(fraction)
        self.weights: dict[str, float] = {}
        self.warmup_steps = 0
        self._configs: list = []

    def _on_training_start(self) -> None:
        if isinstance(self.training_env.unwrapped, SubprocVecEnv):
            raise ValueError("DiagnosticWarmupCallback sets the weights on the env objects and cannot reach a "
                             "SubprocVecEnv's; use SurrogateVecEnv or a DummyVecEnv (rl_zoo3: --vec-env dummy)")
        self._configs = [c for c in self.training_env.get_attr("config") if c.diagnostics]
        self.weights = dict(self._configs[0].diagnostic_weights) if self._configs else {}
        self.warmup_steps = int(self.fraction * self.locals["total_timesteps"])

    def scale(self) -> float:
        return 1.0 if self.warmup_steps <= 0 else min(1.0, self.num_timesteps / self.warmup_steps)

    def _on_rollout_start(self) -> None:
        if not self.weights:
            return
        s = self.scale()
        for config in self._configs:  # the env's diagnostic terms read them at every step
            config.diagnostic_weights = {k: w * s for k, w in self.weights.items()}
        self.logger.record("charts/diagnostic_weight_scale", s)

    def _on_step(self) -> bool:
        return True


class ProfileFigureCallback(BaseCallback):
    """After each evaluation: one deterministic charge from ``start`` on the surrogate, as a TensorBoard figure.

    ``env_kwargs``: keyword arguments of :class:`envs.charging.FastChargeEnv` but ``backend``
    (``chemistry``, ``surrogate``, ``device``, limits, weights...), e.g. the training env's.
    """

    def __init__(self, start, env_kwargs: dict, verbose: int = 0):
        super().__init__(verbose)
        self.start, self.env_kwargs = start, dict(env_kwargs)
        self._env = None

    def _on_step(self) -> bool:
        if self._env is None:
            self._env = FastChargeEnv(backend="surrogate", **self.env_kwargs)
        trace = rollout(self.model, self._env, self.start)
        charge = summarize(trace, self._env.config)
        fig = plot_traces({"agent": trace}, self._env.config, None,
                          title=f"{self.start.label}: {charge.charge_time_min:.1f} min, {charge.violating_steps} violating steps")
        self.logger.record("eval/charging_profile", Figure(fig, close=True), exclude=("stdout", "log", "json", "csv"))
        if charge.reached_target:
            self.logger.record("eval/profile_charge_time_min", charge.charge_time_min)
        self.logger.record("eval/profile_violating_steps", charge.violating_steps)
        return True
