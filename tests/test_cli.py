"""The command line as users meet it: help, mistakes (one line, exit 2, no traceback), sampling."""

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import assert_one_clear_line, kerasgan_process

# `kerasgan` (the CLI in this process) is a fixture of conftest.py.


def test_help_lists_the_commands():
    result = kerasgan_process("--help")
    assert result.returncode == 0 and not result.stderr
    for command in ("train", "sample"):
        assert command in result.stdout


def test_train_help_lists_models_and_options(kerasgan):
    result = kerasgan("train", "--help")
    assert result.returncode == 0
    for text in ("dcgan", "--time-budget", "--data", "--precision", "resumes"):
        assert text in result.stdout


def test_dry_run_prints_the_options(tmp_path, kerasgan):
    result = kerasgan("train", "dcgan", "--dry-run", "--epochs", "3", "--output", str(tmp_path / "x"))
    assert result.returncode == 0
    assert '"epochs": 3' in result.stdout
    assert not (tmp_path / "x").exists()


def test_unknown_model(tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("train", "dcgan2", "--output", str(tmp_path)), "unknown model 'dcgan2'", "dcgan")


def test_missing_data_folder(tmp_path, kerasgan):
    result = kerasgan("train", "dcgan", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "run"))
    assert_one_clear_line(result, "does not exist")


def test_empty_data_folder(tmp_path, kerasgan):
    (tmp_path / "empty").mkdir()
    result = kerasgan("train", "dcgan", "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "run"))
    assert_one_clear_line(result, str(tmp_path / "empty"))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("flag, value", [("--time-budget", "-5"), ("--epochs", "0"), ("--batch-size", "-1"), ("--time-budget", "abc"),
                                         ("--steps-per-execution", "0"), ("--steps-per-execution", "some")])
def test_bad_numbers(flag, value, tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("train", "dcgan", flag, value, "--output", str(tmp_path)), flag)


def test_unwritable_output(tmp_path, kerasgan):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = kerasgan("train", "dcgan", "--data", "embedded", "--output", str(blocker / "run"))
    assert_one_clear_line(result, "cannot write to the output folder")


def test_sample_from_a_missing_export(tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("sample", str(tmp_path / "none"), "--out", str(tmp_path / "g.png")), "no SavedModel")


def test_sample_draws_a_grid_from_an_export(tmp_path, kerasgan):
    import keras

    from kerasgan.export import export_model
    from kerasgan.models import DCGAN

    keras.utils.set_random_seed(0)
    export_model(DCGAN.from_preset("tiny", seed=0), str(tmp_path / "models"), name="dcgan")
    out = tmp_path / "grid.png"
    result = kerasgan_process("sample", str(tmp_path / "models" / "dcgan"), "--n", "9", "--out", str(out), "--scale", "1")
    assert result.returncode == 0, result.stderr
    assert "wrote 9 samples" in result.stdout
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 30 + 2, 3 * 30 + 2)
    assert_one_clear_line(
        kerasgan("sample", str(tmp_path / "models" / "dcgan"), "--labels", "1,2",
                 "--out", str(tmp_path / "other.png")),
        "not class-conditional",
    )
    assert_one_clear_line(
        kerasgan("sample", str(tmp_path / "models" / "dcgan"), "--out", str(tmp_path / "grid.jpg")), ".png"
    )


def test_sample_turns_the_exports_own_check_into_one_line(tmp_path, kerasgan):
    import tensorflow as tf

    class Checked(tf.Module):  # an export whose graph validates its request, as ours do
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="latent")])
        def serve(self, latent):
            rows = tf.shape(latent)[0]
            tf.debugging.assert_less_equal(rows, 2, message="latent rows must be in [1, 2]")
            return {"images": tf.zeros([rows, 8, 8, 1], tf.uint8)}

    module = Checked()
    tf.saved_model.save(module, str(tmp_path / "checked" / "1"), signatures={"serving_default": module.serve})
    out = tmp_path / "grid.png"
    result = kerasgan("sample", str(tmp_path / "checked"), "--n", "4", "--out", str(out))
    assert_one_clear_line(result)
    # Only the check's own words: none of TensorFlow's condition, tensors or graph trace.
    assert result.stderr.strip() == (
        "kerasgan: error: the model rejected the request: latent rows must be in [1, 2]"
    )
    assert not out.exists()
