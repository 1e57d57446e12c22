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


def test_a_resumed_run_keeps_the_learning_rate_it_started_with(tmp_path):
    """A run begun with a recipe's CPU rate and resumed where there is none (a GPU) goes on at
    the rate of its checkpoint: the rate is one of each optimizer's variables."""
    gan = DCGAN.from_preset("tiny", seed=0)
    g_optimizer, d_optimizer = gan.default_optimizers(learning_rate=8e-4)
    gan.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    gan.fit(data(), epochs=1, callbacks=[callbacks.GANCheckpoint(gan, str(tmp_path))], verbose=0)

    resumed = tiny_gan()  # compile()'s defaults: 2e-4
    assert float(resumed.g_optimizer.learning_rate) == pytest.approx(2e-4)
    assert callbacks.GANCheckpoint(resumed, str(tmp_path)).restore() == 1
    rates = [float(optimizer.learning_rate) for optimizer in (resumed.g_optimizer, resumed.d_optimizer)]
    assert rates == pytest.approx([8e-4, 8e-4])


def test_checkpoint_keeps_only_the_latest(tmp_path):
    gan = tiny_gan()
    checkpoint = callbacks.GANCheckpoint(gan, str(tmp_path), max_to_keep=2)
    gan.fit(data(), epochs=4, callbacks=[checkpoint], verbose=0)
    assert [os.path.basename(p) for p in checkpoint.manager.checkpoints] == ["ckpt-3", "ckpt-4"]


@pytest.mark.parametrize("known_length", [True, False])
def test_checkpoint_of_a_cut_short_epoch_keeps_its_steps_but_not_the_epoch(tmp_path, known_length):
    batches = data() if known_length else data().filter(lambda images: True)
    gan = tiny_gan()
    checkpoint = callbacks.GANCheckpoint(gan, str(tmp_path))
    gan.fit(batches, epochs=1, callbacks=[checkpoint], verbose=0)
    after_epoch_1 = int(gan.g_optimizer.iterations.numpy())
    budget = callbacks.TimeBudget(1e-9)  # stops epoch 2 after its first step
    gan.fit(batches, initial_epoch=1, epochs=3, callbacks=[budget, checkpoint], verbose=0)
    assert checkpoint.unfinished_steps == 1
    stopped_at = int(gan.g_optimizer.iterations.numpy())
    assert stopped_at > after_epoch_1

    fresh = tiny_gan(seed=1)
    restored = callbacks.GANCheckpoint(fresh, str(tmp_path))
    assert restored.restore() == 1  # epoch 2 is trained again ...
    assert int(fresh.g_optimizer.iterations.numpy()) == stopped_at  # ... after its saved step
    fresh.fit(batches, initial_epoch=1, epochs=2, callbacks=[restored], verbose=0)
    assert restored.unfinished_steps == 0 and int(restored.epoch.numpy()) == 2
    # Numbers only grow: the complete epoch 2 did not overwrite the cut-short one's files.
    assert [os.path.basename(p) for p in restored.manager.checkpoints] == ["ckpt-2", "ckpt-3"]


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


def test_live_plot_lays_out_a_row_per_class_like_the_sample_grid(monkeypatch):
    import IPython.display

    from kerasgan import plotting
    from kerasgan.models.conditional_gan import ConditionalGAN

    shown = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda figure: shown.append(figure.axes[0].images[0].get_array()))
    gan = ConditionalGAN.from_preset("tiny", seed=0)
    live = callbacks.LivePlot()
    live.set_model(gan)
    live.on_epoch_end(0, {"g_loss": 1.0})
    classes = gan.num_classes
    expected = plotting.image_grid(
        gan.generate_from_latent(live.latent, condition=np.repeat(np.arange(classes), classes)),
        cols=classes,
    )
    assert expected.shape[:2] == (classes * 30 + 2,) * 2  # a row per class, 28 px tiles
    np.testing.assert_array_equal(np.asarray(shown[0]), expected[..., 0])


def test_live_plot_shows_a_cyclegan_its_translation_strips(monkeypatch):
    """A model without a latent (CycleGAN) previews its own fixed pairs: no latents, no labels."""
    import IPython.display

    from kerasgan import plotting
    from kerasgan.models.cyclegan import CycleGAN

    shown = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda figure: shown.append(figure.axes[0].images[0].get_array()))
    gan = CycleGAN.from_preset("tiny", image_size=16, channels=1)
    rng = np.random.default_rng(0)
    pairs = rng.uniform(-1, 1, (2, gan.preview_count, 16, 16, 1)).astype("float32")
    gan.set_preview_images(*pairs)
    live = callbacks.LivePlot()
    live.set_model(gan)
    live.on_epoch_end(0, {"g_loss": 1.0})
    expected = plotting.image_grid(gan.preview(), cols=gan.preview_columns)
    np.testing.assert_array_equal(np.asarray(shown[0]), expected[..., 0])
    assert live.latent is None


def test_throughput_uses_the_median_step_time():
    meter = callbacks.Throughput(batch_size=10, skip=0)
    meter.step_times = [0.1, 0.1, 5.0]  # one stall does not change the figure
    assert meter.images_per_second == pytest.approx(100.0)


def test_throughput_counts_the_steps_of_each_call():
    """With steps_per_execution 4 over a 10-step epoch, Keras calls the hooks with (0, 3),
    (4, 7), (8, 11): the last call ran two steps, not four."""
    meter = callbacks.Throughput(batch_size=10, skip=0)
    meter.set_params({"steps": 10, "epochs": 1})
    for first in (0, 4, 8):
        meter.on_train_batch_begin(first)
        meter.on_train_batch_end(first + 3)
    assert meter.steps == 10 and len(meter.step_times) == 3


@pytest.mark.parametrize("bar, last_shown", [
    (keras.callbacks.ProgbarLogger, 12),  # Keras's own: "12/10"
    (callbacks.StepProgressBar, 10),
])
def test_step_progress_bar_never_counts_past_the_epoch(bar, last_shown):
    """With 4 steps per call over a 10-step epoch, Keras calls the hooks with steps 3, 7, 11."""
    bar = bar()
    bar.set_params({"verbose": 0, "epochs": 1, "steps": 10})
    bar.on_epoch_begin(0)
    shown = []
    for last in (3, 7, 11):
        bar.on_train_batch_end(last, {"g_loss": 1.0})
        shown.append(bar.seen)
    assert shown == [4, 8, last_shown]


def test_checkpoint_restores_by_name_not_by_position(tmp_path, monkeypatch):
    gan = tiny_gan()
    gan.fit(data(), epochs=1, callbacks=[callbacks.GANCheckpoint(gan, str(tmp_path))], verbose=0)

    # A model that lists the same variables in another order (e.g. after a refactoring).
    fresh = tiny_gan(seed=1)
    listed = type(fresh).variables
    monkeypatch.setattr(type(fresh), "variables", property(lambda self: list(reversed(listed.fget(self)))))
    restored = callbacks.GANCheckpoint(fresh, str(tmp_path))
    assert restored.restore() == 1
    for network in ("generator", "discriminator"):
        for a, b in zip(getattr(gan, network).weights, getattr(fresh, network).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    from kerasgan.errors import ConfigError
    from kerasgan.models.wgan_gp import WGANGP

    gan = tiny_gan()
    gan.fit(data(), epochs=1, callbacks=[callbacks.GANCheckpoint(gan, str(tmp_path))], verbose=0)
    other = WGANGP.from_preset("tiny", seed=0)
    other.compile()
    with pytest.raises(ConfigError, match="does not match this model .*(only in the checkpoint|missing from it)"):
        callbacks.GANCheckpoint(other, str(tmp_path)).restore()


def test_nan_guard_names_the_epoch_and_watches_the_weights(capsys):
    class PoisonLastStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == self.params["steps"] - 1:
                kernel = self.model.generator.trainable_variables[0]
                kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    gan = tiny_gan()
    guard = callbacks.GANTerminateOnNaN()
    history = gan.fit(data(), epochs=3, callbacks=[PoisonLastStep(), guard], verbose=0)
    assert guard.terminated and len(history.history["g_loss"]) == 1
    assert guard.reason.startswith("the weights are not finite after epoch 1 (")
    assert "weights are not finite after epoch 1" in capsys.readouterr().err


def test_cyclegan_checkpoint_restores_its_four_networks_pools_and_optimizers_by_name(tmp_path):
    from kerasgan.models.cyclegan import CycleGAN

    def tiny_cyclegan(seed):
        gan = CycleGAN.from_preset("tiny", image_size=32, channels=1, seed=seed)
        gan.compile()
        return gan

    rng = np.random.default_rng(0)
    pairs = tf.data.Dataset.from_tensor_slices(
        tuple(rng.uniform(-1, 1, (8, 32, 32, 1)).astype("float32") for _ in range(2))
    ).batch(4)
    gan = tiny_cyclegan(0)
    checkpoint = callbacks.GANCheckpoint(gan, str(tmp_path))
    assert any(name.startswith("generator_b2a/") for name in checkpoint.variables)
    assert any(name.startswith("pool_a/") for name in checkpoint.variables)
    gan.fit(pairs, epochs=1, callbacks=[checkpoint], verbose=0)
    fresh = tiny_cyclegan(1)
    assert callbacks.GANCheckpoint(fresh, str(tmp_path)).restore() == 1
    for a, b in zip(gan.variables, fresh.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for optimizer in CycleGAN.optimizer_of.values():  # one optimizer per network, four
        original, copy = getattr(gan, optimizer), getattr(fresh, optimizer)
        assert original.variables
        for a, b in zip(original.variables, copy.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
