"""Reusable building blocks, one module per family (see each module's docstring)."""

from kerasgan.layers.normalization import AdaIN, channel_moments
from kerasgan.layers.padding import ReflectionPadding2D

__all__ = ["AdaIN", "ReflectionPadding2D", "channel_moments"]
