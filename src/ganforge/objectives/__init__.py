"""Losses, penalties and tricks: small pure pieces composed around one D step and one G step."""

from ganforge.objectives.losses import LOSSES, GanLoss, get_loss

__all__ = ["LOSSES", "GanLoss", "get_loss"]
