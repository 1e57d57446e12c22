"""Reusable building blocks, one module per family (see each module's docstring)."""

from kerasgan.layers.normalization import (
    AdaIN,
    ConditionalBatchNormalization,
    SpectralNormalization,
    channel_moments,
)
from kerasgan.layers.padding import ReflectionPadding2D

__all__ = [
    "AdaIN",
    "ConditionalBatchNormalization",
    "ReflectionPadding2D",
    "SpectralNormalization",
    "channel_moments",
]
