"""Using a trained generator, part 2: `evaluate --truncation`, and latent walks / fixed-z label
sweeps of class-conditional runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import ganforge
from ganforge import api
from ganforge import checkpoint as ckpt
from ganforge import latent as L
from ganforge import metrics as M
from ganforge.api import load_config
from ganforge.architecture.conditioning import build_conditional_networks
from ganforge.cli import main
from ganforge.config import raw_config
from ganforge.data import load_training_data
from ganforge.errors import GanforgeError
from ganforge.evaluate import evaluate_run
from ganforge.metrics.reference import subsample


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small networks: one intra-op thread avoids oversubscription on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomize_bn(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics, so eval-mode outputs depend on them."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


def make_conditional_run(root: Path, preset: str) -> tuple[Path, torch.nn.Module]:
    """A conditional run directory with one checkpoint of randomly initialised networks whose
    class inputs matter (random label embeddings / per-class BN scales)."""
    raw = raw_config(preset)
    raw.pop("sampling", None)  # the preset's sample filter off: tests that want it ask for it
    raw["objective"].pop("ema", None)  # a plain generator checkpoint, no EMA copy
    cfg = load_config(raw, ["train.epochs=null", "train.steps=10"])
    torch.manual_seed(4)
    G, D = build_conditional_networks(cfg, (1, 28, 28))
    _randomize_bn(G, 1)
    with torch.no_grad():  # conditional BN starts as scale 1 / shift 0: make classes differ
        for name, p in G.named_parameters():
            if "embed" in name or "gamma" in name or "beta" in name or "scale" in name \
                    or "shift" in name:
                p.add_(torch.randn_like(p) * 0.5)
    run_dir = root / preset
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    ckpt.save_checkpoint(run_dir, 10, {"generator": G, "discriminator": D}, {"note": 1})
    return run_dir, G.eval()


@pytest.fixture(scope="module")
def cond_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, torch.nn.Module]]:
    root = tmp_path_factory.mktemp("cond")
    return {p: make_conditional_run(root, p) for p in ("cgan-mnist", "projection-mnist")}


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    """A tiny trained 2-D run (raw features: evaluation is fast)."""
    return ganforge.train("gan-ring8", overrides=[
        "train.steps=40", "train.batch_size=64", "train.checkpoint_every=40",
        "monitor.progress=false", "monitor.sample_every=40", "data.options={n: 2000}",
        "objective.ema=null",  # the plain generator: this fixture predates the EMA recipe
        "device=cpu"], run_dir=tmp_path_factory.mktemp("ring") / "ring")


def _direct(G: torch.nn.Module, z: torch.Tensor, label: int | torch.Tensor) -> torch.Tensor:
    y = torch.full((z.shape[0],), label, dtype=torch.long) if isinstance(label, int) else label
    with torch.no_grad():
        return G.eval()(z, y)


# --------------------------------------------------------------------- fixed-z label sweep
@pytest.mark.parametrize("preset", ["cgan-mnist", "projection-mnist"])
def test_label_sweep_column_k_is_g_of_row_latent_and_class_k(cond_runs, preset) -> None:
    run_dir, G = cond_runs[preset]
    run = api.load(run_dir)
    z, y, x = L.label_sweep(run, rows=3, seed=5)
    assert torch.equal(z, run.latent(3, 5)) and y.tolist() == list(range(10))
    assert x.shape == (3, 10, 1, 28, 28)
    for k in range(10):
        assert torch.allclose(x[:, k], _direct(G, z, k), atol=1e-5), k
    # The class really changes the picture while the latent stays: columns differ.
    assert float((x[:, 0] - x[:, 1]).abs().mean()) > 1e-3
    # A subset of classes, in the given order.
    _, y2, x2 = L.label_sweep(run, rows=3, seed=5, classes=[7, 2])
    assert y2.tolist() == [7, 2] and x2.shape[1] == 2
    assert torch.allclose(x2[:, 0], x[:, 7], atol=1e-5)
    assert torch.allclose(x2[:, 1], x[:, 2], atol=1e-5)
    # Truncated to psi 0, every row is the mean latent: one sample per class.
    _, _, x0 = L.label_sweep(run, rows=4, seed=5, truncation=0.0)
    assert float((x0 - x0[:1]).abs().max()) == 0.0
    assert torch.allclose(x0[0, 3], _direct(G, torch.zeros(1, 100), 3)[0], atol=1e-5)
    # psi 0.5 scale: the latents of Run.sample(..., truncation=0.5), i.e. 0.5 * z
    _, _, xh = L.label_sweep(run, rows=3, seed=5, truncation=0.5)
    assert torch.allclose(xh[:, 4], _direct(G, 0.5 * z, 4), atol=1e-5)
    assert torch.allclose(xh[:, 4], run.sample(3, seed=5, truncation=0.5, labels=4), atol=1e-5)


def test_label_sweep_and_labels_refuse_bad_input(cond_runs, ring_run) -> None:
    run = api.load(cond_runs["cgan-mnist"][0])
    for bad in ([10], [-1], [3, 3], []):
        with pytest.raises(GanforgeError, match="class"):
            L.label_sweep(run, rows=2, classes=bad)
    with pytest.raises(GanforgeError, match="rows"):
        L.label_sweep(run, rows=0)
    with pytest.raises(GanforgeError, match="conditional"):
        L.label_sweep(ring_run, rows=2)
    with pytest.raises(GanforgeError, match="conditional"):
        L.latent_walk(ring_run, pairs=2, steps=3, labels=1)
    with pytest.raises(GanforgeError, match="classes 0..9"):
        L.latent_walk(run, pairs=2, steps=3, labels=12)


# ------------------------------------------------------------- walks of conditional runs
def test_walk_of_conditional_run_keeps_one_label_per_row(cond_runs) -> None:
    run_dir, G = cond_runs["cgan-mnist"]
    run = api.load(run_dir)
    pairs, steps = 3, 4
    z, x = L.latent_walk(run, pairs=pairs, steps=steps, seed=1)
    assert x.shape == (pairs, steps, 1, 28, 28)
    for i in range(pairs):  # default: walk i in class i mod K
        assert torch.allclose(x[i], _direct(G, z[i], i % 10), atol=1e-5), i
    # The labels do not cycle along a row (what a plain run.generate(flat) would do).
    flat = z.reshape(pairs * steps, -1)
    cycled = _direct(G, flat, torch.arange(pairs * steps) % 10).reshape(x.shape)
    assert float((cycled[0, 1:] - x[0, 1:]).abs().max()) > 1e-3
    z7, x7 = L.latent_walk(run, pairs=pairs, steps=steps, seed=1, labels=7)
    assert torch.equal(z7, z)
    for i in range(pairs):
        assert torch.allclose(x7[i], _direct(G, z[i], 7), atol=1e-5)
    _, xs = L.latent_walk(run, pairs=2, steps=3, seed=1, labels=[5, 0])
    assert torch.allclose(xs[0], _direct(G, L.latent_walk(run, 2, 3, 1)[0][0], 5), atol=1e-5)


def test_cli_interpolate_labels_sweep_and_conditional_walk(cond_runs, ring_run, tmp_path,
                                                           capsys) -> None:
    run_dir, G = cond_runs["cgan-mnist"]
    arr = tmp_path / "sweep.npy"
    assert main(["interpolate", str(run_dir), "--labels", "--pairs", "2", "--seed", "3",
                 "--out", str(arr)]) == 0
    assert "one class per column" in capsys.readouterr().out
    x = np.load(arr)
    z = api.load(run_dir).latent(2, seed=3)
    assert x.shape == (2, 10, 1, 28, 28)
    for k in (0, 6, 9):
        assert np.abs(x[:, k] - _direct(G, z, k).numpy()).max() < 1e-5
    sub = tmp_path / "sub.npy"
    assert main(["interpolate", str(run_dir), "--labels", "8,1", "--pairs", "2", "--seed", "3",
                 "--truncation", "0.5", "--out", str(sub)]) == 0
    xs = np.load(sub)
    assert xs.shape == (2, 2, 1, 28, 28)
    assert np.abs(xs[:, 0] - _direct(G, 0.5 * z, 8).numpy()).max() < 1e-5
    png = tmp_path / "sweep.png"
    assert main(["interpolate", str(run_dir), "--labels", "--pairs", "3", "--out",
                 str(png)]) == 0
    assert Image.open(png).size == ((10 * 30 + 2) * 2, (3 * 30 + 2) * 2)  # 10 cols, 3 rows
    # a plain walk inside one class
    walk = tmp_path / "walk.npy"
    assert main(["interpolate", str(run_dir), "--label", "4", "--pairs", "2", "--steps", "3",
                 "--seed", "2", "--out", str(walk)]) == 0
    w = np.load(walk)
    zw, _ = L.latent_walk(api.load(run_dir), pairs=2, steps=3, seed=2)
    assert np.abs(w[1] - _direct(G, zw[1], 4).numpy()).max() < 1e-5
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, needle in [
        (["--labels", "12"], "0..9"),
        (["--labels", "a,b"], "comma-separated"),
        (["--labels", "--steps", "4"], "--steps"),
        (["--labels", "--label", "2"], "--label"),
        (["--label", "10"], "0..9"),
        (["--labels", "--truncation", "nan"], "number"),
    ]:
        assert main(["interpolate", str(run_dir), *argv, "--out",
                     str(tmp_path / "bad.npy")]) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)
    assert main(["interpolate", str(ring_run.run_dir), "--labels", "--out",
                 str(tmp_path / "bad.png")]) == 2
    assert "conditional" in capsys.readouterr().err
    assert main(["interpolate", str(ring_run.run_dir), "--label", "1", "--out",
                 str(tmp_path / "bad.png")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -------------------------------------------------------------------- evaluate --truncation
def _real_subset(run: api.Run, n: int, seed: int) -> np.ndarray:
    data = load_training_data(run.config)
    return subsample(data.x, n, seed).numpy().astype(np.float32).astype(np.float64)


def test_evaluate_truncation_scores_truncated_samples_and_records_psi(ring_run) -> None:
    n, seed = 300, 1
    run = api.load(ring_run.run_dir)
    kw: dict = {"metrics": ["fid", "pr"], "n": n, "seed": seed, "cache": False}
    free = evaluate_run(run.run_dir, log=False, **kw)
    one = evaluate_run(run.run_dir, log=False, truncation=1.0, **kw)
    half = evaluate_run(run.run_dir, log=False, truncation=0.5, **kw)
    zero = evaluate_run(run.run_dir, truncation=0.0, **kw)
    assert "truncation" not in free["protocol"]
    assert one["protocol"]["truncation"] == {"psi": 1.0, "method": "scale"}
    assert zero["protocol"]["truncation"] == {"psi": 0.0, "method": "scale"}
    assert one["fid"] == free["fid"] and one["recall"] == free["recall"]  # psi 1 = none
    # psi 0.5: the scores of Run.sample(n, truncation=0.5), computed by hand
    real = _real_subset(run, n, seed)
    fake = run.sample(n, seed=seed, truncation=0.5)
    assert half["fid"] == pytest.approx(M.fid(real, fake), rel=1e-6)
    assert half["recall"] == pytest.approx(M.precision_recall(real, fake)["recall"])
    # psi 0: every fake is G(mean latent) = one point, so its covariance is 0 and
    # FID = |mu_real - G(0)|^2 + tr(Sigma_real); recall is exactly 0 (all fake k-NN radii are 0)
    g0 = run.generate(torch.zeros(1, 16)).double().numpy()[0]
    ref = float(((real.mean(0) - g0) ** 2).sum() + np.trace(np.cov(real, rowvar=False)))
    assert zero["fid"] == pytest.approx(ref, rel=1e-6)
    assert zero["recall"] == 0.0
    # Diversity falls with psi: recall 1 -> 0.5 -> 0 strictly decreasing on this run.
    assert free["recall"] > half["recall"] > zero["recall"]
    # the logged eval line carries the psi
    lines = [json.loads(s) for s in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r["kind"] == "eval"]
    assert len(evals) == 1 and evals[0]["protocol"]["truncation"]["psi"] == 0.0
    assert evals[0]["recall"] == 0.0


def test_evaluate_truncation_reaches_conditional_metrics(cond_runs) -> None:
    run_dir, G = cond_runs["cgan-mnist"]
    n = 40
    res = evaluate_run(run_dir, metrics=["cas", "intra_fid"], n=n, seed=2, log=False,
                         cache=False, truncation=0.0)
    assert res["protocol"]["truncation"] == {"psi": 0.0, "method": "scale"}
    # cas by hand: the mnist classifier on G(mean latent, k) for labels 0..9 cycled
    labels = torch.arange(n) % 10
    fake = _direct(G, torch.zeros(n, 100), labels)
    pred = M.get_extractor("mnist").logits(fake).argmax(1)
    assert res["cas"] == pytest.approx(float((pred == labels).float().mean()))
    assert all(v in (0.0, 1.0) for v in res["cas_per_class"])  # one sample per class
    # intra-FID of a generator that ignores z and is fed the mean latent: the same numbers
    from ganforge.metrics.conditional import conditional_scores

    data = load_training_data(api.load(run_dir).config)
    ref, _ = conditional_scores(lambda y: _direct(G, torch.zeros(len(y), 100), y), data.x,
                                data.y, ["intra_fid"], 10, n, "mnist", 2)
    assert res["intra_fid"] == pytest.approx(ref["intra_fid"], rel=1e-9)
    free = evaluate_run(run_dir, metrics=["intra_fid"], n=n, seed=2, log=False, cache=False)
    assert abs(free["intra_fid"] - ref["intra_fid"]) > 1e-3 * ref["intra_fid"]


def test_cli_evaluate_truncation_and_bad_psi(ring_run, capsys) -> None:
    run_dir = ring_run.run_dir
    log = run_dir / "metrics.jsonl"
    before = log.read_text()
    for argv, needle in [
        (["--truncation", "-0.5"], ">= 0"),
        (["--truncation", "1.5"], "[0, 1]"),
        (["--truncation", "nan"], "number"),
    ]:
        assert main(["evaluate", str(run_dir), "--metrics", "pr", "--n", "100", *argv]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error, exit 2
        main(["evaluate", str(run_dir), "--truncation", "0.5", "--truncation-method", "clip"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert log.read_text() == before
    assert main(["evaluate", str(run_dir), "--metrics", "fid,pr", "--n", "200", "--json",
                 "--truncation", "0", "--no-log"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["recall"] == 0.0 and res["protocol"]["truncation"] == {"psi": 0.0,
                                                                       "method": "scale"}
    # resample accepts psi > 1 (inf = no truncation) and the table names the truncation
    assert main(["evaluate", str(run_dir), "--metrics", "fid", "--n", "200", "--truncation",
                 "1.5", "--truncation-method", "resample"]) == 0
    out = capsys.readouterr().out
    assert "truncation: psi 1.5 (resample)" in out
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["protocol"]["truncation"] == {"psi": 1.5, "method": "resample"}
    assert math.isfinite(last["fid"])
