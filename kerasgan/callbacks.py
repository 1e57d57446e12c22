"""Callbacks that watch, record and protect GAN training.

`fit` drives training; these hook into it:

* `SampleGrid` draws the same latent batch after every epoch (a grid PNG per epoch, a GIF of the
  whole run, and the grid in TensorBoard), so progress is visible, not only in loss numbers.
* `GANCheckpoint` saves and restores *everything* a resumed run needs: both networks, **both**
  optimizers' slots, the model's random stream and the epoch. (Keras's `BackupAndRestore`
  restores only optimizers that are already built, so a GAN's second optimizer would silently
  restart from zero, and it deletes its backup when training ends.)
* `TimeBudget` stops cleanly after a wall-clock budget; `GANTerminateOnNaN` stops when a GAN
  loss is NaN (Keras's `TerminateOnNaN` only looks at `logs["loss"]`, which a GAN doesn't have).
* `Throughput` measures images per second from the median step time (this VM stalls for
  seconds now and then, so totals over a few steps lie).
"""

import glob
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from kerasgan import plotting
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
        self.latent = np.asarray(latent, "float32")
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


class GANCheckpoint(keras.callbacks.Callback):
    """Checkpoint a GAN after every epoch; restore it to resume an interrupted run.

    A `tf.train.CheckpointManager` writes each checkpoint's files first and then switches its
    index file atomically, so a run killed mid-save resumes from the previous checkpoint, never
    from a half-written one. The variables are listed explicitly (a Keras 3 model is not
    traversed by `tf.train.Checkpoint`) in a fixed order: the networks' variables (including
    the model's seed-generator state) and both optimizers' variables.

    An epoch that training leaves before its end (a `TimeBudget`, a NaN loss) is saved too,
    so its steps are not lost, but it is not counted: the checkpoint's epoch stays at the
    epochs completed, and a resumed run trains that epoch again from its start. Checkpoint
    numbers follow the epochs and only grow, so a later save never overwrites an earlier one.

    Args:
        gan: the compiled GAN.
        directory: the checkpoint folder.
        max_to_keep: how many checkpoints to keep.

    Attributes:
        unfinished_steps: the steps of the epoch the last save cut short (0: it was complete).
    """

    def __init__(self, gan, directory, max_to_keep=2):
        super().__init__()
        gan.ensure_optimizers_built()
        self.unfinished_steps = 0
        self._steps_done = None  # steps of the current epoch, None before its first step
        self._stopped_by_then = False
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(
            model_variables=list(gan.variables),
            g_optimizer_variables=list(gan.g_optimizer.variables),
            d_optimizer_variables=list(gan.d_optimizer.variables),
            epoch=self.epoch,
        )
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)

    def restore(self):
        """Restore the latest checkpoint, if any. Returns the number of epochs it completed."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        self.checkpoint.restore(path).assert_consumed()
        return int(self.epoch.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._steps_done = None

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = batch + 1
        # Set by a callback listed before this one: the epoch stops after this step.
        self._stopped_by_then = bool(self.model.stop_training)

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
        self.unfinished_steps = self._steps_done if self.epoch_cut_short() else 0
        self.epoch.assign(epoch if self.unfinished_steps else epoch + 1)
        latest = self.manager.latest_checkpoint
        last_number = int(latest.rsplit("-", 1)[1]) if latest else 0
        self.manager.save(checkpoint_number=max(epoch + 1, last_number + 1))


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
    """Stop training when any watched GAN loss becomes NaN or infinite.

    Args:
        keys: the log entries to watch.
    """

    def __init__(self, keys=("d_loss", "g_loss")):
        super().__init__()
        self.keys = keys
        self.terminated = False

    def on_train_batch_end(self, batch, logs=None):
        for key in self.keys:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                notice(f"{key} is {float(value)} at step {batch}; training stopped")
                self.terminated = True
                self.model.stop_training = True
                return


class Throughput(keras.callbacks.Callback):
    """Measure training speed from the median step time.

    Args:
        batch_size: images per step.
        skip: first steps to ignore (tracing and warm-up).

    Attributes:
        steps: steps run in this `fit`.
        images_per_second: `batch_size / median step time`, or None before `skip` steps.
    """

    def __init__(self, batch_size, skip=3):
        super().__init__()
        self.batch_size = batch_size
        self.skip = skip
        self.step_times = []
        self.steps = 0
        self._started = None

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps > self.skip:
            self.step_times.append(time.perf_counter() - self._started)

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
        if self.latent is None:
            self.latent = model.latent_batch((cols or 4) ** 2, model.latent_dim, seed=0)
        if self.condition is None:
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
      batch (the model's own `discriminator_loss` / `generator_loss`, networks in inference
      mode so that measuring changes no batch-norm statistics). A G norm falling towards 0
      while D wins is the vanishing gradient of the minimax loss; norms that explode precede
      divergence.
    * `diversity`: the mean pairwise distance between G's samples for fixed latents, divided by
      the same on the real batch. About 1 when the samples spread like the data; near 0 when
      every latent gives (almost) the same sample, i.e. mode collapse. It sees collapse onto
      one or a few samples, not a subtle loss of modes: for that, count modes (toy data) or
      use FID/precision-recall (`kerasgan.evaluation`).

    Printed once per run and condition (one `kerasgan:` line each, via `utils.notice`):

    * D wins outright: `d_real > 0.95` and `d_fake < 0.05` for `patience` epochs in a row;
    * diversity collapses: `diversity < diversity_threshold` for `patience` epochs in a row.

    Args:
        batch: one dataset element (images, or `(images, labels)` for conditional models),
            at least 2 examples; a few dozen is plenty.
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
        real, condition = self.model.unpack_batch(self.batch)
        self._real = tf.convert_to_tensor(real)
        self._condition = condition
        if self.latent is None:
            self.latent = self.model.latent_batch(len(real), self.model.latent_dim, self.seed)
        self._real_spread = mean_pairwise_distance(keras.ops.convert_to_numpy(real))

    def gradient_norms(self):
        """`(D's, G's)` global gradient norms on the fixed batch."""
        model, latent = self.model, tf.constant(self.latent)
        fake = model.generator(model.generator_inputs(latent, self._condition), training=False)
        with tf.GradientTape() as tape:
            d_loss, _ = model.discriminator_loss(self._real, fake, self._condition, training=False)
        d_norm = _global_norm(tape.gradient(d_loss, model.discriminator.trainable_variables))
        with tf.GradientTape() as tape:
            g_loss, _ = model.generator_loss(latent, self._condition, training=False)
        g_norm = _global_norm(tape.gradient(g_loss, model.generator.trainable_variables))
        return d_norm, g_norm

    def diversity(self):
        """Mean pairwise distance of G's samples over that of the real batch (see above)."""
        fake = self.model.generate_from_latent(self.latent, condition=self._condition)
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
        from kerasgan.errors import ConfigError

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
