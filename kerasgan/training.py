"""Training runs: one function behind `python -m kerasgan train` and the notebooks.

`train` is a short sequence of named steps, each usable on its own: `resolve_settings` (check
the options, fill in the recipe's defaults), `prepare_run` (lock the run folder, check it holds
this run), `load_run_data`, `build_model`, `resume` (restore the latest checkpoint),
`record_run` (options.json, model.json), `completed_run` (a run already trained and exported),
`fit_run` (Keras `fit` with the run's callbacks) and `finish_run` (export, summary.json,
divergence). `run_real_images` loads the real images a finished run trained on, and
`build_recorded_model` its model as it was before its first step.

A run lives in a folder (default `runs/<model>`):

```
runs/dcgan/
  options.json         the exact options of the run (a rerun must match them to resume)
  checkpoints/         the latest checkpoints (networks, optimizers, RNG state, epoch)
  sample_latents.npy   the fixed latent batch of the sample grids (models with a latent)
  samples/             epoch_0001.png, epoch_0002.png, ...
  progress.gif         the sample grids of the whole run as an animation
  logs/                TensorBoard logs (losses, D(x), D(G(z)), sample grids)
  history.csv          the per-epoch metrics
  summary.json         what the last invocation did (epochs, steps, speed, export path)
  model.json           how to rebuild the model without its data (for `export_run`)
  train.lock           while a `train` runs in the folder: its process id
```

Running the same command again resumes from the last checkpoint instead of starting over; a
run is complete, and not trained again, when its checkpoint holds the requested epochs and
that checkpoint was exported. A run whose losses or weights turn NaN or infinite stops without
checkpointing them (its last finite checkpoint stays the one a rerun resumes from), exports
nothing and raises `TrainingDiverged`. Each model family registers a `Recipe`
(how to build it, which data it expects, how it exports) in `kerasgan/recipes.py`.
"""

import contextlib
import dataclasses
import inspect
import json
import math
import numbers
import os
import time

import keras
import numpy as np
import tensorflow as tf

from kerasgan import callbacks as gan_callbacks
from kerasgan import datasets, distribution, precision
from kerasgan.errors import ConfigError, DataError, ExportError, KerasganError
from kerasgan.recipes import MODEL_MODULES, Recipe, get_recipe  # noqa: F401 (re-exported)
from kerasgan.utils import atomic_path, counted, notice, process_is_running

DATA_SOURCES = ("auto", "tfds", "embedded")
LOCK_NAME = "train.lock"


class TrainingDiverged(KerasganError):
    """A loss or a weight became NaN or infinite: training stopped, nothing was exported.

    Raised after `summary.json` is written; the run folder keeps its last finite checkpoint.
    """


class RunLocked(KerasganError):
    """Another `train` is running in the same run folder."""


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
            f" and {counted(self.unfinished_steps, 'step')} of epoch {self.epochs_done + 1} (a "
            "rerun trains that epoch again)" if self.unfinished_steps else ""
        )
        return (
            f"{self.model}: epoch {self.epochs_done}/{self.epochs_total}{unfinished}, "
            f"{counted(self.steps, 'step')} this run, {speed}, {_format_seconds(self.wall_seconds)} wall time "
            f"({self.precision}{how}{stopped}); run folder {self.run_dir}{export}"
        )


def _format_seconds(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _validate(epochs, batch_size, time_budget, data, seed, own_loader=False):
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise ConfigError(f"--time-budget must be a positive number of seconds, got {time_budget}")
    # NumPy's and TensorFlow's seeds are unsigned 32-bit: a larger one would fail deep inside
    # the first random draw, or wrap around and silently repeat another seed's run.
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ConfigError(f"--seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
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


# === One train at a time per run folder ===

# Lock files this process holds: a lock naming our own pid that is not among them was left by
# an earlier process that had the same pid (containers reuse small pids), so it is stale.
_HELD_LOCKS = set()


def _lock_owner(path):
    """The pid written in the lock file at `path` (None: unreadable or still being written)."""
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return 0  # released meanwhile
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _acquire_lock(run_dir):
    """Create `run_dir/train.lock` holding this process's pid, or refuse if a live `train` holds it.

    The file is created with `O_CREAT | O_EXCL`, so of two processes racing for it exactly one
    wins. A lock whose process is gone (killed, crashed, the machine rebooted) is reported and
    taken over.

    Returns:
        The lock file's path (pass it to `_release_lock`).

    Raises:
        RunLocked: a live process holds the lock.
    """
    path = os.path.abspath(os.path.join(run_dir, LOCK_NAME))
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if owner == 0:
                continue
            held_here = owner == os.getpid() and path in _HELD_LOCKS
            if owner is None or held_here or (owner != os.getpid() and process_is_running(owner)):
                who = f"process {owner}" if owner else "another process"
                raise RunLocked(
                    f"{run_dir} is in use by another train ({who}, see {path}); wait for it to "
                    "finish or pass another --output (delete the lock file only if no train runs)"
                ) from None
            from kerasgan.utils import notice

            notice(f"taking over the stale lock of process {owner} in {run_dir} (it is not running)")
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        _HELD_LOCKS.add(path)
        return path
    raise RunLocked(f"{run_dir} is in use by another train (its lock {path} keeps changing)")


def _release_lock(path):
    _HELD_LOCKS.discard(path)
    if _lock_owner(path) == os.getpid():
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


# === The run's identity ===

# Options that define a run: a rerun with different values must not resume it. `precision` is
# the resolved policy: checkpoints written under `mixed_float16` hold loss-scale variables that
# a float32 run does not have, and the networks would compute in another precision.
IDENTITY_OPTIONS = (
    "model", "preset", "data", "data_options", "model_options", "batch_size", "seed",
    "image_size", "channels", "precision",
)
# What an option missing from an older run's options.json meant (runs before CPU model options
# were built with none), so those folders still resume.
_IDENTITY_DEFAULTS = {"model_options": {}}


def _previous_options(run_dir):
    path = os.path.join(run_dir, "options.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _run_record(run_dir, name):
    """One of a run folder's JSON records (`options.json`, `model.json`), or a `ConfigError`
    saying the folder is not a run."""
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        raise ConfigError(f"{run_dir} is not a kerasgan run folder (no {name})")
    with open(path) as handle:
        return json.load(handle)


def _has_checkpoints(run_dir):
    """Whether `run_dir` holds a checkpointed run: what decides both whether a resume with other
    options is refused (`_check_options`) and whether a resume keeps the run's recorded model
    options (`_recorded_model_options`), so the two cannot disagree."""
    return os.path.isdir(os.path.join(run_dir, "checkpoints"))


def _check_options(run_dir, previous, options):
    """Refuse to resume a run folder whose checkpoints come from other options."""
    if previous is None:
        return
    previous = {**_IDENTITY_DEFAULTS, **previous}
    changed = [
        f"{key} {previous.get(key)!r} -> {options.get(key)!r}"
        for key in IDENTITY_OPTIONS
        if previous.get(key) != options.get(key)
    ]
    if changed and _has_checkpoints(run_dir):
        raise ConfigError(
            f"{run_dir} holds a run with other options ({'; '.join(changed)}); "
            "pass another --output to start a new run"
        )


def _write_json(path, payload):
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2)


# === Data ===


def _resolve_source(recipe, data, data_options):
    """What `--data auto` stands for now: `"tfds"` or `"embedded"` (other values unchanged),
    and `(dataset name, why not tensorflow-datasets)` when it fell back to the embedded copy
    (else None).

    The same rule as `datasets.load`: tensorflow-datasets when the dataset is on disk or the
    network answers (`datasets.tfds_plan`), otherwise the embedded copy. The answer is recorded
    in options.json, so a resumed run trains on the data it started with even if the network
    came or went in between.
    """
    if data != "auto":
        return data, None
    name = data_options.get("pair") or recipe.dataset
    if name in datasets.EMBEDDED_PAIRS:
        return "embedded", None
    if name in datasets.EMBEDDED:
        tfds_name = datasets.TFDS_NAMES.get(name)
    elif name in datasets.CYCLE_GAN_PAIRS:
        tfds_name = f"cycle_gan/{name}"
    else:
        tfds_name = name
    if tfds_name is None:
        return "embedded", None
    if name in datasets.EMBEDDED:
        reason = datasets.offline_reason(name)
        if reason:
            return "embedded", (name, reason)
    return "tfds", None


def _load_data(recipe, data, image_size, channels, data_options, seed=0):
    if recipe.load_data is not None:
        # A loader with randomness of its own (CycleGAN's pairing and jitter) follows the run's seed.
        if "seed" in inspect.signature(recipe.load_data).parameters:
            data_options = {**data_options, "seed": seed}
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


def _check_classes(gan, dataset, data, model, preset):
    """A labelled folder must hold as many classes as the model was built for."""
    class_names = getattr(dataset, "class_names", None)
    num_classes = getattr(gan, "num_classes", None)
    if class_names is None or num_classes is None or len(class_names) == num_classes:
        return
    shown = ", ".join(class_names[:5]) + (", ..." if len(class_names) > 5 else "")
    raise ConfigError(
        f"{data} has {len(class_names)} classes ({shown}) but {model} ({preset}) is built for "
        f"{num_classes}; give it a folder with {num_classes} class sub-folders"
    )


def image_shape(recipe, dataset):
    """`(height, channels)` of the images `recipe`'s model is built for, read from `dataset`."""
    if recipe.image_shape is not None:
        height, channels = recipe.image_shape(dataset)
    else:
        element = dataset.element_spec[0] if recipe.with_labels else dataset.element_spec
        height, _, channels = element.shape
    return int(height), int(channels)


def _completed_summary(summary_path, epochs_done, export):
    """The previous summary when the checkpoint's `epochs_done` were trained AND exported.

    A summary.json is only a record of the last invocation: one written before a later run was
    killed says nothing about the checkpoint now on disk. The run is complete only when the
    summary recorded this checkpoint's epoch count and its export still exists.
    """
    if not os.path.exists(summary_path):
        return None
    with open(summary_path) as handle:
        previous = json.load(handle)
    fields = {f.name for f in dataclasses.fields(RunSummary)} - {"gan"}
    previous = {key: value for key, value in previous.items() if key in fields}
    if previous.get("epochs_done") != epochs_done or previous.get("stopped_by"):
        return None
    if export and not (previous.get("export_path") and os.path.isdir(previous["export_path"])):
        return None
    return previous


# === The steps of a run ===


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
    steps_per_execution="auto",
    image_size=None,
    channels=None,
    data_options=None,
    callbacks=(),
    export=True,
    verbose=1,
    deterministic=False,
):
    """Train a course model in a run folder, resuming it if it was interrupted, then export it.

    The steps, each a function of this module: `resolve_settings`, `prepare_run` (the folder's
    lock and identity), `load_run_data`, `build_model`, `resume`, `record_run`,
    `completed_run` (nothing left to do), `fit_run`, `finish_run` (export and summary).

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
        steps_per_execution: training steps per call of the compiled train function
            (`Model.compile`'s option): `"auto"` (the recipe's measured choice on CPUs, 1 on
            GPUs) or a positive integer. The steps are the same; callbacks that act per batch
            (the time budget, the NaN guard) then act once per call.
        image_size: image height/width (default: the dataset's; 64 for folders).
        channels: image channels (default: the dataset's; 3 for folders).
        data_options: model-specific data choices passed to the recipe's `load_data` (e.g.
            CycleGAN's `pair`, `data_a`, `data_b`).
        callbacks: extra Keras callbacks (live plots, FID tracking), run after the checkpoint
            and before the CSV and TensorBoard loggers.
        export: whether to export the trained model at the end.
        verbose: Keras `fit` verbosity (1 shows a progress bar).
        deterministic: make TensorFlow's kernels deterministic
            (`tf.config.experimental.enable_op_determinism()`, for the rest of the process):
            the same seed then gives the same weights bit for bit, at some cost in speed.

    Returns:
        A `RunSummary`.

    Raises:
        ConfigError: an invalid option, or a run folder holding another run or a checkpoint
            written by an incompatible kerasgan.
        RunLocked: another `train` is running in the same run folder.
        TrainingDiverged: a loss or weight became NaN or infinite (after summary.json is
            written; nothing is exported, the last finite checkpoint is kept).
        gan_callbacks.CheckpointError: a checkpoint could not be written (e.g. a full disk);
            the previous checkpoint is intact.
    """
    settings = resolve_settings(
        model, data=data, epochs=epochs, batch_size=batch_size, output=output,
        export_dir=export_dir, export_name=export_name, time_budget=time_budget, seed=seed,
        preset=preset, precision_policy=precision_policy, strategy=strategy,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution, image_size=image_size,
        channels=channels, data_options=data_options, export=export, verbose=verbose,
        deterministic=deterministic,
    )
    with prepare_run(settings) as source:
        run_data = load_run_data(settings, source)
        gan = build_model(settings, run_data)
        checkpoint, initial_epoch = resume(gan, settings)
        record_run(settings, run_data)
        completed = completed_run(gan, settings, initial_epoch)
        if completed is not None:
            return completed
        outcome = fit_run(gan, checkpoint, settings, run_data.dataset, initial_epoch, callbacks)
        return finish_run(gan, settings, outcome)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """A run's options, checked and resolved: what every step of `train` reads.

    Made by `resolve_settings`. The names follow `train`'s arguments, with the recipe's
    defaults filled in; the rest are resolved from them.

    Attributes:
        recipe: the model family's `Recipe`.
        run_dir: the run folder (on a non-chief worker: the worker's own sub-folder).
        policy: the resolved precision policy (`precision_option` is what was asked for).
        distributed: the `tf.distribute.Strategy` (`strategy` is its name).
        jit: `jit_compile` for `Model.compile` (`jit_option` is what was asked for).
        steps_per_execution: for `Model.compile` (`steps_per_execution_option`: what was asked).
        learning_rate: Adam's learning rate (`resolve_learning_rate`): one for both networks or
            `(generator's, discriminator's)`; None for the model's own optimizers.
        model_options: overrides of the preset's options (`resolve_model_options`), passed to
            the recipe's `build`.
        export: whether this process exports (never on a non-chief worker).
    """

    recipe: Recipe
    model: str
    preset: str
    run_dir: str
    data: str
    data_options: dict
    epochs: int
    batch_size: int
    seed: int
    image_size: int | None
    channels: int | None
    time_budget: float | None
    policy: str
    precision_option: str
    strategy: str
    distributed: tf.distribute.Strategy
    jit: bool | str
    jit_option: bool | str
    steps_per_execution: int
    steps_per_execution_option: int | str
    learning_rate: float | tuple[float, float] | None
    model_options: dict
    export: bool
    export_dir: str
    export_name: str
    deterministic: bool
    verbose: int

    def options(self, data_source):
        """The run's options.json: what `--data` meant (`data_source`), then every option."""
        from kerasgan import __version__

        return {
            "model": self.model,
            "preset": self.preset,
            "data": self.data,
            "data_source": data_source,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "image_size": self.image_size,
            "channels": self.channels,
            "data_options": self.data_options,
            # The preset's options this run overrides (a recipe's CPU settings, e.g. WGAN-GP's
            # n_critic); {}: the preset as it is.
            "model_options": self.model_options,
            "epochs": self.epochs,
            "time_budget": self.time_budget,
            "precision": self.policy,
            "precision_option": self.precision_option,
            "strategy": self.strategy,
            "jit_compile": self.jit_option,
            "steps_per_execution": self.steps_per_execution_option,
            # Adam's rate when the recipe sets one on a CPU (one for both networks, or G's and
            # D's); None: the model's own `compile()` settings. A resumed run keeps its
            # checkpoint's rate.
            "learning_rate": self.learning_rate,
            "deterministic": bool(self.deterministic),
            "kerasgan_version": __version__,
        }


def resolve_settings(
    model="dcgan", *, data="auto", epochs=None, batch_size=None, output=None,
    export_dir="saved_models", export_name=None, time_budget=None, seed=0, preset="default",
    precision_policy="auto", strategy="default", jit_compile="auto", steps_per_execution="auto",
    image_size=None, channels=None, data_options=None, export=True, verbose=1, deterministic=False,
):
    """Check `train`'s options and resolve them into `RunSettings`; nothing is written.

    Args:
        model, ...: as for `train` (every argument but `callbacks`).

    Returns:
        The `RunSettings` of the run.

    Raises:
        ConfigError: an unknown model or preset, an invalid number, seed, `data`, strategy or
            `steps_per_execution` option.
        ExportError: an `export_name` that is not a plain folder name.
    """
    from kerasgan.export import check_export_name

    recipe = get_recipe(model)
    _validate(epochs, batch_size, time_budget, data, seed, own_loader=recipe.load_data is not None)
    if preset not in recipe.presets:
        raise ConfigError(f"unknown preset {preset!r} for {model}; choose one of: {', '.join(recipe.presets)}")
    # Checked now, not after training: an empty or path-like name must not cost a run.
    export_name = model if export_name is None else check_export_name(export_name)
    policy = precision.resolve_policy(precision_policy)
    # First: a multi-worker strategy must exist before TensorFlow runs any operation.
    distributed = distribution.make_strategy(strategy)
    jit = distribution.resolve_jit(
        jit_compile, recipe.jit_compile_cpu, distributed.num_replicas_in_sync
    )
    executed = resolve_steps_per_execution(
        steps_per_execution, recipe.steps_per_execution_cpu, distributed.num_replicas_in_sync
    )
    epochs = epochs or recipe.epochs
    batch_size = batch_size or resolve_batch_size(recipe)
    distribution.check_options(distributed, batch_size, time_budget, jit)
    run_dir = output or os.path.join("runs", model)
    if not distribution.is_chief(distributed):
        # Every worker keeps its own checkpoints (they must all save); only the chief exports.
        run_dir = os.path.join(run_dir, "workers", distribution.worker_name(distributed))
        export = False
    return RunSettings(
        recipe=recipe, model=model, preset=preset, run_dir=run_dir, data=data,
        data_options=data_options or {}, epochs=epochs, batch_size=batch_size, seed=seed,
        image_size=image_size, channels=channels, time_budget=time_budget, policy=policy,
        precision_option=precision_policy, strategy=strategy, distributed=distributed, jit=jit,
        jit_option=jit_compile, steps_per_execution=executed,
        steps_per_execution_option=steps_per_execution,
        learning_rate=resolve_learning_rate(recipe),
        model_options=resolve_model_options(recipe, run_dir=run_dir, preset=preset),
        export=export, export_dir=export_dir, export_name=export_name, deterministic=deterministic,
        verbose=verbose,
    )


def resolve_learning_rate(recipe):
    """The recipe's `learning_rate_cpu` (a rate, or a `(G, D)` pair) on a machine without a
    GPU, else None (the model's own optimizers: its paper's settings, which GPU runs keep). A
    resumed run keeps the rate it started with: it is a variable of the optimizers, restored
    from the checkpoint."""
    rate = recipe.learning_rate_cpu
    if rate is None or precision.has_gpu():
        return None
    return tuple(float(r) for r in rate) if isinstance(rate, (tuple, list)) else float(rate)


def resolve_model_options(recipe, run_dir=None, preset=None):
    """The recipe's `model_options_cpu` on a machine without a GPU, else `{}` (the preset's
    own, its paper's, values).

    A run folder that holds a checkpointed run of the same model and preset (`run_dir`,
    `preset`) keeps the options it was built with: they were the defaults of the machine and
    the kerasgan it started on, never a choice of the user's, so a run begun on a GPU, or
    before a recipe's CPU options changed, resumes as the model it is (its checkpoint holds
    that model's weights) instead of being refused as another run.
    """
    recorded = _recorded_model_options(run_dir, recipe.name, preset) if run_dir else None
    if recorded is not None:
        return recorded
    return {} if precision.has_gpu() else dict(recipe.model_options_cpu)


def _recorded_model_options(run_dir, model, preset):
    """The model options of the checkpointed run of `model`/`preset` in `run_dir`, or None."""
    previous = _previous_options(run_dir)
    if (
        previous is None
        or (previous.get("model"), previous.get("preset")) != (model, preset)
        or not _has_checkpoints(run_dir)
    ):
        return None
    return dict({**_IDENTITY_DEFAULTS, **previous}["model_options"])


def resolve_batch_size(recipe):
    """The recipe's default batch size on this machine: `batch_size_cpu` (when set) on a
    machine without a GPU, else `batch_size`."""
    if recipe.batch_size_cpu is None or precision.has_gpu():
        return recipe.batch_size
    return recipe.batch_size_cpu


def resolve_steps_per_execution(option, cpu_default, replicas=1):
    """`steps_per_execution` for `Model.compile`: `"auto"` is `cpu_default` on a machine
    without a GPU and 1 on one (not measured there) or with several replicas; otherwise a
    positive integer.

    Raises:
        ConfigError: anything else, or more than one step per call with several replicas
            (Keras's multi-step loop over a distributed iterator fails to trace here).
    """
    if option == "auto":
        if replicas > 1 or precision.has_gpu():
            return 1
        return int(cpu_default)
    if isinstance(option, str) and option.isdigit():
        option = int(option)
    if isinstance(option, bool) or not isinstance(option, numbers.Integral) or option < 1:
        raise ConfigError(
            f"steps_per_execution must be 'auto' or a positive integer, got {option!r}"
        )
    if option > 1 and replicas > 1:
        raise ConfigError(
            f"steps_per_execution {option} needs a single replica; with a distribution strategy "
            "of several replicas use 1 (or auto)"
        )
    return int(option)


@contextlib.contextmanager
def prepare_run(settings):
    """Hold the run folder for one `train`: made writable, locked, and checked to be this run's.

    The lock is taken before anything else is written (not even the export folder is made for
    a refused run) and released when the body ends, however it ends.

    Args:
        settings: the run's `RunSettings`.

    Yields:
        What `--data` stands for in this run (`"tfds"`, `"embedded"` or the option itself):
        for a resumed run, what it meant when the run started.

    Raises:
        RunLocked: another `train` holds the folder.
        ConfigError: the folder (or the export folder) cannot be written, holds another run's
            checkpoints, or checkpoints written by an incompatible kerasgan.
    """
    _ensure_writable(settings.run_dir, "output folder")
    lock = _acquire_lock(settings.run_dir)
    try:
        if settings.export:
            _ensure_writable(settings.export_dir, "export folder")
        # Before comparing options: a run folder of an older kerasgan is refused for its format.
        gan_callbacks.check_format(os.path.join(settings.run_dir, "checkpoints"))
        # Read again, now under the lock: `resolve_model_options` read it before the folder was
        # ours, and another `train` may have started the run since.
        previous = _previous_options(settings.run_dir)
        if settings.data == "auto" and (previous or {}).get("data") == "auto" and previous.get("data_source"):
            source, offline = previous["data_source"], None  # what `auto` meant at the start
        else:
            source, offline = _resolve_source(settings.recipe, settings.data, settings.data_options)
        _check_options(settings.run_dir, previous, settings.options(source))
        if offline:
            # The README promises one line saying so, before minutes of training on the sample.
            datasets.announce_embedded_fallback(*offline)
        yield source
    finally:
        _release_lock(lock)


@dataclasses.dataclass(frozen=True)
class RunData:
    """The run's training data: the unbatched dataset, where it came from, its image shape."""

    dataset: tf.data.Dataset
    source: str
    height: int
    channels: int


def load_run_data(settings, source):
    """Load the run's dataset from `source` (see `prepare_run`).

    Args:
        settings: the run's `RunSettings`.
        source: what `--data` stands for in this run.

    Returns:
        A `RunData`; its `source` is `"embedded"` when `--data auto` fell back to the embedded
        copy because tensorflow-datasets failed.

    Raises:
        DataError: the data cannot be loaded.
        ConfigError: data options the model does not take.
    """
    recipe = settings.recipe

    def load(source):
        return _load_data(
            recipe, source, settings.image_size, settings.channels, settings.data_options,
            settings.seed,
        )

    try:
        dataset = load(source)
    except DataError as error:
        # `auto`'s promise: the embedded copy when tensorflow-datasets fails after all.
        if settings.data != "auto" or source != "tfds" or recipe.dataset not in datasets.EMBEDDED:
            raise
        notice(f"{str(error).split('; ')[0]}; using the embedded copy of {recipe.dataset}")
        source = "embedded"
        dataset = load(source)
    return RunData(dataset, source, *image_shape(recipe, dataset))


def run_real_images(run_dir):
    """The real images a run trained on, to score its samples against: its model's data from
    the source `--data` stood for when the run started (options.json: `auto` resolved), at the
    run's image size and channels (model.json), one image per element (labels, if any, ride
    along as the element's second item).

    Raises:
        ConfigError: `run_dir` is not a run folder.
        DataError: the data cannot be loaded any more (e.g. a folder since deleted).
    """
    options, built = _run_record(run_dir, "options.json"), _run_record(run_dir, "model.json")
    return _load_data(
        get_recipe(built["model"]), options.get("data_source") or options["data"],
        built["image_size"], built["channels"], options.get("data_options") or {},
        options.get("seed", 0),
    )


def build_model(settings, run_data):
    """Build and compile the run's model, seeded, under its precision policy and strategy.

    Sets the global precision policy and seeds (and op determinism when asked) first, as the
    networks' weights depend on them.

    Args:
        settings: the run's `RunSettings`.
        run_data: the run's `RunData` (the image shape, and a labelled folder's classes).

    Returns:
        The compiled model.

    Raises:
        ConfigError: a labelled folder whose class count is not the model's.
    """
    precision.set_precision(settings.policy)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(settings.seed)
    with settings.distributed.scope():
        gan = settings.recipe.build(
            settings.preset, run_data.height, run_data.channels, settings.seed,
            **settings.model_options,
        )
        _check_classes(gan, run_data.dataset, settings.data, settings.model, settings.preset)
        distribution.prepare_model(gan, settings.distributed)
        optimizers = {}
        if settings.learning_rate is not None:
            optimizers = dict(zip(
                ("g_optimizer", "d_optimizer"), gan.default_optimizers(settings.learning_rate)
            ))
        gan.compile(
            jit_compile=settings.jit, steps_per_execution=settings.steps_per_execution,
            **optimizers,
        )
    return gan


def resume(gan, settings):
    """Restore the run folder's latest checkpoint into `gan`, if there is one.

    Args:
        gan: the compiled model of `build_model`.
        settings: the run's `RunSettings`.

    Returns:
        `(checkpoint, initial_epoch)`: the `GANCheckpoint` callback of the run, and the epochs
        the restored checkpoint completed (0 for a new run).

    Raises:
        ConfigError: a checkpoint of another format, or one that does not match the model.
    """
    checkpoint = gan_callbacks.GANCheckpoint(gan, os.path.join(settings.run_dir, "checkpoints"))
    initial_epoch = checkpoint.restore()  # refuses checkpoints of another format first
    if checkpoint.manager.latest_checkpoint:
        # A checkpoint of a cut-short epoch counts only the epochs completed before it.
        when = f"after epoch {initial_epoch}" if initial_epoch else "saved during epoch 1"
        notice(f"resuming {settings.run_dir} from its checkpoint {when}")
    return checkpoint, initial_epoch


def record_run(settings, run_data):
    """Write options.json (the run's identity) and model.json (how to rebuild its model)."""
    from kerasgan import __version__

    _write_json(os.path.join(settings.run_dir, "options.json"), settings.options(run_data.source))
    # How to rebuild this model without its data (for `export_run`).
    _write_json(os.path.join(settings.run_dir, "model.json"), {
        "model": settings.model, "preset": settings.preset, "image_size": run_data.height,
        "channels": run_data.channels, "seed": settings.seed, "precision": settings.policy,
        "model_options": settings.model_options,
        "kerasgan_version": __version__, "checkpoint_format": gan_callbacks.CHECKPOINT_FORMAT,
    })


def completed_run(gan, settings, initial_epoch):
    """The summary of a run already trained for its epochs and exported, or None.

    Returns:
        A `RunSummary` of the earlier invocation (with no steps and no wall time this time)
        when nothing is left to do, else None.
    """
    if initial_epoch < settings.epochs:
        return None
    previous = _completed_summary(
        os.path.join(settings.run_dir, "summary.json"), initial_epoch, settings.export
    )
    if previous is None:
        return None
    notice(f"{settings.run_dir} is already complete ({initial_epoch} of {settings.epochs} epochs)")
    previous.update(steps=0, wall_seconds=0.0, stopped_by=None, unfinished_steps=0)
    return RunSummary(**previous, gan=gan)


def sample_grid_inputs(gan, settings):
    """The fixed latents and condition of the run's sample grids.

    The latents are drawn once from the run's seed and kept in `sample_latents.npy`, so a
    resumed run draws the same grid. A model without latents (CycleGAN translates a fixed batch
    of images) gets None for both.

    Returns:
        `(latents, condition)`.
    """
    if not getattr(gan, "latent_dim", None):
        return None, None
    latents_path = os.path.join(settings.run_dir, "sample_latents.npy")
    if os.path.exists(latents_path):
        latents = np.load(latents_path)
    else:
        latents = gan.latent_batch(settings.recipe.sample_count, gan.latent_dim, settings.seed)
        with atomic_path(latents_path) as tmp:
            np.save(tmp, latents)
    return latents, gan.sample_condition(settings.recipe.sample_count)


@dataclasses.dataclass(frozen=True)
class FitOutcome:
    """What `fit_run` did: epochs and steps, speed, history, and why it stopped early, if it did.

    Attributes:
        divergence: why training diverged (a non-finite loss or weight), or None.
        out_of_time: the time budget ended training.
        checkpointed: a checkpoint is on disk (this run's or an earlier one's).
    """

    epochs_done: int
    steps: int
    images_per_second: float
    wall_seconds: float
    history: dict
    divergence: str | None
    out_of_time: bool
    unfinished_steps: int
    checkpointed: bool


def fit_run(gan, checkpoint, settings, dataset, initial_epoch, callbacks=()):
    """Train `gan` from `initial_epoch` to the run's epochs, with the run's callbacks.

    Samples, checkpoints, history.csv and TensorBoard logs are written after every epoch.

    Args:
        gan: the compiled, resumed model.
        checkpoint: the run's `GANCheckpoint` (from `resume`).
        settings: the run's `RunSettings`.
        dataset: the unbatched training data.
        initial_epoch: the epochs already done.
        callbacks: the caller's callbacks (see `train`).

    Returns:
        A `FitOutcome`.
    """
    throughput = gan_callbacks.Throughput(settings.batch_size)
    budget = gan_callbacks.TimeBudget(settings.time_budget) if settings.time_budget else None
    # Silent: `TrainingDiverged` says what happened, in one line.
    nan_guard = gan_callbacks.GANTerminateOnNaN(verbose=False)
    callback_list = [
        *([budget] if budget else []),
        throughput,
        nan_guard,
        *_run_callbacks(gan, checkpoint, settings, callbacks),
        # In place of the one `fit` adds (last, as that one is).
        gan_callbacks.StepProgressBar(),
    ]
    # A different shuffle seed per resumed epoch, so a resumed run does not replay epoch 1's order.
    batches = datasets.training_pipeline(
        dataset, settings.batch_size, seed=settings.seed * 1000 + initial_epoch
    )
    started = time.monotonic()
    history = {}
    if initial_epoch < settings.epochs:
        if settings.verbose:
            notice(_start_line(settings, dataset, initial_epoch))
        result = gan.fit(
            batches,
            epochs=settings.epochs,
            initial_epoch=initial_epoch,
            callbacks=callback_list,
            verbose=settings.verbose,
            shuffle=False,
        )
        history = {key: [float(v) for v in values] for key, values in result.history.items()}
    epochs_done = int(checkpoint.epoch.numpy()) or initial_epoch
    return FitOutcome(
        epochs_done=epochs_done,
        steps=throughput.steps,
        images_per_second=throughput.images_per_second or 0.0,
        wall_seconds=time.monotonic() - started,
        history=history,
        divergence=nan_guard.reason or checkpoint.refused,
        out_of_time=budget is not None and budget.exhausted and epochs_done < settings.epochs,
        unfinished_steps=checkpoint.unfinished_steps,
        checkpointed=checkpoint.manager.latest_checkpoint is not None,
    )


def _start_line(settings, dataset, initial_epoch):
    """What is about to be trained, on what, and where: the line before `fit`'s progress bar."""
    how = _execution_note(
        settings.strategy, settings.distributed.num_replicas_in_sync, settings.jit is True
    )
    return (
        f"training {settings.model} ({settings.preset}) on {datasets.describe(dataset)}, "
        f"batch {settings.batch_size}, epochs {initial_epoch + 1}-{settings.epochs}, "
        f"{settings.policy}{how}{_per_call(settings.steps_per_execution)}"
        f"{_cpu_settings_note(settings.learning_rate, settings.model_options)}; "
        f"run folder {settings.run_dir}"
    )


def _cpu_settings_note(learning_rate, model_options):
    """`", Adam at 0.0016, latent_dim 16 and r1_gamma 0.1 (the CPU settings)"`: what a CPU run
    changes, or ""."""
    parts = [f"{key} {value}" for key, value in model_options.items()]
    if isinstance(learning_rate, tuple):
        parts.insert(0, f"Adam at {learning_rate[0]:g} for G and {learning_rate[1]:g} for D")
    elif learning_rate is not None:
        parts.insert(0, f"Adam at {learning_rate:g}")
    if not parts:
        return ""
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f", {listed} (the CPU setting{'s' if len(parts) > 1 else ''})"


def _per_call(steps_per_execution):
    return f", {steps_per_execution} steps per call" if steps_per_execution > 1 else ""


def _run_callbacks(gan, checkpoint, settings, callbacks):
    """The sample grid, the checkpoint, the caller's callbacks, then the loggers, in that order."""
    latents, condition = sample_grid_inputs(gan, settings)
    log_dir = os.path.join(settings.run_dir, "logs")
    return [
        gan_callbacks.SampleGrid(
            latents,
            os.path.join(settings.run_dir, "samples"),
            gif_path=os.path.join(settings.run_dir, "progress.gif"),
            condition=condition,
            log_dir=log_dir,
        ),
        checkpoint,
        # The caller's callbacks run after the checkpoint and before the loggers, so values
        # they add to the epoch logs (e.g. FIDCallback's fid) reach history.csv and TensorBoard.
        *callbacks,
        keras.callbacks.CSVLogger(os.path.join(settings.run_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0),
    ]


def finish_run(gan, settings, outcome):
    """Export the trained model (unless it diverged), write summary.json, and report.

    Args:
        gan: the trained model.
        settings: the run's `RunSettings`.
        outcome: the `FitOutcome` of `fit_run`.

    Returns:
        The `RunSummary` of this invocation.

    Raises:
        TrainingDiverged: the run diverged (after summary.json is written; nothing exported).
    """
    export_path = None
    if settings.export and not outcome.divergence:
        export_path = _export_trained(
            gan, settings.recipe, settings.export_dir, settings.export_name,
            settings.run_dir, outcome.epochs_done, settings.preset,
        )
    stopped_by = None
    if outcome.divergence:
        stopped_by = f"divergence: {outcome.divergence} (not exported)"
    elif outcome.out_of_time:
        stopped_by = "the time budget"
    summary = RunSummary(
        model=settings.model,
        run_dir=settings.run_dir,
        epochs_done=outcome.epochs_done,
        epochs_total=settings.epochs,
        steps=outcome.steps,
        images_per_second=outcome.images_per_second,
        wall_seconds=outcome.wall_seconds,
        export_path=export_path,
        stopped_by=stopped_by,
        precision=settings.policy,
        strategy=settings.strategy,
        replicas=settings.distributed.num_replicas_in_sync,
        jit_compile=bool(gan.jit_compile),
        unfinished_steps=outcome.unfinished_steps,
        history=outcome.history,
        gan=gan,
    )
    _write_json(os.path.join(settings.run_dir, "summary.json"), summary.to_json())
    if outcome.divergence:
        raise TrainingDiverged(_divergence_message(settings, outcome))
    return summary


def _divergence_message(settings, outcome):
    if not outcome.checkpointed:
        kept = "no checkpoint was written"
    elif outcome.epochs_done:
        kept = f"the checkpoint after epoch {outcome.epochs_done} is kept"
    else:
        kept = "the checkpoint saved during epoch 1 is kept"
    return (
        f"{settings.model} diverged: {outcome.divergence}; training stopped, {kept} in "
        f"{settings.run_dir}, nothing was exported (try a lower learning rate or another seed)"
    )


def _export_trained(gan, recipe, export_dir, name, run_dir, epochs, preset):
    """Export `gan` the recipe's way (default `export.export_model`), naming the run it came from."""
    from kerasgan.export import export_model

    return (recipe.export or export_model)(
        gan, export_dir, name,
        metadata={"run_dir": os.path.abspath(run_dir), "epochs": epochs, "preset": preset},
    )


def _execution_note(strategy, replicas, jit):
    """How the steps run, for the start notice and the summary line: `", mirrored x2"` with
    several replicas, `", XLA"` when compiled (never both: see `distribution.check_options`)."""
    note = f", {strategy} x{replicas}" if replicas > 1 else ""
    return note + (", XLA" if jit else "")


def build_recorded_model(run_dir):
    """A run folder's model as its model.json records it, untrained and uncompiled: the model
    its checkpoints restore into (with the run's model options, e.g. DCGAN's CPU latent) and,
    as the global seeds are set from the run's seed first, the run's weights before its first
    step. Built under the current precision policy.

    Raises:
        ConfigError: the folder is not a run folder (no model.json).
    """
    return _build_from_record(_run_record(run_dir, "model.json"))


def _build_from_record(built):
    """`build_recorded_model` from a model.json already read."""
    keras.utils.set_random_seed(built["seed"])
    return get_recipe(built["model"]).build(
        built["preset"], built["image_size"], built["channels"], built["seed"],
        **(built.get("model_options") or {}),  # absent from runs of older kerasgan versions
    )


def export_run(run_dir, export_dir="saved_models", name=None):
    """Export the latest checkpoint of a run folder (e.g. one stopped before its export).

    The model is rebuilt under the precision policy the run trained with (so the export computes
    like the trained model, and a `mixed_float16` run's loss-scale variables have a home); the
    global policy is put back afterwards.

    Args:
        run_dir: a run folder written by `train`.
        export_dir: TF Serving model base folder.
        name: the export's folder name (default: the model's CLI name).

    Returns:
        The path of the new export.

    Raises:
        ConfigError: when `run_dir` is not a run folder, holds no checkpoint, or holds one
            written by an incompatible kerasgan.
        ExportError: when the checkpoint's weights are not all finite (a diverged run).
    """
    from kerasgan.export import check_export_name

    if name is not None:
        check_export_name(name)
    built = _run_record(run_dir, "model.json")
    recipe = get_recipe(built["model"])
    saved_policy = keras.mixed_precision.global_policy().name
    try:
        precision.set_precision(built.get("precision", "float32"))
        gan = _build_from_record(built)
        gan.compile()
        checkpoint = gan_callbacks.GANCheckpoint(gan, os.path.join(run_dir, "checkpoints"))
        if checkpoint.manager.latest_checkpoint is None:
            raise ConfigError(f"{run_dir} holds no checkpoint yet; train at least one epoch first")
        epochs = checkpoint.restore()
        bad = checkpoint.first_non_finite()
        if bad is not None:
            raise ExportError(
                f"{checkpoint.manager.latest_checkpoint} holds NaN or infinite weights ({bad}): "
                "the run diverged; not exported"
            )
        _ensure_writable(export_dir, "export folder")
        return _export_trained(
            gan, recipe, export_dir, built["model"] if name is None else name, run_dir, epochs,
            built["preset"],
        )
    finally:
        keras.mixed_precision.set_dtype_policy(saved_policy)
