"""Style-based generator layers: variance preservation, shapes, mixing, noise, serialization."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasgan.layers.style import (
    BroadcastStyles,
    ConstantInput,
    EqualizedConv2D,
    EqualizedDense,
    MappingNetwork,
    MinibatchStdDev,
    ModulatedConv2D,
    NoiseInjection,
    StyleAdaIN,
    StyleMixing,
    SynthesisLayer,
    ToRGB,
    UnstackStyles,
    mix_styles,
    modulated_weights,
)


def _normal(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype("float32")


def _numpy(x):
    return ops.convert_to_numpy(x)


def _round_trip(layer, inputs):
    """Serialize `layer`, rebuild it, copy the weights: the copy must compute the same."""
    config = keras.saving.serialize_keras_object(layer)
    copy = keras.saving.deserialize_keras_object(config)
    copy(inputs)
    copy.set_weights(layer.get_weights())
    return copy


# --- modulated convolution ---


def test_demodulation_keeps_unit_output_variance():
    """Unit-variance inputs give ~unit-variance outputs whatever the style's scale."""
    x = _normal((8, 32, 32, 64), seed=0)
    w = _normal((8, 32), seed=1, scale=3.0)  # large styles: strongly modulated weights
    layer = ModulatedConv2D(48, 3)
    y = _numpy(layer([x, w]))
    # Interior pixels only: zero padding lowers the variance on the border.
    interior = y[:, 1:-1, 1:-1]
    assert abs(interior.std() - 1.0) < 0.05, interior.std()
    per_example = interior.std(axis=(1, 2, 3))
    np.testing.assert_allclose(per_example, 1.0, atol=0.1)


def test_without_demodulation_the_style_scales_the_output():
    x = _normal((4, 16, 16, 16), seed=2)
    w = _normal((4, 8), seed=3)
    layer = ModulatedConv2D(16, 3, demodulate=False)
    layer([x, w])
    affine_bias = layer.affine.bias
    small = _numpy(layer([x, w])).std()
    affine_bias.assign(affine_bias.numpy() * 5.0)  # styles ~5x larger
    assert _numpy(layer([x, w])).std() > 3 * small


def test_modulated_conv_equals_a_per_example_convolution():
    """The scale-conv-scale implementation equals convolving each example with its own w''."""
    x = _normal((2, 6, 6, 4), seed=4)
    w = _normal((2, 5), seed=5)
    layer = ModulatedConv2D(3, 3, epsilon=0.0)
    y = _numpy(layer([x, w]))
    styles = _numpy(layer.affine(w))
    kernel = _numpy(layer.kernel) * layer.weight_gain
    weights = _numpy(modulated_weights(kernel, styles, epsilon=0.0))
    for example in range(2):
        modulated = kernel * styles[example][None, None, :, None]
        modulated = modulated / np.sqrt((modulated**2).sum(axis=(0, 1, 2), keepdims=True))
        np.testing.assert_allclose(weights[example], modulated, rtol=1e-5)
        expected = _numpy(ops.conv(x[example : example + 1], modulated, padding="same"))
        np.testing.assert_allclose(y[example : example + 1], expected, rtol=1e-4, atol=1e-5)


# --- equalised learning rate ---


def test_equalized_layers_have_unit_weights_and_he_scaled_outputs():
    dense = EqualizedDense(256, lr_multiplier=0.01)
    x = _normal((512, 128), seed=6)
    y = _numpy(dense(x))
    assert abs(_numpy(dense.kernel).std() - 100.0) < 5.0  # stored as N(0, 1/lr_multiplier)
    assert abs(y.std() - 1.0) < 0.1  # but used at the He scale
    conv = EqualizedConv2D(32, 3, downsample=True)
    assert tuple(conv(_normal((2, 8, 8, 16), seed=7)).shape) == (2, 4, 4, 32)


@pytest.mark.parametrize(
    "factory, inputs",
    [
        (lambda: EqualizedDense(8, activation="leaky_relu", lr_multiplier=0.1), lambda: _normal((2, 4), 0)),
        (lambda: EqualizedConv2D(8, 3, downsample=True), lambda: _normal((2, 8, 8, 3), 0)),
        (lambda: MinibatchStdDev(group_size=2), lambda: _normal((4, 4, 4, 6), 0)),
    ],
)
def test_single_input_layers_round_trip(factory, inputs):
    layer, x = factory(), inputs()
    y = layer(x)
    np.testing.assert_allclose(_numpy(_round_trip(layer, x)(x)), _numpy(y), rtol=1e-6)


# --- mapping network and styles ---


def test_mapping_network_shapes_and_normalised_latent():
    mapping = MappingNetwork(w_dim=24, num_layers=3)
    z = _normal((5, 12), seed=8)
    w = mapping(z)
    assert tuple(w.shape) == (5, 24)
    assert len(mapping.trainable_weights) == 6  # 3 x (kernel, bias)
    assert mapping.w_avg.shape == (24,) and not mapping.w_avg.trainable
    # z is normalised first: its scale does not matter.
    np.testing.assert_allclose(_numpy(mapping(3.0 * z)), _numpy(w), rtol=1e-4, atol=1e-5)


def test_w_average_update_and_truncation():
    mapping = MappingNetwork(w_dim=4, num_layers=1)
    mapping(np.zeros((1, 3), "float32"))
    w = _normal((6, 4), seed=9)
    mapping.update_average(w, beta=0.75)
    np.testing.assert_allclose(_numpy(mapping.w_avg), 0.25 * w.mean(axis=0), rtol=1e-5)
    average = _numpy(mapping.w_avg)
    np.testing.assert_allclose(_numpy(mapping.truncate(w, 0.0)), np.tile(average, (6, 1)), rtol=1e-6)
    np.testing.assert_allclose(_numpy(mapping.truncate(w, 1.0)), w, rtol=1e-6)
    np.testing.assert_allclose(
        _numpy(mapping.truncate(w, 0.5)), average + 0.5 * (w - average), rtol=1e-5, atol=1e-6
    )


def test_broadcast_and_unstack_styles():
    w = _normal((3, 7), seed=10)
    styles = BroadcastStyles(5)(w)
    assert tuple(styles.shape) == (3, 5, 7)
    parts = UnstackStyles()(styles)
    assert len(parts) == 5
    for part in parts:
        np.testing.assert_array_equal(_numpy(part), w)


def test_mix_styles_takes_the_first_styles_from_the_first_argument():
    a = np.zeros((2, 6, 3), "float32")
    b = np.ones((2, 6, 3), "float32")
    mixed = _numpy(mix_styles(a, b, 4))
    np.testing.assert_array_equal(mixed[:, :4], 0.0)
    np.testing.assert_array_equal(mixed[:, 4:], 1.0)
    np.testing.assert_array_equal(_numpy(mix_styles(a, b, 0)), b)
    np.testing.assert_array_equal(_numpy(mix_styles(a, b, 6)), a)


def test_style_mixing_only_in_training_and_with_another_examples_styles():
    styles = np.repeat(np.arange(4, dtype="float32")[:, None, None], 6, axis=1)  # example i: all i
    styles = np.repeat(styles, 2, axis=2)
    mixing = StyleMixing(probability=1.0, seed=0)
    np.testing.assert_array_equal(_numpy(mixing(styles, training=False)), styles)
    mixed = _numpy(mixing(styles, training=True))
    for example in range(4):
        values = mixed[example, :, 0]
        crossover = int(np.argmax(values != example))
        assert 1 <= crossover < 6  # some styles kept, the rest swapped
        np.testing.assert_array_equal(values[:crossover], example)
        np.testing.assert_array_equal(values[crossover:], (example - 1) % 4)  # the rolled neighbour
    never = StyleMixing(probability=0.0)
    np.testing.assert_array_equal(_numpy(never(styles, training=True)), styles)


# --- synthesis pieces ---


def test_noise_injection_is_fixed_at_inference_and_fresh_in_training():
    x = np.zeros((2, 5, 5, 3), "float32")
    noise = NoiseInjection(seed=1)
    noise.build(x.shape)
    np.testing.assert_array_equal(_numpy(noise(x)), x)  # strength starts at 0
    noise.strength.assign(2.0)
    inference = _numpy(noise(x, training=False))
    np.testing.assert_array_equal(inference, _numpy(noise(x, training=False)))
    np.testing.assert_array_equal(inference[0], inference[1])  # one fixed map, every channel
    np.testing.assert_array_equal(inference[..., 0], inference[..., 2])
    fresh = _numpy(noise(x, training=True))
    assert not np.allclose(fresh, inference) and not np.allclose(fresh[0], fresh[1])


@pytest.mark.parametrize("modulation", ["demodulate", "adain"])
def test_synthesis_layer_shapes_and_round_trip(modulation):
    x, w = _normal((2, 4, 4, 8), 11), _normal((2, 6), 12)
    layer = SynthesisLayer(5, upsample=True, modulation=modulation, seed=0)
    y = layer([x, w])
    assert tuple(y.shape) == (2, 8, 8, 5)
    np.testing.assert_allclose(_numpy(_round_trip(layer, [x, w])([x, w])), _numpy(y), rtol=1e-5)


def test_adain_gives_each_channel_the_predicted_statistics():
    x, w = _normal((2, 8, 8, 4), 13, scale=3.0), _normal((2, 6), 14)
    layer = StyleAdaIN(epsilon=0.0)
    y = _numpy(layer([x, w]))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), _numpy(layer.shift(w)), atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), np.abs(_numpy(layer.scale(w))), rtol=1e-3)


def test_constant_input_and_to_rgb():
    w = _normal((3, 6), 15)
    constant = ConstantInput(8)
    x = constant(w)
    assert tuple(x.shape) == (3, 4, 4, 8)
    np.testing.assert_array_equal(_numpy(x)[0], _numpy(x)[2])  # the same for every example
    rgb = ToRGB(3)
    image = rgb([x, w])
    assert tuple(image.shape) == (3, 4, 4, 3)
    np.testing.assert_allclose(_numpy(_round_trip(rgb, [x, w])([x, w])), _numpy(image), rtol=1e-5)


def test_minibatch_stddev_appends_the_group_statistic():
    x = _normal((8, 4, 4, 6), 16)
    y = _numpy(MinibatchStdDev(group_size=4)(x))
    assert y.shape == (8, 4, 4, 7)
    np.testing.assert_array_equal(y[..., :6], x)
    # Example n is in group n % 2; the statistic is constant over the image.
    expected = np.sqrt(x[0::2].var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(y[0, :, :, 6], expected, rtol=1e-5)
    np.testing.assert_allclose(y[2, :, :, 6], expected, rtol=1e-5)
    # A batch that is not a multiple of the group size is one group.
    odd = _numpy(MinibatchStdDev(group_size=4)(x[:6]))
    np.testing.assert_allclose(odd[0, 0, 0, 6], np.sqrt(x[:6].var(axis=0) + 1e-8).mean(), rtol=1e-5)
    # Identical images: no diversity, statistic ~0.
    same = _numpy(MinibatchStdDev()(np.repeat(x[:1], 4, axis=0)))
    assert np.abs(same[..., 6]).max() < 1e-3


def test_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        EqualizedDense(4, activation="relu6")
    with pytest.raises(ValueError, match="kernel_size"):
        ModulatedConv2D(4, kernel_size=2)
    with pytest.raises(ValueError, match="modulation"):
        SynthesisLayer(4, modulation="batchnorm")
    with pytest.raises(ValueError, match="probability"):
        StyleMixing(1.5)
    with pytest.raises(ValueError, match="divisible"):
        MinibatchStdDev(num_channels=4)(np.zeros((4, 2, 2, 6), "float32"))


def test_modulated_conv_runs_in_bfloat16():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    x, w = _normal((2, 8, 8, 16), 17), _normal((2, 8), 18)
    layer = SynthesisLayer(16, upsample=True)
    y = layer([x, w], training=True)
    assert y.dtype == "bfloat16" and np.isfinite(_numpy(ops.cast(y, "float32"))).all()
