"""ReflectionPadding2D: values as numpy's reflect mode, shapes, serialization."""

import keras
import numpy as np
import pytest

from kerasgan.layers import ReflectionPadding2D


@pytest.mark.parametrize("padding", [1, (2, 1)])
def test_values_match_numpy_reflect(padding):
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype("float32")
    pad_h, pad_w = (padding, padding) if isinstance(padding, int) else padding
    expected = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)), mode="reflect")
    layer = ReflectionPadding2D(padding)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)
    assert layer.compute_output_shape((2, 5, 6, 3)) == expected.shape
    assert layer.compute_output_shape((None, None, None, 3)) == (None, None, None, 3)


def test_rejects_negative_padding():
    with pytest.raises(ValueError, match="padding"):
        ReflectionPadding2D(-1)


def test_get_config_round_trip():
    layer = ReflectionPadding2D((2, 3), name="pad")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, ReflectionPadding2D) and revived.padding == (2, 3)
