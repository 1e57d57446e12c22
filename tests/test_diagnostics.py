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
