"""Datasets for the course, online and offline, as `tf.data` pipelines.

Every model trains on the same kind of element: a float32 image `[H, W, C]` scaled to `[-1, 1]`
(the range of a generator's `tanh` output), optionally with an int32 class label. Where the
images come from is a choice:

* **tensorflow-datasets** (`source="tfds"`) is what users with a network get: `mnist`, `cifar10`,
  `oxford_flowers102`, `cycle_gan/horse2zebra`, ... downloaded once and cached.
* **Embedded copies** (`source="embedded"`) live in the repository's `data/` folder, built by
  `scripts/build_embedded_data.py` from data that ships inside installed packages (see
  `data/README.md` for provenance and licences): the course runs with no network at all.
* `source="auto"` (the default) takes tensorflow-datasets when the dataset is already prepared
  on disk or the network is reachable, and otherwise says so in one line and falls back to the
  embedded copy. It decides in seconds: offline, `tfds.load` would retry for minutes.
* A **folder of images** (`name=PATH`) trains a model on your own pictures.
"""

import os
import socket
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasgan.errors import DataError
from kerasgan.utils import is_offline, notice

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Embedded datasets: name -> (file in data/, description for messages).
EMBEDDED = {
    "mnist": ("mnist_sample.npz", "the embedded 5,000-digit MNIST sample"),
    "digits": ("digits_8x8.npz", "the embedded 1,797 scikit-learn 8x8 digits"),
}
# tensorflow-datasets names of the embedded sets that also exist there.
TFDS_NAMES = {"mnist": "mnist"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TFDS_HOST = ("storage.googleapis.com", 443)


def data_dir():
    """The folder of embedded data (`KERASGAN_DATA_DIR` overrides the repository's `data/`)."""
    return Path(os.environ.get("KERASGAN_DATA_DIR", DATA_DIR))


# === Embedded data ===


def load_arrays(name):
    """The embedded dataset `name` as NumPy arrays.

    Returns:
        `(images, labels)`: uint8 images `[N, H, W]` (or `[N, H, W, C]`) and int64 labels `[N]`.

    Raises:
        DataError: for an unknown name or a missing file.
    """
    if name not in EMBEDDED:
        raise DataError(f"no embedded dataset {name!r}; embedded: {', '.join(EMBEDDED)}")
    path = data_dir() / EMBEDDED[name][0]
    if not path.exists():
        raise DataError(f"{path} is missing; rebuild it with 'python scripts/build_embedded_data.py'")
    with np.load(path) as archive:
        return archive["images"], archive["labels"].astype("int64")


def from_arrays(images, labels=None, image_size=None, channels=None):
    """A dataset of `[-1, 1]` float images (and int32 labels) from uint8 arrays."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    elements = images if labels is None else (images, np.asarray(labels, "int32"))
    dataset = tf.data.Dataset.from_tensor_slices(elements)

    def prepare(image, *label):
        image = adapt_image(image, image_size, channels)
        return (image, *label) if label else image

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def adapt_image(image, image_size=None, channels=None):
    """uint8 (or float 0..255) image -> float32 in `[-1, 1]`, resized and with `channels` channels.

    Grayscale becomes RGB by repeating the channel; RGB becomes grayscale by luminance; an alpha
    channel is dropped.
    """
    image = tf.cast(image, tf.float32)
    if channels is not None:
        have = image.shape[-1]
        if have == 4:
            image, have = image[..., :3], 3
        if channels == 3 and have == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif channels == 1 and have == 3:
            image = tf.image.rgb_to_grayscale(image)
        elif have != channels:
            raise DataError(f"cannot convert {have}-channel images to {channels} channels")
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


# === tensorflow-datasets ===


def network_reachable(timeout=3.0):
    """True when tensorflow-datasets' storage host answers within `timeout` seconds."""
    if is_offline():
        return False
    try:
        with socket.create_connection(TFDS_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def tfds_data_dir(tfds_dir=None):
    """tensorflow-datasets' data folder: `tfds_dir`, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`."""
    return Path(tfds_dir or os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets")


def tfds_prepared(name, tfds_dir=None):
    """True when dataset `name` is already downloaded and prepared in `tfds_dir`.

    Looks for the `dataset_info.json` that tensorflow-datasets writes when it finishes preparing
    a dataset, without importing tensorflow-datasets (which takes many seconds).
    """
    folder = tfds_data_dir(tfds_dir) / name.split("/")[0]
    return folder.is_dir() and any(folder.rglob("dataset_info.json"))


def load_tfds(name, split="train", tfds_dir=None, download=True, with_labels=False):
    """Load `name` with tensorflow-datasets as uint8 images (and labels), unbatched."""
    import tensorflow_datasets as tfds

    dataset = tfds.load(name, split=split, data_dir=tfds_dir, download=download, shuffle_files=False)

    def pick(features):
        return (features["image"], tf.cast(features["label"], tf.int32)) if with_labels else features["image"]

    return dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)


def _use_tfds(name, tfds_dir):
    """Decide quickly whether tensorflow-datasets can serve `name`; explain when it cannot."""
    if tfds_prepared(name, tfds_dir):
        return True, None
    if network_reachable():
        return True, None
    return False, f"{name} is not downloaded and there is no network"


def load(
    name="mnist",
    split="train",
    *,
    source="auto",
    image_size=None,
    channels=None,
    with_labels=False,
    data_dir=None,
):
    """Load a dataset of float32 images in `[-1, 1]` (and int32 labels).

    Args:
        name: `"mnist"`, `"digits"` (embedded only), another tensorflow-datasets name with an
            `image` feature (e.g. `"cifar10"`), or a folder of images.
        split: the tensorflow-datasets split.
        source: `"auto"`, `"tfds"` or `"embedded"` (see the module docstring).
        image_size: resize to this size (int or `(height, width)`); default: native.
        channels: convert to 1 or 3 channels; default: native.
        with_labels: yield `(image, label)` pairs.
        data_dir: tensorflow-datasets' data folder (default: its own, `~/tensorflow_datasets`).

    Returns:
        An unbatched `tf.data.Dataset` with a known cardinality.

    Raises:
        DataError: when the data cannot be had as asked (with what to do about it).

    Example:
        >>> images = load("mnist")                      # tfds online, embedded sample offline
        >>> pairs = load("mnist", with_labels=True, image_size=32, channels=3)
    """
    if source not in ("auto", "tfds", "embedded"):
        raise DataError(f"source must be auto, tfds or embedded, got {source!r}")
    if os.path.isdir(str(name)):
        return load_image_folder(
            name, image_size=image_size or 64, channels=channels or 3, with_labels=with_labels
        )
    tfds_name = TFDS_NAMES.get(name, name if name not in EMBEDDED else None)
    if source == "embedded" or (source == "auto" and tfds_name is None):
        return _load_embedded(name, image_size, channels, with_labels)
    if tfds_name is None:
        raise DataError(f"{name!r} exists only embedded; use source='embedded' (--data embedded)")

    usable, reason = _use_tfds(tfds_name, data_dir)
    if usable:
        try:
            dataset = load_tfds(tfds_name, split, data_dir, with_labels=with_labels)
            if with_labels:
                dataset = dataset.map(lambda image, label: (adapt_image(image, image_size, channels), label))
            else:
                dataset = dataset.map(lambda image: adapt_image(image, image_size, channels))
            return dataset
        except Exception as error:  # a download that fails half-way, a corrupt cache
            reason = f"tensorflow-datasets could not load {tfds_name} ({type(error).__name__}: {error})"
    if source == "tfds" or name not in EMBEDDED:
        raise DataError(
            f"{reason}; connect to the internet once to download it, or use --data embedded"
            if name in EMBEDDED
            else f"{reason}; connect to the internet once to download it"
        )
    notice(f"{reason}; using {EMBEDDED[name][1]} from {data_dir_display(name)}")
    return _load_embedded(name, image_size, channels, with_labels)


def data_dir_display(name):
    return os.path.join("data", EMBEDDED[name][0])


def _load_embedded(name, image_size, channels, with_labels):
    images, labels = load_arrays(name)
    return from_arrays(images, labels if with_labels else None, image_size, channels)


# === Folders of images ===


def list_images(path):
    """Image files under `path` (recursively, sorted), with clear errors for empty or missing."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"image folder {path} does not exist")
    if not root.is_dir():
        raise DataError(f"{path} is not a folder of images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"no images in {path} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def readable_images(files):
    """The files PIL can open and verify; one notice line for the rest."""
    from PIL import Image

    good, bad = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                image.verify()
            good.append(file)
        except Exception:
            bad.append(file)
    if bad:
        shown = ", ".join(p.name for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
        notice(f"skipping {len(bad)} unreadable image file(s): {shown}")
    if not good:
        raise DataError(f"none of the {len(files)} image files could be read (e.g. {files[0]})")
    return good


def load_image_folder(path, *, image_size=64, channels=3, with_labels=False):
    """A folder of images as a dataset of `[-1, 1]` float images (and labels).

    Args:
        path: the folder (searched recursively for .png, .jpg, .jpeg, .bmp, .gif, .webp).
        image_size: every image is resized to this size (int or `(height, width)`).
        channels: 1 or 3.
        with_labels: label each image with the index of its immediate sub-folder (sorted), as in
            `class_a/*.png, class_b/*.png`.

    Raises:
        DataError: missing folder, no images, no readable images, or unlabelled images with
            `with_labels=True`.
    """
    files = readable_images(list_images(path))
    paths = [str(p) for p in files]
    elements = paths
    if with_labels:
        root = Path(path)
        loose = [p for p in files if p.parent == root]
        if loose:
            raise DataError(
                f"{path} has images outside class sub-folders (e.g. {loose[0].name}); labels come "
                "from sub-folder names"
            )
        classes = sorted({p.relative_to(root).parts[0] for p in files})
        labels = np.array([classes.index(p.relative_to(root).parts[0]) for p in files], "int32")
        elements = (paths, labels)

    def read(file, *label):
        image = tf.io.decode_image(tf.io.read_file(file), channels=0, expand_animations=False)
        image.set_shape([None, None, None])
        image = tf.cond(
            tf.shape(image)[-1] == 4, lambda: image[..., :3], lambda: image
        )
        if channels == 3:
            image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.image.grayscale_to_rgb(image), lambda: image)
        else:
            image = tf.cond(tf.shape(image)[-1] == 3, lambda: tf.cast(tf.image.rgb_to_grayscale(image), image.dtype), lambda: image)
        image = tf.ensure_shape(image, [None, None, channels])
        image = adapt_image(image, image_size)
        return (image, *label) if label else image

    dataset = tf.data.Dataset.from_tensor_slices(elements)
    return dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)


# === Training pipelines ===


def training_pipeline(dataset, batch_size, *, shuffle=True, seed=None, cache=True, drop_remainder=True):
    """Cache, shuffle, batch and prefetch a dataset for `fit`.

    Raises:
        DataError: when the dataset holds fewer elements than one batch.
    """
    count = int(dataset.cardinality())
    if count >= 0 and count < batch_size and drop_remainder:
        raise DataError(f"the dataset has {count} images, fewer than one batch of {batch_size}")
    if cache:
        dataset = dataset.cache()
    if shuffle:
        buffer = count if 0 < count <= 10_000 else 10_000
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def describe(dataset):
    """e.g. `"5,000 images of 28x28x1"` (or `"images of 28x28x1"` when the count is unknown)."""
    spec = dataset.element_spec
    image = spec[0] if isinstance(spec, tuple) else spec
    shape = "x".join(str(d) for d in image.shape)
    count = int(dataset.cardinality())
    labelled = " with labels" if isinstance(spec, tuple) else ""
    return f"{count:,} images of {shape}{labelled}" if count >= 0 else f"images of {shape}{labelled}"
