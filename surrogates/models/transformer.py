"""Llama-3 style causal transformer surrogate: RMSNorm, rotary positions, SwiGLU, no biases.

Glossary (what the tokens mean; units in :mod:`surrogates.models.features`):

    token 0        the initial condition (soc_0, T_amb, OCV(soc_0)), embedded
    token k+1      control interval k: (C-rate I/I_1C, T_amb, coulomb-counted soc_k, OCV(soc_k))
    output k       standardised residuals of (V, T, eta, V_max, T_max, eta_min) at the end of
                   interval k, read from token k+1: causal, so it sees I[0..k] and nothing later

``forward`` runs whole sequences in parallel for training; ``step`` advances one interval
using a key/value cache whose slots are per row, so rows of a batch (cells of the vector
env) may sit at different positions and be reset independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    def initial_state(self, batch: int, init: torch.Tensor, max_steps: int | None = None) -> dict:
        """KV cache after the initial-condition token. ``max_steps`` bounds the episode (default max_len).

        State: ``k``/``v`` lists (one per block) of ``(B, H, max_steps + 1, hd)``, ``pos`` ``(B,)``.
        """
        if init.shape[0] != batch:
            raise ValueError(f"init has {init.shape[0]} rows, expected batch={batch}")
        slots = (max_steps or self.cfg.max_len) + 1
        if slots > self.cfg.max_len + 1:
            raise ValueError(f"max_steps={max_steps} exceeds this transformer's max_len={self.cfg.max_len}")
        hd = self.cfg.d_model // self.cfg.n_head
        state = {
            "k": [init.new_zeros(batch, self.cfg.n_head, slots, hd) for _ in self.blocks],
            "v": [init.new_zeros(batch, self.cfg.n_head, slots, hd) for _ in self.blocks],
            "pos": torch.zeros(batch, dtype=torch.long, device=init.device),
        }
        _, state = self._advance(self.embed_init(init)[:, None], state)
        return state

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """x_t ``(B, n_inputs)`` -> y_t ``(B, n_out)`` and the new state (the old one is consumed)."""
        if int(state["pos"].max()) >= state["k"][0].shape[2]:
            raise ValueError(f"KV cache full ({state['k'][0].shape[2] - 1} intervals); start a new initial_state")
        h, state = self._advance(self.embed_x(x_t)[:, None], state)
        return self.head(self.norm(h[:, 0])), state

    def _advance(self, h: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        pos = state["pos"]
        cos, sin = self.rope_cos[pos][:, None, None], self.rope_sin[pos][:, None, None]  # (B, 1, 1, hd/2)
        for i, block in enumerate(self.blocks):
            h, _, _ = block.step(h, cos, sin, state["k"][i], state["v"][i], pos)
        return h, {"k": state["k"], "v": state["v"], "pos": pos + 1}
