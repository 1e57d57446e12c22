"""Requests and responses in TF Serving's formats, checked against real exports.

TF Serving itself cannot be installed here; `serve_like_tf_serving` does what its REST handler
does with a predict body (decode named inputs, call the signature, encode the outputs in the row
or columnar form), using nothing but TensorFlow and the SavedModel.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import serving, training
from kerasgan.errors import ConfigError, ExportError
from kerasgan.export import export_model
from kerasgan.models import DCGAN
from kerasgan.plotting import to_uint8


def serve_like_tf_serving(path, body):
    body = json.loads(json.dumps(body))  # exactly what crosses the wire
    function = tf.saved_model.load(path).signatures[body.get("signature_name", "serving_default")]
    specs = function.structured_input_signature[1]
    row = "instances" in body
    columns = (
        {name: [instance[name] for instance in body["instances"]] for name in body["instances"][0]}
        if row else body["inputs"]
    )
    try:
        tensors = {name: tf.constant(np.asarray(value), dtype=specs[name].dtype) for name, value in columns.items()}
        outputs = {name: value.numpy().tolist() for name, value in function(**tensors).items()}
    except (KeyError, ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
        return {"error": str(error)}
    if row:
        names = list(outputs)
        size = len(outputs[names[0]])
        if len(names) == 1:
            return {"predictions": outputs[names[0]]}
        return {"predictions": [{name: outputs[name][i] for name in names} for i in range(size)]}
    return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    gan = DCGAN.from_preset("tiny", seed=0)
    path = export_model(gan, str(tmp_path_factory.mktemp("models")), name="dcgan")
    return gan, path


@pytest.mark.parametrize("format", ["row", "columnar"])
def test_rest_round_trip_gives_the_in_memory_images(exported, format):
    gan, path = exported
    expected = serving.signature_inputs(path)
    assert expected == {"latent": ("float32", (None, 8))}
    latent = gan.latent_batch(3, gan.latent_dim, seed=1)
    payload = serving.rest_payload({"latent": latent}, expected, format=format)
    assert ("instances" in payload) == (format == "row")
    images = serving.images_from_response(serve_like_tf_serving(path, payload))
    assert images.dtype == np.uint8 and images.shape == (3, 28, 28, 1)
    assert np.abs(images.astype(int) - to_uint8(gan.generate_from_latent(latent)).astype(int)).max() <= 1


def test_a_second_signature_by_name(exported):
    gan, path = exported
    latent = gan.latent_batch(2, gan.latent_dim, seed=0)
    payload = serving.rest_payload({"latent": latent}, signature_name="predict_float")
    floats = serving.parse_rest_response(serve_like_tf_serving(path, payload))
    np.testing.assert_allclose(floats, gan.generate_from_latent(latent), atol=1e-5)


def test_payloads_are_checked_against_the_signature(exported):
    _, path = exported
    expected = serving.signature_inputs(path)
    with pytest.raises(ConfigError, match="missing: latent; unexpected: z"):
        serving.rest_payload({"z": np.zeros((1, 8))}, expected)
    with pytest.raises(ConfigError, match=r"shape \(1, 7\); the signature wants \(None, 8\)"):
        serving.rest_payload({"latent": np.zeros((1, 7))}, expected)
    with pytest.raises(ConfigError, match="must be numbers"):
        serving.rest_payload({"latent": np.array([["a"] * 8])}, expected)
    with pytest.raises(ConfigError, match="is a scalar"):
        serving.rest_payload({"latent": np.zeros((1, 8)), "truncation_psi": np.float32(0.7)}, format="row")


def test_server_errors_become_clear_exceptions(exported):
    _, path = exported
    answer = serve_like_tf_serving(path, {"inputs": {"latent": [[0.0] * 7]}})
    assert "error" in answer
    with pytest.raises(serving.ServingError, match="TF Serving answered"):
        serving.parse_rest_response(answer)
    with pytest.raises(ConfigError, match="no output 'pixels'"):
        serving.parse_rest_response({"outputs": {"images": [], "x": []}}, output="pixels")


def test_parsing_recorded_response_shapes():
    row_multi = {"predictions": [{"images": [[1]], "score": 0.5}, {"images": [[2]], "score": 0.1}]}
    assert serving.parse_rest_response(row_multi).tolist() == [[[1]], [[2]]]
    assert serving.parse_rest_response(json.dumps({"outputs": [[[3]]]})).shape == (1, 1, 1)
    with pytest.raises(ConfigError, match="not a TF Serving predict response"):
        serving.parse_rest_response({"result": 1})


def test_grpc_request_and_response(exported):
    gan, path = exported
    latent = gan.latent_batch(2, gan.latent_dim, seed=0)
    request = serving.grpc_request("dcgan", {"latent": latent}, serving.signature_inputs(path), version=1)
    assert request.model_spec.name == "dcgan" and request.model_spec.version.value == 1
    assert request.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["latent"]), latent)
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.outputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 28, 28, 1), "uint8")))
    assert serving.grpc_response_images(response).shape == (2, 28, 28, 1)


def test_models_config_lists_every_model_and_pins_versions(tmp_path):
    gan = DCGAN.from_preset("tiny", seed=0)
    for name in ("dcgan", "other"):
        export_model(gan, str(tmp_path), name=name)
    (tmp_path / "not-a-model").mkdir()
    path = serving.write_models_config(str(tmp_path))
    text = open(path).read()
    assert text.count("config {") == 2 and 'base_path: "/models/other"' in text
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    parsed = text_format.Parse(serving.models_config(["dcgan"], versions={"dcgan": [1]}),
                               model_server_config_pb2.ModelServerConfig())
    assert list(parsed.model_config_list.config[0].model_version_policy.specific.versions) == [1]
    with pytest.raises(ExportError, match="no exported models"):
        serving.write_models_config(str(tmp_path / "not-a-model"))


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(serving.ServingError, match="no TF Serving reachable"):
        serving.predict_rest(serving.rest_url("127.0.0.1", "dcgan", port=9), {"inputs": {}}, timeout=2)


def test_saved_model_cli_run_produces_images(exported):
    _, path = exported
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir", path,
         "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", f"latent={[[0.5] * 8] * 2}"],  # safe mode: Python literals only
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert "Result for output key images" in result.stdout


def test_export_run_re_exports_a_run_folder(tmp_path):
    training.train("dcgan", data="embedded", preset="tiny", epochs=1, batch_size=256,
                   output=str(tmp_path / "run"), export=False, precision_policy="float32", verbose=0)
    path = training.export_run(str(tmp_path / "run"), str(tmp_path / "models"), name="digits")
    assert path.endswith(os.path.join("digits", "1"))
    with pytest.raises(ConfigError, match="not a kerasgan run folder"):
        training.export_run(str(tmp_path), str(tmp_path / "models"))
