"""Metric log, sample grids, progress display."""
