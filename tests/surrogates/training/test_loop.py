"""The one training loop: its schedule, exact resumption, and DistributedDataParallel over two gloo ranks on CPU.

Tiny models on the toy cell of :mod:`tests.support.toy_cell` (no DFN, no data folder).
"""

import math
import os
import socket

import numpy as np
import pytest
import torch

from surrogates.training import loop
from surrogates.training.config import TrainingConfig, load_split
from surrogates.training.diagnostics import DiagnosticConfig, train_diagnostic
from surrogates.training.surrogate import SurrogateTask, TrainConfig, train
from tests.support.toy_cell import toy_dataset

TINY_JEPA = {"d_latent": 16, "n_layer": 1, "d_action": 8, "d_embed": 8, "d_hidden": 16, "horizon": 4, "n_cuts": 2}
TINY_PLATING = {"d_model": 16, "n_layer": 1, "n_head": 1, "mlp_hidden": 32, "decoder_d_model": 16}


def _jepa_config(out, **kw) -> TrainConfig:
    base = dict(arch="jepa", out=str(out), data="<toy>", batch_size=8, pretrain_epochs=1, readout_epochs=1, max_epochs=3,
                val_fraction=0.2, test_fraction=0.2, holdout_family="", warmup_steps=2, threads=1, progress=False,
                patience=100, model=TINY_JEPA)
    return TrainConfig(**{**base, **kw})


def _plating_config(out, **kw) -> DiagnosticConfig:
    base = dict(kind="plating", out=str(out), data="<toy>", val_fraction=0.2, test_fraction=0.15, batch_size=64,
                warmup_steps=5, pretrain_epochs=1, max_epochs=2, progress=False, ood_data=(), patience=100,
                model=TINY_PLATING)
    return DiagnosticConfig(**{**base, **kw})


def test_lr_schedule_warms_up_then_decays_to_a_twentieth():
    cfg = TrainingConfig(lr=1e-2, warmup_steps=10)
    lrs = [loop.lr_at(cfg, s, 110) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # then never rising
    assert lrs[60] == pytest.approx(1e-2 / 20 + (1e-2 - 1e-2 / 20) / 2)  # half way down the cosine
    assert lrs[110] == pytest.approx(1e-2 / 20)


def test_configs_share_one_base():
    for cls in (TrainConfig, DiagnosticConfig):
        assert issubclass(cls, TrainingConfig)
    # an old checkpoint's config (a setting since removed) still gives its split
    old = {**DiagnosticConfig().to_dict(), "epochs": 0, "seed": 3}
    assert DiagnosticConfig.from_dict(old).seed == 3


def test_a_stopped_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    """JEPA through its three phases (pretrain with the global RNG and an EMA, readout, finetune); stopped in the
    validation of epoch 3 (the second finetune epoch), then rerun: the same weights, optimiser and best loss."""
    toy = toy_dataset(n=30, length=40)
    ref = train(_jepa_config(tmp_path / "ref"), dataset=toy)

    cfg = _jepa_config(tmp_path / "cut")
    real, calls = SurrogateTask.validate, {"n": 0}

    def stop_in_epoch_3(self, phase):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, phase)

    monkeypatch.setattr(SurrogateTask, "validate", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, dataset=toy)
    cut = torch.load(cfg.run_dir() / "last.pt", weights_only=True)
    assert cut["epoch"] == 3 and cut["optimizer"]["phase"] == "finetune" and cut["optimizer"]["state"]["state"]
    assert [h["phase"] for h in cut["history"]] == ["pretrain", "readout", "finetune"] and math.isfinite(cut["best"])
    monkeypatch.setattr(SurrogateTask, "validate", real)
    resumed = train(cfg, dataset=toy)

    a = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)
    b = torch.load(cfg.run_dir() / "last.pt", weights_only=True)
    assert b["epoch"] == a["epoch"] == 5 and b["global_step"] == a["global_step"] and b["best"] == a["best"]
    assert [h["epoch"] for h in b["history"]] == list(range(5))
    for k, v in a["modules"]["model"].items():
        torch.testing.assert_close(b["modules"]["model"][k], v, rtol=0, atol=0)
    for k, v in a["optimizer"]["state"]["state"].items():
        torch.testing.assert_close(b["optimizer"]["state"]["state"][k]["exp_avg"], v["exp_avg"], rtol=0, atol=0)
    assert resumed["meta"]["test"] == ref["meta"]["test"]
    assert "jepa_readout_only_validation" in resumed["meta"]
    # the shipped checkpoint holds inference weights only (no JEPA training modules) and loads strictly
    best = torch.load(resumed["best"], weights_only=True)
    assert not any(k.startswith(("target_encoder", "context_encoder")) for k in best["state_dict"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, ports: tuple[int, int], out: str) -> None:
    """One torchrun-like process: trains JEPA (three phases) and the plating detector (MAE, then supervised) with
    DDP over gloo, and writes its final weights. Each training starts (and ends) its own process group."""
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    real_fit = loop.fit

    def fit_and_dump(task, cfg, ctx):
        result = real_fit(task, cfg, ctx)
        torch.save({name: m.state_dict() for name, m in task.modules.items()}, f"{out}/{task.name}-rank{rank}.pt")
        return result

    loop.fit = fit_and_dump
    toy = toy_dataset(n=30, length=40)
    os.environ["MASTER_PORT"] = str(ports[0])
    train(_jepa_config(f"{out}/jepa", device="cpu"), dataset=toy)
    os.environ["MASTER_PORT"] = str(ports[1])
    train_diagnostic(_plating_config(f"{out}/plating", device="cpu"), dataset=toy)


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    torch.multiprocessing.spawn(_rank, args=(2, (_free_port(), _free_port()), str(tmp_path)), nprocs=2, join=True)
    for name in ("jepa", "plating"):
        a = torch.load(tmp_path / f"{name}-rank0.pt", weights_only=True)
        b = torch.load(tmp_path / f"{name}-rank1.pt", weights_only=True)
        for module in a:
            for k, v in a[module].items():
                assert torch.equal(v, b[module][k]), (name, module, k)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "jepa" / "tb"))
    ea.Reload()
    lrs = [e.value for e in ea.Scalars("charts/learning_rate")]
    # each rank took half of every epoch's batches, and the finetune schedule counted those steps
    cfg = _jepa_config(tmp_path / "jepa")
    splits, _ = load_split(cfg, toy_dataset(n=30, length=40))
    per_rank = math.ceil(len(splits["train"]) / cfg.batch_size) // 2
    steps = cfg.max_epochs * per_rank
    np.testing.assert_allclose(lrs[-steps:], [loop.lr_at(cfg, s, steps) for s in range(steps)], rtol=1e-6)
    assert len(lrs) == (cfg.pretrain_epochs + cfg.readout_epochs + cfg.max_epochs) * per_rank
    assert (tmp_path / "jepa" / "best.pt").exists() and (tmp_path / "plating" / "versions" / "v001").exists()
    history = torch.load(tmp_path / "jepa" / "last.pt", weights_only=True)["history"]
    assert [h["phase"] for h in history] == ["pretrain", "readout", "finetune", "finetune", "finetune"]
    assert np.isfinite(history[-1]["voltage_mae_mV"])
