"""Speed switches change how a step runs, not what it computes (issue 7; timings live in
benchmarks/throughput.py, never in tests)."""

import pytest
import torch

from ganforge.api import load_config
from ganforge.config import apply_overrides, raw_config
from ganforge.training.trainer import Trainer

SMALL = ["train.epochs=null", "train.steps=4", "train.batch_size=8", "monitor.progress=false",
         "monitor.log_every=2", "monitor.sample_every=100", "monitor.report=false",
         "monitor.tensorboard=false", "device=cpu",
         # the tutorial's optimizer, constant (the fp16 resume test extends a 2-step run to 4
         # steps, which re-plans a decaying schedule), and no EMA: these tests compare G itself
         "optim.g.schedule.kind=constant", "optim.d.schedule.kind=constant",
         "optim.g.lr=0.0002", "optim.d.lr=0.0002", "objective.ema=null"]


def _run(tmp_path, name, extra):
    t = Trainer(load_config("dcgan-mnist", SMALL + extra), tmp_path / name)
    t.fit()
    return t


def _losses(t):
    return [(r["d_loss"], r["g_loss"]) for r in t.log.read() if r["kind"] == "train"]


def _no_dropout(extra):
    # Dropout masks follow the memory layout, so compare layouts on a D without dropout.
    raw = raw_config("dcgan-mnist")
    raw["discriminator"]["layers"] = [e for e in raw["discriminator"]["layers"]
                                      if not (isinstance(e, dict) and "dropout" in e)]
    return load_config(apply_overrides(raw, SMALL + extra))


def test_channels_last_computes_the_same_step(tmp_path):
    base = Trainer(_no_dropout(["train.channels_last=false"]), tmp_path / "base")
    base.fit()
    fast = Trainer(_no_dropout(["train.channels_last=true"]), tmp_path / "cl")
    fast.fit()
    assert base.data.x.is_contiguous()
    assert fast.data.x.is_contiguous(memory_format=torch.channels_last)
    # Same math, different memory layout: equal up to float reordering.
    for (a, b), (c, d) in zip(_losses(base), _losses(fast), strict=True):
        assert a == pytest.approx(c, rel=1e-4) and b == pytest.approx(d, rel=1e-4)
    # Adam turns float-reordering noise in near-zero gradients into updates of up to lr per
    # step, so after 4 steps (lr 2e-4) weights agree to 4 * 2e-4, not to float precision.
    for (k, v), (_, w) in zip(base.G.state_dict().items(), fast.G.state_dict().items(),
                              strict=True):
        assert torch.allclose(v.float(), w.float(), atol=8e-4), k


def test_bf16_autocast_runs_the_step_in_bf16_with_finite_losses(tmp_path):
    seen = []
    t = Trainer(load_config("dcgan-mnist", SMALL + ["train.precision=bf16"]), tmp_path / "bf")
    hook = t.D.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    t.fit()
    hook.remove()
    assert torch.bfloat16 in seen  # the convolutions ran in bf16
    losses = _losses(t)
    assert losses and all(torch.isfinite(torch.tensor(x)).all() for x in losses)
    assert all(p.dtype == torch.float32 for p in t.G.parameters())  # weights stay fp32
    # The same steps in fp32 (same seed): bf16's losses follow them to bf16 precision
    # (measured: within 0.07% over the 4 steps; the bound leaves 14x room).
    ref = _losses(_run(tmp_path, "fp32", ["train.precision=fp32"]))
    assert len(ref) == len(losses) == 2
    for (a, b), (c, d) in zip(losses, ref, strict=True):
        assert a == pytest.approx(c, rel=0.01) and b == pytest.approx(d, rel=0.01)
    assert t.sample_fixed().shape == (64, 1, 28, 28)


@pytest.mark.slow
def test_compile_gives_the_same_shapes_and_finite_losses(tmp_path):
    t = _run(tmp_path, "compiled", ["train.compile=true"])
    assert all(torch.isfinite(torch.tensor(x)).all() for x in _losses(t))
    assert t.sample_fixed().shape == (64, 1, 28, 28)


def test_dataloader_batcher_draws_the_index_batchers_batches_across_epochs_and_resume():
    from ganforge.data import DataLoaderBatcher, IndexBatcher, TensorData

    data = TensorData("t", torch.arange(23.0).reshape(23, 1), torch.arange(23) % 3)
    fast, slow = IndexBatcher(data, 5, seed=7), DataLoaderBatcher(data, 5, seed=7)
    for _ in range(11):  # 4 batches per epoch: crosses two epoch boundaries
        (a, ya), (b, yb) = fast.next(), slow.next()
        assert torch.equal(a, b) and torch.equal(ya, yb)
    state = slow.state_dict()
    resumed = DataLoaderBatcher(data, 5, seed=0)
    resumed.load_state_dict(state)
    for _ in range(6):
        a, b = fast.next()[0], resumed.next()[0]
        assert torch.equal(a, b)
    assert resumed.epoch == fast.epoch == 4


def test_fp32_step_is_identical_with_and_without_the_fast_data_path(tmp_path):
    fast = _run(tmp_path, "index", [])
    slow = _run(tmp_path, "loader", ["train.batching=dataloader"])
    assert _losses(fast) == _losses(slow)  # bit-identical, dropout included
    for (k, v), (_, w) in zip(fast.G.state_dict().items(), slow.G.state_dict().items(),
                              strict=True):
        assert torch.equal(v, w), k


def test_fused_adam_follows_the_foreach_adam(tmp_path):
    ref = _run(tmp_path, "foreach", [])
    fused = _run(tmp_path, "fused", ["optim.g.impl=fused", "optim.d.impl=fused"])
    assert isinstance(fused.opt_g, torch.optim.Adam) and fused.opt_g.defaults["fused"]
    for (a, b), (c, d) in zip(_losses(ref), _losses(fused), strict=True):
        assert a == pytest.approx(c, rel=1e-4) and b == pytest.approx(d, rel=1e-4)
    for (k, v), (_, w) in zip(ref.D.state_dict().items(), fused.D.state_dict().items(),
                              strict=True):
        assert torch.allclose(v, w, atol=8e-4), k


def test_fused_rmsprop_is_a_config_error():
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="fused"):
        load_config("dcgan-mnist", ["optim.d.name=rmsprop", "optim.d.impl=fused"])


def test_fp16_runs_in_half_with_loss_scaling_and_resumes_exactly(tmp_path):
    import ganforge

    common = SMALL + ["train.precision=fp16", "train.checkpoint_every=2"]
    seen = []
    straight = Trainer(load_config("dcgan-mnist", common), tmp_path / "straight")
    hook = straight.D.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    straight.fit()
    hook.remove()
    assert torch.float16 in seen  # D's first convolution ran in half precision
    assert all(torch.isfinite(torch.tensor(x)).all() for x in _losses(straight))
    scale = straight.scalers["d"].get_scale()
    assert 0 < scale <= 2.0 ** 16 and straight.scalers["g"].get_scale() > 0
    ganforge.train("dcgan-mnist", overrides=common[:1] + ["train.steps=2"] + common[2:],
                   run_dir=tmp_path / "split")
    resumed = ganforge.train(resume=tmp_path / "split", overrides=["train.steps=4"])
    assert resumed.step == 4
    for (k, v), (_, w) in zip(straight.G.state_dict().items(),
                              resumed.generator.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


def test_fp16_with_a_gradient_penalty_is_a_config_error():
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16"):
        load_config("wgan-gp-mnist", ["train.precision=fp16"])
    with pytest.raises(ConfigError, match="fp16"):
        load_config("ctgan", ["train.precision=fp16"])


def test_fast_cpu_dropout_keeps_the_right_fraction_and_gradient():
    from ganforge.architecture.layers import Dropout

    torch.manual_seed(0)
    d = Dropout(0.3)
    x = torch.randn(64, 32, 14, 14).requires_grad_()  # 401,408 elements
    torch.manual_seed(1)
    y = d(x)
    kept = y != 0
    frac = kept.float().mean().item()
    sd = (0.7 * 0.3 / x.numel()) ** 0.5
    assert abs(frac - 0.7) < 5 * sd  # binomial: 5 standard deviations
    assert torch.allclose(y[kept], (x / 0.7)[kept], rtol=1e-6, atol=0)  # kept entries scaled by 1 / keep
    y.backward(torch.full_like(x, 2.0))
    assert torch.allclose(x.grad, kept.float() * (2.0 / 0.7), rtol=1e-6, atol=0)  # gradient through the same mask
    # same seed, same mask; eval mode and p == 0 are the identity
    torch.manual_seed(1)
    assert torch.equal(d(x), y)
    assert torch.equal(d.eval()(x), x) and torch.equal(Dropout(0.0)(x), x)
    # a channels_last input keeps its layout and the same kept fraction per channel
    xc = torch.randn(16, 8, 32, 32).to(memory_format=torch.channels_last)
    yc = Dropout(0.5)(xc)
    assert yc.is_contiguous(memory_format=torch.channels_last)
    per_channel = (yc != 0).float().mean(dim=(0, 2, 3))
    assert (per_channel - 0.5).abs().max() < 5 * (0.25 / (16 * 32 * 32)) ** 0.5
    # mask bits are independent of position: neighbours agree as often as chance says
    m = kept.flatten().float()
    agree = (m[1:] == m[:-1]).float().mean().item()
    assert abs(agree - (0.7**2 + 0.3**2)) < 0.01


def test_dropout_layer_builds_the_fast_dropout():
    from ganforge.architecture.layers import LAYERS, Dropout

    m = LAYERS["dropout"].build((64,), {"p": 0.25})
    assert isinstance(m, Dropout) and m.p == 0.25


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_on_a_cpu_without_bf16_kernels_says_so(tmp_path, monkeypatch, capsys, fast):
    from ganforge.training import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "cpu_has_fast_bf16", lambda: fast)
    Trainer(load_config("dcgan-mnist", SMALL + ["train.precision=bf16"]), tmp_path / "bf")
    err = capsys.readouterr().err
    assert ("train.precision=fp32" in err) is (not fast)
