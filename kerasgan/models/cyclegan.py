"""CycleGAN: image-to-image translation without paired examples (Zhu et al., 2017).

Zhu, Park, Isola and Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", https://arxiv.org/abs/1703.10593.

pix2pix learns A -> B from *pairs* (a sketch and its photo), but pairs are rare: nobody has the
zebra photo of every horse photo. CycleGAN needs only two piles of images, A and B. It trains two
generators, G: A -> B and F: B -> A, each against a discriminator of its target domain (D_B
judges G's output, D_A judges F's), and ties them together with a **cycle**: translating there
and back must give the original image.

The generators minimise, with `lambda = 10` (`cycle_weight`) and identity weight `0.5 * lambda`:

    L_G = L_adv(G, D_B) + L_adv(F, D_A)
          + lambda * (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)          cycle consistency
          + 0.5 * lambda * (||G(b) - b||_1 + ||F(a) - a||_1)         identity

and the discriminators the least-squares GAN loss (Mao et al., 2017), halved as in the paper so
that they learn more slowly than the generators:

    L_D_B = 0.5 * ((D_B(b) - 1)^2 + D_B(G(a))^2),   L_D_A likewise.

Without the cycle, G could map every horse to the *same* convincing zebra; the cycle forces G to
keep enough of `a` for F to rebuild it. The identity term keeps a generator from recolouring
images that are already in its target domain.

One training step (`CycleGAN.train_step`), in the order of the reference code's
`optimize_parameters`: the generators first, then the discriminators.

1. Take a batch `a` of A and a batch `b` of B (unpaired).
2. With D_A and D_B fixed, the generators' loss L_G:
   a. adversarial: `(D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2`;
   b. cycle: `lambda * (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)`;
   c. identity: `0.5 * lambda * (||G(b) - b||_1 + ||F(a) - a||_1)`.
3. Update G and F on L_G, each with its own Adam.
4. Pass the fakes G(a) and F(b) through the image pools (see below).
5. The discriminators' losses L_D_A (real `a`, pooled F(b)) and L_D_B (real `b`, pooled G(a)),
   each halved.
6. Update D_A and D_B, each with its own Adam.
7. Report the losses and the discriminators' mean scores.

What else makes it train (all from the paper and its reference code,
junyanz/pytorch-CycleGAN-and-pix2pix):

* **ResNet generators** (Johnson et al., 2016): downsample twice, residual blocks, upsample
  twice. Convolutions pad by *reflection* (`ReflectionPadding2D`), which avoids dark borders;
  normalisation is *instance* norm (`GroupNormalization(groups=-1)`: each image and channel on
  its own), which removes per-image contrast that batch statistics would mix between images.
* **PatchGAN discriminators**: fully convolutional, one score per overlapping patch (70x70 pixels
  at 256 px images), so D judges local texture and style, the part of an image a translation
  changes, and G keeps the global layout. At smaller images the discriminator has fewer strided
  layers, one fewer per halving below 128 px (34x34 patches at 64 px, 16x16 at 32 px), so that a
  patch stays a part of the image rather than all of it (`discriminator_downsamplings`).
* **An image pool** (Shrivastava et al., 2017): the discriminators see a mix of the newest fakes
  and fakes from earlier steps (`ImagePool` of 50), so they cannot chase only G's latest trick,
  which damps oscillation.
* **Learning rate**: Adam (2e-4, beta_1 0.5), constant for the first half of training, then
  linearly down to zero (`LinearDecaySchedule`; the paper: 100 + 100 epochs).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.layers import ReflectionPadding2D
from kerasgan.models.gan import (
    build_optimizers,
    default_adam,
    global_batch_mean,
    minimize,
    preset_config,
    regularization_loss,
    update_trackers,
    with_loss_scaling,
)
from kerasgan.utils import notice

DIRECTIONS = ("a2b", "b2a")

# How the kernels start: the reference code's N(0, 0.02). `benchmarks/init.py` trains the default
# preset with it and with Keras's Glorot uniform for the same time and judges the translations;
# Glorot did not score better (figures in benchmarks/README.md), so the paper's stays. Glorot is
# one preset option away: `kernel_initializer="glorot_uniform"`.
PAPER_KERNEL_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}
KERNEL_INITIALIZER = PAPER_KERNEL_INITIALIZER

# Named configurations. "default" shows a translation of the embedded digits pair within minutes
# on a CPU; "paper" is the paper's (64 filters, 9 residual blocks at 256 px, 6 below);
# "tiny" builds and trains a step in about a second, for tests and notebook smoke runs.
CONFIGS = {
    "default": {
        "generator_width": 16, "residual_blocks": 4, "discriminator_width": 32,
        "discriminator_downsamplings": None, "pool_size": 50,
        "kernel_initializer": KERNEL_INITIALIZER,
    },
    "paper": {
        "generator_width": 64, "residual_blocks": None, "discriminator_width": 64,
        "discriminator_downsamplings": None, "pool_size": 50,
        "kernel_initializer": KERNEL_INITIALIZER,
    },
    "tiny": {
        "generator_width": 4, "residual_blocks": 1, "discriminator_width": 4,
        "discriminator_downsamplings": 1, "pool_size": 4,
        "kernel_initializer": KERNEL_INITIALIZER,
    },
}


def check_image_size(image_size):
    """CycleGAN's generator halves the image twice and doubles it back: the size must be a
    multiple of 4, at least 16.

    Raises:
        ConfigError: for other sizes.
    """
    if int(image_size) != image_size or image_size < 16 or image_size % 4:
        raise ConfigError(
            f"image size {image_size} is not supported by CycleGAN: it must be a multiple of 4, "
            "at least 16 (e.g. 32, 64, 128, 256)"
        )
    return int(image_size)


def instance_norm(name):
    """Instance normalisation: Keras's `GroupNormalization` with one group per channel.

    epsilon 1e-5 as PyTorch's `InstanceNorm2d` in the reference code (Keras's default is 1e-3).
    """
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


# === Generator ===


def residual_block(x, filters, name, kernel_initializer=KERNEL_INITIALIZER):
    """`x + [reflect-pad, conv 3x3, IN, ReLU, reflect-pad, conv 3x3, IN](x)`.

    The block learns a correction to its input, so a stack of them starts near the identity:
    a good prior for translation, where most of the image should survive.
    """
    y = ReflectionPadding2D(1, name=f"{name}_pad1")(x)
    y = layers.Conv2D(
        filters, 3, use_bias=False, kernel_initializer=kernel_initializer, name=f"{name}_conv1"
    )(y)
    y = instance_norm(f"{name}_norm1")(y)
    y = layers.ReLU(name=f"{name}_relu")(y)
    y = ReflectionPadding2D(1, name=f"{name}_pad2")(y)
    y = layers.Conv2D(
        filters, 3, use_bias=False, kernel_initializer=kernel_initializer, name=f"{name}_conv2"
    )(y)
    y = instance_norm(f"{name}_norm2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def default_residual_blocks(image_size):
    """The paper's choice: 9 residual blocks for 256 px images, 6 for 128 px and below."""
    return 9 if image_size >= 256 else 6


def build_generator(
    image_size=256, channels=3, width=64, residual_blocks=None, name="generator_a2b",
    kernel_initializer=KERNEL_INITIALIZER,
):
    """The ResNet generator: c7s1-w, d2w, d4w, R4w x blocks, u2w, uw, c7s1-channels, tanh.

    Args:
        image_size: input and output height and width (a multiple of 4).
        channels: image channels (both domains have the same number).
        width: filters of the first convolution (the paper's 64); doubled at each of the two
            downsamplings.
        residual_blocks: residual blocks at 1/4 resolution (default: 9 at 256 px, else 6).
        name: the model's name.
        kernel_initializer: how every kernel starts (see `KERNEL_INITIALIZER`).

    Returns:
        A functional `keras.Model` mapping images `[batch, H, W, C]` in `[-1, 1]` (input name
        `images`) to translated images of the same shape in `[-1, 1]` (float32 under any
        policy).
    """
    image_size = check_image_size(image_size)
    blocks = default_residual_blocks(image_size) if residual_blocks is None else residual_blocks
    images = keras.Input((image_size, image_size, channels), name="images")
    x = ReflectionPadding2D(3, name="stem_pad")(images)
    x = layers.Conv2D(
        width, 7, use_bias=False, kernel_initializer=kernel_initializer, name="stem_conv"
    )(x)
    x = instance_norm("stem_norm")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for step in range(2):
        x = layers.Conv2D(
            width * 2 ** (step + 1), 3, strides=2, padding="same", use_bias=False,
            kernel_initializer=kernel_initializer, name=f"down{step}_conv",
        )(x)
        x = instance_norm(f"down{step}_norm")(x)
        x = layers.ReLU(name=f"down{step}_relu")(x)
    for block in range(blocks):
        x = residual_block(x, width * 4, f"res{block}", kernel_initializer)
    for step in range(2):
        # The reference's 3x3 stride-2 transposed convolutions. Their uneven overlap can draw
        # faint checkerboards early in training; the cycle loss irons them out.
        x = layers.Conv2DTranspose(
            width * 2 ** (1 - step), 3, strides=2, padding="same", use_bias=False,
            kernel_initializer=kernel_initializer, name=f"up{step}_conv",
        )(x)
        x = instance_norm(f"up{step}_norm")(x)
        x = layers.ReLU(name=f"up{step}_relu")(x)
    x = ReflectionPadding2D(3, name="to_image_pad")(x)
    x = layers.Conv2D(
        channels, 7, kernel_initializer=kernel_initializer, name="to_image"
    )(x)
    # tanh in float32: bfloat16's 8-bit mantissa would quantise the image.
    outputs = layers.Activation("tanh", dtype="float32", name="translated")(x)
    return keras.Model(images, outputs, name=name)


# === Discriminator ===


def patchgan_receptive_field(downsamplings):
    """The patch, in pixels, that one PatchGAN score sees: 70 for the paper's 3 strided layers.

    The discriminator is `downsamplings` 4x4 stride-2 convolutions and two 4x4 stride-1 ones;
    walking back from one output, each layer widens the field to `field * stride + (4 - stride)`.
    """
    field = 1
    for stride in [1, 1] + [2] * downsamplings:
        field = field * stride + (4 - stride)
    return field


def default_discriminator_downsamplings(image_size):
    """3 strided layers (70x70 patches) from 128 px up, one fewer per halving below, at least 1:
    34x34 patches at 64 px, 16x16 at 32 px."""
    return int(min(3, max(1, np.floor(np.log2(image_size)) - 4)))


def build_discriminator(
    image_size=256, channels=3, width=64, downsamplings=None, name="discriminator",
    kernel_initializer=KERNEL_INITIALIZER,
):
    """The PatchGAN discriminator: C64 - C128 - C256 (stride 2) - C512 (stride 1) - 1 score map.

    4x4 convolutions, LeakyReLU(0.2), instance norm on every layer but the first. Filters double
    per layer up to 8x `width`.

    Args:
        image_size: input height and width.
        channels: input channels.
        width: filters of the first layer (the paper's 64).
        downsamplings: strided layers (default: `default_discriminator_downsamplings`); the
            score map's patches are `patchgan_receptive_field(downsamplings)` pixels wide.
        name: the model's name.
        kernel_initializer: how every kernel starts (see `KERNEL_INITIALIZER`).

    Returns:
        A functional `keras.Model` mapping images `[batch, H, W, C]` to float32 scores
        `[batch, H / 2^downsamplings, W / 2^downsamplings, 1]`, one per patch.
    """
    if downsamplings is None:
        downsamplings = default_discriminator_downsamplings(image_size)
    if not 1 <= downsamplings <= 6:
        raise ConfigError(f"discriminator downsamplings must be 1 to 6, got {downsamplings}")
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for step in range(downsamplings + 1):
        last = step == downsamplings  # the stride-1 layer before the score map
        x = layers.Conv2D(
            width * min(2**step, 8), 4, strides=1 if last else 2, padding="same",
            use_bias=step == 0, kernel_initializer=kernel_initializer, name=f"conv{step}",
        )(x)
        if step > 0:  # no normalisation on the input layer, as in DCGAN
            x = instance_norm(f"norm{step}")(x)
        x = layers.LeakyReLU(0.2, name=f"lrelu{step}")(x)
    scores = layers.Conv2D(
        1, 4, padding="same", dtype="float32", kernel_initializer=kernel_initializer,
        name="patch_scores",
    )(x)
    return keras.Model(images, scores, name=name)


# === Image pool ===


def replica_local_variable(shape, name, dtype="float32"):
    """A non-trainable zero-initialised variable that each replica updates on its own.

    Under `tf.distribute`, each replica keeps its own copy (`on_read` synchronisation), so a
    replica can write what its own batch computed without a cross-replica merge; reading it
    outside the replicas (checkpoints, `numpy()`) gives the first replica's copy. Without a
    strategy it is a plain variable.
    """
    return keras.Variable(
        initializer=np.zeros(shape, dtype), trainable=False, name=name, dtype=dtype,
        synchronization="on_read", aggregation="only_first_replica",
    )


@keras.saving.register_keras_serializable(package="kerasgan")
class ImagePool(keras.layers.Layer):
    """A history of generated images for the discriminator (Shrivastava et al., 2017).

    Until the pool is full, every image goes in and comes out unchanged. After that, each image
    is, with probability 1/2, swapped with a random stored image (the stored one is returned and
    the new one takes its place), and otherwise returned unchanged. The discriminator thus sees
    fakes from the last few hundred steps, not only the newest.

    The pool lives in non-trainable variables, so it works inside a traced `train_step`, is
    saved by checkpoints (a resumed run keeps its history) and by `.keras` files. Within one
    batch, swapped images draw distinct slots among those filled before the batch (a batch
    larger than the pool can draw a slot twice; one of the images then stays), so the images of
    a first batch larger than the pool that do not fit come back unchanged.

    Args:
        pool_size: images kept (the paper's 50); 0 disables the pool.
        seed: seed of the pool's random draws.
        **kwargs: base layer arguments (`name`, `dtype`).

    Call arguments:
        images: generated images `[batch, H, W, C]`.

    Returns:
        A batch of the same shape, mixing `images` and earlier ones.

    Example:
        >>> pool = ImagePool(50)
        >>> d_input = pool(fake_images)    # inside train_step, before the discriminator
    """

    def __init__(self, pool_size=50, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(pool_size) != pool_size or pool_size < 0:
            raise ConfigError(f"pool_size must be a whole number >= 0, got {pool_size}")
        self.pool_size = int(pool_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.images = replica_local_variable((max(self.pool_size, 1), *input_shape[1:]), "images")
        self.count = replica_local_variable((), "count", dtype="int32")

    def call(self, images):
        if self.pool_size == 0:
            return images
        images = ops.cast(images, self.images.dtype)
        batch = tf.shape(images)[0]
        count = ops.convert_to_tensor(self.count)
        stored = ops.convert_to_tensor(self.images)
        # While the pool fills, image i goes to the next free slot and comes back unchanged.
        position = count + tf.range(batch)
        filling = position < self.pool_size
        # Once full: swap with probability 1/2, with a slot filled *before* this batch (none
        # when the pool was empty), drawn without replacement (filled slots in random order
        # first, then the rest).
        swap = tf.logical_and(
            tf.logical_and(tf.logical_not(filling), count > 0),
            keras.random.uniform((batch,), seed=self.seed_generator) < 0.5,
        )
        keys = keras.random.uniform((self.pool_size,), seed=self.seed_generator)
        keys += tf.cast(tf.range(self.pool_size) >= count, keys.dtype) * 2.0
        order = tf.argsort(keys)
        slot = tf.gather(order, tf.range(batch) % tf.maximum(count, 1))
        index = tf.where(filling, position, slot)
        outputs = tf.where(swap[:, None, None, None], tf.gather(stored, index), images)
        written = tf.logical_or(filling, swap)
        self.images.assign(
            tf.tensor_scatter_nd_update(
                stored, tf.boolean_mask(index, written)[:, None], tf.boolean_mask(images, written)
            )
        )
        self.count.assign(tf.minimum(count + batch, self.pool_size))
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, seed=self.seed)
        return config


# === Learning-rate schedule ===


@keras.saving.register_keras_serializable(package="kerasgan")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate, then a straight line down to zero (CycleGAN, pix2pix).

    `lr(step) = initial` for `step < constant_steps`, then
    `initial * (1 - (step - constant_steps) / decay_steps)`, reaching 0 at
    `constant_steps + decay_steps` and staying there.

    Args:
        initial_learning_rate: the constant rate (the paper's 2e-4).
        constant_steps: optimizer steps at the constant rate.
        decay_steps: steps of the linear decay, at least 1; None keeps the rate constant
            throughout.

    Example:
        >>> schedule = LinearDecaySchedule(2e-4, constant_steps=1000, decay_steps=1000)
        >>> float(schedule(1500))      # half-way down
        1e-04
        >>> optimizer = keras.optimizers.Adam(schedule, beta_1=0.5)
    """

    def __init__(self, initial_learning_rate, constant_steps=0, decay_steps=None):
        if not initial_learning_rate > 0:
            raise ConfigError(f"initial_learning_rate must be > 0, got {initial_learning_rate}")
        if int(constant_steps) != constant_steps or constant_steps < 0:
            raise ConfigError(f"constant_steps must be a whole number >= 0, got {constant_steps}")
        if decay_steps is not None and (int(decay_steps) != decay_steps or decay_steps < 1):
            raise ConfigError(f"decay_steps must be a whole number >= 1 or None, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = int(constant_steps)
        self.decay_steps = None if decay_steps is None else int(decay_steps)

    def __call__(self, step):
        initial = ops.convert_to_tensor(self.initial_learning_rate, "float32")
        if self.decay_steps is None:
            return initial
        progress = (ops.cast(step, "float32") - self.constant_steps) / self.decay_steps
        return initial * (1.0 - ops.clip(progress, 0.0, 1.0))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
        }


# === The model ===


def run_stacked(network, batches, training):
    """Run `network` once on several batches stacked together; return one output per batch.

    Every network here normalises each image on its own (instance norm, no batch statistics),
    so this gives exactly what separate calls give, with fewer operations to trace and larger
    batches to compute (faster on a CPU).
    """
    outputs = network(ops.concatenate(batches, axis=0), training=training)
    sizes = [tf.shape(batch)[0] for batch in batches]
    return tf.split(outputs, sizes, axis=0) if len(batches) > 1 else [outputs]


def unpaired_batch(data):
    """`(a, b)` from a dataset element: a batch of each domain, paired by nothing but chance.

    Raises:
        ConfigError: for anything else (e.g. a dataset of single images).
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ConfigError("CycleGAN trains on (a, b) pairs of image batches")
    return data[0], data[1]


@keras.saving.register_keras_serializable(package="kerasgan")
class CycleGAN(keras.Model):
    """Two generators and two discriminators trained on unpaired batches `(a, b)` with `fit`.

    A `keras.Model` of its own, with the paper's four networks (`generator_a2b` is G: A -> B,
    `generator_b2a` is F: B -> A, `discriminator_a` is D_A, `discriminator_b` is D_B) and one
    optimizer for each (`g_optimizer`, `f_optimizer`, `d_a_optimizer`, `d_b_optimizer`, given
    to `compile`). `train_step` is the module docstring's algorithm, written out.

    A CycleGAN has no latent vector and draws no samples: it translates images (`translate`,
    `__call__` for A -> B). The sample grids written during training (`preview`) show fixed
    pairs as A -> B -> A and B -> A -> B strips, six columns per row: `a, G(a), F(G(a)), b,
    F(b), G(F(b))`. The pairs are the first `preview_count` of the first training batches,
    kept in variables (a resumed run shows the same ones), or set with `set_preview_images`.

    The learning rate follows each `fit` call: with `decay_start=0.5`, `fit(data, epochs=200)`
    keeps it constant for 100 epochs, then decays it linearly to zero at epoch 200 (every
    optimizer's `LinearDecaySchedule` is set to span the run). `epochs` is the *final* epoch,
    as in Keras; continue a run with `fit(data, initial_epoch=k, epochs=n)`.

    Args:
        generator_a2b: G, from `build_generator` (input `images`).
        generator_b2a: F, same architecture.
        discriminator_a: D_A, judges images of A (real ones and F's).
        discriminator_b: D_B, judges images of B (real ones and G's).
        cycle_weight: lambda, the weight of the cycle-consistency loss (the paper's 10).
        identity_weight: the identity loss's weight *relative to* lambda (the paper's 0.5,
            i.e. 5); 0 skips it and its two generator passes.
        pool_size: generated images kept per domain by the `ImagePool`s (0: no pool).
        learning_rate: Adam's initial learning rate for all four networks.
        decay_start: the fraction of each `fit` run at a constant learning rate before the
            linear decay (None: constant throughout).
        preview_count: pairs shown in the sample grids.
        seed: seed of the image pools' draws.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        images: `[batch, H, W, C]` images of A in `[-1, 1]`. Returns G's translations.

    Example:
        >>> gan = CycleGAN.from_preset("default", image_size=32, channels=1, seed=0)
        >>> gan.compile()                               # least-squares loss, Adam 2e-4
        >>> pairs = kerasgan.datasets.load_unpaired("digits")
        >>> gan.fit(kerasgan.datasets.training_pipeline(pairs, 8), epochs=10)
        >>> gan.translate(a_images, "a2b")              # float32 in [-1, 1]
    """

    tracked_metrics = ("g_loss", "d_loss", "cycle", "identity", "d_real", "d_fake")
    # Each network, by its attribute, and the attribute of the optimizer that updates it.
    optimizer_of = {
        "generator_a2b": "g_optimizer", "generator_b2a": "f_optimizer",
        "discriminator_a": "d_a_optimizer", "discriminator_b": "d_b_optimizer",
    }
    # Sample grids (`callbacks.SampleGrid`) lay the preview out in rows of this many images.
    preview_columns = 6

    def __init__(
        self, generator_a2b, generator_b2a, discriminator_a, discriminator_b, cycle_weight=10.0,
        identity_weight=0.5, pool_size=50, learning_rate=2e-4, decay_start=0.5,
        preview_count=8, seed=None, **kwargs,
    ):
        super().__init__(**kwargs)
        if not cycle_weight >= 0 or not identity_weight >= 0:
            raise ConfigError(
                f"cycle_weight and identity_weight must be >= 0, got {cycle_weight}, "
                f"{identity_weight}"
            )
        if decay_start is not None and not 0.0 <= decay_start <= 1.0:
            raise ConfigError(f"decay_start must be between 0 and 1 (or None), got {decay_start}")
        if int(preview_count) != preview_count or preview_count < 1:
            raise ConfigError(f"preview_count must be a whole number >= 1, got {preview_count}")
        shape = tuple(generator_a2b.inputs[0].shape[1:])
        for network in (generator_b2a, discriminator_a, discriminator_b):
            if tuple(network.inputs[0].shape[1:]) != shape:
                raise ConfigError(
                    f"all four CycleGAN networks must take {shape} images; {network.name} "
                    f"takes {tuple(network.inputs[0].shape[1:])}"
                )
        self.generator_a2b = generator_a2b
        self.generator_b2a = generator_b2a
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.image_size, self.channels = int(shape[0]), int(shape[-1])
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.learning_rate = float(learning_rate)
        self.decay_start = decay_start
        self.preview_count = int(preview_count)
        self.seed = seed
        pool_seeds = (None, None) if seed is None else (seed, seed + 1)
        self.pool_a = ImagePool(pool_size, seed=pool_seeds[0], dtype="float32", name="pool_a")
        self.pool_b = ImagePool(pool_size, seed=pool_seeds[1], dtype="float32", name="pool_b")
        for pool in (self.pool_a, self.pool_b):
            pool.build((None, *shape))
        # The fixed preview pairs and how many are filled (checkpointed with the model).
        preview_shape = (self.preview_count, *shape)
        self.preview_a = replica_local_variable(preview_shape, "preview_a")
        self.preview_b = replica_local_variable(preview_shape, "preview_b")
        self.preview_filled = replica_local_variable((), "preview_filled", dtype="int32")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.tracked_metrics}
        # Set by `compile`.
        self.adversarial_loss = None
        self.g_optimizer = self.f_optimizer = self.d_a_optimizer = self.d_b_optimizer = None
        # The four networks arrive built, and so is the model (saving would otherwise warn).
        self.built = True

    @classmethod
    def from_preset(cls, preset="default", image_size=32, channels=1, seed=None, **overrides):
        """Build a CycleGAN from a named configuration in `CONFIGS` (with overrides).

        Args:
            preset: `"default"` (the CPU digits lesson), `"paper"` or `"tiny"`.
            image_size: image height and width, a multiple of 4 (32 for the digits pair, 256
                for the tensorflow-datasets pairs).
            channels: image channels of both domains.
            seed: seed of the image pools.
            **overrides: any key of `CONFIGS[preset]`, or the model's `cycle_weight`,
                `identity_weight`, `learning_rate`, `decay_start`, `preview_count`.
        """
        model_options = (
            "cycle_weight", "identity_weight", "learning_rate", "decay_start", "preview_count",
        )
        config = preset_config(CONFIGS, preset, overrides, "CycleGAN", model_options)
        if preset == "tiny":
            config.setdefault("preview_count", 2)

        def generator(name):
            return build_generator(
                image_size, channels, config["generator_width"], config["residual_blocks"], name,
                config["kernel_initializer"],
            )

        def discriminator(name):
            return build_discriminator(
                image_size, channels, config["discriminator_width"],
                config["discriminator_downsamplings"], name, config["kernel_initializer"],
            )

        return cls(
            generator("generator_a2b"), generator("generator_b2a"),
            discriminator("discriminator_a"), discriminator("discriminator_b"),
            pool_size=config["pool_size"], seed=seed,
            **{key: config[key] for key in model_options if key in config},
        )

    def generator_for(self, direction):
        """The generator of `direction`, `"a2b"` (G) or `"b2a"` (F)."""
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
        return self.generator_a2b if direction == "a2b" else self.generator_b2a

    # === Setting up training ===

    def compile(
        self, g_optimizer=None, f_optimizer=None, d_a_optimizer=None, d_b_optimizer=None,
        loss="least_squares", **kwargs,
    ):
        """Configure the model for training: one optimizer per network, and the adversarial loss.

        The reference code shares one Adam between both generators and one between both
        discriminators; Adam keeps its moments per weight, so one optimizer per network, each
        stepping once per training step, makes the same updates.

        Args:
            g_optimizer: G's optimizer (default: `default_optimizer()`).
            f_optimizer: F's optimizer (default: `default_optimizer()`).
            d_a_optimizer: D_A's optimizer (default: `default_optimizer()`).
            d_b_optimizer: D_B's optimizer (default: `default_optimizer()`).
            loss: an adversarial loss name from `kerasgan.losses.ADVERSARIAL_LOSSES` or an
                `AdversarialLoss` (default: the paper's least squares).
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`, `run_eagerly`).

        Raises:
            ConfigError: one optimizer object given for two networks (its slots would belong
                to the first network's weights only).
        """
        given = {
            "g_optimizer": g_optimizer, "f_optimizer": f_optimizer,
            "d_a_optimizer": d_a_optimizer, "d_b_optimizer": d_b_optimizer,
        }
        seen = {}
        for name, optimizer in given.items():
            if optimizer is not None and id(optimizer) in seen:
                raise ConfigError(
                    f"{seen[id(optimizer)]} and {name} are the same optimizer; give each "
                    "network its own (an optimizer's slots belong to one network's weights)"
                )
            seen[id(optimizer)] = name
        # Keras's own `optimizer` would be unused: the four live on the model.
        super().compile(optimizer=None, **kwargs)
        for name, optimizer in given.items():
            setattr(self, name, with_loss_scaling(optimizer or self.default_optimizer()))
        self.adversarial_loss = losses.get_adversarial_loss(loss)
        # Slots created lazily during the first trace would make TensorFlow trace the step a
        # second time, and a model saved before training would store optimizers without them.
        self.build_optimizers()

    def default_optimizer(self):
        """The paper's Adam (`learning_rate`, beta_1 0.5) on a `LinearDecaySchedule` of its own,
        which `fit` sets to span each run."""
        return default_adam(LinearDecaySchedule(self.learning_rate))

    def optimizers_and_networks(self):
        """`(optimizer, network)` for the four networks (optimizers are None before `compile`)."""
        return [
            (getattr(self, optimizer), getattr(self, network))
            for network, optimizer in self.optimizer_of.items()
        ]

    def build_optimizers(self):
        """Create every optimizer's slots for its network's weights, in the distribution scope
        (`kerasgan.models.gan.build_optimizers`); needed before restoring a checkpoint."""
        build_optimizers(self, [
            (optimizer, network.trainable_variables)
            for optimizer, network in self.optimizers_and_networks()
        ])

    @property
    def metrics(self):
        # What `fit` and `evaluate` reset at each epoch: the step's own running means.
        return list(self.trackers.values())

    def update_trackers(self, logs):
        """Add one step's values to the running means; return all the means (the step's logs)."""
        return update_trackers(self.trackers, logs)

    def decay_schedules(self):
        """`(optimizer, schedule)` for each optimizer run by a `LinearDecaySchedule` (the
        defaults are; optimizers given to `compile` with other rates are left alone)."""
        found = []
        for optimizer, _ in self.optimizers_and_networks():
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
            # The schedule object itself; `learning_rate` would give its current value.
            if isinstance(inner._learning_rate, LinearDecaySchedule):
                found.append((inner, inner._learning_rate))
        return found

    def schedule_learning_rate(self, total_steps):
        """Make every optimizer's `LinearDecaySchedule` span `total_steps` steps: constant for
        `decay_start * total_steps`, then linear to zero. Returns True if anything changed."""
        if self.decay_start is None or total_steps < 1:
            return False
        constant = int(round(self.decay_start * total_steps))
        decay = max(total_steps - constant, 1)
        changed = False
        for optimizer, schedule in self.decay_schedules():
            if (schedule.constant_steps, schedule.decay_steps) != (constant, decay):
                optimizer.learning_rate = LinearDecaySchedule(
                    schedule.initial_learning_rate, constant, decay
                )
                changed = True
        return changed

    def fit(self, x=None, *args, shuffle=False, **kwargs):
        """`keras.Model.fit`, after building the optimizers and setting the learning-rate
        schedules to span this run (see the class docstring).

        The run's length is `epochs * steps_per_epoch`, the latter from `steps_per_epoch` or the
        dataset's cardinality. `shuffle` is False by default: the pairs arrive as a `tf.data`
        pipeline that `kerasgan.datasets` already shuffles (Keras would warn that it ignores
        `shuffle=True` on every call).
        """
        self.build_optimizers()
        steps = kwargs.get("steps_per_epoch")
        if steps is None and isinstance(x, tf.data.Dataset) and int(x.cardinality()) > 0:
            steps = int(x.cardinality())
        if steps and self.g_optimizer is not None and self.decay_start is not None:
            total = int(kwargs.get("epochs", 1)) * int(steps)
            if self.schedule_learning_rate(total):
                # The schedule is read when the training step is traced: trace it again.
                self.train_function = None
            done = int(self.g_optimizer.iterations.numpy())
            if self.decay_schedules() and done >= total:
                notice(
                    f"the learning rate has already decayed to zero ({done} steps done, the "
                    f"schedule spans {total}); to continue a run, pass the final epoch: "
                    "fit(..., initial_epoch=done, epochs=done + more)"
                )
        return super().fit(x, *args, shuffle=shuffle, **kwargs)

    # === The training step ===

    def train_step(self, data):
        G, F = self.generator_a2b, self.generator_b2a  # noqa: N806 (the paper's names)
        D_A, D_B = self.discriminator_a, self.discriminator_b  # noqa: N806

        # 1. A batch of each domain; the first ones are kept as the sample grids' pairs.
        real_a, real_b = unpaired_batch(data)
        self.keep_preview_pairs(real_a, real_b)

        # 2. The generators' loss, with D_A and D_B held fixed. Persistent: it is differentiated
        #    once for G's optimizer and once for F's.
        identity = self.identity_weight > 0
        with tf.GradientTape(persistent=True) as tape:
            # G(a) and G(b), F(b) and F(a): translation and identity in one call per generator.
            fake_b, *same_b = run_stacked(G, [real_a, real_b] if identity else [real_a], True)
            fake_a, *same_a = run_stacked(F, [real_b, real_a] if identity else [real_b], True)
            # 2a. Adversarial: D_B should take G(a) for real, and D_A F(b).
            adversarial = self.adversarial_loss.generator_loss(
                D_B(fake_b, training=True)
            ) + self.adversarial_loss.generator_loss(D_A(fake_a, training=True))
            # 2b. Cycle: there and back again gives the original, F(G(a)) = a, G(F(b)) = b.
            cycle = losses.cycle_consistency_loss(
                real_a, F(fake_b, training=True)
            ) + losses.cycle_consistency_loss(real_b, G(fake_a, training=True))
            g_per_example = adversarial + self.cycle_weight * cycle
            # 2c. Identity: an image already in the target domain passes unchanged.
            identity_terms = ops.zeros_like(cycle)
            if identity:
                identity_terms = losses.identity_loss(real_b, same_b[0]) + losses.identity_loss(
                    real_a, same_a[0]
                )
                g_per_example += self.identity_weight * self.cycle_weight * identity_terms
            g_loss = global_batch_mean(g_per_example) + regularization_loss(G) + regularization_loss(F)

        # 3. Update G and F, each with its own optimizer.
        minimize(tape, g_loss, self.g_optimizer, G.trainable_variables)
        minimize(tape, g_loss, self.f_optimizer, F.trainable_variables)

        # 4. The discriminators see the new fakes mixed with older ones from the pools. The
        #    fakes were made on the generators' tape: D's tape below cannot reach G or F.
        fake_a, fake_b = self.pool_a(fake_a), self.pool_b(fake_b)

        # 5. The discriminators' least-squares losses on real and pooled fake images, halved.
        with tf.GradientTape(persistent=True) as tape:
            real_scores_a, fake_scores_a = run_stacked(D_A, [real_a, fake_a], True)
            real_scores_b, fake_scores_b = run_stacked(D_B, [real_b, fake_b], True)
            d_a_per_example = 0.5 * self.adversarial_loss.discriminator_loss(
                real_scores_a, fake_scores_a
            )
            d_b_per_example = 0.5 * self.adversarial_loss.discriminator_loss(
                real_scores_b, fake_scores_b
            )
            d_a_loss = global_batch_mean(d_a_per_example) + regularization_loss(D_A)
            d_b_loss = global_batch_mean(d_b_per_example) + regularization_loss(D_B)

        # 6. Update D_A and D_B, each with its own optimizer.
        minimize(tape, d_a_loss, self.d_a_optimizer, D_A.trainable_variables)
        minimize(tape, d_b_loss, self.d_b_optimizer, D_B.trainable_variables)

        # 7. Per-replica means for the progress bar. Least squares pulls D's raw scores towards
        #    1 (real) and 0 (fake); both near 0.5 means D cannot tell.
        return self.update_trackers({
            "g_loss": ops.mean(adversarial),
            "cycle": ops.mean(cycle),
            "identity": ops.mean(identity_terms),
            "d_loss": ops.mean(d_a_per_example + d_b_per_example),
            "d_real": 0.5 * (ops.mean(real_scores_a) + ops.mean(real_scores_b)),
            "d_fake": 0.5 * (ops.mean(fake_scores_a) + ops.mean(fake_scores_b)),
        })

    def test_step(self, data):
        """Every term of both objectives on a held-out batch: all four networks in inference
        mode, no pool, no update, so no variable changes."""
        G, F = self.generator_a2b, self.generator_b2a  # noqa: N806 (the paper's names)
        D_A, D_B = self.discriminator_a, self.discriminator_b  # noqa: N806
        real_a, real_b = unpaired_batch(data)
        fake_b, fake_a = G(real_a, training=False), F(real_b, training=False)
        identity = tf.zeros(tf.shape(real_a)[:1])
        if self.identity_weight > 0:
            identity = losses.identity_loss(real_b, G(real_b, training=False)) + (
                losses.identity_loss(real_a, F(real_a, training=False))
            )
        real_scores_a, fake_scores_a = D_A(real_a, training=False), D_A(fake_a, training=False)
        real_scores_b, fake_scores_b = D_B(real_b, training=False), D_B(fake_b, training=False)
        adversarial = self.adversarial_loss
        return self.update_trackers({
            "g_loss": ops.mean(
                adversarial.generator_loss(fake_scores_b) + adversarial.generator_loss(fake_scores_a)
            ),
            "cycle": ops.mean(
                losses.cycle_consistency_loss(real_a, F(fake_b, training=False))
                + losses.cycle_consistency_loss(real_b, G(fake_a, training=False))
            ),
            "identity": ops.mean(identity),
            "d_loss": ops.mean(0.5 * (
                adversarial.discriminator_loss(real_scores_a, fake_scores_a)
                + adversarial.discriminator_loss(real_scores_b, fake_scores_b)
            )),
            "d_real": 0.5 * (ops.mean(real_scores_a) + ops.mean(real_scores_b)),
            "d_fake": 0.5 * (ops.mean(fake_scores_a) + ops.mean(fake_scores_b)),
        })

    # === Translating ===

    def call(self, images, training=False):
        return self.generator_a2b(images, training=training)

    def translate(self, images, direction="a2b", batch_size=64):
        """Translate images of A to B (`"a2b"`, G) or of B to A (`"b2a"`, F).

        Args:
            images: `[n, H, W, C]` float images in `[-1, 1]` at the model's size.
            direction: `"a2b"` or `"b2a"`.
            batch_size: images per forward pass.

        Returns:
            float32 NumPy array `[n, H, W, C]` in `[-1, 1]`.
        """
        generator = self.generator_for(direction)
        images = np.asarray(images, "float32")
        expected = (self.image_size, self.image_size, self.channels)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ConfigError(
                f"translate takes images of shape [n, {', '.join(map(str, expected))}], got "
                f"{images.shape}"
            )
        outputs = [
            ops.convert_to_numpy(generator(images[start : start + batch_size], training=False))
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(outputs).astype("float32") if outputs else images.copy()

    # --- the sample grids ---

    def keep_preview_pairs(self, real_a, real_b):
        """Fill the fixed preview pairs from the first training batches (inside `train_step`).

        Written without `tf.cond`: once the pairs are full it stores zero images.
        """
        filled = ops.convert_to_tensor(self.preview_filled)
        count = tf.clip_by_value(self.preview_count - filled, 0, tf.shape(real_a)[0])
        slots = (filled + tf.range(count))[:, None]
        for variable, images in ((self.preview_a, real_a), (self.preview_b, real_b)):
            variable.assign(tf.tensor_scatter_nd_update(
                ops.convert_to_tensor(variable), slots, tf.cast(images[:count], "float32")
            ))
        self.preview_filled.assign(filled + count)

    def set_preview_images(self, a, b):
        """Use these pairs (float images in `[-1, 1]`, at least `preview_count` of each) in the
        sample grids instead of the first training batches."""
        a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
        shape = (self.image_size, self.image_size, self.channels)
        if a.shape[1:] != shape or b.shape[1:] != shape or min(len(a), len(b)) < self.preview_count:
            raise ConfigError(
                f"set_preview_images needs {self.preview_count} images of shape {shape} per "
                f"domain, got {a.shape} and {b.shape}"
            )
        self.preview_a.assign(a[: self.preview_count])
        self.preview_b.assign(b[: self.preview_count])
        self.preview_filled.assign(self.preview_count)

    def preview(self, latent=None, condition=None):
        """The images of a sample grid: per preview pair, `a, G(a), F(G(a)), b, F(b), G(F(b))`.

        The latents the sample-grid machinery passes are ignored (a CycleGAN has none).

        Returns:
            float32 `[6 * pairs, H, W, C]` in `[-1, 1]`, to lay out in rows of
            `preview_columns`.
        """
        filled = int(self.preview_filled.numpy())
        if filled == 0:
            raise ConfigError(
                "no preview pairs yet: train at least one step or call set_preview_images(a, b)"
            )
        a = np.asarray(self.preview_a.numpy()[:filled])
        b = np.asarray(self.preview_b.numpy()[:filled])
        fake_b = self.translate(a, "a2b")
        fake_a = self.translate(b, "b2a")
        strips = [
            a, fake_b, self.translate(fake_b, "b2a"), b, fake_a, self.translate(fake_a, "a2b")
        ]
        return np.stack(strips, axis=1).reshape(-1, *a.shape[1:])

    # === Serialization ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {network: keras.saving.serialize_keras_object(getattr(self, network))
             for network in self.optimizer_of},
            cycle_weight=self.cycle_weight,
            identity_weight=self.identity_weight,
            pool_size=self.pool_a.pool_size,
            learning_rate=self.learning_rate,
            decay_start=self.decay_start,
            preview_count=self.preview_count,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for network in cls.optimizer_of:
            config[network] = keras.saving.deserialize_keras_object(config[network])
        return cls(**config)

    def get_compile_config(self):
        if self.adversarial_loss is None:
            return None
        config = {
            optimizer: keras.saving.serialize_keras_object(getattr(self, optimizer))
            for optimizer in self.optimizer_of.values()
        }
        return {**config, "loss": self.adversarial_loss.name}

    def compile_from_config(self, config):
        optimizers = {
            optimizer: keras.saving.deserialize_keras_object(config[optimizer])
            for optimizer in self.optimizer_of.values()
        }
        self.compile(**optimizers, loss=config["loss"])
