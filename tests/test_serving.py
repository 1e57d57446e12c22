"""Requests and responses in TF Serving's formats, checked against real exports.

TF Serving itself cannot be installed here; `serve_like_tf_serving` does what its REST handler
does with a predict body (decode named inputs, call the signature, encode the outputs in the row
or columnar form) with `serving_contract`'s stand-in, here in-process for speed (the stand-in's
own process, without kerasgan, runs in `test_export_all_models.py` for every model).
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
from tests.serving_contract import SIGNATURES, BadRequest, decode_rest, encode_rest, resolve


def serve_like_tf_serving(path, body):
    signatures = tf.saved_model.load(path).signatures
    try:
        name, tensors, row = decode_rest(json.dumps(body), signatures)
        outputs = signatures[name](**{key: tf.constant(value) for key, value in tensors.items()})
    except (BadRequest, ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
        return {"error": str(error)}
    return encode_rest({key: value.numpy() for key, value in outputs.items()}, row)


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
    with pytest.raises(serving.ServingError, match="no TF Serving reachable"):
        serving.model_status("127.0.0.1", "dcgan", port=9, timeout=0.5)


@pytest.fixture
def http_stand_in(exported):
    """TF Serving's REST API on a local port, answering from the DCGAN export."""
    import http.server
    import threading

    _, path = exported

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/v1/models/dcgan":
                self.answer(200, {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]})
            else:
                self.answer(404, {"error": f"Servable not found for request: {self.path}"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = serve_like_tf_serving(path, body)
            self.answer(400 if "error" in answer else 200, answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_client_round_trip_over_http(exported, http_stand_in):
    gan, _ = exported
    port = http_stand_in
    status = serving.model_status("127.0.0.1", "dcgan", port=port)
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    with pytest.raises(serving.ServingError, match="404: Servable not found"):
        serving.model_status("127.0.0.1", "nope", port=port)
    latent = gan.latent_batch(2, gan.latent_dim, seed=3)
    url = serving.rest_url("127.0.0.1", "dcgan", port=port)
    images = serving.images_from_response(serving.predict_rest(url, serving.rest_payload({"latent": latent})))
    assert np.abs(images.astype(int) - to_uint8(gan.generate_from_latent(latent)).astype(int)).max() <= 1
    with pytest.raises(serving.ServingError, match="400"):
        serving.predict_rest(url, {"inputs": {"latent": [[0.0] * 3]}})


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


# === Every kind of signature input (no export needed: the documented specs) ===

DOCUMENTED = [
    (model, signature, inputs)
    for model, signatures in SIGNATURES.items()
    for signature, (inputs, _) in resolve(
        signatures, latent_dim=4, size=8, channels=3 if model in ("stylegan", "biggan") else 1
    ).items()
]


def example_inputs(specs, batch=2):
    """Valid inputs for documented specs: batch `batch`, images 6 x 5, scalars."""
    rng = np.random.default_rng(0)
    inputs = {}
    for name, (dtype, shape) in specs.items():
        dims = [d if d is not None else batch if i == 0 else 6 if i == 1 else 5 for i, d in enumerate(shape)]
        if name == "style":
            dims[0] = 1  # one style for every content image
        if np.dtype(dtype).kind == "f":
            inputs[name] = rng.uniform(-1, 1, dims).astype(dtype) if dims else np.float32(0.7)
        else:
            inputs[name] = rng.integers(0, 10, dims).astype(dtype) if dims else np.int32(2)
    return inputs


@pytest.mark.parametrize("model, signature, specs", DOCUMENTED, ids=lambda x: x if isinstance(x, str) else "specs")
def test_payloads_for_every_documented_signature(model, signature, specs):
    inputs = example_inputs(specs)
    body = json.loads(json.dumps(serving.rest_payload(inputs, specs, "columnar", signature)))
    for name, (dtype, _) in specs.items():
        sent = np.asarray(body["inputs"][name])
        assert sent.shape == np.shape(inputs[name])
        np.testing.assert_array_equal(sent.astype(dtype), inputs[name])
        if np.dtype(dtype).kind in "iu":  # TF Serving takes only JSON integers for these
            assert sent.dtype.kind == "i", (name, sent.dtype)
    batched = all(len(shape) and inputs[name].shape[0] == 2 for name, (_, shape) in specs.items())
    if batched:
        rows = serving.rest_payload(inputs, specs, "row", signature)["instances"]
        assert len(rows) == 2 and set(rows[0]) == set(specs)
    else:  # a scalar (truncation, alpha, crossover) or a single style image: columnar only
        with pytest.raises(ConfigError, match="columnar"):
            serving.rest_payload(inputs, specs, "row", signature)
    request = serving.grpc_request(model, inputs, specs, signature)
    assert request.model_spec.signature_name == signature
    for name, (dtype, _) in specs.items():
        proto = request.inputs[name]
        assert tf.dtypes.as_dtype(proto.dtype).name == dtype
        np.testing.assert_array_equal(tf.make_ndarray(proto), inputs[name])


def test_integer_inputs_take_whole_numbers_in_range():
    labels = {"labels": ("int32", (None,))}
    body = serving.rest_payload({"labels": np.array([1.0, 9.0])}, labels)
    assert body["inputs"]["labels"] == [1, 9] and all(type(v) is int for v in body["inputs"]["labels"])
    with pytest.raises(ConfigError, match="whole numbers"):
        serving.rest_payload({"labels": [1.5, 2.0]}, labels)
    with pytest.raises(ConfigError, match=r"int32 values in \[-2147483648, 2147483647\]"):
        serving.rest_payload({"labels": [2**40]}, labels)
    pixels = {"images": ("uint8", (None, None, None, 1))}
    floats = np.random.default_rng(0).uniform(-1, 1, (1, 2, 2, 1))
    with pytest.raises(ConfigError, match=r"images in \[-1, 1\]\? send pixels"):
        serving.rest_payload({"images": floats}, pixels)
    with pytest.raises(ConfigError, match=r"uint8 values in \[0, 255\], got values from 0 to 256"):
        serving.grpc_request("cyclegan_a2b", {"images": np.array([[[[0], [256]]]])}, pixels)
    sent = serving.grpc_request("cyclegan_a2b", {"images": np.array([[[[0], [255]]]])}, pixels)
    assert tf.make_ndarray(sent.inputs["images"]).dtype == np.uint8


def test_images_from_either_kind_of_response():
    assert serving.images_from_response({"outputs": [[0, 255]]}).dtype == np.uint8
    floats = {"predictions": [[-1.0, 0.0, 1.0, 1.5]]}  # predict_float's [-1, 1], a little over
    assert serving.images_from_response(floats).tolist() == [[0, 128, 255, 255]]
    with pytest.raises(ConfigError, match="not uint8 images"):
        serving.images_from_response({"outputs": [[-3, 300]]})


# === A client that misbehaving servers cannot hang or crash ===


@pytest.fixture
def misbehaving_server():
    """A local HTTP server that answers every request in the way its model name asks:
    `/v1/models/<how>...`. It records the paths it was asked for."""
    import http.server
    import threading
    import time

    paths = []
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code, body, content_type="application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            paths.append(self.path)
            how = self.path.split("/")[3].split(":")[0]
            if how == "html":
                self.reply(200, "<html>\n<body>Welcome to nginx!</body>\n</html>", "text/html")
            elif how == "gateway":
                self.reply(502, "<html>\n<h1>502 Bad Gateway</h1>\n</html>", "text/html")
            elif how == "text":
                self.reply(200, "OK")
            elif how == "nan":
                self.reply(200, '{"predictions": [[0.5, NaN]]}')
            elif how == "infinity":
                self.reply(200, '{"outputs": [-Infinity]}')
            elif how == "list":
                self.reply(200, "[1, 2]")
            elif how == "trickle":  # a valid start, then one byte at a time, for up to 30 s
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(150):
                    if stop.wait(0.2):
                        break
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        break
            else:
                self.reply(200, json.dumps({"path": self.path}))

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], paths
    stop.set()
    server.shutdown()
    server.server_close()
    time.sleep(0)  # let handler threads see `stop`


@pytest.mark.parametrize(
    "how, message",
    [
        ("html", "answered 200 with text/html, not JSON: <html> <body>Welcome to nginx!"),
        ("gateway", "answered 502 with text/html, not JSON: <html> <h1>502 Bad Gateway</h1>"),
        ("text", "answered 200 with application/json, not JSON: OK"),
        ("nan", "answered NaN, which JSON does not allow (the model's outputs are not finite?)"),
        ("infinity", "answered -Infinity, which JSON does not allow"),
        ("list", "answered a JSON array, not an object"),
    ],
)
def test_replies_that_are_not_json_objects_are_serving_errors(misbehaving_server, how, message):
    port, _ = misbehaving_server
    for call in (
        lambda: serving.model_status("127.0.0.1", how, port=port, timeout=5),
        lambda: serving.predict_rest(serving.rest_url("127.0.0.1", how, port=port), {}, timeout=5),
    ):
        with pytest.raises(serving.ServingError) as error:
            call()
        text = str(error.value)
        assert message in text and "\n" not in text, text
        assert f"127.0.0.1:{port}" in text, text


def test_the_timeout_is_total_not_per_read(misbehaving_server):
    """A server that sends a byte every 0.2 s never trips a per-read timeout of 1 s."""
    import time

    port, _ = misbehaving_server
    start = time.monotonic()
    with pytest.raises(serving.ServingError, match=r"no complete answer from .* within 1 s"):
        serving.model_status("127.0.0.1", "trickle", port=port, timeout=1.0)
    url = serving.rest_url("127.0.0.1", "trickle", port=port)
    with pytest.raises(serving.ServingError, match=r"no complete answer from .* within 1 s"):
        serving.predict_rest(url, {}, timeout=1.0)
    assert time.monotonic() - start < 10  # two calls of 1 s, not the server's 30 s each


def test_model_names_are_quoted_in_urls(misbehaving_server):
    port, paths = misbehaving_server
    answer = serving.model_status("127.0.0.1", "my model?v=2#x", port=port)
    assert answer == {"path": "/v1/models/my%20model%3Fv%3D2%23x"} and len(paths) == 1
    assert serving.rest_url("127.0.0.1", "dcgan", version=3, port=port) == (
        f"http://127.0.0.1:{port}/v1/models/dcgan/versions/3:predict"
    )
    assert serving.rest_url("::1", "dcgan") == "http://[::1]:8501/v1/models/dcgan:predict"


@pytest.mark.parametrize(
    "host, model, version, port, message",
    [
        ("127.0.0.1", "a/b", None, 8501, "model name 'a/b' cannot be served"),
        ("127.0.0.1", "..", None, 8501, "model name '..' cannot be served"),
        ("127.0.0.1", ".", None, 8501, "model name '.' cannot be served"),
        ("127.0.0.1", "a:b", None, 8501, "model name 'a:b' cannot be served"),
        ("127.0.0.1", "", None, 8501, "model name '' cannot be served"),
        ("127.0.0.1", None, None, 8501, "model name None cannot be served"),
        ("evil.example/x?", "dcgan", None, 8501, "host 'evil.example/x?' is not a host name"),
        ("user@127.0.0.1", "dcgan", None, 8501, "host 'user@127.0.0.1' is not a host name"),
        ("127.0.0.1:80", "dcgan", None, 8501, "host '127.0.0.1:80' is not a host name"),
        ("", "dcgan", None, 8501, "host '' is not a host name"),
        ("127.0.0.1", "dcgan", -1, 8501, "version must be a whole number >= 1, got -1"),
        ("127.0.0.1", "dcgan", "1/../2", 8501, "version must be a whole number >= 1"),
        ("127.0.0.1", "dcgan", None, 0, "port must be a whole number from 1 to 65535, got 0"),
        ("127.0.0.1", "dcgan", None, "80/x", "port must be a whole number from 1 to 65535"),
    ],
)
def test_bad_hosts_names_versions_and_ports_are_config_errors(host, model, version, port, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace(".", r"\.")):
        serving.rest_url(host, model, version=version, port=port)
    if version is None:
        with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace(".", r"\.")):
            serving.model_status(host, model, port=port)


def test_a_payload_with_nan_is_refused_before_it_is_sent(misbehaving_server):
    port, paths = misbehaving_server
    url = serving.rest_url("127.0.0.1", "echo", port=port)
    with pytest.raises(ConfigError, match="the payload holds NaN or infinity"):
        serving.predict_rest(url, {"inputs": {"latent": [[float("nan")]]}})
    with pytest.raises(ConfigError, match="not an http:// or https:// URL"):
        serving.predict_rest("file:///etc/passwd", {})
    assert paths == []
