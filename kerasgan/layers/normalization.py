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
        # In float32 under any policy: VGG features reach the hundreds, so their variances
        # (1e4-1e6) overflow float16 (max 65504) and the output would silently become zeros.
        content, style = (ops.cast(x, "float32") for x in inputs)
        content_mean, content_std = channel_moments(content, self.epsilon)
        style_mean, style_std = channel_moments(style, self.epsilon)
        result = style_std * (content - content_mean) / content_std + style_mean
        return ops.cast(result, self.compute_dtype)

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


# === BigGAN: spectral and conditional batch normalization ===
#
# Two more ways of taking a layer's scale from elsewhere: spectral normalization divides a
# kernel by its largest singular value (so the layer is 1-Lipschitz), and conditional batch
# normalization takes the affine parameters of batch normalization from a conditioning vector
# (a class embedding, a chunk of the latent) instead of learning one set for all inputs.


@keras.saving.register_keras_serializable(package="kerasgan")
class SpectralNormalization(keras.layers.SpectralNormalization):
    """`keras.layers.SpectralNormalization` whose power iteration stays in float32.

    In training mode Keras's wrapper divides the wrapped kernel by its spectral norm `sigma`
    (estimated by power iteration) and *assigns* the result to the kernel variable. Under a
    mixed policy it does so inside the layer's autocast scope, so the float32 kernel is read as
    bfloat16/float16 and written back rounded: every training call quantises the master weights
    to 8 (or 11) mantissa bits, and Adam updates smaller than that rounding (most of them, at a
    learning rate of 1e-4) are lost. Measured on Keras 3.15: the kernel equals its bfloat16
    rounding after one call.

    This subclass computes in a float32 policy without autocasting its inputs: the wrapper reads
    and writes the kernel in float32, while the wrapped layer still computes in the global policy
    (e.g. bfloat16 convolutions). Under `float32` it behaves exactly as Keras's wrapper.

    Args:
        layer: a layer with a `kernel` (e.g. `Conv2D`, `Dense`) or `embeddings` attribute.
        power_iterations: power-iteration steps per training call.
        **kwargs: base wrapper keyword arguments such as `name` (a `dtype` is ignored: the
            wrapper itself always works in float32).

    Example:
        >>> conv = SpectralNormalization(keras.layers.Conv2D(64, 3, padding="same"))
        >>> y = conv(keras.random.normal((2, 8, 8, 16)), training=True)

    Reference:
        Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative Adversarial
        Networks", ICLR 2018, https://arxiv.org/abs/1802.05957.
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        kwargs["dtype"] = "float32"
        kwargs["autocast"] = False
        super().__init__(layer, power_iterations=power_iterations, **kwargs)

    def call(self, inputs, training=False):
        if training:
            # Keras leaves an all-zero kernel alone (its sigma is 0) with a `cond`, which builds
            # two sub-graphs per layer and call: half of BigGAN's tracing time. An element-wise
            # select does the same job.
            new_vector_u, new_kernel = self.normalized_weights()
            all_zero = ops.all(ops.equal(self.kernel.value, 0))
            self.vector_u.assign(ops.where(all_zero, self.vector_u.value, new_vector_u))
            self.kernel.assign(ops.where(all_zero, self.kernel.value, new_kernel))
        output = self.layer(inputs)
        return ops.cast(output, inputs.dtype)


@keras.saving.register_keras_serializable(package="kerasgan")
class ConditionalBatchNormalization(keras.layers.Layer):
    """Batch normalization whose gain and bias are functions of a conditioning vector.

    The features are normalized with batch statistics (moving averages at inference), as in
    batch normalization without its own affine parameters, then scaled and shifted per example:

    `y = (1 + W_gamma c) * (x - mu) / sqrt(sigma^2 + eps) + W_beta c`

    `c` is the condition: in BigGAN the shared class embedding concatenated with this block's
    chunk of the latent vector, so both the class and the latent steer every block. `W_gamma`
    and `W_beta` are bias-free dense layers, spectrally normalized by default. The `1 +` makes
    the gain start near 1 and the bias near 0: a spectrally normalized map has gain at most
    `||c||` in total, spread over all channels, so each channel's deviation is small at
    initialisation (about `||c|| / sqrt(channels)` at most) and the layer starts as plain
    batch normalization.

    Args:
        momentum: momentum of the moving mean and variance.
        epsilon: added to the variance before the square root.
        spectral_norm: wrap the gain and bias projections in `SpectralNormalization`.
        kernel_initializer: initializer of the projections' kernels.
        kernel_regularizer: optional regularizer of the projections' kernels.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a list `(features, condition)`: channels-last features `[batch, ..., C]` and
            a condition `[batch, D]`.
        training: batch statistics (True) or moving averages (False).

    Input shape:
        `[(batch, ..., C), (batch, D)]`.

    Output shape:
        The features' shape.

    Example:
        >>> cbn = ConditionalBatchNormalization()
        >>> features = keras.random.normal((4, 8, 8, 32))
        >>> condition = keras.random.normal((4, 20))
        >>> cbn([features, condition], training=True).shape
        (4, 8, 8, 32)

    Reference:
        de Vries et al., "Modulating early visual processing by language", NeurIPS 2017
        (conditional batch normalization); Brock, Donahue & Simonyan, "Large Scale GAN Training
        for High Fidelity Natural Image Synthesis", ICLR 2019 (shared embedding, skip-z).
    """

    def __init__(
        self,
        momentum=0.99,
        epsilon=1e-5,
        spectral_norm=True,
        kernel_initializer="orthogonal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1), got momentum={momentum}")
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be > 0, got epsilon={epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.spectral_norm = bool(spectral_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _projection(self, units, name):
        dense = keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )
        return SpectralNormalization(dense, name=f"{name}_sn") if self.spectral_norm else dense

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(shape, (list, tuple)) for shape in input_shape)
        ):
            raise ValueError(
                "ConditionalBatchNormalization expects a list of two shapes (features, "
                f"condition), got {input_shape}"
            )
        features_shape, condition_shape = (tuple(shape) for shape in input_shape)
        if len(condition_shape) != 2 or condition_shape[-1] is None:
            raise ValueError(
                f"the condition must be a [batch, D] tensor with known D, got {condition_shape}"
            )
        channels = features_shape[-1]
        if channels is None:
            raise ValueError("ConditionalBatchNormalization needs a known number of channels")
        self.batch_norm = keras.layers.BatchNormalization(
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=False,
            scale=False,
            dtype=self.dtype_policy,
            name="batch_norm",
        )
        self.batch_norm.build(features_shape)
        self.gain = self._projection(channels, "gain")
        self.bias = self._projection(channels, "bias")
        self.gain.build(condition_shape)
        self.bias.build(condition_shape)
        self.built = True

    def call(self, inputs, training=False):
        features, condition = inputs
        normalized = self.batch_norm(features, training=training)
        gain = 1.0 + self.gain(condition, training=training)
        bias = self.bias(condition, training=training)
        # [batch, C] -> [batch, 1, ..., 1, C]: one gain and bias per example and channel.
        broadcast = (ops.shape(gain)[0],) + (1,) * (len(features.shape) - 2) + (-1,)
        gain = ops.cast(ops.reshape(gain, broadcast), normalized.dtype)
        bias = ops.cast(ops.reshape(bias, broadcast), normalized.dtype)
        return normalized * gain + bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            epsilon=self.epsilon,
            spectral_norm=self.spectral_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
