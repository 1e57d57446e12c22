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


def gradient_penalty(critic_fn, real, fake, seed=None, epsilon=None, return_norms=False):
    """WGAN-GP's gradient penalty (Gulrajani et al., 2017), per example, unweighted.

    `GP = (||grad_x_hat C(x_hat)||_2 - 1)^2`,  `x_hat = eps * x + (1 - eps) * G(z)`,
    `eps ~ U[0, 1]` drawn once per example.

    The optimal critic has unit gradient norm on lines between real and fake samples paired
    by the optimal coupling; random pairs, as here, are the paper's heuristic stand-in. The norm is `sqrt(sum g^2 + 1e-12)`: the gradient of a plain
    `sqrt` at 0 is infinite and would turn the update into NaN.

    Args:
        critic_fn: `fn(images) -> scores [batch, ...]` (e.g. `lambda x: critic(x, training=True)`).
        real: real images `[batch, H, W, C]`.
        fake: generated images, same shape.
        seed: an int or `keras.random.SeedGenerator` for the interpolation coefficients.
        epsilon: explicit interpolation coefficients `[batch]` in `[0, 1]` instead of random
            ones (1: the real image, 0: the fake one), for tests and exercises.
        return_norms: also return the gradient norms (what training curves show).

    Returns:
        Per-example float32 penalties `[batch]` (multiply by lambda, typically 10), or
        `(penalties, norms)` with `return_norms=True`.

    Example:
        >>> critic = lambda x: 3.0 * ops.sum(x, axis=(1, 2, 3))   # gradient 3 at every pixel
        >>> gradient_penalty(critic, np.ones((2, 1, 1, 1)), np.zeros((2, 1, 1, 1)))  # (3 - 1)^2
        [4.0, 4.0]
    """
    real = ops.cast(real, "float32")
    fake = ops.cast(fake, "float32")
    coefficient_shape = (ops.shape(real)[0],) + (1,) * (len(real.shape) - 1)
    if epsilon is None:
        epsilon = keras.random.uniform(coefficient_shape, seed=seed)
    else:
        epsilon = ops.reshape(ops.cast(epsilon, "float32"), coefficient_shape)
    interpolated = epsilon * real + (1.0 - epsilon) * fake
    gradients = _input_gradients(critic_fn, interpolated)
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=1) + 1e-12)
    penalties = ops.square(norms - 1.0)
    return (penalties, norms) if return_norms else penalties


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


def r2_penalty(discriminator_fn, fake):
    """R2 penalty (Mescheder et al., 2018), per example, unweighted: `||grad_x D(G(z))||^2`.

    R1 on generated images: it flattens D around the fakes instead of the data.

    Args:
        discriminator_fn: `fn(images) -> logits [batch, ...]`.
        fake: generated images `[batch, H, W, C]`.

    Returns:
        Per-example float32 squared gradient norms `[batch]`.
    """
    return r1_penalty(discriminator_fn, fake)


# === BigGAN ===
#
# BigGAN (Brock et al., 2019) trains with the hinge loss above; what it adds is a regularizer on
# the generator's weights that makes it amenable to the truncation trick.


def orthogonal_regularization(kernel, beta=1e-4):
    """BigGAN's orthogonal regularization of one weight matrix:
    `R(W) = beta * ||W^T W * (1 - I)||_F^2`.

    Each column of `W` is one output unit's weights (for a convolution kernel
    `[kh, kw, in, out]`, reshaped to `[kh * kw * in, out]`, one filter per column). The penalty
    pushes different filters towards orthogonality but, unlike the classic `||W^T W - I||^2`,
    leaves their norms free: the diagonal is masked out. Brock et al. found that generators
    trained with it respond much better to truncated latents (section 3.1, beta = 1e-4).

    When a layer has more filters than inputs (a dense layer from a small latent chunk to a
    4x4xC map), `W^T W` is huge and low-rank; the same value comes from the small Gram matrix,
    `||W^T W||_F^2 = ||W W^T||_F^2`, minus the masked diagonal `sum_j ||w_j||^4`, which costs
    `in^2 * out` instead of `out^2 * in`.

    **A factor of 2 against the reference code.** This is the paper's `R_beta(W)`, whose
    gradient is `4 beta (W^T W * (1 - I)) W^T`-shaped. BigGAN-PyTorch's `utils.ortho` adds
    `strength * 2 (W W^T * (1 - I)) W` to the gradient directly (rows of its `W` are output
    units), which is the gradient of `strength / 2 * ||...||_F^2`: half of ours. So `beta` here
    regularizes as `strength = 2 * beta` there (the paper's 1e-4 here acts like the reference
    code's 2e-4).

    Args:
        kernel: a weight tensor whose last axis indexes the output units (rank >= 2).
        beta: the penalty's weight.

    Returns:
        A float32 scalar.

    Example:
        >>> float(orthogonal_regularization(np.eye(3, dtype="float32")))   # orthogonal columns
        0.0
        >>> float(orthogonal_regularization(np.ones((2, 2), "float32"), beta=1.0))  # 2 * 2^2
        8.0
    """
    kernel = ops.cast(kernel, "float32")
    if len(kernel.shape) < 2:
        raise ConfigError(f"orthogonal_regularization needs a matrix, got shape {kernel.shape}")
    columns = kernel.shape[-1]
    matrix = ops.reshape(kernel, (-1, columns))
    rows = matrix.shape[0]
    if rows is not None and rows < columns:
        gram = ops.matmul(matrix, ops.transpose(matrix))  # [rows, rows]
        squared_norms = ops.sum(ops.square(matrix), axis=0)
        value = ops.sum(ops.square(gram)) - ops.sum(ops.square(squared_norms))
        value = ops.maximum(value, 0.0)  # round-off of the difference can dip below zero
    else:
        gram = ops.matmul(ops.transpose(matrix), matrix)  # [columns, columns]
        off_diagonal = gram * (1.0 - ops.eye(columns, dtype="float32"))
        value = ops.sum(ops.square(off_diagonal))
    return beta * value


@keras.saving.register_keras_serializable(package="kerasgan")
class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """`orthogonal_regularization` as a Keras kernel regularizer (BigGAN's variant).

    Unlike `keras.regularizers.OrthogonalRegularizer` (mean absolute cosine similarity of the
    normalized rows), this is Brock et al.'s squared Frobenius norm of the off-diagonal Gram
    matrix, with unnormalized filters. A layer built with it adds the penalty to its `losses`,
    which the GAN adds to that network's loss.

    Args:
        beta: the penalty's weight (the paper's 1e-4).

    Example:
        >>> conv = keras.layers.Conv2D(64, 3, kernel_regularizer=OrthogonalRegularizer(1e-4))
    """

    def __init__(self, beta=1e-4):
        if beta < 0:
            raise ConfigError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def __call__(self, kernel):
        return orthogonal_regularization(kernel, self.beta)

    def get_config(self):
        return {"beta": self.beta}


# === Cycle consistency (CycleGAN) ===
#
# CycleGAN (Zhu et al., 2017) learns G: A -> B and F: B -> A from unpaired images. The adversarial
# losses only ask that G(a) *looks like* some image of B; these two terms ask that it keeps what
# `a` was about. Both are L1 distances (mean absolute error over pixels), per example; the model
# weights them (lambda = 10 for the cycle, 0.5 * lambda for identity in the paper).


def _mean_absolute_error(target, prediction):
    target = ops.cast(target, "float32")
    prediction = ops.cast(prediction, "float32")
    return per_example(ops.abs(target - prediction))


def cycle_consistency_loss(real, cycled):
    """Cycle-consistency loss: `L_cyc = ||F(G(a)) - a||_1` (and `||G(F(b)) - b||_1`).

    Translating to the other domain and back must return the original image, so G cannot map
    every input to the same convincing output (a mode collapse the adversarial loss alone
    allows), and what the image shows survives the translation.

    Args:
        real: the original images `[batch, H, W, C]`.
        cycled: the same images after a round trip, e.g. `F(G(a))`, same shape.

    Returns:
        Per-example float32 mean absolute errors `[batch]` (multiply by lambda, typically 10).

    Example:
        >>> cycle_consistency_loss(np.zeros((2, 4, 4, 1)), np.full((2, 4, 4, 1), 0.5))
        [0.5, 0.5]
    """
    return _mean_absolute_error(real, cycled)


def identity_loss(real, same):
    """Identity loss: `L_idt = ||G(b) - b||_1` (and `||F(a) - a||_1`).

    An image that is already in the target domain should pass through the generator unchanged.
    Zhu et al. added it for paintings <-> photos, where without it G was free to shift the
    colours of the whole image (a tint that the cycle can undo); it keeps G close to the
    identity wherever no translation is needed.

    Args:
        real: images of the generator's *target* domain, e.g. `b` for G: A -> B.
        same: the generator's output on them, e.g. `G(b)`, same shape.

    Returns:
        Per-example float32 mean absolute errors `[batch]` (multiply by 0.5 * lambda).
    """
    return _mean_absolute_error(real, same)


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
