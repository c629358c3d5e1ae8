"""Llama-3 style causal transformer surrogate: RMSNorm, rotary positions, SwiGLU, no biases.

Glossary (what the tokens mean; units in :mod:`surrogates.features`):

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
import torch.nn.functional as F

from surrogates.features import MODEL_CHANNELS, N_INIT, N_INPUTS


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


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin ``(max_len, head_dim / 2)`` for rotary embeddings."""
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_len).float(), freqs)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of ``x`` ``(B, H, L, hd)``; cos/sin broadcast to ``(B|1, 1, L, hd/2)``."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        assert cfg.d_model % cfg.n_head == 0, "d_model must be divisible by n_head"
        self.n_head, self.head_dim = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def _split(self, x):
        B, L, _ = x.shape
        q, k, v = self.qkv(x).split(self.n_head * self.head_dim, dim=-1)
        return [t.view(B, L, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v)]  # (B, H, L, hd)

    def forward(self, x, cos, sin):
        B, L, D = x.shape
        q, k, v = self._split(x)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))

    def step(self, x, cos, sin, cache_k, cache_v, pos):
        """One token per row. x ``(B, 1, D)``; caches ``(B, H, S, hd)``; pos ``(B,)`` slot to write."""
        B, _, D = x.shape
        q, k, v = self._split(x)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rows = torch.arange(B, device=x.device)
        # In place: the cache is the state's own buffer and a step consumes its state.
        cache_k[rows, :, pos] = k[:, :, 0]
        cache_v[rows, :, pos] = v[:, :, 0]
        # Only the slots some row has filled, and an explicit softmax: for one query per row it is
        # several times faster on CPU than scaled_dot_product_attention with a mask.
        used = int(pos.max()) + 1
        k_used, v_used = cache_k[:, :, :used], cache_v[:, :, :used]  # (B, H, S, hd)
        # Broadcast-and-sum, not bmm: thousands of 1 x hd @ hd x S products are overhead-bound.
        scores = (q * k_used).sum(-1) / math.sqrt(self.head_dim)  # (B, H, S)
        slots = torch.arange(used, device=x.device)
        scores = scores.masked_fill((slots[None, :] > pos[:, None])[:, None, :], float("-inf"))
        y = (torch.softmax(scores, dim=-1).unsqueeze(-1) * v_used).sum(-2, keepdim=True)  # (B, H, 1, hd)
        return self.proj(y.transpose(1, 2).reshape(B, 1, D)), cache_k, cache_v


class SwiGLU(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.down(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.mlp_norm, self.mlp = RMSNorm(cfg.d_model), SwiGLU(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))

    def step(self, x, cos, sin, ck, cv, pos):
        a, ck, cv = self.attn.step(self.attn_norm(x), cos, sin, ck, cv, pos)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), ck, cv


class Transformer(nn.Module):
    """Causal transformer surrogate (see module docstring)."""

    arch = "transformer"

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_x = nn.Linear(cfg.n_inputs, cfg.d_model, bias=False)
        self.embed_init = nn.Linear(cfg.n_init, cfg.d_model, bias=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
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
