"""Using a trained generator: latent walks, truncation, arithmetic, export, model card."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ganforge import api
from ganforge import checkpoint as ckpt
from ganforge import latent as L
from ganforge.api import load_config
from ganforge.apps.card import render_card, summarize_alarms, summarize_training, write_card
from ganforge.apps.export import (
    conditioning_inputs,
    export_generator,
    load_exported,
    load_for_use,
    read_meta,
)
from ganforge.architecture import build_network
from ganforge.cli import main
from ganforge.errors import GanforgeError

STEPS_ONLY = ["train.epochs=null", "train.steps=100"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small networks: one intra-op thread avoids oversubscription on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomize_bn(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and affine weights, so eval-mode outputs depend on
    them (a fresh BN layer is the identity in eval mode)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


def make_run(root: Path, name: str, preset: str = "dcgan-mnist",
             overrides: list[str] | None = None, ema: bool = False, step: int = 7
             ) -> tuple[Path, torch.nn.Module, torch.nn.Module | None]:
    """A run directory with a config and one checkpoint of randomly initialised networks."""
    # the checkpoint holds an EMA generator only when asked; the config never (presets may
    # switch EMA on), so the loader's own choice of module is the trained generator
    cfg = load_config(preset, STEPS_ONLY + ["objective.ema=null"] + list(overrides or []))
    torch.manual_seed(3)
    G = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "generator")
    D = build_network(cfg.discriminator.model_dump(), G.out_shape, "discriminator")
    _randomize_bn(G, 1)
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    models: dict[str, torch.nn.Module] = {"generator": G, "discriminator": D}
    G_ema = None
    if ema:
        G_ema = copy.deepcopy(G)
        with torch.no_grad():
            for p in G_ema.parameters():
                p.mul_(0.8).add_(0.01)
        _randomize_bn(G_ema, 2)
        models["generator_ema"] = G_ema
    ckpt.save_checkpoint(run_dir, step, models, {"note": 1})
    return run_dir, G.eval(), None if G_ema is None else G_ema.eval()


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    run_dir, G, _ = make_run(tmp_path_factory.mktemp("use"), "dcgan")
    return run_dir, G


# ------------------------------------------------------------------------------ interpolation
def test_lerp_and_slerp_match_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 100, generator=g), torch.randn(4, 100, generator=g)
    t = [0.0, 0.25, 0.5, 1.0]
    lin = L.lerp(z0, z1, t)
    assert lin.shape == (4, 4, 100)
    assert torch.allclose(lin[:, 1], 0.75 * z0 + 0.25 * z1, atol=1e-6)
    # Orthonormal endpoints: slerp walks the unit circle, cos(t pi/2) e1 + sin(t pi/2) e2.
    e = torch.eye(3)[:2]
    s = L.slerp(e[:1], e[1:], torch.linspace(0, 1, 7))[0]
    ang = torch.linspace(0, 1, 7) * math.pi / 2
    ref = torch.stack([ang.cos(), ang.sin(), torch.zeros(7)], dim=1)
    assert torch.allclose(s, ref, atol=1e-6)
    # Equal-norm endpoints keep their norm all along the path (a lerp would shrink it).
    z1n = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)
    path = L.slerp(z0, z1n, torch.linspace(0, 1, 9))
    norms = path.norm(dim=2)
    assert torch.allclose(norms, z0.norm(dim=1, keepdim=True).expand_as(norms), rtol=1e-5)
    mid_lerp = L.lerp(z0, z1n, [0.5])[:, 0].norm(dim=1)
    assert bool((mid_lerp < 0.9 * z0.norm(dim=1)).all())
    # Endpoints bit for bit; parallel endpoints fall back to lerp.
    assert torch.equal(path[:, 0], z0) and torch.equal(path[:, -1], z1n)
    par = L.slerp(z0[:1], 2 * z0[:1], [0.5])
    assert torch.allclose(par[0, 0], 1.5 * z0[0], atol=1e-5)


def test_interpolation_endpoints_equal_the_two_source_samples(mnist_run) -> None:
    run = api.load(mnist_run[0])
    pairs, steps, seed = 3, 5, 11
    z, x = L.latent_walk(run, pairs=pairs, steps=steps, seed=seed)
    ends = run.latent(2 * pairs, seed)
    assert z.shape == (pairs, steps, 100) and x.shape == (pairs, steps, 1, 28, 28)
    assert torch.equal(z[:, 0], ends[:pairs]) and torch.equal(z[:, -1], ends[pairs:])
    start, end = run.generate(ends[:pairs]), run.generate(ends[pairs:])
    assert torch.allclose(x[:, 0], start, atol=1e-5)  # other batch: float rounding only
    assert torch.allclose(x[:, -1], end, atol=1e-5)
    # The walk really moves: the middle differs from both ends.
    mid = x[:, steps // 2]
    assert float((mid - start).abs().mean()) > 1e-3 and float((mid - end).abs().mean()) > 1e-3
    # Uniform latents: auto picks lerp, whose middle is the average latent.
    assert L.interpolation_method("uniform") == "lerp"
    assert L.interpolation_method("normal") == "slerp"


# --------------------------------------------------------------------------------- truncation
def test_truncation_zero_gives_one_sample_for_all_latents(mnist_run) -> None:
    run = api.load(mnist_run[0])
    free = run.sample(8, seed=4)
    assert float(free.std(dim=0).mean()) > 1e-3
    for method in ("scale", "resample"):
        x = run.sample(8, seed=4, truncation=0.0, truncation_method=method)
        assert float((x - x[:1]).abs().max()) == 0.0, method
        assert torch.allclose(x[0], run.generate(torch.zeros(1, 100))[0], atol=1e-6)
    assert torch.equal(run.sample(8, seed=4, truncation=1.0), free)  # psi 1 = no truncation


def test_truncation_math_and_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20_000, 10, generator=g)
    assert torch.allclose(L.truncate(z, 0.7), 0.7 * z, atol=1e-6)
    c = torch.full((10,), 2.0)
    assert torch.allclose(L.truncate(z, 0.5, center=c), c + 0.5 * (z - c), atol=1e-6)
    out = L.truncate(z, 1.0, "normal", "resample", seed=1)
    inside = z.abs() <= 1.0
    assert float(out.abs().max()) <= 1.0
    assert torch.equal(out[inside], z[inside])  # components already inside are kept
    assert not torch.equal(out[~inside], z[~inside])
    # Each component is then N(0, 1) truncated to [-1, 1]: check std against scipy.
    from scipy.stats import truncnorm

    ref = float(truncnorm.std(-1.0, 1.0))
    assert abs(L.truncated_normal_std(1.0) - ref) < 1e-9
    assert abs(float(out.std()) - ref) < 0.005 and abs(float(out.mean())) < 0.005
    u = torch.rand(20_000, 10, generator=g) * 2 - 1
    ut = L.truncate(u, 0.5, "uniform", "resample", seed=2)
    assert float(ut.abs().max()) <= 0.5
    assert abs(float(ut.std()) - 0.5 / math.sqrt(3)) < 0.005
    assert torch.equal(L.truncate(z, math.inf, "normal", "resample"), z)
    for bad in [(-0.1, "scale"), (1.5, "scale"), (0.5, "clip"), (float("nan"), "resample")]:
        with pytest.raises(GanforgeError):
            L.truncate(z, *bad)


def test_latent_arithmetic_is_sum_of_concept_means() -> None:
    g = torch.Generator().manual_seed(5)
    a, b, c = (torch.randn(3, 16, generator=g) for _ in range(3))
    v = L.latent_arithmetic([a, c], [b])
    assert torch.allclose(v, a.mean(0) - b.mean(0) + c.mean(0), atol=1e-6)
    j = L.jitter(v, 9, scale=0.25, seed=1)
    assert j.shape == (9, 16) and torch.equal(j[0], v)
    assert float((j - v).abs().max()) <= 0.25 + 1e-6 and float((j[1:] - v).abs().max()) > 0.1
    with pytest.raises(GanforgeError):
        L.latent_arithmetic([a], [torch.randn(3, 8)])


# ------------------------------------------------------------------------------------ export
def test_onnx_export_matches_pytorch(mnist_run, tmp_path: Path) -> None:
    import onnxruntime as ort

    run_dir, G = mnist_run
    out = tmp_path / "g.onnx"
    res = export_generator(run_dir, "onnx", out)
    meta = read_meta(out)
    assert meta == res.meta
    assert meta["inputs"][0]["shape"] == ["batch", 100]
    assert meta["inputs"][0]["distribution"] == {"type": "normal", "mean": 0.0, "std": 1.0}
    assert meta["outputs"][0]["shape"] == ["batch", 1, 28, 28]
    assert meta["outputs"][0]["range"] == [-1.0, 1.0]
    assert meta["conditioning"] == [] and meta["run"]["weights"] == "generator"
    assert meta["run"]["step"] == 7 and meta["verification"]["max_abs_diff"] < 1e-4
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # the batch dimension is dynamic
        z = torch.randn(n, 100, generator=torch.Generator().manual_seed(n))
        (got,) = sess.run(None, {"z": z.numpy()})
        with torch.no_grad():
            ref = G(z).numpy()
        assert got.shape == (n, 1, 28, 28)
        assert np.abs(got - ref).max() < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_torchscript_and_safetensors_exports_reproduce_generator(mnist_run, tmp_path) -> None:
    run_dir, G = mnist_run
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ref = G(z)
    export_generator(run_dir, "torchscript", tmp_path / "g.pt")
    ts = torch.jit.load(str(tmp_path / "g.pt"))
    assert torch.allclose(ts(z), ref, atol=1e-6)
    export_generator(run_dir, "safetensors", tmp_path / "g.safetensors")
    m = load_exported(tmp_path / "g.safetensors")
    with torch.no_grad():
        assert torch.equal(m(z), ref)
    assert read_meta(tmp_path / "g.safetensors")["format"] == "safetensors"


def test_spectral_norm_is_folded_and_the_source_network_survives(tmp_path: Path) -> None:
    run_dir, _, _ = make_run(tmp_path, "sn", preset="gan-ring8",
                             overrides=["generator.spectral_norm=true"])
    usable = load_for_use(run_dir)
    z = torch.randn(16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = usable.run.generator(z)
    from ganforge.apps.export import _baked

    baked = _baked(usable.run.generator)
    assert not any("parametrizations" in k for k in baked.state_dict())
    with torch.no_grad():
        assert torch.allclose(baked(z), ref, atol=1e-6)
        assert torch.equal(usable.run.generator(z), ref)  # the original still runs
    export_generator(run_dir, "torchscript", tmp_path / "sn.pt")
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(tmp_path / "sn.pt"))(z), ref, atol=1e-6)


def test_export_prefers_ema_weights(tmp_path: Path) -> None:
    run_dir, G, G_ema = make_run(tmp_path, "ema", ema=True)
    assert G_ema is not None
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw, ema = G(z), G_ema(z)
    assert float((raw - ema).abs().max()) > 1e-2
    res = export_generator(run_dir, "safetensors", tmp_path / "e.safetensors")
    assert res.meta["run"]["weights"] == "generator_ema"
    with torch.no_grad():
        assert torch.equal(load_exported(tmp_path / "e.safetensors")(z), ema)
    export_generator(run_dir, "safetensors", tmp_path / "r.safetensors", weights="raw")
    with torch.no_grad():
        assert torch.equal(load_exported(tmp_path / "r.safetensors")(z), raw)
    # An EMA store with parameters only: BN statistics come from the trained generator.
    path = ckpt.latest_checkpoint(run_dir)
    from safetensors.torch import load_file, save_file

    w = load_file(str(path / "model.safetensors"))
    buffers = {k for k, _ in G_ema.named_buffers()}
    w = {k: v for k, v in w.items()
         if not (k.startswith("generator_ema.") and k[len("generator_ema."):] in buffers)}
    save_file(w, str(path / "model.safetensors"))
    (path / ckpt.MANIFEST).unlink()
    ckpt._write_manifest(path, 7)  # the rewritten file is the checkpoint's content now
    mixed = copy.deepcopy(G_ema)
    for name, buf in G.named_buffers():
        mixed.get_buffer(name).copy_(buf)
    usable = load_for_use(run_dir)
    assert usable.weights == "generator_ema"
    with torch.no_grad():
        assert torch.equal(usable.run.generator(z), mixed.eval()(z))


def test_export_and_interpolate_cli_errors_leave_files_alone(mnist_run, tmp_path, capsys) -> None:
    run_dir, _ = mnist_run
    out = tmp_path / "g.safetensors"
    out.write_bytes(b"keep me")
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["export", str(run_dir), "--format", "onnx", "--out",
                 str(tmp_path / "g.bin")]) == 2
    assert ".onnx" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "onnx", "--out",
                 str(tmp_path / "x.onnx")]) == 4  # not a run: a checkpoint error
    assert "config.yaml" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--format", "safetensors", "--weights", "ema",
                 "--out", str(tmp_path / "y.safetensors")]) == 4  # no EMA weights in the checkpoint
    assert "EMA" in capsys.readouterr().err
    assert main(["interpolate", str(run_dir), "--steps", "1", "--out",
                 str(tmp_path / "w.png")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(out),
                 "--force"]) == 0
    assert out.read_bytes() != b"keep me"


def test_conditioning_is_described_for_unconditional_and_refused_otherwise() -> None:
    cfg = load_config("gan-ring8")
    assert conditioning_inputs(cfg) == []
    cfg2 = cfg.model_copy(update={"task": "conditional"})
    with pytest.raises(GanforgeError, match="conditional"):
        conditioning_inputs(cfg2)


# -------------------------------------------------------------------------------------- CLI
def test_cli_interpolate_and_sample_with_truncation(mnist_run, tmp_path: Path) -> None:
    run_dir, G = mnist_run
    png, arr = tmp_path / "walk.png", tmp_path / "walk.npy"
    assert main(["interpolate", str(run_dir), "--steps", "4", "--pairs", "3",
                 "--out", str(png)]) == 0
    w, h = Image.open(png).size
    assert (w, h) == ((4 * 30 + 2) * 2, (3 * 30 + 2) * 2)  # 4 columns, 3 rows, scale 2
    assert main(["interpolate", str(run_dir), "--steps", "4", "--pairs", "3", "--seed", "2",
                 "--out", str(arr)]) == 0
    x = np.load(arr)
    ends = api.load(run_dir).latent(6, seed=2)
    with torch.no_grad():
        assert np.abs(x[:, -1] - G(ends[3:]).numpy()).max() < 1e-5  # batch-size rounding
    s0, s1 = tmp_path / "t0.npy", tmp_path / "t1.npy"
    assert main(["sample", str(run_dir), "-n", "6", "--truncation", "0", "--out", str(s0)]) == 0
    assert main(["sample", str(run_dir), "-n", "6", "--out", str(s1)]) == 0
    t0, t1 = np.load(s0), np.load(s1)
    assert np.abs(t0 - t0[:1]).max() == 0.0 and np.abs(t1 - t1[:1]).max() > 1e-3
    assert main(["sample", str(run_dir), "-n", "6", "--truncation", "2",
                 "--out", str(tmp_path / "bad.npy")]) == 2
    assert not (tmp_path / "bad.npy").exists()


def test_walk_picture_for_2d_points(tmp_path: Path) -> None:
    run_dir, _, _ = make_run(tmp_path, "ring", preset="gan-ring8")
    out = tmp_path / "ring.png"
    assert main(["interpolate", str(run_dir), "--steps", "5", "--pairs", "2",
                 "--out", str(out)]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (320, 320, 3)
    red = (img[..., 0] > 200) & (img[..., 1] < 100) & (img[..., 2] < 100)
    assert red.sum() > 10  # the walk polylines are drawn


# ------------------------------------------------------------------------------------- card
def _log_lines() -> list[dict]:
    return [
        {"kind": "train", "step": 50, "epoch": 0, "time": 10.0, "d_loss": 1.2, "g_loss": 0.9,
         "d_real": 0.6, "d_fake": 0.4, "images_per_s": 300.0},
        {"kind": "train", "step": 100, "epoch": 1, "time": 20.5, "d_loss": 1.1, "g_loss": 1.0,
         "d_real": 0.6, "d_fake": 0.4, "images_per_s": 320.0},
        {"kind": "eval", "step": 100, "fid": 31.25, "kid": 0.0412,
         "protocol": {"extractor": "mnist", "n_real": 1000, "n_fake": 1000}},
        {"kind": "alarm", "step": 100, "alarm": "d_overpowering", "message": "D wins: d_real 0.99"},
        # resumed from step 100: time restarts
        {"kind": "train", "step": 150, "epoch": 1, "time": 4.0, "d_loss": 1.0, "g_loss": 1.1,
         "d_real": 0.6, "d_fake": 0.4, "images_per_s": 280.0},
        {"kind": "train", "step": 200, "epoch": 2, "time": 11.25, "d_loss": 0.95, "g_loss": 1.3,
         "d_real": 0.62, "d_fake": 0.38, "images_per_s": 300.0},
        {"kind": "eval", "step": 200, "fid": 12.5, "kid": 0.0123,
         "protocol": {"extractor": "mnist", "n_real": 1000, "n_fake": 1000}},
        {"kind": "alarm", "step": 180, "alarm": "mode_collapse", "message": "2 of 10 classes"},
        {"kind": "alarm", "step": 200, "alarm": "mode_collapse", "message": "3 of 10 classes"},
    ]


def test_card_lists_recorded_metrics_time_and_alarms(tmp_path: Path) -> None:
    run_dir, _, _ = make_run(tmp_path, "card", overrides=["train.steps=300"], ema=True)
    lines = _log_lines()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines)
                                           + '{"kind": "train", "st')  # torn last line
    tr = summarize_training(lines)
    assert (tr.steps, tr.sessions) == (200, 2)
    assert tr.seconds == pytest.approx(20.5 + 11.25)
    assert tr.images_per_s == pytest.approx(300.0)
    alarms = summarize_alarms(lines)
    assert [(a.alarm, a.count, a.first_step, a.last_step) for a in alarms] == [
        ("d_overpowering", 1, 100, 100), ("mode_collapse", 2, 180, 200)]
    assert main(["card", str(run_dir)]) == 0
    text = (run_dir / "MODEL_CARD.md").read_text()
    assert "| fid | 12.5 | 200 | extractor=mnist, n_real=1000, n_fake=1000 |" in text
    assert "| kid | 0.0123 | 200 |" in text
    assert "| 100 | 31.25 | 0.0412 |" in text  # history
    assert "31.8 s over 2 session(s)" in text
    assert "200 generator steps" in text and "Training stopped at step 200 of 300" in text
    assert "| mode_collapse | 2 | 180 | 200 | 3 of 10 classes |" in text
    assert "| d_overpowering | 1 | 100 | 100 | D wins: d_real 0.99 |" in text
    assert "2,305,472" in text  # generator parameters, from the architecture summary
    assert "EMA generator weights" in text
    assert "Source: `mnist`" in text


def test_card_without_log_says_so_and_bad_dir_fails(tmp_path: Path, capsys) -> None:
    run_dir, _, _ = make_run(tmp_path, "bare", preset="gan-ring8")
    text = render_card(run_dir)
    assert "No evaluation was recorded" in text and "No training lines" in text
    assert write_card(run_dir, tmp_path / "x" / "card.md").read_text().startswith("# Model card")
    assert main(["card", str(tmp_path / "missing")]) == 4  # not a run: a checkpoint error
    assert "does not exist" in capsys.readouterr().err


def test_uniform_latents_walk_linearly_and_real_training_log_makes_a_card(tmp_path) -> None:
    run = api.train("gan-ring8", overrides=[
        "train.steps=20", "train.batch_size=32", "monitor.log_every=10",
        "monitor.sample_every=20", "monitor.progress=false", "latent.distribution=uniform",
        "data.options={n: 2000}", "device=cpu"], run_dir=tmp_path / "ring")
    z, _ = L.latent_walk(run, pairs=4, steps=3, seed=1)
    assert torch.allclose(z[:, 1], (z[:, 0] + z[:, 2]) / 2, atol=1e-6)  # lerp midpoint
    assert float(z.abs().max()) <= 1.0
    with (run.run_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "eval", "step": 20, "modes": 3, "high_quality": 0.25,
                            "protocol": {"n": 2500, "threshold_std": 3}}) + "\n")
    text = render_card(run.run_dir)
    assert "Done: 20 generator steps" in text and "over 1 session(s)" in text
    assert "| modes | 3 | 20 | n=2500, threshold_std=3 |" in text
    assert "| high_quality | 0.25 | 20 |" in text
