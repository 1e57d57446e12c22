"""`python -m kerasgan stylize`: both methods end to end, and every bad input as one clear line.

The Gatys runs use the fixed random-weight VGG19 (`--weights random`), tiny sizes and two steps:
they check the command's mechanics (files, sizes, messages), not the quality of the painting,
which needs ImageNet weights and is not tested offline.
"""

import os

import numpy as np
import pytest
from PIL import Image

from kerasgan import style_transfer as st
from tests.cli_helpers import assert_one_clear_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(ROOT, "data", "photos", "chelsea.jpg")  # 451 x 300
STYLE = os.path.join(ROOT, "data", "styles", "mosaic.jpg")
FAST = ("--weights", "random", "--size", "64", "--steps", "2")


# === It works ===


def test_gatys_with_random_weights_writes_the_result_and_a_comparison(kerasgan, tmp_path):
    out = tmp_path / "out.png"
    result = kerasgan("stylize", PHOTO, STYLE, "--out", out, *FAST)
    assert result.returncode == 0, result.stderr
    assert "random weights" in result.stderr  # said once, in one line
    assert len([line for line in result.stderr.splitlines() if "random" in line]) == 1
    assert f"wrote {out}" in result.stdout
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (64, 43)  # longer side 64, aspect kept
    with Image.open(tmp_path / "out_compare.png") as figure:
        assert figure.format == "PNG" and figure.size[0] > 2 * figure.size[1]
    assert sorted(os.listdir(tmp_path)) == ["out.png", "out_compare.png"]  # no temp leftovers


def test_gatys_lbfgs_and_explicit_weights_to_a_jpeg(kerasgan, tmp_path):
    out = tmp_path / "out.jpg"
    result = kerasgan(
        "stylize", STYLE, PHOTO, "--out", out, *FAST, "--optimizer", "lbfgs",
        "--style-weight", "1", "--content-weight", "1", "--tv-weight", "0",
        "--precision", "mixed_bfloat16",
    )
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (64, 64)
    assert (tmp_path / "out_compare.png").is_file()


def test_grayscale_and_rgba_inputs_are_converted(kerasgan, tmp_path):
    rng = np.random.default_rng(0)
    gray, rgba = tmp_path / "gray.png", tmp_path / "rgba.png"
    Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).save(gray)
    Image.fromarray(rng.integers(0, 256, (48, 40, 4), dtype=np.uint8)).save(rgba)
    result = kerasgan("stylize", gray, rgba, "--out", tmp_path / "out.png", *FAST)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == "RGB" and image.size == (64, 53)


def test_adain_with_a_saved_stylizer(kerasgan, tmp_path):
    stylizer = st.AdaINStylizer(encoder_weights="random", decoder_filters=(16, 8, 8), image_size=32)
    model = tmp_path / "stylizer.keras"
    stylizer.save(model)
    out = tmp_path / "out.png"
    result = kerasgan(
        "stylize", PHOTO, STYLE, "--out", out, "--method", "adain", "--model", model,
        "--size", "96", "--alpha", "0.5",
    )
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.size == (96, 64)
    assert (tmp_path / "out_compare.png").is_file()


# === Mistakes: one line, exit 2, nothing written ===


def test_offline_default_weights_say_how_to_provide_them(kerasgan, tmp_path, monkeypatch):
    monkeypatch.setattr(st, "_keras_cache_candidates", lambda: [str(tmp_path / "absent.h5")])
    out = tmp_path / "out.png"
    result = kerasgan("stylize", PHOTO, STYLE, "--out", out, "--size", "64", "--steps", "2")
    assert_one_clear_line(result, "ImageNet weights", "--weights PATH", "--weights random")
    assert not out.exists()


@pytest.fixture
def bad_files(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    corrupt = tmp_path / "corrupt.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(corrupt, quality=90)
    corrupt.write_bytes(corrupt.read_bytes()[:300])
    return {"missing": tmp_path / "missing.jpg", "text": text, "corrupt": corrupt}


@pytest.mark.parametrize(
    "case, fragment",
    [("missing", "no such file"), ("text", "not an image"), ("corrupt", "corrupt or truncated")],
)
def test_unusable_images(kerasgan, bad_files, tmp_path, case, fragment):
    out = tmp_path / "out.png"
    result = kerasgan("stylize", bad_files[case], STYLE, "--out", out, *FAST)
    assert_one_clear_line(result, str(bad_files[case]), fragment)
    result = kerasgan("stylize", PHOTO, bad_files[case], "--out", out, *FAST)
    assert_one_clear_line(result, fragment)
    assert not out.exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        (("--size", "100000"), "--size must be between"),
        (("--size", "4"), "--size must be between"),
        (("--size", "big"), "--size"),
        (("--steps", "0"), "--steps"),
        (("--style-weight", "-1"), "--style-weight"),
        (("--method", "adain"), "needs --model"),
        (("--method", "adain", "--model", "m.keras", "--alpha", "2"), "--alpha"),
        (("--model", "m.keras"), "--model is for --method adain"),
        (("--method", "adain", "--model", "m.keras", "--precision", "float32"),
         "--precision is for --method gatys"),
        (("--precision", "float16"), "--precision"),
        (("--weights", "nowhere.h5"), "weights file not found"),
    ],
)
def test_bad_options(kerasgan, tmp_path, options, fragment):
    result = kerasgan("stylize", PHOTO, STYLE, "--out", tmp_path / "out.png", *options)
    assert_one_clear_line(result, fragment)


def test_bad_stylizer_files(kerasgan, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_text("not a zip")
    for model, fragment in ((tmp_path / "absent.keras", "no such file"), (broken, "cannot load")):
        result = kerasgan(
            "stylize", PHOTO, STYLE, "--out", tmp_path / "o.png", "--method", "adain",
            "--model", model,
        )
        assert_one_clear_line(result, str(model), fragment)


@pytest.mark.parametrize(
    "out, fragment",
    [
        ("out.gif", "--out must be a .png or .jpg"),
        ("out", "--out must be a .png or .jpg"),
        ("no/such/folder/out.png", "does not exist"),
    ],
)
def test_bad_out_paths(kerasgan, tmp_path, out, fragment):
    result = kerasgan("stylize", PHOTO, STYLE, "--out", tmp_path / out, *FAST)
    assert_one_clear_line(result, fragment)


def test_unwritable_out_folder(kerasgan, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    # Root may write anywhere, so the permission check itself is what is exercised here.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode)
    )
    result = kerasgan("stylize", PHOTO, STYLE, "--out", locked / "out.png", *FAST)
    assert_one_clear_line(result, "not writable")
    assert not os.listdir(locked)
