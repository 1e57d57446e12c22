"""Every objective the course trains with, in one place.

A GAN is two networks playing a game, and the game is defined by its losses. Writing them side by
side shows how little separates the variants: each adversarial loss below turns the
discriminator's raw scores (logits) on a real batch and a fake batch into one loss for the
discriminator and one for the generator.

Conventions (the same for every loss here, as in compare_gan):

* Inputs are logits of any shape `[batch, ...]` (a single score per image, or a PatchGAN map).
* Outputs are **per-example** losses of shape `[batch]` (the mean over every non-batch axis), in
  float32. The model averages them over the *global* batch with `tf.nn.compute_average_loss`,
  which is what keeps gradients right under `tf.distribute` (see `models/gan.py`).
* Models choose a loss by name (`"non_saturating"`) or by passing an `AdversarialLoss`.
"""

import keras
from keras import ops

from kerasgan.errors import ConfigError
from kerasgan.layers.normalization import channel_moments


def per_example(values):
    """Cast `values` to float32 and average every axis but the batch axis.

    Args:
        values: a tensor of shape `[batch, ...]`.

    Returns:
        A float32 tensor of shape `[batch]`.
    """
    values = ops.cast(values, "float32")
    if len(values.shape) <= 1:
        return values
    return ops.mean(ops.reshape(values, (ops.shape(values)[0], -1)), axis=1)


# === The original game (Goodfellow et al., 2014) ===
#
#   min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))],      D(x) = sigmoid(logit(x))
#
# Written with softplus, because -log(sigmoid(t)) = softplus(-t) and -log(1 - sigmoid(t)) =
# softplus(t) are exact and never take the log of 0.


def minimax_discriminator_loss(real_logits, fake_logits):
    """Discriminator loss of the original minimax game (binary cross-entropy).

    `L_D = -log D(x) - log(1 - D(G(z))) = softplus(-real) + softplus(fake)`

    Args:
        real_logits: discriminator logits on real images, `[batch, ...]`.
        fake_logits: discriminator logits on generated images, `[batch, ...]`.

    Returns:
        Per-example float32 losses, `[batch]`.
    """
    return per_example(ops.softplus(-ops.cast(real_logits, "float32"))) + per_example(
        ops.softplus(ops.cast(fake_logits, "float32"))
    )


def minimax_generator_loss(fake_logits):
    """Generator loss of the original minimax game: `L_G = log(1 - D(G(z))) = -softplus(fake)`.

    It *saturates*: when D confidently rejects a fake (fake logit very negative), its gradient
    vanishes, exactly when G most needs to learn. Kept for teaching; prefer `non_saturating`.

    Args:
        fake_logits: discriminator logits on generated images, `[batch, ...]`.

    Returns:
        Per-example float32 losses, `[batch]`.
    """
    return per_example(-ops.softplus(ops.cast(fake_logits, "float32")))


def non_saturating_generator_loss(fake_logits):
    """Non-saturating generator loss: `L_G = -log D(G(z)) = softplus(-fake)`.

    Same fixed point as the minimax game, but strong gradients when D rejects the fakes.
    Goodfellow et al. recommend it; it is the default for DCGAN.

    Args:
        fake_logits: discriminator logits on generated images, `[batch, ...]`.

    Returns:
        Per-example float32 losses, `[batch]`.
    """
    return per_example(ops.softplus(-ops.cast(fake_logits, "float32")))


# === Other games ===


def least_squares_discriminator_loss(real_logits, fake_logits):
    """LSGAN discriminator loss (Mao et al., 2017): `L_D = (D(x) - 1)^2 + D(G(z))^2`.

    Scores are regressed to 1 (real) and 0 (fake) instead of classified; fakes far on the right
    side of the boundary are still penalised, which gives G smoother gradients. Factors of 1/2
    are dropped (they only rescale the learning rate). CycleGAN uses this loss.
    """
    real = ops.cast(real_logits, "float32")
    fake = ops.cast(fake_logits, "float32")
    return per_example(ops.square(real - 1.0)) + per_example(ops.square(fake))


def least_squares_generator_loss(fake_logits):
    """LSGAN generator loss: `L_G = (D(G(z)) - 1)^2`."""
    return per_example(ops.square(ops.cast(fake_logits, "float32") - 1.0))


def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge discriminator loss (Lim & Ye, 2017; SAGAN, BigGAN):
    `L_D = max(0, 1 - D(x)) + max(0, 1 + D(G(z)))`.

    Only scores inside the margin contribute, so D stops pushing once it is confidently right.
    """
    real = ops.cast(real_logits, "float32")
    fake = ops.cast(fake_logits, "float32")
    return per_example(ops.relu(1.0 - real)) + per_example(ops.relu(1.0 + fake))


def hinge_generator_loss(fake_logits):
    """Hinge-GAN generator loss: `L_G = -D(G(z))`."""
    return per_example(-ops.cast(fake_logits, "float32"))


def wasserstein_critic_loss(real_logits, fake_logits):
    """Wasserstein critic loss (Arjovsky et al., 2017): `L_C = C(G(z)) - C(x)`.

    Minimising it maximises `E[C(x)] - E[C(G(z))]`, which estimates the Wasserstein-1 distance
    between the real and generated distributions *if* C is 1-Lipschitz; the constraint comes
    from elsewhere (weight clipping, or the gradient penalty below).
    """
    return per_example(ops.cast(fake_logits, "float32")) - per_example(
        ops.cast(real_logits, "float32")
    )


def wasserstein_generator_loss(fake_logits):
    """Wasserstein generator loss: `L_G = -C(G(z))`."""
    return per_example(-ops.cast(fake_logits, "float32"))


# === Choosing a loss by name ===


class AdversarialLoss:
    """A named pair of discriminator and generator losses.

    Args:
        name: the name models and the CLI use to select it.
        discriminator_loss: `fn(real_logits, fake_logits) -> [batch]` per-example losses.
        generator_loss: `fn(fake_logits) -> [batch]` per-example losses.

    Example:
        >>> loss = AdversarialLoss("mine", minimax_discriminator_loss, non_saturating_generator_loss)
        >>> gan.compile(loss=loss)
    """

    def __init__(self, name, discriminator_loss, generator_loss):
        self.name = name
        self.discriminator_loss = discriminator_loss
        self.generator_loss = generator_loss

    def __repr__(self):
        return f"AdversarialLoss({self.name!r})"


MINIMAX = AdversarialLoss("minimax", minimax_discriminator_loss, minimax_generator_loss)
NON_SATURATING = AdversarialLoss(
    "non_saturating", minimax_discriminator_loss, non_saturating_generator_loss
)

LEAST_SQUARES = AdversarialLoss(
    "least_squares", least_squares_discriminator_loss, least_squares_generator_loss
)
HINGE = AdversarialLoss("hinge", hinge_discriminator_loss, hinge_generator_loss)
WASSERSTEIN = AdversarialLoss("wasserstein", wasserstein_critic_loss, wasserstein_generator_loss)

ADVERSARIAL_LOSSES = {
    loss.name: loss for loss in (MINIMAX, NON_SATURATING, LEAST_SQUARES, HINGE, WASSERSTEIN)
}


def register_adversarial_loss(loss):
    """Make an `AdversarialLoss` selectable by its name (in `compile(loss=...)` and the CLI)."""
    ADVERSARIAL_LOSSES[loss.name] = loss
    return loss


def get_adversarial_loss(identifier):
    """Return the `AdversarialLoss` for a name, or `identifier` itself if it already is one.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    if isinstance(identifier, AdversarialLoss):
        return identifier
    if isinstance(identifier, str):
        key = identifier.replace("-", "_").lower()
        if key in ADVERSARIAL_LOSSES:
            return ADVERSARIAL_LOSSES[key]
        known = ", ".join(sorted(ADVERSARIAL_LOSSES))
        raise ConfigError(f"unknown adversarial loss {identifier!r}; choose one of: {known}")
    raise ConfigError(
        f"loss must be a name or an AdversarialLoss, got {type(identifier).__name__}"
    )


def discriminator_probability(logits):
    """Mean probability the discriminator assigns to "real": `mean(sigmoid(logits))`.

    The D(x) and D(G(z)) curves of a training run. Near 0.5 for both means the game is balanced;
    D(x) near 1 with D(G(z)) near 0 for long means D has won and G's gradients are drying up.
    """
    return ops.mean(keras.activations.sigmoid(ops.cast(logits, "float32")))


# === Penalties on the discriminator's gradients ===
#
# Both are per-example, computed in float32 whatever the policy: squared gradient norms of a
# bfloat16/float16 network overflow or lose all precision. The caller weights them.


def _input_gradients(discriminator_fn, images):
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        # Summed inside the tape: each example's score depends only on its own input, so the
        # gradient of the sum holds every per-example gradient.
        total = ops.sum(ops.cast(discriminator_fn(images), "float32"))
    gradients = tape.gradient(total, images)
    return ops.reshape(gradients, (ops.shape(gradients)[0], -1))


def gradient_penalty(critic_fn, real, fake, seed=None):
    """WGAN-GP's gradient penalty (Gulrajani et al., 2017), per example, unweighted.

    `GP = (||grad_x_hat C(x_hat)||_2 - 1)^2`,  `x_hat = eps * x + (1 - eps) * G(z)`,
    `eps ~ U[0, 1]` drawn once per example.

    The optimal critic has unit gradient norm on lines between real and fake samples, so the
    penalty is applied there. The norm is `sqrt(sum g^2 + 1e-12)`: the gradient of a plain
    `sqrt` at 0 is infinite and would turn the update into NaN.

    Args:
        critic_fn: `fn(images) -> scores [batch, ...]` (e.g. `lambda x: critic(x, training=True)`).
        real: real images `[batch, H, W, C]`.
        fake: generated images, same shape.
        seed: an int or `keras.random.SeedGenerator` for the interpolation coefficients.

    Returns:
        Per-example float32 penalties `[batch]` (multiply by lambda, typically 10).
    """
    real = ops.cast(real, "float32")
    fake = ops.cast(fake, "float32")
    batch = ops.shape(real)[0]
    epsilon = keras.random.uniform((batch,) + (1,) * (len(real.shape) - 1), seed=seed)
    interpolated = epsilon * real + (1.0 - epsilon) * fake
    gradients = _input_gradients(critic_fn, interpolated)
    norm = ops.sqrt(ops.sum(ops.square(gradients), axis=1) + 1e-12)
    return ops.square(norm - 1.0)


def r1_penalty(discriminator_fn, real):
    """R1 penalty (Mescheder et al., 2018), per example, unweighted: `||grad_x D(x)||^2`.

    Penalising D's gradient on *real* data keeps D from building steep walls around the data
    manifold; StyleGAN uses it with weight `gamma / 2`. Evaluated on fakes it is the R2 penalty.

    Args:
        discriminator_fn: `fn(images) -> logits [batch, ...]`.
        real: real images `[batch, H, W, C]`.

    Returns:
        Per-example float32 squared gradient norms `[batch]`.
    """
    gradients = _input_gradients(discriminator_fn, real)
    return ops.sum(ops.square(gradients), axis=1)


# === Neural style transfer ===
#
# The objectives of `kerasgan.style_transfer` (Gatys et al., 2016; Huang & Belongie, 2017). They
# compare feature maps of a fixed network (VGG19) instead of logits, but keep this module's
# convention: float32 in, per-example float32 losses `[batch]` out (a batch of one image gives a
# one-element vector). Squared errors are means rather than Gatys et al.'s sums, so the losses
# do not grow with the image size; constant factors are absorbed into the loss weights.


def gram_matrix(features):
    """Channel-by-channel correlations of a feature map, averaged over positions.

    `G_ij = 1/M sum_k F_ik F_jk`, where `F` is the feature map reshaped to `N` channels by
    `M = H * W` positions. Position is summed out: the Gram matrix keeps which features occur
    together and forgets where, which is why it describes style and not layout.

    Args:
        features: `[batch, H, W, C]`.

    Returns:
        float32 `[batch, C, C]`.

    Example:
        >>> gram_matrix(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))   # 2 positions, 2 channels
        [[[5.0, 7.0], [7.0, 10.0]]]
    """
    features = ops.cast(features, "float32")
    positions = ops.cast(ops.shape(features)[1] * ops.shape(features)[2], "float32")
    return ops.einsum("bhwi,bhwj->bij", features, features) / positions


def content_loss(generated_features, content_features):
    """Mean squared distance between two feature maps: `mean_ij (F_ij - P_ij)^2`.

    Args:
        generated_features: `[batch, H, W, C]` features of the image being made.
        content_features: features of the content target, same shape (or batch 1).

    Returns:
        float32 `[batch]`.
    """
    difference = ops.cast(generated_features, "float32") - ops.cast(content_features, "float32")
    return ops.mean(ops.square(difference), axis=(1, 2, 3))


def style_loss(generated_features, style_features):
    """Mean squared distance between Gram matrices: `mean_ij (G_ij - A_ij)^2`.

    Gatys et al.'s `E_l` equals a quarter of this (see `kerasgan.style_transfer`); the maps
    may have different spatial sizes, since Gram matrices are `C x C` whatever the size.

    Args:
        generated_features: `[batch, H, W, C]` features of the image being made.
        style_features: `[batch or 1, H', W', C]` features of the style image.

    Returns:
        float32 `[batch]`.
    """
    difference = gram_matrix(generated_features) - gram_matrix(style_features)
    return ops.mean(ops.square(difference), axis=(1, 2))


def style_statistics_loss(generated_features, style_features, epsilon=1e-5):
    """AdaIN's style loss: match each channel's mean and standard deviation.

    `||mu(F) - mu(A)||^2 + ||sigma(F) - sigma(A)||^2`, averaged over channels. Cheaper than Gram
    matrices and, with instance normalization's statistics, a natural fit for AdaIN (Huang &
    Belongie, 2017, equation 13).

    Args:
        generated_features: `[batch, H, W, C]`.
        style_features: `[batch or 1, H', W', C]`.
        epsilon: added to the variances before the square root.

    Returns:
        float32 `[batch]`.
    """
    generated_mean, generated_std = channel_moments(
        ops.cast(generated_features, "float32"), epsilon
    )
    style_mean, style_std = channel_moments(ops.cast(style_features, "float32"), epsilon)
    return ops.mean(ops.square(generated_mean - style_mean), axis=(1, 2, 3)) + ops.mean(
        ops.square(generated_std - style_std), axis=(1, 2, 3)
    )


def total_variation_loss(images):
    """Total variation: `sum_ij |x_{i+1,j} - x_{i,j}| + |x_{i,j+1} - x_{i,j}|` per image.

    A sum over pixels and channels (as `tf.image.total_variation`), so its weight depends on the
    image size: the default weight suits images of a few hundred pixels a side.

    Args:
        images: `[batch, H, W, C]`, values in `[0, 1]`.

    Returns:
        float32 `[batch]`.
    """
    images = ops.cast(images, "float32")
    vertical = ops.abs(images[:, 1:, :, :] - images[:, :-1, :, :])
    horizontal = ops.abs(images[:, :, 1:, :] - images[:, :, :-1, :])
    return ops.sum(vertical, axis=(1, 2, 3)) + ops.sum(horizontal, axis=(1, 2, 3))
