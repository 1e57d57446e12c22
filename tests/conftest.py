"""Test-wide settings: quiet TensorFlow, no network, no writes outside temporary folders."""

import os
import tempfile

# These must be set before TensorFlow is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERASGAN_OFFLINE"] = "1"  # the data loaders never probe the network in tests
os.environ["MPLBACKEND"] = "Agg"
# Failed downloads leave folders under ~/.keras: keep them out of the user's home.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="kerasgan-keras-home-")
os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="kerasgan-tfds-")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from float32, a fixed seed and an empty Keras session."""
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_dtype_policy("float32")
    # free_memory=False skips a gc.collect() per test that cost 0.4-5 s of teardown each.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def kerasgan(capsys):
    """`kerasgan(*args)`: the CLI run in this process (see tests/cli_helpers.py)."""
    from tests.cli_helpers import run_in_process

    return lambda *args: run_in_process(capsys, *args)
