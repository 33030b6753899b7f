"""Rejection by the discriminator (``sampling.rejection: drs | filter``, ``--rejection``):
DRS's acceptance rule against its closed form, exact rejection sampling on a 1-D mixture whose
density ratio is known, the filter's threshold, and their effect on a trained 2-D run's
high-quality share and mode balance."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

import ganforge
from ganforge import api
from ganforge.cli import main
from ganforge.data.registry import MIXTURE_STD, mixture_means
from ganforge.errors import ConfigError, GanforgeError
from ganforge.evaluate import evaluate_run
from ganforge.metrics import mode_coverage
from ganforge.rejection import (
    burn_in_seed,
    drs_accept_prob,
    drs_logits_f,
    drs_sample,
    filter_sample,
)

SIGMA = 0.1  # the "data": N(0, SIGMA^2); the "generator": half that, half uniform junk on [-3, 3]


def _log_normal(x: torch.Tensor, s: float) -> torch.Tensor:
    return -0.5 * (x / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))


def _mixture_draw(count: int, batch_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates from p_g = 0.5 N(0, SIGMA^2) + 0.5 U(-3, 3) with the exact logit
    log p_data(x) / p_g(x) an optimal discriminator would output."""
    g = torch.Generator().manual_seed(batch_seed)
    junk = torch.rand(count, generator=g) < 0.5
    x = torch.where(junk, torch.rand(count, generator=g) * 6 - 3,
                    torch.randn(count, generator=g) * SIGMA).double()
    log_data = _log_normal(x, SIGMA)
    log_g = torch.logaddexp(log_data + math.log(0.5), torch.full_like(x, math.log(0.5 / 6)))
    return x[:, None], (log_data - log_g).float()


def test_accept_prob_is_exp_of_logit_gap_at_gamma_zero_and_falls_with_gamma() -> None:
    logits = torch.tensor([-6.0, -2.0, -0.5, 0.0, 1.0, 2.999])
    m = 3.0
    # sigmoid(F) with gamma 0 is exp(D - M): F is the log-odds of that probability
    p = drs_accept_prob(logits, m, 0.0)
    assert torch.allclose(p, torch.exp(logits.double() - m), rtol=1e-5)
    # F at the maximum itself is finite (epsilon), and gamma shifts the log-odds
    assert math.isfinite(float(drs_logits_f(torch.tensor([m]), m)[0]))
    p2 = drs_accept_prob(logits, m, 2.0)
    assert torch.allclose(torch.logit(p2), torch.logit(p) - 2.0, atol=1e-6)
    assert bool((p2 < p).all())


def test_exact_rejection_recovers_the_data_distribution() -> None:
    """gamma = 0 with the true density ratio: the kept samples are N(0, SIGMA^2)."""
    x, rec = drs_sample(_mixture_draw, 4000, burn_in=20000, gamma=0.0, seed=3)
    x = x[:, 0]
    assert x.shape == (4000,)
    # no junk survives beyond what N(0, 0.1^2) itself puts outside 4 sigma (6e-5)
    assert float((x.abs() > 4 * SIGMA).float().mean()) < 0.002
    assert float(x.std()) == pytest.approx(SIGMA, rel=0.05)
    assert abs(float(x.mean())) < 0.01
    # the ideal acceptance rate is 1 / max ratio: p_data / p_g <= 2 at the mode -> about 0.5
    assert rec["acceptance"] == pytest.approx(1 / math.exp(rec["max_logit"]), rel=0.05)
    # without rejection: half junk, 0.5 * (1 - 0.8 / 6) = 0.43 of it outside 4 sigma
    raw, _ = _mixture_draw(4000, 3)
    assert float((raw[:, 0].abs() > 4 * SIGMA).float().mean()) > 0.4


def test_quantile_trades_acceptance_for_fidelity_and_seed_repeats() -> None:
    out = {}
    for q in (0.0, 0.5, 0.9):
        x, rec = drs_sample(_mixture_draw, 2000, quantile=q, burn_in=5000, seed=1)
        out[q] = (float((x[:, 0].abs() > 4 * SIGMA).float().mean()), rec["acceptance"])
    assert out[0.0][1] > out[0.5][1] > out[0.9][1]  # acceptance falls
    assert out[0.0][0] >= out[0.5][0] >= out[0.9][0]  # junk share falls (or stays 0)
    assert out[0.5][0] < 0.05
    a, _ = drs_sample(_mixture_draw, 500, quantile=0.5, burn_in=1000, seed=7)
    b, _ = drs_sample(_mixture_draw, 500, quantile=0.5, burn_in=1000, seed=7)
    c, _ = drs_sample(_mixture_draw, 500, quantile=0.5, burn_in=1000, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_too_few_accepted_candidates_is_a_clear_error() -> None:
    with pytest.raises(GanforgeError, match="lower sampling.quantile"):
        drs_sample(_mixture_draw, 1000, quantile=0.99, burn_in=100, batch=100,
                   max_candidates=500)
    with pytest.raises(GanforgeError, match="quantile must be in"):
        filter_sample(_mixture_draw, 10, quantile=1.0)


def test_filter_drops_the_lowest_logits_at_the_burn_in_quantile() -> None:
    x, rec = filter_sample(_mixture_draw, 3000, quantile=0.5, burn_in=20000, seed=2)
    _, burn = _mixture_draw(20000, burn_in_seed(2))
    assert rec["threshold"] == pytest.approx(float(torch.quantile(burn.double(), 0.5)))
    # half of the candidates are junk with the lowest logits: the median splits them off
    assert rec["acceptance"] == pytest.approx(0.5, abs=0.03)
    assert float((x[:, 0].abs() > 4 * SIGMA).float().mean()) < 0.002
    # every kept candidate's logit is above the threshold: recompute it from the samples
    x64 = x[:, 0].double()
    log_data = _log_normal(x64, SIGMA)
    log_g = torch.logaddexp(log_data + math.log(0.5), torch.full_like(x64, math.log(0.5 / 6)))
    assert float((log_data - log_g).min()) > rec["threshold"] - 1e-5


class _StringG(torch.nn.Module):
    """A generator with a known defect: latents with z0 > 0.5 (31 %) land on the ring between
    modes (the string a GAN draws), the rest on one of the 8 modes (std 0.005)."""

    def __init__(self) -> None:
        super().__init__()  # a parameter, so that Run.device finds the device
        self.means = torch.nn.Parameter(
            torch.as_tensor(mixture_means("ring8"), dtype=torch.float32), requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = (torch.special.ndtr(z[:, 1]) * 8).long().clamp(0, 7)
        on_mode = self.means[k] + 0.005 * z[:, 2:4]
        angle = torch.special.ndtr(z[:, 2]) * 2 * math.pi  # anywhere on the ring
        between = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
        return torch.where((z[:, :1] > 0.5), between, on_mode)


class _DistanceD(torch.nn.Module):
    """A discriminator whose score falls with the distance to the nearest mode."""

    def __init__(self) -> None:
        super().__init__()
        self.means = torch.as_tensor(mixture_means("ring8"), dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x, self.means).min(1, keepdim=True).values / 0.01


def _string_run(tmp_path) -> api.Run:
    from ganforge.run import Run

    cfg = api.load_config("gan-ring8", ["sampling.rejection=none"])
    return Run(tmp_path, cfg, _StringG(), _DistanceD(), step=1, data_shape=(2,),
               data_kind="vector")


def _hq(x: torch.Tensor) -> float:
    return mode_coverage(x, mixture_means("ring8"), MIXTURE_STD["ring8"]).high_quality


def test_rejection_removes_the_string_between_modes_and_keeps_the_balance(tmp_path) -> None:
    run = _string_run(tmp_path)
    plain = run.sample(4000, seed=0)
    assert run.last_rejection is None
    assert _hq(plain) == pytest.approx(0.69, abs=0.03)  # 1 - P(z0 > 0.5) = 0.69
    # the filter at quantile 0.35 drops the 31 % string and keeps only modes
    run.config.sampling.quantile = 0.35
    kept = run.sample(4000, seed=0, rejection="filter")
    rec = run.last_rejection
    assert rec["method"] == "filter" and rec["acceptance"] == pytest.approx(0.65, abs=0.02)
    assert _hq(kept) > 0.99
    cov = mode_coverage(kept, mixture_means("ring8"), MIXTURE_STD["ring8"])
    assert cov.modes == 8 and cov.reverse_kl < 0.01  # every mode keeps its share
    # the default quantile (0.1) drops a third of the string: the share rises by about that
    run.config.sampling.quantile = None
    some = run.sample(4000, seed=0, rejection="filter")
    assert run.last_rejection["acceptance"] == pytest.approx(0.9, abs=0.02)
    assert _hq(some) == pytest.approx(0.69 / 0.9, abs=0.03)
    # DRS (quantile 0.8): acceptance falls steeply with distance, so the string goes too
    drs = run.sample(4000, seed=0, rejection="drs")
    assert run.last_rejection["method"] == "drs" and _hq(drs) > 0.95
    # the same call again gives the same samples
    assert torch.equal(drs, run.sample(4000, seed=0, rejection="drs"))
    # D is scored in eval mode and handed back in the mode it came in (a trainer may share it)
    run.discriminator.train()
    run.sample(100, seed=0, rejection="filter")
    assert run.discriminator.training


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    """gan-ring8 (its preset samples through the filter) briefly trained: for the plumbing."""
    torch.set_num_threads(1)
    return ganforge.train("gan-ring8", overrides=[
        "train.steps=100", "train.batch_size=64", "train.checkpoint_every=100",
        "monitor.progress=false", "monitor.sample_every=100", "monitor.report=false",
        "device=cpu"], run_dir=tmp_path_factory.mktemp("drs") / "ring")


def test_config_switch_cli_and_evaluate_protocol(ring_run, tmp_path, capsys) -> None:
    import numpy as np

    run_dir = ring_run.run_dir
    run = api.load(run_dir)
    # the preset's sampling section is the default of Run.sample
    assert run.rejection_method() == "filter" and run.config.sampling.quantile == 0.15
    assert torch.equal(run.sample(300, seed=0), run.sample(300, seed=0, rejection="filter"))
    assert run.last_rejection["acceptance"] == pytest.approx(0.85, abs=0.03)
    plain = run.sample(300, seed=0, rejection="none")
    assert run.last_rejection is None
    assert torch.equal(plain, run.generate(run.latent(300, 0)))
    # the CLI flag: a line about acceptance, the samples Run.sample gives
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "-n", "300", "--out", str(out), "--rejection",
                 "drs"]) == 0
    assert "rejection by the discriminator (drs) kept" in capsys.readouterr().out
    assert np.array_equal(np.load(out), run.sample(300, seed=0, rejection="drs").numpy())
    out2 = tmp_path / "plain.npy"
    assert main(["sample", str(run_dir), "-n", "300", "--out", str(out2), "--rejection",
                 "none"]) == 0
    assert np.array_equal(np.load(out2), plain.numpy())
    assert "rejection by the discriminator" not in capsys.readouterr().out
    # evaluate records it in the protocol, with its acceptance rate; none leaves it out
    res = evaluate_run(run_dir, metrics=["modes"], n=500, log=False)
    assert res["protocol"]["rejection"]["method"] == "filter"
    free = evaluate_run(run_dir, metrics=["modes"], n=500, log=False, rejection="none")
    assert "rejection" not in free["protocol"]
    assert main(["evaluate", str(run_dir), "--metrics", "modes", "--n", "200", "--json",
                 "--no-log", "--rejection", "drs"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol"]["rejection"]["method"] == "drs"


@pytest.mark.parametrize("overrides, needle", [
    (["objective.loss=hinge"], "log(p_data / p_g)"),
    (["objective.packing=2"], "packed D"),
])
def test_drs_where_it_does_not_apply_is_a_config_error(overrides, needle) -> None:
    with pytest.raises(ConfigError, match="sampling.rejection"):
        api.load_config("gan-ring8", ["sampling.rejection=drs", *overrides])
    with pytest.raises(ConfigError) as exc:
        api.load_config("gan-ring8", ["sampling.rejection=drs", *overrides])
    assert needle in str(exc.value)
    api.load_config("gan-ring8", ["sampling.rejection=drs"])  # the standard loss is fine
    # the filter only ranks by D's score: any loss
    assert api.load_config("gan-ring8", ["objective.loss=hinge"]).sampling.rejection == "filter"


@pytest.mark.slow
def test_conditional_filter_scores_each_class_for_its_label(tmp_path, capsys) -> None:
    """A conditional run filters each class's candidates by D(x, label), with a threshold of
    its own per class; cycled labels give each class the samples it gets alone; AC-GAN's score
    adds the class head's log-probability; DRS on AC-GAN is a clear config error."""
    import numpy as np
    import torch.nn.functional as F

    from test_use_labels_truncation import make_conditional_run

    run_dir, _ = make_conditional_run(tmp_path, "cgan-mnist")
    # 400 burn-in samples, in the run's own config so the CLI below reads it too: the default
    # 10,000 per class cost this test ~150 s on 2 cores
    cfg_file = run_dir / "config.yaml"
    raw = yaml.safe_load(cfg_file.read_text())
    raw.setdefault("sampling", {})["burn_in"] = 400
    cfg_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    run = api.load(run_dir)
    assert run.config.sampling.burn_in == 400
    x = run.sample(60, seed=0, labels=3, rejection="filter")
    rec = run.last_rejection
    assert rec["acceptance"] == pytest.approx(0.9, abs=0.04)  # the default quantile, 0.1
    (only,) = rec["per_label"]
    with torch.no_grad():
        scores = run.discriminator.eval()(x, torch.full((60,), 3))[0].reshape(-1)
    assert only["label"] == 3 and bool((scores >= only["threshold"] - 1e-5).all())
    # the threshold is the 0.1 quantile of this class's burn-in scores: other classes differ
    run.sample(60, seed=0, labels=5, rejection="filter")
    assert run.last_rejection["per_label"][0]["threshold"] != pytest.approx(only["threshold"])
    y = torch.arange(4).repeat(15)
    mixed = run.sample(60, seed=0, labels=y, rejection="filter")
    assert [r["label"] for r in run.last_rejection["per_label"]] == [0, 1, 2, 3]
    assert torch.equal(mixed[y == 2], run.sample(15, seed=0, labels=2, rejection="filter"))
    # the CLI: --label with --rejection gives the samples of Run.sample (the run's burn-in)
    out = tmp_path / "x.npy"
    assert main(["sample", str(run_dir), "-n", "60", "--label", "3", "--out", str(out),
                 "--rejection", "filter"]) == 0
    assert np.array_equal(np.load(out), api.load(run_dir).sample(
        60, seed=0, labels=3, rejection="filter").numpy())

    ac_dir, _ = make_conditional_run(tmp_path, "acgan-mnist")
    ac = api.load(ac_dir)
    z = ac.latent(8, 0)
    xs, s = ac._scored(z, 6)
    with torch.no_grad():
        logit, cls = ac.discriminator.eval()(xs, torch.full((8,), 6))
    assert torch.allclose(s, logit.reshape(-1) + F.log_softmax(cls, 1)[:, 6], atol=1e-5)
    assert main(["sample", str(ac_dir), "-n", "10", "--label", "1", "--out", str(out),
                 "--rejection", "drs", "--force"]) == 2
    err = capsys.readouterr().err
    assert "AC-GAN" in err and "Traceback" not in err
