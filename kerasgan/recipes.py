"""Recipes: how the CLI and `training.train` build, feed and export each model family.

Each model module defines `RECIPE = Recipe(...)` at its end; `MODEL_MODULES` maps CLI names to
those modules, which are imported only when that model is asked for (so `--help` stays fast and
one model's import cost is not paid by another).
"""

import dataclasses
import importlib
from collections.abc import Callable

from kerasgan.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the CLI and `train()` build, feed and export one model family.

    Each model module defines `RECIPE = Recipe(...)`; `MODEL_MODULES` says where to find it.

    Attributes:
        name: the model's CLI name.
        build: `fn(preset, image_size, channels, seed) -> uncompiled model`.
        description: one line for `--help`.
        dataset: the dataset name used when `--data` is a source (auto/tfds/embedded).
        with_labels: whether the model trains on `(image, label)` pairs.
        epochs: default epochs (chosen so the default run finishes in minutes on a CPU).
        batch_size: default batch size.
        presets: the model's named configurations.
        sample_count: images in the per-epoch sample grid.
        load_data: optional `fn(data, image_size, channels) -> tf.data.Dataset` of unbatched
            elements, for models whose data is not one image dataset (e.g. CycleGAN's pairs).
        image_shape: optional `fn(dataset) -> (height, channels)` when the element is not an
            image (or an `(image, label)` pair).
        export: optional `fn(model, export_dir, name, metadata=...) -> path` for models that
            export more than one SavedModel (e.g. CycleGAN's two directions); default
            `kerasgan.export.export_model`.
        jit_compile_cpu: whether `--jit auto` compiles the training step with XLA on a machine
            without a GPU; measured per model with `benchmarks/speed.py` (numbers below).
    """

    name: str
    build: Callable
    description: str
    dataset: str = "mnist"
    with_labels: bool = False
    epochs: int = 20
    batch_size: int = 64
    presets: tuple = ("default", "tiny")
    sample_count: int = 64
    load_data: Callable | None = None
    image_shape: Callable | None = None
    export: Callable | None = None
    # XLA was never clearly faster than float32 graph mode on a CPU (`benchmarks/speed.py`;
    # figures in benchmarks/README.md), the fastest setting of every model there: off for all.
    jit_compile_cpu: bool = False


# CLI name -> module defining `RECIPE`. Imported only when that model is asked for.
MODEL_MODULES = {
    "dcgan": "kerasgan.models.dcgan",
    "cgan": "kerasgan.models.conditional_gan",
    "wgan-gp": "kerasgan.models.wgan_gp",
    "stylegan": "kerasgan.models.stylegan",
    "biggan": "kerasgan.models.biggan",
    "cyclegan": "kerasgan.models.cyclegan",
}


def get_recipe(name):
    """The `Recipe` registered under `name` (clear error listing the known models)."""
    if name not in MODEL_MODULES:
        raise ConfigError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODEL_MODULES))}"
        )
    return importlib.import_module(MODEL_MODULES[name]).RECIPE
