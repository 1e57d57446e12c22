"""What every export promises its clients, and a stand-in for TF Serving that checks the promise.

TF Serving cannot be installed on these machines, but what it does with an export is small and
well specified, so a test can do the same in a fresh Python process that imports TensorFlow,
NumPy and TF Serving's protos, and never `kerasgan` (TF Serving runs no Python code of ours):

* load the SavedModel twice: the way TF Serving's C++ loader does (a TF1 session that restores
  the variables through the SavedModel's saver, then feeds and fetches the signature's tensors
  by name) and the way a TF2 user does (`tf.saved_model.load`);
* decode REST predict bodies, row (`instances`) or columnar (`inputs`), into tensors of the
  signature's dtypes with TF Serving's rules (a JSON integer for integer inputs, nested lists
  of one shape), and answer `{"predictions"|"outputs": ...}` or `{"error": "..."}`;
* decode gRPC `PredictRequest`s (dtypes must match the signature exactly) and answer with
  `PredictResponse`s;
* print `saved_model_cli show --all` (its real entry point, in the same process).

`serve(workdir, models, requests)` starts that process for a set of exports (it runs beside the
caller) and its `report()` returns every answer; the tests build the requests with `kerasgan.serving` and compare the answers with
the model in memory. `SIGNATURES` is the documented contract (the README's table).
"""

import json
import os
import subprocess
import sys

# === The documented signatures ===
# Shapes use None for "any size"; strings name a property of the model (resolved by `resolve`).

_LATENT = ("float32", (None, "latent_dim"))
_LABELS = ("int32", (None,))


def _generator(extra_inputs=()):
    inputs = {"latent": _LATENT, **dict(extra_inputs)}
    return {
        "serving_default": (inputs, {"images": ("uint8", (None, "size", "size", "channels"))}),
        "predict_float": (inputs, {"images": ("float32", (None, "size", "size", "channels"))}),
    }


def _translator():
    return {
        name: (
            {"images": (dtype, (None, None, None, "channels"))},
            {"images": (dtype, (None, "size", "size", "channels"))},
        )
        for name, dtype in (("serving_default", "uint8"), ("predict_float", "float32"))
    }


_SCALAR = ("float32", ())
SIGNATURES = {
    "dcgan": _generator(),
    "wgan-gp": _generator(),
    "cgan": _generator({"labels": _LABELS}),
    "stylegan": {
        **_generator({"truncation_psi": _SCALAR}),
        "mix": (
            {"latent_rows": _LATENT, "latent_cols": _LATENT, "crossover": ("int32", ()),
             "truncation_psi": _SCALAR},
            {"images": ("uint8", (None, None, "size", "size", "channels")),
             "row_images": ("uint8", (None, "size", "size", "channels")),
             "col_images": ("uint8", (None, "size", "size", "channels"))},
        ),
    },
    "biggan": _generator({"labels": _LABELS, "truncation": _SCALAR}),
    "cyclegan_a2b": _translator(),
    "cyclegan_b2a": _translator(),
    "stylizer": {
        "serving_default": (
            {"content": ("uint8", (None, None, None, 3)), "style": ("uint8", (None, None, None, 3)),
             "alpha": _SCALAR},
            {"images": ("uint8", (None, None, None, 3))},
        ),
    },
}


def resolve(signatures, **sizes):
    """`SIGNATURES[...]` with the named sizes filled in: `{signature: (inputs, outputs)}` where
    each side maps names to `(dtype, shape)` as `kerasgan.serving.signature_inputs` gives them."""

    def fill(specs):
        return {
            name: (dtype, tuple(sizes[d] if isinstance(d, str) else d for d in shape))
            for name, (dtype, shape) in specs.items()
        }

    return {name: (fill(inputs), fill(outputs)) for name, (inputs, outputs) in signatures.items()}


# === Running the stand-in (test side) ===


class Serving:
    """A stand-in server answering a batch of requests in a fresh process (see `serve`).

    The process starts at once and runs alongside the caller; `report()` waits for it.
    """

    def __init__(self, workdir, models, requests):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        spec = {"models": models, "requests": {}}
        for request_id, (model, request) in requests.items():
            if isinstance(request, dict):
                spec["requests"][request_id] = {"model": model, "rest": json.dumps(request)}
            else:
                path = os.path.join(workdir, f"{request_id}.request.pb")
                with open(path, "wb") as handle:
                    handle.write(request.SerializeToString())
                spec["requests"][request_id] = {"model": model, "grpc": path}
        spec_path = os.path.join(workdir, "spec.json")
        with open(spec_path, "w") as handle:
            json.dump(spec, handle)
        # TensorFlow's warnings go to a file: a full pipe would stall the process.
        self.stderr_path = os.path.join(workdir, "stderr.txt")
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), spec_path],
                stdout=subprocess.DEVNULL, stderr=stderr, cwd=workdir,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )

    def report(self, timeout=600):
        from tensorflow_serving.apis import predict_pb2

        try:
            self.process.wait(timeout=timeout)
        finally:
            self.stop()
        with open(self.stderr_path) as handle:
            assert self.process.returncode == 0, handle.read()[-4000:]
        with open(os.path.join(self.workdir, "report.json")) as handle:
            report = json.load(handle)
        for answers in report["answers"].values():
            for loader, answer in answers.items():
                if isinstance(answer, str):  # a serialized PredictResponse
                    with open(answer, "rb") as handle:
                        answers[loader] = predict_pb2.PredictResponse.FromString(handle.read())
        report["signatures"] = {
            model: {name: tuple(_as_specs(side) for side in sides) for name, sides in signatures.items()}
            for model, signatures in report["signatures"].items()
        }
        return report


    def stop(self):
        """End the process if it still runs (e.g. when its test was never reached)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _as_specs(side):
    return {name: (dtype, tuple(shape)) for name, (dtype, shape) in side.items()}


def serve(workdir, models, requests):
    """Answer `requests` from the exports `models` in a fresh process that never imports kerasgan.

    Args:
        workdir: a folder for the request and answer files.
        models: `{model name: SavedModel version folder}`.
        requests: `{request id: (model name, request)}`, where a request is a REST body (a
            dict, sent as JSON text) or a gRPC `PredictRequest`.

    Returns:
        A `Serving` whose `report()` is a dict with `signatures` (`{model: {signature: (inputs,
        outputs)}}` as `resolve` gives them), `show` (`{model: saved_model_cli's text}`),
        `kerasgan_imported` and `answers`: `{request id: {"session": answer, "tf2": answer}}`,
        an answer being the REST response (a dict) or a gRPC `PredictResponse` (or
        `{"error": ...}`).
    """
    return Serving(workdir, models, requests)


# === The stand-in itself (runs as a script: TensorFlow, NumPy and protos only) ===


class BadRequest(Exception):
    """A request TF Serving would refuse before running the graph."""


def _json_tensor(value, dtype, name):
    """A JSON value as an array of the signature's dtype, with TF Serving's checks."""
    import numpy as np

    try:
        array = np.array(value)
    except ValueError:
        raise BadRequest(f"input {name}: lists of different sizes") from None
    if array.dtype == object:
        raise BadRequest(f"input {name}: lists of different sizes")
    if dtype.is_integer and array.size and array.dtype.kind not in "iu":
        raise BadRequest(f"input {name}: JSON value is not of expected type: {dtype.name}")
    if not dtype.is_integer and array.size and array.dtype.kind not in "iuf":
        raise BadRequest(f"input {name}: JSON value is not a number")
    return array.astype(dtype.as_numpy_dtype)


def decode_rest(body, signatures):
    """`(signature name, {input: array}, row format?)` from a REST predict body."""
    body = json.loads(body)
    name = body.get("signature_name", "serving_default")
    if name not in signatures:
        raise BadRequest(f"Serving signature name: \"{name}\" not found in signature def")
    specs = signatures[name].structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("Missing 'inputs' or 'instances' key (exactly one of them)")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequest("'instances' must be a non-empty list")
        if not isinstance(rows[0], dict):
            if len(specs) > 1:
                raise BadRequest("instances is a plain list, but expecting list of objects")
            rows = [{next(iter(specs)): row} for row in rows]
        for index, row in enumerate(rows):
            if not isinstance(row, dict) or set(row) != set(specs):
                raise BadRequest(
                    f"Failed to process element: {index} of 'instances' list: keys must be equal "
                    f"to: {','.join(sorted(specs))}"
                )
        columns = {key: [row[key] for row in rows] for key in specs}
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            if len(specs) > 1:
                raise BadRequest("inputs is a plain value/list, but expecting an object")
            columns = {next(iter(specs)): columns}
        missing = sorted(set(specs) - set(columns))
        if missing:
            raise BadRequest(f"Missing named input: {missing[0]} in 'inputs' object.")
    tensors = {key: _json_tensor(columns[key], specs[key].dtype, key) for key in specs}
    return name, tensors, "instances" in body


def encode_rest(outputs, row):
    """TF Serving's JSON answer for named output arrays."""
    names = sorted(outputs)
    if row:
        sizes = {len(outputs[key]) for key in names}
        if len(sizes) != 1:
            return {"error": "output tensors must have the same size in the 0-th dimension"}
        if len(names) == 1:
            return {"predictions": outputs[names[0]].tolist()}
        (size,) = sizes
        return {"predictions": [{key: outputs[key][i].tolist() for key in names} for i in range(size)]}
    if len(names) == 1:
        return {"outputs": outputs[names[0]].tolist()}
    return {"outputs": {key: outputs[key].tolist() for key in names}}


def _decode_grpc(path, signatures):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    with open(path, "rb") as handle:
        request = predict_pb2.PredictRequest.FromString(handle.read())
    name = request.model_spec.signature_name or "serving_default"
    if name not in signatures:
        raise BadRequest(f"Serving signature name: \"{name}\" not found in signature def")
    specs = signatures[name].structured_input_signature[1]
    if set(request.inputs) != set(specs):
        raise BadRequest(f"the signature takes {','.join(sorted(specs))}")
    tensors = {}
    for key, proto in request.inputs.items():
        if proto.dtype != specs[key].dtype.as_datatype_enum:
            raise BadRequest(
                f"Expects arg {key} to be {specs[key].dtype.name} but "
                f"{tf.dtypes.as_dtype(proto.dtype).name} is provided"
            )
        tensors[key] = tf.make_ndarray(proto)
    return name, tensors, request


def _signature_report(signatures):
    def side(specs):
        return {key: [spec.dtype.name, spec.shape.as_list()] for key, spec in specs.items()}

    return {
        name: [side(function.structured_input_signature[1]), side(function.structured_outputs)]
        for name, function in signatures.items()
    }


def _show_all(path):
    """The text of `saved_model_cli show --all --dir path`, from the tool's own entry point."""
    import contextlib
    import io

    from tensorflow.python.tools import saved_model_cli

    text = io.StringIO()
    argv, sys.argv = sys.argv, ["saved_model_cli", "show", "--all", "--dir", path]
    try:
        with contextlib.redirect_stdout(text):
            saved_model_cli.main()
    except SystemExit as exit_status:  # absl's app.run always exits
        if exit_status.code:
            raise
    finally:
        sys.argv = argv
    return text.getvalue()


def _answer(request, decoded, run, answer_path):
    """One loader's answer to one request: a REST response, a PredictResponse file, an error."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    if isinstance(decoded, BadRequest):
        return {"error": str(decoded)}
    name, tensors, extra = decoded
    try:
        outputs = run(name, tensors)
    except (ValueError, TypeError, tf.errors.OpError) as error:
        return {"error": f"{type(error).__name__}: {error}"}
    if "rest" in request:
        return encode_rest(outputs, row=extra)
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(extra.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    with open(answer_path, "wb") as handle:
        handle.write(response.SerializeToString())
    return answer_path


def _serve_model(path, requests, workdir):
    """Load one export both ways and answer its requests: `(signatures, show, answers)`."""
    import tensorflow as tf

    show = _show_all(path)
    signatures = tf.saved_model.load(path).signatures
    decoded = {}
    for request_id, request in requests.items():
        try:
            if "rest" in request:
                decoded[request_id] = decode_rest(request["rest"], signatures)
            else:
                decoded[request_id] = _decode_grpc(request["grpc"], signatures)
        except BadRequest as error:
            decoded[request_id] = error
    answers = {request_id: {} for request_id in requests}

    def answer_all(loader, run):
        for request_id, request in requests.items():
            answer_path = os.path.join(workdir, f"{request_id}.{loader}.pb")
            answers[request_id][loader] = _answer(request, decoded[request_id], run, answer_path)

    # TF Serving's C++ loader: a session restores the variables, signatures are tensor names.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], path)

        def run_session(name, tensors):
            signature = meta_graph.signature_def[name]
            feeds = {signature.inputs[key].name: value for key, value in tensors.items()}
            fetches = {key: info.name for key, info in signature.outputs.items()}
            return session.run(fetches, feeds)

        answer_all("session", run_session)

    def run_tf2(name, tensors):
        outputs = signatures[name](**{key: tf.constant(value) for key, value in tensors.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    answer_all("tf2", run_tf2)
    return _signature_report(signatures), show, answers


def _stand_in(spec_path):
    with open(spec_path) as handle:
        spec = json.load(handle)
    workdir = os.path.dirname(spec_path)
    report = {"signatures": {}, "show": {}, "answers": {}}
    for model, path in spec["models"].items():
        requests = {key: r for key, r in spec["requests"].items() if r["model"] == model}
        signatures, show, answers = _serve_model(path, requests, workdir)
        report["signatures"][model], report["show"][model] = signatures, show
        report["answers"].update(answers)
    report["kerasgan_imported"] = any(name.split(".")[0] == "kerasgan" for name in sys.modules)
    with open(os.path.join(workdir, "report.json"), "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    _stand_in(sys.argv[1])
