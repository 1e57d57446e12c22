"""GANs on 2-D points: the adversarial game small enough to watch.

Images hide what a GAN does behind millions of pixels. On points in the plane everything is
visible at once: the real distribution (here a ring of Gaussian blobs), the generator's samples,
and the discriminator's belief `D(x)` at every location. Notebook 01 uses these to show the
game converging, the minimax loss saturating and the generator dropping modes.

The networks are small multilayer perceptrons. The training step is Algorithm 1 of Goodfellow
et al., "Generative Adversarial Nets", 2014 (https://arxiv.org/abs/1406.2661), with one
discriminator update per generator update (`k = 1`, as in the paper's experiments); the
comments of `ToyGAN.train_step` carry these numbers:

1. Take a minibatch of `m` real points `x`.
2. Sample `m` noise vectors `z ~ N(0, I)` and make `m` fakes `G(z)`, outside D's gradient
   tape: D's update needs no gradient through G.
3. Update D by descending `1/m sum [-log D(x) - log(1 - D(G(z)))]`, i.e. ascending the game's
   value `V(D, G)`.
4. Sample `m` fresh `z` and update G through the updated D, by descending `1/m sum
   log(1 - D(G(z)))` (`loss="minimax"`, the algorithm as printed) or `1/m sum -log D(G(z))`
   (`loss="non_saturating"`, the default, which the paper's section 3 recommends because the
   minimax loss saturates while D easily rejects the fakes).
5. When `ema_decay` is set (not in the paper), move the moving average of G's weights towards G.
6. Report the mean losses and D's mean probabilities `D(x)` and `D(G(z))`.

DCGAN (`models/dcgan.py`) takes the same step with convolutional networks on images.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasgan import losses
from kerasgan.models.gan import GAN, global_batch_mean, minimize, regularization_loss


def ring_of_gaussians(n, modes=8, radius=2.0, std=0.05, seed=None):
    """`n` points from `modes` Gaussian blobs evenly spaced on a circle.

    A classic test of mode coverage (Metz et al., 2016, "Unrolled GANs"): a generator that
    collapses puts all its samples on one or a few blobs.

    Args:
        n: number of points.
        modes: number of blobs.
        radius: radius of the circle.
        std: standard deviation of each blob.
        seed: NumPy seed.

    Returns:
        float32 array `[n, 2]`.
    """
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * rng.integers(0, modes, n) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype("float32")


def mode_coverage(points, modes=8, radius=2.0, std=0.05, min_share=0.02):
    """How the samples spread over the ring's blobs.

    Returns:
        `(covered, high_quality)`: the number of blobs holding at least `min_share` of the
        samples within 3 std of their centre, and the fraction of samples within 3 std of
        any centre.
    """
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    distances = np.linalg.norm(points[:, None, :] - centres[None], axis=-1)
    nearest = distances.argmin(axis=1)
    close = distances.min(axis=1) < 3 * std
    counts = np.bincount(nearest[close], minlength=modes)
    return int((counts >= min_share * len(points)).sum()), float(close.mean())


def build_mlp_generator(latent_dim=2, width=128, depth=3, output_dim=2, name="generator"):
    """z -> `depth` x (Dense, ReLU) -> linear point in the plane."""
    latent = keras.Input((latent_dim,), name="latent")
    x = latent
    for index in range(depth):
        x = layers.Dense(width, activation="relu", name=f"hidden{index}")(x)
    points = layers.Dense(output_dim, dtype="float32", name="points")(x)
    return keras.Model(latent, points, name=name)


def build_mlp_discriminator(width=128, depth=3, input_dim=2, name="discriminator"):
    """point -> `depth` x (Dense, LeakyReLU) -> one logit."""
    points = keras.Input((input_dim,), name="points")
    x = points
    for index in range(depth):
        x = layers.Dense(width, name=f"hidden{index}")(x)
        x = layers.LeakyReLU(0.2, name=f"hidden{index}_lrelu")(x)
    logits = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(points, logits, name=name)


@keras.saving.register_keras_serializable(package="kerasgan")
class ToyGAN(GAN):
    """A GAN on 2-D points; `generate` returns points instead of images.

    Example:
        >>> gan = ToyGAN.build(seed=0)
        >>> gan.compile(loss="non_saturating")
        >>> gan.fit(tf.data.Dataset.from_tensor_slices(ring_of_gaussians(4096)).batch(256), epochs=20)
        >>> points = gan.generate(1000, seed=0)
    """

    @classmethod
    def build(cls, latent_dim=2, width=128, depth=3, seed=None):
        """Both networks with the given size."""
        return cls(
            build_mlp_generator(latent_dim, width, depth),
            build_mlp_discriminator(width, depth),
            latent_dim=latent_dim,
            seed=seed,
        )

    def default_optimizers(self):
        return keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5)

    def train_step(self, data):
        # 1. A minibatch of real points.
        real = data[0] if isinstance(data, (tuple, list)) else data
        batch_size = ops.shape(real)[0]

        # 2. Fresh noise and its fakes, outside D's tape: D's update stops at G's output.
        fake = self.generator(self.sample_latent(batch_size), training=True)

        # 3. Discriminator: real up, fake down (mean over the global batch, plus any weight
        #    penalties D's layers add).
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_per_example = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            d_loss = global_batch_mean(d_per_example) + regularization_loss(self.discriminator)
        minimize(tape, d_loss, self.d_optimizer, self.discriminator.trainable_variables)

        # 4. Generator: fresh noise, fakes made inside the tape, scored by the updated D.
        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=True)
            g_per_example = self.adversarial_loss.generator_loss(
                self.discriminator(fake, training=True)
            )
            g_loss = global_batch_mean(g_per_example) + regularization_loss(self.generator)
        minimize(tape, g_loss, self.g_optimizer, self.generator.trainable_variables)

        # 5. The moving average of G's weights, when the model keeps one.
        if self.generator_ema is not None:
            self.update_generator_ema()

        # 6. The curves of notebook 01: both losses, D(x) and D(G(z)).
        return self.update_trackers({
            "d_loss": ops.mean(d_per_example),
            "g_loss": ops.mean(g_per_example),
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        })

    def test_step(self, data):
        """Both losses on a held-out batch, with both networks in inference mode (batch norm
        uses its moving statistics) and no update: only the seed generator moves."""
        real = data[0] if isinstance(data, (tuple, list)) else data
        fake = self.generator(self.sample_latent(ops.shape(real)[0]), training=False)
        real_logits = self.discriminator(real, training=False)
        fake_logits = self.discriminator(fake, training=False)
        return self.update_trackers({
            "d_loss": ops.mean(self.adversarial_loss.discriminator_loss(real_logits, fake_logits)),
            "g_loss": ops.mean(self.adversarial_loss.generator_loss(fake_logits)),
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        })

    def discriminator_map(self, extent=3.0, resolution=100):
        """D's probability of "real" on a grid over `[-extent, extent]^2`.

        Returns:
            `(xs, ys, probabilities)` ready for `matplotlib.pyplot.contourf`.
        """
        axis = np.linspace(-extent, extent, resolution, dtype="float32")
        xs, ys = np.meshgrid(axis, axis)
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        logits = self.discriminator.predict(grid, batch_size=4096, verbose=0)
        probabilities = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
        return xs, ys, probabilities.reshape(xs.shape)
