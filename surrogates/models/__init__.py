"""Surrogate architectures, one file each, sharing one causal-operator protocol.

Every model maps normalised inputs to normalised outputs (see :mod:`surrogates.models.features`):

* ``model(x, init) -> y``: ``x`` ``(B, L, N_INPUTS)``, ``init`` ``(B, N_INIT)``, ``y`` ``(B, L, n_out)``;
  causal: ``y[:, t]`` depends on ``x[:, :t+1]`` and ``init`` only.
* ``state = model.initial_state(batch, init)``; ``y_t, state = model.step(x_t, state)`` with
  ``x_t`` ``(B, N_INPUTS)`` and ``y_t`` ``(B, n_out)``; a step rollout equals the forward, and
  ``step`` leaves the state it was given intact (branching rollouts are exact).
  A state is a dict of tensors (or lists of tensors, or objects with ``index_copy_(0, rows, fresh)``
  such as the transformer's ``KVCache``) with the batch in dim 0, so rows can be replaced
  independently (:func:`scatter_state`).
* ``training_modules``: names of submodules only training uses (JEPA's context and target
  encoders and heads); checkpoints hold the rest (:func:`inference_state_dict`), and a loaded
  model has them removed (:func:`inference_only`) so weights load with ``strict=True``.
"""

from __future__ import annotations

import importlib

import surrogates.common.threads  # noqa: F401  (a forked child runs torch on one thread: no hang)
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the architectures, not by the registry (import envs stays light)
    import torch

DEFAULT_ARCH = "jepa"
"""The architecture used where none is named (the most accurate shipped surrogate): by
:func:`surrogates.models.surrogate.load_surrogate` and by the environment."""

ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    # name: (module, config class, model class); imported on demand
    "transformer": ("surrogates.models.transformer", "TransformerConfig", "Transformer"),
    "mamba": ("surrogates.models.mamba", "MambaConfig", "Mamba"),
    "jepa": ("surrogates.models.jepa", "JEPAConfig", "JEPA"),
}


def architecture(arch: str) -> tuple[type, type]:
    """(config class, model class) of architecture ``arch``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid architectures are: {', '.join(ARCHITECTURES)}")
    module, cfg_name, model_name = ARCHITECTURES[arch]
    mod = importlib.import_module(module)
    return getattr(mod, cfg_name), getattr(mod, model_name)


def build_model(arch: str, **config) -> torch.nn.Module:
    """Instantiate architecture ``arch`` from config keyword arguments."""
    cfg_cls, model_cls = architecture(arch)
    return model_cls(cfg_cls(**config))


def _is_training_key(model: torch.nn.Module, key: str) -> bool:
    return key.split(".", 1)[0] in getattr(model, "training_modules", ())


def inference_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights inference needs (CPU copies), without ``model.training_modules``."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not _is_training_key(model, k)}


def inference_only(model: torch.nn.Module) -> torch.nn.Module:
    """Remove ``model.training_modules`` (in place; returns ``model``): what a loaded checkpoint builds."""
    for name in getattr(model, "training_modules", ()):
        delattr(model, name)
    return model


def scatter_state(state, rows: torch.Tensor, fresh):
    """Write ``fresh`` (a state of ``len(rows)`` rows) into ``state`` at ``rows``, in place; returns ``state``.

    Only the restarted rows are rebuilt, not the whole batch.
    """
    if isinstance(state, dict):
        for k in state:
            state[k] = scatter_state(state[k], rows, fresh[k])
        return state
    if isinstance(state, list):
        for i in range(len(state)):
            state[i] = scatter_state(state[i], rows, fresh[i])
        return state
    if isinstance(state, tuple):
        return tuple(scatter_state(s, rows, f) for s, f in zip(state, fresh))
    state.index_copy_(0, rows, fresh)
    return state
