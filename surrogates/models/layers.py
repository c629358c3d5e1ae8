"""Building blocks shared by the transformer surrogate, Mamba and the diagnostics' patch transformer.

Llama style: RMSNorm, rotary positions, SwiGLU, no biases. A block is pre-norm
attention + pre-norm MLP, each residual. Attention is causal (with rotary positions, and a
``step`` that attends to keys and values a cache hands it) or bidirectional (no positions:
the caller adds them).

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

    def step(self, x, cos, sin, kv):
        """One causal token per row, attending to the keys and values a cache hands back.

        x ``(B, 1, D)``; cos/sin ``(B, 1, 1, hd/2)`` at each row's position. ``kv(k, v)`` receives
        the token's key and value ``(B, H, 1, hd)`` (to store them) and returns the groups the token
        attends to, a list of ``(k, v, blocked)``: k, v ``(B, H, S, hd)`` and ``blocked`` ``(B, 1, S)``
        bool, True for slots the row must not see, or None. Attention itself writes nothing: where
        keys live, and who may write them, is the cache's business (see ``transformer.KVCache``).
        """
        B, _, D = x.shape
        q, k, v = self._split(x)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        groups = kv(k, v)
        # Groups, not one concatenated cache: concatenating would copy every key each step. An
        # explicit softmax: for one query per row it is several times faster on CPU than
        # scaled_dot_product_attention with a mask. Broadcast-and-sum, not bmm: thousands of
        # 1 x hd @ hd x S products are overhead-bound.
        scale = 1.0 / math.sqrt(self.head_dim)
        scores = []
        for k_g, _, blocked in groups:
            s = (q * k_g).sum(-1) * scale  # (B, H, S)
            scores.append(s if blocked is None else s.masked_fill(blocked, float("-inf")))
        weights = torch.softmax(torch.cat(scores, dim=-1), dim=-1).split([s.shape[-1] for s in scores], dim=-1)
        y = sum((w.unsqueeze(-1) * v_g).sum(-2, keepdim=True) for w, (_, v_g, _) in zip(weights, groups))  # (B, H, 1, hd)
        return self.proj(y.transpose(1, 2).reshape(B, 1, D))


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

    def step(self, x, cos, sin, kv):
        """One token per row (see :meth:`Attention.step`); x ``(B, 1, D)`` -> ``(B, 1, D)``."""
        x = x + self.attn.step(self.attn_norm(x), cos, sin, kv)
        return x + self.mlp(self.mlp_norm(x))
