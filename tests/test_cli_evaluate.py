"""`python -m kerasgan evaluate`: a table of FID, KID, IS, precision and recall from an export."""

import argparse

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import cli
from tests.cli_helpers import assert_one_clear_line, kerasgan_process


@pytest.fixture(scope="module")
def dcgan_export(tmp_path_factory):
    import keras

    from kerasgan.export import export_model
    from kerasgan.models import DCGAN

    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("models")
    export_model(DCGAN.from_preset("tiny", seed=0), str(base), name="dcgan")
    return str(base / "dcgan")


def test_evaluate_prints_the_table(dcgan_export):
    result = kerasgan_process("evaluate", dcgan_export, "--data", "embedded", "--n", "200")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "against 200 real images of mnist (embedded)" in lines[0]
    table = dict(line.split(None, 1) for line in lines[1:])
    assert list(table) == ["FID", "KID", "IS", "precision", "recall", "n", "extractor"]
    assert float(table["FID"]) > 0
    assert "±" in table["KID"] and "±" in table["IS"]
    assert 0 <= float(table["precision"]) <= 1 and 0 <= float(table["recall"]) <= 1
    assert table["n"] == "200" and table["extractor"] == "mnist_judge"


def test_the_same_seed_gives_the_same_figures(dcgan_export, kerasgan):
    first = kerasgan("evaluate", dcgan_export, "--data", "embedded", "--n", "100", "--seed", "3")
    second = kerasgan("evaluate", dcgan_export, "--data", "embedded", "--n", "100", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    other = kerasgan("evaluate", dcgan_export, "--data", "embedded", "--n", "100", "--seed", "4")
    assert other.stdout != first.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--n", "1"], "n must be an integer >= 2"),
        (["--n", "6000"], "more than the 5000 real images"),
        (["--extractor", "vgg"], "unknown --extractor 'vgg'"),
        (["--extractor", "inception"], "offline"),
        (["--dataset", "no_such_dataset"], "no_such_dataset"),
    ],
)
def test_bad_requests_are_one_clear_line(args, fragment, dcgan_export, kerasgan):
    result = kerasgan("evaluate", dcgan_export, "--data", "embedded", *args)
    assert_one_clear_line(result, fragment)


def test_a_missing_export_is_one_clear_line(tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("evaluate", str(tmp_path / "none"), "--data", "embedded"), "no SavedModel")


def test_an_export_without_latent_is_refused(tmp_path, kerasgan):
    class Translator(tf.Module):  # a CycleGAN-like export: images in, images out
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="images")])
        def translate(self, images):
            return {"images": tf.cast((images + 1) * 127.5, tf.uint8)}

    module = Translator()
    tf.saved_model.save(module, str(tmp_path / "cyclegan" / "1"), signatures={"serving_default": module.translate})
    assert_one_clear_line(
        kerasgan("evaluate", str(tmp_path / "cyclegan"), "--data", "embedded"), "does not draw samples from a latent"
    )


def test_conditional_requests_spread_labels_evenly():
    requests = []

    def signature(latent, labels):
        requests.append(len(latent))
        # the label as the image, so we can count which classes were asked for
        return {"images": tf.constant(np.broadcast_to(labels[:, None, None, None], (len(labels), 2, 2, 1)).astype("uint8"))}

    specs = {"latent": tf.TensorSpec([None, 8], tf.float32), "labels": tf.TensorSpec([None], tf.int32)}
    images = cli.generated_images(signature, specs, n=1003, seed=0, num_classes=10, batch_size=250)
    assert len(images) == 1003 and requests == [250, 250, 250, 250, 3]
    counts = np.bincount(images[:, 0, 0, 0], minlength=10)
    assert counts.min() >= 100 and counts.max() <= 101
    # seeded: the same request twice
    again = cli.generated_images(signature, specs, n=1003, seed=0, num_classes=10, batch_size=250)
    np.testing.assert_array_equal(images, again)


def test_format_results_marks_missing_metrics():
    text = cli.format_results({"n": 5, "extractor": "x", "fid": 1.5, "precision": 0.5, "recall": 0.25})
    assert "IS         n/a" in text and "FID        1.500" in text and "KID        n/a" in text


def test_the_command_is_listed():
    parser = cli.build_parser()
    args = parser.parse_args(["evaluate", "saved_models/dcgan"])
    assert args.handler is cli.run_evaluate and args.n == 2000 and args.extractor == "mnist_judge"
    assert isinstance(args, argparse.Namespace)
