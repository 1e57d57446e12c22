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
from collections.abc import Callable

import numpy as np

from kerasgan.errors import ConfigError


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
    """

    id: str
    notebook: str
    title: str
    solution: Callable
    cases: Callable
    atol: float = 1e-5
    rtol: float = 1e-4


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


def _describe(args):
    parts = []
    for arg in args:
        array = np.asarray(arg) if not callable(arg) else None
        if array is None:
            parts.append(getattr(arg, "__name__", type(arg).__name__))
        elif array.ndim == 0:
            parts.append(repr(array.item()))
        else:
            parts.append(f"array{list(array.shape)} {array.dtype}")
    return "(" + ", ".join(parts) + ")"


def compare(expected, got, atol=1e-5, rtol=1e-4):
    """None when `got` matches `expected`, otherwise one sentence saying how it differs."""
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

    Args:
        exercise_id: a key of `EXERCISES`, e.g. `"01.discriminator_loss"`.
        fn: the learner's function.
        verbose: print the verdict or the hint.

    Returns:
        True if every case matches, else False (after printing one hint).
    """
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
    say(f"correct: {exercise_id} passed {len(cases)} cases")
    return True


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
    from kerasgan.plotting import to_uint8

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
