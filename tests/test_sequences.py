"""Sequences: datasets, recurrent specs, TimeGAN task and scores, CSV samples in original units."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.api import load_config
from ganforge.architecture import build_network
from ganforge.architecture.builder import plan_network
from ganforge.checkpoint import latest_checkpoint, load_checkpoint, load_module_weights
from ganforge.cli import main as cli_main
from ganforge.config import resolve_data_widths
from ganforge.data import load_dataset
from ganforge.data.sequences import (
    minmax_apply,
    minmax_fit,
    minmax_invert,
    sine_arrays,
    sliding_windows,
)
from ganforge.errors import ConfigError, DataError, SpecError
from ganforge.metrics.sequences import (
    discriminative_score,
    embedding_picture,
    predictive_score,
    repeated_score,
    sequence_scores,
)
from ganforge.tasks.timegan import build_modules
from ganforge.training.trainer import Trainer

SRC = str(Path(ganforge.__file__).resolve().parents[1])


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# ------------------------------------------------------------------------------ data
def _reference_sines(n: int, seq_len: int, dim: int, seed: int) -> np.ndarray:
    """TimeGAN's generator written as its loops, drawing from np.random's global state."""
    np.random.seed(seed)
    out = []
    for _ in range(n):
        feats = []
        for _ in range(dim):
            f = np.random.uniform(0, 0.1)
            p = np.random.uniform(0, 0.1)
            feats.append([np.sin(f * j + p) for j in range(seq_len)])
        out.append((np.asarray(feats).T + 1) * 0.5)
    return np.asarray(out)


def test_sines_match_timegan_loops_and_shape() -> None:
    np.testing.assert_array_equal(sine_arrays(40, 24, 5, seed=3), _reference_sines(40, 24, 5, 3))
    d = load_dataset("sines")
    assert d.x.shape == (10_000, 24, 5) and d.kind == "sequence"
    # f t + phi lies in [0, 2.4], so (sin + 1) / 2 lies in [0.5, 1].
    assert 0.5 <= float(d.x.min()) and float(d.x.max()) <= 1.0


def test_statsmodels_windows_are_scaled_slices_of_the_series() -> None:
    from statsmodels.datasets import macrodata

    raw = macrodata.load_pandas().data.drop(columns=["year", "quarter"]).to_numpy()
    d = load_dataset("macrodata", seq_len=24, seed=5)
    assert d.x.shape == (len(raw) - 24, 24, 12)  # TimeGAN's range(len - seq_len)
    assert float(d.x.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(d.x.max()) == pytest.approx(1.0, abs=1e-6)
    perm = np.random.RandomState(5).permutation(len(raw) - 24)
    back = minmax_invert(d.x.double().numpy(), d.info["scaling"])
    for row in (0, 7, len(perm) - 1):
        start = perm[row]
        np.testing.assert_allclose(back[row], raw[start:start + 24], rtol=1e-5)
    for name, steps in (("sunspots", 309), ("co2", 2284), ("elnino", 732)):
        assert len(load_dataset(name, seq_len=24)) == steps - 24


def test_minmax_round_trip_and_windows() -> None:
    x = np.random.default_rng(0).normal(100, 30, size=(50, 3))
    sc = minmax_fit(x)
    np.testing.assert_allclose(minmax_invert(minmax_apply(x, sc), sc), x, rtol=1e-12)
    w = sliding_windows(np.arange(10.0)[:, None], 4, seed=0)
    assert w.shape == (6, 4, 1)
    assert sorted(int(v) for v in w[:, 0, 0]) == list(range(6))
    np.testing.assert_array_equal(np.diff(w[..., 0], axis=1), 1.0)
    with pytest.raises(DataError, match="seq_len"):
        sliding_windows(np.zeros((5, 1)), 5, seed=0)


# ------------------------------------------------------------------ recurrent specs
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_shapes_match_forward(cell: str, bidirectional: bool,
                                        return_sequences: bool) -> None:
    spec = {"layers": [{cell: {"units": 6, "layers": 2, "bidirectional": bidirectional,
                               "return_sequences": return_sequences}},
                       {"dense": {"units": 3}}]}
    plans = plan_network(spec, (9, 4), "net")
    net = build_network(spec, (9, 4), "net")
    x = torch.randn(5, 9, 4)
    width = 12 if bidirectional else 6
    assert plans[0].out_shape == ((9, width) if return_sequences else (width,))
    assert tuple(net(x).shape[1:]) == plans[-1].out_shape
    rnn = net.layers[0].rnn
    _, state = rnn(x)
    h_n = state[0] if cell == "lstm" else state
    last = net.layers[0](x)
    if not return_sequences:
        # The summary of a sequence is each direction's final state (backward ends at step 0).
        final = torch.cat([h_n[-2], h_n[-1]], 1) if bidirectional else h_n[-1]
        torch.testing.assert_close(last, final)


def test_dense_acts_per_time_step_and_bad_recurrent_input() -> None:
    net = build_network({"layers": [{"dense": {"units": 2}}]}, (7, 3), "g")
    x = torch.randn(4, 7, 3)
    torch.testing.assert_close(net(x)[:, 5], net.layers[0](x[:, 5]))
    with pytest.raises(SpecError, match=r"generator.layers\[0\] \(gru\): needs a sequence"):
        plan_network({"layers": [{"gru": {"units": 4}}]}, (1, 8, 8), "generator")


def test_rgan_preset_validates_and_builds(capsys) -> None:
    assert cli_main(["inspect", "rgan-sines"]) == 0  # the widths filled from sines: 24 x 5
    assert "latent [24, 5] (normal) -> data [24, 5]" in capsys.readouterr().out
    cfg = resolve_data_widths(load_config("rgan-sines"), (24, 5))  # steps, features: 24, 5
    assert cfg.latent.full_shape == (24, 5) and cfg.generator.layers[1] == {"dense": {"units": 5}}
    g = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "generator")
    d = build_network(cfg.discriminator.model_dump(), (24, 5), "discriminator")
    z = torch.randn(3, 24, 5)
    with torch.no_grad():
        assert g(z).shape == (3, 24, 5) and d(g(z)).shape == (3, 1)
        assert float(g(z).min()) >= 0 and float(g(z).max()) <= 1  # sigmoid, data in [0, 1]


# --------------------------------------------------------------------------- scores
def test_discriminative_score_real_vs_real_and_vs_noise() -> None:
    # Reduced from TimeGAN's 2,000 iterations; measured at 400: real vs real 0.010-0.016,
    # real vs U(0, 1) noise 0.48-0.50 (3 seeds).
    a = sine_arrays(1000, seed=0)
    b = sine_arrays(1000, seed=1)
    noise = np.random.RandomState(7).uniform(0.0, 1.0, size=a.shape)
    same = discriminative_score(a, b, iterations=200, seed=0)
    far = discriminative_score(a, noise, iterations=400, seed=0)
    assert same < 0.05
    assert far > 0.4


def test_a_classifier_that_calls_everything_one_class_is_flagged() -> None:
    from ganforge.commands.sequences import one_class_note

    # identical constant sequences: every test sequence gets the same logit, so one class;
    # the test halves are equal in size, so the score is exactly 0 whatever was learned
    flat = np.full((100, 8, 3), 0.5)
    info: dict = {}
    assert discriminative_score(flat, flat.copy(), iterations=5, seed=0, details=info) == 0.0
    assert info == {"accuracy": 0.5, "one_class": True}
    # a classifier that tells two sets apart is not flagged
    a = sine_arrays(200, seed=0)
    info = {}
    far = discriminative_score(a, np.zeros_like(a), iterations=200, seed=0, details=info)
    assert far > 0.4 and info["one_class"] is False
    assert info["accuracy"] == pytest.approx(0.5 + far)
    # repeated: the flagged seeds are listed, and the CLI's note averages the others
    rep = repeated_score("discriminative", flat, flat.copy(), repeats=2, iterations=5)
    assert rep.protocol["one_class_repeats"] == [0, 1] and rep.values == [0.0, 0.0]
    assert repeated_score("discriminative", a, np.zeros_like(a), repeats=2,
                          iterations=200).protocol["one_class_repeats"] == []
    rep.values = [0.0, 0.2675]
    rep.protocol["one_class_repeats"] = [0]
    note = one_class_note("", rep)
    assert "1 of 2 classifier seeds" in note and "the other seeds is 0.2675" in note
    rep.protocol["one_class_repeats"] = []
    assert one_class_note("", rep) == ""


def test_predictive_score_prefers_real_dynamics() -> None:
    real = sine_arrays(1000, seed=0)
    shuffled = real.copy()
    rs = np.random.RandomState(0)
    for row in shuffled:  # same values, time order destroyed
        rs.shuffle(row)
    good = predictive_score(real, sine_arrays(1000, seed=2), iterations=300, seed=0)
    bad = predictive_score(real, shuffled, iterations=300, seed=0)
    assert good < bad
    a, b = real[:200], sine_arrays(200, seed=3)
    s = repeated_score("predictive", a, b, repeats=2, iterations=5, seed=4)
    # one score per seed 4, 5 (the same as computed alone), summarised by mean and std
    alone = [predictive_score(a, b, iterations=5, seed=k) for k in (4, 5)]
    assert s.values == pytest.approx(alone, abs=1e-12) and alone[0] != alone[1]
    assert s.mean == pytest.approx(np.mean(alone)) and s.std == pytest.approx(np.std(alone))
    assert s.std > 0 and s.protocol["seed"] == 4 and s.protocol["repeats"] == 2


def test_long_scores_report_progress(monkeypatch, capsys) -> None:
    from ganforge.metrics import sequences as S

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    a, b = sine_arrays(60, seed=0), sine_arrays(60, seed=3)
    S.repeated_score("discriminative", a, b, repeats=2, iterations=3, seed=0)
    assert capsys.readouterr().err == ""  # short: silent
    monkeypatch.setattr(S, "PROGRESS_ITERATIONS", 6)
    S.repeated_score("discriminative", a, b, repeats=2, iterations=3, seed=0)
    assert capsys.readouterr().err.strip().splitlines() == [
        "discriminative score: repeat 1/2 (50%)", "discriminative score: repeat 2/2 (100%)"]


def test_embedding_picture(tmp_path: Path) -> None:
    from PIL import Image

    a, b = sine_arrays(120, seed=0), sine_arrays(120, seed=1)
    path = embedding_picture(a, b, tmp_path / "emb.png", n=100)
    img = Image.open(path)
    assert img.size == (720, 378)
    arr = np.asarray(img.convert("RGB")).astype(int)
    red = ((arr[..., 0] > 180) & (arr[..., 2] < 100)).sum()
    blue = ((arr[..., 2] > 180) & (arr[..., 0] < 100)).sum()
    assert red > 100 and blue > 100


# --------------------------------------------------------------------------- TimeGAN
def _net(out: int, layers: int = 1) -> dict:
    return {"layers": [{"gru": {"units": 24, "layers": layers}}, {"dense": {"units": out}},
                       "sigmoid"]}


def _timegan_cfg(ae: int, sup: int, steps: int, n: int = 2000, batch: int = 32) -> dict:
    return {"name": "tg", "task": "timegan",
            "task_options": {"autoencoder_steps": ae, "supervised_steps": sup, "layers": 1},
            "data": {"source": "sines", "options": {"n": n}},
            "latent": {"shape": [24, 5], "distribution": "uniform"},
            "generator": _net(24),
            "discriminator": {"layers": [{"gru": {"units": 24}}, {"dense": {"units": 1}}]},
            "optim": {"g": {"lr": 0.01, "betas": [0.9, 0.999]},
                      "d": {"lr": 0.01, "betas": [0.9, 0.999]}},
            "train": {"steps": steps, "batch_size": batch, "checkpoint_every": 10_000},
            "monitor": {"progress": False, "log_every": 50, "sample_every": 10_000,
                        "grid_size": 4},
            "seed": 0, "device": "cpu"}


def _load_all(run_dir: Path, cfg) -> dict:
    mods = build_modules(cfg, (24, 5))
    _, w, _ = load_checkpoint(latest_checkpoint(run_dir))
    for k, m in mods.items():
        load_module_weights(m, w, k, run_dir)
    return mods


def test_timegan_autoencoder_phase_reconstructs_sines(tmp_path: Path) -> None:
    # Measured (3 seeds, 250 steps, batch 32, lr 0.01, 1 GRU layer of 24): held-out MSE
    # 0.0005 / 0.0022 / 0.0008 in data units; the data variance is 0.026 and predicting the
    # mean sequence gives 0.0136.
    run = ganforge.train(_timegan_cfg(250, 0, 250), run_dir=tmp_path / "ae")
    mods = _load_all(run.run_dir, run.config)
    s, e = mods["generator"], mods["embedder"]
    test = load_dataset("sines", n=1000, seed=123).x
    with torch.no_grad():
        mse = F.mse_loss(s.denormalize(s.recovery(e(s.normalize(test)))), test).item()
    baseline = F.mse_loss(test.mean(0, keepdim=True).expand_as(test), test).item()
    assert mse < 0.005
    assert mse < baseline / 3
    log = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["recon_mse"] < log[0]["recon_mse"] / 3


def test_timegan_phases_resume_and_sample(tmp_path: Path, capsys, monkeypatch) -> None:
    cfg = _timegan_cfg(2, 2, 6, n=200, batch=16)
    cfg["monitor"]["log_every"] = 1
    cfg["train"]["checkpoint_every"] = 3
    full = ganforge.train(cfg, run_dir=tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_at_3(trainer: Trainer) -> None:
        if trainer.step == 3:
            raise Killed

    with pytest.raises(Killed):  # killed right after the step-3 checkpoint (mid phase 2)
        Trainer(load_config(cfg), tmp_path / "part").fit(on_step=kill_at_3)
    resumed = ganforge.train(cfg, resume=tmp_path / "part")
    a = _load_all(full.run_dir, full.config)
    b = _load_all(resumed.run_dir, resumed.config)
    for name in a:
        for (k, v), (_, w) in zip(a[name].state_dict().items(), b[name].state_dict().items(),
                                  strict=True):
            torch.testing.assert_close(v, w, msg=f"{name}.{k}")
    log_a = [json.loads(r) for r in (full.run_dir / "metrics.jsonl").read_text().splitlines()]
    log_b = [json.loads(r) for r in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log_a] == [1, 1, 2, 2, 3, 3]
    assert [r["recon_mse"] for r in log_a] == pytest.approx([r["recon_mse"] for r in log_b])
    # No adversarial loss before the joint phase; in it, D's loss is three BCE terms near
    # chance after 2 joint steps (3 ln 2 = 2.08), and G's loss holds 100 sqrt(supervised MSE)
    # plus non-negative adversarial and moment terms.
    assert all(r["d_loss"] == 0 and r["g_loss"] == 0 for r in log_a if r["phase"] < 3)
    joint = [r for r in log_a if r["phase"] == 3]
    for rec in joint:
        assert abs(rec["d_loss"] - 3 * math.log(2)) < 0.5, rec  # measured 2.16, 1.97
        assert rec["g_loss"] >= 100 * math.sqrt(rec["sup_mse"]) + 2 * 0.3, rec
    # seqscore: its flags reach the scores (2 seeds from --seed 1, 3 iterations, 50 samples)
    # and the logged numbers are the public scores of the run's own samples
    assert cli_main(["seqscore", str(full.run_dir), "--repeats", "2", "--disc-iterations", "3",
                     "--pred-iterations", "3", "-n", "50", "--seed", "1", "--no-picture"]) == 0
    ev = [json.loads(r) for r in (full.run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    ref = sequence_scores(load_dataset("sines", n=200).x, ganforge.load(full.run_dir).sample(
        50, seed=1), repeats=2, disc_iterations=3, pred_iterations=3, seed=1)
    assert ev["kind"] == "eval" and ev["discriminative"] == pytest.approx(
        ref["discriminative"].mean, abs=1e-9)
    assert ev["predictive"] == pytest.approx(ref["predictive"].mean, abs=1e-9)
    assert ev["protocol"]["discriminative"]["repeats"] == 2
    assert ev["protocol"]["predictive"]["iterations"] == 3
    assert ev["protocol"]["discriminative"]["n_synthetic"] == 50
    # beside it, real vs real: a random half of the real set (seed 1) against the other half
    real = load_dataset("sines", n=200).x
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(1))
    rr = sequence_scores(real[perm[:100]], real[perm[100:]], repeats=2, disc_iterations=3,
                         pred_iterations=3, seed=1)
    assert ev["real_vs_real"]["discriminative"] == pytest.approx(rr["discriminative"].mean,
                                                                 abs=1e-9)
    assert ev["real_vs_real"]["predictive"] == pytest.approx(rr["predictive"].mean, abs=1e-9)
    printed = capsys.readouterr().out
    assert "custom protocol (2 seeds, 3/3 iterations): not TimeGAN's" in printed
    assert f"real vs real {rr['discriminative'].mean:.4f}" in printed
    # --quick: its own protocol, said to be quick; --no-reference drops the row
    from ganforge.commands import sequences as seqcmd

    monkeypatch.setattr(seqcmd, "QUICK", (2, 2, 2))
    assert cli_main(["seqscore", str(full.run_dir), "--quick", "-n", "20", "--no-picture",
                     "--no-reference"]) == 0
    printed = capsys.readouterr().out
    assert "quick protocol (2 seeds, 2/2 iterations)" in printed and "real vs real" not in printed
    ev = [json.loads(r) for r in (full.run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert ev["protocol"]["discriminative"]["iterations"] == 2 and "real_vs_real" not in ev
    assert not list(full.run_dir.glob("sequences_step_*.png"))  # --no-picture
    x = ganforge.load(full.run_dir).sample(7)
    lo, hi = float(load_dataset("sines", n=200).x.min()), 1.0
    assert x.shape == (7, 24, 5) and lo - 1e-5 <= float(x.min()) and float(x.max()) <= hi + 1e-5


def _reference_joint_step(nets: dict, opts: dict, xs: list, zs: list, gamma: float,
                          threshold: float) -> float:
    """TimeGAN's joint step as the reference code runs it: a fresh E(x) for each of G's and
    E/R's updates, and D called once per input (real codes, S(G(z)), G(z))."""
    e, g, s, r, d = (nets[k] for k in ("E", "G", "S", "R", "D"))

    def step(name: str, loss: torch.Tensor) -> None:
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    def sup(h: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(s(h)[:, :-1], h[:, 1:])

    def moments(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        sd = (a.var(0, unbiased=False) + 1e-6).sqrt() - (b.var(0, unbiased=False) + 1e-6).sqrt()
        return sd.abs().mean() + (a.mean(0) - b.mean(0)).abs().mean()

    def bce(y: torch.Tensor, t: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(y, torch.full_like(y, t))

    for x, z in zip(xs[:2], zs[:2], strict=True):
        h = e(x).detach()
        e_hat = g(z)
        h_hat = s(e_hat)
        g_loss = (bce(d(h_hat), 1.0) + gamma * bce(d(e_hat), 1.0)
                  + 100 * torch.sqrt(sup(h)) + 100 * moments(r(h_hat), x))
        step("generator", g_loss)
        h = e(x)
        step("embedder", 10 * torch.sqrt(F.mse_loss(r(h), x)) + 0.1 * sup(h))
    with torch.no_grad():
        h, e_hat = e(xs[2]), g(zs[2])
        h_hat = s(e_hat)
    d_loss = bce(d(h), 1.0) + bce(d(h_hat), 0.0) + gamma * bce(d(e_hat), 0.0)
    if float(d_loss.detach()) > threshold:
        step("discriminator", d_loss)
    return float(d_loss)


@pytest.mark.parametrize("d_layers", [[], [{"batch_norm": {}}]], ids=["gru_d", "batch_norm_d"])
def test_timegan_joint_step_equals_the_reference_loop(tmp_path: Path, d_layers: list) -> None:
    # The task calls D once on real and generated codes together (when D has no layer that
    # looks across the batch; with batch norm it must not) and reuses E(x) for E/R's update:
    # the networks after one joint step equal the reference code's loop from the same state.
    import copy

    from ganforge.architecture.layers_stats import couples_samples
    from ganforge.optim import build_optimizer

    cfg = _timegan_cfg(0, 0, 1, n=200, batch=16)
    cfg["discriminator"]["layers"] = [*d_layers, *cfg["discriminator"]["layers"]]
    cfg["task_options"]["d_threshold"] = 0.0  # D steps too
    # SGD: Adam's first step is lr * sign(grad), which turns float noise in a near-zero
    # gradient into a full step; SGD keeps the two runs' differences at the gradients' own
    cfg["optim"] = {k: {"name": "sgd", "lr": 0.5} for k in ("g", "d")}
    tr = Trainer(load_config(cfg), tmp_path / "run")
    task = tr.task
    assert couples_samples(task.D) == bool(d_layers)
    nets = copy.deepcopy({"E": task.E, "G": task.G, "S": task.S, "R": task.R, "D": task.D})
    og = tr.cfg.optim.g
    opts = {"generator": build_optimizer([*nets["G"].parameters(), *nets["S"].parameters()], og),
            "embedder": build_optimizer([*nets["E"].parameters(), *nets["R"].parameters()], og),
            "discriminator": build_optimizer(nets["D"].parameters(), tr.cfg.optim.d)}
    torch.manual_seed(5)
    xs = [torch.rand(16, 24, 5) for _ in range(3)]
    zs = [torch.rand(16, 24, 5) for _ in range(3)]
    batches, latents = iter(xs), iter(zs)
    task.latent = lambda n: next(latents)
    stats = task._phase_step(3, lambda: (task.sampler.denormalize(next(batches)),))
    want = _reference_joint_step(nets, opts, xs, zs, 1.0, 0.0)
    assert float(stats["d_loss"]) == pytest.approx(want, rel=1e-5)
    for name, net in (("E", task.E), ("G", task.G), ("S", task.S), ("R", task.R), ("D", task.D)):
        for (k, v), w in zip(net.state_dict().items(), nets[name].state_dict().values(),
                             strict=True):
            torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-5, msg=f"{name}.{k}")
    # and the networks did move: the comparison is not between two untouched copies
    moved = copy.deepcopy(task.D.state_dict())
    assert any(not torch.equal(a, b) for a, b in zip(moved.values(),
               Trainer(load_config(cfg), tmp_path / "fresh").task.D.state_dict().values()))


def test_timegan_ema_averages_the_sampler_and_is_what_runs_sample(tmp_path: Path) -> None:
    # objective.ema on timegan: copies up to ema_start, then theta_ema <- 0.9 theta_ema + 0.1
    # theta after each step, over the composite R(S(G(z))); training itself is unchanged.
    cfg = _timegan_cfg(2, 2, 6, n=200, batch=16)
    plain5 = ganforge.train({**cfg, "train": {**cfg["train"], "steps": 5}},
                            run_dir=tmp_path / "plain5")
    plain6 = ganforge.train(cfg, run_dir=tmp_path / "plain6")
    ema = ganforge.train({**cfg, "objective": {"ema": 0.9, "ema_start": 5}},
                         run_dir=tmp_path / "ema")
    w5 = _load_all(plain5.run_dir, plain5.config)["generator"].state_dict()
    w6 = _load_all(plain6.run_dir, plain6.config)["generator"].state_dict()
    raw = _load_all(ema.run_dir, ema.config)["generator"].state_dict()
    avg = build_modules(ema.config, (24, 5))["generator"]
    _, weights, _ = load_checkpoint(latest_checkpoint(ema.run_dir))
    load_module_weights(avg, weights, "generator_ema", ema.run_dir)
    moved = 0.0
    for k, v in w6.items():
        torch.testing.assert_close(raw[k], v, msg=k)  # the average does not touch training
        torch.testing.assert_close(avg.state_dict()[k], 0.9 * w5[k] + 0.1 * v, msg=k)
        moved = max(moved, float((avg.state_dict()[k] - v).abs().max()))
    assert moved > 1e-4  # the average is not the last weights
    loaded = ganforge.load(ema.run_dir).generator.state_dict()  # a loaded run samples the average
    for k, v in avg.state_dict().items():
        torch.testing.assert_close(loaded[k], v, msg=k)
    with pytest.raises(ConfigError, match="ema_stats=copy"):
        load_config({**cfg, "objective": {"ema": 0.9, "ema_stats": "own"}})


def test_timegan_config_errors() -> None:
    cfg = _timegan_cfg(10, 10, 15)
    with pytest.raises(ConfigError, match="exceed train.steps"):
        from ganforge.tasks.timegan import check_timegan

        check_timegan(load_config(cfg), (24, 5))
    bad = _timegan_cfg(1, 1, 5)
    bad["latent"] = {"shape": [10, 5]}
    with pytest.raises(ConfigError, match=r"latent.shape: \[24, Z\]"):
        check_timegan(load_config(bad), (24, 5))
    bad = _timegan_cfg(1, 1, 5)
    bad["task_options"]["recovery"] = _net(3)
    with pytest.raises(ConfigError, match=r"task_options.recovery.layers\[1\].dense.units is "
                       r"3, but the data has 5 features per step"):
        check_timegan(load_config(bad), (24, 5))
    bad = _timegan_cfg(1, 1, 5)
    bad["task_options"]["gama"] = 1
    with pytest.raises(ConfigError, match="task_options.gama: unknown key"):
        check_timegan(load_config(bad), (24, 5))
    assert load_config("timegan-sines").task_options["autoencoder_steps"] > 0


# ----------------------------------------------------------------- CSV, CLI, original units
def _write_series(path: Path, steps: int = 80) -> np.ndarray:
    t = np.arange(steps)
    temp = 1500 + 300 * np.sin(t / 5.0)
    flow = 0.002 * (1 + np.cos(t / 3.0))
    path.write_text("day,temperature,flow,label\n" + "".join(
        f"{i},{a:.6f},{b:.8f},x{i % 3}\n" for i, (a, b) in enumerate(zip(temp, flow, strict=True))))
    return np.stack([t, temp, flow], 1)


def test_cli_sample_writes_csv_in_original_units(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    series = _write_series(tmp_path / "s.csv")
    cfg = tmp_path / "rgan.yaml"
    cfg.write_text(f"""
name: rgan-csv
data: {{source: "csv-sequence:{tmp_path / 's.csv'}", options: {{seq_len: 12}}}}
latent: {{shape: [12, 4]}}
generator: {{layers: [{{gru: {{units: 8}}}}, {{dense: {{units: 3}}}}, sigmoid]}}
discriminator: {{layers: [{{lstm: {{units: 8, bidirectional: true, return_sequences: false}}}},
                          {{dense: {{units: 1}}}}]}}
train: {{steps: 3, batch_size: 16}}
monitor: {{progress: false, log_every: 1}}
device: cpu
""")
    run_dir = tmp_path / "run"
    assert cli_main(["train", str(cfg), "--run-dir", str(run_dir)]) == 0
    out = tmp_path / "samples.csv"
    assert cli_main(["sample", str(run_dir), "-n", "5", "--out", str(out), "--seed", "3"]) == 0
    header = out.read_text().splitlines()[0]
    assert header == "sample,step,day,temperature,flow"  # numeric columns only
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (5 * 12, 5)
    np.testing.assert_array_equal(table[:, 0], np.repeat(np.arange(5), 12))
    np.testing.assert_array_equal(table[:, 1], np.tile(np.arange(12), 5))
    # Exactly the scaled samples mapped back with the stored min/max: what sample() returns.
    run = ganforge.load(run_dir)
    scaled = run.sample(5, seed=3, scaled=True).double().numpy().reshape(-1, 3)
    lo, hi = series.min(0), series.max(0)
    np.testing.assert_allclose(table[:, 2:], scaled * (hi - lo + 1e-7) + lo, rtol=1e-6)
    np.testing.assert_allclose(table[:, 2:], run.sample(5, seed=3).numpy().reshape(-1, 3),
                               rtol=1e-7)
    assert (table[:, 3] > 1100).all() and (table[:, 3] < 1900).all()  # temperature units
    assert (table[:, 4] < 0.0041).all()  # flow units
    (tmp_path / "s.csv").unlink()  # sampling needs only the run directory
    assert cli_main(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "b.csv")]) == 0


def test_bad_sequence_inputs_exit_with_their_status(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "text.csv").write_text("a,b\nx,y\n")
    cases = [  # status 3: the data; 2: the config or spec
        (["rgan-sines", "--set", f"data.source=csv-sequence:{tmp_path}/none.csv"],
         "does not exist", 3),
        (["rgan-sines", "--set", "data.source=sunspots", "--set",  # 1 feature, G: 5
          "generator.layers[1].dense.units=5"], ("generator.layers[1].dense.units is 5, but the "
         "data has 1 features per step (samples 24x1): set it to 1, or to 'features'"), 2),
        (["timegan-sines", "--set", "latent.shape=[20,5]"], "latent.shape: [24, Z]", 2),
        (["rgan-sines", "--set", f"data.source=csv-sequence:{tmp_path}/text.csv"],
         "no numeric columns", 3),
        (["rgan-sines", "--set", "data.source=macrodata", "--set", "data.options.seq_len=500"],
         "need at least 501", 3),
    ]
    for i, (argv, msg, status) in enumerate(cases):
        run_dir = tmp_path / f"r{i}"
        code = cli_main(["train", argv[0], "--set", "data.options={}", *argv[1:], "--run-dir",
                         str(run_dir), "--set", "device=cpu", "--no-progress"])
        err = capsys.readouterr().err
        assert code == status, err
        assert msg in err, err
        assert not (run_dir / "metrics.jsonl").exists()
    # One real process: the message, exit status 3 (data) and no traceback.
    proc = subprocess.run([sys.executable, "-m", "ganforge", "train", "rgan-sines", "--set",
                           f"data.source=csv-sequence:{tmp_path}/text.csv", "--set",
                           "data.options={}"], check=False, capture_output=True, text=True,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 3
    assert "no numeric columns" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------- user arrays and CSVs with the presets
FAST = ["--set", "train.steps=2", "--set", "train.batch_size=8", "--set", "device=cpu",
        "--set", "monitor.report=false", "--set", "monitor.tensorboard=false", "--no-progress"]


def test_npy_sequences_train_with_the_rgan_preset(tmp_path: Path, capsys) -> None:
    # issue 25: the preset's data.options (seq_len, dim) reached npy_array, which took neither
    arr = np.random.default_rng(0).uniform(0.0, 1.0, size=(40, 24, 5))
    np.save(tmp_path / "a.npy", arr)
    src = f"data.source=npy:{tmp_path / 'a.npy'}"
    assert cli_main(["train", "rgan-sines", "--set", src, *FAST, "--run-dir",
                     str(tmp_path / "r")]) == 0
    x = ganforge.load(tmp_path / "r").sample(3)
    assert x.shape == (3, 24, 5)
    cases = [(["--set", "data.options.seq_len=12"],
              "data.options.seq_len is 12, but", "holds sequences of 24 steps"),
             (["--set", "data.options.dim=5"], "data.options.dim is not an option of",
              "Its options: image_size, scale, seq_len")]
    for i, (extra, *msgs) in enumerate(cases):
        code = cli_main(["train", "rgan-sines", "--set", src, *extra, *FAST, "--run-dir",
                         str(tmp_path / f"bad{i}")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert all(m in err for m in msgs), err
    # seq_len equal to the array's T is accepted
    assert load_dataset(f"npy:{tmp_path / 'a.npy'}", split="all", seq_len=24).shape == (24, 5)


def _write_wide_series(path: Path, steps: int = 60) -> np.ndarray:
    """6 columns in their own units (one around 1000) and a text column that is left out."""
    t = np.arange(steps, dtype=np.float64)
    cols = np.stack([1000 + 50 * np.sin(t / 4), 0.01 * np.cos(t / 3), t, -5 + np.sin(t / 7),
                     20 + 3 * np.sin(t / 2), 1e5 + 1e3 * np.cos(t / 5)], 1)
    names = ["load", "rate", "day", "temp", "wind", "price"]
    path.write_text(",".join(names) + ",note\n" + "".join(
        ",".join(f"{v:.6f}" for v in row) + f",n{i}\n" for i, row in enumerate(cols)))
    return cols


@pytest.mark.parametrize("preset,extra", [
    ("rgan-sines", []),
    ("timegan-macrodata", ["--set", "task_options.autoencoder_steps=1", "--set",
                           "task_options.supervised_steps=0"])])
def test_sequence_presets_follow_a_csv_series_widths(tmp_path: Path, preset: str,
                                                     extra: list[str]) -> None:
    # 6 features and windows of 10 steps: the presets say steps / features, not 24 / 5 or 12
    series = _write_wide_series(tmp_path / "s.csv")
    src = f"data.source=csv-sequence:{tmp_path / 's.csv'}"
    run_dir = tmp_path / "r"
    assert cli_main(["train", preset, "--set", src, "--set", "data.options.seq_len=10", *extra,
                     *FAST, "--run-dir", str(run_dir)]) == 0
    run = ganforge.load(run_dir)
    assert run.config.latent.shape == [10, 6]  # config.yaml holds the numbers
    spec = (run.config.task_options["recovery"] if preset.startswith("timegan")
            else run.config.generator.model_dump())
    assert spec["layers"][1] == {"dense": {"units": 6}}
    # Samples come back in the series' units: each column inside the data's [min, max] (both
    # generators end in a sigmoid), so the column around 1000 stays there, not in [0, 1].
    x = run.sample(200, seed=0)
    assert x.shape == (200, 10, 6) and x.dtype == torch.float64
    lo, hi = series.min(0), series.max(0)
    span = hi - lo
    xs = x.numpy().reshape(-1, 6)
    assert (xs.min(0) >= lo - 1e-6 * span).all() and (xs.max(0) <= hi + 1e-6 * span).all()
    assert 950 <= xs[:, 0].mean() <= 1050 and xs[:, 0].min() >= 949.99  # load: 1000 +- 50
    assert 99_000 <= xs[:, 5].mean() <= 101_000  # price: 1e5 +- 1e3
    assert xs[:, 2].mean() > 5  # day: 0..59 (an untrained sigmoid gives about the middle)
    z = run.sample(200, seed=0, scaled=True).double().numpy().reshape(-1, 6)
    assert z.min() >= 0 and z.max() <= 1
    np.testing.assert_allclose(xs, z * (span + 1e-7) + lo, rtol=1e-6, atol=1e-6)  # CSV: 6 dp
    # ganforge sample --out: the same numbers, under the CSV's column names; .npy alike
    out = tmp_path / "x.csv"
    assert cli_main(["sample", str(run_dir), "-n", "3", "--seed", "2", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "sample,step,load,rate,day,temp,wind,price"
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    want = run.sample(3, seed=2).numpy()
    np.testing.assert_allclose(table[:, 2:], want.reshape(-1, 6), rtol=1e-7, atol=1e-9)
    assert cli_main(["sample", str(run_dir), "-n", "3", "--seed", "2", "--out",
                     str(tmp_path / "x.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "x.npy", allow_pickle=False), want)


def test_widths_that_contradict_the_data_name_the_key(tmp_path: Path, capsys) -> None:
    _write_wide_series(tmp_path / "s.csv")
    src = ["--set", f"data.source=csv-sequence:{tmp_path / 's.csv'}", "--set",
           "data.options.seq_len=10"]
    tg = ["--set", "task_options.autoencoder_steps=1", "--set", "task_options.supervised_steps=0"]
    cases = [
        (["rgan-sines", "--set", "generator.layers[1].dense.units=5"],
         ("generator.layers[1].dense.units is 5, but the data has 6 features per step (samples "
         "10x6): set it to 6, or to 'features' to follow the data.")),
        (["rgan-sines", "--set", "latent.shape=[24,features]"],
         ("latent.shape[0] is 24, but the data's sequences have 10 steps (samples 10x6): set it "
         "to 10, or to 'steps' to follow the data.")),
        (["timegan-macrodata", *tg, "--set", "task_options.recovery.layers[1].dense.units=12"],
         ("task_options.recovery.layers[1].dense.units is 12, but the data has 6 features per "
         "step")),
        (["timegan-macrodata", *tg, "--set", "latent.shape=[24,6]"],
         ("latent.shape[0] is 24, but the data's sequences have 10 steps (samples 10x6). Set "
         "latent.shape: [10, Z] ([steps, features] follows the data).")),
    ]
    for i, (argv, msg) in enumerate(cases):
        code = cli_main(["train", *argv, *src, *FAST, "--run-dir", str(tmp_path / f"r{i}")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert msg in err and "Traceback" not in err, err
        assert not (tmp_path / f"r{i}" / "metrics.jsonl").exists()
    # steps on data that are not sequences
    with pytest.raises(ConfigError, match=r"latent.shape\[0\] is 'steps', the length of a "
                       r"sequence, but the data's samples have shape \[2\]"):
        load_config("gan-ring8", ["latent.shape=[steps]"])  # ring8's shape is known: checked
    # features on vectors: the last axis; an unresolved width is named, not a TypeError
    cfg = load_config("gan-ring8", ["generator.layers[-1].dense.units=features"])
    assert resolve_data_widths(cfg, (2,)).generator.layers[-1] == {"dense": {"units": 2}}
    with pytest.raises(SpecError, match=r"units is 'features', which follows the data"):
        build_network(cfg.generator.model_dump(), (2,), "generator")


# ------------------------------------------------------ variable-length sequences (ids)
LONG_CSV = ("patient,t,hr,bp,note\n"
            "b,2,70,120,x\n"
            "a,0,60,110,y\n"
            "b,1,72,121,z\n"
            "b,0,74,122,w\n"
            "c,0,80,100,q\n"
            "a,1,65,111,v\n")


def test_csv_sequence_with_ids_pads_masks_and_records_lengths(tmp_path: Path) -> None:
    from ganforge.data.sequences import save_data_info

    (tmp_path / "a.csv").write_text(LONG_CSV)
    src = f"csv-sequence:{tmp_path / 'a.csv'}"
    d = load_dataset(src, split="all", id="patient", order="t", seed=0)
    perm = np.random.RandomState(0).permutation(3)  # sequences in first-appearance order b, a, c
    assert d.info["ids"] == [["b", "a", "c"][k] for k in perm]
    assert d.x.shape == (3, 3, 3)  # 3 ids, padded to 3 steps, hr + bp + the mask channel
    assert d.info["columns"] == ["hr", "bp"]  # the id, order and text columns are not features
    lo, hi = np.array([60.0, 100.0]), np.array([80.0, 122.0])
    want = {"b": [[74, 122], [72, 121], [70, 120]], "a": [[60, 110], [65, 111]], "c": [[80, 100]]}
    for row, pid in enumerate(d.info["ids"]):
        steps = np.array(want[pid], dtype=np.float64)
        n = len(steps)
        assert d.info["lengths"][row] == n
        np.testing.assert_allclose(d.x[row, :n, :2].double().numpy(),
                                   (steps - lo) / (hi - lo + 1e-7), rtol=1e-6)
        np.testing.assert_array_equal(d.x[row, :, 2].numpy(), [1.0] * n + [0.0] * (3 - n))
        np.testing.assert_array_equal(d.x[row, n:].numpy(), 0.0)  # padding: all zeros
    varlen = d.info["variable_length"]
    assert varlen == {"id": "patient", "order": "t", "steps": 3, "truncated": 0,
                      "lengths": {"1": 1, "2": 1, "3": 1}}
    stored = json.loads(save_data_info(tmp_path, d).read_text())
    assert stored["shape"] == [3, 3] and stored["variable_length"] == varlen
    # without order: file order (b's rows come 70, 72, 74; t is then a feature unless
    # columns says otherwise); max_len cuts to the first steps
    assert load_dataset(src, split="all", id="patient").info["columns"] == ["t", "hr", "bp"]
    d2 = load_dataset(src, split="all", id="patient", max_len=2, seed=0, columns=["hr", "bp"])
    b = d2.info["ids"].index("b")
    np.testing.assert_allclose(d2.x[b, :, 0].double().numpy(), (np.array([70, 72]) - 60) / 20,
                               rtol=1e-6)
    assert d2.x.shape == (3, 2, 3) and d2.info["variable_length"]["truncated"] == 1
    bad = [({"id": "patient", "seq_len": 4}, "Remove data.options.seq_len"),
           ({"id": "who"}, "data.options.id is 'who', but the CSV has no such column"),
           ({"order": "t"}, "set data.options.id"),
           ({"id": "patient", "max_len": 0}, "max_len must be a positive integer"),
           ({"id": "patient", "columns": ["hr", "t"], "order": "t"}, "id or order column")]
    for opts, msg in bad:
        with pytest.raises(DataError, match=msg):
            load_dataset(src, split="all", **opts)
    (tmp_path / "gap.csv").write_text("patient,hr\na,1\n,2\n")
    with pytest.raises(DataError, match="id column 'patient' is empty on data row 2"):
        load_dataset(f"csv-sequence:{tmp_path / 'gap.csv'}", split="all", id="patient")


def test_mask_channel_decodes_to_lengths_and_nan_padding() -> None:
    from ganforge.data.sequences import apply_mask, mask_lengths, split_mask, with_mask_channel

    mask = np.array([[0.9, 0.8, 0.4, 0.9],   # first below 0.5 at step 2 -> length 2
                     [0.6, 0.7, 0.5, 0.5],   # never below -> 4 (0.5 is not below)
                     [0.1, 0.9, 0.9, 0.9],   # below at step 0 -> at least 1
                     [1.0, 0.0, 1.0, 1.0]])  # the steps after the first drop do not count
    x = np.concatenate([np.full((4, 4, 2), 0.25), mask[..., None]], axis=2).astype(np.float32)
    np.testing.assert_array_equal(mask_lengths(x), [2, 4, 1, 1])
    feats, lengths = split_mask(torch.from_numpy(x))
    assert feats.shape == (4, 4, 2) and lengths.tolist() == [2, 4, 1, 1]
    for row, n in enumerate(lengths):
        assert np.isfinite(feats[row, :n]).all() and np.isnan(feats[row, n:]).all()
    back = with_mask_channel(feats)  # the training representation: hard 0/1 mask, 0 padding
    np.testing.assert_array_equal(back[..., 2], np.arange(4)[None, :] < lengths[:, None])
    np.testing.assert_array_equal(back[..., :2], np.where(back[..., 2:] > 0, 0.25, 0.0).repeat(2, axis=2))
    # D's view: features times the mask, differentiably (G learns where its sequences end)
    t = torch.from_numpy(x).requires_grad_(True)
    seen = apply_mask(t)
    np.testing.assert_allclose(seen[..., 0].detach().numpy(), 0.25 * mask, rtol=1e-6)
    seen[..., 0].sum().backward()
    np.testing.assert_allclose(t.grad[..., 2].numpy(), 0.25, rtol=1e-6)
    np.testing.assert_array_equal(apply_mask(torch.from_numpy(back)).numpy(), back)


def test_d_sees_features_times_the_mask_only_on_variable_length_data() -> None:
    from types import SimpleNamespace

    from torch import nn

    from ganforge.tasks.unconditional import UnconditionalTask

    cfg = load_config("gan-ring8", ["monitor.progress=false", "train.steps=1"])
    x = torch.tensor([[[0.8, 0.6, 1.0], [0.4, 0.2, 0.3], [0.5, 0.5, 0.0]]])
    for info, want in (({"variable_length": {"steps": 3}},
                        [[0.8, 0.6, 1.0], [0.12, 0.06, 0.3], [0.0, 0.0, 0.0]]),
                       ({}, x[0].tolist())):
        ctx = SimpleNamespace(cfg=cfg, G=nn.Identity(), D=nn.Identity(), opt_g=None, opt_d=None,
                              latent=lambda n: torch.zeros(n), latent_gen=torch.Generator(),
                              step=0, scalers=None, data=SimpleNamespace(info=info))
        task = UnconditionalTask(ctx)
        np.testing.assert_allclose(task.d_input(x, 0.0)[0].numpy(), want, rtol=1e-6)


def test_variable_length_csv_writer_round_trips_ids_lengths_and_units(tmp_path: Path) -> None:
    from ganforge.data.sequences import save_data_info, split_mask, write_sequence_csv

    (tmp_path / "a.csv").write_text(LONG_CSV)
    d = load_dataset(f"csv-sequence:{tmp_path / 'a.csv'}", split="all", id="patient",
                     order="t")
    save_data_info(tmp_path, d)
    feats, lengths = split_mask(d.x)
    out = write_sequence_csv(feats, tmp_path / "out.csv", tmp_path, scaled=True)
    lines = out.read_text().splitlines()
    assert lines[0] == "patient,step,hr,bp"
    assert len(lines) - 1 == int(lengths.sum()) == 6  # real steps only
    back = load_dataset(f"csv-sequence:{out}", split="all", id="patient", order="step")
    assert back.info["variable_length"]["lengths"] == d.info["variable_length"]["lengths"]
    # in original units: the rows of each written sequence are the CSV's steps of its id
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    want = {"b": [[74, 122], [72, 121], [70, 120]], "a": [[60, 110], [65, 111]], "c": [[80, 100]]}
    for k, pid in enumerate(d.info["ids"]):
        rows = table[table[:, 0] == k]
        np.testing.assert_array_equal(rows[:, 1], np.arange(len(want[pid])))
        np.testing.assert_allclose(rows[:, 2:], want[pid], rtol=1e-6)


def test_masked_scores_ignore_what_padding_holds() -> None:
    from ganforge.data.sequences import nan_lengths

    rs = np.random.RandomState(0)
    n, t = 60, 8
    real = rs.uniform(0.3, 0.7, size=(n, t, 3)).astype(np.float32)
    fake = real[rs.permutation(n)] + 0.2  # the classifier can tell these apart
    lr, lf = rs.randint(2, t + 1, n), rs.randint(2, t + 1, n)
    pad_r = np.arange(t)[None, :] >= lr[:, None]
    pad_f = np.arange(t)[None, :] >= lf[:, None]

    def padded(x: np.ndarray, pad: np.ndarray, value: float | np.ndarray) -> np.ndarray:
        out = x.copy()
        out[pad] = value if np.isscalar(value) else np.asarray(value)[pad]
        return out

    garbage = rs.normal(5.0, 3.0, size=(n, t, 3)).astype(np.float32)
    scores = {}
    for fn, its in ((discriminative_score, 500), (predictive_score, 30)):
        nan_pad = fn(padded(real, pad_r, np.nan), padded(fake, pad_f, np.nan), iterations=its,
                     batch_size=16, seed=1)
        zeros = fn(padded(real, pad_r, 0.0), padded(fake, pad_f, 0.0), iterations=its,
                   batch_size=16, seed=1, real_lengths=lr, fake_lengths=lf)
        junk = fn(padded(real, pad_r, garbage), padded(fake, pad_f, garbage), iterations=its,
                  batch_size=16, seed=1, real_lengths=lr, fake_lengths=lf)
        assert nan_pad == zeros == junk, fn.__name__
        # read as fixed-length sequences, the padding's garbage changes the score
        full = fn(padded(real, pad_r, garbage), padded(fake, pad_f, garbage), iterations=its,
                  batch_size=16, seed=1)
        assert full != junk, fn.__name__
        scores[fn.__name__] = junk
    assert scores["discriminative_score"] > 0.2, scores  # not a trivial 0 = 0 = 0
    assert nan_lengths(padded(real, pad_r, np.nan)).tolist() == lr.tolist()
    with pytest.raises(DataError, match="NaN-padded"):
        bad = padded(real, pad_r, np.nan)
        bad[0, 0, 0] = np.nan  # a NaN inside a sequence
        discriminative_score(bad, fake, iterations=1)
    with pytest.raises(DataError, match=r"lengths must be one per sequence, in \[1, 8\]"):
        discriminative_score(real, fake, iterations=1, real_lengths=np.zeros(n, dtype=int))


def test_length_ks_is_scipys_two_sample_statistic() -> None:
    from scipy.stats import ks_2samp

    from ganforge.metrics.sequences import length_ks

    rs = np.random.RandomState(3)
    for a, b in ((rs.randint(1, 20, 300), rs.randint(3, 25, 170)),
                 (rs.randint(1, 4, 50), rs.randint(1, 4, 50)),
                 (np.array([5]), np.array([7, 7, 2]))):
        assert length_ks(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert length_ks([3, 4, 5], [5, 4, 3]) == 0.0
    assert length_ks([1, 2], [8, 9]) == 1.0


def _write_variable_length_csv(path: Path, n: int = 240, seed: int = 0) -> np.ndarray:
    """Sequences of two length groups (4-7 and 14-20 steps, half each): a sine in units
    around 10 and a cosine around 0 (+-100), ids s0, s1, ..., a time column."""
    rs = np.random.RandomState(seed)
    lengths = np.where(rs.rand(n) < 0.5, rs.randint(4, 8, n), rs.randint(14, 21, n))
    rows = ["seq,time,a,b"]
    for i, length in enumerate(lengths):
        f, p = rs.uniform(0.2, 0.6), rs.uniform(0, 3)
        rows += [f"s{i},{t},{10 + 5 * np.sin(f * t + p):.5f},{100 * np.cos(f * t + p):.4f}"
                 for t in range(length)]
    path.write_text("\n".join(rows) + "\n")
    return lengths


@pytest.mark.slow
def test_variable_length_rgan_learns_the_length_distribution(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture
                                                             ) -> None:
    from ganforge.data.sequences import nan_lengths
    from ganforge.metrics.sequences import length_ks

    real_lengths = _write_variable_length_csv(tmp_path / "v.csv")
    run_dir = tmp_path / "r"
    assert cli_main(["train", "rgan-sines", "--set", f"data.source=csv-sequence:{tmp_path}/v.csv",
                     "--set", "data.options.id=seq", "--set", "data.options.order=time",
                     "--set", "train.steps=300", "--set", "train.batch_size=64",
                     "--set", "train.d_steps=1",  # measured below at 1; at 2: KS 0.576
                     "--set", "train.checkpoint_every=1000", *FAST[4:], "--run-dir",
                     str(run_dir)]) == 0
    run = ganforge.load(run_dir)
    assert run.config.latent.shape == [20, 3]  # features: a, b and the mask channel
    assert run.variable_length()["steps"] == 20
    x = run.sample(500, seed=1)
    assert x.shape == (500, 20, 2) and x.dtype == torch.float64  # no mask channel
    lengths = nan_lengths(x.numpy())
    assert lengths.min() >= 1 and lengths.max() <= 20 and len(np.unique(lengths)) >= 4
    # Measured (seed 0, one thread): KS 0.389 after 300 steps; every sequence of full length
    # (what a fixed-length model gives) is 0.917 from the real lengths.
    ks = length_ks(real_lengths, lengths)
    assert ks < 0.55, ks
    assert length_ks(real_lengths, np.full(500, 20)) == pytest.approx(0.9167, abs=1e-4)
    vals = x.numpy()[~np.isnan(x.numpy()).all(axis=2)]
    assert 4.9 <= vals[:, 0].min() and vals[:, 0].max() <= 15.1  # original units of a
    # ganforge sample: long CSV with the id column and real steps only; .npy NaN-padded
    out = tmp_path / "s.csv"
    assert cli_main(["sample", str(run_dir), "-n", "7", "--seed", "2", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "seq,step,a,b"
    want = run.sample(7, seed=2).numpy()
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(np.bincount(table[:, 0].astype(int), minlength=7),
                                  nan_lengths(want))
    np.testing.assert_allclose(table[:, 2:], want[~np.isnan(want).all(axis=2)], rtol=1e-7)
    assert cli_main(["sample", str(run_dir), "-n", "7", "--seed", "2", "--out",
                     str(tmp_path / "s.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy", allow_pickle=False), want)
    # seqscore: the masked scores and the length KS, real vs real beside it
    capsys.readouterr()
    assert cli_main(["seqscore", str(run_dir), "--repeats", "1", "--disc-iterations", "20",
                     "--pred-iterations", "20", "-n", "240", "--no-picture"]) == 0
    printed = capsys.readouterr().out
    rec = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
           if '"eval"' in line][-1]
    assert rec["discriminative"] is not None and rec["predictive"] is not None
    assert 0.0 <= rec["length_ks"] <= 1.0 and 0.0 <= rec["real_vs_real"]["length_ks"] < 0.2
    assert f"length_ks       {rec['length_ks']:.4f}" in printed
    assert f"real vs real {rec['real_vs_real']['length_ks']:.4f}" in printed
    # evaluate: the samples compared in the training representation, plus the length KS
    from ganforge.evaluate import evaluate_run

    ev = evaluate_run(run_dir, metrics="fid", n=240, log=False)
    assert ev["length_ks"] == pytest.approx(length_ks(real_lengths, nan_lengths(
        run.sample(240, seed=0).numpy())), abs=1e-12)
    assert math.isfinite(ev["fid"])


def test_variable_length_timegan_models_the_mask_channel(tmp_path: Path) -> None:
    _write_variable_length_csv(tmp_path / "v.csv", n=40)
    run_dir = tmp_path / "t"
    assert cli_main(["train", "timegan-macrodata", "--set",
                     f"data.source=csv-sequence:{tmp_path}/v.csv", "--set", "data.options.id=seq",
                     "--set", "task_options.autoencoder_steps=1", "--set",
                     "task_options.supervised_steps=0", *FAST, "--run-dir", str(run_dir)]) == 0
    run = ganforge.load(run_dir)
    assert run.config.task_options["recovery"]["layers"][1] == {"dense": {"units": 4}}
    x = run.sample(30, seed=0).numpy()  # time, a, b; NaN after each decoded length
    assert x.shape == (30, 20, 3)
    from ganforge.data.sequences import nan_lengths

    assert ((nan_lengths(x) >= 1) & (nan_lengths(x) <= 20)).all()
