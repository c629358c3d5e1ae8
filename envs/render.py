"""Rendering of a charge, shared by the three envs: what one cell did since its reset, drawn in four panels.

Every env takes ``render_mode`` (Gymnasium's convention; :data:`RENDER_MODES`):

* ``None`` (default): nothing is recorded or drawn, and matplotlib is not imported.
* ``"rgb_array"``: ``render()`` returns the charge so far as an RGB frame ``[H, W, 3]`` uint8
  (:data:`FRAME_SIZE`) drawn off-screen (matplotlib's Agg canvas; no display needed).
* ``"human"``: the charge is shown live in a matplotlib window, redrawn by every ``reset`` and
  ``step`` (and ``render()``), paced at ``metadata["render_fps"]``. Where matplotlib has no
  interactive backend (no display, ``MPLBACKEND=Agg``), nothing is shown: one warning is logged
  per process (Python's ``logging``, logger ``envs.render``) and the env runs on.

The panels, against time since reset [min]: the C-rate [1/h] (held over each interval), the
interval's highest voltage [V] with ``v_max``, its highest temperature [degC] with ``t_max``, and
its lowest plating margin [mV] with ``plating_limit`` (the extremes the reward and the hard
limits judge; the limits are read from the env's config at each draw).

:class:`ChargeHistory` keeps the per-interval values (one append per step, O(1));
:class:`ChargeFigure` draws one onto a figure that is made once per env and reused;
:class:`ChargeRenderer` puts the two behind a render mode, and is all an env holds (None when
``render_mode`` is None). The batch envs render one cell, ``render_cell``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

RENDER_MODES: tuple[str, ...] = ("rgb_array", "human")
"""The render modes of every env (``metadata["render_modes"]``)."""
RENDER_FPS = 30
"""``metadata["render_fps"]``: frames per second of a video of the charge (one frame per interval), and the pace of
``"human"``."""
FIGSIZE = (6.4, 6.4)
DPI = 80
FRAME_SIZE = (int(FIGSIZE[1] * DPI), int(FIGSIZE[0] * DPI))
"""(H, W) of an ``rgb_array`` frame [pixels]."""
HISTORY_KEYS: tuple[str, ...] = ("elapsed", "c_rate", "voltage_max", "temperature_max", "plating_margin_min", "soc")
"""The ``info`` keys a :class:`ChargeHistory` records."""

_log = logging.getLogger(__name__)
_warned_no_display = False


def metadata(**extra) -> dict:
    """An env's ``metadata``: :data:`RENDER_MODES` and :data:`RENDER_FPS`, plus ``extra``."""
    return {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS, **extra}


def check_render_mode(render_mode, owner: str) -> None:
    """Refuse a ``render_mode`` that is neither None nor one of :data:`RENDER_MODES` (``ValueError``)."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"{owner}: render_mode must be None or one of {', '.join(map(repr, RENDER_MODES))}, "
                         f"got {render_mode!r}")


def check_render_cell(render_cell, num_envs: int) -> int:
    """``render_cell`` as an int index in ``[0, num_envs)`` (``ValueError`` otherwise)."""
    if isinstance(render_cell, bool) or not isinstance(render_cell, (int, np.integer)) or not 0 <= render_cell < num_envs:
        raise ValueError(f"render_cell must be a cell index in [0, {num_envs}), got {render_cell!r}")
    return int(render_cell)


def outcome(flags: Mapping, terminated: bool, truncated: bool) -> str | None:
    """How an interval ended the charge, for the figure's title (None: it did not)."""
    if truncated:
        return "time limit"
    if not terminated:
        return None
    for key, text in (("solver_failure", "solver failure"), ("hard_violation", "hard violation"),
                      ("reached_target", "target reached")):
        if flags.get(key):
            return text
    return "terminated"


def row(columns: Mapping[str, np.ndarray], i: int) -> dict[str, float]:
    """Cell ``i``'s :data:`HISTORY_KEYS` (and flags) out of a batch's info columns ``{key: [N]}``."""
    keys = HISTORY_KEYS + ("reached_target", "hard_violation", "solver_failure")
    return {k: columns[k][i].item() for k in keys if k in columns}


class ChargeHistory:
    """One cell's charge since its reset: lists of :data:`HISTORY_KEYS`, one value per interval (reset first)."""

    def __init__(self):
        self.values: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.outcome: str | None = None
        """How the charge ended (:func:`outcome`), None while it runs."""
        self._next: Mapping | None = None

    def __len__(self) -> int:
        return len(self.values["elapsed"])

    def reset(self, info: Mapping) -> None:
        """Start a new charge at its reset ``info``."""
        for v in self.values.values():
            v.clear()
        self.outcome, self._next = None, None
        self.append(info)

    def append(self, info: Mapping, outcome: str | None = None) -> None:
        """Record one interval from its ``info`` (O(1)); ``outcome``: how it ended the charge, if it did."""
        if self._next is not None:
            self.reset(self._next)
        for k, v in self.values.items():
            v.append(float(info[k]))
        self.outcome = outcome

    def restart_later(self, info: Mapping) -> None:
        """The cell restarted at ``info`` (a batch's same-step auto-reset): the finished charge stays until the next
        :meth:`append`, which starts the new one from ``info``."""
        self._next = dict(info)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}


def _ylim(ax, data: np.ndarray, limit: float | None = None, pad: float = 0.08) -> None:
    vals = data[np.isfinite(data)] if len(data) else data
    lo_hi = [float(vals.min()), float(vals.max())] if len(vals) else []
    if limit is not None:
        lo_hi.append(float(limit))
    if not lo_hi:
        return
    lo, hi = min(lo_hi), max(lo_hi)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.05
    ax.set_ylim(lo - pad * span, hi + pad * span)


class ChargeFigure:
    """One figure with the four panels, made once and redrawn from a :class:`ChargeHistory` (see the module docstring).

    ``pyplot=False``: a bare ``Figure`` on an Agg canvas (no display, no pyplot state); ``True``: a pyplot figure on
    the interactive backend, for ``"human"``.
    """

    def __init__(self, config, pyplot: bool = False):
        self.config = config
        if pyplot:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=FIGSIZE, dpi=DPI)
            FigureCanvasAgg(fig)
        self.figure = fig
        axes = fig.subplots(4, 1, sharex=True)
        self.axes = axes
        labels = ("C-rate [1/h]", "voltage [V]", "temperature [°C]", "plating margin [mV]")
        self.lines = []
        self.limits = []
        for ax, label in zip(axes, labels):
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            self.lines.append(ax.plot([], [], color="tab:blue", lw=1.5,
                                      drawstyle="steps-pre" if ax is axes[0] else "default")[0])
        for ax in axes[1:]:
            self.limits.append(ax.axhline(np.nan, color="tab:red", ls="--", lw=1.0))
        axes[-1].set_xlabel("time [min]", fontsize=8)
        self.title = fig.suptitle("", fontsize=9)
        fig.subplots_adjust(left=0.14, right=0.97, top=0.93, bottom=0.08, hspace=0.12)

    def draw(self, history: ChargeHistory, label: str = "") -> None:
        """Update the lines, limits, axes and title to ``history`` (the canvas is drawn by the caller)."""
        cfg = self.config
        h = history.arrays()
        t = h["elapsed"] / 60.0
        series = (h["c_rate"], h["voltage_max"], h["temperature_max"] - 273.15, h["plating_margin_min"] * 1e3)
        limits = (None, cfg.v_max, cfg.t_max - 273.15, cfg.plating_limit * 1e3)
        for line, ax, y, limit in zip(self.lines, self.axes, series, limits):
            line.set_data(t, y)
            _ylim(ax, y, limit)
        self.axes[0].set_ylim(0.0, 1.05 * cfg.c_max)
        for line, limit in zip(self.limits, limits[1:]):
            line.set_ydata([limit, limit])
        self.axes[0].set_xlim(0.0, max(float(t[-1]) if len(t) else 0.0, cfg.dt / 60.0) * 1.02)
        parts = [label] if label else []
        if len(t):
            parts.append(f"t = {t[-1]:.1f} min, SOC {h['soc'][-1]:.3f} (target {cfg.soc_target:g})")
        if history.outcome:
            parts.append(history.outcome)
        self.title.set_text("   ".join(parts))

    def rgb_array(self) -> np.ndarray:
        """The figure as an RGB frame ``[H, W, 3]`` uint8 (a copy)."""
        self.figure.canvas.draw()
        return np.array(self.figure.canvas.buffer_rgba())[..., :3]

    def close(self) -> None:
        if hasattr(self.figure.canvas, "manager") and self.figure.canvas.manager is not None:
            import matplotlib.pyplot as plt

            plt.close(self.figure)


class ChargeRenderer:
    """A :class:`ChargeHistory` and its :class:`ChargeFigure` behind one render mode (not None; see the module docstring).

    The env calls :meth:`reset` and :meth:`step` with the cell's ``info`` (in ``"human"`` they draw too), and
    :meth:`render` from its own ``render()``.
    """

    def __init__(self, render_mode: str, config, label: str = ""):
        check_render_mode(render_mode, type(self).__name__)
        if render_mode is None:
            raise ValueError("ChargeRenderer needs a render mode; an env without one holds no renderer")
        self.render_mode = render_mode
        self.config = config
        self.label = label
        self.history = ChargeHistory()
        self._figure: ChargeFigure | None = None
        self._headless = False

    def reset(self, info: Mapping) -> None:
        self.history.reset(info)
        if self.render_mode == "human":
            self._show()

    def step(self, info: Mapping, outcome: str | None = None, restart: Mapping | None = None) -> None:
        """Record one interval; ``restart``: the reset ``info`` of a cell the batch restarted in this step."""
        self.history.append(info, outcome)
        if restart is not None:
            self.history.restart_later(restart)
        if self.render_mode == "human":
            self._show()

    def render(self) -> np.ndarray | None:
        """``"rgb_array"``: the frame; ``"human"``: show it, None."""
        if self.render_mode == "rgb_array":
            return self.rgb_array()
        self._show()
        return None

    def rgb_array(self) -> np.ndarray:
        if self._figure is None:
            self._figure = ChargeFigure(self.config, pyplot=False)
        self._figure.draw(self.history, self.label)
        return self._figure.rgb_array()

    def _show(self) -> None:
        if self._headless:
            return
        import matplotlib.pyplot as plt

        if self._figure is not None and not plt.fignum_exists(self._figure.figure.number):
            self._figure = None  # its window was closed: open another
        if self._figure is None:
            self._figure = ChargeFigure(self.config, pyplot=True)
            if getattr(type(self._figure.figure.canvas), "required_interactive_framework", None) is None:
                self._figure.close()  # Agg and friends: nothing to show it on
                self._figure = None
                self._headless = True
                _warn_no_display()
                return
        self._figure.draw(self.history, self.label)
        plt.pause(1.0 / RENDER_FPS)

    def close(self) -> None:
        if self._figure is not None:
            self._figure.close()
            self._figure = None


def _warn_no_display() -> None:
    global _warned_no_display
    if _warned_no_display:
        return
    _warned_no_display = True
    import matplotlib

    _log.warning("render_mode='human': matplotlib's backend %r cannot show a window (no display?), so nothing is "
                 "shown; use render_mode='rgb_array' for frames, or set MPLBACKEND to an interactive backend",
                 matplotlib.get_backend())
