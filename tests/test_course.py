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


# === 05 · CycleGAN ===


def _l1_per_example(real, cycled):
    # A correct answer in NumPy: flatten each image, then average.
    difference = np.abs(np.asarray(real, "float64") - np.asarray(cycled, "float64"))
    return difference.reshape(len(difference), -1).mean(axis=1)


def _rate(step, initial, constant_steps, decay_steps):
    progress = (np.asarray(step, "float64") - constant_steps) / decay_steps
    return initial * (1.0 - np.clip(progress, 0.0, 1.0))


def _scalar_rate(step, initial, constant_steps, decay_steps):
    # Right for one step, but `min`/`max` cannot compare a whole array of steps.
    return initial * (1.0 - min(max((step - constant_steps) / decay_steps, 0.0), 1.0))


def _field(n, kernel=4, tail=(1, 1)):
    field = 1
    for stride in list(tail) + [2] * n:
        field = field * stride + (kernel - stride)
    return field


@pytest.mark.parametrize(
    "exercise_id, answer",
    [
        ("05.cycle_consistency_loss", _l1_per_example),
        ("05.linear_decay", _rate),
        ("05.patchgan_receptive_field", _field),
    ],
)
def test_notebook_05_alternative_answers_pass(exercise_id, answer, capsys):
    assert course.check(exercise_id, answer)


@pytest.mark.parametrize(
    "exercise_id, wrong, hint",
    [
        ("05.cycle_consistency_loss", lambda real, cycled: np.zeros(len(real)), "values"),
        ("05.cycle_consistency_loss",  # no absolute value: errors of both signs cancel
         lambda real, cycled: (np.asarray(cycled) - real).reshape(len(real), -1).mean(axis=1), "values"),
        ("05.cycle_consistency_loss",  # squared error (L2) instead of L1
         lambda real, cycled: np.square(np.asarray(real) - cycled).reshape(len(real), -1).mean(axis=1),
         "values"),
        ("05.cycle_consistency_loss", lambda real, cycled: np.abs(real - cycled).mean(), "shape"),
        ("05.cycle_consistency_loss", lambda real, cycled: np.abs(real - cycled).mean(axis=-1), "shape"),
        ("05.linear_decay", lambda step, initial, c, d: np.full(np.shape(step), initial), "values"),
        ("05.linear_decay",  # decays from step 0, forgetting the constant phase
         lambda step, initial, c, d: _rate(step, initial, 0, d), "values"),
        ("05.linear_decay",  # no clip: the rate turns negative after the decay
         lambda step, initial, c, d: initial * (1.0 - np.maximum((np.asarray(step) - c) / d, 0.0)),
         "values"),
        ("05.linear_decay", lambda step, initial, c, d: _rate(np.asarray(step) + 1, initial, c, d), "values"),
        ("05.linear_decay", _scalar_rate, "raised ValueError"),
        ("05.patchgan_receptive_field", lambda n: _field(n, tail=()), "values"),  # no stride-1 layers
        ("05.patchgan_receptive_field", lambda n: _field(n, kernel=3), "values"),
        ("05.patchgan_receptive_field", lambda n: float(_field(n)), "dtype"),
    ],
)
def test_notebook_05_wrong_answers_fail_with_a_hint(exercise_id, wrong, hint, capsys):
    assert course.check(exercise_id, wrong) is False
    out = capsys.readouterr().out
    assert f"hint for {exercise_id}" in out and hint in out


# === 07 · BigGAN ===


def _hinge(real, fake):
    real, fake = np.reshape(real, (len(real), -1)), np.reshape(fake, (len(fake), -1))
    return np.maximum(0.0, 1.0 - real).mean(axis=1) + np.maximum(0.0, 1.0 + fake).mean(axis=1)


def _no_margin(real, fake):  # max(0, .) forgotten: the Wasserstein loss plus 2
    real, fake = np.reshape(real, (len(real), -1)), np.reshape(fake, (len(fake), -1))
    return (1.0 - real).mean(axis=1) + (1.0 + fake).mean(axis=1)


def _off_diagonal_penalty(kernel, beta, columns_axis=-1):
    w = np.moveaxis(np.asarray(kernel, "float64"), columns_axis, -1)
    w = w.reshape(-1, w.shape[-1])
    gram = w.T @ w
    return beta * np.sum((gram * (1.0 - np.eye(len(gram)))) ** 2)


def _truncate(z, t, float32=False):
    """The inverse-CDF map written straight from the formula, on `Phi(z)` (no symmetry)."""
    from scipy.special import ndtr, ndtri

    dtype = "float32" if float32 else "float64"
    low, high = np.asarray(ndtr(-t), dtype), np.asarray(ndtr(t), dtype)
    return ndtri(low + ndtr(np.asarray(z, "float64")).astype(dtype) * (high - low))


@pytest.mark.parametrize(
    "exercise_id, answer",
    [
        ("07.hinge_discriminator_loss", _hinge),
        ("07.orthogonal_regularization", _off_diagonal_penalty),
        ("07.truncated_latent", _truncate),  # in float64, Phi(z) keeps enough digits
    ],
)
def test_notebook_07_alternative_answers_pass(exercise_id, answer, capsys):
    assert course.check(exercise_id, answer)


@pytest.mark.parametrize(
    "exercise_id, wrong, hint",
    [
        ("07.hinge_discriminator_loss", lambda real, fake: np.zeros(len(real)), "values"),
        ("07.hinge_discriminator_loss", lambda real, fake: _hinge(-real, -fake), "values"),  # signs
        ("07.hinge_discriminator_loss", _no_margin, "values"),
        ("07.hinge_discriminator_loss", lambda real, fake: _hinge(real, fake).mean(), "shape"),
        ("07.hinge_discriminator_loss",
         lambda real, fake: np.maximum(0.0, 1.0 - real) + np.maximum(0.0, 1.0 + fake), "shape"),
        ("07.orthogonal_regularization", lambda kernel, beta: 0.0, "values"),
        ("07.orthogonal_regularization",  # rows as the units: W W^T
         lambda kernel, beta: _off_diagonal_penalty(kernel, beta, columns_axis=0), "values"),
        ("07.orthogonal_regularization",  # ||W^T W - I||^2: also pins the filters' norms to 1
         lambda kernel, beta: _off_diagonal_penalty(kernel, beta)
         + beta * np.sum((np.square(np.reshape(kernel, (-1, np.shape(kernel)[-1]))).sum(axis=0) - 1.0) ** 2),
         "values"),
        ("07.orthogonal_regularization", lambda kernel, beta: _off_diagonal_penalty(kernel, 1.0), "values"),
        ("07.truncated_latent", lambda z, t: np.clip(z, -t, t), "values"),  # clipping, not truncating
        ("07.truncated_latent", lambda z, t: -_truncate(z, t), "values"),
        ("07.truncated_latent", lambda z, t: np.zeros_like(z), "values"),
        ("07.truncated_latent",  # resampling: the right distribution, but not the same numbers
         lambda z, t: np.where(np.abs(z) > t, np.random.default_rng(0).uniform(-t, t, np.shape(z)), z),
         "values"),
        ("07.truncated_latent", lambda z, t: _truncate(z, t, float32=True), "NaN or infinity"),
    ],
)
def test_notebook_07_wrong_answers_fail_with_a_hint(exercise_id, wrong, hint, capsys):
    assert course.check(exercise_id, wrong) is False
    out = capsys.readouterr().out
    assert f"hint for {exercise_id}" in out and hint in out


# === 10 · Serving: REST bodies are JSON documents, compared key by key ===


def _row(latent, labels):
    return {"instances": [{"latent": z.tolist(), "labels": int(y)} for z, y in zip(latent, labels)]}


def _columnar(latent, labels, truncation):
    return {"inputs": {"latent": np.asarray(latent).tolist(), "labels": np.asarray(labels).tolist(),
                       "truncation": float(truncation)}}


def _images(response):
    outputs = response.get("predictions", response.get("outputs"))
    if isinstance(outputs, dict):
        outputs = outputs["images"]
    elif isinstance(outputs[0], dict):
        outputs = [row["images"] for row in outputs]
    return np.asarray(outputs, "uint8")


@pytest.mark.parametrize("exercise_id, answer", [
    ("10.row_payload", _row), ("10.columnar_payload", _columnar), ("10.parse_predictions", _images),
])
def test_hand_written_serving_answers_pass(exercise_id, answer, capsys):
    assert course.check(exercise_id, answer)


@pytest.mark.parametrize(
    "exercise_id, wrong, hint",
    [
        # NumPy arrays inside the body: json.dumps refuses them
        ("10.row_payload", lambda z, y: {"instances": [{"latent": a, "labels": int(b)} for a, b in zip(z, y)]},
         "not JSON"),
        # the columnar layout under the row key
        ("10.row_payload", lambda z, y: {"instances": {"latent": z.tolist(), "labels": y.tolist()}},
         "['instances']: expected a list of 3, got a dict"),
        # each instance keeps a batch dimension
        ("10.row_payload", lambda z, y: {"instances": [{"latent": z[i:i + 1].tolist(), "labels": int(y[i])}
                                                       for i in range(len(y))]},
         "['latent']: shape: expected (4,), got (1, 4)"),
        # labels as floats: TF Serving wants JSON integers for an int32 input
        ("10.row_payload", lambda z, y: {"instances": [{"latent": a.tolist(), "labels": float(b)}
                                                       for a, b in zip(z, y)]},
         "['labels']: dtype"),
        ("10.columnar_payload", lambda z, y, t: {"instances": _columnar(z, y, t)["inputs"]},
         "keys: expected ['inputs'], got ['instances']"),
        # a scalar sent as a list of one
        ("10.columnar_payload", lambda z, y, t: {"inputs": {**_columnar(z, y, t)["inputs"], "truncation": [float(t)]}},
         "['truncation']: shape: expected (), got (1,)"),
        ("10.parse_predictions", lambda r: np.asarray(r.get("predictions", r.get("outputs"))), "dtype: expected uint8"),
        ("10.parse_predictions", lambda r: np.asarray(r["predictions"], "uint8"), "raised KeyError"),
    ],
)
def test_plausible_wrong_serving_answers_fail_with_a_hint(exercise_id, wrong, hint, capsys):
    assert course.check(exercise_id, wrong) is False
    out = capsys.readouterr().out
    assert f"hint for {exercise_id}" in out and hint in out, out
