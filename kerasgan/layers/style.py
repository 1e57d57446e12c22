"""Building blocks of a style-based generator (StyleGAN, StyleGAN2) and its discriminator.

A style-based generator does not feed the latent vector `z` into the first layer. A *mapping
network* turns `z` into an intermediate latent `w`; a learned affine map turns `w` into a *style*
per synthesis layer, and every layer's convolution is scaled by its style. The layers here, in
the order an image is made:

* `MappingNetwork`: `z -> w` (an MLP with a reduced learning rate), and the running average of
  `w` that the truncation trick pulls towards.
* `BroadcastStyles`, `StyleMixing`: one `w` per synthesis layer, and the training-time swap of
  the styles after a random crossover layer (style-mixing regularisation).
* `ConstantInput`: the learned 4x4 tensor synthesis starts from.
* `ModulatedConv2D`: StyleGAN2's modulated convolution with weight demodulation; `StyleAdaIN`,
  StyleGAN1's adaptive instance normalisation, as the alternative.
* `NoiseInjection`: per-pixel noise with a learned strength (stochastic detail).
* `SynthesisLayer`, `ToRGB`: a full synthesis layer (conv, noise, bias, activation) and the
  skip output that turns features into an RGB contribution.
* `EqualizedDense`, `EqualizedConv2D`, `MinibatchStdDev`: equalised-learning-rate layers and the
  discriminator's batch-diversity feature.

References:
    Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative Adversarial
    Networks" (StyleGAN), CVPR 2019, https://arxiv.org/abs/1812.04948.
    Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2), CVPR
    2020, https://arxiv.org/abs/1912.04958; code: https://github.com/NVlabs/stylegan2-ada.
    Karras et al., "Progressive Growing of GANs" (equalised learning rate, minibatch standard
    deviation), ICLR 2018, https://arxiv.org/abs/1710.10196.
"""

import math

import keras
from keras import ops

from kerasgan.layers.normalization import channel_moments

ACTIVATIONS = (None, "linear", "leaky_relu")
LEAKY_RELU_GAIN = math.sqrt(2.0)


def activate(x, activation):
    """Apply `None`/`"linear"` (identity) or `"leaky_relu"` (slope 0.2, times sqrt(2)).

    The gain sqrt(2) (He et al., 2015) keeps the activations' second moment from halving at
    every layer; with equalised weights nothing else would restore it.
    """
    if activation in (None, "linear"):
        return x
    return ops.leaky_relu(x, negative_slope=0.2) * LEAKY_RELU_GAIN


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}, got {activation!r}")


def _check_convolution(filters, kernel_size):
    """`(filters, kernel_size)` as ints; odd kernels only, so "same" padding is symmetric."""
    if filters < 1 or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"`filters` must be >= 1 and `kernel_size` odd, got {filters} and {kernel_size}"
        )
    return int(filters), int(kernel_size)


# === Equalised learning rate ===
#
# Progressive GAN's trick, kept by StyleGAN: store weights as N(0, 1) and multiply them by the
# He constant 1/sqrt(fan_in) at *run time*. The forward pass is the same as with He
# initialisation, but an adaptive optimizer (Adam normalises each update by the gradient's
# scale) now moves every layer's effective weights at the same relative speed, whatever its
# fan-in. `lr_multiplier` slows a layer down further (0.01 in the mapping network).


def _add_equalized_kernel(layer, kernel_size, in_channels, filters):
    """Add a convolution kernel stored as N(0, 1) to `layer`; return it and its run-time gain
    `1 / sqrt(fan_in)`."""
    kernel = layer.add_weight(
        shape=(kernel_size, kernel_size, in_channels, filters),
        initializer=keras.initializers.RandomNormal(stddev=1.0),
        name="kernel",
    )
    return kernel, 1.0 / math.sqrt(in_channels * kernel_size**2)


@keras.saving.register_keras_serializable(package="kerasgan")
class EqualizedDense(keras.layers.Layer):
    """A dense layer with an equalised learning rate.

    Weights are stored as normal draws with standard deviation `1 / lr_multiplier` and used
    as `w * lr_multiplier / sqrt(fan_in)`; the bias is stored divided by `lr_multiplier` and
    used times it.

    Args:
        units: output size.
        activation: `None`, `"linear"` or `"leaky_relu"` (slope 0.2, gain sqrt(2)).
        use_bias: whether to add a bias.
        bias_initializer: the bias's initial *effective* value (a float; StyleGAN's style
            affines start at 1 so that styles begin as the identity).
        lr_multiplier: learning-rate multiplier of this layer (0.01 in the mapping network).
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(batch, ..., fan_in)`.

    Output shape:
        `(batch, ..., units)`.

    Example:
        >>> EqualizedDense(64, activation="leaky_relu", lr_multiplier=0.01)(np.ones((2, 8))).shape
        (2, 64)
    """

    def __init__(
        self, units, activation=None, use_bias=True, bias_initializer=0.0, lr_multiplier=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_activation(activation)
        if units < 1 or lr_multiplier <= 0:
            raise ValueError(
                f"`units` must be >= 1 and `lr_multiplier` > 0, got {units} and {lr_multiplier}"
            )
        self.units = int(units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.bias_initializer = float(bias_initializer)
        self.lr_multiplier = float(lr_multiplier)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier),
            name="kernel",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                initializer=keras.initializers.Constant(self.bias_initializer / self.lr_multiplier),
                name="bias",
            )
        self.weight_gain = self.lr_multiplier / math.sqrt(fan_in)

    def call(self, inputs):
        x = ops.matmul(inputs, self.kernel * self.weight_gain)
        if self.use_bias:
            x = x + self.bias * self.lr_multiplier
        return activate(x, self.activation)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            bias_initializer=self.bias_initializer,
            lr_multiplier=self.lr_multiplier,
        )
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class EqualizedConv2D(keras.layers.Layer):
    """A "same"-padded 2-D convolution with an equalised learning rate, optionally halving the
    resolution first.

    `downsample=True` average-pools 2x2 *before* the convolution: a box filter against aliasing
    (StyleGAN2 blurs with [1, 3, 3, 1] and strides) whose convolution then runs on a quarter of
    the pixels.

    Args:
        filters: output channels.
        kernel_size: odd kernel size (1 or 3 here).
        activation: `None`, `"linear"` or `"leaky_relu"`.
        use_bias: whether to add a bias.
        downsample: halve height and width before convolving.
        **kwargs: base layer keyword arguments.

    Input shape:
        `(batch, H, W, C)`.

    Output shape:
        `(batch, H, W, filters)`, or `(batch, H/2, W/2, filters)` with `downsample=True`.
    """

    def __init__(
        self, filters, kernel_size=3, activation=None, use_bias=True, downsample=False, **kwargs
    ):
        super().__init__(**kwargs)
        _check_activation(activation)
        self.filters, self.kernel_size = _check_convolution(filters, kernel_size)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.downsample = bool(downsample)

    def build(self, input_shape):
        self.kernel, self.weight_gain = _add_equalized_kernel(
            self, self.kernel_size, int(input_shape[-1]), self.filters
        )
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, inputs):
        x = inputs
        if self.downsample:
            x = ops.average_pool(x, pool_size=2, strides=2, padding="valid")
        x = ops.conv(x, self.kernel * self.weight_gain, padding="same")
        if self.use_bias:
            x = x + self.bias
        return activate(x, self.activation)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.downsample:
            height = None if height is None else height // 2
            width = None if width is None else width // 2
        return (batch, height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            activation=self.activation,
            use_bias=self.use_bias,
            downsample=self.downsample,
        )
        return config


# === From z to per-layer styles ===


def truncate(w, w_avg, psi):
    """The truncation trick: `w' = w_avg + psi * (w - w_avg)`.

    `psi = 1` leaves `w` unchanged, `psi = 0` gives the average image for every `z`, and values
    in between trade variety for typicality: styles far from the average, which the generator
    renders worst because it saw them least, are pulled in.

    Args:
        w: `(batch, w_dim)` (or any shape ending in `w_dim`).
        w_avg: `(w_dim,)`, the running average of `w`.
        psi: the truncation factor (a float or scalar tensor).
    """
    w = ops.convert_to_tensor(w)
    w_avg = ops.cast(w_avg, w.dtype)
    return w_avg + ops.cast(psi, w.dtype) * (w - w_avg)


@keras.saving.register_keras_serializable(package="kerasgan")
class MappingNetwork(keras.layers.Layer):
    """StyleGAN's mapping network `f: z -> w`, with the running average of `w`.

    `z` is first normalised to unit second moment (so only its direction matters), then passed
    through `num_layers` equalised dense layers with leaky ReLU. The learning rate of these
    layers is multiplied by `lr_multiplier` (0.01 in the paper): `w` moves slowly, which keeps
    the styles that every synthesis layer reads stable.

    Why a mapping at all: `z` must follow a fixed distribution (a Gaussian), but the factors of
    variation in the data need not be distributed like that. The learned `f` can *warp* the
    Gaussian so that `W` is less entangled than `Z`: straight lines in `W` change images more
    uniformly (StyleGAN, section 4).

    The layer also holds `w_avg`, a non-trainable running mean of `w` (updated by the model's
    training step through `update_average`), which `truncate` pulls towards.

    Args:
        w_dim: size of `w`.
        num_layers: dense layers (8 in the paper).
        lr_multiplier: learning-rate multiplier of the dense layers.
        normalize_latent: normalise `z` to unit second moment first.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: latent vectors `z`, `(batch, latent_dim)`.

    Returns:
        `w`, `(batch, w_dim)`.
    """

    def __init__(self, w_dim=512, num_layers=8, lr_multiplier=0.01, normalize_latent=True, **kwargs):
        super().__init__(**kwargs)
        if w_dim < 1 or num_layers < 1:
            raise ValueError(f"`w_dim` and `num_layers` must be >= 1, got {w_dim} and {num_layers}")
        self.w_dim = int(w_dim)
        self.num_layers = int(num_layers)
        self.lr_multiplier = float(lr_multiplier)
        self.normalize_latent = bool(normalize_latent)
        self.dense_layers = [
            EqualizedDense(
                self.w_dim, activation="leaky_relu", lr_multiplier=self.lr_multiplier,
                name=f"dense{index}",
            )
            for index in range(self.num_layers)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = (*shape[:-1], self.w_dim)
        # "mean" aggregation: under tf.distribute it is synchronised like batch-norm statistics.
        self.w_avg = self.add_weight(
            shape=(self.w_dim,), initializer="zeros", trainable=False, name="w_avg",
            aggregation="mean",
        )

    def call(self, inputs):
        x = inputs
        if self.normalize_latent:
            x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-8)
        for layer in self.dense_layers:
            x = layer(x)
        return x

    def update_average(self, w, beta):
        """`w_avg <- beta * w_avg + (1 - beta) * mean(w)` (call it from a training step)."""
        batch_mean = ops.mean(ops.cast(w, "float32"), axis=0)
        self.w_avg.assign(beta * self.w_avg + (1.0 - beta) * batch_mean)

    def truncate(self, w, psi):
        """The truncation trick towards this network's `w_avg` (see `truncate`)."""
        return truncate(w, ops.cast(self.w_avg, w.dtype), psi)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.w_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            w_dim=self.w_dim,
            num_layers=self.num_layers,
            lr_multiplier=self.lr_multiplier,
            normalize_latent=self.normalize_latent,
        )
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class BroadcastStyles(keras.layers.Layer):
    """Repeat one `w` for every synthesis layer: `(batch, w_dim) -> (batch, num_styles, w_dim)`.

    Giving each layer its own copy is what makes style mixing and per-layer editing possible:
    any of the copies can then be replaced.

    Args:
        num_styles: the number of style inputs of the synthesis network.
        **kwargs: base layer keyword arguments.
    """

    def __init__(self, num_styles, **kwargs):
        super().__init__(**kwargs)
        if num_styles < 1:
            raise ValueError(f"`num_styles` must be >= 1, got {num_styles}")
        self.num_styles = int(num_styles)

    def call(self, inputs):
        return ops.repeat(ops.expand_dims(inputs, 1), self.num_styles, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_styles, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(num_styles=self.num_styles)
        return config


def mix_styles(styles, other, crossover):
    """Take styles `[0, crossover)` from `styles` and the rest from `other`.

    Args:
        styles: `(..., num_styles, w_dim)`.
        other: same shape (or broadcastable to it).
        crossover: an int (tensor) between 0 (everything from `other`) and `num_styles`
            (everything from `styles`).
    """
    num_styles = ops.shape(styles)[-2]
    index = ops.arange(num_styles)
    keep = ops.cast(ops.less(index, ops.cast(crossover, index.dtype)), styles.dtype)
    keep = ops.expand_dims(keep, -1)
    return styles * keep + ops.cast(other, styles.dtype) * (1 - keep)


@keras.saving.register_keras_serializable(package="kerasgan")
class StyleMixing(keras.layers.Layer):
    """Style-mixing regularisation: during training, swap the styles after a random layer.

    With probability `probability` a crossover index `c` is drawn uniformly from
    `[1, num_styles)` for the batch, and every image takes styles `[c, num_styles)` from
    *another* latent. The generator can then not assume that neighbouring layers' styles are
    correlated, which localises what each layer's style controls (StyleGAN, section 3.1).

    StyleGAN maps a second, fresh `z` for the other styles. Here the other `w` is the next
    image's in the batch (`roll` by one): it is an independent draw of the same distribution,
    and this way mixing needs no second pass through the mapping network and lives inside the
    generator's graph. At inference (`training=False`) the layer is the identity.

    Args:
        probability: chance that a training batch is mixed (0.9 in StyleGAN2).
        seed: seed of the layer's random stream.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: styles `(batch, num_styles, w_dim)`.
        training: mix only when True.
    """

    def __init__(self, probability=0.9, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"`probability` must be in [0, 1], got {probability}")
        self.probability = float(probability)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.probability == 0.0:
            return inputs
        num_styles = ops.shape(inputs)[1]
        crossover = keras.random.randint((), 1, num_styles, seed=self.seed_generator)
        mixed = keras.random.uniform((), seed=self.seed_generator) < self.probability
        crossover = ops.where(mixed, crossover, num_styles)
        return mix_styles(inputs, ops.roll(inputs, 1, axis=0), crossover)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(probability=self.probability, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class UnstackStyles(keras.layers.Layer):
    """Split `(batch, num_styles, w_dim)` into a list of `num_styles` tensors `(batch, w_dim)`,
    one per synthesis layer."""

    def call(self, inputs):
        return [inputs[:, index] for index in range(inputs.shape[1])]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], input_shape[2])] * input_shape[1]


# === The synthesis network ===


@keras.saving.register_keras_serializable(package="kerasgan")
class ConstantInput(keras.layers.Layer):
    """The learned tensor the synthesis network starts from (StyleGAN replaces DCGAN's
    "project z to 4x4" by a constant: everything image-specific arrives through the styles).

    Args:
        channels: channels of the constant.
        size: its height and width (4).
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: any tensor `(batch, ...)`; only its batch size is used.

    Returns:
        `(batch, size, size, channels)`.
    """

    def __init__(self, channels, size=4, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.size = int(size)

    def build(self, input_shape):
        self.constant = self.add_weight(
            shape=(1, self.size, self.size, self.channels),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="constant",
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        return ops.repeat(self.constant, batch, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, size=self.size)
        return config


def modulated_weights(kernel, styles, demodulate=True, epsilon=1e-8):
    """Per-example convolution weights of StyleGAN2, in the paper's form (equations 1 and 3).

    `w'_{ijk} = s_i w_{ijk}` (modulation), then `w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k}
    w'_{ijk}^2 + eps)` (demodulation), for `i` input channel, `j` output channel, `k` kernel
    position. `ModulatedConv2D` computes the same convolution without materialising one kernel
    per example.

    Args:
        kernel: `(kh, kw, in_channels, out_channels)`, the shared (already gain-scaled) kernel.
        styles: `(batch, in_channels)`, one scale per input channel and example.
        demodulate: renormalise each output channel's weights.
        epsilon: added under the square root.

    Returns:
        `(batch, kh, kw, in_channels, out_channels)`.
    """
    kernel = ops.convert_to_tensor(kernel)
    styles = ops.cast(styles, kernel.dtype)
    weights = kernel[None] * styles[:, None, None, :, None]
    if demodulate:
        energy = ops.sum(ops.square(weights), axis=(1, 2, 3), keepdims=True)
        weights = weights * ops.rsqrt(energy + epsilon)
    return weights


@keras.saving.register_keras_serializable(package="kerasgan")
class ModulatedConv2D(keras.layers.Layer):
    """StyleGAN2's modulated convolution with weight demodulation.

    A learned affine map turns `w` into a style `s` (one scale per *input* channel, starting at
    1). The convolution's weights are scaled by it, then (demodulation) renormalised so that
    each output channel has unit expected variance again:

    `w'_{ijk} = s_i * w_{ijk}`,   `w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k} w'_{ijk}^2 + eps)`

    (`i` input channel, `j` output channel, `k` kernel position). Demodulation replaces
    StyleGAN1's AdaIN, which normalised the *activations* by their actual statistics; that
    instance normalisation is what caused StyleGAN1's "droplet" artefacts, as the generator
    learned to sneak signal strength past it with one bright blob. Demodulation normalises by
    the *expected* statistics instead, assuming unit-variance inputs.

    Implemented the way StyleGAN2 does when it does not fuse the batch into groups: scale the
    input channels by `s`, run one ordinary convolution with the shared kernel, and scale the
    output channels by the demodulation coefficients
    `d_j = 1 / sqrt(sum_i s_i^2 sum_k w_{ijk}^2 + eps)`. This is mathematically the same as
    convolving each example with its own `w''`, and it runs as a standard (oneDNN / cuDNN)
    convolution.

    Args:
        filters: output channels.
        kernel_size: odd kernel size.
        demodulate: apply weight demodulation (False in `ToRGB`).
        epsilon: added under the square root.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: `[x, w]`, features `(batch, H, W, C)` and the layer's `w` `(batch, w_dim)`.

    Returns:
        `(batch, H, W, filters)`.

    Example:
        >>> x, w = np.random.randn(2, 8, 8, 16), np.random.randn(2, 32)
        >>> ModulatedConv2D(24)([x, w]).shape
        (2, 8, 8, 24)
    """

    def __init__(self, filters, kernel_size=3, demodulate=True, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = _check_convolution(filters, kernel_size)
        self.demodulate = bool(demodulate)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        in_channels = int(x_shape[-1])
        # The style affine "A" of the paper; bias 1 so every style starts as the identity.
        self.affine = EqualizedDense(in_channels, bias_initializer=1.0, name="affine")
        self.affine.build(tuple(w_shape))
        self.kernel, self.weight_gain = _add_equalized_kernel(
            self, self.kernel_size, in_channels, self.filters
        )

    def call(self, inputs):
        x, w = inputs
        styles = self.affine(w)  # (batch, in_channels)
        kernel = self.kernel * self.weight_gain
        x = x * styles[:, None, None, :]
        x = ops.conv(x, kernel, padding="same")
        if self.demodulate:
            # Computed in float32: a sum of squares loses most of its digits in bfloat16.
            styles32 = ops.cast(styles, "float32")
            kernel_energy = ops.sum(ops.square(ops.cast(kernel, "float32")), axis=(0, 1))
            demod = ops.rsqrt(ops.matmul(ops.square(styles32), kernel_energy) + self.epsilon)
            x = x * ops.cast(demod, x.dtype)[:, None, None, :]
        return x

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        return (*x_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            demodulate=self.demodulate,
            epsilon=self.epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class StyleAdaIN(keras.layers.Layer):
    """StyleGAN1's adaptive instance normalisation driven by `w`.

    `AdaIN(x, w) = y_s * (x - mu(x)) / sigma(x) + y_b`,   `(y_s, y_b) = A(w)`

    Each channel is instance-normalised (per example, over height and width; the statistics
    come from `kerasgan.layers.normalization.channel_moments`, shared with the style-transfer
    `AdaIN`), then given a scale and shift computed from `w` by a learned affine map. Unlike
    style transfer's `AdaIN`, the target statistics are *predicted from w*, not measured on
    another image.

    Args:
        epsilon: added to the variance.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: `[x, w]`, `(batch, H, W, C)` and `(batch, w_dim)`.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        channels = int(x_shape[-1])
        self.scale = EqualizedDense(channels, bias_initializer=1.0, name="scale")
        self.shift = EqualizedDense(channels, name="shift")
        self.scale.build(tuple(w_shape))
        self.shift.build(tuple(w_shape))

    def call(self, inputs):
        x, w = inputs
        mean, std = channel_moments(x, self.epsilon)
        scale = self.scale(w)[:, None, None, :]
        shift = self.shift(w)[:, None, None, :]
        return scale * (x - mean) / std + shift

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class NoiseInjection(keras.layers.Layer):
    """Add per-pixel Gaussian noise, scaled by a learned strength (one scalar per layer).

    Noise gives the generator a cheap source of *stochastic* detail (the exact placement of
    hairs, freckles, background texture) so that it need not spend latent capacity on it. The
    strength starts at 0: the generator decides how much noise each layer uses.

    In training the noise is fresh for every call. At inference (`training=False`) the layer
    adds a fixed noise map stored with the weights (StyleGAN2's `noise_mode="const"`), so
    `generate()`, exports and tests are deterministic; call with `training=True` to see the
    stochastic variation that noise controls.

    Args:
        seed: seed of the layer's random stream.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` with known H and W.
        training: fresh noise when True, the fixed map otherwise.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        _, height, width, _ = input_shape
        self.strength = self.add_weight(shape=(), initializer="zeros", name="strength")
        self.fixed_noise = self.add_weight(
            shape=(1, height, width, 1),
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            trainable=False,
            name="fixed_noise",
        )

    def call(self, inputs, training=False):
        if training:
            shape = (ops.shape(inputs)[0], *self.fixed_noise.shape[1:])
            noise = keras.random.normal(shape, seed=self.seed_generator, dtype=inputs.dtype)
        else:
            noise = ops.cast(self.fixed_noise, inputs.dtype)
        return inputs + noise * ops.cast(self.strength, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed)
        return config


MODULATIONS = ("demodulate", "adain")


@keras.saving.register_keras_serializable(package="kerasgan")
class SynthesisLayer(keras.layers.Layer):
    """One layer of the synthesis network: styled convolution, noise, bias, activation.

    * `modulation="demodulate"` (StyleGAN2, Fig. 2d): `ModulatedConv2D` -> noise -> bias ->
      leaky ReLU.
    * `modulation="adain"` (StyleGAN1, Fig. 1b): plain convolution -> noise -> bias -> leaky
      ReLU -> `StyleAdaIN`.

    Args:
        filters: output channels.
        kernel_size: odd kernel size.
        upsample: double height and width (nearest neighbour) before the convolution.
        modulation: `"demodulate"` or `"adain"`.
        use_noise: add `NoiseInjection`.
        seed: seed of the noise.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: `[x, w]`, `(batch, H, W, C)` and `(batch, w_dim)`.
        training: fresh noise when True.

    Returns:
        `(batch, H', W', filters)` with `H' = 2H` when upsampling.
    """

    def __init__(
        self, filters, kernel_size=3, upsample=False, modulation="demodulate", use_noise=True,
        seed=None, **kwargs,
    ):
        super().__init__(**kwargs)
        if modulation not in MODULATIONS:
            raise ValueError(f"`modulation` must be one of {MODULATIONS}, got {modulation!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.upsample = bool(upsample)
        self.modulation = modulation
        self.use_noise = bool(use_noise)
        self.seed = seed
        if modulation == "demodulate":
            self.conv = ModulatedConv2D(self.filters, self.kernel_size, name="conv")
            self.adain = None
        else:
            self.conv = EqualizedConv2D(self.filters, self.kernel_size, use_bias=False, name="conv")
            self.adain = StyleAdaIN(name="adain")
        self.noise = NoiseInjection(seed=seed, name="noise") if self.use_noise else None

    def build(self, input_shape):
        x_shape, w_shape = (tuple(shape) for shape in input_shape)
        if self.upsample:
            x_shape = (x_shape[0], 2 * x_shape[1], 2 * x_shape[2], x_shape[3])
        if self.modulation == "demodulate":
            self.conv.build((x_shape, w_shape))
        else:
            self.conv.build(x_shape)
        out_shape = (*x_shape[:-1], self.filters)
        if self.noise is not None:
            self.noise.build(out_shape)
        if self.adain is not None:
            self.adain.build((out_shape, w_shape))
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, inputs, training=False):
        x, w = inputs
        if self.upsample:
            # Nearest-neighbour, smoothed by the 3x3 convolution that follows (as in BigGAN);
            # on this CPU it costs a tenth of a bilinear resize and its gradient.
            x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)
        x = self.conv([x, w]) if self.modulation == "demodulate" else self.conv(x)
        if self.noise is not None:
            x = self.noise(x, training=training)
        x = activate(x + self.bias, "leaky_relu")
        if self.adain is not None:
            x = self.adain([x, w])
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape[0]
        if self.upsample:
            height, width = 2 * height, 2 * width
        return (batch, height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            upsample=self.upsample,
            modulation=self.modulation,
            use_noise=self.use_noise,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class ToRGB(keras.layers.Layer):
    """Turn a block's features into an RGB (or grey) contribution: a modulated 1x1 convolution
    *without* demodulation (the output's scale is the image's, not a unit), plus a bias.

    StyleGAN2's "skip" generator sums the upsampled contributions of every resolution, so the
    low-resolution blocks draw the coarse picture and the later ones add detail.

    Args:
        channels: image channels.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: `[x, w]`, `(batch, H, W, C)` and `(batch, w_dim)`.

    Returns:
        `(batch, H, W, channels)`.
    """

    def __init__(self, channels=3, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.conv = ModulatedConv2D(self.channels, 1, demodulate=False, name="conv")

    def build(self, input_shape):
        self.conv.build(tuple(tuple(shape) for shape in input_shape))
        self.bias = self.add_weight(shape=(self.channels,), initializer="zeros", name="bias")

    def call(self, inputs):
        return self.conv(inputs) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config


# === The discriminator ===


@keras.saving.register_keras_serializable(package="kerasgan")
class MinibatchStdDev(keras.layers.Layer):
    """Append the batch's feature standard deviation as extra channels (Progressive GAN).

    The batch is split into groups of `group_size`; within each group the standard deviation
    of every feature over the group's images is averaged to one number per group (and per
    channel group), which is appended as a constant feature map. A generator that collapses to
    a few outputs produces low values here, which the discriminator can detect: a cheap
    pressure towards variety.

    If the batch size is not a multiple of `group_size`, the whole batch is one group.

    Args:
        group_size: images per group (4).
        num_channels: how many statistics to append (the features are split into this many
            channel groups).
        epsilon: added to the variance.
        **kwargs: base layer keyword arguments.

    Input shape:
        `(batch, H, W, C)` with `C` divisible by `num_channels`.

    Output shape:
        `(batch, H, W, C + num_channels)`.
    """

    def __init__(self, group_size=4, num_channels=1, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        if group_size < 1 or num_channels < 1:
            raise ValueError(
                f"`group_size` and `num_channels` must be >= 1, got {group_size}, {num_channels}"
            )
        self.group_size = int(group_size)
        self.num_channels = int(num_channels)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if input_shape[-1] % self.num_channels:
            raise ValueError(
                f"channels ({input_shape[-1]}) must be divisible by num_channels "
                f"({self.num_channels})"
            )

    def call(self, inputs):
        batch, height, width, channels = inputs.shape
        groups_of = self.num_channels
        if batch is not None:
            # A static group size keeps every shape static (XLA needs that).
            size = min(batch, self.group_size) if batch % self.group_size == 0 else batch
        else:
            batch = ops.shape(inputs)[0]
            size = ops.where(
                ops.equal(batch % self.group_size, 0), ops.minimum(batch, self.group_size), batch
            )
        x = ops.cast(inputs, "float32")
        # Example n goes to group n % (batch / size): the layout StyleGAN2 uses.
        y = ops.reshape(x, (size, -1, height, width, groups_of, channels // groups_of))
        y = y - ops.mean(y, axis=0)
        y = ops.sqrt(ops.mean(ops.square(y), axis=0) + self.epsilon)  # (M, H, W, F, c)
        y = ops.mean(y, axis=(1, 2, 4))  # (M, F)
        y = ops.reshape(y, (-1, 1, 1, groups_of))
        y = ops.tile(y, (size, height, width, 1))  # (batch, H, W, F)
        return ops.concatenate([inputs, ops.cast(y, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            group_size=self.group_size, num_channels=self.num_channels, epsilon=self.epsilon
        )
        return config
