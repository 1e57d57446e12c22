"""Hostile image files: truncated, unusual modes, decompression bombs, in folders and alone.

Every file is built here with Pillow. A folder used for training must either convert a file
correctly or skip it with one notice, at listing time: TensorFlow's decoder must never meet a
broken file mid-epoch. A single file (for `translate` and `stylize`) is read or refused with
one line naming it.
"""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kerasgan import datasets
from kerasgan.errors import DataError

RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
# 16-bit grey values across the whole range, 0..65535 (multiples of 257 map to exact bytes).
GREY16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040).clip(0, 65535).astype(np.uint16)


def truncated(path, image, cut=None, **save):
    """Save `image` to `path`, then drop its last bytes (half of them by default)."""
    image.save(path, **save)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - (cut or len(data) // 2)])
    return path


def png_declaring(path, width, height):
    """A valid-looking PNG whose header declares `width x height` over a few bytes of data."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


def hostile_files(folder):
    """Write one file of every hostile kind; returns `{name: expected pixels or None}`."""
    folder.mkdir(exist_ok=True)
    rgb = Image.fromarray(NOISE)
    flat = Image.new("RGB", (8, 8), (200, 30, 90))
    Image.fromarray(NOISE).save(folder / "good.png")
    flat.convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    Image.fromarray(GREY16).save(folder / "grey16.png")
    assert Image.open(folder / "grey16.png").mode.startswith("I")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("P").save(folder / "palette_alpha.png", transparency=0)
    Image.new("LA", (8, 8), (77, 0)).save(folder / "grey_alpha.png")
    truncated(folder / "cut.jpg", rgb, cut=10, quality=95)
    truncated(folder / "cut.gif", rgb, cut=10)
    truncated(folder / "cut.bmp", rgb)
    png_declaring(folder / "bomb.png", 100_000, 100_000)
    png_declaring(folder / "big.png", 12_000, 8_000)  # under Pillow's bomb limit, over ours
    palette = np.asarray(rgb.convert("P").convert("RGB"))
    return {
        "good.png": NOISE,
        "cmyk.jpg": np.full((8, 8, 3), (200, 30, 90), np.uint8),
        "grey16.png": np.round(GREY16 / 257.0).astype(np.uint8)[..., None].repeat(3, -1),
        "palette.png": palette,
        "palette_alpha.png": palette,  # alpha is dropped, as for every RGBA file
        "grey_alpha.png": np.full((8, 8, 3), 77, np.uint8),
        "cut.jpg": None, "cut.gif": None, "cut.bmp": None, "bomb.png": None, "big.png": None,
    }


def test_a_hostile_folder_converts_what_it_can_and_skips_the_rest_with_one_notice(
    tmp_path, capsys
):
    expected = hostile_files(tmp_path / "photos")
    dataset = datasets.load_image_folder(tmp_path / "photos", image_size=None, channels=3)
    usable = sorted(name for name, pixels in expected.items() if pixels is not None)
    assert int(dataset.cardinality()) == len(usable)
    images = [image.numpy() for image in dataset]  # the whole epoch: no decoder error mid-way
    for name, image in zip(usable, images, strict=True):
        pixels = np.round((image + 1.0) * 127.5)
        tolerance = 3 if name.endswith(".jpg") else 0  # JPEG is lossy, even at quality 100
        np.testing.assert_allclose(pixels, expected[name], atol=tolerance, err_msg=name)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("kerasgan: skipping 5 of 11 image files that cannot be decoded")
    assert "e.g. big.png" in lines[0] and "more than" in lines[0]


def test_a_16_bit_grey_png_becomes_one_channel_scaled_not_clipped(tmp_path):
    Image.fromarray(GREY16).save(tmp_path / "grey16.png")
    image = next(iter(datasets.load_image_folder(tmp_path, image_size=None, channels=1)))
    np.testing.assert_array_equal(
        np.round((image.numpy()[..., 0] + 1.0) * 127.5), np.round(GREY16 / 257.0)
    )


def test_a_folder_of_only_broken_files_is_a_data_error(tmp_path):
    rgb = Image.fromarray(NOISE)
    truncated(tmp_path / "a.jpg", rgb, cut=10)
    truncated(tmp_path / "b.bmp", rgb)
    png_declaring(tmp_path / "c.png", 100_000, 100_000)
    with pytest.raises(DataError, match=r"none of the 3 image files in .* can be decoded, e\.g\."):
        datasets.load_image_folder(tmp_path)


def test_the_pixel_limit_can_be_set(tmp_path, capsys):
    Image.fromarray(NOISE).save(tmp_path / "small.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "large.png")
    dataset = datasets.load_image_folder(tmp_path, image_size=8, max_pixels=1000)
    assert int(dataset.cardinality()) == 1
    assert "e.g. large.png: too large (64x64 pixels, more than 1,000)" in capsys.readouterr().err


# === Single files (translate, stylize) ===


@pytest.mark.parametrize("channels", [1, 3])
def test_a_single_file_is_converted_when_that_is_correct(tmp_path, channels):
    expected = hostile_files(tmp_path)
    for name, pixels in expected.items():
        if pixels is None:
            continue
        image = datasets.read_image_file(tmp_path / name, channels)
        assert image.dtype == np.uint8 and image.shape == (8, 8, channels), name
        want = pixels if channels == 3 else np.asarray(Image.fromarray(pixels).convert("L"))[..., None]
        tolerance = 3 if name.endswith(".jpg") else (1 if channels == 1 else 0)
        np.testing.assert_allclose(image, want, atol=tolerance, err_msg=name)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("cut.jpg", "truncated"),
        ("cut.gif", "truncated"),
        ("cut.bmp", "truncated"),
        ("bomb.png", "too large"),
        ("big.png", "too large (12000x8000 pixels, more than"),
        ("missing.png", "no such file"),
        ("notes.png", "not an image file"),
        (".", "a folder, not an image file"),
    ],
)
def test_a_single_broken_file_is_one_line_naming_it(tmp_path, name, problem):
    hostile_files(tmp_path)
    (tmp_path / "notes.png").write_text("hello")
    path = tmp_path / name
    with pytest.raises(DataError) as error:
        datasets.read_image_file(path, 3)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    assert problem in message, message
