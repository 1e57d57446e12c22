"""Padding layers that Keras does not ship.

Keras has `ZeroPadding2D`. Image-to-image networks (AdaIN's decoder, CycleGAN's ResNet
generator) pad by *reflecting* the border instead: zeros create a dark frame that the network
learns to paint over, and generated images show it as border artifacts.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasgan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pad the height and width of a channels-last image batch by mirroring its border.

    Row `-1` becomes a copy of row `1`, row `-2` of row `2`, and so on (the border row itself is
    not repeated), as `numpy.pad(..., mode="reflect")`.

    Args:
        padding: an int `p` (pad every side by `p`) or a tuple `(pad_height, pad_width)`.
            Each value must be smaller than the input's size along that axis.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, height + 2 * pad_height, width + 2 * pad_width, channels)`.

    Example:
        >>> x = keras.ops.reshape(keras.ops.arange(9.0), (1, 3, 3, 1))
        >>> ReflectionPadding2D(1)(x)[0, :, :, 0]   # row 0 is [4, 3, 4, 5, 4]
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = (padding, padding)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 2 or min(padding) < 0:
            raise ValueError(
                f"`padding` must be an int or a pair of non-negative ints, got {padding}"
            )
        self.padding = padding

    def call(self, inputs):
        pad_h, pad_w = self.padding
        return ops.pad(inputs, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)), mode="reflect")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        pad_h, pad_w = self.padding
        return (
            batch,
            None if height is None else height + 2 * pad_h,
            None if width is None else width + 2 * pad_w,
            channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding})
        return config
