"""The task interface: registry, user tasks by ``module:Class``, the declared signals the loop
reads, every task's checks, and the layering contract of the package."""

from __future__ import annotations

import pickle
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ganforge
from ganforge.api import load_config
from ganforge.config import raw_config
from ganforge.data.registry import mixture_means
from ganforge.errors import ConfigError
from ganforge.metrics import mode_coverage
from ganforge.monitor.log import MetricLog
from ganforge.tasks import TASKS, register_task, task_class
from ganforge.tasks.base import Task
from ganforge.tasks.template import TemplateTask
from ganforge.training.trainer import Trainer

QUIET = ["monitor.progress=false", "monitor.report=false", "monitor.tensorboard=false"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_package_layers_point_down_only():
    """The import-linter contract of pyproject.toml: no module imports a layer above it."""
    from importlinter.cli import lint_imports

    assert lint_imports() == 0


def test_every_registered_task_is_a_task_subclass_imported_on_demand():
    for name in TASKS:
        cls = task_class(name)
        assert issubclass(cls, Task) and cls.name == name


def test_unknown_task_and_bad_paths_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown task 'uncondtional'.*Did you mean"):
        task_class("uncondtional")
    with pytest.raises(ConfigError, match="cannot import 'nosuch.module:Task'"):
        task_class("nosuch.module:Task")
    with pytest.raises(ConfigError, match="not a subclass of ganforge.tasks.base.Task"):
        task_class("ganforge.tasks.base:StepStats")


# gan-ring8's objective (R1, an EMA G) back to the defaults: the template reads no
# objective key, so setting one is a ConfigError
PLAIN_OBJECTIVE = ["objective.ema=null", "objective.ema_stats=copy", "objective.r1=0"]


def test_template_task_trains_by_module_path_and_fits_ring8(tmp_path):
    """``task: ganforge.tasks.template:TemplateTask`` trains with the loop's checkpoints and
    logs; the plain GAN of the template spreads over the ring (no collapse to a point)."""
    run = ganforge.train("gan-ring8", run_dir=tmp_path / "t", overrides=QUIET + [
        "task=ganforge.tasks.template:TemplateTask", "train.steps=300", *PLAIN_OBJECTIVE,
        "sampling.rejection=none",  # the preset's D filter is for the unconditional task
        "monitor.log_every=100", "train.checkpoint_every=300"])
    assert type(run) is ganforge.Run
    cov = mode_coverage(run.sample(2000), mixture_means("ring8"), std=0.02)
    assert cov.modes >= 3, cov
    again = ganforge.load(tmp_path / "t")
    assert torch.equal(again.sample(64), run.sample(64))


USER_TASK = '''
import torch
from ganforge.tasks.template import TemplateTask


class CountingTask(TemplateTask):
    """The template, counting its steps in task-owned, checkpointed state."""
    name = "counting"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.count = torch.zeros((), dtype=torch.long)

    def train_step(self, next_batch):
        self.count += 1
        return super().train_step(next_batch)

    def state_dict(self):
        return {"count": self.count.clone()}

    def load_state_dict(self, state):
        self.count = state["count"].clone()
'''


def test_user_task_from_own_package_registers_and_resumes_its_state(tmp_path, monkeypatch):
    pkg = tmp_path / "usertasks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "counting.py").write_text(textwrap.dedent(USER_TASK))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(TASKS, "counting", "usertasks.counting:CountingTask")
    over = QUIET + PLAIN_OBJECTIVE + ["task=counting", "monitor.log_every=5",
                                      "train.checkpoint_every=5", "sampling.rejection=none"]
    ganforge.train("gan-ring8", run_dir=tmp_path / "r", overrides=over + ["train.steps=5"])
    cfg = load_config("gan-ring8", over + ["train.steps=12"])
    trainer = Trainer(cfg, tmp_path / "r", resume=True)
    assert int(trainer.task.count) == 5  # restored from the checkpoint
    trainer.fit()
    assert int(trainer.task.count) == 12
    sys.modules.pop("usertasks.counting", None)
    sys.modules.pop("usertasks", None)


def test_register_task_takes_a_class_or_a_path_only():
    register_task("template-alias", TemplateTask)
    try:
        assert task_class("template-alias") is TemplateTask
    finally:
        TASKS.pop("template-alias")
    with pytest.raises(TypeError, match="Task subclass"):
        register_task("bad", object)  # type: ignore[arg-type]


# ------------------------------------------------------------------ checks of every task
def test_objective_rules_apply_to_conditional_runs_too():
    """Clipping and spectral norm fight each other; the conditional task used to skip the
    objective's compatibility check (it builds its own networks)."""
    with pytest.raises(ConfigError, match="weight clipping.*spectral norm"):
        load_config("cgan-mnist", ["objective.clip=0.01", "discriminator.spectral_norm=true"])
    with pytest.raises(ConfigError, match="sigmoid"):
        raw = raw_config("ctgan")
        raw["discriminator"]["layers"] = [*raw["discriminator"]["layers"], "sigmoid"]
        load_config(raw)


def test_a_section_the_task_does_not_read_is_an_error():
    with pytest.raises(ConfigError, match="'tabular' section is set, but task 'unconditional'"):
        load_config("gan-ring8", ["tabular.pac=5"])
    with pytest.raises(ConfigError, match="'translation' section.*task 'conditional'"):
        load_config("cgan-mnist", ["translation.cycle_weight=5"])
    load_config("ctgan", ["tabular.pac=5"])  # the task that reads it


@pytest.mark.parametrize("preset,key,value,reads", [
    ("ctgan", "ema", "0.99", "reads no objective key; its loss and penalty are tabular.loss"),
    ("cyclegan-digits", "loss", "hinge", ("reads no objective key; its adversarial loss is "
     "translation.gan_loss")),
    ("pix2pix-inpaint", "instance_noise", "0.1", "reads no objective key"),
    ("stackgan-mnist", "clip", "0.01", "reads no objective key"),
    ("timegan-sines", "r1", "1.0", ("reads objective.ema, objective.ema_start, "
     "objective.ema_stats only")),
])
def test_an_objective_key_the_task_would_ignore_is_an_error(preset, key, value, reads):
    with pytest.raises(ConfigError) as err:
        load_config(preset, [f"objective.{key}={value}"])
    msg = str(err.value)
    assert msg.startswith(f"objective.{key} is set, but task") and reads in msg, msg
    assert msg.endswith(f"Remove objective.{key}.")
    load_config("timegan-sines", ["objective.ema=0.99", "objective.ema_start=100"])
    load_config("ctgan", ["objective.d_norm=layer_norm"])  # a discriminator-spec rewrite


def test_the_template_task_reads_no_objective_key():
    """gan-ring8's R1 and EMA under the template task (whose loss is written in train_step)
    are refused, not silently dropped; with the objective at its defaults it loads."""
    task = ["task=ganforge.tasks.template:TemplateTask", "sampling.rejection=none"]
    with pytest.raises(ConfigError, match=r"objective\.r1 is set.*TemplateTask\.train_step"):
        load_config("gan-ring8", task)
    cfg = load_config("gan-ring8", task + PLAIN_OBJECTIVE)
    assert cfg.objective.ema is None and cfg.objective.r1 == 0


# ------------------------------------------------------------ declared signals, fixed defects
def test_translation_lr_schedule_keeps_the_rollback_factor(tmp_path):
    """A NaN rollback lowers every lr by ``nan_lr_factor``; cyclegan/pix2pix set their lr each
    step from the schedule, which used to undo it at the next step."""
    cfg = load_config("cyclegan-digits", QUIET + [
        "train.epochs=null", "train.steps=4", "train.batch_size=4", "translation.decay_start=0.0",
        "generator.layers=[{conv2d: {filters: 1, kernel: 3}}, tanh]",
        "discriminator.layers=[{conv2d: {filters: 1, kernel: 4, stride: 2, padding: 1}}]"])
    trainer = Trainer(cfg, tmp_path / "c")
    trainer.guard.lr_factor = 0.25
    trainer.fit()
    lr_g = trainer.task.opt_g.param_groups[0]["lr"]
    # the last step (step index 3 of 4) sets base * schedule(3) * 0.25
    from ganforge.tasks.translation import lr_factor

    want = cfg.optim.g.lr * lr_factor(3, 4, 0.0) * 0.25
    assert lr_g == pytest.approx(want, rel=1e-9)


def test_monitor_reads_wgan_gp_tables_as_critic_values(tmp_path):
    """A ctgan run with tabular.loss wgan_gp has an unbounded critic: the monitor must not
    read its outputs as probabilities (it used to judge by objective.loss)."""
    df = pd.DataFrame({"a": np.random.default_rng(0).normal(size=200),
                       "b": np.random.default_rng(1).choice(["x", "y"], size=200)})
    from ganforge.data.tabular import register_frame

    register_frame("tasks_test_frame", df)
    base = ["data.source=frame:tasks_test_frame", "data.target=null", "train.epochs=null",
            "train.steps=1", "train.batch_size=20", "monitor.progress=false"]
    for loss, probs in (("wgan_gp", False), ("non_saturating", True)):
        cfg = load_config("ctgan", base + [f"tabular.loss={loss}"])
        trainer = Trainer(cfg, tmp_path / loss)
        trainer.fit()
        assert trainer.task.probabilities is probs
        assert trainer.monitor.probabilities is probs


def test_loaded_runs_share_one_class_and_pickle(tmp_path):
    raw = raw_config("cgan-mnist")
    raw["train"] = {"steps": 1, "batch_size": 8, "checkpoint_every": 1}
    raw["monitor"].update(progress=False, report=False, tensorboard=False)
    raw["generator"]["layers"] = [{"dense": {"units": 784}}, {"reshape": {"shape": [1, 28, 28]}},
                                  "tanh"]
    raw["discriminator"]["layers"] = ["flatten", {"dense": {"units": 1}}]
    ganforge.train(raw, run_dir=tmp_path / "c")
    from ganforge.tasks.conditional import ConditionalRun

    a, b = ganforge.load(tmp_path / "c"), ganforge.load(tmp_path / "c")
    assert type(a) is type(b) is ConditionalRun
    again = pickle.loads(pickle.dumps(a))
    assert torch.equal(again.sample(4, labels=3), a.sample(4, labels=3))


def test_metric_log_is_read_incrementally(tmp_path):
    log = MetricLog(tmp_path / "m.jsonl")
    log.write({"kind": "train", "step": 1})
    first, off = log.read_from(0)
    assert [r["step"] for r in first] == [1]
    log.write({"kind": "eval", "step": 2})
    with log.path.open("a") as f:
        f.write('{"kind": "eval", "st')  # a line still being written
    new, off2 = log.read_from(off)
    assert [r["step"] for r in new] == [2] and off2 > off
    with log.path.open("a") as f:
        f.write('ep": 3}\n')
    assert [r["step"] for r in log.read_from(off2)[0]] == [3]
    log.truncate_after(1)
    assert log.read_from(10_000) == ([], log.path.stat().st_size)


def test_monitor_does_not_reread_the_whole_log_each_log_step(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = MetricLog.read

    def counting(self):
        calls["n"] += 1
        return real(self)

    monkeypatch.setattr(MetricLog, "read", counting)
    ganforge.train("gan-ring8", run_dir=tmp_path / "r", overrides=QUIET + [
        "train.steps=40", "monitor.log_every=2", "train.checkpoint_every=40"])
    assert calls["n"] <= 1, calls


OLD_LAYOUT = Path(__file__).parent / "fixtures" / "old_layout"


def test_checkpoints_of_the_previous_layout_load_and_resume(tmp_path):
    """A run written by the code before the task refactor (commit 24769ad, by
    tests/fixtures/old_layout/make.py; EMA on): ganforge.load samples exactly what the old
    code sampled, and training resumes from its checkpoint."""
    run_dir = tmp_path / "ring8-ema"
    shutil.copytree(OLD_LAYOUT / "ring8-ema", run_dir)
    run = ganforge.load(run_dir)
    want = np.load(OLD_LAYOUT / "ring8-ema-samples.npy")
    # equal up to float rounding: the fixture was written on another CPU (AVX2; AVX-512 sums
    # in another order)
    assert np.allclose(run.sample(32, seed=5).numpy(), want, rtol=0, atol=1e-6)
    resumed = ganforge.train(None, overrides=["train.steps=5"], resume=run_dir)
    assert resumed.step == 5
    assert not np.array_equal(resumed.sample(32, seed=5).numpy(), want)  # it trained on
