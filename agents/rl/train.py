"""Train a stable-baselines3 agent to fast-charge a cell on a neural surrogate, then judge it on the DFN.

What ``experiments/train_agent.py`` runs. Top to bottom (:func:`train`): the run's
hyperparameters (``agents/rl/hyperparams/<algo>.yml``, keyed by env id, in rl-baselines3-zoo's
keys; the training env is its ``env_kwargs``) -> the resolved config, written to the run folder
-> N cells in one ``SurrogateVecEnv`` for training, a separate batch for evaluation -> the agent
-> learn with a progress bar, TensorBoard logs (CleanRL tags, :mod:`agents.rl.callbacks`), an
``EvalCallback`` that keeps the best policy and the file's callbacks (the diagnostic warm-up)
-> save -> replay on PyBaMM's DFN next to CC-CV and multi-step CC baselines ->
``evaluation.md`` / ``.png`` / ``.json`` in the run folder.

Run folder: ``config.yml`` (``config``: the :class:`AgentConfig`; ``hyperparams``: the resolved
hyperparameter entry, itself a valid rl_zoo3 entry), ``policy.zip`` (the best policy),
``best_model.zip``, ``last_policy.zip``, ``eval/``, ``tb/``, ``evaluation.*``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import gymnasium as gym
import torch
import yaml
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import VecEnvWrapper, VecMonitor

import envs
from agents.charge import Start
from agents.evaluation.grid import PROFILE_START, grid
from agents.rl.algorithms import algorithm, load_hyperparams, make_callbacks, model_kwargs
from agents.rl.callbacks import ChargeStatsCallback, ProfileFigureCallback
from agents.rl.evaluate import evaluate_run
from envs.vector import SurrogateVecEnv
from surrogates.diagnostics import checkpoint_path
from surrogates.physics.chemistry import get_chemistry


@dataclass
class AgentConfig:
    """One agent-training run (defaults: the README's main job).

    A field's ``metadata["training"]`` says whether reusing a trained run (:func:`is_trained`) compares it:
    absent (True), its value changes the training; ``False``, it changes nothing in training (runtime, or what the
    replay measures); ``"via hyperparams"``, it changes the training only through the resolved hyperparameters
    (their ``env_kwargs``), which are compared in its place. :func:`not_training_fields` reads it.
    """

    algo: str = "ppo"
    """ppo, sac or td3 (hyperparameters in agents/rl/hyperparams/<algo>.yml)."""
    env_id: str = envs.FAST_CHARGE_ID
    """Environment id: the key into the hyperparameter file; its registered kwargs are the training env's base."""
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
    """Overrides of the hyperparameter file's entry, e.g. {learning_rate: 1e-4} (as rl_zoo3's --hyperparams)."""
    train_env: dict = field(default_factory=dict, metadata={"training": "via hyperparams"})
    """Training env only: keyword arguments over the file's env_kwargs (tightened limits, reward weights,
    diagnostics), e.g. {diagnostics: []}. The evaluation env is the training env."""
    env: dict = field(default_factory=dict)
    """Keyword arguments of every env (training, evaluation, DFN replay), e.g. {c_max: 4.0}; over the file's
    env_kwargs (a limit given here replaces the training env's tightened one)."""
    eval_freq: int = 200000
    """Evaluate (on the surrogate) every this many environment steps."""
    eval_episodes: int = 0
    """Episodes per evaluation, one from each start condition of the reference grid (cycled); 0: one per grid point.
    Fixed starts make the evaluations comparable, so the kept policy is the best on the grid, not the luckiest draw."""
    references: str = field(default="", metadata={"training": False})
    """Reference table the replay is judged against (default agents/references/<chemistry>.json; its grid
    is where the policy is replayed)."""
    backend: str = field(default="pybamm", metadata={"training": False})
    """Backend of the final replay (pybamm: the DFN; surrogate: quick look)."""
    degradation: bool = field(default=True, metadata={"training": False})
    """After the DFN replay, the ground-truth degradation (loss per cycle, plating exposure, life) beside the baselines'."""
    life_cycles: int = field(default=30, metadata={"training": False})
    """Cycles of each life in that measurement (0: as many as the committed baselines'). 30 cost about a minute a life
    and give the 100th cycle's loss to 0.05 % through the SEI law (agents.ageing.life.fade_and_end_of_life)."""
    device: str = "cpu"
    """Torch device of the agent and the surrogate."""
    threads: int = field(default=0, metadata={"training": False})
    """torch CPU threads (0: torch's default)."""
    progress: bool = field(default=True, metadata={"training": False})
    """Show a progress bar."""

    def run_dir(self) -> Path:
        name = Path(self.surrogate).stem if self.surrogate.endswith(".pt") else self.surrogate
        return Path(self.out or f"runs/agents/{self.algo}-{self.chemistry}-{name}-s{self.seed}")


class FixedStarts(VecEnvWrapper):
    """Every ``reset`` starts cell i at ``starts[i]`` (a :class:`agents.charge.Start`): evaluations on fixed start conditions."""

    def __init__(self, venv, starts: list[Start]):
        if len(starts) != venv.num_envs:
            raise ValueError(f"{len(starts)} starts for {venv.num_envs} cells")
        super().__init__(venv)
        self.start_options = [{"soc_start": s.soc, "ambient_temperature": s.ambient_temperature} for s in starts]

    def reset(self):
        self.venv.set_options(self.start_options)
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


# --------------------------------------------------------------------------- the run's settings
def training_env_kwargs(cfg: AgentConfig, file_kwargs: dict) -> dict:
    """Keyword arguments of the training env (``gymnasium.make(cfg.env_id, **kwargs)``): the id's registered
    kwargs, the hyperparameter file's ``env_kwargs``, ``cfg.env``, ``cfg.train_env``, chemistry and surrogate.

    The file's ``v_max`` is for its ``chemistry`` (default nmc); for another chemistry it keeps the same
    distance below that chemistry's cut-off (the env takes limits, not margins). Diagnostics the
    chemistry does not ship are dropped, loudly, so the default run works for every chemistry.
    """
    file_kwargs = dict(file_kwargs)
    written_for = file_kwargs.pop("chemistry", "nmc")
    if file_kwargs.get("v_max") is not None and written_for != cfg.chemistry:
        margin = get_chemistry(written_for).v_max - file_kwargs["v_max"]
        file_kwargs["v_max"] = round(get_chemistry(cfg.chemistry).v_max - margin, 9)
    kwargs = {**gym.spec(cfg.env_id).kwargs, **file_kwargs, **cfg.env, **copy.deepcopy(cfg.train_env),
              "chemistry": cfg.chemistry, "surrogate": cfg.surrogate}
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}  # YAML-friendly
    if kwargs.get("diagnostics"):
        missing = [k for k in kwargs["diagnostics"] if not checkpoint_path(cfg.chemistry, k).exists()]
        if missing:
            print(f"WARNING: no shipped {cfg.chemistry} diagnostic(s) {', '.join(missing)}: training without their "
                  f"reward terms. Train them with `python experiments/train_diagnostics.py --kind KIND "
                  f"--chemistry {cfg.chemistry} --ship`.")
            kwargs["diagnostics"] = [k for k in kwargs["diagnostics"] if k not in missing]
    return kwargs


def resolve_hyperparams(cfg: AgentConfig) -> dict:
    """The run's hyperparameter entry: the file's for ``cfg.env_id`` with ``cfg``'s overrides, ``n_timesteps``
    and ``n_envs`` settled and ``env_kwargs`` complete (:func:`training_env_kwargs`). A valid rl_zoo3 entry."""
    hp = load_hyperparams(cfg.algo, cfg.env_id)
    hp.update(copy.deepcopy(cfg.hyperparams))
    hp["n_timesteps"] = int(cfg.total_timesteps or hp["n_timesteps"])
    hp["n_envs"] = int(cfg.n_envs or hp.get("n_envs", 16))
    hp.setdefault("policy", "MlpPolicy")
    hp["env_kwargs"] = training_env_kwargs(cfg, hp.get("env_kwargs") or {})
    return hp


def resolve(cfg: AgentConfig) -> dict:
    """What a run writes to ``<run>/config.yml``: ``config`` (``cfg``) and ``hyperparams`` (:func:`resolve_hyperparams`)."""
    return {"config": asdict(cfg), "hyperparams": resolve_hyperparams(cfg)}


def not_training_fields() -> tuple[str, ...]:
    """The :class:`AgentConfig` fields :func:`is_trained` does not compare: those whose ``metadata["training"]`` is
    not True (see the class docstring). A field declared without it is compared."""
    return tuple(f.name for f in fields(AgentConfig) if f.metadata.get("training", True) is not True)


_NOT_TRAINING = not_training_fields()


def is_trained(cfg: AgentConfig) -> bool:
    """The run folder holds a policy trained with exactly these settings (so it can be reused).

    Settings that change nothing in training are not compared (:func:`not_training_fields`, from the fields'
    metadata: progress bar, threads, what the replay measures), ``train_env`` is compared through the
    resolved hyperparameters' ``env_kwargs`` it ends up in, and the weights of diagnostics the training env
    does not use are not compared either.
    """
    run_dir = cfg.run_dir()
    if not (run_dir / "policy.zip").exists() or not (run_dir / "config.yml").exists():
        return False

    def effective(resolved: dict) -> dict:
        c = {k: v for k, v in resolved["config"].items() if k not in _NOT_TRAINING}
        hp = copy.deepcopy(resolved.get("hyperparams", {}))
        if not hp.get("env_kwargs", {}).get("diagnostics"):
            hp.get("env_kwargs", {}).pop("diagnostic_weights", None)
        return json.loads(json.dumps({"config": c, "hyperparams": hp}))

    return effective(yaml.safe_load((run_dir / "config.yml").read_text())) == effective(resolve(cfg))


# --------------------------------------------------------------------------- train
def train(cfg: AgentConfig, replay: bool = True) -> dict:
    """Train per ``cfg`` and (``replay``) judge the policy on ``cfg.backend``; the report (also in the run folder)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    resolved = resolve(cfg)
    hp = resolved["hyperparams"]
    total, n_envs, env_kwargs = hp["n_timesteps"], hp["n_envs"], hp["env_kwargs"]
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    config_text = yaml.safe_dump(resolved, sort_keys=False)
    (run_dir / "config.yml").write_text(config_text)
    print(f"{cfg.algo.upper()} on {cfg.env_id} ({cfg.chemistry}, {cfg.surrogate} surrogate), {total} steps, "
          f"{n_envs} cells -> {run_dir}")

    # -- envs: N cells in one batch for training (per-cell values as arrays: no N info dicts a step,
    # ChargeStatsCallback reads the arrays), a separate batch for evaluation
    env = VecMonitor(SurrogateVecEnv(n_envs, device=cfg.device, seed=cfg.seed, info_mode="arrays", **env_kwargs))
    starts = grid()
    starts = [starts[i % len(starts)] for i in range(cfg.eval_episodes or len(starts))]
    eval_env = VecMonitor(FixedStarts(SurrogateVecEnv(len(starts), device=cfg.device, seed=cfg.seed + 10_000,
                                                      **env_kwargs), starts))

    # -- agent
    model = algorithm(cfg.algo)(hp["policy"], env, seed=cfg.seed, device=cfg.device, verbose=0,
                                tensorboard_log=str(run_dir / "tb"), **model_kwargs(hp, env.action_space.shape[0]))

    # -- learn
    profile = ProfileFigureCallback(PROFILE_START, {**env_kwargs, "device": cfg.device})
    eval_cb = EvalCallback(eval_env, n_eval_episodes=len(starts), eval_freq=max(cfg.eval_freq // n_envs, 1),
                           best_model_save_path=str(run_dir), log_path=str(run_dir / "eval"), deterministic=True,
                           callback_after_eval=profile, verbose=0)
    callbacks = [ChargeStatsCallback(config_text=config_text), eval_cb, *make_callbacks(hp)]
    t0 = time.perf_counter()
    model.learn(total_timesteps=total, callback=callbacks, progress_bar=cfg.progress,
                tb_log_name=f"{cfg.algo}-{cfg.chemistry}")
    train_minutes = round((time.perf_counter() - t0) / 60, 2)
    tb_run = Path(model.logger.get_dir() or run_dir / "tb")  # the yardstick's summary joins the training's run

    # -- save: the best policy (EvalCallback's) as policy.zip, the last one beside it
    model.save(run_dir / "last_policy.zip")
    best = run_dir / "best_model.zip"
    (run_dir / "policy.zip").write_bytes((best if best.exists() else run_dir / "last_policy.zip").read_bytes())
    env.close()
    eval_env.close()
    print(f"trained in {train_minutes:.1f} min; policy saved to {run_dir / 'policy.zip'}")
    if not replay:
        return {"run_dir": str(run_dir), "train_minutes": train_minutes}

    # -- replay on the DFN over the reference grid; the summary to TensorBoard
    report = evaluate_run(run_dir, backend=cfg.backend, references=cfg.references or None,
                          surrogate_gap=cfg.backend == "pybamm", extra={"train_minutes": train_minutes},
                          progress=cfg.progress, degradation=cfg.degradation, life_cycles=cfg.life_cycles)
    log_summary(tb_run, report["summary"], cfg.backend, step=total)
    return report


def log_summary(logdir: Path, summary: dict, backend: str, step: int) -> None:
    """The yardstick's summary as TensorBoard scalars ``yardstick_<backend>/...`` at the last training step."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir)) as writer:
        for key, value in summary.items():
            writer.add_scalar(f"yardstick_{backend}/{key}", float(value), step)
