import os

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import export
from kerasgan.errors import ExportError
from kerasgan.models.dcgan import DCGAN


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


def test_a_wrong_input_shape_is_named_by_the_graph_itself(gan, tmp_path):
    """TF Serving does not compare a request with the signature's shapes: the graph checks them
    on entry and names the input, rather than failing at the generator's first matmul."""
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    served, _ = export.load_serving_signature(path)
    assert served(latent=tf.zeros([2, gan.latent_dim]))["images"].shape[0] == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"tensor latent \[2,5\] .*\[\?,8\]"):
        served(latent=tf.zeros([2, 5]))


def test_missing_export_and_signature_are_clear_errors(gan, tmp_path):
    with pytest.raises(ExportError, match="no SavedModel"):
        export.load_serving_signature(str(tmp_path / "nothing"))
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    with pytest.raises(ExportError, match="no signature 'nope'"):
        export.load_serving_signature(path, "nope")


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
