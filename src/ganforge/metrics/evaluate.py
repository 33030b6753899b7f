"""Score samples against real features, with the protocol written next to every score:
the metric names, their parsing, ``score_samples`` and the text table. Scoring a whole run
directory is ``ganforge.evaluate.evaluate_run``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganforge.errors import ConfigError, did_you_mean
from ganforge.metrics import scores as S
from ganforge.metrics.classes import class_modes
from ganforge.metrics.features import Extractor, get_extractor
from ganforge.metrics.modes import mode_coverage

METRICS = ("fid", "kid", "is", "pr", "dc", "modes")
ALIASES = {"precision_recall": "pr", "precision": "pr", "recall": "pr",
           "density_coverage": "dc", "density": "dc", "coverage": "dc",
           "inception_score": "is", "mode_coverage": "modes"}
# Direction of each reported key, for ``best_metric``: +1 higher is better, -1 lower is better.
DIRECTION = {"fid": -1, "kid": -1, "is": 1, "precision": 1, "recall": 1, "density": 1,
             "coverage": 1, "modes": 1, "modes_kl": -1, "reverse_kl": -1, "high_quality": 1}
PR_K, DC_K = 3, 5
# class-conditional runs only (ganforge.metrics.conditional); not in the default list
CONDITIONAL_METRICS = ("cas", "intra_fid")
DIRECTION.update(cas=1, intra_fid=-1)


def parse_metrics(metrics: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Normalise ``"fid,kid"`` / ``["fid", "precision_recall"]`` to canonical names."""
    if metrics is None:
        return list(METRICS)
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name not in METRICS and name not in CONDITIONAL_METRICS:
            raise ConfigError(f"unknown metric '{raw}'.{did_you_mean(name, [*METRICS, *ALIASES])}"
                              f" Metrics: {', '.join(METRICS)}.")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"no metric given; choose from {', '.join(METRICS)}.")
    return out


def auto_extractor(kind: str, shape: tuple[int, ...]) -> str:
    """``raw`` for vectors and sequences, ``mnist`` for 1-channel images, else ``inception``."""
    if kind != "image" or len(shape) != 3:
        return "raw"
    return "mnist" if shape[0] == 1 else "inception"


def score_samples(fake: torch.Tensor, real_feats: np.ndarray, metrics: list[str],
                  extractor: Extractor, *, data_kind: str = "image",
                  data_info: dict[str, Any] | None = None, seed: int = 0,
                  kid_subsets: int = 100) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scores, protocol details) of generated samples against cached real features."""
    out: dict[str, Any] = {}
    proto: dict[str, Any] = {}
    info = data_info or {}
    need_feats = any(m in metrics for m in ("fid", "kid", "pr", "dc"))
    ff = extractor.features(fake).double().numpy() if need_feats else None
    rf = np.asarray(real_feats, dtype=np.float64)
    if "fid" in metrics:
        out["fid"] = S.fid(rf, ff)
    if "kid" in metrics:
        k = S.kid(rf, ff, seed=seed, subsets=kid_subsets)
        out["kid"], out["kid_std"] = k["kid"], k["kid_std"]
        proto.update(kid_subset_size=k["kid_subset_size"], kid_subsets=k["kid_subsets"],
                     kid_kernel="(x.y/d + 1)^3")
    if "pr" in metrics:
        out.update(S.precision_recall(rf, ff, k=PR_K))
        proto["pr_k"] = PR_K
    if "dc" in metrics:
        out.update(S.density_coverage(rf, ff, k=DC_K))
        proto["dc_k"] = DC_K
    if "is" in metrics:
        if not extractor.has_logits:
            extractor.logits(fake[:1])  # raises the explanatory error
        r = S.inception_score(extractor.logits(fake))
        out["is"], out["is_std"] = r["is"], r["is_std"]
        proto.update(is_splits=r["is_splits"], is_classifier=extractor.name)
    if "modes" in metrics:
        if data_kind == "vector" and "means" in info and "std" in info:
            mc = mode_coverage(fake.reshape(fake.shape[0], -1), np.asarray(info["means"]),
                               float(info["std"]))
            out.update(modes=mc.modes, modes_total=mc.total_modes,
                       high_quality=mc.high_quality, reverse_kl=mc.reverse_kl)
            proto["modes_protocol"] = "PacGAN: nearest mode, high quality < 3 std"
        elif data_kind == "image":
            clf = extractor if extractor.has_logits else get_extractor("mnist")
            cm = class_modes(fake, clf)
            out.update(modes=cm.modes, modes_total=cm.total_modes, modes_kl=cm.kl,
                       confidence=cm.confidence)
            proto["modes_protocol"] = (f"classifier '{clf.name}' (sha256 {clf.sha256[:16]}) "
                                       f"labels each channel; KL(pred histogram || uniform)")
        else:
            raise ConfigError("metric 'modes' needs a 2-D mixture (ring8, grid25) or images "
                              "classified by the mnist classifier; drop it from --metrics.")
    return out, proto


def format_table(result: dict[str, Any]) -> str:
    """A two-column text table of the scores, then the protocol."""
    rows = [(k, v) for k, v in result.items() if k not in ("protocol", "real_vs_real")]
    ref = result.get("real_vs_real") or {}
    width = max((len(k) for k, _ in rows), default=6)

    def shown(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    head = f"{'metric':{width}s}  {'value':<12s}" + ("  real vs real" if ref else "")
    lines = [head.rstrip(), f"{'-' * width}  ------------" + ("  ------------" if ref else "")]
    for k, v in rows:
        beside = f"  {shown(ref[k])}" if k in ref and ref[k] is not None else ""
        lines.append(f"{k:{width}s}  {shown(v):<12s}{beside}".rstrip())
    p = result.get("protocol", {})
    if p and p.get("metrics") == "table":
        real = p.get("real", {})
        lines.append("")
        lines.append(f"protocol: {p.get('rows_synthetic')} synthetic rows vs {real.get('dataset')} "
                     f"({p.get('rows_train')} train, {p.get('rows_test')} test rows), seed "
                     f"{p.get('seed')}, checkpoint step {p.get('checkpoint_step')}; real vs "
                     f"real: the test rows against train (ML efficacy: trained on train)")
    elif p:
        real = p.get("real", {})
        lines.append("")
        lines.append(f"protocol: extractor {p.get('extractor')} (sha256 "
                     f"{str(p.get('extractor_sha256'))[:16]}), real {real.get('dataset')} "
                     f"{real.get('split')} n={p.get('n_real')}, fake n={p.get('n_fake')}, "
                     f"seed {p.get('seed')}, checkpoint step {p.get('checkpoint_step')}")
        lines.append(f"preprocessing: {p.get('preprocessing')}")
        if t := p.get("truncation"):
            lines.append(f"truncation: psi {t['psi']:g} ({t['method']}) on the generated "
                         f"samples' latents")
    return "\n".join(lines)
