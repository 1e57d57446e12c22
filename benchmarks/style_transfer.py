"""Gatys style transfer on a CPU: seconds per step against TensorFlow's tutorial loop, and L-BFGS.

    python benchmarks/style_transfer.py                        # 512 px, random-weight VGG19
    python benchmarks/style_transfer.py --size 256 --steps 10 --lbfgs-size 128

Offline, VGG19's ImageNet weights cannot be downloaded; the speed of a step does not depend on
the weights' values, so the random-weight VGG19 (`weights="random"`) stands in (pass
`--weights PATH` to use a local copy of the ImageNet file).

1. **Speed.** Seconds per optimisation step at `--size` for
   * the loop of TensorFlow's style-transfer tutorial
     (https://www.tensorflow.org/tutorials/generative/style_transfer), written out here in its
     structure: one Keras model from preprocessing to Gram matrices, its loss, Adam(0.02,
     beta_1=0.99, epsilon=0.1) and a clip, in one `tf.function`, in float32;
   * `kerasgan.style_transfer.stylize` under each precision (`float32`, `mixed_bfloat16`).
   A step is timed as (time of `1 + steps` steps - time of 1 step) / steps, so tracing and
   the first step's one-off work do not count.
2. **L-BFGS against Adam** at `--lbfgs-size`: Adam runs `--adam-steps` steps; L-BFGS runs
   until its loss is at most Adam's final loss (or `--adam-steps` iterations); both report
   their wall time. The losses are the same function (`stylize`'s objective, float32).

The figures, with their machine and date, are in benchmarks/README.md.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgan import course, datasets, style_transfer  # noqa: E402

CONTENT = "chelsea.jpg"
STYLE = "waves.jpg"


def images(size):
    data = datasets.data_dir()
    content = style_transfer.load_image(os.path.join(data, "photos", CONTENT), size)
    style = style_transfer.load_image(os.path.join(data, "styles", STYLE), size)
    return content, style


def tutorial_step_seconds(content, style, size, steps, weights):
    """Seconds per step of the tutorial's loop (its structure, written out here), float32."""
    keras.config.set_dtype_policy("float32")
    vgg = style_transfer.build_vgg19(weights)
    vgg.trainable = False
    style_layers = list(style_transfer.STYLE_LAYERS)
    content_layers = list(style_transfer.CONTENT_LAYERS)
    outputs = [vgg.get_layer(name).output for name in style_layers + content_layers]
    features = keras.Model(vgg.input, outputs)

    def style_and_content(image):
        # The tutorial's StyleContentModel: preprocess, VGG, Gram matrices of the style layers.
        out = features(keras.applications.vgg19.preprocess_input(image * 255.0))
        grams = []
        for feature in out[: len(style_layers)]:
            positions = tf.cast(tf.shape(feature)[1] * tf.shape(feature)[2], tf.float32)
            grams.append(tf.linalg.einsum("bijc,bijd->bcd", feature, feature) / positions)
        return grams, out[len(style_layers):]

    def to_batch(array):
        return tf.constant(style_transfer.resize_long_side(
            tf.convert_to_tensor(array[None], tf.float32) / 255.0, size))

    content_batch, style_batch = to_batch(content), to_batch(style)
    style_targets, _ = style_and_content(style_batch)
    _, content_targets = style_and_content(content_batch)
    weights_ = style_transfer.LOSS_WEIGHTS["random" if weights == "random" else "imagenet"]
    image = tf.Variable(content_batch)
    optimizer = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=0.1)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            grams, contents = style_and_content(image)
            style_term = tf.add_n([
                tf.reduce_mean((g - t) ** 2) for g, t in zip(grams, style_targets)
            ]) / len(style_layers)
            content_term = tf.add_n([
                tf.reduce_mean((c - t) ** 2) for c, t in zip(contents, content_targets)
            ]) / len(content_layers)
            loss = (weights_["style_weight"] * style_term + weights_["content_weight"] * content_term
                    + weights_["tv_weight"] * tf.image.total_variation(image))
        gradient = tape.gradient(loss, image)
        optimizer.apply([gradient], [image])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss

    def timed(count):
        start = time.perf_counter()
        for _ in range(count):
            train_step()
        return time.perf_counter() - start

    timed(1)  # trace
    return (timed(1 + steps) - timed(1)) / steps


def stylize_seconds(content, style, size, steps, weights, precision):
    """Seconds per step of `stylize` (Adam) under `precision`, and its last total loss."""
    def run(count):
        start = time.perf_counter()
        _, history = style_transfer.stylize(
            content, style, image_size=size, steps=count, weights=weights, progress=False,
            precision=precision,
        )
        return time.perf_counter() - start, history["total"][-1]

    run(1)  # build and cache VGG19, trace
    once, _ = run(1)
    many, loss = run(1 + steps)
    return (many - once) / steps, loss


def lbfgs_against_adam(content, style, size, adam_steps, weights):
    """(Adam seconds, Adam final loss, L-BFGS seconds, L-BFGS iterations, its final loss)."""
    options = dict(image_size=size, weights=weights, progress=False, precision="float32")
    style_transfer.stylize(content, style, steps=1, **options)  # build VGG19 once
    start = time.perf_counter()
    _, adam = style_transfer.stylize(content, style, steps=adam_steps, **options)
    adam_seconds = time.perf_counter() - start
    target = adam["total"][-1]
    # L-BFGS is run for a growing number of iterations until its loss reaches Adam's.
    for iterations in sorted({max(1, adam_steps // d) for d in (16, 8, 4, 2, 1)}):
        start = time.perf_counter()
        _, lbfgs = style_transfer.stylize(
            content, style, steps=iterations, optimizer="lbfgs", **options
        )
        seconds = time.perf_counter() - start
        if min(lbfgs["total"]) <= target:
            break
    return adam_seconds, target, seconds, len(lbfgs["total"]), min(lbfgs["total"])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="image side for speed (default 512)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--lbfgs-size", type=int, default=256, help="image side for L-BFGS (default 256)")
    parser.add_argument("--adam-steps", type=int, default=200, help="Adam's steps (default 200)")
    parser.add_argument("--weights", default="random", help="VGG19 weights (default: random)")
    args = parser.parse_args()
    content, style = images(max(args.size, args.lbfgs_size))

    print(f"machine: {course.hardware().describe()}; VGG19 weights: {args.weights}\n")
    print(f"| loop ({args.size} px) | seconds per step | speed-up over the tutorial loop |")
    print("|---|---|---|")
    tutorial = tutorial_step_seconds(content, style, args.size, args.steps, args.weights)
    print(f"| TensorFlow tutorial's loop, float32 | {tutorial:.3f} | 1.00x |", flush=True)
    for precision in ("float32", "mixed_bfloat16"):
        seconds, _ = stylize_seconds(content, style, args.size, args.steps, args.weights, precision)
        print(f"| `stylize`, {precision} | {seconds:.3f} | {tutorial / seconds:.2f}x |", flush=True)

    adam_s, adam_loss, lbfgs_s, iterations, lbfgs_loss = lbfgs_against_adam(
        content, style, args.lbfgs_size, args.adam_steps, args.weights
    )
    print(f"\nL-BFGS against Adam at {args.lbfgs_size} px (float32):")
    print(f"Adam, {args.adam_steps} steps: {adam_s:.1f} s, final loss {adam_loss:,.1f}")
    reached = "reached" if lbfgs_loss <= adam_loss else "did not reach"
    print(f"L-BFGS, {iterations} iterations: {lbfgs_s:.1f} s, loss {lbfgs_loss:,.1f} "
          f"({reached} Adam's final loss)")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
