"""Losses, penalties and tricks: small pure pieces composed around one D step and one G step
(``ganforge.tasks.unconditional``), switched on by ``ObjectiveConfig``."""

from ganforge.objectives.losses import LOSSES, GanLoss, get_loss
from ganforge.objectives.penalties import clip_weights, gradient_penalty, r1_penalty
from ganforge.objectives.tricks import (
                                        EMA,
                                        diff_augment,
                                        feature_matching_loss,
                                        instance_noise_std,
                                        pack,
                                        packed_shape,
                                        smoothed_targets,
                                        top_k,
                                        top_k_fraction,
)

__all__ = ["EMA", "LOSSES", "GanLoss", "clip_weights", "diff_augment", "feature_matching_loss",
           "get_loss", "gradient_penalty", "instance_noise_std", "pack", "packed_shape",
           "r1_penalty", "smoothed_targets", "top_k", "top_k_fraction"]
