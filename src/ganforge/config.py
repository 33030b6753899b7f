"""Pydantic models of a run: data, latent, generator, discriminator, objective, optim, train,
monitor, seed, device. Unknown keys are rejected with a did-you-mean hint.

``load_config("dcgan-mnist", ["train.epochs=5"])`` reads a preset (or a YAML file), applies
``--set`` style overrides and validates the result, including shape inference of both networks.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ganforge.architecture.builder import DATA_WIDTHS, replace_batch_norm
from ganforge.errors import ConfigError, did_you_mean

PRESET_DIR = Path(__file__).parent / "presets"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _require_finite(section: BaseModel, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(section, name, None)
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v}")


class DataConfig(Section):
    source: str = Field("mnist", description="dataset name, folder:PATH or npy:PATH")
    split: Literal["train", "test", "all"] = "train"
    image_size: list[int] | None = Field(None, description="[C, H, W] for folder/npy images")
    options: dict[str, Any] = Field(default_factory=dict, description="dataset keyword options")
    discrete: list[str] | None = Field(None, description="tables: the numeric columns to treat "
                                       "as categorical (overrides detection)")
    target: str | None = Field(None, description="tables: the class column (ML efficacy)")


# Widths that follow the data: written where a number goes (latent.shape, a layer argument such
# as ``dense: {units: features}``), they are filled in from the loaded data before any network
# is built (``resolve_data_widths``): ``features`` = the last axis of a sample (a sequence's
# feature count), ``steps`` = a sequence's length T, ``spans`` = the widths of the one-hot
# variables of data that has them (music with ``encoding: onehot``), for ``span_softmax``.
# (the names: architecture.builder.DATA_WIDTHS)


class LatentConfig(Section):
    dim: int | None = Field(100, ge=1, description="size of z (vector latent)")
    shape: list[int | Literal["steps", "features"]] | None = Field(
        None, description="full latent shape, e.g. [T, Z] per step; steps / features follow "
        "the data")
    distribution: Literal["normal", "uniform"] = "normal"

    @property
    def full_shape(self) -> tuple[int, ...]:
        if self.shape and any(isinstance(v, str) for v in self.shape):
            raise ConfigError(f"latent.shape {list(self.shape)} follows the data; it is filled "
                              f"in once the data is loaded (config.resolve_data_widths).")
        return tuple(int(v) for v in self.shape) if self.shape else (int(self.dim or 1),)

    @model_validator(mode="after")
    def _positive(self) -> LatentConfig:
        if self.shape is not None and (not self.shape or any(
                isinstance(v, int) and v < 1 for v in self.shape)):
            raise ValueError("latent.shape must be a non-empty list of positive ints (or "
                             "steps / features, which follow the data)")
        return self


class NetworkConfig(Section):
    layers: list[Any] = Field(..., description="layer specs, in order")
    spectral_norm: bool = Field(False, description="spectral norm on every weighted layer")


class ObjectiveConfig(Section):
    """Loss, penalties and tricks (see docs/objectives.md). ``null`` fields take the loss's
    literature default when the config is validated (e.g. clip 0.01 for wasserstein,
    gradient_penalty 10 for wgan_gp)."""

    loss: Literal["minimax", "non_saturating", "wasserstein", "wgan_gp", "hinge",
                  "least_squares"] = "non_saturating"
    gradient_penalty: float | None = Field(
        None, ge=0, description="weight of the gradient penalty on interpolates (wgan_gp: 10)")
    gp_center: float = Field(1.0, ge=0, description="target gradient norm of the penalty")
    r1: float = Field(0.0, ge=0, description="R1 gamma on real samples (0 = off)")
    r1_every: int = Field(1, ge=1, description="lazy R1: apply every k D steps, scaled by k")
    r2: float = Field(0.0, ge=0, description="R2 gamma: the zero-centred gradient penalty on "
                      "generated samples (Mescheder et al. 2018; 0 = off)")
    clip: float | None = Field(
        None, ge=0, description="clip D's weights to [-clip, clip] (wasserstein: 0.01; 0 = off)")
    label_smoothing: Literal["none", "one_sided", "two_sided"] = "none"
    smooth_real: float = Field(0.9, ge=0, le=1, description="real target when smoothing")
    smooth_fake: float = Field(0.1, ge=0, le=1, description="fake target (two_sided)")
    instance_noise: float = Field(0.0, ge=0, description="std of Gaussian noise on D's inputs")
    instance_noise_steps: int = Field(
        0, ge=0, description="anneal the noise std linearly to 0 over this many steps (0 = keep)")
    feature_matching: Literal["off", "alone", "added"] = "off"
    feature_matching_weight: float = Field(1.0, ge=0, description="weight when added")
    packing: int = Field(1, ge=1, description="PacGAN: D sees this many samples concatenated")
    ema: float | None = Field(None, ge=0, lt=1, description="EMA decay of G's weights (0.999)")
    ema_start: int = Field(0, ge=0, description="steps of plain copying before averaging")
    ema_stats: Literal["copy", "own"] = Field(
        "copy", description="batch-norm statistics of the EMA generator: copied from G, or its "
        "own (one no-grad forward of the EMA generator per step on G's latents)")
    top_k: float = Field(1.0, gt=0, le=1, description="top-k training (Sinha et al. 2020): "
                         "G learns only from this fraction of its batch that D rates most "
                         "real (1 = off)")
    top_k_steps: int = Field(0, ge=0, description="anneal the kept fraction linearly from 1 "
                             "to top_k over this many steps (0 = top_k from the start)")
    mode_seeking: float = Field(0.0, ge=0, description="MSGAN (Mao et al. 2019): weight of "
                                "the mode-seeking term 1 / (mean|G(z1)-G(z2)| / mean|z1-z2|) in "
                                "G's loss, the batch's halves sharing their labels (0 = off)")
    likelihood: float = Field(0.0, ge=0, description="weight of the teacher-forced negative "
                              "log-likelihood of the real batch in G's loss (SeqGAN's "
                              "maximum-likelihood training of an autoregressive G, kept as a "
                              "term): a feedback G reads the real previous step instead of its "
                              "own (0 = off)")
    likelihood_warmup: int = Field(0, ge=0, description="steps at the start in which G learns "
                                   "from the likelihood term alone (maximum-likelihood "
                                   "pretraining; D trains as usual unless "
                                   "likelihood_warmup_d is false)")
    likelihood_warmup_d: bool = Field(True, description="whether D trains during the "
                                      "likelihood warm-up; false: a warm-up step is G's "
                                      "teacher-forced likelihood alone (no samples drawn, no D "
                                      "update: several times cheaper), and D starts when the "
                                      "adversarial phase does")
    diffaugment: list[Literal["translation", "cutout", "color"]] = Field(
        default_factory=list, description="DiffAugment policies on D's inputs (images)")
    d_norm: Literal["layer_norm", "instance_norm", "none"] | None = Field(
        None, description="replace every batch_norm of D by this (none: drop them)")

    @model_validator(mode="after")
    def _loss_defaults(self) -> ObjectiveConfig:
        if self.gradient_penalty is None:
            self.gradient_penalty = 10.0 if self.loss == "wgan_gp" else 0.0
        if self.clip is None:
            self.clip = 0.01 if self.loss == "wasserstein" else 0.0
        return self


class ScheduleConfig(Section):
    """A learning-rate schedule over the run's steps: a linear warm-up from lr/warmup to lr
    over ``warmup`` steps, then ``constant``, ``linear`` decay or ``cosine`` decay down to
    ``min_factor`` x lr at the last step. A pure function of the step, so a resumed run gets
    exactly the learning rates of an uninterrupted one."""

    kind: Literal["constant", "linear", "cosine"] = "constant"
    warmup: int = Field(0, ge=0, description="steps of linear warm-up")
    min_factor: float = Field(0.0, ge=0, le=1, description="final lr as a fraction of lr")


class OptimizerConfig(Section):
    name: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = Field(0.0, ge=0)
    alpha: float = Field(0.99, gt=0, lt=1, description="RMSprop smoothing constant")
    weight_decay: float = Field(0.0, ge=0)
    eps: float = Field(1e-8, gt=0)
    impl: Literal["foreach", "fused", "loop"] = Field(
        "foreach", description="update kernel: foreach (multi-tensor), fused (adam/sgd), or "
        "loop (per parameter)")
    schedule: ScheduleConfig | None = Field(
        None, description="lr schedule, e.g. {kind: cosine, warmup: 100} (null: constant lr)")

    @model_validator(mode="after")
    def _sane(self) -> OptimizerConfig:
        _require_finite(self, ("lr", "momentum", "weight_decay", "eps"))
        for i, b in enumerate(self.betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {b}")
        if self.impl == "fused" and self.name == "rmsprop":
            raise ValueError("impl 'fused' exists for adam and sgd only; use impl: foreach "
                             "with rmsprop")
        return self


class OptimConfig(Section):
    g: OptimizerConfig = Field(default_factory=OptimizerConfig)
    d: OptimizerConfig = Field(default_factory=OptimizerConfig)


class TrainConfig(Section):
    steps: int | None = Field(None, ge=1, description="generator updates")
    epochs: float | None = Field(None, gt=0, description="passes over the data by D")
    batch_size: int = Field(64, ge=1)
    d_steps: int = Field(1, ge=1, description="discriminator updates per generator update")
    checkpoint_every: int = Field(1000, ge=1, description="steps between checkpoints")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16 runs the step under torch.autocast (CPU with AVX-512 bf16, "
        "CUDA); fp16 adds a gradient scaler per network (meant for CUDA)")
    compile: bool = Field(False, description="torch.compile the generator and discriminator")
    threads: Literal["auto"] | int = Field(
        "auto", description="torch intra-op threads: a count, or auto (1 for networks whose "
        "step is too small to split, else every available core; ganforge.training.threads)")
    channels_last: bool = Field(False, description="channels-last memory format for conv nets")
    batching: Literal["index", "dataloader"] = Field(
        "index", description="index: one index_select per batch from the in-memory tensors; "
        "dataloader: a torch DataLoader over the same seeded permutation (same batches, slower)")
    keep_checkpoints: int = Field(3, ge=1, description="newest checkpoints kept (the best by monitor.best_metric lives in RUN/best/)")
    on_nan: Literal["stop", "rollback"] = Field(
        "stop", description="non-finite loss/weights: stop, or restore the last good checkpoint")
    nan_lr_factor: float = Field(0.5, gt=0, lt=1, description="learning-rate factor per rollback")
    max_rollbacks: int = Field(3, ge=0, description="rollbacks allowed before stopping")
    deterministic: bool = Field(False, description="deterministic kernels (exact resume)")
    sync_bn: bool = Field(False, description="several processes: batch-norm statistics over "
                          "the global batch (SyncBatchNorm)")
    dist_timeout: float = Field(1800.0, gt=0, description="several processes: seconds a "
                                "collective may wait (longer than any rank-0-only work)")
    dist_dead_after: float = Field(60.0, gt=0, description="several processes: seconds without "
                                   "a heartbeat before a rank counts as dead and the run stops")

    @model_validator(mode="after")
    def _budget(self) -> TrainConfig:
        if self.steps is None and self.epochs is None:
            raise ValueError("set a budget: train.steps or train.epochs")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("set train.steps or train.epochs, not both (use --set "
                             "train.steps=null to clear one)")
        return self

    @model_validator(mode="after")
    def _threads(self) -> TrainConfig:
        if self.threads != "auto" and (isinstance(self.threads, bool) or self.threads < 1):
            raise ValueError(f"train.threads must be auto or a count >= 1, got {self.threads!r}")
        return self

    @model_validator(mode="after")
    def _finite_budget(self) -> TrainConfig:
        _require_finite(self, ("epochs", "nan_lr_factor"))
        return self

    def total_steps(self, batches_per_epoch: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(float(self.epochs) * batches_per_epoch / self.d_steps))


class TabularConfig(Section):
    """Options of the ``ctgan`` task (tables); see docs/tabular.md."""

    loss: Literal["wgan_gp", "non_saturating"] = "wgan_gp"
    gp_weight: float = Field(10.0, ge=0, description="gradient penalty weight (wgan_gp)")
    pac: int = Field(10, ge=1, description="samples packed into one discriminator input")
    conditional: bool = Field(True, description="conditional vector + training-by-sampling")
    log_frequency: bool = Field(True, description="sample conditions by log category frequency")
    gumbel_tau: float = Field(0.2, gt=0, description="Gumbel-softmax temperature")
    fresh_g_batch: bool = Field(False, description="new z and conditions for the G update "
                                "(reference algorithm); false reuses the D step's fakes")
    classifier: float = Field(0.0, ge=0, description="weight of the auxiliary classifier's "
                              "loss on G (CTAB-GAN): a classifier learns data.target from the "
                              "other columns of real rows, and G pays its cross-entropy on "
                              "generated rows; 0: off. Needs a categorical data.target")
    classifier_units: int = Field(128, ge=1, description="hidden width of the auxiliary "
                                  "classifier (two hidden layers)")


class ConditioningConfig(Section):
    """Class conditioning (task ``conditional``); see docs/conditional.md."""

    method: Literal["cgan", "projection", "acgan"] = Field(
        "cgan", description="D conditioning: cgan (label maps concatenated to D's input), "
        "projection (Miyato & Koyama), acgan (auxiliary classifier)")
    generator: Literal["concat", "cbn"] | None = Field(
        None, description="G conditioning: concat (label embedding + z) or cbn (conditional "
        "batch norm); null: cbn for projection, concat otherwise")
    num_classes: int = Field(10, ge=2, description="number of classes (labels 0..K-1)")
    embed_dim: int = Field(10, ge=0, description="label embedding size for concat (0: one-hot)")
    aux_weight: float = Field(1.0, ge=0, description="acgan: weight of the class losses")
    mismatch: bool = Field(False, description="cgan / projection: D also sees real samples "
                           "with a wrong label as fakes (GAN-CLS's matching-aware D, Reed et al. "
                           "2016), so it must check that image and label agree")
    mismatch_share: float = Field(0.5, gt=0, le=0.5, description="mismatch: the share of D's "
                                  "fake term given to real samples with a wrong label (0.5: "
                                  "as many as G's samples, GAN-CLS; less: the first "
                                  "n*s/(1-s) of each real batch)")
    aux_fake: bool = Field(True, description="acgan: D's class head also learns the labels of "
                           "G's samples (the paper); false: real samples only, so the head stays "
                           "a classifier of the real data and G cannot teach it its own labels")
    twin: bool = Field(False, description="acgan: TAC-GAN's twin classifier (Gong et al. 2019): "
                       "a second class head learns the labels of G's samples, and G's loss "
                       "subtracts its cross-entropy, cancelling AC-GAN's pull toward samples "
                       "that are easy to classify (less variety within a class)")


class MonitorConfig(Section):
    log_every: int = Field(50, ge=1, description="steps between metric-log lines")
    sample_every: int = Field(500, ge=1, description="steps between sample grids")
    grid_size: int = Field(64, ge=1, description="samples in each grid (fixed latents)")
    progress: bool = Field(True, description="show a progress bar")
    eval_every: int | None = Field(None, ge=1, description="steps between metric evaluations "
                                   "on a fixed latent set (null: off)")
    eval_metrics: list[str] = Field(default_factory=lambda: ["fid"], description="metrics "
                                    "while training: fid, kid, is, pr, dc, modes")
    eval_n: int = Field(1000, ge=2, description="fixed latents (and real samples) per evaluation")
    eval_extractor: str = Field("auto", description="auto, mnist, inception, raw or a registered "
                                "extractor")
    best_metric: str | None = Field(None, description="keep RUN/best/ checkpoint by this score "
                                    "(fid, kid, is, precision, recall, density, coverage, modes)")
    # Health signals, alarms and outputs (ganforge.monitor; see docs/monitor.md).
    alarms: bool = Field(True, description="watch the health signals and raise alarms")
    alarm_window: int = Field(4, ge=1, description="log lines a condition must hold to alarm")
    alarm_warmup: int = Field(100, ge=0, description="steps before windowed alarms may fire")
    d_fake_floor: float = Field(0.05, gt=0, lt=1,
                                description="mean D(G(z)) below this counts as near 0")
    grad_drop: float = Field(0.1, gt=0, lt=1,
                             description="G grad norm below this x its peak counts as collapsing")
    collapse_ratio: float = Field(0.25, gt=0, lt=1,
                                  description="diversity below this x the real data's: collapse")
    plateau_evals: int = Field(5, ge=2, description="evaluations without progress to alarm")
    plateau_tol: float = Field(0.01, ge=0, description="relative range counted as flat")
    diversity_features: str = Field("raw", description="feature space of the diversity signal")
    tensorboard: bool = Field(True, description="write TensorBoard events when installed")
    report: bool = Field(True, description="write report.html at the end of training")


class SamplingConfig(Section):
    """How a trained run draws its samples (``ganforge sample``, ``evaluate``, ``Run.sample``)."""

    rejection: Literal["none", "drs", "filter"] = Field(
        "none", description="drs: discriminator rejection sampling (Azadi et al. 2019), keep "
        "generated samples with a probability from D's logit; filter: drop the quantile of "
        "them D scores lowest (both: standard GAN losses, no packing)")
    quantile: float | None = Field(None, ge=0, lt=1, description="drs: gamma = this quantile "
                                   "of F on the burn-in (default 0.8); filter: the share of "
                                   "samples dropped (default 0.1); higher keeps fewer, better")
    burn_in: int = Field(10000, ge=1, description="generated samples that set D's largest "
                         "logit and gamma (drs) or the logit threshold (filter)")


class TranslationConfig(Section):
    """Image-to-image translation (tasks cyclegan and pix2pix); published defaults."""

    gan_loss: Literal["auto", "least_squares", "vanilla"] = Field(
        "auto", description="auto: least_squares for cyclegan, vanilla (BCE) for pix2pix")
    cycle_weight: float = Field(10.0, ge=0, description="cyclegan: weight of the cycle L1 loss")
    identity_weight: float = Field(0.5, ge=0, description="cyclegan: identity loss weight as a "
                                   "fraction of cycle_weight (0 disables it)")
    cycle_noise: float = Field(0.0, ge=0, description="cyclegan: std of Gaussian noise added "
                               "to each translation before it is translated back in the cycle "
                               "loss (0: none); against hidden low-amplitude codes")
    pool_size: int = Field(50, ge=0, description="cyclegan: image pool of old fakes (0: none)")
    pool_prob: float = Field(0.5, ge=0, le=1, description="cyclegan: chance a full pool "
                             "returns an old fake (and stores the new one)")
    decay_start: float = Field(0.5, ge=0, le=1, description="fraction of the budget after "
                               "which the lr decays linearly to 0 (1: constant lr)")
    l1_weight: float = Field(100.0, ge=0, description="pix2pix: weight of the L1 loss")
    generator_ba: NetworkConfig | None = Field(None, description="cyclegan: b->a generator "
                                               "(default: the generator spec)")
    discriminator_a: NetworkConfig | None = Field(None, description="cyclegan: domain-a "
                                                  "discriminator (default: the discriminator spec)")


class RunConfig(Section):
    name: str = "run"
    description: str = ""
    task: str = Field("unconditional", description="training step family (ganforge.tasks)")
    task_options: dict[str, Any] = Field(default_factory=dict,
                                         description="options of the task (e.g. timegan's phases)")
    data: DataConfig = Field(default_factory=DataConfig)
    latent: LatentConfig = Field(default_factory=LatentConfig)
    generator: NetworkConfig
    discriminator: NetworkConfig
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    tabular: TabularConfig = Field(default_factory=TabularConfig)
    translation: TranslationConfig = Field(default_factory=TranslationConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    conditioning: ConditioningConfig | None = Field(
        None, description="class conditioning (needs task: conditional and labelled data)")
    seed: int = Field(0, ge=0, lt=2**62, description="seed of every random generator")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _conditioning_task(self) -> RunConfig:
        if self.task == "conditional" and self.conditioning is None:
            raise ValueError("task 'conditional' needs a conditioning section, e.g. "
                             "conditioning: {method: cgan, num_classes: 10}")
        if self.conditioning is not None and self.task != "conditional":
            raise ValueError(f"a conditioning section needs task: conditional (task is "
                             f"'{self.task}'); set task: conditional or drop conditioning")
        return self

    @model_validator(mode="after")
    def _fp16_scope(self) -> RunConfig:
        if self.train.precision != "fp16":
            return self
        if self.task not in ("unconditional", "conditional"):
            raise ValueError(f"train.precision fp16 (with gradient scaling) is supported by the "
                             f"unconditional and conditional tasks, not '{self.task}'; use "
                             f"precision: bf16 (no scaling needed) or fp32")
        if self.objective.gradient_penalty or self.objective.r1 or self.objective.r2:
            raise ValueError("train.precision fp16 does not scale the inner gradients of a "
                             "gradient penalty or R1; use precision: bf16 or fp32 with them")
        return self

    @model_validator(mode="after")
    def _discriminator_norm(self) -> RunConfig:
        if self.objective.d_norm is not None:
            layers = replace_batch_norm(self.discriminator.layers, self.objective.d_norm)
            if layers != self.discriminator.layers:
                self.discriminator.layers = layers
        return self


# ------------------------------------------------------------------------ loading / errors
def config_rows(cfg: BaseModel, prefix: str = "") -> list[tuple[str, Any, Any, str]]:
    """Every leaf key of a config as (dotted key, value, default, description); a section that
    is set (or has a default) is walked into, lists and dicts are values."""
    rows: list[tuple[str, Any, Any, str]] = []
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(config_rows(value, key + "."))
            continue
        default = ("(required)" if field.is_required()
                   else field.get_default(call_default_factory=True))
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        value = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        rows.append((key, value, default, field.description or ""))
    return rows


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_text(name: str) -> str:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'.{did_you_mean(name, list_presets())} "
                          f"Presets: {', '.join(list_presets())}.")
    return path.read_text()


def load_yaml_file(path: Path, error: type[ConfigError] = ConfigError) -> Any:
    """The YAML document in ``path``, whatever its type; ``error`` (a ConfigError or a
    subclass) says when the file cannot be read or is not valid YAML."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"'{path}' is not valid YAML: {exc}") from None
    except OSError as exc:
        raise error(f"cannot read '{path}': {exc.strerror}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """A run config file: a mapping of config sections, else ConfigError."""
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"'{path}' must hold a mapping of config sections "
                          f"(data, generator, ...), not {type(data).__name__}.")
    return data


def merge_config(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: mappings merge key by key (recursively), anything else in
    ``over`` (a number, a string, a list such as ``layers``) replaces the base's value."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (merge_config(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def _read_source(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """(raw dict, the folder a relative ``base:`` path is read from) of one config source."""
    if isinstance(source, dict):
        return yaml.safe_load(yaml.safe_dump(source)), None  # deep copy, plain types
    p = Path(source)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file '{source}' does not exist.")
        return read_yaml(p), p.parent
    raw = yaml.safe_load(preset_text(str(source)))
    return (raw if isinstance(raw, dict) else {}), None


def raw_config(source: str | Path | dict[str, Any], _chain: tuple[str, ...] = ()
               ) -> dict[str, Any]:
    """The raw dict of a preset name, a YAML path or a dict. A config with ``base: NAME``
    (a preset, or a YAML file, relative to the config's own folder) is that config with this
    one's keys laid over it (:func:`merge_config`); bases may have bases."""
    raw, folder = _read_source(source)
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    label = ("the config" if isinstance(source, dict) else
             str(Path(source).resolve()) if folder is not None else str(source))
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"base in {label} must name a preset or a YAML file (e.g. base: "
                          f"dcgan-mnist), got {base!r}.")
    if Path(base).suffix in (".yaml", ".yml"):
        base = str(((folder or Path.cwd()) / base).resolve())
    if base in _chain or base == label:
        raise ConfigError(f"base: the configs name each other in a loop "
                          f"({' -> '.join([*_chain, label, base])}); one of them must stand "
                          f"without a base.")
    return merge_config(raw_config(base, (*_chain, label)), raw)


_BUDGETS = {"steps": "epochs", "epochs": "steps"}


def _override_path(key: str, item: str) -> list[str | int]:
    """``generator.layers[3].dense.units`` -> ['generator', 'layers', 3, 'dense', 'units']."""
    parts: list[str | int] = []
    for token in (k for k in key.strip().split(".") if k):
        m = re.fullmatch(r"([^\[\]]*)((?:\[-?\d+\])*)", token)
        if m is None:
            raise ConfigError(f"override '{item}': '{token}' is not a key or key[index] "
                              f"(e.g. generator.layers[3].dense.units=128).")
        if m.group(1):
            parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(-?\d+)\]", m.group(2)))
    return parts


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML (``5``, ``true``, ``[1,2]``).
    ``key[i]`` indexes a list (``generator.layers[3].dense.units=128``). Setting one training
    budget (``train.steps`` / ``train.epochs``) replaces the other, with a note on stderr."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value "
                              f"(e.g. train.epochs=5).")
        key, _, text = item.partition("=")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        parts = _override_path(key, item)
        if not parts:
            raise ConfigError(f"override '{item}' has an empty key.")
        node: Any = raw
        for i, part in enumerate(parts):
            where = key.strip() if i == len(parts) - 1 else ".".join(map(str, parts[:i + 1]))
            if isinstance(part, int):
                if not isinstance(node, list):
                    raise ConfigError(f"override '{item}': '{'.'.join(map(str, parts[:i]))}' "
                                      f"is not a list, so it cannot be indexed with [{part}].")
                if not -len(node) <= part < len(node):
                    raise ConfigError(f"override '{item}': index {part} is out of range; "
                                      f"'{'.'.join(map(str, parts[:i]))}' has {len(node)} "
                                      f"entries (0..{len(node) - 1}).")
                if i == len(parts) - 1:
                    node[part] = value
                    break
                nxt = node[part]
                if isinstance(nxt, str) and isinstance(parts[i + 1], str):
                    nxt = node[part] = {nxt: {}}  # 'relu' -> {relu: {}} to set an argument
                elif isinstance(nxt, dict) and len(nxt) == 1 and isinstance(parts[i + 1], str):
                    k = next(iter(nxt))
                    if nxt[k] is None and parts[i + 1] == k:
                        nxt[k] = {}
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"override '{item}': '{where}' is not inside a section.")
                if i == len(parts) - 1:
                    if (len(parts) == 2 and parts[0] == "train" and part in _BUDGETS
                            and value is not None and node.get(_BUDGETS[part]) is not None):
                        other = _BUDGETS[part]
                        sys.stderr.write(f"ganforge: note: train.{part}={value} replaces the "
                                         f"config's train.{other}={node[other]}.\n")
                        node[other] = None
                    node[part] = value
                    break
                nxt = node.get(part)
                if nxt is None:
                    nxt = {}
                    node[part] = nxt
                if not isinstance(nxt, (dict, list)):
                    raise ConfigError(f"override '{item}': '{'.'.join(map(str, parts[:i + 1]))}' "
                                      f"is not a section.")
            node = nxt
    return raw


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model reached by ``loc``, for did-you-mean hints."""
    cur: Any = model
    for part in loc:
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        cur = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if cur is None:
            return []
    return list(getattr(cur, "model_fields", {}))


def format_validation_error(exc: ValidationError, model: type[BaseModel] = RunConfig) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "config"
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            hint = did_you_mean(str(loc[-1]), known)
            lines.append(f"{path}: unknown key.{hint} Known keys here: {', '.join(known)}.")
        elif err["type"] == "missing":
            lines.append(f"{path}: required but missing.")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"{path}: {msg}{shown}.")
    return "invalid config:\n  " + "\n  ".join(lines)


def validate_config(raw: dict[str, Any]) -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError("a config must be a mapping of sections.")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    return cfg


def known_data_shape(cfg: RunConfig) -> tuple[int, ...] | None:
    if cfg.data.image_size:
        return tuple(cfg.data.image_size)
    fixed = {"mnist": (1, 28, 28), "digits": (1, 8, 8), "ring8": (2,), "grid25": (2,)}
    return fixed.get(cfg.data.source)


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None
                ) -> RunConfig:
    return validate_config(apply_overrides(raw_config(source), overrides))


def data_widths(data_shape: tuple[int, ...], spans: list[int] | None = None
                ) -> dict[str, Any]:
    """What ``steps``, ``features`` and ``spans`` stand for with data of this sample shape
    (``spans``: the data's one-hot variable widths, where it has them)."""
    widths: dict[str, Any] = {"features": int(data_shape[-1])}
    if len(data_shape) == 2:
        widths["steps"] = int(data_shape[0])
    if spans:
        widths["spans"] = [int(w) for w in spans]
    return widths


def _fill_widths(node: Any, key: str, widths: dict[str, int], shape: tuple[int, ...],
                 layer_list: bool = False) -> Any:
    if isinstance(node, dict):
        return {k: _fill_widths(v, f"{key}.{k}", widths, shape, k == "layers")
                for k, v in node.items()}
    if isinstance(node, list):
        # the entries of a ``layers`` list are layers (a bare string is a layer's name)
        return [v if layer_list and isinstance(v, str) else
                _fill_widths(v, f"{key}[{i}]", widths, shape) for i, v in enumerate(node)]
    if isinstance(node, str) and node in DATA_WIDTHS:
        if node == "spans" and node not in widths:
            raise ConfigError(f"{key} is 'spans', the widths of the data's one-hot variables, "
                              f"but this data has none (shape {list(shape)}); use "
                              f"span_softmax on data encoded one-hot (music: "
                              f"data.options.encoding: onehot) or write the widths.")
        if node not in widths:
            raise ConfigError(f"{key} is 'steps', the length of a sequence, but the data's "
                              f"samples have shape {list(shape)}, not (steps, features); write "
                              f"a number there.")
        return widths[node]
    return node


def resolve_data_widths(cfg: RunConfig, data_shape: tuple[int, ...],
                        spans: list[int] | None = None) -> RunConfig:
    """The config with every ``steps`` / ``features`` / ``spans`` in latent.shape, the network
    specs and task_options replaced by the data's sequence length / feature count / one-hot
    widths (``cfg`` itself when there are none). Numbers are left as written; the task's checks
    then compare them with the data and name the key that disagrees."""
    raw = cfg.to_dict()
    widths = data_widths(tuple(int(v) for v in data_shape), spans)
    filled = {k: _fill_widths(raw[k], k, widths, tuple(data_shape))
              for k in ("latent", "generator", "discriminator", "task_options", "translation")}
    if all(filled[k] == raw[k] for k in filled):
        return cfg
    return validate_config({**raw, **filled})
