"""Conditional GAN: tell both players which class an image should be.

Mirza and Osindero, "Conditional Generative Adversarial Nets", 2014,
https://arxiv.org/abs/1411.1784. An unconditional GAN draws *some* digit; a conditional one
draws the digit you ask for. Both networks receive the label `y`: the generator models
`p(x | y)` and the discriminator judges whether `x` is a real image *of class y*, so a sharp
"3" passed off as a "7" is caught and G must learn to obey the label:

    min_G max_D  E_{x,y}[log D(x, y)] + E_{z,y}[log(1 - D(G(z, y), y))].

**How the label enters the generator: an embedding concatenated to z.** A
`keras.layers.Embedding` turns each class into a learned vector `e(y)` (here 50 numbers),
and G starts from `[z, e(y)]`; the rest is DCGAN's generator (`dcgan.generator_stack`).
z carries what the label does not say (slant, stroke width, style), so the same z with
different labels draws different digits in the same hand.

**How the label enters the discriminator: projection** (Miyato and Koyama, "cGANs with
Projection Discriminator", ICLR 2018, https://arxiv.org/abs/1802.05637). With `phi(x)` DCGAN
D's flattened features,

    D(x, y) = psi(phi(x)) + <E(y), phi(x)>,

a shared linear head `psi` ("does this look like a digit?") plus an inner product with a
learned class vector `E(y)` ("does it look like *this* digit?"). Why projection rather than
concatenating the label to D's input as ten one-hot channels (the other common choice)?
Miyato and Koyama show that if `p(y | x)` is a softmax over features, the optimal D's logit
has exactly this form, so projection builds the right structure in instead of hoping the
first convolution learns it; in their experiments it beat input and hidden concatenation on
quality and class fidelity. It is also cheaper (no ten extra channels at full resolution),
and it is the discriminator BigGAN uses (notebook 07).

**The training step** (`ConditionalGAN.train_step`) is Algorithm 1 of Goodfellow et al.
("Generative Adversarial Nets", 2014, https://arxiv.org/abs/1406.2661) with one discriminator
update per generator update (their k = 1) and the label given to both players, as Mirza and
Osindero's section 3.2 prescribes. For each minibatch:

1. Take m real pairs `(x_i, y_i)` from the data.
2. Sample m latents `z_i ~ N(0, I)`; fake `i` takes the label `y_i` of real pair `i`.
3. Make the fakes `G(z_i, y_i)`: the label enters G as `[z_i, e(y_i)]`.
4. Update D by descending `(1/m) sum_i l_D(D(x_i, y_i), D(G(z_i, y_i), y_i))`, the label
   entering D through the projection `<E(y), phi(x)>`; for the default non-saturating game
   `l_D = -log D(x, y) - log(1 - D(G(z, y), y))`.
5. Sample fresh `z_i` and update G, through the updated D, by descending
   `(1/m) sum_i l_G(D(G(z_i, y_i), y_i))`, with `l_G = -log D(G(z, y), y)` (Goodfellow et
   al.'s non-saturating generator loss, section 3: `log(1 - D)` saturates while D still
   rejects every fake).
6. With `ema_decay` set, move the moving average of G's weights towards G.

Why the fakes take the real batch's labels (steps 2 and 5) rather than labels drawn apart:
D then sees real and fake images of the same classes in the same proportions, so it cannot
tell them apart by class frequency, and no label distribution has to be chosen. Weight
penalties that a network's layers add (none in this file's networks) join that network's
loss in steps 4 and 5.

Code that drives the model from outside the step (sample grids, `generate`,
`callbacks.GANDiagnostics`) calls the networks the same way the step does: `generator([z, y])`,
`discriminator([x, y])`, with `y` from `(images, labels)` pairs (`labelled_batch`).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasgan import losses
from kerasgan.errors import ConfigError, DataError
from kerasgan.models import dcgan
from kerasgan.models.gan import (
    GAN,
    global_batch_mean,
    minimize,
    preset_config,
    refuse_generate_options,
    regularization_loss,
)

# Named configurations: "default" is what users train; "tiny" builds and trains a step in
# well under a second, for tests and notebook smoke runs.
CONFIGS = {
    "default": {
        "num_classes": 10,
        "latent_dim": 100,
        "embedding_dim": 50,
        "generator_width": 128,
        "discriminator_width": 64,
    },
    "tiny": {
        "num_classes": 10,
        "latent_dim": 8,
        "embedding_dim": 4,
        "generator_width": 16,
        "discriminator_width": 8,
    },
}


# === Generator ===


def build_generator(
    num_classes=10, latent_dim=100, image_size=28, channels=1, width=128, embedding_dim=50,
    name="generator",
):
    """The conditional generator: `[z, Embedding(y)]` -> DCGAN's generator stack -> tanh.

    Args:
        num_classes: number of classes.
        latent_dim: size of the latent vector z.
        image_size: output height and width (4-7 pixels times a power of two).
        channels: output channels.
        width: filters at the coarsest resolution (see `dcgan.build_generator`).
        embedding_dim: size of the learned label embedding `e(y)`.
        name: the model's name.

    Returns:
        A functional `keras.Model` with inputs `latent` `[batch, latent_dim]` (float) and
        `labels` `[batch]` (int32) and output `[batch, image_size, image_size, channels]` in
        `[-1, 1]` (float32).
    """
    latent = keras.Input((latent_dim,), name="latent")
    labels = keras.Input((), dtype="int32", name="labels")
    embedded = layers.Embedding(num_classes, embedding_dim, name="label_embedding")(labels)
    x = layers.Concatenate(name="latent_and_label")([latent, embedded])
    images = dcgan.generator_stack(x, image_size, channels, width)
    return keras.Model([latent, labels], images, name=name)


def latent_and_label(latent, labels, embeddings):
    """The generator's conditioned input, written out: `[z, e(y)]`.

    This is what `build_generator`'s first layers compute (`label_embedding`,
    `latent_and_label`), as one readable function.

    Args:
        latent: z, `[batch, latent_dim]`.
        labels: int class ids `[batch]`.
        embeddings: the embedding table, one row `e(y)` per class, `[num_classes, E]`.

    Returns:
        float32 `[batch, latent_dim + E]`: each latent followed by its label's vector.
    """
    chosen = ops.take(ops.cast(embeddings, "float32"), ops.cast(labels, "int32"), axis=0)
    return ops.concatenate([ops.cast(latent, "float32"), chosen], axis=-1)


# === Discriminator ===


def projection_logits(features, labels, kernel, bias, class_embeddings):
    """The projection discriminator's head, written out: `psi(phi) + <E[y], phi>`.

    This is what `build_discriminator`'s last layers compute (`logit`, `class_projection`,
    `projection`, `logits`), as one readable function.

    Args:
        features: `phi(x)`, `[batch, F]`.
        labels: int class ids `[batch]`.
        kernel: `psi`'s weights `[F, 1]`.
        bias: `psi`'s bias `[1]`.
        class_embeddings: `E`, one row per class, `[num_classes, F]`.

    Returns:
        float32 logits `[batch, 1]`.
    """
    features = ops.cast(features, "float32")
    unconditional = ops.matmul(features, ops.cast(kernel, "float32")) + ops.cast(bias, "float32")
    chosen = ops.take(ops.cast(class_embeddings, "float32"), ops.cast(labels, "int32"), axis=0)
    return unconditional + ops.sum(chosen * features, axis=-1, keepdims=True)


def build_discriminator(
    num_classes=10, image_size=28, channels=1, width=64, name="discriminator"
):
    """The projection discriminator: DCGAN's features `phi(x)`, then `psi(phi) + <E(y), phi>`.

    Args:
        num_classes: number of classes.
        image_size: input height and width.
        channels: input channels.
        width: filters of the first convolution (see `dcgan.build_discriminator`).
        name: the model's name.

    Returns:
        A functional `keras.Model` with inputs `images` `[batch, H, W, C]` and `labels`
        `[batch]` (int32) and float32 logits `[batch, 1]`.
    """
    images = keras.Input((image_size, image_size, channels), name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    features = dcgan.discriminator_features(images, image_size, width, "batch")
    unconditional = layers.Dense(1, dtype="float32", name="logit")(features)
    class_vectors = layers.Embedding(
        num_classes, features.shape[-1], name="class_projection"
    )(labels)
    # float32: an inner product over thousands of features would round to bfloat16's 8 bits.
    projection = layers.Dot(axes=1, dtype="float32", name="projection")([class_vectors, features])
    logits = layers.Add(dtype="float32", name="logits")([unconditional, projection])
    return keras.Model([images, labels], logits, name=name)


# === Labels ===


def labelled_batch(data):
    """Split a dataset element of `(images, labels)` into images and int32 labels `[batch]`.

    Raises:
        DataError: for an element without labels (a dataset loaded without them).
    """
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise DataError(
            "the conditional GAN trains on (image, label) pairs: load its data with "
            "with_labels=True"
        )
    return data[0], ops.reshape(ops.cast(data[1], "int32"), (-1,))


def class_grid_labels(n, num_classes):
    """Labels for a grid of `n` images with `num_classes` columns: a row per class.

    Row `r` holds class `r mod num_classes`, so `n = num_classes**2` images show every class
    once, top to bottom.

    Example:
        >>> class_grid_labels(6, 3)
        array([0, 0, 0, 1, 1, 1], dtype=int32)
    """
    return ((np.arange(n) // num_classes) % num_classes).astype("int32")


# === The model ===


@keras.saving.register_keras_serializable(package="kerasgan")
class ConditionalGAN(GAN):
    """A class-conditional GAN: Goodfellow et al.'s game with the label given to G and D.

    Args:
        generator: a model `[latent, labels] -> images` (see `build_generator`).
        discriminator: a model `[images, labels] -> logits` (see `build_discriminator`).
        num_classes: number of classes (read from the generator's `label_embedding` if
            omitted).
        latent_dim: size of z (read from the generator if omitted).
        seed: seed of the training-time latent stream.
        ema_decay: optional moving average of G's weights to sample from (see `GAN`).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:
        >>> gan = ConditionalGAN.from_preset("default", seed=0)
        >>> gan.compile()
        >>> pairs = kerasgan.datasets.load("mnist", with_labels=True)
        >>> gan.fit(kerasgan.datasets.training_pipeline(pairs, 32), epochs=20)
        >>> sevens = gan.generate(8, labels=7, seed=0)     # [8, 28, 28, 1] in [-1, 1]
    """

    def __init__(
        self, generator, discriminator, num_classes=None, latent_dim=None, seed=None,
        ema_decay=None, **kwargs,
    ):
        super().__init__(
            generator, discriminator, latent_dim=latent_dim, seed=seed, ema_decay=ema_decay,
            **kwargs,
        )
        if num_classes is None:
            num_classes = generator.get_layer("label_embedding").input_dim
        if int(num_classes) != num_classes or num_classes < 1:
            raise ConfigError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
        self.num_classes = int(num_classes)

    @classmethod
    def from_preset(cls, preset="default", image_size=28, channels=1, seed=None, **overrides):
        """Build a conditional GAN from a named configuration in `CONFIGS`.

        Args:
            preset: a key of `CONFIGS`: `"default"` (what users train) or `"tiny"` (tests).
            image_size: height and width of the images (4-7 pixels times a power of two).
            channels: channels of the images.
            seed: seed of the training-time latent stream.
            **overrides: any key of the preset (`num_classes`, `latent_dim`, `embedding_dim`,
                `generator_width`, `discriminator_width`).

        Raises:
            ConfigError: for an unknown preset or option.
        """
        config = preset_config(CONFIGS, preset, overrides, "conditional GAN")
        generator = build_generator(
            config["num_classes"], config["latent_dim"], image_size, channels,
            config["generator_width"], config["embedding_dim"],
        )
        discriminator = build_discriminator(
            config["num_classes"], image_size, channels, config["discriminator_width"]
        )
        return cls(
            generator, discriminator, num_classes=config["num_classes"],
            latent_dim=config["latent_dim"], seed=seed,
        )

    # === The training step ===

    def train_step(self, data):
        """One step of the conditional game: steps 1-6 of the module docstring."""
        # 1. m real pairs (x_i, y_i).
        real, labels = labelled_batch(data)
        batch_size = ops.shape(real)[0]
        # 2. Latents from the model's seeded stream; the fakes take the real pairs' labels.
        latent = self.sample_latent(batch_size)
        # 3. G(z, y) starts from [z, e(y)] (`latent_and_label`). Made outside D's tape: D's
        #    update needs no gradient through G.
        fake = self.generator([latent, labels], training=True)
        # 4. D's update. D(x, y) = psi(phi(x)) + <E(y), phi(x)> (`projection_logits`); the real
        #    and the fake batch go through D apart, so batch norm sees each on its own.
        with tf.GradientTape() as tape:
            real_logits = self.discriminator([real, labels], training=True)
            fake_logits = self.discriminator([fake, labels], training=True)
            d_loss = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            d_total = global_batch_mean(d_loss) + regularization_loss(self.discriminator)
        minimize(tape, d_total, self.d_optimizer, self.discriminator.trainable_variables)
        # 5. G's update: fresh latents, the same labels, through the updated D.
        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator([latent, labels], training=True)
            g_loss = self.adversarial_loss.generator_loss(
                self.discriminator([fake, labels], training=True)
            )
            g_total = global_batch_mean(g_loss) + regularization_loss(self.generator)
        minimize(tape, g_total, self.g_optimizer, self.generator.trainable_variables)
        # 6. The moving average of G's weights, when samples are drawn from one.
        if self.generator_ema is not None:
            self.update_generator_ema()
        # This replica's mean losses, and D(x, y) and D(G(z, y), y) as D saw them in step 4.
        return self.update_trackers({
            "d_loss": ops.mean(d_loss),
            "g_loss": ops.mean(g_loss),
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        })

    def test_step(self, data):
        """Both losses on a held-out batch, with both networks in inference mode (batch norm
        uses its moving statistics) and no update: only the seed generator moves."""
        real, labels = labelled_batch(data)
        latent = self.sample_latent(ops.shape(real)[0])
        fake = self.generator([latent, labels], training=False)
        real_logits = self.discriminator([real, labels], training=False)
        fake_logits = self.discriminator([fake, labels], training=False)
        return self.update_trackers({
            "d_loss": ops.mean(self.adversarial_loss.discriminator_loss(real_logits, fake_logits)),
            "g_loss": ops.mean(self.adversarial_loss.generator_loss(fake_logits)),
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        })

    # === Sample grids: a row per class ===

    def sample_condition(self, n):
        """A row per class (see `class_grid_labels`); with `preview_columns`, grids of
        `num_classes**2` samples show every class once."""
        return class_grid_labels(n, self.num_classes)

    @property
    def preview_columns(self):
        """Sample grids have `num_classes` columns: one row per class."""
        return self.num_classes

    # === Sampling ===

    def class_labels(self, labels, n):
        """`n` int32 labels from None (cycling `0, 1, ..., K-1, 0, ...`), one int, or `n` ints.

        Raises:
            ConfigError: for labels that are not whole numbers in `[0, num_classes)`, or a
                count that is not `n`.
        """
        if labels is None:
            return (np.arange(n) % self.num_classes).astype("int32")
        array = np.asarray(labels)
        if array.dtype.kind not in "iu" and not (
            array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0)
        ):
            raise ConfigError(f"labels must be whole class ids, got {labels!r}")
        if array.ndim == 0:
            array = np.full((n,), array)
        if array.shape != (n,):
            raise ConfigError(f"expected {n} labels (one per image), got shape {array.shape}")
        if n and (array.min() < 0 or array.max() >= self.num_classes):
            raise ConfigError(
                f"labels must be class ids in [0, {self.num_classes - 1}], got "
                f"{array.min()}..{array.max()}"
            )
        return array.astype("int32")

    def generate(self, n, *, seed=None, labels=None, truncation=None, batch_size=256):
        """Draw `n` images of the given classes from G in inference mode.

        Args:
            n: number of images.
            seed: seed of the latent vectors (same seed and labels, same images).
            labels: None (cycle through the classes), one class id for all, or `n` ids.
            truncation: not used by this model (a `ConfigError` if given).
            batch_size: images per forward pass.

        Returns:
            float32 NumPy array `[n, H, W, C]` in `[-1, 1]`.
        """
        refuse_generate_options(self, truncation=truncation)
        latent = self.latent_batch(n, self.latent_dim, seed)
        return self.generate_from_latent(latent, batch_size, labels)

    def generate_from_latent(self, latent, batch_size=256, condition=None):
        """G's images for given latents and labels (`condition`, as in `class_labels`)."""
        labels = self.class_labels(condition, len(latent))
        return super().generate_from_latent(latent, batch_size, labels)

    # === Serialization ===

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes)
        return config
