"""Train a stable-baselines3 agent to fast-charge a cell on a neural surrogate, then judge it on the DFN.

    python experiments/train_agent.py                                   # PPO, nmc, shipped surrogate
    python experiments/train_agent.py --algo sac --total-timesteps 200000
    python experiments/train_agent.py --config my_run.yml --out runs/agents/my_run
    tensorboard --logdir runs

The training env charges for what the learned diagnostics see in the BMS signals (plating
detector and degradation estimator, ``AgentConfig.train_env``); the replay judges the policy by
physics alone. ``experiments/ablate_diagnostics.py`` trains with and without those terms.

Top to bottom: config -> vectorised surrogate env -> agent (hyperparameters from
agents/hyperparams/<algo>.yml, keyed by env id) -> learn with a progress bar, TensorBoard logs
and an EvalCallback that keeps the best policy -> save -> replay on PyBaMM's DFN next to CC-CV
and multi-step CC baselines -> evaluation.md / evaluation.png in the run folder.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import yaml  # noqa: E402


@dataclass
class AgentConfig:
    """One agent-training run (defaults: the README's main job, under 20 min on a 2-core CPU)."""

    algo: str = "ppo"
    """ppo, sac or td3 (hyperparameters in agents/hyperparams/<algo>.yml)."""
    env_id: str = "cellgym/FastCharge-v0"
    """Environment id (the key into the hyperparameter file)."""
    chemistry: str = "nmc"
    """Cell chemistry."""
    surrogate: str = "jepa"
    """Shipped surrogate architecture (transformer, mamba, jepa) or a checkpoint path."""
    total_timesteps: int = 0
    """Environment steps to train for (0: n_timesteps from the hyperparameter file)."""
    n_envs: int = 0
    """Cells simulated in parallel in the SurrogateVecEnv (0: from the hyperparameter file)."""
    seed: int = 0
    """Seed of the agent, the env and the evaluation."""
    out: str = ""
    """Run folder (default runs/agents/<algo>-<chemistry>-<surrogate>-s<seed>)."""
    hyperparams: dict = field(default_factory=dict)
    """Overrides of the algorithm's hyperparameters, e.g. {learning_rate: 1e-4}."""
    safety_margins: dict = field(default_factory=lambda: {"voltage": 0.005, "temperature": 1.0, "plating": 0.004})
    """Training env only: its limits are the env's tightened by these (V, K, V), so that the
    surrogate's few-mV / few-0.1-K error does not turn into violations on the DFN. The final
    replay judges the policy against the env's own limits."""
    train_env: dict = field(default_factory=lambda: {"w_time": 0.1, "w_voltage": 100.0, "w_temperature": 5.0,
                                                     "w_plating": 100.0, "diagnostics": ["plating", "degradation"],
                                                     "diagnostic_weights": {"plating": 0.2, "degradation": 0.1}})
    """Training env only: reward weights (the defaults make a faster charge worth more than
    the env's defaults do, and a violation of the tightened limits cost more) and the learned
    diagnostics the agent pays for: the plating detector's probability (0.2 per interval at
    probability 1) and the degradation estimator's capacity loss (0.1 per mA.h), both from what a
    BMS measures (``experiments/ablate_diagnostics.py`` measures what they buy on the DFN)."""
    diagnostic_warmup: float = 0.3
    """Share of the training over which the training env's diagnostic weights ramp from 0 to their
    values (agents.callbacks.DiagnosticWarmupCallback); 0: full weights from the start."""
    env: dict = field(default_factory=dict)
    """Keyword arguments of every env (training, evaluation, DFN replay), e.g. {c_max: 4.0}."""
    eval_freq: int = 20000
    """Evaluate (on the surrogate) every this many environment steps."""
    eval_episodes: int = 16
    """Episodes per evaluation."""
    starts: list = field(default_factory=lambda: [[0.1, 298.15], [0.1, 288.15], [0.1, 308.15]])
    """Start conditions of the final replay: [[soc, ambient K], ...] (the first is plotted)."""
    cccv_rates: list = field(default_factory=lambda: [1.0, 1.5, 2.0])
    """CC-CV baselines replayed next to the agent [C]."""
    multistep: list = field(default_factory=lambda: [[0.3, 1.5], [0.6, 1.2], [0.8, 1.0]])
    """Multi-step CC baseline: [[soc_upto, C-rate], ...] then CV."""
    search_safe_cccv: bool = True
    """Bisect the fastest CC-CV that violates nothing on the replay backend."""
    backend: str = "pybamm"
    """Backend of the final replay (pybamm: the DFN; surrogate: quick look)."""
    device: str = "cpu"
    """Torch device of the agent and the surrogate."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    progress: bool = True
    """Show a progress bar."""

    def run_dir(self) -> Path:
        name = Path(self.surrogate).stem if self.surrogate.endswith(".pt") else self.surrogate
        return Path(self.out or f"runs/agents/{self.algo}-{self.chemistry}-{name}-s{self.seed}")


def load_hyperparams(algo: str, env_id: str) -> dict:
    """The YAML entry for ``env_id`` (or ``default``) in agents/hyperparams/<algo>.yml."""
    from agents import HYPERPARAMS_DIR

    path = HYPERPARAMS_DIR / f"{algo}.yml"
    if not path.exists():
        valid = ", ".join(sorted(p.stem for p in HYPERPARAMS_DIR.glob("*.yml")))
        raise ValueError(f"unknown algorithm {algo!r}: no {path}; valid: {valid}")
    table = yaml.safe_load(path.read_text())
    return dict(table.get(env_id, table["default"]))


def training_env_kwargs(cfg: AgentConfig) -> dict:
    """The training env's keyword arguments: shared settings, tightened limits, training weights."""
    from envs.config import ChargingConfig

    unknown = set(cfg.safety_margins) - {"voltage", "temperature", "plating"}
    if unknown:
        raise ValueError(f"unknown safety_margins {sorted(unknown)}; valid: voltage [V], temperature [K], plating [V]")
    base = ChargingConfig(chemistry=cfg.chemistry, **cfg.env)
    m = cfg.safety_margins
    train_env = dict(cfg.train_env)
    if train_env.get("diagnostics"):
        from surrogates.diagnostics import checkpoint_path

        missing = [k for k in train_env["diagnostics"] if not checkpoint_path(cfg.chemistry, k).exists()]
        if missing:  # the default run must work for every chemistry; say loudly what it trains without
            print(f"WARNING: no shipped {cfg.chemistry} diagnostic(s) {', '.join(missing)}: training without their "
                  f"reward terms. Train them with `python experiments/train_diagnostics.py --kind KIND "
                  f"--chemistry {cfg.chemistry} --ship`.")
            train_env["diagnostics"] = [k for k in train_env["diagnostics"] if k not in missing]
    return {**cfg.env, "v_max": base.v_max - m.get("voltage", 0.0), "t_max": base.t_max - m.get("temperature", 0.0),
            "plating_limit": base.plating_limit + m.get("plating", 0.0), **train_env}


def main(argv=None) -> dict:
    from surrogates.common.cli import parse_config

    cfg, _ = parse_config(AgentConfig, argv, description=__doc__)
    return run(cfg)


def run(cfg: AgentConfig, replay: bool = True) -> dict:
    """Train per ``cfg`` and (``replay``) judge the policy on ``cfg.backend``; the report (also in the run folder)."""
    import torch
    from stable_baselines3 import PPO, SAC, TD3
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import VecMonitor

    from agents.callbacks import ChargeStatsCallback, DiagnosticWarmupCallback, ProfileFigureCallback
    from agents.evaluation import Start, evaluate_policy_on_backend
    from envs.config import ChargingConfig
    from envs.vector import SurrogateVecEnv

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    hp = load_hyperparams(cfg.algo, cfg.env_id)
    hp.update(cfg.hyperparams)
    total = cfg.total_timesteps or int(hp.pop("n_timesteps"))
    hp.pop("n_timesteps", None)
    n_envs = cfg.n_envs or int(hp.pop("n_envs", 16))
    hp.pop("n_envs", None)
    policy = hp.pop("policy", "MlpPolicy")
    noise_std = hp.get("action_noise_std")  # stays in the resolved config; becomes an SB3 action_noise below
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    train_kwargs = training_env_kwargs(cfg)
    resolved = {"config": asdict(cfg), "algo_hyperparams": hp, "total_timesteps": total, "n_envs": n_envs, "policy": policy,
                "train_env_kwargs": train_kwargs}
    (run_dir / "config.yml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    print(f"{cfg.algo.upper()} on {cfg.env_id} ({cfg.chemistry}, {cfg.surrogate} surrogate), {total} steps, "
          f"{n_envs} cells -> {run_dir}")

    # -- envs: N cells in one batch for training, a separate batch for evaluation
    env = VecMonitor(SurrogateVecEnv(n_envs, chemistry=cfg.chemistry, surrogate=cfg.surrogate, device=cfg.device,
                                     seed=cfg.seed, **train_kwargs))
    eval_env = VecMonitor(SurrogateVecEnv(min(cfg.eval_episodes, 16), chemistry=cfg.chemistry, surrogate=cfg.surrogate,
                                          device=cfg.device, seed=cfg.seed + 10_000, **train_kwargs))

    # -- agent
    algos = {"ppo": PPO, "sac": SAC, "td3": TD3}
    if cfg.algo not in algos:
        raise ValueError(f"unknown algorithm {cfg.algo!r}; valid: {', '.join(algos)}")
    algo_kwargs = {k: v for k, v in hp.items() if k != "action_noise_std"}
    if noise_std:
        algo_kwargs["action_noise"] = NormalActionNoise(np.zeros(1), noise_std * np.ones(1))
    model = algos[cfg.algo](policy, env, seed=cfg.seed, device=cfg.device, verbose=0,
                            tensorboard_log=str(run_dir / "tb"), **algo_kwargs)

    # -- learn
    start = Start(*cfg.starts[0])
    profile = ProfileFigureCallback(cfg.chemistry, cfg.surrogate, start, device=cfg.device, env_kwargs=train_kwargs)
    eval_cb = EvalCallback(eval_env, n_eval_episodes=cfg.eval_episodes, eval_freq=max(cfg.eval_freq // n_envs, 1),
                           best_model_save_path=str(run_dir), log_path=str(run_dir / "eval"), deterministic=True,
                           callback_after_eval=profile, verbose=0)
    stats = ChargeStatsCallback(config_text=yaml.safe_dump(resolved, sort_keys=False))
    callbacks = [stats, eval_cb]
    if train_kwargs.get("diagnostics") and cfg.diagnostic_warmup > 0:
        weights = ChargingConfig(chemistry=cfg.chemistry, **train_kwargs).diagnostic_weights
        callbacks.append(DiagnosticWarmupCallback(weights, int(cfg.diagnostic_warmup * total)))
    t0 = time.perf_counter()
    model.learn(total_timesteps=total, callback=callbacks, progress_bar=cfg.progress,
                tb_log_name=f"{cfg.algo}-{cfg.chemistry}")
    train_minutes = (time.perf_counter() - t0) / 60

    # -- save: the best policy (EvalCallback's) as policy.zip, the last one beside it
    model.save(run_dir / "last_policy.zip")
    best = run_dir / "best_model.zip"
    (run_dir / "policy.zip").write_bytes(best.read_bytes() if best.exists() else (run_dir / "last_policy.zip").read_bytes())
    env.close()
    eval_env.close()
    print(f"trained in {train_minutes:.1f} min; policy saved to {run_dir / 'policy.zip'}")
    if not replay:
        return {"run_dir": str(run_dir), "train_minutes": round(train_minutes, 2)}

    # -- replay on the DFN next to the baselines
    report = evaluate_policy_on_backend(
        run_dir, backend=cfg.backend, starts=[Start(*s) for s in cfg.starts], cccv_rates=cfg.cccv_rates,
        multistep=cfg.multistep, search_safe_cccv=cfg.search_safe_cccv, surrogate_gap=cfg.backend == "pybamm",
    )
    report["train_minutes"] = round(train_minutes, 2)
    (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2, default=float))
    return report


if __name__ == "__main__":
    main()
