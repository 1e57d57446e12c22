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


# === The base GAN is plumbing, not a training step (issue 18) ===

# The members the base GAN once routed every model's step through. Each hid a loss, a penalty
# or a network call in another file than the model's own; no model and no caller may need them.
HOOKS = (
    "unpack_batch", "generator_inputs", "discriminate", "discriminator_penalty", "score_logs",
    "average", "regularization", "discriminator_loss", "generator_loss", "apply_update",
    "discriminator_step", "generator_step",
)


def assert_no_hooks(cls):
    """Neither `cls` nor any class it inherits from defines one of the old hooks."""
    present = [name for name in HOOKS if hasattr(cls, name)]
    assert not present, f"{cls.__name__} still has {present}"


def test_the_base_gan_has_none_of_the_old_hooks():
    from kerasgan.models.gan import GAN

    assert_no_hooks(GAN)


def test_a_bare_gan_refuses_to_train_or_evaluate_with_one_clear_error():
    """`GAN` has no step to inherit: `fit` and `evaluate` stop at once, saying every model writes
    its own, instead of silently training some generic game; no weight moves."""
    import tensorflow as tf

    from kerasgan.models.dcgan import DCGAN
    from kerasgan.models.gan import GAN

    networks = DCGAN.from_preset("tiny", seed=0)
    gan = GAN(networks.generator, networks.discriminator, seed=0)
    gan.compile()
    before = [w.copy() for w in gan.get_weights()]
    data = tf.data.Dataset.from_tensor_slices(np.zeros((4, 28, 28, 1), "float32")).batch(4)
    with pytest.raises(NotImplementedError, match="writes out its own train_step"):
        gan.fit(data, epochs=1, verbose=0)
    with pytest.raises(NotImplementedError, match="writes out its own test_step"):
        gan.evaluate(data, verbose=0)
    for old, new in zip(before, gan.get_weights()):
        np.testing.assert_array_equal(old, new)
