"""Attention layers: let every pixel look at every other pixel.

A convolution only mixes a small neighbourhood, so a convolutional GAN draws long-range structure
(the four legs of one dog, the symmetric eyes of one face) only through many stacked layers.
Self-attention (Zhang et al., 2019, SAGAN) adds one layer in which each position takes a
weighted average of the features at *all* positions, the weights computed from the features
themselves. BigGAN keeps it at one resolution in both networks.
"""

import keras
from keras import layers, ops

from kerasgan.layers.normalization import SpectralNormalization


@keras.saving.register_keras_serializable(package="kerasgan")
class SelfAttention2D(keras.layers.Layer):
    """SAGAN self-attention on a feature map, with a learned gate that starts closed.

    For input features `x` with `C` channels at `N = H * W` positions, three 1x1 convolutions
    give queries `f(x)` (`C/8` channels), keys `g(x)` (`C/8`) and values `h(x)` (`C/2`); keys
    and values are max-pooled 2x2, which quarters the cost and, as in BigGAN, barely changes the
    result. The attention map and the output are

    `beta = softmax(f(x) g(x)^T)`   (`[N, N/4]`, each row sums to 1)
    `y = x + gamma * v(beta h(x))`

    where `v` is a 1x1 convolution back to `C` channels and `gamma` is a learned scalar
    initialised to **0**: at the start the layer is the identity, the network first learns
    local (convolutional) structure and opens the gate as long-range cues become useful.
    Every convolution is spectrally normalized (SAGAN uses spectral normalization in both
    networks), and the softmax is computed in float32 under mixed precision.

    Args:
        key_ratio: channels of queries and keys are `C // key_ratio` (at least 1).
        value_ratio: channels of values are `C // value_ratio` (at least 1).
        spectral_norm: wrap the four convolutions in `SpectralNormalization`.
        kernel_initializer: initializer of the convolution kernels.
        kernel_regularizer: optional regularizer of the convolution kernels (BigGAN adds its
            orthogonal regularization in its training step instead, where it can be seen).
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a channels-last feature map `[batch, H, W, C]` with even `H` and `W`.
        training: whether spectral normalization runs its power iteration (training mode).

    Input shape:
        `(batch, H, W, C)`.

    Output shape:
        The same as the input.

    Example:
        >>> attention = SelfAttention2D()
        >>> x = keras.random.normal((2, 16, 16, 64))
        >>> bool(keras.ops.all(attention(x) == x))     # gamma = 0 at initialisation
        True

    Reference:
        Zhang, Goodfellow, Metaxas & Odena, "Self-Attention Generative Adversarial Networks",
        ICML 2019, https://arxiv.org/abs/1805.08318 (section 3); Brock, Donahue & Simonyan,
        "Large Scale GAN Training for High Fidelity Natural Image Synthesis", ICLR 2019.
    """

    def __init__(
        self,
        key_ratio=8,
        value_ratio=2,
        spectral_norm=True,
        kernel_initializer="orthogonal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("key_ratio", key_ratio), ("value_ratio", value_ratio)):
            if int(value) != value or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {name}={value}")
        self.key_ratio = int(key_ratio)
        self.value_ratio = int(value_ratio)
        self.spectral_norm = bool(spectral_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _conv(self, filters, name):
        conv = layers.Conv2D(
            filters,
            1,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )
        return SpectralNormalization(conv, name=f"{name}_sn") if self.spectral_norm else conv

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"SelfAttention2D expects a feature map [batch, H, W, C], got shape {input_shape}"
            )
        height, width, channels = input_shape[1:]
        if channels is None:
            raise ValueError("SelfAttention2D needs a known number of channels")
        for size in (height, width):
            if size is not None and size % 2:
                raise ValueError(
                    "SelfAttention2D pools keys and values 2x2, so H and W must be even; got "
                    f"shape {input_shape}"
                )
        key_channels = max(channels // self.key_ratio, 1)
        value_channels = max(channels // self.value_ratio, 1)
        self.query = self._conv(key_channels, "query")
        self.key = self._conv(key_channels, "key")
        self.value = self._conv(value_channels, "value")
        self.output_projection = self._conv(channels, "output")
        for conv in (self.query, self.key, self.value):
            conv.build(input_shape)
        self.output_projection.build((*input_shape[:3], value_channels))
        self.pool = layers.MaxPooling2D(2, dtype=self.dtype_policy, name="pool")
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")
        self.built = True

    def call(self, inputs, training=False):
        batch = ops.shape(inputs)[0]
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        queries = self.query(inputs, training=training)
        keys = self.pool(self.key(inputs, training=training))
        values = self.pool(self.value(inputs, training=training))

        def positions(features):  # [batch, h, w, c] -> [batch, h * w, c]
            return ops.reshape(features, (batch, -1, ops.shape(features)[-1]))

        # Attention logits grow with the channel count; softmax in float32 keeps bfloat16's
        # 8-bit mantissa from flattening them.
        logits = ops.matmul(
            ops.cast(positions(queries), "float32"),
            ops.transpose(ops.cast(positions(keys), "float32"), (0, 2, 1)),
        )
        attention = ops.cast(ops.softmax(logits, axis=-1), values.dtype)
        attended = ops.matmul(attention, positions(values))
        attended = ops.reshape(attended, (batch, height, width, ops.shape(values)[-1]))
        output = self.output_projection(attended, training=training)
        return inputs + ops.cast(self.gamma, inputs.dtype) * output

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            key_ratio=self.key_ratio,
            value_ratio=self.value_ratio,
            spectral_norm=self.spectral_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
