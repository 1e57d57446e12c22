"""A battery of behaviour tests every GAN in the course must pass.

A model's test module subclasses `GANBattery`, says how to build its tiny configuration and a
batch of training data, and gets: output shapes and ranges, finite and moving losses, a
discriminator that learns against a frozen generator, `.keras` round-trips, SavedModel export
parity and signature names, and determinism under a seed.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan.errors import ConfigError
from kerasgan.export import export_model, load_serving_signature


class GANBattery:
    """Subclass and implement `build_gan()`, `batch(n)` and set `image_shape`."""

    image_shape = (28, 28, 1)
    batch_size = 8

    def build_gan(self, seed=0):
        raise NotImplementedError

    def batch(self, n, seed=0):
        """A training batch as the model's dataset yields it (images in [-1, 1])."""
        rng = np.random.default_rng(seed)
        return rng.uniform(-1, 1, (n, *self.image_shape)).astype("float32")

    def serving_inputs(self, gan, n, seed=0):
        """The serving_default inputs for `n` samples (unconditional: latent only)."""
        return {"latent": gan.latent_batch(n, gan.latent_dim, seed)}

    def compiled(self, seed=0):
        gan = self.build_gan(seed)
        gan.compile()
        return gan

    def dataset(self, steps=3, seed=0):
        data = self.batch(self.batch_size * steps, seed)
        return tf.data.Dataset.from_tensor_slices(data).batch(self.batch_size, drop_remainder=True)

    # --- shapes and ranges ---

    def test_generate_shape_and_range(self):
        gan = self.build_gan()
        images = gan.generate(5, seed=1)
        assert images.shape == (5, *self.image_shape)
        assert images.dtype == np.float32
        assert images.min() >= -1.0 and images.max() <= 1.0

    def test_generate_is_deterministic_for_a_seed(self):
        gan = self.build_gan()
        np.testing.assert_array_equal(gan.generate(4, seed=3), gan.generate(4, seed=3))
        assert not np.array_equal(gan.generate(4, seed=3), gan.generate(4, seed=4))

    # --- training ---

    def test_train_steps_give_finite_changing_losses(self):
        gan = self.compiled()
        history = gan.fit(self.dataset(steps=2), epochs=3, verbose=0).history
        for key in ("d_loss", "g_loss"):
            values = np.asarray(history[key])
            assert np.all(np.isfinite(values)), (key, values)
            assert np.ptp(values) > 0, f"{key} did not change: {values}"

    def test_training_changes_both_networks(self):
        gan = self.compiled()
        before_g = [w.copy() for w in gan.generator.get_weights()]
        before_d = [w.copy() for w in gan.discriminator.get_weights()]
        gan.fit(self.dataset(steps=1), epochs=1, verbose=0)
        assert any(not np.array_equal(a, b) for a, b in zip(before_g, gan.generator.get_weights()))
        assert any(not np.array_equal(a, b) for a, b in zip(before_d, gan.discriminator.get_weights()))

    def test_discriminator_learns_against_a_frozen_generator(self):
        """The model's own `train_step` (its D update with every penalty and regulariser it
        has), with G's weights put back after every step: D's adversarial loss on a fixed real
        batch and fixed fakes falls."""
        gan = self.compiled()
        real = next(iter(self.dataset(steps=1)))
        # The course's convention: a class-conditional model trains on (images, labels) pairs
        # and both its networks take the labels as their second input.
        images, labels = real if isinstance(real, tuple) else (real, None)

        def conditioned(x):
            return x if labels is None else [x, labels]

        frozen = gan.generator.get_weights()
        # Training mode, as the step makes its fakes (batch norm on the batch's statistics).
        fake = gan.generator(conditioned(gan.sample_latent(self.batch_size)), training=True)
        gan.generator.set_weights(frozen)

        def discriminator_loss():
            real_logits = gan.discriminator(conditioned(images), training=True)
            fake_logits = gan.discriminator(conditioned(fake), training=True)
            return float(keras.ops.mean(
                gan.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            ))

        losses = [discriminator_loss()]
        for _ in range(10):
            gan.train_step(real)
            gan.generator.set_weights(frozen)
            losses.append(discriminator_loss())
        assert losses[-1] < losses[0], losses

    def test_training_is_reproducible_under_a_seed(self):
        results = []
        for _ in range(2):
            keras.utils.set_random_seed(7)
            gan = self.compiled(seed=7)
            gan.fit(self.dataset(steps=2), epochs=1, verbose=0)
            results.append(gan.generate(3, seed=0))
        np.testing.assert_allclose(results[0], results[1], atol=1e-5)

    # --- saving and export ---

    def test_keras_round_trip(self, tmp_path):
        gan = self.compiled()
        gan.fit(self.dataset(steps=1), epochs=1, verbose=0)
        path = str(tmp_path / "model.keras")
        gan.save(path)
        restored = keras.saving.load_model(path)
        assert type(restored) is type(gan)
        np.testing.assert_allclose(restored.generate(4, seed=2), gan.generate(4, seed=2), atol=1e-6)
        for a, b in zip(gan.d_optimizer.variables, restored.d_optimizer.variables):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b))

    def test_export_parity_and_signature_names(self, tmp_path):
        gan = self.build_gan()
        path = export_model(gan, str(tmp_path), name="model")
        assert path.endswith("model/1")
        serve, specs = load_serving_signature(path)
        inputs = self.serving_inputs(gan, 6, seed=5)
        assert set(specs) == set(inputs)
        served = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        assert list(served) == ["images"]
        images = served["images"].numpy()
        assert images.dtype == np.uint8 and images.shape == (6, *self.image_shape)
        expected = self.expected_images(gan, inputs)
        assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1

    def expected_images(self, gan, inputs):
        from kerasgan.plotting import to_uint8

        return to_uint8(gan.generate_from_latent(inputs["latent"]))

    # --- precision policies ---

    @pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
    def test_mixed_precision_trains_and_exports_what_float32_draws(self, policy, tmp_path):
        """Under `policy`, a few `fit` steps keep losses and weights finite (float16 through
        both optimizers' loss scaling), and the export returns uint8 images of the usual shape,
        matching the in-memory model's and close to what the same weights draw in float32."""
        keras.mixed_precision.set_dtype_policy(policy)
        gan = self.compiled()
        scaled = [isinstance(o, keras.optimizers.LossScaleOptimizer)
                  for o in (gan.g_optimizer, gan.d_optimizer)]
        assert scaled == [policy == "mixed_float16"] * 2
        history = gan.fit(self.dataset(steps=2), epochs=2, verbose=0).history
        for key in ("d_loss", "g_loss"):
            assert np.all(np.isfinite(history[key])), (key, history[key])
        assert all(np.all(np.isfinite(w)) for w in gan.get_weights())

        serve, _ = load_serving_signature(export_model(gan, str(tmp_path), name="model"))
        inputs = self.serving_inputs(gan, 6, seed=5)
        images = serve(**{k: tf.constant(v) for k, v in inputs.items()})["images"].numpy()
        assert images.dtype == np.uint8 and images.shape == (6, *self.image_shape)
        in_memory = self.expected_images(gan, inputs).astype(int)
        # Graph rewrites (fused ops) round 16-bit intermediates differently than eager calls:
        # seen up to 0.65 levels on average (StyleGAN, bfloat16), 0 for most models.
        assert np.abs(images.astype(int) - in_memory).mean() < 1.0

        keras.mixed_precision.set_dtype_policy("float32")
        reference = self.build_gan()
        reference.set_weights(gan.get_weights())
        in_float32 = self.expected_images(reference, inputs).astype(int)
        # 16-bit activations round at every layer: seen up to 0.85 levels of 255 on average.
        assert np.abs(images.astype(int) - in_float32).mean() < 2.0


def assert_presets_are_checked(model_class, family):
    """`model_class.from_preset` refuses an unknown preset and an unknown option, each with a
    `ConfigError` naming the model family (e.g. "unknown CycleGAN preset")."""
    with pytest.raises(ConfigError, match=f"unknown {family} preset"):
        model_class.from_preset("huge")
    with pytest.raises(ConfigError, match=f"unknown {family} option"):
        model_class.from_preset("tiny", no_such_option=3)


def train_and_resume(model, tmp_path, capsys, **options):
    """Train `model`'s tiny recipe on the embedded data for one epoch, then rerun the same
    command for two: the second run must resume (one more epoch, not two) and export version 2.

    Returns:
        The two runs' `training.RunSummary`s.
    """
    from kerasgan import training

    options = {
        "data": "embedded", "preset": "tiny", "batch_size": 1000, "output": str(tmp_path / "run"),
        "export_dir": str(tmp_path / "models"), "seed": 0, "precision_policy": "float32",
        "verbose": 0, **options,
    }
    first = training.train(model, epochs=1, **options)
    resumed = training.train(model, epochs=2, **options)
    assert "resuming" in capsys.readouterr().err
    assert (first.epochs_done, resumed.epochs_done) == (1, 2)
    assert resumed.steps == first.steps > 0
    assert resumed.export_path.endswith(f"{model}/2")
    return first, resumed
