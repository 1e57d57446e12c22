"""Normalization layers that take their scale and shift from somewhere else.

Batch, layer and instance normalization all remove a mean and divide by a standard deviation,
then apply a learned affine map. The layers here keep the first half and replace the learned
affine map by statistics or parameters that arrive as an *input*: in AdaIN the scale and shift
are another image's feature statistics, which is what lets one network render any style.
"""

import keras
from keras import ops


def channel_moments(features, epsilon=1e-5):
    """Per-example, per-channel mean and standard deviation of a `[batch, H, W, C]` tensor.

    Args:
        features: a channels-last feature map `[batch, H, W, C]`.
        epsilon: added to the variance before the square root, so that a flat channel has a
            finite, non-zero standard deviation (and a finite gradient).

    Returns:
        `(mean, std)`, each `[batch, 1, 1, C]`.
    """
    mean, variance = ops.moments(features, axes=(1, 2), keepdims=True)
    return mean, ops.sqrt(variance + epsilon)


@keras.saving.register_keras_serializable(package="kerasgan")
class AdaIN(keras.layers.Layer):
    """Adaptive instance normalization: give the content features the style's statistics.

    Each channel of the content feature map is normalized to zero mean and unit standard
    deviation over its spatial positions (instance normalization), then scaled and shifted by
    the same channel's standard deviation and mean in the style feature map:

    `AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)`

    where `mu` and `sigma` are computed per example and per channel over height and width. The
    layer has no weights: the affine parameters that instance normalization would learn come
    from the style input instead. In a VGG feature space, channel means and standard deviations
    carry much of what we perceive as style, so this single operation transfers it.

    Args:
        epsilon: small float added to the variances before the square root. Must be >= 0.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a list or tuple `(content, style)` of channels-last feature maps
            `[batch, H, W, C]` and `[batch or 1, H', W', C]`. The spatial sizes may differ; a
            style batch of 1 is applied to every content example.

    Input shape:
        `[(batch, H, W, C), (batch or 1, H', W', C)]`.

    Output shape:
        The content shape `(batch, H, W, C)`.

    Example:
        >>> content = keras.random.normal((2, 32, 32, 64))
        >>> style = keras.random.normal((2, 16, 16, 64), mean=3.0, stddev=2.0)
        >>> AdaIN()([content, style]).shape
        (2, 32, 32, 64)

    Reference:
        Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
        Normalization", ICCV 2017, https://arxiv.org/abs/1703.06868 (equation 8).
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0, got epsilon={epsilon}")
        self.epsilon = float(epsilon)
        self.supports_masking = False

    def build(self, input_shape):
        content_shape, style_shape = _split_shapes(input_shape)
        if len(content_shape) != 4 or len(style_shape) != 4:
            raise ValueError(
                "AdaIN expects two channels-last feature maps of rank 4, got shapes "
                f"{content_shape} and {style_shape}"
            )
        if (
            content_shape[-1] is not None
            and style_shape[-1] is not None
            and content_shape[-1] != style_shape[-1]
        ):
            raise ValueError(
                "Content and style must have the same number of channels, got "
                f"{content_shape[-1]} and {style_shape[-1]}"
            )
        self.built = True

    def call(self, inputs):
        content, style = inputs
        content_mean, content_std = channel_moments(content, self.epsilon)
        style_mean, style_std = channel_moments(style, self.epsilon)
        return style_std * (content - content_mean) / content_std + style_mean

    def compute_output_shape(self, input_shape):
        return tuple(_split_shapes(input_shape)[0])

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


def _split_shapes(input_shape):
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 2
        or not all(isinstance(shape, (list, tuple)) for shape in input_shape)
    ):
        raise ValueError(f"AdaIN expects a list of two shapes (content, style), got {input_shape}")
    return tuple(input_shape[0]), tuple(input_shape[1])
