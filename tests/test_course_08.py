"""Notebook 08's exercises: correct alternative answers pass, plausible wrong ones fail with a hint."""

import numpy as np
import pytest

from kerasgan import course

# === 08.gram_matrix ===


def _gram_numpy(features):
    # A correct answer without TensorFlow: flatten the positions, then F^T F / M.
    features = np.asarray(features, "float64")
    batch, height, width, channels = features.shape
    flat = features.reshape(batch, height * width, channels)
    return np.einsum("bki,bkj->bij", flat, flat) / (height * width)


def _gram_not_averaged(features):
    # Gatys et al.'s sum over positions: right idea, but not the course's normalisation.
    return _gram_numpy(features) * features.shape[1] * features.shape[2]


def _gram_over_height_squared(features):
    # Only right for square feature maps.
    return _gram_numpy(features) * features.shape[2] / features.shape[1]


def _gram_positions_by_positions(features):
    # Correlating positions instead of channels: the wrong axis is contracted.
    features = np.asarray(features, "float64")
    batch, height, width, channels = features.shape
    flat = features.reshape(batch, height * width, channels)
    return np.einsum("bik,bjk->bij", flat, flat) / channels


def test_a_numpy_gram_matrix_passes(capsys):
    assert course.check("08.gram_matrix", _gram_numpy)


@pytest.mark.parametrize(
    "wrong, problem",
    [
        (_gram_not_averaged, "values"),
        (_gram_over_height_squared, "values"),
        (_gram_positions_by_positions, "shape"),
    ],
)
def test_wrong_gram_matrices_fail_with_a_hint(wrong, problem, capsys):
    assert course.check("08.gram_matrix", wrong) is False
    out = capsys.readouterr().out
    assert "hint for 08.gram_matrix" in out and problem in out


# === 08.adain ===


def _adain_numpy(content, style, epsilon=1e-5, axes=(1, 2), epsilon_inside=True):
    def moments(x):
        mean, variance = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        std = np.sqrt(variance + epsilon) if epsilon_inside else np.sqrt(variance) + epsilon
        return mean, std

    content, style = np.asarray(content, "float64"), np.asarray(style, "float64")
    (content_mean, content_std), (style_mean, style_std) = moments(content), moments(style)
    with np.errstate(divide="ignore", invalid="ignore"):
        return style_std * (content - content_mean) / content_std + style_mean


def test_a_numpy_adain_passes(capsys):
    assert course.check("08.adain", _adain_numpy)


@pytest.mark.parametrize(
    "wrong, problem",
    [
        # statistics over the whole batch (batch normalization), not per example
        (lambda c, s, epsilon=1e-5: _adain_numpy(c, s, epsilon, axes=(0, 1, 2)), "values"),
        # epsilon added to the standard deviation instead of the variance
        (lambda c, s, epsilon=1e-5: _adain_numpy(c, s, epsilon, epsilon_inside=False), "values"),
        # no epsilon at all: a flat channel divides 0 by 0
        (lambda c, s, epsilon=1e-5: _adain_numpy(c, s, 0.0), "NaN"),
        # the style's statistics and the content's swapped
        (lambda c, s, epsilon=1e-5: _adain_numpy(s, c, epsilon), "values"),
    ],
    ids=["batch_statistics", "epsilon_outside_sqrt", "no_epsilon", "swapped"],
)
def test_wrong_adains_fail_with_a_hint(wrong, problem, capsys):
    assert course.check("08.adain", wrong) is False
    out = capsys.readouterr().out
    assert "hint for 08.adain" in out and problem in out
