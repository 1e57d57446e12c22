import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import cli
from kerasgan.errors import ConfigError, DataError
from kerasgan.export import METADATA_FILE, export_model
from kerasgan.models.conditional_gan import (
    ConditionalGAN,
    build_discriminator,
    build_generator,
    class_grid_labels,
    labelled_batch,
    latent_and_label,
    projection_logits,
)
from kerasgan.plotting import image_grid, to_uint8
from kerasgan.recipes import get_recipe
from tests.models.gan_battery import GANBattery, train_and_resume
from tests.models.test_gan import assert_no_hooks


class TestConditionalGAN(GANBattery):
    image_shape = (28, 28, 1)

    def build_gan(self, seed=0):
        return ConditionalGAN.from_preset("tiny", image_size=28, channels=1, seed=seed)

    def batch(self, n, seed=0):
        rng = np.random.default_rng(seed)
        images = rng.uniform(-1, 1, (n, *self.image_shape)).astype("float32")
        return images, rng.integers(0, 10, n).astype("int32")

    def serving_inputs(self, gan, n, seed=0):
        labels = np.random.default_rng(seed).integers(0, 10, n).astype("int32")
        return {"latent": gan.latent_batch(n, gan.latent_dim, seed), "labels": labels}

    def expected_images(self, gan, inputs):
        return to_uint8(gan.generate_from_latent(inputs["latent"], condition=inputs["labels"]))


@pytest.fixture
def gan():
    return ConditionalGAN.from_preset("tiny", seed=0)


@pytest.fixture
def served(gan, tmp_path):
    """The exported serving_default, loaded the way TF Serving does (plain TensorFlow)."""
    path = export_model(gan, str(tmp_path), name="cgan")
    return tf.saved_model.load(path).signatures["serving_default"]


def test_networks_take_named_latent_and_labels_inputs():
    generator = build_generator(num_classes=3, latent_dim=5, width=16, embedding_dim=2)
    discriminator = build_discriminator(num_classes=3, width=8)
    assert [tensor.name for tensor in generator.inputs] == ["latent", "labels"]
    assert [tensor.name for tensor in discriminator.inputs] == ["images", "labels"]
    images = generator([np.zeros((2, 5), "float32"), np.array([0, 2], "int32")])
    assert tuple(images.shape) == (2, 28, 28, 1)
    assert tuple(discriminator([images, tf.constant([0, 2])]).shape) == (2, 1)


def test_the_label_changes_the_image_for_the_same_latent(gan):
    latent = gan.latent_batch(1, gan.latent_dim, seed=0).repeat(10, axis=0)
    images = gan.generate_from_latent(latent, condition=np.arange(10))
    assert len({image.tobytes() for image in images}) == 10


def test_the_discriminator_head_is_the_projection_formula(gan):
    discriminator = gan.discriminator
    features = keras.Model(discriminator.inputs, discriminator.get_layer("flatten").output)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (5, 28, 28, 1)).astype("float32")
    labels = np.array([0, 3, 3, 9, 5], "int32")
    head = discriminator.get_layer("logit")
    expected = projection_logits(
        features([images, labels]), labels, head.kernel, head.bias,
        discriminator.get_layer("class_projection").embeddings,
    )
    np.testing.assert_allclose(discriminator([images, labels]), expected, rtol=1e-5, atol=1e-6)


def test_the_generator_input_is_latent_then_label_embedding(gan):
    generator = gan.generator
    conditioned = keras.Model(generator.inputs, generator.get_layer("latent_and_label").output)
    latent = gan.latent_batch(4, gan.latent_dim, seed=0)
    labels = np.array([9, 0, 0, 4], "int32")
    expected = latent_and_label(
        latent, labels, generator.get_layer("label_embedding").embeddings
    )
    np.testing.assert_allclose(conditioned([latent, labels]), expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(expected)[:, : gan.latent_dim], latent)


def test_sample_grids_have_a_row_per_class(gan):
    assert class_grid_labels(6, 3).tolist() == [0, 0, 0, 1, 1, 1]
    labels = gan.sample_condition(100)
    assert gan.preview_columns == 10
    assert labels.reshape(10, 10).tolist() == [[row] * 10 for row in range(10)]


def test_generate_takes_one_label_or_one_per_image(gan):
    sevens = gan.generate(3, labels=7, seed=0)
    np.testing.assert_array_equal(sevens, gan.generate(3, labels=[7, 7, 7], seed=0))
    assert gan.generate(4, labels=np.array([1.0, 2.0, 3.0, 4.0]), seed=0).shape == (4, 28, 28, 1)
    assert not np.array_equal(sevens, gan.generate(3, labels=1, seed=0))


@pytest.mark.parametrize(
    "labels, message",
    [
        (10, r"class ids in \[0, 9\], got 10..10"),
        ([0, -1, 2], r"class ids in \[0, 9\]"),
        ([0, 1], "expected 3 labels"),
        ([0.5, 1, 2], "whole class ids"),
        ("three", "whole class ids"),
    ],
)
def test_bad_labels_are_clear_errors(gan, labels, message):
    with pytest.raises(ConfigError, match=message):
        gan.generate(3, labels=labels)


def test_the_export_rejects_out_of_range_labels_in_the_graph(gan, served):
    latent = tf.constant(gan.latent_batch(3, gan.latent_dim, seed=0))
    images = served(latent=latent, labels=tf.constant([0, 4, 9]))["images"]
    assert images.dtype == tf.uint8 and tuple(images.shape) == (3, 28, 28, 1)
    for labels in ([0, 1, 10], [-1, 0, 1]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be class ids in \[0, 9\]"):
            served(latent=latent, labels=tf.constant(labels))


def test_the_export_rejects_mismatched_batch_sizes(gan, served):
    latent = tf.constant(gan.latent_batch(3, gan.latent_dim, seed=0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        served(latent=latent, labels=tf.constant([0, 1]))


def test_the_export_records_the_number_of_classes(gan, tmp_path):
    from kerasgan.export import read_metadata

    path = export_model(gan, str(tmp_path), name="cgan")
    assert read_metadata(path)["num_classes"] == 10


def test_training_needs_labels(gan):
    with pytest.raises(DataError, match="with_labels=True"):
        labelled_batch(np.zeros((2, 28, 28, 1), "float32"))
    gan.compile()
    images = np.zeros((2, 28, 28, 1), "float32")
    for step in (gan.train_step, gan.test_step):
        with pytest.raises(DataError, match="with_labels=True"):
            step(tf.constant(images))


# === The written-out steps ===

def test_neither_the_conditional_gan_nor_its_base_has_the_old_hooks():
    """`train_step` and `test_step` call the networks and losses themselves, so that the step
    in this file is the whole step; nothing else needs a hook that routes the label either
    (sample grids, `GANDiagnostics` and BigGAN call `generator([z, y])` and
    `discriminator([x, y])`)."""
    assert_no_hooks(ConditionalGAN)


def spy_on_modes(network):
    """Record the `training` flag of every call of `network`."""
    modes = []
    call = network.call

    def spy(*args, training=None, **kwargs):
        modes.append(training)
        return call(*args, training=training, **kwargs)

    network.call = spy
    return modes


def test_the_train_step_is_written_out():
    gan = ConditionalGAN.from_preset("tiny", seed=0)
    gan.compile(g_optimizer=keras.optimizers.SGD(0.01), d_optimizer=keras.optimizers.SGD(0.01))
    g_modes, d_modes = spy_on_modes(gan.generator), spy_on_modes(gan.discriminator)
    g_before, d_before = gan.generator.get_weights(), gan.discriminator.get_weights()
    rng = np.random.default_rng(0)
    batch = (tf.constant(rng.uniform(-1, 1, (4, 28, 28, 1)), "float32"), tf.range(4))
    logs = gan.train_step(batch)
    assert sorted(logs) == ["d_fake", "d_loss", "d_real", "g_loss"]
    assert all(np.isfinite(float(value)) for value in logs.values())
    # D: the real and the fake batch, then the fakes of G's update; G: once per update.
    assert d_modes == [True, True, True] and g_modes == [True, True]
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, gan.generator.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, gan.discriminator.get_weights()))


def test_evaluate_runs_both_networks_in_inference_mode():
    gan = ConditionalGAN.from_preset("tiny", seed=0)
    gan.compile(run_eagerly=True)
    g_modes, d_modes = spy_on_modes(gan.generator), spy_on_modes(gan.discriminator)
    rng = np.random.default_rng(0)
    batch = (rng.uniform(-1, 1, (4, 28, 28, 1)).astype("float32"), np.arange(4, dtype="int32"))
    weights = [w.copy() for w in gan.get_weights()]
    logs = gan.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert sorted(logs) == ["d_fake", "d_loss", "d_real", "g_loss"]
    assert all(np.isfinite(value) for value in logs.values())
    assert d_modes and g_modes and not any(d_modes + g_modes)
    for before, after in zip(weights, gan.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_number_of_classes_comes_from_the_config_and_survives_saving(tmp_path):
    gan = ConditionalGAN.from_preset("tiny", num_classes=4)
    assert gan.num_classes == 4
    gan.compile()
    path = str(tmp_path / "cgan.keras")
    gan.save(path)
    assert keras.saving.load_model(path).num_classes == 4
    with pytest.raises(ConfigError, match="unknown conditional GAN option"):
        ConditionalGAN.from_preset("tiny", classes=4)
    with pytest.raises(ConfigError, match="unknown conditional GAN preset"):
        ConditionalGAN.from_preset("huge")


def test_outputs_are_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    gan = ConditionalGAN.from_preset("tiny")
    assert gan.generate(2, labels=[1, 2]).dtype == np.float32
    logits = gan.discriminator([np.zeros((2, 28, 28, 1), "float32"), np.array([1, 2], "int32")])
    assert logits.dtype == "float32"


def test_the_recipe_trains_on_labelled_data_exports_and_resumes(tmp_path, capsys):
    assert get_recipe("cgan").with_labels
    first, _ = train_and_resume("cgan", tmp_path, capsys)
    assert first.steps == 5  # 5,000 embedded (digit, label) pairs, batches of 1,000
    assert (tmp_path / "run" / "samples" / "epoch_0002.png").exists()


# === The command line: `python -m kerasgan sample EXPORT --labels ...` ===


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny conditional GAN and its export folder."""
    gan = ConditionalGAN.from_preset("tiny", seed=0)
    return gan, export_model(gan, str(tmp_path_factory.mktemp("exports")), name="cgan")


def test_cli_sample_draws_a_row_per_requested_class(exported, tmp_path):
    gan, path = exported
    out = tmp_path / "grid.png"
    args = ["sample", path, "--labels", "4,0,7", "--n", "6", "--scale", "1", "--out", str(out)]
    assert cli.main(args) == 0
    drawn = np.asarray(Image.open(out))
    # The CLI's latents are `latent_batch(n, seed=0)`; rows follow the order of --labels.
    latent = gan.latent_batch(6, gan.latent_dim, seed=0)
    rows = gan.generate_from_latent(latent, condition=[4, 4, 0, 0, 7, 7])
    expected = image_grid(rows, cols=2)[..., 0]
    assert drawn.shape == expected.shape == (3 * 30 + 2, 2 * 30 + 2)
    assert np.abs(drawn.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "labels, message",
    [
        ("3,10", "--labels must be between 0 and 9, got 3,10"),
        ("-1", "--labels must be between 0 and 9"),
        ("a,b", "--labels must be comma-separated whole numbers"),
        ("2.5", "--labels must be comma-separated whole numbers"),
        ("", "--labels is empty"),
    ],
)
def test_cli_sample_rejects_bad_labels_in_one_line(exported, tmp_path, capsys, labels, message):
    out = tmp_path / "grid.png"
    assert cli.main(["sample", exported[1], f"--labels={labels}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_cli_sample_reports_the_exports_own_label_check(exported, tmp_path, capsys):
    # Without the export's metadata the CLI cannot check the range: the graph's check speaks.
    bare = tmp_path / "bare"
    shutil.copytree(exported[1], bare)
    os.remove(bare / METADATA_FILE)
    out = tmp_path / "grid.png"
    assert cli.main(["sample", str(bare), "--labels", "3,10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the model rejected the request: labels must be class ids in [0, 9]" in err
    assert not out.exists()
