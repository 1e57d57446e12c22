"""Data loaders: embedded data, the tfds/offline decision, image folders, training pipelines.

The test-suite runs with KERASGAN_OFFLINE=1 (conftest.py). Tests that pretend to be online
replace the network probe and the tensorflow-datasets loader, so nothing here downloads.
"""

import socket
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import datasets
from kerasgan.errors import ConfigError, DataError


def first(dataset):
    return next(iter(dataset))


def stderr_lines(capsys):
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if the loader opens a socket, calls the tfds loader or touches tfds at all."""
    touched = []

    def refuse(*args, **kwargs):
        raise AssertionError("the loader reached for the network")

    class UntouchableTfds(types.ModuleType):
        def __getattr__(self, name):
            if not name.startswith("__"):  # tracebacks and inspect probe __file__ & co.
                touched.append(name)
            raise AttributeError(name)

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(datasets, "load_tfds", refuse)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", UntouchableTfds("tensorflow_datasets"))
    yield
    assert touched == [], f"tensorflow_datasets was used: {touched}"


# === Embedded data ===


@pytest.mark.parametrize(
    "name, shape, count", [("mnist", (28, 28, 1), 5000), ("digits", (8, 8, 1), 1797)]
)
def test_embedded_images_are_float32_in_minus_one_to_one(name, shape, count):
    dataset = datasets.load(name, source="embedded")
    assert int(dataset.cardinality()) == count
    images = first(dataset.batch(count)).numpy()
    assert images.shape == (count, *shape) and images.dtype == np.float32
    assert images.min() == -1.0 and images.max() == 1.0  # 0 -> -1 and 255 -> 1, exactly
    raw, _ = datasets.load_arrays(name)
    np.testing.assert_allclose(images[..., 0], raw / 127.5 - 1.0, atol=1e-6)


def test_embedded_arrays_are_what_data_readme_says():
    images, labels = datasets.load_arrays("mnist")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images[:, 0, :].max() == 0 and images[:, 10:18, 10:18].mean() > 100  # ink in the middle
    digits, digit_labels = datasets.load_arrays("digits")
    assert digits.shape == (1797, 8, 8) and digits.dtype == np.uint8 and len(digit_labels) == 1797
    # sklearn's 0..16 stored as round(v * 255 / 16): exactly 17 grey levels, 0 and 255 included
    assert set(np.unique(digits)) == {round(v * 255 / 16) for v in range(17)}


def test_labels_follow_the_images():
    _, labels = datasets.load_arrays("digits")
    dataset = datasets.load("digits", source="embedded", with_labels=True)
    assert dataset.element_spec[1].dtype == tf.int32
    loaded = np.concatenate([batch_labels.numpy() for _, batch_labels in dataset.batch(1000)])
    np.testing.assert_array_equal(loaded, labels)


def test_a_seed_gives_the_same_examples_in_one_random_order_so_a_slice_holds_every_class():
    images, labels = datasets.load_arrays("mnist")
    assert set(labels[-256:]) == {9}  # the file is ordered by class: the trap the seed avoids
    shuffled, shuffled_labels = datasets.load_arrays("mnist", seed=0)
    again, again_labels = datasets.load_arrays("mnist", seed=0)
    np.testing.assert_array_equal(shuffled, again)
    np.testing.assert_array_equal(shuffled_labels, again_labels)
    assert not np.array_equal(datasets.load_arrays("mnist", seed=1)[1], shuffled_labels)
    assert set(shuffled_labels[-256:]) == set(range(10))
    assert set(shuffled_labels[:2000]) == set(range(10))
    # The same examples, each image still with its own label.
    def pairs(images, labels):
        return sorted(zip(labels.tolist(), (image.tobytes() for image in images)))

    assert pairs(shuffled, shuffled_labels) == pairs(images, labels)


def test_resize_and_channel_conversion():
    image, label = first(
        datasets.load("mnist", source="embedded", with_labels=True, image_size=32, channels=3)
    )
    assert image.shape == (32, 32, 3) and int(label) == 0
    np.testing.assert_array_equal(image[..., 0], image[..., 2])  # grey repeated into RGB
    assert first(datasets.load("digits", source="embedded", image_size=(16, 12))).shape == (
        16,
        12,
        1,
    )

    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    grey = first(datasets.from_arrays(red, channels=1)).numpy()
    np.testing.assert_allclose(grey, 0.2989 * 255 / 127.5 - 1, atol=1e-3)  # luminance of red
    rgba = np.full((1, 4, 4, 4), 255, np.uint8)
    rgba[..., 3] = 0  # a fully transparent white: alpha is dropped, white stays white
    np.testing.assert_allclose(first(datasets.from_arrays(rgba, channels=3)), 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source": "internet"}, "source must be one of auto, tfds, embedded"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"image_size": 0}, "image_size must be a positive int"),
        ({"image_size": (32, 32, 3)}, "image_size must be a positive int"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        datasets.load("digits", **kwargs)


def test_a_missing_or_broken_embedded_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASGAN_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"mnist_sample\.npz is missing; rebuild it with"):
        datasets.load_arrays("mnist")
    (tmp_path / "digits_8x8.npz").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(DataError, match=r"digits_8x8\.npz is not a readable embedded dataset"):
        datasets.load("digits", source="embedded")
    with pytest.raises(DataError, match="no embedded dataset 'cifar10'"):
        datasets.load("cifar10", source="embedded")


# === tensorflow-datasets or the embedded copy ===


def test_offline_auto_uses_the_embedded_copy_with_one_notice(no_network, capsys):
    dataset = datasets.load("mnist")  # KERASGAN_OFFLINE=1: no probe, no tfds import
    assert int(dataset.cardinality()) == 5000
    assert stderr_lines(capsys) == [
        "kerasgan: MNIST is not downloaded and there is no network (KERASGAN_OFFLINE=1); "
        "using the embedded 5,000-digit sample from data/mnist_sample.npz"
    ]


def test_auto_probes_the_network_once_and_falls_back(no_network, capsys, monkeypatch):
    monkeypatch.delenv("KERASGAN_OFFLINE")
    probes = []

    def unreachable(address, timeout):
        probes.append((address, timeout))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert int(datasets.load("mnist", with_labels=True).cardinality()) == 5000
    assert probes == [(datasets.TFDS_HOST, 3.0)]
    lines = stderr_lines(capsys)
    assert (
        len(lines) == 1 and "not downloaded and there is no network; using the embedded" in lines[0]
    )


def test_embedded_only_and_tfds_only_names_do_not_fall_back(no_network, capsys):
    with pytest.raises(DataError, match="MNIST is not downloaded.*--data embedded"):
        datasets.load("mnist", source="tfds")
    with pytest.raises(DataError, match="'digits' is embedded only"):
        datasets.load("digits", source="tfds")
    with pytest.raises(DataError, match="cifar10 is not downloaded.*pass a folder of images"):
        datasets.load("cifar10")
    with pytest.raises(DataError, match="has only the 'train' split, not 'test'"):
        datasets.load("mnist", split="test")
    assert datasets.describe(datasets.load("digits")) == "1,797 images of 8x8x1"  # auto: no tfds
    assert stderr_lines(capsys) == []


def test_prepared_checks_files_first_and_asks_tfds_only_when_they_exist(tmp_path, monkeypatch):
    asked = []

    class Builder:
        def __init__(self, name, data_dir):
            asked.append((name, data_dir))

        def is_prepared(self):
            return True

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(builder=Builder))
    assert not datasets.tfds_prepared("mnist", tmp_path)
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)
    assert not datasets.tfds_prepared("mnist", tmp_path)
    assert asked == []  # no dataset_info.json: tensorflow-datasets is not even imported
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    assert datasets.tfds_prepared("mnist", tmp_path)
    assert asked == [("mnist", tmp_path)]


def test_prepared_means_this_version_for_real_tfds(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder("mnist", data_dir=str(tmp_path))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)  # what a finished download leaves
    assert datasets.tfds_prepared("mnist", tmp_path)
    builder.data_path.rename(builder.data_path.parent / "0.0.1")  # another version's files
    assert not datasets.tfds_prepared("mnist", tmp_path)


def test_a_prepared_dataset_is_read_without_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "tfds_prepared", lambda name, tfds_dir=None: True)
    monkeypatch.setattr(datasets, "network_reachable", lambda timeout=3.0: pytest.fail("probed"))
    calls = []

    def fake_load_tfds(name, split, tfds_dir, *, download, with_labels):
        calls.append((name, split, tfds_dir, download, with_labels))
        images = np.full((3, 28, 28, 1), 255, np.uint8)
        elements = (images, np.arange(3, dtype=np.int32)) if with_labels else images
        return tf.data.Dataset.from_tensor_slices(elements)

    monkeypatch.setattr(datasets, "load_tfds", fake_load_tfds)
    image, label = first(
        datasets.load("mnist", "train+test", data_dir=tmp_path, with_labels=True, channels=3)
    )
    assert calls == [("mnist", "train+test", tmp_path, False, True)]
    assert image.shape == (28, 28, 3) and float(tf.reduce_min(image)) == 1.0 and int(label) == 0
    assert stderr_lines(capsys) == []


def test_a_failing_download_falls_back_in_auto_and_fails_in_tfds(monkeypatch, capsys):
    monkeypatch.setattr(datasets, "network_reachable", lambda timeout=3.0: True)
    downloads = []

    def broken(name, split, tfds_dir, *, download, with_labels):
        downloads.append(download)
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(datasets, "load_tfds", broken)
    assert int(datasets.load("mnist").cardinality()) == 5000
    assert downloads == [True]
    assert stderr_lines(capsys) == [
        "kerasgan: tensorflow-datasets could not load MNIST (ConnectionResetError: connection "
        "reset by peer); using the embedded 5,000-digit sample from data/mnist_sample.npz"
    ]
    with pytest.raises(DataError, match="connection reset by peer.*--data embedded"):
        datasets.load("mnist", source="tfds")
    with pytest.raises(DataError, match="could not load cifar10"):
        datasets.load("cifar10")


def test_a_half_prepared_tfds_folder_falls_back_with_the_reason(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder("mnist", data_dir=str(tmp_path))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)  # the metadata, but no data files
    assert int(datasets.load("mnist", data_dir=tmp_path).cardinality()) == 5000
    lines = stderr_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(
        "kerasgan: tensorflow-datasets could not load MNIST ("
    )


def test_the_real_tfds_loader_checks_names_and_features_before_downloading(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="tensorflow-datasets has no dataset 'no_such_set'"):
        datasets.load_tfds("no_such_set", tfds_dir=tmp_path)
    with pytest.raises(DataError, match="'imdb_reviews' has no 'image' feature"):
        datasets.load_tfds("imdb_reviews", tfds_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing downloaded, nothing written


# === Folders of images ===


def write_images(folder, count, size=(12, 10), mode="RGB", colour=None):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        fill = colour if colour is not None else (index * 40 % 255, 100, 200)[: len(mode)]
        Image.new(mode, size, fill).save(folder / f"img{index}.{'png' if index % 2 else 'jpg'}")


def test_image_folder_decodes_converts_and_resizes(tmp_path):
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("RGBA", (10, 10), (0, 0, 255, 0)).save(tmp_path / "blue_alpha.png")
    Image.new("LA", (7, 9), (255, 128)).save(tmp_path / "white_alpha.png")
    (tmp_path / "sub").mkdir()
    Image.new("L", (5, 5), 0).save(tmp_path / "sub" / "black.bmp")
    Image.new("P", (8, 8)).save(tmp_path / "sub" / "palette.gif")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "sub" / "green.WEBP", lossless=True)
    dataset = datasets.load_image_folder(tmp_path, image_size=(6, 4), channels=3)
    names = ["blue_alpha", "red", "black", "green", "palette", "white_alpha"]  # sorted paths
    images = {name: image.numpy() for name, image in zip(names, dataset, strict=True)}
    assert len(images) == 6 and all(image.shape == (6, 4, 3) for image in images.values())
    np.testing.assert_allclose(images["red"][0, 0], [1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(images["blue_alpha"][0, 0], [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(images["white_alpha"], 1.0, atol=1e-6)
    np.testing.assert_allclose(images["black"], -1.0, atol=1e-6)
    np.testing.assert_allclose(images["green"][0, 0], [-1, 1, -1], atol=1e-6)
    grey = first(datasets.load(str(tmp_path), image_size=8, channels=1))  # by name, too
    assert grey.shape == (8, 8, 1)


def test_image_folder_labels_come_from_sorted_class_folders(tmp_path):
    write_images(tmp_path / "dogs", 2, mode="L", colour=255)
    write_images(tmp_path / "cats" / "kittens", 3)
    write_images(tmp_path / ".thumbnails", 2)  # hidden: not a class, not data
    (tmp_path / "birds").mkdir()
    (tmp_path / "birds" / "broken.png").write_bytes(b"not a png")  # a class with no readable image
    dataset = datasets.load_image_folder(tmp_path, image_size=16, with_labels=True)
    assert dataset.class_names == ["birds", "cats", "dogs"]
    labels = [int(label) for _, label in dataset]
    assert labels == [1, 1, 1, 2, 2]  # birds keeps index 0: the labels do not shift
    assert datasets.describe(dataset) == "5 images of 16x16x3 with labels"


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match=r"image folder .*missing does not exist"):
        datasets.load_image_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="does not exist"):
        datasets.load(str(tmp_path / "missing"))  # a path, not a tensorflow-datasets name
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="is a file, not a folder"):
        datasets.load_image_folder(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no image files in .*empty \(looked for .png, .jpg"):
        datasets.load_image_folder(tmp_path / "empty")
    write_images(tmp_path / "flat", 2)
    with pytest.raises(DataError, match="has images directly in it.*own sub-folder"):
        datasets.load_image_folder(tmp_path / "flat", with_labels=True)


def test_unreadable_files_are_skipped_with_one_notice(tmp_path, capsys):
    write_images(tmp_path, 2)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    # A format TensorFlow cannot decode, but Pillow can: converted, not skipped.
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "tiff_in_disguise.png", format="TIFF")
    dataset = datasets.load_image_folder(tmp_path, image_size=8)
    images = list(dataset)
    assert int(dataset.cardinality()) == 3 and len(images) == 3
    np.testing.assert_allclose(images[-1][0, 0], [1, -1, -1])  # sorted: tiff_in_disguise last
    assert stderr_lines(capsys) == [
        "kerasgan: skipping 2 of 5 image files that cannot be decoded, e.g. broken.jpg: not an "
        "image file Pillow can read"
    ]


def test_a_folder_of_only_unreadable_files_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"nope")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 2 image files in .* can be decoded, e.g. a.png"):
        datasets.load_image_folder(tmp_path)


# === Training pipelines ===


def test_training_pipeline_batches_shuffles_with_a_seed_and_refuses_tiny_data():
    dataset = datasets.load("digits", source="embedded")
    batches = datasets.training_pipeline(dataset, 64, seed=0)
    assert int(batches.cardinality()) == 1797 // 64
    epoch_1, epoch_2 = (first(batches).numpy() for _ in range(2))
    assert epoch_1.shape == (64, 8, 8, 1)
    assert not np.array_equal(epoch_1, epoch_2)  # reshuffled every epoch
    again = datasets.training_pipeline(datasets.load("digits", source="embedded"), 64, seed=0)
    np.testing.assert_array_equal(first(again), epoch_1)  # the same seed, the same order
    in_order = datasets.training_pipeline(dataset, 64, shuffle=False)
    np.testing.assert_array_equal(first(in_order), first(dataset.batch(64)))

    with pytest.raises(DataError, match="the dataset has 10 images, fewer than one batch of 64"):
        datasets.training_pipeline(dataset.take(10), 64)
    assert (
        first(datasets.training_pipeline(dataset.take(10), 64, drop_remainder=False)).shape[0] == 10
    )
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        datasets.training_pipeline(dataset, 0)


def epoch_of(batches, side=0):
    """One pass over batched `(a, b)` pairs: side `side` of every batch, concatenated."""
    return np.concatenate([batch[side] for batch in batches.as_numpy_iterator()])


def test_training_pipeline_caches_before_the_augmentation_and_draws_it_anew_every_epoch():
    reads = []

    def read(image):  # the deterministic part, counted
        reads.append(1)
        return image

    images = np.random.default_rng(0).uniform(-1, 1, (4, 36, 36, 1)).astype("float32")
    pairs = tf.data.Dataset.from_tensor_slices((images, images[::-1])).map(
        lambda a, b: (tf.ensure_shape(tf.numpy_function(read, [a], tf.float32), a.shape), b)
    )
    jittered = datasets.augmented(pairs, datasets.jitter_pairs(32), seed=0)
    assert int(jittered.cardinality()) == 4
    batches = datasets.training_pipeline(jittered, 2, seed=0, shuffle=False)
    epoch_1, epoch_2 = epoch_of(batches), epoch_of(batches)
    assert epoch_1.shape == (4, 32, 32, 1)
    assert len(reads) == 4  # read once, then served from the cache
    assert not np.array_equal(epoch_1, epoch_2)  # new crops every epoch
    again = datasets.training_pipeline(jittered, 2, seed=0, shuffle=False)
    np.testing.assert_array_equal(epoch_of(again), epoch_1)  # the same seed, the same crops
    # An explicit augmentation works on a plain dataset too.
    explicit = datasets.training_pipeline(pairs, 2, seed=0, shuffle=False,
                                          augment=datasets.jitter_pairs(32))
    np.testing.assert_array_equal(epoch_of(explicit), epoch_1)


def test_unpaired_photos_get_new_crops_every_epoch(tmp_path):
    rng = np.random.default_rng(0)
    for side, count in (("a", 2), ("b", 3)):
        (tmp_path / side).mkdir()
        for index in range(count):
            noise = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)  # lossless, full of detail
            Image.fromarray(noise).save(tmp_path / side / f"{index}.png")
    pairs = datasets.load_unpaired(
        None, data_a=str(tmp_path / "a"), data_b=str(tmp_path / "b"), image_size=16
    )
    # What gets cached is the images before the jitter, at the enlarged size.
    assert pairs.unaugmented.element_spec[0].shape == (18, 18, 3)
    batches = datasets.training_pipeline(pairs, 3, seed=0)
    for side in (0, 1):
        epoch_1, epoch_2 = epoch_of(batches, side), epoch_of(batches, side)
        assert epoch_1.shape == (3, 16, 16, 3)
        assert not np.array_equal(np.sort(epoch_1, axis=0), np.sort(epoch_2, axis=0))


def test_describe():
    assert datasets.describe(datasets.load("mnist", source="embedded")) == "5,000 images of 28x28x1"
    labelled = datasets.load(
        "digits", source="embedded", with_labels=True, image_size=32, channels=3
    )
    assert datasets.describe(labelled) == "1,797 images of 32x32x3 with labels"
    assert datasets.describe(labelled.filter(lambda image, label: label > 0)) == (
        "images of 32x32x3 with labels"
    )


def test_describe_unpaired_pairs():
    pairs = datasets.load_unpaired("digits")
    assert datasets.describe(pairs) == "5,000 (a, b) pairs of 32x32x1 images"
    a = tf.data.Dataset.from_tensor_slices(np.zeros((3, 8, 8, 1), "float32"))
    b = tf.data.Dataset.from_tensor_slices(np.zeros((3, 16, 16, 3), "float32"))
    mixed = tf.data.Dataset.zip((a, b)).filter(lambda a, b: True)
    assert datasets.describe(mixed) == "(a, b) pairs of 8x8x1 and 16x16x3 images"


# === The model-specific loaders behind the CLI recipes ===


def test_biggan_loader_gives_labelled_digits_and_names_its_choices():
    image, label = first(datasets.load_biggan_labelled_images("embedded"))
    assert image.shape == (32, 32, 1) and label.dtype == tf.int32
    with pytest.raises(ConfigError, match="--data for biggan must be .*cifar10.*'cifar100'"):
        datasets.load_biggan_labelled_images("cifar100")
    with pytest.raises(DataError):  # offline in tests: tensorflow-datasets cannot serve it
        datasets.load_biggan_labelled_images("cifar10")


def test_stylegan_loader_gives_coloured_digits_at_32_px_offline():
    image = first(datasets.load_stylegan_images("embedded"))
    assert image.shape == (32, 32, 3) and image.dtype == tf.float32
    assert first(datasets.load_stylegan_images("auto", image_size=16)).shape == (16, 16, 3)


def test_cyclegan_loader_gives_digit_pairs_and_refuses_a_folder_as_data():
    pairs = datasets.load_cyclegan_pairs("embedded", seed=1)
    a, b = first(pairs)
    assert a.shape == b.shape == (32, 32, 1)
    assert datasets.cyclegan_pair_shape(pairs) == (32, 1)
    with pytest.raises(ConfigError, match="cyclegan trains on two image sets: give folders with "
                       "--data-a and --data-b"):
        datasets.load_cyclegan_pairs("photos/")


def test_center_crop_resize_keeps_the_centred_square():
    # a 4 x 8 image whose middle 4 x 4 square is white, the rest black
    image = np.zeros((4, 8, 1), "float32")
    image[:, 2:6] = 1.0
    square = datasets.center_crop_resize(tf.constant(image), 2)
    assert square.shape == (2, 2, 1)
    np.testing.assert_allclose(square.numpy(), 1.0, atol=1e-6)
