"""Diagnostic networks over windows of (I, V, T): a masked-autoencoder patch transformer and a window autoencoder.

Glossary (see :mod:`surrogates.diagnostics.windows`):

    x        a standardised window ``(B, W, 3)`` of (I [A], V [V], T [K]), oldest interval first
    patch    ``p`` consecutive intervals of x, flattened to ``p * 3`` numbers: one token
    P        tokens per window, ``W / p`` (default 32 / 4 = 8)
    keep     indices ``(B, P_keep)`` of the patches an MAE encoder sees; the others are masked

* :class:`PatchEncoder`: a bidirectional transformer (RMSNorm, SwiGLU, no biases, learned
  positions) over the P patch tokens.
* :class:`PlatingDetector`: the encoder, mean-pooled, and a linear head -> the logit of
  "lithium plating possible in this window". Pretrained as a masked autoencoder
  (:class:`MAEDecoder`, :func:`mae_loss`: reconstruct the masked patches, as in He et al.
  2022) on unlabelled windows, then fine-tuned with the head.
* :class:`WindowAutoencoder`: a conditional MLP autoencoder: a narrow code of the window's
  first intervals plus the applied current -> the window's voltage and temperature; its
  per-window reconstruction error is the out-of-distribution score.
* :class:`DegradationCNN`: a causal dilated 1-D CNN over the window -> the lithium lost for good
  (SEI + dead lithium, the DFN's ``lithium_irreversible``) in its last interval. Slid over a charge
  (rest-padded at the start) and summed, it estimates the lithium the charge cost the cell for good
  (not PyBaMM's ``capacity_lost``, which also counts the reversibly plated lithium).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from surrogates.models.layers import Block, RMSNorm


@dataclass
class PatchConfig:
    """Patch transformer of the plating detector (and its MAE decoder, used in pretraining only)."""

    window: int = 32
    """Intervals per window (W)."""
    patch: int = 4
    """Intervals per patch token (p); must divide W."""
    n_channels: int = 3
    """Channels per interval: (I, V, T)."""
    d_model: int = 32
    """Encoder width."""
    n_layer: int = 2
    """Encoder blocks."""
    n_head: int = 1
    """Attention heads (one: with 8 tokens more heads cost time on a CPU and buy no accuracy)."""
    mlp_hidden: int = 64
    """SwiGLU hidden width."""
    dropout: float = 0.0
    """Dropout in attention and MLP during training."""
    decoder_d_model: int = 32
    """MAE decoder width."""
    decoder_layers: int = 1
    """MAE decoder blocks."""

    def __post_init__(self) -> None:
        if self.window % self.patch:
            raise ValueError(f"patch ({self.patch}) must divide window ({self.window})")

    @property
    def n_patches(self) -> int:
        return self.window // self.patch


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, W, C)`` -> ``(B, W / patch, patch * C)``: each token holds ``patch`` consecutive intervals."""
    B, W, C = x.shape
    return x.reshape(B, W // patch, patch * C)


class PatchEncoder(nn.Module):
    """Patch tokens -> contextual embeddings ``(B, P_seen, d_model)``."""

    def __init__(self, cfg: PatchConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch * cfg.n_channels, cfg.d_model, bias=False)
        self.pos = nn.Parameter(torch.randn(cfg.n_patches, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.mlp_hidden, cfg.dropout, causal=False)
                                    for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        tok = self.embed(patchify(x, self.cfg.patch)) + self.pos  # (B, P, D)
        if keep is not None:  # MAE: only the visible patches go through the encoder
            tok = torch.gather(tok, 1, keep.unsqueeze(-1).expand(-1, -1, tok.shape[-1]))  # (B, P_keep, D)
        for block in self.blocks:
            tok = block(tok)
        return self.norm(tok)


class PlatingDetector(nn.Module):
    """Window ``(B, W, 3)`` -> logit ``(B,)`` of "plating possible in the window"."""

    def __init__(self, cfg: PatchConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = PatchEncoder(cfg)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x).mean(dim=1)  # (B, D)
        return self.head(h).squeeze(-1)  # (B,)


class MAEDecoder(nn.Module):
    """Visible-patch embeddings + mask tokens -> every patch reconstructed ``(B, P, patch * C)``."""

    def __init__(self, cfg: PatchConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.decoder_d_model
        self.proj = nn.Linear(cfg.d_model, d, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.pos = nn.Parameter(torch.randn(cfg.n_patches, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, max(1, d // 16), 2 * d, causal=False) for _ in range(cfg.decoder_layers))
        self.norm = RMSNorm(d)
        self.out = nn.Linear(d, cfg.patch * cfg.n_channels)

    def forward(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, K, _ = latent.shape
        P = self.cfg.n_patches
        tok = self.mask_token.expand(B, P, -1).clone()  # (B, P, d)
        tok.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, tok.shape[-1]), self.proj(latent))
        tok = tok + self.pos
        for block in self.blocks:
            tok = block(tok)
        return self.out(self.norm(tok))  # (B, P, patch * C)


def mae_loss(encoder: PatchEncoder, decoder: MAEDecoder, x: torch.Tensor, mask_ratio: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Masked-patch reconstruction: hide ``mask_ratio`` of each window's patches (at random, per
    window), encode the rest, and return the mean squared error on the hidden patches."""
    B = x.shape[0]
    P = encoder.cfg.n_patches
    n_keep = max(1, int(round(P * (1.0 - mask_ratio))))
    order = torch.rand(B, P, generator=generator, device=x.device).argsort(dim=1)  # (B, P)
    keep, hidden = order[:, :n_keep].sort(dim=1).values, order[:, n_keep:]
    pred = decoder(encoder(x, keep), keep)  # (B, P, p*C)
    target = patchify(x, encoder.cfg.patch)
    idx = hidden.unsqueeze(-1).expand(-1, -1, target.shape[-1])
    return F.mse_loss(torch.gather(pred, 1, idx), torch.gather(target, 1, idx))


@dataclass
class AEConfig:
    """Conditional window autoencoder of the OOD detector."""

    window: int = 32
    """Intervals per window (W)."""
    n_channels: int = 3
    """Channels per interval: (I, V, T); the first is the applied current, the others the response."""
    context: int = 8
    """Intervals at the start of the window the encoder sees (all three channels)."""
    latent: int = 4
    """Bottleneck width: the cell's state at the start of the window, in a few numbers."""
    hidden: int = 256
    """Hidden width of encoder and decoder."""
    decoder_layers: int = 3
    """Hidden layers of the decoder."""

    def __post_init__(self) -> None:
        if not 1 <= self.context <= self.window:
            raise ValueError(f"context ({self.context}) must be in [1, window={self.window}]")


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])  # no activation on the output


class WindowAutoencoder(nn.Module):
    """Reconstruct a window's response (V, T) ``(B, W, 2)`` from a ``latent``-wide code of its first
    ``context`` intervals and the current applied over the whole window.

    The code is too narrow to carry the response itself, so the decoder must know how a cell of
    the training chemistry answers a current from a given state: windows whose response the
    training data never showed (another chemistry, an unseen regime, a surrogate drifting off
    the DFN) reconstruct badly. The current is given to the decoder rather than reconstructed,
    so a merely unusual current pattern with a DFN-like response is *not* flagged.
    """

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        n_resp = cfg.n_channels - 1
        self.encoder = _mlp([cfg.context * cfg.n_channels, cfg.hidden, cfg.latent])
        self.decoder = _mlp([cfg.latent + cfg.window, *[cfg.hidden] * cfg.decoder_layers, cfg.window * n_resp])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, W, C = x.shape
        code = self.encoder(x[:, :self.cfg.context].reshape(B, -1))  # (B, latent)
        return self.decoder(torch.cat([code, x[:, :, 0]], dim=1)).reshape(B, W, C - 1)  # (B, W, 2): V, T

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error of (V, T) per window ``(B,)`` (standardised units)."""
        return ((self(x) - x[:, :, 1:]) ** 2).mean(dim=(1, 2))


@dataclass
class CNNConfig:
    """Causal dilated CNN of the degradation estimator."""

    window: int = 64
    """Intervals per window (W); the receptive field (see ``n_layer``) must cover it."""
    n_channels: int = 3
    """Channels per interval: (I, V, T)."""
    width: int = 32
    """Convolution channels."""
    kernel: int = 2
    """Kernel size of every convolution."""
    n_layer: int = 6
    """Dilated layers, dilation 1, 2, 4, ...: the receptive field is 1 + (kernel - 1) * (2 ** n_layer - 1)
    intervals, which must cover the window (default 64 = 640 s at dt = 10 s)."""
    hidden: int = 64
    """Hidden width of the output head."""

    def __post_init__(self) -> None:
        if self.receptive_field < self.window:
            raise ValueError(f"the CNN sees {self.receptive_field} intervals (kernel {self.kernel}, {self.n_layer} layers) "
                             f"but the window is {self.window}; add layers or shorten the window")

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * (2 ** self.n_layer - 1)


class _CausalBlock(nn.Module):
    def __init__(self, width: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(width, 2 * width, kernel, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, h):  # (B, C, W)
        a, b = self.conv(F.pad(h, (self.pad, 0))).chunk(2, dim=1)
        return h + self.proj(torch.tanh(a) * torch.sigmoid(b))  # gated residual, as in WaveNet

    def step(self, past: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` at one position (kernel 2): inputs ``dilation`` intervals ago and now, ``(B, C)`` each."""
        w = self.conv.weight
        a, b = torch.addmm(F.linear(now, w[:, :, 1], self.conv.bias), past, w[:, :, 0].t()).chunk(2, dim=1)
        return now + F.linear(torch.tanh(a) * torch.sigmoid(b), self.proj.weight[:, :, 0], self.proj.bias)


class DegradationCNN(nn.Module):
    """Lithium lost for good in a window's last interval [A.h], from the window ``(B, W, 3)`` of standardised (I, V, T).

    ``forward`` returns it in units of ``scale`` (set from the training targets, carried in the
    state dict); :meth:`irreversible_lithium_loss` in A.h. Causal: the last interval's output depends only on
    the window, so sliding it over a charge one interval at a time and summing gives the charge's
    loss, and the env can score each new interval as it comes.
    """

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Conv1d(cfg.n_channels, cfg.width, 1)
        self.blocks = nn.ModuleList(_CausalBlock(cfg.width, cfg.kernel, 2 ** i) for i in range(cfg.n_layer))
        self.head = _mlp([cfg.width, cfg.hidden, 1])
        self.register_buffer("scale", torch.ones(()))  # A.h per output unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.transpose(1, 2))  # (B, C, W)
        for block in self.blocks:
            h = block(h)
        return self.head(F.silu(h[:, :, -1])).squeeze(-1)  # (B,)

    def irreversible_lithium_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Lithium lost for good (SEI + dead lithium) in the last interval of each window ``(B,)`` [A.h]."""
        return self(x) * self.scale

    # -- streaming: one interval at a time, O(1) per interval (a window forward costs ~W times more)
    def stream_state(self, x_rest: torch.Tensor) -> dict:
        """State of cells that have been at rest forever at ``x_rest`` ``(B, 3)`` (standardised).

        ``{"past": [per layer (B, dilation, width): its last inputs, a ring buffer], "t": step count}``.
        """
        h = F.linear(x_rest, self.inp.weight[:, :, 0], self.inp.bias)  # (B, C)
        past = []
        for block in self.blocks:
            past.append(h[:, None, :].expand(-1, block.conv.dilation[0], -1).contiguous())
            h = block.step(h, h)  # a constant input gives a constant output: both taps see h
        return {"past": past, "t": 0}

    def reset_stream_rows(self, state: dict, rows: torch.Tensor, x_rest: torch.Tensor) -> None:
        """Put cells ``rows`` back at rest at ``x_rest`` ``(len(rows), 3)``, in place."""
        fresh = self.stream_state(x_rest)["past"]
        for buf, new in zip(state["past"], fresh):
            buf[rows] = new

    def stream_step(self, x_t: torch.Tensor, state: dict) -> torch.Tensor:
        """One interval ``x_t`` ``(B, 3)`` (standardised) -> lithium lost for good in it ``(B,)`` [A.h]; ``state``
        advances in place.

        Equals :meth:`irreversible_lithium_loss` on the window ending at this interval, its start filled with
        the rest the state began from, when the window covers the receptive field (tested).
        """
        if self.cfg.kernel != 2:
            raise ValueError("streaming needs kernel 2 (one tap in the past per layer)")
        t = state["t"]
        h = F.linear(x_t, self.inp.weight[:, :, 0], self.inp.bias)  # (B, C)
        for block, buf in zip(self.blocks, state["past"]):
            k = t % buf.shape[1]  # the slot holding the input of d intervals ago
            out = block.step(buf[:, k], h)
            buf[:, k] = h
            h = out
        state["t"] = t + 1
        return self.head(F.silu(h)).squeeze(-1) * self.scale

