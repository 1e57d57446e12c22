import socket

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import datasets
from kerasgan.errors import DataError


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to reach the network or tensorflow-datasets."""
    def refuse(*args, **kwargs):
        raise AssertionError("the loader reached for the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(datasets, "load_tfds", refuse)


def first(dataset):
    return next(iter(dataset))


@pytest.mark.parametrize("name, shape, count", [("mnist", (28, 28, 1), 5000), ("digits", (8, 8, 1), 1797)])
def test_embedded_images_are_floats_in_range(name, shape, count):
    dataset = datasets.load(name, source="embedded")
    assert int(dataset.cardinality()) == count
    batch = next(iter(dataset.batch(count)))
    assert batch.shape[1:] == shape and batch.dtype == tf.float32
    assert float(tf.reduce_min(batch)) == -1.0 and 0.9 < float(tf.reduce_max(batch)) <= 1.0


def test_labels_resize_and_channels():
    image, label = first(datasets.load("mnist", source="embedded", with_labels=True, image_size=32, channels=3))
    assert image.shape == (32, 32, 3) and label.dtype == tf.int32 and int(label) == 0
    np.testing.assert_allclose(image[..., 0], image[..., 2])  # grey tiled to RGB
    _, labels = datasets.load_arrays("mnist")
    assert np.bincount(labels).tolist() == [500] * 10


def test_auto_falls_back_offline_with_one_notice(no_network, capsys, monkeypatch):
    monkeypatch.delenv("KERASGAN_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "network_reachable", lambda timeout=3.0: False)
    dataset = datasets.load("mnist")
    assert int(dataset.cardinality()) == 5000
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "not downloaded and there is no network" in lines[0] and "mnist_sample.npz" in lines[0]


def test_offline_mode_never_probes_the_network(no_network, capsys):
    datasets.load("mnist")  # KERASGAN_OFFLINE=1 from conftest
    assert "using the embedded" in capsys.readouterr().err


def test_tfds_source_offline_is_a_clear_error(no_network):
    with pytest.raises(DataError, match="no network.*--data embedded"):
        datasets.load("mnist", source="tfds")
    with pytest.raises(DataError, match="exists only embedded"):
        datasets.load("digits", source="tfds")
    with pytest.raises(DataError, match="cifar10 is not downloaded"):
        datasets.load("cifar10")


def test_a_prepared_tfds_dataset_is_used_without_the_network(tmp_path, monkeypatch):
    info = tmp_path / "mnist" / "3.0.1" / "dataset_info.json"
    info.parent.mkdir(parents=True)
    info.write_text("{}")
    calls = []

    def fake_tfds(name, split, tfds_dir, download=True, with_labels=False):
        calls.append((name, str(tfds_dir)))
        return tf.data.Dataset.from_tensor_slices(np.zeros((3, 28, 28, 1), "uint8"))

    monkeypatch.setattr(datasets, "load_tfds", fake_tfds)
    dataset = datasets.load("mnist", data_dir=str(tmp_path))
    assert calls == [("mnist", str(tmp_path))]
    assert float(first(dataset)[0, 0, 0]) == -1.0


def test_a_failing_download_falls_back_in_auto_and_fails_in_tfds(monkeypatch, capsys):
    monkeypatch.setattr(datasets, "network_reachable", lambda timeout=3.0: True)

    def broken(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(datasets, "load_tfds", broken)
    assert int(datasets.load("mnist").cardinality()) == 5000
    assert "connection reset" in capsys.readouterr().err
    with pytest.raises(DataError, match="connection reset"):
        datasets.load("mnist", source="tfds")


def write_images(folder, count, size=(12, 10), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        colour = (index * 40 % 255, 100, 200) if mode == "RGB" else index * 40 % 255
        Image.new(mode, size, colour).save(folder / f"img{index}.{'png' if index % 2 else 'jpg'}")


def test_image_folder_loads_resizes_and_labels(tmp_path):
    write_images(tmp_path / "cats", 3)
    write_images(tmp_path / "dogs", 2, mode="L")
    dataset = datasets.load_image_folder(str(tmp_path), image_size=16, channels=3, with_labels=True)
    items = list(dataset)
    assert len(items) == 5
    assert all(image.shape == (16, 16, 3) for image, _ in items)
    assert [int(label) for _, label in items] == [0, 0, 0, 1, 1]
    gray = first(datasets.load(str(tmp_path), image_size=8, channels=1))
    assert gray.shape == (8, 8, 1)


def test_image_folder_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="does not exist"):
        datasets.load_image_folder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in"):
        datasets.load_image_folder(str(tmp_path / "empty"))
    write_images(tmp_path / "mixed", 2)
    (tmp_path / "mixed" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert len(list(datasets.load_image_folder(str(tmp_path / "mixed")))) == 2
    assert "skipping 1 unreadable image file(s): broken.jpg" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of the 1 image files could be read"):
        datasets.load_image_folder(str(tmp_path / "bad"))
    with pytest.raises(DataError, match="outside class sub-folders"):
        datasets.load_image_folder(str(tmp_path / "mixed"), with_labels=True)


def test_training_pipeline_batches_and_refuses_tiny_data():
    dataset = datasets.load("digits", source="embedded")
    batches = datasets.training_pipeline(dataset, 64, seed=0)
    assert int(batches.cardinality()) == 1797 // 64
    assert next(iter(batches)).shape == (64, 8, 8, 1)
    with pytest.raises(DataError, match="fewer than one batch"):
        datasets.training_pipeline(dataset.take(10), 64)
    assert datasets.describe(dataset) == "1,797 images of 8x8x1"
