"""The same seed gives the same run, end to end through `training.train`; another seed does not."""

import dataclasses
import os

import keras
import numpy as np
from PIL import Image

from kerasgan import training


class StopAfter(keras.callbacks.Callback):
    """Stops training after `steps` steps, at the same point in every run."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 >= self.steps:
            self.model.stop_training = True


def run(tmp_path, folder, model, seed, **options):
    summary = training.train(
        model, preset="tiny", seed=seed, output=str(tmp_path / folder), export=False,
        precision_policy="float32", verbose=0, **options,
    )
    samples = sorted(os.listdir(tmp_path / folder / "samples"))
    grids = [np.asarray(Image.open(tmp_path / folder / "samples" / name)) for name in samples]
    return grids, [np.asarray(v) for v in summary.gan.variables]


def same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def test_dcgan_runs_with_one_seed_are_identical_and_another_seed_differs(tmp_path):
    options = dict(data="embedded", epochs=1, batch_size=256)
    grids, weights = run(tmp_path, "a", "dcgan", 0, **options)
    grids_again, weights_again = run(tmp_path, "b", "dcgan", 0, **options)
    assert len(grids) == 1 and same(grids, grids_again) and same(weights, weights_again)
    other_grids, other_weights = run(tmp_path, "c", "dcgan", 1, **options)
    assert not same(grids, other_grids) and not same(weights, other_weights)


def test_cyclegan_runs_with_one_seed_are_identical_and_another_seed_differs(tmp_path):
    options = dict(data="embedded", data_options={"pair": "digits"}, epochs=1, batch_size=4,
                   callbacks=[StopAfter(3)])
    grids, weights = run(tmp_path, "a", "cyclegan", 0, **options)
    grids_again, weights_again = run(tmp_path, "b", "cyclegan", 0, **options)
    assert len(grids) == 1 and same(grids, grids_again) and same(weights, weights_again)
    other_grids, other_weights = run(tmp_path, "c", "cyclegan", 1, **options)
    assert not same(grids, other_grids) and not same(weights, other_weights)


def _first_pairs(dataset, n=4):
    return [np.concatenate([a.numpy().ravel(), b.numpy().ravel()]) for a, b in dataset.take(n)]


def test_train_passes_its_seed_to_a_loader_that_takes_one(monkeypatch):
    from kerasgan import datasets

    seen = []

    def load_data(data, image_size=None, channels=None, pair=None, seed=0):
        seen.append(seed)
        return datasets.load_unpaired(pair, data, image_size, channels, seed=seed)

    recipe = dataclasses.replace(training.get_recipe("cyclegan"), load_data=load_data)
    pairs = {seed: _first_pairs(training._load_data(recipe, "embedded", None, None, {"pair": "digits"}, seed))
             for seed in (0, 7)}
    assert seen == [0, 7]
    assert not same(pairs[0], pairs[7])  # the pairing follows the seed


def test_cyclegan_pairing_follows_the_runs_seed():
    recipe = training.get_recipe("cyclegan")
    pairs = [_first_pairs(training._load_data(recipe, "embedded", None, None, {"pair": "digits"}, seed))
             for seed in (0, 7)]
    assert not same(*pairs)
