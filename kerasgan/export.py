"""Ship a trained generator as a SavedModel that TF Serving can load.

TF Serving reads `MODEL_BASE/<name>/<version>/` where `<version>` is an integer folder; it serves
the highest version and can roll back to an older one. Each export here:

* goes to the next free integer version under `export_dir/<name>/`;
* is written to a hidden temporary folder first and renamed into place, so a server polling the
  folder (or a user after a crash) never sees half a model;
* holds everything a client must not re-implement inside the graph: the conversion to uint8
  images, input validation where TensorFlow can check it;
* has named signatures built from the model's own `serving_functions()` (a GAN's
  `serving_default` takes `latent` float32 `[None, latent_dim]` and returns `images` uint8
  `[None, H, W, C]`; `predict_float` returns the raw `[-1, 1]` floats for research use).

`tf.saved_model.save` with `tf.function`s that return dicts gives clean names that
`saved_model_cli show --all` prints as they are.

Only load SavedModels you trust: a SavedModel runs whatever graph it holds.
"""

import contextlib
import json
import logging
import os
import re

import tensorflow as tf

from kerasgan import __version__
from kerasgan.errors import ExportError
from kerasgan.utils import atomic_path

METADATA_FILE = os.path.join("assets.extra", "kerasgan.json")


def images_to_uint8(images):
    """Graph-side conversion of `[-1, 1]` float images to uint8 `[0, 255]` (rounded, clipped)."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def version_folders(model_dir):
    """The integer version folders under `model_dir`, ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name))


def next_version(model_dir):
    """The version number the next export under `model_dir` gets (1 for the first)."""
    versions = version_folders(model_dir)
    return versions[-1] + 1 if versions else 1


def resolve_saved_model(path):
    """Accept a model folder (`saved_models/dcgan`, newest version used) or a version folder.

    Raises:
        ExportError: when `path` holds no SavedModel.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = version_folders(path)
    if versions:
        return os.path.join(path, str(versions[-1]))
    raise ExportError(
        f"no SavedModel at {path}: expected saved_model.pb there or integer version folders "
        "(e.g. saved_models/dcgan/1)"
    )


class _ServingModule(tf.Module):
    """The object `tf.saved_model.save` writes: the model's variables and its functions."""

    def __init__(self, model, functions):
        super().__init__()
        # Listed explicitly: SavedModel only keeps variables reachable from the saved object,
        # and a Keras 3 model's variables are not found by attribute traversal. The underlying
        # `tf.Variable`s (`.value`), not Keras's wrappers: with the wrappers the export loads in
        # Python but TF Serving's C++ loader (like `saved_model_cli run`) never restores them.
        self.model_variables = [variable.value for variable in model.variables]
        for name, function in functions.items():
            setattr(self, name, function)


def _shape_checked(function):
    """`function` behind a check of each input's shape against its signature.

    TF Serving passes requests to the graph without comparing them to the signature's declared
    shapes, so a latent of the wrong width would fail deep inside the generator ("Matrix
    size-incompatible: In[0]: [2,5], In[1]: [8,3136]"). Checked on entry, the error names the
    input and both shapes: "Shape of tensor latent [2,5] is not compatible with expected shape
    [?,8]". The signature's input names are its specs' names, as before.
    """
    specs = function.input_signature

    @tf.function(input_signature=specs, autograph=False)
    def checked(*inputs):
        return function(*(tf.ensure_shape(x, spec.shape) for x, spec in zip(inputs, specs)))

    return checked


@contextlib.contextmanager
def _quiet_tensorflow_logger():
    """Hide `tf.saved_model.save`'s "INFO:tensorflow:Assets written to: <temp path>" lines."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_model(model, export_dir="saved_models", name=None, version=None, metadata=None):
    """Export `model`'s serving functions as a versioned SavedModel.

    Args:
        model: any kerasgan model with `serving_functions()` (every course model has it).
        export_dir: the TF Serving model base folder.
        name: the model's folder name (default: the model's `name`).
        version: an explicit integer version (default: the next free one).
        metadata: extra JSON-serialisable facts stored in `assets.extra/kerasgan.json`.

    Returns:
        The path of the new version folder.

    Raises:
        ExportError: when the folder cannot be written or the version exists.

    Example:
        >>> path = export_model(gan, "saved_models", name="dcgan")     # saved_models/dcgan/1
        >>> served = tf.saved_model.load(path).signatures["serving_default"]
        >>> served(latent=tf.random.normal([4, 100]))["images"].dtype    # tf.uint8
    """
    name = name or model.name
    model_dir = os.path.join(export_dir, name)
    version = next_version(model_dir) if version is None else int(version)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} already exists; TF Serving versions are never overwritten")
    functions = {name: _shape_checked(f) for name, f in model.serving_functions().items()}
    module = _ServingModule(model, functions)
    info = {
        "kerasgan_version": __version__,
        "model_class": type(model).__name__,
        "name": name,
        "version": version,
        "signatures": sorted(functions),
        **(metadata or {}),
    }
    # What a client needs to build a valid request (e.g. the label range of conditional models).
    for attribute in ("latent_dim", "num_classes"):
        if getattr(model, attribute, None) is not None:
            info.setdefault(attribute, int(getattr(model, attribute)))
    try:
        os.makedirs(model_dir, exist_ok=True)
        with atomic_path(final, directory=True) as tmp, _quiet_tensorflow_logger():
            tf.saved_model.save(module, tmp, signatures=functions)
            os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
            with open(os.path.join(tmp, METADATA_FILE), "w") as handle:
                json.dump(info, handle, indent=2)
    except OSError as error:
        raise ExportError(f"cannot write the export to {model_dir}: {error.strerror or error}") from None
    return final


def read_metadata(path):
    """The `assets.extra/kerasgan.json` facts of an export (empty dict when absent)."""
    meta = os.path.join(resolve_saved_model(path), METADATA_FILE)
    if not os.path.isfile(meta):
        return {}
    with open(meta) as handle:
        return json.load(handle)


def load_serving_signature(path, signature="serving_default"):
    """Load an export the way TF Serving does (no kerasgan code involved).

    Returns:
        `(signature_function, input_specs)` where `input_specs` maps input names to
        `tf.TensorSpec`s.

    Raises:
        ExportError: when there is no SavedModel or no such signature.
    """
    path = resolve_saved_model(path)
    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ExportError(f"cannot load the SavedModel at {path}: {error}") from None
    if signature not in loaded.signatures:
        raise ExportError(
            f"{path} has no signature {signature!r}; it has: {', '.join(loaded.signatures)}"
        )
    function = loaded.signatures[signature]
    # Keep the loaded object alive as long as the function is used.
    function._kerasgan_owner = loaded
    return function, dict(function.structured_input_signature[1])
