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
(written by ``--export``). Windows are scored as the env serves them: ending at every
(``--stride``-th) interval, the first ones padded with the cell at rest before the sequence.

Prints tables and writes ``<out>/diagnostics-<chemistry>.md`` and ``.json``, including the
wall time of one ``score`` call on ``--speed-batch`` windows (an env step of that many cells).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402


def parse_args(argv=None):
    from surrogates.diagnostics import KINDS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chemistry", default="nmc", help="chemistry of the diagnostics")
    p.add_argument("--kind", nargs="+", default=list(KINDS), help="diagnostics to validate")
    p.add_argument("--path", default=None, help="a checkpoint or run folder instead of the shipped checkpoint (one kind)")
    p.add_argument("--data", default=None, help="dataset folder (default: the diagnostic's training data, "
                   "data/<chemistry> or data/<chemistry>-degradation)")
    p.add_argument("--ood-data", nargs="*", default=None, help="other-chemistry dataset folders for the OOD detector "
                   "(default data/lfp for nmc, data/nmc for lfp)")
    p.add_argument("--stride", type=int, default=1, help="stride between scored windows [intervals]")
    p.add_argument("--speed-batch", type=int, default=1024, help="windows per timed score() call")
    p.add_argument("--out", default="runs/validation", help="report folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: all cores)")
    p.add_argument("--export", action="store_true", help="write the held-out test sequences of the diagnostic's "
                   "dataset to surrogates/validation/<chemistry>[-degradation].npz (the degradation estimator's shipped set)")
    return p.parse_args(argv)


@lru_cache(maxsize=None)
def _rest_tables(chemistry: str) -> dict:
    """The cell's rest tables (what the env pads histories with), for sequences stored without them (PyBaMM, once)."""
    from surrogates.physics.rest_tables import rest_tables

    return rest_tables(chemistry)


def _dataset(arrays: dict, lengths, soc0, ambient, families, chemistry: str, dt: float):
    """Held-out sequences as a :class:`~surrogates.data.dataset.Dataset` (what the diagnostics' windows read)."""
    from surrogates.data.dataset import Dataset

    n = len(lengths)
    return Dataset(arrays=dict(arrays), lengths=np.asarray(lengths), families=np.asarray(families),
                   initial={"soc": np.asarray(soc0), "ambient_temperature": np.asarray(ambient)},
                   terminations=np.full(n, ""), specs=np.full(n, "{}"), indices=np.arange(n),
                   meta={"chemistry": chemistry, "dt": float(dt), "tables": _rest_tables(chemistry)})


def shipped_set(path: Path, chemistry: str | None = None, whole: bool = False) -> dict:
    """``{split: Dataset}`` of a shipped validation set: an ``.h5`` (:class:`~surrogates.validation.heldout.ValidationSet`,
    splits test and holdout) or an ``.npz`` written by ``--export`` (its test split); ``whole``: ``{"all": every sequence}``."""
    from surrogates.validation.heldout import ValidationSet

    if path.suffix == ".npz":
        z = np.load(path)
        m = json.loads(str(z["meta"]))
        arrays = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("arrays/")}
        return {m["split"]: _dataset(arrays, z["lengths"], z["soc0"], z["ambient"], z["families"], m["chemistry"], m["dt"])}
    vs = ValidationSet(path, chemistry=chemistry)
    groups = {"all": np.ones(len(vs), bool)} if whole else {split: vs.splits == split for split in dict.fromkeys(vs.splits)}
    return {name: _dataset({k: v[rows] for k, v in vs.arrays.items()}, vs.lengths[rows], vs.soc0[rows], vs.ambient[rows],
                           vs.families[rows], vs.meta["chemistry"], vs.meta["dt"]) for name, rows in groups.items()}


def held_out_sets(chemistry: str, data: str | None, diag, export: bool = False) -> tuple[dict, str]:
    """``{"test", "holdout"?}`` of the diagnostic's split, from its dataset folder or the shipped validation set
    (``export`` writes the test split of the folder as the shipped ``.npz``)."""
    from surrogates.data.dataset import open_dataset
    from surrogates.training.config import TrainingConfig, load_split
    from surrogates.validation.heldout import validation_dir

    sets_dir = validation_dir(chemistry)
    meta = diag.meta
    path = Path(data or meta.get("data", {}).get("path") or f"data/{chemistry}{diag.plugin.data_suffix}")
    if (path / "dataset.json").exists():
        ds = open_dataset(path, dt=meta.get("dt"), chemistry=chemistry)
        splits, _ = load_split(TrainingConfig.from_dict(meta.get("config", {})), ds)
        if export:
            _export(splits["test"], ds, path, sets_dir / f"{chemistry}{diag.plugin.data_suffix}.npz",
                    f"python experiments/generate_data.py {diag.plugin.dataset_flags.format(chemistry=chemistry)} "
                    f"--out {path} && python experiments/validate_diagnostics.py --kind {diag.kind} --export")
        fp = meta.get("data", {}).get("fingerprint")
        note = f"`{path}` (fingerprint {ds.fingerprint()}"
        note += ", the diagnostic's training data)" if fp == ds.fingerprint() else f"; the diagnostic was trained on {fp}: numbers are not comparable)"
        return {k: v for k, v in splits.items() if k in ("test", "holdout")}, note
    shipped = next((q for q in (sets_dir / f"{chemistry}{diag.plugin.data_suffix}{ext}" for ext in (".h5", ".npz"))
                    if q.exists()), None)
    if shipped is None:
        raise SystemExit(f"no dataset at {path} and no shipped validation set for it in {sets_dir}; make the data "
                         f"with `python experiments/generate_data.py "
                         f"{diag.plugin.dataset_flags.format(chemistry=chemistry)} --out {path}`")
    sets = shipped_set(shipped, chemistry)
    print(f"{path} not found: using the shipped validation set {shipped} "
          f"({sum(len(v) for v in sets.values())} sequences). For the full held-out sets generate the data: "
          f"python experiments/generate_data.py {diag.plugin.dataset_flags.format(chemistry=chemistry)} --out {path}")
    return sets, f"shipped validation set `{shipped.relative_to(sets_dir.parents[1])}` ({path} not found)"


def _export(test, ds, source: Path, shipped: Path, regenerate: str) -> None:
    """Write held-out sequences ``test`` of dataset ``ds`` (folder ``source``) as the shipped ``.npz`` set (the channels the diagnostics read)."""
    from surrogates.diagnostics.windows import BMS_CHANNELS, DEGRADATION_CHANNEL, LABEL_CHANNEL

    L = int(test.lengths.max())
    np.savez_compressed(shipped, **{f"arrays/{k}": v[:, :L] for k, v in test.arrays.items()
                                    if k in (*BMS_CHANNELS, LABEL_CHANNEL, DEGRADATION_CHANNEL)},
                        lengths=test.lengths, soc0=test.initial["soc"], ambient=test.initial["ambient_temperature"],
                        families=test.families.astype(str), meta=json.dumps(
                            {"chemistry": ds.meta["chemistry"], "dt": ds.dt, "source": str(source),
                             "fingerprint": ds.fingerprint(), "split": "test", "model": ds.meta.get("model"),
                             "seed": ds.meta.get("seed"), "regenerate": regenerate}))
    print(f"wrote {shipped} ({shipped.stat().st_size / 1e3:.0f} kB, {len(test)} sequences)")


def other_chemistry_sets(chemistry: str, folders: list[str] | None, dt: float) -> dict:
    """Whole datasets of other chemistries (all their sequences), or their shipped validation sets."""
    from surrogates.data.dataset import open_dataset
    from surrogates.validation.heldout import validation_dir

    if folders is None:
        folders = [f"data/{c}" for c in ("nmc", "lfp") if c != chemistry]
    out = {}
    for f in folders:
        p = Path(f)
        if (p / "dataset.json").exists():
            ds = open_dataset(p, dt=dt)
            out[f"{ds.meta['chemistry']} (`{p}`, all sequences)"] = ds
            continue
        h5 = validation_dir(p.name) / f"{p.name}.h5"
        if h5.exists():
            print(f"{p} not found: using the shipped validation set {h5} for the OOD test")
            out[f"{p.name} (shipped validation set)"] = shipped_set(h5, whole=True)["all"]
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


def _table(results: dict, cols: tuple[str, ...]) -> str:
    from surrogates.common.tables import markdown_table

    fmt = lambda v: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    return markdown_table(list(results.items()), [("set", lambda r: r[0])]
                          + [(c, lambda r, c=c: fmt(r[1].get(c))) for c in cols])


def main(argv=None) -> dict:
    # -- config
    args = parse_args(argv)
    import torch

    from surrogates.diagnostics import load_diagnostic
    from surrogates.diagnostics.evaluate import evaluate_sets

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
        sets, note = held_out_sets(args.chemistry, args.data, diag, args.export)
        if diag.plugin.judged_on_other_chemistries:
            sets.update({f"ood: {name}": other for name, other in
                         other_chemistry_sets(args.chemistry, args.ood_data, diag.dt).items()})
        # -- metrics
        res = evaluate_sets(diag, sets, args.stride, diag.meta.get("config", {}).get("aggregate", "max"))
        sec = speed(diag, args.speed_batch)
        stream_sec = stream_speed(diag, args.speed_batch) if diag.streams else None
        report[kind] = {"checkpoint": diag.source, "version": diag.version, "threshold": diag.threshold,
                        "data": note, "metrics": res, f"score_seconds_batch_{args.speed_batch}": sec,
                        f"stream_step_seconds_batch_{args.speed_batch}": stream_sec}
        # -- print
        title = (f"## {args.chemistry}-{kind} diagnostic ({diag.source}, {diag.version})\n\n"
                 + diag.plugin.describe(diag.threshold, diag.threshold_info, diag.meta))
        text = (f"{title}\n\nData: {note}.\n\n{_table(res, diag.plugin.columns)}\n\nOne `score` call on "
                f"{args.speed_batch} windows: {sec * 1e3:.2f} ms ({torch.get_num_threads()} torch thread(s))"
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
