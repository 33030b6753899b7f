"""Config switches and extension points that change a run: each test asserts the effect of the
switch on the built objects or the logged numbers (tiny gan-ring8 budgets, seconds each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge.api import load_config
from ganforge.cli import main
from ganforge.data import DATASETS, TensorData, register_dataset
from ganforge.monitor.log import read_log
from ganforge.training.trainer import Trainer

RING = ["data.options.n=512", "train.batch_size=32", "monitor.progress=false",
        "monitor.log_every=1", "monitor.sample_every=100000", "monitor.grid_size=16",
        "monitor.report=false", "monitor.tensorboard=false", "train.checkpoint_every=100000",
        "device=cpu", "seed=5"]


def _ring(tmp_path, name, *extra, steps=3) -> Trainer:
    tr = Trainer(load_config("gan-ring8", [*RING, f"train.steps={steps}", *extra]),
                 tmp_path / name)
    tr.fit()
    return tr


def _train_lines(tr: Trainer) -> list[dict]:
    return [r for r in tr.log.read() if r["kind"] == "train"]


# ----------------------------------------------------------------------------- optimizers
def test_optimizer_switches_reach_the_torch_optimizers(tmp_path):
    cfg = load_config("gan-ring8", [*RING, "train.steps=1",
                                    "optim.g.name=sgd", "optim.g.lr=0.01",
                                    "optim.g.momentum=0.7", "optim.g.weight_decay=0.001",
                                    "optim.d.name=rmsprop", "optim.d.lr=0.002",
                                    "optim.d.alpha=0.95", "optim.d.eps=1e-6",
                                    "optim.d.momentum=0.3", "optim.d.weight_decay=0.01",
                                    "optim.d.impl=loop"])
    tr = Trainer(cfg, tmp_path / "r")
    assert isinstance(tr.opt_g, torch.optim.SGD) and isinstance(tr.opt_d, torch.optim.RMSprop)
    g, d = tr.opt_g.param_groups[0], tr.opt_d.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["foreach"]) == (0.01, 0.7, 0.001, True)
    assert (d["lr"], d["alpha"], d["eps"], d["momentum"], d["weight_decay"]) == \
        (0.002, 0.95, 1e-6, 0.3, 0.01)
    assert d["foreach"] is False  # impl: loop, PyTorch's per-parameter implementation
    adam = Trainer(load_config("gan-ring8", [*RING, "train.steps=1", "optim.g.eps=1e-5",
                                             "optim.g.weight_decay=0.02"]), tmp_path / "a")
    a = adam.opt_g.param_groups[0]
    assert isinstance(adam.opt_g, torch.optim.Adam)
    assert (a["eps"], a["weight_decay"]) == (1e-5, 0.02)


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_impl_loop_computes_the_same_updates_as_foreach(tmp_path, name):
    opt = [f"optim.g.name={name}", f"optim.d.name={name}", "optim.d.momentum=0.5"] \
        if name == "rmsprop" else []
    fast = _ring(tmp_path, "foreach", *opt)
    loop = _ring(tmp_path, "loop", *opt, "optim.g.impl=loop", "optim.d.impl=loop")
    assert loop.opt_g.param_groups[0]["foreach"] is False
    assert fast.opt_g.param_groups[0]["foreach"] is True
    moved = 0
    for net in ("G", "D"):
        a, b = getattr(fast, net).state_dict(), getattr(loop, net).state_dict()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    for p, q in zip(Trainer(load_config("gan-ring8", [*RING, "train.steps=1"]),
                            tmp_path / "init").G.parameters(), fast.G.parameters(), strict=True):
        moved += not torch.equal(p, q)
    assert moved > 0  # the runs trained: equal updates, not no updates


# ------------------------------------------------------------------------------ objective
def test_feature_matching_weight_scales_the_added_term(tmp_path):
    runs = {w: _train_lines(_ring(tmp_path, f"w{w}", "objective.feature_matching=added",
                                  f"objective.feature_matching_weight={w}", steps=1))[0]
            for w in (0.0, 4.0)}
    fm = runs[4.0]["feature_matching"]
    assert fm > 0 and runs[0.0]["feature_matching"] == pytest.approx(fm, rel=1e-6)
    # step 1 is identical up to G's loss: the difference is the weighted term
    assert runs[4.0]["g_loss"] - runs[0.0]["g_loss"] == pytest.approx(4.0 * fm, rel=1e-4)


def test_ema_start_copies_then_averages(tmp_path):
    copying = _ring(tmp_path, "copy", "objective.ema=0.5", "objective.ema_start=10")
    averaging = _ring(tmp_path, "avg", "objective.ema=0.5", "objective.ema_start=1")
    for a, b in zip(copying.sampling_generator.parameters(), copying.G.parameters(),
                    strict=True):
        assert torch.equal(a, b)  # within ema_start steps: a plain copy of G
    diff = [float((a - b).detach().abs().max())
            for a, b in zip(averaging.sampling_generator.parameters(),
                            averaging.G.parameters(), strict=True)]
    assert max(diff) > 1e-5  # averaging lags behind G
    assert averaging.sampling_generator is not averaging.G


def test_gp_center_sets_the_target_gradient_norm(tmp_path):
    """Step 1 sees the same D and interpolates: the penalties for centres 0 and 1 differ by
    exactly what the norms imply, w (E[(|g| - 1)^2] - E[|g|^2]) = w (1 - 2 E|g|)."""
    lines = {c: _train_lines(_ring(tmp_path, f"c{c}", "objective.loss=wgan_gp",
                                   f"objective.gp_center={c}", steps=1))[0]
             for c in (0, 1)}
    p0, p1 = lines[0]["d_penalty"], lines[1]["d_penalty"]
    assert p0 > 0 and p1 > 0 and p0 != pytest.approx(p1, rel=1e-3)
    mean_norm = (1 - (p1 - p0) / 10.0) / 2  # gradient_penalty weight 10 (wgan_gp default)
    # E|g| from the two runs is a norm: positive, and its square at most E[|g|^2] = p0 / 10
    assert 0 < mean_norm and mean_norm ** 2 <= p0 / 10 * (1 + 1e-4)


def test_diffaugment_changes_what_d_sees_in_a_training_step(tmp_path):
    """One dcgan-mnist step: with DiffAugment D's first input is the real batch transformed
    (cutout zeroes a square of -1..1 images to 0, translation shifts); without, the batch."""
    seen = {}
    for policy in ("[]", "[translation,cutout]"):
        tr = Trainer(load_config("dcgan-mnist", [
            "train.epochs=null", "train.steps=1", "train.batch_size=4", "monitor.progress=false",
            "monitor.report=false", "monitor.tensorboard=false", "device=cpu",
            f"objective.diffaugment={policy}"]), tmp_path / policy.strip("[]").replace(",", "-"))
        reals, inputs = [], []

        def next_batch(tr=tr, reals=reals):
            batch = tr.batcher.next()
            reals.append(batch[0].clone())
            return batch

        hook = tr.D.register_forward_pre_hook(
            lambda m, args, inputs=inputs: inputs.append(args[0].detach()))
        tr.task.train_step(next_batch)
        hook.remove()
        seen[policy] = (reals[0], inputs[0])
    real, d_in = seen["[]"]
    assert torch.equal(d_in, real)
    real, d_in = seen["[translation,cutout]"]
    assert d_in.shape == real.shape and not torch.equal(d_in, real)
    # every image is changed (translation and cutout act per image)
    assert all(not torch.equal(a, b) for a, b in zip(d_in, real, strict=True))


# ---------------------------------------------------------------------------- monitor
class _FlatEval:
    """Logs an eval line with the same FID at every step: the plateau rule's input."""

    def on_step(self, trainer, stats):
        trainer.log.write({"kind": "eval", "step": trainer.step, "fid": 7.0})

    def on_log(self, trainer, record):
        pass

    def on_end(self, trainer):
        pass


def test_alarms_false_silences_every_alarm_rule(tmp_path, capsys):
    """Thresholds that every step of a fresh ring8 run crosses (D(G(z)) < 0.99, diversity
    below 0.99 x the real data's, a flat FID): with alarms on, three rules fire and are logged
    and printed; with alarms off, none, while the signals are logged all the same."""
    hair_trigger = ["monitor.alarm_warmup=0", "monitor.alarm_window=1",
                    "monitor.d_fake_floor=0.99", "monitor.collapse_ratio=0.99",
                    "monitor.plateau_evals=2"]
    runs, printed = {}, {}
    for on in (True, False):
        tr = Trainer(load_config("gan-ring8", [*RING, "train.steps=4", *hair_trigger,
                                               f"monitor.alarms={str(on).lower()}"]),
                     tmp_path / f"alarms_{on}", callbacks=[_FlatEval()])
        tr.fit()
        runs[on], printed[on] = tr, capsys.readouterr().err
    for tr in runs.values():  # the conditions hold on the logged numbers of both runs
        first = _train_lines(tr)[0]
        assert first["d_fake"] < 0.99 and first["d_real"] > 0.01
        assert first["diversity_ratio"] < 0.99
    on = [(r["alarm"], r["step"]) for r in runs[True].log.read() if r["kind"] == "alarm"]
    assert sorted(on) == [("d_too_strong", 1), ("mode_collapse", 1), ("no_progress", 3)]
    assert len(runs[True].monitor.alarms) == 3 and printed[True].count("[ganforge alarm") == 3
    assert [r for r in runs[False].log.read() if r["kind"] == "alarm"] == []
    assert runs[False].monitor.alarms == [] and "[ganforge alarm" not in printed[False]
    # alarms only watch: both runs log the same signals and the same losses
    for a, b in zip(_train_lines(runs[True]), _train_lines(runs[False]), strict=True):
        for k in ("d_loss", "g_loss", "diversity_ratio", "g_grad_norm"):
            assert a[k] == b[k], k


# ---------------------------------------------------------------------- extension points
def test_register_dataset_feeds_a_run(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "two-points", None)  # removed again after the test
    g = torch.Generator().manual_seed(0)
    pts = torch.tensor([[3.0, 3.0], [-3.0, -3.0]]).repeat(256, 1) + 0.01 * torch.randn(
        512, 2, generator=g)

    @register_dataset("two-points")
    def two_points(split: str = "train", **options):
        return TensorData("two-points", x=pts.clone(), split=split, kind="vector")

    tr = Trainer(load_config("gan-ring8", [*RING, "data.source=two-points", "train.steps=2"]),
                 tmp_path / "r")
    assert torch.equal(tr.data.x, pts)  # the run trains on the registered loader's tensors
    tr.fit()
    assert [r["step"] for r in _train_lines(tr)] == [1, 2]



def test_register_feature_extractor_sets_the_diversity_space(tmp_path, monkeypatch):
    """monitor.diversity_features names a function registered with
    ganforge.monitor.register_feature_extractor: the logged diversity is the mean pairwise
    distance of that function's features (recomputed with scipy), not of the raw samples."""
    from scipy.spatial.distance import pdist

    from ganforge.monitor import register_feature_extractor
    from ganforge.monitor.signals import FEATURE_EXTRACTORS

    monkeypatch.setitem(FEATURE_EXTRACTORS, "test-angle", None)  # removed after the test

    @register_feature_extractor("test-angle")
    def angle(x):  # (N, 2) -> (N, 1): the angle on the ring, x 10
        return 10 * torch.atan2(x[:, 1], x[:, 0])[:, None]

    tr = _ring(tmp_path, "angle", "monitor.diversity_features=test-angle", steps=2)
    last = _train_lines(tr)[-1]
    fake, real = tr.sample_fixed().double(), tr.monitor.real_ref.double()
    want_fake, want_real = pdist(angle(fake).numpy()).mean(), pdist(angle(real).numpy()).mean()
    assert last["diversity"] == pytest.approx(want_fake, rel=1e-5)
    assert last["diversity_real"] == pytest.approx(want_real, rel=1e-5)
    assert last["diversity_real"] != pytest.approx(pdist(real.numpy()).mean(), rel=1e-2)


def test_registered_extractor_is_the_feature_space_of_evaluate(ring_run, tmp_path, monkeypatch,
                                                               capsys):
    """`ganforge evaluate --extractor NAME` with NAME registered through
    ganforge.metrics.register_extractor: the logged FID is the Frechet distance of that
    extractor's features of the same real subset and samples, computed here with scipy."""
    from scipy import linalg

    from ganforge.data import load_dataset
    from ganforge.metrics import register_extractor
    from ganforge.metrics.features import EXTRACTORS

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(EXTRACTORS, "test-poly", None)  # removed after the test

    def poly(x):  # (N, 2) -> (N, 4), nonlinear so its FID differs from raw
        return torch.stack([x[:, 0], x[:, 1], x[:, 0] * x[:, 1], x.pow(2).sum(1)], 1)

    register_extractor("test-poly", lambda: poly)
    run_dir, _ = ring_run
    assert main(["evaluate", str(run_dir), "--metrics", "fid", "--n", "300", "--seed", "4",
                 "--extractor", "test-poly", "--no-log", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["protocol"]["extractor"] == "test-poly"

    def frechet(a, b):
        mu1, mu2 = a.mean(0), b.mean(0)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        covmean = linalg.sqrtm(s1 @ s2).real
        return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))

    real = load_dataset("ring8", split="train", n=512).x
    idx = torch.randperm(512, generator=torch.Generator().manual_seed(4))[:300]
    fake = ganforge.load(run_dir).sample(300, seed=4)
    want = frechet(poly(real[idx]).double().numpy(), poly(fake).double().numpy())
    assert got["fid"] == pytest.approx(want, rel=1e-3)
    raw = frechet(real[idx].double().numpy(), fake.double().numpy())
    assert got["fid"] != pytest.approx(raw, rel=1e-2)  # not the raw features


# ------------------------------------------------------------------------- CLI flags
@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """A 2-step gan-ring8 run with checkpoints at steps 1 and 2 (different generators)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    ganforge.train("gan-ring8", run_dir=run_dir, overrides=[
        *RING, "train.steps=2", "train.checkpoint_every=1", "train.keep_checkpoints=5"])
    step1 = run_dir / "checkpoints" / "step_00000001"
    assert step1.is_dir()
    return run_dir, step1


def test_cli_interpolate_method_and_checkpoint(ring_run, tmp_path):
    run_dir, step1 = ring_run
    out = {}
    for method in ("lerp", "slerp"):
        out[method] = tmp_path / f"{method}.npy"
        assert main(["interpolate", str(run_dir), "--steps", "4", "--pairs", "2", "--seed", "3",
                     "--method", method, "--checkpoint", str(step1),
                     "--out", str(out[method])]) == 0
    first = ganforge.load(run_dir, checkpoint=step1)
    ends = first.latent(4, seed=3)
    z0, z1, t = ends[:2].double(), ends[2:].double(), 1 / 3
    w = torch.arccos((z0 * z1).sum(1, keepdim=True) / (z0.norm(dim=1, keepdim=True)
                                                        * z1.norm(dim=1, keepdim=True)))
    want = {"lerp": (1 - t) * z0 + t * z1,
            "slerp": (torch.sin((1 - t) * w) * z0 + torch.sin(t * w) * z1) / torch.sin(w)}
    for method, z in want.items():
        got = torch.from_numpy(np.load(out[method]))
        assert got.shape == (2, 4, 2)
        # the walk's second point is step 1's generator at the method's latent
        torch.testing.assert_close(got[:, 1], first.generate(z.float()), atol=1e-5, rtol=0)
    assert not torch.allclose(want["lerp"], want["slerp"], atol=1e-3)
    latest = ganforge.load(run_dir).generate(want["lerp"].float())
    assert (latest - torch.from_numpy(np.load(out["lerp"]))[:, 1]).abs().max() > 1e-6


def test_cli_export_opset_and_checkpoint(ring_run, tmp_path):
    import onnx
    import onnxruntime as ort

    run_dir, step1 = ring_run
    out = tmp_path / "g.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--opset", "17",
                 "--checkpoint", str(step1), "--out", str(out)]) == 0
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"z": z.numpy()})
    want = ganforge.load(run_dir, checkpoint=step1).generate(z)
    assert np.abs(got - want.numpy()).max() < 1e-5  # step 1's weights, not the latest
    assert np.abs(got - ganforge.load(run_dir).generate(z).numpy()).max() > 1e-6


def test_cli_evaluate_checkpoint_and_real_split_all(ring_run, capsys):
    from ganforge.data import load_dataset
    from ganforge.metrics import fid

    run_dir, step1 = ring_run
    assert main(["evaluate", str(run_dir), "--metrics", "fid", "--n", "200", "--seed", "2",
                 "--checkpoint", str(step1), "--real-split", "all", "--json"]) == 0
    capsys.readouterr()
    line = [r for r in read_log(run_dir / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert line["step"] == 1 and line["protocol"]["checkpoint_step"] == 1
    assert line["protocol"]["real"]["split"] == "all"
    fake = ganforge.load(run_dir, checkpoint=step1).sample(200, seed=2)
    real = {s: load_dataset("ring8", split=s, n=512).x for s in ("all", "train")}
    idx = torch.randperm(512, generator=torch.Generator().manual_seed(2))[:200]
    assert line["fid"] == pytest.approx(fid(real["all"][idx], fake, extractor="raw"), rel=1e-6)
    assert line["fid"] != pytest.approx(fid(real["train"][idx], fake, extractor="raw"), rel=1e-6)
