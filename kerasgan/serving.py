"""Talking to TF Serving: requests, responses and the multi-model configuration.

TF Serving runs a SavedModel's signatures with no Python code of ours; a client only has to
speak its protocol. Two are common:

* **REST** (`POST http://HOST:8501/v1/models/NAME[/versions/N]:predict`) with a JSON body in one
  of two formats:

  - *row* ("instances"): a list of examples, each a dict of named inputs without the batch
    dimension, e.g. `{"instances": [{"latent": [...]}, {"latent": [...]}]}`. Every input must
    be batched, so a scalar input such as `truncation_psi` cannot be sent this way;
  - *columnar* ("inputs"): one dict of whole tensors, batch dimension included, e.g.
    `{"inputs": {"latent": [[...], [...]], "truncation_psi": 0.7}}`.

  The answer is `{"predictions": ...}` (row) or `{"outputs": ...}` (columnar); with a single
  output, its name is dropped. A failed request answers `{"error": "..."}`.
* **gRPC** (port 8500) with `tensorflow_serving.apis.predict_pb2.PredictRequest` messages whose
  inputs are `TensorProto`s (`tf.make_tensor_proto`), from the `tensorflow-serving-api` package.

Everything here is checked against the signature an export really has (`signature_inputs`), so
a wrong name, dtype or shape is caught by the client with a clear message, before the server
answers with a less clear one.
"""

import json
import os

import numpy as np

from kerasgan.errors import ConfigError, ExportError, KerasganError
from kerasgan.utils import to_uint8


class ServingError(KerasganError):
    """The server answered a request with an error."""


# === What the export expects ===


def signature_inputs(saved_model_path, signature="serving_default"):
    """The named inputs of an export's signature: `{name: (dtype name, shape)}`.

    Shapes use None for any size, e.g. `{"latent": ("float32", (None, 100))}`.
    """
    from kerasgan.export import load_serving_signature

    _, specs = load_serving_signature(saved_model_path, signature)
    return {name: (spec.dtype.name, tuple(spec.shape.as_list())) for name, spec in specs.items()}


def check_inputs(inputs, expected):
    """Validate a request's inputs against `signature_inputs(...)`; returns them as arrays.

    Integer inputs (class labels, uint8 pixels) must hold whole numbers within the dtype's
    range: a float image in `[-1, 1]` sent as uint8 pixels, or a label of 2.5, would otherwise
    be cast (and wrapped) silently into a valid-looking request.

    Raises:
        ConfigError: missing or unexpected names, wrong dtype kind, values an integer input
            cannot hold, wrong rank or fixed size.
    """
    missing = sorted(set(expected) - set(inputs))
    extra = sorted(set(inputs) - set(expected))
    if missing or extra:
        raise ConfigError(
            f"the signature takes {', '.join(sorted(expected))}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
        )
    arrays = {}
    for name, (dtype, shape) in expected.items():
        given = np.asarray(inputs[name])
        if given.dtype.kind not in "biuf":
            raise ConfigError(f"input {name!r} must be numbers, got {given.dtype}")
        if np.dtype(dtype).kind in "iu":
            _check_integers(name, given, np.dtype(dtype))
        array = given.astype(dtype, copy=False)
        if array.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, array.shape)
        ):
            shown = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
            raise ConfigError(f"input {name!r} has shape {array.shape}; the signature wants {shown}")
        arrays[name] = array
    return arrays


def _check_integers(name, values, dtype):
    if not values.size:
        return
    # The most common slip: generator-style floats in [-1, 1] sent where pixels are expected.
    hint = " (images in [-1, 1]? send pixels: round((x + 1) * 127.5))" if dtype == np.uint8 else ""
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        raise ConfigError(f"input {name!r} takes whole numbers ({dtype.name}), got fractions{hint}")
    low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
    if values.min() < low or values.max() > high:
        raise ConfigError(
            f"input {name!r} takes {dtype.name} values in [{low}, {high}], got values from "
            f"{values.min()} to {values.max()}{hint}"
        )


# === REST ===


def rest_payload(inputs, expected=None, format="columnar", signature_name=None):
    """The JSON body of a TF Serving REST predict request.

    Args:
        inputs: `{name: array}` with the batch dimension (scalars stay scalars).
        expected: optional `signature_inputs(...)` to validate against.
        format: `"columnar"` (`"inputs"`) or `"row"` (`"instances"`).
        signature_name: the signature to call (default: `serving_default`).

    Returns:
        A dict ready for `json.dumps`.
    """
    if expected is not None:
        inputs = check_inputs(inputs, expected)
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    if format == "columnar":
        payload = {"inputs": {name: array.tolist() for name, array in arrays.items()}}
    elif format == "row":
        scalars = [name for name, array in arrays.items() if array.ndim == 0]
        if scalars:
            raise ConfigError(
                f"row format needs every input batched; {', '.join(scalars)} is a scalar: use "
                "the columnar format"
            )
        sizes = {len(array) for array in arrays.values()}
        if len(sizes) != 1:
            raise ConfigError(
                "row format needs every input to have the same batch size; use the columnar format"
            )
        (size,) = sizes
        payload = {
            "instances": [
                {name: array[index].tolist() for name, array in arrays.items()}
                for index in range(size)
            ]
        }
    else:
        raise ConfigError(f"format must be 'columnar' or 'row', got {format!r}")
    if signature_name:
        payload["signature_name"] = signature_name
    return payload


def parse_rest_response(response, output="images"):
    """Turn a REST predict response (dict or JSON text) into the named output as an array.

    Raises:
        ServingError: for an `{"error": ...}` answer.
        ConfigError: when the response has no such output.
    """
    if isinstance(response, (str, bytes)):
        response = json.loads(response)
    if "error" in response:
        raise ServingError(f"TF Serving answered: {response['error']}")
    if "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            if output not in rows[0]:
                raise ConfigError(f"the response has no output {output!r}; it has {', '.join(rows[0])}")
            rows = [row[output] for row in rows]
        return np.asarray(rows)
    if "outputs" in response:
        outputs = response["outputs"]
        if isinstance(outputs, dict):
            if output not in outputs:
                raise ConfigError(f"the response has no output {output!r}; it has {', '.join(outputs)}")
            outputs = outputs[output]
        return np.asarray(outputs)
    raise ConfigError("not a TF Serving predict response: no predictions, outputs or error")


def images_from_response(response, output="images"):
    """The uint8 images of a predict response.

    Pixels (`serving_default`) are returned as they are; floats (`predict_float`'s `[-1, 1]`)
    are mapped to pixels the way the exports do (rounded, clipped).

    Raises:
        ServingError, ConfigError: as `parse_rest_response`; ConfigError when integers fall
            outside `[0, 255]`.
    """
    values = parse_rest_response(response, output)
    if values.dtype.kind == "f":
        return to_uint8(values)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ConfigError(f"output {output!r} holds values outside [0, 255]: not uint8 images")
    return values.astype("uint8")


# Characters of a host name: letters, digits, hyphens and dots (IPv4 addresses included).
_HOST_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def _host(host):
    """`host` as it goes into a URL (IPv6 addresses bracketed), or a ConfigError."""
    import ipaddress

    if isinstance(host, str) and host:
        try:
            if ipaddress.ip_address(host.strip("[]")).version == 6:
                return f"[{host.strip('[]')}]"
        except ValueError:
            pass
        if set(host) <= _HOST_CHARACTERS and not host.startswith(("-", ".")):
            return host
    raise ConfigError(
        f"host {host!r} is not a host name or IP address (give the port with port=, not in host)"
    )


def _model_path(model, version=None):
    """`/v1/models/NAME[/versions/N]`, the name percent-encoded, or a ConfigError.

    TF Serving takes a model's name from the path up to the next `/` or `:` (`:predict`), and
    a name is a folder of the server's, so `/`, `:`, `.` and `..` can never name a model.
    Anything else (spaces, `?`, `#`) is percent-encoded so that it stays part of the name.
    """
    from urllib.parse import quote

    if (
        not isinstance(model, str)
        or model in ("", ".", "..")
        or any(c in model for c in "/\\:") or not model.isprintable()
    ):
        raise ConfigError(
            f"model name {model!r} cannot be served (TF Serving's model names are folder "
            "names without / or :)"
        )
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigError(f"version must be a whole number >= 1, got {version!r}")
        path += f"/versions/{version}"
    return path


def _port(port):
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"port must be a whole number from 1 to 65535, got {port!r}")
    return port


def rest_url(host, model, version=None, port=8501):
    """`http://HOST:PORT/v1/models/MODEL[/versions/N]:predict`.

    Args:
        host: a host name or IP address (IPv6 addresses are bracketed).
        model: the model's name as the server knows it; percent-encoded in the URL.
        version: a version number (>= 1), or None for the latest.
        port: TF Serving's REST port.

    Raises:
        ConfigError: a host that is not a host name, a name that no model can have (`/`, `:`,
            `.`, `..`), a version or port that is not a whole number in range.
    """
    return f"http://{_host(host)}:{_port(port)}{_model_path(model, version)}:predict"


def predict_rest(url, payload, timeout=30.0):
    """POST a payload to a TF Serving REST endpoint and return the decoded JSON answer.

    Args:
        url: the endpoint, e.g. from `rest_url`.
        payload: the request body, e.g. from `rest_payload`.
        timeout: seconds for the whole exchange (connecting, sending, every byte of the
            answer), not per network read.

    Raises:
        ConfigError: a URL that is not http(s), or a payload that holds NaN or infinity
            (JSON has no such numbers).
        ServingError: when the server is unreachable, does not answer in time, answers an
            error, or answers anything but a JSON object (HTML, NaN, a truncated body).
    """
    try:
        body = json.dumps(payload, allow_nan=False).encode()
    except ValueError:
        raise ConfigError(
            "the payload holds NaN or infinity, which JSON cannot carry; check the inputs"
        ) from None
    return _http_json("POST", url, timeout, body)


def model_status(host, model, port=8501, timeout=1.0):
    """TF Serving's status of `model` (`GET /v1/models/MODEL`): its versions and their states.

    A quick probe too: an unreachable server fails within `timeout` seconds.

    Returns:
        e.g. `{"model_version_status": [{"version": "2", "state": "AVAILABLE", ...}]}`.

    Raises:
        ConfigError: a bad host, model name or port (see `rest_url`).
        ServingError: when no server answers in time, it does not serve `model`, or its
            answer is not a JSON object.
    """
    url = f"http://{_host(host)}:{_port(port)}{_model_path(model)}"
    return _http_json("GET", url, timeout)


def _one_line(text, limit=200):
    """`text` on one line, whitespace collapsed, at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse_constant(name):
    """`json.loads`'s hook for NaN, Infinity and -Infinity, which Python accepts and JSON not."""
    raise ServingError(
        f"answered {name}, which JSON does not allow (the model's outputs are not finite?)"
    )


def _http_json(method, url, timeout, body=None):
    """Send one request and return the JSON object answered, within `timeout` seconds in all.

    A socket timeout bounds each network read, not the exchange: a server that trickles a
    byte a second would hold the caller for as long as it likes. A timer shuts the socket
    down when the time is up, whatever the exchange is waiting for.
    """
    import http.client
    import socket
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http:// or https:// URL")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        connection = kind(parts.hostname, parts.port, timeout=timeout)
    except ValueError as error:  # e.g. a port that is not a number
        raise ConfigError(f"{url!r} is not a valid URL ({error})") from None
    expired, sockets = threading.Event(), []

    def expire():
        expired.set()
        for sock in sockets:  # unblocks a read that waits for the next byte
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    connected = False
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.connect()  # bounded by the socket timeout
        sockets.append(connection.sock)  # the response reads from it even after close()
        connected = True
        if expired.is_set():
            expire()
        connection.request(method, path or "/", body=body, headers=headers)
        answer = connection.getresponse()
        status, content_type, data = answer.status, answer.getheader("Content-Type", "?"), answer.read()
    except (OSError, http.client.HTTPException, ValueError) as error:
        if expired.is_set():
            raise ServingError(f"no complete answer from {url} within {timeout:g} s") from None
        reason = _one_line(getattr(error, "strerror", None) or error or type(error).__name__)
        if connected:
            raise ServingError(f"the answer from {url} broke off ({reason})") from None
        raise ServingError(f"no TF Serving reachable at {url} ({reason})") from None
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        raise ServingError(f"no complete answer from {url} within {timeout:g} s")
    text = data.decode(errors="replace")
    try:
        answer = json.loads(text, parse_constant=_refuse_constant)
    except ServingError as error:
        raise ServingError(f"{where} {error}") from None
    except ValueError:
        raise ServingError(
            f"{where} answered {status} with {content_type.split(';')[0]}, not JSON: "
            f"{_one_line(text, 120)!s}"
        ) from None
    if not isinstance(answer, dict):
        kind = {list: "array", str: "string", bool: "boolean"}.get(type(answer), "number")
        kind = "null" if answer is None else kind
        raise ServingError(f"{where} answered a JSON {kind}, not an object")
    if status >= 300:  # TF Serving puts the reason in the body
        raise ServingError(f"TF Serving answered {status}: {_one_line(answer.get('error', text))}")
    return answer


# === gRPC ===


def grpc_request(model, inputs, expected=None, signature_name="serving_default", version=None):
    """A `PredictRequest` for TF Serving's gRPC API (needs `tensorflow-serving-api`).

    gRPC tensors carry their dtype and the server wants the signature's exactly: give
    `expected` (from `signature_inputs`) and the inputs are converted, or pass arrays of the
    right dtypes (a Python float alone becomes float64, which a float32 input refuses).

    Example:
        >>> request = grpc_request("dcgan", {"latent": z})
        >>> stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel("localhost:8500"))
        >>> images = grpc_response_images(stub.Predict(request, 10.0))
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    if expected is not None:
        inputs = check_inputs(inputs, expected)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def grpc_response_images(response, output="images"):
    """The named output of a gRPC `PredictResponse` as an array."""
    import tensorflow as tf

    if output not in response.outputs:
        raise ConfigError(f"the response has no output {output!r}; it has {', '.join(response.outputs)}")
    return tf.make_ndarray(response.outputs[output])


# === Serving several models ===


def models_config(models, base="/models", versions=None):
    """The text of a TF Serving `--model_config_file` that serves several models.

    Args:
        models: model names (folders under the export directory).
        base: where the export directory is mounted inside the server (e.g. the Docker mount).
        versions: optional `{name: [versions]}` to pin (e.g. to roll back); default: latest.

    Returns:
        The configuration in protobuf text format, validated with TF Serving's own schema.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{base.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
        pinned = (versions or {}).get(name)
        if pinned:
            entry.model_version_policy.specific.versions.extend(int(v) for v in pinned)
    return text_format.MessageToString(config)


def write_models_config(export_dir, path=None, base="/models", versions=None):
    """Write a `models.config` for every model folder with versions under `export_dir`.

    Returns:
        The path written (default `export_dir/models.config`).
    """
    from kerasgan.export import version_folders
    from kerasgan.utils import atomic_path

    if not os.path.isdir(export_dir):
        raise ExportError(f"no export folder {export_dir}")
    names = sorted(
        name for name in os.listdir(export_dir)
        if os.path.isdir(os.path.join(export_dir, name)) and version_folders(os.path.join(export_dir, name))
    )
    if not names:
        raise ExportError(f"{export_dir} holds no exported models (folders with integer versions)")
    path = path or os.path.join(export_dir, "models.config")
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        handle.write(models_config(names, base, versions))
    return path
