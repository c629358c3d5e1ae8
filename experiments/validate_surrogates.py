"""Validate every shipped surrogate against the PyBaMM DFN, next to a fitted ECM.

    python experiments/validate_surrogates.py                      # every shipped cell, shipped sets and checkpoints
    python experiments/validate_surrogates.py --chemistry nmc --out runs/validation
    python experiments/validate_surrogates.py --chemistry nmc --export --fit-ecm --data data/nmc

Open loop over whole held-out DFN sequences (the shipped validation set: test sequences of
every protocol family plus the family held out of training). Prints and writes, per
chemistry, ``<out>/<chemistry>.md`` (tables), ``.json`` and ``.png`` (predicted vs DFN).
``--export`` rebuilds the shipped validation set from a dataset with the training split's
seed; ``--fit-ecm`` refits the shipped ECM baseline on that dataset's training split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

ARCHS = ("transformer", "mamba", "jepa")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chemistry", nargs="+", default=None, help="cells to validate (default: every shipped cell)")
    p.add_argument("--arch", nargs="+", default=list(ARCHS), help="architectures (those with a shipped checkpoint run)")
    p.add_argument("--out", default="runs/validation", help="report folder")
    p.add_argument("--data", default=None, help="dataset folder for --export / --fit-ecm (default data/<chemistry>)")
    p.add_argument("--export", action="store_true", help="rebuild surrogates/validation/<chemistry>.h5 from --data")
    p.add_argument("--fit-ecm", action="store_true", help="refit surrogates/baselines/fits/<chemistry>-ecm.json on --data")
    p.add_argument("--max-test", type=int, default=60, help="--export: test sequences kept")
    p.add_argument("--max-holdout", type=int, default=30, help="--export: held-out-family sequences kept")
    p.add_argument("--speed-steps", type=int, default=30, help="intervals timed per speed measurement")
    p.add_argument("--ecm-pybamm", type=int, default=3, help="sequences also run on PyBaMM's Thevenin model (agreement check)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    # -- config
    args = parse_args(argv)
    import torch

    from surrogates.physics.chemistry import CHEMISTRIES

    args.chemistry = args.chemistry or sorted(CHEMISTRIES)

    from surrogates.baselines.ecm import ECMParameters, ecm_fit_path, fit_ecm, simulate_ecm_numpy, simulate_ecm_pybamm
    from surrogates.models.surrogate import checkpoint_path, load_surrogate
    from surrogates.training.surrogate import TrainConfig
    from surrogates.validation.heldout import (ValidationSet, validation_dir, breakdown, dfn_step_time,
                                     export_validation_set, markdown_table, plot_sequences, step_time)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {}
    for chem in args.chemistry:
        set_path = validation_dir(chem) / f"{chem}.h5"
        ecm_path = ecm_fit_path(chem)

        # -- (re)build the shipped validation set and ECM from a dataset, with the training split
        if args.export or args.fit_ecm:
            from surrogates.data.dataset import open_dataset
            from surrogates.models.features import Featurizer

            tc = TrainConfig(chemistry=chem)
            ds = open_dataset(args.data or f"data/{chem}", dt=tc.dt, chemistry=chem)
            split = ds.split(tc.val_fraction, tc.test_fraction, seed=tc.seed, holdout_family=tc.holdout_family,
                             min_length=tc.min_length)
            if args.export:
                rng = np.random.default_rng(0)
                keep = {"test": np.sort(rng.permutation(split["test"])[:args.max_test]),
                        "holdout": np.sort(rng.permutation(split["holdout"])[:args.max_holdout])}
                export_validation_set(ds, keep, set_path, ds.fingerprint())
                print(f"exported {set_path} ({set_path.stat().st_size / 1e6:.2f} MB)")
            if args.fit_ecm:
                t0 = time.perf_counter()
                params = fit_ecm(ds.subset(split["train"]), Featurizer.from_dataset(ds))
                params.info.update(data=str(args.data or f"data/{chem}"), data_fingerprint=ds.fingerprint(),
                                   fit_wall_s=round(time.perf_counter() - t0, 1))
                ecm_path.parent.mkdir(parents=True, exist_ok=True)
                ecm_path.write_text(json.dumps(params.to_dict(), indent=1))
                print(f"fitted {ecm_path} in {time.perf_counter() - t0:.0f} s")

        # -- models on the validation set
        vs = ValidationSet(set_path, chemistry=chem)
        dt = float(vs.meta["dt"])
        preds, results, speed, capacity = {}, {}, {}, None
        for arch in args.arch:
            if not checkpoint_path(chem, arch).exists():
                print(f"{chem}/{arch}: no shipped checkpoint, skipped")
                continue
            s = load_surrogate(chem, arch, dt=dt)
            capacity = s.capacity_ah
            t0 = time.perf_counter()
            preds[arch] = s.simulate(vs.current, vs.soc0, vs.ambient, dt=dt)
            results[arch] = breakdown(preds[arch], vs)
            speed[arch] = {"batch_1": step_time(s, 1, args.speed_steps), "batch_1024": step_time(s, 1024, args.speed_steps),
                           "sequence_forward_s": time.perf_counter() - t0}
            print(f"{chem}/{arch}: V MAE {results[arch]['test (all families)']['voltage_mae_mV']:.2f} mV")
        if ecm_path.exists():
            params = ECMParameters.from_dict(json.loads(ecm_path.read_text()))
            t0 = time.perf_counter()
            preds["ECM (Thevenin)"] = simulate_ecm_numpy(params, vs.current, vs.soc0, vs.ambient, dt=dt)
            results["ECM (Thevenin)"] = breakdown(preds["ECM (Thevenin)"], vs)
            rows = np.flatnonzero(vs.splits == "test")[: args.ecm_pybamm]
            t1 = time.perf_counter()
            gap = []
            for r in rows:
                n = int(vs.lengths[r])
                ref = simulate_ecm_pybamm(params, vs.current[r, :n], vs.soc0[r], vs.ambient[r], dt=dt)
                gap.append(np.max(np.abs(ref["voltage"] - preds["ECM (Thevenin)"]["voltage"][r, :n])))
            steps = int(vs.lengths[rows].sum()) or 1
            speed["ECM (Thevenin, PyBaMM)"] = {"batch_1": (time.perf_counter() - t1) / steps}
            if gap:
                print(f"{chem}/ECM: numpy vs PyBaMM Thevenin, max |dV| over {len(rows)} sequences: {max(gap) * 1e3:.2f} mV")
            results["ECM (Thevenin)"]["_pybamm_agreement_max_dV_mV"] = {"value": float(max(gap) * 1e3) if gap else None}
        speed["DFN (PyBaMM)"] = {"batch_1": dfn_step_time(chem, dt, steps=args.speed_steps)}

        # -- report
        table_results = {m: {k: v for k, v in r.items() if not k.startswith("_")} for m, r in results.items()}
        text = (f"# {chem}: surrogates vs the PyBaMM DFN ({vs.meta['parameter_set']}, PyBaMM {vs.meta['pybamm_version']}, "
                f"dt = {dt} s)\n\nValidation set `{set_path.name}`: {int((vs.splits == 'test').sum())} held-out test "
                f"sequences of every family + {int((vs.splits == 'holdout').sum())} of a family never trained on; "
                "open loop over whole sequences.\n\n" + markdown_table(table_results, speed) + "\n")
        (out_dir / f"{chem}.md").write_text(text)
        (out_dir / f"{chem}.json").write_text(json.dumps({"errors": results, "speed_s_per_cell_step": speed}, indent=2))
        test_rows = np.flatnonzero(vs.splits == "test")
        pick = [int(test_rows[vs.families[test_rows] == f][0]) for f in sorted(set(vs.families[test_rows]))][:4]
        pick += [int(np.flatnonzero(vs.splits == "holdout")[0])] if (vs.splits == "holdout").any() else []
        if capacity is not None:
            plot_sequences(preds, vs, pick, out_dir / f"{chem}.png", dt, capacity)
        print(text)
        report[chem] = {"errors": results, "speed": speed}
    return report


if __name__ == "__main__":
    main()
