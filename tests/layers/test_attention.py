"""SelfAttention2D: identity at initialisation, long-range mixing, gradients, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan.layers import SelfAttention2D


def _features(shape=(2, 8, 8, 16), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def test_output_shape_and_identity_at_initialisation():
    x = _features()
    layer = SelfAttention2D()
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    assert y.shape == x.shape
    assert float(layer.gamma.numpy()) == 0.0
    np.testing.assert_array_equal(y, x)  # the gate starts closed: exactly the identity


def test_an_open_gate_mixes_distant_positions():
    x = _features((1, 8, 8, 16), seed=1)
    layer = SelfAttention2D(spectral_norm=False)
    layer(x)
    layer.gamma.assign(1.0)
    changed = x.copy()
    changed[0, 7, 7] += 5.0  # one far corner
    before = keras.ops.convert_to_numpy(layer(x))
    after = keras.ops.convert_to_numpy(layer(changed))
    # The opposite corner sees the change: a 3x3 convolution could not reach it in one layer.
    assert np.abs(after[0, 0, 0] - before[0, 0, 0]).max() > 1e-4


def test_the_gate_gets_a_gradient_at_zero():
    x = tf.constant(_features(seed=2))
    layer = SelfAttention2D()
    layer(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=True)))
    gradient = tape.gradient(loss, layer.gamma.value)
    assert gradient is not None and abs(float(gradient)) > 0.0
    names = [w.path for w in layer.trainable_weights]
    assert any("gamma" in name for name in names) and len(names) == 5  # 4 kernels + gamma


def test_keras_round_trip_keeps_weights_and_output(tmp_path):
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, SelfAttention2D(key_ratio=4, name="attention")(inputs))
    model.get_layer("attention").gamma.assign(0.7)
    x = _features(seed=3)
    path = str(tmp_path / "attention.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    layer = restored.get_layer("attention")
    assert layer.key_ratio == 4 and layer.spectral_norm
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


def test_works_under_mixed_bfloat16():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    layer = SelfAttention2D()
    layer(_features())
    layer.gamma.assign(1.0)
    y = layer(keras.ops.cast(_features(), "bfloat16"), training=True)
    assert y.dtype == "bfloat16"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))))


def test_rejects_bad_shapes_and_arguments():
    with pytest.raises(ValueError, match="even"):
        SelfAttention2D()(np.zeros((1, 5, 4, 8), "float32"))
    with pytest.raises(ValueError, match="feature map"):
        SelfAttention2D()(np.zeros((1, 4, 8), "float32"))
    with pytest.raises(ValueError, match="key_ratio"):
        SelfAttention2D(key_ratio=0)
