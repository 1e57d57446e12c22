"""FIDCallback: scores every N epochs on a fixed sample, into History, CSVLogger and TensorBoard."""

import csv
import glob
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import callbacks, datasets
from kerasgan.errors import ConfigError
from kerasgan.models.dcgan import DCGAN


@pytest.fixture(scope="module")
def real_digits():
    # A random 300: the embedded sample is ordered by class, so its first 300 are all zeros.
    digits = datasets.load_arrays("mnist")[0]
    return digits[np.random.default_rng(0).choice(len(digits), 300, replace=False)]


def tiny_gan(seed=0):
    keras.utils.set_random_seed(seed)
    gan = DCGAN.from_preset("tiny", seed=seed)
    gan.compile()
    return gan


def batches(real, batch=32):
    images = real[:64].astype("float32")[..., None] / 127.5 - 1
    return tf.data.Dataset.from_tensor_slices(images).batch(batch)


class CountingExtractor:
    """Any callable is an extractor: raw pixels as features, counting how often it runs."""

    def __init__(self):
        self.images_seen = 0

    def __call__(self, images):
        self.images_seen += len(images)
        return np.asarray(images).reshape(len(images), -1)[:, ::16]


def test_logs_fid_every_n_epochs_and_after_the_last(real_digits, tmp_path):
    gan = tiny_gan()
    fid = callbacks.FIDCallback(real_digits, "mnist_judge", n=100, every=2, kid=True)
    csv_path = str(tmp_path / "history.csv")
    history = gan.fit(
        batches(real_digits), epochs=3, verbose=0,
        callbacks=[fid, keras.callbacks.CSVLogger(csv_path)],
    ).history
    assert len(history["fid"]) == len(history["kid"]) == len(history["g_loss"]) == 3
    assert math.isnan(history["fid"][0])  # epoch 1: not due
    assert np.isfinite(history["fid"][1]) and np.isfinite(history["fid"][2])  # epoch 2, last
    assert history["fid"][1] > 0 and np.isfinite(history["kid_std"][2])
    assert sorted(fid.results) == [2, 3]
    assert fid.results[3]["n"] == 100 and fid.results[3]["extractor"] == "mnist_judge"
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    assert float(rows[1]["fid"]) == pytest.approx(history["fid"][1])


def test_real_features_are_extracted_once_and_figures_are_reproducible(real_digits):
    extractor = CountingExtractor()
    gan = tiny_gan()
    fid = callbacks.FIDCallback(real_digits, extractor, n=50, every=1)
    gan.fit(batches(real_digits), epochs=2, verbose=0, callbacks=[fid])
    # 50 real once, then 50 generated per epoch
    assert extractor.images_seen == 50 + 2 * 50
    # Same generator, same seed: the same figure (fixed latents, not fresh noise each time).
    assert fid.evaluate()["fid"] == pytest.approx(fid.evaluate()["fid"], rel=1e-9)
    assert fid.evaluate()["fid"] == pytest.approx(fid.results[2]["fid"], rel=1e-6)
    # A second fit reuses the evaluator, so the real images are not extracted again.
    seen = extractor.images_seen
    gan.fit(batches(real_digits), epochs=1, verbose=0, callbacks=[fid])
    assert extractor.images_seen == seen + 50


def test_a_custom_generate_function_and_tensorboard_scalars(real_digits, tmp_path):
    gan = tiny_gan()
    calls = []

    def generate(count, seed=None):
        calls.append(seed)
        return gan.generate(count, seed=seed)

    fid = callbacks.FIDCallback(
        real_digits, "mnist_judge", n=60, every=1, generate=generate, seed=7, log_dir=str(tmp_path)
    )
    gan.fit(batches(real_digits), epochs=2, verbose=0, callbacks=[fid])
    assert calls and set(calls) == {7}
    events = glob.glob(str(tmp_path / "quality" / "events.out.tfevents.*"))
    assert events
    steps = {}
    for event_file in events:
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                if value.tag == "fid":
                    steps[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(steps) == [1, 2]
    assert steps[2] == pytest.approx(fid.results[2]["fid"], rel=1e-5)


def test_verbose_prints_one_line_per_evaluation(real_digits, capsys):
    gan = tiny_gan()
    fid = callbacks.FIDCallback(real_digits, "mnist_judge", n=40, every=5, verbose=1)
    gan.fit(batches(real_digits), epochs=1, verbose=0, callbacks=[fid])  # the last epoch is due
    err = capsys.readouterr().err
    assert err.count("kerasgan: epoch 1: fid") == 1 and "n=40" in err


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_bad_every_is_a_clear_error(every, real_digits):
    with pytest.raises(ConfigError, match="every"):
        callbacks.FIDCallback(real_digits, every=every)


def test_too_few_real_images_fail_at_train_begin(real_digits):
    gan = tiny_gan()
    fid = callbacks.FIDCallback(real_digits[:10], "mnist_judge", n=50)
    with pytest.raises(ConfigError, match="hold only 10"):
        gan.fit(batches(real_digits), epochs=1, verbose=0, callbacks=[fid])
