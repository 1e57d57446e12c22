"""BigGAN: the GAN battery, conditioning, projection D, hinge loss, orthogonal penalty,
truncation, EMA, export validation and a resumed run."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import losses
from kerasgan.errors import ConfigError, DataError
from kerasgan.export import export_model, load_serving_signature
from kerasgan.models.biggan import BigGAN, truncate_latent
from kerasgan.models.conditional_gan import ConditionalGAN
from tests.models.gan_battery import GANBattery, assert_presets_are_checked, train_and_resume
from tests.models.test_gan import HOOKS, assert_no_hooks

NUM_CLASSES = 10


def tiny(seed=0, **overrides):
    return BigGAN.from_preset("tiny", image_size=32, channels=3, seed=seed, **overrides)


class TestBigGAN(GANBattery):
    image_shape = (32, 32, 3)

    def build_gan(self, seed=0):
        return tiny(seed)

    def batch(self, n, seed=0):
        rng = np.random.default_rng(seed)
        images = rng.uniform(-1, 1, (n, *self.image_shape)).astype("float32")
        return images, (np.arange(n) % NUM_CLASSES).astype("int32")

    def serving_inputs(self, gan, n, seed=0):
        return {
            "latent": gan.latent_batch(n, gan.latent_dim, seed),
            "labels": np.array([3, 1, 4, 1, 5, 9][:n] * (n // 6 + 1), "int32")[:n],
            "truncation": np.float32(0.8),
        }

    def expected_images(self, gan, inputs):
        from kerasgan.plotting import to_uint8

        return to_uint8(gan.generate_from_latent(
            inputs["latent"], condition=inputs["labels"], truncation=float(inputs["truncation"])
        ))


# === Conditioning ===


def test_generator_and_discriminator_take_labels():
    gan = tiny()
    assert [t.name for t in gan.generator.inputs] == ["latent", "labels"]
    assert [t.name for t in gan.discriminator.inputs] == ["images", "labels"]
    same_latent = np.repeat(gan.latent_batch(1, gan.latent_dim, seed=0), 2, axis=0)
    images = gan.generate_from_latent(same_latent, condition=[2, 7])
    assert np.abs(images[0] - images[1]).max() > 1e-4  # the class changes the image
    # sample grids show a row per class, as the conditional GAN's do
    assert isinstance(gan, ConditionalGAN)
    assert gan.sample_condition(12).tolist() == [0] * 10 + [1, 1]
    assert gan.preview_columns == NUM_CLASSES


def test_projection_term_changes_with_the_label():
    gan = tiny()
    images = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    images = np.repeat(images, 2, axis=0)
    labels = np.array([0, 6], "int32")
    logits = keras.ops.convert_to_numpy(gan.discriminator([images, labels]))[:, 0]
    assert abs(logits[0] - logits[1]) > 1e-5
    # D(x, a) - D(x, b) = <E(a) - E(b), phi(x)>: only the projection depends on the label.
    features = keras.Model(
        gan.discriminator.inputs, gan.discriminator.get_layer("features_sum").output
    )([images, labels])
    embedding = gan.discriminator.get_layer("projection").embedding.layer.kernel.numpy()
    phi = keras.ops.convert_to_numpy(features)[0]
    expected = (embedding[0] - embedding[6]) @ phi
    assert logits[0] - logits[1] == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_a_dataset_without_labels_is_a_clear_error():
    gan = tiny()
    gan.compile()
    images = tf.data.Dataset.from_tensor_slices(np.zeros((8, 32, 32, 3), "float32")).batch(8)
    with pytest.raises(DataError, match=r"\(image, label\) pairs"):
        gan.fit(images, epochs=1, verbose=0)


# === Losses and regularization ===


def test_compiles_with_hinge_loss_and_two_time_scales():
    gan = tiny()
    gan.compile()
    assert gan.adversarial_loss.name == "hinge"
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(2e-4)
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(4e-4)
    assert gan.g_optimizer.beta_1 == 0.0 and gan.d_optimizer.beta_1 == 0.0


def test_hinge_loss_values():
    real = np.array([[2.0], [0.5], [-1.0]], "float32")
    fake = np.array([[-2.0], [0.0], [1.0]], "float32")
    d_loss = losses.hinge_discriminator_loss(real, fake)
    g_loss = losses.hinge_generator_loss(fake)
    np.testing.assert_allclose(d_loss, [0.0, 1.5, 4.0])
    np.testing.assert_allclose(g_loss, [2.0, 0.0, -1.0])


def test_orthogonal_penalty_on_known_matrices():
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    assert float(losses.orthogonal_regularization(q.astype("float32"), beta=1.0)) == pytest.approx(0.0, abs=1e-5)
    # W^T W = [[10, 14], [14, 20]]: off-diagonal 14 twice -> 2 * 14^2 = 392
    w = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    assert float(losses.orthogonal_regularization(w, beta=1.0)) == pytest.approx(392.0)
    assert float(losses.orthogonal_regularization(w, beta=1e-4)) == pytest.approx(0.0392)
    # norms are free: scaled orthogonal columns cost nothing
    assert float(losses.orthogonal_regularization(3.0 * q[:, :4].astype("float32"))) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("shape", [(3, 3, 4, 8), (2, 50), (50, 2), (1, 1, 3, 16)])
def test_orthogonal_penalty_matches_the_formula_for_tall_and_wide_kernels(shape):
    kernel = np.random.default_rng(1).standard_normal(shape).astype("float32")
    w = kernel.reshape(-1, shape[-1]).astype("float64")
    gram = w.T @ w
    expected = np.sum((gram * (1 - np.eye(shape[-1]))) ** 2)
    got = float(losses.orthogonal_regularization(kernel, beta=1.0))
    assert got == pytest.approx(expected, rel=1e-4)


def test_the_step_adds_the_orthogonal_penalty_and_no_layer_carries_it():
    """The penalty is written in `train_step`, over every G matrix but the shared embedding
    (BigGAN exempts it), none of D's; no layer regularizer could add it a second time."""
    gan = tiny()
    assert not gan.generator.losses and not gan.discriminator.losses
    assert not any(w.regularizer for w in gan.generator.weights + gan.discriminator.weights)
    kernels = [w.path for w in gan.orthogonal_kernels]
    expected = [
        w.path for w in gan.generator.trainable_weights
        if len(w.shape) >= 2 and "shared_embedding" not in w.path
    ]
    assert kernels == expected and len(kernels) > 20
    assert gan.orthogonal_beta == pytest.approx(1e-4)
    restored = BigGAN.from_config(gan.get_config())
    assert restored.orthogonal_beta == pytest.approx(1e-4)
    assert tiny(orthogonal_beta=0).orthogonal_beta == 0.0
    with pytest.raises(ConfigError, match="orthogonal_beta"):
        tiny(orthogonal_beta=-1.0)
    config = keras.saving.serialize_keras_object(losses.OrthogonalRegularizer(2e-4))
    assert keras.saving.deserialize_keras_object(config).beta == pytest.approx(2e-4)


def test_the_orthogonal_penalty_moves_only_the_generator():
    """One step with beta = 0 and one with a large beta, from the same weights and draws: D's
    update and the logs are the same, G's update differs by the penalty's gradient."""
    batch = tuple(tf.constant(x) for x in TestBigGAN().batch(4))
    stepped = {}
    for beta in (0.0, 1.0):
        keras.utils.set_random_seed(0)  # the same initial weights
        gan = tiny(orthogonal_beta=beta)
        gan.compile(g_optimizer=keras.optimizers.SGD(0.01), d_optimizer=keras.optimizers.SGD(0.01))
        logs = gan.train_step(batch)
        stepped[beta] = (
            [w.numpy() for w in gan.generator.trainable_weights],
            [w.numpy() for w in gan.discriminator.trainable_weights],
            {name: float(value) for name, value in logs.items()},
        )
    (g0, d0, logs0), (g1, d1, logs1) = stepped[0.0], stepped[1.0]
    for a, b in zip(d0, d1):
        np.testing.assert_array_equal(a, b)
    assert logs0 == logs1  # g_loss reports the adversarial term alone, as before
    assert max(float(np.abs(a - b).max()) for a, b in zip(g0, g1)) > 1e-4


# === The training step, written out ===


def test_train_step_is_biggans_own_and_calls_no_hook():
    """The step reads as the paper's algorithm: networks, losses and the penalty in view."""
    import inspect
    import re

    assert "train_step" in vars(BigGAN)
    # Evaluation is the conditional GAN's written-out `test_step`, which calls no hook either.
    for step in (BigGAN.train_step, BigGAN.test_step):
        source = inspect.getsource(step)
        assert not set(re.findall(r"self\.(\w+)\(", source)) & set(HOOKS), step.__qualname__
        assert "super()" not in source
        assert "self.generator([" in source and "self.discriminator([" in source
        assert "self.adversarial_loss.discriminator_loss(" in source
    train = inspect.getsource(BigGAN.train_step)
    assert "losses.orthogonal_regularization(" in train and "self.update_generator_ema()" in train
    assert train.count("training=True") >= 4 and "training=False" not in train


def test_fit_and_evaluate_have_no_inherited_hook_to_call():
    assert_no_hooks(BigGAN)
    gan = tiny()
    gan.compile()
    images, labels = TestBigGAN().batch(8)
    data = tf.data.Dataset.from_tensor_slices((images, labels[:, None])).batch(4)
    history = gan.fit(data, epochs=1, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss", "d_real", "d_fake"}
    logs = gan.evaluate(data, verbose=0, return_dict=True)
    assert all(np.isfinite(value) for value in logs.values())
    with pytest.raises(DataError, match=r"\(image, label\) pairs"):
        gan.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=1, verbose=0)


def test_train_step_logs_the_hinge_losses_and_scores_of_this_step():
    """`d_loss`/`g_loss` are the mean per-example hinge losses (the penalty is not a loss G is
    judged by), `d_real`/`d_fake` the mean sigmoid of D's scores, D's before its update."""
    gan = tiny()
    gan.compile(g_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    real, labels = (tf.constant(x) for x in TestBigGAN().batch(4))
    state = [v.numpy().copy() for v in gan.variables]
    logs = {name: float(value) for name, value in gan.train_step((real, labels)).items()}
    for variable, value in zip(gan.variables, state):
        variable.assign(value)
    z = keras.random.normal((4, gan.latent_dim), seed=gan.seed_generator)
    fake = gan.generator([z, labels], training=True)
    real_logits = gan.discriminator([real, labels], training=True).numpy()
    fake_logits = gan.discriminator([fake, labels], training=True).numpy()
    z = keras.random.normal((4, gan.latent_dim), seed=gan.seed_generator)
    g_logits = gan.discriminator([gan.generator([z, labels], training=True), labels], training=True)
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    expected = {
        "d_loss": np.mean(np.maximum(0, 1 - real_logits) + np.maximum(0, 1 + fake_logits)),
        "d_real": np.mean(sigmoid(real_logits)),
        "d_fake": np.mean(sigmoid(fake_logits)),
        "g_loss": -np.mean(g_logits.numpy()),
    }
    assert logs == pytest.approx(expected, rel=1e-5, abs=1e-6)


# === Truncation ===


def test_truncation_bounds_and_identity_at_infinity():
    z = np.random.default_rng(0).standard_normal((2000, 16)).astype("float32") * 3.0
    for threshold in (0.25, 0.5, 1.0, 2.0):
        truncated = truncate_latent(z, threshold).numpy()
        assert np.abs(truncated).max() <= threshold
        assert np.all(np.sign(truncated) == np.sign(z))  # monotone, odd map
    np.testing.assert_array_equal(truncate_latent(z, np.inf).numpy(), z)


def test_truncation_gives_the_truncated_normal_distribution():
    """The same distribution as resampling |z| > t: the truncated normal's variance."""
    z = np.random.default_rng(1).standard_normal(200_000).astype("float32")
    t = 1.0
    pdf = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(t / math.sqrt(2))
    variance = 1.0 - 2.0 * t * pdf / mass
    truncated = truncate_latent(z[:, None], t).numpy()
    assert truncated.var() == pytest.approx(variance, rel=0.01)
    assert np.mean(np.abs(truncated) > 0.5) == pytest.approx(
        1.0 - math.erf(0.5 / math.sqrt(2)) / mass, abs=0.01
    )


def test_generate_applies_truncation_and_checks_its_arguments():
    gan = tiny()
    latent = gan.latent_batch(4, gan.latent_dim, seed=3)
    expected = gan.generate_from_latent(truncate_latent(latent, 0.5).numpy(), condition=5)
    np.testing.assert_allclose(gan.generate(4, labels=5, truncation=0.5, seed=3), expected, atol=1e-6)
    with pytest.raises(ConfigError, match="positive"):
        gan.generate(2, truncation=0.0)
    with pytest.raises(ConfigError, match=r"\[0, 9\]"):
        gan.generate(2, labels=[1, 10])
    with pytest.raises(ConfigError, match="expected 3 labels"):
        gan.generate(3, labels=[1, 2])
    with pytest.raises(ConfigError, match="whole class ids"):
        gan.generate(2, labels=[0.5, 1])


# === EMA ===


def test_ema_update_follows_the_warmed_up_formula():
    gan = tiny()
    gan.compile()
    before = [w.numpy().copy() for w in gan.generator_ema.weights]
    data = tf.data.Dataset.from_tensor_slices(
        (np.zeros((8, 32, 32, 3), "float32"), np.arange(8, dtype="int32"))
    ).batch(8)
    gan.fit(data, epochs=1, verbose=0)
    decay = min(0.9, 2.0 / 11.0)  # after G's first step: (1 + 1) / (10 + 1)
    for average, old, weight in zip(gan.generator_ema.weights, before, gan.generator.weights):
        expected = decay * old + (1 - decay) * weight.numpy() if weight.trainable else weight.numpy()
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert gan.sampling_generator is gan.generator_ema
    assert float(gan.current_ema_decay()) == pytest.approx(min(0.9, 2.0 / 11.0))
    # generate draws from the average, not from G's latest weights
    latent, labels = gan.latent_batch(2, gan.latent_dim, seed=0), np.array([1, 2], "int32")
    averaged = gan.generator_ema([latent, labels], training=False)
    np.testing.assert_allclose(gan.generate_from_latent(latent, condition=labels), averaged, atol=1e-6)
    assert np.abs(gan.generator([latent, labels], training=False) - averaged).max() > 1e-6


# === Export ===


def test_export_rejects_bad_requests_clearly(tmp_path):
    gan = tiny()
    path = export_model(gan, str(tmp_path), name="biggan")
    serve, specs = load_serving_signature(path)
    assert specs["labels"].dtype == tf.int32 and specs["truncation"].shape == ()
    latent = tf.constant(gan.latent_batch(2, gan.latent_dim, seed=0))
    one = tf.constant(1.0)
    cases = [
        ([0, 10], one, r"labels must be class ids in \[0, 9\]"),
        ([-1, 0], one, r"labels must be class ids in \[0, 9\]"),
        ([0, 1, 2], one, "same batch size"),
        ([0, 1], tf.constant(0.0), "positive"),
    ]
    for labels, truncation, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(latent=latent, labels=tf.constant(labels, tf.int32), truncation=truncation)
    untruncated = serve(latent=latent, labels=tf.constant([0, 1]), truncation=tf.constant(np.inf, tf.float32))
    assert untruncated["images"].shape == (2, 32, 32, 3)


# === Configuration and data ===


def test_presets_and_options_are_checked():
    assert_presets_are_checked(BigGAN, "BigGAN")
    with pytest.raises(ConfigError, match="not supported"):
        BigGAN.from_preset("tiny", image_size=28)
    with pytest.raises(ConfigError, match="divisible"):
        BigGAN.from_preset("tiny", latent_dim=10)
    with pytest.raises(ConfigError, match="attention_resolution"):
        BigGAN.from_preset("tiny", attention_resolution=12)


def test_default_preset_is_the_cpu_sized_cifar10_configuration():
    gan = BigGAN.from_preset("default", image_size=32, channels=3)
    assert gan.latent_dim == 64 and gan.num_classes == 10 and gan.ema_decay == 0.999
    assert gan.generator.get_layer("to_feature_map").output.shape == (None, 4, 4, 32)
    assert gan.generator.get_layer("attention").output.shape == (None, 16, 16, 32)
    assert gan.discriminator.get_layer("attention").output.shape == (None, 16, 16, 32)


def test_mixed_bfloat16_keeps_images_and_logits_in_float32():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    gan = tiny()
    assert gan.generate(2, seed=0).dtype == np.float32
    logits = gan.discriminator([np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1], "int32")])
    assert logits.dtype == "float32"


def test_a_run_resumes_and_exports(tmp_path, capsys):
    first, resumed = train_and_resume("biggan", tmp_path, capsys)
    assert first.steps == 5  # 5,000 embedded (digit, label) pairs, batches of 1,000
    assert first.export_path.endswith("biggan/1")
    _, specs = load_serving_signature(resumed.export_path)
    assert set(specs) == {"latent", "labels", "truncation"}


def test_distribution_makes_every_batch_norm_cross_replica_and_the_docstring_says_so():
    """`distribution.prepare_model` with several replicas synchronises every batch norm of
    BigGAN, the conditional ones included; the module docstring must not claim otherwise."""
    import kerasgan.models.biggan as biggan_module
    from kerasgan import distribution

    gan = BigGAN.from_preset("tiny", image_size=32, channels=3, seed=0)
    norms = [
        layer for layer in gan._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and not any(layer.synchronized for layer in norms)

    class TwoReplicas:
        num_replicas_in_sync = 2

    distribution.prepare_model(gan, TwoReplicas())
    assert all(layer.synchronized for layer in norms)
    assert "no cross-replica" not in biggan_module.__doc__
    assert "synchronize_batch_norm" in biggan_module.__doc__
