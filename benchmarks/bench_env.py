"""Environment steps per second: PyBaMM backend vs surrogate env vs the batched envs, and backend agreement.

    python benchmarks/bench_env.py [--surrogate mamba|PATH] [--steps 200] [--pybamm-steps 100]
                                   [--sizes 1,64,256,1024] [--devices cpu,cuda] [--threads 1]
                                   [--diagnostics plating,ood] [--repeats 1]

Every env row steps ``cellgym/FastCharge-v2`` with its defaults (SOC 5-20 % -> 80 %, up to 5C)
under uniformly random actions, resets included (as in training), and reports steps per second
(cell-steps for the batched envs) and the ratio to the PyBaMM backend. The batched rows are
the stable-baselines3 ``SurrogateVecEnv`` (infos as N dicts, and ``info_mode="arrays"``) and
Gymnasium's ``FastChargeVectorEnv`` (``gym.make_vec(..., vectorization_mode="vector_entry_point")``),
one core. ``Surrogate.step`` rows time the bare network step at the same batch (the ceiling for
the batched envs), and the lines under the table say how much each env adds on top of it; the
profile splits one VecEnv step (infos as dicts) at the largest N into its parts. The agreement lines run a CC-CV and a multi-step
CC charge closed-loop on both backends (time to target) and replay the DFN's action sequence
on the surrogate (voltage error). With an untrained checkpoint those numbers mean nothing.

``--diagnostics plating,ood`` adds, next to every surrogate row, the same env with those
learned-diagnostic reward terms (:mod:`envs.diagnostic_terms`) and the share of the speed
they keep; the profile is then of the VecEnv with diagnostics. ``--repeats`` keeps the best of
several timings (the machine may be shared); at the largest N the VecEnvs and the bare step are
timed in turn, so load on the machine shifts them alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402,F401
import envs.batch as batch  # noqa: E402
from agents.control.rules import CCCVPolicy, MultiStepCCPolicy  # noqa: E402
from envs.backends import resolve_surrogate  # noqa: E402
from envs.gym_vector import FastChargeVectorEnv  # noqa: E402
from envs.vector import SurrogateVecEnv  # noqa: E402

ID = "cellgym/FastCharge-v2"


# ---------------------------------------------------------------------- timing
def time_env(env, steps: int, seed: int = 0) -> float:
    """Steps per second of a single gym env under random actions, resets included."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    env.step(np.zeros(1, dtype=np.float32))  # warm-up (solver set-up, first torch call)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        *_, term, trunc, _ = env.step(rng.uniform(-1, 1, 1).astype(np.float32))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def time_vecenv(venv, steps: int, seed: int = 0) -> float:
    """Cell-steps per second of a batched env under random actions (auto-resets included).

    ``venv``: an SB3 ``VecEnv`` or a Gymnasium ``VectorEnv``.
    """
    rng = np.random.default_rng(seed)
    if isinstance(venv, gym.vector.VectorEnv):
        venv.reset(seed=seed)
    else:
        venv.reset()
    actions = rng.uniform(-1, 1, (steps + 1, venv.num_envs, 1)).astype(np.float32)
    venv.step(actions[-1])  # warm-up
    t0 = time.perf_counter()
    for k in range(steps):
        venv.step(actions[k])
    return steps * venv.num_envs / (time.perf_counter() - t0)


def interleaved_best(timers, repeats: int) -> list[float]:
    """The best (highest) of ``repeats`` results of each timer, the timers run in turn each round."""
    best = [0.0] * len(timers)
    for _ in range(max(1, repeats)):
        for j, timer in enumerate(timers):
            best[j] = max(best[j], timer())
    return best


def time_surrogate_step(surrogate, n: int, steps: int) -> float:
    """Cell-steps per second of the bare Surrogate.step at batch n (constant 2C)."""
    state = surrogate.initial_state(np.full(n, 0.1), np.full(n, 298.15))
    current = np.full(n, -2.0 * surrogate.capacity_ah)
    _, state = surrogate.step(state, current)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, state = surrogate.step(state, current)
    return steps * n / (time.perf_counter() - t0)


def profile_vecenv(venv, steps: int) -> dict[str, float]:
    """Seconds per VecEnv step spent in each part (nested parts are subtracted from their parent).

    Continues ``venv`` where it is (call it after :func:`time_vecenv`), so cells are spread over
    their episodes and some finish and reset at most steps, as in training.
    """
    acc: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[name] += time.perf_counter() - t0
        return wrapper

    patched = {name: getattr(batch, name) for name in ("check_actions", "evaluate_step", "observe", "info_columns")}
    core = venv.core
    sur = core.surrogate
    diag = core.diagnostic_terms
    models = diag.models if diag is not None else {}
    try:
        for name, fn in patched.items():
            setattr(batch, name, timed(name, fn))
        if diag is not None:
            diag.step = timed("diagnostics.step", type(diag).step.__get__(diag))
            for kind, d in models.items():
                method = "stream_step" if d.streams else "score_windows"
                setattr(d, method, timed(f"score {kind}", getattr(type(d), method).__get__(d)))
        sur.step = timed("Surrogate.step", type(sur).step.__get__(sur))
        sur.model.step = timed("model.step", type(sur.model).step.__get__(sur.model))
        sur.reset_rows = timed("reset_rows", type(sur).reset_rows.__get__(sur))
        core.restart = timed("restart", type(core).restart.__get__(core))
        core.step = timed("core.step", type(core).step.__get__(core))
        rng = np.random.default_rng(1)
        acc.clear()
        resets = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            resets += int(venv.step(rng.uniform(-1, 1, (venv.num_envs, 1)).astype(np.float32))[2].sum())
        total = time.perf_counter() - t0
    finally:
        for name, fn in patched.items():
            setattr(batch, name, fn)
        del sur.step, sur.reset_rows, sur.model.step, core.restart, core.step
        if diag is not None:
            del diag.step
            for d in models.values():
                delattr(d, "stream_step" if d.streams else "score_windows")
    # observe/info_columns also run inside restart; attribute the nested time once.
    parts = {
        "model.step (torch forward)": acc["model.step"],
        "Surrogate.step rest (features, decode)": acc["Surrogate.step"] - acc["model.step"],
        "evaluate_step + observe + check_actions": acc["evaluate_step"] + acc["observe"] + acc["check_actions"],
        "info_columns (info arrays)": acc["info_columns"],
        "Surrogate.reset_rows (done cells)": acc["reset_rows"],
        "restart rest (start states, rest channels)": acc["restart"] - acc["reset_rows"],
    }
    for kind in models:
        method = "stream_step" if models[kind].streams else "score_windows"
        parts[f"diagnostic {kind} ({method})"] = acc[f"score {kind}"]
    if diag is not None:
        parts["diagnostics rest (history, terms)"] = acc["diagnostics.step"] - sum(acc[f"score {k}"] for k in models)
    parts["core.step glue"] = acc["core.step"] - sum(parts.values())
    parts["adapter (SB3 infos)"] = total - acc["core.step"]
    return {k: v / steps for k, v in parts.items()} | {"total": total / steps, "resets": resets / steps}


# ---------------------------------------------------------------------- agreement
def _outcome(info: dict) -> str:
    for flag, text in [("reached_target", "target"), ("hard_voltage", "hard V"), ("hard_temperature", "hard T"),
                       ("hard_plating", "hard eta"), ("solver_failure", "solver failure")]:
        if info[flag]:
            return text
    return "time limit"


def agreement(surrogate, chemistry: str) -> list[tuple]:
    """(protocol, time DFN [s], time surrogate [s], voltage MAE [mV], max |dV| [mV], end DFN, end surrogate)."""
    kw = dict(chemistry=chemistry, soc_start=0.2, soc_target=0.8, ambient_temperature=298.15, c_max=3.0)
    env_p = gym.make(ID, backend="pybamm", **kw)
    env_s = gym.make(ID, backend="surrogate", surrogate=surrogate, **kw)
    cfg = env_p.unwrapped.config
    rows = []
    for name, policy in [("CC-CV 1.5C", CCCVPolicy(1.5, config=cfg)),
                         ("multi-step 2.5/1.5/1C", MultiStepCCPolicy([(0.4, 2.5), (0.6, 1.5), (1.0, 1.0)], config=cfg))]:
        runs = {}
        for b, env in (("pybamm", env_p), ("surrogate", env_s)):
            obs, _ = env.reset(seed=0)
            acts, volts = [], []
            while True:
                a, _ = policy.predict(obs)
                obs, _, term, trunc, info = env.step(a)
                acts.append(a), volts.append(info["voltage"])
                if term or trunc:
                    break
            runs[b] = (np.array(acts), np.array(volts), info)
        acts, v_ref, info_p = runs["pybamm"]
        env_s.reset(seed=0)
        v_rep = np.array([env_s.step(a)[-1]["voltage"] for a in acts])
        dv = np.abs(v_rep - v_ref) * 1000
        info_s = runs["surrogate"][2]
        rows.append((name, info_p["elapsed"], info_s["elapsed"], float(dv.mean()), float(dv.max()),
                     _outcome(info_p), _outcome(info_s)))
    return rows


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--surrogate", default="jepa", help="architecture name (shipped checkpoint) or checkpoint path")
    parser.add_argument("--chemistry", default="nmc")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per surrogate measurement")
    parser.add_argument("--pybamm-steps", type=int, default=100, help="timed steps of the PyBaMM backend")
    parser.add_argument("--sizes", default="1,64,256,1024", help="VecEnv sizes N")
    parser.add_argument("--devices", default="cpu,cuda", help="devices to try (cuda skipped when unavailable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-agreement", action="store_true", help="skip the backend agreement lines")
    parser.add_argument("--no-pybamm", action="store_true", help="skip the PyBaMM backend row (and the agreement)")
    parser.add_argument("--diagnostics", default="",
                        help="comma-separated diagnostic kinds: also time every surrogate row with their reward terms")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timings per row")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    devices = [d for d in args.devices.split(",") if d == "cpu" or (d.startswith("cuda") and torch.cuda.is_available())]
    surrogate = resolve_surrogate(args.surrogate, args.chemistry, "cpu")
    note = surrogate.meta.get("note", "")
    print(f"{args.chemistry}/{surrogate.arch} surrogate {args.surrogate} ({note or 'trained'}); "
          f"torch {torch.__version__}, {args.threads} CPU thread(s); devices: {', '.join(devices)}")

    diagnostics = tuple(k.strip() for k in args.diagnostics.split(",") if k.strip())
    variants = [()] + ([diagnostics] if diagnostics else [])
    tag = f" + {','.join(diagnostics)}"
    best = lambda fn: interleaved_best([fn], args.repeats)[0]  # noqa: E731
    if diagnostics:
        print(f"diagnostics: {', '.join(diagnostics)} (rows marked '{tag.strip()}')")

    rows: list[tuple[str, int, float]] = []
    if not args.no_pybamm:
        rows.append(("PyBaMM backend (DFN)", 1, time_env(gym.make(ID, chemistry=args.chemistry, backend="pybamm"),
                                                        args.pybamm_steps)))
    for diag in variants:
        env = gym.make(ID, chemistry=args.chemistry, surrogate=surrogate, diagnostics=diag)
        rows.append(("surrogate env (single)" + (tag if diag else ""), 1, best(lambda: time_env(env, args.steps))))
    profile = None
    bare_speed = {}  # device -> bare Surrogate.step cell-steps/s at the largest N
    for device in devices:
        sur = surrogate if device == "cpu" else resolve_surrogate(args.surrogate, args.chemistry, device)
        for n in sizes:
            for diag in variants:
                kw = dict(chemistry=args.chemistry, surrogate=sur, diagnostics=diag, device=device)
                envs_ = {f"SurrogateVecEnv [{device}]": SurrogateVecEnv(n, seed=0, **kw),
                         f"SurrogateVecEnv arrays [{device}]": SurrogateVecEnv(n, seed=0, info_mode="arrays", **kw),
                         f"FastChargeVectorEnv [{device}]": FastChargeVectorEnv(n, **kw)}
                timers = [lambda v=v: time_vecenv(v, args.steps) for v in envs_.values()]
                bare = n == max(sizes) and not diag
                if bare:  # timed in turn with the envs, so the machine's load shifts all of them alike
                    timers.append(lambda: time_surrogate_step(sur, n, args.steps))
                speeds = interleaved_best(timers, args.repeats)
                rows += [(name + (tag if diag else ""), n, sps) for name, sps in zip(envs_, speeds)]
                if bare:
                    rows.append((f"Surrogate.step only [{device}]", n, speeds[-1]))
                    bare_speed[device] = speeds[-1]
                if device == "cpu" and n == max(sizes) and diag == variants[-1]:
                    profile = (n, {mode: profile_vecenv(envs_[f"SurrogateVecEnv{mode} [{device}]"],
                                                        max(20, args.steps // 4)) for mode in ("", " arrays")})

    base = rows[0][2] if not args.no_pybamm else None
    width = max(34, *(len(r[0]) for r in rows))
    print(f"\n{'':{width}s} {'N':>5s} {'steps/s':>12s} {'ms/step':>9s} {'x PyBaMM':>10s}")
    for name, n, sps in rows:
        ratio = f"{sps / base:10,.0f}" if base else f"{'-':>10s}"
        print(f"{name:{width}s} {n:5d} {sps:12,.0f} {1000 * n / sps:9.2f} {ratio}")
    print("(steps/s counts cell-steps for N > 1; ms/step is per batched step)")
    print(f"\nTime per step at N={max(sizes)} over the bare Surrogate.step's (what the env adds)"
          + (" (with diagnostics: their forward passes included)" if diagnostics else "") + ":")
    for name, n, sps in rows:
        device = name[name.find("[") + 1:name.find("]")] if "[" in name else None
        if n == max(sizes) and device in bare_speed and not name.startswith("Surrogate.step"):
            print(f"  {name:{width}s} {bare_speed[device] / sps - 1:+6.0%}")
    if diagnostics:
        speed = {(name, n): sps for name, n, sps in rows}
        print(f"\nSpeed kept with diagnostics {', '.join(diagnostics)} (with / without):")
        for (name, n), sps in speed.items():
            if name.endswith(tag):
                print(f"  {name[:-len(tag)]:32s} N={n:5d} {sps / speed[(name[:-len(tag)], n)]:7.1%}")

    if profile is not None:
        n, profiles = profile
        for mode, parts in profiles.items():
            total, resets = parts.pop("total"), parts.pop("resets")
            print(f"\nProfile of one SurrogateVecEnv{mode} step at N={n} on CPU, mid-training "
                  f"({resets:.1f} cells reset per step): {1000 * total:.2f} ms")
            for name, sec in parts.items():
                print(f"  {name:42s} {1000 * sec:8.2f} ms {100 * sec / total:6.1f} %")
            # Both sides from the same steps, so robust to load on a shared machine (the table's rows are not).
            surrogate_step = parts["model.step (torch forward)"] + parts["Surrogate.step rest (features, decode)"]
            print(f"  {'everything but Surrogate.step':42s} {1000 * (total - surrogate_step):8.2f} ms "
                  f"{(total - surrogate_step) / surrogate_step:+6.0%} of Surrogate.step")

    if not (args.no_agreement or args.no_pybamm):
        print(f"\nAgreement, {args.chemistry} 20 -> 80 % SOC at 25 C (closed loop on each backend; "
              "voltage: the DFN's actions replayed on the surrogate)")
        print(f"{'protocol':22s} {'t DFN [s]':>10s} {'t surr [s]':>11s} {'dt [%]':>7s} {'V MAE [mV]':>11s} "
              f"{'V max [mV]':>11s}  end (DFN / surrogate)")
        for name, t_p, t_s, mae, vmax, end_p, end_s in agreement(surrogate, args.chemistry):
            print(f"{name:22s} {t_p:10.0f} {t_s:11.0f} {100 * (t_s - t_p) / t_p:7.1f} {mae:11.1f} {vmax:11.1f}  "
                  f"{end_p} / {end_s}")


if __name__ == "__main__":
    main()
