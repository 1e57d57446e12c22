r"""Neural style transfer: paint a photo in the style of another image.

A convolutional network trained to recognise objects describes an image at every layer by
feature maps. Deep layers keep *what* is where (the content) and forget exact pixels; the
correlations between feature channels, summed over all positions, keep textures, colours and
brush strokes and forget *where* they are (the style). Style transfer looks for an image whose
deep features match a content photo and whose feature correlations match a painting.

This module teaches two ways to get that image:

1. **Optimisation** (Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
   Networks", CVPR 2016, https://arxiv.org/abs/1508.06576): start from the photo and run
   gradient descent *on the pixels* for a few hundred steps (`stylize`). Any style, best
   quality, slow: every image is an optimisation problem.
2. **Feed-forward** (Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive
   Instance Normalization", ICCV 2017, https://arxiv.org/abs/1703.06868): train a decoder once
   so that one forward pass does the job for any style (`AdaINStylizer`). This is the model a
   user exports and serves.

The equations (Gatys et al.). Write the feature map of layer `l` for image `x` as a matrix
`F^l` of shape `N_l x M_l`: `N_l` channels, `M_l = H_l * W_l` positions. With `p` the content
photo, `a` the style image and `P^l`, `A^l` their features:

    content loss    L_content = 1/2 sum_ij (F^l_ij - P^l_ij)^2   (one deep layer l: conv4_2)
    Gram matrix     G^l_ij    = sum_k F^l_ik F^l_jk                 (channel i with channel j)
    style loss      E_l       = 1 / (4 N_l^2 M_l^2) sum_ij (G^l_ij - A^l_ij)^2
                    L_style   = sum_l w_l E_l                          (several layers, sum w_l = 1)
    total           L         = alpha L_content + beta L_style + gamma L_TV

and the total-variation term, which Gatys et al. did not use and later work (Johnson et al.,
2016) added to suppress high-frequency noise, penalises differences between neighbouring
pixels: `L_TV = sum_ij |x_{i+1,j} - x_{i,j}| + |x_{i,j+1} - x_{i,j}|`.

Here the Gram matrix is divided by `M_l` and every squared error is a mean rather than a sum,
so losses do not grow with the image size; the constant factors (1/2, 1/4) are absorbed into the
weights alpha, beta and gamma. With ImageNet weights the defaults are those of TensorFlow's
style-transfer tutorial (Adam, learning rate 0.02, content 1e4, style 1e-2, TV 30, content
layer `block5_conv2`), which are known to work; the paper's content layer, conv4_2, is
`content_layers=GATYS_CONTENT_LAYERS` (the content weight may then need retuning); a random-weight VGG19 has larger, denser deep activations, so its defaults
(`LOSS_WEIGHTS["random"]`) were chosen by eye on this package's embedded images.

**Weights.** The features come from VGG19 trained on ImageNet (`weights="imagenet"`), which
Keras downloads once (80 MB) and caches under `~/.keras/models`. Offline, pass the path of a
local copy of `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`, or `weights="random"`: a
VGG19 with fixed, seeded random weights. Random-weight networks still synthesise textures
(Ustyuzhaninov et al., "What does it take to generate natural textures?", ICLR 2017; He et al.,
2016), so the mechanics can be learnt and tested offline, but the results are visibly weaker:
label them as such.
"""

import functools
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from PIL import Image, ImageOps, UnidentifiedImageError

from kerasgan.errors import ConfigError, DataError
from kerasgan.layers import AdaIN, ReflectionPadding2D
from kerasgan.losses import (  # re-exported: st.gram_matrix etc. keep working
    content_loss,
    gram_matrix,  # noqa: F401 (used through style_loss; part of this module's API)
    style_loss,
    style_statistics_loss,
    total_variation_loss,
)
from kerasgan.precision import resolve_policy
from kerasgan.utils import dtype_policy, is_offline, to_uint8

# Content from one deep layer, style from the first layer of every block. Gatys et al. take
# the content from conv4_2 (`GATYS_CONTENT_LAYERS`); the default here is TensorFlow's
# style-transfer tutorial's block5_conv2, the layer its loss weights (`LOSS_WEIGHTS`, which the
# notebook and the CLI use) were tuned with: matching the deeper layer keeps the photo's layout
# and leaves the style freer to repaint textures.
CONTENT_LAYERS = ("block5_conv2",)
GATYS_CONTENT_LAYERS = ("block4_conv2",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# AdaIN encodes up to relu4_1 (Keras's VGG19 convolutions include their ReLU).
ADAIN_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")

VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# The seed of the one fixed random-weight VGG19 that `weights="random"` means everywhere.
RANDOM_VGG19_SEED = 2016

# Default (content, style, total-variation) weights per kind of VGG19 (see the module docstring).
LOSS_WEIGHTS = {
    "imagenet": {"content_weight": 1e4, "style_weight": 1e-2, "tv_weight": 30.0},
    "random": {"content_weight": 10.0, "style_weight": 1e-2, "tv_weight": 1.0},
}

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 4096
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


# === Images in and out ===


def check_image_size(value, name="image_size"):
    """Return `value` as an int if it is a sensible image size in pixels, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number of pixels, got {value!r}")
    if not MIN_IMAGE_SIZE <= value <= MAX_IMAGE_SIZE:
        raise ConfigError(
            f"{name} must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, got {value}"
        )
    return int(value)


def load_image(path, max_size=None):
    """Read an image file as an RGB `uint8` array, with a clear error for anything unusable.

    Grayscale and palette images are converted to RGB; images with transparency are composited
    onto white (the colour a viewer shows behind them); EXIF rotation is applied.

    Args:
        path: path of a JPEG, PNG, BMP or GIF file (anything Pillow reads).
        max_size: if given, shrink the image (keeping its aspect ratio) so that its longer side
            is at most this many pixels.

    Returns:
        `uint8` NumPy array `[H, W, 3]`.

    Raises:
        DataError: the file is missing, is not an image, or is corrupt or truncated.
        ConfigError: `max_size` is not a sensible size.
    """
    if max_size is not None:
        max_size = check_image_size(max_size, "max_size")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not an image file")
    from kerasgan.datasets import MAX_PIXELS

    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; MAX_PIXELS decides, before decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DataError(
                        f"{path}: too large ({width}x{height} pixels, more than {MAX_PIXELS:,})"
                    )
                image.load()
                image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file Pillow can read") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except Image.DecompressionBombError:
        raise DataError(
            f"{path}: too large (its header declares more than {MAX_PIXELS:,} pixels; "
            "a decompression bomb?)"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: corrupt or truncated image ({err})") from None
    image = _to_rgb(image)
    if max_size is not None and max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def _to_rgb(image):
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grayscale: scale to 8 bits before converting (PIL would clip at 255), by the
        # format's range, not the image's maximum, which would stretch a dark photo's contrast.
        array = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257.0
        image = Image.fromarray(array.round().astype(np.uint8))
    return image.convert("RGB")


def as_rgb_array(image):
    """Accept a path or an array and return an RGB `uint8` array `[H, W, 3]`.

    Arrays may be `uint8` in `[0, 255]` or floating point in `[0, 1]`, with 1 (grayscale),
    3 (RGB) or 4 (RGBA, alpha dropped) channels.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise DataError(f"expected an image array [H, W, 1|3|4], got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError(f"image arrays must be uint8 or float in [0, 1], got {array.dtype}")
        if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0):
            raise DataError("float image arrays must hold values in [0, 1]")
        array = np.round(np.nan_to_num(array) * 255.0).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array[..., :3]


def resize_long_side(image, size):
    """Resize a `[H, W, 3]` or `[B, H, W, 3]` float image so its longer side is `size` pixels.

    The aspect ratio is kept; the shorter side is never made smaller than 16 pixels, the least
    VGG19's fifth block needs.
    """
    height, width = image.shape[-3], image.shape[-2]
    scale = size / max(height, width)
    new_size = (max(16, round(height * scale)), max(16, round(width * scale)))
    return tf.image.resize(image, new_size, method="bilinear", antialias=True)


# === The VGG19 feature extractor ===


def vgg19_preprocess(images):
    """RGB images in `[0, 1]` -> VGG19's input (BGR, `[0, 255]`, ImageNet channel means removed).

    VGG19 was trained on images prepared this way ("caffe" mode); the same arithmetic is applied
    to every image here so that gradients flow through it back to the pixels.
    """
    return keras.applications.vgg19.preprocess_input(ops.cast(images, "float32") * 255.0)


def _keras_cache_candidates():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return [
        os.path.join(home, "models", VGG19_WEIGHTS_FILE),
        os.path.join("/tmp", ".keras", "models", VGG19_WEIGHTS_FILE),
    ]


def imagenet_weights_missing_message(reason="they cannot be downloaded"):
    """The one line a user reads when VGG19's ImageNet weights are not available."""
    return (
        f"VGG19 ImageNet weights are not cached and {reason}: run once with network access "
        "(Keras caches them under ~/.keras/models), or pass --weights PATH (weights=PATH in "
        f"Python) pointing to a local copy of {VGG19_WEIGHTS_FILE}, or --weights random for "
        "the clearly-labelled random-weight demo"
    )


def build_vgg19(weights="imagenet"):
    """A fresh VGG19 without its classifier, for any input size.

    Args:
        weights: `"imagenet"` (downloaded once by Keras, then read from its cache), `"random"`
            (a fixed VGG19 with seeded He-normal weights: the offline fallback; see the module
            docstring), or the path of a local `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`.

    Returns:
        A `keras.Model` mapping `vgg19_preprocess`-ed images `[B, H, W, 3]` to block5 features.

    Raises:
        DataError: ImageNet weights unavailable offline, or the weights file is missing or not
            VGG19 weights.
    """
    if weights == "random":
        model = keras.applications.VGG19(
            include_top=False, weights=None, input_shape=(None, None, 3)
        )
        _randomize_vgg19(model, RANDOM_VGG19_SEED)
        return model
    if weights == "imagenet":
        if is_offline() and not any(os.path.exists(p) for p in _keras_cache_candidates()):
            raise DataError(imagenet_weights_missing_message("this session is offline"))
        try:
            return keras.applications.VGG19(
                include_top=False, weights="imagenet", input_shape=(None, None, 3)
            )
        except Exception as err:  # download failures surface as several exception types
            raise DataError(
                imagenet_weights_missing_message(f"the download failed ({err})")
            ) from err
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise DataError(f"{path}: VGG19 weights file not found (expected {VGG19_WEIGHTS_FILE})")
    try:
        return keras.applications.VGG19(
            include_top=False, weights=path, input_shape=(None, None, 3)
        )
    except Exception as err:
        raise DataError(f"{path}: cannot load as VGG19 weights without top ({err})") from err


def _randomize_vgg19(model, seed):
    """Give every convolution He-normal weights drawn from NumPy with `seed`, biases zero.

    He-normal keeps activations at a similar scale from layer to layer through ReLUs, so the
    deep layers of a random network are not vanishingly small. NumPy (not the global Keras seed)
    makes the network the same on every machine and in every session.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:-1])
            kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=kernel.shape)
            layer.set_weights([kernel.astype("float32"), np.zeros_like(bias)])


def _weights_key(weights):
    if weights in ("imagenet", "random"):
        return weights
    return os.path.abspath(os.fspath(weights))


@functools.lru_cache(maxsize=3)
def _cached_vgg19(weights_key, policy):
    with dtype_policy(policy):
        return build_vgg19(weights_key)


def vgg19_features(layer_names, weights="imagenet", policy=None):
    """A cached feature extractor: preprocessed images -> the listed VGG19 layers' activations.

    The VGG19 behind it is built once per `weights` and dtype policy and shared by all
    extractors (it is never trained), so repeated `stylize` calls do not rebuild or reload it.

    Args:
        layer_names: names of VGG19 layers, e.g. `("block1_conv1", "block5_conv2")`.
        weights: as in `build_vgg19`.
        policy: the Keras dtype policy VGG19 computes in (`"float32"`, `"mixed_bfloat16"`,
            ...); default: the global policy.

    Returns:
        A `keras.Model` returning a list of feature maps, one per name, in order.

    Raises:
        ConfigError: a layer name that VGG19 does not have.
    """
    policy = policy or keras.config.dtype_policy().name
    return _cached_extractor(_weights_key(weights), tuple(layer_names), policy)


@functools.lru_cache(maxsize=8)
def _cached_extractor(weights_key, layer_names, policy):
    vgg = _cached_vgg19(weights_key, policy)
    known = [layer.name for layer in vgg.layers[1:]]
    unknown = [name for name in layer_names if name not in known]
    if unknown or not layer_names:
        raise ConfigError(
            f"unknown VGG19 layer(s) {unknown or '(none given)'}; choose from {', '.join(known)}"
        )
    outputs = [vgg.get_layer(name).output for name in layer_names]
    extractor = keras.Model(vgg.input, outputs, name="vgg19_features")
    extractor.trainable = False
    return extractor


# === Optimisation-based transfer (Gatys et al.) ===


def stylize(
    content,
    style,
    *,
    image_size=512,
    steps=500,
    content_weight=None,
    style_weight=None,
    tv_weight=None,
    content_layers=CONTENT_LAYERS,
    style_layers=STYLE_LAYERS,
    style_layer_weights=None,
    optimizer="adam",
    learning_rate=0.02,
    init="content",
    weights="imagenet",
    seed=None,
    progress=True,
    precision="auto",
):
    """Paint `content` in the style of `style` by gradient descent on the pixels (Gatys et al.).

    The target features are computed once; then each step computes
    `L = content_weight * L_content + style_weight * L_style + tv_weight * L_TV` for the current
    image, differentiates it with respect to the pixels and takes one optimizer step, keeping
    the pixels in `[0, 1]`.

    Args:
        content: path or RGB array of the photo whose layout is kept.
        style: path or RGB array of the image whose style is copied.
        image_size: the output's longer side in pixels (the style image is resized the same
            way). Cost grows with its square: 512 takes about 4x as long per step as 256.
        steps: optimizer steps (L-BFGS: iterations).
        content_weight: alpha, the weight of the content loss. Default: from `LOSS_WEIGHTS`
            for the kind of `weights` (ImageNet for a weights file), as are the next two.
        style_weight: beta, the weight of the style loss.
        tv_weight: gamma, the weight of the total-variation loss (0 to disable).
        content_layers: VGG19 layers whose activations are matched to the photo's.
        style_layers: VGG19 layers whose Gram matrices are matched to the style image's.
        style_layer_weights: one weight per style layer (normalised to sum to 1); default equal.
        optimizer: `"adam"` (Adam with beta_1=0.99, epsilon=0.1 as in TensorFlow's tutorial),
            `"lbfgs"` (SciPy's L-BFGS-B with the pixels bounded to `[0, 1]`, as Gatys et al.;
            usually better per step, ignores `learning_rate`; needs SciPy), or a
            `keras.optimizers.Optimizer`.
        learning_rate: Adam's learning rate, in pixel units (the image is in `[0, 1]`).
        init: `"content"` to start from the photo (fast, keeps layout) or `"noise"` to start
            from uniform noise as Gatys et al. did (needs more steps).
        weights: VGG19 weights: `"imagenet"`, `"random"` or a path (see `build_vgg19`).
        seed: seed of the initial noise (`init="noise"`); the result is deterministic for a seed.
        progress: show a `keras.utils.Progbar`.
        precision: what VGG19 computes in: `"float32"`, `"mixed_bfloat16"` or `"auto"`
            (`stylize_precision`: bfloat16 on a CPU with AMX, where VGG19's convolutions are
            most of a step and run several times faster; float32 elsewhere). The pixels, the
            Gram matrices and the losses stay float32 either way.

    Returns:
        `(image, history)`: the stylised image as `uint8` `[H, W, 3]`, and a dict of lists
        `total`, `content`, `style`, `tv` with the weighted losses at the start of each step.

    Raises:
        ConfigError: an option out of range. DataError: an unusable image or weights.

    Example:
        >>> image, history = stylize("photo.jpg", "painting.jpg", image_size=256, steps=200)
    """
    image_size = check_image_size(image_size)
    steps = _check_positive_int(steps, "steps")
    defaults = LOSS_WEIGHTS["random" if weights == "random" else "imagenet"]
    content_weight = defaults["content_weight"] if content_weight is None else content_weight
    style_weight = defaults["style_weight"] if style_weight is None else style_weight
    tv_weight = defaults["tv_weight"] if tv_weight is None else tv_weight
    for name, value in (
        ("content_weight", content_weight),
        ("style_weight", style_weight),
        ("tv_weight", tv_weight),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    if init not in ("content", "noise"):
        raise ConfigError(f"init must be 'content' or 'noise', got {init!r}")
    content_layers, style_layers = tuple(content_layers), tuple(style_layers)
    if not content_layers:
        raise ConfigError("content_layers must name at least one VGG19 layer")
    layer_weights = _normalized_layer_weights(style_layers, style_layer_weights)
    policy = stylize_precision(precision)

    content_image = resize_long_side(_as_float_batch(content), image_size)
    style_image = resize_long_side(_as_float_batch(style), image_size)
    extractor = vgg19_features(style_layers + content_layers, weights, policy=policy)
    objective = _gatys_objective(
        extractor,
        content_image,
        style_image,
        n_style=len(style_layers),
        layer_weights=layer_weights,
        weights=(float(content_weight), float(style_weight), float(tv_weight)),
    )

    if init == "content":
        start = content_image
    else:
        rng = np.random.default_rng(seed)
        start = rng.uniform(0.0, 1.0, size=content_image.shape).astype("float32")
    image = tf.Variable(start, dtype="float32", name="stylized_image")
    progbar = keras.utils.Progbar(steps, stateful_metrics=list(_LOSS_NAMES)) if progress else None
    history = {name: [] for name in _LOSS_NAMES}

    if optimizer == "lbfgs":
        _optimize_lbfgs(image, objective, steps, history, progbar)
    else:
        _optimize_gradient(
            image, objective, _make_optimizer(optimizer, learning_rate), steps, history, progbar
        )
    return ops.convert_to_numpy(to_uint8(image[0], value_range=(0, 1))), history


_LOSS_NAMES = ("total", "content", "style", "tv")
STYLIZE_PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def stylize_precision(precision="auto"):
    """The dtype policy `stylize` runs VGG19 in: `"float32"` or `"mixed_bfloat16"`.

    `"auto"` is `mixed_bfloat16` where `kerasgan.precision` would train in it (a CPU with AMX
    and no GPU), float32 elsewhere: float16 on a GPU would need loss scaling for the pixels'
    small gradients, and a GPU's float32 step is fast already.

    Raises:
        ConfigError: any other value.
    """
    if precision not in STYLIZE_PRECISIONS:
        raise ConfigError(
            f"precision must be one of {', '.join(STYLIZE_PRECISIONS)}, got {precision!r}"
        )
    if precision == "auto":
        return "mixed_bfloat16" if resolve_policy("auto") == "mixed_bfloat16" else "float32"
    return precision


def _gatys_objective(extractor, content_image, style_image, n_style, layer_weights, weights):
    """Build `objective(image) -> dict of weighted losses` with the targets computed once."""
    content_weight, style_weight, tv_weight = weights
    style_targets = extractor(vgg19_preprocess(style_image))[:n_style]
    content_targets = extractor(vgg19_preprocess(content_image))[n_style:]

    def objective(image):
        features = extractor(vgg19_preprocess(image))
        style_features, content_features = features[:n_style], features[n_style:]
        content_term = ops.mean(
            ops.stack([content_loss(f, t)[0] for f, t in zip(content_features, content_targets)])
        )
        style_term = ops.sum(
            ops.stack(
                [
                    w * style_loss(f, t)[0]
                    for w, f, t in zip(layer_weights, style_features, style_targets)
                ]
            )
        )
        losses = {
            "content": content_weight * content_term,
            "style": style_weight * style_term,
            "tv": tv_weight * total_variation_loss(image)[0],
        }
        losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        return losses

    return objective


def _optimize_gradient(image, objective, optimizer, steps, history, progbar):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            losses = objective(image)
        gradient = tape.gradient(losses["total"], image)
        optimizer.apply([gradient], [image])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return losses

    for index in range(steps):
        _record(history, progbar, index + 1, step())


def _optimize_lbfgs(image, objective, steps, history, progbar):
    """L-BFGS-B from SciPy on the flattened pixels, bounded to [0, 1] (no clipping needed)."""
    try:
        from scipy.optimize import Bounds, minimize
    except ImportError:
        raise ConfigError("optimizer='lbfgs' needs SciPy: pip install scipy") from None

    @tf.function
    def value_and_gradient():
        with tf.GradientTape() as tape:
            losses = objective(image)
        return losses, tape.gradient(losses["total"], image)

    shape = image.shape
    last = {}

    def fun(flat):
        image.assign(np.reshape(flat, shape).astype("float32"))
        losses, gradient = value_and_gradient()
        last["losses"] = losses
        return float(losses["total"]), ops.convert_to_numpy(gradient).ravel().astype("float64")

    def callback(flat):
        _record(history, progbar, len(history["total"]) + 1, last["losses"])

    result = minimize(
        fun,
        ops.convert_to_numpy(image).ravel().astype("float64"),
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(0.0, 1.0),
        callback=callback,
        options={"maxiter": steps, "maxfun": 2 * steps + 20},
    )
    image.assign(np.reshape(result.x, shape).astype("float32"))


def _record(history, progbar, step, losses):
    values = {name: float(losses[name]) for name in _LOSS_NAMES}
    for name, value in values.items():
        history[name].append(value)
    if progbar is not None:
        progbar.update(step, values=list(values.items()))


def _make_optimizer(optimizer, learning_rate):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if optimizer != "adam":
        raise ConfigError(
            f"optimizer must be 'adam', 'lbfgs' or a Keras optimizer, got {optimizer!r}"
        )
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
    # beta_1=0.99 and a large epsilon smooth the pixel updates (TensorFlow's tutorial settings).
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.99, epsilon=0.1)


def _normalized_layer_weights(style_layers, style_layer_weights):
    if not style_layers:
        raise ConfigError("style_layers must name at least one VGG19 layer")
    if style_layer_weights is None:
        return [1.0 / len(style_layers)] * len(style_layers)
    weights = [float(w) for w in style_layer_weights]
    if len(weights) != len(style_layers):
        raise ConfigError(
            f"style_layer_weights has {len(weights)} values for {len(style_layers)} style layers"
        )
    if min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError("style_layer_weights must be >= 0 and not all zero")
    return [w / sum(weights) for w in weights]


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _as_float_batch(image):
    return tf.convert_to_tensor(as_rgb_array(image)[None], dtype=tf.float32) / 255.0


# === Feed-forward arbitrary transfer (AdaIN) ===


def build_adain_encoder(weights="imagenet"):
    """VGG19 up to relu4_1, returning relu1_1, relu2_1, relu3_1 and relu4_1, frozen.

    Args:
        weights: as in `build_vgg19`.

    Returns:
        A non-trainable functional `keras.Model` from `vgg19_preprocess`-ed images
        `[B, H, W, 3]` to a list of four feature maps (64, 128, 256 and 512 channels at
        1, 1/2, 1/4 and 1/8 of the input size).
    """
    vgg = build_vgg19(weights)
    outputs = [vgg.get_layer(name).output for name in ADAIN_LAYERS]
    encoder = keras.Model(vgg.input, outputs, name="vgg19_encoder")
    encoder.trainable = False
    return encoder


def build_adain_decoder(filters=(256, 128, 64), feature_scale=1.0, name="adain_decoder"):
    """The decoder of Huang & Belongie: the encoder mirrored, pooling replaced by upsampling.

    Nearest-neighbour upsampling and reflection padding avoid checkerboard and border artifacts;
    there is no normalization (it would wash out the style statistics AdaIN just set). The
    input is first divided by `feature_scale` (see `typical_feature_scale`).

    Args:
        filters: channel widths of the three stages `(256, 128, 64)` in the paper; small values
            such as `(32, 16, 8)` give a tiny model for tests.
        feature_scale: typical size of the encoder's relu4_1 activations.
        name: the model's name.

    Returns:
        A functional `keras.Model` from relu4_1-like features `[B, h, w, 512]` to images
        `[B, 8h, 8w, 3]`, nominally in `[0, 1]` (the last convolution is linear).
    """
    wide, middle, narrow = (int(f) for f in filters)

    def conv(x, width, label, activation="relu"):
        x = ReflectionPadding2D(1, name=f"{label}_pad")(x)
        return keras.layers.Conv2D(width, 3, activation=activation, name=label)(x)

    features = keras.Input((None, None, 512), name="features")
    x = keras.layers.Rescaling(1.0 / feature_scale, name="feature_scale")(features)
    x = conv(x, wide, "block4_conv1")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="block3_upsample")(x)
    for index in range(1, 4):
        x = conv(x, wide, f"block3_conv{index}")
    x = conv(x, middle, "block3_conv4")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="block2_upsample")(x)
    x = conv(x, middle, "block2_conv1")
    x = conv(x, narrow, "block2_conv2")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="block1_upsample")(x)
    x = conv(x, narrow, "block1_conv1")
    images = conv(x, 3, "to_rgb", activation=None)
    return keras.Model(features, images, name=name)


def typical_feature_scale(encoder):
    """Root-mean-square relu4_1 activation of `encoder` on a fixed, smooth synthetic image.

    Keras's VGG19 (ImageNet or random weights) outputs relu4_1 activations in the tens to
    hundreds, while a freshly initialised decoder expects inputs of order one: fed raw features,
    its first outputs are far outside `[0, 1]`, the first losses are ~1e8 and the first Adam
    steps kill most ReLUs, after which the decoder ignores the style (observed here). Gatys et
    al. and Huang & Belongie avoid this with a VGG19 rescaled to unit mean activations; dividing
    the decoder's input by this one number has the same effect and keeps Keras's weights as
    they are. The image is seeded NumPy noise, upsampled so it has a photo's smoothness.
    """
    coarse = np.random.default_rng(0).uniform(0.0, 1.0, (1, 8, 8, 3)).astype("float32")
    image = tf.image.resize(coarse, (64, 64), method="bicubic")
    features = encoder(vgg19_preprocess(tf.clip_by_value(image, 0.0, 1.0)), training=False)[-1]
    # In float32: under a mixed policy the features arrive in 16 bits, where their squares
    # overflow (float16: inf) or their sum stops growing (bfloat16: half the true value).
    features = ops.convert_to_numpy(features).astype("float32")
    return float(np.sqrt(np.mean(np.square(features)))) or 1.0


@keras.saving.register_keras_serializable(package="kerasgan")
class AdaINStylizer(keras.Model):
    """Arbitrary style transfer in one forward pass: VGG19 encoder, AdaIN, trained decoder.

    The frozen encoder maps content `c` and style `s` to relu4_1 features; AdaIN gives the
    content features the style's channel statistics, `t = AdaIN(f(c), f(s))`; the decoder `g`
    turns `t` back into an image. Only the decoder trains, with

    `L = ||f(g(t)) - t||^2 + style_weight * sum_l ||mu(phi_l(g(t))) - mu(phi_l(s))||^2
         + ||sigma(phi_l(g(t))) - sigma(phi_l(s))||^2`

    over relu1_1 ... relu4_1 (`phi_l`). The content target is `t` itself, not the photo's
    features: the decoder learns to invert AdaIN's output. At inference,
    `t = alpha * AdaIN(f(c), f(s)) + (1 - alpha) * f(c)` trades style against content.

    Args:
        encoder_weights: VGG19 weights of the encoder, `"imagenet"`, `"random"` or a path (see
            `build_vgg19`). Recorded in the config; a saved model carries the encoder's
            weights, so loading never downloads.
        decoder_filters: decoder widths, `(256, 128, 64)` in the paper.
        style_weight: lambda, the weight of the style loss (10 in the paper).
        image_size: the training crop size; `stylize_uint8` resizes style images so their
            shorter side matches it, the scale the decoder learnt.
        epsilon: AdaIN's variance epsilon.
        feature_scale: the decoder divides its input by this; by default measured on the
            encoder with `typical_feature_scale`.
        encoder: a prebuilt encoder (used by `from_config`); built from `encoder_weights`
            when omitted.
        decoder: a prebuilt decoder (used by `from_config`); built from `decoder_filters`
            when omitted.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        inputs: a tuple `(content, style)` of float images `[B, H, W, 3]` in `[0, 1]`, sides
            multiples of 8 (the style batch may be 1). Returns images `[B, H, W, 3]`, not
            clipped (training sees the raw decoder output).
        alpha: style strength in `[0, 1]`.

    Example:
        >>> stylizer = AdaINStylizer(encoder_weights="imagenet")
        >>> stylizer.compile(optimizer=keras.optimizers.Adam(1e-4))
        >>> stylizer.fit(stylizer_dataset("photos/", "paintings/", 256, 8), epochs=10)
        >>> images = stylizer.stylize_uint8(content_uint8, style_uint8, alpha=1.0)

    Reference:
        Huang & Belongie, ICCV 2017, https://arxiv.org/abs/1703.06868.
    """

    def __init__(
        self,
        encoder_weights="imagenet",
        decoder_filters=(256, 128, 64),
        style_weight=10.0,
        image_size=256,
        epsilon=1e-5,
        feature_scale=None,
        encoder=None,
        decoder=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder_weights = (
            encoder_weights
            if encoder_weights in ("imagenet", "random")
            else os.fspath(encoder_weights)
        )
        self.decoder_filters = tuple(int(f) for f in decoder_filters)
        if not (math.isfinite(style_weight) and style_weight >= 0):
            raise ConfigError(f"style_weight must be a finite number >= 0, got {style_weight!r}")
        self.style_weight = float(style_weight)
        self.image_size = check_image_size(image_size)
        self.epsilon = float(epsilon)
        self.encoder = encoder if encoder is not None else build_adain_encoder(self.encoder_weights)
        self.encoder.trainable = False
        if feature_scale is None:
            feature_scale = typical_feature_scale(self.encoder)
        self.feature_scale = float(feature_scale)
        if decoder is None:
            decoder = build_adain_decoder(self.decoder_filters, self.feature_scale)
        self.decoder = decoder
        self.adain = AdaIN(epsilon=self.epsilon, name="adain")
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in ("loss", "content_loss", "style_loss")
        }
        # Encoder and decoder arrive built and AdaIN has no weights: the model is built.
        self.built = True

    def compile(self, optimizer=None, **kwargs):
        """Configure training; the default optimizer is Adam with learning rate 1e-4 (paper)."""
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-4), **kwargs)
        # Built now rather than on the first step, so that a `.keras` file always stores (and
        # restores) the full optimizer state, even for a model saved before training.
        self.optimizer.build(self.decoder.trainable_variables)

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]))

    @property
    def metrics(self):
        return list(self.trackers.values())

    # === Forward pass ===

    def encode(self, images):
        """VGG19 features relu1_1 ... relu4_1 of float images in `[0, 1]`."""
        return self.encoder(vgg19_preprocess(images), training=False)

    def call(self, inputs, alpha=1.0, training=False):
        content, style = inputs
        content_features = self.encode(content)[-1]
        style_features = self.encode(style)[-1]
        target = self.adain([content_features, style_features])
        target = alpha * target + (1.0 - alpha) * content_features
        return self.decoder(target, training=training)

    # === Training ===

    def losses_for(self, content, style, training=True):
        """Per-example content and style losses of the decoder on a `(content, style)` batch."""
        style_features = self.encode(style)
        target = self.adain([self.encode(content)[-1], style_features[-1]])
        generated = self.decoder(target, training=training)
        generated_features = self.encode(generated)
        content_term = content_loss(generated_features[-1], target)
        style_term = ops.sum(
            ops.stack(
                [
                    style_statistics_loss(g, s, self.epsilon)
                    for g, s in zip(generated_features, style_features)
                ]
            ),
            axis=0,
        )
        return content_term, style_term

    def train_step(self, data):
        content, style = data
        with tf.GradientTape() as tape:
            content_term, style_term = self.losses_for(content, style)
            # Mean over the global batch: correct gradients under tf.distribute.
            loss = tf.nn.compute_average_loss(content_term + self.style_weight * style_term)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.decoder.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._update_trackers(content_term, style_term)

    def test_step(self, data):
        content, style = data
        return self._update_trackers(*self.losses_for(content, style, training=False))

    def _update_trackers(self, content_term, style_term):
        self.trackers["content_loss"].update_state(content_term)
        self.trackers["style_loss"].update_state(style_term)
        self.trackers["loss"].update_state(content_term + self.style_weight * style_term)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # === Serving ===

    def stylize_uint8(self, content, style, alpha=1.0):
        """Stylise `uint8` images end to end: the function an export wraps.

        Pure TensorFlow on tensors (no NumPy, no Python branching on values), so it traces into
        a SavedModel signature with dynamic image sizes. The content image is processed at its
        own size rounded to a multiple of 8 and the result resized back to it exactly; the style
        image is resized so its shorter side is `image_size`.

        Args:
            content: `uint8` `[B, H, W, 3]`.
            style: `uint8` `[B or 1, H', W', 3]`.
            alpha: float32 scalar in `[0, 1]`, style strength.

        Returns:
            `uint8` `[B, H, W, 3]`.
        """
        content = tf.cast(content, tf.float32) / 255.0
        style = tf.cast(style, tf.float32) / 255.0
        size = tf.shape(content)[1:3]
        content = tf.image.resize(content, _multiple_of_8(size), antialias=True)
        style_size = tf.cast(tf.shape(style)[1:3], tf.float32)
        style_size = style_size * (self.image_size / tf.reduce_min(style_size))
        style = tf.image.resize(style, _multiple_of_8(style_size), antialias=True)
        alpha = tf.clip_by_value(tf.cast(alpha, tf.float32), 0.0, 1.0)
        images = self((content, style), alpha=alpha, training=False)
        return to_uint8(tf.image.resize(images, size), value_range=(0, 1))

    def serving_functions(self):
        """The functions an export serves, by signature name (see `kerasgan.export`).

        `serving_default`: `content` uint8 `[None, None, None, 3]`, `style` uint8
        `[None, None, None, 3]` (a batch of one styles every content image) and `alpha` float32
        scalar -> `images` uint8, the size of `content`.

        Example:
            >>> path = kerasgan.export.export_model(stylizer, "saved_models", name="stylizer")
        """

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.uint8, name="content"),
                tf.TensorSpec([None, None, None, 3], tf.uint8, name="style"),
                tf.TensorSpec([], tf.float32, name="alpha"),
            ]
        )
        def serving_default(content, style, alpha):
            return {"images": self.stylize_uint8(content, style, alpha)}

        return {"serving_default": serving_default}

    # === Serialization ===

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder_weights=self.encoder_weights,
            decoder_filters=list(self.decoder_filters),
            style_weight=self.style_weight,
            image_size=self.image_size,
            epsilon=self.epsilon,
            feature_scale=self.feature_scale,
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in ("encoder", "decoder"):
            if config.get(part) is not None:
                config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)


def _multiple_of_8(size):
    size = tf.cast(size, tf.float32)
    return tf.maximum(tf.cast(tf.round(size / 8.0), tf.int32), 1) * 8


def list_images(folder):
    """Sorted image files (by extension) directly inside `folder`; DataError if none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: no such folder")
    paths = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return paths


def stylizer_dataset(
    content_dir, style_dir, image_size=256, batch_size=8, steps_per_epoch=None, seed=None
):
    """`(content, style)` training pairs for `AdaINStylizer.fit`, from two image folders.

    Each image is resized so its shorter side is `image_size`, then randomly cropped to
    `image_size x image_size` (the paper resizes to 512 and crops 256); values are float32 in
    `[0, 1]`. Content and style images are shuffled and paired at random, forever; each epoch
    takes `steps_per_epoch` batches.

    Args:
        content_dir: folder of photos.
        style_dir: folder of style images.
        image_size: crop size in pixels.
        batch_size: pairs per batch.
        steps_per_epoch: batches per epoch; by default one pass over the content images.
        seed: seed of the shuffling and cropping.

    Returns:
        A `tf.data.Dataset` of `(content, style)` batches `[batch_size, S, S, 3]`.

    Raises:
        DataError: a folder is missing, holds no images, or holds an unreadable image.
    """
    image_size = check_image_size(image_size)
    batch_size = _check_positive_int(batch_size, "batch_size")
    content_paths, style_paths = list_images(content_dir), list_images(style_dir)
    for path in content_paths + style_paths:
        load_image(path)  # fails early, with the file's name, instead of mid-training
    if steps_per_epoch is None:
        steps_per_epoch = math.ceil(len(content_paths) / batch_size)
    steps_per_epoch = _check_positive_int(steps_per_epoch, "steps_per_epoch")

    def images(paths, stream_seed):
        dataset = tf.data.Dataset.from_tensor_slices(paths)
        dataset = dataset.shuffle(len(paths), seed=stream_seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat().map(
            lambda path: _random_crop(path, image_size, stream_seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return dataset

    style_seed = None if seed is None else seed + 1
    pairs = tf.data.Dataset.zip((images(content_paths, seed), images(style_paths, style_seed)))
    return pairs.batch(batch_size, drop_remainder=True).take(steps_per_epoch).prefetch(2)


@tf.autograph.experimental.do_not_convert  # straight-line TF ops: nothing for AutoGraph to do
def _random_crop(path, image_size, seed):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32) / 255.0
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    size = tf.cast(tf.math.ceil(size * (image_size / tf.reduce_min(size))), tf.int32)
    image = tf.image.resize(image, tf.maximum(size, image_size), antialias=True)
    return tf.image.random_crop(image, (image_size, image_size, 3), seed=seed)
