"""Neural style transfer: losses, the Gatys routine, the AdaIN stylizer, its export, bad inputs.

Offline, VGG19's ImageNet weights cannot be downloaded, so every test that runs VGG19 uses the
fixed random-weight network (`weights="random"`). These tests check mechanics (shapes, losses
falling, determinism, serialization, export parity); the *quality* of stylised images needs
ImageNet weights and is not tested offline.
"""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import export
from kerasgan import style_transfer as st
from kerasgan.errors import ConfigError, DataError

# === Fixtures ===


@pytest.fixture
def image_files(tmp_path):
    """Small content and style folders with a JPEG, a PNG, a grayscale and an RGBA image."""
    rng = np.random.default_rng(0)
    content_dir, style_dir = tmp_path / "content", tmp_path / "style"
    content_dir.mkdir()
    style_dir.mkdir()
    for index in range(3):
        array = rng.integers(0, 256, (40 + 4 * index, 48, 3), dtype=np.uint8)
        Image.fromarray(array).save(content_dir / f"photo{index}.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(style_dir / "a.png")
    Image.fromarray(rng.integers(0, 256, (36, 40), dtype=np.uint8)).save(style_dir / "gray.png")
    Image.fromarray(rng.integers(0, 256, (40, 36, 4), dtype=np.uint8)).save(style_dir / "rgba.png")
    return content_dir, style_dir


def _tiny_stylizer():
    return st.AdaINStylizer(encoder_weights="random", decoder_filters=(16, 8, 8), image_size=32)


def _random_uint8(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# === Losses on known inputs ===


def test_gram_matrix_on_a_hand_computed_input():
    # Two positions with features (1, 2) and (3, 4): G = [[1+9, 2+12], [2+12, 4+16]] / 2.
    features = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype="float32")
    np.testing.assert_allclose(st.gram_matrix(features), [[[5.0, 7.0], [7.0, 10.0]]])


def test_gram_matrix_ignores_where_features_are():
    features = np.random.default_rng(0).standard_normal((1, 4, 4, 3)).astype("float32")
    shuffled = features.reshape(1, 16, 3)[:, np.random.default_rng(1).permutation(16)]
    np.testing.assert_allclose(
        st.gram_matrix(features), st.gram_matrix(shuffled.reshape(1, 4, 4, 3)), rtol=1e-5
    )


def test_content_loss_is_the_mean_squared_difference():
    generated = np.zeros((2, 2, 2, 1), "float32")
    target = np.array(
        [[[[1.0], [1.0]], [[1.0], [1.0]]], [[[2.0], [0.0]], [[0.0], [0.0]]]], "float32"
    )
    np.testing.assert_allclose(st.content_loss(generated, target), [1.0, 1.0])


def test_style_loss_compares_gram_matrices():
    one_channel = np.ones((1, 2, 2, 1), "float32")  # Gram [[1]]
    np.testing.assert_allclose(st.style_loss(one_channel, one_channel), [0.0])
    np.testing.assert_allclose(st.style_loss(one_channel, 3.0 * one_channel[:, :1, :1]), [64.0])


def test_style_statistics_loss_compares_channel_means_and_stds():
    generated = np.zeros((1, 2, 2, 2), "float32")
    style = np.array([[[[1.0, 2.0], [3.0, 2.0]], [[1.0, 2.0], [3.0, 2.0]]]], "float32")
    # Channel means (2, 2), stds (1, 0): ((4 + 4) / 2) + ((1 + 0) / 2) = 4.5.
    np.testing.assert_allclose(st.style_statistics_loss(generated, style, epsilon=0.0), [4.5])


def test_total_variation_loss_sums_neighbour_differences():
    image = np.array([[0.0, 1.0], [1.0, 1.0]], "float32")[None, :, :, None]
    np.testing.assert_allclose(st.total_variation_loss(image), [2.0])
    batch = np.random.default_rng(0).uniform(size=(2, 5, 6, 3)).astype("float32")
    np.testing.assert_allclose(
        st.total_variation_loss(batch), tf.image.total_variation(tf.constant(batch)), rtol=1e-5
    )


# === The Gatys routine (random-weight VGG19: mechanics only, quality not tested offline) ===


def test_total_loss_falls_over_steps_random_vgg_quality_not_tested_offline():
    content, style = _random_uint8((40, 48, 3), 0), _random_uint8((36, 36, 3), 1)
    image, history = st.stylize(
        content,
        style,
        image_size=32,
        steps=12,
        weights="random",
        init="noise",
        seed=0,
        progress=False,
    )
    assert image.dtype == np.uint8 and image.shape == (27, 32, 3)
    assert set(history) == {"total", "content", "style", "tv"}
    assert all(len(values) == 12 and np.all(np.isfinite(values)) for values in history.values())
    assert history["total"][-1] < 0.7 * history["total"][0]


def test_starting_from_the_photo_the_style_loss_falls():
    content, style = _random_uint8((32, 32, 3), 2), _random_uint8((32, 32, 3), 3)
    _, history = st.stylize(
        content, style, image_size=32, steps=8, weights="random", progress=False
    )
    assert history["content"][0] == 0.0
    assert history["style"][-1] < history["style"][0]


def test_the_papers_content_layer_is_conv4_2_and_selectable():
    """Gatys et al. match content at conv4_2; the default stays the tutorial's block5_conv2
    (the layer its loss weights were tuned with), and the paper's is one argument away."""
    assert st.GATYS_CONTENT_LAYERS == ("block4_conv2",)
    assert st.CONTENT_LAYERS == ("block5_conv2",)
    content, style = _random_uint8((32, 32, 3), 2), _random_uint8((32, 32, 3), 3)
    _, history = st.stylize(
        content, style, image_size=32, steps=4, weights="random", init="noise", seed=0,
        content_layers=st.GATYS_CONTENT_LAYERS, progress=False,
    )
    assert history["content"][-1] < history["content"][0]


def test_lbfgs_lowers_the_loss():
    content, style = _random_uint8((32, 32, 3), 4), _random_uint8((32, 32, 3), 5)
    _, history = st.stylize(
        content,
        style,
        image_size=32,
        steps=5,
        optimizer="lbfgs",
        weights="random",
        init="noise",
        seed=0,
        progress=False,
    )
    assert 1 <= len(history["total"]) <= 5
    assert history["total"][-1] < history["total"][0]


def test_same_seed_same_image():
    content, style = _random_uint8((32, 40, 3), 6), _random_uint8((32, 32, 3), 7)

    def run(seed):
        return st.stylize(
            content,
            style,
            image_size=32,
            steps=3,
            weights="random",
            init="noise",
            seed=seed,
            progress=False,
        )[0]

    first, second, other = run(1), run(1), run(2)
    np.testing.assert_array_equal(first, second)
    assert np.any(first != other)


def test_the_random_weight_vgg19_is_the_same_network_every_time():
    first, second = st.build_vgg19("random"), st.build_vgg19("random")
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_feature_extractors_are_cached():
    layers = ("block1_conv1", "block2_conv1")
    assert st.vgg19_features(layers, "random") is st.vgg19_features(layers, "random")


def test_each_precision_gets_its_own_vgg19():
    layers = ("block1_conv1",)
    bf16 = st.vgg19_features(layers, "random", policy="mixed_bfloat16")
    f32 = st.vgg19_features(layers, "random", policy="float32")
    assert bf16 is not f32
    assert bf16.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert f32.get_layer("block1_conv1").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone


def test_stylize_precision_auto_follows_the_machine_and_bad_values_are_refused(monkeypatch):
    monkeypatch.setattr(st, "resolve_policy", lambda name: "mixed_bfloat16")
    assert st.stylize_precision("auto") == "mixed_bfloat16"
    for elsewhere in ("float32", "mixed_float16"):  # no AMX; a GPU
        monkeypatch.setattr(st, "resolve_policy", lambda name, chosen=elsewhere: chosen)
        assert st.stylize_precision("auto") == "float32"
    assert st.stylize_precision("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ConfigError, match="precision must be one of"):
        st.stylize_precision("mixed_float16")


def test_bfloat16_features_give_the_float32_losses_within_five_percent():
    content, style = _random_uint8((32, 32, 3), 8), _random_uint8((32, 32, 3), 9)
    histories = {
        precision: st.stylize(
            content, style, image_size=32, steps=4, weights="random", init="noise", seed=0,
            progress=False, precision=precision,
        )[1]["total"]
        for precision in ("float32", "mixed_bfloat16")
    }
    np.testing.assert_allclose(histories["mixed_bfloat16"], histories["float32"], rtol=0.05)
    assert histories["float32"][-1] < histories["float32"][0]


# === Weights: one clear line when they are missing ===


def test_imagenet_weights_offline_say_how_to_provide_them(monkeypatch, tmp_path):
    monkeypatch.setenv("KERASGAN_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(st, "_keras_cache_candidates", lambda: [str(tmp_path / "absent.h5")])
    with pytest.raises(DataError) as info:
        st.build_vgg19("imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "--weights PATH" in message and st.VGG19_WEIGHTS_FILE in message


def test_a_missing_weights_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        st.build_vgg19(str(tmp_path / "vgg19.h5"))


def test_a_file_that_is_not_vgg19_weights_is_a_data_error(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("not weights")
    with pytest.raises(DataError, match="cannot load"):
        st.build_vgg19(str(path))


# === Bad inputs ===


def test_missing_image_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        st.load_image(tmp_path / "nope.jpg")


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(DataError, match="folder"):
        st.load_image(tmp_path)


def test_a_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(DataError, match="not an image"):
        st.load_image(path)


def test_a_truncated_jpeg_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_random_uint8((64, 64, 3), 0)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        st.load_image(path)


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((10, 12), 100, np.uint8)).save(gray)
    rgba = tmp_path / "rgba.png"
    pixels = np.zeros((10, 12, 4), np.uint8)
    pixels[..., 0] = 255  # red, fully transparent on the left half
    pixels[:, 6:, 3] = 255
    Image.fromarray(pixels).save(rgba)

    gray_rgb, rgba_rgb = st.load_image(gray), st.load_image(rgba)
    assert gray_rgb.shape == (10, 12, 3) and np.all(gray_rgb == 100)
    assert rgba_rgb.shape == (10, 12, 3)
    np.testing.assert_array_equal(rgba_rgb[0, 0], [255, 255, 255])  # transparent -> white
    np.testing.assert_array_equal(rgba_rgb[0, -1], [255, 0, 0])


def test_load_image_shrinks_to_max_size(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(_random_uint8((50, 200, 3), 0)).save(path)
    assert st.load_image(path, max_size=100).shape == (25, 100, 3)


@pytest.mark.parametrize("size", [0, -64, 5000, 31, 64.5, True, "256"])
def test_absurd_image_sizes_are_config_errors(size):
    content = _random_uint8((32, 32, 3), 0)
    with pytest.raises(ConfigError, match="image_size"):
        st.stylize(content, content, image_size=size, weights="random", progress=False)


def test_other_bad_options_are_config_errors():
    content = _random_uint8((32, 32, 3), 0)
    bad_options = [
        {"steps": 0},
        {"style_weight": -1.0},
        {"style_layers": ("block9_conv1",)},
        {"style_layer_weights": (1.0,)},
        {"optimizer": "sgd"},
        {"init": "zeros"},
    ]
    for options in bad_options:
        kwargs = {"image_size": 32, "steps": 1, "weights": "random", "progress": False, **options}
        with pytest.raises(ConfigError):
            st.stylize(content, content, **kwargs)


def test_arrays_of_every_common_layout_are_accepted():
    assert st.as_rgb_array(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert st.as_rgb_array(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert st.as_rgb_array(np.ones((4, 5, 3), np.float32)).max() == 255
    with pytest.raises(DataError):
        st.as_rgb_array(np.full((4, 5, 3), 2.0))
    with pytest.raises(DataError):
        st.as_rgb_array(np.zeros((4, 5, 2), np.uint8))


# === The AdaIN stylizer ===


def test_stylizer_dataset_yields_square_float_pairs(image_files):
    content_dir, style_dir = image_files
    dataset = st.stylizer_dataset(content_dir, style_dir, image_size=32, batch_size=2, seed=0)
    batches = list(dataset)
    assert len(batches) == 2  # one pass over 3 content images, 2 per batch
    content, style = batches[0]
    assert content.shape == (2, 32, 32, 3) and style.shape == (2, 32, 32, 3)
    assert 0.0 <= float(tf.reduce_min(content)) and float(tf.reduce_max(style)) <= 1.0


def test_stylizer_dataset_reports_empty_and_broken_folders(image_files, tmp_path):
    content_dir, style_dir = image_files
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        st.stylizer_dataset(content_dir, empty, image_size=32, batch_size=2)
    (style_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match="broken.jpg"):
        st.stylizer_dataset(content_dir, style_dir, image_size=32, batch_size=2)


def test_a_few_train_steps_give_finite_changing_losses(image_files):
    content_dir, style_dir = image_files
    stylizer = _tiny_stylizer()
    stylizer.compile(optimizer=keras.optimizers.Adam(1e-3))
    encoder_before = [w.copy() for w in stylizer.encoder.get_weights()]
    dataset = st.stylizer_dataset(content_dir, style_dir, image_size=32, batch_size=2, seed=0)
    history = stylizer.fit(dataset.repeat(), steps_per_epoch=2, epochs=3, verbose=0).history

    for name in ("loss", "content_loss", "style_loss"):
        assert np.all(np.isfinite(history[name])), name
        assert len(set(history[name])) == 3, name
    for before, after in zip(encoder_before, stylizer.encoder.get_weights()):
        np.testing.assert_array_equal(before, after)  # the encoder stays frozen


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_what_float32_draws(policy, image_files, tmp_path):
    """Under `policy` a few steps stay finite (float16: Keras scales the loss), and the export
    returns uint8 images close to what the same decoder draws in float32."""
    keras.mixed_precision.set_dtype_policy(policy)
    content_dir, style_dir = image_files
    stylizer = _tiny_stylizer()
    stylizer.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(stylizer.optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16"
    )
    dataset = st.stylizer_dataset(content_dir, style_dir, image_size=32, batch_size=2, seed=0)
    history = stylizer.fit(dataset.repeat(), steps_per_epoch=2, epochs=2, verbose=0).history
    for name in ("loss", "content_loss", "style_loss"):
        assert np.all(np.isfinite(history[name])), (name, history[name])
    serving = tf.saved_model.load(export.export_model(stylizer, str(tmp_path), name="stylizer"))
    content, style, alpha = _serving_inputs()
    exported = serving.signatures["serving_default"](
        content=tf.constant(content), style=tf.constant(style), alpha=tf.constant(alpha)
    )["images"].numpy()
    assert exported.dtype == np.uint8 and exported.shape == (2, 36, 44, 3)

    keras.mixed_precision.set_dtype_policy("float32")
    assert abs(_tiny_stylizer().feature_scale / stylizer.feature_scale - 1) < 0.02
    reference = st.AdaINStylizer(
        encoder_weights="random", decoder_filters=(16, 8, 8), image_size=32,
        feature_scale=stylizer.feature_scale,
    )
    reference.decoder.set_weights(stylizer.decoder.get_weights())
    in_float32 = reference.stylize_uint8(content, style, alpha).numpy().astype(int)
    assert np.abs(exported.astype(int) - in_float32).mean() < 2.0


def test_call_shapes_and_alpha():
    stylizer = _tiny_stylizer()
    content = tf.random.uniform((2, 32, 40, 3), seed=0)
    style = tf.random.uniform((1, 32, 32, 3), seed=1)
    full, none = stylizer((content, style), alpha=1.0), stylizer((content, style), alpha=0.0)
    assert full.shape == (2, 32, 40, 3)
    assert not np.allclose(full, none)


def test_stylize_uint8_keeps_any_content_size():
    stylizer = _tiny_stylizer()
    images = stylizer.stylize_uint8(
        _random_uint8((1, 37, 50, 3), 0), _random_uint8((1, 20, 30, 3), 1), 0.5
    )
    assert images.dtype == tf.uint8 and images.shape == (1, 37, 50, 3)


def test_keras_file_round_trip_gives_the_same_output(tmp_path):
    stylizer = _tiny_stylizer()
    stylizer.compile()
    path = str(tmp_path / "stylizer.keras")
    stylizer.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "skipping variable loading for optimizer"
        loaded = keras.models.load_model(path)

    assert isinstance(loaded, st.AdaINStylizer)
    assert loaded.encoder_weights == "random" and loaded.decoder_filters == (16, 8, 8)
    assert loaded.feature_scale == stylizer.feature_scale > 1.0
    content, style = _random_uint8((1, 32, 32, 3), 2), _random_uint8((1, 32, 32, 3), 3)
    np.testing.assert_array_equal(
        loaded.stylize_uint8(content, style, 0.8), stylizer.stylize_uint8(content, style, 0.8)
    )


def _serving_inputs():
    return _random_uint8((2, 36, 44, 3), 4), _random_uint8((1, 30, 30, 3), 5), 0.6


def test_savedmodel_export_matches_the_model_within_one_level(tmp_path):
    stylizer = _tiny_stylizer()
    path = export.export_model(stylizer, str(tmp_path), name="stylizer")
    assert path == os.path.join(str(tmp_path), "stylizer", "1")

    serving = tf.saved_model.load(path).signatures["serving_default"]
    _, inputs = serving.structured_input_signature
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in inputs.items()} == {
        "content": (tf.uint8, [None, None, None, 3]),
        "style": (tf.uint8, [None, None, None, 3]),
        "alpha": (tf.float32, []),
    }
    assert set(serving.structured_outputs) == {"images"}

    content, style, alpha = _serving_inputs()
    exported = serving(
        content=tf.constant(content), style=tf.constant(style), alpha=tf.constant(alpha)
    )
    exported = exported["images"].numpy()
    expected = stylizer.stylize_uint8(content, style, alpha).numpy()
    assert exported.dtype == np.uint8 and exported.shape == (2, 36, 44, 3)
    assert np.abs(exported.astype(int) - expected.astype(int)).max() <= 1


def test_export_restores_the_encoder_and_decoder_the_way_tf_serving_loads_it(tmp_path):
    """TF Serving's C++ loader restores variables through the SavedModel's saver, as a TF1
    session does: every encoder and decoder weight must be a saved, restorable variable."""
    stylizer = _tiny_stylizer()
    exported = {id(variable) for variable in stylizer.variables}  # what export.py saves
    parts = stylizer.encoder.variables + stylizer.decoder.variables
    assert stylizer.encoder.variables and all(id(variable) in exported for variable in parts)
    path = export.export_model(stylizer, str(tmp_path), name="stylizer")
    content, style, alpha = _serving_inputs()
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        feeds = {
            signature.inputs["content"].name: content,
            signature.inputs["style"].name: style,
            signature.inputs["alpha"].name: alpha,
        }
        images = session.run(signature.outputs["images"].name, feeds)
    expected = stylizer.stylize_uint8(content, style, alpha).numpy()
    assert images.dtype == np.uint8 and images.shape == (2, 36, 44, 3)
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1


def test_the_package_ships_style_and_photo_folders():
    root = os.path.join(os.path.dirname(__file__), "..", "data")
    photos, styles = (
        st.list_images(os.path.join(root, "photos")),
        st.list_images(os.path.join(root, "styles")),
    )
    assert len(photos) >= 6 and len(styles) >= 4
    for path in photos + styles:
        image = st.load_image(path)
        assert image.ndim == 3 and max(image.shape[:2]) <= 512


def test_load_image_refuses_a_decompression_bomb_and_scales_16_bit_by_its_range(tmp_path):
    import zlib

    from PIL import Image

    Image.new("L", (1, 1)).save(tmp_path / "bomb.png")
    data = bytearray((tmp_path / "bomb.png").read_bytes())
    data[16:24] = (12_000).to_bytes(4, "big") * 2  # 144 megapixels: below Pillow's own error
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    with pytest.raises(DataError, match="bomb.png: too large") as raised:
        st.load_image(tmp_path / "bomb.png")
    assert "\n" not in str(raised.value)

    dark = np.full((4, 4), 257 * 40, dtype=np.uint16)  # level 40 of 255, in 16 bits
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert np.all(st.load_image(tmp_path / "dark16.png") == 40)
