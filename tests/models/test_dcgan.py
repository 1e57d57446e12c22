import numpy as np
import pytest

from kerasgan.errors import ConfigError
from kerasgan.models.dcgan import DCGAN, build_discriminator, build_generator, upsampling_plan
from tests.models.gan_battery import GANBattery


class TestDCGAN(GANBattery):
    image_shape = (28, 28, 1)

    def build_gan(self, seed=0):
        return DCGAN.from_preset("tiny", image_size=28, channels=1, seed=seed)


class TestDCGANColour32(GANBattery):
    """The same battery at 32x32 RGB: three upsamplings instead of two."""

    image_shape = (32, 32, 3)

    def build_gan(self, seed=0):
        return DCGAN.from_preset("tiny", image_size=32, channels=3, seed=seed)


@pytest.mark.parametrize("size, plan", [(28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (48, (6, 3))])
def test_upsampling_plan(size, plan):
    assert upsampling_plan(size) == plan


@pytest.mark.parametrize("size", [30, 100, 7, 3])
def test_unsupported_image_size_is_a_clear_error(size):
    with pytest.raises(ConfigError, match="not supported"):
        upsampling_plan(size)


def test_generator_and_discriminator_shapes():
    generator = build_generator(latent_dim=10, image_size=64, channels=3, width=32)
    discriminator = build_discriminator(image_size=64, channels=3, width=8)
    images = generator(np.zeros((2, 10), "float32"))
    assert tuple(images.shape) == (2, 64, 64, 3)
    assert tuple(discriminator(images).shape) == (2, 1)
    assert generator.inputs[0].name == "latent"


def test_default_preset_matches_the_documented_widths():
    gan = DCGAN.from_preset("default")
    assert gan.latent_dim == 100
    assert gan.generator.get_layer("to_feature_map").output.shape[-1] == 128
    assert gan.discriminator.get_layer("down0").filters == 64


def test_unknown_preset_and_option_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown DCGAN preset"):
        DCGAN.from_preset("huge")
    with pytest.raises(ConfigError, match="unknown DCGAN option"):
        DCGAN.from_preset("tiny", depth=3)


def test_generator_output_is_float32_under_mixed_bfloat16():
    import keras

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    gan = DCGAN.from_preset("tiny")
    gan.compile()
    assert gan.generate(2).dtype == np.float32
    assert gan.discriminator(np.zeros((2, 28, 28, 1), "float32")).dtype == "float32"


class TestDCGANWithEMA(GANBattery):
    """The battery with a moving-average generator: samples and exports come from it."""

    def build_gan(self, seed=0):
        gan = DCGAN.from_preset("tiny", seed=seed)
        return DCGAN(gan.generator, gan.discriminator, seed=seed, ema_decay=0.9)


def test_ema_update_follows_the_formula():
    import tensorflow as tf

    gan = DCGAN.from_preset("tiny", seed=0)
    gan = DCGAN(gan.generator, gan.discriminator, ema_decay=0.75)
    gan.compile()
    before = [w.numpy().copy() for w in gan.generator_ema.weights]
    gan.fit(tf.data.Dataset.from_tensor_slices(np.zeros((8, 28, 28, 1), "float32")).batch(8), verbose=0)
    for average, old, weight in zip(gan.generator_ema.weights, before, gan.generator.weights):
        expected = 0.75 * old + 0.25 * weight.numpy() if weight.trainable else weight.numpy()
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert gan.sampling_generator is gan.generator_ema


def test_ema_decay_out_of_range_is_a_clear_error():
    gan = DCGAN.from_preset("tiny")
    with pytest.raises(ConfigError, match="ema_decay"):
        DCGAN(gan.generator, gan.discriminator, ema_decay=1.5)
