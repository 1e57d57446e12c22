"""ConditionalBatchNormalization and the float32-stable SpectralNormalization (BigGAN's layers)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan.layers import ConditionalBatchNormalization, SpectralNormalization
from kerasgan.losses import OrthogonalRegularizer


def _rng(seed=0):
    return np.random.default_rng(seed)


# === ConditionalBatchNormalization ===


def test_same_class_same_statistics_different_class_different_statistics():
    """Every class sees the same feature maps; only its condition differs."""
    rng = _rng(0)
    features = rng.standard_normal((4, 6, 6, 8)).astype("float32")
    class_vectors = rng.standard_normal((3, 5)).astype("float32")
    labels = np.repeat([0, 1, 0], 4)  # groups: class 0, class 1, class 0 again
    batch = np.concatenate([features] * 3)
    layer = ConditionalBatchNormalization()
    output = keras.ops.convert_to_numpy(layer([batch, class_vectors[labels]], training=True))
    first, second, third = output[:4], output[4:8], output[8:]

    np.testing.assert_array_equal(first, third)  # same class, same features: same output
    std = [group.std(axis=(0, 1, 2)) for group in (first, second)]
    mean = [group.mean(axis=(0, 1, 2)) for group in (first, second)]
    assert np.abs(std[0] - std[1]).max() > 1e-3 and np.abs(mean[0] - mean[1]).max() > 1e-3
    # Same normalized features, so the groups differ exactly by the per-class affine map.
    gain = [1 + keras.ops.convert_to_numpy(layer.gain(class_vectors[[c]]))[0] for c in (0, 1)]
    np.testing.assert_allclose(std[0] / std[1], np.abs(gain[0] / gain[1]), rtol=1e-4)


def test_starts_near_plain_batch_norm():
    """gain = 1 + W c and bias = W' c with spectral norm <= 1: deviations bounded by ||c||."""
    rng = _rng(1)
    condition = rng.standard_normal((16, 20)).astype("float32")
    condition /= np.linalg.norm(condition, axis=1, keepdims=True)  # unit vectors
    layer = ConditionalBatchNormalization()
    layer([np.zeros((16, 4, 4, 64), "float32"), condition])
    gain = keras.ops.convert_to_numpy(layer.gain(condition))
    bias = keras.ops.convert_to_numpy(layer.bias(condition))
    assert np.linalg.norm(gain, axis=1).max() <= 1.0 + 1e-4
    assert np.linalg.norm(bias, axis=1).max() <= 1.0 + 1e-4
    # per channel: about 1/sqrt(64) of the condition's norm
    assert np.sqrt(np.mean(gain**2)) < 0.2 and np.sqrt(np.mean(bias**2)) < 0.2


def test_training_uses_batch_statistics_and_inference_moving_averages():
    rng = _rng(2)
    features = (rng.standard_normal((32, 4, 4, 3)) * 3.0 + 5.0).astype("float32")
    condition = np.zeros((32, 4), "float32")  # zero condition: gain 1, bias 0
    layer = ConditionalBatchNormalization(momentum=0.0)
    trained = keras.ops.convert_to_numpy(layer([features, condition], training=True))
    np.testing.assert_allclose(trained.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(trained.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    # momentum 0: the moving statistics are now this batch's, so inference agrees
    inferred = keras.ops.convert_to_numpy(layer([features, condition], training=False))
    np.testing.assert_allclose(inferred, trained, atol=1e-2)


def test_gradients_reach_the_projections_and_dense_features_work():
    rng = _rng(3)
    features = tf.constant(rng.standard_normal((8, 10)).astype("float32"))  # [batch, C]
    condition = tf.constant(rng.standard_normal((8, 6)).astype("float32"))
    layer = ConditionalBatchNormalization(spectral_norm=False)
    with tf.GradientTape() as tape:
        output = layer([features, condition], training=True)
        loss = tf.reduce_sum(output * tf.range(10, dtype=tf.float32))
    assert output.shape == (8, 10)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 2 and all(float(tf.norm(g)) > 0 for g in grads)


def test_round_trip_with_a_regularizer(tmp_path):
    features = keras.Input((4, 4, 8))
    condition = keras.Input((5,))
    layer = ConditionalBatchNormalization(
        momentum=0.9, kernel_regularizer=OrthogonalRegularizer(1e-3), name="cbn"
    )
    model = keras.Model([features, condition], layer([features, condition]))
    assert len(model.losses) == 2  # one penalty per projection kernel
    rng = _rng(4)
    inputs = [rng.standard_normal((3, 4, 4, 8)).astype("float32"),
              rng.standard_normal((3, 5)).astype("float32")]
    path = str(tmp_path / "cbn.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    cbn = restored.get_layer("cbn")
    assert cbn.momentum == 0.9 and isinstance(cbn.kernel_regularizer, OrthogonalRegularizer)
    assert cbn.kernel_regularizer.beta == pytest.approx(1e-3)
    np.testing.assert_allclose(restored(inputs), model(inputs), atol=1e-6)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="two shapes"):
        ConditionalBatchNormalization()(np.zeros((2, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="condition"):
        ConditionalBatchNormalization()([np.zeros((2, 4, 4, 3), "float32"), np.zeros((2, 2, 2), "float32")])
    with pytest.raises(ValueError, match="momentum"):
        ConditionalBatchNormalization(momentum=1.5)


# === SpectralNormalization (float32 power iteration) ===


def _bfloat16_rounded(values):
    return keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(values, "bfloat16"), "float32"))


def test_kernel_keeps_float32_precision_under_mixed_bfloat16():
    """Keras's own wrapper rounds the float32 kernel to bfloat16 on every training call."""
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    rng = _rng(5)
    inputs = keras.Input((6, 6, 16))
    hidden = keras.layers.Conv2D(16, 1)(inputs)
    wrapper = SpectralNormalization(keras.layers.Conv2D(8, 3, padding="same"))
    model = keras.Model(inputs, wrapper(hidden))
    x = rng.standard_normal((4, 6, 6, 16)).astype("float32")
    for _ in range(30):
        output = model(x, training=True)
    kernel = wrapper.layer.kernel.numpy()
    assert output.dtype == "bfloat16" and wrapper.layer.kernel.dtype == "float32"
    assert not np.array_equal(kernel, _bfloat16_rounded(kernel))
    sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert sigma == pytest.approx(1.0, abs=1e-2)


def test_normalizes_to_unit_spectral_norm_and_leaves_zero_kernels_alone():
    wrapper = SpectralNormalization(keras.layers.Dense(5, use_bias=False))
    x = _rng(6).standard_normal((3, 7)).astype("float32")
    wrapper(x)
    wrapper.layer.kernel.assign(wrapper.layer.kernel.numpy() * 10.0)
    for _ in range(30):
        wrapper(x, training=True)
    assert np.linalg.svd(wrapper.layer.kernel.numpy(), compute_uv=False)[0] == pytest.approx(1.0, abs=1e-3)

    zero = SpectralNormalization(keras.layers.Dense(5, kernel_initializer="zeros"))
    zero(x, training=True)
    assert np.all(zero.layer.kernel.numpy() == 0) and np.all(np.isfinite(zero.vector_u.numpy()))


def test_wrapper_config_round_trip():
    wrapper = SpectralNormalization(keras.layers.Dense(4), power_iterations=2, dtype="bfloat16")
    assert wrapper.dtype_policy.name == "float32" and not wrapper.autocast
    restored = SpectralNormalization.from_config(wrapper.get_config())
    assert restored.power_iterations == 2 and restored.dtype_policy.name == "float32"
