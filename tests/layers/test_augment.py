"""DiffAugment: per-image random transformations, differentiable, identity outside training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan.errors import ConfigError
from kerasgan.layers import DiffAugment
from kerasgan.layers.augment import CUTOUT_AREA, parse_policy


def digits(n=16, size=16, seed=0):
    """Images in [-1, 1]: a black background with a bright square in the middle."""
    images = -np.ones((n, size, size, 1), "float32")
    images[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    return images + np.random.default_rng(seed).uniform(0, 0.01, images.shape).astype("float32")


def test_policy_is_parsed_and_checked():
    assert parse_policy(" translation , cutout") == ("translation", "cutout")
    for bad in ("", "flip", "cutout,cutout"):
        with pytest.raises(ConfigError, match="augmentation policy"):
            DiffAugment(bad)


def test_outside_training_the_images_pass_unchanged():
    images = digits()
    out = DiffAugment("color,translation,cutout", seed=0)(images, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), images)


def test_cutout_blanks_a_quarter_of_every_image():
    images = digits()
    out = keras.ops.convert_to_numpy(DiffAugment("cutout", seed=0)(images, training=True))
    blanked = (out == 0.0).mean(axis=(1, 2, 3))
    assert out.shape == images.shape
    np.testing.assert_allclose(blanked, CUTOUT_AREA, atol=0.08)  # whole pixels of a 16 x 16


def test_translation_shifts_each_image_on_its_own_and_fills_with_background():
    images = digits(n=32)
    out = keras.ops.convert_to_numpy(DiffAugment("translation", seed=1)(images, training=True))
    # The bright square's centre of mass moves, by a different amount per image.
    rows = np.arange(16)[None, :, None, None]
    centres = ((out > 0) * rows).sum(axis=(1, 2, 3)) / np.maximum((out > 0).sum(axis=(1, 2, 3)), 1)
    assert len(np.unique(np.round(centres, 3))) > 3
    assert np.abs(centres - 7.5).max() <= 2.01  # at most 1/8 of 16 pixels
    assert out.min() >= -1.0 and out.max() <= 1.02


def test_color_stays_in_range_and_changes_the_images():
    images = digits()
    out = keras.ops.convert_to_numpy(DiffAugment("color", seed=2)(images, training=True))
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert np.abs(out - images).mean() > 0.01


def test_gradients_flow_through_every_transformation():
    images = tf.Variable(digits())
    layer = DiffAugment("color,translation,cutout", seed=3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(images, training=True)))
    gradient = tape.gradient(loss, images)
    assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0


def test_same_seed_same_transformations_and_config_round_trip():
    images = digits()
    first = DiffAugment("translation,cutout", seed=4)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(first))
    assert isinstance(revived, DiffAugment) and revived.policy == "translation,cutout"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(first(images, training=True)),
        keras.ops.convert_to_numpy(revived(images, training=True)),
    )
