"""Training on real bundled data: ring8 modes, DCGAN on MNIST, exact resume."""

import pytest
import torch

import ganforge
from ganforge.data import IndexBatcher, TensorData, load_dataset
from ganforge.data.registry import mixture_means
from ganforge.metrics import fid, mode_coverage

QUIET = ["monitor.progress=false"]


def _weights(run):
    return {**{f"g.{k}": v for k, v in run.generator.state_dict().items()},
            **{f"d.{k}": v for k, v in run.discriminator.state_dict().items()}}


@pytest.mark.slow
def test_ring8_covers_at_least_6_of_8_modes(tmp_path):
    # The preset before issue 20 (1,500 steps, Adam 3e-4, no EMA), pinned here to keep this test
    # short: it covered 8/8 modes on seeds 0, 1 and 2 when measured. The issue 20 recipe (10,000
    # steps) is tested in test_recipes.py (slow).
    old_preset = ["train.steps=1500", "optim.g.lr=0.0003", "optim.d.lr=0.0003",
                  "objective.ema=null", "train.checkpoint_every=1000", "monitor.log_every=100",
                  "monitor.sample_every=1000"]
    run = ganforge.train("gan-ring8", overrides=QUIET + old_preset, run_dir=tmp_path / "ring")
    result = mode_coverage(run.sample(2500, seed=1), mixture_means("ring8"), std=0.01)
    assert result.modes >= 6, result
    assert result.high_quality > 0.1, result  # measured 0.19-0.23 on seeds 0-2


@pytest.mark.slow
def test_dcgan_mnist_short_run_changes_losses_and_samples_fit_data(tmp_path):
    # the trained generator itself: an EMA of 0.999 barely leaves the initial weights in 120 steps
    plain = ["objective.ema=null", "optim.g.lr=0.0002", "optim.d.lr=0.0002",
             "optim.g.schedule.kind=constant", "optim.d.schedule.kind=constant"]
    run = ganforge.train("dcgan-mnist", run_dir=tmp_path / "dc", overrides=QUIET + plain + [
        "train.epochs=null", "train.steps=120", "train.batch_size=32", "monitor.log_every=20",
        "monitor.sample_every=60"])
    log = [r for r in ganforge.monitor.log.read_log(tmp_path / "dc" / "metrics.jsonl")
           if r["kind"] == "train"]
    assert [r["step"] for r in log] == [20, 40, 60, 80, 100, 120]
    d_losses = [r["d_loss"] for r in log]
    g_losses = [r["g_loss"] for r in log]
    assert max(d_losses) - min(d_losses) > 0.05 and max(g_losses) - min(g_losses) > 0.05
    # D learns something: real digits score higher than generated ones at some point.
    assert max(r["d_real"] - r["d_fake"] for r in log) > 0.05
    x = run.sample(16)
    assert x.shape == (16, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert sorted(p.name for p in (tmp_path / "dc" / "samples").glob("*.png")) == [
        "step_00000060.png", "step_00000120.png"]
    assert (tmp_path / "dc" / "checkpoints" / "step_00000120" / "model.safetensors").is_file()
    # Samples moved towards the data: FID (mnist features, held-out digits) well below that of
    # the generator after a single step (same seed, so the same initial weights).
    first = ganforge.train("dcgan-mnist", run_dir=tmp_path / "dc1", overrides=QUIET + plain + [
        "train.epochs=null", "train.steps=1", "train.batch_size=32", "monitor.sample_every=60"])
    real = load_dataset("mnist", split="test").x[:500]
    fid_trained = fid(real, run.sample(500, seed=1), extractor="mnist")
    fid_start = fid(real, first.sample(500, seed=1), extractor="mnist")
    # measured 91 after 120 steps vs 872 after one
    assert fid_trained < 0.3 * fid_start, (fid_trained, fid_start)


@pytest.mark.parametrize("preset,extra", [
    # extending a run's budget re-plans a decaying lr schedule (linear to 0 over the steps),
    # so these two runs extend a constant one; scheduled resumes are interrupted instead
    # (test_estimator.py::test_scheduled_adamw_resume_equals_uninterrupted)
    ("gan-ring8", ["train.batch_size=64", "optim.g.schedule.kind=constant",
                   "optim.d.schedule.kind=constant"]),
    ("dcgan-mnist", ["train.epochs=null", "train.batch_size=8",  # BN + dropout: RNG state
                     "optim.g.schedule.kind=constant", "optim.d.schedule.kind=constant"]),
])
def test_resume_equals_uninterrupted(tmp_path, preset, extra):
    n = 6
    common = QUIET + extra + ["train.checkpoint_every=3", "monitor.log_every=2",
                              "monitor.sample_every=4"]
    straight = ganforge.train(preset, overrides=common + [f"train.steps={2 * n}"],
                              run_dir=tmp_path / "straight")
    ganforge.train(preset, overrides=common + [f"train.steps={n}"], run_dir=tmp_path / "split")
    resumed = ganforge.train(resume=tmp_path / "split", overrides=[f"train.steps={2 * n}"])
    assert resumed.step == straight.step == 2 * n
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The metric log has one line per logging step, with no duplicates after the resume.
    steps = [r["step"] for r in ganforge.monitor.log.read_log(tmp_path / "split" / "metrics.jsonl")
             if r["kind"] == "train"]
    assert steps == list(range(2, 2 * n + 1, 2))


def test_batcher_indexes_a_permutation_per_epoch():
    # x holds each sample's own index, so a batch tells exactly which samples were drawn.
    n, bs = 1050, 100
    data = TensorData("index", x=torch.arange(n).unsqueeze(1), y=torch.arange(n) % 7)
    b = IndexBatcher(data, batch_size=bs, seed=3)
    assert b.batches_per_epoch == n // bs
    epoch0 = [b.next() for _ in range(b.batches_per_epoch)]
    idx0 = torch.cat([x[:, 0] for x, _ in epoch0])
    # One epoch = distinct indices (no repeats), shuffled, labels travel with their samples.
    assert b.epoch == 0 and len(idx0) == b.batches_per_epoch * bs
    assert len(set(idx0.tolist())) == len(idx0)
    assert not torch.equal(idx0, torch.arange(len(idx0)))
    assert all(torch.equal(y, x[:, 0] % 7) for x, y in epoch0)
    # The next epoch is a fresh permutation: a different order, again without repeats, and it
    # can draw samples that fell in epoch 0's dropped remainder.
    epoch1 = [b.next() for _ in range(b.batches_per_epoch)]
    idx1 = torch.cat([x[:, 0] for x, _ in epoch1])
    assert b.epoch == 1 and len(set(idx1.tolist())) == len(idx1)
    assert not torch.equal(idx0, idx1)
    assert set(idx1.tolist()) - set(idx0.tolist())
    # Same seed, same batches.
    again = IndexBatcher(data, batch_size=bs, seed=3)
    assert torch.equal(torch.cat([again.next()[0][:, 0] for _ in range(len(epoch0))]), idx0)
    x, _ = IndexBatcher(load_dataset("digits"), batch_size=100, seed=3).next()
    assert x.shape == (100, 1, 8, 8)


def test_bundled_datasets_have_documented_shapes_and_ranges():
    mn = load_dataset("mnist")
    assert mn.x.shape == (4000, 1, 28, 28) and mn.x.min() == -1 and mn.x.max() == 1
    assert torch.bincount(mn.y).tolist() == [400] * 10
    assert len(load_dataset("mnist", split="test")) == 1000
    ring = load_dataset("ring8")
    assert ring.x.shape == (100_000, 2)
    radius = ring.x.norm(dim=1)
    assert abs(radius.mean().item() - 1.0) < 1e-3 and radius.std().item() < 0.02
    grid = load_dataset("grid25")
    assert mode_coverage(grid.x[:2500], mixture_means("grid25"), 0.05).modes == 25
