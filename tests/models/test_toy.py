import numpy as np
import tensorflow as tf

from kerasgan.models.toy import ToyGAN, mode_coverage, ring_of_gaussians


def test_ring_of_gaussians_is_on_the_ring():
    points = ring_of_gaussians(1000, modes=8, radius=2.0, std=0.05, seed=0)
    assert points.shape == (1000, 2) and points.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(points, axis=1).mean(), 2.0, atol=0.02)
    covered, quality = mode_coverage(points)
    assert covered == 8 and quality > 0.98  # 3 std radius holds ~99% of a 2-D Gaussian


def test_mode_coverage_sees_a_collapsed_generator():
    collapsed = np.tile([[2.0, 0.0]], (500, 1)).astype("float32")
    assert mode_coverage(collapsed) == (1, 1.0)
    assert mode_coverage(np.zeros((10, 2), "float32"))[1] == 0.0


def test_toy_gan_learns_the_ring_in_seconds():
    gan = ToyGAN.build(seed=0)
    gan.compile()
    data = tf.data.Dataset.from_tensor_slices(ring_of_gaussians(4096, seed=0))
    gan.fit(data.shuffle(4096, seed=0).batch(256, drop_remainder=True), epochs=30, verbose=0)
    covered, quality = mode_coverage(gan.generate(2000, seed=1))
    assert covered >= 6 and quality > 0.3, (covered, quality)


def test_discriminator_map_is_a_probability_grid():
    xs, ys, probabilities = ToyGAN.build(seed=0).discriminator_map(extent=2.0, resolution=10)
    assert xs.shape == ys.shape == probabilities.shape == (10, 10)
    assert probabilities.min() >= 0 and probabilities.max() <= 1


def test_toy_gan_writes_out_its_own_steps_without_the_base_hooks():
    from tests.models.test_dcgan import assert_step_is_written_out

    gan = ToyGAN.build(width=16, depth=2, seed=0)
    gan.compile()
    assert_step_is_written_out(gan, tf.constant(ring_of_gaussians(8, seed=0)))
