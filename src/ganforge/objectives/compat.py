"""Checks that a config's loss, penalties, tricks and discriminator spec fit together.

Called from ``Task.check`` (so ``ganforge.load_config``, ``ganforge inspect`` and the Trainer run
it for every task); every rejection says what clashes and how to fix it.
"""

from __future__ import annotations

from typing import Any

from ganforge.architecture.builder import parse_layer
from ganforge.architecture.layers import LAYERS
from ganforge.errors import ConfigError, SpecError

# Tasks trained by the shared G/D step of ganforge.tasks.unconditional, the one that applies
# objective.top_k and objective.mode_seeking
SHARED_STEP_TASKS = ("unconditional", "conditional")


def _d_layers(cfg: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i, entry in enumerate(cfg.discriminator.layers):
        try:
            out.append(parse_layer(entry, f"discriminator.layers[{i}]"))
        except SpecError:  # the builder reports malformed layers with their spec path
            return out
    return out


def discriminator_uses_spectral_norm(cfg: Any) -> bool:
    layers = _d_layers(cfg)
    if cfg.discriminator.spectral_norm:
        return any(LAYERS[t].weighted and args.get("spectral_norm", True) for t, args in layers)
    return any(bool(args.get("spectral_norm", False)) for _, args in layers)


# DRS reads D's logit as log(p_data / p_g): the standard losses only
DRS_LOSSES = ("minimax", "non_saturating")


def check_rejection_config(cfg: Any, method: str) -> None:
    """Rejection by D (``drs``, ``filter``) needs a G/D run (unconditional, or conditional,
    where D scores each sample for its label) whose D scores one sample at a time; DRS also
    reads the logit as the log density ratio (standard losses; not AC-GAN's score, which adds
    the class head), where the filter only ranks by it (any loss)."""
    what, fix = f"sampling.rejection={method}", "set sampling.rejection=none"
    if cfg.task not in ("unconditional", "conditional"):
        raise ConfigError(f"{what} is implemented for tasks 'unconditional' and "
                          f"'conditional', not '{cfg.task}'; {fix}.")
    if method == "drs" and cfg.task == "conditional" and cfg.conditioning.method == "acgan":
        raise ConfigError(f"{what} reads D's logit as log(p_data / p_g); an AC-GAN run is "
                          f"scored with its class head added, which is no density ratio. Use "
                          f"sampling.rejection=filter or {fix}.")
    if method == "drs" and cfg.objective.loss not in DRS_LOSSES:
        raise ConfigError(f"{what} reads D's logit as log(p_data / p_g), which only the "
                          f"{' and '.join(DRS_LOSSES)} losses train; loss is "
                          f"'{cfg.objective.loss}'. Change the loss or {fix}.")
    if cfg.objective.packing > 1:
        raise ConfigError(f"{what} scores one sample at a time; a packed D "
                          f"(objective.packing={cfg.objective.packing}) sees several. Set "
                          f"objective.packing=1 or {fix}.")


def _check_likelihood(cfg: Any) -> None:
    """objective.likelihood scores real sequences with G's feedback body (teacher forcing):
    an unconditional task whose G ends with a feedback layer, its body with span_softmax."""
    o = cfg.objective
    if cfg.task != "unconditional":
        raise ConfigError(
            f"objective.likelihood={o.likelihood} (the teacher-forced likelihood of an "
            f"autoregressive G) is implemented for task 'unconditional'; task '{cfg.task}' "
            f"would ignore it. Set objective.likelihood=0.")
    layers = []
    for i, entry in enumerate(cfg.generator.layers):
        try:
            layers.append(parse_layer(entry, f"generator.layers[{i}]"))
        except SpecError:  # the builder reports malformed layers with their spec path
            return
    body = layers[-1][1].get("layers") if layers and layers[-1][0] == "feedback" else None
    last = None
    if isinstance(body, list) and body:
        try:
            last = parse_layer(body[-1], "feedback.layers[-1]")[0]
        except SpecError:
            return
    if last != "span_softmax":
        raise ConfigError(
            f"objective.likelihood={o.likelihood} scores real sequences with the generator's "
            f"autoregressive body, so G's last layer must be feedback: {{layers: [lstm, ..., "
            f"span_softmax]}} (each step's categories as one-hot spans, e.g. music with "
            f"encoding onehot; see docs/music.md). This generator ends with "
            f"'{layers[-1][0] if layers else 'nothing'}'"
            f"{' whose body does not end with span_softmax' if body else ''}. Use such a "
            f"generator, or set objective.likelihood=0.")


def check_objective(cfg: Any, data_shape: tuple[int, ...] | None = None) -> None:
    """Raise ConfigError when objective pieces clash with each other or with D's spec."""
    o = cfg.objective
    layers = _d_layers(cfg)
    types = [t for t, _ in layers]
    sn = discriminator_uses_spectral_norm(cfg)
    if o.clip and sn:
        raise ConfigError(
            f"objective.clip={o.clip} (weight clipping) and spectral norm on the discriminator "
            f"both constrain D's Lipschitz constant and fight each other. Use one: set "
            f"objective.clip=0, or remove spectral_norm from the discriminator.")
    if o.clip and o.gradient_penalty:
        raise ConfigError(
            f"objective.clip={o.clip} and objective.gradient_penalty={o.gradient_penalty}: "
            f"the gradient penalty replaces weight clipping (WGAN-GP). Set objective.clip=0 or "
            f"objective.gradient_penalty=0.")
    if types and types[-1] == "sigmoid":
        kind = ("a critic must output unbounded scores"
                if o.loss in ("wasserstein", "wgan_gp", "hinge") else
                f"the '{o.loss}' loss applies its own sigmoid to D's logits")
        raise ConfigError(
            f"discriminator.layers[{len(types) - 1}] is a sigmoid, but {kind}. Remove the final "
            f"sigmoid so D ends with dense {{units: 1}}.")
    if o.label_smoothing != "none" and o.loss in ("wasserstein", "wgan_gp", "hinge"):
        raise ConfigError(
            f"objective.label_smoothing={o.label_smoothing} needs a loss with real/fake targets "
            f"(minimax, non_saturating, least_squares); '{o.loss}' has none. Set "
            f"objective.label_smoothing=none.")
    if o.label_smoothing != "none" and o.smooth_real <= o.smooth_fake:
        raise ConfigError(
            f"objective.smooth_real ({o.smooth_real}) must be above objective.smooth_fake "
            f"({o.smooth_fake}).")
    if (o.gradient_penalty or o.r1 or o.r2) and "batch_norm" in types:
        raise ConfigError(
            "a gradient penalty (gradient_penalty or r1) is taken per sample, but batch_norm in "
            "the discriminator mixes the samples of a batch (Gulrajani et al. use none). Replace "
            "the discriminator's batch_norm layers with layer_norm (or instance_norm for images).")
    if o.loss == "wasserstein" and not (o.clip or o.gradient_penalty or sn):
        raise ConfigError(
            "loss 'wasserstein' needs a Lipschitz constraint on the critic: set objective.clip "
            "(0.01 in the paper), use loss wgan_gp, or put spectral_norm on the discriminator.")
    if o.feature_matching == "off" and o.feature_matching_weight != 1.0:
        raise ConfigError("objective.feature_matching_weight is set but feature_matching is "
                          "off; set objective.feature_matching=added (or alone).")
    for key, what, on, off in (("top_k", "top-k training", o.top_k < 1.0, 1),
                               ("mode_seeking", "MSGAN", bool(o.mode_seeking), 0)):
        if on and cfg.task not in SHARED_STEP_TASKS:
            raise ConfigError(
                f"objective.{key}={getattr(o, key)} ({what}) is implemented for the tasks "
                f"{', '.join(SHARED_STEP_TASKS)}; task '{cfg.task}' would ignore it. Set "
                f"objective.{key}={off}.")
    if o.mode_seeking and cfg.train.batch_size < 2:
        raise ConfigError(
            f"objective.mode_seeking compares the two halves of G's batch, but "
            f"train.batch_size is {cfg.train.batch_size}; raise train.batch_size to 2 or more, "
            f"or set objective.mode_seeking=0.")
    if o.likelihood_warmup and not o.likelihood:
        raise ConfigError("objective.likelihood_warmup is set but the likelihood term is off; "
                          "set objective.likelihood above 0 (e.g. 1).")
    if not o.likelihood_warmup_d and not o.likelihood_warmup:
        raise ConfigError("objective.likelihood_warmup_d=false has no effect with no warm-up "
                          "(likelihood_warmup=0): set likelihood_warmup to its steps (e.g. "
                          "500), or drop likelihood_warmup_d.")
    if o.likelihood:
        _check_likelihood(cfg)
    if o.top_k == 1.0 and o.top_k_steps:
        raise ConfigError("objective.top_k_steps is set but top-k training is off; set "
                          "objective.top_k below 1 (e.g. 0.5).")
    if data_shape is not None:
        if o.diffaugment and len(data_shape) != 3:
            raise ConfigError(
                f"objective.diffaugment works on images (C, H, W); this data has shape "
                f"{list(data_shape)}. Set objective.diffaugment=[] or use image data.")
        if o.packing > 1 and len(data_shape) not in (1, 2, 3):
            raise ConfigError(f"objective.packing cannot pack data of shape {list(data_shape)}.")
