"""Clicks: the annotations a (simulated) user gives, their sampling, encoding and agents."""

from dial_core.clicks.types import Click

__all__ = ["Click"]
