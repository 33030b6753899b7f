"""Every shipped preset loads, builds and trains: two steps (three for TimeGAN's phases) with
tiny budgets, and both networks move. Presets that other tests of the default suite already
train run here only with ``-m slow``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.api import load_config
from ganforge.config import list_presets
from ganforge.training.trainer import Trainer

COMMON = ["train.epochs=null", "train.steps=2", "train.batch_size=4", "train.checkpoint_every=1000",
          "monitor.progress=false", "monitor.log_every=1", "monitor.sample_every=1000",
          "monitor.report=false", "monitor.tensorboard=false", "device=cpu"]
EXTRA = {
    "ctgan": ["train.batch_size=20"],  # pac 10: a batch holds whole packs
    "ctgan-classifier": ["train.batch_size=20"],
    "crnngan": ["data.options.limit=3"],  # 3 chorales: parsing all of them takes a while
    "crnngan-onehot": ["data.options.limit=3"],
    "crnngan-folk": ["data.options.limit=40",  # the first 40 Essen tunes
                     "objective.likelihood_warmup=1"],
    "crnngan-mle": ["data.options.limit=3", "objective.likelihood_warmup=1"],
    # step 0 the likelihood alone without D (the preset's every step), step 1 adversarial
    "melody-mle": ["data.options.limit=3", "objective.likelihood_warmup=1"],
    "melody-mle-folk": ["data.options.limit=40", "objective.likelihood_warmup=1"],
    "stackgan-mnist": ["task_options.encoder=gru", "task_options.stage1_steps=1"],
    "timegan-macrodata": ["task_options.autoencoder_steps=1", "task_options.supervised_steps=1",
                          "train.steps=3"],
    "timegan-sines": ["task_options.autoencoder_steps=1", "task_options.supervised_steps=1",
                      "train.steps=3", "data.options.n=200"],
}
# trained for at least a step by another test of the default suite
# (the conditional presets' full networks are not: tests/test_conditional.py uses small ones)
COVERED = {"ctgan", "cyclegan-digits", "dcgan-mnist", "gan-ring8",
           "pix2pix-inpaint", "pix2pix-sr2x", "rgan-sines", "sngan-mnist",
           "stackgan-mnist", "tabular-mlp", "timegan-sines", "wgan-gp-mnist", "pacgan-grid25-paper"}
PRESETS = [pytest.param(p, marks=pytest.mark.slow) if p in COVERED else p
           for p in list_presets()]


def _rgb_folder(path):
    from PIL import Image

    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _moved(before: list[torch.Tensor], module: torch.nn.Module) -> int:
    return sum(not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters(),
                                                               strict=True))


def test_every_preset_is_covered_by_the_list():
    assert set(COVERED) | set(EXTRA) <= set(list_presets())
    assert {"lsgan-mnist", "timegan-macrodata", "gan-grid25", "dcgan-64", "wgan-mnist"} <= \
        set(list_presets()) - COVERED


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_builds_and_trains_two_steps(tmp_path, preset):
    extra = list(EXTRA.get(preset, []))
    if preset == "dcgan-64":
        extra.append(f"data.source=folder:{_rgb_folder(tmp_path / 'images')}")
    cfg = load_config(preset, COMMON + extra)
    tr = Trainer(cfg, tmp_path / "run")
    g0, d0 = _params(tr.G), _params(tr.D)
    tr.fit()
    steps = cfg.train.steps
    recs = [r for r in tr.log.read() if r["kind"] == "train"]
    assert [r["step"] for r in recs] == list(range(1, steps + 1))
    # (melody-mle's likelihood steps train G alone: no d_loss in their records)
    assert all(math.isfinite(r.get("d_loss", 0.0)) and math.isfinite(r["g_loss"]) for r in recs)
    assert math.isfinite(recs[-1]["d_loss"])
    # both networks were updated by the optimizers the preset names (RMSprop for wgan-mnist)
    assert _moved(g0, tr.G) > 0 and _moved(d0, tr.D) > 0
    for opt, spec in ((tr.opt_g, cfg.optim.g), (tr.opt_d, cfg.optim.d)):
        assert type(opt).__name__.lower() == spec.name
