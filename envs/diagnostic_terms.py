"""Learned-diagnostic reward terms: score what a cell's BMS measured over its last intervals, every interval.

Glossary (units as in :mod:`surrogates.common.channels`; the diagnostics are :mod:`surrogates.diagnostics`):

    N        cells (1 for :class:`envs.charging.FastChargeEnv`, ``num_envs`` for the VecEnv)
    W        a diagnostic's window [intervals]; W_max the longest among the env's diagnostics
    history  ``[N, W_max, 3]`` float32: (I [A], V [V], T [K]) of each cell's last W_max
             intervals, oldest first: I the current applied during the interval (PyBaMM sign),
             V and T at its end, as in the windows the diagnostics were trained on
    score    a diagnostic's output for the window ending with the latest interval ``[N]``
    w        ``ChargingConfig.diagnostic_weights[kind]``

Per kind in ``ChargingConfig.diagnostics``, interval k adds to the reward (the ``penalty`` of the
kind's plug-in class in :mod:`surrogates.diagnostics`, the one place the mapping lives; :func:`penalty`)::

    reward_diag_plating     = -w * p                  p: probability that plating was possible in the window
    reward_diag_ood         = -w * max(0, s - 1)      s: OOD score, >= 1 out of distribution
    reward_diag_degradation = -w * 1000 * max(0, q)   q: lithium lost for good in interval k [A.h] (w per mA.h)

The degradation term never pays: lithium lost for good never comes back, so a negative estimate is
the estimator's error, and an agent must not earn reward from it.

and ``info`` reports ``diag_<kind>`` (the score) and ``reward_diag_<kind>`` (the term).

At reset a cell's history is filled with the cell at rest before the charge (I = 0, the rest
voltage, the cell temperature), as the diagnostics' training windows were padded, so windows
are full from the first interval on. The reset itself is not scored: ``info`` at reset holds
score 0 and term 0. An interval that ended in a solver failure (PyBaMM backend) measured
nothing: its history is not appended, its score repeats the last one (as the channels in
``info`` repeat the last simulated values) and its term is 0, as every other term but the time
and violation penalties (:func:`envs.charging.evaluate_step`). A hard violation is scored and
penalised as usual.

Scoring is batched: one call per kind per step for all N cells (``Diagnostic.score_windows`` for the
plating and OOD detectors; ``Diagnostic.stream_step`` for the degradation estimator, whose causal
CNN keeps per-layer state so that a step costs O(1) instead of rescoring its 64-interval window).
The forward passes are the cost, not the history and terms; ``python benchmarks/bench_env.py
--diagnostics plating,ood,degradation`` measures each kind's share of a step (docs/environment.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCORE_BATCH = 512
"""Windows per forward pass when scoring. Smaller chunks keep the activations in cache: the plating
transformer at N = 1024 is about 15 % faster in chunks of 512 than in one pass (Xeon, 1 thread),
the OOD autoencoder about as fast."""


def score_key(kind: str) -> str:
    """``info`` key of a diagnostic's score."""
    return f"diag_{kind}"


def reward_key(kind: str) -> str:
    """``info`` key of a diagnostic's reward term."""
    return f"reward_diag_{kind}"


def diagnostic_reward_terms(kinds: Sequence[str]) -> tuple[str, ...]:
    """The reward-term keys of ``kinds``, in order."""
    return tuple(reward_key(k) for k in kinds)


def diagnostic_info_keys(kinds: Sequence[str]) -> tuple[str, ...]:
    """The ``info`` keys the diagnostics ``kinds`` add: scores, then reward terms."""
    return tuple(score_key(k) for k in kinds) + diagnostic_reward_terms(kinds)


def penalty(kind: str, score: np.ndarray) -> np.ndarray:
    """The penalty (>= 0) of ``score`` ``[N]`` of diagnostic ``kind``: its plug-in's ``penalty``."""
    from surrogates.diagnostics.kinds import KIND_CLASSES

    if kind not in KIND_CLASSES:
        raise ValueError(f"no reward mapping for diagnostic kind {kind!r}; a kind is a plug-in class in "
                         f"surrogates/diagnostics/kinds.py (kinds: {', '.join(KIND_CLASSES)})")
    return KIND_CLASSES[kind].penalty(score)


class DiagnosticTerms:
    """The diagnostics of ``config.diagnostics`` over the measured history of ``n`` cells.

    Args:
        config: an :class:`envs.config.ChargingConfig`; its ``diagnostics``, ``chemistry``
            and ``dt`` are fixed here, its ``diagnostic_weights`` are read at every step.
        n: number of cells.
        device: torch device of the diagnostics.
        diagnostics: optional ``{kind: Diagnostic}`` already loaded (else each is loaded with
            :func:`surrogates.diagnostics.load_diagnostic`: the checkpoint shipped for the chemistry).

    Raises:
        FileNotFoundError: no diagnostic of a kind is shipped for the chemistry (the message
            lists the shipped ones and the command that trains one).
        ValueError: a diagnostic trained for another ``dt``, or a kind without a reward mapping.
    """

    def __init__(self, config, n: int, device: str = "cpu", diagnostics: dict | None = None):
        import torch

        from surrogates.diagnostics import load_diagnostic

        self._inference_mode = torch.inference_mode  # no autograd bookkeeping at all (a little faster than no_grad)

        self.config = config
        self.kinds: tuple[str, ...] = tuple(config.diagnostics)
        if not self.kinds:
            raise ValueError("DiagnosticTerms needs at least one diagnostic kind in config.diagnostics")
        for kind in self.kinds:
            penalty(kind, np.zeros(0))  # an unknown kind: the clear error, before anything loads
        given = dict(diagnostics or {})
        self.models = {}
        for kind in self.kinds:
            d = given[kind] if kind in given else load_diagnostic(kind, config.chemistry, device=device)
            if (d.kind, d.chemistry) != (kind, config.chemistry):
                raise ValueError(f"diagnostics[{kind!r}] is a {d.chemistry}-{d.kind} diagnostic, "
                                 f"expected {config.chemistry}-{kind}")
            d.check_dt(config.dt)
            self.models[kind] = d
        self.n = int(n)
        windowed = [d.window for d in self.models.values() if not getattr(d, "streams", False)]
        self.window = max(windowed, default=1)
        self._streams = {k: d.stream_init(np.zeros(self.n), np.full(self.n, 298.15))
                         for k, d in self.models.items() if getattr(d, "streams", False)}
        self.history = np.zeros((self.n, self.window, 3), dtype=np.float32)
        self.scores = {k: np.zeros(self.n) for k in self.kinds}
        """The latest score of each kind ``[N]`` (0 after a reset)."""

    def __repr__(self) -> str:
        return f"DiagnosticTerms({', '.join(map(repr, self.models.values()))}, n={self.n})"

    def reset_rows(self, rows, voltage, temperature) -> None:
        """Fill the history of cells ``rows`` with the rest state before a charge.

        Args:
            rows: cell indices (or a boolean mask) ``[M]``.
            voltage: ``[M]`` rest (open-circuit) voltage [V].
            temperature: ``[M]`` cell temperature at rest [K].
        """
        rows = np.asarray(rows)
        h = self.history[rows]  # [M, W_max, 3] (a copy; written back below)
        h[:, :, 0] = 0.0
        h[:, :, 1] = np.asarray(voltage, dtype=np.float32).reshape(-1, 1)
        h[:, :, 2] = np.asarray(temperature, dtype=np.float32).reshape(-1, 1)
        self.history[rows] = h
        for kind, state in self._streams.items():
            self.models[kind].stream_reset_rows(state, rows, voltage, temperature)
        for s in self.scores.values():
            s[rows] = 0.0

    def step(self, current, voltage, temperature, ok=None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Append one interval for every cell and score the windows that end with it.

        Args:
            current: ``[N]`` current applied during the interval [A] (PyBaMM sign).
            voltage, temperature: ``[N]`` at the end of the interval [V], [K].
            ok: ``[N]`` bool, False where the interval was not simulated (solver failure);
                None: all simulated.
        Returns:
            ``(scores, terms)``: ``{kind: [N] float64}`` each; the scores and the reward terms
            ``-weight * penalty(score)`` (0 where not ``ok``).
        """
        new = np.stack([np.asarray(current, dtype=np.float32).reshape(self.n),
                        np.asarray(voltage, dtype=np.float32).reshape(self.n),
                        np.asarray(temperature, dtype=np.float32).reshape(self.n)], axis=-1)  # [N, 3]
        ok = None if ok is None or np.all(ok) else np.asarray(ok, dtype=bool).reshape(self.n)
        if ok is None:
            self.history[:, :-1] = self.history[:, 1:]
            self.history[:, -1] = new
            rows = slice(None)
        else:
            rows = np.flatnonzero(ok)
            h = self.history[rows]
            h[:, :-1] = h[:, 1:].copy()
            h[:, -1] = new[rows]
            self.history[rows] = h
        weights = self.config.diagnostic_weights
        terms = {}
        for kind, d in self.models.items():
            if kind in self._streams:
                # every cell advances (a failed one is reset before its next interval anyway)
                with self._inference_mode():
                    scores = d.stream_step(self._streams[kind], new[:, 0], new[:, 1], new[:, 2])
                self.scores[kind][rows] = scores[rows]
            elif ok is None or len(rows):
                windows = self.history[rows, self.window - d.window:]  # a view when every row is scored
                with self._inference_mode():
                    self.scores[kind][rows] = d.score_windows(windows, batch_size=SCORE_BATCH)
            term = 0.0 - float(weights.get(kind, 1.0)) * penalty(kind, self.scores[kind])  # 0.0 - x: no -0.0
            terms[kind] = term if ok is None else np.where(ok, term, 0.0)
        return {k: s.copy() for k, s in self.scores.items()}, terms
