"""Evaluation metrics: properties each metric must have, on the embedded digits and on
constructed point clouds, plus the streaming sources and the errors users see."""

import os
import time

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import datasets, evaluation
from kerasgan.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits():
    """The embedded MNIST sample as uint8 [5000, 28, 28], in a seeded random order."""
    images, _ = datasets.load_arrays("mnist", seed=0)
    return np.asarray(images, "uint8").reshape(-1, 28, 28)


@pytest.fixture(scope="module")
def judge():
    return evaluation.OfflineJudge.load()


class OneHotClassifier:
    """A perfect classifier for constructed images whose every pixel encodes the class
    (uint8 value 20 * class): features are the mean pixel, probabilities one-hot."""

    num_classes = 10

    def _classes(self, images):
        return np.rint((images.mean(axis=(1, 2, 3)) + 1) * 127.5 / 20).astype(int)

    def __call__(self, images):
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True)

    def classify(self, images):
        return np.eye(self.num_classes)[self._classes(images)]


def class_images(classes):
    return np.broadcast_to(20 * np.asarray(classes, "uint8")[:, None, None], (len(classes), 4, 4))


def box_blur(images, times):
    images = images.astype("float32") / 127.5 - 1
    for _ in range(times):
        padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="edge")
        images = sum(padded[:, i : i + 28, j : j + 28] for i in range(3) for j in range(3)) / 9
    return images


# === Fréchet distance ===


def test_frechet_distance_of_one_dimensional_gaussians():
    # N(0, 1) vs N(3, 4): (0 - 3)² + 1 + 4 - 2 * sqrt(1 * 4) = 10.
    assert evaluation.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0)


def test_frechet_distance_of_diagonal_gaussians():
    # Diagonal covariances: Σ_d (μ1 - μ2)² + (σ1 - σ2)²  =  (1 + 4) + ((1 - 3)² + (2 - 1)²) = 10.
    distance = evaluation.frechet_distance(
        [0.0, 0.0], np.diag([1.0, 4.0]), [1.0, 2.0], np.diag([9.0, 1.0])
    )
    assert distance == pytest.approx(10.0)


def test_frechet_distance_matches_scipy_sqrtm_and_survives_singular_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) * 2 + 1
    mu1, s1 = evaluation.feature_statistics(a)
    mu2, s2 = evaluation.feature_statistics(b)
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert evaluation.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)
    # Fewer samples than dimensions: singular covariances, still a finite real number.
    mu3, s3 = evaluation.feature_statistics(rng.normal(size=(5, 32)))
    mu4, s4 = evaluation.feature_statistics(rng.normal(size=(5, 32)))
    assert np.isfinite(evaluation.frechet_distance(mu3, s3, mu4, s4))


def test_fid_of_a_sample_with_itself_is_zero(digits, judge):
    assert evaluation.fid(digits, digits, judge, n=1000) == pytest.approx(0.0, abs=1e-6)


def test_fid_grows_as_images_are_corrupted(digits, judge):
    evaluator = evaluation.Evaluator(digits[:1000], judge, n=1000)
    clean = digits[1000:2000].astype("float32") / 127.5 - 1
    noise = np.random.default_rng(0).standard_normal(clean.shape).astype("float32")
    noisy = [evaluator.fid(np.clip(clean + s * noise, -1, 1)) for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    blurred = [evaluator.fid(box_blur(digits[1000:2000], t)) for t in (0, 1, 2, 4, 8)]
    assert noisy == sorted(noisy) and noisy[-1] > 50 * noisy[0], noisy
    assert blurred == sorted(blurred) and blurred[-1] > 50 * blurred[0], blurred


# === KID, IS, precision/recall ===


def test_kid_is_near_zero_for_two_samples_of_the_same_data(digits, judge):
    mean, std = evaluation.kid(digits[:2000], digits[2000:4000], judge, n=2000, subsets=50)
    noise = np.random.default_rng(0).standard_normal((2000, 28, 28))
    noisy = np.clip(digits[2000:4000] / 127.5 - 1 + 0.2 * noise, -1, 1)
    noisy_mean, _ = evaluation.kid(digits[:2000], noisy, judge, n=2000, subsets=50)
    print(f"KID same data: {mean:.3f} ± {std:.3f}; noisy: {noisy_mean:.3f}")
    assert std > 0 and abs(mean) < 2 * std
    assert noisy_mean > 10 * std


def test_kid_reads_subsets_from_whole_kernel_matrices_exactly():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 0.5
    mean, std = evaluation.kid_from_features(real, fake, subsets=7, subset_size=20, batch_size=16)
    draws = np.random.default_rng(0)
    values = []
    for _ in range(7):
        x = real[draws.choice(60, 20, replace=False)]
        values.append(evaluation.mmd2_unbiased(x, fake[draws.choice(50, 20, replace=False)]))
    assert (mean, std) == pytest.approx((np.mean(values), np.std(values)))


def test_inception_score_counts_confident_classes():
    uniform = class_images(np.arange(1000) % 10)
    score, std = evaluation.inception_score(uniform, OneHotClassifier(), n=1000, splits=5)
    assert score == pytest.approx(10.0, rel=0.05) and std < 0.5
    # Exactly balanced parts give exactly K.
    one_hot = np.eye(10)[np.arange(100) % 10]
    assert evaluation.inception_score_from_probabilities(one_hot, splits=1) == pytest.approx(
        (10, 0)
    )
    single = class_images(np.full(500, 3))
    assert evaluation.inception_score(single, OneHotClassifier(), n=500) == pytest.approx((1, 0))


def test_judge_classifies_digits_and_scores_them_high(digits, judge):
    assert judge.feature_dim == 128 and judge.num_classes == 10
    score, _ = evaluation.inception_score(digits, judge, n=2000)
    assert 9.0 < score <= 10.0


def clusters(rng, centres, per_cluster):
    return np.concatenate([c + rng.normal(size=(per_cluster, centres.shape[1])) for c in centres])


def test_precision_recall_on_point_clouds():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 4)) * 50  # ten well separated modes
    real = clusters(rng, centres, 100)
    same = evaluation.precision_recall_from_features(real, clusters(rng, centres, 100))
    one_mode = evaluation.precision_recall_from_features(real, clusters(rng, centres[:1], 100))
    copies = evaluation.precision_recall_from_features(
        real, real[:100] + 0.01 * rng.normal(size=(100, 4))
    )
    far = evaluation.precision_recall_from_features(real, clusters(rng, centres + 500, 100))
    assert same[0] > 0.85 and same[1] > 0.85
    # Mode dropping: what is drawn is fine (precision high), most of the data is missed.
    assert one_mode[0] > 0.85 and one_mode[1] < 0.15
    assert copies[0] == 1.0 and copies[1] == pytest.approx(0.1, abs=0.02)
    assert far == (0.0, 0.0)


def test_precision_recall_batching_does_not_change_the_result():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 4)), rng.normal(size=(200, 4)) * 1.5
    whole = evaluation.precision_recall_from_features(real, fake, k=3, batch_size=1000)
    batched = evaluation.precision_recall_from_features(real, fake, k=3, batch_size=7)
    assert whole == batched and 0 < whole[0] < 1 and 0 < whole[1] < 1


# === evaluate: one extraction per side ===


class CountingJudge(evaluation.OfflineJudge):
    def __init__(self, judge):
        super().__init__(judge.model, batch_size=250)
        self.images_seen = 0

    def extract(self, images, probabilities=True):
        self.images_seen += len(images)
        return super().extract(images, probabilities)


def test_evaluate_extracts_each_image_once_and_matches_the_single_metrics(digits, judge):
    counting = CountingJudge(judge)
    results = evaluation.evaluate(digits[:1000], digits[1000:2000], counting, n=500, seed=3)
    assert counting.images_seen == 1000
    assert set(results) == {
        "n",
        "extractor",
        "fid",
        "kid",
        "kid_std",
        "is",
        "is_std",
        "precision",
        "recall",
    }
    assert results["n"] == 500 and results["extractor"] == "mnist_judge"
    assert results["fid"] == evaluation.fid(digits[:1000], digits[1000:2000], judge, 500, seed=3)
    kid = evaluation.kid(digits[:1000], digits[1000:2000], judge, 500, seed=3)
    assert (results["kid"], results["kid_std"]) == pytest.approx(kid)
    assert evaluation.evaluate(digits[:1000], digits[1000:2000], judge, n=500, seed=3) == results
    other_seed = evaluation.evaluate(digits[:1000], digits[1000:2000], judge, n=500, seed=4)
    assert other_seed["fid"] != results["fid"]


def test_evaluate_without_a_classifier_head_skips_the_inception_score(digits):
    def mean_pixel(images):
        return images.reshape(len(images), -1)[:, :8]

    results = evaluation.evaluate(digits[:200], digits[200:400], mean_pixel, n=100)
    assert "is" not in results and "fid" in results and "precision" in results


# === Sources ===


def test_uint8_float_dataset_and_function_sources_give_the_same_features(digits, judge):
    images = digits[:300]
    reference = evaluation.extract_features(images, judge, n=300).features
    chunks = iter(np.array_split(images, 10))

    def serve(count):  # gives fewer images than asked for: the stream keeps calling
        return next(chunks)

    sources = {
        "float": images.astype("float32") / 127.5 - 1,
        "unbatched tuples": tf.data.Dataset.from_tensor_slices((images[..., None], np.zeros(300))),
        "batched dicts": tf.data.Dataset.from_tensor_slices({"image": images}).batch(64),
        "function": serve,
    }
    for name, source in sources.items():
        features = evaluation.extract_features(source, judge, n=300, batch_size=100).features
        np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-4, err_msg=name)


def test_a_generator_function_with_a_seed_is_reproducible(judge):
    calls = []

    def generate(n, seed=None):
        calls.append(seed)
        return np.random.default_rng(seed).uniform(-1, 1, (n, 28, 28, 1)).astype("float32")

    first = evaluation.extract_features(generate, judge, n=250, batch_size=100, seed=7)
    second = evaluation.extract_features(generate, judge, n=250, batch_size=100, seed=7)
    assert calls == [7, 8, 9, 7, 8, 9]
    np.testing.assert_array_equal(first.features, second.features)


def test_rgb_images_of_another_size_are_adapted(digits, judge):
    rgb = np.repeat(digits[:64, :, :, None], 3, axis=-1)
    large = tf.image.resize(rgb, (56, 56), method="nearest").numpy()
    gray = judge(digits[:64])
    np.testing.assert_allclose(judge(rgb), gray, atol=1e-2)  # luma weights sum to 0.9999
    assert judge(large).shape == (64, 128)


def test_extractors_stay_float32_under_mixed_precision():
    import keras

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    judge = evaluation.OfflineJudge.load()
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    assert all(layer.compute_dtype == "float32" for layer in judge.model.layers)
    assert judge(np.zeros((2, 28, 28), "uint8")).dtype == np.float32


def test_inception_pipeline_shapes_with_random_weights():
    extractor = evaluation.InceptionFeatures(weights=None, batch_size=4)
    out = extractor.extract(np.zeros((3, 28, 28), "uint8"))
    assert out.features.shape == (3, 2048) and out.probabilities.shape == (3, 1000)
    np.testing.assert_allclose(out.probabilities.sum(axis=1), 1.0, rtol=1e-5)


# === Errors ===


def test_inception_offline_fails_at_once_with_one_clear_line():
    start = time.perf_counter()
    with pytest.raises(DataError, match="offline") as error:
        evaluation.get_extractor("inception")
    assert time.perf_counter() - start < 2.0
    message = str(error.value)
    assert "\n" not in message and "mnist_judge" in message


def test_bad_requests_are_config_errors(digits, judge):
    with pytest.raises(ConfigError, match="hold only 100"):
        evaluation.fid(digits[:100], digits, judge, n=200)
    with pytest.raises(ConfigError, match="generated images hold only 50"):
        evaluation.evaluate(digits, digits[:50], judge, n=100)
    with pytest.raises(ConfigError, match="n must be an integer >= 2"):
        evaluation.fid(digits, digits, judge, n=1)
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        evaluation.get_extractor("vgg")
    with pytest.raises(ConfigError, match="unknown metrics"):
        evaluation.evaluate(digits, digits, judge, n=100, metrics=["fidd"])
    with pytest.raises(ConfigError, match="subset_size"):
        evaluation.kid(digits, digits, judge, n=100, subset_size=500)
    with pytest.raises(ConfigError, match="k < n"):
        evaluation.precision_recall(digits, digits, judge, n=3, k=3)
    with pytest.raises(ConfigError, match="classifier head"):
        evaluation.inception_score(digits, lambda images: images[:, 0, 0], n=10)
    with pytest.raises(ConfigError, match="ran out after 64 images"):
        evaluation.fid(tf.data.Dataset.from_tensor_slices(digits[:64]), digits, judge, n=100)


def test_images_that_are_not_images_are_data_errors(judge):
    with pytest.raises(DataError, match=r"must be in \[-1, 1\]"):
        evaluation.extract_features(np.full((4, 28, 28), 200.0), judge, n=4)
    with pytest.raises(DataError, match="1 or 3 channels"):
        evaluation.extract_features(np.zeros((4, 28, 28, 2), "uint8"), judge, n=4)
    with pytest.raises(DataError, match="0..255"):
        evaluation.extract_features(np.full((4, 28, 28), 300), judge, n=4)
    with pytest.raises(DataError, match="NaN"):
        evaluation.extract_features(np.full((4, 28, 28), np.nan), judge, n=4)
    with pytest.raises(DataError, match="returned no images"):
        evaluation.extract_features(lambda count: np.zeros((0, 28, 28)), judge, n=4)


def test_precision_recall_say_they_are_computed_in_the_extractors_feature_space():
    """Kynkäänniemi et al. use VGG-16 fc2 features; ours come from the chosen extractor, and the
    package and notebook 09 must say so (figures are not comparable with the paper's)."""
    import json
    import pathlib

    from kerasgan import evaluation as ev

    for text in (ev.__doc__, ev.precision_recall_from_features.__doc__, ev.precision_recall.__doc__):
        assert "VGG-16" in text and "extractor" in text
    notebook = pathlib.Path(__file__).parents[1] / "notebooks" / "09_evaluating_gans.ipynb"
    prose = "".join(
        "".join(cell["source"])
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "markdown"
    )
    assert "VGG-16's fc2" in prose and "extractor's feature space" in prose


# === Ink: coloured digits as strokes the judge can read ===


def test_ink_recovers_the_mnist_digit_under_any_colours():
    colored, _ = datasets.colored_mnist_arrays()
    mnist = np.load(os.path.join(datasets.data_dir(), "mnist_sample.npz"))["images"][:64]
    ink = evaluation.ink_images(colored[:64])
    assert ink.shape == (64, 28, 28, 1) and ink.dtype == np.float32
    np.testing.assert_allclose(ink[..., 0], mnist / 127.5 - 1.0, atol=0.03)


def test_ink_ignores_the_colour_pair_and_treats_a_flat_image_as_background():
    ink = np.zeros((1, 8, 8), "float32")
    ink[0, 3:5, 2:6] = 1.0
    red_on_blue = np.array([0.0, 0.0, 1.0]) + ink[..., None] * (np.array([1.0, 0.0, 0.0]) - [0.0, 0.0, 1.0])
    green_on_grey = np.array([0.5, 0.5, 0.5]) + ink[..., None] * (np.array([0.0, 1.0, 0.0]) - 0.5)
    both = np.concatenate([red_on_blue, green_on_grey, np.full((1, 8, 8, 3), 0.3)]) * 2 - 1
    got = evaluation.ink_images(both.astype("float32"))
    np.testing.assert_allclose(got[0], got[1], atol=1e-6)
    np.testing.assert_allclose(got[0, ..., 0], 2 * ink[0] - 1, atol=1e-6)
    assert np.all(got[2] == -1.0)


def test_ink_refuses_grayscale_images():
    with pytest.raises(DataError, match="RGB"):
        evaluation.ink_images(np.zeros((2, 8, 8, 1), "uint8"))


# === Judging a trained generator: a sample of the real images, coloured digits by their ink ===


def test_judged_sources_take_a_sample_of_every_class_not_the_files_first_images():
    real = datasets.load("mnist", source="embedded", with_labels=True)
    assert {int(label) for _, label in real.take(500).as_numpy_iterator()} == {0}  # the trap

    def generate(count, seed=None):
        return np.zeros((count, 28, 28, 1), "float32")

    sampled, fake = evaluation.judged_sources(real, generate, seed=0)
    first = [int(label) for _, label in sampled.take(500).as_numpy_iterator()]
    assert set(first) == set(range(10)) and fake is generate
    again, _ = evaluation.judged_sources(real, generate, seed=0)
    assert [int(label) for _, label in again.take(500).as_numpy_iterator()] == first


def test_judged_sources_read_coloured_digits_by_their_ink_on_both_sides():
    colored, _ = datasets.colored_mnist_arrays()
    real = datasets.from_arrays(colored[:40])

    def generate(count, seed=None):
        return colored[:count].astype("float32") / 127.5 - 1.0

    ink_real, ink_fake = evaluation.judged_sources(real, generate, ink=True, seed=0)
    assert ink_real.shape == (40, 28, 28, 1) and ink_fake(3).shape == (3, 28, 28, 1)
    np.testing.assert_allclose(ink_fake(3), evaluation.ink_images(colored[:3]), atol=1e-5)
    assert sorted(ink_real.mean(axis=(1, 2, 3))) == pytest.approx(
        sorted(evaluation.ink_images(colored[:40]).mean(axis=(1, 2, 3))), abs=1e-5
    )
