"""Quality metrics, each computed from scratch and checked against a reference.

    from ganforge import metrics
    metrics.fid(real_images, fake_images, extractor="mnist")

Scoring a run directory: ``ganforge.evaluate.evaluate_run``.
"""

from ganforge.metrics.classes import ClassModes, class_modes
from ganforge.metrics.evaluate import METRICS
from ganforge.metrics.features import Extractor, get_extractor, register_extractor
from ganforge.metrics.modes import ModeCoverage, mode_coverage
from ganforge.metrics.scores import (
    density_coverage,
    fid,
    frechet_distance,
    inception_score,
    kid,
    precision_recall,
)

__all__ = [
    "METRICS",
    "ClassModes",
    "Extractor",
    "ModeCoverage",
    "class_modes",
    "density_coverage",
    "fid",
    "frechet_distance",
    "get_extractor",
    "inception_score",
    "kid",
    "mode_coverage",
    "precision_recall",
    "register_extractor",
]
