import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan.callbacks import GANDiagnostics, mean_pairwise_distance
from kerasgan.models.toy import ToyGAN, ring_of_gaussians

KEYS = ("grad_norm_d", "grad_norm_g", "diversity")


@pytest.fixture
def ring():
    points = ring_of_gaussians(2048, seed=0)
    return points, tf.data.Dataset.from_tensor_slices(points).shuffle(2048, seed=0).batch(256)


def test_mean_pairwise_distance():
    assert mean_pairwise_distance(np.zeros((5, 3))) == 0.0
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_silent_on_a_healthy_run_and_logs_finite_values(ring, capsys):
    points, dataset = ring
    gan = ToyGAN.build(seed=0)
    gan.compile()
    diagnostics = GANDiagnostics(points[:128], patience=2)
    history = gan.fit(dataset, epochs=5, verbose=0, callbacks=[diagnostics])
    assert diagnostics.warnings == []
    assert "kerasgan:" not in capsys.readouterr().err
    for key in KEYS:
        values = history.history[key]
        assert len(values) == 5 and all(math.isfinite(v) for v in values), key
    assert history.history["grad_norm_g"][-1] > 0 and history.history["diversity"][-1] > 0.1


def test_warns_once_per_condition_on_a_run_built_to_collapse(ring, capsys):
    points, dataset = ring
    gan = ToyGAN.build(seed=0)
    # G ignores z (zero first-layer kernel) and never learns (lr 0); D learns 10x fast.
    gan.generator.get_layer("hidden0").kernel.assign(np.zeros((2, 128), "float32"))
    gan.compile(g_optimizer=keras.optimizers.Adam(0.0), d_optimizer=keras.optimizers.Adam(1e-2))
    diagnostics = GANDiagnostics(points[:128], patience=2)
    history = gan.fit(dataset, epochs=5, verbose=0, callbacks=[diagnostics])
    assert sorted(diagnostics.warnings) == ["discriminator_wins", "mode_collapse"]
    err = capsys.readouterr().err
    assert err.count("kerasgan: the discriminator wins outright") == 1
    assert err.count("kerasgan: sample diversity collapsed") == 1
    assert history.history["diversity"][-1] < 1e-6
    assert all(math.isfinite(v) for key in KEYS for v in history.history[key])


def test_works_with_a_conditional_batch_and_image_gan():
    from kerasgan.models.dcgan import DCGAN

    gan = DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0)
    gan.compile()
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype("float32")
    labels = np.arange(16, dtype="int32") % 10
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    diagnostics = GANDiagnostics((images[:8], labels[:8]), verbose=False)
    history = gan.fit(dataset, epochs=1, verbose=0, callbacks=[diagnostics])
    assert all(math.isfinite(history.history[key][0]) for key in KEYS)


def _reference_norms(gan, images, labels, latent):
    """D's and G's gradient norms of the non-saturating game's losses, written out here: both
    networks in inference mode, the labels (if any) as both networks' second input."""

    def conditioned(x):
        return x if labels is None else [x, labels]

    generator, discriminator = gan.generator, gan.discriminator
    images = tf.constant(images)
    fake = generator(conditioned(latent), training=False)
    with tf.GradientTape() as tape:
        real_logits = discriminator(conditioned(images), training=False)
        fake_logits = discriminator(conditioned(fake), training=False)
        d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits))
    d_norm = tf.linalg.global_norm(tape.gradient(d_loss, discriminator.trainable_variables))
    with tf.GradientTape() as tape:
        fake_logits = discriminator(conditioned(generator(conditioned(latent), training=False)),
                                    training=False)
        g_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits))
    g_norm = tf.linalg.global_norm(tape.gradient(g_loss, generator.trainable_variables))
    return float(d_norm), float(g_norm)


def _norms(gan, batch, **kwargs):
    diagnostics = GANDiagnostics(batch, verbose=False, **kwargs)
    diagnostics.set_model(gan)
    diagnostics.on_train_begin()
    return diagnostics, diagnostics.gradient_norms()


def test_gradient_norms_are_of_the_adversarial_loss_alone_without_weight_penalties():
    """A discriminator whose layers add a large weight penalty: the norms are those of the
    adversarial loss only, as documented (the penalty is the model's business, not a sign of
    the game's health)."""
    discriminator = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(100.0)),
        keras.layers.Dense(1),
    ])
    gan = ToyGAN(ToyGAN.build(width=16, depth=2).generator, discriminator, seed=0)
    gan.compile()
    assert discriminator.losses  # the penalty is there to be left out
    points = ring_of_gaussians(32, seed=0)
    diagnostics, norms = _norms(gan, points)
    expected = _reference_norms(gan, points, None, tf.constant(diagnostics.latent))
    np.testing.assert_allclose(norms, expected, rtol=1e-5)


def test_a_class_conditional_gan_gets_the_labels_of_its_batch():
    """`(images, labels)`: both networks of a conditional GAN take the batch's labels; without
    labels the callback stops with the model's one-line data error."""
    from kerasgan.errors import DataError
    from kerasgan.models.conditional_gan import ConditionalGAN

    gan = ConditionalGAN.from_preset("tiny", seed=0)
    gan.compile()
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (6, 28, 28, 1)).astype("float32")
    labels = np.array([0, 1, 2, 3, 4, 5], "int32")
    diagnostics, norms = _norms(gan, (images, labels))
    expected = _reference_norms(gan, images, tf.constant(labels), tf.constant(diagnostics.latent))
    np.testing.assert_allclose(norms, expected, rtol=1e-5)
    # The labels matter: the same images under other labels give other norms.
    _, other = _norms(gan, (images, labels[::-1].copy()))
    assert not np.allclose(norms, other)
    with pytest.raises(DataError, match="with_labels=True"):
        _norms(gan, images)


def test_the_callback_calls_the_networks_and_the_loss_itself():
    """No hook of the model stands between the callback and the networks or the loss."""
    import inspect
    import re

    from tests.models.test_gan import HOOKS

    source = inspect.getsource(GANDiagnostics)
    assert not [name for name in HOOKS if re.search(rf"(?<!adversarial_loss)\.{name}\(", source)]
    assert "adversarial_loss.discriminator_loss(" in source
    assert "adversarial_loss.generator_loss(" in source


# === Exercises of notebook 11 (kerasgan.course) ===


def _squared_distances(samples):
    flat = np.asarray(samples, "float64").reshape(len(samples), -1)
    return ((flat[:, None] - flat[None]) ** 2).sum(-1).mean()


@pytest.mark.parametrize(
    "exercise_id, wrong, hint",
    [
        # squared distances, and the diagonal's zeros counted in the mean
        ("11.mean_pairwise_distance", _squared_distances, "values"),
        ("11.mean_pairwise_distance",
         lambda s: np.sqrt(((np.reshape(s, (len(s), -1))[:, None] - np.reshape(s, (len(s), -1))[None]) ** 2).sum(-1)).mean(),
         "values"),
        ("11.mean_pairwise_distance", lambda s: np.zeros(len(s)), "shape"),
        # phases along one axis only, and a score that divides by zero on a constant image
        ("11.checkerboard_score",
         lambda x: np.std([np.mean(x[:, i::2]) for i in (0, 1)]) / np.std(x), "values"),
        ("11.checkerboard_score",
         lambda x: np.std([np.mean(x[:, i::2, j::2]) for i in (0, 1) for j in (0, 1)]) / np.std(x),
         "NaN or infinity"),
    ],
)
def test_wrong_answers_to_notebook_11_fail_with_a_hint(exercise_id, wrong, hint, capsys):
    from kerasgan import course

    with np.errstate(all="ignore"):
        assert course.check(exercise_id, wrong) is False
    out = capsys.readouterr().out
    assert f"hint for {exercise_id}" in out and hint in out, out
