"""Every adversarial loss and penalty against values worked out by hand on tiny inputs."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from kerasgan import losses
from kerasgan.errors import ConfigError


def log1pexp(t):
    """softplus(t) = log(1 + e^t), computed independently of the code under test."""
    return math.log1p(math.exp(t))


def logits(*values):
    """One logit per example: `[batch, 1]` float32."""
    return np.asarray(values, "float32").reshape(-1, 1)


def close(got, expected, atol=1e-6):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected, "float64"), rtol=1e-5, atol=atol)


# === Adversarial losses ===


def test_per_example_averages_every_axis_but_the_batch():
    values = np.arange(8, dtype="float32").reshape(2, 2, 2, 1)  # [0..3] and [4..7]
    close(losses.per_example(values), [1.5, 5.5])
    close(losses.per_example(np.array([1.0, 2.0], "float32")), [1.0, 2.0])


def test_minimax_discriminator_loss_is_binary_cross_entropy():
    # -log sigmoid(2) - log(1 - sigmoid(-1)) = softplus(-2) + softplus(-1)
    close(losses.minimax_discriminator_loss(logits(2.0, 0.0), logits(-1.0, 0.0)),
          [log1pexp(-2) + log1pexp(-1), 2 * math.log(2)])


def test_minimax_losses_are_finite_on_confident_logits():
    d_loss = losses.minimax_discriminator_loss(logits(60.0, -60.0), logits(-60.0, 60.0))
    close(d_loss, [0.0, 120.0], atol=1e-5)  # right: ~0; wrong by 60 on both: 2 * 60
    assert np.all(np.isfinite(losses.minimax_generator_loss(logits(-60.0, 60.0))))


def test_minimax_generator_loss_saturates_and_non_saturating_does_not():
    close(losses.minimax_generator_loss(logits(0.0, -3.0)), [-math.log(2), -log1pexp(-3)])
    close(losses.non_saturating_generator_loss(logits(0.0, -3.0)), [math.log(2), log1pexp(3)])
    # The gradient at a confidently rejected fake: -sigmoid(-10) ~ -4.5e-5 for minimax,
    # -sigmoid(10) ~ -1 for non-saturating.
    fake = tf.constant(logits(-10.0))
    gradients = []
    for loss in (losses.minimax_generator_loss, losses.non_saturating_generator_loss):
        with tf.GradientTape() as tape:
            tape.watch(fake)
            value = loss(fake)
        gradients.append(float(tape.gradient(value, fake)[0, 0]))
    close(gradients, [-1 / (1 + math.exp(10)), -1 / (1 + math.exp(-10))])


def test_least_squares_losses():
    # (1.5 - 1)^2 + 0.5^2 = 0.5;  (1 - 1)^2 + (-1)^2 = 1
    close(losses.least_squares_discriminator_loss(logits(1.5, 1.0), logits(0.5, -1.0)), [0.5, 1.0])
    close(losses.least_squares_generator_loss(logits(0.5, 3.0)), [0.25, 4.0])


def test_hinge_losses_only_count_scores_inside_the_margin():
    # max(0, 1 - 0.5) + max(0, 1 - 2) = 0.5;  max(0, 1 - 2) + max(0, 1 + 0) = 1
    close(losses.hinge_discriminator_loss(logits(0.5, 2.0), logits(-2.0, 0.0)), [0.5, 1.0])
    close(losses.hinge_generator_loss(logits(0.5, -2.0)), [-0.5, 2.0])


def test_wasserstein_losses():
    close(losses.wasserstein_critic_loss(logits(3.0, -1.0), logits(1.0, 2.0)), [-2.0, 3.0])
    close(losses.wasserstein_generator_loss(logits(1.0, -2.0)), [-1.0, 2.0])


@pytest.mark.parametrize("name", sorted(losses.ADVERSARIAL_LOSSES))
def test_every_loss_is_per_example_float32_on_patch_maps(name):
    loss = losses.get_adversarial_loss(name)
    real = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype("float32")
    fake = np.random.default_rng(1).normal(size=(3, 2, 2, 1)).astype("float32")
    d_loss = loss.discriminator_loss(tf.cast(real, "bfloat16"), tf.cast(fake, "bfloat16"))
    g_loss = loss.generator_loss(fake)
    assert tuple(d_loss.shape) == (3,) and d_loss.dtype == "float32"
    assert tuple(g_loss.shape) == (3,) and g_loss.dtype == "float32"
    # Per example = the loss of each example's patch map averaged, as one score per patch.
    one_by_one = loss.generator_loss(fake.reshape(-1, 1)).numpy().reshape(3, 4).mean(axis=1)
    close(g_loss, one_by_one)


def test_losses_are_chosen_by_name():
    assert set(losses.ADVERSARIAL_LOSSES) == {
        "minimax", "non_saturating", "least_squares", "hinge", "wasserstein"
    }
    assert losses.get_adversarial_loss("non-saturating") is losses.NON_SATURATING
    assert losses.get_adversarial_loss("LEAST_SQUARES") is losses.LEAST_SQUARES
    assert losses.get_adversarial_loss(losses.HINGE) is losses.HINGE
    with pytest.raises(ConfigError, match="unknown adversarial loss 'wgan'.*hinge"):
        losses.get_adversarial_loss("wgan")
    with pytest.raises(ConfigError, match="must be a name or an AdversarialLoss"):
        losses.get_adversarial_loss(3)


def test_a_custom_loss_can_be_registered():
    custom = losses.AdversarialLoss(
        "test_custom", losses.hinge_discriminator_loss, losses.non_saturating_generator_loss
    )
    try:
        losses.register_adversarial_loss(custom)
        assert losses.get_adversarial_loss("test-custom") is custom
    finally:
        losses.ADVERSARIAL_LOSSES.pop("test_custom")


def test_discriminator_probability():
    close(losses.discriminator_probability(logits(0.0, 0.0)), 0.5)
    close(losses.discriminator_probability(logits(math.log(3.0))), 0.75)


# === The gradient penalty ===


def linear_critic(weights):
    """f(x) = w . x: its gradient is w everywhere, so ||grad f|| = ||w|| for every input."""
    weights = tf.constant(weights)
    return lambda images: ops.sum(images * weights, axis=(1, 2, 3))


def test_gradient_penalty_of_a_linear_critic_is_the_squared_distance_of_its_norm_to_one():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 3, 2)).astype("float32")
    real = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    fake = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    norm = float(np.linalg.norm(weights))
    penalties, norms = losses.gradient_penalty(
        linear_critic(weights), real, fake, seed=0, return_norms=True
    )
    close(norms, [norm] * 4, atol=1e-5)
    close(penalties, [(norm - 1.0) ** 2] * 4, atol=1e-4)
    unit = weights / norm  # a 1-Lipschitz linear critic is not penalised at all
    close(losses.gradient_penalty(linear_critic(unit), real, fake, seed=0), [0.0] * 4, atol=1e-6)


def test_gradient_penalty_is_taken_at_the_interpolates():
    # f(x) = 0.5 ||x||^2 has gradient x: the norm at x_hat = eps x + (1 - eps) y is ||x_hat||.
    def critic(images):
        return 0.5 * ops.sum(ops.square(images), axis=(1, 2, 3))

    real = np.full((3, 2, 2, 1), 2.0, "float32")   # ||real|| = 4
    fake = np.zeros((3, 2, 2, 1), "float32")
    epsilon = np.array([1.0, 0.5, 0.0], "float32")  # x_hat = real, half-way, fake
    penalties, norms = losses.gradient_penalty(critic, real, fake, epsilon=epsilon, return_norms=True)
    close(norms, [4.0, 2.0, 1e-6], atol=1e-6)
    close(penalties, [9.0, 1.0, 1.0], atol=1e-5)


def test_interpolation_coefficients_are_uniform_per_example():
    # With real = 1 and fake = 0 and f(x) = 0.5 x^2, each norm *is* that example's epsilon.
    def critic(images):
        return 0.5 * ops.sum(ops.square(images), axis=(1, 2, 3))

    real, fake = np.ones((4000, 1, 1, 1), "float32"), np.zeros((4000, 1, 1, 1), "float32")
    _, epsilon = losses.gradient_penalty(critic, real, fake, seed=3, return_norms=True)
    epsilon = np.asarray(epsilon)
    assert epsilon.min() >= 0.0 and epsilon.max() <= 1.0  # a normal draw would leave [0, 1]
    assert abs(epsilon.mean() - 0.5) < 0.02 and abs(epsilon.std() - math.sqrt(1 / 12)) < 0.02
    assert len(np.unique(epsilon)) > 3900  # one coefficient per example, not one per batch
    _, again = losses.gradient_penalty(critic, real, fake, seed=3, return_norms=True)
    np.testing.assert_array_equal(epsilon, np.asarray(again))


def test_gradient_penalty_is_differentiable_where_the_gradient_vanishes():
    # A critic whose weights are all zero has zero input gradient: a plain sqrt would give NaN.
    weights = tf.Variable(np.zeros((2, 2, 1), "float32"))
    real = np.ones((2, 2, 2, 1), "float32")
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(
            lambda x: ops.sum(x * weights, axis=(1, 2, 3)), real, -real, seed=0
        )
        total = ops.sum(penalty)
    close(penalty, [1.0, 1.0], atol=1e-5)
    assert np.all(np.isfinite(tape.gradient(total, weights).numpy()))


def test_gradient_penalty_trains_a_critic_towards_unit_gradient_norm():
    weights = tf.Variable(np.full((2, 2, 1), 3.0, "float32"))  # ||w|| = 6
    optimizer = keras.optimizers.SGD(0.05)
    real = np.random.default_rng(0).normal(size=(8, 2, 2, 1)).astype("float32")
    for _ in range(100):
        with tf.GradientTape() as tape:
            loss = ops.mean(losses.gradient_penalty(
                lambda x: ops.sum(x * weights, axis=(1, 2, 3)), real, -real, seed=0
            ))
        optimizer.apply_gradients([(tape.gradient(loss, weights), weights)])
    assert abs(float(tf.norm(weights)) - 1.0) < 1e-3


def test_gradient_penalty_is_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    critic = keras.Sequential([
        keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)
    ])
    weights = critic.layers[-1].kernel
    weights.assign(np.full((16, 1), 0.25, "float32"))  # ||w|| = 1
    assert critic.layers[-1].compute_dtype == "bfloat16"
    real = tf.cast(np.ones((2, 4, 4, 1)), "bfloat16")
    penalties, norms = losses.gradient_penalty(critic, real, tf.zeros_like(real), seed=0,
                                               return_norms=True)
    assert penalties.dtype == "float32" and norms.dtype == "float32"
    close(norms, [1.0, 1.0], atol=1e-2)


# === R1 and R2 ===


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    weights = np.array([[[1.0], [2.0]], [[-2.0], [0.5]]], "float32")  # ||w||^2 = 9.25
    real = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype("float32")
    close(losses.r1_penalty(linear_critic(weights), real), [9.25] * 3, atol=1e-5)


def test_r1_and_r2_are_taken_at_the_given_images():
    # D(x) = sum x^2 has gradient 2x: ||grad||^2 = 4 ||x||^2, per example.
    def discriminator(images):
        return ops.sum(ops.square(images), axis=(1, 2, 3))

    images = np.zeros((2, 1, 2, 1), "float32")
    images[0, 0, :, 0] = [1.0, 2.0]   # ||x||^2 = 5
    images[1, 0, :, 0] = [0.0, -0.5]  # ||x||^2 = 0.25
    close(losses.r1_penalty(discriminator, images), [20.0, 1.0], atol=1e-5)
    close(losses.r2_penalty(discriminator, images), [20.0, 1.0], atol=1e-5)


# === Orthogonal regularization (BigGAN) ===


def test_orthogonal_regularization_hand_values():
    close(losses.orthogonal_regularization(np.eye(3, dtype="float32")), 0.0)
    # W^T W = [[2, 2], [2, 2]]: two off-diagonal 2s, squared and summed: 8.
    close(losses.orthogonal_regularization(np.ones((2, 2), "float32"), beta=1.0), 8.0)
    # Orthogonal columns of any length: still 0 (norms are free).
    close(losses.orthogonal_regularization(np.diag([3.0, 0.5]).astype("float32"), beta=1.0), 0.0)


def test_orthogonal_regularization_of_a_wide_matrix_takes_the_small_gram_path():
    wide = np.random.default_rng(0).normal(size=(3, 7)).astype("float64")
    gram = wide.T @ wide
    expected = np.sum((gram * (1 - np.eye(7))) ** 2)
    close(losses.orthogonal_regularization(wide.astype("float32"), beta=1.0), expected, atol=1e-3)


@pytest.mark.parametrize("shape", [(3, 3, 2, 4), (6, 3)])
def test_orthogonal_regularization_is_twice_biggan_pytorchs_ortho(shape):
    """BigGAN-PyTorch's `utils.ortho` adds `strength * 2 (W W^T * (1 - I)) W` to the gradient,
    with `W = param.view(out, -1)`; ours is the paper's `beta ||W^T W * (1 - I)||_F^2`, whose
    gradient is twice that: `beta` here is `strength = 2 beta` there (and the docstring says so)."""
    kernel = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float64"))
    beta = 1e-4
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        # A direct implementation of the paper's formula, one column per output unit.
        matrix = tf.reshape(kernel, (-1, shape[-1]))
        gram = tf.transpose(matrix) @ matrix
        direct = beta * tf.reduce_sum((gram * (1 - tf.eye(shape[-1], dtype=tf.float64))) ** 2)
    ours_gradient = tape.gradient(direct, kernel).numpy()
    close(losses.orthogonal_regularization(kernel, beta), float(direct), atol=1e-9)
    # BigGAN-PyTorch's ortho, on the same weights laid out as PyTorch does (outputs first).
    w = matrix.numpy().T
    ortho = 2 * ((w @ w.T) * (1 - np.eye(len(w)))) @ w
    ortho_gradient = (beta * ortho).T.reshape(shape)
    np.testing.assert_allclose(ours_gradient, 2 * ortho_gradient, rtol=1e-10, atol=1e-14)
    doc = losses.orthogonal_regularization.__doc__
    assert "BigGAN-PyTorch" in doc and "factor of 2" in doc


def test_orthogonal_regularizer_serializes_and_rejects_negative_beta():
    regularizer = losses.OrthogonalRegularizer(0.5)
    assert losses.OrthogonalRegularizer.from_config(regularizer.get_config()).beta == 0.5
    close(regularizer(np.ones((2, 2), "float32")), 4.0)
    with pytest.raises(ConfigError, match="beta"):
        losses.OrthogonalRegularizer(-1.0)
    with pytest.raises(ConfigError, match="needs a matrix"):
        losses.orthogonal_regularization(np.ones(3, "float32"))


# === Cycle consistency and identity (CycleGAN) ===


def test_cycle_and_identity_losses_are_per_example_l1():
    real = np.zeros((2, 2, 2, 1), "float32")
    other = np.stack([np.full((2, 2, 1), 0.5), np.array([[[1.0], [-1.0]], [[0.0], [2.0]]])])
    close(losses.cycle_consistency_loss(real, other.astype("float32")), [0.5, 1.0])
    close(losses.identity_loss(real, other.astype("float32")), [0.5, 1.0])


# === Neural style transfer ===


def test_gram_matrix_averages_channel_products_over_positions():
    features = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], "float32")  # 2 positions, 2 channels
    close(losses.gram_matrix(features), [[[5.0, 7.0], [7.0, 10.0]]])


def test_content_and_style_losses():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    close(losses.content_loss(features, features), [0.0, 0.0])
    close(losses.content_loss(np.zeros((1, 2, 2, 1), "float32"), np.full((1, 2, 2, 1), 3.0, "float32")), [9.0])
    close(losses.style_loss(features, features), [0.0, 0.0])
    # Doubling the features quadruples the Gram matrix: the difference is 3 G.
    gram = np.asarray(losses.gram_matrix(features))
    close(losses.style_loss(2.0 * features, features), np.mean((3.0 * gram) ** 2, axis=(1, 2)), atol=1e-4)


def test_style_statistics_loss_matches_channel_means_and_deviations():
    ones, threes = np.ones((1, 2, 2, 1), "float32"), np.full((1, 2, 2, 1), 3.0, "float32")
    close(losses.style_statistics_loss(ones, threes), [4.0], atol=1e-4)  # means differ by 2
    spread = np.array([[[[0.0], [2.0]], [[0.0], [2.0]]]], "float32")      # mean 1, std 1
    close(losses.style_statistics_loss(ones, spread), [1.0], atol=1e-2)   # stds differ by 1


def test_total_variation_sums_neighbour_differences():
    image = np.array([[[[0.0], [1.0]], [[1.0], [0.0]]]], "float32")  # 2 vertical + 2 horizontal
    close(losses.total_variation_loss(image), [4.0])
    smooth = np.random.default_rng(0).uniform(size=(2, 5, 6, 3)).astype("float32")
    close(losses.total_variation_loss(smooth), tf.image.total_variation(tf.constant(smooth)), atol=1e-4)
