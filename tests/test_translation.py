"""Image-to-image translation: layers, CycleGAN and pix2pix pieces, metrics, datasets, the
translate verb. Budgets are tiny; the pix2pix bound was measured (see the test)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ganforge
from ganforge.api import load_config
from ganforge.architecture import build_network, plan_network
from ganforge.data import load_dataset
from ganforge.data.translation import downscale_upscale
from ganforge.errors import ConfigError, DataError, GanforgeError, SpecError
from ganforge.metrics.image_quality import l1, psnr, ssim
from ganforge.monitor.log import read_log
from ganforge.tasks.translation import (
    ImagePool,
    cycle_terms,
    load_translator,
    lr_factor,
    translate_tensor,
)

QUIET = ["monitor.progress=false", "train.epochs=null"]

# Small nets so the CPU tests stay fast; the presets hold the full-size ones.
TINY_RESNET_G = ("[{reflection_pad: {pad: 1}}, {conv2d: {filters: 4, kernel: 3, padding: valid}},"
                 " {instance_norm: {affine: false}}, relu,"
                 " {residual: {layers: [{reflection_pad: {pad: 1}},"
                 " {conv2d: {filters: 4, kernel: 3, padding: valid}}, {instance_norm: {affine: false}}]}},"
                 " {conv2d: {filters: 1, kernel: 3}}, tanh]")
TINY_PATCH_D = ("[{conv2d: {filters: 8, kernel: 4, stride: 2, padding: 1}}, leaky_relu,"
                " {conv2d: {filters: 1, kernel: 4, stride: 1, padding: 1}}]")


def tiny_cyclegan(steps, extra=()):
    return QUIET + [f"train.steps={steps}", "train.batch_size=4", f"generator.layers={TINY_RESNET_G}",
                    f"discriminator.layers={TINY_PATCH_D}", "translation.pool_size=6",
                    "monitor.log_every=1", *extra]


# ------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("shape,depth", [((1, 28, 28), 2), ((1, 28, 28), 4), ((3, 32, 32), 5),
                                         ((2, 20, 36), 3), ((1, 7, 9), 1)])
def test_unet_output_shape_equals_input(shape, depth):
    spec = {"layers": [{"unet": {"out_channels": shape[0], "filters": 4, "depth": depth}}]}
    plans = plan_network(spec, shape, "generator")
    assert plans[-1].out_shape == shape
    net = build_network(spec, shape, "generator").eval()
    x = torch.randn(2, *shape)
    assert net(x).shape == (2, *shape)


def test_unet_skip_connections_carry_full_detail():
    """A pixel of the output depends on the input pixel at the same place through the skip
    path, and on far-away pixels through the bottleneck."""
    torch.manual_seed(0)
    net = build_network({"layers": [{"unet": {"out_channels": 1, "filters": 4, "depth": 3,
                                              "norm": "none", "dropout": 0.0}}]},
                        (1, 16, 16), "g").eval()
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    net(x)[0, 0, 0, 0].backward()
    grad = x.grad[0, 0].abs()
    assert grad[0, 0] > 0 and grad[7, 7] > 0  # near (skip) and far (bottleneck) pixels
    # Three levels: the encoder has 3 convs, the decoder 3 transposed convs over 2x channels
    # (the concatenated skips) except the innermost one.
    convs_t = [m for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.in_channels for m in convs_t] == [16, 16, 8]


def test_residual_block_checks_body_shape_and_adds_input():
    with pytest.raises(SpecError, match=r"generator.layers\[1\] \(residual\): the body maps "
                                        r"4x28x28 to 4x26x26"):
        plan_network({"layers": [{"conv2d": {"filters": 4}},
                                 {"residual": {"layers": [{"conv2d": {"filters": 4,
                                                                      "padding": "valid"}}]}}]},
                     (1, 28, 28), "generator")
    with pytest.raises(SpecError, match=r"body.layers\[0\] \(conv2d\): unknown argument 'filtrs'"):
        plan_network({"layers": [{"residual": {"layers": [{"conv2d": {"filtrs": 4}}]}}]},
                     (1, 28, 28), "generator")
    net = build_network({"layers": [{"residual": {"layers": [
        {"reflection_pad": {"pad": 1}}, {"conv2d": {"filters": 1, "padding": "valid"}}]}}]},
        (1, 8, 8), "g")
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(net(x), x)  # zero body: the block is the identity
    nn.init.constant_(conv.bias, 0.25)
    assert torch.allclose(net(x), x + 0.25)


def test_reflection_pad_mirrors_edges():
    net = build_network({"layers": [{"reflection_pad": {"pad": 2}}]}, (1, 4, 5), "g")
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    y = net(x)
    assert y.shape == (1, 1, 8, 9)
    assert torch.equal(y[0, 0, 2, :3], torch.tensor([2.0, 1.0, 0.0]))  # mirrored, edge not doubled
    with pytest.raises(SpecError, match="reflection pad 4 needs H and W > 4"):
        plan_network({"layers": [{"reflection_pad": {"pad": 4}}]}, (1, 4, 5), "g")


# -------------------------------------------------------------------------- cyclegan parts
class _Scale(nn.Module):
    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def test_cycle_loss_of_identity_and_inverse_maps_is_zero():
    a, b = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    assert float(cycle_terms(nn.Identity(), nn.Identity(), a, b)["cycle"]) == 0.0
    assert float(cycle_terms(_Scale(4.0), _Scale(0.25), a, b)["cycle"]) == pytest.approx(0, abs=1e-7)
    # A shift by 0.1 one way only: each reconstruction is off by exactly 0.1.
    shift = _Scale(1.0)
    shift.forward = lambda x: x + 0.1
    assert float(cycle_terms(shift, nn.Identity(), a, b)["cycle"]) == pytest.approx(0.2, rel=1e-5)


def test_cycle_noise_exposes_a_pair_that_hides_the_source_in_a_faint_translation():
    """A steganographic pair: G_ab shrinks a to 1% of its contrast, G_ba amplifies it back.
    Its cycle loss is 0 without noise; with cycle_noise sigma the a-cycle is off by 100*sigma*eps
    and the b-cycle by 0.01*sigma*eps, computed here from the same draws."""
    a, b = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    hide, reveal = _Scale(0.01), _Scale(100.0)
    assert float(cycle_terms(hide, reveal, a, b)["cycle"]) == pytest.approx(0, abs=1e-5)
    sigma = 0.1
    torch.manual_seed(3)
    terms = cycle_terms(hide, reveal, a, b, noise=sigma)
    torch.manual_seed(3)
    eps_b, eps_a = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    want = (100 * sigma * eps_b).abs().mean() + (0.01 * sigma * eps_a).abs().mean()
    assert float(terms["cycle"]) == pytest.approx(float(want), rel=1e-4)
    assert float(terms["cycle"]) > 5.0  # ~ 100 * 0.1 * sqrt(2/pi) = 7.98
    # the translations themselves stay clean: D and the samples never see the noise
    assert torch.equal(terms["fake_b"], a * 0.01)
    # a pair of honest inverses at full contrast pays only sigma * E|eps| per direction
    torch.manual_seed(3)
    honest = float(cycle_terms(nn.Identity(), nn.Identity(), a, b, noise=sigma)["cycle"])
    assert honest == pytest.approx(float(sigma * (eps_b.abs().mean() + eps_a.abs().mean())),
                                   rel=1e-5)
    assert honest < float(terms["cycle"]) / 50


def test_image_pool_returns_old_and_new_fakes_with_published_probabilities():
    pool = ImagePool(50, 0.5, seed=0)
    ids = iter(range(10**6))

    def batch(n):
        return torch.tensor([float(next(ids)) for _ in range(n)]).reshape(n, 1, 1, 1)

    # Filling: the first 50 fakes come back as they are.
    for _ in range(5):
        q = batch(10)
        assert torch.equal(pool.query(q), q)
    assert len(pool.images) == 50
    returned_old = total = 0
    seen_old = set()
    for _ in range(400):
        q = batch(10)
        out = pool.query(q).flatten()
        for new, got in zip(q.flatten().tolist(), out.tolist(), strict=True):
            total += 1
            if got != new:
                returned_old += 1
                assert got < new and got not in seen_old  # an older fake, handed out once
                seen_old.add(got)
        assert len(pool.images) == 50
    frac = returned_old / total  # 4,000 Bernoulli(0.5) draws: sd 0.0079
    assert abs(frac - 0.5) < 0.04, frac
    assert torch.equal(ImagePool(0).query(q), q)  # size 0: no pool
    always = ImagePool(2, 1.0, seed=1)
    always.query(torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1))
    assert sorted(always.query(torch.tensor([3.0, 4.0]).reshape(2, 1, 1, 1)).flatten().tolist()
                  ) != [3.0, 4.0]



def test_pool_prob_sets_how_often_d_sees_an_old_fake(tmp_path):
    """translation.pool_prob reaches both CycleGAN pools. Per step each D is called on the new
    fakes (G's update), the real batch, then the pooled fakes (its own update). A pool of 4
    fills at step 1 (batch 4); from step 2, pool_prob 0 shows D exactly the new fakes and
    pool_prob 1 swaps every one for a stored fake (a swap may hand back a fake stored earlier
    in the same batch, never the image itself)."""
    from ganforge.training.trainer import Trainer

    seen = {}
    for prob in (0.0, 1.0):
        tr = Trainer(load_config("cyclegan-digits", tiny_cyclegan(3, [
            "translation.pool_size=4", f"translation.pool_prob={prob}", "device=cpu",
            "monitor.report=false", "monitor.tensorboard=false", "monitor.sample_every=1000",
            "train.checkpoint_every=1000"])), tmp_path / f"p{prob}")
        task = tr.task
        assert task.pool_a.prob == task.pool_b.prob == prob
        calls = {"a": [], "b": []}
        for name, d in (("a", task.D_a), ("b", task.D_b)):
            d.register_forward_pre_hook(
                lambda m, args, out=calls[name]: out.append(args[0].detach().clone()))
        tr.fit()
        seen[prob] = calls
    for prob, calls in seen.items():
        for side in ("a", "b"):
            c = calls[side]
            assert len(c) == 9  # 3 steps x (new fakes, real, pooled)
            new, pooled = c[0::3], c[2::3]
            assert torch.equal(pooled[0], new[0])  # step 1: filling the pool
            for step in (1, 2):
                if prob == 0.0:
                    assert torch.equal(pooled[step], new[step])
                    continue
                stored = torch.cat(new[:step + 1])
                for i, img in enumerate(pooled[step]):
                    assert not torch.equal(img, new[step][i])
                    assert any(torch.equal(img, s) for s in stored)
                # at least one fake from an earlier step in every batch
                assert any(any(torch.equal(img, s) for s in torch.cat(new[:step]))
                           for img in pooled[step])


def test_lr_is_constant_then_linear_to_zero():
    f = [lr_factor(s, 10, 0.5) for s in range(10)]
    assert f[:5] == [1.0] * 5
    assert f[5:] == pytest.approx([1 - k / 6 for k in range(1, 6)])
    assert [lr_factor(s, 10, 1.0) for s in range(10)] == [1.0] * 10


class Crash(RuntimeError):
    pass


class CrashAt:
    """A callback that kills the run at a step (after the previous step's checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step(self, trainer, stats):
        if trainer.step == self.step:
            raise Crash(f"killed at step {self.step}")

    def on_log(self, trainer, record):
        pass

    def on_end(self, trainer):
        pass


def test_cyclegan_resume_equals_uninterrupted_and_logs_lr(tmp_path):
    """All four networks, the two optimizers, the image pools and domain a's data order are in
    the checkpoint: a run killed after its step-3 checkpoint and resumed ends with the same
    weights as a straight one."""
    # non-default loss weights: the loss decomposition below checks that they are applied
    # (and cycle noise, whose draws come from the checkpointed RNG)
    common = ["train.checkpoint_every=3", "translation.cycle_weight=7",
              "translation.identity_weight=0.3", "translation.cycle_noise=0.05"]
    straight = ganforge.train("cyclegan-digits", overrides=tiny_cyclegan(6, common),
                              run_dir=tmp_path / "straight")
    with pytest.raises(Crash):
        ganforge.train("cyclegan-digits", overrides=tiny_cyclegan(6, common),
                       run_dir=tmp_path / "split", callbacks=[CrashAt(5)])
    resumed = ganforge.train(resume=tmp_path / "split")
    from safetensors.torch import load_file

    w1 = load_file(str(tmp_path / "straight/checkpoints/step_00000006/model.safetensors"))
    w2 = load_file(str(tmp_path / "split/checkpoints/step_00000006/model.safetensors"))
    assert {k.split(".")[0] for k in w1} == {"generator", "discriminator", "generator_ba",
                                             "discriminator_a"}
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    assert resumed.step == straight.step == 6
    log = [r for r in read_log(tmp_path / "straight" / "metrics.jsonl") if r["kind"] == "train"]
    # 6 steps, decay after 3: 1, 1, 1, 3/4, 2/4, 1/4.
    assert [r["lr_factor"] for r in log] == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25])
    # G's loss is its adversarial part plus the weighted cycle and identity L1 terms (identity
    # weighted relative to the cycle weight), each L1 a real distance (> 0, images in [-1, 1])
    tc = straight.config.translation
    assert (tc.cycle_weight, tc.identity_weight, tc.cycle_noise) == (7, 0.3, 0.05)
    for r in log:
        assert 0.01 < r["cycle_l1"] < 4 and 0.01 < r["identity_l1"] < 4, r  # measured 1.6-2
        assert r["g_loss"] == pytest.approx(
            r["g_gan"] + tc.cycle_weight * r["cycle_l1"]
            + tc.identity_weight * tc.cycle_weight * r["identity_l1"], rel=1e-5), r
    assert (tmp_path / "straight" / "samples" / "step_00000006.png").is_file()


# ------------------------------------------------------------------------------- metrics
def test_psnr_ssim_l1_match_references():
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 1, 28, 28, generator=g)).clamp(-1, 1)
    ours = ssim(x, y, data_range=2.0, reduction="none")
    ref = [skm.structural_similarity(x[i, 0].numpy(), y[i, 0].numpy(), data_range=2.0,
                                     gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)
    refp = [skm.peak_signal_noise_ratio(y[i].numpy(), x[i].numpy(), data_range=2.0)
            for i in range(3)]
    np.testing.assert_allclose(psnr(x, y, 2.0, reduction="none").numpy(), refp, rtol=1e-5)
    rgb = torch.rand(2, 3, 16, 16, generator=g)
    noisy = (rgb + 0.1 * torch.randn(2, 3, 16, 16, generator=g)).clamp(0, 1)
    refc = [skm.structural_similarity(rgb[i].numpy(), noisy[i].numpy(), data_range=1.0,
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, channel_axis=0)
            for i in range(2)]
    np.testing.assert_allclose(ssim(rgb, noisy, 1.0, reduction="none").numpy(), refc, rtol=1e-5)


def test_metrics_hand_computed_cases():
    x = torch.zeros(2, 1, 16, 16)
    y = x + 0.1
    # MSE 0.01 on a range of 2: 10 log10(4 / 0.01) = 26.0206 dB.
    assert float(psnr(x, y, 2.0)) == pytest.approx(10 * np.log10(400), rel=1e-6)
    assert float(l1(x, y)) == pytest.approx(0.1)
    assert float(ssim(x, x.clone())) == pytest.approx(1.0)
    # Constant images: SSIM = (2*0*0.1 + c1) / (0 + 0.01 + c1) with c1 = (0.01*2)^2.
    c1 = 0.02 ** 2
    assert float(ssim(x, y)) == pytest.approx(c1 / (0.01 + c1), rel=1e-6)


# ------------------------------------------------------------------------------ datasets
def test_paired_mnist_demos_are_built_from_real_digits():
    m = load_dataset("mnist", split="test")
    inp = load_dataset("mnist-inpaint", split="test", mask=12)
    assert inp.x.shape == (1000, 2, 28, 28) and torch.equal(inp.x[:, 1:], m.x)
    a = inp.x[:, :1]
    masked = a != m.x
    assert masked.any() and bool((a[masked] == 0).all())  # only grey pixels differ
    grey = (a == 0).flatten(1).sum(1)
    assert int(grey.max()) <= 144 and float((grey == 144).float().mean()) > 0.99
    sr = load_dataset("mnist-sr2x", split="test")
    assert torch.equal(sr.x[:, 1:], m.x) and torch.equal(sr.x[:, :1], downscale_upscale(m.x))
    # The input only holds 14x14 detail: bicubic of the 2x2 block means.
    low = torch.nn.functional.avg_pool2d(m.x[:2], 2)
    up = torch.nn.functional.interpolate(low, size=(28, 28), mode="bicubic", align_corners=False)
    assert torch.equal(sr.x[:2, :1], up.clamp(-1, 1))


def test_unpaired_and_paired_folder_data(tmp_path):
    d = load_dataset("unpaired", split="test", a="digits", b="mnist", image_size=(1, 28, 28))
    assert d.x.shape == (1000, 1, 28, 28) and d.info["a"].shape == (360, 1, 28, 28)
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / "a" / f"{i:03d}.png")
        Image.fromarray(255 - img).save(tmp_path / "b" / f"{i:03d}.png")
    Image.fromarray(img).save(tmp_path / "a" / "lonely.png")
    p = load_dataset("paired", a=str(tmp_path / "a"), b=str(tmp_path / "b"),
                     image_size=(1, 8, 8))
    assert p.x.shape == (3, 2, 8, 8) and p.info["unmatched"] == 1
    assert torch.allclose(p.x[:, 0], -p.x[:, 1], atol=1e-6)  # b = 255 - a, same names
    with pytest.raises(DataError, match="no file names in"):
        load_dataset("paired", a=str(tmp_path / "a"), b=str(tmp_path), image_size=(1, 8, 8))


# ------------------------------------------------------------------------ config checks
@pytest.mark.parametrize("preset,overrides,err,message", [
    ("cyclegan-digits", ["latent.shape=null"], ConfigError, "set latent.shape"),
    ("cyclegan-digits", ["latent.shape=[1, 32, 32]", "translation.identity_weight=0"], SpecError,
     "domain-b data is 1x28x28"),
    ("cyclegan-digits", ["translation.generator_ba={layers: [{conv2d: {filters: 3}}]}"],
     SpecError, "translation.generator_ba maps b (1x28x28) to 3x28x28"),
    ("pix2pix-inpaint", ["generator.layers=[{conv2d: {filters: 1, stride: 2}}]"], SpecError,
     "H and W must not change"),
    ("pix2pix-inpaint", ["discriminator.layers=[{conv2d: {filters: 2}}]"], SpecError,
     "one map of patch logits"),
])
def test_translation_configs_are_shape_checked(preset, overrides, err, message, tmp_path):
    with pytest.raises(err, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg = load_config(preset, overrides)
        ganforge.train(cfg, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------- pix2pix
SR_TEST_G = "[{unet: {out_channels: 1, filters: 16, depth: 3, max_filters: 64}}, tanh]"
SR_TEST_D = ("[{conv2d: {filters: 16, kernel: 4, stride: 2, padding: 1}}, leaky_relu,"
             " {conv2d: {filters: 32, kernel: 4, stride: 2, padding: 1}}, batch_norm, leaky_relu,"
             " {conv2d: {filters: 1, kernel: 4, stride: 1, padding: 1}}]")


def test_pix2pix_sr_beats_bicubic_on_psnr_after_a_short_budget(tmp_path):
    """Measured (seed 0, 1 CPU thread, this small U-Net, G lr 1e-3, no decay): bicubic 20.49 dB
    on the 1,000 held-out digits; pix2pix 19.84 dB after 50 steps, 21.79 after 100, 22.59 after
    150, 23.41 after 200. The bound asks for +0.5 dB after 100 steps: a margin of 0.8 dB below
    the measured +1.3 dB (the run starts far below the baseline: 9-15 dB in its first steps)."""
    test = load_dataset("mnist-sr2x", split="test")
    a, b = test.x[:, :1], test.x[:, 1:]
    baseline = float(psnr(a, b))
    assert baseline == pytest.approx(20.49, abs=0.01)
    run = ganforge.train("pix2pix-sr2x", run_dir=tmp_path / "sr", overrides=QUIET + [
        "train.steps=100", "train.batch_size=32", f"generator.layers={SR_TEST_G}",
        f"discriminator.layers={SR_TEST_D}", "optim.g.lr=0.001", "translation.decay_start=1.0",
        "monitor.sample_every=1000", "train.checkpoint_every=1000"])
    out = translate_tensor(run.generator, a)
    gain = float(psnr(out, b)) - baseline
    assert gain > 0.5, gain
    assert float(ssim(out, b)) > float(ssim(a, b))
    assert (tmp_path / "sr" / "samples" / "step_00000100.png").is_file()


@pytest.mark.slow
def test_cyclegan_digits_keeps_the_digit_at_a_shortened_budget(tmp_path):
    """Issue 21's CycleGAN bound at a budget a test affords: the shipped cyclegan-digits networks
    and recipe for 500 steps (2 of its 10 epochs; lr decay over the last half), seed 0. Judges:
    the bundled MNIST classifier on translations of the 360 held-out scikit-learn digits, and a
    logistic regression on the 1,437 train digits for translations of 1,000 held-out MNIST digits.
    Untranslated, they read 0.083 and 0.105 of them right. The full budget keeps 0.70 and
    0.49 (benchmarks/translation.py, seeds 0-2); issue 21 asks 0.80: not reached yet."""
    from sklearn.linear_model import LogisticRegression

    from ganforge.metrics import get_extractor

    run = ganforge.train("cyclegan-digits", run_dir=tmp_path / "cg", overrides=QUIET + [
        "train.steps=500", "monitor.sample_every=1000", "train.checkpoint_every=1000"])
    train, test = (load_dataset("unpaired", split=s, a="digits", b="mnist",
                                image_size=[1, 28, 28]) for s in ("train", "test"))
    judge_b = get_extractor("mnist")
    fake_b = translate_tensor(run.generator, test.info["a"])
    a2b = float((judge_b.logits(fake_b).argmax(1) == test.info["a_y"]).float().mean())
    judge_a = LogisticRegression(max_iter=300, C=0.1).fit(train.info["a"].flatten(1).numpy(),
                                                          train.info["a_y"].numpy())
    g_ba, _, _ = load_translator(tmp_path / "cg", "b2a")
    fake_a = translate_tensor(g_ba, test.x)
    b2a = float((judge_a.predict(fake_a.flatten(1).numpy()) == test.y.numpy()).mean())
    # measured 0.631 and 0.417 (deterministic on CPU); 0.12 margin each, far above untranslated
    assert a2b > 0.50 and b2a > 0.30, (a2b, b2a)


# ---------------------------------------------------------------------------- translate
def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, check=False)


def cli_main(capsys, *args):
    """The CLI in-process (no interpreter start-up): (exit status, stdout, stderr)."""
    from ganforge.cli import main

    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_translate_cli_writes_one_output_per_input_with_same_names(tmp_path, capsys):
    run_dir = tmp_path / "cg"
    ganforge.train("cyclegan-digits", overrides=tiny_cyclegan(2), run_dir=run_dir)
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    digits = load_dataset("digits", split="test", image_size=(1, 28, 28))
    names = ["zero.png", "one.png", "nested/two.png"]
    for i, n in enumerate(names):
        Image.fromarray(((digits.x[i, 0].numpy() + 1) * 127.5).astype(np.uint8)).save(src / n)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "small.jpg")  # resized on the way in
    (src / "notes.txt").write_text("not an image")
    for direction in ("a2b", "b2a"):
        out = tmp_path / f"out_{direction}"
        args = ("translate", str(run_dir), "--input", str(src), "--direction", direction,
                "--out", str(out), "--device", "cpu" if direction == "a2b" else "auto")
        if direction == "a2b":  # once through a real `python -m ganforge`
            r = run_cli(*args)
            assert r.returncode == 0, r.stderr
            assert "wrote 4 images" in r.stdout
        else:
            rc, _, err = cli_main(capsys, *args)
            assert rc == 0, err
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert written == sorted(names + ["small.jpg"])
        assert all(Image.open(out / n).size == (28, 28) for n in written)
    # The files hold G_ab's output for the inputs.
    from ganforge.tasks.translation import load_translator

    net, _, _ = load_translator(run_dir, "a2b")
    from ganforge.data.translation import read_image

    expect = translate_tensor(net, read_image(src / "zero.png", 1)[None])  # the PNG's pixels
    got = torch.from_numpy(np.asarray(Image.open(tmp_path / "out_a2b" / "zero.png"),
                                      dtype=np.float32)) / 127.5 - 1
    assert torch.allclose(got, expect[0, 0], atol=1.5 / 127.5)
    if not torch.cuda.is_available():  # --device reaches the loader: cuda is refused cleanly
        rc, _, err = cli_main(capsys, "translate", str(run_dir), "--input", str(src),
                              "--out", str(tmp_path / "out_cuda"), "--device", "cuda")
        assert rc == 2 and "no CUDA GPU" in err and not (tmp_path / "out_cuda").exists()
    # A single file, and errors that leave the output alone.
    rc, _, _ = cli_main(capsys, "translate", str(run_dir), "--input", str(src / "one.png"),
                        "--out", str(tmp_path / "single"))
    assert rc == 0 and [p.name for p in (tmp_path / "single").iterdir()] == ["one.png"]
    before = sorted((tmp_path / "out_a2b").rglob("*"))
    for args, message, status in [  # 2: usage, 3: the input images
        (["--input", str(src), "--out", str(tmp_path / "out_a2b")], "already exists", 2),
        (["--input", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "does not exist",
         3),
        (["--input", str(src / "notes.txt"), "--out", str(tmp_path / "o")], "not an image file",
         3),
        (["--input", str(src), "--out", str(src)], "is the input directory", 2),
        (["--input", str(src), "--out", str(tmp_path / "o"), "--direction", "sideways"],
         "invalid choice", 2),
    ]:
        rc, _, err = cli_main(capsys, "translate", str(run_dir), *args)
        assert rc == status and message in err, err
    assert sorted((tmp_path / "out_a2b").rglob("*")) == before
    assert not (tmp_path / "o").exists()
    r = run_cli("translate", str(tmp_path / "nope"), "--input", str(src), "--out",
                str(tmp_path / "o"))
    assert r.returncode == 4 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_translate_rejects_b2a_for_pix2pix_and_non_translation_runs(tmp_path):
    from ganforge.tasks.translation import load_translator

    ganforge.train("pix2pix-inpaint", run_dir=tmp_path / "p", overrides=QUIET + [
        "train.steps=1", "train.batch_size=4", f"generator.layers={SR_TEST_G}",
        f"discriminator.layers={SR_TEST_D}"])
    with pytest.raises(GanforgeError, match="only translates a2b"):
        load_translator(tmp_path / "p", "b2a")
    _, shape, _ = load_translator(tmp_path / "p", "a2b")
    assert shape == (1, 28, 28)
    ganforge.train("gan-ring8", run_dir=tmp_path / "ring", overrides=QUIET + ["train.steps=1"])
    with pytest.raises(GanforgeError, match="translate needs a cyclegan or pix2pix run"):
        load_translator(tmp_path / "ring")
