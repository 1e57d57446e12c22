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

ADVERSARIAL_LOSSES = {loss.name: loss for loss in (MINIMAX, NON_SATURATING)}


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
