"""The estimator API (ganforge.GAN / TableGAN), lr schedules and AdamW, --set budgets and list
indexing, data.json (runs sample without their data)."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import ganforge
from ganforge.config import load_config
from ganforge.errors import ConfigError, DataError, GanforgeError, SpecError
from ganforge.estimator import as_model_array, option_overrides
from ganforge.optim import schedule_factor
from ganforge.training.trainer import Trainer

QUIET = {"progress": False, "report": False, "tensorboard": False, "alarms": False,
         "log_every": 5, "sample_every": 1000}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def points(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * 0.5 + np.array([2.0, -1.0, 0.0])).astype(np.float32)


# ------------------------------------------------------------------------ schedules
def test_schedule_factors_are_warmup_then_decay():
    text = "optim.g.schedule={kind: cosine, warmup: 4, min_factor: 0.1}"
    sched = load_config("gan-ring8", [text]).optim.g.schedule
    f = [schedule_factor(sched, s, 14) for s in range(14)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1)
    assert f[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 9)))
    lin = load_config("gan-ring8", ["optim.g.schedule={kind: linear}"]).optim.g.schedule
    assert [schedule_factor(lin, s, 5) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert schedule_factor(None, 3, 5) == 1.0


def test_scheduled_adamw_resume_equals_uninterrupted(tmp_path):
    over = ["optim.g.name=adamw", "optim.g.lr=3e-4", "optim.g.weight_decay=0.01", "objective.ema=null",
            "optim.g.schedule={kind: cosine, warmup: 3}", "optim.d.schedule={kind: linear}",
            "train.steps=12", "train.batch_size=32", "train.checkpoint_every=3",
            "monitor.progress=false", "monitor.report=false", "monitor.log_every=3",
            "monitor.tensorboard=false"]
    cfg = ganforge.load_config("gan-ring8", over)
    straight = Trainer(cfg, tmp_path / "a")
    assert isinstance(straight.opt_g, torch.optim.AdamW)
    lrs = []
    straight.fit(on_step=lambda t: lrs.append(t.opt_g.param_groups[0]["lr"]))
    assert lrs[0] == pytest.approx(3e-4 / 3) and lrs[2] == pytest.approx(3e-4)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)

    class Stop(Exception):
        pass

    def stop_at_6(t):
        if t.step == 6:
            raise Stop

    with pytest.raises(Stop):
        Trainer(cfg, tmp_path / "b").fit(on_step=stop_at_6)
    resumed = ganforge.train(resume=tmp_path / "b")
    assert resumed.step == 12
    for name, net in (("G", straight.G), ("D", straight.D)):
        other = resumed.generator if name == "G" else resumed.discriminator
        for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items()):
            assert torch.equal(a, b), (name, k)


def test_schedule_rejected_where_the_task_sets_its_own_lr(tmp_path):
    cfg = ganforge.load_config("pix2pix-sr2x", ["optim.g.schedule={kind: cosine}",
                                                "train.steps=1"])
    with pytest.raises(ConfigError, match="sets its own learning rates"):
        Trainer(cfg, tmp_path / "p")


# ------------------------------------------------------------------------ overrides
def test_set_steps_replaces_epochs_with_a_note(capsys):
    cfg = load_config("dcgan-mnist", ["train.steps=7"])
    assert (cfg.train.steps, cfg.train.epochs) == (7, None)
    assert "train.steps=7 replaces the config's train.epochs=35" in capsys.readouterr().err
    cfg = load_config("gan-ring8", ["train.epochs=2"])
    assert (cfg.train.steps, cfg.train.epochs) == (None, 2)


def test_set_indexes_lists():
    cfg = load_config("gan-ring8", ["generator.layers[0].dense.units=128",
                                    "discriminator.layers[-1].dense.units=1"])
    assert cfg.generator.layers[0] == {"dense": {"units": 128}}
    with pytest.raises(ConfigError, match="index 10 is out of range.*has 10 entries"):
        load_config("gan-ring8", ["generator.layers[9].dense.units=3",
                                  "generator.layers[10].dense.units=3"])
    with pytest.raises(ConfigError, match="is not a list"):
        load_config("gan-ring8", ["train[0]=3"])


def test_options_flatten_to_overrides():
    assert option_overrides({"train": {"steps": 5}, "seed": 1, "optim.g.lr": 1e-4,
                             "optim": {"g": {"schedule": {"kind": "cosine"}}}}) == [
        "train.steps=5", "seed=1", "optim.g.lr=0.0001", 'optim.g.schedule.kind="cosine"']


# ------------------------------------------------------------------------ data checks
def test_image_arrays_are_scaled_to_tanh_range_with_a_note(capsys):
    u8 = np.array([[[0, 255], [51, 102]]] * 2, dtype=np.uint8)  # (N, H, W)
    x, kind = as_model_array(u8)
    assert kind == "image" and x.shape == (2, 1, 2, 2)
    assert x[0, 0].ravel().tolist() == pytest.approx([-1.0, 1.0, -0.6, -0.2])
    err = capsys.readouterr().err
    assert "one channel" in err and "scaled to [-1, 1]" in err
    x, _ = as_model_array(np.full((2, 3, 4, 4), 0.25, dtype=np.float32))
    assert float(x.max()) == pytest.approx(-0.5)
    with pytest.raises(DataError, match=r"span \[-3, 2\].*scale them to \[-1, 1\]"):
        as_model_array(np.array([[[[-3.0, 2.0]]]] * 2))
    with pytest.raises(DataError, match="NaN or infinite values in 1 sample.*rows: 1"):
        as_model_array(np.array([[0.0, 1.0], [np.nan, 2.0]]))


# ------------------------------------------------------------------------ estimator
def test_gan_fits_an_array_samples_saves_and_loads(tmp_path):
    x = points()
    gan = ganforge.GAN(run_dir=tmp_path / "run", train={"steps": 150, "batch_size": 64},
                       monitor=QUIET, **{"optim.g.lr": 1e-3, "optim.d.lr": 1e-3}).fit(x)
    s = gan.sample(500, seed=1)
    assert s.shape == (500, 3)
    # the generator moved toward the data's mean (2, -1, 0) from its untrained output near 0
    assert torch.linalg.norm(s.mean(0) - torch.tensor([2.0, -1.0, 0.0])) < 1.0
    info = json.loads((tmp_path / "run" / "data.json").read_text())
    assert info["shape"] == [3] and info["n"] == 256 and len(info["sha256"]) == 64
    gan.save(tmp_path / "copy")
    shutil.rmtree(tmp_path / "run")  # the copy needs nothing from the original
    src = ganforge.api.read_run_config(tmp_path / "copy").data.source
    assert src == f"npy:{(tmp_path / 'copy').resolve() / 'data.npy'}"  # its own stored data
    again = ganforge.GAN.load(tmp_path / "copy")
    assert torch.equal(again.sample(500, seed=1), s)
    with pytest.raises(ganforge.GanforgeError, match="not empty"):
        again.save(tmp_path / "copy" / "..")


class TinyG(nn.Module):
    def __init__(self, out=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, out))

    def forward(self, z):
        return self.net(z)


def test_gan_with_own_generator_trains_loads_and_checks_shapes(tmp_path):
    x = points(128)
    gan = ganforge.GAN(generator=TinyG(), run_dir=tmp_path / "own", latent={"dim": 8},
                       train={"steps": 10, "batch_size": 32}, monitor=QUIET).fit(x)
    s = gan.sample(4)
    assert s.shape == (4, 3)
    with pytest.raises(ganforge.GanforgeError, match="own generator.*GAN.load"):
        ganforge.GAN.load(tmp_path / "own")
    back = ganforge.GAN.load(tmp_path / "own", generator=TinyG())
    assert torch.equal(back.sample(4), s)
    # evaluate scores the user's module (with its trained weights), as sample does
    scores = back.evaluate(metrics="pr", extractor="raw", n=64, log=False, cache=False)
    assert 0 <= scores["precision"] <= 1 and scores["protocol"]["n_fake"] == 64
    untrained = ganforge.GAN.load(tmp_path / "own", generator=TinyG())
    with torch.no_grad():
        for p in untrained.run.generator.parameters():
            p.zero_()  # every sample at one point: precision or recall must change
    other = untrained.evaluate(metrics="pr", extractor="raw", n=64, log=False, cache=False)
    assert (other["precision"], other["recall"]) != (scores["precision"], scores["recall"])
    # the CLI (no way to hand it a module) says how to do it: exit 4, no traceback
    from ganforge.cli import main

    assert main(["evaluate", str(tmp_path / "own"), "--metrics", "pr", "--extractor", "raw",
                 "--n", "16"]) == 4
    with pytest.raises(ganforge.GanforgeError, match=r"own generator .*GAN.load\(path, "
                                                      r"generator=MyNet"):
        ganforge.load(tmp_path / "own")
    with pytest.raises(SpecError, match=r"shape \(2,\), but the data's samples have shape "
                                        r"\(3,\)"):
        ganforge.GAN(generator=TinyG(out=2), latent={"dim": 8}, run_dir=tmp_path / "bad",
                     train={"steps": 1}, monitor=QUIET).fit(x)
    assert not (tmp_path / "bad").exists()  # no half-made run left behind
    with pytest.raises(SpecError, match="generator fails on a latent batch"):
        ganforge.GAN(generator=TinyG(), run_dir=tmp_path / "bad2", train={"steps": 1},
                     monitor=QUIET).fit(x)  # latent.dim 16 != 8


def test_tablegan_fits_a_dataframe_and_samples_conditions(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"sex": rng.choice(["Male", "Female"], 200),
                       "age": rng.normal(40, 10, 200).round(1),
                       "kids": rng.integers(0, 3, 200)})
    tg = ganforge.TableGAN(epochs=2, batch_size=50, run_dir=tmp_path / "t",
                           monitor=QUIET).fit(df, discrete_columns=["kids"])
    rows = tg.sample(40, conditions={"sex": "Female"})
    assert list(rows.columns) == ["sex", "age", "kids"] and len(rows) == 40
    assert (rows["sex"] == "Female").all()
    assert set(rows["kids"]) <= {0, 1, 2}
    # several columns: every row has all the asked values (the unconditioned share of this
    # pair is about 1/6, so a sampler that honoured only one column would fail)
    free = tg.sample(300, seed=1)
    assert ((free["sex"] == "Male") & (free["kids"] == 2)).mean() < 0.6
    both = tg.sample(60, seed=1, conditions={"sex": "Male", "kids": 2})
    assert len(both) == 60 and (both["sex"] == "Male").all() and (both["kids"] == 2).all()
    with pytest.raises(GanforgeError, match="names a column twice"):
        tg.sample(5, where=["sex=Male", "sex=Female"])
    # a new process would not have the registered frame: loading reads the run dir only
    from ganforge.data import tabular

    tabular._FRAMES.clear()
    assert len(ganforge.GAN.load(tmp_path / "t").sample(5)) == 5


def test_npy_run_samples_after_the_file_moves(tmp_path):
    np.save(tmp_path / "x.npy", points(64))
    run = ganforge.train("gan-ring8", run_dir=tmp_path / "r", overrides=[
        f"data.source=npy:{tmp_path / 'x.npy'}", "data.split=all", "train.steps=2",
        "train.batch_size=16", "generator.layers[-1].dense.units=3", "monitor.progress=false",
        "monitor.report=false", "monitor.tensorboard=false"])
    (tmp_path / "x.npy").rename(tmp_path / "moved.npy")
    assert torch.equal(ganforge.load(tmp_path / "r").sample(8), run.sample(8))


def test_fit_rejects_what_it_cannot_train(tmp_path):
    with pytest.raises(DataError, match="give a pandas DataFrame, a numpy array"):
        ganforge.GAN(run_dir=tmp_path / "a").fit({"a": 1})
    with pytest.raises(DataError, match="holds <U1 values"):
        ganforge.GAN(run_dir=tmp_path / "a").fit(np.array([["a"], ["b"]]))
    with pytest.raises(ConfigError, match="unknown preset"):
        ganforge.GAN("gan-rign8")
    with pytest.raises(ganforge.GanforgeError, match="not fitted"):
        ganforge.GAN().sample(3)


# ------------------------------------------------------------------------ CLI and resume
@pytest.fixture(scope="module")
def tiny_npy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    np.save(root / "x.npy", points(64))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ganforge.train("gan-ring8", run_dir=root / "run", overrides=[
            f"data.source=npy:{root / 'x.npy'}", "data.split=all", "train.steps=4",
            "train.checkpoint_every=2", "train.batch_size=16",
            "generator.layers[-1].dense.units=3", "monitor.progress=false",
            "monitor.report=false", "monitor.tensorboard=false"])
    finally:
        torch.set_num_threads(n)
    return root


def test_resume_checks_the_data_hash(tiny_npy_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_npy_run / "run", run)
    np.save(tiny_npy_run / "other.npy", points(64, seed=5))
    with pytest.raises(DataError, match="differs from what run .* was trained on.*Resume with "
                                        "the original data"):
        ganforge.train(resume=run, overrides=[f"data.source=npy:{tiny_npy_run / 'other.npy'}",
                                              "train.steps=6"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_00000002", "step_00000004"]  # nothing lost or written


def test_resume_says_where_it_continues(tiny_npy_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_npy_run / "run", run)
    assert ganforge.train(resume=run, overrides=["train.steps=5"]).step == 5
    assert f"resuming '{run}' from step 4 of 5" in capsys.readouterr().err


def test_cli_sample_refuses_to_overwrite_and_writes_png_folders(tiny_npy_run, tmp_path,
                                                               capsys):
    from ganforge.cli import main

    run = str(tiny_npy_run / "run")
    out = tmp_path / "s.npy"
    assert main(["sample", run, "-n", "3", "--out", str(out)]) == 0
    first = np.load(out)
    assert main(["sample", run, "-n", "3", "--out", str(out), "--seed", "1"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert np.array_equal(np.load(out), first)  # nothing lost
    assert main(["sample", run, "-n", "3", "--out", str(out), "--seed", "1", "--force",
                 "--device", "cpu"]) == 0
    assert not np.array_equal(np.load(out), first)
    assert main(["sample", run, "--out", str(tmp_path / "pngs") + "/"]) == 2
    assert "one PNG per image sample" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == \
        f"ganforge {ganforge.__version__}"


def test_cli_sample_folder_writes_one_png_per_image(tmp_path):
    from PIL import Image

    from ganforge.commands.core import save_sample_files

    x = torch.linspace(-1, 1, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert save_sample_files(x, tmp_path / "f", "image") == 0
    files = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert files == ["sample_00000.png", "sample_00001.png"]
    img = np.asarray(Image.open(tmp_path / "f" / "sample_00000.png"))
    assert img.shape == (4, 5, 3) and img[0, 0, 0] == 0 and img.max() <= 255


def test_progress_is_lines_when_not_a_terminal(monkeypatch, capsys):
    from ganforge.progress import Progress

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    bar = Progress(True, 40, 0, "demo")
    for _ in range(40):
        bar.set_postfix({"d_loss": "0.69"})
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 20
    assert lines[0] == "demo: step 2/40 (5%) d_loss=0.69"
    assert lines[-1] == "demo: step 40/40 (100%) d_loss=0.69"
    # updates of many samples at once: a line each time a 5% mark is crossed
    bar = Progress(True, 1000, 0, "features", unit="sample")
    for _ in range(4):
        bar.update(min(256, 1000 - bar.n))
    bar.close()
    assert capsys.readouterr().err.strip().splitlines() == [
        "features: sample 256/1000 (25%)", "features: sample 512/1000 (51%)",
        "features: sample 768/1000 (76%)", "features: sample 1000/1000 (100%)"]


def test_long_feature_extraction_reports_progress(monkeypatch, capsys):
    from ganforge.metrics.features import PROGRESS_BATCHES, get_extractor

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    ext = get_extractor("raw")
    monkeypatch.setattr(ext, "batch_size", 10)
    x = torch.randn(10 * PROGRESS_BATCHES, 3)
    assert torch.equal(ext.features(x), x)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 20 and lines[-1] == (f"raw features: sample {len(x)}/{len(x)} (100%)")
    ext.features(x[:-1])  # fewer batches: silent
    assert capsys.readouterr().err == ""


def test_cli_config_all_prints_every_key_with_value_and_default(capsys):
    from ganforge.cli import main
    from ganforge.config import RunConfig, config_rows

    assert main(["config", "gan-ring8", "--all", "--set", "train.steps=7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(config_rows(RunConfig.model_validate(
        ganforge.load_config("gan-ring8").to_dict())))
    assert "train.steps = 7  (default: null)  # generator updates" in lines
    assert any(line.startswith("objective.d_norm = null  (default: null)") for line in lines)
    assert 'optim.g.schedule.kind = "linear"  (default: "constant")' in lines  # nested section
    assert main(["config", "gan-ring8"]) == 0
    changed = capsys.readouterr().out.splitlines()
    assert "latent.dim = 16  (default: 100)" in changed and len(changed) < len(lines)


# ------------------------------------------------------------------------ data checks (files)
def test_csv_numeric_column_with_stray_cells_is_reported_by_line(tmp_path):
    from ganforge.data.tabular import read_csv

    rows = ["age,city"] + [f"{20 + i},x" for i in range(30)]
    rows[5] = "4O,x"      # letter O typed for a zero: CSV line 6 (line 1 is the header)
    rows[12] = "n/a?,y"   # line 13
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'age' holds numbers except 2 cell\(s\): line 6 "
                                        r"\('4O'\), line 13 \('n/a\?'\)\. Fix them, or leave"):
        read_csv(tmp_path / "t.csv")
    rows[5], rows[12] = "40,x", ",y"  # an empty cell is a missing value, not an error
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert read_csv(tmp_path / "t.csv")["age"].isna().sum() == 1


def test_image_folder_size_and_mode_fixes_are_noted_on_stderr(tmp_path, capsys):
    from PIL import Image

    from ganforge.data import load_dataset

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "b.png")
    d = load_dataset(f"folder:{tmp_path}", image_size=[3, 8, 8])
    assert d.x.shape == (2, 3, 8, 8)
    err = capsys.readouterr().err
    assert "note:" in err and "resized 1 of 2 images to 8x8" in err and "1 L images to RGB" in err


def test_npy_float_images_in_0_255_are_scaled_with_a_note(tmp_path, capsys):
    from ganforge.data import load_dataset

    arr = np.array([[[0.0, 255.0], [127.5, 51.0]]] * 3, dtype=np.float32)  # (N, H, W)
    np.save(tmp_path / "f.npy", arr)
    d = load_dataset(f"npy:{tmp_path / 'f.npy'}", image_size=[1, 2, 2])
    assert d.x.shape == (3, 1, 2, 2)
    assert d.x[0, 0].ravel().tolist() == pytest.approx([-1.0, 1.0, 0.0, -0.6])
    assert "scaled to [-1, 1]" in capsys.readouterr().err
    kept = load_dataset(f"npy:{tmp_path / 'f.npy'}", image_size=[1, 2, 2], scale=False)
    assert float(kept.x.max()) == 255.0


def test_evaluate_says_when_the_data_is_not_what_the_run_was_trained_on(tiny_npy_run,
                                                                         tmp_path, capsys):
    from ganforge.evaluate import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(tiny_npy_run / "run", run)
    kw = {"metrics": "pr", "extractor": "raw", "n": 32, "log": False, "cache": False}
    same = evaluate_run(run, **kw)
    assert same["protocol"]["real"]["same_as_training"] is True
    assert "differs from what the run was trained on" not in capsys.readouterr().err
    src = tiny_npy_run / "x.npy"
    original = np.load(src)
    try:
        np.save(src, points(64, seed=5))  # another file at the same path
        other = evaluate_run(run, **kw)
    finally:
        np.save(src, original)
    assert other["protocol"]["real"]["same_as_training"] is False
    assert "differs from what the run was trained on" in capsys.readouterr().err


def test_large_samples_report_progress(tiny_npy_run, monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    run = ganforge.load(tiny_npy_run / "run")
    small = run.sample(100, rejection="none")  # (the preset's D filter draws a quiet burn-in)
    assert capsys.readouterr().err == ""
    big = run.sample(20 * 512, rejection="none")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 20 and lines[-1] == "sampling: sample 10240/10240 (100%)"
    assert torch.equal(big[:100], small)  # batching does not change the samples
