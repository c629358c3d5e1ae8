"""The stable-baselines3 algorithms an agent trains with, their hyperparameter files, and saved agents.

One YAML file per algorithm in ``agents/rl/hyperparams/<algo>.yml``, keyed by env id with a
``default`` entry, in rl-baselines3-zoo's own keys, so the zoo trains the same agent::

    python -m rl_zoo3.train --algo ppo --env cellgym/FastCharge-v2 --gym-packages envs \\
        --conf-file agents/rl/hyperparams/ppo.yml

Keys of an entry (:data:`RUN_KEYS` describe the run; every other key is a keyword argument of
the algorithm's class, e.g. ``n_steps``, ``learning_rate``):

    n_timesteps    environment steps to train for
    n_envs         cells simulated in parallel
    policy         SB3 policy name (``MlpPolicy``)
    normalize      false: the env's observation is normalised already (``VecNormalize`` is not used)
    env_kwargs     keyword arguments of ``gymnasium.make(env_id, ...)``: the training env
    noise_type     off-policy exploration noise on the [-1, 1] action: ``normal`` or ``ornstein-uhlenbeck``
    noise_std      its standard deviation
    callback       callbacks to add, by dotted class name, alone or ``{name: {kwarg: value}}``
    policy_kwargs  a mapping, or a string holding a Python literal (``"{'net_arch': [64, 64]}"``):
                   the string form is what every rl_zoo3 version reads (older ones ``eval`` it
                   unconditionally); here it is read with ``ast.literal_eval``, never ``eval``
"""

from __future__ import annotations

import ast
import copy
import importlib
from pathlib import Path

import numpy as np
import yaml
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

from agents.rl import HYPERPARAMS_DIR
from envs import FAST_CHARGE_ID
from surrogates.physics.chemistry import get_chemistry

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3}
"""Algorithm name (as in rl_zoo3's ``--algo`` and the hyperparameter file's name) -> SB3 class."""
RUN_KEYS = ("n_timesteps", "n_envs", "policy", "normalize", "env_kwargs", "noise_type", "noise_std", "callback")
"""Keys of a hyperparameter entry that describe the run, not the algorithm's constructor."""
UNSUPPORTED_KEYS = ("env_wrapper", "vec_env_wrapper", "frame_stack", "monitor_kwargs", "replay_buffer_class")
"""rl_zoo3 keys agents.rl.train does not implement: an entry with one is refused, not half-run."""
NOISE = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}
"""``noise_type`` -> SB3 action noise (rl_zoo3's names)."""


def algorithm(name: str) -> type[BaseAlgorithm]:
    """The SB3 class of algorithm ``name`` (``ppo``, ``sac``, ``td3``)."""
    try:
        return ALGOS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; valid: {', '.join(ALGOS)}") from None


def load_hyperparams(algo: str, env_id: str) -> dict:
    """The entry for ``env_id`` (or ``default``) of ``agents/rl/hyperparams/<algo>.yml``, as written."""
    algorithm(algo)
    path = HYPERPARAMS_DIR / f"{algo}.yml"
    table = yaml.safe_load(path.read_text())
    return copy.deepcopy(table.get(env_id, table["default"]))


def model_kwargs(hp: dict, n_actions: int) -> dict:
    """Keyword arguments of the algorithm's class from a hyperparameter entry (not ``policy``):
    the entry less :data:`RUN_KEYS`, ``policy_kwargs`` as a mapping and the action noise built."""
    bad = [k for k in UNSUPPORTED_KEYS if hp.get(k)] + (["normalize"] if hp.get("normalize") else [])
    if bad:
        raise ValueError(f"hyperparameter key(s) {bad} are not supported by agents.rl.train (the env's observation is "
                         "normalised already, and the DFN replay steps the bare env): remove them")
    kwargs = {k: v for k, v in hp.items() if k not in RUN_KEYS + UNSUPPORTED_KEYS}
    if isinstance(kwargs.get("policy_kwargs"), str):
        try:
            kwargs["policy_kwargs"] = ast.literal_eval(kwargs["policy_kwargs"])
        except (ValueError, SyntaxError):
            raise ValueError(f"policy_kwargs {kwargs['policy_kwargs']!r} is not a Python literal; write it as a YAML "
                             "mapping or a literal such as \"{'net_arch': [64, 64]}\"") from None
    if hp.get("noise_type"):
        kind = hp["noise_type"].strip()
        if kind not in NOISE:
            raise ValueError(f"unknown noise_type {kind!r}; valid: {', '.join(NOISE)}")
        kwargs["action_noise"] = NOISE[kind](np.zeros(n_actions), float(hp["noise_std"]) * np.ones(n_actions))
    return kwargs


def make_callbacks(hp: dict) -> list[BaseCallback]:
    """The entry's ``callback`` key as callbacks (the way rl_zoo3 reads it)."""
    entries = hp.get("callback") or []
    out = []
    for entry in entries if isinstance(entries, list) else [entries]:
        name, kwargs = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        module, _, cls = name.rpartition(".")
        out.append(getattr(importlib.import_module(module), cls)(**(kwargs or {})))
    return out


def agent_buffers(config, algo: str = "ppo") -> tuple[float, float, float]:
    """The safety buffers (V, K, V) of the default training env (``agents/rl/hyperparams/<algo>.yml``)
    inside ``config``'s limits (a :class:`envs.config.ChargingConfig`): how much tighter the agent is trained than it
    is judged."""
    kw = load_hyperparams(algo, FAST_CHARGE_ID).get("env_kwargs") or {}
    v_written = get_chemistry(kw.get("chemistry", "nmc")).v_max
    return (round(v_written - kw.get("v_max", v_written), 9), round(config.t_max - kw.get("t_max", config.t_max), 9),
            round(kw.get("plating_limit", config.plating_limit) - config.plating_limit, 9))


def load_agent(run_dir, device: str = "cpu") -> tuple[BaseAlgorithm, dict]:
    """The policy of a run folder written by :func:`agents.rl.train.train` (``policy.zip``), and its resolved config."""
    run_dir = Path(run_dir)
    cfg_path, policy_path = run_dir / "config.yml", run_dir / "policy.zip"
    for p in (cfg_path, policy_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: is {run_dir} a run folder of experiments/train_agent.py?")
    resolved = yaml.safe_load(cfg_path.read_text())
    return algorithm(resolved["config"]["algo"]).load(policy_path, device=device), resolved

