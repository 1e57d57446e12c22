"""Training runs end to end: run folder, export, resume after SIGKILL, refusing mismatched runs."""

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kerasgan import training
from kerasgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_options(tmp_path, **overrides):
    """The options of a tiny DCGAN run in `tmp_path` (`run/`, exports in `models/`)."""
    options = dict(
        data="embedded", preset="tiny", epochs=2, batch_size=256, output=str(tmp_path / "run"),
        export_dir=str(tmp_path / "models"), seed=0, precision_policy="float32", verbose=0,
    )
    options.update(overrides)
    return options


def tiny_run(tmp_path, **overrides):
    return training.train("dcgan", **tiny_options(tmp_path, **overrides))


def test_a_run_writes_its_folder_and_exports(tmp_path):
    summary = tiny_run(tmp_path)
    run = tmp_path / "run"
    assert summary.epochs_done == 2 and summary.steps == 2 * (5000 // 256)
    assert summary.export_path == str(tmp_path / "models" / "dcgan" / "1")
    assert os.path.isfile(os.path.join(summary.export_path, "saved_model.pb"))
    assert sorted(os.listdir(run / "samples")) == ["epoch_0001.png", "epoch_0002.png"]
    assert Image.open(run / "progress.gif").n_frames == 2
    assert os.listdir(run / "logs")
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert json.load(open(run / "summary.json"))["export_path"] == summary.export_path
    assert json.load(open(run / "options.json"))["preset"] == "tiny"
    line = summary.line()
    for fragment in ("epoch 2/2", "steps", "images/s", "wall time", "exported to"):
        assert fragment in line


def test_time_budget_stops_mid_epoch_says_so_and_still_exports(tmp_path, capsys):
    summary = tiny_run(tmp_path, epochs=50, time_budget=0.001, steps_per_execution=1)
    assert summary.stopped_by == "the time budget"
    # One step of the first epoch ran: saved, but the epoch is not counted as done.
    assert summary.epochs_done == 0 and summary.steps == 1 and summary.unfinished_steps == 1
    assert json.load(open(tmp_path / "run" / "summary.json"))["unfinished_steps"] == 1
    line = summary.line()
    assert "epoch 0/50 and 1 step of epoch 1" in line and "stopped by the time budget" in line
    assert summary.export_path and os.path.isdir(summary.export_path)

    # The rerun trains the whole first epoch again, on top of the saved step.
    resumed = tiny_run(tmp_path, epochs=1)
    assert "saved during epoch 1" in capsys.readouterr().err
    assert resumed.epochs_done == 1 and resumed.steps == 5000 // 256
    assert resumed.stopped_by is None and resumed.unfinished_steps == 0
    assert int(resumed.gan.g_optimizer.iterations) == 1 + 5000 // 256


def test_rerun_resumes_and_a_complete_run_is_not_retrained(tmp_path, capsys):
    tiny_run(tmp_path, epochs=1)
    summary = tiny_run(tmp_path, epochs=2)
    assert "resuming" in capsys.readouterr().err
    assert summary.epochs_done == 2 and summary.steps == 5000 // 256  # only the second epoch ran
    again = tiny_run(tmp_path, epochs=2)
    assert again.steps == 0 and again.export_path == summary.export_path
    assert "already complete" in capsys.readouterr().err


def test_a_run_folder_with_other_options_is_refused(tmp_path):
    tiny_run(tmp_path, epochs=1)
    with pytest.raises(ConfigError, match="holds a run with other options.*seed 0 -> 1"):
        tiny_run(tmp_path, epochs=1, seed=1)


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown model"):
        training.train("nope", output=str(tmp_path))
    with pytest.raises(ConfigError, match="unknown preset"):
        tiny_run(tmp_path, preset="huge")
    with pytest.raises(ConfigError, match="time-budget"):
        tiny_run(tmp_path, time_budget=-1)


def test_several_steps_per_call_take_the_same_steps(tmp_path):
    one = tiny_run(tmp_path / "one", epochs=1, export=False, deterministic=True)
    # 19 batches per epoch: the last call of 4 runs only 3 steps.
    four = tiny_run(tmp_path / "four", epochs=1, export=False, deterministic=True,
                    steps_per_execution=4)
    assert one.steps == four.steps == 5000 // 256
    assert json.load(open(tmp_path / "four" / "run" / "options.json"))["steps_per_execution"] == 4
    for a, b in zip(one.gan.generator.get_weights(), four.gan.generator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_auto_steps_per_execution_is_the_recipes_on_a_cpu_and_one_on_a_gpu(monkeypatch):
    assert training.get_recipe("dcgan").steps_per_execution_cpu > 1
    assert training.resolve_settings("dcgan").steps_per_execution == (
        training.get_recipe("dcgan").steps_per_execution_cpu
    )
    assert training.resolve_settings("wgan-gp").steps_per_execution == 1
    monkeypatch.setattr(training.tf.config, "list_physical_devices",
                        lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert training.resolve_steps_per_execution("auto", 8) == 1
    assert training.resolve_steps_per_execution("3", 8) == 3


def test_several_replicas_take_one_step_per_call():
    assert training.resolve_steps_per_execution("auto", 8, replicas=2) == 1
    with pytest.raises(ConfigError, match="needs a single replica"):
        training.resolve_steps_per_execution(4, 8, replicas=2)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "many", True])
def test_steps_per_execution_must_be_a_positive_integer_or_auto(tmp_path, bad):
    with pytest.raises(ConfigError, match="steps_per_execution must be 'auto' or a positive integer"):
        tiny_run(tmp_path, steps_per_execution=bad)
    assert not (tmp_path / "run").exists()


KILL_AFTER_SECOND_CHECKPOINT = """
import os, signal, sys
import keras
import numpy as np
from kerasgan import training

class KillAfterCheckpoint(keras.callbacks.Callback):
    # Runs after the built-in checkpoint callback: the kill lands right after epoch 2 is saved.
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == 2:
            np.save(sys.argv[2], np.concatenate([w.ravel() for w in self.model.generator.get_weights()]))
            os.kill(os.getpid(), signal.SIGKILL)

training.train("dcgan", data="embedded", preset="tiny", epochs=3, batch_size=256, output=sys.argv[1],
               export_dir=sys.argv[1] + "-models", seed=0, precision_policy="float32", verbose=0,
               callbacks=[KillAfterCheckpoint()])
"""


def test_resume_after_sigkill_continues_from_the_last_checkpoint(tmp_path):
    run = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_SECOND_CHECKPOINT, run, str(tmp_path / "weights.npy")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not os.path.exists(os.path.join(run + "-models", "dcgan"))  # killed before the export

    # Same options, from the command line: it resumes at epoch 3 instead of starting over.
    resumed = subprocess.run(
        [sys.executable, "-m", "kerasgan", "train", "dcgan", "--data", "embedded", "--preset", "tiny",
         "--epochs", "3", "--batch-size", "256", "--output", run, "--export-dir", run + "-models",
         "--seed", "0", "--precision", "float32"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "after epoch 2" in resumed.stderr
    assert "epoch 3/3" in resumed.stdout and f"{5000 // 256} steps this run" in resumed.stdout

    # The restored generator is exactly the one saved before the kill.
    from kerasgan import callbacks

    gan = training.build_recorded_model(run)
    gan.compile()
    checkpoint = callbacks.GANCheckpoint(gan, os.path.join(run, "checkpoints"))
    checkpoint.checkpoint.restore(os.path.join(run, "checkpoints", "ckpt-2")).expect_partial()
    saved = np.load(tmp_path / "weights.npy")
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in gan.generator.get_weights()]), saved)
