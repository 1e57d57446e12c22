"""Exercises that check themselves.

Every notebook ends with exercises in which the learner writes one small, central piece of the
lesson. The checks live here, not in the notebooks, so a teacher can grade with nbgrader or with
`check` alone, and so every reference solution is the package's own implementation:

    >>> from kerasgan import course
    >>> course.check("01.non_saturating_generator_loss", my_generator_loss)
    correct: 01.non_saturating_generator_loss passed 4 cases
    True

`check` runs the learner's function and the reference on several random and edge-case inputs
and returns True, or prints one helpful hint (which input, expected vs got: shape, dtype, value)
and returns False. A wrong answer that raises or returns the wrong type is a False with a hint,
never a traceback.
"""

import dataclasses
import json
import os
from collections.abc import Callable

import numpy as np

from kerasgan.errors import ConfigError
from kerasgan.utils import counted


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One self-checking exercise.

    Attributes:
        id: `"NN.name"`, NN being the notebook number.
        notebook: the notebook's file name.
        title: what the learner writes, in a few words.
        solution: the reference; it calls the package's own implementation.
        cases: `fn(rng) -> list of argument tuples` (random and edge cases).
        atol: absolute tolerance of the value comparison.
        rtol: relative tolerance of the value comparison.
        warm_up: a one-line exercise that prepares a graded one; it is checked the same way
            but earns no points (its check cell is locked, not graded, in nbgrader).
    """

    id: str
    notebook: str
    title: str
    solution: Callable
    cases: Callable
    atol: float = 1e-5
    rtol: float = 1e-4
    warm_up: bool = False


EXERCISES = {}


def register(exercise):
    """Add an exercise to `EXERCISES` (ids are unique)."""
    if exercise.id in EXERCISES:
        raise ConfigError(f"exercise {exercise.id!r} is registered twice")
    EXERCISES[exercise.id] = exercise
    return exercise


def _to_numpy(value):
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


def _package_reference(module, name):
    """A reference solution that calls `module.name` (imported when first checked, so that
    importing this module stays light) and returns its result as a NumPy array."""

    def solution(*args):
        import importlib

        return _to_numpy(getattr(importlib.import_module(module), name)(*args))

    solution.__name__ = name
    return solution


def _describe(args):
    parts = []
    for arg in args:
        array = np.asarray(arg) if not callable(arg) else None
        if array is None:
            parts.append(getattr(arg, "__name__", type(arg).__name__))
        elif isinstance(arg, dict):  # e.g. a JSON response: its keys say enough
            parts.append(f"dict with keys {list(arg)}")
        elif array.ndim == 0:
            parts.append(repr(array.item()))
        else:
            parts.append(f"array{list(array.shape)} {array.dtype}")
    return "(" + ", ".join(parts) + ")"


def _is_document(value):
    return isinstance(value, dict) or (
        isinstance(value, (list, tuple)) and any(isinstance(item, dict) for item in value)
    )


def _compare_document(expected, got, atol, rtol, path="result"):
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path}: expected a dict with keys {list(expected)}, got a {type(got).__name__}"
        if set(got) != set(expected):
            return f"{path}: keys: expected {sorted(expected)}, got {sorted(got)}"
        pairs = [(f"{path}[{key!r}]", expected[key], got[key]) for key in expected]
    elif _is_document(expected):
        if not isinstance(got, list):
            return f"{path}: expected a list of {len(expected)}, got a {type(got).__name__}"
        if len(got) != len(expected):
            return f"{path}: length: expected {len(expected)}, got {len(got)}"
        pairs = [(f"{path}[{index}]", e, g) for index, (e, g) in enumerate(zip(expected, got))]
    else:
        problem = compare(expected, got, atol, rtol)
        return problem and f"{path}: {problem}"
    for where, part_expected, part_got in pairs:
        problem = _compare_document(part_expected, part_got, atol, rtol, where)
        if problem:
            return problem
    return None


def compare(expected, got, atol=1e-5, rtol=1e-4):
    """None when `got` matches `expected`, otherwise one sentence saying how it differs.

    Dicts (and lists of dicts) are JSON documents, e.g. a TF Serving request body: `got` must
    survive `json.dumps` (lists and Python numbers, not NumPy arrays), then matches `expected`
    key by key, with the numbers compared as arrays.
    """
    if _is_document(expected):
        try:
            got = json.loads(json.dumps(got))
        except (TypeError, ValueError) as error:
            return f"not JSON ({error}); convert NumPy values with .tolist() or int()/float()"
        return _compare_document(json.loads(json.dumps(expected)), got, atol, rtol)
    try:
        got = _to_numpy(got)
    except Exception:  # an object numpy cannot hold
        return f"returned a {type(got).__name__}, not an array of numbers"
    expected = _to_numpy(expected)
    if got.dtype.kind not in "biufc":
        return f"returned {got.dtype} data, not an array of numbers"
    if got.shape != expected.shape:
        return f"shape: expected {expected.shape}, got {got.shape}"
    if expected.dtype.kind != got.dtype.kind and not (
        expected.dtype.kind in "fc" and got.dtype.kind in "fc"
    ):
        return f"dtype: expected {expected.dtype}, got {got.dtype}"
    if not np.all(np.isfinite(got[np.isfinite(expected)] if expected.ndim else got)):
        return "values: got NaN or infinity where the reference is finite"
    if not np.allclose(got, expected, atol=atol, rtol=rtol):
        index = np.unravel_index(
            np.argmax(np.abs(got.astype("float64") - expected.astype("float64"))), expected.shape
        )
        where = f" at index {tuple(int(i) for i in index)}" if expected.ndim else ""
        return f"values{where}: expected {expected[index]!r}, got {got[index]!r}"
    return None


def check(exercise_id, fn, verbose=True):
    """Check a learner's function against the reference on several inputs.

    Step exercises (`kerasgan.course_steps.STEP_EXERCISES`, e.g. `"02.dcgan_train_step"`) take
    the learner's model class instead and are checked by one training step
    (`course_steps.check_step`).

    Args:
        exercise_id: a key of `EXERCISES` (e.g. `"01.discriminator_loss"`) or of
            `course_steps.STEP_EXERCISES`.
        fn: the learner's function (or model class, for a step exercise).
        verbose: print the verdict or the hint.

    Returns:
        True if every case matches, else False (after printing one hint).
    """
    from kerasgan import course_steps

    if exercise_id in course_steps.STEP_EXERCISES:
        return course_steps.check_step(exercise_id, fn, verbose=verbose)
    if exercise_id not in EXERCISES:
        raise ConfigError(
            f"unknown exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}"
        )
    exercise = EXERCISES[exercise_id]
    say = print if verbose else (lambda *_: None)
    cases = exercise.cases(np.random.default_rng(0))
    for number, args in enumerate(cases, start=1):
        expected = exercise.solution(*args)
        try:
            got = fn(*args)
        except NotImplementedError:
            say(f"not yet: {exercise_id} raised NotImplementedError; write your solution first")
            return False
        except Exception as error:
            say(f"hint for {exercise_id}, case {number} {_describe(args)}: your function raised "
                f"{type(error).__name__}: {error}")
            return False
        problem = compare(expected, got, exercise.atol, exercise.rtol)
        if problem:
            say(f"hint for {exercise_id}, case {number} {_describe(args)}: {problem}")
            return False
    warm_up = " (a warm-up: it earns no points)" if exercise.warm_up else ""
    say(f"correct: {exercise_id} passed {len(cases)} cases{warm_up}")
    return True


def check_training(cls, **options):
    """Train a learner's DCGAN class for a fixed number of steps and judge its samples.

    Notebook 02's second check of the from-scratch DCGAN, after the one-step check; this
    delegates to `kerasgan.course_runs.check_training_run`. The notebook passes the step count,
    the preset and the threshold of its mode: `notebook_settings("02").extra["training_check"]`.

    Args:
        cls: the learner's `keras.Model` subclass.
        **options: keyword arguments of `course_runs.check_training_run` (`steps`,
            `threshold`, `preset`, `seed`, ...).

    Returns:
        A `course_runs.TrainingRun`, true when the trained generator's score beats the
        threshold; it holds the score, the untrained generator's score and samples for a grid.
    """
    from kerasgan import course_runs

    return course_runs.check_training_run(cls, **options)


def check_experiment(experiment_id, results, verbose=True):
    """Check the results of a learner's ablation against the direction it should show.

    The experiments (e.g. `"04.gp_weight"`) live in `kerasgan.course_experiments.EXPERIMENTS`;
    this delegates to `course_experiments.check_experiment`.

    Args:
        experiment_id: a key of `course_experiments.EXPERIMENTS`.
        results: `{arm name: measured number}`, one entry per arm.
        verbose: print the verdict or the hint.

    Returns:
        True if every arm has a finite number and the numbers go the expected way by the
        experiment's margin, else False (after printing one hint).

    Raises:
        ConfigError: an unknown experiment id.
    """
    from kerasgan import course_experiments

    return course_experiments.check_experiment(experiment_id, results, verbose=verbose)


# === 01 · GAN fundamentals ===


def _logit_cases(rng):
    return [
        (rng.normal(size=(4, 1)).astype("float32"), rng.normal(size=(4, 1)).astype("float32")),
        # a PatchGAN-style map of logits per image
        (rng.normal(size=(3, 2, 2, 1)).astype("float32"), rng.normal(size=(3, 2, 2, 1)).astype("float32")),
        # confident scores: naive log(sigmoid(x)) gives -inf here
        (np.array([[60.0], [-60.0]], "float32"), np.array([[-60.0], [60.0]], "float32")),
        (np.zeros((2, 1), "float32"), np.zeros((2, 1), "float32")),
    ]


def _reference(name):
    def solution(*args):
        from kerasgan import losses

        return _to_numpy(getattr(losses, name)(*args))

    solution.__name__ = name
    return solution


register(Exercise(
    "01.discriminator_loss", "01_gan_fundamentals.ipynb",
    "the discriminator's binary cross-entropy loss, per example",
    _reference("minimax_discriminator_loss"), _logit_cases,
))
register(Exercise(
    "01.non_saturating_generator_loss", "01_gan_fundamentals.ipynb",
    "the non-saturating generator loss, per example",
    _reference("non_saturating_generator_loss"), lambda rng: [case[1:] for case in _logit_cases(rng)],
))


# === 02 · DCGAN ===


def _image_cases(rng):
    return [
        (rng.uniform(-1, 1, (2, 4, 4, 1)).astype("float32"),),
        (np.array([-1.0, -0.5, 0.0, 0.5, 1.0], "float32"),),
        # out of range: a generator without tanh, or float round-off
        (np.array([-1.2, 1.0000001, 3.0], "float32"),),
    ]


def _to_uint8_reference(images):
    from kerasgan.utils import to_uint8

    return to_uint8(images)


def _slerp_cases(rng):
    a, b = rng.normal(size=8), rng.normal(size=8)
    return [(a, b, 5), (a, 3.0 * b, 4), (np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3)]


def _slerp_reference(start, end, steps):
    from kerasgan.plotting import interpolate_latents

    return interpolate_latents(start, end, steps, spherical=True)


register(Exercise(
    "02.to_uint8", "02_dcgan.ipynb",
    "map generator output in [-1, 1] to uint8 pixels (rounded, clipped)",
    _to_uint8_reference, _image_cases, atol=0,
    warm_up=True,
))
register(Exercise(
    "02.slerp", "02_dcgan.ipynb",
    "spherical interpolation between two latent vectors",
    _slerp_reference, _slerp_cases, atol=1e-4,
))


# === 11 · Troubleshooting ===


def _pairwise_cases(rng):
    return [
        (rng.normal(size=(6, 2)).astype("float32"),),
        (rng.uniform(-1, 1, (4, 5, 5, 1)).astype("float32"),),  # images: flatten first
        (np.ones((5, 3), "float32"),),  # a collapsed generator: every sample the same
        (np.array([[0.0, 0.0], [3.0, 4.0]], "float32"),),
    ]


def _checkerboard_cases(rng):
    board = np.indices((6, 6)).sum(axis=0) % 2
    return [
        (rng.normal(size=(2, 8, 8, 1)).astype("float32"),),
        (np.broadcast_to(board[None, :, :, None], (2, 6, 6, 3)).astype("float32"),),
        (np.full((1, 4, 4, 1), 0.5, "float32"),),  # constant: no spread at all
        (np.repeat(np.linspace(-1, 1, 8, dtype="float32")[None, :, None, None], 8, axis=2),),
    ]


def _callbacks_reference(name):
    def solution(samples):
        from kerasgan import callbacks

        return np.float64(getattr(callbacks, name)(samples))

    solution.__name__ = name
    return solution


register(Exercise(
    "11.mean_pairwise_distance", "11_troubleshooting_gans.ipynb",
    "mean Euclidean distance between all pairs of distinct samples (the diversity score)",
    _callbacks_reference("mean_pairwise_distance"), _pairwise_cases, atol=1e-4,
))
register(Exercise(
    "11.checkerboard_score", "11_troubleshooting_gans.ipynb",
    "std of the four (row, column)-parity phase means over the std of all pixels",
    _callbacks_reference("checkerboard_score"), _checkerboard_cases, atol=1e-4,
))


# === 05 · CycleGAN ===


def _cycle_cases(rng):
    def images(*shape):
        return rng.uniform(-1, 1, shape).astype("float32")

    same = images(2, 4, 4, 1)
    return [
        (images(4, 8, 8, 1), images(4, 8, 8, 1)),
        (images(2, 6, 4, 3), images(2, 6, 4, 3)),  # colour, H != W: average every pixel and channel
        (same, same.copy()),  # a perfect round trip: 0 for every image
        # every error negative: the distance needs its absolute value
        (np.zeros((3, 2, 2, 1), "float32"), np.full((3, 2, 2, 1), -0.5, "float32")),
    ]


def _linear_decay_reference(step, initial_learning_rate, constant_steps, decay_steps):
    from kerasgan.models.cyclegan import LinearDecaySchedule

    schedule = LinearDecaySchedule(initial_learning_rate, constant_steps, decay_steps)
    return _to_numpy(schedule(np.asarray(step)))


def _linear_decay_cases(rng):
    constant, decay = int(rng.integers(1, 500)), int(rng.integers(1, 500))
    return [
        (np.arange(0, 2201, 100), 2e-4, 1000, 1000),  # the paper's shape, past its end
        (np.arange(0, 12), 1.0, 0, 10),  # no constant phase: decay from the first step
        (np.array([0, 4, 5, 6, 100]), 0.5, 5, 1),  # a one-step decay
        (rng.integers(0, 1200, 8), float(rng.uniform(1e-5, 1e-3)), constant, decay),
    ]


def _receptive_field_reference(downsamplings):
    from kerasgan.models.cyclegan import patchgan_receptive_field

    return np.int64(patchgan_receptive_field(downsamplings))


register(Exercise(
    "05.cycle_consistency_loss", "05_cyclegan.ipynb",
    "the cycle-consistency loss: mean absolute error per example",
    _reference("cycle_consistency_loss"), _cycle_cases,
    warm_up=True,
))
register(Exercise(
    "05.linear_decay", "05_cyclegan.ipynb",
    "the constant-then-linear learning rate at an array of optimizer steps",
    # rates are ~1e-4 and one step off changes them by ~1e-7: the default atol would not see it
    _linear_decay_reference, _linear_decay_cases, atol=1e-10,
))
register(Exercise(
    "05.patchgan_receptive_field", "05_cyclegan.ipynb",
    "the patch one PatchGAN score sees, in pixels",
    _receptive_field_reference, lambda rng: [(3,), (1,), (2,), (6,)], atol=0,
))


# === 06 · StyleGAN ===


def _modulation_cases(rng):
    return [
        (rng.normal(size=(3, 3, 4, 5)).astype("float32"), rng.normal(size=(2, 4)).astype("float32")),
        (rng.normal(size=(1, 1, 6, 3)).astype("float32"), rng.normal(size=(3, 6)).astype("float32")),
        # large styles: demodulation must bring every output channel back to unit norm
        (rng.normal(size=(3, 3, 2, 2)).astype("float32"), 50.0 * np.ones((1, 2), "float32")),
    ]


def _truncation_cases(rng):
    w, w_avg = rng.normal(size=(4, 8)).astype("float32"), rng.normal(size=8).astype("float32")
    return [(w, w_avg, psi) for psi in (0.7, 0.0, 1.0, -0.5)]


def _mixing_cases(rng):
    a = rng.normal(size=(2, 6, 3)).astype("float32")
    b = rng.normal(size=(2, 6, 3)).astype("float32")
    return [(a, b, 3), (a, b, 0), (a, b, 6), (a[:1], b[:1], 1)]


register(Exercise(
    "06.modulated_weights", "06_stylegan.ipynb",
    "StyleGAN2's per-example modulated and demodulated convolution weights",
    _package_reference("kerasgan.layers.style", "modulated_weights"), _modulation_cases, atol=1e-5,
))
register(Exercise(
    "06.truncate", "06_stylegan.ipynb",
    "the truncation trick: pull w towards the average w by psi",
    _package_reference("kerasgan.layers.style", "truncate"), _truncation_cases,
    warm_up=True,
))
register(Exercise(
    "06.mix_styles", "06_stylegan.ipynb",
    "style mixing: the first styles from one latent, the rest from another",
    _package_reference("kerasgan.layers.style", "mix_styles"), _mixing_cases, atol=0,
    warm_up=True,
))


# === 07 · BigGAN ===


def _hinge_cases(rng):
    return [
        (rng.normal(size=(5, 1)).astype("float32"), rng.normal(size=(5, 1)).astype("float32")),
        # inside and beyond the margin on both sides: only the former count
        (np.array([[2.0], [0.5], [-1.0], [1.0]], "float32"),
         np.array([[-2.0], [0.0], [1.0], [-1.0]], "float32")),
        # a map of scores per image
        (rng.normal(size=(3, 2, 2, 1)).astype("float32"), rng.normal(size=(3, 2, 2, 1)).astype("float32")),
    ]


def _orthogonal_cases(rng):
    def kernel(*shape):
        return rng.normal(size=shape).astype("float32")

    orthogonal, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    return [
        (kernel(4, 4), 1.0),
        (kernel(3, 3, 4, 8), 1e-2),  # a convolution: one filter per output channel
        (kernel(2, 40), 1e-3),  # more units than inputs (BigGAN's first dense layer)
        (kernel(40, 3), 1e-1),
        # orthogonal columns of any length cost nothing
        ((3.0 * orthogonal[:, :4]).astype("float32"), 1.0),
    ]


def _truncated_latent_cases(rng):
    z = rng.standard_normal((16, 4)).astype("float32")
    # far in the tails: Phi(z) rounds to 1 in float32 unless computed on -|z|
    tails = np.array([[-8.0, -3.0, 0.0, 3.0, 8.0]], "float32")
    return [(z, 1.0), (2.0 * z, 0.5), (z, 2.5), (tails, 1.0), (tails, 0.1), (tails, 6.0)]


register(Exercise(
    "07.hinge_discriminator_loss", "07_biggan.ipynb",
    "the discriminator's hinge loss, per example",
    _reference("hinge_discriminator_loss"), _hinge_cases,
))
register(Exercise(
    "07.orthogonal_regularization", "07_biggan.ipynb",
    "BigGAN's orthogonal regularization of one kernel",
    _reference("orthogonal_regularization"), _orthogonal_cases, atol=1e-4,
))
register(Exercise(
    "07.truncated_latent", "07_biggan.ipynb",
    "the truncation trick: map N(0, 1) latents onto the normal truncated to [-t, t]",
    _package_reference("kerasgan.models.biggan", "truncate_latent"), _truncated_latent_cases,
    atol=1e-4,
))


# === 09 · Evaluating GANs ===


def _evaluation_reference(name):
    def solution(*args):
        from kerasgan import evaluation

        return np.float64(getattr(evaluation, name)(*args))

    solution.__name__ = name
    return solution


def _covariance(rng, dim, rank=None):
    factor = rng.normal(size=(dim, rank or dim))
    return factor @ factor.T / (rank or dim)


def _frechet_cases(rng):
    mu, sigma = rng.normal(size=4), _covariance(rng, 4)
    return [
        (mu, sigma, rng.normal(size=4), _covariance(rng, 4)),
        (mu, sigma, mu, sigma),  # identical Gaussians: distance 0
        (mu, sigma, mu + 1.0, sigma),  # a pure shift of the mean: ||1||^2 = 4
        (np.zeros(3), np.diag([1.0, 4.0, 9.0]), np.zeros(3), np.eye(3)),  # (1-1)^2+(2-1)^2+(3-1)^2
        # singular covariances (fewer samples than dimensions): no inverse may be needed
        (rng.normal(size=5), _covariance(rng, 5, rank=2), rng.normal(size=5), _covariance(rng, 5, rank=3)),
    ]


def _mmd_cases(rng):
    x = rng.normal(size=(6, 3))
    return [
        (x, rng.normal(size=(5, 3))),  # two samples of one distribution (m != m')
        (x, rng.normal(loc=2.0, size=(6, 3))),  # a shifted distribution: clearly positive
        (x, x),  # the same points: the unbiased estimate is not 0 (the i = j terms are gone)
        (rng.normal(size=(2, 8)), rng.normal(size=(3, 8))),
    ]


register(Exercise(
    "09.frechet_distance", "09_evaluating_gans.ipynb",
    "the Fréchet distance between two Gaussians (the heart of FID)",
    _evaluation_reference("frechet_distance"), _frechet_cases, atol=1e-4,
))
register(Exercise(
    "09.mmd2_unbiased", "09_evaluating_gans.ipynb",
    "KID's unbiased squared MMD with the cubic polynomial kernel",
    _evaluation_reference("mmd2_unbiased"), _mmd_cases, atol=1e-6,
))


# === 08 · Neural style transfer ===


def _gram_reference(features):
    from kerasgan.losses import gram_matrix

    return _to_numpy(gram_matrix(features))


def _gram_cases(rng):
    return [
        (rng.standard_normal((1, 4, 4, 3)).astype("float32"),),
        (rng.standard_normal((2, 7, 5, 16)).astype("float32"),),  # H != W: divide by H * W
        (np.array([[[[1.0, 2.0], [3.0, 4.0]]]], "float32"),),  # by hand: [[5, 7], [7, 10]]
        (rng.standard_normal((3, 1, 1, 8)).astype("float32"),),  # one position: an outer product
        (np.zeros((1, 3, 3, 2), "float32"),),
    ]


def _adain_reference(content_features, style_features, epsilon=1e-5):
    from kerasgan.layers import AdaIN

    return _to_numpy(AdaIN(epsilon=epsilon)([content_features, style_features]))


def _adain_cases(rng):
    def features(shape, scale, shift):
        return (scale * rng.standard_normal(shape) + shift).astype("float32")

    flat = np.full((1, 4, 4, 2), 3.0, "float32")  # no variation: epsilon keeps 0 / 0 away
    return [
        (features((1, 4, 4, 3), 2.0, 1.0), features((1, 4, 4, 3), 0.5, -3.0), 1e-5),
        # spatial sizes differ: statistics are per example and channel, over height and width
        (features((2, 8, 6, 16), 2.0, 1.0), features((2, 5, 5, 16), 0.5, -3.0), 1e-5),
        (features((2, 4, 4, 3), 1.0, 0.0), features((1, 6, 6, 3), 3.0, 2.0), 1e-5),  # one style
        (flat, features((1, 4, 4, 2), 1.0, 5.0), 1e-5),
        # a large epsilon shows where it goes: inside the square root, for both images
        (features((1, 4, 4, 3), 0.5, 0.0), features((1, 4, 4, 3), 0.5, 1.0), 1.0),
    ]


register(Exercise(
    "08.gram_matrix", "08_neural_style_transfer.ipynb",
    "the Gram matrix of a feature map, averaged over positions",
    _gram_reference, _gram_cases,
))
register(Exercise(
    "08.adain", "08_neural_style_transfer.ipynb",
    "adaptive instance normalization: content features with the style's channel statistics",
    _adain_reference, _adain_cases, atol=1e-4,
))


# === 03 · Conditional GAN ===


def _projection_cases(rng):
    def case(batch, features, classes, labels=None):
        if labels is None:
            labels = rng.integers(0, classes, batch)
        return (
            rng.normal(size=(batch, features)).astype("float32"),
            np.asarray(labels, "int32"),
            rng.normal(size=(features, 1)).astype("float32"),
            rng.normal(size=(1,)).astype("float32"),
            rng.normal(size=(classes, features)).astype("float32"),
        )

    # the last: one example per class, in reverse order
    return [case(5, 6, 10), case(1, 2, 3), case(4, 3, 4, labels=[3, 2, 1, 0])]


def _latent_and_label_cases(rng):
    def case(batch, latent_dim, classes, width, labels=None):
        if labels is None:
            labels = rng.integers(0, classes, batch)
        return (
            rng.normal(size=(batch, latent_dim)).astype("float32"),
            np.asarray(labels, "int32"),
            rng.normal(size=(classes, width)).astype("float32"),
        )

    # the last: the same class twice and the last class (off-by-one lookups show here)
    return [case(4, 5, 10, 3), case(1, 2, 3, 4), case(3, 3, 4, 2, labels=[3, 3, 0])]


register(Exercise(
    "03.latent_and_label", "03_conditional_gan.ipynb",
    "the conditional generator's input [z, e(y)]: the latent and its label's embedding",
    _package_reference("kerasgan.models.conditional_gan", "latent_and_label"),
    _latent_and_label_cases, atol=1e-6,
))
register(Exercise(
    "03.projection_logits", "03_conditional_gan.ipynb",
    "the projection discriminator's logit psi(phi) + <E[y], phi>",
    _package_reference("kerasgan.models.conditional_gan", "projection_logits"), _projection_cases,
    atol=1e-4,
))
register(Exercise(
    "03.class_grid_labels", "03_conditional_gan.ipynb",
    "labels for a sample grid with a row per class",
    _package_reference("kerasgan.models.conditional_gan", "class_grid_labels"),
    # (20, 3): more rows than classes, so the rows start over at class 0
    lambda rng: [(100, 10), (6, 3), (7, 3), (20, 10), (1, 5), (20, 3)], atol=0,
    warm_up=True,
))


# === 04 · WGAN-GP ===


def _linear_critic(images):
    """f(x) = w . x with a fixed w: its gradient norm is ||w|| everywhere."""
    import tensorflow as tf

    weights = tf.reshape(tf.range(1, 1 + tf.size(images[0]), dtype=tf.float32), tf.shape(images[0]))
    return tf.reduce_sum(images * weights / 10.0, axis=[1, 2, 3])


def _quadratic_critic(images):
    """f(x) = 0.5 ||x||^2: its gradient at x is x itself."""
    import tensorflow as tf

    return 0.5 * tf.reduce_sum(tf.square(images), axis=[1, 2, 3])


def _tanh_critic(images):
    """A small non-linear critic whose gradient norm differs from point to point."""
    import tensorflow as tf

    return tf.reduce_sum(tf.tanh(2.0 * images) + 0.3 * images, axis=[1, 2, 3])


def _gradient_penalty_cases(rng):
    def images(*shape):
        return rng.uniform(-1, 1, shape).astype("float32")

    return [
        (_linear_critic, images(3, 2, 2, 1), images(3, 2, 2, 1), rng.uniform(size=3).astype("float32")),
        (_quadratic_critic, images(4, 3, 3, 2), images(4, 3, 3, 2), rng.uniform(size=4).astype("float32")),
        (_tanh_critic, images(2, 4, 4, 1), images(2, 4, 4, 1), np.array([0.0, 1.0], "float32")),
        # a zero gradient: the penalty is (0 - 1)^2 = 1 (the 1e-12 inside the square root
        # keeps the penalty's own gradient finite here; its value does not show it)
        (_quadratic_critic, np.zeros((2, 2, 2, 1), "float32"), np.zeros((2, 2, 2, 1), "float32"),
         np.array([0.5, 0.5], "float32")),
    ]


def _gradient_penalty_reference(critic_fn, real, fake, epsilon):
    from kerasgan import losses

    return _to_numpy(losses.gradient_penalty(critic_fn, real, fake, epsilon=epsilon))


register(Exercise(
    "04.wasserstein_critic_loss", "04_wgan_gp.ipynb",
    "the critic's Wasserstein loss C(G(z)) - C(x), per example",
    _reference("wasserstein_critic_loss"), _logit_cases,
    warm_up=True,
))
register(Exercise(
    "04.gradient_penalty", "04_wgan_gp.ipynb",
    "WGAN-GP's gradient penalty at given interpolation coefficients, per example",
    _gradient_penalty_reference, _gradient_penalty_cases, atol=1e-4,
))


# === 10 · Serving ===


def _payload_reference(format):
    def solution(latent, labels, *truncation):
        from kerasgan import serving

        inputs = {"latent": latent, "labels": labels}
        specs = {"latent": ("float32", (None, np.shape(latent)[1])), "labels": ("int32", (None,))}
        if truncation:
            inputs["truncation"], specs["truncation"] = truncation[0], ("float32", ())
        return serving.rest_payload(inputs, specs, format=format)

    solution.__name__ = f"rest_payload_{format}"
    return solution


def _labelled_latents(rng, with_truncation=False):
    def case(n, dim, labels, *extra):
        latent = rng.normal(size=(n, dim)).astype("float32")
        return (latent, np.asarray(labels, "int32"), *extra)

    if with_truncation:
        return [
            case(3, 4, [0, 5, 9], np.float32(0.5)),
            case(1, 2, [7], 2.0),  # one example, a Python float
            case(2, 3, [1, 1], np.float32(1.0)),
        ]
    return [
        case(3, 4, [0, 5, 9]),
        case(1, 2, [7]),  # one example: still a list of one instance
        (rng.normal(size=(2, 3)), np.array([1, 1], "int64")),  # float64 and int64 from NumPy
    ]


def _response_cases(rng):
    def pixels(*shape):
        return rng.integers(0, 256, shape).tolist()

    return [
        ({"predictions": pixels(2, 3, 3, 1)},),  # row format, one output: its name is dropped
        ({"outputs": pixels(1, 2, 2, 3)},),  # columnar, one output
        ({"predictions": [{"images": pixels(2, 2, 1), "scores": 0.5},
                          {"images": pixels(2, 2, 1), "scores": 0.1}]},),  # row, two outputs
        ({"outputs": {"images": pixels(2, 2, 2, 1), "row_images": pixels(2, 2, 1)}},),
    ]


def _images_from_response_reference(response):
    from kerasgan.serving import images_from_response

    return images_from_response(response)


register(Exercise(
    "10.row_payload", "10_serving_with_tf_serving.ipynb",
    "a TF Serving REST body in the row format for latent vectors and class labels",
    _payload_reference("row"), _labelled_latents,
    warm_up=True,
))
register(Exercise(
    "10.columnar_payload", "10_serving_with_tf_serving.ipynb",
    "a TF Serving REST body in the columnar format with a scalar truncation",
    _payload_reference("columnar"), lambda rng: _labelled_latents(rng, with_truncation=True),
    warm_up=True,
))
register(Exercise(
    "10.parse_predictions", "10_serving_with_tf_serving.ipynb",
    "the uint8 images of a TF Serving predict response, row or columnar",
    _images_from_response_reference, _response_cases, atol=0,
))


# === Notebook settings: one table for every machine ===
#
# A notebook's parameters cell asks `notebook_settings("NN")` for its numbers. They live in
# `NOTEBOOKS` below and nowhere else, so the times the notebooks, the README and the tests state
# are checked against the same figures (tests/test_course_hardware.py).


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the course trains on.

    Attributes:
        kind: `"gpu"` when TensorFlow sees a GPU, else `"cpu"`.
        devices: the GPUs' names, or the CPU's model name.
        amx_bf16: whether the CPU has AMX tiles for bfloat16 (`precision.cpu_has_bf16`).
        cpu_cores: the CPU cores this process may use.
    """

    kind: str
    devices: tuple
    amx_bf16: bool = False
    cpu_cores: int = 1

    def describe(self):
        """One line: the kind, the devices and what the CPU offers."""
        amx = "AMX bfloat16" if self.amx_bf16 else "no AMX"
        return f"{self.kind}: {', '.join(self.devices)} ({self.cpu_cores} CPU cores, {amx})"


def _cpu_name(cpuinfo="/proc/cpuinfo"):
    import platform

    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _gpu_name(device):
    import tensorflow as tf

    try:
        return tf.config.experimental.get_device_details(device).get("device_name", device.name)
    except (ValueError, TypeError, RuntimeError):
        # Some runtimes (and devices listed by other plugins) report no details: the
        # TensorFlow name still identifies the device.
        return device.name


def hardware():
    """Detect what the course trains on on this machine.

    Returns:
        A `Hardware`: `kind` is `"gpu"` when TensorFlow lists a GPU, else `"cpu"`.
    """
    import tensorflow as tf

    from kerasgan import precision

    gpus = tf.config.list_physical_devices("GPU")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if gpus:
        devices = tuple(_gpu_name(gpu) for gpu in gpus)
    else:
        devices = (_cpu_name(),)
    return Hardware(
        kind="gpu" if gpus else "cpu",
        devices=devices,
        amx_bf16=precision.cpu_has_bf16(),
        cpu_cores=cores or 1,
    )


@dataclasses.dataclass(frozen=True)
class NotebookPlan:
    """One row of the course table: a notebook's stated times and its settings per mode.

    Attributes:
        model: the `training.train` model the notebook trains (None: it trains none).
        cpu_minutes: the whole notebook's stated time in full mode on a 2-core CPU (1: under a
            minute); its first cell and the README say the same.
        gpu_minutes: the same on one GPU: an estimate until someone measures it.
        gpu_promise: what the longer GPU settings buy, as the notebook's first cell says it.
        smoke, cpu, gpu: the settings of each mode, as keyword arguments of `NotebookSettings`.
    """

    model: str | None
    cpu_minutes: int
    gpu_minutes: int
    gpu_promise: str
    smoke: dict
    cpu: dict
    gpu: dict


# Training budgets: the stated CPU time less what the rest of the notebook takes. `epochs` is
# only a ceiling (the embedded data's pass count); online, `auto` may give 12 times the images
# per epoch and the budget ends the run instead. GPU: full datasets, larger batches at the
# models' own learning rates, mixed_float16, longer budgets.
_FP16 = "mixed_float16"
NOTEBOOKS = {
    "00": NotebookPlan(
        None, 1, 1, "this notebook trains nothing",
        smoke={}, cpu={}, gpu={},
    ),
    "01": NotebookPlan(
        None, 2, 1, "2-D points are too small to keep a GPU busy",
        smoke={"epochs": 4, "batch_size": 256, "extra": {"points": 2048}},
        cpu={"epochs": 30, "batch_size": 256, "extra": {"points": 8192}},
        gpu={"epochs": 30, "batch_size": 256, "extra": {"points": 8192}},
    ),
    "02": NotebookPlan(
        "dcgan", 5, 6,
        "the full 60,000 MNIST digits for up to 20 epochs at batch 128, in `mixed_float16`: sharper, "
        "more varied digits",
        # training_check: the learner's own DCGAN, `check_training`'s calibrated settings
        # (course_runs.STEPS/THRESHOLD; TINY_STEPS/TINY_THRESHOLD in smoke mode).
        smoke={"preset": "tiny", "epochs": 1, "time_budget": 20,
               "extra": {"training_check": {"preset": "tiny", "steps": 800, "threshold": 450.0}}},
        cpu={"epochs": 20, "batch_size": 32, "time_budget": 3 * 60,
             "extra": {"training_check": {"preset": "default", "steps": 1000, "threshold": 250.0}}},
        gpu={"epochs": 20, "batch_size": 128, "time_budget": 5 * 60, "precision_policy": _FP16,
             "extra": {"training_check": {"preset": "default", "steps": 1000, "threshold": 250.0}}},
    ),
    "03": NotebookPlan(
        "cgan", 7, 7,
        "the full 60,000 MNIST digits for up to 20 epochs at batch 128, in `mixed_float16`: a clean "
        "digit in every class row",
        smoke={"preset": "tiny", "epochs": 1, "time_budget": 20},
        cpu={"epochs": 20, "batch_size": 32, "time_budget": 4 * 60},
        gpu={"epochs": 20, "batch_size": 128, "time_budget": 5 * 60, "precision_policy": _FP16},
    ),
    "04": NotebookPlan(
        "wgan-gp", 16, 13,
        "the full 60,000 MNIST digits for up to 100 epochs at batch 5 x 128, in `mixed_float16`: "
        "clean digits rather than recognisable ones",
        smoke={"preset": "tiny", "epochs": 1, "time_budget": 20,
               "extra": {"toy_steps": 50, "ablation_preset": "tiny", "ablation_steps": 80,
                         "ablation_batch": 16}},
        # 2 critic updates of 32 images: the recipe's CPU setting (WGAN-GP's n_critic on a CPU).
        cpu={"epochs": 150, "batch_size": 64, "time_budget": 10 * 60,
             "extra": {"toy_steps": 1500, "ablation_preset": "default", "ablation_steps": 200,
                       "ablation_batch": 32}},
        gpu={"epochs": 100, "batch_size": 640, "time_budget": 10 * 60, "precision_policy": _FP16,
             "extra": {"toy_steps": 1500, "ablation_preset": "default", "ablation_steps": 200,
                       "ablation_batch": 32}},
    ),
    "05": NotebookPlan(
        "cyclegan", 7, 10,
        "20 epochs instead of 6 at batch 16, in `mixed_float16`: sharper strokes in both directions",
        smoke={"preset": "tiny", "epochs": 1, "time_budget": 5,
               "extra": {"judged": 300, "ablation_preset": "tiny", "ablation_steps": 20,
                         "ablation_batch": 8}},
        cpu={"epochs": 6, "batch_size": 8, "time_budget": 4 * 60 + 30,
             "extra": {"judged": None, "ablation_preset": "default", "ablation_steps": 400,
                       "ablation_batch": 8}},
        gpu={"epochs": 20, "batch_size": 16, "time_budget": 8 * 60, "precision_policy": _FP16,
             "extra": {"judged": None, "ablation_preset": "default", "ablation_steps": 400,
                       "ablation_batch": 8}},
    ),
    "06": NotebookPlan(
        "stylegan", 17, 22,
        "up to 150 epochs at batch 64, in `mixed_float16`: clean coloured digits and crisp mixing grids",
        smoke={"preset": "tiny", "data": "embedded", "image_size": 16, "epochs": 1, "time_budget": 5},
        cpu={"data": "embedded", "image_size": 32, "epochs": 40, "batch_size": 32, "time_budget": 15 * 60},
        gpu={"data": "embedded", "image_size": 32, "epochs": 150, "batch_size": 64,
             "time_budget": 20 * 60, "precision_policy": _FP16},
    ),
    "07": NotebookPlan(
        "biggan", 8, 11,
        "the full 60,000 MNIST digits for up to 30 epochs at batch 256, in `mixed_float16`: crisp "
        "class rows",
        smoke={"preset": "tiny", "data": "embedded", "epochs": 1, "time_budget": 5,
               "extra": {"n_per_class": 4, "n_measure": 10}},
        cpu={"data": "embedded", "epochs": 15, "batch_size": 64, "time_budget": 6 * 60,
             "extra": {"n_per_class": 8, "n_measure": 200}},
        gpu={"epochs": 30, "batch_size": 256, "time_budget": 10 * 60, "precision_policy": _FP16,
             "extra": {"n_per_class": 8, "n_measure": 200}},
    ),
    "08": NotebookPlan(
        None, 10, 5, "512-pixel images, 500 optimiser steps and a 1,000-step AdaIN decoder",
        smoke={"extra": {"image_size": 64, "steps": 8, "probe_size": 48, "probe_steps": 4,
                         "adain_size": 32, "adain_filters": (16, 8, 8), "adain_epochs": 2,
                         "adain_steps_per_epoch": 2}},
        cpu={"extra": {"image_size": 256, "steps": 300, "probe_size": 128, "probe_steps": 100,
                       "adain_size": 96, "adain_filters": (256, 128, 64), "adain_epochs": 10,
                       "adain_steps_per_epoch": 12}},
        # L-BFGS optimises the image's pixels: float32 on every machine.
        gpu={"extra": {"image_size": 512, "steps": 500, "probe_size": 256, "probe_steps": 200,
                       "adain_size": 256, "adain_filters": (256, 128, 64), "adain_epochs": 10,
                       "adain_steps_per_epoch": 100}},
    ),
    "10": NotebookPlan(
        "dcgan", 3, 3,
        "the same two-minute run at batch 128, in `mixed_float16`: training is short and serving is "
        "cheap",
        smoke={"preset": "tiny", "data": "embedded", "epochs": 20, "time_budget": 10},
        cpu={"data": "embedded", "epochs": 20, "batch_size": 32, "time_budget": 2 * 60},
        gpu={"data": "embedded", "epochs": 20, "batch_size": 128, "time_budget": 2 * 60,
             "precision_policy": _FP16},
    ),
    "11": NotebookPlan(
        None, 3, 1, "2-D points are too small to keep a GPU busy",
        smoke={"epochs": 4, "batch_size": 256, "extra": {"points": 2048, "head_start": 2, "patience": 2}},
        cpu={"epochs": 20, "batch_size": 256, "extra": {"points": 8192, "head_start": 3, "patience": 3}},
        gpu={"epochs": 20, "batch_size": 256, "extra": {"points": 8192, "head_start": 3, "patience": 3}},
    ),
    # The capstone: `model` is the default choice; batches are multiples of 10 so that a learner
    # who picks WGAN-GP keeps whole critic slices (5 per step on a GPU, 2 on a CPU). `n` is the
    # images per side of every score.
    "12": NotebookPlan(
        "dcgan", 8, 8,
        "the full 60,000 MNIST digits through tensorflow-datasets at batch 160, in "
        "`mixed_float16`, for the same six minutes: many more steps over more varied digits",
        smoke={"preset": "tiny", "data": "embedded", "epochs": 1, "time_budget": 5,
               "extra": {"n": 200}},
        cpu={"data": "embedded", "epochs": 100, "batch_size": 40, "time_budget": 6 * 60,
             "extra": {"n": 2000}},
        gpu={"epochs": 30, "batch_size": 160, "time_budget": 6 * 60, "precision_policy": _FP16,
             "extra": {"n": 2000}},
    ),
}

MODES = ("smoke", "cpu", "gpu")


@dataclasses.dataclass(frozen=True)
class NotebookSettings:
    """The settings one notebook runs with on this machine, in this mode.

    Attributes:
        notebook: the notebook's number, `"NN"`.
        mode: `"smoke"`, `"cpu"` or `"gpu"`.
        hardware: the detected `Hardware`.
        model: the model `training.train` trains, or None.
        data: the `data` argument of `training.train`.
        batch_size: images per step (None: the recipe's).
        precision_policy: the `precision_policy` of `training.train`.
        time_budget: seconds after which training stops (None: unbounded but by `epochs`).
        preset: the model configuration.
        epochs: the most epochs training may run.
        image_size: image height and width (None: the dataset's).
        extra: the notebook's own numbers (sizes of plots, toy experiments, ...).
    """

    notebook: str
    mode: str
    hardware: Hardware
    model: str | None = None
    data: str = "auto"
    batch_size: int | None = None
    precision_policy: str = "auto"
    time_budget: float | None = None
    preset: str = "default"
    epochs: int | None = None
    image_size: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def smoke(self):
        return self.mode == "smoke"

    def train_options(self):
        """The keyword arguments of `training.train` these settings fix."""
        return {
            "data": self.data, "batch_size": self.batch_size, "preset": self.preset,
            "epochs": self.epochs, "time_budget": self.time_budget,
            "precision_policy": self.precision_policy, "image_size": self.image_size,
        }

    def describe(self):
        """Two lines for the notebook: the hardware, then the settings chosen for it."""
        if self.model is None:
            chosen = ", ".join(f"{key} {value}" for key, value in self.extra.items()) or "no training"
        else:
            budget = f"{self.time_budget:g} s" if self.time_budget else "none"
            chosen = (
                f"{self.model} ({self.preset}), data {self.data}, batch "
                f"{self.batch_size or '(the recipe default)'}, precision {self.precision_policy}, "
                f"time budget {budget}, epochs at most {self.epochs}"
            )
        return f"hardware: {self.hardware.describe()}\nnotebook {self.notebook}, {self.mode} settings: {chosen}"

    def report(self, summary):
        """What a finished run trained on and under which budget, for the notebook to print.

        Args:
            summary: the `training.RunSummary` of the run.

        Returns:
            A line naming the data the run used (what `auto` resolved to) and the budget.
        """
        path = os.path.join(summary.run_dir, "options.json")
        try:
            with open(path) as handle:
                options = json.load(handle)
        except (OSError, ValueError):
            options = {}
        source = options.get("data_source", self.data)
        asked = options.get("data", self.data)
        data = f"{source} (asked for {asked})" if source != asked else source
        seconds = options.get("time_budget", self.time_budget)
        budget = f"{seconds:g} s" if seconds else "none"
        ended = f"stopped by {summary.stopped_by}" if summary.stopped_by else "all epochs done"
        return (
            f"data: {data}; time budget: {budget}; {summary.epochs_done} of "
            f"{counted(summary.epochs_total, 'epoch')} ({counted(summary.steps, 'step')} this "
            f"run), {ended}"
        )


def notebook_settings(notebook, smoke=None, mode=None, hardware_info=None):
    """The settings notebook `notebook` runs with here, from the table `NOTEBOOKS`.

    Args:
        notebook: the notebook's number, e.g. `"04"`.
        smoke: force smoke mode on or off (default: `KERASGAN_SMOKE`, via
            `utils.is_smoke_mode`). Smoke mode wins over the hardware.
        mode: `"cpu"` or `"gpu"` to choose the full-mode settings yourself (default: the
            detected hardware's kind).
        hardware_info: a `Hardware` (default: `hardware()`).

    Returns:
        A `NotebookSettings`.

    Raises:
        ConfigError: an unknown notebook or mode.

    Example:

    >>> settings = notebook_settings("02", smoke=True)
    >>> settings.preset
    'tiny'
    """
    from kerasgan.utils import is_smoke_mode

    notebook = str(notebook).zfill(2)
    if notebook not in NOTEBOOKS:
        raise ConfigError(f"no settings for notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}")
    if mode is not None and mode not in MODES[1:]:
        raise ConfigError(f"unknown mode {mode!r}; choose cpu or gpu")
    hardware_info = hardware_info or hardware()
    smoke = is_smoke_mode() if smoke is None else smoke
    chosen = "smoke" if smoke else (mode or hardware_info.kind)
    plan = NOTEBOOKS[notebook]
    values = dict(getattr(plan, chosen))
    values["extra"] = dict(values.get("extra", {}))
    return NotebookSettings(
        notebook=notebook, mode=chosen, hardware=hardware_info, model=plan.model, **values
    )
