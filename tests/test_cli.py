"""The command line as users meet it: help, mistakes (one line, exit 2, no traceback), sampling."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kerasgan_process(*args, timeout=300):
    """The real thing: `python -m kerasgan ...` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "kerasgan", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout,
    )


@pytest.fixture
def kerasgan(capsys):
    """`cli.main(args)` in this process (seconds faster than a new TensorFlow import), with the
    same exit code and output a subprocess would give."""
    from kerasgan import cli

    def run(*args):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's --help, --version and usage errors
            code = exit_.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def assert_one_clear_line(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("kerasgan")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_the_commands():
    result = kerasgan_process("--help")
    assert result.returncode == 0 and not result.stderr
    for command in ("train", "sample"):
        assert command in result.stdout


def test_train_help_lists_models_and_options(kerasgan):
    result = kerasgan("train", "--help")
    assert result.returncode == 0
    for text in ("dcgan", "--time-budget", "--data", "--precision", "resumes"):
        assert text in result.stdout


def test_dry_run_prints_the_options(tmp_path, kerasgan):
    result = kerasgan("train", "dcgan", "--dry-run", "--epochs", "3", "--output", str(tmp_path / "x"))
    assert result.returncode == 0
    assert '"epochs": 3' in result.stdout
    assert not (tmp_path / "x").exists()


def test_unknown_model(tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("train", "dcgan2", "--output", str(tmp_path)), "unknown model 'dcgan2'", "dcgan")


def test_missing_data_folder(tmp_path, kerasgan):
    result = kerasgan("train", "dcgan", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "run"))
    assert_one_clear_line(result, "does not exist")


def test_empty_data_folder(tmp_path, kerasgan):
    (tmp_path / "empty").mkdir()
    result = kerasgan("train", "dcgan", "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "run"))
    assert_one_clear_line(result, str(tmp_path / "empty"))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("flag, value", [("--time-budget", "-5"), ("--epochs", "0"), ("--batch-size", "-1"), ("--time-budget", "abc")])
def test_bad_numbers(flag, value, tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("train", "dcgan", flag, value, "--output", str(tmp_path)), flag)


def test_unwritable_output(tmp_path, kerasgan):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = kerasgan("train", "dcgan", "--data", "embedded", "--output", str(blocker / "run"))
    assert_one_clear_line(result, "cannot write to the output folder")


def test_sample_from_a_missing_export(tmp_path, kerasgan):
    assert_one_clear_line(kerasgan("sample", str(tmp_path / "none"), "--out", str(tmp_path / "g.png")), "no SavedModel")


def test_sample_draws_a_grid_from_an_export(tmp_path, kerasgan):
    import keras

    from kerasgan.export import export_model
    from kerasgan.models import DCGAN

    keras.utils.set_random_seed(0)
    export_model(DCGAN.from_preset("tiny", seed=0), str(tmp_path / "models"), name="dcgan")
    out = tmp_path / "grid.png"
    result = kerasgan_process("sample", str(tmp_path / "models" / "dcgan"), "--n", "9", "--out", str(out), "--scale", "1")
    assert result.returncode == 0, result.stderr
    assert "wrote 9 samples" in result.stdout
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 30 + 2, 3 * 30 + 2)
    assert_one_clear_line(
        kerasgan("sample", str(tmp_path / "models" / "dcgan"), "--labels", "1,2", "--out", str(out)),
        "not class-conditional",
    )
    assert_one_clear_line(
        kerasgan("sample", str(tmp_path / "models" / "dcgan"), "--out", str(tmp_path / "grid.jpg")), ".png"
    )
