"""Learned diagnostics (plating detector, OOD detector, degradation estimator): training, calibration, versions,
rollback, input checks, the plug-in registry and windows served as the env serves them.

Everything runs on a small synthetic cell (no DFN, no data folder) with tiny models, so the
file takes seconds; the shipped checkpoints are checked when present.
"""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogates.diagnostics import KINDS, Diagnostic, DiagnosticCheckpointError, VersionRegistry, load_diagnostic
from surrogates.diagnostics.diagnostic import checkpoint_path, make_blob
from surrogates.diagnostics.kinds import KIND_CLASSES, diagnostic_kind, kind_of
from surrogates.diagnostics.metrics import auroc, best_f1_threshold, confusion
from surrogates.diagnostics.models import AEConfig, CNNConfig, DegradationCNN, PatchConfig, PlatingDetector, WindowAutoencoder
from surrogates.diagnostics.windows import Normalizer, check_inputs, initial_rest_voltage
from surrogates.training.config import load_split
from surrogates.training.diagnostics import DiagnosticConfig, train_diagnostic
from tests.support.toy_cell import toy_dataset

TINY = {
    "plating": {"d_model": 32, "n_layer": 2, "n_head": 2, "mlp_hidden": 64, "decoder_d_model": 16},
    "ood": {"context": 4, "latent": 2, "hidden": 64, "decoder_layers": 2},
    "degradation": {"width": 16, "n_layer": 4, "hidden": 32},
}
RUN = {  # per kind: what makes the tiny run learn in seconds
    "plating": dict(pretrain_epochs=3, max_epochs=25, train_stride=1),
    "ood": dict(max_epochs=40, batch_size=32),
    "degradation": dict(window=16, max_epochs=30, batch_size=128, train_stride=1),
}


def _cfg(kind: str, out, **kw) -> DiagnosticConfig:
    base = dict(kind=kind, out=str(out), data="<toy>", val_fraction=0.2, test_fraction=0.15, batch_size=64, lr=3e-3,
                warmup_steps=5, train_stride=2, progress=False, ood_data=(), patience=100, max_minutes=2.0,
                model=TINY[kind])
    return DiagnosticConfig(**{**base, **RUN[kind], **kw})


@pytest.fixture(scope="module")
def toy():
    return toy_dataset()


@pytest.fixture(scope="module")
def ood_run(tmp_path_factory, toy):
    """Two trainings of the OOD detector in one run folder: v001 then v002 (other seed and quantile)."""
    out = tmp_path_factory.mktemp("ood") / "run"
    first = train_diagnostic(_cfg("ood", out), dataset=toy, ood_datasets={"flat": toy_dataset(seed=5, slope=0.05, resistance=0.05)})
    second = train_diagnostic(_cfg("ood", out, seed=1, threshold_quantile=0.8), dataset=toy, ood_datasets={})
    return out, first, second


# --------------------------------------------------------------------------- training
@pytest.mark.slow
def test_plating_detector_pretrains_and_overfits_a_tiny_set(tmp_path, toy):
    cfg = _cfg("plating", tmp_path / "plating")
    summary = train_diagnostic(cfg, dataset=toy)
    history = summary["meta"]["history"]
    pre = [h["val_loss"] for h in history if h["phase"] == "pretrain"]
    assert len(pre) == 3 and pre[-1] < pre[0]  # masked-patch reconstruction learns
    diag = load_diagnostic("plating", "nmc", path=cfg.run_dir())
    splits, _ = load_split(cfg, toy)
    w = diag.plugin.windows(splits["train"], diag.window)
    assert 0.1 < w.label.mean() < 0.9
    p = diag.score_windows(w.x)
    assert np.all((p >= 0) & (p <= 1))
    assert auroc(p, w.label) > 0.97
    assert confusion(p >= diag.threshold, w.label)["f1"] > 0.75  # threshold chosen on validation windows
    main = [h["train_loss"] for h in history if h["phase"] == "main"]
    assert main[-1] < 0.3 * main[0]
    m = summary["meta"]["metrics"]
    assert {"val", "test", "holdout"} <= set(m) and "window_auroc" in m["test"] and "episode_f1" in m["holdout"]
    assert not (cfg.run_dir() / "last.pt").exists() and (cfg.run_dir() / "tb").exists()
    # the shipped file holds what inference needs only: the MAE decoder stays behind
    blob = torch.load(summary["path"], weights_only=True)
    assert set(blob["state_dict"]) == set(PlatingDetector(PatchConfig(**blob["model_config"])).state_dict())


@pytest.mark.slow
def test_ood_detector_fits_and_flags_another_chemistry(ood_run, toy):
    out, first, _ = ood_run
    hist = [h["train_loss"] for h in first["meta"]["history"]]
    assert hist[-1] < 0.1 * hist[0]
    m = first["meta"]["metrics"]
    assert m["ood:flat"]["flagged_fraction"] > 0.9  # a flat OCV is another cell
    assert m["ood:flat"]["auroc_vs_test"] > 0.95
    assert m["test"]["flagged_fraction"] <= 0.5


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_model(tmp_path, toy, monkeypatch):
    import surrogates.training.diagnostics as train_module

    kw = dict(pretrain_epochs=2, max_epochs=3)
    ref = train_diagnostic(_cfg("plating", tmp_path / "ref", **kw), dataset=toy)
    calls = {"n": 0}
    real = train_module._outputs

    def crash_in_epoch_4(*args, **kwargs):  # validation of the 2nd fine-tuning epoch (epoch 3)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cfg = _cfg("plating", tmp_path / "cut", **kw)
    monkeypatch.setattr(train_module, "_outputs", crash_in_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        train_diagnostic(cfg, dataset=toy)
    assert (cfg.run_dir() / "last.pt").exists() and VersionRegistry(cfg.run_dir()).versions() == []
    monkeypatch.setattr(train_module, "_outputs", real)
    resumed = train_diagnostic(cfg, dataset=toy)
    assert resumed["version"] == "v001" and len(resumed["meta"]["history"]) == 5
    a = torch.load(ref["path"], weights_only=True)
    b = torch.load(resumed["path"], weights_only=True)
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k])
    assert a["threshold"] == pytest.approx(b["threshold"])
    torch.save({"config": {"kind": "plating", "seed": 99}}, cfg.run_dir() / "last.pt")
    with pytest.raises(ValueError, match="other settings"):  # a different config does not resume silently
        train_diagnostic(cfg, dataset=toy)


# --------------------------------------------------------------------------- versions and rollback
@pytest.mark.slow
def test_ood_threshold_is_recomputed_on_retraining(ood_run, toy):
    out, first, second = ood_run
    reg = VersionRegistry(out)
    assert reg.versions() == ["v001", "v002"] and reg.current() == "v002"
    assert first["version"] == "v001" and second["version"] == "v002"
    t1, t2 = reg.metrics("v001")["threshold"], reg.metrics("v002")["threshold"]
    assert t1 != t2
    # v002's threshold is its own model's validation quantile, not v001's
    cfg = _cfg("ood", out, seed=1, threshold_quantile=0.8)
    splits, _ = load_split(cfg, toy)
    d2 = load_diagnostic("ood", "nmc", path=out)
    w = d2.plugin.windows(splits["val"], d2.window)
    thr, info = d2.plugin.calibrate(d2.raw_scores(w.x), w, cfg)
    assert thr == pytest.approx(t2, rel=1e-6) and d2.threshold == pytest.approx(t2, rel=1e-6)
    assert info["intended_false_positive_rate"] == pytest.approx(0.2)
    assert d2.version == "v002"


@pytest.mark.slow
def test_rollback_restores_previous_checkpoint_and_threshold(ood_run, tmp_path, monkeypatch, script):
    import shutil

    out, _, _ = ood_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    monkeypatch.setattr("surrogates.diagnostics.diagnostic.CHECKPOINT_DIR", tmp_path / "shipped")
    train_script = script("train_diagnostics")
    v1 = torch.load(run / "versions" / "v001" / "diagnostic.pt", weights_only=True)
    result = train_script.main(["--kind", "ood", "--chemistry", "nmc", "--out", str(run), "--rollback", "--ship"])
    assert result["version"] == "v001"
    reg = VersionRegistry(run)
    assert reg.current() == "v001" and reg.versions() == ["v001", "v002"]  # nothing deleted
    for d in (load_diagnostic("ood", "nmc", path=run), load_diagnostic("ood", "nmc")):  # run folder and shipped copy
        assert d.version == "v001" and d.threshold == v1["threshold"]
        for k, v in d.model.state_dict().items():
            assert torch.equal(v, v1["state_dict"][k])
    assert (tmp_path / "shipped" / "nmc-ood.md").exists()
    with pytest.raises(ValueError, match="nothing to roll back"):
        reg.rollback()
    # a retraining after a rollback takes a fresh number: v003, never overwriting v002
    blob = dict(v1)
    assert reg.publish(blob, {"metrics": {}}) == "v003" and reg.active() == ["v001", "v003"]


# --------------------------------------------------------------------------- inputs and outputs
def _untrained(kind: str, window: int = 32) -> Diagnostic:
    torch.manual_seed(0)
    model = {"plating": lambda: PlatingDetector(PatchConfig(window=window, **TINY["plating"])),
             "ood": lambda: WindowAutoencoder(AEConfig(window=window, **TINY["ood"])),
             "degradation": lambda: DegradationCNN(CNNConfig(window=window, width=16, n_layer=5, hidden=32))}[kind]()
    norm = Normalizer(mean=np.array([-2.0, 3.9, 300.0]), std=np.array([5.0, 0.2, 8.0]))
    return Diagnostic(make_blob(model, norm, "nmc", 10.0, 0.5, {"version": "test"}))


@pytest.mark.parametrize("kind", KINDS)
def test_score_shapes_and_input_errors(kind):
    d = _untrained(kind)
    rng = np.random.default_rng(0)
    B, L = 5, 40
    cur, volt, temp = rng.normal(-5, 3, (B, L)), rng.normal(3.9, 0.1, (B, L)), rng.normal(300, 3, (B, L))
    s = d.score(cur, volt, temp)
    assert s.shape == (B,) and s.dtype == np.float64 and np.all(np.isfinite(s))
    # a longer history is cut to its last W intervals
    np.testing.assert_allclose(s, d.score(cur[:, -32:], volt[:, -32:], temp[:, -32:]))
    assert d.score(cur[0], volt[0], temp[0]).shape == (1,)
    if kind == "plating":
        assert np.all((s >= 0) & (s <= 1))
    if kind == "degradation":
        with pytest.raises(ValueError, match="no flag"):
            d.flag(cur, volt, temp)
    else:
        assert d.flag(cur, volt, temp).dtype == bool
    with pytest.raises(ValueError, match="at least 32 intervals"):
        d.score(cur[:, :31], volt[:, :31], temp[:, :31])
    bad = volt.copy()
    bad[2, -1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite.*rows \[2\].*voltage"):
        d.score(cur, bad, temp)
    with pytest.raises(ValueError, match="same shape"):
        d.score(cur, volt[:, 1:], temp)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        d.score(cur[None], volt[None], temp[None])
    with pytest.raises(ValueError, match="dt=10.0 s"):
        d.check_dt(30.0)


def test_nan_before_the_window_is_ignored():
    d = _untrained("ood")
    cur, volt, temp = np.zeros((2, 40)), np.full((2, 40), 3.9), np.full((2, 40), 300.0)
    cur[:, :5] = np.nan  # outside the last 32 intervals
    assert np.all(np.isfinite(d.score(cur, volt, temp)))
    with pytest.raises(ValueError):
        check_inputs(cur, volt, temp, window=36)


def test_load_diagnostic_refuses_wrong_kind_and_chemistry(tmp_path):
    from surrogates.diagnostics.diagnostic import save_diagnostic

    d = _untrained("plating")
    blob = make_blob(d.model, d.normalizer, "nmc", 10.0, 0.5, {})
    path = save_diagnostic(tmp_path / "p.pt", blob)
    assert load_diagnostic("plating", "nmc", path=path).kind == "plating"
    with pytest.raises(DiagnosticCheckpointError, match="plating diagnostic, not ood"):
        load_diagnostic("ood", "nmc", path=path)
    with pytest.raises(DiagnosticCheckpointError, match="not lfp"):
        load_diagnostic("plating", "lfp", path=path)
    with pytest.raises(ValueError, match="unknown diagnostic kind"):
        load_diagnostic("wear", "nmc")
    with pytest.raises(FileNotFoundError, match="train_diagnostics.py"):
        load_diagnostic("plating", "nmc", path=tmp_path / "missing.pt")


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_diagnostic_loads_and_is_small(kind):
    path = checkpoint_path("nmc", kind)
    if not path.exists():
        pytest.skip(f"no shipped {path.name}")
    assert path.stat().st_size < 1_000_000
    assert path.with_suffix(".md").exists()
    d = load_diagnostic(kind, "nmc")
    W = d.window
    assert W == (64 if kind == "degradation" else 32) and d.dt == 10.0 and d.threshold > 0
    n = 64
    t = np.arange(W)
    cur = np.tile(np.where(t < W // 2, -5.0, -10.0), (n, 1))
    volt = np.tile(3.7 + 0.002 * t, (n, 1))
    temp = np.full((n, W), 300.0)
    s = d.score(cur, volt, temp)
    assert s.shape == (n,) and np.all(np.isfinite(s))


# --------------------------------------------------------------------------- degradation estimator
@pytest.mark.slow
def test_degradation_estimator_overfits_charge_losses(tmp_path, toy):
    summary = train_diagnostic(_cfg("degradation", tmp_path / "deg"), dataset=toy)
    m = summary["meta"]["metrics"]
    assert m["val"]["charge_r2"] > 0.9 and m["test"]["charge_r2"] > 0.9
    d = load_diagnostic("degradation", "nmc", path=tmp_path / "deg")
    assert d.kind == "degradation" and d.window == 16
    # summing the per-interval scores over a charge = charge_loss, which pads the start with rest
    i = int(np.flatnonzero(toy.lengths >= 40)[0])
    L = int(toy.lengths[i])
    cur, volt, temp = (toy.arrays[k][i, :L].astype(np.float64) for k in ("current", "voltage", "temperature"))
    rest_v, amb = float(initial_rest_voltage(toy)[i]), float(toy.initial["ambient_temperature"][i])
    total = d.charge_loss(cur, volt, temp, rest_v, amb)
    hist = lambda a, r: np.concatenate([np.full(15, r), a])  # noqa: E731
    per = [d.score(hist(cur, 0.0)[k:k + 16], hist(volt, rest_v)[k:k + 16], hist(temp, amb)[k:k + 16])[0] for k in range(L)]
    assert total.shape == (1,) and total[0] == pytest.approx(sum(per), rel=1e-5)
    true = float(toy.arrays["lithium_irreversible"][i, L - 1])
    assert total[0] == pytest.approx(true, rel=0.15)
    with pytest.raises(ValueError, match="inside a trace"):
        bad = volt.copy()
        bad[3] = np.nan
        d.charge_loss(cur, bad, temp, rest_v, amb)


def test_degradation_streaming_equals_window_scores():
    """The env steps the CNN one interval at a time; that must equal scoring rest-padded windows."""
    d = _untrained("degradation", window=32)
    with torch.no_grad():
        for block in d.model.blocks:
            block.proj.weight.mul_(5.0)  # make deep layers matter
    rng = np.random.default_rng(1)
    N, L = 3, 50
    cur, volt, temp = rng.uniform(-15, 0, (N, L)), rng.uniform(3.6, 4.1, (N, L)), rng.uniform(298, 310, (N, L))
    rest_v, amb = np.array([3.5, 3.6, 3.7]), np.array([298.0, 300.0, 305.0])
    state = d.stream_init(rest_v, amb)
    streamed = np.stack([d.stream_step(state, cur[:, k], volt[:, k], temp[:, k]) for k in range(L)], axis=1)
    for k in (0, 5, 31, 49):
        hist = lambda a, r: np.concatenate([np.repeat(r[:, None], 31, axis=1), a], axis=1)[:, k:k + 32]  # noqa: E731
        np.testing.assert_allclose(streamed[:, k], d.score(hist(cur, np.zeros(N)), hist(volt, rest_v), hist(temp, amb)),
                                   rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(streamed.sum(axis=1), d.charge_loss(cur, volt, temp, rest_v, amb), rtol=1e-4)
    # a reset row starts again from rest; the others go on untouched
    d.stream_reset_rows(state, [1], [3.6], [300.0])
    fresh = d.stream_init([3.6], [300.0])
    for buf, new in zip(state["past"], fresh["past"]):
        torch.testing.assert_close(buf[1], new[0])
    with pytest.raises(ValueError, match="does not stream"):
        _untrained("plating").stream_init(rest_v, amb)


def test_the_degradation_estimate_is_named_for_the_lithium_lost_for_good():
    """The score is the model's irreversible_lithium_loss (A.h, the target lithium_irreversible), and nothing is
    named after PyBaMM's capacity_lost, which also counts the reversibly plated lithium."""
    d = _untrained("degradation", window=32)
    assert not hasattr(d.model, "capacity_lost")
    rng = np.random.default_rng(2)
    windows = np.stack([rng.uniform(-15, 0, (4, 32)), rng.uniform(3.6, 4.1, (4, 32)), rng.uniform(298, 310, (4, 32))],
                       axis=-1).astype(np.float32)
    with torch.no_grad():
        direct = d.model.irreversible_lithium_loss(torch.from_numpy(d.normalizer(windows))).double().numpy()
    np.testing.assert_allclose(d.score_windows(windows), direct, rtol=1e-6)


def test_degradation_training_needs_a_degradation_dataset(tmp_path, toy):
    plain = toy.subset(np.arange(len(toy)))
    del plain.arrays["lithium_irreversible"]  # as in a dataset made before the channel existed
    with pytest.raises(ValueError, match="lithium_irreversible.*degradation_data.yml"):
        train_diagnostic(_cfg("degradation", tmp_path / "deg"), dataset=plain)


# --------------------------------------------------------------------------- metrics
def test_auroc_and_f1_threshold_match_brute_force():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.normal(y * 1.0, 1.0), 1)  # ties
    pos, neg = s[y], s[~y]
    brute = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert auroc(s, y) == pytest.approx(brute)
    t = best_f1_threshold(s, y)
    best = max(confusion(s >= c, y)["f1"] for c in np.unique(s))
    assert confusion(s >= t, y)["f1"] == pytest.approx(best)


@pytest.mark.slow
def test_validate_script_runs_on_the_shipped_validation_sets(tmp_path, script):
    if not all(checkpoint_path("nmc", k).exists() for k in KINDS):
        pytest.skip("shipped diagnostics missing")
    report = script("validate_diagnostics").main([
        "--chemistry", "nmc", "--data", str(tmp_path / "no-data"), "--ood-data", str(tmp_path / "lfp"),
        "--stride", "4", "--speed-batch", "64", "--out", str(tmp_path / "out"),
    ])
    assert set(report) == set(KINDS)
    assert report["plating"]["metrics"]["test"]["window_auroc"] > 0.9
    ood = report["ood"]["metrics"]
    assert {"test", "holdout"} < set(ood) and any(k.startswith("ood: lfp") for k in ood)
    assert (tmp_path / "out" / "diagnostics-nmc.md").exists()


# --------------------------------------------------------------------------- plug-ins and the env's windows
@pytest.mark.parametrize("kind", ["plating", "ood"])
def test_env_history_scores_equal_the_trainers_windows(kind, toy):
    """The first 31 intervals of an episode through the env's diagnostic-terms history (padded with the rest
    state at reset) score exactly as the windows the trainer's sampler cuts from the same sequence."""
    from envs.config import ChargingConfig
    from envs.diagnostic_terms import DiagnosticTerms

    d = _untrained(kind)
    i = int(np.flatnonzero(toy.lengths >= 40)[0])
    one = toy.subset([i])
    w = d.plugin.windows(one, d.window, stride=1)  # what training and the tests score
    assert np.all(w.x[0, :-1, 0] == 0.0) and w.start[0] == 0  # the first window reaches back into the rest
    terms = DiagnosticTerms(ChargingConfig(diagnostics=(kind,)), 1, diagnostics={kind: d})
    rest_v, amb = initial_rest_voltage(one), one.initial["ambient_temperature"]
    terms.reset_rows([0], rest_v, amb)
    env_scores = []
    for k in range(31):
        scores, _ = terms.step(*(one.arrays[ch][:, k] for ch in ("current", "voltage", "temperature")))
        env_scores.append(scores[kind][0])
    np.testing.assert_allclose(env_scores, d.score_windows(w.x[:31]), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(terms.history[0], w.x[30])


def test_plating_labels_look_at_measured_intervals_only(toy):
    w = diagnostic_kind("plating").windows(toy, 32, stride=1)
    eta = toy.arrays["plating_margin_min"]
    for m in np.random.default_rng(0).choice(len(w), 50, replace=False):
        seq, end = w.seq[m], w.start[m]
        assert w.label[m] == (eta[seq, max(0, end - 31):end + 1].min() < 0)
    assert len(np.unique(w.seq)) == len(toy)  # sequences shorter than a window count too


def test_plugins_own_their_behaviour():
    assert KINDS == tuple(KIND_CLASSES) == ("plating", "ood", "degradation")
    s = np.array([-1e-6, 0.0, 0.5, 1.0, 2.5])
    np.testing.assert_array_equal(KIND_CLASSES["plating"].penalty(s), s)
    np.testing.assert_array_equal(KIND_CLASSES["ood"].penalty(s), [0.0, 0.0, 0.0, 0.0, 1.5])
    np.testing.assert_allclose(KIND_CLASSES["degradation"].penalty(s), [0.0, 0.0, 500.0, 1000.0, 2500.0])
    for kind in KINDS:
        d = _untrained(kind)
        assert kind_of(d.model).name == kind and d.plugin.name == kind
    with pytest.raises(ValueError, match="valid kinds are: plating, ood, degradation"):
        diagnostic_kind("wear")
    assert DiagnosticConfig(kind="degradation").data_dir() == "data/nmc-degradation"
    assert DiagnosticConfig(kind="ood").window_length() == 32 and DiagnosticConfig(kind="ood").main_epochs() == 60


def test_imports_point_one_way():
    """registry.py (versions) knows nothing of diagnostic.py (scoring), which imports it; the diagnostics never
    import the training package above them."""
    root = Path(__file__).resolve().parents[3] / "surrogates" / "diagnostics"

    def imports(path):
        tree = ast.parse(path.read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert "surrogates.diagnostics.diagnostic" not in imports(root / "registry.py")
    for path in root.glob("*.py"):
        assert not any(m.startswith(("surrogates.training", "envs", "agents")) for m in imports(path)), path
