"""Notebook 09's exercises: correct alternative answers pass, plausible wrong ones fail with a hint."""

import numpy as np
import pytest

from kerasgan import course


def _fd_with_sqrtm(mu1, sigma1, mu2, sigma2):
    # The textbook route (scipy's matrix square root of the product) is a correct answer too.
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)


def _fd_elementwise_sqrt(mu1, sigma1, mu2, sigma2):
    # np.sqrt is element-wise, not the matrix square root.
    covmean = np.sqrt(np.abs(sigma1 @ sigma2))
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)


def _fd_without_the_mean(mu1, sigma1, mu2, sigma2):
    return _fd_with_sqrtm(mu1, sigma1, mu1, sigma2)


def _fd_distance_not_squared(mu1, sigma1, mu2, sigma2):
    return np.sqrt(max(_fd_with_sqrtm(mu1, sigma1, mu2, sigma2), 0.0))


def test_the_scipy_route_passes(capsys):
    assert course.check("09.frechet_distance", _fd_with_sqrtm)


@pytest.mark.parametrize("wrong", [_fd_elementwise_sqrt, _fd_without_the_mean, _fd_distance_not_squared])
def test_wrong_frechet_distances_fail_with_a_hint(wrong, capsys):
    assert course.check("09.frechet_distance", wrong) is False
    out = capsys.readouterr().out
    assert "hint for 09.frechet_distance" in out and "values" in out


def _kernel(x, y, power=3, scale=True):
    return (x @ y.T / (x.shape[1] if scale else 1) + 1.0) ** power


def _mmd(x, y, biased=False, **kernel):
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = _kernel(x, x, **kernel), _kernel(y, y, **kernel), _kernel(x, y, **kernel)
    if biased:  # the i = j terms kept: positive even for one distribution
        return k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()
    return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
            - 2 * k_xy.mean())


def test_a_loop_free_unbiased_mmd_passes(capsys):
    assert course.check("09.mmd2_unbiased", _mmd)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x, y: _mmd(x, y, biased=True),
        lambda x, y: _mmd(x, y, scale=False),  # kernel without the 1/d
        lambda x, y: _mmd(x, y, power=2),  # a quadratic kernel
    ],
    ids=["biased", "unscaled_kernel", "quadratic_kernel"],
)
def test_wrong_mmds_fail_with_a_hint(wrong, capsys):
    assert course.check("09.mmd2_unbiased", wrong) is False
    out = capsys.readouterr().out
    assert "hint for 09.mmd2_unbiased" in out and "values" in out
