"""Issue 20: the 2-D mixture recipes reach their targets, and ``train.threads`` picks and applies
a thread count."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ganforge
from ganforge.architecture.layers_stats import Maxout
from ganforge.config import load_config
from ganforge.data.registry import MIXTURE_STD, mixture_means
from ganforge.errors import ConfigError
from ganforge.metrics import mode_coverage
from ganforge.training.threads import (
    ONE_THREAD_BELOW_MACS,
    apply_threads,
    auto_threads,
    forward_macs,
    step_macs,
)
from ganforge.training.trainer import Trainer

QUIET = ["monitor.progress=false", "monitor.tensorboard=false", "monitor.report=false"]


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_forward_macs_counts_dense_maxout_and_conv_layers() -> None:
    assert forward_macs(nn.Linear(3, 4), (3,)) == 12
    assert forward_macs(Maxout(2, 3, pieces=5), (2,)) == 2 * 15  # all pieces are computed
    assert forward_macs(nn.Conv2d(1, 2, 3), (1, 5, 5)) == 2 * 3 * 3 * 9
    assert forward_macs(nn.ConvTranspose2d(2, 1, 3), (2, 4, 4)) == 2 * 4 * 4 * 9
    # LSTM: 4 gates x hidden x (input + hidden) per step, layer and direction
    lstm = nn.LSTM(3, 8, num_layers=2, batch_first=True, bidirectional=True)
    assert forward_macs(lstm, (10, 3)) == 10 * 2 * 4 * 8 * ((3 + 8) + (16 + 8))
    assert forward_macs(nn.GRU(5, 4, batch_first=True), (7, 5)) == 7 * 3 * 4 * (5 + 4)
    bn = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    bn.train()
    forward_macs(bn, (2,))
    assert bn.training and int(bn[1].num_batches_tracked) == 0  # eval pass, mode restored


def test_auto_rule_is_one_thread_for_a_tiny_mlp_and_all_cores_for_big_steps() -> None:
    assert auto_threads(ONE_THREAD_BELOW_MACS - 1, 2) == 1
    assert auto_threads(ONE_THREAD_BELOW_MACS, 2) == 2
    assert auto_threads(5 * ONE_THREAD_BELOW_MACS, 16) == 16


def test_auto_picks_one_thread_for_a_tiny_mlp_and_prints_it(tmp_path, keep_threads,
                                                           capsys) -> None:
    torch.set_num_threads(2)
    tr = Trainer(load_config("gan-ring8", QUIET + ["train.batch_size=16"]), tmp_path / "r")
    # G 16-256-256-256-2 on 16 latents, D 2-256-256-1 three times on 16 inputs
    g = 16 * 256 + 2 * 256 * 256 + 256 * 2
    d = 2 * 256 + 256 * 256 + 256
    assert step_macs(tr) == 16 * g + 3 * 16 * d < ONE_THREAD_BELOW_MACS
    assert torch.get_num_threads() == 1
    assert capsys.readouterr().err.count("ganforge: 1 thread (auto: 5 M MACs per step") == 1


def test_auto_uses_the_available_cores_above_the_threshold(tmp_path, keep_threads, capsys,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(1)
    tr = Trainer(load_config("gan-ring8", QUIET), tmp_path / "r")  # batch 256: 86 M MACs
    assert step_macs(tr) >= ONE_THREAD_BELOW_MACS
    assert torch.get_num_threads() == 2
    assert "ganforge: 2 threads (auto: 86 M MACs per step >= 25 M)" in capsys.readouterr().err


def test_configured_thread_count_is_applied_and_printed(tmp_path, keep_threads,
                                                        capsys) -> None:
    torch.set_num_threads(1)
    tr = Trainer(load_config("gan-ring8", QUIET + ["train.threads=2"]), tmp_path / "r")
    assert torch.get_num_threads() == 2
    assert "ganforge: 2 threads (train.threads)" in capsys.readouterr().err
    assert apply_threads(tr, verbose=False) == 2
    with pytest.raises(ConfigError, match="train.threads must be auto or a count >= 1"):
        load_config("gan-ring8", ["train.threads=0"])


@pytest.mark.slow
def test_gan_ring8_covers_every_mode_sharply_at_its_default_budget(tmp_path) -> None:
    """PacGAN's protocol on 2,500 samples of the run as ``ganforge sample`` draws them (the
    preset's D filter drops the lowest-scored 15 %).

    Issue 20's target on every seed: 8/8 modes, >= 90 % high quality, reverse KL <= 0.05.
    Measured (2026-12-02, 2 threads): 97.2 % / 98.6 % on seeds 0 / 1, 95.5 % at worst over
    seeds 0-4, KL <= 0.011; without the filter the same runs score 85.7-88.1 %
    (benchmarks/RESULTS.md). Seed 0 only: each run takes ~380 s on 2 cores, and CI's 90
    minutes hold one (`benchmarks/recipes.py gan-ring8 --seeds 0-4` runs the five)."""
    seed = 0
    ganforge.train("gan-ring8", overrides=["monitor.progress=false", f"seed={seed}"],
                   run_dir=tmp_path / "r")
    run = ganforge.load(tmp_path / "r")
    x = run.sample(2500, seed=0)
    cov = mode_coverage(x, mixture_means("ring8"), MIXTURE_STD["ring8"])
    assert cov.modes == 8, cov
    assert cov.reverse_kl <= 0.05, cov
    assert cov.high_quality >= 0.90, cov
    # the filter is what lifts the share: the same run without it stays below
    raw = mode_coverage(run.sample(2500, seed=0, rejection="none"), mixture_means("ring8"),
                        MIXTURE_STD["ring8"])
    assert raw.high_quality < cov.high_quality, (raw, cov)


@pytest.mark.slow
@pytest.mark.recipe
def test_demo_recipe_beats_the_tutorial_recipe_in_less_than_half_its_budget(tmp_path,
                                                                           two_threads) -> None:
    """The demo (dcgan-mnist) at 10 of its 35 epochs (1,250 steps, ~4 min on one thread) is
    scored as ``ganforge evaluate RUN --metrics fid,pr,modes --extractor mnist --n 5000``.

    Measured (2026-12-02, one thread): FID 13.5, 10/10 classes, class KL 0.20. The bound is
    the tutorial recipe's FID after its full 25 epochs (17.0, issue 20), which the demo's
    recipe beats in under half that time; at its full budget it scores 6.2 (RESULTS.md).
    Two threads since 2026-12-04 (540 s on this AMD CPU instead of 880 s at one); it passes
    there, the numbers above are from one thread."""
    from ganforge.evaluate import evaluate_run

    ganforge.train("dcgan-mnist", overrides=[*QUIET, "train.epochs=10"], run_dir=tmp_path / "r")
    res = evaluate_run(tmp_path / "r", metrics=["fid", "pr", "modes"], extractor="mnist",
                       n=5000, log=False)
    assert res["fid"] <= 17.0, res
    assert res["modes"] == 10 and res["modes_kl"] <= 0.3, res


def test_ema_with_own_stats_tracks_the_averaged_generator() -> None:
    from ganforge.objectives.tricks import EMA

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ema = EMA(net, decay=0.5, stats="own")
    x = torch.randn(64, 2) + 3
    ema.update(step=1, inputs=x)
    with torch.no_grad():
        h = ema.ema[0](x)
    assert torch.allclose(ema.ema[1].running_mean, 0.1 * h.mean(0), atol=1e-6)  # momentum 0.1
    assert torch.equal(net[1].running_mean, torch.zeros(3))  # G's statistics untouched
    assert not ema.ema.training
    copied = EMA(net, decay=0.5)  # the default copies G's statistics
    copied.update(step=1, inputs=x)
    assert torch.equal(copied.ema[1].running_mean, net[1].running_mean)
