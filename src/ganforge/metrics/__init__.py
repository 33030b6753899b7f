"""Quality metrics, each computed from scratch and checked against a reference."""

from ganforge.metrics.modes import ModeCoverage, mode_coverage

__all__ = ["ModeCoverage", "mode_coverage"]
