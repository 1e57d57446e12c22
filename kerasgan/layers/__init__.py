"""Reusable building blocks, one module per family (see each module's docstring)."""

from kerasgan.layers.attention import SelfAttention2D
from kerasgan.layers.augment import DiffAugment
from kerasgan.layers.normalization import (
    AdaIN,
    ConditionalBatchNormalization,
    SpectralNormalization,
    channel_moments,
)
from kerasgan.layers.padding import ReflectionPadding2D
from kerasgan.layers.style import (
    EqualizedConv2D,
    EqualizedDense,
    MappingNetwork,
    MinibatchStdDev,
    ModulatedConv2D,
    NoiseInjection,
    StyleAdaIN,
    StyleMixing,
    SynthesisLayer,
    ToRGB,
)

__all__ = [
    "AdaIN",
    "ConditionalBatchNormalization",
    "DiffAugment",
    "EqualizedConv2D",
    "EqualizedDense",
    "MappingNetwork",
    "MinibatchStdDev",
    "ModulatedConv2D",
    "NoiseInjection",
    "ReflectionPadding2D",
    "SelfAttention2D",
    "SpectralNormalization",
    "StyleAdaIN",
    "StyleMixing",
    "SynthesisLayer",
    "ToRGB",
    "channel_moments",
]
