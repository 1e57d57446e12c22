import numpy as np
from PIL import Image

from kerasgan import plotting


def test_to_uint8_maps_the_generator_range():
    values = np.array([-1.0, 0.0, 1.0, 2.0], "float32")
    assert plotting.to_uint8(values).tolist() == [0, 128, 255, 255]


def test_image_grid_tiles_with_padding():
    images = np.stack([np.full((4, 5, 1), v, "float32") for v in (-1.0, 1.0, 0.0)])
    grid = plotting.image_grid(images, cols=2, padding=1)
    assert grid.shape == (2 * 5 + 1, 2 * 6 + 1, 1) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[1, 7, 0] == 255 and grid[6, 1, 0] == 128
    assert grid[0, 0, 0] == 255  # padding


def test_save_image_and_gif_are_readable(tmp_path):
    frames = [np.full((8, 8, 3), v, "uint8") for v in (0, 100, 200)]
    plotting.save_image(frames[1], str(tmp_path / "a.png"), scale=2)
    assert Image.open(tmp_path / "a.png").size == (16, 16)
    plotting.save_gif(frames, str(tmp_path / "a.gif"))
    assert Image.open(tmp_path / "a.gif").n_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.png"]  # no temp files left


def test_slerp_keeps_the_norm_and_ends():
    start, end = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    path = plotting.interpolate_latents(start, end, 5)
    np.testing.assert_allclose(path[0], start, atol=1e-6)
    np.testing.assert_allclose(path[-1], end, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0, atol=1e-5)
    linear = plotting.interpolate_latents(start, end, 3, spherical=False)
    np.testing.assert_allclose(linear[1], [1.5, 1.5])
