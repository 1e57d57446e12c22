"""Train the offline judge: the small digit classifier `kerasgan.evaluation.OfflineJudge` uses.

    python scripts/train_offline_judge.py            # writes data/judges/mnist_judge.weights.h5

It trains `evaluation.build_mnist_judge()` on the embedded 5,000-digit MNIST sample, holding out
100 digits of each class (1,000) to measure accuracy, with small random shifts, rotations and
zooms so the judge also copes with a generator's imperfect digits. Seeded and deterministic
(op determinism on): the same data gives the same weights. About a minute on 2 CPU cores.

Prints the held-out accuracy (it goes into data/README.md) and, as a yardstick for the judge's
Fréchet distance, the distance between the 1,000 held-out digits and 1,000 training digits:
two samples of real data, the best a generator can hope for at n = 1,000.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Runs from a checkout, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kerasgan import datasets, evaluation  # noqa: E402

SEED = 0
HELD_OUT_PER_CLASS = 100


def load_digits():
    """The embedded MNIST sample: uint8 images [5000, 28, 28] and int labels [5000]."""
    images, labels = datasets.load_arrays("mnist")
    return np.asarray(images, "uint8").reshape(-1, 28, 28), np.asarray(labels, "int64")


def split(labels, per_class, seed):
    """Indices of a class-balanced held-out set and of the rest, chosen under `seed`."""
    rng = np.random.default_rng(seed)
    held_out = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    )
    train = np.setdiff1d(np.arange(len(labels)), held_out)
    return np.sort(held_out), train


def augmenter():
    """Small random shifts, rotations and zooms, filled with the background value -1."""
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(
                0.1, 0.1, fill_mode="constant", fill_value=-1.0, seed=SEED
            ),
            keras.layers.RandomRotation(0.04, fill_mode="constant", fill_value=-1.0, seed=SEED + 1),
            keras.layers.RandomZoom(0.1, fill_mode="constant", fill_value=-1.0, seed=SEED + 2),
        ],
        name="augment",
    )


def train(images, labels, epochs, batch_size):
    judge = evaluation.build_mnist_judge()
    classifier = keras.Model(judge.input, judge.output["probabilities"])
    steps = epochs * -(-len(images) // batch_size)
    classifier.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    augment = augmenter()
    data = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=SEED)
        .batch(batch_size)
        .map(lambda x, y: (augment(x, training=True), y))
    )
    classifier.fit(data, epochs=epochs, shuffle=False, verbose=2)  # the dataset shuffles
    return judge


def save_weights(model, path):
    """Save next to `path` first, then move into place: never a half-written file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".judge-", dir=os.path.dirname(path))
    try:
        tmp_path = os.path.join(tmp, os.path.basename(path))
        model.save_weights(tmp_path)
        os.replace(tmp_path, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="passes over the 4,000 digits")
    parser.add_argument("--batch-size", type=int, default=64, help="digits per step")
    parser.add_argument(
        "--output", default=evaluation.judge_weights_path(), help="where the weights go"
    )
    args = parser.parse_args()

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy("float32")

    digits, labels = load_digits()
    held_out, train_idx = split(labels, HELD_OUT_PER_CLASS, SEED)
    images = digits[..., None].astype("float32") / 127.5 - 1.0

    start = time.time()
    judge = train(images[train_idx], labels[train_idx], args.epochs, args.batch_size)
    print(f"trained on {len(train_idx)} digits in {time.time() - start:.0f} s")

    extractor = evaluation.OfflineJudge(judge)
    held_out_features = extractor.extract(digits[held_out])
    predictions = held_out_features.probabilities.argmax(axis=1)
    accuracy = float(np.mean(predictions == labels[held_out]))
    print(f"held-out accuracy: {accuracy:.4f} ({len(held_out)} digits, 100 per class)")

    train_sample = np.random.default_rng(SEED).choice(train_idx, len(held_out), replace=False)
    floor = evaluation.frechet_distance(
        *evaluation.feature_statistics(held_out_features.features),
        *evaluation.feature_statistics(extractor(digits[train_sample])),
    )
    print(f"Fréchet distance, held-out vs training digits (n={len(held_out)}): {floor:.2f}")

    save_weights(judge, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
