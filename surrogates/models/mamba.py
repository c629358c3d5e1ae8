"""Mamba (selective state-space) surrogate, with a pure-PyTorch scan that runs everywhere.

Glossary (physical meaning of the symbols; features in :mod:`surrogates.models.features`):

    u[t]    interval t's features: C-rate I/I_1C, ambient T_amb, coulomb-counted soc, OCV(soc)
    h[t]    SSM state (B, d_inner, N): the model's memory of the current history, in the role
            the DFN's concentration and temperature fields play
    A       (d_inner, N) negative decay rates; exp(delta * A) is how much of h survives one
            interval (relaxation of diffusion overpotentials, heat loss to ambient)
    delta   (B, L, d_inner) input-dependent step size: how strongly interval t writes into h
    B, C    (B, L, N) input-dependent write and read vectors
    y[t]    standardised residuals of (V, T, eta, V_max, T_max, eta_min) at the end of interval t

The initial condition is token 0 of the sequence, so it enters h like any input. When
``mamba_ssm`` imports and the tensors live on a CUDA device, its fused selective-scan
kernel replaces the Python loop; ``step`` always uses the recurrence, which a test pins
to the parallel forward (and, on a GPU with ``mamba_ssm``, the kernel to the pure scan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from surrogates.models.features import MODEL_CHANNELS, N_INIT, N_INPUTS
from surrogates.models.layers import RMSNorm

try:  # optional CUDA kernels (extra `gpu`); the pure path below always works
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_selective_scan
except ImportError:  # pragma: no cover - depends on the machine
    _cuda_selective_scan = None


@dataclass
class MambaConfig:
    n_inputs: int = N_INPUTS
    """Features per interval."""
    n_init: int = N_INIT
    """Initial-condition features."""
    n_out: int = len(MODEL_CHANNELS)
    """Output channels."""
    d_model: int = 64
    """Residual stream width."""
    n_layer: int = 4
    """Mamba blocks."""
    d_state: int = 8
    """SSM state size N per channel."""
    expand: int = 2
    """d_inner = expand * d_model."""
    d_conv: int = 4
    """Causal depthwise convolution width (intervals)."""
    dt_rank: int = 0
    """Rank of the delta projection (0: ceil(d_model / 16))."""
    use_cuda_kernel: bool = True
    """Use mamba_ssm's kernel when it imports and the input is on CUDA."""


def selective_scan(u, delta, A, B, C, D, h0=None):
    """Pure-PyTorch selective scan.

    u, delta ``(B, L, Din)``; A ``(Din, N)``; B, C ``(B, L, N)``; D ``(Din,)``; h0 ``(B, Din, N)``.
    Returns y ``(B, L, Din)`` and the last state ``(B, Din, N)``.
    """
    bsz, L, din = u.shape
    dA = torch.exp(delta.unsqueeze(-1) * A)  # (B, L, Din, N)
    dBu = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # (B, L, Din, N)
    h = u.new_zeros(bsz, din, A.shape[1]) if h0 is None else h0
    ys = []
    # unbind, not dA[:, t]: indexing's backward allocates a full-size gradient per step (O(L^2)).
    for dA_t, dBu_t, C_t in zip(dA.unbind(1), dBu.unbind(1), C.unbind(1)):
        h = dA_t * h + dBu_t
        ys.append((h * C_t.unsqueeze(1)).sum(-1))
    return torch.stack(ys, dim=1) + u * D, h  # (B, L, Din)


class MambaBlock(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        d_inner = cfg.expand * cfg.d_model
        self.d_inner = d_inner
        self.dt_rank = cfg.dt_rank or math.ceil(cfg.d_model / 16)
        self.in_proj = nn.Linear(cfg.d_model, 2 * d_inner, bias=False)
        self.conv = nn.Conv1d(d_inner, d_inner, cfg.d_conv, groups=d_inner, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * cfg.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        # S4D-real initialisation; delta from [1e-3, 1e-1] as in Mamba.
        A = torch.arange(1, cfg.d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        dt = torch.exp(torch.rand(d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.out_proj = nn.Linear(d_inner, cfg.d_model, bias=False)

    def _ssm_params(self, xc):
        """xc ``(..., Din)`` -> delta ``(..., Din)``, B, C ``(..., N)``."""
        dbc = self.x_proj(xc)
        dt, Bm, Cm = dbc.split([self.dt_rank, self.cfg.d_state, self.cfg.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), Bm, Cm

    def forward(self, x):
        """x ``(B, L, d_model)`` -> ``(B, L, d_model)``."""
        L = x.shape[1]
        xi, z = self.in_proj(x).chunk(2, dim=-1)  # (B, L, Din) each
        xc = F.silu(self.conv(xi.transpose(1, 2))[..., :L].transpose(1, 2))  # causal conv
        delta, Bm, Cm = self._ssm_params(xc)
        A = -torch.exp(self.A_log)
        if _cuda_selective_scan is not None and self.cfg.use_cuda_kernel and x.is_cuda:
            y = _cuda_selective_scan(
                xc.transpose(1, 2).contiguous(), delta.transpose(1, 2).contiguous(), A,
                Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(), self.D.float(),
            ).transpose(1, 2)
        else:
            y, _ = selective_scan(xc, delta, A, Bm, Cm, self.D)
        return self.out_proj(y * F.silu(z))

    def step(self, x, conv_buf, h):
        """x ``(B, d_model)``; conv_buf ``(B, Din, d_conv - 1)``; h ``(B, Din, N)``."""
        xi, z = self.in_proj(x).chunk(2, dim=-1)  # (B, Din)
        window = torch.cat([conv_buf, xi.unsqueeze(-1)], dim=-1)  # (B, Din, d_conv)
        xc = F.silu((window * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)
        delta, Bm, Cm = self._ssm_params(xc)
        A = -torch.exp(self.A_log)
        h = torch.exp(delta.unsqueeze(-1) * A) * h + (delta * xc).unsqueeze(-1) * Bm.unsqueeze(1)
        y = torch.einsum("bdn,bn->bd", h, Cm) + xc * self.D
        return self.out_proj(y * F.silu(z)), window[..., 1:], h


class Mamba(nn.Module):
    """Stack of residual Mamba blocks over [init token, interval tokens]."""

    arch = "mamba"

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_x = nn.Linear(cfg.n_inputs, cfg.d_model)
        self.embed_init = nn.Linear(cfg.n_init, cfg.d_model)
        self.blocks = nn.ModuleList(MambaBlock(cfg) for _ in range(cfg.n_layer))
        self.norms = nn.ModuleList(RMSNorm(cfg.d_model) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_out)

    def forward(self, x: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """x ``(B, L, n_inputs)``, init ``(B, n_init)`` -> ``(B, L, n_out)``."""
        h = torch.cat([self.embed_init(init)[:, None], self.embed_x(x)], dim=1)  # (B, L+1, D)
        for norm, block in zip(self.norms, self.blocks):
            h = h + block(norm(h))
        return self.head(self.norm(h[:, 1:]))

    def initial_state(self, batch: int, init: torch.Tensor) -> dict:
        """Recurrent state after the initial-condition token.

        ``conv``: list per block of ``(B, d_inner, d_conv - 1)``; ``ssm``: list of ``(B, d_inner, N)``.
        """
        if init.shape[0] != batch:
            raise ValueError(f"init has {init.shape[0]} rows, expected batch={batch}")
        din, k = self.cfg.expand * self.cfg.d_model, self.cfg.d_conv
        state = {
            "conv": [init.new_zeros(batch, din, k - 1) for _ in self.blocks],
            "ssm": [init.new_zeros(batch, din, self.cfg.d_state) for _ in self.blocks],
        }
        _, state = self._advance(self.embed_init(init), state)
        return state

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """x_t ``(B, n_inputs)`` -> y_t ``(B, n_out)``, new state. O(1) in the episode length."""
        h, state = self._advance(self.embed_x(x_t), state)
        return self.head(self.norm(h)), state

    def _advance(self, h, state):
        conv, ssm = [], []
        for i, (norm, block) in enumerate(zip(self.norms, self.blocks)):
            out, c, s = block.step(norm(h), state["conv"][i], state["ssm"][i])
            h = h + out
            conv.append(c)
            ssm.append(s)
        return h, {"conv": conv, "ssm": ssm}
