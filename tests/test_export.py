import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import export
from kerasgan.errors import ExportError
from kerasgan.models.dcgan import DCGAN
from kerasgan.plotting import to_uint8


@pytest.fixture
def gan():
    return DCGAN.from_preset("tiny", seed=0)


def test_versions_count_up_and_are_never_overwritten(gan, tmp_path):
    first = export.export_model(gan, str(tmp_path), name="dcgan")
    second = export.export_model(gan, str(tmp_path), name="dcgan")
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert export.version_folders(str(tmp_path / "dcgan")) == [1, 2]
    assert export.resolve_saved_model(str(tmp_path / "dcgan")) == second
    with pytest.raises(ExportError, match="already exists"):
        export.export_model(gan, str(tmp_path), name="dcgan", version=1)


def test_a_failed_export_leaves_nothing_behind(gan, tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError):
        export.export_model(gan, str(tmp_path), name="dcgan")
    assert os.listdir(tmp_path / "dcgan") == []


def test_metadata_describes_the_request(gan, tmp_path):
    path = export.export_model(gan, str(tmp_path), name="dcgan", metadata={"epochs": 3})
    meta = export.read_metadata(path)
    assert meta["model_class"] == "DCGAN" and meta["latent_dim"] == 8 and meta["epochs"] == 3
    assert meta["signatures"] == ["predict_float", "serving_default"]


def test_predict_float_signature_matches_the_generator(gan, tmp_path):
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    predict, _ = export.load_serving_signature(path, "predict_float")
    latent = gan.latent_batch(4, gan.latent_dim, seed=0)
    np.testing.assert_allclose(predict(latent=latent)["images"].numpy(),
                               gan.generate_from_latent(latent), atol=1e-5)


def test_missing_export_and_signature_are_clear_errors(gan, tmp_path):
    with pytest.raises(ExportError, match="no SavedModel"):
        export.load_serving_signature(str(tmp_path / "nothing"))
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    with pytest.raises(ExportError, match="no signature 'nope'"):
        export.load_serving_signature(path, "nope")


def test_saved_model_cli_shows_the_documented_names(gan, tmp_path):
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    shown = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", path,
         "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    assert "inputs['latent'] tensor_info" in shown
    assert "dtype: DT_FLOAT" in shown and "shape: (-1, 8)" in shown
    assert "outputs['images'] tensor_info" in shown
    assert "dtype: DT_UINT8" in shown and "shape: (-1, 28, 28, 1)" in shown


SERVER_LIKE_CLIENT = """
import json, sys
import numpy as np
import tensorflow as tf
assert "kerasgan" not in sys.modules
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
latent = np.load(sys.argv[2])
images = served(latent=tf.constant(latent))["images"].numpy()
assert "kerasgan" not in sys.modules
np.save(sys.argv[3], images)
"""


def test_export_loads_without_kerasgan_and_matches_the_in_memory_generator(gan, tmp_path):
    """The export runs the way TF Serving runs it: no Python code of ours involved."""
    path = export.export_model(gan, str(tmp_path / "models"), name="dcgan")
    latent = gan.latent_batch(5, gan.latent_dim, seed=1)
    np.save(tmp_path / "latent.npy", latent)
    subprocess.run(
        [sys.executable, "-c", SERVER_LIKE_CLIENT, path, str(tmp_path / "latent.npy"),
         str(tmp_path / "images.npy")],
        check=True, cwd=str(tmp_path), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    served = np.load(tmp_path / "images.npy")
    expected = to_uint8(gan.generate_from_latent(latent))
    assert served.dtype == np.uint8
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1


def test_images_to_uint8_rounds_and_clips():
    values = tf.constant([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0])
    assert export.images_to_uint8(values).numpy().tolist() == [0, 0, 128, 255, 255, 255]
    assert export.next_version("/nonexistent") == 1


def test_exports_are_readable_by_other_users(gan, tmp_path):
    """TF Serving often runs as another user (in a container): exports must not be private."""
    old = os.umask(0o022)
    try:
        path = export.export_model(gan, str(tmp_path), name="dcgan")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(path, "saved_model.pb")).st_mode & 0o777 == 0o644


def test_export_loads_the_way_tf_serving_loads_it(gan, tmp_path):
    """TF Serving's C++ loader restores variables through the SavedModel's saver, like a TF1
    session does; an export that only works with `tf.saved_model.load` would serve nothing."""
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    latent = gan.latent_batch(3, gan.latent_dim, seed=4)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        images = session.run(signature.outputs["images"].name, {signature.inputs["latent"].name: latent})
    expected = to_uint8(gan.generate_from_latent(latent))
    assert images.dtype == np.uint8
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1
