"""What `kerasgan/models/gan.py` promises every model: one `generate` call for all of them."""

import numpy as np
import pytest

from kerasgan.errors import ConfigError
from tests.models.test_reference_steps import _models

SAMPLERS = ["toy", "dcgan", "cgan", "wgan-gp", "stylegan", "biggan"]
CONDITIONAL = {"cgan", "biggan"}
TRUNCATING = {"stylegan", "biggan"}


@pytest.mark.parametrize("name", SAMPLERS)
def test_generate_is_one_call_for_every_model(name):
    """`generate(n, *, seed, labels, truncation, batch_size)`: keyword-only after `n`, so a
    positional second argument (today a seed on one model, a label on another) is refused."""
    gan = _models()[name][0]()
    with pytest.raises(TypeError):
        gan.generate(2, 3)
    first = gan.generate(2, seed=3)
    assert first.shape[0] == 2 and first.dtype == np.float32
    np.testing.assert_array_equal(first, gan.generate(2, seed=3))
    # Inference mode: an image does not depend on the others in its forward pass.
    np.testing.assert_allclose(first, gan.generate(2, seed=3, batch_size=1), atol=1e-5)
    assert not np.array_equal(first, gan.generate(2, seed=4))
    if name in CONDITIONAL:
        assert gan.generate(2, seed=3, labels=[1, 2]).shape == first.shape
    else:
        with pytest.raises(ConfigError, match="labels"):
            gan.generate(2, seed=3, labels=[1, 2])
    if name in TRUNCATING:
        truncated = gan.generate(2, seed=3, truncation=0.5)
        assert truncated.shape == first.shape and not np.array_equal(truncated, first)
    else:
        with pytest.raises(ConfigError, match="truncation"):
            gan.generate(2, seed=3, truncation=0.5)
