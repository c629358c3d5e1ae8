"""Llama-3 style causal transformer surrogate: RMSNorm, rotary positions, SwiGLU, no biases.

Glossary (what the tokens mean; units in :mod:`surrogates.models.features`):

    token 0        the initial condition (soc_0, T_amb, OCV(soc_0)), embedded
    token k+1      control interval k: (C-rate I/I_1C, T_amb, coulomb-counted soc_k, OCV(soc_k))
    output k       standardised residuals of (V, T, eta, V_max, T_max, eta_min) at the end of
                   interval k, read from token k+1: causal, so it sees I[0..k] and nothing later

``forward`` runs whole sequences in parallel for training; ``step`` advances one interval
using a key/value cache (:class:`KVCache`) in which rows of a batch (cells of the vector env)
may sit at different positions and be reset independently. ``step`` leaves the state it was
given as it was, so rollouts can branch from any state (lookahead, MPC on the surrogate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn

from surrogates.models.features import MODEL_CHANNELS, N_INIT, N_INPUTS
from surrogates.models.layers import Block, RMSNorm, rope_tables


@dataclass
class TransformerConfig:
    n_inputs: int = N_INPUTS
    """Features per interval."""
    n_init: int = N_INIT
    """Initial-condition features."""
    n_out: int = len(MODEL_CHANNELS)
    """Output channels."""
    d_model: int = 64
    """Residual stream width."""
    n_layer: int = 4
    """Transformer blocks."""
    n_head: int = 4
    """Attention heads (d_model / n_head per head)."""
    mlp_hidden: int = 176
    """SwiGLU hidden width."""
    max_len: int = 1024
    """Longest sequence in intervals (plus the initial token); 1024 x 10 s = 2.8 h."""
    rope_theta: float = 10000.0
    """Rotary base."""
    dropout: float = 0.0
    """Dropout in attention and MLP during training."""


class Transformer(nn.Module):
    """Causal transformer surrogate (see module docstring)."""

    arch = "transformer"

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_x = nn.Linear(cfg.n_inputs, cfg.d_model, bias=False)
        self.embed_init = nn.Linear(cfg.n_init, cfg.d_model, bias=False)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.mlp_hidden, cfg.dropout) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_out, bias=False)
        cos, sin = rope_tables(cfg.d_model // cfg.n_head, cfg.max_len + 1, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2/nanoGPT: scale residual projections by depth
            if name.endswith("proj.weight") or name.endswith("down.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """x ``(B, L, n_inputs)``, init ``(B, n_init)`` -> ``(B, L, n_out)``."""
        B, L, _ = x.shape
        if L + 1 > self.cfg.max_len + 1:
            raise ValueError(f"sequence of {L} intervals exceeds this transformer's max_len={self.cfg.max_len}")
        h = torch.cat([self.embed_init(init)[:, None], self.embed_x(x)], dim=1)  # (B, L+1, D)
        cos, sin = self.rope_cos[: L + 1][None, None], self.rope_sin[: L + 1][None, None]
        for block in self.blocks:
            h = block(h, cos, sin)
        return self.head(self.norm(h[:, 1:]))  # (B, L, n_out)

    # ------------------------------------------------------------------ stepping
    @property
    def max_steps(self) -> int:
        """Longest rollout ``step`` supports from an initial state [intervals]: ``max_len`` (the rotary table)."""
        return self.cfg.max_len

    def initial_state(self, batch: int, init: torch.Tensor) -> dict:
        """The state after the initial-condition token.

        State: ``cache`` (:class:`KVCache`, every block's keys and values) and ``pos`` ``(B,)``,
        each row's position for its next token (1 + the intervals it has stepped).
        """
        if init.shape[0] != batch:
            raise ValueError(f"init has {init.shape[0]} rows, expected batch={batch}")
        cache = KVCache.start(len(self.blocks), batch, self.cfg.n_head, self.cfg.d_model // self.cfg.n_head, init)
        cos, sin = self.rope_cos[:1][None, None], self.rope_sin[:1][None, None]  # position 0, (1, 1, 1, hd/2)
        h = self.embed_init(init)[:, None]  # (B, 1, D)
        for i, block in enumerate(self.blocks):
            h = block.step(h, cos, sin, partial(cache.store_initial, i))
        return {"cache": cache, "pos": torch.ones(batch, dtype=torch.long, device=init.device)}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """x_t ``(B, n_inputs)`` -> y_t ``(B, n_out)`` and the new state; ``state`` is left as it was
        (step it again to branch: see :class:`KVCache`)."""
        pos = state["pos"]
        window = int(pos.max())  # interval tokens the longest row attends to, this one included
        if window > self.cfg.max_len:
            raise ValueError(f"a row would step interval {window}, past this transformer's max_len={self.cfg.max_len}; "
                             "restart it (Surrogate.reset_rows) or keep episodes within max_len intervals")
        cache = state["cache"].extend(window)
        # Row b's interval tokens are the last pos_b columns of the window (this one included).
        blocked = (torch.arange(window, device=pos.device)[None, :] < (window - pos)[:, None])[:, None]  # (B, 1, W)
        cos, sin = self.rope_cos[pos][:, None, None], self.rope_sin[pos][:, None, None]  # (B, 1, 1, hd/2)
        h = self.embed_x(x_t)[:, None]  # (B, 1, D)
        for i, block in enumerate(self.blocks):
            h = block.step(h, cos, sin, partial(cache.store_and_read, i, window, blocked))
        return self.head(self.norm(h[:, 0])), {"cache": cache, "pos": pos + 1}


class _Store:
    """Key/value columns ``(n_layer, B, H, capacity, hd)`` shared by the caches of successive states;
    columns ``[0, fill)`` are written."""

    __slots__ = ("k", "v", "fill")

    def __init__(self, k: torch.Tensor, v: torch.Tensor, fill: int):
        self.k, self.v, self.fill = k, v, fill


class KVCache:
    """Every block's keys and values for a batch of rows, shared copy-on-write between states.

    Rows step together, so column c of the store holds the token every row processed at the
    cache's c-th step; row b's interval tokens are its last ``pos_b - 1`` columns (older ones
    belong to its earlier episodes and are masked out), and its initial-condition token is kept
    apart, in ``k0``/``v0`` ``(B, n_layer, H, 1, hd)``. A cache holds columns ``[0, length)``;
    the store may hold more, written by a later state. Stepping appends column ``length`` in
    place when no later state has written it yet (a rollout: O(1) a step, nothing copied), and
    otherwise first copies the columns its rows still read into a new store (a branch: two
    rollouts from one state each get their own), so a step never changes what a state holds.
    The store grows (and drops columns no row reads) as episodes lengthen: it is never full.

    Restarting rows (:func:`surrogates.models.scatter_state`, which calls :meth:`index_copy_`)
    replaces their ``k0``/``v0`` out of place, so it does not reach earlier states either.
    """

    __slots__ = ("k0", "v0", "store", "length")
    MIN_HEADROOM = 16
    """Columns a new store has beyond the ones copied into it (at least a quarter more)."""

    def __init__(self, k0: torch.Tensor, v0: torch.Tensor, store: _Store, length: int):
        self.k0, self.v0, self.store, self.length = k0, v0, store, length

    @classmethod
    def start(cls, n_layer: int, batch: int, n_head: int, head_dim: int, like: torch.Tensor) -> "KVCache":
        """An empty cache (the initial-condition tokens are stored by :meth:`store_initial`)."""
        k0 = like.new_empty(batch, n_layer, n_head, 1, head_dim)
        cols = like.new_empty(n_layer, batch, n_head, cls.MIN_HEADROOM, head_dim)
        return cls(k0, torch.empty_like(k0), _Store(cols, torch.empty_like(cols), 0), 0)

    def store_initial(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> list:
        """Keep the initial-condition token's key/value ``(B, H, 1, hd)``; it attends to itself only."""
        self.k0[:, layer], self.v0[:, layer] = k, v
        return [(k, v, None)]

    def extend(self, window: int) -> "KVCache":
        """A cache one column longer for the next step, whose last ``window`` columns its rows read."""
        store, length = self.store, self.length
        if store.fill != length or length == store.k.shape[3]:
            # A branch (a later state wrote column `length`) or a full store: copy what is read to a new one.
            keep = window - 1
            cols = store.k.shape[:3] + (keep + 1 + max(keep // 4, self.MIN_HEADROOM), store.k.shape[4])
            k, v = store.k.new_empty(cols), store.v.new_empty(cols)
            k[:, :, :, :keep], v[:, :, :, :keep] = store.k[:, :, :, length - keep:length], store.v[:, :, :, length - keep:length]
            store, length = _Store(k, v, keep), keep
        store.fill = length + 1
        return KVCache(self.k0, self.v0, store, length + 1)

    def store_and_read(self, layer: int, window: int, blocked: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list:
        """Write the step's key/value ``(B, H, 1, hd)`` into this cache's last column; the groups to attend to."""
        col = self.length - 1
        self.store.k[layer, :, :, col], self.store.v[layer, :, :, col] = k[:, :, 0], v[:, :, 0]
        lo = self.length - window
        return [(self.k0[:, layer], self.v0[:, layer], None),
                (self.store.k[layer, :, :, lo:self.length], self.store.v[layer, :, :, lo:self.length], blocked)]

    def index_copy(self, dim: int, rows: torch.Tensor, fresh: "KVCache") -> "KVCache":
        """A cache whose ``rows`` are ``fresh``'s initial-condition tokens (rows restarted). Their old
        columns need no clearing: the restarted rows' ``pos`` of 1 masks them out."""
        if dim != 0:
            raise ValueError("a KVCache's rows are its batch dimension (dim 0)")
        return KVCache(self.k0.index_copy(0, rows, fresh.k0), self.v0.index_copy(0, rows, fresh.v0), self.store,
                       self.length)

    def index_copy_(self, dim: int, rows: torch.Tensor, fresh: "KVCache") -> "KVCache":
        """:meth:`index_copy` into this object (the protocol of :func:`surrogates.models.scatter_state`)."""
        new = self.index_copy(dim, rows, fresh)
        self.k0, self.v0 = new.k0, new.v0
        return self

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """What this cache holds: ``k0``, ``v0`` and the columns ``[0, length)`` of its store (views)."""
        return self.k0, self.v0, self.store.k[:, :, :, :self.length], self.store.v[:, :, :, :self.length]
