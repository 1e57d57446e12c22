"""Recipes: how the CLI and `training.train` build, feed and export each model family.

One table (`RECIPES`) holds every model's CLI defaults, each with the reason for its epochs and
batch size. The model files hold the lessons and know nothing of it. Models, data loaders and
exporters are named as `"module:attribute"` strings and imported on first use, so listing the
recipes (`python -m kerasgan train --help`) imports no model, and one model's import cost is
not paid by another.
"""

import dataclasses
import importlib
import inspect
from collections.abc import Callable

from kerasgan.errors import ConfigError


class LazyFunction:
    """A function named `"module:attribute"`, imported when it is first called.

    It calls like the function it names and has that function's signature (`inspect.signature`
    works on it, which `training` uses to see whether a loader takes the run's `seed`).

    Args:
        target: `"package.module:name"` or `"package.module:Class.method"`.
    """

    def __init__(self, target):
        self.target = target

    def resolve(self):
        """The named function (its module is imported on the first call)."""
        module, _, attribute = self.target.partition(":")
        resolved = importlib.import_module(module)
        for part in attribute.split("."):
            resolved = getattr(resolved, part)
        return resolved

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self):
        return inspect.signature(self.resolve())

    def __repr__(self):
        return f"LazyFunction({self.target!r})"


def _lazy(target):
    return None if target is None else LazyFunction(target)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the CLI and `train()` build, feed and export one model family.

    Attributes:
        name: the model's CLI name.
        model: the model class as `"module:Class"`; its module is imported on first use.
        description: one line for `--help`.
        build: `fn(preset, image_size, channels, seed, **model_options) -> uncompiled model`;
            default: the class's `from_preset` (with those as its first four arguments and the
            run's `model_options`, e.g. `model_options_cpu`, as its overrides).
        dataset: the dataset name used when `--data` is a source (auto/tfds/embedded).
        with_labels: whether the model trains on `(image, label)` pairs.
        epochs: default epochs (chosen so the default run finishes in minutes on a CPU).
        batch_size: default batch size.
        sample_count: images in the per-epoch sample grid.
        load_data: optional `fn(data, image_size, channels) -> tf.data.Dataset` of unbatched
            elements, for models whose data is not one image dataset (e.g. CycleGAN's pairs);
            in the table, a `kerasgan.datasets` function.
        image_shape: optional `fn(dataset) -> (height, channels)` when the element is not an
            image (or an `(image, label)` pair).
        export: optional `fn(model, export_dir, name, metadata=...) -> path` for models that
            export more than one SavedModel (e.g. CycleGAN's two directions); default
            `kerasgan.export.export_model`.
        jit_compile_cpu: whether `--jit auto` compiles the training step with XLA on a machine
            without a GPU.
        steps_per_execution_cpu: training steps per call of the compiled train function that
            `--steps-per-execution auto` uses on a machine without a GPU.
        learning_rate_cpu: Adam's learning rate on a machine without a GPU, in place of the
            model's defaults (its paper's, kept on GPUs): one rate for both networks, or a pair
            `(generator's, discriminator's)`; None: the defaults.
        model_options_cpu: overrides of the preset's options on a machine without a GPU (e.g.
            WGAN-GP's `{"n_critic": 2}`), passed to `build` as keywords; GPU runs keep the
            preset's (its paper's) values.
        batch_size_cpu: the default batch size on a machine without a GPU when it differs from
            `batch_size` (e.g. because `model_options_cpu` changes how a batch is cut); None:
            `batch_size`.
    """

    name: str
    model: str
    description: str
    build: Callable | None = None
    dataset: str = "mnist"
    with_labels: bool = False
    epochs: int = 20
    batch_size: int = 64
    sample_count: int = 64
    load_data: Callable | None = None
    image_shape: Callable | None = None
    export: Callable | None = None
    # XLA was never clearly faster than float32 graph mode on a CPU (`benchmarks/speed.py`;
    # figures in benchmarks/README.md), the fastest setting of every model there: off for all.
    jit_compile_cpu: bool = False
    # On a CPU much of a small model's step is Python and op-dispatch overhead around the
    # kernels; running several steps per call of the compiled function spreads it (figures in
    # benchmarks/README.md).
    steps_per_execution_cpu: int = 1
    # A short CPU run is a few thousand updates, where a larger step than the paper's (tuned for
    # long GPU runs) can buy quality per minute (`benchmarks/levers.py`).
    learning_rate_cpu: float | tuple[float, float] | None = None
    # For the same reason: the paper's balance of updates is tuned for hundreds of thousands of
    # them, and a CPU run may buy more quality per minute with another (`benchmarks/levers.py`).
    model_options_cpu: dict = dataclasses.field(default_factory=dict, hash=False)
    batch_size_cpu: int | None = None

    def __post_init__(self):
        if self.build is None:
            object.__setattr__(self, "build", LazyFunction(f"{self.model}.from_preset"))

    @property
    def model_module(self):
        """The name of the module that defines the model."""
        return self.model.partition(":")[0]

    @property
    def model_class(self):
        """The model class (imports its module)."""
        return LazyFunction(self.model).resolve()

    @property
    def presets(self):
        """The model's named configurations: the keys of its module's `CONFIGS`."""
        return tuple(importlib.import_module(self.model_module).CONFIGS)


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="dcgan",
            model="kerasgan.models.dcgan:DCGAN",
            description="DCGAN (Radford et al., 2015) on MNIST digits",
            # Batch 32: on a CPU an update of 32 images costs about half one of 64, and GANs
            # improve per update; 20 epochs of the 5,000-digit sample draw clean digits
            # (benchmarks/README.md).
            epochs=20,
            batch_size=32,
            # Its small step pays `fit`'s per-call overhead many times a second: 8 steps per call
            # took more steps in the same time on a 2-core CPU; the larger models' did not.
            steps_per_execution_cpu=8,
            # On a CPU, Adam at 1.6e-3 for both networks (8x the paper's 2e-4, beta_1 still 0.5):
            # in the same two and six CPU minutes the digits are cleaner and FD-judge lower, with
            # no sign of instability (benchmarks/README.md, "Fifth round").
            learning_rate_cpu=1.6e-3,
            # On a CPU, a latent of 16 numbers instead of the paper's 100: in the same two and
            # six CPU minutes FD-judge was lower on every seed, with more samples the judge reads
            # as digits; 8 numbers did as well, not better (benchmarks/README.md, "Ninth round"
            # and "Tenth round"). And a lazy R1 penalty on D (not in the paper): on top of the
            # small latent, at the same number of updates, it lowered FD-judge by a fifth or more
            # on every seed, with smoother strokes, and it costs few steps; R1 on every step and
            # two G steps per D step cost too many ("Eleventh round"). And samples and exports
            # from a moving average of G's weights (not in the paper; training is unchanged): on
            # top of R1 it drew smoother strokes and a lower FD-judge on every seed, at no cost in
            # steps; 0.99 (an average over about the last hundred updates) beat 0.999, which
            # still lags a generator that moves fast at 1.6e-3 ("Twelfth round"). GPU runs and
            # `DCGAN.from_preset` keep the paper's game, its 100 numbers and G itself.
            model_options_cpu={"latent_dim": 16, "r1_gamma": 0.1, "r1_interval": 4,
                               "ema_decay": 0.99},
        ),
        Recipe(
            name="cgan",
            model="kerasgan.models.conditional_gan:ConditionalGAN",
            description="conditional GAN (Mirza & Osindero, 2014; projection D) on labelled "
            "MNIST digits",
            with_labels=True,
            # As DCGAN's: the same digits and networks, with labels.
            epochs=20,
            batch_size=32,
            steps_per_execution_cpu=8,
            # 10 x 10: a row per class in the per-epoch sample grids.
            sample_count=100,
        ),
        Recipe(
            name="wgan-gp",
            model="kerasgan.models.wgan_gp:WGANGP",
            description="WGAN-GP (Gulrajani et al., 2017) on MNIST digits",
            # 150 epochs: enough for most samples to be recognisable digits within the course's
            # CPU budget (timing: benchmarks/README.md). An epoch is one pass of the critic over
            # the data: about 155 critic updates of 32 images, whatever n_critic is.
            epochs=150,
            # Real images per step: 5 critic updates of 32 images each (see the module
            # docstring of models/wgan_gp.py); on a CPU, 2 of 32.
            batch_size=160,
            batch_size_cpu=64,
            # On a CPU, 2 critic updates per generator update instead of the paper's 5: in the
            # same two and ten CPU minutes G takes more than twice the updates, and the digits
            # are cleaner with a lower FD-judge over three seeds (benchmarks/README.md, "Seventh
            # round"); GPU runs keep 5.
            model_options_cpu={"n_critic": 2},
            # On a CPU, Adam at 1.6e-3 for both networks (8x the GPU default, betas still 0 and
            # 0.9): in the same two minutes 4x gave about half the GPU default's FD-judge, and
            # 8x lower still, with more samples the judge reads as digits (benchmarks/README.md,
            # "Quality levers" and "Sixth round").
            learning_rate_cpu=1.6e-3,
        ),
        Recipe(
            name="stylegan",
            model="kerasgan.models.stylegan:StyleGAN",
            description="StyleGAN2-style generator on coloured digits (style mixing, truncation)",
            dataset="colored_mnist",
            # Coloured digits at 32 px: small enough for style mixing to show within a CPU run
            # (timing: benchmarks/README.md); batch 32 for the same reason as DCGAN's.
            epochs=40,
            batch_size=32,
            load_data=_lazy("kerasgan.datasets:load_stylegan_images"),
            # On a CPU, Adam at 8e-3 for both networks (4x StyleGAN2's 0.002; D's still
            # corrected for lazy R1): at the paper's rate the ~2,000 steps of five CPU minutes
            # draw one digit-sized blob in every cell, at 4x mostly readable digits
            # (benchmarks/README.md, "StyleGAN's learning rate on a CPU").
            learning_rate_cpu=8e-3,
        ),
        Recipe(
            name="biggan",
            model="kerasgan.models.biggan:BigGAN",
            description="BigGAN (Brock et al., 2019): class-conditional digits at 32x32 "
            "(--data cifar10|colored_mnist)",
            dataset="mnist",
            with_labels=True,
            # 15 epochs of batch 64: the class-conditional digits at 32x32 within the course's
            # CPU budget (timing: benchmarks/README.md).
            epochs=15,
            batch_size=64,
            # 10 x 10: a row per class in the per-epoch sample grids.
            sample_count=100,
            load_data=_lazy("kerasgan.datasets:load_biggan_labelled_images"),
            # G at 3e-4 (the paper's two time-scales keep D faster, at 4e-4): in a CPU run's
            # ~1,200 steps G at 2e-4 learns the classes too slowly to draw the one asked for
            # reliably (figures: benchmarks/README.md).
            learning_rate_cpu=(3e-4, 4e-4),
        ),
        Recipe(
            name="cyclegan",
            model="kerasgan.models.cyclegan:CycleGAN",
            description="CycleGAN (Zhu et al., 2017): unpaired translation, 8x8 digits <-> MNIST",
            dataset="digits",
            # 6 epochs of 625 steps (the 5,000 MNIST digits, each with a reused 8x8 digit): the
            # translation shows after the first (run time: benchmarks/README.md). Batch 8: more
            # updates per image than larger batches, which is what a short CPU run needs.
            epochs=6,
            batch_size=8,
            sample_count=8,
            load_data=_lazy("kerasgan.datasets:load_cyclegan_pairs"),
            image_shape=_lazy("kerasgan.datasets:cyclegan_pair_shape"),
            export=_lazy("kerasgan.export:export_directions"),
        ),
    )
}

# CLI name -> the module defining the model (for listings; importing it is left to the caller).
MODEL_MODULES = {name: recipe.model_module for name, recipe in RECIPES.items()}


def get_recipe(name):
    """The `Recipe` registered under `name`.

    Raises:
        ConfigError: for an unknown name (the message lists the known models).
    """
    if name not in RECIPES:
        raise ConfigError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(RECIPES))}"
        )
    return RECIPES[name]
