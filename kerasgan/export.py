"""Ship a trained generator as a SavedModel that TF Serving can load.

TF Serving reads `MODEL_BASE/<name>/<version>/` where `<version>` is an integer folder; it serves
the highest version and can roll back to an older one. Each export here:

* goes to the next free integer version under `export_dir/<name>/` (`name` a plain folder
  name); an existing version is never replaced;
* claims its version atomically (`os.mkdir` of a hidden `.tmp-<version>` folder that records
  the exporting process), is written inside that claim and renamed into the integer folder
  only when complete: two exports racing for one model get a version each, and a server
  polling the folder (or a user after a crash) never sees an empty or half-written version
  (TF Serving takes any integer folder for a version, and fails to load an incomplete one);
* leaves no claim behind when it fails; a claim left by a killed export (its process is gone)
  is removed by the next export, and claims are never counted as versions;
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
import shutil
import socket
import time

import tensorflow as tf

from kerasgan import __version__
from kerasgan.errors import ExportError
from kerasgan.utils import apply_umask, process_is_running

METADATA_FILE = os.path.join("assets.extra", "kerasgan.json")
# A version being written: `.tmp-<version>/` holds `owner` ("<pid> <host>") and `model/`.
_CLAIM = re.compile(r"\.tmp-(\d+)")
_OWNER, _CLAIMED_MODEL = "owner", "model"
# A claim without its owner file is one created a moment ago (or by a process killed between
# mkdir and the write); only after this long is it taken for a leftover.
_UNOWNED_CLAIM_SECONDS = 600
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def images_to_uint8(images):
    """Graph-side conversion of `[-1, 1]` float images to uint8 `[0, 255]` (rounded, clipped)."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def check_export_name(name):
    """`name` if it is a plain folder name (letters, digits, `_`, `.`, `-`; not `.` or `..`).

    Raises:
        ExportError: for anything else (`../x`, `/abs`, `a/b`, an empty name).
    """
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or name in (".", ".."):
        raise ExportError(
            f"the export name must be a plain folder name (letters, digits, '_', '.', '-'), "
            f"got {name!r}"
        )
    return name


def version_folders(model_dir):
    """The integer version folders under `model_dir`, ascending (claims are not versions)."""
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
        name: the model's folder name, a plain name (`[A-Za-z0-9_.-]+`, not `.` or `..`;
            default: the model's `name`).
        version: an explicit integer version (default: the next free one); an existing or
            claimed version is refused, never replaced.
        metadata: extra JSON-serialisable facts stored in `assets.extra/kerasgan.json`.

    Returns:
        The path of the new version folder.

    Raises:
        ExportError: when the name is not a plain name, the version exists or is being
            exported, or the folder cannot be written (disk full, no permission); nothing
            half-written remains (no integer folder, no claim).

    Example:
        >>> path = export_model(gan, "saved_models", name="dcgan")     # saved_models/dcgan/1
        >>> served = tf.saved_model.load(path).signatures["serving_default"]
        >>> served(latent=tf.random.normal([4, 100]))["images"].dtype    # tf.uint8
    """
    name = check_export_name(model.name if name is None else name)
    model_dir = os.path.join(export_dir, name)
    functions = {key: _shape_checked(f) for key, f in model.serving_functions().items()}
    module = _ServingModule(model, functions)
    try:
        os.makedirs(model_dir, exist_ok=True)
        _remove_dead_claims(model_dir)
        version, claim = _claim_version(model_dir, version)
    except ExportError:
        raise
    except OSError as error:
        raise ExportError(f"cannot write the export to {model_dir}: {_reason(error)}") from None
    final = os.path.join(model_dir, str(version))
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
    tmp = os.path.join(claim, _CLAIMED_MODEL)
    try:
        os.mkdir(tmp)
        with _quiet_tensorflow_logger():
            tf.saved_model.save(module, tmp, signatures=functions)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, METADATA_FILE), "w") as handle:
            json.dump(info, handle, indent=2)
        apply_umask(tmp, directory=True)
        # The claim keeps every other kerasgan export away from `final`; rename() would only
        # replace an empty folder someone made by hand, never a version.
        os.rename(tmp, final)
    except (OSError, tf.errors.OpError) as error:
        raise ExportError(f"cannot write the export to {model_dir}: {_reason(error)}") from None
    finally:
        shutil.rmtree(claim, ignore_errors=True)
    return final


def _reason(error):
    """The first line of an OSError's or a TensorFlow error's message."""
    if isinstance(error, tf.errors.OpError):
        text = error.message
    else:
        text = error.strerror or str(error)
    return (text.strip().splitlines() or [type(error).__name__])[0]


def _claim_version(model_dir, version=None):
    """Atomically claim `version` (or the next free one) under `model_dir`.

    Returns:
        `(version, claim_folder)`; the caller removes the claim when done.

    Raises:
        ExportError: an explicit `version` exists or another export holds it.
    """
    explicit = version is not None
    version = int(version) if explicit else next_version(model_dir)
    while True:
        final = os.path.join(model_dir, str(version))
        claim = os.path.join(model_dir, f".tmp-{version}")
        if os.path.lexists(final):
            if explicit:
                raise ExportError(f"{final} already exists; TF Serving versions are never overwritten")
            version += 1
            continue
        try:
            os.mkdir(claim)
        except FileExistsError:
            if explicit:
                raise ExportError(
                    f"version {version} of {model_dir} is being exported by another process "
                    f"({claim}); choose another version"
                ) from None
            version += 1
            continue
        try:
            with open(os.path.join(claim, _OWNER), "w") as handle:
                handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        except BaseException:
            shutil.rmtree(claim, ignore_errors=True)
            raise
        # An export that held this claim may have finished between our look and our mkdir.
        if os.path.lexists(final):
            shutil.rmtree(claim, ignore_errors=True)
            if explicit:
                raise ExportError(f"{final} already exists; TF Serving versions are never overwritten")
            version += 1
            continue
        return version, claim


def _remove_dead_claims(model_dir):
    """Remove claims whose exporting process is gone (an export killed with SIGKILL, a power cut)."""
    for entry in os.listdir(model_dir):
        claim = os.path.join(model_dir, entry)
        if _CLAIM.fullmatch(entry) and os.path.isdir(claim) and not _claim_is_alive(claim):
            shutil.rmtree(claim, ignore_errors=True)


def _claim_is_alive(claim):
    try:
        with open(os.path.join(claim, _OWNER)) as handle:
            pid, host = handle.read().split()
        pid = int(pid)
    except (OSError, ValueError):  # no owner yet: fresh, unless it is old
        try:
            return time.time() - os.stat(claim).st_mtime < _UNOWNED_CLAIM_SECONDS
        except OSError:
            return False
    if host != socket.gethostname():
        return True  # another machine's export (a shared folder): not ours to judge
    return process_is_running(pid)


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
