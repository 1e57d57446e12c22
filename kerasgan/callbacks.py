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

    Args:
        gan: the compiled GAN.
        directory: the checkpoint folder.
        max_to_keep: how many checkpoints to keep.
    """

    def __init__(self, gan, directory, max_to_keep=2):
        super().__init__()
        gan.build_optimizers()
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

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class TimeBudget(keras.callbacks.Callback):
    """Stop training once `seconds` of wall-clock time have passed (checked after every step).

    The epoch in progress ends early and `fit` returns normally, so everything that follows
    training (checkpoint, samples, export) still happens.
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
        latent: fixed latents for the default drawing (default: 16 from seed 0).
        condition: their condition, for conditional models.
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

        if self.latent is None:
            self.latent = model.latent_batch(16, model.latent_dim, seed=0)
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        plotting.show_images(model.preview(self.latent, self.condition), ax=left,
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
