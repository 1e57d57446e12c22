"""BigGAN: what it takes to scale a class-conditional GAN (Brock et al., 2019).

Brock, Donahue and Simonyan, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis", ICLR 2019, https://arxiv.org/abs/1809.11096. BigGAN is less a new idea than a
careful assembly of the ideas that let GANs grow to ImageNet at 512x512: batches of 2,048,
networks twice as wide, and everything that keeps such a game stable. Each piece, as built here:

* **Spectral normalization** (Miyato et al., 2018) of every weight in *both* networks: each
  layer's kernel is divided by its largest singular value, `W_SN = W / sigma(W)`, so each
  layer is 1-Lipschitz and neither player can make its outputs explode.
* **Residual blocks.** G's block: `CBN -> ReLU -> upsample -> conv3x3 -> CBN -> ReLU -> conv3x3`
  plus a 1x1-conv shortcut; D's block: `ReLU -> conv3x3 -> ReLU -> conv3x3 -> avg-pool` plus a
  shortcut (pre-activation ResNets, as in SNGAN).
* **Self-attention** (SAGAN) at one resolution in G and in D (`kerasgan.layers.SelfAttention2D`).
* **Conditional batch normalization with a shared embedding and hierarchical latents
  ("skip-z").** z is split into chunks `z_0, z_1, ..., z_k`; `z_0` feeds the first dense
  layer, and block `i`'s normalization takes its gain and bias from `c_i = [e(y), z_i]`,
  one class embedding `e(y)` shared by every block:
  `CBN(x | c_i) = (1 + W_gamma c_i) * BN(x) + W_beta c_i`.
* **Projection discriminator** (Miyato & Koyama, 2018): instead of feeding the label as an
  input, D scores `D(x, y) = psi(phi(x)) + <E(y), phi(x)>`, where `phi` is D's pooled
  features, `psi` a linear head and `E` a (spectrally normalized) class embedding: the inner
  product asks "do these features look like *this* class?".
* **Hinge loss** (`kerasgan.losses`, name `"hinge"`):
  `L_D = E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(z, y), y))]`, `L_G = -E[D(G(z, y), y)]`.
* **Two time-scale learning rates** (Heusel et al., 2017, as in SAGAN): Adam with
  `beta_1 = 0`, `beta_2 = 0.999`, D faster than G (4e-4 and 2e-4 here).
* **Orthogonal regularization** of G (`kerasgan.losses.orthogonal_regularization`):
  `R(W) = beta * ||W^T W * (1 - I)||_F^2`, beta = 1e-4 (`orthogonal_beta`), which makes G
  robust to truncation.
* **Exponential moving average of G's weights** for sampling and export (`ema_decay`).
* **The truncation trick**: sample z from a normal *truncated* to `|z_i| <= threshold`. A
  smaller threshold trades variety for fidelity; `generate(n, labels, truncation=0.5)`.

**The training step** (`BigGAN.train_step`): the alternating updates of Brock et al.
(section 3: the hinge loss, and orthogonal regularization in 3.1), in the order of the
authors' reference code (BigGAN-PyTorch's `train_fns.GAN_training_function`), with one D
update per G update (see below). For each minibatch:

1. Take m real pairs `(x_i, y_i)` from the data.
2. Sample `z_i ~ N(0, I)` and make the fakes `G(z_i, y_i)`, fake `i` with the label of real
   pair `i`; the label reaches every block through the shared embedding, z through its chunks.
3. D's hinge loss, `(1/m) sum_i max(0, 1 - D(x_i, y_i)) + max(0, 1 + D(G(z_i, y_i), y_i))`,
   the label entering D through the projection `<E(y), phi(x)>`. No penalty on D: spectral
   normalization is its only constraint.
4. Update D (Adam, `beta_1 = 0`, the faster of the two time-scales).
5. Sample fresh `z_i` and compute G's loss through the updated D,
   `-(1/m) sum_i D(G(z_i, y_i), y_i) + sum_W beta * ||W^T W * (1 - I)||_F^2`, the sum over
   G's weight matrices but the shared embedding (`BigGAN.orthogonal_kernels`).
6. Update G (Adam, `beta_1 = 0`).
7. Move the moving average of G's weights towards G.

Why D's fakes are made outside D's tape (step 2): D's update needs no gradient through G, and
G's own update (step 5) makes its fakes again, from fresh latents, inside G's tape. Why the
orthogonal penalty is computed in step 5 rather than attached to G's layers as a kernel
regularizer: the step then shows every term of G's loss, and the penalty is read after G's
call, when spectral normalization has stored this step's normalized kernels (the values it
penalizes, see below).

Departures from the paper, and why:

* **Size.** Widths (32 channels in both networks, against 256 in the paper's CIFAR-10 model),
  batch size (64 vs 2,048 on ImageNet) and the latent (64 vs 128) are cut so the default trains
  on a 2-core CPU in minutes; the `cifar10_paper` preset restores the paper's CIFAR-10 widths.
* **One D step per G step**, with two time-scale learning rates (as SAGAN), instead of the
  paper's 2 (ImageNet) or 4 (CIFAR-10) D steps: the same balance for half the cost.
* **G learns at 2e-4 (SAGAN: 1e-4) and the shared class embedding starts as N(0, 1)** (the
  reference code: orthogonal rows of norm 1), as loud as the latent chunk it is concatenated
  with, so that the class steers G from the first steps of a short CPU run; with the paper's
  settings, short runs drew the class asked for far less often (the comparison is in
  `benchmarks/README.md`). On a machine without a GPU, `python -m kerasgan train biggan` (and
  `training.train`) go further, G at 3e-4 with D still faster at 4e-4
  (`Recipe.learning_rate_cpu`): in a run as long as the default one, G at 2e-4 drew the class
  asked for too unevenly over seeds. `compile()` and GPU runs keep 2e-4 and 4e-4.
* **Keras's spectral normalization** divides each kernel by `sigma` and *stores* the result
  after every training call (a projection), so the gradient does not flow through `sigma` as in
  Miyato et al.'s reparametrisation; orthogonal regularization therefore acts on the stored,
  normalized kernels. The wrapper runs its power iteration in float32 under mixed precision
  (`kerasgan.layers.SpectralNormalization`: Keras's own rounds the master weights to bfloat16).
* **Truncation by the inverse CDF** rather than by resampling: `z -> Phi^-1(Phi(-t) +
  Phi(z) (Phi(t) - Phi(-t)))` maps a standard normal exactly onto the normal truncated to
  `[-t, t]`, the same distribution resampling gives, but deterministically and inside the
  exported graph (no random loop), so the server and `generate` agree to the bit. It also moves
  every coordinate a little instead of redrawing some, which keeps truncated latents close to
  the ones they came from.
* **EMA from the first step, warmed up**: the decay at G step `t` is
  `min(0.999, (1 + t) / (10 + t))` (the rule of TensorFlow's `ExponentialMovingAverage`), so a
  short run's average is not dominated by the initial weights (the paper: 0.9999, starting after
  20k steps). The averaged generator uses G's batch-norm moving statistics instead of
  re-estimated "standing statistics".
* **The fakes of a step take the real batch's labels** (the paper samples labels separately;
  same distribution).
* **Cross-replica batch norm only through `kerasgan.distribution`.** With several replicas,
  `kerasgan.training.train` (through `distribution.prepare_model`) makes every batch norm of
  both networks, the conditional ones included, compute its statistics over the global batch,
  as BigGAN trains; a BigGAN built and fitted under a strategy by hand normalizes each
  replica's slice on its own unless `distribution.synchronize_batch_norm` is called on it.
* **1x1 shortcut convolutions commute with the resampling** (a pointwise convolution and a
  nearest-neighbour upsampling or average pooling commute exactly), so they run at the lower
  resolution: the same function for a quarter of the cost.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.layers.attention import SelfAttention2D
from kerasgan.layers.normalization import ConditionalBatchNormalization, SpectralNormalization
from kerasgan.models.conditional_gan import ConditionalGAN, labelled_batch
from kerasgan.models.gan import global_batch_mean, minimize, preset_config, regularization_loss

# Named configurations. "cifar10" (the default) is the paper's CIFAR-10 architecture at an
# eighth of its width, sized for a CPU; "cifar10_paper" has the paper's widths (a GPU job);
# "tiny" builds and trains a step in about a second, for tests and notebook smoke runs.
CONFIGS = {
    "cifar10": {
        "num_classes": 10,
        "latent_dim": 64,
        "shared_dim": 32,
        "generator_width": 32,
        "discriminator_width": 32,
        "attention_resolution": 16,
        "orthogonal_beta": 1e-4,
        "ema_decay": 0.999,
    },
    "cifar10_paper": {
        "num_classes": 10,
        "latent_dim": 128,
        "shared_dim": 128,
        "generator_width": 256,
        "discriminator_width": 256,
        "attention_resolution": 16,
        "orthogonal_beta": 1e-4,
        "ema_decay": 0.9999,
    },
    "tiny": {
        "num_classes": 10,
        "latent_dim": 8,
        "shared_dim": 8,
        "generator_width": 16,
        "discriminator_width": 16,
        "attention_resolution": 16,
        "orthogonal_beta": 1e-4,
        "ema_decay": 0.9,
    },
}
CONFIGS["default"] = CONFIGS["cifar10"]

# The paper's generator starts from a 4x4 map and doubles it in every block.
BASE_RESOLUTION = 4
# Batch-norm momentum 0.9 (PyTorch's 0.1, as in the BigGAN reference code): the moving
# statistics must keep up with a generator that changes every step.
BN_MOMENTUM = 0.9


def block_count(image_size):
    """Generator blocks for `image_size`: `image_size = 4 * 2**blocks`, at least one block.

    Raises:
        ConfigError: for sizes that are not 4 times a power of two (e.g. 28 or 48).
    """
    blocks = math.log2(int(image_size) / BASE_RESOLUTION) if image_size >= 8 else 0
    if blocks < 1 or blocks != int(blocks):
        raise ConfigError(
            f"image size {image_size} is not supported by BigGAN: it must be 4 times a power of "
            "two (8, 16, 32, 64, 128); MNIST digits are padded/resized to 32"
        )
    return int(blocks)


# === Building blocks ===


def _sn_conv(filters, kernel_size, name):
    return SpectralNormalization(
        layers.Conv2D(
            filters, kernel_size, padding="same", kernel_initializer="orthogonal", name=name
        ),
        name=f"{name}_sn",
    )


def _sn_dense(units, name, dtype=None):
    return SpectralNormalization(
        layers.Dense(units, kernel_initializer="orthogonal", dtype=dtype, name=name),
        name=f"{name}_sn",
    )


@keras.saving.register_keras_serializable(package="kerasgan")
class LatentChunks(keras.layers.Layer):
    """Split latent vectors into equal chunks (BigGAN's hierarchical latent, "skip-z").

    Args:
        num_chunks: how many chunks; the latent size must be divisible by it.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: latent vectors `[batch, latent_dim]`.

    Returns:
        A list of `num_chunks` tensors `[batch, latent_dim // num_chunks]`.
    """

    def __init__(self, num_chunks, **kwargs):
        super().__init__(**kwargs)
        if int(num_chunks) != num_chunks or num_chunks < 1:
            raise ValueError(f"`num_chunks` must be a positive integer, got {num_chunks}")
        self.num_chunks = int(num_chunks)

    def build(self, input_shape):
        if input_shape[-1] is None or input_shape[-1] % self.num_chunks:
            raise ValueError(
                f"a latent of size {input_shape[-1]} cannot be split into {self.num_chunks} "
                "equal chunks"
            )
        self.built = True

    def call(self, inputs):
        return ops.split(inputs, self.num_chunks, axis=-1)

    def compute_output_shape(self, input_shape):
        chunk = (input_shape[0], input_shape[-1] // self.num_chunks)
        return [chunk] * self.num_chunks

    def get_config(self):
        config = super().get_config()
        config.update(num_chunks=self.num_chunks)
        return config


@keras.saving.register_keras_serializable(package="kerasgan")
class ClassProjection(keras.layers.Layer):
    """The projection term of a projection discriminator: `<E(y), phi(x)>` per example.

    `E` is a class-embedding matrix `[num_classes, C]`, spectrally normalized like every other
    weight of D. It is stored as the kernel of a bias-free `Dense` layer applied to one-hot
    labels (the same product as an embedding lookup): `SpectralNormalization` casts a wrapped
    layer's output to its input's dtype, which for an `Embedding` fed int32 labels would turn
    the embedding into integers.

    Args:
        num_classes: number of classes.
        spectral_norm: spectrally normalize the embedding.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: a list `(features, labels)`: pooled features `[batch, C]` and int labels
            `[batch]`.
        training: whether spectral normalization runs its power iteration.

    Returns:
        `[batch, 1]` projection scores.

    Reference:
        Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018,
        https://arxiv.org/abs/1802.05637 (equation 3).
    """

    def __init__(self, num_classes, spectral_norm=True, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive integer, got {num_classes}")
        self.num_classes = int(num_classes)
        self.spectral_norm = bool(spectral_norm)

    def build(self, input_shape):
        features_shape = tuple(input_shape[0])
        embedding = layers.Dense(
            features_shape[-1],
            use_bias=False,
            kernel_initializer="orthogonal",
            dtype=self.dtype_policy,
            name="class_embedding",
        )
        self.embedding = (
            SpectralNormalization(embedding, name="class_embedding_sn")
            if self.spectral_norm
            else embedding
        )
        self.embedding.build((None, self.num_classes))
        self.built = True

    def call(self, inputs, training=False):
        features, labels = inputs
        one_hot = ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype=features.dtype)
        embedded = ops.cast(self.embedding(one_hot, training=training), features.dtype)
        return ops.sum(embedded * features, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, spectral_norm=self.spectral_norm)
        return config


def generator_block(x, condition, filters, name):
    """BigGAN's up-block: `CBN, ReLU, up x2, conv3x3, CBN, ReLU, conv3x3` + 1x1 shortcut."""

    def cbn(suffix):
        return ConditionalBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_{suffix}")

    h = cbn("cbn1")([x, condition])
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = layers.UpSampling2D(2, name=f"{name}_up")(h)
    h = _sn_conv(filters, 3, f"{name}_conv1")(h)
    h = cbn("cbn2")([h, condition])
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = _sn_conv(filters, 3, f"{name}_conv2")(h)
    # conv1x1(up(x)) == up(conv1x1(x)) for nearest-neighbour upsampling: convolve first.
    shortcut = _sn_conv(filters, 1, f"{name}_shortcut")(x)
    shortcut = layers.UpSampling2D(2, name=f"{name}_shortcut_up")(shortcut)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def discriminator_block(x, filters, downsample, preactivation, name):
    """BigGAN's down-block: `[ReLU], conv3x3, ReLU, conv3x3, [avg-pool]` + shortcut.

    The first block has no pre-activation (a ReLU would throw away half of the image's values).
    """
    h = layers.ReLU(name=f"{name}_relu0")(x) if preactivation else x
    h = _sn_conv(filters, 3, f"{name}_conv1")(h)
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = _sn_conv(filters, 3, f"{name}_conv2")(h)
    shortcut = x
    if downsample:
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
        # Average pooling and a 1x1 convolution are both linear and commute: pool first.
        shortcut = layers.AveragePooling2D(2, name=f"{name}_shortcut_pool")(shortcut)
    if downsample or x.shape[-1] != filters:
        shortcut = _sn_conv(filters, 1, f"{name}_shortcut")(shortcut)
    return layers.Add(name=f"{name}_add")([h, shortcut])


# === Generator ===


def build_generator(
    num_classes=10,
    latent_dim=64,
    image_size=32,
    channels=3,
    width=32,
    shared_dim=32,
    attention_resolution=16,
    name="generator",
):
    """The BigGAN generator: (z, y) -> dense -> 4x4 -> [up-block]* (+ attention) -> tanh.

    Args:
        num_classes: number of classes of the labels.
        latent_dim: size of z; split into `blocks + 1` equal chunks (one for the dense layer,
            one per block), so it must be divisible by that.
        image_size: output height and width: `4 * 2**blocks` (8, 16, 32, 64, ...).
        channels: output channels.
        width: channels of every block (the paper's CIFAR-10 generator is this wide at every
            resolution).
        shared_dim: size of the shared class embedding.
        attention_resolution: the feature-map size after which self-attention runs (one of the
            blocks' output sizes), or None for no attention.
        name: the model's name.

    Returns:
        A functional `keras.Model` with inputs `latent` float32 `[batch, latent_dim]` and
        `labels` int32 `[batch]`, and output `[batch, image_size, image_size, channels]` in
        `[-1, 1]` (float32 under any policy).
    """
    blocks = block_count(image_size)
    resolutions = [BASE_RESOLUTION * 2 ** (i + 1) for i in range(blocks)]
    _check_attention(attention_resolution, resolutions)
    if latent_dim % (blocks + 1):
        raise ConfigError(
            f"latent_dim {latent_dim} must be divisible by {blocks + 1} (one chunk for the dense "
            f"layer and one per block at {image_size}x{image_size})"
        )
    latent = keras.Input((latent_dim,), name="latent")
    labels = keras.Input((), dtype="int32", name="labels")
    chunks = LatentChunks(blocks + 1, name="latent_chunks")(latent)
    # One class embedding shared by every block (exempt from orthogonal regularization, see
    # `BigGAN.orthogonal_kernels`). Drawn from N(0, 1) like the latent chunk it is concatenated
    # with, so the class has as loud a voice as z from the first step (orthogonal rows of norm
    # 1 leave it a whisper in a short run).
    shared = layers.Embedding(
        num_classes,
        shared_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
        name="shared_embedding",
    )(labels)

    x = _sn_dense(BASE_RESOLUTION**2 * width, "project")(chunks[0])
    x = layers.Reshape((BASE_RESOLUTION, BASE_RESOLUTION, width), name="to_feature_map")(x)
    for index, resolution in enumerate(resolutions):
        condition = layers.Concatenate(name=f"block{index}_condition")([shared, chunks[index + 1]])
        x = generator_block(x, condition, width, f"block{index}")
        if resolution == attention_resolution:
            x = SelfAttention2D(name="attention")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-5, name="output_bn")(x)
    x = layers.ReLU(name="output_relu")(x)
    x = _sn_conv(channels, 3, "to_image")(x)
    # tanh in float32: bfloat16's 8-bit mantissa would quantise the image.
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model([latent, labels], images, name=name)


# === Discriminator ===


def build_discriminator(
    num_classes=10,
    image_size=32,
    channels=3,
    width=32,
    attention_resolution=16,
    name="discriminator",
):
    """The BigGAN projection discriminator: [down-block]* (+ attention) -> sum-pool -> logit.

    Down-blocks halve the resolution down to 8x8, then two blocks keep it (the paper's CIFAR-10
    discriminator: 32 -> 16 -> 8 -> 8 -> 8). The logit is
    `D(x, y) = psi(phi(x)) + <E(y), phi(x)>` with `phi(x)` the ReLU'd features summed over
    positions.

    Args:
        num_classes: number of classes of the labels.
        image_size: input height and width (as in `build_generator`).
        channels: input channels.
        width: channels of every block.
        attention_resolution: the feature-map size after which self-attention runs, or None.
        name: the model's name.

    Returns:
        A functional `keras.Model` with inputs `images` `[batch, H, W, C]` in `[-1, 1]` and
        `labels` int32 `[batch]`, and float32 logits `[batch, 1]`.
    """
    blocks = block_count(image_size)
    downsamples = max(blocks - 1, 1)
    resolutions = [image_size // 2 ** min(i + 1, downsamples) for i in range(downsamples + 2)]
    _check_attention(attention_resolution, resolutions)

    images = keras.Input((image_size, image_size, channels), name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    x = images
    attended = False
    for index, resolution in enumerate(resolutions):
        x = discriminator_block(
            x, width, downsample=index < downsamples, preactivation=index > 0, name=f"block{index}"
        )
        if resolution == attention_resolution and not attended:
            x = SelfAttention2D(name="attention")(x)
            attended = True
    x = layers.ReLU(name="features_relu")(x)
    # Sum pooling (as BigGAN): the average times the number of positions.
    x = layers.GlobalAveragePooling2D(name="features_pool")(x)
    features = layers.Rescaling(float(resolutions[-1] ** 2), name="features_sum")(x)
    # The head computes in float32: the logits feed the loss directly.
    unconditional = _sn_dense(1, "logit", dtype="float32")(features)
    projection = ClassProjection(num_classes, dtype="float32", name="projection")(
        [features, labels]
    )
    logits = layers.Add(dtype="float32", name="logits")([unconditional, projection])
    return keras.Model([images, labels], logits, name=name)


def _check_attention(attention_resolution, resolutions):
    if attention_resolution and attention_resolution not in resolutions:
        raise ConfigError(
            f"attention_resolution {attention_resolution} is not a feature-map size of this "
            f"network (sizes: {', '.join(map(str, sorted(set(resolutions))))}); use one of them "
            "or None"
        )


# === The truncation trick ===


def truncate_latent(latent, threshold):
    """Map standard-normal latents onto the normal truncated to `[-threshold, threshold]`.

    `z -> Phi^-1(Phi(-t) + Phi(z) * (Phi(t) - Phi(-t)))`, with `Phi` the standard normal CDF:
    if `z ~ N(0, 1)` then the result follows `N(0, 1)` conditioned on `|z| <= t`, exactly the
    distribution the paper's resampling gives. The map is monotone and deterministic (no random
    redraws), so a served model and `generate` give the same images. It is computed on the
    lower half (`Phi(-|z|)`, mirrored by the sign), where float32 keeps its precision.

    Args:
        latent: `[batch, latent_dim]` standard-normal latents.
        threshold: a positive scalar `t`; `inf` leaves the latents unchanged.

    Returns:
        float32 latents with every `|z_i| <= threshold`.
    """
    latent = tf.convert_to_tensor(latent, tf.float32)
    threshold = tf.cast(threshold, tf.float32)
    sqrt_half = tf.constant(math.sqrt(0.5), tf.float32)
    tail = 0.5 * tf.math.erfc(threshold * sqrt_half)  # Phi(-t)
    lower = 0.5 * tf.math.erfc(tf.abs(latent) * sqrt_half)  # Phi(-|z|), in (0, 0.5]
    # Phi(-t) + Phi(-|z|) * (Phi(t) - Phi(-t)), with Phi(t) = 1 - Phi(-t).
    mass = lower + tail * (1.0 - 2.0 * lower)
    magnitude = -tf.math.ndtri(mass)
    truncated = tf.clip_by_value(tf.sign(latent) * magnitude, -threshold, threshold)
    return tf.where(tf.math.is_inf(threshold), latent, truncated)


# === The model ===


@keras.saving.register_keras_serializable(package="kerasgan")
class BigGAN(ConditionalGAN):
    """A class-conditional BigGAN: its own training step (the module docstring's steps 1-7).

    `train_step` is written out here. Evaluation (`test_step`: both losses, networks in
    inference mode, no penalty, no update), sampling and serving (`generate`, `class_labels`,
    `sample_condition`, the export's label checks) are the conditional GAN's, with BigGAN's
    truncation added. BigGAN trains with the hinge loss and two time-scale optimizers,
    regularizes G's weight matrices towards orthogonality, and keeps a warmed-up moving
    average of G (what `generate`, the sample grids and the export draw from).

    Args:
        generator: a model `[latent, labels] -> images` (see `build_generator`).
        discriminator: a model `[images, labels] -> logits` (see `build_discriminator`).
        num_classes: number of classes (read from the generator's shared embedding if omitted).
        latent_dim: size of z (read from the generator if omitted).
        seed: seed of the training-time latent stream.
        ema_decay: decay of the generator's moving average (None: sample from G itself).
        orthogonal_beta: weight `beta` of the orthogonal regularization of G's
            `orthogonal_kernels` (0: off).
        **kwargs: passed to `GAN`/`keras.Model` (e.g. `name`).

    Raises:
        ConfigError: for a negative `orthogonal_beta`.

    Example:
        >>> gan = BigGAN.from_preset("cifar10", image_size=32, channels=3, seed=0)
        >>> gan.compile()                       # hinge loss, Adam 2e-4 / 4e-4, beta_1 = 0
        >>> gan.fit(pairs.batch(64), epochs=10)  # (image, label) pairs
        >>> images = gan.generate(20, labels=[3] * 10 + [5] * 10, truncation=0.5, seed=0)
    """

    def __init__(
        self,
        generator,
        discriminator,
        num_classes=None,
        latent_dim=None,
        seed=None,
        ema_decay=None,
        orthogonal_beta=1e-4,
        **kwargs,
    ):
        if num_classes is None:
            num_classes = generator.get_layer("shared_embedding").input_dim
        super().__init__(
            generator,
            discriminator,
            num_classes=num_classes,
            latent_dim=latent_dim,
            seed=seed,
            ema_decay=ema_decay,
            **kwargs,
        )
        orthogonal_beta = float(orthogonal_beta or 0.0)
        if orthogonal_beta < 0:
            raise ConfigError(f"orthogonal_beta must be >= 0, got {orthogonal_beta}")
        self.orthogonal_beta = orthogonal_beta

    @classmethod
    def from_preset(cls, preset="cifar10", image_size=32, channels=3, seed=None, **overrides):
        """Build a BigGAN from a named configuration in `CONFIGS` (with optional overrides).

        Args:
            preset: `"cifar10"` (= `"default"`), `"cifar10_paper"` or `"tiny"`.
            image_size: image height and width (4 times a power of two).
            channels: image channels.
            seed: seed of the training-time latent stream.
            **overrides: any key of the preset (`num_classes`, `latent_dim`, `shared_dim`,
                `generator_width`, `discriminator_width`, `attention_resolution`,
                `orthogonal_beta`, `ema_decay`).
        """
        config = preset_config(CONFIGS, preset, overrides, "BigGAN")
        generator = build_generator(
            num_classes=config["num_classes"],
            latent_dim=config["latent_dim"],
            image_size=image_size,
            channels=channels,
            width=config["generator_width"],
            shared_dim=config["shared_dim"],
            attention_resolution=config["attention_resolution"],
        )
        discriminator = build_discriminator(
            num_classes=config["num_classes"],
            image_size=image_size,
            channels=channels,
            width=config["discriminator_width"],
            attention_resolution=config["attention_resolution"],
        )
        return cls(
            generator,
            discriminator,
            num_classes=config["num_classes"],
            latent_dim=config["latent_dim"],
            seed=seed,
            ema_decay=config["ema_decay"],
            orthogonal_beta=config["orthogonal_beta"],
        )

    # === Training setup: hinge loss, two time-scales ===

    default_loss = "hinge"
    # Adam with `beta_1 = 0`: G at 2e-4, D twice as fast (two time-scales).
    default_adam_settings = (
        {"learning_rate": 2e-4, "beta_1": 0.0, "beta_2": 0.999},
        {"learning_rate": 4e-4, "beta_1": 0.0, "beta_2": 0.999},
    )

    @property
    def orthogonal_kernels(self):
        """G's weight matrices that orthogonal regularization acts on: every kernel (dense,
        convolutions, the conditional batch norms' projections, attention) but the shared class
        embedding, which BigGAN exempts; biases, gains and D's weights are not regularized."""
        return [
            weight
            for weight in self.generator.trainable_weights
            if len(weight.shape) >= 2 and "shared_embedding" not in weight.path
        ]

    # === The training step ===

    def train_step(self, data):
        """One step of BigGAN's training: steps 1-7 of the module docstring."""
        # 1. m real pairs (x_i, y_i).
        real, labels = labelled_batch(data)
        batch_size = ops.shape(real)[0]
        # 2. z_i ~ N(0, I) from the model's seeded stream; fake i takes the label y_i. Made
        #    outside D's tape: D's update needs no gradient through G.
        fake = self.generator([self.sample_latent(batch_size), labels], training=True)
        # 3. D's hinge loss: max(0, 1 - D(x, y)) + max(0, 1 + D(G(z, y), y)), the real and the
        #    fake batch through D apart (batch norm sees each on its own). No penalty on D.
        with tf.GradientTape() as tape:
            real_logits = self.discriminator([real, labels], training=True)
            fake_logits = self.discriminator([fake, labels], training=True)
            d_loss = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            d_total = global_batch_mean(d_loss) + regularization_loss(self.discriminator)
        # 4. Adam step on D (two time-scales: D's learning rate is twice G's).
        minimize(tape, d_total, self.d_optimizer, self.discriminator.trainable_variables)
        # 5. Fresh z, the same labels; G's hinge loss -D(G(z, y), y) through the updated D, plus
        #    beta * ||W^T W * (1 - I)||_F^2 over G's kernels, read after G's call (spectral
        #    norm has just stored this step's normalized kernels), divided by the replica
        #    count (every replica adds it; their gradients are summed).
        with tf.GradientTape() as tape:
            fake = self.generator([self.sample_latent(batch_size), labels], training=True)
            g_loss = self.adversarial_loss.generator_loss(
                self.discriminator([fake, labels], training=True)
            )
            penalties = [
                losses.orthogonal_regularization(kernel, self.orthogonal_beta)
                for kernel in self.orthogonal_kernels
            ]
            orthogonal = tf.nn.scale_regularization_loss(ops.sum(ops.stack(penalties)))
            g_total = global_batch_mean(g_loss) + orthogonal + regularization_loss(self.generator)
        # 6. Adam step on G.
        minimize(tape, g_total, self.g_optimizer, self.generator.trainable_variables)
        # 7. The moving average of G's weights, which samples and exports use.
        if self.generator_ema is not None:
            self.update_generator_ema()
        # This replica's mean hinge losses (without the penalty), and sigmoid(D) of step 3.
        logs = {"d_loss": ops.mean(d_loss), "g_loss": ops.mean(g_loss)}
        logs["d_real"] = losses.discriminator_probability(real_logits)
        logs["d_fake"] = losses.discriminator_probability(fake_logits)
        return self.update_trackers(logs)

    # === Sampling (labels as in `ConditionalGAN.class_labels`) ===

    def generate(self, n, *, seed=None, labels=None, truncation=None, batch_size=256):
        """Draw `n` class-conditional images from the (moving-average) generator.

        Args:
            n: number of images.
            seed: seed of the latent vectors (same seed, same images).
            labels: their classes: None (cycle through all classes), one int, or `n` ints.
            truncation: truncation threshold `t > 0` on `|z_i|` (e.g. 0.5: faithful and
                alike; 2: varied); None: no truncation.
            batch_size: images per forward pass.

        Returns:
            float32 NumPy array `[n, H, W, C]` in `[-1, 1]`.
        """
        latent = self.latent_batch(n, self.latent_dim, seed)
        return self.generate_from_latent(latent, batch_size, labels, truncation)

    def generate_from_latent(self, latent, batch_size=256, condition=None, truncation=None):
        """G's images for given latents, labels (`condition`, see `class_labels`) and truncation."""
        latent = np.asarray(latent, "float32")
        if truncation is not None:
            if not truncation > 0:
                raise ConfigError(f"truncation must be a positive threshold, got {truncation}")
            latent = truncate_latent(latent, truncation).numpy()
        return super().generate_from_latent(latent, batch_size, condition)

    # === Serialization ===

    def get_config(self):
        config = super().get_config()
        config.update(orthogonal_beta=self.orthogonal_beta)
        return config
