"""Every course model's export is served the way TF Serving serves it, with the model's images.

For each model's tiny configuration: export it the way the CLI does (the recipe's export, or
`export.export_model`), build REST (row and columnar) and gRPC requests with `kerasgan.serving`,
and let `serving_contract.serve` answer them in a fresh process that never imports kerasgan,
through TF Serving's loader (a TF1 session) and `tf.saved_model.load`. Then check:

* the signatures are exactly the documented ones (`serving_contract.SIGNATURES`): names, input
  and output dtypes and shapes, as the loaded model and `saved_model_cli show --all` list them;
* every signature answers with the in-memory model's output (uint8 within one level, floats
  within 1e-5), decoded by `kerasgan.serving`'s response parsers;
* requests the model documents as invalid (class ids out of range, batch sizes that differ,
  truncation or crossover out of range) come back as errors that say why, raised as
  `ServingError` by the client; tensors of the wrong size (latent width, image channels) are
  refused too, with the input's name (by the session's feed check, or by the export's own
  shape check on entry).

One server process per model, started as soon as its model is exported and running while the
next model is built; each model's own test file covers the in-process behaviour.
"""

import dataclasses
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import export, recipes, serving
from kerasgan.plotting import to_uint8
from tests.serving_contract import SIGNATURES, resolve, serve


@dataclasses.dataclass
class Request:
    """One request to a served model and what must come back.

    `expected` maps output names to the in-memory model's values (None for a bad request, whose
    answer must be an error matching `error`). `checked` requests are built against the
    documented signature (as a client should); unchecked ones are sent as they are, to see
    the server refuse them.
    """

    model: str
    signature: str
    inputs: dict
    format: str  # "row", "columnar" or "grpc"
    expected: dict | None = None
    error: str | None = None
    checked: bool = True


# A tensor of the wrong size: the session loader refuses to feed it (the signature's shape);
# under `tf.saved_model.load` (and TF Serving, which feeds the graph without that check) the
# export's own check on entry refuses it, naming the input.
WRONG_SHAPE = r"ValueError: Cannot feed value of shape|InvalidArgumentError: [\s\S]*Shape of tensor \w+ \["


def latent(model, n, seed):
    return model.latent_batch(n, model.latent_dim, seed)


def diverge_from_the_average(gan):
    """Move G away from its moving average, so that only an export of the average matches."""
    if gan.generator_ema is None:
        return
    rng = np.random.default_rng(0)
    for variable in gan.generator.trainable_variables:
        variable.assign(variable.numpy() + 0.05 * rng.standard_normal(variable.shape).astype("float32"))


def images_and_floats(float_images):
    return {"images": to_uint8(float_images)}, {"images": float_images}


# === The requests each model must answer ===


def unconditional_requests(gan, name):
    z, other = latent(gan, 3, 1), latent(gan, 2, 2)
    uint8, _ = images_and_floats(gan.generate_from_latent(z))
    _, floats = images_and_floats(gan.generate_from_latent(other))
    wrong = np.zeros((2, gan.latent_dim + 1), "float32")
    return [
        Request(name, "serving_default", {"latent": z}, "row", uint8),
        Request(name, "serving_default", {"latent": z}, "grpc", uint8),
        Request(name, "predict_float", {"latent": other}, "columnar", floats),
        Request(name, "serving_default", {"latent": wrong}, "columnar", error=WRONG_SHAPE, checked=False),
    ]


def conditional_requests(gan, name):
    z, labels = latent(gan, 4, 1), np.array([0, 3, 9, 3], "int32")
    uint8, floats = images_and_floats(gan.generate_from_latent(z, condition=labels))
    inputs = {"latent": z, "labels": labels}
    return [
        Request(name, "serving_default", inputs, "row", uint8),
        Request(name, "serving_default", inputs, "grpc", uint8),
        Request(name, "predict_float", inputs, "columnar", floats),
        Request(name, "serving_default", {"latent": z[:2], "labels": np.array([1, 10])}, "row",
                error=r"labels must be class ids in \[0, 9\]"),
        Request(name, "serving_default", {"latent": z[:2], "labels": labels[:3]}, "columnar",
                error="same batch size"),
    ]


def biggan_requests(gan, name):
    diverge_from_the_average(gan)
    z, labels = latent(gan, 3, 1), np.array([2, 0, 9], "int32")

    def inputs(truncation):
        return {"latent": z, "labels": labels, "truncation": np.float32(truncation)}

    truncated, _ = images_and_floats(gan.generate_from_latent(z, condition=labels, truncation=0.5))
    _, full = images_and_floats(gan.generate_from_latent(z, condition=labels))
    return [
        Request(name, "serving_default", inputs(0.5), "columnar", truncated),
        # No truncation is `inf`: JSON's `Infinity`, which TF Serving's parser accepts.
        Request(name, "predict_float", inputs(np.inf), "columnar", full),
        Request(name, "serving_default", inputs(0.5), "grpc", truncated),
        Request(name, "serving_default", {**inputs(1.0), "labels": np.array([0, 10, 1])},
                "columnar", error=r"labels must be class ids in \[0, 9\]"),
        Request(name, "serving_default", inputs(0.0), "columnar", error="positive"),
    ]


def stylegan_requests(gan, name):
    diverge_from_the_average(gan)
    z, rows, cols = latent(gan, 3, 1), latent(gan, 2, 2), latent(gan, 3, 3)
    truncated, _ = images_and_floats(gan.generate_from_latent(z, truncation_psi=0.7))
    _, floats = images_and_floats(gan.generate_from_latent(z, truncation_psi=1.0))
    mix = {
        "images": to_uint8(gan.mix(rows, cols, 2, truncation_psi=0.8)),
        "row_images": to_uint8(gan.generate_from_latent(rows, truncation_psi=0.8)),
        "col_images": to_uint8(gan.generate_from_latent(cols, truncation_psi=0.8)),
    }
    mix_inputs = {"latent_rows": rows, "latent_cols": cols, "crossover": np.int32(2),
                  "truncation_psi": np.float32(0.8)}
    return [
        Request(name, "serving_default", {"latent": z, "truncation_psi": np.float32(0.7)},
                "columnar", truncated),
        Request(name, "serving_default", {"latent": z, "truncation_psi": np.float32(0.7)},
                "grpc", truncated),
        Request(name, "predict_float", {"latent": z, "truncation_psi": np.float32(1.0)},
                "columnar", floats),
        Request(name, "mix", mix_inputs, "columnar", mix),
        Request(name, "mix", {**mix_inputs, "crossover": np.int32(99)}, "columnar",
                error="crossover must be <="),
        Request(name, "serving_default", {"latent": z, "truncation_psi": np.float32(5.0)},
                "columnar", error="truncation_psi must be <="),
    ]


def cyclegan_requests(gan, name):
    size, channels = gan.image_size, gan.channels
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (3, size, size, channels), dtype=np.uint8)
    other_size = rng.integers(0, 256, (2, size + 24, size + 8, channels), dtype=np.uint8)
    requests = []
    for direction in ("a2b", "b2a"):
        served = f"{name}_{direction}"

        def translate(images, direction=direction):
            floats = images.astype("float32") / 127.5 - 1.0
            if images.shape[1:3] != (size, size):  # resized inside the graph, as in training
                floats = tf.image.resize(floats, (size, size), antialias=True).numpy()
            return gan.translate(floats, direction)

        uint8, floats = images_and_floats(translate(raw))
        requests += [
            Request(served, "serving_default", {"images": raw}, "row", uint8),
            Request(served, "serving_default", {"images": raw}, "grpc", uint8),
            Request(served, "predict_float", {"images": raw.astype("float32") / 127.5 - 1.0},
                    "columnar", floats),
            Request(served, "serving_default", {"images": other_size}, "columnar",
                    images_and_floats(translate(other_size))[0]),
        ]
    wrong_channels = np.zeros((1, size, size, channels + 2), "uint8")
    requests.append(Request(f"{name}_a2b", "serving_default", {"images": wrong_channels},
                            "columnar", error=WRONG_SHAPE, checked=False))
    return requests


def stylizer_requests(stylizer, name):
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (2, 36, 44, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (1, 30, 30, 3), dtype=np.uint8)
    inputs = {"content": content, "style": style, "alpha": np.float32(0.6)}
    expected = {"images": stylizer.stylize_uint8(content, style, 0.6).numpy()}
    grey = {**inputs, "content": content[..., :1]}
    return [
        Request(name, "serving_default", inputs, "columnar", expected),
        Request(name, "serving_default", inputs, "grpc", expected),
        Request(name, "serving_default", grey, "columnar", error=WRONG_SHAPE, checked=False),
    ]


# === The models: how each is built and exported ===


def from_recipe(name, image_size, channels):
    def build():
        return recipes.get_recipe(name).build("tiny", image_size, channels, 0)

    def export_it(model, export_dir):
        paths = (recipes.get_recipe(name).export or export.export_model)(model, export_dir, name)
        return {os.path.basename(os.path.dirname(path)): path for path in paths.split(", ")}

    return build, export_it


def tiny_stylizer():
    from kerasgan.style_transfer import AdaINStylizer

    return AdaINStylizer(encoder_weights="random", decoder_filters=(16, 8, 8), image_size=32)


def export_stylizer(model, export_dir):
    return {"stylizer": export.export_model(model, export_dir, name="stylizer")}


# name: (build, export, requests, sizes of the documented shapes)
MODELS = {
    "dcgan": (*from_recipe("dcgan", 28, 1), unconditional_requests, {"size": 28, "channels": 1}),
    "cgan": (*from_recipe("cgan", 28, 1), conditional_requests, {"size": 28, "channels": 1}),
    "wgan-gp": (*from_recipe("wgan-gp", 28, 1), unconditional_requests, {"size": 28, "channels": 1}),
    "cyclegan": (*from_recipe("cyclegan", 16, 1), cyclegan_requests, {"size": 16, "channels": 1}),
    "stylegan": (*from_recipe("stylegan", 16, 3), stylegan_requests, {"size": 16, "channels": 3}),
    "biggan": (*from_recipe("biggan", 32, 3), biggan_requests, {"size": 32, "channels": 3}),
    "stylizer": (tiny_stylizer, export_stylizer, stylizer_requests, {}),
}


def test_every_recipe_model_is_covered():
    assert set(recipes.MODEL_MODULES) <= set(MODELS)


# === The check ===


def wire_request(request, documented):
    specs = documented[request.model][request.signature][0] if request.checked else None
    if request.format == "grpc":
        return serving.grpc_request(request.model, request.inputs, specs, request.signature)
    signature = None if request.signature == "serving_default" else request.signature
    return serving.rest_payload(request.inputs, specs, request.format, signature)


def answer_values(request, answer, output):
    if request.format == "grpc":
        assert not isinstance(answer, dict), answer
        return serving.grpc_response_images(answer, output)
    if request.expected[output].dtype == np.uint8:
        return serving.images_from_response(answer, output)
    return serving.parse_rest_response(answer, output)


def check_answer(request, answer, where):
    if request.expected is None:
        if request.format == "grpc":
            assert re.search(request.error, answer["error"]), (where, answer)
        else:
            with pytest.raises(serving.ServingError, match=request.error):
                serving.parse_rest_response(answer)
        return
    if isinstance(answer, dict) and "error" in answer:
        pytest.fail(f"{where}: a valid request was refused: {answer['error'][:2000]}")
    for output, expected in request.expected.items():
        got = answer_values(request, answer, output)
        assert got.shape == expected.shape, (where, output, got.shape, expected.shape)
        if expected.dtype == np.uint8:
            assert got.dtype == np.uint8, (where, output, got.dtype)
            worst = np.abs(got.astype(int) - expected.astype(int)).max()
            assert worst <= 1, f"{where}: {output} differs by {worst} levels"
        else:
            np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{where}: {output}")


def listed_signatures(text):
    """`{signature: (inputs, outputs)}` from `saved_model_cli show --all`'s text."""
    dtypes = {"DT_FLOAT": "float32", "DT_UINT8": "uint8", "DT_INT32": "int32"}
    listed = {}
    blocks = re.split(r"\nsignature_def\['([^']+)'\]:\n", text)
    for name, block in zip(blocks[1::2], blocks[2::2]):
        block = block.split("\n\n")[0]
        if name.startswith("__"):
            continue
        assert "Method name is: tensorflow/serving/predict" in block, (name, block)
        sides = ({}, {})
        for side, key, dtype, shape in re.findall(
            r"(inputs|outputs)\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+shape: \(([^)]*)\)", block
        ):
            dims = tuple(None if d == "-1" else int(d) for d in shape.replace(" ", "").split(",") if d)
            sides[side == "outputs"][key] = (dtypes.get(dtype, dtype), dims)
        listed[name] = sides
    return listed


def prepare(name, workdir):
    """Build and export a model, compute its expected answers and start its server."""
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    build, export_it, make_requests, sizes = MODELS[name]
    model = build()
    requests = make_requests(model, name)
    paths = export_it(model, os.path.join(workdir, "models"))
    sizes = {**sizes, "latent_dim": getattr(model, "latent_dim", None)}
    documented = {served: resolve(SIGNATURES[served], **sizes) for served in paths}
    wire = {f"r{i}": (r.model, wire_request(r, documented)) for i, r in enumerate(requests)}
    keras.backend.clear_session(free_memory=False)
    return paths, documented, requests, serve(os.path.join(workdir, "server"), paths, wire)


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """Every selected model, prepared one after the other while the servers of the previous
    ones answer (two processes at a time: the machine's two cores stay busy)."""
    selected = {
        item.callspec.params["name"] for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    results, running = {}, []
    for name in MODELS:
        if name not in selected:
            continue
        try:
            results[name] = prepare(name, str(tmp_path_factory.mktemp(name)))
            running.append(results[name][-1])
        except Exception as error:  # reported by that model's test, not by the others'
            results[name] = error
        if len(running) > 1:
            running.pop(0).process.wait()
    yield results
    for result in results.values():
        if not isinstance(result, Exception):
            result[-1].stop()


@pytest.mark.parametrize("name", list(MODELS))
def test_export_is_served_like_the_model_in_memory(name, served):
    if isinstance(served[name], Exception):
        raise served[name]
    paths, documented, requests, server = served[name]
    report = server.report()

    assert report["kerasgan_imported"] is False
    for model in paths:
        assert report["signatures"][model] == documented[model], model
        assert listed_signatures(report["show"][model]) == documented[model], model
    assert len(report["answers"]) == len(requests)
    for index, request in enumerate(requests):
        for loader in ("session", "tf2"):
            where = f"{request.model} {request.signature} {request.format} via {loader}"
            check_answer(request, report["answers"][f"r{index}"][loader], where)
