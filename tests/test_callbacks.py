import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import callbacks
from kerasgan.models.dcgan import DCGAN


def tiny_gan(seed=0):
    gan = DCGAN.from_preset("tiny", seed=seed)
    gan.compile()
    return gan


def data(n=32, batch=8):
    images = np.random.default_rng(0).uniform(-1, 1, (n, 28, 28, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(images).batch(batch)


def test_checkpoint_restores_networks_both_optimizers_rng_and_epoch(tmp_path):
    gan = tiny_gan()
    checkpoint = callbacks.GANCheckpoint(gan, str(tmp_path))
    assert checkpoint.restore() == 0
    gan.fit(data(), epochs=2, callbacks=[checkpoint], verbose=0)

    fresh = tiny_gan(seed=1)  # different initial weights and RNG
    restored = callbacks.GANCheckpoint(fresh, str(tmp_path))
    assert restored.restore() == 2
    for a, b in zip(gan.variables, fresh.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for original, copy in ((gan.g_optimizer, fresh.g_optimizer), (gan.d_optimizer, fresh.d_optimizer)):
        assert int(copy.iterations.numpy()) == int(original.iterations.numpy()) == 8
        for a, b in zip(original.variables, copy.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The random stream continues where it stopped: both draw the same next latents.
    np.testing.assert_array_equal(gan.sample_latent(3).numpy(), fresh.sample_latent(3).numpy())


def test_checkpoint_keeps_only_the_latest(tmp_path):
    gan = tiny_gan()
    checkpoint = callbacks.GANCheckpoint(gan, str(tmp_path), max_to_keep=2)
    gan.fit(data(), epochs=4, callbacks=[checkpoint], verbose=0)
    assert [os.path.basename(p) for p in checkpoint.manager.checkpoints] == ["ckpt-3", "ckpt-4"]


def test_time_budget_stops_training_early():
    gan = tiny_gan()
    budget = callbacks.TimeBudget(1e-9)
    history = gan.fit(data(), epochs=5, callbacks=[budget], verbose=0)
    assert budget.exhausted
    assert len(history.history["g_loss"]) == 1


class _PoisonLogs(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        logs["d_loss"] = float("nan")


def test_nan_guard_stops_on_a_gan_loss(capsys):
    gan = tiny_gan()
    guard = callbacks.GANTerminateOnNaN()
    history = gan.fit(data(), epochs=3, callbacks=[_PoisonLogs(), guard], verbose=0)
    assert guard.terminated
    assert len(history.history["g_loss"]) == 1
    assert "d_loss is nan" in capsys.readouterr().err


def test_sample_grid_writes_one_png_per_epoch_and_a_gif(tmp_path):
    gan = tiny_gan()
    latent = gan.latent_batch(9, gan.latent_dim, seed=0)
    gif = tmp_path / "progress.gif"
    grid = callbacks.SampleGrid(latent, str(tmp_path / "samples"), gif_path=str(gif), scale=1,
                                log_dir=str(tmp_path / "logs"))
    gan.fit(data(), epochs=3, callbacks=[grid], verbose=0)
    pngs = sorted(os.listdir(tmp_path / "samples"))
    assert pngs == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    first = np.asarray(Image.open(tmp_path / "samples" / pngs[0]))
    last = np.asarray(Image.open(tmp_path / "samples" / pngs[-1]))
    assert first.shape == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 tiles of 28 px, 2 px padding
    assert not np.array_equal(first, last)  # the samples moved
    assert Image.open(gif).n_frames == 3
    assert os.listdir(tmp_path / "logs" / "samples")  # the grid went to TensorBoard too


def test_throughput_uses_the_median_step_time():
    meter = callbacks.Throughput(batch_size=10, skip=0)
    meter.step_times = [0.1, 0.1, 5.0]  # one stall does not change the figure
    assert meter.images_per_second == pytest.approx(100.0)
