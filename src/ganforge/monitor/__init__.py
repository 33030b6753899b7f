"""Metric log, sample grids, health signals and alarms, TensorBoard, run report, comparison.

See docs/monitor.md for the ``metrics.jsonl`` schema and the alarm rules.
"""

from ganforge.monitor.alarms import ALARM_TEXT, Alarm, HealthWatch
from ganforge.monitor.callback import MonitorCallback
from ganforge.monitor.log import MetricLog, read_log
from ganforge.monitor.signals import (
    grad_norm,
    mean_pairwise_distance,
    register_feature_extractor,
)

__all__ = ["ALARM_TEXT", "Alarm", "HealthWatch", "MetricLog", "MonitorCallback", "grad_norm",
           "mean_pairwise_distance", "read_log", "register_feature_extractor"]
