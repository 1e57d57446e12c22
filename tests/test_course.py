import numpy as np
import pytest
import tensorflow as tf

from kerasgan import course
from kerasgan.errors import ConfigError


@pytest.mark.parametrize("exercise_id", sorted(course.EXERCISES))
def test_every_reference_solution_passes_its_own_check(exercise_id, capsys):
    exercise = course.EXERCISES[exercise_id]
    assert course.check(exercise_id, exercise.solution)
    assert "correct" in capsys.readouterr().out


def _wrong_sign(real, fake):
    return -(tf.reduce_mean(tf.nn.softplus(-real), axis=[1]) + tf.reduce_mean(tf.nn.softplus(fake), axis=[1]))


def _naive(real, fake):  # log of a sigmoid that underflows on confident logits
    real, fake = tf.reshape(real, [tf.shape(real)[0], -1]), tf.reshape(fake, [tf.shape(fake)[0], -1])
    return tf.reduce_mean(-tf.math.log(tf.sigmoid(real)) - tf.math.log(1 - tf.sigmoid(fake)), axis=1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda real, fake: np.zeros(len(real)), "values"),
        (_wrong_sign, "values"),
        (lambda real, fake: tf.nn.softplus(-real) + tf.nn.softplus(fake), "shape"),
        (_naive, "NaN or infinity"),
        (lambda real, fake: "a string", "not an array of numbers"),
        (lambda real: real, "raised TypeError"),
    ],
)
def test_plausible_wrong_answers_fail_with_a_hint(wrong, hint, capsys):
    assert course.check("01.discriminator_loss", wrong) is False
    out = capsys.readouterr().out
    assert "hint for 01.discriminator_loss" in out and hint in out


def test_an_unfinished_exercise_says_not_yet(capsys):
    def unfinished(fake_logits):
        raise NotImplementedError

    assert course.check("01.non_saturating_generator_loss", unfinished) is False
    assert "not yet" in capsys.readouterr().out


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown exercise"):
        course.check("99.nothing", lambda: None)


def test_every_exercise_names_an_existing_notebook():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for exercise in course.EXERCISES.values():
        assert os.path.exists(os.path.join(root, "notebooks", exercise.notebook)), exercise.id
        assert exercise.id.split(".")[0] == exercise.notebook[:2]
