import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import plotting, utils


def test_to_uint8_maps_the_generator_range():
    values = np.array([-1.0, 0.0, 1.0, 2.0], "float32")
    assert plotting.to_uint8(values).tolist() == [0, 128, 255, 255]


# === The one uint8 converter (utils.to_uint8) ===

# [-1, 1]: x -> round((x + 1) * 127.5), half to even (127.5 -> 128), then clipped.
GENERATOR_RANGE = (
    np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], "float32"),
    [0, 0, 64, 128, 191, 255, 255],
)
# [0, 1]: x -> round(x * 255), clipped.
UNIT_RANGE = (np.array([-0.2, 0.0, 0.25, 0.5, 1.0, 1.2], "float32"), [0, 0, 64, 128, 255, 255])


@pytest.mark.parametrize(
    "value_range, values, expected",
    [((-1, 1), *GENERATOR_RANGE), ((0, 1), *UNIT_RANGE)],
    ids=["generator-range", "unit-range"],
)
def test_one_uint8_converter_rounds_and_clips_numpy_eager_and_graph_inputs(
    value_range, values, expected
):
    as_numpy = utils.to_uint8(values, value_range=value_range)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.uint8
    assert as_numpy.tolist() == expected
    as_eager = utils.to_uint8(tf.constant(values), value_range=value_range)
    assert isinstance(as_eager, tf.Tensor) and as_eager.numpy().tolist() == expected

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def in_graph(images):
        converted = utils.to_uint8(images, value_range=value_range)
        assert isinstance(converted, tf.Tensor) and converted.dtype == tf.uint8
        return converted

    assert in_graph(tf.constant(values)).numpy().tolist() == expected


def test_one_uint8_converter_keeps_pixels_and_casts_low_precision_floats():
    pixels = np.array([0, 7, 255], "uint8")
    assert utils.to_uint8(pixels) is pixels
    half = tf.constant([-1.0, 0.0, 1.0], tf.bfloat16)
    assert tf.function(utils.to_uint8)(half).numpy().tolist() == [0, 128, 255]
    assert utils.to_uint8([[-1.0, 1.0]]).tolist() == [[0, 255]]


def test_every_converter_of_the_package_is_the_one_converter():
    from kerasgan import course, export, serving, style_transfer

    assert plotting.to_uint8 is utils.to_uint8  # kept for the notebooks
    for module in (export, serving, style_transfer):
        converters = {name: getattr(module, name) for name in dir(module) if "uint8" in name}
        assert all(f is utils.to_uint8 for f in converters.values()), (module.__name__, converters)
    images = np.array([[-1.0, 0.004, 1.0]], "float32")
    assert course.EXERCISES["02.to_uint8"].solution(images).tolist() == [[0, 128, 255]]
    response = {"predictions": images.tolist()}
    assert serving.images_from_response(response).tolist() == [[0, 128, 255]]


def test_mixing_tiles_lays_out_a_blank_corner_sources_and_mixes():
    grid = np.zeros((2, 3, 4, 4, 1), "float32")  # 2 rows x 3 columns of mixes, all grey
    rows, cols = np.full((2, 4, 4, 1), -1.0, "float32"), np.full((3, 4, 4, 1), 1.0, "float32")
    tiles = plotting.mixing_tiles(grid, rows, cols)
    assert tiles.shape == ((2 + 1) * (3 + 1), 4, 4, 1) and tiles.dtype == np.uint8
    assert [int(tile[0, 0, 0]) for tile in tiles] == [
        255, 255, 255, 255,  # blank corner, then the column sources
        0, 128, 128, 128,  # a row source, then its mixes
        0, 128, 128, 128,
    ]


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
