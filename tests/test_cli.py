"""The CLI end to end on tiny budgets, and clean errors for bad input."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganforge.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, check=False)


def test_presets_and_preset_roundtrip(tmp_path, capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("dcgan-mnist", "gan-ring8", "dcgan-64"):
        assert name in out
    assert main(["preset", "gan-ring8"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "mine.yaml").write_text(text)
    assert main(["inspect", str(tmp_path / "mine.yaml")]) == 0
    table = capsys.readouterr().out
    # G: 16->256(+BN)->256(+BN)->256(+BN)->2: 4352+512 + 65792+512 + 65792+512 + 514
    assert "total params: 137,986" in table


def test_train_sample_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    r = run_cli("train", "gan-ring8", "--run-dir", str(run_dir), "--no-progress",
                "--set", "train.steps=40", "--set", "monitor.sample_every=20")
    assert r.returncode == 0, r.stderr
    assert f"run directory: {run_dir}" in r.stdout
    assert (run_dir / "config.yaml").is_file() and (run_dir / "samples" / "step_00000040.png").is_file()
    for ext in ("png", "npy", "csv"):
        out = tmp_path / f"s.{ext}"
        r = run_cli("sample", str(run_dir), "-n", "50", "--out", str(out))
        assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (50, 2)
    csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(csv, arr, rtol=1e-5, atol=1e-6)
    assert Image.open(tmp_path / "s.png").size[0] > 100
    # Resume with a larger budget continues from step 40.
    r = run_cli("train", "--resume", str(run_dir), "--no-progress", "--set", "train.steps=60")
    assert r.returncode == 0, r.stderr
    assert (run_dir / "checkpoints" / "step_00000060").is_dir()


@pytest.mark.parametrize("args,message", [
    (["train", "gan-ring8", "--set", "train.stepz=5"],
     "train.stepz: unknown key. Did you mean 'steps'?"),
    (["train", "gan-ring8", "--set", "optim.g.lr=-1"], "optim.g.lr: Input should be greater than 0"),
    (["train", "gan-ring9"], "unknown preset 'gan-ring9'. Did you mean 'gan-ring8'?"),
    (["train", "dcgan-mnist", "--set", "data.source=folder:/nonexistent/imgs",
      "--set", "data.image_size=[1,28,28]"], "image folder '/nonexistent/imgs' does not exist"),
    (["train", "gan-ring8", "--set", "data.source=mnits"], "Did you mean 'mnist'?"),
    (["train", "gan-ring8", "--set", "train.steps=5", "--set", "train.steps=-1"],
     "train.steps: Input should be greater than or equal to 1"),
    (["train", "gan-ring8", "--set", "generator.layers=[{dense: {units: 3}}]"],
     "generator.layers[0] (dense): output 3, data is 2"),
    (["sample", "/nonexistent/run", "--out", "x.png"], "run directory '/nonexistent/run' does not exist"),
    (["train", "gan-ring8", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (["sample", "RUN", "-n", "many", "--out", "x.png"], "invalid int value: 'many'"),
])
def test_bad_input_exits_nonzero_without_traceback(tmp_path, args, message):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert message in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


def test_existing_run_dir_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("train", "gan-ring8", "--run-dir", str(run_dir), "--no-progress",
                   "--set", "train.steps=10").returncode == 0
    before = (run_dir / "metrics.jsonl").read_text()
    r = run_cli("train", "gan-ring8", "--run-dir", str(run_dir), "--no-progress",
                "--set", "train.steps=10")
    assert r.returncode == 2 and "already holds a run" in r.stderr
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_bad_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator: [unclosed\n")
    r = run_cli("train", str(bad))
    assert r.returncode == 2 and "is not valid YAML" in r.stderr and "Traceback" not in r.stderr


def test_config_base_lays_its_keys_over_a_preset_or_file(tmp_path, monkeypatch):
    from ganforge.api import load_config

    (tmp_path / "mine.yaml").write_text(
        "base: gan-ring8\ntrain: {steps: 7}\noptim: {g: {lr: 0.0005}}\n"
        "generator: {layers: [{dense: {units: 32}}, relu, {dense: {units: features}}]}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "second.yaml").write_text("base: ../mine.yaml\nseed: 3\n")
    want = load_config("gan-ring8", [
        "train.steps=7", "optim.g.lr=0.0005",
        "generator.layers=[{dense: {units: 32}}, relu, {dense: {units: features}}]"])
    mine = load_config(tmp_path / "mine.yaml")
    # mappings merge key by key (optim.g keeps its name and betas), lists replace
    assert mine.model_dump() == want.model_dump()
    assert mine.optim.g.name == "adam" and mine.optim.g.lr == 0.0005
    assert len(mine.generator.layers) == 3
    monkeypatch.chdir(tmp_path / "sub")  # a relative base is read from the file's folder
    second = load_config(str(tmp_path / "sub" / "second.yaml"))
    assert second.model_dump() == {**want.model_dump(), "seed": 3}
    # the folk preset is crnngan-mle with its data
    folk, mle = (load_config("crnngan-folk").model_dump(),
                 load_config("crnngan-mle", ["data.source=music:essen"]).model_dump())
    assert {k for k in folk if folk[k] != mle[k]} == {"name", "description"}
    # melody-mle-folk: melody-mle with the folk data, 4x its learning rate, pitch drawn at 0.85,
    # the delta at 0.9
    folk, mle = (load_config("melody-mle-folk").model_dump(),
                 load_config("melody-mle", ["data.source=music:essen",
                                            "optim.g.lr=0.004"]).model_dump())
    assert {k for k in folk if folk[k] != mle[k]} == {"name", "description", "generator"}
    head = folk["generator"]["layers"][1]["feedback"]["layers"][-1]["span_softmax"]
    assert head["sample_temperature"] == [0.85, 1, 0.9]


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "in a loop"),
    ({"a.yaml": "base: dcgan-mnsit\n"}, "Did you mean 'dcgan-mnist'"),
    ({"a.yaml": "base: [gan-ring8]\n"}, "must name a preset or a YAML file"),
    ({"a.yaml": "base: nowhere.yaml\n"}, "does not exist"),
])
def test_bad_config_base_is_a_clear_error(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = run_cli("train", str(tmp_path / "a.yaml"), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ exit status
TINY = ["--no-progress", "--set", "train.batch_size=64", "--set", "monitor.sample_every=100000",
        "--set", "device=cpu"]
RING = ["--set", "data.options.n=256"]


def test_exit_status_tells_usage_data_checkpoint_and_failed_runs_apart(tmp_path, capsys):
    """0 success, 1 the run failed, 2 usage, 3 data, 4 checkpoint: a script can branch on the
    status; each error keeps its one-paragraph message, no traceback, nothing written."""
    run = tmp_path / "run"
    assert main(["train", "gan-ring8", "--run-dir", str(run), "--set", "train.steps=2", *RING,
                 *TINY]) == 0
    (ckpt,) = sorted((run / "checkpoints").glob("step_*"))
    (tmp_path / "garbage.npy").write_bytes(b"not an array at all")
    (tmp_path / "not_a_run").mkdir()
    trained = tmp_path / "trained"  # a copy of the run whose weights file loses its last bytes
    shutil.copytree(run, trained)
    weights = trained / "checkpoints" / ckpt.name / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    out = tmp_path / "s.npy"
    cases = [
        (["train", "gan-ring8", "--set", "train.stepz=5", *RING], 2, "Did you mean 'steps'?"),
        (["seqscore", str(run)], 2, "the sequence scores do not apply"),  # the wrong verb
        (["train", "gan-ring8", "--set", f"data.source=npy:{tmp_path / 'missing.npy'}"], 3,
         "missing.npy"),
        (["train", "gan-ring8", "--set", f"data.source=npy:{tmp_path / 'garbage.npy'}"], 3,
         "garbage.npy"),
        (["sample", str(tmp_path / "not_a_run"), "--out", str(out)], 4, "is not a ganforge run"),
        (["sample", str(trained), "--out", str(out)], 4, "truncated"),
        (["train", "--resume", str(trained), "--set", "train.steps=4"], 4, "truncated"),
        (["train", "gan-ring8", "--set", "train.steps=30", "--set", "optim.g.name=sgd",
          "--set", "optim.d.name=sgd", "--set", "optim.g.lr=1e6", "--set", "optim.d.lr=1e6",
          *RING],
         1, "diverged"),
    ]
    capsys.readouterr()
    for i, (argv, status, needle) in enumerate(cases):
        where = tmp_path / f"new{i}"
        if argv[0] == "train" and "--resume" not in argv:
            argv = [*argv, "--run-dir", str(where), *TINY]
        assert main(argv) == status, (argv, capsys.readouterr().err)
        err = capsys.readouterr().err
        assert "ganforge: error: " in err and needle in err, err
        assert "Traceback" not in err
        if status in (2, 3):
            assert not where.exists()  # nothing started
    assert not out.exists()
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before
    # through a real process too, and documented in --help
    r = run_cli("train", "gan-ring8", "--set", f"data.source=npy:{tmp_path / 'garbage.npy'}",
                "--run-dir", str(tmp_path / "sub"), cwd=tmp_path)
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    r = run_cli("--help")
    assert r.returncode == 0
    help_lines = r.stdout.split("exit status:")[1].splitlines()
    for code in ("0", "1", "2", "3", "4", "130"):
        assert any(line.split()[:1] == [code] for line in help_lines), r.stdout


# ------------------------------------------------------------------ progress in a log file
@pytest.mark.slow
def test_training_piped_to_a_file_logs_a_line_every_5_percent(tmp_path):
    """A run whose output goes to a file (CI, nohup) writes one progress line per 5%, not a
    redrawn bar: no carriage returns, 20 progress lines for 1,000 steps, a few KB in all."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}  # the suite's quiet switch
    log = tmp_path / "train.log"
    with log.open("wb") as f:
        r = subprocess.run([sys.executable, "-m", "ganforge", "train", "gan-ring8", "--run-dir",
                            str(tmp_path / "run"), "--set", "train.steps=1000",
                            "--set", "monitor.log_every=5", *RING, *TINY[1:]],
                           stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                           timeout=600, check=False)
    text = log.read_bytes()
    assert r.returncode == 0, text.decode()[-2000:]
    assert b"\r" not in text and b"\x1b[" not in text  # no redraws, no cursor movement
    progress = [line for line in text.decode().splitlines() if ": step " in line]
    assert len(progress) == 20, progress
    assert progress[0].startswith("gan-ring8: step 50/1000 (5%) d_loss=")
    assert progress[-1].startswith("gan-ring8: step 1000/1000 (100%)")
    assert len(text) < 6000, len(text)
