"""Notebook 04's exercises: correct alternative answers pass, plausible wrong ones fail with a hint."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import course


def _per_example_mean(scores):
    return tf.reduce_mean(tf.reshape(tf.cast(scores, tf.float32), [tf.shape(scores)[0], -1]), axis=1)


def _penalty(critic_fn, real, fake, epsilon, mix=None, norm=None):
    """The gradient penalty with one piece swappable, for plausible wrong answers."""
    epsilon = tf.reshape(tf.cast(epsilon, tf.float32), [-1, 1, 1, 1])
    real, fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
    interpolated = (mix or (lambda e, r, f: e * r + (1.0 - e) * f))(epsilon, real, fake)
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = critic_fn(interpolated)
    gradients = tape.gradient(scores, interpolated)
    norms = (norm or (lambda g: tf.sqrt(tf.reduce_sum(g**2, axis=[1, 2, 3]) + 1e-12)))(gradients)
    return (norms - 1.0) ** 2


@pytest.mark.parametrize(
    "exercise_id, answer",
    [
        ("04.wasserstein_critic_loss",
         lambda real, fake: _per_example_mean(fake) - _per_example_mean(real)),
        ("04.gradient_penalty", _penalty),
        # the same interpolate, written as a step from the fake towards the real image
        ("04.gradient_penalty",
         lambda c, r, f, e: _penalty(c, r, f, e, mix=lambda e, r, f: f + e * (r - f))),
    ],
)
def test_notebook_04_alternative_answers_pass(exercise_id, answer, capsys):
    assert course.check(exercise_id, answer)


@pytest.mark.parametrize(
    "exercise_id, wrong, hint",
    [
        ("04.wasserstein_critic_loss",  # the generator's objective: signs swapped
         lambda real, fake: _per_example_mean(real) - _per_example_mean(fake), "values"),
        ("04.wasserstein_critic_loss",  # averaged over the batch too
         lambda real, fake: tf.reduce_mean(fake) - tf.reduce_mean(real), "shape"),
        ("04.wasserstein_critic_loss",  # score maps left unaveraged
         lambda real, fake: tf.squeeze(fake - real, axis=-1), "shape"),
        ("04.wasserstein_critic_loss",  # a sigmoid on the scores: a classifier, not a critic
         lambda real, fake: _per_example_mean(tf.sigmoid(fake)) - _per_example_mean(tf.sigmoid(real)),
         "values"),
        ("04.gradient_penalty",  # the interpolation coefficient on the wrong side
         lambda c, r, f, e: _penalty(c, r, f, e, mix=lambda e, r, f: (1.0 - e) * r + e * f), "values"),
        ("04.gradient_penalty",  # the squared norm, no square root
         lambda c, r, f, e: _penalty(c, r, f, e, norm=lambda g: tf.reduce_sum(g**2, axis=[1, 2, 3])),
         "values"),
        ("04.gradient_penalty",  # the norm over the channels only
         lambda c, r, f, e: _penalty(c, r, f, e, norm=lambda g: tf.norm(g, axis=-1)), "shape"),
        ("04.gradient_penalty",  # the penalty of the mean gradient norm, one number
         lambda c, r, f, e: tf.reduce_mean(_penalty(c, r, f, e)), "shape"),
        ("04.gradient_penalty",  # one-sided: only norms above 1 are penalised
         lambda c, r, f, e: _penalty(c, r, f, e, norm=lambda g: tf.maximum(
             tf.sqrt(tf.reduce_sum(g**2, axis=[1, 2, 3]) + 1e-12), 1.0)), "values"),
        ("04.gradient_penalty", lambda c, r, f, e: np.zeros(len(r), "float32"), "values"),
    ],
)
def test_notebook_04_wrong_answers_fail_with_a_hint(exercise_id, wrong, hint, capsys):
    assert course.check(exercise_id, wrong) is False
    out = capsys.readouterr().out
    assert f"hint for {exercise_id}" in out and hint in out
