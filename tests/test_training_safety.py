"""Training runs never lose the last good state: divergence, stale summaries, precision, locks,
full disks, incompatible checkpoints, `--data auto` and class counts."""

import errno
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import callbacks as gan_callbacks
from kerasgan import datasets, training
from kerasgan.errors import ConfigError, ExportError, KerasganError
from tests.cli_helpers import assert_one_clear_line
from tests.test_training import tiny_run

STEPS = 5000 // 256  # steps per epoch of the tiny runs of tests.test_training.tiny_run


def cli_train(kerasgan, tmp_path, *extra):
    return kerasgan(
        "train", "dcgan", "--data", "embedded", "--preset", "tiny", "--epochs", "1",
        "--batch-size", "256", "--output", tmp_path / "run", "--export-dir", tmp_path / "models",
        "--precision", "float32", *extra,
    )


def assert_one_error_line(result, *fragments):
    """Exit 2, no traceback, one `kerasgan: error:` line holding every fragment (the run's start
    notice may precede it)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("kerasgan: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def checkpoint_names(run):
    return sorted(
        os.path.basename(path)
        for path in tf.train.get_checkpoint_state(str(run / "checkpoints")).all_model_checkpoint_paths
    )


def run_model(run):
    """The run's model, compiled, ready for its checkpoints."""
    gan = training.build_recorded_model(str(run))
    gan.compile()
    return gan


def restored_weights(run):
    gan = run_model(run)
    checkpoint = gan_callbacks.GANCheckpoint(gan, str(run / "checkpoints"))
    epochs = checkpoint.restore()
    return epochs, [np.array(w) for w in gan.generator.get_weights()]


class PoisonWeights(keras.callbacks.Callback):
    """Turns a generator weight into NaN after `step` (0-based) of epoch `epoch` (1-based).

    With several steps per call (DCGAN's default on a CPU), Keras calls the batch hooks once
    per call, naming its last step: the weight is poisoned after the call that ran `step`.
    """

    def __init__(self, epoch, step=0):
        super().__init__()
        self.epoch, self.step, self.current, self.done = epoch, step, None, False

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        step = self.step if self.step >= 0 else self.params["steps"] + self.step
        if self.current == self.epoch and batch >= step and not self.done:
            self.done = True
            kernel = self.model.generator.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


# === 1. Divergence ===


def test_a_nan_loss_stops_the_run_keeps_the_last_finite_checkpoint_and_exports_nothing(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(training.TrainingDiverged) as raised:
        tiny_run(tmp_path, epochs=3, callbacks=[PoisonWeights(epoch=2)])
    message = str(raised.value)
    assert "\n" not in message and "in epoch 2" in message and "_loss is nan" in message
    assert "checkpoint after epoch 1 is kept" in message
    assert checkpoint_names(run) == ["ckpt-1"]  # the NaN weights of epoch 2 were not saved
    assert not os.path.exists(tmp_path / "models" / "dcgan")
    summary = json.load(open(run / "summary.json"))
    assert summary["stopped_by"].startswith("divergence") and summary["export_path"] is None
    assert summary["epochs_done"] == 1
    epochs, good = restored_weights(run)
    assert epochs == 1 and all(np.isfinite(w).all() for w in good)

    # Reruns that diverge again (more than max_to_keep of them) never rotate the good one away.
    for _ in range(3):
        with pytest.raises(training.TrainingDiverged):
            tiny_run(tmp_path, epochs=3, callbacks=[PoisonWeights(epoch=2)])
    assert checkpoint_names(run) == ["ckpt-1"]
    epochs, again = restored_weights(run)
    assert epochs == 1
    for a, b in zip(good, again):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(tmp_path / "models" / "dcgan")


def test_weights_turning_nan_at_the_end_of_an_epoch_are_named_and_not_saved(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(training.TrainingDiverged, match=r"weights are not finite after epoch 2 \(") as raised:
        tiny_run(tmp_path, epochs=3, callbacks=[PoisonWeights(epoch=2, step=-1)])
    assert "\n" not in str(raised.value)
    assert checkpoint_names(run) == ["ckpt-1"]
    assert not os.path.exists(tmp_path / "models" / "dcgan")


def _nan_d_loss(monkeypatch):
    from kerasgan.models.dcgan import DCGAN

    original = DCGAN.train_step

    def diverging(self, data):
        logs = original(self, data)
        return {**logs, "d_loss": logs["d_loss"] * float("nan")}

    monkeypatch.setattr(DCGAN, "train_step", diverging)


def test_the_cli_says_the_run_diverged_in_one_line_and_exits_non_zero(tmp_path, kerasgan, monkeypatch):
    _nan_d_loss(monkeypatch)
    result = cli_train(kerasgan, tmp_path)
    assert_one_error_line(result, "dcgan diverged", "d_loss is nan in epoch 1", "no checkpoint was written",
                          "nothing was exported")
    assert not os.path.exists(tmp_path / "run" / "checkpoints" / "checkpoint")  # nothing saved
    assert not os.path.exists(tmp_path / "models" / "dcgan")
    assert json.load(open(tmp_path / "run" / "summary.json"))["stopped_by"].startswith("divergence")


def test_the_checkpoint_callback_itself_never_saves_non_finite_weights(tmp_path):
    from kerasgan.models import DCGAN

    gan = DCGAN.from_preset("tiny", seed=0)
    gan.compile()
    checkpoint = gan_callbacks.GANCheckpoint(gan, str(tmp_path))
    images = np.zeros((16, 28, 28, 1), "float32")
    gan.fit(tf.data.Dataset.from_tensor_slices(images).batch(8), epochs=1,
            callbacks=[checkpoint], verbose=0)
    kernel = gan.discriminator.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    checkpoint.on_epoch_end(1, {"d_loss": 1.0, "g_loss": 1.0})
    assert "not finite after epoch 2 (discriminator/" in checkpoint.refused
    assert [os.path.basename(p) for p in checkpoint.manager.checkpoints] == ["ckpt-1"]


# === 2. export_run refuses non-finite weights ===


def test_export_run_refuses_a_checkpoint_with_non_finite_weights(tmp_path):
    run = tmp_path / "run"
    tiny_run(tmp_path, epochs=1, export=False)
    gan = run_model(run)
    checkpoint = gan_callbacks.GANCheckpoint(gan, str(run / "checkpoints"))
    checkpoint.restore()
    kernel = gan.generator.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    checkpoint.manager.save(checkpoint_number=2)  # written behind the callback's back
    with pytest.raises(ExportError, match="NaN or infinite weights .*generator/.*not exported") as raised:
        training.export_run(str(run), str(tmp_path / "models"))
    assert "\n" not in str(raised.value)
    assert not os.path.exists(tmp_path / "models" / "dcgan")


# === 3. A stale summary.json ===


class DieAfterCheckpoint(keras.callbacks.Callback):
    """Runs after the checkpoint: the process 'dies' once epoch `epoch` is saved, before the export."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("killed")


def test_a_stale_summary_does_not_make_a_longer_rerun_complete(tmp_path, capsys):
    first = tiny_run(tmp_path, epochs=1)
    assert first.export_path.endswith(os.path.join("dcgan", "1"))
    with pytest.raises(RuntimeError, match="killed"):
        tiny_run(tmp_path, epochs=2, callbacks=[DieAfterCheckpoint(2)])
    # summary.json still describes the first run (1 epoch, exported); the checkpoint holds 2.
    assert json.load(open(tmp_path / "run" / "summary.json"))["epochs_done"] == 1
    capsys.readouterr()
    rerun = tiny_run(tmp_path, epochs=2)
    assert "already complete" not in capsys.readouterr().err
    assert rerun.epochs_done == 2 and rerun.steps == 0  # nothing to train, but not exported yet
    assert rerun.export_path.endswith(os.path.join("dcgan", "2"))
    from kerasgan.export import read_metadata

    assert read_metadata(rerun.export_path)["epochs"] == 2
    # Now it is complete.
    again = tiny_run(tmp_path, epochs=2)
    assert "already complete" in capsys.readouterr().err and again.export_path == rerun.export_path


def test_a_deleted_export_is_made_again(tmp_path, capsys):
    import shutil

    first = tiny_run(tmp_path, epochs=1)
    shutil.rmtree(first.export_path)
    rerun = tiny_run(tmp_path, epochs=1)
    assert "already complete" not in capsys.readouterr().err
    assert rerun.steps == 0 and os.path.isdir(rerun.export_path)


# === 4. Precision ===


def test_precision_is_part_of_the_runs_identity(tmp_path):
    tiny_run(tmp_path, epochs=1, export=False)
    with pytest.raises(ConfigError, match="precision 'float32' -> 'mixed_float16'"):
        tiny_run(tmp_path, epochs=2, export=False, precision_policy="mixed_float16")
    assert json.load(open(tmp_path / "run" / "options.json"))["precision"] == "float32"


def test_export_run_of_a_mixed_float16_run_matches_the_trained_model(tmp_path):
    from kerasgan import export

    summary = tiny_run(tmp_path, epochs=1, export=False, precision_policy="mixed_float16")
    keras.mixed_precision.set_dtype_policy("float32")  # a fresh `kerasgan export` process
    path = training.export_run(str(tmp_path / "run"), str(tmp_path / "models"))
    assert keras.mixed_precision.global_policy().name == "float32"  # put back
    predict, _ = export.load_serving_signature(path, "predict_float")
    latent = summary.gan.latent_batch(4, summary.gan.latent_dim, seed=3)
    np.testing.assert_allclose(
        predict(latent=tf.constant(latent))["images"].numpy(),
        np.asarray(summary.gan.generate_from_latent(latent), "float32"),
        atol=1e-3,
    )


# === 5. Checkpoints by name, format and version ===


def test_checkpoints_are_keyed_by_variable_name(tmp_path):
    tiny_run(tmp_path, epochs=1, export=False)
    names = {name for name, _ in tf.train.list_variables(str(tmp_path / "run" / "checkpoints" / "ckpt-1"))}
    assert "variables/generator.Sproject.Skernel/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert "variables/seed_generator.Sstate/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert any(n.startswith("variables/g_optimizer.Smomentums.Sgenerator.Sproject.Skernel") for n in names)
    recorded = json.load(open(tmp_path / "run" / "checkpoints" / "format.json"))
    assert recorded == {"kerasgan": __import__("kerasgan").__version__,
                        "checkpoint_format": gan_callbacks.CHECKPOINT_FORMAT}


@pytest.mark.parametrize("recorded", [{"kerasgan": "0.0.1", "checkpoint_format": 1}, None])
def test_a_run_of_an_incompatible_checkpoint_format_is_refused(tmp_path, recorded):
    tiny_run(tmp_path, epochs=1, export=False)
    path = tmp_path / "run" / "checkpoints" / "format.json"
    if recorded is None:
        os.remove(path)  # a run folder from before the format was recorded
    else:
        path.write_text(json.dumps(recorded))
    before = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    with pytest.raises(ConfigError, match="holds checkpoints of kerasgan .*format 1.*reads format 2") as raised:
        tiny_run(tmp_path, epochs=2, export=False)
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="format 1"):
        training.export_run(str(tmp_path / "run"), str(tmp_path / "models"))
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == before


# === 6. --data auto is resolved once ===


def test_data_auto_is_resolved_once_and_a_resume_uses_the_same_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "tfds_plan", lambda *args, **kwargs: None)  # offline
    tiny_run(tmp_path, data="auto", epochs=1, export=False)
    options = json.load(open(tmp_path / "run" / "options.json"))
    assert options["data"] == "auto" and options["data_source"] == "embedded"
    # The README's promise: offline, the first command says so, in one line.
    said = [line for line in capsys.readouterr().err.splitlines() if "no network" in line]
    assert len(said) == 1
    assert said[0].startswith("kerasgan: MNIST is not downloaded and there is no network")
    assert "; using the embedded 5,000-digit sample from " in said[0]
    assert said[0].endswith("mnist_sample.npz")

    # tensorflow-datasets became available meanwhile: the resumed run still uses its data.
    sources = []
    load = datasets.load
    monkeypatch.setattr(datasets, "tfds_plan", lambda *args, **kwargs: "prepared")
    monkeypatch.setattr(datasets, "load", lambda *a, **k: sources.append(k.get("source")) or load(*a, **k))
    tiny_run(tmp_path, data="auto", epochs=2, export=False)
    assert sources == ["embedded"]
    assert "no network" not in capsys.readouterr().err  # a resume has nothing new to say

    # A new run folder resolves `auto` anew, to tensorflow-datasets now.
    fake = datasets.from_arrays(np.zeros((8, 28, 28), "uint8"))
    monkeypatch.setattr(datasets, "load", lambda *a, **k: sources.append(k.get("source")) or fake)
    tiny_run(tmp_path, data="auto", epochs=1, export=False, batch_size=8, output=str(tmp_path / "new"))
    assert sources[-1] == "tfds"
    assert json.load(open(tmp_path / "new" / "options.json"))["data_source"] == "tfds"


# === 7. One train per run folder ===


def _dead_pid():
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_a_second_train_on_a_locked_run_folder_is_refused(tmp_path, kerasgan):
    run = tmp_path / "run"
    run.mkdir()
    owner = os.getppid()  # alive: the process that started the tests
    (run / "train.lock").write_text(f"{owner}\n")
    result = cli_train(kerasgan, tmp_path)
    assert_one_clear_line(result, f"{run} is in use by another train (process {owner}")
    assert (run / "train.lock").read_text() == f"{owner}\n"  # the owner's lock is untouched
    assert not os.path.exists(run / "checkpoints") and not os.path.exists(run / "options.json")
    assert not os.path.exists(tmp_path / "models")  # a refused run makes no export folder either


def test_a_stale_lock_is_reported_and_taken_over_and_the_lock_is_released(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = _dead_pid()
    (run / "train.lock").write_text(f"{dead}\n")
    summary = tiny_run(tmp_path, epochs=1, export=False)
    assert summary.epochs_done == 1
    assert f"taking over the stale lock of process {dead}" in capsys.readouterr().err
    assert not os.path.exists(run / "train.lock")


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_the_lock_is_released_when_training_fails(tmp_path, error):
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            assert os.path.exists(tmp_path / "run" / "train.lock")  # held while training
            raise error("stop")

    with pytest.raises(error):
        tiny_run(tmp_path, epochs=1, export=False, callbacks=[Interrupt()])
    assert not os.path.exists(tmp_path / "run" / "train.lock")


def test_the_lock_file_is_created_exclusively(tmp_path, monkeypatch):
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, flags, *a: opened.append((path, flags)) or real_open(path, flags, *a))
    lock = training._acquire_lock(str(tmp_path))
    try:
        flags = [f for path, f in opened if path == lock][0]
        assert flags & os.O_CREAT and flags & os.O_EXCL
        assert open(lock).read() == f"{os.getpid()}\n"
        with pytest.raises(training.RunLocked, match="in use"):  # this process, a second time
            training._acquire_lock(str(tmp_path))
    finally:
        training._release_lock(lock)
    assert not os.path.exists(lock)


# === 8. Seed range and determinism ===


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_seeds_outside_the_unsigned_32_bit_range_are_refused_before_any_work(tmp_path, seed):
    with pytest.raises(ConfigError, match=r"--seed must be a whole number from 0 to 4294967295"):
        tiny_run(tmp_path, seed=seed)
    assert not os.path.exists(tmp_path / "run")


def test_deterministic_enables_op_determinism_before_building(tmp_path, monkeypatch):
    import dataclasses

    events = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: events.append("determinism"))
    recipe = training.get_recipe("dcgan")
    recorded = dataclasses.replace(recipe, build=lambda *a, **k: events.append("build") or recipe.build(*a, **k))
    monkeypatch.setattr(training, "get_recipe", lambda name: recorded)
    tiny_run(tmp_path, epochs=1, export=False, deterministic=True)
    assert events == ["determinism", "build"]
    assert json.load(open(tmp_path / "run" / "options.json"))["deterministic"] is True
    events.clear()
    tiny_run(tmp_path, epochs=1, export=False, output=str(tmp_path / "other"))
    assert events == ["build"]


# === 9. A full disk during a checkpoint ===


def _full_disk_after(monkeypatch, saves, error):
    real_save = tf.train.CheckpointManager.save
    calls = []

    def save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > saves:
            number = kwargs.get("checkpoint_number")
            # What a save cut short leaves: part of its data file.
            with open(os.path.join(self.directory, f"ckpt-{number}.data-00000-of-00001"), "w") as f:
                f.write("partial")
            raise error
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    tf.errors.ResourceExhaustedError(None, None, "No space left on device"),
])
def test_a_full_disk_during_a_checkpoint_is_one_clear_error_and_keeps_the_previous(tmp_path, monkeypatch, error):
    run = tmp_path / "run"
    _full_disk_after(monkeypatch, 1, error)
    with pytest.raises(gan_callbacks.CheckpointError) as raised:
        tiny_run(tmp_path, epochs=2)
    message = str(raised.value)
    assert isinstance(raised.value, KerasganError) and "\n" not in message
    assert "checkpoint of epoch 2" in message and "No space left on device" in message
    assert "ckpt-1 is intact" in message
    assert checkpoint_names(run) == ["ckpt-1"]
    assert not [name for name in os.listdir(run / "checkpoints") if name.startswith("ckpt-2")]
    assert restored_weights(run)[0] == 1
    assert not os.path.exists(run / "train.lock") and not os.path.exists(tmp_path / "models" / "dcgan")


def test_the_cli_turns_a_full_disk_into_exit_2(tmp_path, kerasgan, monkeypatch):
    _full_disk_after(monkeypatch, 0, OSError(errno.ENOSPC, "No space left on device"))
    result = cli_train(kerasgan, tmp_path)
    assert_one_error_line(result, "cannot write the checkpoint of epoch 1", "No space left on device")


# === 10. Class count of a labelled folder ===


def _class_folder(root, classes, per_class=2):
    for index in range(classes):
        folder = root / f"class_{index:02d}"
        folder.mkdir(parents=True)
        for n in range(per_class):
            Image.fromarray(np.full((28, 28), 20 * index + n, "uint8")).save(folder / f"{n}.png")
    return root


@pytest.mark.parametrize("classes", [3, 11])
def test_a_folder_with_another_class_count_is_refused_before_training(tmp_path, classes):
    folder = _class_folder(tmp_path / "images", classes)
    assert len(datasets.load(str(folder), with_labels=True).class_names) == classes
    with pytest.raises(ConfigError, match=f"has {classes} classes .*cgan \\(tiny\\) is built for 10") as raised:
        training.train("cgan", data=str(folder), preset="tiny", epochs=1, batch_size=4,
                       output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"),
                       image_size=28, channels=1, precision_policy="float32", verbose=0)
    assert "\n" not in str(raised.value)
    assert sorted(os.listdir(tmp_path / "run")) == []  # no checkpoint, options, samples or lock


def test_a_locked_run_folder_is_refused_by_a_real_train_process(tmp_path):
    from tests.cli_helpers import kerasgan_process

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / "train.lock").write_text(f"{holder.pid}\n")
        result = kerasgan_process(
            "train", "dcgan", "--data", "embedded", "--preset", "tiny", "--epochs", "1",
            "--output", run, "--export-dir", tmp_path / "models", "--precision", "float32",
        )
    finally:
        holder.kill()
        holder.wait()
    assert_one_error_line(result, f"is in use by another train (process {holder.pid}")
    assert (run / "train.lock").read_text() == f"{holder.pid}\n"


def test_data_auto_falls_back_to_the_embedded_copy_when_tfds_fails_and_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "tfds_plan", lambda *args, **kwargs: "download")
    monkeypatch.setattr(datasets, "load_tfds", lambda *a, **k: (_ for _ in ()).throw(OSError("connection reset")))
    summary = tiny_run(tmp_path, data="auto", epochs=1, export=False)
    assert summary.epochs_done == 1
    assert "using the embedded copy of mnist" in capsys.readouterr().err
    assert json.load(open(tmp_path / "run" / "options.json"))["data_source"] == "embedded"


# === Export names are checked before any work ===


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".."])
def test_a_bad_export_name_is_refused_before_training_and_by_export_run(tmp_path, name):
    with pytest.raises(ExportError, match="plain folder name"):
        tiny_run(tmp_path, epochs=1, export_name=name)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
    tiny_run(tmp_path, epochs=1, export=False)
    with pytest.raises(ExportError, match="plain folder name"):
        training.export_run(str(tmp_path / "run"), str(tmp_path / "models"), name=name)
    assert not os.path.exists(tmp_path / "models")
