"""Training runs: one function behind `python -m kerasgan train` and the notebooks.

A run lives in a folder (default `runs/<model>`):

```
runs/dcgan/
  options.json         the exact options of the run (a rerun must match them to resume)
  checkpoints/         the latest checkpoints (networks, both optimizers, RNG state, epoch)
  sample_latents.npy   the fixed latent batch of the sample grids
  samples/             epoch_0001.png, epoch_0002.png, ...
  progress.gif         the sample grids of the whole run as an animation
  logs/                TensorBoard logs (losses, D(x), D(G(z)), sample grids)
  history.csv          the per-epoch metrics
  summary.json         what the last invocation did (epochs, steps, speed, export path)
  model.json           how to rebuild the model without its data (for `export_run`)
```

Running the same command again resumes from the last checkpoint instead of starting over; a
run that is already complete is not trained again. Each model family registers a `Recipe`
(how to build it, which data it expects, how it exports) in `kerasgan/recipes.py`.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np

from kerasgan import callbacks as gan_callbacks
from kerasgan import datasets, distribution, precision
from kerasgan.errors import ConfigError
from kerasgan.recipes import MODEL_MODULES, Recipe, get_recipe  # noqa: F401 (re-exported)
from kerasgan.utils import atomic_path, notice

DATA_SOURCES = ("auto", "tfds", "embedded")


@dataclasses.dataclass
class RunSummary:
    """What one `train()` call did."""

    model: str
    run_dir: str
    epochs_done: int
    epochs_total: int
    steps: int
    images_per_second: float
    wall_seconds: float
    export_path: str | None
    stopped_by: str | None = None
    precision: str = "float32"
    strategy: str = "default"
    replicas: int = 1
    jit_compile: bool = False
    # Steps of the epoch the stop cut short: saved, but not counted in `epochs_done`.
    unfinished_steps: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    # The trained model object, for notebooks; not part of summary.json.
    gan: object = dataclasses.field(default=None, repr=False, compare=False)

    def to_json(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "gan"}

    def line(self):
        """The one-line summary the CLI prints at the end of a run."""
        speed = f"{self.images_per_second:,.0f} images/s" if self.images_per_second else "n/a"
        stopped = f", stopped by {self.stopped_by}" if self.stopped_by else ""
        how = _execution_note(self.strategy, self.replicas, self.jit_compile)
        export = f"; exported to {self.export_path}" if self.export_path else "; not exported"
        unfinished = (
            f" and {self.unfinished_steps:,} steps of epoch {self.epochs_done + 1} (a rerun "
            "trains that epoch again)" if self.unfinished_steps else ""
        )
        return (
            f"{self.model}: epoch {self.epochs_done}/{self.epochs_total}{unfinished}, {self.steps:,} steps "
            f"this run, {speed}, {_format_seconds(self.wall_seconds)} wall time "
            f"({self.precision}{how}{stopped}); run folder {self.run_dir}{export}"
        )


def _format_seconds(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _validate(epochs, batch_size, time_budget, data, own_loader=False):
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise ConfigError(f"--time-budget must be a positive number of seconds, got {time_budget}")
    # A recipe with its own loader (e.g. BigGAN's `--data cifar10`) checks `--data` itself.
    if not own_loader and data not in DATA_SOURCES and not os.path.exists(data):
        raise ConfigError(
            f"--data must be one of {', '.join(DATA_SOURCES)} or an image folder; "
            f"{data!r} does not exist"
        )


def _ensure_writable(folder, what):
    """Fail before training, not after it, when a folder cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise ConfigError(f"cannot write to the {what} {folder}: {error.strerror or error}") from None


# Options that define a run: a rerun with different values must not resume it.
IDENTITY_OPTIONS = (
    "model", "preset", "data", "data_options", "batch_size", "seed", "image_size", "channels"
)


def _check_or_write_options(run_dir, options):
    path = os.path.join(run_dir, "options.json")
    if os.path.exists(path):
        with open(path) as handle:
            previous = json.load(handle)
        changed = [
            f"{key} {previous.get(key)!r} -> {options.get(key)!r}"
            for key in IDENTITY_OPTIONS
            if previous.get(key) != options.get(key)
        ]
        if changed and os.path.isdir(os.path.join(run_dir, "checkpoints")):
            raise ConfigError(
                f"{run_dir} holds a run with other options ({'; '.join(changed)}); "
                "pass another --output to start a new run"
            )
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(options, handle, indent=2)


def _write_json(path, payload):
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2)


def _load_data(recipe, data, image_size, channels, data_options):
    if recipe.load_data is not None:
        return recipe.load_data(data, image_size, channels, **data_options)
    if data_options:
        raise ConfigError(f"{recipe.name} takes no data options ({', '.join(data_options)})")
    if data in DATA_SOURCES:
        return datasets.load(
            recipe.dataset,
            source=data,
            image_size=image_size,
            channels=channels,
            with_labels=recipe.with_labels,
        )
    return datasets.load(
        data,
        image_size=image_size or 64,
        channels=channels or 3,
        with_labels=recipe.with_labels,
    )


def train(
    model="dcgan",
    *,
    data="auto",
    epochs=None,
    batch_size=None,
    output=None,
    export_dir="saved_models",
    export_name=None,
    time_budget=None,
    seed=0,
    preset="default",
    precision_policy="auto",
    strategy="default",
    jit_compile="auto",
    image_size=None,
    channels=None,
    data_options=None,
    callbacks=(),
    export=True,
    verbose=1,
):
    """Train a course model in a run folder, resuming it if it was interrupted, then export it.

    Args:
        model: a name in `recipes.MODEL_MODULES` (`"dcgan"`, ...).
        data: `"auto"` (tensorflow-datasets, or the embedded copy offline), `"tfds"`,
            `"embedded"`, or an image folder.
        epochs: total epochs of the run (default: the recipe's).
        batch_size: images per step (default: the recipe's).
        output: the run folder (default `runs/<model>`).
        export_dir: TF Serving model base folder for the export.
        export_name: the export's folder name (default: the model name).
        time_budget: seconds after which training stops cleanly (samples, checkpoint and export
            still happen).
        seed: seeds weights, data order, latent streams and the fixed sample latents.
        preset: the model configuration (`"default"`, `"tiny"`, ...).
        precision_policy: `"auto"`, `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`.
        strategy: `"default"`, `"mirrored"`, `"multiworker"` or `"tpu"` (see
            `kerasgan.distribution`). `batch_size` is the global batch, split between the
            replicas; batch norm then uses cross-replica statistics. On a multi-worker cluster
            only the chief writes `output` and exports; worker k writes `output/workers/workerk`.
        jit_compile: `"auto"` (the recipe's measured choice on CPUs; Keras's on GPUs), `"on"`
            or `"off"` (or a bool): whether to compile the training step with XLA.
        image_size: image height/width (default: the dataset's; 64 for folders).
        channels: image channels (default: the dataset's; 3 for folders).
        data_options: model-specific data choices passed to the recipe's `load_data` (e.g.
            CycleGAN's `pair`, `data_a`, `data_b`).
        callbacks: extra Keras callbacks (live plots, FID tracking), run after the checkpoint
            and before the CSV and TensorBoard loggers.
        export: whether to export the generator at the end.
        verbose: Keras `fit` verbosity (1 shows a progress bar).

    Returns:
        A `RunSummary`.
    """
    recipe = get_recipe(model)
    _validate(epochs, batch_size, time_budget, data, own_loader=recipe.load_data is not None)
    if preset not in recipe.presets:
        raise ConfigError(f"unknown preset {preset!r} for {model}; choose one of: {', '.join(recipe.presets)}")
    # First: a multi-worker strategy must exist before TensorFlow runs any operation.
    distributed = distribution.make_strategy(strategy)
    jit = distribution.resolve_jit(
        jit_compile, recipe.jit_compile_cpu, distributed.num_replicas_in_sync
    )
    epochs = epochs or recipe.epochs
    batch_size = batch_size or recipe.batch_size
    distribution.check_options(distributed, batch_size, time_budget, jit)
    run_dir = output or os.path.join("runs", model)
    if not distribution.is_chief(distributed):
        # Every worker keeps its own checkpoints (they must all save); only the chief exports.
        run_dir = os.path.join(run_dir, "workers", distribution.worker_name(distributed))
        export = False
    _ensure_writable(run_dir, "output folder")
    if export:
        _ensure_writable(export_dir, "export folder")
    options = {
        "model": model,
        "preset": preset,
        "data": data,
        "batch_size": batch_size,
        "seed": seed,
        "image_size": image_size,
        "channels": channels,
        "data_options": data_options or {},
        "epochs": epochs,
        "time_budget": time_budget,
        "precision": precision_policy,
        "strategy": strategy,
        "jit_compile": jit_compile,
    }

    dataset = _load_data(recipe, data, image_size, channels, data_options or {})
    if recipe.image_shape is not None:
        height, depth = recipe.image_shape(dataset)
    else:
        element = dataset.element_spec[0] if recipe.with_labels else dataset.element_spec
        height, _, depth = element.shape
    _check_or_write_options(run_dir, options)

    policy = precision.set_precision(precision_policy)
    keras.utils.set_random_seed(seed)
    with distributed.scope():
        gan = recipe.build(preset, int(height), int(depth), seed)
        distribution.prepare_model(gan, distributed)
        gan.compile(jit_compile=jit)
    # How to rebuild this model without its data (for `export_run`).
    _write_json(os.path.join(run_dir, "model.json"), {
        "model": model, "preset": preset, "image_size": int(height), "channels": int(depth), "seed": seed,
    })
    checkpoint = gan_callbacks.GANCheckpoint(gan, os.path.join(run_dir, "checkpoints"))
    initial_epoch = checkpoint.restore()
    if checkpoint.manager.latest_checkpoint:
        # A checkpoint of a cut-short epoch counts only the epochs completed before it.
        when = f"after epoch {initial_epoch}" if initial_epoch else "saved during epoch 1"
        notice(f"resuming {run_dir} from its checkpoint {when}")

    summary_path = os.path.join(run_dir, "summary.json")
    if initial_epoch >= epochs and os.path.exists(summary_path):
        with open(summary_path) as handle:
            previous = json.load(handle)
        if previous.get("export_path") or not export:
            notice(f"{run_dir} is already complete ({initial_epoch} of {epochs} epochs)")
            previous.update(steps=0, wall_seconds=0.0, stopped_by=None, unfinished_steps=0)
            return RunSummary(**previous, gan=gan)

    latents_path = os.path.join(run_dir, "sample_latents.npy")
    if os.path.exists(latents_path):
        sample_latents = np.load(latents_path)
    else:
        sample_latents = gan.latent_batch(recipe.sample_count, gan.latent_dim, seed)
        with atomic_path(latents_path) as tmp:
            np.save(tmp, sample_latents)
    sample_condition = gan.sample_condition(recipe.sample_count)

    # A different shuffle seed per resumed epoch, so a resumed run does not replay epoch 1's order.
    batches = datasets.training_pipeline(dataset, batch_size, seed=seed * 1000 + initial_epoch)
    throughput = gan_callbacks.Throughput(batch_size)
    budget = gan_callbacks.TimeBudget(time_budget) if time_budget else None
    nan_guard = gan_callbacks.GANTerminateOnNaN()
    log_dir = os.path.join(run_dir, "logs")
    callback_list = [
        throughput,
        nan_guard,
        gan_callbacks.SampleGrid(
            sample_latents,
            os.path.join(run_dir, "samples"),
            gif_path=os.path.join(run_dir, "progress.gif"),
            condition=sample_condition,
            log_dir=log_dir,
        ),
        checkpoint,
        # The caller's callbacks run after the checkpoint and before the loggers, so values
        # they add to the epoch logs (e.g. FIDCallback's fid) reach history.csv and TensorBoard.
        *callbacks,
        keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0),
    ]
    if budget:
        callback_list.insert(0, budget)

    started = time.monotonic()
    history = {}
    if initial_epoch < epochs:
        if verbose:
            notice(
                f"training {model} ({preset}) on {datasets.describe(dataset)}, batch {batch_size}, "
                f"epochs {initial_epoch + 1}-{epochs}, {policy}"
                f"{_execution_note(strategy, distributed.num_replicas_in_sync, jit is True)}; "
                f"run folder {run_dir}"
            )
        result = gan.fit(
            batches,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callback_list,
            verbose=verbose,
            shuffle=False,
        )
        history = {key: [float(v) for v in values] for key, values in result.history.items()}
    epochs_done = int(checkpoint.epoch.numpy()) or initial_epoch
    wall = time.monotonic() - started

    export_path = None
    if export and not nan_guard.terminated:
        from kerasgan.export import export_model

        export_fn = recipe.export or export_model
        export_path = export_fn(
            gan,
            export_dir,
            export_name or model,
            metadata={"run_dir": os.path.abspath(run_dir), "epochs": epochs_done, "preset": preset},
        )
    stopped_by = None
    if budget is not None and budget.exhausted and epochs_done < epochs:
        stopped_by = "the time budget"
    elif nan_guard.terminated:
        stopped_by = "a NaN loss (not exported)"
    summary = RunSummary(
        model=model,
        run_dir=run_dir,
        epochs_done=epochs_done,
        epochs_total=epochs,
        steps=throughput.steps,
        images_per_second=throughput.images_per_second or 0.0,
        wall_seconds=wall,
        export_path=export_path,
        stopped_by=stopped_by,
        precision=policy,
        strategy=strategy,
        replicas=distributed.num_replicas_in_sync,
        jit_compile=bool(gan.jit_compile),
        unfinished_steps=checkpoint.unfinished_steps,
        history=history,
        gan=gan,
    )
    _write_json(summary_path, summary.to_json())
    return summary


def _execution_note(strategy, replicas, jit):
    """How the steps run, for the start notice and the summary line: `", mirrored x2"` with
    several replicas, `", XLA"` when compiled (never both: see `distribution.check_options`)."""
    note = f", {strategy} x{replicas}" if replicas > 1 else ""
    return note + (", XLA" if jit else "")


def export_run(run_dir, export_dir="saved_models", name=None):
    """Export the latest checkpoint of a run folder (e.g. one stopped before its export).

    Args:
        run_dir: a run folder written by `train`.
        export_dir: TF Serving model base folder.
        name: the export's folder name (default: the model's CLI name).

    Returns:
        The path of the new export.

    Raises:
        ConfigError: when `run_dir` is not a run folder or holds no checkpoint.
    """
    from kerasgan.export import export_model

    description = os.path.join(run_dir, "model.json")
    if not os.path.isfile(description):
        raise ConfigError(f"{run_dir} is not a kerasgan run folder (no model.json)")
    with open(description) as handle:
        built = json.load(handle)
    recipe = get_recipe(built["model"])
    gan = recipe.build(built["preset"], built["image_size"], built["channels"], built["seed"])
    gan.compile()
    checkpoint = gan_callbacks.GANCheckpoint(gan, os.path.join(run_dir, "checkpoints"))
    if checkpoint.manager.latest_checkpoint is None:
        raise ConfigError(f"{run_dir} holds no checkpoint yet; train at least one epoch first")
    epochs = checkpoint.restore()
    _ensure_writable(export_dir, "export folder")
    return (recipe.export or export_model)(
        gan, export_dir, name or built["model"],
        metadata={"run_dir": os.path.abspath(run_dir), "epochs": epochs, "preset": built["preset"]},
    )
