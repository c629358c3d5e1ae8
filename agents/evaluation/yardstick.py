"""The yardstick's report: a policy's scored grid as a table, a summary line and a figure; runs side by side.

Glossary: :mod:`agents.evaluation.scoring` (ratio, geo-mean ratio, beaten) and :mod:`agents.charge.record`
(worst excess). :func:`agents.rl.evaluate.evaluate_run` writes these for a trained run.
"""

from __future__ import annotations

import math

import numpy as np

from agents.charge import minutes
from agents.charge.figures import save_figure
from agents.evaluation.scoring import ScoredPoint
from surrogates.common.tables import markdown_table

AGENT = "agent"


def _ref(p: ScoredPoint, name: str) -> str:
    return "-" if name in p.missing else minutes(p.reference(name))


def _excess(p: ScoredPoint) -> str:
    if not p.violating:
        return "0"
    return f"{p.charge.violating_steps} ({p.charge.worst_excess.label()})"


def summary_line(summary: dict, name: str = AGENT) -> str:
    """One line: how the policy stands against the references."""
    return (f"{name}: geo-mean ratio to the oracle {summary['geo_mean_ratio']:.3f} (worst {summary['worst_ratio']:.3f}; "
            f"to the buffered oracle {summary['geo_mean_ratio_buffered']:.3f}; the tuned protocols "
            f"{summary['geo_mean_ratio_tuned']:.3f}), {summary['violating_points']}/{summary['points']} points with "
            f"violations ({summary['violating_steps']} intervals), {summary['not_reached']} not reached; the tuned "
            f"protocol is faster at {summary['tuned_faster']}/{summary['points']} points, the fastest CC-CV at "
            f"{summary['cccv_faster']}/{summary['points']}")


def markdown(scored: list[ScoredPoint], summary: dict, name: str = AGENT) -> str:
    """The grid table (charge times [min], ratios, violations) and the summary line."""
    cols = [
        ("start", lambda p: p.start.label),
        (f"{name} [min]", lambda p: minutes(p.t)),
        ("oracle", lambda r: _ref(r, "oracle")),
        ("oracle, agent's buffers", lambda r: _ref(r, "oracle_buffered")),
        ("tuned 5-stage CC-CV", lambda r: _ref(r, "tuned")),
        ("fastest CC-CV", lambda r: _ref(r, "cccv")),
        ("ratio to oracle", lambda p: f"{p.ratio:.3f}" if math.isfinite(p.ratio) else "-"),
        ("beaten by", lambda p: ", ".join(n for n, f in (("tuned", p.tuned_faster), ("CC-CV", p.cccv_faster)) if f)
         or "-"),
        ("violating intervals (worst excess)", _excess),
    ]
    return markdown_table(scored, cols) + "\n\n" + summary_line(summary, name) + ".\n"


def plot_grid(scored: list[ScoredPoint], path, title: str = "", name: str = AGENT):
    """Charge time vs ambient temperature, one panel per start SOC; the oracle band shaded.

    Saves to ``path`` and closes the figure; without ``path`` returns the open figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    socs = sorted({p.start.soc for p in scored})
    fig, axes = plt.subplots(1, len(socs), figsize=(3.6 * len(socs), 3.6), sharey=True, squeeze=False)
    styles = [(lambda p: p.t, name, dict(color="C3", marker="o", lw=2)),
              (lambda p: p.reference("tuned"), "tuned 5-stage CC-CV", dict(color="C0", marker="s", ls="--")),
              (lambda p: p.reference("cccv"), "fastest CC-CV", dict(color="C7", marker="^", ls=":"))]
    for ax, soc in zip(axes[0], socs):
        ps = sorted((p for p in scored if p.start.soc == soc), key=lambda p: p.start.ambient_temperature)
        amb = [p.start.ambient_temperature - 273.15 for p in ps]
        ax.fill_between(amb, [p.reference("oracle") for p in ps], [p.reference("oracle_buffered") for p in ps], color="C2",
                        alpha=0.25, label="oracle .. oracle with buffers")
        ax.plot(amb, [p.reference("oracle") for p in ps], color="C2", lw=1)
        for value, label, kw in styles:
            ax.plot(amb, [value(p) for p in ps], label=label, **kw)
        bad = [p for p in ps if p.violating]
        if bad:
            ax.scatter([p.start.ambient_temperature - 273.15 for p in bad], [p.t for p in bad], s=120,
                       facecolors="none", edgecolors="k", label="violates a limit", zorder=5)
        ax.set_xticks(amb)
        ax.set_title(f"start {soc:.0%} SOC", fontsize=10)
        ax.set_xlabel("ambient temperature [C]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("charge time to 80 % [min]")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


COMPARED = (("geo_mean_ratio", "geo-mean ratio to oracle", "{:.3f}"), ("worst_ratio", "worst ratio", "{:.3f}"),
            ("not_reached", "points not reached in 2 h", "{:.1f}"), ("violating_points", "points with violations", "{:.1f}"), ("tuned_faster", "points the tuned protocol wins",
                                                                        "{:.1f}"),
            ("cccv_faster", "points CC-CV wins", "{:.1f}"))
"""Summary keys compared across runs, their headers and formats."""


def compare_runs(reports: dict) -> tuple[str, dict]:
    """Runs' reports (run dir -> :func:`evaluate_run`'s report) -> a markdown comparison and its data.

    One row per run, then one per algorithm with the mean +- standard deviation over its runs (seeds).
    """
    runs = [{"run": str(d), "algo": r["algo"], "seed": r["seed"], **r["summary"]} for d, r in reports.items()]
    algos = {}
    for r in runs:
        algos.setdefault(r["algo"], []).append(r)
    groups = []
    for algo, rs in algos.items():
        g = {"run": f"{algo.upper()} mean +- sd over {len(rs)} seed(s)", "algo": algo, "seed": ""}
        for key, _, _ in COMPARED:
            v = np.array([r[key] for r in rs], dtype=np.float64)
            g[key], g[key + "_sd"] = float(np.nanmean(v)), float(np.nanstd(v))
        groups.append(g)
    cols = [("run", lambda r: r["run"]), ("algo", lambda r: r["algo"].upper()), ("seed", lambda r: r["seed"])]
    cols += [(head, (lambda k, f: lambda r: f.format(r[k]) + (f" +- {f.format(r[k + '_sd'])}" if k + "_sd" in r else ""))
              (key, fmt)) for key, head, fmt in COMPARED]
    text = "# Policies over the reference grid\n\n" + markdown_table(runs + groups, cols) + "\n"
    return text, {"runs": runs, "algorithms": groups}


__all__ = ["AGENT", "COMPARED", "compare_runs", "summary_line", "markdown", "plot_grid"]
