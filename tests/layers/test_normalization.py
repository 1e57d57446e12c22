"""AdaIN: statistics transfer, broadcasting, validation and serialization."""

import keras
import numpy as np
import pytest

from kerasgan.layers import AdaIN, channel_moments


def _features(shape, mean, std, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * std + mean).astype("float32")


def test_output_channel_mean_and_std_equal_the_styles():
    content = _features((2, 16, 16, 8), mean=-1.0, std=0.5, seed=0)
    style = _features((2, 9, 11, 8), mean=np.arange(8.0), std=np.linspace(0.5, 4.0, 8), seed=1)
    output = keras.ops.convert_to_numpy(AdaIN(epsilon=1e-8)([content, style]))

    assert output.shape == content.shape
    np.testing.assert_allclose(output.mean(axis=(1, 2)), style.mean(axis=(1, 2)), atol=1e-4)
    np.testing.assert_allclose(output.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-4)


def test_keeps_the_contents_normalized_layout():
    """AdaIN only rescales each channel: the normalized content pattern is unchanged."""
    content = _features((1, 8, 8, 4), mean=3.0, std=2.0, seed=2)
    style = _features((1, 8, 8, 4), mean=-5.0, std=0.1, seed=3)
    output = keras.ops.convert_to_numpy(AdaIN(epsilon=0.0)([content, style]))

    def standardize(x):
        return (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)

    np.testing.assert_allclose(standardize(output), standardize(content), atol=1e-4)


def test_a_style_batch_of_one_applies_to_every_content_example():
    content = _features((3, 8, 8, 4), mean=0.0, std=1.0, seed=4)
    style = _features((1, 6, 6, 4), mean=2.0, std=3.0, seed=5)
    output = keras.ops.convert_to_numpy(AdaIN(epsilon=1e-8)([content, style]))

    for example in output:
        np.testing.assert_allclose(example.mean(axis=(0, 1)), style[0].mean(axis=(0, 1)), atol=1e-4)


def test_vgg_sized_features_survive_float16():
    """Features of std 500 have variances of 250,000, past float16's 65,504: computed in 16 bits
    the standard deviations would be inf and the output zeros."""
    content = _features((1, 8, 8, 4), mean=300.0, std=500.0, seed=0)
    style = _features((1, 8, 8, 4), mean=100.0, std=400.0, seed=1)
    expected = keras.ops.convert_to_numpy(AdaIN()([content, style]))
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    output = keras.ops.convert_to_numpy(AdaIN()([content, style])).astype("float32")
    assert np.all(np.isfinite(output)) and np.abs(output).max() > 100
    np.testing.assert_allclose(output, expected, rtol=2e-3, atol=0.5)


def test_channel_moments_match_numpy():
    x = _features((2, 5, 7, 3), mean=1.0, std=2.0, seed=6)
    mean, std = (keras.ops.convert_to_numpy(t) for t in channel_moments(x, epsilon=0.0))
    np.testing.assert_allclose(mean[:, 0, 0], x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(std[:, 0, 0], x.std(axis=(1, 2)), rtol=1e-5)


def test_rejects_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="epsilon"):
        AdaIN(epsilon=-1.0)
    with pytest.raises(ValueError, match="same number of channels"):
        AdaIN()([np.zeros((1, 4, 4, 3), "float32"), np.zeros((1, 4, 4, 5), "float32")])
    with pytest.raises(ValueError, match="two shapes"):
        AdaIN().build((1, 4, 4, 3))


def test_get_config_round_trip():
    layer = AdaIN(epsilon=1e-3, name="adain_test")
    clone = AdaIN.from_config(layer.get_config())
    assert clone.epsilon == 1e-3 and clone.name == "adain_test"

    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, AdaIN) and revived.get_config() == layer.get_config()


def test_keras_file_round_trip_in_a_functional_model(tmp_path):
    content = keras.Input((None, None, 4), name="content")
    style = keras.Input((None, None, 4), name="style")
    model = keras.Model([content, style], AdaIN(epsilon=1e-4)([content, style]))
    path = str(tmp_path / "adain.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode: no Lambda layers anywhere

    inputs = [_features((1, 6, 6, 4), 0.0, 1.0, 7), _features((1, 5, 5, 4), 1.0, 2.0, 8)]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(inputs)), keras.ops.convert_to_numpy(model(inputs))
    )
