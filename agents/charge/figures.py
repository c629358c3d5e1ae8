"""Figures of charges: C-rate, voltage, temperature and plating margin against time."""

from __future__ import annotations


def plot_traces(traces: dict[str, dict], config, path=None, title: str = ""):
    """C-rate, voltage, temperature and plating margin against time, one line per policy.

    Saves to ``path`` and closes the figure; without ``path`` returns the open figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(8, 10), sharex=True)
    for name, tr in traces.items():
        t = tr["elapsed"] / 60.0
        axes[0].step(t[1:], tr["c_rate"][1:], where="pre", label=name, lw=1.2)
        axes[1].plot(t, tr["voltage"], lw=1.2)
        axes[2].plot(t, tr["temperature"] - 273.15, lw=1.2)
        axes[3].plot(t, tr["plating_margin"] * 1e3, lw=1.2)
    axes[1].axhline(config.v_max, color="k", ls="--", lw=0.8)
    axes[2].axhline(config.t_max - 273.15, color="k", ls="--", lw=0.8)
    axes[3].axhline(config.plating_limit * 1e3, color="k", ls="--", lw=0.8)
    for ax, label in zip(axes, ("C-rate [1/h]", "voltage [V]", "temperature [C]", "plating margin [mV]")):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time [min]")
    axes[0].legend(fontsize=7, ncol=2)
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path=None):
    """Save ``fig`` to ``path`` and close it (returns None); without ``path`` return the open figure."""
    if path is None:
        return fig
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return None


__all__ = ["plot_traces", "save_figure"]
