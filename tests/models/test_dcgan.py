import numpy as np
import pytest

from kerasgan.errors import ConfigError
from kerasgan.models.dcgan import DCGAN, build_discriminator, build_generator, upsampling_plan
from tests.models.gan_battery import GANBattery
from tests.models.test_gan import assert_no_hooks


class TestDCGAN(GANBattery):
    image_shape = (28, 28, 1)

    def build_gan(self, seed=0):
        return DCGAN.from_preset("tiny", image_size=28, channels=1, seed=seed)


class TestDCGANWithLazyR1(GANBattery):
    """The same battery with the R1 penalty on every second update of D (what a CPU run adds):
    training, reproducibility, the Keras round trip, export and both mixed policies."""

    def build_gan(self, seed=0):
        return DCGAN.from_preset("tiny", seed=seed, r1_gamma=1.0, r1_interval=2)


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


class TestDCGANWithEMAAndAugmentation(GANBattery):
    """The battery with a moving-average generator, from which samples and exports come, and
    DiffAugment in the step: reproducible, resumable, saved and exported all the same."""

    def build_gan(self, seed=0):
        gan = DCGAN.from_preset("tiny", seed=seed)
        return DCGAN(
            gan.generator, gan.discriminator, seed=seed, ema_decay=0.9,
            augmentation="color,translation,cutout",
        )


def test_ema_update_follows_the_formula_with_its_warm_up():
    import tensorflow as tf

    gan = DCGAN.from_preset("tiny", seed=0, ema_decay=0.75)
    gan.compile()
    before = [w.numpy().copy() for w in gan.generator_ema.weights]
    gan.fit(tf.data.Dataset.from_tensor_slices(np.zeros((8, 28, 28, 1), "float32")).batch(8), verbose=0)
    decay = min(0.75, (1 + 1) / (10 + 1))  # after G's first update: a short average
    for average, old, weight in zip(gan.generator_ema.weights, before, gan.generator.weights):
        expected = decay * old + (1 - decay) * weight.numpy() if weight.trainable else weight.numpy()
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert gan.sampling_generator is gan.generator_ema
    gan.g_optimizer.iterations.assign(10_000)  # past the warm-up: the decay asked for
    assert float(gan.current_ema_decay()) == pytest.approx(0.75)


def test_preset_options_reach_the_model_and_its_config():
    gan = DCGAN.from_preset("tiny", ema_decay=0.99, augmentation="translation")
    config = gan.get_config()
    assert config["ema_decay"] == 0.99 and config["augmentation"] == "translation"
    revived = DCGAN.from_config(config)
    assert revived.augmentation.policy == "translation" and revived.generator_ema is not None
    assert DCGAN.from_preset("tiny").augmentation is None


def test_augmentation_is_refused_by_a_model_whose_step_does_not_use_it():
    from kerasgan.models.conditional_gan import ConditionalGAN

    gan = ConditionalGAN.from_preset("tiny")
    with pytest.raises(ConfigError, match="augmentation"):
        ConditionalGAN(gan.generator, gan.discriminator, augmentation="cutout")


@pytest.mark.parametrize("decay", [1.5, 0.0, "0.99", True, float("nan")])
def test_ema_decay_out_of_range_or_not_a_number_is_a_clear_error(decay):
    gan = DCGAN.from_preset("tiny")
    with pytest.raises(ConfigError, match="ema_decay"):
        DCGAN(gan.generator, gan.discriminator, ema_decay=decay)


# === The training step: written out in models/dcgan.py, as the paper's algorithm ===

def assert_step_is_written_out(gan, batch):
    """`gan.train_step` and `gan.test_step` are its class's own, the class has none of the base
    GAN's old hooks to call (each would hide a loss, a penalty or a network call in another
    file), both steps report the game's logs, and the comments of the training step carry every
    numbered step of the module docstring."""
    import inspect
    import re
    import sys

    cls = type(gan)
    assert "train_step" in vars(cls), f"{cls.__name__} inherits its train_step"
    assert "test_step" in vars(cls), f"{cls.__name__} inherits its test_step"
    assert_no_hooks(cls)
    for step in (gan.train_step, gan.test_step):
        logs = step(batch)
        assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
        assert all(np.isfinite(float(value)) for value in logs.values())

    docstring = sys.modules[cls.__module__].__doc__
    numbered = re.findall(r"^(\d+)\. ", docstring, flags=re.MULTILINE)
    assert len(numbered) >= 4, "the module docstring quotes the algorithm in numbered steps"
    source = inspect.getsource(cls.train_step)
    for number in numbered:
        assert f"# {number}." in source, f"step {number} is not marked in train_step"


def test_dcgan_writes_out_its_own_steps_without_the_base_hooks():
    gan = DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0)
    gan.compile()
    batch = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype("float32")
    assert_step_is_written_out(gan, batch)


def test_dcgan_step_ignores_labels_that_come_with_the_images():
    """A labelled dataset (MNIST's `(image, label)` pairs) trains the unconditional DCGAN on the
    images alone: the same update as the images without labels."""
    import keras
    import tensorflow as tf

    batch = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype("float32")
    results = []
    for data in (tf.constant(batch), (tf.constant(batch), tf.constant([1, 2, 3, 4]))):
        keras.utils.set_random_seed(0)  # the same initial weights for both
        gan = DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0)
        gan.compile()
        gan.train_step(data)
        results.append(gan.generator.get_weights() + gan.discriminator.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_the_papers_initialiser_is_one_option_away():
    """Radford et al.'s N(0, 0.02) for every kernel, against Keras's Glorot uniform."""
    import keras

    from kerasgan.models.dcgan import PAPER_KERNEL_INITIALIZER

    keras.utils.set_random_seed(0)
    paper = DCGAN.from_preset("default", seed=0, kernel_initializer=PAPER_KERNEL_INITIALIZER)
    default = DCGAN.from_preset("default", seed=0)
    for gan, normal in ((paper, True), (default, False)):
        for network in (gan.generator, gan.discriminator):
            for layer in network.layers:
                if hasattr(layer, "kernel") and layer.kernel.shape.num_elements() > 1000:
                    kernel = layer.kernel.numpy()
                    std = float(np.std(kernel))
                    # A uniform draw never exceeds sqrt(3) standard deviations; a normal one
                    # does about 7% of the time beyond 1.8.
                    tails = float(np.mean(np.abs(kernel) > 1.8 * std))
                    if normal:
                        assert abs(std - 0.02) < 0.002 and tails > 0.03, (layer.name, std, tails)
                    else:
                        assert tails == 0.0, (layer.name, tails)


# === Lazy R1 (not in the paper; a CPU run's setting) ===


def test_r1_options_reach_the_model_and_its_config_and_default_to_none():
    gan = DCGAN.from_preset("tiny", r1_gamma=0.1, r1_interval=4)
    assert (gan.r1_gamma, gan.r1_interval) == (0.1, 4)
    config = gan.get_config()
    assert (config["r1_gamma"], config["r1_interval"]) == (0.1, 4)
    revived = DCGAN.from_config(config)
    assert (revived.r1_gamma, revived.r1_interval) == (0.1, 4)
    assert DCGAN.from_preset("default").r1_gamma == 0.0  # the paper's game: no penalty
    # GAN's positional arguments keep their places ahead of the new options.
    positional = DCGAN(gan.generator, gan.discriminator, 8, 3)
    assert (positional.latent_dim, positional.seed, positional.r1_gamma) == (8, 3, 0.0)


@pytest.mark.parametrize("option, value", [
    ("r1_gamma", -0.1), ("r1_gamma", "0.1"), ("r1_gamma", float("nan")), ("r1_gamma", float("inf")),
    ("r1_interval", 0), ("r1_interval", 1.5), ("r1_interval", True), ("r1_interval", "4"),
    ("r1_interval", float("inf")),
])
def test_bad_r1_options_are_clear_errors(option, value):
    with pytest.raises(ConfigError, match=f"{option} must be"):
        DCGAN.from_preset("tiny", **{option: value})


def test_r1_loss_is_the_weighted_squared_input_gradient_of_ds_real_scores():
    import tensorflow as tf

    gan = DCGAN.from_preset("tiny", seed=0, r1_gamma=0.5, r1_interval=4)
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(gan.discriminator(real, training=True))
    squared_norms = tf.reduce_sum(tf.square(tape.gradient(total, real)), axis=[1, 2, 3])
    expected = 4 * 0.5 / 2 * float(tf.reduce_mean(squared_norms))
    assert expected > 0
    assert float(gan.r1_loss(real)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("updates_before, due", [(0, True), (1, False), (2, True)])
def test_lazy_r1_changes_ds_update_only_on_every_r1_interval_th_update(updates_before, due):
    """Against the same model without the penalty, from the same weights and D's update count:
    D's weights after one step differ exactly when the count is a multiple of the interval."""
    import keras

    batch = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    weights = []
    for r1_gamma in (10.0, 0.0):
        keras.utils.set_random_seed(0)
        gan = DCGAN.from_preset("tiny", seed=0, r1_gamma=r1_gamma, r1_interval=2)
        gan.compile()
        gan.d_optimizer.build(gan.discriminator.trainable_variables)
        gan.d_optimizer.iterations.assign(updates_before)
        gan.train_step(batch)
        weights.append(gan.discriminator.get_weights())
    differs = any(not np.allclose(a, b) for a, b in zip(*weights))
    assert differs == due
