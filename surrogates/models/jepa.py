"""Joint-embedding predictive latent dynamics (I-JEPA / V-JEPA adapted to a causal cell).

Glossary (units in :mod:`surrogates.models.features`):

    x_t     inputs of control interval t: (C-rate I/I_1C, T_amb, coulomb-counted soc_t, OCV(soc_t));
            the applied current is the *action* that conditions the predictor
    init    initial condition (soc_0, T_amb, OCV(soc_0)) of the cell at rest
    y_t     standardised residuals of (V, T, eta, V_max, T_max, eta_min) at the end of interval t
    z_t     latent state of the cell after interval t (``d_latent`` per predictor layer);
            z_{-1} = init_encoder(init) is the rest state before interval 0
    P       predictor, action-conditioned latent dynamics: z_t = P(z_{t-1}, x_t) (a GRU)
    e_t     context-encoder embedding of the observed history (x, y)[0..t] (training only)
    ē_t     target-encoder embedding of the same history: an EMA copy, no gradients

Inference (``forward``/``step``, what the environment runs) is open loop and never sees y:
init_encoder -> predictor over all x -> readout. The encoders exist for pretraining only
(:meth:`JEPA.pretrain_loss`): from the context embedding e_t at a cut point t, the predictor
is rolled forward with the actions x[t+1..t+k] and regresses the target embeddings
ē[t+1..t+k] (targets lie after the context in time, as in V-JEPA's temporal masking).
Training then fits the readout alone on the frozen latents (a probe), then everything with
the supervised loss. The state of ``step`` is the GRU's hidden state, O(1) per interval.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from surrogates.models.features import MODEL_CHANNELS, N_INIT, N_INPUTS


@dataclass
class JEPAConfig:
    n_inputs: int = N_INPUTS
    """Features per interval."""
    n_init: int = N_INIT
    """Initial-condition features."""
    n_out: int = len(MODEL_CHANNELS)
    """Output channels."""
    d_latent: int = 128
    """Predictor latent width z_t (per GRU layer)."""
    n_layer: int = 2
    """Stacked GRU layers in the predictor."""
    d_action: int = 64
    """Width of the embedded interval inputs (the action) fed to the predictor."""
    d_embed: int = 64
    """Context/target encoder embedding width (the space the predictor regresses)."""
    d_hidden: int = 128
    """Hidden width of the MLPs (init encoder, action encoder, readout)."""
    horizon: int = 32
    """Pretraining: intervals the predictor is rolled forward from each context cut point."""
    n_cuts: int = 8
    """Pretraining: context cut points sampled per sequence."""
    anchor_weight: float = 1.0
    """Pretraining: weight of the open-loop (init_encoder -> predictor from t = 0) alignment term."""
    var_weight: float = 1.0
    """Pretraining: weight of the VICReg variance hinge on context embeddings."""
    cov_weight: float = 0.04
    """Pretraining: weight of the VICReg covariance penalty on context embeddings."""
    var_target: float = 1.0
    """Pretraining: per-dimension standard deviation the variance hinge asks for."""
    reg_samples: int = 1024
    """Pretraining: (sequence, interval) embeddings sampled for the variance/covariance terms."""
    ema_start: float = 0.996
    """Target-encoder EMA momentum at the start of pretraining (I-JEPA schedule)."""
    ema_end: float = 1.0
    """Target-encoder EMA momentum at the end of pretraining (linear in progress)."""


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.SiLU(), nn.Linear(d_hidden, d_out))


def gru_state(flat: torch.Tensor, n_layer: int) -> torch.Tensor:
    """``(B, n_layer * D)`` -> GRU hidden ``(n_layer, B, D)``."""
    B = flat.shape[0]
    return flat.view(B, n_layer, -1).transpose(0, 1).contiguous()


def masked_mean(loss: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``loss`` over the True entries of ``valid`` (same shape); 0 if there are none."""
    valid = valid.to(loss.dtype)
    return (loss * valid).sum() / valid.sum().clamp(min=1.0)


class HistoryEncoder(nn.Module):
    """Causal encoder of the observed history: e_t = f(init, (x, y)[0..t]) ``(B, L, d_embed)``."""

    def __init__(self, cfg: JEPAConfig):
        super().__init__()
        self.embed = nn.Linear(cfg.n_inputs + cfg.n_out, cfg.d_embed)
        self.h0 = nn.Linear(cfg.n_init, cfg.d_embed)
        self.gru = nn.GRU(cfg.d_embed, cfg.d_embed, batch_first=True)
        self.out = nn.Linear(cfg.d_embed, cfg.d_embed)  # unbounded output, so the variance hinge can be met

    def forward(self, x: torch.Tensor, y: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        u = self.embed(torch.cat([x, y], dim=-1))  # (B, L, E)
        h, _ = self.gru(u, torch.tanh(self.h0(init))[None])  # (B, L, E)
        return self.out(h)  # (B, L, E)


class JEPA(nn.Module):
    """Latent-dynamics surrogate pretrained as a JEPA (see module docstring)."""

    arch = "jepa"
    training_modules = ("context_encoder", "target_encoder", "bridge", "head")
    """Pretraining machinery: not shipped in checkpoints (see :func:`surrogates.models.inference_only`)."""

    def __init__(self, cfg: JEPAConfig):
        super().__init__()
        self.cfg = cfg
        D, NL = cfg.d_latent, cfg.n_layer
        # inference path
        self.init_encoder = mlp(cfg.n_init, cfg.d_hidden, NL * D)  # init -> z_{-1}
        self.action_encoder = mlp(cfg.n_inputs, cfg.d_hidden, cfg.d_action)  # x_t -> action embedding
        self.predictor = nn.GRU(cfg.d_action, D, num_layers=NL, batch_first=True)  # z_t = P(z_{t-1}, x_t)
        self.readout = mlp(D, cfg.d_hidden, cfg.n_out)  # z_t -> y_t
        # pretraining only
        self.context_encoder = HistoryEncoder(cfg)
        self.bridge = nn.Linear(cfg.d_embed, NL * D)  # context embedding -> predictor state
        self.head = nn.Linear(D, cfg.d_embed)  # predictor latent -> target-embedding space
        # Zero output layer: an untrained model predicts zero residuals, i.e. the quasi-static cell.
        nn.init.zeros_(self.readout[-1].weight)
        nn.init.zeros_(self.readout[-1].bias)
        self.target_encoder = copy.deepcopy(self.context_encoder)
        self.target_encoder.requires_grad_(False)

    # ------------------------------------------------------------------ inference path
    def latents(self, x: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """Open-loop latent trajectory z_0..z_{L-1} (top predictor layer) ``(B, L, d_latent)``."""
        h0 = gru_state(torch.tanh(self.init_encoder(init)), self.cfg.n_layer)  # (NL, B, D)
        z, _ = self.predictor(self.action_encoder(x), h0)  # (B, L, D)
        return z

    def forward(self, x: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """x ``(B, L, n_inputs)``, init ``(B, n_init)`` -> ``(B, L, n_out)``."""
        return self.readout(self.latents(x, init))  # (B, L, n_out)

    def initial_state(self, batch: int, init: torch.Tensor) -> dict:
        """The rest state z_{-1}. State: ``h`` ``(B, n_layer, d_latent)`` (batch first, for per-row resets)."""
        if init.shape[0] != batch:
            raise ValueError(f"init has {init.shape[0]} rows, expected batch={batch}")
        h = torch.tanh(self.init_encoder(init)).view(batch, self.cfg.n_layer, self.cfg.d_latent)
        return {"h": h}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """x_t ``(B, n_inputs)`` -> y_t ``(B, n_out)`` and the new state (the old one is left intact)."""
        h = state["h"].transpose(0, 1).contiguous()  # (NL, B, D)
        z, h = self.predictor(self.action_encoder(x_t)[:, None], h)  # (B, 1, D), (NL, B, D)
        return self.readout(z[:, 0]), {"h": h.transpose(0, 1)}

    def readout_parameters(self) -> list[nn.Parameter]:
        """Parameters of the readout head alone (the probe trained on frozen pretrained latents)."""
        return list(self.readout.parameters())

    # ------------------------------------------------------------------ JEPA pretraining
    @staticmethod
    def sample_cuts(
        mask: torch.Tensor, n_cuts: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random context cut points: index tensors ``(rows, times)``, each ``(B * n_cuts,)``.

        A cut t has at least one valid target after it (t <= length - 2); rows shorter than two
        intervals get t = 0 and their windows are masked out. Usable in a ``collate_fn``.
        """
        B = mask.shape[0]
        length = mask.sum(1)  # (B,)
        u = torch.rand(B, n_cuts, generator=generator, device=mask.device)  # (B, n_cuts)
        t = (u * (length - 1).clamp(min=0)[:, None]).long()  # uniform in [0, length - 2]
        rows = torch.arange(B, device=mask.device)[:, None].expand(B, n_cuts)
        return rows.reshape(-1), t.reshape(-1)

    def pretrain_loss(
        self,
        x: torch.Tensor,
        init: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        cuts: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_parts: bool = False,
    ):
        """JEPA objective on sequences with known outputs.

        Args:
            x: ``(B, L, n_inputs)``; init: ``(B, n_init)``; y: ``(B, L, n_out)`` (NaN where padded);
            mask: ``(B, L)`` bool, valid intervals.
            cuts: optional ``(rows, times)`` from :meth:`sample_cuts`; sampled here (torch's global
                RNG) when None.
            return_parts: also return a dict of the detached loss components.
        Returns:
            scalar loss ``predict + anchor_weight * anchor + var_weight * var + cov_weight * cov``.
        """
        cfg = self.cfg
        B, L, _ = x.shape
        mask = mask.bool()
        x = torch.nan_to_num(x)
        y = torch.nan_to_num(y) * mask[..., None]  # (B, L, C)
        e = self.context_encoder(x, y, init)  # (B, L, E)
        with torch.no_grad():  # stop-gradient targets, layer-normed as in I-JEPA
            target = self.target_encoder(x, y, init)  # (B, L, E)
            target = F.layer_norm(target, target.shape[-1:])

        # 1. Predict the future from a context: e_t -> bridge -> roll P with x[t+1..t+K] -> ē[t+1..t+K].
        # Rolling the full horizon and scoring every step covers all horizons k = 1..K at once.
        rows, t = cuts if cuts is not None else self.sample_cuts(mask, cfg.n_cuts)
        steps = t[:, None] + torch.arange(1, cfg.horizon + 1, device=x.device)  # (N, K)
        inside = steps < L
        steps = steps.clamp(max=L - 1)
        r = rows[:, None]
        valid = inside & mask[r, steps] & mask[rows, t][:, None]  # (N, K)
        h0 = gru_state(torch.tanh(self.bridge(e[rows, t])), cfg.n_layer)  # (NL, N, D)
        z, _ = self.predictor(self.action_encoder(x[r, steps]), h0)  # (N, K, D)
        err = F.smooth_l1_loss(self.head(z), target[r, steps], reduction="none").mean(-1)  # (N, K)
        predict = masked_mean(err, valid)

        # 2. Anchor: the open-loop path (init_encoder -> P from t = 0), what inference runs, regresses
        # the same targets, so the readout reads one latent space whether z came from context or init.
        z_open = self.latents(x, init)  # (B, L, D)
        err = F.smooth_l1_loss(self.head(z_open), target, reduction="none").mean(-1)  # (B, L)
        anchor = masked_mean(err, mask)

        # 3. Anti-collapse: VICReg variance hinge + covariance penalty on context embeddings, as in
        # latent-dynamics JEPAs (e.g. PLDM). The EMA target and the predictor's asymmetry alone leave
        # a constant embedding as a (slow) fixed point, and a recurrent encoder over (x, y) can also
        # drift to encoding x only; keeping every dimension spread across (sequence, interval) samples
        # and decorrelated forces the embedding to carry information, and the EMA target inherits it.
        flat = e[mask]  # (n, E)
        if flat.shape[0] > cfg.reg_samples:
            flat = flat[torch.randperm(flat.shape[0], device=x.device)[: cfg.reg_samples]]
        if flat.shape[0] >= 2:
            flat = flat - flat.mean(0)
            std = torch.sqrt(flat.var(0) + 1e-4)  # (E,)
            var = F.relu(cfg.var_target - std).mean()
            cov = flat.T @ flat / (flat.shape[0] - 1)  # (E, E)
            cov = (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / cov.shape[0]
        else:
            var = cov = e.sum() * 0.0

        loss = predict + cfg.anchor_weight * anchor + cfg.var_weight * var + cfg.cov_weight * cov
        if return_parts:
            parts = {"predict": predict, "anchor": anchor, "var": var, "cov": cov}
            return loss, {k: v.detach() for k, v in parts.items()}
        return loss

    def ema_momentum(self, progress: float) -> float:
        """Scheduled EMA momentum at ``progress`` in [0, 1] of pretraining (linear ema_start -> ema_end)."""
        progress = min(max(progress, 0.0), 1.0)
        return self.cfg.ema_start + (self.cfg.ema_end - self.cfg.ema_start) * progress

    @torch.no_grad()
    def ema_update(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * context; call after each optimiser step."""
        tgt = list(self.target_encoder.parameters())
        src = [p.detach() for p in self.context_encoder.parameters()]
        torch._foreach_mul_(tgt, momentum)
        torch._foreach_add_(tgt, src, alpha=1.0 - momentum)
