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
* has named signatures chosen by the kind of model (`serving_functions(model)` below: a GAN's
  `serving_default` takes `latent` float32 `[None, latent_dim]` and returns `images` uint8
  `[None, H, W, C]`; `predict_float` returns the raw `[-1, 1]` floats for research use;
  conditional models add `labels`, BigGAN a `truncation`, StyleGAN a `truncation_psi` and a
  `mix` signature, and each CycleGAN direction maps images to images).

The model files hold the lessons; this module holds the wiring that turns a trained model into
served functions, so no model file imports it.

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
from kerasgan.utils import apply_umask, process_is_running, to_uint8

METADATA_FILE = os.path.join("assets.extra", "kerasgan.json")
# A version being written: `.tmp-<version>/` holds `owner` ("<pid> <host>") and `model/`.
_CLAIM = re.compile(r"\.tmp-(\d+)")
_OWNER, _CLAIMED_MODEL = "owner", "model"
# A claim without its owner file is one created a moment ago (or by a process killed between
# mkdir and the write); only after this long is it taken for a leftover.
_UNOWNED_CLAIM_SECONDS = 600
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


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


# === What each kind of model serves ===


def serving_functions(model):
    """The functions an export of `model` serves, by signature name.

    Chosen by the kind of model: an object with its own `serving_functions()` method (the
    style-transfer `AdaINStylizer`) keeps them; otherwise StyleGAN, BigGAN, conditional GANs,
    CycleGAN directions and unconditional GANs each get the functions below. A bare `CycleGAN`
    serves its `a2b` direction (`export_directions` exports both).

    Args:
        model: a kerasgan model, a `CycleGANDirection`, or any object with `serving_functions()`.

    Returns:
        A dict of signature name -> `tf.function` with an input signature, returning a dict.

    Raises:
        ExportError: for an object that is none of these.
    """
    from kerasgan.models import GAN, BigGAN, ConditionalGAN, CycleGAN, StyleGAN

    if isinstance(model, CycleGANDirection):
        return cyclegan_serving_functions(model.gan, model.direction)
    if hasattr(model, "serving_functions"):
        return model.serving_functions()
    if isinstance(model, StyleGAN):
        return stylegan_serving_functions(model)
    if isinstance(model, BigGAN):
        return biggan_serving_functions(model)
    if isinstance(model, ConditionalGAN):
        return conditional_serving_functions(model)
    if isinstance(model, CycleGAN):
        return cyclegan_serving_functions(model, "a2b")
    if isinstance(model, GAN):
        return unconditional_serving_functions(model)
    raise ExportError(f"cannot export a {type(model).__name__}: not a kerasgan model")


def unconditional_serving_functions(gan):
    """`serving_default`: `latent` float32 `[None, latent_dim]` -> `images` uint8.
    `predict_float`: the same input -> `images` float32 in `[-1, 1]`.
    """
    generator = gan.sampling_generator
    latent_spec = tf.TensorSpec([None, gan.latent_dim], tf.float32, name="latent")

    @tf.function(input_signature=[latent_spec])
    def serving_default(latent):
        return {"images": to_uint8(generator(latent, training=False))}

    @tf.function(input_signature=[latent_spec])
    def predict_float(latent):
        return {"images": tf.cast(generator(latent, training=False), tf.float32)}

    return {"serving_default": serving_default, "predict_float": predict_float}


def conditional_serving_functions(gan):
    """`latent` float32 `[None, latent_dim]` and `labels` int32 `[None]` -> `images` (uint8 from
    `serving_default`, `[-1, 1]` floats from `predict_float`).

    Labels outside `[0, num_classes)` and a latent batch that does not match the labels are
    rejected inside the graph (`InvalidArgumentError` naming the range), so a server answers a
    bad request with a clear error instead of an embedding lookup failure.
    """
    generator = gan.sampling_generator
    num_classes = gan.num_classes
    specs = [
        tf.TensorSpec([None, gan.latent_dim], tf.float32, name="latent"),
        tf.TensorSpec([None], tf.int32, name="labels"),
    ]
    out_of_range = f"labels must be class ids in [0, {num_classes - 1}]"

    def draw(latent, labels):
        checks = [
            tf.debugging.assert_non_negative(labels, message=out_of_range),
            tf.debugging.assert_less(labels, num_classes, message=out_of_range),
            tf.debugging.assert_equal(
                tf.shape(latent)[0], tf.shape(labels)[0],
                message="latent and labels must have the same batch size",
            ),
        ]
        with tf.control_dependencies(checks):
            labels = tf.identity(labels)
        return generator([latent, labels], training=False)

    @tf.function(input_signature=specs)
    def serving_default(latent, labels):
        return {"images": to_uint8(draw(latent, labels))}

    @tf.function(input_signature=specs)
    def predict_float(latent, labels):
        return {"images": tf.cast(draw(latent, labels), tf.float32)}

    return {"serving_default": serving_default, "predict_float": predict_float}


def biggan_serving_functions(gan):
    """The conditional signatures with a third input: `latent` float32 `[None, latent_dim]`,
    `labels` int32 `[None]` and `truncation` float32 scalar (`inf`: none) -> `images` (uint8
    from `serving_default`, `[-1, 1]` floats from `predict_float`).

    The latents are truncated inside the graph, then go through the conditional functions,
    which reject labels outside `[0, num_classes)` and mismatched batch sizes; a non-positive
    truncation is rejected here, each with a message saying so.
    """
    from kerasgan.models.biggan import truncate_latent

    truncation_spec = tf.TensorSpec([], tf.float32, name="truncation")

    def with_truncation(labelled):
        draw = labelled.python_function  # traced into this graph, not called as a function

        @tf.function(input_signature=[*labelled.input_signature, truncation_spec])
        def serve(latent, labels, truncation):
            check = tf.debugging.assert_positive(
                truncation, message="truncation must be a positive threshold (inf: none)"
            )
            with tf.control_dependencies([check]):
                latent = truncate_latent(latent, truncation)
            return draw(latent, labels)

        return serve

    return {name: with_truncation(f) for name, f in conditional_serving_functions(gan).items()}


def stylegan_serving_functions(gan):
    """StyleGAN's signatures.

    * `serving_default`: `latent` float32 `[None, latent_dim]` and `truncation_psi` float32
      scalar -> `images` uint8. A SavedModel signature has no default values: every caller
      passes `truncation_psi` (1.0 for no truncation, 0.7 typical).
    * `predict_float`: the same inputs -> `images` float32 in `[-1, 1]`.
    * `mix`: `latent_rows` `[R, latent_dim]`, `latent_cols` `[C, latent_dim]`, `crossover`
      int32 scalar, `truncation_psi` -> `images` uint8 `[R, C, H, W, ch]` (cell `(i, j)`:
      styles before `crossover` from row `i`, the rest from column `j`), plus `row_images` and
      `col_images`, the unmixed sources.

    `truncation_psi` outside `stylegan.PSI_RANGE` and `crossover` outside `[0, num_styles]` are
    rejected by the graph (InvalidArgumentError).
    """
    from kerasgan.models.stylegan import PSI_RANGE

    generator = gan.sampling_generator
    latent_spec = tf.TensorSpec([None, gan.latent_dim], tf.float32, name="latent")
    psi_spec = tf.TensorSpec([], tf.float32, name="truncation_psi")
    low, high = PSI_RANGE

    def checked_psi(psi):
        tf.debugging.assert_greater_equal(psi, low, message=f"truncation_psi must be >= {low}")
        tf.debugging.assert_less_equal(psi, high, message=f"truncation_psi must be <= {high}")
        return psi

    def images_for(latent, psi):
        return gan.render(gan.styles(latent, checked_psi(psi), generator), generator)

    @tf.function(input_signature=[latent_spec, psi_spec])
    def serving_default(latent, truncation_psi):
        return {"images": to_uint8(images_for(latent, truncation_psi))}

    @tf.function(input_signature=[latent_spec, psi_spec])
    def predict_float(latent, truncation_psi):
        return {"images": tf.cast(images_for(latent, truncation_psi), tf.float32)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, gan.latent_dim], tf.float32, name="latent_rows"),
            tf.TensorSpec([None, gan.latent_dim], tf.float32, name="latent_cols"),
            tf.TensorSpec([], tf.int32, name="crossover"),
            psi_spec,
        ]
    )
    def mix(latent_rows, latent_cols, crossover, truncation_psi):
        tf.debugging.assert_greater_equal(crossover, 0, message="crossover must be >= 0")
        tf.debugging.assert_less_equal(
            crossover, gan.num_styles, message=f"crossover must be <= {gan.num_styles}"
        )
        psi = checked_psi(truncation_psi)
        grid = gan._mix_graph(latent_rows, latent_cols, crossover, psi)
        return {
            "images": to_uint8(grid),
            "row_images": to_uint8(images_for(latent_rows, psi)),
            "col_images": to_uint8(images_for(latent_cols, psi)),
        }

    return {"serving_default": serving_default, "predict_float": predict_float, "mix": mix}


def cyclegan_serving_functions(gan, direction="a2b"):
    """The signatures of one CycleGAN direction's export (see `export_directions`).

    * `serving_default`: `images` uint8 `[None, height, width, channels]` of *any* height and
      width -> `images` uint8 `[None, image_size, image_size, channels]`. Inputs are resized
      inside the graph to the model's size (bilinear, antialiased, aspect ratio not kept), as
      the training data was; outputs are at the model's size.
    * `predict_float`: the same for float32 images in `[-1, 1]`, returning float32.
    """
    generator = gan.generator_for(direction)
    size = (gan.image_size, gan.image_size)

    def resized_translation(images):
        images = tf.image.resize(images, size, method="bilinear", antialias=True)
        return tf.cast(generator(images, training=False), tf.float32)

    # No Python control flow here, so no AutoGraph conversion (which trips over closures).
    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, None, gan.channels], tf.uint8, name="images")
    ])
    def serving_default(images):
        floats = tf.cast(images, tf.float32) / 127.5 - 1.0
        return {"images": to_uint8(resized_translation(floats))}

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, None, gan.channels], tf.float32, name="images")
    ])
    def predict_float(images):
        return {"images": resized_translation(images)}

    return {"serving_default": serving_default, "predict_float": predict_float}


class CycleGANDirection:
    """One translation direction of a CycleGAN, in the shape `export_model` expects: a name,
    the variables to save (that direction's generator only: no discriminators, pools or preview
    images in the export); `serving_functions` gives it `cyclegan_serving_functions`.

    Args:
        gan: a `CycleGAN`.
        direction: `"a2b"` or `"b2a"`.
    """

    def __init__(self, gan, direction):
        self.generator = gan.generator_for(direction)
        self.gan = gan
        self.direction = direction
        self.name = f"{gan.name}_{direction}"

    @property
    def variables(self):
        return self.generator.variables


def export_directions(gan, export_dir="saved_models", name="cyclegan", version=None, metadata=None):
    """Export both directions as separate SavedModels: `<name>_a2b` (G) and `<name>_b2a` (F).

    Each is a TF Serving model of its own (`export_dir/<name>_a2b/<version>/`), with the
    signatures of `cyclegan_serving_functions`.

    Args:
        gan: a `CycleGAN`.
        export_dir: the TF Serving model base folder.
        name: the prefix of the two model folders.
        version: an explicit version for both (default: each folder's next free one).
        metadata: extra facts for `assets.extra/kerasgan.json`.

    Returns:
        The two version folders, joined by ", " (for the run summary line).

    Raises:
        ExportError: as `export_model`.
    """
    from kerasgan.models.cyclegan import DIRECTIONS

    paths = []
    for direction in DIRECTIONS:
        facts = {
            **(metadata or {}), "direction": direction, "image_size": gan.image_size,
            "channels": gan.channels,
        }
        paths.append(export_model(
            CycleGANDirection(gan, direction), export_dir, f"{name}_{direction}", version, facts
        ))
    return ", ".join(paths)


# === Writing a version ===


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
        model: any kerasgan model (see `serving_functions` for what each kind serves).
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
    functions = {key: _shape_checked(f) for key, f in serving_functions(model).items()}
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
