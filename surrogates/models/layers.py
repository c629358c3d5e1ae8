"""Building blocks shared by the transformer surrogate, Mamba and the diagnostics' patch transformer.

Llama style: RMSNorm, rotary positions, SwiGLU, no biases. A block is pre-norm
attention + pre-norm MLP, each residual. Attention is causal (with rotary positions and a
per-row key/value cache for stepping) or bidirectional (no positions: the caller adds them).

Shapes: ``B`` batch, ``L`` tokens, ``D`` model width, ``H`` heads, ``hd = D / H``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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
    """Multi-head attention; ``causal`` with rotary positions (cos/sin given), else bidirectional."""

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        assert d_model % n_head == 0, "d_model must be divisible by n_head"
        self.n_head, self.head_dim = n_head, d_model // n_head
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.dropout, self.causal = dropout, causal

    def _split(self, x):
        B, L, _ = x.shape
        q, k, v = self.qkv(x).split(self.n_head * self.head_dim, dim=-1)
        return [t.view(B, L, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v)]  # (B, H, L, hd)

    def forward(self, x, cos=None, sin=None):
        B, L, D = x.shape
        q, k, v = self._split(x)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)

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
    def __init__(self, d_model: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.gate = nn.Linear(d_model, hidden, bias=False)
        self.up = nn.Linear(d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.down(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    """Pre-norm attention and SwiGLU, each residual."""

    def __init__(self, d_model: int, n_head: int, mlp_hidden: int, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(d_model), Attention(d_model, n_head, dropout, causal)
        self.mlp_norm, self.mlp = RMSNorm(d_model), SwiGLU(d_model, mlp_hidden, dropout)

    def forward(self, x, cos=None, sin=None):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))

    def step(self, x, cos, sin, ck, cv, pos):
        a, ck, cv = self.attn.step(self.attn_norm(x), cos, sin, ck, cv, pos)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), ck, cv
