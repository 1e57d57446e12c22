import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.models.wgan_gp import CONFIGS, WGANGP, build_critic
from tests.models.gan_battery import GANBattery, train_and_resume
from tests.models.test_gan import assert_no_hooks


class TestWGANGP(GANBattery):
    image_shape = (28, 28, 1)
    batch_size = 8

    def build_gan(self, seed=0):
        return WGANGP.from_preset("tiny", image_size=28, channels=1, seed=seed)


def fit_history(gan, steps=2, epochs=2, batch_size=8):
    images = np.random.default_rng(0).uniform(-1, 1, (steps * batch_size, 28, 28, 1))
    data = tf.data.Dataset.from_tensor_slices(images.astype("float32")).batch(batch_size)
    return gan.fit(data, epochs=epochs, verbose=0).history


LR = 0.01


def linear_wgan(weights, gp_weight=10.0, n_critic=1):
    """A WGAN-GP whose critic is f(x) = w . x + b, with gradient norm ||w|| everywhere, trained
    with plain SGD so an update is exactly `w - lr * grad` (same generator for every call)."""
    keras.utils.set_random_seed(0)
    critic = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(1)], name="critic"
    )
    critic.layers[-1].kernel.assign(weights.reshape(-1, 1))
    generator = WGANGP.from_preset("tiny").generator
    gan = WGANGP(generator, critic, gp_weight=gp_weight, n_critic=n_critic, seed=0)
    gan.compile(g_optimizer=keras.optimizers.SGD(LR), d_optimizer=keras.optimizers.SGD(LR))
    return gan


def real_images(n=4, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 28, 28, 1)).astype("float32")


def spy_on_penalty(monkeypatch):
    """Record every `losses.gradient_penalty` the model computes (its output dtype)."""
    computed = []
    gradient_penalty = losses.gradient_penalty

    def spy(*args, **kwargs):
        result = gradient_penalty(*args, **kwargs)
        penalties = result[0] if isinstance(result, tuple) else result
        computed.append(keras.backend.standardize_dtype(penalties.dtype))
        return result

    monkeypatch.setattr(losses, "gradient_penalty", spy)
    return computed


def test_penalty_of_a_linear_critic_is_lambda_times_squared_norm_distance():
    weights = np.random.default_rng(0).normal(size=(28, 28, 1)).astype("float32") * 0.1
    norm = float(np.linalg.norm(weights))  # ~2.8
    gan = linear_wgan(weights, gp_weight=10.0)
    logs = gan.train_step(real_images())  # one critic update (n_critic=1), then G's
    np.testing.assert_allclose(float(logs["gradient_norm"]), norm, rtol=1e-5)
    np.testing.assert_allclose(float(logs["gradient_penalty"]), (norm - 1.0) ** 2, rtol=1e-4)
    # ...and it is part of the critic's loss: L = C(G(z)) - C(x) + lambda * GP.
    expected = float(logs["critic_fake"]) - float(logs["critic_real"]) + 10.0 * (norm - 1.0) ** 2
    np.testing.assert_allclose(float(logs["d_loss"]), expected, rtol=1e-4)
    # ...and of its gradient: the same step without the penalty (same draws of z) moves w by
    # lr * lambda * d(||w|| - 1)^2/dw = lr * lambda * 2 (||w|| - 1) w / ||w|| less.
    unpenalized = linear_wgan(weights, gp_weight=0.0)
    unpenalized.train_step(real_images())
    difference = gan.critic.layers[-1].kernel.numpy() - unpenalized.critic.layers[-1].kernel.numpy()
    expected = -LR * 10.0 * 2.0 * (norm - 1.0) * weights.reshape(-1, 1) / norm
    np.testing.assert_allclose(difference, expected, rtol=1e-3, atol=1e-7)


def test_no_penalty_when_its_weight_is_zero(monkeypatch):
    computed = spy_on_penalty(monkeypatch)
    gan = linear_wgan(np.full((28, 28, 1), 0.01, "float32"), gp_weight=0.0)
    logs = gan.train_step(real_images())
    assert computed == []  # not even the input-gradient pass
    np.testing.assert_allclose(
        float(logs["d_loss"]), float(logs["critic_fake"]) - float(logs["critic_real"]), rtol=1e-5
    )
    assert float(logs["gradient_norm"]) == 0.0 and float(logs["gradient_penalty"]) == 0.0


def test_train_and_test_steps_are_written_out_and_call_no_hook():
    """Every loss, penalty and network call of a step is in `wgan_gp.py` itself."""
    assert_no_hooks(WGANGP)  # not even the penalty as a method of its own: it is in the step
    assert {"train_step", "test_step"} <= set(vars(WGANGP))
    gan = WGANGP.from_preset("tiny", seed=0)
    gan.compile()
    history = fit_history(gan, steps=1, epochs=1)
    assert int(gan.d_optimizer.iterations) == gan.n_critic and int(gan.g_optimizer.iterations) == 1
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    logs = gan.evaluate(real_images(8), verbose=0, return_dict=True)
    assert np.isfinite(logs["d_loss"]) and np.isfinite(logs["g_loss"])


def test_evaluate_reports_both_losses_without_penalty(monkeypatch):
    """`test_step` (its inference mode is checked in test_reference_steps.py): no penalty, and
    the losses of the held-out batch, `d_loss = mean C(G(z)) - mean C(x)`, `g_loss = -mean
    C(G(z))`, with the critic's scores and their difference."""
    computed = spy_on_penalty(monkeypatch)
    gan = WGANGP.from_preset("tiny", seed=0)
    gan.compile()
    logs = gan.evaluate(real_images(8), verbose=0, return_dict=True)
    assert computed == []
    real, fake = logs["critic_real"], logs["critic_fake"]
    np.testing.assert_allclose(logs["d_loss"], fake - real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logs["wasserstein"], real - fake, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logs["g_loss"], -fake, rtol=1e-5, atol=1e-6)
    assert logs["gradient_norm"] == 0.0  # not evaluated


def test_n_critic_critic_updates_per_generator_update():
    gan = WGANGP.from_preset("tiny", n_critic=3, seed=0)
    gan.compile()
    fit_history(gan, steps=2, epochs=1, batch_size=9)
    assert int(gan.d_optimizer.iterations) == 3 * 2
    assert int(gan.g_optimizer.iterations) == 2


def test_each_critic_update_gets_its_own_slice_of_the_batch():
    gan = WGANGP.from_preset("tiny", n_critic=5)
    batch = np.arange(10)
    slices = [gan.critic_slice(batch, step).numpy().tolist() for step in range(5)]
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    # 8 images for 5 updates: equal slices of 2, wrapping around, none empty.
    slices = [gan.critic_slice(np.arange(8), step).numpy().tolist() for step in range(5)]
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7], [0, 1]]
    dynamic = tf.function(lambda data: gan.critic_slice(data, 4),
                          input_signature=[tf.TensorSpec([None], tf.int64)])
    assert dynamic(tf.range(8, dtype=tf.int64)).numpy().tolist() == [0, 1]


def test_metrics_report_the_wasserstein_estimate_and_the_penalty():
    gan = WGANGP.from_preset("tiny", seed=0)
    gan.compile()
    history = fit_history(gan)
    for key in ("wasserstein", "critic_real", "critic_fake", "gradient_penalty", "gradient_norm"):
        assert np.all(np.isfinite(history[key])), key
    np.testing.assert_allclose(
        history["wasserstein"],
        np.subtract(history["critic_real"], history["critic_fake"]),
        rtol=1e-4, atol=1e-5,
    )
    assert np.all(np.asarray(history["gradient_norm"]) > 0)
    assert "d_real" not in history  # probabilities mean nothing for a critic


def test_training_is_finite_under_mixed_bfloat16(monkeypatch):
    computed = spy_on_penalty(monkeypatch)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    gan = WGANGP.from_preset("tiny", seed=0, normalization="layer")
    gan.compile()
    assert gan.critic.get_layer("down0").compute_dtype == "bfloat16"
    history = fit_history(gan, epochs=2)
    for key in ("d_loss", "g_loss", "gradient_penalty", "gradient_norm", "wasserstein"):
        values = np.asarray(history[key])
        assert np.all(np.isfinite(values)), (key, values)
    assert np.ptp(history["d_loss"]) > 0
    assert computed and set(computed) == {"float32"}  # the penalty, whatever the policy


def test_adam_with_the_papers_betas_and_the_wasserstein_loss_are_the_defaults():
    gan = WGANGP.from_preset("tiny")
    gan.compile()
    assert gan.g_optimizer is not gan.d_optimizer
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)  # the paper: 1e-4
        assert optimizer.beta_1 == 0.0 and optimizer.beta_2 == 0.9
    assert gan.adversarial_loss.name == "wasserstein"
    assert CONFIGS["default"]["n_critic"] == 5 and CONFIGS["default"]["gp_weight"] == 10.0


def test_the_critic_has_no_batch_norm():
    plain = build_critic(28, 1, 8)  # the paper's MNIST critic: no normalization at all
    assert not any("normalization" in type(layer).__name__.lower() for layer in plain.layers)
    critic = build_critic(28, 1, 8, normalization="layer")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)
    assert any(isinstance(layer, keras.layers.LayerNormalization) for layer in critic.layers)
    with pytest.raises(ConfigError, match="cannot use batch norm"):
        build_critic(28, 1, 8, normalization="batch")
    with pytest.raises(ConfigError, match="normalization must be one of"):
        build_critic(28, 1, 8, normalization="group")


def test_settings_survive_a_keras_round_trip(tmp_path):
    gan = WGANGP.from_preset("tiny", n_critic=3, gp_weight=5.0, ema_decay=0.99)
    gan.compile()
    path = str(tmp_path / "wgan.keras")
    gan.save(path)
    restored = keras.saving.load_model(path)
    assert (restored.n_critic, restored.gp_weight, restored.ema_decay) == (3, 5.0, 0.99)
    assert restored.sampling_generator is restored.generator_ema
    assert restored.adversarial_loss.name == "wasserstein"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_critic": 0}, "n_critic"),
        ({"n_critic": 2.5}, "n_critic"),
        ({"n_critic": "2"}, "n_critic"),
        ({"n_critic": float("inf")}, "n_critic"),
        ({"gp_weight": -1.0}, "gp_weight"),
        ({"gp_weight": "10"}, "gp_weight"),
        ({"gp_weight": float("nan")}, "gp_weight"),
        ({"depth": 3}, "unknown WGAN-GP option"),
    ],
)
def test_bad_settings_are_clear_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        WGANGP.from_preset("tiny", **options)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown WGAN-GP preset"):
        WGANGP.from_preset("huge")


def test_trains_from_the_recipe_exports_and_resumes(tmp_path, capsys):
    first, resumed = train_and_resume("wgan-gp", tmp_path, capsys)
    assert first.steps == 5  # 5,000 embedded digits, batches of 1,000 (5 critic slices of 200)
    assert "gradient_norm" in resumed.history
