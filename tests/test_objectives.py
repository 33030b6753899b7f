"""Objectives: every loss, penalty and trick checked on numbers, plus config switches."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ganforge.api import load_config
from ganforge.architecture import build_network
from ganforge.architecture.layers_stats import MinibatchDiscrimination, MinibatchStddev
from ganforge.errors import ConfigError
from ganforge.objectives import losses as L
from ganforge.objectives.penalties import clip_weights, gradient_penalty, interpolates, r1_penalty
from ganforge.objectives.tricks import (
    EMA,
    brightness,
    contrast,
    cutout,
    diff_augment,
    feature_matching_loss,
    instance_noise_std,
    pack,
    packed_shape,
    saturation,
    smoothed_targets,
    top_k,
    top_k_fraction,
    translate,
)
from ganforge.tasks.unconditional import UnconditionalTask
from ganforge.training.trainer import Trainer

QUICK = ["monitor.progress=false", "train.epochs=null"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ losses
def test_losses_match_their_formulas() -> None:
    r = torch.tensor([[2.0], [-0.5], [0.3]])
    f = torch.tensor([[-1.0], [0.7], [1.5]])
    sp = nn.functional.softplus  # -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
    bce_d = sp(-r).mean() + sp(f).mean()
    assert L.get_loss("minimax").d_loss(r, f).item() == pytest.approx(bce_d.item(), rel=1e-6)
    assert L.get_loss("minimax").g_loss(f).item() == pytest.approx(-sp(f).mean().item(), rel=1e-6)
    assert L.get_loss("non_saturating").g_loss(f).item() == pytest.approx(sp(-f).mean().item())
    w = L.get_loss("wasserstein")
    assert w.d_loss(r, f).item() == pytest.approx((f.mean() - r.mean()).item())
    assert w.g_loss(f).item() == pytest.approx(-f.mean().item())
    h = L.get_loss("hinge")  # relu(1 - r) = [0, 1.5, .7]; relu(1 + f) = [0, 1.7, 2.5]
    assert h.d_loss(r, f).item() == pytest.approx(2.2 / 3 + 4.2 / 3)
    ls = L.get_loss("least_squares")
    want = 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean()
    assert ls.d_loss(r, f).item() == pytest.approx(want.item())
    assert ls.g_loss(f).item() == pytest.approx((0.5 * ((f - 1) ** 2).mean()).item())
    with pytest.raises(ConfigError, match="Did you mean 'hinge'"):
        L.get_loss("hinje")


def task_context(cfg):
    """The pieces of the training loop a G/D task reads, around identity networks."""
    return SimpleNamespace(cfg=cfg, G=nn.Identity(), D=nn.Identity(), opt_g=None, opt_d=None,
                           latent=lambda n: torch.zeros(n), latent_gen=torch.Generator(),
                           step=0, scalers=None)


def test_smoothed_targets_reach_the_loss() -> None:
    assert smoothed_targets("none") == (1.0, 0.0)
    assert smoothed_targets("one_sided") == (0.9, 0.0)
    assert smoothed_targets("two_sided", 0.8, 0.2) == (0.8, 0.2)
    cfg = load_config("gan-ring8", QUICK + ["train.steps=1", "objective.label_smoothing=two_sided",
                                            "objective.smooth_real=0.85", "objective.smooth_fake=0.05"])
    task = UnconditionalTask(task_context(cfg))
    assert (task.real_target, task.fake_target) == (0.85, 0.05)
    # BCE with target t on logit 0 is log 2 whatever t is; on logit x it is softplus(x) - t*x
    x = torch.tensor([[1.3]])
    got = L.bce_d_loss(x, x, task.real_target, task.fake_target).item()
    want = 2 * nn.functional.softplus(x).item() - (0.85 + 0.05) * 1.3
    assert got == pytest.approx(want, rel=1e-6)


# --------------------------------------------------------------------------- penalties
def test_gradient_penalty_of_linear_critic_is_analytic() -> None:
    w = torch.tensor([3.0, -4.0])  # ||w|| = 5: penalty = 10 * (5 - 1)^2 = 160
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(w.view(1, 2))
    real, fake = torch.randn(8, 2, generator=gen(1)), torch.randn(8, 2, generator=gen(2))
    gp = gradient_penalty(lin, real, fake, weight=10.0)
    assert gp.item() == pytest.approx(160.0, rel=1e-6)
    gp.backward()  # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||
    assert torch.allclose(lin.weight.grad.view(2), 20 * 4 * w / 5, rtol=1e-5)
    eps = torch.tensor([0.0, 1.0, 0.25])
    xh = interpolates(torch.ones(3, 2), torch.zeros(3, 2), eps)
    assert xh[:, 0].tolist() == [0.0, 1.0, 0.25]


def test_r1_of_quadratic_critic_is_analytic() -> None:
    def d(x: torch.Tensor) -> torch.Tensor:  # grad = x
        return 0.5 * (x ** 2).sum(1, keepdim=True)

    x = torch.randn(16, 3, generator=gen(3))
    want = 0.5 * 10.0 * (x ** 2).sum(1).mean()
    assert r1_penalty(d, x, gamma=10.0).item() == pytest.approx(want.item(), rel=1e-6)


def test_r2_penalises_d_gradients_on_generated_samples_only() -> None:
    """objective.r2 adds gamma/2 E||grad D(G(z))||^2 to D's loss in the shared D update: for a
    quadratic critic that is analytic on the fakes and ignores the reals."""
    class Quadratic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # grad_x = scale * x
            return 0.5 * self.scale * (x ** 2).sum(1, keepdim=True)

    real, fake = torch.randn(8, 2, generator=gen(1)), 3 * torch.randn(8, 2, generator=gen(2))
    for r2, want in ((4.0, 0.5 * 4.0 * (fake ** 2).sum(1).mean().item()), (0.0, None)):
        cfg = load_config("gan-ring8", QUICK + ["train.steps=1", f"objective.r2={r2}",
                                                "objective.r1=0"])
        ctx = task_context(cfg)
        ctx.D = Quadratic()
        ctx.opt_d = torch.optim.SGD(ctx.D.parameters(), lr=0.0)
        task = UnconditionalTask(ctx)
        d_loss = 0.0 * ctx.D.scale  # the penalty alone moves D
        penalty = task.d_update(task.D, real, fake, d_loss, 0)
        if want is None:
            assert penalty is None
        else:
            assert penalty.item() == pytest.approx(want, rel=1e-6)
            # the penalty's gradient reached D: d/dscale of gamma/2 scale^2 E||x||^2
            assert ctx.D.scale.grad.item() == pytest.approx(2 * want, rel=1e-5)


def test_clipping_bounds_every_weight() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 1, generator=gen(4))
    inside = [p.detach().abs() < 0.01 for p in net.parameters()]
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights(net, 0.01)
    for p, b, keep in zip(net.parameters(), before, inside, strict=True):
        assert p.abs().max().item() <= 0.01
        assert torch.equal(p[keep], b[keep])  # weights already inside are untouched


def test_wgan_clipping_applies_during_training(tmp_path) -> None:
    cfg = load_config("gan-ring8", QUICK + ["train.steps=3", "objective.loss=wasserstein"])
    assert cfg.objective.clip == 0.01 and cfg.objective.gradient_penalty == 0.0
    tr = Trainer(cfg, tmp_path / "r")
    tr.fit()
    assert max(p.abs().max().item() for p in tr.D.parameters()) <= 0.01 + 1e-9


# -------------------------------------------------------------------------------- tricks
def test_instance_noise_follows_its_schedule() -> None:
    assert [instance_noise_std(s, 0.2, 100) for s in (0, 25, 50, 100, 150)] == \
        pytest.approx([0.2, 0.15, 0.1, 0.0, 0.0])
    assert instance_noise_std(10_000, 0.2, 0) == 0.2
    cfg = load_config("gan-ring8", QUICK + ["train.steps=1", "objective.instance_noise=0.5",
                                            "objective.instance_noise_steps=100"])
    task = UnconditionalTask(task_context(cfg))
    torch.manual_seed(0)
    x = torch.zeros(200_000, 2)
    std = instance_noise_std(60, task.noise, task.noise_steps)
    assert task.d_input(x, std).std().item() == pytest.approx(0.2, rel=0.01)


def test_feature_matching_is_squared_distance_of_means() -> None:
    fr = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    ff = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]])  # mean (1, 1)
    assert feature_matching_loss(fr, ff).item() == pytest.approx(1.0 + 4.0)


def test_feature_matching_alone_is_the_generator_loss(tmp_path) -> None:
    cfg = load_config("gan-ring8", QUICK + ["train.steps=2", "objective.feature_matching=alone"])
    tr = Trainer(cfg, tmp_path / "r")
    stats = tr.task.train_step(tr.batcher.next)
    assert stats["g_loss"].item() == stats["feature_matching"].item() > 0


def test_top_k_keeps_the_samples_d_rates_most_real() -> None:
    assert [top_k_fraction(s, 0.5, 100) for s in (0, 50, 100, 500)] == \
        pytest.approx([1.0, 0.75, 0.5, 0.5])
    assert top_k_fraction(0, 0.25, 0) == 0.25
    logits = torch.tensor([[0.3], [-2.0], [1.5], [0.9], [-0.1]])
    assert sorted(top_k(logits, 0.5).flatten().tolist()) == pytest.approx([0.3, 0.9, 1.5])  # 3 of 5
    assert torch.equal(top_k(logits, 1.0), logits)
    # G's loss on the kept rows: the rejected samples get no gradient at all
    fake = torch.randn(8, 2, generator=gen(3), requires_grad=True)
    w = torch.tensor([[1.0], [-0.5]])
    L.non_saturating_g_loss(top_k(fake @ w, 0.25)).backward()
    scores = (fake @ w).flatten().detach()
    kept = set(scores.topk(2).indices.tolist())
    for i in range(8):
        assert (fake.grad[i].abs().sum().item() > 0) == (i in kept)


def test_top_k_training_updates_g_from_the_kept_fraction_only(tmp_path, monkeypatch) -> None:
    """In the trainer's G step: the kept fraction follows its schedule, and G's update with
    top-k equals the update from the loss on the kept samples alone."""
    import ganforge.tasks.unconditional as U

    seen: list[tuple[int, int]] = []
    real_top_k = U.top_k

    def spy(logits: torch.Tensor, fraction: float) -> torch.Tensor:
        out = real_top_k(logits, fraction)
        seen.append((logits.shape[0], out.shape[0]))
        return out

    monkeypatch.setattr(U, "top_k", spy)
    cfg = load_config("gan-ring8", QUICK + ["train.steps=3", "train.batch_size=40",
                                            "objective.top_k=0.5", "objective.top_k_steps=2",
                                            "objective.ema=null"])
    tr = Trainer(cfg, tmp_path / "r")
    tr.fit()
    assert seen == [(40, 40), (40, 30), (40, 20)]  # fraction 1, 0.75, 0.5


def test_packing_concatenates_consecutive_samples() -> None:
    x = torch.arange(12.0).view(6, 2)
    p = pack(x, 3)
    assert p.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    img = torch.randn(4, 3, 5, 5, generator=gen(5))
    pi = pack(img, 2)
    assert pi.shape == (2, 6, 5, 5)
    assert torch.equal(pi[1, 3:], img[3]) and torch.equal(pi[0, :3], img[0])
    seq = torch.randn(4, 7, 3, generator=gen(6))
    ps = pack(seq, 2)
    assert ps.shape == (2, 7, 6) and torch.equal(ps[1, :, 3:], seq[3])
    assert packed_shape((2,), 4) == (8,)
    assert packed_shape((1, 28, 28), 2) == (2, 28, 28)
    assert packed_shape((7, 3), 2) == (7, 6)


def test_packed_discriminator_sees_m_samples(tmp_path) -> None:
    cfg = load_config("pacgan-grid25-paper", QUICK + ["train.steps=1", "train.batch_size=20"])
    tr = Trainer(cfg, tmp_path / "r")
    assert tr.D.in_shape == (8,)
    stats = tr.task.train_step(tr.batcher.next)
    assert stats["images"] == 80  # 4 batches of 20 real samples for 20 packed D inputs
    assert tr.batcher.position == 4


def test_ema_update_equals_the_formula() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = EMA(net, decay=0.9)
    old = [p.detach().clone() for p in ema.ema.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(5, 3, generator=gen(7)))  # moves the BN running stats
    ema.update(step=1)
    for e, o, p in zip(ema.ema.parameters(), old, net.parameters(), strict=True):
        assert torch.allclose(e, 0.9 * o + 0.1 * p, atol=1e-6)
    assert torch.equal(ema.ema[1].running_mean, net[1].running_mean)
    warm = EMA(net, decay=0.9, start=5)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    warm.update(step=5)  # still warming up: a plain copy
    for e, p in zip(warm.ema.parameters(), net.parameters(), strict=True):
        assert torch.equal(e, p)


def test_spectral_norm_makes_top_singular_value_one() -> None:
    torch.manual_seed(0)
    spec = {"spectral_norm": True, "layers": [{"dense": {"units": 64}}, "relu",
                                              {"dense": {"units": 1}}]}
    net = build_network(spec, (32,), "discriminator")
    conv = build_network({"layers": [{"conv2d": {"filters": 8, "spectral_norm": True}},
                                     "flatten", {"dense": {"units": 1}}]}, (3, 8, 8),
                         "discriminator")
    torch.manual_seed(0)
    for _ in range(30):  # one power iteration per training forward
        net(torch.randn(4, 32))
        conv(torch.randn(4, 3, 8, 8))
    for layer in (net.layers[0], net.layers[2]):
        assert torch.linalg.matrix_norm(layer.weight, 2).item() == pytest.approx(1.0, abs=1e-3)
    w = conv.layers[0].weight.flatten(1)
    assert torch.linalg.matrix_norm(w, 2).item() == pytest.approx(1.0, abs=1e-3)
    assert torch.linalg.matrix_norm(conv.layers[2].weight, 2).item() < 0.9  # not normed


def test_diffaugment_pieces() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    t = translate(x, torch.tensor([1]), torch.tensor([-1]))  # down 1, left 1
    assert t[0, 0].tolist() == [[0, 0, 0, 0], [2, 3, 4, 0], [6, 7, 8, 0], [10, 11, 12, 0]]
    c = cutout(torch.ones(2, 3, 8, 8), torch.tensor([4, 0]), torch.tensor([4, 0]), (4, 4))
    assert (c[0] == 0).sum().item() == 3 * 16 and (c[1] == 0).sum().item() == 3 * 4
    img = torch.randn(3, 3, 4, 4, generator=gen(8))
    s = torch.tensor([0.5, -0.25, 0.0])
    assert torch.allclose(brightness(img, s) - img, s.view(3, 1, 1, 1).expand_as(img))
    sat = saturation(img, torch.zeros(3))  # factor 0 -> grey (channel mean everywhere)
    assert torch.allclose(sat, img.mean(1, keepdim=True).expand_as(img))
    con = contrast(img, torch.full((3,), 2.0))
    m = img.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(con - m, 2 * (img - m), atol=1e-6)
    torch.manual_seed(0)
    batch = torch.ones(64, 1, 16, 16)
    out = diff_augment(batch, ["cutout"])
    assert ((out == 0).flatten(1).sum(1) <= 64).all()  # 8x8 squares, clipped at the borders
    assert ((out == 0).flatten(1).sum(1) >= 16).all()
    g = torch.ones(2, 1, 8, 8, requires_grad=True)
    diff_augment(g, ["translation", "cutout", "color"]).sum().backward()
    assert g.grad is not None and torch.isfinite(g.grad).all()


# ----------------------------------------------------------------------------- layers
def test_minibatch_discrimination_matches_the_definition() -> None:
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, kernels=3, dim=2)
    x = torch.randn(5, 4)
    out = layer(x)
    m = (x @ layer.weight).view(5, 3, 2)
    for i in range(5):
        for b in range(3):
            want = sum(math.exp(-(m[i, b] - m[j, b]).abs().sum().item())
                       for j in range(5) if j != i)
            assert out[i, 4 + b].item() == pytest.approx(want, rel=1e-5)
    assert torch.equal(out[:, :4], x)
    net = build_network({"layers": [{"dense": {"units": 6}},
                                    {"minibatch_discrimination": {"kernels": 7}},
                                    {"dense": {"units": 1}}]}, (2,), "discriminator")
    assert net.plans[1].out_shape == (13,) and net(torch.randn(3, 2)).shape == (3, 1)


def test_minibatch_stddev_matches_the_definition() -> None:
    x = torch.randn(8, 2, 3, 3, generator=gen(9))
    out = MinibatchStddev(4)(x)
    assert out.shape == (8, 3, 3, 3) and torch.equal(out[:, :2], x)
    for i in range(8):
        group = x[[j for j in range(8) if j % 2 == i % 2]]  # groups are i mod (8 / 4)
        want = (group.var(0, unbiased=False) + 1e-8).sqrt().mean().item()
        assert torch.allclose(out[i, 2], torch.full((3, 3), want), atol=1e-6)
    v = MinibatchStddev(4)(torch.randn(6, 5, generator=gen(10)))  # 6 % 4: groups of 3
    assert v.shape == (6, 6)
    net = build_network({"layers": [{"conv2d": {"filters": 4}}, "minibatch_stddev", "flatten",
                                    {"dense": {"units": 1}}]}, (1, 8, 8), "discriminator")
    assert net.plans[1].out_shape == (5, 8, 8)


def test_maxout_is_max_over_pieces() -> None:
    net = build_network({"layers": [{"maxout": {"units": 3, "pieces": 5}}]}, (4,), "d")
    x = torch.randn(6, 4, generator=gen(11))
    lin = nn.functional.linear(x, net.layers[0].weight, net.layers[0].bias).view(6, 3, 5)
    assert torch.equal(net(x), lin.amax(-1))


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize("overrides, message", [
    (["objective.clip=0.01", "discriminator.spectral_norm=true"], "spectral norm"),
    (["objective.loss=wasserstein",
      "discriminator.layers=[{dense: {units: 8}}, {dense: {units: 1}}, sigmoid]"],
     "critic must output unbounded"),
    (["objective.loss=hinge", "objective.label_smoothing=one_sided"], "has none"),
    (["objective.loss=wgan_gp",
      "discriminator.layers=[{dense: {units: 8}}, batch_norm, {dense: {units: 1}}]"],
     "layer_norm"),
    (["objective.loss=wgan_gp", "objective.clip=0.01"], "replaces weight clipping"),
    (["objective.loss=wasserstein", "objective.clip=0"], "Lipschitz"),
    (["objective.diffaugment=[translation]"], "images"),
    (["objective.packing=0"], "objective.packing"),
    (["objective.loss=wgan"], "objective.loss"),
    (["objective.top_k=0"], "objective.top_k"),
    (["objective.top_k_steps=100"], "top-k training is off"),
])
def test_incompatible_pieces_are_rejected(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("gan-ring8", overrides)


def test_cli_rejects_a_clash_without_traceback(tmp_path, capsys) -> None:
    from ganforge.cli import main

    rc = main(["train", "gan-ring8", "--set", "objective.clip=0.01", "--set",
               "discriminator.spectral_norm=true", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "objective.clip=0" in err
    assert not (tmp_path / "r").exists()


def test_loss_defaults_follow_the_papers() -> None:
    wgan = load_config("wgan-mnist")
    assert (wgan.objective.clip, wgan.train.d_steps, wgan.optim.d.name, wgan.optim.d.lr) == \
        (0.01, 5, "rmsprop", 5e-5)
    gp = load_config("wgan-gp-mnist")
    assert (gp.objective.gradient_penalty, gp.objective.clip, gp.train.d_steps) == (10.0, 0.0, 5)
    assert tuple(gp.optim.d.betas) == (0.0, 0.9)
    assert load_config("gan-ring8", ["objective.loss=wgan_gp"]).objective.gradient_penalty == 10


def test_d_norm_switch_replaces_batch_norm_and_makes_d_per_sample() -> None:
    bn_d = "discriminator.layers=[{dense: {units: 16}}, {batch_norm: {eps: 0.001}}, relu, " \
           "{dense: {units: 1}}]"
    with pytest.raises(ConfigError, match="layer_norm"):
        load_config("gan-ring8", ["objective.loss=wgan_gp", bn_d])
    cfg = load_config("gan-ring8", ["objective.loss=wgan_gp", bn_d, "objective.d_norm=layer_norm"])
    assert cfg.discriminator.layers[1] == {"layer_norm": {"eps": 0.001}}
    torch.manual_seed(0)
    d = build_network(cfg.discriminator.model_dump(), (2,), "discriminator")
    x = torch.randn(6, 2)
    alone = torch.cat([d(x[i:i + 1]) for i in range(6)])
    assert torch.allclose(d(x), alone, atol=1e-6)  # no sample sees the others
    dropped = load_config("gan-ring8", [bn_d, "objective.d_norm=none"])
    assert "batch_norm" not in str(dropped.discriminator.layers)
    assert len(dropped.discriminator.layers) == 3


def test_ttur_gives_each_network_its_learning_rate(tmp_path) -> None:
    cfg = load_config("sngan-mnist", QUICK + ["train.steps=1", "train.batch_size=8",
                                              "objective.ema=null"])
    tr = Trainer(cfg, tmp_path / "r")
    assert tr.opt_g.param_groups[0]["lr"] == 1e-4 and tr.opt_d.param_groups[0]["lr"] == 4e-4
    g0 = [p.detach().clone() for p in tr.G.parameters()]
    d0 = [p.detach().clone() for p in tr.D.parameters()]
    tr.task.train_step(tr.batcher.next)
    # Adam's first step moves every parameter with a gradient by ~lr (|m/sqrt(v)| = 1)
    dg = max((p - q).abs().max().item() for p, q in zip(tr.G.parameters(), g0, strict=True))
    dd = max((p - q).abs().max().item() for p, q in zip(tr.D.parameters(), d0, strict=True))
    assert dg == pytest.approx(1e-4, rel=0.01) and dd == pytest.approx(4e-4, rel=0.01)


# ------------------------------------------------------------------- training, resume
def test_ema_generator_is_checkpointed_resumed_and_sampled(tmp_path) -> None:
    import ganforge

    ov = QUICK + ["train.steps=20", "train.checkpoint_every=10", "objective.ema=0.9",
                  "objective.r1=1.0", "objective.r1_every=3", "objective.instance_noise=0.1",
                  "objective.instance_noise_steps=15", "objective.packing=2",
                  "sampling.rejection=none",  # the preset's filter needs an unpacked D
                  "objective.feature_matching=added", "objective.label_smoothing=one_sided",
                  "optim.g.schedule.kind=constant", "optim.d.schedule.kind=constant"]
    # (constant lr: extending the budget from 10 to 20 steps re-plans a decaying schedule)
    full = ganforge.train("gan-ring8", overrides=ov, run_dir=tmp_path / "full")
    cut = tmp_path / "cut"
    half = [o if o != "train.steps=20" else "train.steps=10" for o in ov]
    ganforge.train("gan-ring8", overrides=half, run_dir=cut)
    resumed = ganforge.train(None, overrides=["train.steps=20"], resume=cut)
    a = full.sample(50, seed=3)
    b = resumed.sample(50, seed=3)
    assert torch.equal(a, b)
    loaded = ganforge.load(tmp_path / "full")
    assert torch.equal(loaded.sample(50, seed=3), a)
    from ganforge import checkpoint as ckpt

    _, w, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "full"))
    ema_keys = [k for k in w if k.startswith("generator_ema.")]
    assert ema_keys and any(not torch.equal(w[k], w["generator." + k.split(".", 1)[1]])
                            for k in ema_keys if "weight" in k)


@pytest.mark.slow
@pytest.mark.parametrize("preset, steps", [("wgan-gp-mnist", 100), ("sngan-mnist", 200)])
def test_mnist_presets_train_without_nan(tmp_path, preset: str, steps: int) -> None:
    import ganforge

    run = ganforge.train(preset, overrides=QUICK + [f"train.steps={steps}", "train.batch_size=16",
                                                    "monitor.log_every=10"],
                         run_dir=tmp_path / "r")
    log = [r for r in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    import json

    recs = [json.loads(r) for r in log]
    assert len(recs) == steps // 10
    keys = ["d_loss", "g_loss", "d_real", "d_fake"] + (["d_penalty"] if "gp" in preset else [])
    for r in recs:
        assert all(r[k] is not None and math.isfinite(r[k]) for k in keys)
    assert torch.isfinite(run.sample(16)).all()


@pytest.mark.parametrize("preset, extra, k", [("wgan-gp-mnist", [], 5),
                                              ("sngan-mnist", ["train.d_steps=3"], 3)])
def test_d_steps_gives_k_critic_updates_per_generator_update(tmp_path, preset, extra, k) -> None:
    cfg = load_config(preset, QUICK + ["train.steps=3", "train.batch_size=8",
                                       "monitor.log_every=1", *extra])
    assert cfg.train.d_steps == k
    tr = Trainer(cfg, tmp_path / "r")
    counts = {"d": 0, "g": 0}
    tr.opt_d.register_step_post_hook(lambda *a: counts.__setitem__("d", counts["d"] + 1))
    tr.opt_g.register_step_post_hook(lambda *a: counts.__setitem__("g", counts["g"] + 1))
    tr.fit()
    assert counts == {"d": 3 * k, "g": 3}
    # each critic update draws its own batch of real images
    recs = [r for r in tr.log.read() if r["kind"] == "train"]
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert tr.batcher.epoch * tr.batcher.batches_per_epoch + tr.batcher.position == 3 * k
