"""Callbacks that watch, record and protect GAN training.

`fit` drives training; these hook into it:

* `SampleGrid` draws the same latent batch after every epoch (a grid PNG per epoch, a GIF of the
  whole run, and the grid in TensorBoard), so progress is visible, not only in loss numbers.
* `GANCheckpoint` saves and restores *everything* a resumed run needs: both networks, **both**
  optimizers' slots, the model's random stream and the epoch. (Keras's `BackupAndRestore`
  restores only optimizers that are already built, so a GAN's second optimizer would silently
  restart from zero, and it deletes its backup when training ends.)
* `TimeBudget` stops cleanly after a wall-clock budget; `GANTerminateOnNaN` stops when a GAN
  loss or weight is NaN (Keras's `TerminateOnNaN` only looks at `logs["loss"]`, which a GAN
  doesn't have); `GANCheckpoint` never saves such weights.
* `Throughput` measures images per second from the median step time (this VM stalls for
  seconds now and then, so totals over a few steps lie); `StepProgressBar` is Keras's progress
  bar, counting steps right when several run per call.
"""

import glob
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from kerasgan import plotting
from kerasgan.errors import ConfigError, KerasganError
from kerasgan.models.conditional_gan import ConditionalGAN, labelled_batch
from kerasgan.utils import notice


class SampleGrid(keras.callbacks.Callback):
    """Save a grid of images generated from a fixed latent batch after every epoch.

    Files: `directory/epoch_0001.png`, ... and, when training ends, `gif_path` with every epoch's
    grid found in `directory` (so a resumed run's GIF covers the whole run).

    Args:
        latent: fixed latent vectors `[n, latent_dim]` (keep them fixed to watch one set of
            samples evolve).
        directory: where the PNGs go.
        gif_path: where the GIF goes (None for no GIF).
        condition: optional condition for conditional generators (e.g. labels).
        scale: nearest-neighbour enlargement of the saved PNGs.
        log_dir: optional TensorBoard log folder for the grid image.
    """

    def __init__(self, latent, directory, gif_path=None, condition=None, scale=2, log_dir=None):
        super().__init__()
        self.latent = None if latent is None else np.asarray(latent, "float32")
        self.condition = condition
        self.directory = directory
        self.gif_path = gif_path
        self.scale = scale
        self.log_dir = log_dir
        self._writer = None

    def grid(self):
        images = self.model.preview(self.latent, self.condition)
        return plotting.image_grid(images, cols=getattr(self.model, "preview_columns", None))

    def on_epoch_end(self, epoch, logs=None):
        grid = self.grid()
        plotting.save_image(
            grid, os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png"), scale=self.scale
        )
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "samples"))
            with self._writer.as_default():
                tf.summary.image("samples", grid[None], step=epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
        if not self.gif_path:
            return
        frames = sorted(glob.glob(os.path.join(self.directory, "epoch_*.png")))
        if frames:
            from PIL import Image

            plotting.save_gif([np.asarray(Image.open(f)) for f in frames], self.gif_path)


# The layout of GANCheckpoint's files. 1: variables listed by position (no format.json was
# written then); 2: variables keyed by name (`checkpoint_variables`). A run folder whose
# checkpoints have another format is refused rather than misread.
CHECKPOINT_FORMAT = 2
FORMAT_FILE = "format.json"


class CheckpointError(KerasganError, OSError):
    """A checkpoint could not be written (a full disk, a lost mount); the previous one is intact."""


def _seed_generator_owners(layer, path, owners):
    """Map each seed generator's state inside `layer` to `path/<sub-layer names>/<attribute>`."""
    for attribute, value in vars(layer).items():
        if isinstance(value, keras.random.SeedGenerator):
            owners.setdefault(id(value.state), f"{path}/{attribute.lstrip('_')}")
    # `_flatten_layers` is how Keras itself walks nested layers; there is no public equivalent.
    for child in layer._flatten_layers(include_self=False, recursive=False):
        _seed_generator_owners(child, f"{path}/{child.name}", owners)


def _network_variables(prefix, network, names):
    """Name a network's variables `prefix/<variable path>`.

    Keras numbers the names of seed generators by creation order in the process
    (`seed_generator_19`), so a generator inside a layer is named by the path of nested layers
    and the attribute holding it instead; every other variable path comes from the (explicit)
    layer names.
    """
    owners = {}
    _seed_generator_owners(network, prefix, owners)
    for variable in network.variables:
        name = owners.get(id(variable), f"{prefix}/{variable.path}")
        names.setdefault(id(variable), (name, variable))


def _optimizer_variables(prefix, optimizer, names):
    """Name an optimizer's variables: slots by the model variable they belong to
    (`g_optimizer/momentums/generator/project/kernel`), the rest by their own name."""
    references = list(getattr(optimizer, "_trainable_variables", []))
    slots = set()
    for attribute, value in vars(optimizer).items():
        if (
            attribute in ("_variables", "_trainable_variables")
            or not isinstance(value, (list, tuple))  # Keras's ListWrapper is a list
            or len(value) != len(references)
            or not all(isinstance(item, keras.Variable) for item in value)
        ):
            continue
        for reference, slot in zip(references, value):
            model_name = names[id(reference)][0]
            names.setdefault(id(slot), (f"{prefix}/{attribute.lstrip('_')}/{model_name}", slot))
            slots.add(id(slot))
    inner = getattr(optimizer, "inner_optimizer", None)  # LossScaleOptimizer
    if inner is not None:
        _optimizer_variables(f"{prefix}/inner", inner, names)
    for variable in optimizer.variables:
        if id(variable) not in slots and id(variable) not in names:
            names[id(variable)] = (f"{prefix}/{variable.name}", variable)


def checkpoint_variables(gan):
    """Every variable a resumed run needs, keyed by a name that does not depend on list order.

    Networks and other parts are named by the GAN attribute holding them (`generator/...`,
    `discriminator_a/...`, `pool_a/...`, `seed_generator/state`); optimizer slots by the
    optimizer and the model variable they belong to. Restoring matches these names, so a
    model whose variables are listed in another order still gets each value in the right
    place, and a renamed one is refused instead of silently misloaded.

    Args:
        gan: a compiled GAN (its optimizers built).

    Returns:
        A dict `{name: variable}`.
    """
    names = {}  # id(variable) -> (name, variable); the first owner found names a shared one
    optimizers = []
    for attribute, value in vars(gan).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, keras.optimizers.Optimizer):
            optimizers.append((attribute, value))
        elif isinstance(value, keras.layers.Layer):
            _network_variables(attribute, value, names)
        elif isinstance(value, keras.random.SeedGenerator):
            names.setdefault(id(value.state), (f"{attribute}/state", value.state))
        elif isinstance(value, keras.Variable):
            names.setdefault(id(value), (attribute, value))
    missing = [v.path for v in gan.variables if id(v) not in names]
    if missing:
        raise ValueError(f"{type(gan).__name__} holds variables outside its attributes: {missing}")
    for attribute, optimizer in optimizers:
        _optimizer_variables(attribute, optimizer, names)
    by_name = {}
    for name, variable in names.values():
        if name in by_name:
            raise ValueError(f"two variables of {type(gan).__name__} have the name {name!r}")
        by_name[name] = variable
    return by_name


def first_non_finite(named_variables):
    """The name of the first floating-point variable holding a NaN or an infinity, or None."""
    for name, variable in named_variables:
        if not np.issubdtype(np.dtype(variable.dtype), np.floating):
            continue
        if not np.isfinite(np.asarray(variable)).all():
            return name
    return None


def _non_finite_loss(logs):
    for key, value in (logs or {}).items():
        if key.endswith("loss") and isinstance(value, (int, float, np.number)) and not math.isfinite(float(value)):
            return key, float(value)
    return None


def _saved_names(path):
    """The variable names in the checkpoint at `path` (TensorFlow escapes `/` as `.S`)."""
    names = set()
    for key, _ in tf.train.list_variables(path):
        parts = key.split("/")
        if parts[0] == "variables" and len(parts) >= 2:
            names.add(parts[1].replace(".S", "/").replace("..", "."))
    return names


def check_format(directory):
    """Refuse (`ConfigError`, one line) checkpoints in `directory` of another format than
    `CHECKPOINT_FORMAT`; a folder without checkpoints passes."""
    from kerasgan import __version__

    if not tf.train.latest_checkpoint(directory):
        return
    path = os.path.join(directory, FORMAT_FILE)
    try:
        with open(path) as handle:
            recorded = json.load(handle)
    except FileNotFoundError:
        # Written before the format was recorded: variables listed by position.
        recorded = {"kerasgan": "from before checkpoint formats were recorded", "checkpoint_format": 1}
    except (OSError, ValueError):
        recorded = {"kerasgan": "unknown", "checkpoint_format": "unreadable"}
    if recorded.get("checkpoint_format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{directory} holds checkpoints of kerasgan {recorded.get('kerasgan')} "
            f"(checkpoint format {recorded.get('checkpoint_format')}); kerasgan {__version__} reads "
            f"format {CHECKPOINT_FORMAT}: train into another --output, or use that version"
        )


class GANCheckpoint(keras.callbacks.Callback):
    """Checkpoint a GAN after every epoch; restore it to resume an interrupted run.

    A `tf.train.CheckpointManager` writes each checkpoint's files first and then switches its
    index file atomically, so a run killed mid-save resumes from the previous checkpoint, never
    from a half-written one. The variables are listed explicitly (a Keras 3 model is not
    traversed by `tf.train.Checkpoint`) and keyed by name (`checkpoint_variables`): the networks'
    variables (including the seed generators' states) and both optimizers' variables.

    Weights are checkpointed only while they are finite: an epoch whose losses (the logged
    `*loss` values) or weights turned NaN or infinite is not saved, so the last finite checkpoint
    is never rotated away by `max_to_keep`, however many diverging reruns follow (`refused`
    says why a save was skipped). A save that fails (a full disk) raises `CheckpointError`
    and leaves the previous checkpoint as it was.

    An epoch that training leaves before its end (a `TimeBudget`) is saved too, so its steps
    are not lost, but it is not counted: the checkpoint's epoch stays at the epochs completed,
    and a resumed run trains that epoch again from its start. Checkpoint numbers follow the
    epochs and only grow, so a later save never overwrites an earlier one.

    The folder records the checkpoint format and the kerasgan version (`format.json`);
    `restore` refuses checkpoints of another format in one line.

    Args:
        gan: the compiled GAN.
        directory: the checkpoint folder.
        max_to_keep: how many checkpoints to keep.

    Attributes:
        unfinished_steps: the steps of the epoch the last save cut short (0: it was complete).
        refused: why the last epoch was not saved (e.g. `"d_loss is nan in epoch 3"`), or None.
    """

    def __init__(self, gan, directory, max_to_keep=2):
        super().__init__()
        gan.build_optimizers()
        self.directory = directory
        self.unfinished_steps = 0
        self.refused = None
        self._steps_done = None  # steps of the current epoch, None before its first step
        self._bad_loss = None  # (key, value, when) of the epoch's first non-finite loss
        self._epoch_number = 1
        self._stopped_by_then = False
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.variables = checkpoint_variables(gan)
        self.checkpoint = tf.train.Checkpoint(variables=self.variables, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)

    def check_format(self):
        """Raise `ConfigError` unless the checkpoints here were written in `CHECKPOINT_FORMAT`."""
        check_format(self.directory)

    def restore(self):
        """Restore the latest checkpoint, if any. Returns the number of epochs it completed.

        Raises:
            ConfigError: the checkpoint has another format or does not match the model
                (variables missing, extra or of another shape).
        """
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        self.check_format()
        saved, expected = _saved_names(path), set(self.variables)
        if saved != expected:
            differences = [
                f"{what}: {', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''}"
                for what, names in (("only in the checkpoint", saved - expected),
                                    ("missing from it", expected - saved))
                if names
            ]
            raise ConfigError(
                f"{path} does not match this model ({'; '.join(differences)}); "
                "train into another --output"
            )
        try:
            self.checkpoint.restore(path).assert_consumed()
        except (AssertionError, ValueError) as error:  # e.g. a variable of another shape
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"{path} does not match this model ({first})") from None
        return int(self.epoch.numpy())

    def first_non_finite(self):
        """The name of the first variable holding a NaN or an infinity, or None."""
        return first_non_finite(self.variables.items())

    def on_epoch_begin(self, epoch, logs=None):
        self._steps_done = None
        self._bad_loss = None
        self._epoch_number = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = last_step_run(self.params, batch) + 1
        # Set by a callback listed before this one: the epoch stops after this step.
        self._stopped_by_then = bool(self.model.stop_training)
        # Per step: the epoch's logs may be running means that a model's own logs bypassed.
        if self._bad_loss is None:
            loss = _non_finite_loss(logs)
            if loss is not None:
                self._bad_loss = (*loss, f"epoch {self._epoch_number} (step {batch + 1})")

    def epoch_cut_short(self):
        """Whether the epoch ending now stopped before its last step."""
        if self._steps_done is None:
            return False
        steps = (self.params or {}).get("steps")
        if steps:
            return self._steps_done < steps
        # An epoch of unknown length: only a stop requested mid-epoch tells.
        return self._stopped_by_then

    def on_epoch_end(self, epoch, logs=None):
        loss = self._bad_loss or _non_finite_loss(logs)
        if loss is not None and len(loss) == 2:
            loss = (*loss, f"epoch {epoch + 1}")
        bad = None if loss else self.first_non_finite()
        if loss or bad:
            self.refused = (
                f"{loss[0]} is {loss[1]} in {loss[2]}" if loss
                else f"the weights are not finite after epoch {epoch + 1} ({bad})"
            )
            return
        unfinished = self._steps_done if self.epoch_cut_short() else 0
        previous_epoch = int(self.epoch.numpy())
        latest = self.manager.latest_checkpoint
        last_number = int(latest.rsplit("-", 1)[1]) if latest else 0
        number = max(epoch + 1, last_number + 1)
        self.epoch.assign(epoch if unfinished else epoch + 1)
        try:
            self._write_format()
            self.manager.save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:
            self.epoch.assign(previous_epoch)
            self._remove_partial(number)
            reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
            kept = f"{latest} is intact" if latest else "there is no earlier checkpoint"
            raise CheckpointError(
                f"cannot write the checkpoint of epoch {epoch + 1} in {self.directory} "
                f"({reason.strip().splitlines()[0] if reason.strip() else type(error).__name__}); "
                f"{kept}; free some space and run the same command again to resume"
            ) from None
        self.unfinished_steps = unfinished

    def _write_format(self):
        from kerasgan import __version__
        from kerasgan.utils import atomic_path

        path = os.path.join(self.directory, FORMAT_FILE)
        if os.path.exists(path):
            return
        with atomic_path(path) as tmp, open(tmp, "w") as handle:
            json.dump({"kerasgan": __version__, "checkpoint_format": CHECKPOINT_FORMAT}, handle)

    def _remove_partial(self, number):
        """Delete what a failed save of checkpoint `number` left (the index still names the
        previous checkpoint, so nothing points at these files)."""
        prefix = os.path.join(self.directory, f"ckpt-{number}")
        for path in glob.glob(glob.escape(prefix) + ".*") + glob.glob(glob.escape(prefix) + "_temp*"):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.remove(path)
                except OSError:
                    pass


def last_step_run(params, batch):
    """The index of the last step that a call of the train function ran.

    With `steps_per_execution` > 1, Keras names a call's last step as if the call were full,
    but an epoch's last call runs fewer when the epoch's steps are not a multiple of it.
    """
    epoch_steps = (params or {}).get("steps")
    return min(batch, epoch_steps - 1) if epoch_steps else batch


class StepProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, counting the steps each call ran (`last_step_run`): with 8 steps
    per call and 156 steps per epoch, Keras's own shows "160/156" before "156/156"."""

    def set_params(self, params):
        super().set_params(params)
        self.params = params  # Keras's progress bar keeps only what it shows

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(last_step_run(self.params, batch), logs)


class TimeBudget(keras.callbacks.Callback):
    """Stop training once `seconds` of wall-clock time have passed (checked after every step).

    The epoch in progress ends early and `fit` returns normally, so everything that follows
    training (checkpoint, samples, export) still happens; `GANCheckpoint` saves the cut-short
    epoch without counting it as done.
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = float(seconds)
        self.exhausted = False
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._start >= self.seconds:
            self.exhausted = True
            self.model.stop_training = True


class GANTerminateOnNaN(keras.callbacks.Callback):
    """Stop training when a GAN loss or weight becomes NaN or infinite.

    Losses are checked after every step, the weights after every epoch (before a
    `GANCheckpoint` listed after this callback would save them).

    Args:
        keys: the log entries to watch (default: every logged value whose name ends in `loss`).
        verbose: print one line when training stops (`reason` holds it either way).

    Attributes:
        terminated: whether this callback stopped training.
        reason: what went wrong, e.g. `"d_loss is nan in epoch 2 (step 5)"`, or None.
    """

    def __init__(self, keys=None, verbose=True):
        super().__init__()
        self.keys = keys
        self.verbose = verbose
        self.terminated = False
        self.reason = None
        self._epoch = 0

    def _stop(self, reason):
        self.terminated = True
        self.reason = reason
        self.model.stop_training = True
        if self.verbose:
            notice(f"{reason}; training stopped")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.terminated:
            return
        for key, value in (logs or {}).items():
            watched = key in self.keys if self.keys is not None else key.endswith("loss")
            if watched and value is not None and not math.isfinite(float(value)):
                self._stop(f"{key} is {float(value)} in epoch {self._epoch + 1} (step {batch + 1})")
                return

    def on_epoch_end(self, epoch, logs=None):
        if self.terminated:
            return
        bad = first_non_finite((v.path, v) for v in self.model.variables)
        if bad is not None:
            self._stop(f"the weights are not finite after epoch {epoch + 1} ({bad})")


class Throughput(keras.callbacks.Callback):
    """Measure training speed from the median step time.

    With `steps_per_execution` > 1, Keras calls the batch hooks once per call of the train
    function, with the indices of its first and last step: each call's time is shared by the
    steps it ran.

    Args:
        batch_size: images per step.
        skip: first calls to ignore (tracing and warm-up).

    Attributes:
        steps: steps run in this `fit`.
        images_per_second: `batch_size / median step time`, or None before `skip` calls.
    """

    def __init__(self, batch_size, skip=3):
        super().__init__()
        self.batch_size = batch_size
        self.skip = skip
        self.step_times = []
        self.steps = 0
        self._calls = 0
        self._started = None
        self._first_step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()
        self._first_step = batch

    def on_train_batch_end(self, batch, logs=None):
        steps = max(1, last_step_run(self.params, batch) - self._first_step + 1)
        self.steps += steps
        self._calls += 1
        if self._calls > self.skip:
            self.step_times.append((time.perf_counter() - self._started) / steps)

    @property
    def images_per_second(self):
        if not self.step_times:
            return None
        return self.batch_size / float(np.median(self.step_times))


class LivePlot(keras.callbacks.Callback):
    """Redraw a figure in a notebook while training: samples and curves, every `every` epochs.

    Args:
        draw: `fn(model, history_dict) -> matplotlib Figure`; default: the model's preview of
            fixed latents beside the curves of every logged metric.
        every: epochs between redraws.
        latent: fixed latents for the default drawing (default: from seed 0, a square grid of
            16, or of `preview_columns**2` for models that set it).
        condition: their condition (default: the model's `sample_condition`, e.g. a row per
            class laid out in `preview_columns` as `SampleGrid` does).
    """

    def __init__(self, draw=None, every=1, latent=None, condition=None):
        super().__init__()
        self.draw = draw or self._default_draw
        self.every = every
        self.latent = latent
        self.condition = condition
        self.history = {}

    def _default_draw(self, model, history):
        import matplotlib.pyplot as plt

        cols = getattr(model, "preview_columns", None)
        # A model without a latent (CycleGAN) previews its own fixed pairs instead.
        samples = getattr(model, "latent_dim", None)
        if self.latent is None and samples:
            self.latent = model.latent_batch((cols or 4) ** 2, model.latent_dim, seed=0)
        if self.condition is None and samples:
            self.condition = model.sample_condition(len(self.latent))
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        plotting.show_images(model.preview(self.latent, self.condition), cols=cols, ax=left,
                             title=f"epoch {len(next(iter(history.values()), []))}")
        plotting.plot_history(history, ax=right)
        return figure

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if (epoch + 1) % self.every:
            return
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        figure = self.draw(self.model, self.history)
        clear_output(wait=True)
        display(figure)
        plt.close(figure)


# === Diagnostics ===


def mean_pairwise_distance(samples):
    """Mean Euclidean distance between every pair of distinct rows of `samples` `[n, ...]`."""
    flat = np.asarray(samples, "float64").reshape(len(samples), -1)
    squared = np.sum(flat**2, axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * flat @ flat.T, 0.0))
    n = len(flat)
    return float(distances.sum() / max(n * (n - 1), 1))


def checkerboard_score(images):
    """How much a batch of images alternates with period 2 (the transposed-convolution
    checkerboard, Odena et al., 2016).

    The pixels split into four phases by the parity of (row, column); the score is the standard
    deviation of the four phase means over the standard deviation of all pixels: 1 for a perfect
    checkerboard, 0 when the phases agree (a constant or smooth image).

    Args:
        images: `[n, H, W, C]` (or `[H, W]`, `[H, W, C]`).

    Returns:
        A float in `[0, 1]`.
    """
    x = np.asarray(images, "float64")
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim == 3:
        x = x[None]
    phases = [x[:, i::2, j::2].mean() for i in (0, 1) for j in (0, 1)]
    spread = x.std()
    return float(np.std(phases) / spread) if spread > 1e-12 else 0.0


class GANDiagnostics(keras.callbacks.Callback):
    """Log a GAN's vital signs every epoch and warn once when training goes wrong.

    Added to `logs` after every epoch (so `History`, `CSVLogger` and `TensorBoard` placed *after*
    this callback record them):

    * `grad_norm_d`, `grad_norm_g`: global gradient norms of D's and G's losses on one fixed
      batch. The losses are the model's adversarial loss alone (`model.adversarial_loss`, the
      mean over the batch), without the penalties and weight regularisers a model's step may
      add (gradient penalty, R1, orthogonal regularisation), and both networks run in
      inference mode so that measuring changes no batch-norm statistics. A G norm falling
      towards 0 while D wins is the vanishing gradient of the minimax loss; norms that explode
      precede divergence.
    * `diversity`: the mean pairwise distance between G's samples for fixed latents, divided by
      the same on the real batch. About 1 when the samples spread like the data; near 0 when
      every latent gives (almost) the same sample, i.e. mode collapse. It sees collapse onto
      one or a few samples, not a subtle loss of modes: for that, count modes (toy data) or
      use FID/precision-recall (`kerasgan.evaluation`).

    Printed once per run and condition (one `kerasgan:` line each, via `utils.notice`):

    * D wins outright: `d_real > 0.95` and `d_fake < 0.05` for `patience` epochs in a row;
    * diversity collapses: `diversity < diversity_threshold` for `patience` epochs in a row.

    The networks are called by the convention every model of the course follows: G takes `z`
    and D takes `x`; a class-conditional model (`ConditionalGAN`, BigGAN) takes the batch's
    labels as both networks' second input, `generator([z, y])` and `discriminator([x, y])`.
    An unconditional model ignores labels that come with the images.

    Args:
        batch: one dataset element (images, or `(images, labels)`: labels are required by
            class-conditional models), at least 2 examples; a few dozen is plenty.
        latent: fixed latent vectors for G (default: one per real example, from `seed`).
        patience: epochs a condition must hold before the warning.
        diversity_threshold: the collapse threshold of `diversity`.
        seed: seed of the default latents.
        verbose: print the warnings (they are always recorded in `warnings`).

    Attributes:
        warnings: the conditions warned about so far, e.g. `["discriminator_wins"]`.

    Example:
        >>> diagnostics = GANDiagnostics(next(iter(dataset)))
        >>> gan.fit(dataset, epochs=10, callbacks=[diagnostics])
        >>> history.history["grad_norm_g"], history.history["diversity"]
    """

    def __init__(self, batch, latent=None, patience=3, diversity_threshold=0.1, seed=0,
                 verbose=True):
        super().__init__()
        self.batch = batch
        self.latent = None if latent is None else np.asarray(latent, "float32")
        self.patience = int(patience)
        self.diversity_threshold = float(diversity_threshold)
        self.seed = seed
        self.verbose = verbose
        self.warnings = []
        self._streaks = {}
        self._real_spread = None

    def on_train_begin(self, logs=None):
        if isinstance(self.model, ConditionalGAN):
            real, self._labels = labelled_batch(self.batch)  # DataError without labels
        else:
            real = self.batch[0] if isinstance(self.batch, (tuple, list)) else self.batch
            self._labels = None
        self._real = tf.convert_to_tensor(real)
        if self.latent is None:
            self.latent = self.model.latent_batch(len(real), self.model.latent_dim, self.seed)
        self._real_spread = mean_pairwise_distance(keras.ops.convert_to_numpy(real))

    def _conditioned(self, x):
        """A network's input: `x`, or `[x, labels]` for a class-conditional model."""
        return x if self._labels is None else [x, self._labels]

    def gradient_norms(self):
        """`(D's, G's)` global gradient norms of the adversarial loss on the fixed batch."""
        model, latent = self.model, tf.constant(self.latent)
        generator, discriminator = model.generator, model.discriminator
        fake = generator(self._conditioned(latent), training=False)
        with tf.GradientTape() as tape:
            real_logits = discriminator(self._conditioned(self._real), training=False)
            fake_logits = discriminator(self._conditioned(fake), training=False)
            d_loss = keras.ops.mean(
                model.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            )
        d_norm = _global_norm(tape.gradient(d_loss, discriminator.trainable_variables))
        with tf.GradientTape() as tape:
            fake = generator(self._conditioned(latent), training=False)
            fake_logits = discriminator(self._conditioned(fake), training=False)
            g_loss = keras.ops.mean(model.adversarial_loss.generator_loss(fake_logits))
        g_norm = _global_norm(tape.gradient(g_loss, generator.trainable_variables))
        return d_norm, g_norm

    def diversity(self):
        """Mean pairwise distance of G's samples over that of the real batch (see above)."""
        fake = self.model.generate_from_latent(self.latent, condition=self._labels)
        return mean_pairwise_distance(fake) / max(self._real_spread, 1e-12)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        d_norm, g_norm = self.gradient_norms()
        logs.update(grad_norm_d=d_norm, grad_norm_g=g_norm, diversity=self.diversity())
        d_real, d_fake = logs.get("d_real"), logs.get("d_fake")
        self._watch(
            "discriminator_wins",
            d_real is not None and d_fake is not None
            and float(d_real) > 0.95 and float(d_fake) < 0.05,
            f"the discriminator wins outright (D(x) > 0.95, D(G(z)) < 0.05 for {self.patience} "
            "epochs): G gets little signal. Try a lower D learning rate, the non-saturating "
            "loss, label smoothing or a penalty (R1, gradient penalty).",
        )
        self._watch(
            "mode_collapse",
            logs["diversity"] < self.diversity_threshold,
            f"sample diversity collapsed ({logs['diversity']:.3f} < {self.diversity_threshold} "
            f"for {self.patience} epochs): G maps different z to nearly the same sample. "
            "Try lower learning rates, a smaller beta_1, or minibatch features.",
        )

    def _watch(self, name, holds, message):
        self._streaks[name] = self._streaks.get(name, 0) + 1 if holds else 0
        if self._streaks[name] >= self.patience and name not in self.warnings:
            self.warnings.append(name)
            if self.verbose:
                notice(message)


def _global_norm(gradients):
    gradients = [g for g in gradients if g is not None]
    if not gradients:
        return 0.0
    return float(tf.linalg.global_norm([tf.cast(g, tf.float32) for g in gradients]).numpy())


# === Quality tracking ===


class FIDCallback(keras.callbacks.Callback):
    """Score the generator every `every` epochs with FID (and optionally KID) on a fixed sample.

    An `evaluation.Evaluator` is built once, in `on_train_begin`: the real images' features are
    extracted then and reused. Each evaluation draws the same `n` generated images' latents
    (`seed`), so successive figures differ only because G changed, not because of sampling
    noise. The figures go into the epoch's `logs` as `fid` (and `kid`, `kid_std`), so `History`
    and any `CSVLogger`/`TensorBoard` placed *after* this callback record them; epochs that are
    not evaluated log NaN, so every epoch has a value and `History` stays aligned with the
    epochs. With `log_dir`, the evaluated figures are also written as TensorBoard scalars
    (`log_dir/quality`), at the epoch number.

    With the offline judge (`"mnist_judge"`, the default) an evaluation of 1,000 images takes
    about a second on a CPU; with `"inception"` about 40 seconds per 1,000 images per side,
    so evaluate rarely (`every=10`) or on fewer images. Report `n` with every figure: FID falls
    as `n` grows.

    Args:
        real: real images: an array, `tf.data.Dataset` or image function (see
            `evaluation.image_batches`).
        extractor: `"mnist_judge"`, `"inception"` or any extractor (see
            `evaluation.get_extractor`).
        n: images per side.
        every: evaluate after every `every`-th epoch (and after the last one).
        kid: also log `kid` and `kid_std`.
        generate: `fn(count, seed=None) -> images` drawing generated images (default: the
            trained model's own `generate`, which samples in inference mode, from the EMA
            generator when there is one).
        seed: seed of the real subset and of the generated images.
        log_dir: TensorBoard folder for the figures (None: none).
        batch_size: images per extractor forward pass (default: the extractor's).
        verbose: print one line per evaluation.

    Attributes:
        evaluator: the `Evaluator` (after `on_train_begin`).
        results: `{epoch (1-based): metrics dict}` of every evaluation so far.

    Example:
        >>> fid = FIDCallback(real_images, "mnist_judge", n=1000, every=2, kid=True)
        >>> history = gan.fit(dataset, epochs=10, callbacks=[fid])
        >>> history.history["fid"]        # NaN on epochs 1, 3, 5, ...
    """

    def __init__(self, real, extractor="mnist_judge", n=1000, every=1, kid=False, generate=None,
                 seed=0, log_dir=None, batch_size=None, verbose=0):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(f"FIDCallback's every must be a whole number >= 1, got {every!r}")
        self.real = real
        self.extractor = extractor
        self.n = n
        self.every = every
        self.metrics = ("fid", "kid") if kid else ("fid",)
        self.generate = generate
        self.seed = seed
        self.log_dir = log_dir
        self.batch_size = batch_size
        self.verbose = verbose
        self.evaluator = None
        self.results = {}
        self._writer = None

    def on_train_begin(self, logs=None):
        from kerasgan import evaluation

        if self.evaluator is None:  # a second fit() reuses the real features
            self.evaluator = evaluation.Evaluator(
                self.real, self.extractor, self.n, self.batch_size, self.seed
            )
        if self.log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "quality"))

    def _due(self, epoch):
        last = self.params.get("epochs") if self.params else None
        return (epoch + 1) % self.every == 0 or (last is not None and epoch + 1 == last)

    def evaluate(self):
        """The metrics of the current generator (a dict; see `Evaluator.evaluate`)."""
        source = self.generate if self.generate is not None else self.model.generate
        return self.evaluator.evaluate(source, metrics=self.metrics)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        keys = ("fid", "kid", "kid_std") if "kid" in self.metrics else ("fid",)
        if not self._due(epoch):
            logs.update(dict.fromkeys(keys, float("nan")))
            return
        results = self.evaluate()
        self.results[epoch + 1] = results
        logs.update({key: float(results[key]) for key in keys})
        if self._writer is not None:
            with self._writer.as_default():
                for key in keys:
                    tf.summary.scalar(key, results[key], step=epoch + 1)
            self._writer.flush()
        if self.verbose:
            figures = ", ".join(f"{key} {results[key]:.4g}" for key in keys)
            notice(f"epoch {epoch + 1}: {figures} (n={self.n}, {self.evaluator.extractor_name})")

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
