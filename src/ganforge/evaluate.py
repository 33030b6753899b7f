"""Score a trained run directory: draw samples from its checkpoint, compare them with real
data, log an ``eval`` record in its metrics.jsonl and return the scores with their protocol.

``evaluate_run(run_dir, metrics=["fid", "kid"], extractor="mnist", n=5000, seed=0)`` draws
``n`` samples from the run's latest checkpoint (latents from ``torch.Generator`` seeded with
``seed``), compares them with up to ``n`` real samples of the run's dataset (reference features
cached on disk), appends an ``eval`` line to the run's ``metrics.jsonl`` and returns the scores
plus ``protocol``. ``evaluate_sequences`` runs TimeGAN's scores on a sequence run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from ganforge.api import Run, load
from ganforge.data import load_training_data
from ganforge.data.registry import SPLITS, load_dataset
from ganforge.data.sequences import (
    data_sha256,
    load_data_info,
    mask_lengths,
    nan_lengths,
    split_mask,
    with_mask_channel,
)
from ganforge.errors import ConfigError, GanforgeError
from ganforge.latent import check_truncation, describe_truncation
from ganforge.metrics.conditional import conditional_scores
from ganforge.metrics.evaluate import (
    CONDITIONAL_METRICS,
    auto_extractor,
    parse_metrics,
    score_samples,
)
from ganforge.metrics.features import get_extractor
from ganforge.metrics.reference import real_features
from ganforge.metrics.sequences import (
    DISC_ITERATIONS,
    PRED_ITERATIONS,
    REPEATS,
    embedding_picture,
    length_ks,
    score_summary,
    sequence_scores,
)
from ganforge.metrics.tabular import (
    column_fidelity,
    correlation_difference,
    evaluate_table,
    ml_efficacy,
)
from ganforge.monitor.log import MetricLog
from ganforge.monitor.tensorboard import TensorBoardWriter, tensorboard_available
from ganforge.version import __version__


def log_eval(run_dir: str | Path, cfg: Any, record: dict[str, Any]) -> None:
    """An ``eval`` record into metrics.jsonl and, when the run has TensorBoard on (and it is
    installed), its scores as ``eval/*`` scalars at the run's step beside the training ones."""
    MetricLog(Path(run_dir) / "metrics.jsonl").write(record)
    if cfg.monitor.tensorboard and tensorboard_available():
        tb = TensorBoardWriter(Path(run_dir) / "tensorboard")
        try:
            tb.scalars("eval", record, int(record["step"]))
        finally:
            tb.close()


def evaluate_table_run(run: Run, run_dir: str | Path, n: int = 5000, seed: int = 0,
                       log: bool = True) -> dict[str, Any]:
    """A table run's scores (``metrics.tabular.evaluate_table``: column fidelity, correlation
    difference, ML efficacy when the data has a target, DCR) of ``n`` synthetic rows against
    the real train / test split, with the real-vs-real row beside them (``real_vs_real``: the
    test rows' fidelity and correlation difference against train, and ML efficacy of a model
    trained on the real train rows)."""
    cfg = run.config
    data = load_training_data(cfg)
    same = same_as_training(run_dir, data)
    info = data.info
    train, test, kinds = info["frame"], info["test_frame"], info["kinds"]
    target = info.get("target")
    synth = run.sample(n, seed=seed)
    scores = evaluate_table(synth, train, test, kinds, target, seed=seed)
    proto = scores.pop("protocol")
    per_model = scores.pop("ml_efficacy_per_model", None)
    ref: dict[str, Any] = {}
    if len(test):
        fid_ref = column_fidelity(train, test, kinds)
        ref = {"fidelity": fid_ref["fidelity"], "ks_mean": fid_ref["ks_mean"],
               "tv_mean": fid_ref["tv_mean"],
               "corr_diff": correlation_difference(train, test, kinds)}
        if target is not None:
            ref["ml_efficacy"] = ml_efficacy(train, test, target, kinds, seed)["ml_efficacy"]
    protocol = {**proto, "metrics": "table", "seed": seed, "checkpoint_step": int(run.step),
                "real": {"dataset": cfg.data.source, "split": cfg.data.split,
                         **({} if same is None else {"same_as_training": same})},
                "ml_efficacy_per_model": per_model, "ganforge": __version__}
    record = {"kind": "eval", "step": int(run.step), **scores, "real_vs_real": ref,
              "protocol": protocol}
    if log:
        log_eval(run_dir, cfg, record)
    return {**scores, "real_vs_real": ref, "protocol": protocol}


def same_as_training(run_dir: str | Path, data: Any) -> bool | None:
    """Whether ``data`` (the training split as loaded now) is what the run was trained on, by
    the sha256 in ``data.json``; a note on stderr when it is not. None: nothing to compare."""
    stored = load_data_info(run_dir)
    if not stored or not stored.get("sha256") or not hasattr(data, "x"):
        return None
    same = data_sha256(data) == stored["sha256"]
    if not same:
        sys.stderr.write(f"ganforge: note: the data at '{data.name}' differs from what the run "
                         f"was trained on (sha256 {stored['sha256'][:12]}..., "
                         f"{stored.get('n')} samples from '{stored.get('source')}'); the scores "
                         f"compare with the data as it is now (protocol: real.same_as_training "
                         f"false).\n")
    return same


def evaluate_run(run_dir: str | Path, metrics: str | list[str] | None = None,
                 extractor: Any = "auto", n: int = 5000, seed: int = 0,
                 real_split: str | None = None, checkpoint: str | Path | None = None,
                 log: bool = True, cache: str | Path | bool | None = None,
                 device: str = "cpu", truncation: float | None = None,
                 truncation_method: str = "scale", run: Run | None = None,
                 rejection: str | None = None) -> dict[str, Any]:
    """Score a run's generator; append an ``eval`` line to its metrics.jsonl (``log=True``).
    ``run``: the run already loaded (e.g. with the user's own modules, ``GAN.evaluate``);
    default: loaded from ``run_dir`` (and ``checkpoint``).

    ``truncation`` (psi) truncates the latents of every generated sample scored (see
    ``ganforge.latent.truncate``); the protocol then records it as ``truncation``."""
    names = parse_metrics(metrics)
    if n < 2:
        raise GanforgeError(f"--n must be >= 2 samples, got {n}.")
    trunc: dict[str, Any] = {}
    if truncation is not None:
        check_truncation(truncation, truncation_method)  # before any model is loaded
        trunc = {"truncation": truncation, "truncation_method": truncation_method}
    if run is None:
        run = load(run_dir, device=device, checkpoint=checkpoint)
    if trunc and run.data_kind == "table":
        raise ConfigError("--truncation applies to latent-sampled runs, not tables; drop it.")
    if run.data_kind == "table":
        return evaluate_table_run(run, run_dir, n=n, seed=seed, log=log)
    cfg = run.config
    split = real_split or cfg.data.split
    if split not in SPLITS:
        raise ConfigError(f"unknown real split '{split}'; use one of {', '.join(SPLITS)}.")
    same: bool | None = None
    if split == cfg.data.split:
        data = load_training_data(cfg)
        same = same_as_training(run_dir, data)
    else:
        opts = dict(cfg.data.options)
        if cfg.data.image_size is not None:
            opts["image_size"] = tuple(cfg.data.image_size)
        data = load_dataset(cfg.data.source, split=split, **opts)
    ext_name = auto_extractor(data.kind, data.shape) if extractor == "auto" else extractor
    ext = get_extractor(ext_name)
    options = dict(cfg.data.options)
    if cfg.data.image_size is not None:
        options["image_size"] = list(cfg.data.image_size)
    real_feats, _ = real_features(cfg.data.source, split, ext, n=n, seed=seed,
                                          options=options, cache=cache, data=data.x)
    # sequences of a scaled series: compared in the [0, 1] space the real data.x is in
    scaled = {"scaled": True} if run.data_kind == "sequence" else {}
    fake = run.sample(n, seed=seed, **trunc, **scaled, **run.rejection_kwargs(rejection))
    varlen = run.data_kind == "sequence" and run.variable_length() is not None
    if varlen:  # NaN-padded -> the training representation (zero padding + mask channel)
        fake_lengths = nan_lengths(fake.numpy())
        fake = torch.from_numpy(with_mask_channel(fake.numpy()))
    scores, proto = score_samples(fake, real_feats, names, ext, data_kind=data.kind,
                                  data_info=data.info, seed=seed)
    if varlen:
        scores["length_ks"] = length_ks(mask_lengths(data.x), fake_lengths)
        proto["length_ks"] = ("two-sample KS statistic of the lengths of all real sequences "
                              "and of the synthetic ones")
    if metrics is None and hasattr(run, "num_classes"):
        names += list(CONDITIONAL_METRICS)
    if cond := [m for m in names if m in CONDITIONAL_METRICS]:
        if not hasattr(run, "num_classes") or data.y is None:
            raise ConfigError(f"metrics {', '.join(cond)} score class-conditional runs (task "
                              f"conditional) on labelled data; drop them from --metrics.")
        c_scores, c_proto = conditional_scores(
            lambda y: run.sample(len(y), seed=seed, labels=y, **trunc), data.x, data.y, cond,
            run.num_classes, n, "mnist" if extractor == "auto" else ext, seed)
        scores.update(c_scores)
        proto.update(c_proto)
    protocol = {
        **ext.describe(),
        "metrics": names,
        "real": {"dataset": cfg.data.source, "split": split, "n": len(real_feats),
                 **({} if same is None else {"same_as_training": same})},
        "n_real": len(real_feats),
        "n_fake": int(fake.shape[0]),
        "seed": seed,
        "checkpoint_step": int(run.step),
        "ganforge": __version__,
        **proto,
    }
    if trunc:
        protocol["truncation"] = describe_truncation(truncation, truncation_method)
    if (rejected := getattr(run, "last_rejection", None)) is not None:
        protocol["rejection"] = rejected
    record = {"kind": "eval", "step": int(run.step), **scores, "protocol": protocol}
    if log:
        log_eval(run_dir, run.config, record)
    return {**scores, "protocol": protocol}


def evaluate_sequences(run_dir: str | Path, repeats: int = REPEATS,
                 disc_iterations: int = DISC_ITERATIONS, pred_iterations: int = PRED_ITERATIONS,
                 n: int | None = None, seed: int = 0, picture: bool = True,
                 reference: bool = True) -> dict[str, Any]:
    """Score a trained sequence run against its training data (TimeGAN scores on the whole
    real set, with as many synthetic sequences); log an ``eval`` record to ``metrics.jsonl``
    and write ``sequences_step_N.png`` (PCA and t-SNE) in the run directory."""
    run = load(run_dir)
    real = load_training_data(run.config).x
    if real.ndim != 3:
        raise GanforgeError(f"'{run_dir}' was trained on {tuple(real.shape[1:])} data, not on "
                            f"sequences (T, F); the sequence scores do not apply.")
    count = len(real) if n is None else int(n)
    if count < 2:
        raise GanforgeError(f"need at least 2 synthetic sequences, got n={count}.")
    fake = run.sample(count, seed=seed, scaled=True)  # the training data's [0, 1] space
    varlen = run.variable_length() is not None
    if varlen:  # the mask channel -> NaN padding, as run.sample gives the synthetic ones
        real = torch.from_numpy(split_mask(real)[0])
    scores = sequence_scores(real, fake, repeats, disc_iterations, pred_iterations, seed)
    record: dict[str, Any] = {"kind": "eval", "step": int(run.step), **score_summary(scores)}
    real_lengths = nan_lengths(real.numpy()) if varlen else None
    if real_lengths is not None:
        record["length_ks"] = length_ks(real_lengths, nan_lengths(fake.numpy()))
        record["protocol"]["length_ks"] = {"name": "ks-2samp-lengths", "n_real": len(real),
                                           "n_synthetic": len(fake)}
    ref_scores = None
    if reference:  # real vs real: one random half of the real set scored against the other
        perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
        half = len(real) // 2
        if half < 2:
            raise GanforgeError(f"the real-vs-real row needs at least 4 real sequences, have "
                                f"{len(real)}; pass reference=False (--no-reference).")
        ref_scores = sequence_scores(real[perm[:half]], real[perm[half:2 * half]], repeats,
                                     disc_iterations, pred_iterations, seed)
        record["real_vs_real"] = {k: v for k, v in score_summary(ref_scores).items()
                                  if k != "protocol"}
        if real_lengths is not None:
            record["real_vs_real"]["length_ks"] = length_ks(real_lengths[perm[:half]],
                                                            real_lengths[perm[half:2 * half]])
    if picture:
        pic = embedding_picture(real, fake, Path(run_dir) / f"sequences_step_{run.step:08d}.png",
                                seed=seed)
        record["picture"] = pic.name
    log_eval(run_dir, run.config, record)
    record["scores"] = scores
    if ref_scores is not None:
        record["reference_scores"] = ref_scores
    return record
