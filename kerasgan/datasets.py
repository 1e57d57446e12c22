"""Datasets for the course, online and offline, as `tf.data` pipelines.

A GAN learns the distribution of its training images, so every model here eats the same kind of
element: a float32 image `[H, W, C]` scaled to `[-1, 1]`, the range of the generator's `tanh`
output, optionally paired with an int32 class label for conditional models. Pixels arrive as
uint8 `0..255` and leave as `x / 127.5 - 1`.

Where the images come from is a choice, `source=`:

* **tensorflow-datasets** (`"tfds"`): the full public datasets (`mnist`, `cifar10`,
  `oxford_flowers102`, `cycle_gan/horse2zebra`, ...), downloaded once into `~/tensorflow_datasets`.
* **embedded** (`"embedded"`): small copies in the repository's `data/` folder (5,000 MNIST digits,
  1,797 8x8 digits), built by `scripts/build_embedded_data.py` from data that ships inside
  installed packages; `data/README.md` gives their provenance and licences. No network needed.
* **auto** (`"auto"`, the default): tensorflow-datasets when the dataset is already on disk or the
  network answers, otherwise one line saying so and the embedded copy. It decides in seconds,
  where `tfds.load` with no network would retry for minutes before failing.

A **folder of your own images** (`load("path/to/folder")`) works too, with class labels taken
from its sub-folders. `training_pipeline` then turns any of these into what `fit` wants: cached,
shuffled, augmented after the cache when there is a random augmentation, batched and prefetched.

Example:
    >>> from kerasgan import datasets
    >>> digits = datasets.load("mnist")           # tfds online, the embedded sample offline
    >>> datasets.describe(digits)
    '5,000 images of 28x28x1'
    >>> batches = datasets.training_pipeline(digits, batch_size=64, seed=0)
"""

import os
import socket
import zipfile
from pathlib import Path
from struct import error as struct_error

import numpy as np
import tensorflow as tf

from kerasgan.errors import ConfigError, DataError
from kerasgan.resources import packaged_data_dir
from kerasgan.utils import is_offline, notice

# The data that ships with kerasgan: the repository's data/ folder in a checkout or an editable
# install, its copy inside the package once installed from a wheel (see kerasgan.resources).
# The environment variable KERASGAN_DATA_DIR points elsewhere.
DATA_DIR = packaged_data_dir()

# Embedded datasets: name -> file in the data folder (provenance and licences: data/README.md).
EMBEDDED = {"mnist": "mnist_sample.npz", "digits": "digits_8x8.npz"}

# How messages name an embedded dataset and its embedded copy.
_TITLES = {
    "mnist": ("MNIST", "the embedded 5,000-digit sample"),
    "digits": ("the 8x8 digits", "the embedded 1,797 scikit-learn 8x8 digits"),
}

# The embedded datasets that tensorflow-datasets also serves (in full), under its names.
TFDS_NAMES = {"mnist": "mnist"}

SOURCES = ("auto", "tfds", "embedded")

# Where tensorflow-datasets downloads MNIST from: a reachable host means "the network is up".
TFDS_HOST = ("storage.googleapis.com", 443)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def data_dir():
    """The folder of embedded data: `$KERASGAN_DATA_DIR` if set, else the one kerasgan ships.

    That is the repository's `data/` in a checkout or an editable install, and the installed
    package's `kerasgan/data/` after `pip install .` or from a wheel.
    """
    return Path(os.environ.get("KERASGAN_DATA_DIR") or DATA_DIR)


# === Images in [-1, 1] ===


def _image_size(image_size):
    """`image_size` as a `(height, width)` tuple of positive ints (or None), else a ConfigError."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    try:
        size = tuple(size)
    except TypeError:
        size = ()
    if len(size) != 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size
    ):
        raise ConfigError(
            f"image_size must be a positive int or (height, width), got {image_size!r}"
        )
    return int(size[0]), int(size[1])


def _check_channels(channels, allow_none=True):
    if not ((allow_none and channels is None) or channels in (1, 3)):
        raise ConfigError(
            f"channels must be 1 or 3{' (or None)' if allow_none else ''}, got {channels!r}"
        )


def convert_channels(image, channels):
    """Convert an image `[H, W, C]` to `channels` (1 or 3) channels.

    Alpha (the second channel of grey+alpha, the fourth of RGBA) is dropped; grey becomes RGB by
    repeating it; RGB becomes grey by luminance (`tf.image.rgb_to_grayscale`, ITU-R 601 weights).
    The channel count may be unknown until the graph runs, as for decoded image files.

    Args:
        image: a float image `[H, W, C]` with C in 1..4.
        channels: 1 or 3.

    Returns:
        The image `[H, W, channels]`.
    """
    have = image.shape[-1]
    if have is not None:  # known now (arrays, tensorflow-datasets): decide in Python
        colour = image[..., :3] if have >= 3 else image[..., :1]
        if channels == 3 and colour.shape[-1] == 1:
            return tf.image.grayscale_to_rgb(colour)
        if channels == 1 and colour.shape[-1] == 3:
            return tf.image.rgb_to_grayscale(colour)
        return colour
    is_colour = tf.shape(image)[-1] >= 3  # known only per file: decide in the graph
    if channels == 3:
        image = tf.cond(
            is_colour, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3])
        )
    else:
        image = tf.cond(
            is_colour, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1]
        )
    return tf.ensure_shape(image, [None, None, channels])


def prepare_image(image, image_size=None, channels=None):
    """Turn a uint8 image (0..255) into the float32 `[-1, 1]` image a GAN trains on.

    Args:
        image: `[H, W, C]`, uint8 or float in 0..255.
        image_size: `(height, width)` to resize to (bilinear, antialiased), or None to keep it.
        channels: 1 or 3 to convert to (see `convert_channels`), or None to keep them.

    Returns:
        A float32 image `[height, width, channels]` in `[-1, 1]`.
    """
    image = tf.cast(image, tf.float32)
    if channels is not None:
        image = convert_channels(image, channels)
    if image_size is not None and tuple(image.shape[:2]) != tuple(image_size):
        # Antialiasing matters when shrinking photos; upscaling 8x8 digits is plain bilinear.
        image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


def map_images(dataset, prepare, with_labels=False):
    """Apply `prepare` to every image of `dataset` (of images, or of `(image, label)` pairs).

    The map runs in parallel (`num_parallel_calls=tf.data.AUTOTUNE`): decoding and resizing
    images is the slow part of an input pipeline, and each image is independent.
    """
    if with_labels:
        return dataset.map(
            lambda image, label: (prepare(image), label), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


# === Embedded data ===


def _embedded_path(name):
    if name not in EMBEDDED:
        raise DataError(f"there is no embedded dataset {name!r}; embedded: {', '.join(EMBEDDED)}")
    return data_dir() / EMBEDDED[name]


def _display(path):
    """`data/mnist_sample.npz` for the repository's own data, the full path otherwise."""
    try:
        return str(Path("data") / Path(path).relative_to(DATA_DIR))
    except ValueError:
        return str(path)


def load_arrays(name, seed=None):
    """The embedded dataset `name` as NumPy arrays, straight from its `.npz` file.

    Args:
        name: `"mnist"` or `"digits"` (see `EMBEDDED`), or `"colored_mnist"`, which is computed
            from the MNIST file at load time (see `GENERATED`).
        seed: when given, the examples come in a random order drawn from this seed (the same
            order every time). The MNIST file is ordered by class, 500 zeros first, so a slice
            of it such as `images[:2000]` or `images[-256:]` holds a few classes only; a slice of
            the shuffled arrays is a sample of all ten.

    Returns:
        `(images, labels)`: uint8 images `[N, H, W]` (or `[N, H, W, C]`) in 0..255 and int64
        labels `[N]`.

    Raises:
        DataError: for an unknown name or a missing or unreadable file.

    Example:
        >>> images, labels = load_arrays("mnist")
        >>> images.shape, images.dtype, np.bincount(labels)
        ((5000, 28, 28), dtype('uint8'), array([500, 500, ..., 500]))
        >>> held_out = load_arrays("mnist", seed=0)[0][-256:]   # every class, not 256 nines
    """
    images, labels = GENERATED[name]() if name in GENERATED else _read_embedded(name)
    if seed is None:
        return images, labels
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order], labels[order]


def _read_embedded(name):
    """`load_arrays` of a file in `EMBEDDED`, checked, in the file's order."""
    path = _embedded_path(name)
    rebuild = "rebuild it with 'python scripts/build_embedded_data.py'"
    if "KERASGAN_DATA_DIR" in os.environ:
        rebuild += " or fix KERASGAN_DATA_DIR"
    if not path.is_file():
        raise DataError(f"the embedded dataset file {path} is missing; {rebuild}")
    try:
        with np.load(path) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        # e.g. a Git LFS pointer instead of the file, or an interrupted copy
        raise DataError(
            f"{path} is not a readable embedded dataset ({error}); {rebuild}"
        ) from error
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != len(labels):
        raise DataError(
            f"{path} holds images {images.dtype} {images.shape} and {len(labels)} labels, not uint8 "
            f"[N, H, W(, C)] images with one label each; {rebuild}"
        )
    return images, labels.astype(np.int64)


def from_arrays(images, labels=None, *, image_size=None, channels=None):
    """A dataset of `[-1, 1]` float images (and int32 labels) from in-memory arrays.

    Args:
        images: `[N, H, W]` or `[N, H, W, C]`, uint8 or float in 0..255.
        labels: optional `[N]` integer labels.
        image_size: int or `(height, width)` to resize to; default: native.
        channels: 1 or 3 to convert to; default: native.

    Returns:
        An unbatched `tf.data.Dataset` of images, or of `(image, label)` pairs.
    """
    size = _image_size(image_size)
    _check_channels(channels)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"images must be [N, H, W] or [N, H, W, C], got shape {images.shape}")
    elements = images if labels is None else (images, np.asarray(labels, np.int32))
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    return map_images(
        dataset, lambda image: prepare_image(image, size, channels), labels is not None
    )


def _load_embedded(name, split, image_size, channels, with_labels):
    if split != "train" and name in EMBEDDED:
        raise DataError(
            f"{_TITLES[name][1]} has a single split, 'train' (all its images), not {split!r}; "
            "other splits need tensorflow-datasets (source='tfds')"
        )
    images, labels = load_arrays(name)
    return from_arrays(
        images, labels if with_labels else None, image_size=image_size, channels=channels
    )


# === tensorflow-datasets ===


def network_reachable(timeout=3.0):
    """True when tensorflow-datasets' storage host answers within `timeout` seconds.

    Never probes when `KERASGAN_OFFLINE=1` (tests, CI): the answer is then False.
    """
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
    """True when tensorflow-datasets has `name` downloaded and prepared in `tfds_dir`.

    Two looks. First at the files: a prepared dataset leaves a `dataset_info.json` in
    `<tfds_dir>/<name>[/<config>]/<version>/`; without one the answer is no, and
    tensorflow-datasets (a second or two to import) is never imported. If there is one,
    `tfds.builder(name).is_prepared()` has the last word: it also checks that the files are of
    the version this tensorflow-datasets reads. Neither look touches the network.
    """
    folder = tfds_data_dir(tfds_dir) / name.split(":")[0]  # "mnist:3.*.*" -> mnist/
    if not folder.is_dir() or next(folder.rglob("dataset_info.json"), None) is None:
        return False
    try:
        import tensorflow_datasets as tfds

        return bool(tfds.builder(name, data_dir=tfds_dir).is_prepared())
    except Exception:  # not installed, unknown name, unreadable files: nothing usable on disk
        return False


def tfds_plan(name, tfds_dir=None):
    """How tensorflow-datasets can serve `name` right now, decided in seconds.

    Returns:
        `"prepared"` (on disk: read it, no network needed), `"download"` (not on disk, but the
        network is reachable) or `None` (neither: `tfds.load` would retry for minutes).
    """
    if tfds_prepared(name, tfds_dir):
        return "prepared"
    if network_reachable():
        return "download"
    return None


def load_tfds(name, split="train", tfds_dir=None, *, download=True, with_labels=False):
    """Load `name` with tensorflow-datasets as uint8 images (and int32 labels), unbatched.

    `tfds.load(name, split=...)` does three things; they are done one at a time here so that the
    features are checked before anything is downloaded:

    1. `tfds.builder(name)` describes the dataset (versions, features, splits) without data.
    2. `builder.download_and_prepare()` downloads it and writes TFRecord files, once.
    3. `builder.as_dataset(split=...)` reads a split as a `tf.data.Dataset` of feature dicts,
       e.g. `{"image": uint8 [H, W, C], "label": int64}`. Dicts rather than `as_supervised=True`
       pairs, because not every image dataset defines supervised keys.

    Args:
        name: a tensorflow-datasets name, e.g. `"mnist"`, `"cifar10"`, `"cycle_gan/horse2zebra"`.
        split: a split or split expression, e.g. `"train"`, `"train+test"`, `"train[:10%]"`.
        tfds_dir: tensorflow-datasets' data folder (default: its own).
        download: download and prepare the dataset if it is not on disk yet.
        with_labels: yield `(image, label)` pairs from the `label` feature.

    Returns:
        A `tf.data.Dataset` of uint8 images `[H, W, C]` (or `(image, label)` pairs).

    Raises:
        DataError: tensorflow-datasets is missing, or has no such image dataset.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            "tensorflow-datasets is not installed (pip install -r requirements.txt)"
        ) from error
    try:
        builder = tfds.builder(name, data_dir=tfds_dir)
    except tfds.core.registered.DatasetNotFoundError as error:  # its message lists ~1,000 names
        raise DataError(
            f"tensorflow-datasets has no dataset {name!r} "
            "(catalogue: https://www.tensorflow.org/datasets/catalog/overview)"
        ) from error
    features = builder.info.features
    for needed in ("image", "label") if with_labels else ("image",):
        if needed not in features:
            raise DataError(
                f"the tensorflow-datasets dataset {name!r} has no {needed!r} feature "
                f"(it has: {', '.join(features)})"
            )
    if download:
        builder.download_and_prepare()
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    if with_labels:
        return dataset.map(
            lambda example: (example["image"], tf.cast(example["label"], tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE)


def _short(error):
    """An exception as one short line: `OSError: connection reset`."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _from_tfds(name, title, split, tfds_dir, with_labels):
    """`(dataset, None, None)` from tensorflow-datasets, or `(None, why not, what to do)`."""
    plan = tfds_plan(name, tfds_dir)
    if plan is None:
        return (
            None,
            _no_network(title),
            "connect to the internet once so that tensorflow-datasets can download it into "
            f"{tfds_data_dir(tfds_dir)}",
        )
    try:
        dataset = load_tfds(
            name, split, tfds_dir, download=plan == "download", with_labels=with_labels
        )
    except Exception as error:  # a download failing half-way, a corrupt cache, a bad split
        if isinstance(error, DataError):
            return None, str(error), "check the dataset name"
        reason = f"tensorflow-datasets could not load {title} ({_short(error)})"
        return None, reason, "check the network, the dataset name and the split, then try again"
    return dataset, None, None


# === Loading by name ===


def _looks_like_folder(name):
    """True when `name` means a folder: a path object, an existing path, or path-like text."""
    if isinstance(name, os.PathLike):
        return True
    # "mnist" is the dataset, even if a folder ./mnist exists (write "./mnist" for that).
    if not isinstance(name, str) or name in EMBEDDED:
        return False
    path = os.path.expanduser(name)
    return os.path.exists(path) or os.path.isabs(path) or name.startswith((".", "~"))


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
    """Load a dataset of float32 images in `[-1, 1]` (and int32 labels), unbatched.

    Args:
        name: `"mnist"` (tensorflow-datasets, embedded fallback), `"digits"` (embedded only),
            another tensorflow-datasets name with an `image` feature (`"cifar10"`,
            `"oxford_flowers102"`, ...; no offline fallback), or a folder of images (see
            `load_image_folder`; `source` does not apply, and `image_size`/`channels` default to
            64 and 3 so that mixed images batch). Write `./mnist` for a folder named `mnist`.
        split: the tensorflow-datasets split, e.g. `"train"` or `"train+test"`. Embedded copies
            have one split, `"train"`.
        source: `"auto"`, `"tfds"` or `"embedded"` (see the module docstring).
        image_size: int or `(height, width)` to resize to (bilinear, antialiased); default: native.
        channels: 1 or 3 to convert to (grey <-> RGB, alpha dropped); default: native.
        with_labels: yield `(image, label)` pairs, label an int32 class index.
        data_dir: tensorflow-datasets' data folder (default: `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`). The embedded files live in `data_dir()`.

    Returns:
        An unbatched `tf.data.Dataset` of float32 images `[H, W, C]` in `[-1, 1]`, or of
        `(image, label)` pairs; its cardinality is known.

    Raises:
        DataError: the data cannot be had as asked; the message says what to do about it.
        ConfigError: `source`, `image_size` or `channels` is not a valid value.

    Example:
        >>> images = load("mnist")                       # tfds online, embedded sample offline
        >>> pairs = load("mnist", with_labels=True, image_size=32, channels=3)
        >>> photos = load("~/Pictures/cats", image_size=64)  # a folder of your own
    """
    if source not in SOURCES:
        raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    size = _image_size(image_size)
    _check_channels(channels)
    if _looks_like_folder(name):
        return load_image_folder(
            name, image_size=size or 64, channels=channels or 3, with_labels=with_labels
        )
    if not isinstance(name, str):
        raise ConfigError(f"name must be a dataset name or a folder, got {name!r}")

    tfds_name = TFDS_NAMES.get(name) if name in EMBEDDED else name
    if source == "embedded" or (source == "auto" and tfds_name is None):
        return _load_embedded(name, split, size, channels, with_labels)
    if tfds_name is None:
        raise DataError(
            f"{name!r} is embedded only (tensorflow-datasets has no such dataset); "
            "use source='embedded' (CLI: --data embedded)"
        )

    title = _TITLES[name][0] if name in _TITLES else name
    dataset, reason, advice = _from_tfds(tfds_name, title, split, data_dir, with_labels)
    if dataset is not None:
        return map_images(dataset, lambda image: prepare_image(image, size, channels), with_labels)

    # tensorflow-datasets cannot serve it: fall back to the embedded copy, or say what to do.
    if source == "tfds" or name not in EMBEDDED:
        if name in EMBEDDED:
            advice += f", or use {_TITLES[name][1]} with source='embedded' (CLI: --data embedded)"
        else:
            advice += ", or pass a folder of images"
        raise DataError(f"{reason}; {advice}")
    copy = _TITLES[name][1]
    if split != "train":
        raise DataError(f"{reason}, and {copy} has only the 'train' split, not {split!r}")
    dataset = _load_embedded(name, split, size, channels, with_labels)
    announce_embedded_fallback(name, reason)
    return dataset


def announce_embedded_fallback(name, reason):
    """Say in one line why the embedded copy of `name` is used instead of tensorflow-datasets."""
    notice(f"{reason}; using {_TITLES[name][1]} from {_display(_embedded_path(name))}")


def offline_reason(name):
    """Why tensorflow-datasets cannot serve the embedded dataset `name` right now (one clause),
    or None when it can (`tfds_plan`)."""
    return None if tfds_plan(TFDS_NAMES[name]) is not None else _no_network(_TITLES[name][0])


def _no_network(title):
    offline = " (KERASGAN_OFFLINE=1)" if is_offline() else ""
    return f"{title} is not downloaded and there is no network{offline}"


# === Folders of images ===


def _folder(path):
    """`path` (str or path object, `~` allowed) as an absolute `Path`, for clear messages."""
    return Path(os.path.expanduser(os.fspath(path))).absolute()


def _is_hidden(path, root):
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(path):
    """The image files under `path`: recursive, sorted, hidden files and folders left out.

    Raises:
        DataError: when `path` is missing, is not a folder, or holds no image files.
    """
    root = _folder(path)
    if not root.exists():
        raise DataError(f"the image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of images")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not _is_hidden(p, root)
    )
    if not files:
        raise DataError(
            f"no image files in {root} (looked for {', '.join(IMAGE_EXTENSIONS)}, in sub-folders too)"
        )
    return files


# The largest image a folder or a single file may hold, in pixels (8192 x 8192). A PNG header
# can declare 100000x100000 pixels over a few bytes (a "decompression bomb"); decoding it would
# need tens of gigabytes. Pillow's own limit (`Image.MAX_IMAGE_PIXELS`) only warns below twice
# its value, which lets a 90-megapixel bomb through.
MAX_PIXELS = 8192 * 8192

# What `tf.io.decode_image` decodes exactly as Pillow does, by format and Pillow mode. Anything
# else is converted by Pillow: CMYK JPEGs (TensorFlow gets their colours wrong), 16-bit PNGs
# (TensorFlow keeps the high byte, where 16 to 8 bits is a division by 257), paletted or
# grey BMPs (TensorFlow reads their palette indices as pixels).
_TENSORFLOW_MODES = {
    "JPEG": {"L", "RGB"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA"},
    "GIF": {"L", "P"},
    "BMP": {"RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
}


def _open_image(path, max_pixels):
    """Open and fully decode `path` with Pillow, refusing files over `max_pixels` before
    decoding; returns `(image, needs_conversion)` or raises a one-line DataError."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: a folder, not an image file")
    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises, over twice its limit) about large images; ours decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file Pillow can read") from None
    except Image.DecompressionBombError:
        raise DataError(
            f"{path}: too large (its header declares more than {max_pixels:,} pixels; "
            "a decompression bomb?)"
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise DataError(f"{path}: too large ({width}x{height} pixels, more than {max_pixels:,})")
    native = image.mode in _TENSORFLOW_MODES.get(image.format, ())
    try:
        if native and image.format == "JPEG":
            # Only checking: decode at 1/8 scale, which still reads every byte of the stream.
            image.draft(image.mode, (1, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "palette images with transparency ..."
            image.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct_error) as error:
        image.close()
        problem = "truncated" if "truncated" in str(error).lower() else "corrupt"
        raise DataError(f"{path}: {problem} ({_short(error)})") from None
    return image, not native


def _eight_bit(image):
    """`image` as 8-bit L, LA, RGB or RGBA, converted correctly from any other mode."""
    from PIL import Image

    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit grey: 0..65535 maps to 0..255 by dividing by 257 (65535 / 255), rounded.
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.round(np.clip(values, 0, 65535) / 257.0).astype(np.uint8), "L")
    if image.mode == "1":
        return image.convert("L")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _pillow_pixels(path):
    """The 8-bit pixels `[H, W, C]` of a file TensorFlow cannot decode as it is (a `tf.data`
    map calls it through `tf.numpy_function`)."""
    from PIL import Image

    path = path.decode() if isinstance(path, bytes) else path
    with Image.open(path) as image:
        array = np.asarray(_eight_bit(image), dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def read_image_file(path, channels=3, max_pixels=None):
    """Read one image file as uint8 pixels `[H, W, channels]`, or say in one line why not.

    The file is decoded in full, so truncated files are caught here. Files in other modes are
    converted when the conversion is exact: CMYK and palette images to RGB, 16-bit grey to
    8 bits (divided by 257, not clipped), grey to RGB or RGB to grey (ITU-R 601 luminance).
    Alpha is dropped, as for folders of images.

    Args:
        path: the image file (PNG, JPEG, GIF, BMP, WebP, or anything else Pillow reads).
        channels: 1 (grey) or 3 (RGB).
        max_pixels: refuse images with more pixels than this (default: `MAX_PIXELS`), before
            decoding them.

    Returns:
        A uint8 NumPy array `[height, width, channels]`.

    Raises:
        DataError: `"<path>: <problem>"`, e.g. no such file, not an image file, truncated, too
            large.
        ConfigError: `channels` is not 1 or 3.

    Example:
        >>> photo = read_image_file("horse.jpg", channels=3)     # uint8 [H, W, 3]
    """
    _check_channels(channels, allow_none=False)
    image, _ = _open_image(path, max_pixels or MAX_PIXELS)
    with image:
        image = _eight_bit(image)
        image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def usable_images(files, root=None, max_pixels=None):
    """The files that can be decoded, and which of them Pillow must convert; ONE notice
    line about the others.

    Every file is decoded once here (see `read_image_file`), so that a truncated file, a
    decompression bomb or a mode TensorFlow gets wrong is found before training, not after
    an hour of it. A folder of photos gathered from the web nearly always holds a few.

    Args:
        files: image file paths.
        root: the folder to name files relative to in the notice.
        max_pixels: the largest image accepted, in pixels (default: `MAX_PIXELS`).

    Returns:
        `(files, convert)`: the usable files in order, and for each a bool, True when it must
        be read by Pillow (`_pillow_pixels`) rather than by `tf.io.decode_image`.

    Raises:
        DataError: when none of them can be decoded.
    """
    usable, convert, problems = [], [], []
    for file in files:
        try:
            image, needs_conversion = _open_image(file, max_pixels or MAX_PIXELS)
        except DataError as error:
            problems.append((file, str(error).split(": ", 1)[-1]))
            continue
        image.close()
        usable.append(file)
        convert.append(needs_conversion)
    if problems:
        file, problem = problems[0]
        name = str(Path(file).relative_to(root)) if root else str(file)
        if not usable:
            raise DataError(
                f"none of the {len(files)} image files in {root or Path(file).parent} can be "
                f"decoded, e.g. {name}: {problem}"
            )
        notice(
            f"skipping {len(problems)} of {len(files)} image files that cannot be decoded, "
            f"e.g. {name}: {problem}"
        )
    return usable, convert


def load_image_folder(path, *, image_size=64, channels=3, with_labels=False, max_pixels=None):
    """A folder of images as a dataset of float32 images in `[-1, 1]` (and int32 labels).

    Every `.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif` (first frame) or `.webp` file under `path` is
    used, in sub-folders too, in sorted order. Every file is decoded once when the folder is
    listed (see `usable_images`): files that cannot be decoded (truncated, corrupt, larger than
    `max_pixels`) are skipped with one notice line, so that no broken file stops training
    mid-epoch. In the `tf.data` pipeline images are decoded by `tf.io.decode_image`, except the
    few kinds TensorFlow gets wrong (CMYK JPEGs, 16-bit PNGs, paletted BMPs), which Pillow
    converts; only file names are held in memory.

    Args:
        path: the folder.
        image_size: int or `(height, width)`: every image is resized to it (bilinear,
            antialiased; the aspect ratio is not kept). None keeps native sizes, which batch
            only if all images have the same size.
        channels: 1 (grey) or 3 (RGB); alpha is dropped.
        with_labels: label each image with the index of its class folder, the immediate
            sub-folder of `path` it sits in, in sorted order (`cats/` = 0, `dogs/` = 1, ...), as
            `keras.utils.image_dataset_from_directory` does. The dataset's `class_names`
            attribute lists them.
        max_pixels: skip images larger than this many pixels (default: `MAX_PIXELS`).

    Returns:
        An unbatched `tf.data.Dataset` of images `[height, width, channels]`, or of
        `(image, label)` pairs.

    Raises:
        DataError: the folder is missing or holds no usable images, or (with labels) holds
            images outside class sub-folders.

    Example:
        >>> photos = load_image_folder("data/photos", image_size=128)
        >>> pets = load_image_folder("pets", with_labels=True)   # pets/cats/*.jpg, pets/dogs/*.jpg
        >>> pets.class_names
        ['cats', 'dogs']
    """
    size = _image_size(image_size)
    _check_channels(channels, allow_none=False)
    root = _folder(path)
    files = list_images(root)
    if with_labels:
        # Classes come from every listed file, before unreadable ones are dropped, so that a
        # class whose files are all broken does not shift the labels of the classes after it.
        loose = [p for p in files if p.parent == root]
        if loose:
            raise DataError(
                f"{root} has images directly in it (e.g. {loose[0].name}); with labels, put each "
                "class's images in its own sub-folder (e.g. cats/, dogs/)"
            )
        class_names = sorted({p.relative_to(root).parts[0] for p in files})
        label_of = {p: class_names.index(p.relative_to(root).parts[0]) for p in files}
    files, convert = usable_images(files, root, max_pixels)

    def read(file, converted):
        image = tf.cond(
            converted,
            lambda: tf.numpy_function(_pillow_pixels, [file], tf.uint8, stateful=False),
            lambda: tf.io.decode_image(
                tf.io.read_file(file), channels=0, expand_animations=False
            ),
        )
        return prepare_image(tf.ensure_shape(image, [None, None, None]), size, channels)

    files_and_flags = ([str(p) for p in files], np.array(convert))
    if not with_labels:
        return tf.data.Dataset.from_tensor_slices(files_and_flags).map(
            read, num_parallel_calls=tf.data.AUTOTUNE
        )
    labels = np.array([label_of[p] for p in files], np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((files_and_flags, labels)).map(
        lambda file_and_flag, label: (read(*file_and_flag), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset.class_names = class_names  # as keras.utils.image_dataset_from_directory does
    return dataset


# === Training pipelines ===


def training_pipeline(
    dataset, batch_size, *, shuffle=True, seed=None, cache=True, drop_remainder=True, augment=None
):
    """Cache, shuffle, augment, batch and prefetch a dataset for `fit`.

    The order matters: caching first keeps decoded images in memory, so decoding and resizing
    happen once, not every epoch; shuffling after the cache gives a new order every epoch;
    random augmentation after the cache gives new draws every epoch (before it, the cache would
    replay the first epoch's); prefetching last lets the CPU prepare the next batch while the
    model trains on this one.

    Args:
        dataset: an unbatched dataset, e.g. from `load`.
        batch_size: images per batch.
        shuffle: shuffle (buffer: the whole dataset, at most 10,000 elements), reshuffled
            every epoch.
        seed: the shuffle and augmentation seed, for repeatable runs.
        cache: keep the prepared elements in memory after the first epoch.
        drop_remainder: drop the last, smaller batch (GAN losses and batch statistics assume
            full batches).
        augment: a random augmentation `fn(element, seed) -> element` (see `augmented`),
            applied after the cache. Default: the one a dataset made by `augmented` carries
            (e.g. `load_unpaired`'s jitter), whose deterministic part is then what is cached.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Raises:
        DataError: when the dataset holds fewer elements than one batch.

    Example:
        >>> batches = training_pipeline(load("mnist"), batch_size=64, seed=0)
        >>> gan.fit(batches, epochs=20)
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if augment is None and getattr(dataset, "augmentation", None) is not None:
        dataset, augment = dataset.unaugmented, dataset.augmentation
    count = int(dataset.cardinality())  # -1: infinite, -2: unknown
    if count == 0 or (0 <= count < batch_size and drop_remainder):
        raise DataError(
            f"the dataset has {count:,} images, fewer than one batch of {batch_size}; "
            "use a smaller batch size or more images"
        )
    if cache and count != tf.data.INFINITE_CARDINALITY:
        dataset = dataset.cache()
    if shuffle:
        buffer = min(count, 10_000) if count > 0 else 10_000
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        dataset = augmented(dataset, augment, seed)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def in_fixed_random_order(dataset, seed=0, buffer=20_000):
    """A finite dataset, shuffled once under `seed`: its first N elements are then a sample.

    Files are often ordered (the embedded MNIST sample by class, 500 zeros first; tfds splits by
    shard), so "the first 2,000 real images" of a loaded dataset can hold a few classes only, and
    a generator that draws all ten digits would be judged against four. Every epoch gives the same
    order (`reshuffle_each_iteration=False`), so a comparison sees the same real images each time.

    Args:
        dataset: an unbatched `tf.data.Dataset`; an infinite or unknown-size one is returned
            shuffled within `buffer` elements.
        seed: the order's seed.
        buffer: the most elements held for shuffling (all of them when the dataset is smaller).
    """
    count = int(dataset.cardinality())
    size = min(count, buffer) if count > 0 else buffer
    return dataset.shuffle(size, seed=seed, reshuffle_each_iteration=False)


def augmented(dataset, augment, seed=None):
    """`dataset` with a random augmentation applied, drawn anew on every pass over it.

    Random ops in a `tf.data` map draw the same values on every pass once a global seed is set
    (`keras.utils.set_random_seed`), and a cache after them would freeze the first pass's draws
    anyway. Here every element gets its own seed for TensorFlow's stateless random ops from
    `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`: new seeds on every pass,
    the same sequence of passes for the same `seed`.

    The result keeps its parts, `unaugmented` and `augmentation`, so that `training_pipeline`
    can cache the deterministic part and augment after the cache.

    Args:
        dataset: the deterministic dataset.
        augment: `fn(element, seed) -> element`; `seed` is a `[2]` int64 tensor, e.g. for
            `tf.image.stateless_random_crop` (see `random_jitter`, `jitter_pairs`).
        seed: seed of the per-element seeds.

    Returns:
        The augmented `tf.data.Dataset`, with as many elements as `dataset`.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    seeds = seeds.batch(2, drop_remainder=True)
    result = tf.data.Dataset.zip((dataset, seeds)).map(
        augment, num_parallel_calls=tf.data.AUTOTUNE
    )
    result.unaugmented = dataset
    result.augmentation = augment
    return result


def describe(dataset):
    """A one-line summary of a dataset of images, for logs and the CLI.

    Returns:
        e.g. `"5,000 images of 28x28x1"`, `"1,797 images of 8x8x1 with labels"`,
        `"5,000 (a, b) pairs of 32x32x1 images"` (CycleGAN's unpaired sets), or
        `"images of 64x64x3"` when the count is unknown.
    """
    spec = dataset.element_spec
    parts = spec if isinstance(spec, tuple) else (spec,)
    shapes = ["x".join("?" if d is None else str(d) for d in part.shape) for part in parts]
    count = int(dataset.cardinality())
    number = f"{count:,} " if count >= 0 else ""
    if len(parts) == 2 and all(part.shape.rank == 3 for part in parts):  # two images, no label
        images = shapes[0] if shapes[0] == shapes[1] else " and ".join(shapes)
        return f"{number}(a, b) pairs of {images} images"
    labelled = " with labels" if len(parts) > 1 else ""
    return f"{number}images of {shapes[0]}{labelled}"


# === Coloured digits (generated from the embedded MNIST sample; StyleGAN, notebook 06) ===
#
# A style-based generator shows what it does when the data has factors at different scales.
# Coloured digits have two: the digit's *shape* (a coarse, layout-level factor) and its *colours*
# (stroke and background, factors that every pixel carries). A StyleGAN trained on them on a CPU
# comes to control shape with its coarse styles and colour with its fine ones, which is what a
# style-mixing grid shows.

COLORED_MNIST_SEED = 2019
# Smallest Euclidean distance between stroke and background colours (RGB in [0, 1]; the largest
# possible is sqrt(3)): every digit stays legible.
MIN_COLOUR_DISTANCE = 0.6


def colored_mnist_arrays(seed=COLORED_MNIST_SEED):
    """The embedded MNIST sample with a random stroke and background colour per digit.

    Each digit's ink (0..255) blends a background colour into a stroke colour:
    `pixel = background * (1 - ink/255) + stroke * ink/255`. Both colours are uniform in the RGB
    cube, drawn again until they are at least `MIN_COLOUR_DISTANCE` apart. The same seed gives
    the same images on every machine (NumPy's PCG64 stream).

    Args:
        seed: seed of the colours.

    Returns:
        `(images, labels)`: uint8 `[5000, 28, 28, 3]` and int64 `[5000]` (the digit classes).
    """
    digits, labels = load_arrays("mnist")
    rng = np.random.default_rng(seed)
    stroke = rng.uniform(0.0, 1.0, (len(digits), 3))
    background = rng.uniform(0.0, 1.0, (len(digits), 3))
    while True:
        close = np.linalg.norm(stroke - background, axis=1) < MIN_COLOUR_DISTANCE
        if not close.any():
            break
        background[close] = rng.uniform(0.0, 1.0, (int(close.sum()), 3))
    ink = digits[..., None].astype("float64") / 255.0
    images = background[:, None, None, :] * (1.0 - ink) + stroke[:, None, None, :] * ink
    return np.round(images * 255.0).astype(np.uint8), labels


# Embedded datasets computed at load time from another embedded file: name -> builder.
GENERATED = {"colored_mnist": colored_mnist_arrays}
EMBEDDED["colored_mnist"] = EMBEDDED["mnist"]  # the file it is made from
_TITLES["colored_mnist"] = (
    "the coloured digits", "the coloured digits generated from the embedded MNIST sample"
)


# === Unpaired pairs (CycleGAN) ===
#
# CycleGAN (notebook 05) trains on two sets of images, A and B, with no pairing between them. Its
# dataset yields `(a, b)` tuples of one image from each set; which `a` meets which `b` is random
# and means nothing.

# tensorflow-datasets' `cycle_gan/<pair>` configurations (splits trainA, trainB, testA, testB).
CYCLE_GAN_PAIRS = (
    "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
    "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
)
# Embedded pairs: name -> (embedded dataset of A, embedded dataset of B).
EMBEDDED_PAIRS = {"digits": ("digits", "mnist")}
UNPAIRED_PAIRS = tuple(EMBEDDED_PAIRS) + CYCLE_GAN_PAIRS

# The tutorial's jitter loads 256 px images at 286 px and crops 256 at random.
JITTER_SCALE = 286 / 256
# Elements in each side's shuffle buffer when pairing (photos at 256 px: ~200 MB of uint8 each).
PAIRING_BUFFER = 1_000


def jitter_load_size(image_size):
    """The size images are enlarged to before the jitter's random crop (286 for 256)."""
    return int(round(image_size * JITTER_SCALE))


def random_jitter(image, image_size, mirror=True, seed=None):
    """The CycleGAN/pix2pix augmentation: enlarge by 286/256, crop back at random, maybe mirror.

    Args:
        image: a float image `[H, W, C]` (any size; it is resized first).
        image_size: the output's height and width.
        mirror: flip left-right with probability 1/2 (right for photos, wrong for digits).
        seed: seed of TensorFlow's stateless random ops, an int or `[2]` integers (the same
            seed gives the same crop and flip); None draws one.

    Returns:
        The image `[image_size, image_size, C]`.
    """
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    elif isinstance(seed, (int, np.integer)):
        seed = (int(seed), 0)
    crop_seed, flip_seed = tf.unstack(tf.random.split(seed, 2))
    load_size = jitter_load_size(image_size)
    if tuple(image.shape[:2]) != (load_size, load_size):
        image = tf.image.resize(image, (load_size, load_size), method="bilinear", antialias=True)
    channels = image.shape[-1]
    image = tf.image.stateless_random_crop(image, (image_size, image_size, channels), crop_seed)
    if mirror:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


def jitter_pairs(image_size, mirror=True):
    """`random_jitter` for `(a, b)` pairs as an augmentation `fn(pair, seed)` (see `augmented`);
    each side gets a crop and flip of its own."""

    def jitter(pair, seed):
        side_seeds = tf.unstack(tf.random.split(seed, len(pair)))
        return tuple(
            random_jitter(image, image_size, mirror, side_seed)
            for image, side_seed in zip(pair, side_seeds)
        )

    return jitter


def zip_unpaired(a, b, seed=0):
    """Pair two datasets at random: `(a, b)` elements, as many as the larger set has.

    Each side is shuffled on its own (buffer `PAIRING_BUFFER`) and repeated, so the smaller set
    is reused in a new order; the pairing is random, and fixed by `seed`.

    Args:
        a: a dataset with a known, non-zero number of elements.
        b: likewise.
        seed: seed of the two shuffles.

    Returns:
        A `tf.data.Dataset` of `(a, b)` with `max(len(a), len(b))` elements.
    """
    counts = [int(side.cardinality()) for side in (a, b)]
    if min(counts) < 1:
        raise DataError(f"both image sets must hold a known number of images, got {counts}")
    sides = [
        side.shuffle(min(count, PAIRING_BUFFER), seed=seed + offset).repeat()
        for offset, (side, count) in enumerate(zip((a, b), counts))
    ]
    return tf.data.Dataset.zip(tuple(sides)).take(max(counts))


def load_unpaired(
    pair="digits",
    source="auto",
    image_size=None,
    channels=None,
    data_a=None,
    data_b=None,
    *,
    jitter=None,
    seed=0,
    data_dir=None,
):
    """Two unpaired sets of images, A and B, as one dataset of `(a, b)` for CycleGAN.

    Three kinds of pairs:

    * `"digits"` (embedded, the offline default): A is scikit-learn's 1,797 8x8 digits
      upsampled (blurry, thick, filling the frame), B the 5,000 MNIST digits (sharp, thin
      strokes with a margin): two real writing and scanning styles of the same ten classes.
      32 px, 1 channel by default; no jitter (a mirrored digit is not a digit).
    * a tensorflow-datasets pair, `cycle_gan/<pair>` (`"horse2zebra"`, `"monet2photo"`, ...; see
      `CYCLE_GAN_PAIRS`), splits `trainA` and `trainB`: downloaded once when online. 256 px RGB
      by default, with the TensorFlow tutorial's random jitter (enlarge to 286 px, random crop
      256, random mirror).
    * two folders of images, `data_a` and `data_b` (see `load_image_folder`): 64 px RGB by
      default, with the jitter.

    About the jitter: it is drawn anew on every pass over the dataset (see `augmented`), and
    `training_pipeline` caches the images before it and jitters after the cache, so every epoch
    trains on new crops of images decoded and resized only once.

    Args:
        pair: `"digits"` or a name in `CYCLE_GAN_PAIRS`; ignored with folders (must then be None
            or "folders").
        source: `"auto"`, `"tfds"` or `"embedded"`, as in `load`. The digits pair is embedded
            only; the tensorflow-datasets pairs have no embedded copy.
        image_size: output height and width (default: 32, 256 or 64, see above).
        channels: 1 or 3 (default: 1 for digits, 3 otherwise); both sides get the same.
        data_a: a folder of images of A (with `data_b`).
        data_b: a folder of images of B (with `data_a`).
        jitter: apply the random jitter (default: on for photos, off for digits).
        seed: seed of the random pairing and of the jitter.
        data_dir: tensorflow-datasets' data folder.

    Returns:
        An unbatched `tf.data.Dataset` of `(a, b)` float32 images `[H, W, C]` in `[-1, 1]`, as
        many as the larger set holds (the smaller one is reused, reshuffled).

    Raises:
        ConfigError: an unknown pair or source, only one folder, bad size or channels.
        DataError: the images cannot be had (offline without the dataset, empty folders).

    Example:
        >>> pairs = load_unpaired("digits")                 # embedded, offline
        >>> a, b = next(iter(pairs))                        # each float32 [32, 32, 1]
        >>> photos = load_unpaired("horse2zebra")           # online: tensorflow-datasets
        >>> mine = load_unpaired(data_a="photos/summer", data_b="photos/winter", image_size=128)
    """
    if source not in SOURCES:
        raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    size = _image_size(image_size)
    _check_channels(channels)
    if (data_a is None) != (data_b is None):
        raise ConfigError("give both image folders, data_a (domain A) and data_b (domain B)")
    if data_a is not None:
        if pair not in (None, "folders"):
            raise ConfigError(f"give either a pair ({pair!r}) or two image folders, not both")
        size = size or (64, 64)
        channels = channels or 3
        jitter = True if jitter is None else jitter
        _check_jitter(jitter, size)
        # With the jitter, read at the enlarged size straight away (one resize, not two).
        read_size = (jitter_load_size(size[0]),) * 2 if jitter else size
        sides = [
            load_image_folder(folder, image_size=read_size, channels=channels)
            for folder in (data_a, data_b)
        ]
        pairs = zip_unpaired(*sides, seed=seed)
        return augmented(pairs, jitter_pairs(size[0]), seed) if jitter else pairs
    if pair not in UNPAIRED_PAIRS:
        raise ConfigError(
            f"unknown pair {pair!r}; choose one of: {', '.join(UNPAIRED_PAIRS)} "
            "(or give two image folders)"
        )
    if pair in EMBEDDED_PAIRS:
        if source == "tfds":
            raise DataError(
                f"the {pair} pair is embedded only (tensorflow-datasets has no such pair); "
                "use source='embedded' or 'auto' (CLI: --data embedded)"
            )
        name_a, name_b = EMBEDDED_PAIRS[pair]
        sides = []
        for name in (name_a, name_b):
            images = load_arrays(name)[0]
            sides.append(tf.data.Dataset.from_tensor_slices(
                images[..., None] if images.ndim == 3 else images
            ))
        size = size or (32, 32)
        channels = channels or 1
        jitter = False if jitter is None else jitter
        mirror = False
    else:
        if source == "embedded":
            raise DataError(
                f"the {pair} pair has no embedded copy; use source='auto' or 'tfds' (online), "
                "the embedded 'digits' pair, or two image folders"
            )
        name = f"cycle_gan/{pair}"
        sides = []
        for split in ("trainA", "trainB"):
            dataset, reason, advice = _from_tfds(name, name, split, data_dir, False)
            if dataset is None:
                raise DataError(
                    f"{reason}; {advice}, or use the embedded 'digits' pair or two image folders"
                )
            sides.append(dataset)
        size = size or (256, 256)
        channels = channels or 3
        jitter = True if jitter is None else jitter
        mirror = True
    _check_jitter(jitter, size)
    read_size = (jitter_load_size(size[0]),) * 2 if jitter else size
    pairs = zip_unpaired(*sides, seed=seed).map(
        lambda a, b: (
            prepare_image(a, read_size, channels), prepare_image(b, read_size, channels)
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return augmented(pairs, jitter_pairs(size[0], mirror), seed) if jitter else pairs


def _check_jitter(jitter, size):
    if jitter and size[0] != size[1]:
        raise ConfigError(f"the random jitter needs a square image_size, got {size}")


# === The data of each model's CLI recipe (`kerasgan.recipes`) ===


def center_crop_resize(image, size):
    """Crop the largest centred square, then resize to `size` (photos keep their proportions)."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    square = image[top : top + side, left : left + side]
    return tf.image.resize(square, (size, size), method="bilinear", antialias=True)


def load_stylegan_images(data="auto", image_size=None, channels=None):
    """The training data of `python -m kerasgan train stylegan`.

    Args:
        data: `"auto"` / `"embedded"`: the coloured digits (`colored_mnist`, generated from the
            embedded MNIST sample) at 32 px (the default: small enough for style mixing to show
            on a CPU). `"tfds"`: `oxford_flowers102` (all 8,189 images), centre-cropped to a
            square, at 64 px. A folder of images: at 64 px.
        image_size: image height and width (default: as above).
        channels: image channels (default 3).

    Returns:
        An unbatched dataset of images in `[-1, 1]`.
    """
    channels = channels or 3
    if data in ("auto", "embedded"):
        return load(
            "colored_mnist", source="embedded", image_size=image_size or 32, channels=channels
        )
    if data == "tfds":
        size = image_size or 64
        flowers = load(
            "oxford_flowers102", split="train+validation+test", source="tfds", channels=channels
        )
        return flowers.map(lambda image: center_crop_resize(image, size))
    return load(data, image_size=image_size or 64, channels=channels)


# BigGAN's `--data` values besides auto/tfds/embedded (MNIST) and folders: name -> `load` args.
BIGGAN_NAMED_DATA = {
    "cifar10": {"name": "cifar10", "source": "tfds"},  # the paper's 32x32 experiment (online)
    "colored_mnist": {"name": "colored_mnist", "source": "embedded"},  # offline, in colour
}


def load_biggan_labelled_images(data, image_size=None, channels=None):
    """BigGAN's training pairs: MNIST digits at 32x32 by default, CIFAR-10 with `cifar10`.

    Args:
        data: `"auto"`, `"tfds"` or `"embedded"` (MNIST: tensorflow-datasets, or the embedded
            5,000-digit sample offline), `"cifar10"` (tensorflow-datasets CIFAR-10, the paper's
            32x32 experiment), `"colored_mnist"` (the embedded digits in random colours), or a
            folder of images in one sub-folder per class.
        image_size: image height and width (default 32).
        channels: image channels (default: the dataset's; 3 for folders).

    Returns:
        An unbatched dataset of `(image, label)` pairs.

    Raises:
        ConfigError: for a `data` that is none of these.
    """
    image_size = image_size or 32
    if data in SOURCES:
        return load(
            "mnist", source=data, image_size=image_size, channels=channels, with_labels=True
        )
    if data in BIGGAN_NAMED_DATA:
        return load(
            **BIGGAN_NAMED_DATA[data], image_size=image_size, channels=channels, with_labels=True
        )
    if os.path.isdir(os.path.expanduser(data)):
        return load(data, image_size=image_size, channels=channels or 3, with_labels=True)
    raise ConfigError(
        f"--data for biggan must be auto, tfds, embedded, {', '.join(BIGGAN_NAMED_DATA)} or a "
        f"folder of images in one sub-folder per class; {data!r} is none of these"
    )


def load_cyclegan_pairs(
    data="auto", image_size=None, channels=None, pair=None, data_a=None, data_b=None, seed=0
):
    """The training pairs of `python -m kerasgan train cyclegan` (see `load_unpaired`).

    Args:
        data: the source (`auto`, `tfds`, `embedded`) of `pair`.
        image_size: image height and width (default: the pair's).
        channels: image channels (default: the pair's).
        pair: `--pair` (default `digits`: the embedded 8x8 digits <-> MNIST digits, 32 px).
        data_a, data_b: `--data-a`/`--data-b`, two image folders instead of a pair.
        seed: the run's `--seed`; it draws the unpaired pairing and the random jitter.

    Returns:
        An unbatched dataset of `(a, b)` image pairs.

    Raises:
        ConfigError: when `data` is not a source (a folder belongs in `data_a`/`data_b`).
    """
    if data not in SOURCES:
        raise ConfigError(
            "cyclegan trains on two image sets: give folders with --data-a and --data-b "
            f"(--data is the source of --pair: {', '.join(SOURCES)}), not {data!r}"
        )
    if pair is None and data_a is None and data_b is None:
        pair = "digits"
    return load_unpaired(
        pair, data, image_size, channels, data_a=data_a, data_b=data_b, seed=seed
    )


def cyclegan_pair_shape(pairs):
    """`(height, channels)` of a dataset of `(a, b)` pairs."""
    spec = pairs.element_spec[0]
    return spec.shape[0], spec.shape[-1]
