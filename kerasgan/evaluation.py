"""Measuring GANs: Fréchet distance (FID), KID, Inception Score, precision and recall.

A GAN has no likelihood to report, and its losses only say how the two networks fare against
each other, not how good the images are. So we compare *samples*: take `n` real and `n`
generated images, map both through a fixed **feature extractor** (a network trained to classify
images, whose features capture what an image looks like) and compare the two clouds of feature
vectors. Each metric compares the clouds differently, and each is blind to something:

* **FID** (Heusel et al., 2017, lower is better) fits a Gaussian to each cloud and measures the
  Fréchet distance between the two. It sees shifts in the mean and the spread; it sees nothing
  beyond second moments, and it is biased upward for small `n` (Chong & Forsyth, 2020).
* **KID** (Bińkowski et al., 2018, lower is better): the squared maximum mean discrepancy with
  a cubic polynomial kernel. It compares higher moments too, and its estimator is unbiased, so
  it is fair at small `n` and close to 0 for two samples of the same data.
* **IS** (Salimans et al., 2016, higher is better) looks at the generated images only: each
  should be classified confidently, and all together they should cover many classes. It never
  looks at real data, and it cannot see variety *within* a class.
* **Precision and recall** (Kynkäänniemi et al., 2019, both higher is better) split the two
  failure modes FID mixes: precision is the share of generated images that land on the real
  data's manifold (sample quality); recall is the share of real images that land on the
  generated manifold (coverage). Blurry samples hurt precision; dropped modes hurt recall.
  Here they are computed in the chosen extractor's feature space (InceptionV3's pool features
  or the offline judge's); the paper uses VGG-16's fc2 features, so figures are comparable
  with other runs of the same extractor, not with the paper's.

Two extractors share one interface (`extractor(images) -> features [N, D]`, and
`extractor.classify(images) -> probabilities [N, K]` for IS):

* `InceptionFeatures`: InceptionV3 with ImageNet weights, the 2048-d pool features the
  literature uses (downloaded once, cached by Keras). Keras's InceptionV3 weights are not the
  TF1 graph of the reference FID code, so figures are comparable within this course and only
  roughly with papers'.
* `OfflineJudge`: a small digit classifier trained by `scripts/train_offline_judge.py` on the
  embedded MNIST sample and shipped in `data/judges/`; it needs no network and is only
  meaningful for digit-like images (the idea of TF-GAN's MNIST classifier metrics).

Rules that make numbers comparable: real and generated images go through the same resize (the
extractor's), and every figure is reported with its `n` and its extractor.

Example:
    >>> from kerasgan import evaluation
    >>> evaluator = evaluation.Evaluator(real_images, "mnist_judge", n=2000)
    >>> evaluator.evaluate(gan.generate)
    {'n': 2000, 'extractor': 'mnist_judge', 'fid': 12.3, 'kid': 0.011, ...}
"""

import dataclasses
import inspect
import os
from collections import namedtuple

import keras
import numpy as np
import tensorflow as tf

from kerasgan.datasets import data_dir, in_fixed_random_order
from kerasgan.errors import ConfigError, DataError
from kerasgan.utils import float32_policy, is_offline, notice

JUDGE_WEIGHTS_FILE = os.path.join("judges", "mnist_judge.weights.h5")

# The file `keras.applications.InceptionV3(weights="imagenet")` downloads (with the classifier
# head, which the Inception Score needs); fetched the same way so both share Keras's cache.
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    + INCEPTION_WEIGHTS_FILE
)
INCEPTION_WEIGHTS_MD5 = "9a0d58056eeedaa3f26cb7ebd46da564"

METRICS = ("fid", "kid", "is", "precision_recall")

Features = namedtuple("Features", ["features", "probabilities"])
Features.__doc__ = "Features of `n` images: `features` `[n, D]`, `probabilities` `[n, K]` or None."


# === Image sources ===


def to_float_images(images):
    """Bring a batch of images to float32 `[N, H, W, C]` in `[-1, 1]`.

    The range is read from the dtype: integer images are taken as `0..255` (as stored on disk
    and in the embedded datasets), float images as `[-1, 1]` (what the course's generators
    output). Float images in `[0, 1]` cannot be told apart from dark `[-1, 1]` images: scale
    them with `2 * x - 1` first.

    Args:
        images: array-like `[N, H, W]` (grayscale) or `[N, H, W, C]` with 1 or 3 channels.

    Returns:
        float32 NumPy array `[N, H, W, C]` in `[-1, 1]`.

    Raises:
        DataError: for other shapes, integer values outside `0..255`, float values outside
            `[-1, 1]` (e.g. floats in `0..255`), NaN or infinity.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            "images must be shaped [N, H, W] or [N, H, W, C] with 1 or 3 channels, "
            f"got shape {tuple(images.shape)}"
        )
    if images.dtype == bool or not np.issubdtype(images.dtype, np.number):
        raise DataError(f"images must be numbers, got dtype {images.dtype}")
    if images.size == 0:
        return images.astype("float32")
    low, high = images.min(), images.max()
    if np.issubdtype(images.dtype, np.integer):
        if low < 0 or high > 255:
            raise DataError(f"integer images must be in 0..255, got values in {low}..{high}")
        return images.astype("float32") / 127.5 - 1.0
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DataError("images contain NaN or infinite values")
    # A little slack for float16/bfloat16 outputs of a tanh.
    if low < -1.01 or high > 1.01:
        raise DataError(
            f"float images must be in [-1, 1], got values in [{low:.3g}, {high:.3g}]; pass "
            "uint8 images in 0..255, or scale float ones with x / 127.5 - 1"
        )
    return np.clip(images.astype("float32"), -1.0, 1.0)


# The frame, in pixels, whose median colour is taken for an image's background.
INK_BORDER = 2


def ink_images(images):
    """Coloured digits as grayscale strokes: how far each pixel's colour is from the background.

    The offline judge learned grayscale MNIST, so it cannot read coloured digits by their luma
    (a random background moves the luma of every pixel). A coloured digit is a background
    colour blended into a stroke colour by the digit's ink, `pixel = bg + ink * (stroke - bg)`,
    so `||pixel - bg|| / ||stroke - bg||` recovers the ink exactly. This takes the background
    as the median colour of the image's outer frame and `||stroke - bg||` as the largest
    distance in the image, so real coloured digits become their MNIST digits again and a
    generator's samples are judged by the shapes they draw, not by their colours.

    Args:
        images: `[N, H, W, 3]` images (uint8 or float in `[-1, 1]`, see `to_float_images`).

    Returns:
        float32 `[N, H, W, 1]` in `[-1, 1]`: -1 background, 1 the strongest ink; an image of
        one colour is all background.

    Raises:
        DataError: images that are not RGB.
    """
    images = to_float_images(images)
    if images.shape[-1] != 3:
        raise DataError(f"ink_images takes RGB images, got {images.shape[-1]} channel(s)")
    border = np.ones(images.shape[1:3], bool)
    border[INK_BORDER:-INK_BORDER, INK_BORDER:-INK_BORDER] = False
    background = np.median(images[:, border, :], axis=1)  # [N, 3]
    distance = np.linalg.norm(images - background[:, None, None, :], axis=-1)
    largest = distance.max(axis=(1, 2), keepdims=True)
    ink = np.where(largest > 1e-3, distance / np.maximum(largest, 1e-3), 0.0)
    return (2.0 * ink - 1.0)[..., None].astype("float32")


def judged_sources(real, generate, *, ink=False, seed=0):
    """The `(real, fake)` pair to score a trained generator with (`evaluate`, `fid`, ...).

    Args:
        real: the model's real images: an unbatched dataset (e.g. `datasets.load(...)`, whose
            elements may be `(image, label)` pairs) or an array.
        generate: the generator's sampler, `fn(count, seed=None) -> images` (e.g.
            `gan.generate`).
        ink: judge coloured digits by their ink (`ink_images`), real and generated alike.
        seed: the fixed random order of a dataset's real images.

    Returns:
        `(real, fake)`: a dataset in a fixed random order (`datasets.in_fixed_random_order`:
        the embedded MNIST sample is ordered by class, so its first 2,000 images are four
        classes) or an array (the ink images of all of them); and a sampler.
    """
    if not ink:
        if isinstance(real, tf.data.Dataset):
            real = in_fixed_random_order(real, seed)
        return real, generate
    # An array: `evaluate` draws its seeded random subset of an array itself.
    if isinstance(real, tf.data.Dataset):
        real = np.stack([_select_images(element) for element in real.as_numpy_iterator()])
    real = ink_images(real)

    def fake(count, seed=None):
        return ink_images(keras.ops.convert_to_numpy(generate(count, seed=seed)))

    return real, fake


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_sample_count(n):
    """Validate a sample count: an integer of at least 2 (a covariance needs two samples)."""
    if not _is_int(n) or n < 2:
        raise ConfigError(f"the number of samples n must be an integer >= 2, got {n!r}")
    return int(n)


def available_images(source):
    """How many images an array source holds; None for datasets and functions (unknown)."""
    if isinstance(source, tf.data.Dataset) or callable(source) or _has_generate(source):
        return None
    shape = np.shape(source)
    return shape[0] if shape else 0


def image_batches(source, n, batch_size=100, seed=0, role="images"):
    """Stream exactly `n` images from `source` as float32 batches in `[-1, 1]`.

    Sources, and which `n` images they give:

    * an array (NumPy, tensor or list) `[N, H, W(, C)]`, uint8 in `0..255` or float in
      `[-1, 1]` (see `to_float_images`): `n` distinct images drawn at random under `seed`
      (all of them, in order, when `n == N`);
    * a `tf.data.Dataset` of images, `(images, labels)` tuples or dicts with an `"image"` key,
      batched or not: its first `n` images (shuffling is the dataset's business);
    * a function `fn(count) -> images`, e.g. `gan.generate`, or any object with such a
      `generate` method: called until it has given `n` images. When the function takes a
      `seed` keyword (as `GAN.generate` does), call `i` gets `seed=seed + i`, so the same seed
      gives the same images.

    Args:
        source: the images, as above.
        n: how many images to yield in all.
        batch_size: images per yielded batch (the last one may be smaller).
        seed: seed of the random subset of an array and of a function's calls; None for fresh
            randomness.
        role: what the images are ("real", "generated"), for error messages.

    Yields:
        float32 NumPy arrays `[b, H, W, C]` in `[-1, 1]`, `n` images in all.

    Raises:
        ConfigError: when the source holds fewer than `n` images.
        DataError: when its images cannot be read as images (see `to_float_images`).
    """
    n = check_sample_count(n)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if _has_generate(source):
        source = source.generate
    elif isinstance(source, keras.Model):
        raise ConfigError(
            f"the {role} images are a Keras model, which maps latents to images; pass a "
            "function fn(count) -> images instead, such as gan.generate"
        )
    if isinstance(source, tf.data.Dataset):
        yield from _dataset_batches(source, n, batch_size, role)
    elif callable(source):
        yield from _function_batches(source, n, batch_size, seed, role)
    else:
        yield from _array_batches(source, n, batch_size, seed, role)


def _has_generate(source):
    return not isinstance(source, tf.data.Dataset) and callable(getattr(source, "generate", None))


def _array_batches(images, n, batch_size, seed, role):
    if not isinstance(images, np.ndarray):
        images = keras.ops.convert_to_numpy(images) if tf.is_tensor(images) else np.asarray(images)
    if images.ndim == 0:
        raise DataError(f"the {role} images are a single number, not an array of images")
    if n > len(images):
        raise ConfigError(f"n={n} but the {role} images hold only {len(images)}")
    if n == len(images):
        indices = np.arange(n)
    else:
        indices = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))
    for start in range(0, n, batch_size):
        yield to_float_images(images[indices[start : start + batch_size]])


def _accepts_seed(function):
    try:
        return "seed" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _function_batches(function, n, batch_size, seed, role):
    pass_seed = seed is not None and _accepts_seed(function)
    produced, call = 0, 0
    while produced < n:
        count = min(batch_size, n - produced)
        images = function(count, seed=seed + call) if pass_seed else function(count)
        images = to_float_images(keras.ops.convert_to_numpy(images))[:count]
        if len(images) == 0:
            raise DataError(f"the {role} image function returned no images when asked for {count}")
        produced, call = produced + len(images), call + 1
        yield images


def _select_images(element):
    """The image part of a dataset element: the first item of a tuple, `"image(s)"` of a dict."""
    if isinstance(element, dict):
        for key in ("image", "images"):
            if key in element:
                return element[key]
        raise DataError(
            f"dataset elements are dicts without an 'image' key (keys: {list(element)})"
        )
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


def _dataset_batches(dataset, n, batch_size, role):
    spec = _select_images(dataset.element_spec)
    rank = spec.shape.rank
    if rank not in (2, 3, 4):
        raise DataError(f"the {role} dataset's elements are not images (shape {spec.shape})")
    # A rank-3 element is one [H, W, C] image unless its last axis cannot be channels, in which
    # case it is a batch of grayscale [H, W] images.
    if rank == 2 or (rank == 3 and spec.shape[-1] in (1, 3, None)):
        dataset = dataset.batch(batch_size)
    produced = 0
    for element in dataset:
        images = to_float_images(keras.ops.convert_to_numpy(_select_images(element)))
        images = images[: n - produced]
        produced += len(images)
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        if produced == n:
            return
    raise ConfigError(f"n={n} but the {role} dataset ran out after {produced} images")


# === Feature extractors ===


class FeatureExtractor:
    """Maps images to feature vectors (and class probabilities) with a frozen Keras model.

    Images of any size and of 1 or 3 channels are adapted to what the model expects: resized
    bilinearly (antialiased when shrinking, so a 1024-px photo is not aliased) and converted
    RGB -> grayscale by luma, or grayscale -> RGB by tiling.

    Args:
        model: a Keras model taking `[batch, height, width, channels]` in `[-1, 1]` and returning
            a dict with `"features"` `[batch, D]` and, when it has a classifier head,
            `"probabilities"` `[batch, K]`.
        image_size: `(height, width)` the model expects.
        channels: 1 or 3, the channels the model expects.
        batch_size: images per forward pass.
        name: the extractor's name in reports.

    Call arguments:
        images: `[N, H, W(, C)]` uint8 in `0..255` or float in `[-1, 1]`. Returns float32
        features `[N, D]`.
    """

    def __init__(self, model, image_size, channels, batch_size=100, name="extractor"):
        self.model = model
        self.image_size = tuple(image_size)
        self.channels = channels
        self.batch_size = batch_size
        self.name = name
        spec = tf.TensorSpec([None, *self.image_size, channels], tf.float32)
        self._forward = tf.function(self._run_model, input_signature=[spec])

    def _run_model(self, images):
        return self.model(images, training=False)

    @property
    def feature_dim(self):
        """D, the length of a feature vector."""
        return int(self.model.output["features"].shape[-1])

    @property
    def num_classes(self):
        """K, the classifier head's number of classes; None without a head."""
        output = self.model.output.get("probabilities")
        return None if output is None else int(output.shape[-1])

    def prepare(self, images):
        """Resize and convert float `[-1, 1]` images to the model's input: a float32 tensor."""
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape[-1] != self.channels:
            if self.channels == 1:
                images = tf.image.rgb_to_grayscale(images)
            else:
                images = tf.image.grayscale_to_rgb(images)
        if tuple(images.shape[1:3]) != self.image_size:
            images = tf.image.resize(images, self.image_size, method="bilinear", antialias=True)
        return images

    def extract(self, images, probabilities=True):
        """Features and, if asked and available, class probabilities, from one forward pass.

        Returns:
            `Features(features [N, D], probabilities [N, K] or None)`, float32 NumPy.
        """
        images = to_float_images(images)
        probabilities = probabilities and self.num_classes is not None
        features, probs = [], []
        for start in range(0, len(images), self.batch_size):
            outputs = self._forward(self.prepare(images[start : start + self.batch_size]))
            features.append(outputs["features"].numpy())
            if probabilities:
                probs.append(outputs["probabilities"].numpy())
        features = np.concatenate(features) if features else np.zeros((0, self.feature_dim))
        return Features(features.astype("float32"), np.concatenate(probs) if probs else None)

    def __call__(self, images):
        return self.extract(images, probabilities=False).features

    def classify(self, images):
        """Class probabilities `[N, K]` of the classifier head (what the Inception Score uses)."""
        if self.num_classes is None:
            raise ConfigError(f"the {self.name} extractor has no classifier head")
        return self.extract(images, probabilities=True).probabilities


def inception_weights():
    """Path of InceptionV3's ImageNet weights, downloaded once into Keras's cache.

    Offline (`KERASGAN_OFFLINE=1`) the network is never touched: the cached file is used or a
    `DataError` says at once what to do. Online, a failed download is a `DataError` too.
    """
    # Where keras.utils.get_file keeps it: KERAS_HOME (default ~/.keras), or /tmp/.keras when
    # that is not writable.
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    cached = os.path.join(home, "models", INCEPTION_WEIGHTS_FILE)
    advice = (
        f"connect once to download them, pass weights=<path to {INCEPTION_WEIGHTS_FILE}>, "
        "or use the offline judge (extractor 'mnist_judge')"
    )
    if is_offline() and not os.path.exists(cached):
        raise DataError(
            f"InceptionV3 ImageNet weights are not in the Keras cache ({cached}) and "
            f"kerasgan is offline (KERASGAN_OFFLINE is set): {advice}"
        )
    try:
        return keras.utils.get_file(
            INCEPTION_WEIGHTS_FILE,
            INCEPTION_WEIGHTS_URL,
            cache_subdir="models",
            file_hash=INCEPTION_WEIGHTS_MD5,
        )
    except Exception as error:  # get_file raises a bare Exception for network failures
        raise DataError(
            f"could not download InceptionV3 ImageNet weights ({error}); {advice}"
        ) from error


class InceptionFeatures(FeatureExtractor):
    """InceptionV3's 2048-d pool features and ImageNet class probabilities: FID's standard.

    Images are resized to 299x299 (bilinear) and grayscale is tiled to RGB. Inputs in
    `[-1, 1]` are exactly what InceptionV3 expects (`preprocess_input` scales to that range).
    Far slower than the offline judge on a CPU (299x299 inputs; speeds in
    `benchmarks/README.md`), which is why the offline judge exists for quick checks.

    Args:
        weights: `"imagenet"` (downloaded once into the Keras cache), a path to
            `inception_v3_weights_tf_dim_ordering_tf_kernels.h5`, or None for random weights
            (only to test the pipeline: its numbers mean nothing).
        batch_size: images per forward pass.

    Example:
        >>> extractor = InceptionFeatures()
        >>> extractor(images).shape
        (16, 2048)
    """

    def __init__(self, weights="imagenet", batch_size=50):
        if weights == "imagenet":
            weights = inception_weights()
        elif weights is not None and not os.path.exists(weights):
            raise DataError(f"InceptionV3 weights file not found: {weights}")
        with float32_policy():
            network = keras.applications.InceptionV3(
                include_top=True, weights=weights, input_shape=(299, 299, 3)
            )
        outputs = {
            "features": network.get_layer("avg_pool").output,
            "probabilities": network.output,
        }
        model = keras.Model(network.input, outputs, name="inception_v3_features")
        super().__init__(model, (299, 299), 3, batch_size, name="inception")


def build_mnist_judge():
    """The offline judge's network: a small CNN for 28x28 grayscale digits in `[-1, 1]`.

    Three blocks of 3x3 convolution, batch normalisation, ReLU and 2x2 max-pooling (32, 64, 64
    filters: 28 -> 14 -> 7 -> 3 pixels), a 128-unit ReLU layer on the flattened 3x3x64 map —
    the features — and a 10-way softmax. About 130k parameters (about 0.5 MB), fast enough to
    judge thousands of digits per second on a CPU.

    Returns:
        A Keras model with outputs `{"features": [batch, 128], "probabilities": [batch, 10]}`.
    """
    layers = keras.layers
    with float32_policy():
        images = keras.Input((28, 28, 1), name="images")
        x = images
        for block, filters in enumerate((32, 64, 64), start=1):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
            x = layers.BatchNormalization(name=f"norm{block}")(x)
            x = layers.ReLU(name=f"relu{block}")(x)
            x = layers.MaxPooling2D(name=f"pool{block}")(x)
        x = layers.Flatten(name="flatten")(x)
        features = layers.Dense(128, activation="relu", name="features")(x)
        x = layers.Dropout(0.3, name="dropout")(features)
        probabilities = layers.Dense(10, activation="softmax", name="probabilities")(x)
    outputs = {"features": features, "probabilities": probabilities}
    return keras.Model(images, outputs, name="mnist_judge")


class OfflineJudge(FeatureExtractor):
    """A small MNIST classifier as feature extractor: FID/KID/IS for digits, with no network.

    Trained by `scripts/train_offline_judge.py` on the embedded MNIST sample; its weights ship
    in `data/judges/mnist_judge.weights.h5` (see `data/README.md` for its held-out accuracy).
    Features are the 128-d penultimate layer, `classify` is the softmax over the 10 digits.
    Images of any size are resized to 28x28 and RGB is converted to grayscale. Its numbers are
    only meaningful for digit-like images, and are not comparable with Inception-based ones.

    Args:
        model: a trained `build_mnist_judge()` model. Use `OfflineJudge.load()` for the
            shipped one.
        batch_size: images per forward pass.
    """

    def __init__(self, model, batch_size=500):
        super().__init__(model, (28, 28), 1, batch_size, name="mnist_judge")

    @classmethod
    def load(cls, path=None, batch_size=500):
        """The judge with trained weights from `path` (default: the shipped file)."""
        path = path or judge_weights_path()
        if not os.path.exists(path):
            raise DataError(
                f"the offline judge's weights are missing ({path}); rebuild them with "
                "`python scripts/train_offline_judge.py`"
            )
        model = build_mnist_judge()
        model.load_weights(path)
        return cls(model, batch_size)


def judge_weights_path():
    """Where the shipped judge's weights live: `data/judges/` (see `datasets.data_dir`)."""
    return str(data_dir() / JUDGE_WEIGHTS_FILE)


def offline_judge():
    """The shipped offline judge (`OfflineJudge.load()`)."""
    return OfflineJudge.load()


EXTRACTORS = {"inception": InceptionFeatures, "mnist_judge": offline_judge}


def get_extractor(extractor):
    """An extractor from its name (`"inception"`, `"mnist_judge"`), or `extractor` itself.

    Any callable `fn(images) -> features [N, D]` is an extractor; give it a `classify(images)
    -> probabilities [N, K]` method for the Inception Score, and an `extract(images,
    probabilities) -> (features, probabilities or None)` method to get both from one forward
    pass (as `FeatureExtractor` does). Images reach it as float32 `[N, H, W, C]` in `[-1, 1]`.

    Raises:
        ConfigError: for an unknown name.
        DataError: when the extractor's weights cannot be had (e.g. Inception offline).
    """
    if isinstance(extractor, str):
        key = extractor.strip().lower().replace("-", "_")
        if key not in EXTRACTORS:
            raise ConfigError(
                f"unknown feature extractor {extractor!r}; choose one of: {', '.join(EXTRACTORS)}"
            )
        return EXTRACTORS[key]()
    if callable(extractor):
        return extractor
    raise ConfigError(f"an extractor is a name or a callable, got {type(extractor).__name__}")


def has_classifier(extractor):
    """True when `extractor` can give class probabilities (needed for the Inception Score)."""
    if isinstance(extractor, FeatureExtractor):
        return extractor.num_classes is not None
    return callable(getattr(extractor, "classify", None))


def extract_features(
    source, extractor, n, batch_size=None, seed=0, probabilities=False, role="images", verbose=0
):
    """Features of `n` images from `source`, extracted batch by batch.

    Only the features are kept in memory, never the images, so `n` can be large.

    Args:
        source: an array, `tf.data.Dataset` or image function (see `image_batches`).
        extractor: a name or an extractor (see `get_extractor`).
        n: number of images.
        batch_size: images per batch (default: the extractor's, else 100).
        seed: seed of the sample (see `image_batches`).
        probabilities: also return class probabilities (needs a classifier head).
        role: what the images are ("real", "generated"), for error messages.
        verbose: 1 for a progress bar.

    Returns:
        `Features(features [n, D], probabilities [n, K] or None)`, float32 NumPy.
    """
    extractor = get_extractor(extractor)
    if probabilities and not has_classifier(extractor):
        raise ConfigError(
            f"the {getattr(extractor, 'name', 'given')} extractor has no classifier head "
            "(classify), which the Inception Score needs"
        )
    batch_size = batch_size or getattr(extractor, "batch_size", 100)
    progress = keras.utils.Progbar(n, unit_name="image") if verbose else None
    features, probs = [], []
    for images in image_batches(source, n, batch_size, seed, role):
        if callable(getattr(extractor, "extract", None)):
            batch = extractor.extract(images, probabilities)
        else:
            batch = Features(
                extractor(images), extractor.classify(images) if probabilities else None
            )
        features.append(np.asarray(batch.features, "float32").reshape(len(images), -1))
        if probabilities:
            probs.append(np.asarray(batch.probabilities, "float32").reshape(len(images), -1))
        if progress is not None:
            progress.add(len(images))
    return Features(np.concatenate(features), np.concatenate(probs) if probabilities else None)


# === Metrics on features ===


def feature_statistics(features):
    """Mean `[D]` and covariance `[D, D]` (unbiased, `n - 1`) of features `[n, D]`, in float64."""
    features = np.asarray(features, "float64")
    if features.ndim != 2 or len(features) < 2:
        raise ConfigError(f"need features shaped [n >= 2, D], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(
        features.shape[1], features.shape[1]
    )


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between the Gaussians `N(mu1, sigma1)` and `N(mu2, sigma2)`.

        d² = ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))

    FID is this distance between Gaussians fitted to real and generated features. The hard
    part is `Tr((sigma1 sigma2)^(1/2))`: the product of two covariances is not symmetric, and
    the usual `scipy.linalg.sqrtm` of it comes back with small imaginary parts and fails when a
    covariance is singular (fewer samples than dimensions, dead ReLU units), which reference
    code patches with a diagonal offset. We avoid it: with `S = sigma1^(1/2)` (symmetric, from
    an eigen-decomposition), `sigma1 sigma2 = S (S sigma2)` has the same eigenvalues as
    `S sigma2 S`, which is symmetric positive semi-definite. So the trace is the sum of the
    square roots of its (real, clipped at 0) eigenvalues: no complex numbers, no inverse.

    Args:
        mu1, mu2: means `[D]`.
        sigma1, sigma2: covariances `[D, D]`.

    Returns:
        The squared Fréchet distance, a float >= 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, "float64")), np.atleast_1d(np.asarray(mu2, "float64"))
    sigma1 = np.atleast_2d(np.asarray(sigma1, "float64"))
    sigma2 = np.atleast_2d(np.asarray(sigma2, "float64"))
    dim = mu1.shape[0]
    if (
        mu1.shape != (dim,)
        or mu2.shape != (dim,)
        or sigma1.shape != (dim, dim)
        or (sigma2.shape != (dim, dim))
    ):
        raise ConfigError(
            f"means must be [D] and covariances [D, D] with one D; got {mu1.shape}, "
            f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    sqrt_sigma1 = _symmetric_sqrt(sigma1)
    middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(distance, 0.0))


def _symmetric_sqrt(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def polynomial_kernel(x, y):
    """KID's kernel `k(x, y) = (x·y / d + 1)^3` between rows of `x` `[m, d]` and `y` `[m', d]`."""
    base = x @ y.T / x.shape[1] + 1.0
    return base * base * base  # three times faster than `** 3` in NumPy


def mmd2_unbiased(x, y):
    """Unbiased estimate of the squared MMD between samples `x` `[m, d]` and `y` `[m', d]`:

        MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(m'(m'-1)) Σ_{i≠j} k(y_i, y_j)
                 - 2/(m m') Σ_{i,j} k(x_i, y_j)

    The MMD compares the two samples' mean embeddings in the kernel's feature space; with the
    cubic polynomial kernel that means their first three moments. Leaving out the `i = j` terms
    removes the bias, so the estimate is 0 on average for two samples of one distribution (and
    can then be slightly negative).
    """
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    m, m2 = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (m2 * (m2 - 1))
    return float(within_x + within_y - 2 * polynomial_kernel(x, y).mean())


def kid_from_features(real, fake, subsets=100, subset_size=1000, seed=0, batch_size=1000):
    """Kernel Inception Distance: MMD²_u averaged over random subsets of both samples.

    Bińkowski et al., 2018, "Demystifying MMD GANs", https://arxiv.org/abs/1801.01401. Each
    of `subsets` rounds draws `subset_size` real and `subset_size` generated features without
    replacement and computes `mmd2_unbiased` with the cubic `polynomial_kernel`; the spread
    over rounds says how much to trust the mean.

    Computing three kernel matrices per round would repeat most of the work 100 times over.
    Instead each kernel matrix of the whole samples is computed once, `batch_size` rows at a
    time, and every round's kernel sums are read from it: the sum of `K` over the rows in
    subset `v` and the columns in subset `w` is `v^T K w`, with `v` and `w` 0/1 indicator
    vectors — one matrix product for all rounds together.

    Args:
        real, fake: features `[n, D]` and `[n', D]`.
        subsets: number of rounds.
        subset_size: features per side and round (at most `min(n, n')`).
        seed: seed of the subsets.
        batch_size: kernel rows held in memory at once.

    Returns:
        `(mean, std)` of MMD²_u over the rounds: the spread of single-round estimates, as the
        paper's code and torch-fidelity report it (rounds overlap, so `std / sqrt(subsets)`
        would overstate the precision of the mean).
    """
    real, fake = np.asarray(real, "float64"), np.asarray(fake, "float64")
    _check_kid_options(min(len(real), len(fake)), subsets, subset_size)
    rng = np.random.default_rng(seed)
    in_real, in_fake = np.zeros((subsets, len(real))), np.zeros((subsets, len(fake)))
    for round_ in range(subsets):
        in_real[round_, rng.choice(len(real), subset_size, replace=False)] = 1.0
        in_fake[round_, rng.choice(len(fake), subset_size, replace=False)] = 1.0
    m = subset_size
    within_real = _subset_kernel_sums(real, real, in_real, in_real, batch_size)
    within_real -= in_real @ _self_kernel(real)  # drop the i = j terms
    within_fake = _subset_kernel_sums(fake, fake, in_fake, in_fake, batch_size)
    within_fake -= in_fake @ _self_kernel(fake)
    across = _subset_kernel_sums(real, fake, in_real, in_fake, batch_size)
    values = (within_real + within_fake) / (m * (m - 1)) - 2 * across / (m * m)
    return float(np.mean(values)), float(np.std(values))


def _subset_kernel_sums(a, b, in_a, in_b, batch_size):
    """`v_r^T K(a, b) w_r` for every round r (rows of the indicator matrices `in_a`, `in_b`)."""
    sums = np.zeros(len(in_a))
    for start in range(0, len(a), batch_size):
        stop = start + batch_size
        sums += np.einsum(
            "rj,rj->r", in_a[:, start:stop] @ polynomial_kernel(a[start:stop], b), in_b
        )
    return sums


def _self_kernel(x):
    """`k(x_i, x_i)` for every row: the diagonal of `polynomial_kernel(x, x)`."""
    base = (x * x).sum(axis=1) / x.shape[1] + 1.0
    return base * base * base


def inception_score_from_probabilities(probabilities, splits=10, seed=0):
    """Inception Score of class probabilities `p(y|x)` `[n, K]` of generated images.

        IS = exp(E_x[KL(p(y|x) || p(y))]),   p(y) = E_x[p(y|x)]

    Salimans et al., 2016, https://arxiv.org/abs/1606.03498. The KL divergence is large when
    each image is classified confidently (`p(y|x)` peaked) *and* the images together spread
    over the classes (`p(y)` flat). It ranges from 1 (one class for everything, or no
    confidence) to K (confident, and every class equally often). Computed on `splits` parts of
    the sample, as in the paper. The parts are drawn at random under `seed`: contiguous parts
    of an ordered sample (a conditional GAN's images class by class) would each hold one class
    and score about 1.

    Returns:
        `(mean, std)` of the score over the splits.
    """
    probabilities = np.asarray(probabilities, "float64")
    if probabilities.ndim != 2:
        raise ConfigError(f"probabilities must be [n, K], got shape {probabilities.shape}")
    _check_splits(len(probabilities), splits)
    eps = 1e-12
    scores = []
    shuffled = probabilities[np.random.default_rng(seed).permutation(len(probabilities))]
    for part in np.array_split(shuffled, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(
            part * (np.log(np.clip(part, eps, None)) - np.log(np.clip(marginal, eps, None))), axis=1
        )
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def squared_distances(a, b):
    """Squared Euclidean distances `[len(a), len(b)]` between the rows of `a` and `b`."""
    distances = (a * a).sum(axis=1)[:, None] - 2.0 * a @ b.T + (b * b).sum(axis=1)[None, :]
    return np.maximum(distances, 0.0)


def knn_radii(features, k=3, batch_size=1000):
    """Squared distance from each feature to its k-th nearest neighbour among the others."""
    features = np.asarray(features, "float64")
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        distances = squared_distances(features[start : start + batch_size], features)
        # Column 0 of the sorted row is the point itself (distance 0), so index k is the k-th NN.
        radii[start : start + batch_size] = np.partition(distances, k, axis=1)[:, k]
    return radii


def precision_recall_from_features(real, fake, k=3, batch_size=1000):
    """Precision and recall of generated features against real ones (k-NN manifolds).

    Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for Assessing Generative
    Models", https://arxiv.org/abs/1904.06991. A sample's manifold is approximated by a ball
    around each of its points, reaching to that point's k-th nearest neighbour:

        manifold(Φ) = ∪_{φ ∈ Φ} B(φ, ||φ - NN_k(φ)||)
        precision = share of generated features inside manifold(real)
        recall    = share of real features inside manifold(generated)

    The result depends on the feature space: Kynkäänniemi et al. use VGG-16's fc2 features
    (4096-d); this function takes whatever features it is given, and `precision_recall` uses
    the chosen extractor's (InceptionV3's pool features or the offline judge's), so report the
    extractor with every figure.

    Distances are computed `batch_size` rows at a time, so memory stays `O(batch_size * n)`.

    Args:
        real, fake: features `[n, D]` and `[n', D]`.
        k: the neighbour that sets each ball's radius (3, as in the paper).
        batch_size: rows of the distance matrix held at once.

    Returns:
        `(precision, recall)`, each in `[0, 1]`.
    """
    real, fake = np.asarray(real, "float64"), np.asarray(fake, "float64")
    _check_k(min(len(real), len(fake)), k)
    real_radii, fake_radii = knn_radii(real, k, batch_size), knn_radii(fake, k, batch_size)
    fake_in_real = np.zeros(len(fake), bool)
    real_in_fake = np.zeros(len(real), bool)
    for start in range(0, len(fake), batch_size):
        stop = start + batch_size
        distances = squared_distances(fake[start:stop], real)
        fake_in_real[start:stop] = (distances <= real_radii[None, :]).any(axis=1)
        real_in_fake |= (distances <= fake_radii[start:stop, None]).any(axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


def _check_kid_options(n, subsets, subset_size):
    if not _is_int(subsets) or subsets < 1:
        raise ConfigError(f"KID needs subsets >= 1, got {subsets!r}")
    if not _is_int(subset_size) or not 2 <= subset_size <= n:
        raise ConfigError(f"KID's subset_size must be between 2 and n={n}, got {subset_size!r}")


def _check_splits(n, splits):
    if not _is_int(splits) or not 1 <= splits <= n:
        raise ConfigError(
            f"the Inception Score's splits must be between 1 and n={n}, got {splits!r}"
        )


def _check_k(n, k):
    if not _is_int(k) or not 1 <= k < n:
        raise ConfigError(f"precision/recall needs 1 <= k < n={n}, got k={k!r}")


# === Metrics on images ===


class Evaluator:
    """Scores generated images against a fixed sample of real ones, in one feature space.

    The real images' features (and their mean and covariance) are extracted once, here; each
    call then extracts the generated images' features once and computes every metric asked for
    from them. That is what a callback scoring a GAN every few epochs needs, and what the
    one-shot functions (`fid`, `kid`, `evaluate`, ...) use.

    Args:
        real: real images: an array, `tf.data.Dataset` or image function (see `image_batches`).
        extractor: `"inception"`, `"mnist_judge"` or an extractor (see `get_extractor`).
        n: images per side. Report it with every figure: FID in particular falls as `n` grows.
        batch_size: images per forward pass (default: the extractor's).
        seed: seed of the real subset and of the generated images (a generator function
            taking `seed`, e.g. `gan.generate`, draws the same latents on every call).
        verbose: 1 for progress bars.

    Example:
        >>> evaluator = Evaluator(real_images, "mnist_judge", n=2000)
        >>> evaluator.fid(gan.generate)
        14.2
        >>> evaluator.evaluate(gan.generate, metrics=("fid", "kid"))
        {'n': 2000, 'extractor': 'mnist_judge', 'fid': 14.2, 'kid': 0.012, 'kid_std': 0.001}
    """

    def __init__(self, real, extractor, n=2000, batch_size=None, seed=0, verbose=0):
        self.n = check_sample_count(n)
        self.extractor = get_extractor(extractor)
        self.batch_size = batch_size
        self.seed = seed
        self.verbose = verbose
        self.real = extract_features(
            real, self.extractor, self.n, batch_size, seed, role="real", verbose=verbose
        )
        self.real_mean, self.real_covariance = feature_statistics(self.real.features)

    @property
    def extractor_name(self):
        return getattr(self.extractor, "name", type(self.extractor).__name__)

    def fake_features(self, fake, probabilities=False):
        """`Features` of `n` generated images (same seed on every call)."""
        return extract_features(
            fake,
            self.extractor,
            self.n,
            self.batch_size,
            self.seed,
            probabilities=probabilities,
            role="generated",
            verbose=self.verbose,
        )

    def fid(self, fake):
        """FID of `n` generated images against the real sample (lower is better)."""
        return self.frechet_distance(self.fake_features(fake).features)

    def frechet_distance(self, fake_features):
        """FID from already extracted generated features `[n, D]`."""
        return frechet_distance(
            self.real_mean, self.real_covariance, *feature_statistics(fake_features)
        )

    def evaluate(
        self, fake, metrics=None, kid_subsets=100, kid_subset_size=None, is_splits=10, k=3
    ):
        """Every metric asked for, from one feature extraction of `n` generated images.

        Args:
            fake: generated images: an array, `tf.data.Dataset`, or function such as
                `gan.generate` (see `image_batches`).
            metrics: some of `"fid"`, `"kid"`, `"is"`, `"precision_recall"`; default: all
                (without `"is"` when the extractor has no classifier head).
            kid_subsets: KID's number of subsets.
            kid_subset_size: KID's subset size (default `min(1000, n)`).
            is_splits: the Inception Score's number of splits.
            k: the neighbour defining precision/recall's manifolds.

        Returns:
            A dict with `n`, `extractor` and, for the metrics asked for, `fid`; `kid` and
            `kid_std`; `is` and `is_std`; `precision` and `recall`.
        """
        metrics = resolve_metrics(metrics, self.extractor)
        kid_subset_size = check_metric_options(
            self.n, metrics, kid_subsets, kid_subset_size, is_splits, k
        )
        fake = self.fake_features(fake, probabilities="is" in metrics)
        results = {"n": self.n, "extractor": self.extractor_name}
        if "fid" in metrics:
            results["fid"] = self.frechet_distance(fake.features)
        if "kid" in metrics:
            results["kid"], results["kid_std"] = kid_from_features(
                self.real.features, fake.features, kid_subsets, kid_subset_size, self.seed
            )
        if "is" in metrics:
            results["is"], results["is_std"] = inception_score_from_probabilities(
                fake.probabilities, is_splits, self.seed
            )
        if "precision_recall" in metrics:
            results["precision"], results["recall"] = precision_recall_from_features(
                self.real.features, fake.features, k
            )
        return results


def resolve_metrics(metrics, extractor):
    """Validate metric names; None means every metric the extractor supports."""
    if metrics is None:
        return tuple(m for m in METRICS if m != "is" or has_classifier(extractor))
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metrics {unknown}; choose from: {', '.join(METRICS)}")
    if "is" in metrics and not has_classifier(extractor):
        raise ConfigError(
            "the Inception Score needs an extractor with a classifier head (classify)"
        )
    return metrics


def check_metric_options(n, metrics, kid_subsets, kid_subset_size, is_splits, k):
    """Validate the metrics' options against `n`; returns KID's subset size."""
    if kid_subset_size is None:
        kid_subset_size = min(1000, n)
    if "kid" in metrics:
        _check_kid_options(n, kid_subsets, kid_subset_size)
    if "is" in metrics:
        _check_splits(n, is_splits)
    if "precision_recall" in metrics:
        _check_k(n, k)
    return kid_subset_size


def _check_sources(n, **sources):
    """Fail before any extraction when an array holds fewer than `n` images."""
    for role, source in sources.items():
        available = available_images(source)
        if available is not None and n > available:
            raise ConfigError(f"n={n} but the {role} images hold only {available}")


def evaluate(
    real,
    fake,
    extractor,
    n=2000,
    metrics=None,
    kid_subsets=100,
    kid_subset_size=None,
    is_splits=10,
    k=3,
    batch_size=None,
    seed=0,
    verbose=0,
):
    """FID, KID, IS, precision and recall from one feature extraction of each side.

    Args:
        real: real images (array, `tf.data.Dataset` or image function, see `image_batches`).
        fake: generated images, the same kinds (e.g. `gan.generate`).
        extractor: `"inception"`, `"mnist_judge"` or an extractor (see `get_extractor`).
        n: images per side.
        metrics, kid_subsets, kid_subset_size, is_splits, k: see `Evaluator.evaluate`.
        batch_size: images per forward pass (default: the extractor's).
        seed: seed of the samples.
        verbose: 1 for progress bars.

    Returns:
        A dict: `n`, `extractor`, `fid`, `kid`, `kid_std`, `is`, `is_std`, `precision`,
        `recall` (those asked for).

    Example:
        >>> evaluate(real_images, gan.generate, "mnist_judge", n=2000)
        {'n': 2000, 'extractor': 'mnist_judge', 'fid': 14.2, 'kid': 0.012, ...}
    """
    n = check_sample_count(n)
    extractor = get_extractor(extractor)
    metrics = resolve_metrics(metrics, extractor)
    check_metric_options(n, metrics, kid_subsets, kid_subset_size, is_splits, k)
    _check_sources(n, real=real, generated=fake)
    evaluator = Evaluator(real, extractor, n, batch_size, seed, verbose)
    return evaluator.evaluate(fake, metrics, kid_subsets, kid_subset_size, is_splits, k)


def fid(real, fake, extractor, n=2000, batch_size=None, seed=0):
    """Fréchet Inception Distance between `n` real and `n` generated images (lower is better).

    Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", https://arxiv.org/abs/1706.08500. See `frechet_distance` for the equation.
    Call it "FID" only with the `"inception"` extractor; with the offline judge it is the same
    Fréchet distance in the judge's feature space.
    """
    return evaluate(real, fake, extractor, n, ("fid",), batch_size=batch_size, seed=seed)["fid"]


def kid(real, fake, extractor, n=2000, subsets=100, subset_size=None, batch_size=None, seed=0):
    """Kernel Inception Distance: `(mean, std)` of the unbiased MMD² over subsets.

    See `kid_from_features`. `subset_size` defaults to `min(1000, n)`.
    """
    results = evaluate(
        real, fake, extractor, n, ("kid",), subsets, subset_size, batch_size=batch_size, seed=seed
    )
    return results["kid"], results["kid_std"]


def inception_score(fake, extractor, n=2000, splits=10, batch_size=None, seed=0):
    """Inception Score `(mean, std)` over `splits` of `n` generated images (higher is better).

    See `inception_score_from_probabilities`. Needs an extractor with a classifier head.
    """
    n = check_sample_count(n)
    extractor = get_extractor(extractor)
    resolve_metrics(("is",), extractor)
    _check_splits(n, splits)
    _check_sources(n, generated=fake)
    probabilities = extract_features(
        fake, extractor, n, batch_size, seed, probabilities=True, role="generated"
    ).probabilities
    return inception_score_from_probabilities(probabilities, splits, seed)


def precision_recall(real, fake, extractor, n=2000, k=3, batch_size=None, seed=0):
    """Precision and recall `(precision, recall)` of `n` generated images against `n` real ones.

    Computed in `extractor`'s feature space (the paper uses VGG-16's fc2 features); see
    `precision_recall_from_features`.
    """
    results = evaluate(
        real, fake, extractor, n, ("precision_recall",), k=k, batch_size=batch_size, seed=seed
    )
    return results["precision"], results["recall"]


# === Leaderboard: many generators, one yardstick ===

LEADERBOARD_METRICS = ("fid", "kid", "precision_recall")


@dataclasses.dataclass(frozen=True)
class LeaderboardRow:
    """One generator's line on a leaderboard (see `leaderboard`).

    Attributes:
        rank: its place, 1 for the lowest Fréchet distance.
        name: what the row is called (e.g. a learner's export folder).
        kind: the kind of model (e.g. `"DCGAN"`), or `"?"` when unknown.
        fid: the Fréchet distance in the extractor's space (FD-judge with the offline judge,
            FID with InceptionV3); lower is better.
        kid: KID, the mean unbiased MMD² over subsets; lower is better.
        kid_std: its standard deviation over the subsets.
        precision: the share of generated images on the real images' manifold.
        recall: the share of real images on the generated images' manifold.
        n: images per side.
        extractor: the feature space's name.
    """

    rank: int
    name: str
    kind: str
    fid: float
    kid: float
    kid_std: float
    precision: float
    recall: float
    n: int
    extractor: str


def leaderboard(entries, real, extractor="mnist_judge", n=2000, seed=0, batch_size=None, verbose=0):
    """Score several generators in exactly the same way and rank them by Fréchet distance.

    One `Evaluator` scores every entry: against the same `n` real images (their features
    extracted once), with `n` generated images per entry drawn under the same seed, in the same
    extractor's space. Only then are the figures comparable: FID moves with `n` and with the
    feature space.

    Args:
        entries: `(name, kind, fake)` triples: the row's name, the kind of model, and its
            generated images (any source `image_batches` takes: `gan.generate`, a uint8 or
            float array, a dataset).
        real: the real images (array, `tf.data.Dataset` or image function).
        extractor: `"mnist_judge"`, `"inception"` or an extractor (see `get_extractor`).
        n: images per side, the same for every entry.
        seed: seed of the real subset and of every entry's generated images.
        batch_size: images per forward pass (default: the extractor's).
        verbose: 1 prints a line as each entry is scored (`utils.notice`, on stderr).

    Returns:
        A list of `LeaderboardRow`, best first (lowest Fréchet distance; ties by name).

    Raises:
        ConfigError: no entries, two entries with one name, or an `n` an array cannot give.

    Example:
        >>> rows = leaderboard([("trained", "DCGAN", gan.generate),
        ...                     ("untrained", "DCGAN", untrained.generate)], real_images, n=2000)
        >>> print(format_leaderboard(rows))
    """
    entries = [tuple(entry) for entry in entries]
    if not entries:
        raise ConfigError("a leaderboard needs at least one generator to score")
    names = [str(name) for name, _, _ in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"two leaderboard entries are called {', '.join(repeated)}; give each its own name"
        )
    n = check_sample_count(n)
    extractor = get_extractor(extractor)
    kid_subset_size = check_metric_options(n, LEADERBOARD_METRICS, 100, None, 10, 3)
    generated = {f"generated ({name})": fake for name, (_, _, fake) in zip(names, entries)}
    _check_sources(n, real=real, **generated)
    evaluator = Evaluator(real, extractor, n, batch_size, seed)
    scored = []
    for index, (name, (_, kind, fake)) in enumerate(zip(names, entries), start=1):
        if verbose:
            notice(f"scoring {index}/{len(entries)}: {name} ({n} images)")
        results = evaluator.evaluate(fake, LEADERBOARD_METRICS, kid_subset_size=kid_subset_size)
        scored.append((name, str(kind or "?"), results))
    scored.sort(key=lambda item: (item[2]["fid"], item[0]))
    return [
        LeaderboardRow(
            rank=rank, name=name, kind=kind, fid=float(results["fid"]), kid=float(results["kid"]),
            kid_std=float(results["kid_std"]), precision=float(results["precision"]),
            recall=float(results["recall"]), n=results["n"], extractor=results["extractor"],
        )
        for rank, (name, kind, results) in enumerate(scored, start=1)
    ]


def format_leaderboard(rows):
    """The leaderboard as a text table, one row per generator in the order given.

    The Fréchet distance's column is called FD-judge with the offline judge and FID with
    InceptionV3 (the same formula in different feature spaces); the first line names `n` and
    the extractor, without which the figures mean nothing.

    Args:
        rows: `LeaderboardRow`s, as `leaderboard` returns them.

    Returns:
        The table as one string.
    """
    if not rows:
        return "(no generators)"
    extractor = rows[0].extractor
    distance = "FID" if extractor == "inception" else "FD-judge"
    header = ("#", "name", "model", distance, "KID", "precision", "recall")
    lines = [
        (str(row.rank), row.name, row.kind, f"{row.fid:.3f}", f"{row.kid:.4f} ± {row.kid_std:.4f}",
         f"{row.precision:.3f}", f"{row.recall:.3f}")
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def line(cells):
        # Names and kinds read best left-aligned, numbers right-aligned.
        return "  ".join(
            cell.ljust(width) if i in (1, 2) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    title = (
        f"{len(rows)} generators, n={rows[0].n} images per side, extractor {extractor}, best first"
    )
    return "\n".join([title, line(header), *map(line, lines)])
