"""Metrics of the shipped diagnostics (plating detector, OOD detector, degradation estimator) on held-out DFN sequences.

    python experiments/validate_diagnostics.py                          # nmc, all kinds, data/nmc + data/lfp
    python experiments/validate_diagnostics.py --chemistry nmc --kind ood --path runs/diagnostics/nmc-ood
    python experiments/validate_diagnostics.py --kind degradation --export   # also write the shipped degradation set

Held-out sequences are those of the diagnostics' (and surrogates') split: ``test`` (protocol
families seen in training) and ``holdout`` (the family never seen, ``pulse``). The OOD
detector is also run on another chemistry's sequences (``--ood-data``, default data/lfp),
which it must flag. Without the dataset folders, the small validation sets shipped in
``surrogates/validation/<chemistry>.h5`` are used instead (a subset of the same test and
held-out sequences); make the full sets with::

    python experiments/generate_data.py --chemistry nmc --num-sequences 1000 --seed 0 --out data/nmc
    python experiments/generate_data.py --chemistry lfp --num-sequences 600 --seed 0 --out data/lfp

The degradation estimator is validated on the held-out charges of its own dataset
(``data/<chemistry>-degradation``, made with ``--config experiments/configs/degradation_data.yml``)
or, without it, on those shipped in ``surrogates/validation/<chemistry>-degradation.npz``
(written by ``--export``).

Prints tables and writes ``<out>/diagnostics-<chemistry>.md`` and ``.json``, including the
wall time of one ``score`` call on ``--speed-batch`` windows (an env step of that many cells).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

KINDS = ("plating", "ood", "degradation")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chemistry", default="nmc", help="chemistry of the diagnostics")
    p.add_argument("--kind", nargs="+", default=list(KINDS), help="diagnostics to validate")
    p.add_argument("--path", default=None, help="a checkpoint or run folder instead of the shipped checkpoint (one kind)")
    p.add_argument("--data", default=None, help="dataset folder (default data/<chemistry>)")
    p.add_argument("--ood-data", nargs="*", default=None, help="other-chemistry dataset folders for the OOD detector "
                   "(default data/lfp for nmc, data/nmc for lfp)")
    p.add_argument("--stride", type=int, default=1, help="stride between scored windows [intervals]")
    p.add_argument("--speed-batch", type=int, default=1024, help="windows per timed score() call")
    p.add_argument("--out", default="runs/validation", help="report folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: all cores)")
    p.add_argument("--export", action="store_true", help="degradation: write the held-out charges of the dataset to "
                   "surrogates/validation/<chemistry>-degradation.npz (the shipped set)")
    return p.parse_args(argv)


def _rows(obj, rows) -> SimpleNamespace:
    return SimpleNamespace(arrays={k: v[rows] for k, v in obj.arrays.items()}, lengths=np.asarray(obj.lengths)[rows])


def diagnostic_split(path: Path, chemistry: str, meta: dict):
    """The dataset in ``path`` and the split the diagnostic was trained with (its checkpoint's config)."""
    from surrogates.data.dataset import open_dataset
    from surrogates.diagnostics.train import DiagnosticConfig, load_split

    ds = open_dataset(path, dt=meta.get("dt"), chemistry=chemistry)
    splits, _ = load_split(DiagnosticConfig(**meta.get("config", {})), ds)
    return ds, splits


def held_out_sets(chemistry: str, data: str | None, meta: dict) -> tuple[dict, str]:
    """``{"val"?, "test", "holdout"}`` of the diagnostic's split, from the dataset folder or the shipped validation set."""
    from surrogates.data.dataset import open_dataset
    from surrogates.validation.heldout import VALIDATION_DIR, ValidationSet

    path = Path(data or f"data/{chemistry}")
    if (path / "dataset.json").exists():
        ds, splits = diagnostic_split(path, chemistry, meta)
        fp = meta.get("data", {}).get("fingerprint")
        note = f"`{path}` (fingerprint {ds.fingerprint()}"
        note += ", the diagnostic's training data)" if fp == ds.fingerprint() else f"; the diagnostic was trained on {fp}: numbers are not comparable)"
        return splits, note
    vs = ValidationSet(VALIDATION_DIR / f"{chemistry}.h5", chemistry=chemistry)
    print(f"{path} not found: using the shipped validation subset {VALIDATION_DIR / f'{chemistry}.h5'} "
          f"({len(vs)} sequences). For the full held-out sets generate the data: "
          f"python experiments/generate_data.py --chemistry {chemistry} --out {path}")
    sets = {s: _rows(vs, np.flatnonzero(vs.splits == s)) for s in ("test", "holdout")}
    return sets, f"shipped validation subset `surrogates/validation/{chemistry}.h5` ({path} not found)"


def degradation_sets(chemistry: str, data: str | None, meta: dict, export: bool = False) -> tuple[dict, str]:
    """``{"test"}``: the held-out charges of the degradation estimator's split, from its dataset folder or
    the shipped set (``export`` writes the shipped set from the folder)."""
    from surrogates.data.dataset import Dataset
    from surrogates.validation.heldout import VALIDATION_DIR

    path = Path(data or meta.get("data", {}).get("path") or f"data/{chemistry}-degradation")
    shipped = VALIDATION_DIR / f"{chemistry}-degradation.npz"
    if (path / "dataset.json").exists():
        ds, splits = diagnostic_split(path, chemistry, meta)
        test = splits["test"]
        if export:
            L = int(test.lengths.max())
            np.savez_compressed(shipped, **{f"arrays/{k}": v[:, :L] for k, v in test.arrays.items()
                                            if k in ("current", "voltage", "temperature", "capacity_lost")},
                                lengths=test.lengths, soc0=test.initial["soc"], ambient=test.initial["ambient_temperature"],
                                families=test.families.astype(str), meta=json.dumps(
                                    {"chemistry": chemistry, "dt": ds.dt, "source": str(path), "fingerprint": ds.fingerprint(),
                                     "split": "test", "model": ds.meta.get("model"), "seed": ds.meta.get("seed"),
                                     "regenerate": "python experiments/generate_data.py --config "
                                     "experiments/configs/degradation_data.yml --out data/nmc-degradation && python "
                                     "experiments/validate_diagnostics.py --kind degradation --export"}))
            print(f"wrote {shipped} ({shipped.stat().st_size / 1e3:.0f} kB, {len(test)} charges)")
        return {"test": test}, f"`{path}` (fingerprint {ds.fingerprint()}), the test split of the estimator's training data"
    if not shipped.exists():
        raise SystemExit(f"no degradation dataset at {path} and no shipped set {shipped}; make the data with "
                         "`python experiments/generate_data.py --config experiments/configs/degradation_data.yml "
                         f"--out {path}`")
    z = np.load(shipped)
    meta_set = json.loads(str(z["meta"]))
    n = len(z["lengths"])
    test = Dataset(arrays={k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("arrays/")}, lengths=z["lengths"],
                   initial={"soc": z["soc0"], "ambient_temperature": z["ambient"]}, families=z["families"],
                   terminations=np.full(n, ""), specs=np.full(n, "{}"), indices=np.arange(n),
                   meta={"chemistry": meta_set["chemistry"], "dt": meta_set["dt"]})
    print(f"{path} not found: using the shipped held-out charges {shipped} ({n} charges)")
    return {"test": test}, f"shipped held-out charges `{shipped}` (from {meta_set['source']})"


def other_chemistry_sets(chemistry: str, folders: list[str] | None, dt: float) -> dict:
    """Whole datasets of other chemistries (all their sequences), or their shipped validation sets."""
    from surrogates.data.dataset import open_dataset
    from surrogates.validation.heldout import VALIDATION_DIR, ValidationSet

    if folders is None:
        folders = [f"data/{c}" for c in ("nmc", "lfp") if c != chemistry]
    out = {}
    for f in folders:
        p = Path(f)
        if (p / "dataset.json").exists():
            ds = open_dataset(p, dt=dt)
            out[f"{ds.meta['chemistry']} (`{p}`, all sequences)"] = ds
            continue
        h5 = VALIDATION_DIR / f"{p.name}.h5"
        if h5.exists():
            print(f"{p} not found: using the shipped validation set {h5} for the OOD test")
            out[f"{p.name} (shipped validation set)"] = ValidationSet(h5)
        else:
            print(f"{p} not found and no shipped validation set for it: skipped")
    return out


def speed(diag, batch: int, repeats: int = 20) -> float:
    """Median wall seconds of one ``score`` call on ``batch`` windows (as an env step of ``batch`` cells)."""
    rng = np.random.default_rng(0)
    m, s = diag.normalizer.mean, diag.normalizer.std
    cur, volt, temp = (rng.normal(m[i], s[i], (batch, diag.window)) for i in range(3))
    diag.score(cur, volt, temp)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        diag.score(cur, volt, temp)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def stream_speed(diag, batch: int, repeats: int = 50) -> float:
    """Median wall seconds of one ``stream_step`` for ``batch`` cells (the degradation estimator in the env)."""
    m = diag.normalizer.mean
    state = diag.stream_init(np.full(batch, m[1]), np.full(batch, m[2]))
    cur, volt, temp = (np.full(batch, m[i]) for i in range(3))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        diag.stream_step(state, cur, volt, temp)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _table(results: dict, cols: list[str]) -> str:
    head = "| set | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    fmt = lambda v: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    return head + "\n".join(f"| {name} | " + " | ".join(fmt(m.get(c)) for c in cols) + " |" for name, m in results.items())


def main(argv=None) -> dict:
    # -- config
    args = parse_args(argv)
    import torch

    from surrogates.diagnostics import load_diagnostic
    from surrogates.diagnostics.evaluate import evaluate, public, separation

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.path and len(args.kind) != 1:
        raise SystemExit("--path needs exactly one --kind")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    report, md = {}, [f"# Diagnostics for {args.chemistry}: held-out DFN sequences\n"]
    for kind in args.kind:
        # -- model and data
        diag = load_diagnostic(kind, args.chemistry, path=args.path)
        if kind == "degradation":
            sets, note = degradation_sets(args.chemistry, args.data, diag.meta, args.export)
        else:
            sets, note = held_out_sets(args.chemistry, args.data, diag.meta)
        agg = diag.meta.get("config", {}).get("aggregate", "max")
        # -- metrics
        res = {name: evaluate(diag, sets[name], args.stride, agg) for name in ("test", "holdout") if name in sets}
        if kind == "ood":
            for name, other in other_chemistry_sets(args.chemistry, args.ood_data, diag.dt).items():
                res[f"ood: {name}"] = evaluate(diag, other, args.stride, agg)
            for name in res:
                if name != "test" and res[name]["sequences"]:
                    res[name]["auroc_vs_test"] = separation(res[name], res["test"])
        res = {k: public(v) for k, v in res.items()}
        sec = speed(diag, args.speed_batch)
        stream_sec = stream_speed(diag, args.speed_batch) if diag.streams else None
        report[kind] = {"checkpoint": diag.source, "version": diag.version, "threshold": diag.threshold,
                        "data": note, "metrics": res, f"score_seconds_batch_{args.speed_batch}": sec,
                        f"stream_step_seconds_batch_{args.speed_batch}": stream_sec}
        # -- print
        if kind == "plating":
            cols = ["windows", "window_positive_fraction", "window_auroc", "window_f1", "window_precision", "window_recall",
                    "sequences", "episode_auroc", "episode_f1"]
            title = (f"## Plating detector ({diag.source}, {diag.version})\n\nWindow: plating margin < 0 V somewhere in "
                     f"{diag.window} intervals; decision threshold {diag.threshold:.3f}. Episode: max window probability per "
                     "sequence vs any plating in it.")
        elif kind == "degradation":
            cols = ["sequences", "charge_r2", "charge_mape_percent", "charge_mae_mah", "charge_mean_loss_mah",
                    "charge_max_loss_mah", "interval_r2"]
            title = (f"## Degradation estimator ({diag.source}, {diag.version})\n\nCapacity lost per charge [mA.h]: the "
                     f"estimator's per-interval losses summed over the charge, against the DFN's (SEI + lithium plating, "
                     f"{diag.meta.get('data', {}).get('degradation_parameter_set')} parameters).")
        else:
            cols = ["sequences", "flagged_fraction", "window_flagged_fraction", "median_sequence_score", "auroc_vs_test"]
            title = (f"## OOD detector ({diag.source}, {diag.version})\n\nA sequence is flagged when its max window score is "
                     f">= 1 (threshold {diag.threshold:.4g}: {diag.threshold_info.get('rule', '')}). `test` flagged = false-"
                     "positive rate; the others = detection rate.")
        text = (f"{title}\n\nData: {note}.\n\n{_table(res, cols)}\n\nOne `score` call on {args.speed_batch} windows: "
                f"{sec * 1e3:.2f} ms ({torch.get_num_threads()} torch thread(s))"
                + (f"; one `stream_step` of {args.speed_batch} cells (what the env pays per interval): "
                   f"{stream_sec * 1e3:.2f} ms" if stream_sec is not None else "") + ".\n")
        print(text)
        md.append(text)

    (out_dir / f"diagnostics-{args.chemistry}.md").write_text("\n".join(md))
    (out_dir / f"diagnostics-{args.chemistry}.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out_dir / f'diagnostics-{args.chemistry}.md'} and .json")
    return report


if __name__ == "__main__":
    main()
