"""Tables and figures of ground-truth degradation (:func:`agents.ageing.measure.measure`'s results), policies side by side.

A result set is ``{policy name: {"grid": {point key: CycleResult}, "life": {point key: life}, "settings": ...}}``;
policies of one family (the CC-CV rates, an agent's seeds) are drawn as one front. The baselines' results are
committed beside the reference table (:func:`degradation_path`) so that an agent's evaluation compares with them
without recomputing them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from agents.ageing.life import LIFE_STARTS
from agents.ageing.measure import BASELINE_FAMILIES, result_from_json, result_to_json
from agents.charge import Start, point_key
from agents.charge.figures import save_figure
from agents.evaluation.references import reference_path
from agents.evaluation.scoring import score
from surrogates.common.files import atomic_write_text
from surrogates.common.tables import markdown_table


def degradation_path(chemistry: str) -> Path:
    """``<chemistry>-degradation.json`` beside the chemistry's reference table."""
    p = reference_path(chemistry)
    return p.with_name(f"{chemistry}-degradation.json")


def load_baselines(chemistry: str) -> dict:
    """The committed baselines' results (``{}`` when there are none for this cell), grid rows as records."""
    p = degradation_path(chemistry)
    policies = json.loads(p.read_text())["policies"] if p.exists() else {}
    return {name: result_from_json(res) for name, res in policies.items()}


def judge(results: dict, table: dict) -> dict:
    """Each policy's ``yardstick``: the yardstick's verdict on its own grid charges (times against the reference
    table's oracle and tuned protocols; :func:`agents.evaluation.scoring.score`). Returns ``results``, completed in
    place."""
    for res in results.values():
        res["yardstick"] = score({k: r.charge for k, r in res["grid"].items()}, table)[1]
    return results


def _f(x, fmt="{:.3f}") -> str:
    return "-" if x is None or not math.isfinite(x) else fmt.format(x)


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else math.nan


def policy_summary(res: dict, life_starts=LIFE_STARTS) -> dict:
    """One policy's headline figures: per life start (25 C and the hottest: ``..._25C``, ``..._hot``) and over the
    grid (charges that arrived)."""
    grid = res["grid"]
    ok = [r for r in grid.values() if r.reached]
    y = res.get("yardstick", {})
    out = {"points": len(grid), "safe_points": sum(r.safe for r in grid.values()),
           "ratio": y.get("geo_mean_ratio", math.nan), "tuned_faster": y.get("tuned_faster", math.nan),
           "grid_loss_mAh": _mean(r.irreversible_cycle_mAh for r in ok),
           "grid_time_min": _mean(r.charge.charge_time_min for r in ok),
           "grid_plating_time_min": _mean(r.plating_time_min for r in grid.values()),
           "grid_exposure_mVmin": _mean(r.plating_exposure_mVmin for r in grid.values()),
           "grid_plated_peak_mAh": _mean(r.plated_peak_mAh for r in grid.values())}
    for start, tag in zip(life_starts, ("25C", "hot")):
        key = point_key(start)
        r = grid.get(key)
        lf = res["life"].get(key, {})
        out.update({f"time_{tag}": r.charge.charge_time_min if r and r.reached else math.nan,
                    f"loss_{tag}": r.irreversible_cycle_mAh if r and r.reached else math.nan,
                    f"unsafe_{tag}": bool(r and r.reached and not r.safe),
                    f"exposure_{tag}": r.plating_exposure_mVmin if r else math.nan,
                    f"fade_{tag}": lf.get("fade_per_100", math.nan), f"eol_{tag}": lf.get("cycles_to_90", math.nan),
                    f"eol_extrapolated_{tag}": lf.get("extrapolated", True)})
    return out


def family_of(res: dict) -> str:
    return res["settings"]["family"]


def by_family(results: dict) -> dict[str, list[str]]:
    fams: dict[str, list[str]] = {}
    for name, res in results.items():
        fams.setdefault(family_of(res), []).append(name)
    return fams


SUMMARY_COLUMNS = (
    ("safe_points", "safe points", "{:.0f}"), ("ratio", "time / oracle's", "{:.3f}"),
    ("tuned_faster", "points tuned is faster", "{:.0f}"),
    ("time_25C", "time 10 %/25 C [min]", "{:.1f}"), ("loss_25C", "loss/cycle 25 C [mA.h]", "{:.3f}"),
    ("time_hot", "time 10 %/40 C [min]", "{:.1f}"), ("loss_hot", "loss/cycle 40 C [mA.h]", "{:.3f}"),
    ("grid_loss_mAh", "loss/cycle, grid mean [mA.h]", "{:.3f}"),
    ("grid_plating_time_min", "margin < 0, grid mean [min]", "{:.1f}"),
    ("grid_exposure_mVmin", "exposure, grid mean [mV.min]", "{:.0f}"),
    ("grid_plated_peak_mAh", "plated peak, grid mean [mA.h]", "{:.1f}"),
    ("fade_25C", "fade/100 cycles 25 C [%]", "{:.2f}"), ("eol_25C", "cycles to 90 % 25 C", "{:.0f}"),
    ("fade_hot", "fade/100 cycles 40 C [%]", "{:.2f}"), ("eol_hot", "cycles to 90 % 40 C", "{:.0f}"),
)


def summary_rows(results: dict, life_starts=LIFE_STARTS) -> list[dict]:
    """One row per policy and, for families of several policies (seeds), one with mean +- sd."""
    rows = []
    for fam, names in by_family(results).items():
        sums = [policy_summary(results[n], life_starts) for n in names]
        for n, s in zip(names, sums):
            rows.append({"policy": n, **s})
        if len(names) > 1 and fam not in BASELINE_FAMILIES:
            g = {"policy": f"**{fam}: mean +- sd over {len(names)}**"}
            for key, _, _ in SUMMARY_COLUMNS:
                v = np.array([s[key] for s in sums], dtype=np.float64)
                g[key] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
                g[key + "_sd"] = float(np.nanstd(v)) if np.isfinite(v).any() else math.nan
            rows.append(g)
    return rows


def _cell(r: dict, key: str, fmt: str) -> str:
    v = r.get(key, math.nan)
    if isinstance(v, bool) or v is None:
        return "-"
    text = _f(v, fmt)
    if key.startswith("eol_") and text != "-" and r.get(key.replace("eol_", "eol_extrapolated_"), False):
        text = "~" + text
    if key.startswith(("time_", "loss_")) and r.get("unsafe_" + key.split("_")[1], False):
        text += " !"
    if key + "_sd" in r and text != "-":
        text += f" +- {_f(r[key + '_sd'], fmt)}"
    return text


def summary_table(results: dict, life_starts=LIFE_STARTS) -> str:
    """The summary table; its headers name the life starts."""
    names = {"10 %/25 C": f"{life_starts[0].soc:.0%}/{life_starts[0].ambient_temperature - 273.15:.0f} C",
             "10 %/40 C": f"{life_starts[-1].soc:.0%}/{life_starts[-1].ambient_temperature - 273.15:.0f} C",
             "40 C": f"{life_starts[-1].ambient_temperature - 273.15:.0f} C"}

    def head(h: str) -> str:
        for old, new in names.items():
            h = h.replace(old, new)
        return h

    cols = [("policy", lambda r: r["policy"])] + [(head(h), (lambda k, f: lambda r: _cell(r, k, f))(key, fmt))
                                                   for key, h, fmt in SUMMARY_COLUMNS]
    return markdown_table(summary_rows(results, life_starts), cols)


def grid_table(results: dict, starts: list[Start]) -> str:
    """Per grid point: charge time / irreversible loss per cycle / exposure of each policy (families of seeds averaged)."""
    fams = by_family(results)
    rows = []
    for start in starts:
        key = point_key(start)
        row = {"start": start.label}
        for fam, names in fams.items():
            for n in (names if fam in BASELINE_FAMILIES else [fam]):
                members = names if n == fam else [n]
                rs = [results[m]["grid"][key] for m in members]
                okr = [r for r in rs if r.reached]
                t, q = _mean(r.charge.charge_time_min for r in okr), _mean(r.irreversible_cycle_mAh for r in okr)
                e = _mean(r.plating_exposure_mVmin for r in rs)
                bad = sum(not r.safe for r in rs)
                row[n] = (f"{_f(t, '{:.1f}')} / {_f(q)} / {_f(e, '{:.0f}')}" + (" !" * bool(bad))
                          + (f" ({bad}/{len(rs)} unsafe)" if bad and len(rs) > 1 else ""))
        rows.append(row)
    names = [k for k in rows[0] if k != "start"] if rows else []
    return markdown_table(rows, [("start", lambda r: r["start"])] + [(n, (lambda n: lambda r: r[n])(n)) for n in names])


def report(results: dict, starts: list[Start], life_starts=LIFE_STARTS) -> str:
    """The markdown report: the summary table, then the grid table."""
    return (
        "# Ground-truth degradation per policy (DFN + lumped thermal, OKane2022 SEI and partially reversible plating)\n\n"
        "One cycle = the policy's charge from the start SOC to 80 % (closed loop, on the degradation DFN), 1 h rest, "
        "1C discharge to v_min, 1 h rest, from a fresh cell. Loss/cycle: the irreversible lithium lost over the cycle "
        "(SEI + dead lithium) [mA.h]. Exposure: the plating margin below 0 V integrated over the charge [mV.min]. "
        "Life: the charge's profile replayed open loop, the discharge giving back the charge; fade per 100 cycles and "
        "cycles to 90 % retention (retention = 1 - irreversible loss / nominal capacity; `~`: extrapolated with the law of "
        "solvent-diffusion-limited SEI growth, a (sqrt(1 + n/b) - 1), fitted to the simulated cycles). Times and losses count the charges that reached 80 %; `!` marks a charge "
        "that broke a limit on the way (plating margin, temperature or voltage: see `safe points`).\n\n"
        + summary_table(results, life_starts) + "\n\n## Per grid point: charge time [min] / loss per cycle "
        "[mA.h] / plating exposure [mV.min]\n\n" + grid_table(results, starts) + "\n")


def write_report(results: dict, table: dict, starts: list[Start], lives_at: list[Start], out: Path) -> str:
    """Judge ``results`` against the reference ``table`` (:func:`judge`), then write ``out/degradation.md``
    (:func:`report`), ``fronts.png`` (with the plating exposure at the coldest start) and ``capacity.png``; the text."""
    out = Path(out)
    judge(results, table)
    text = report(results, starts, lives_at)
    (out / "degradation.md").write_text(text)
    plot_fronts(results, out / "fronts.png", lives_at, exposure_at=coldest(starts, lives_at))
    plot_capacity(results, out / "capacity.png", lives_at)
    return text


def ship_baselines(results: dict, table: dict, lives_at: list[Start], life_config, chemistry: str, starts: list[Start],
                   command: str) -> Path:
    """Commit the baselines' results of ``results`` beside the reference table (:func:`degradation_path`), with the
    fronts and capacity figures of every policy in ``results``; the path written."""
    baselines = {n: result_to_json({k: v for k, v in r.items() if k != "yardstick"}) for n, r in results.items()
                 if r["settings"]["family"] in BASELINE_FAMILIES}
    ship = {"command": command, "task": table["task"], "life": asdict(life_config),
            "life_starts": [s.key for s in lives_at], "policies": baselines}
    path = degradation_path(chemistry)
    atomic_write_text(path, json.dumps(ship, indent=1, default=float))
    plot_fronts(results, path.with_name(f"{path.stem}-fronts.png"), lives_at, exposure_at=coldest(starts, lives_at))
    plot_capacity(results, path.with_name(f"{path.stem}-capacity.png"), lives_at)
    return path


def coldest(starts: list[Start], lives_at: list[Start]) -> Start:
    """The lives' SOC at the grid's coldest ambient: where plating is the hazard."""
    return Start(lives_at[0].soc, min(s.ambient_temperature for s in starts))


def _front_points(results: dict, names: list[str], key: str, metric: str = "irreversible_cycle_mAh"):
    """(charge time, ``metric``, safe) of each policy in ``names`` whose charge from ``key`` arrived."""
    pts = []
    for n in names:
        r = results[n]["grid"].get(key)
        if r and r.reached:
            pts.append((r.charge.charge_time_min, getattr(r, metric), r.safe))
    return pts


def plot_fronts(results: dict, path=None, starts=LIFE_STARTS, exposure_at: Start | None = None):
    """Charge time vs irreversible loss per cycle at each of ``starts``; one point per policy, families as fronts.
    With ``exposure_at`` (a grid point), a last panel: charge time vs plating exposure there (the hazard).

    Hollow markers: the charge broke a limit. Saves to ``path`` (closing it) or returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = by_family(results)
    panels = [(s, "irreversible_cycle_mAh", "irreversible loss per cycle [mA.h]") for s in starts]
    if exposure_at is not None:
        panels.append((exposure_at, "plating_exposure_mVmin", "plating exposure [mV.min]"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (start, metric, ylabel) in zip(axes[0], panels):
        key = point_key(start)
        for i, (fam, names) in enumerate(fams.items()):
            color = f"C{i}"
            pts = _front_points(results, names, key, metric)
            if not pts:
                continue
            if fam in BASELINE_FAMILIES:
                p = sorted(pts)
                ax.plot([x for x, _, _ in p], [y for _, y, _ in p], color=color, marker="s", ls="--", label=fam,
                        mfc="none" if False else color)
                for x, y, ok in p:
                    if not ok:
                        ax.scatter([x], [y], s=140, facecolors="none", edgecolors="k", zorder=5)
            else:
                xs, ys = [x for x, _, _ in pts], [y for _, y, _ in pts]
                ax.scatter(xs, ys, color=color, s=18, alpha=0.6)
                ax.scatter([np.mean(xs)], [np.mean(ys)], color=color, s=80, marker="o", edgecolors="k", label=fam)
                for x, y, ok in pts:
                    if not ok:
                        ax.scatter([x], [y], s=140, facecolors="none", edgecolors="k", zorder=5)
        ax.set_title(f"start {start.label}", fontsize=10)
        ax.set_xlabel("charge time to 80 % [min]")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("charge time vs what the charge costs (hollow circle: broke a limit)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_capacity(results: dict, path=None, starts=LIFE_STARTS):
    """Retention [%] vs cycle number at each life start, one line per policy (seeds of a family: thin lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = by_family(results)
    fig, axes = plt.subplots(1, len(starts), figsize=(5.2 * len(starts), 4.0), squeeze=False, sharey=True)
    for ax, start in zip(axes[0], starts):
        key = point_key(start)
        for i, (fam, names) in enumerate(fams.items()):
            for j, n in enumerate(names):
                lf = results[n]["life"].get(key)
                if not lf or not lf["retention"]:
                    continue
                ret = 100.0 * np.asarray(lf["retention"])
                label = n if fam in BASELINE_FAMILIES else (fam if j == 0 else None)
                ls = "--" if fam == BASELINE_FAMILIES[0] else "-"
                color = f"C{i}" if fam not in BASELINE_FAMILIES[:1] else plt.cm.Greys(0.35 + 0.6 * j / max(len(names), 1))
                ax.plot(np.arange(1, len(ret) + 1), ret, color=color, ls=ls, lw=1.0, label=label)
        ax.set_title(f"life from {start.label}", fontsize=10)
        ax.set_xlabel("cycle")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("capacity retention [%] (lithium inventory)")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["BASELINE_FAMILIES", "write_report", "ship_baselines", "coldest", "degradation_path", "load_baselines", "judge", "policy_summary", "summary_table", "grid_table",
           "report", "plot_fronts", "plot_capacity"]
