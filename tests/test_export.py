import errno
import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from kerasgan import export
from kerasgan.errors import ExportError
from kerasgan.models.dcgan import DCGAN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def gan():
    return DCGAN.from_preset("tiny", seed=0)


def test_versions_count_up_and_are_never_overwritten(gan, tmp_path):
    first = export.export_model(gan, str(tmp_path), name="dcgan")
    second = export.export_model(gan, str(tmp_path), name="dcgan")
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert export.version_folders(str(tmp_path / "dcgan")) == [1, 2]
    assert export.resolve_saved_model(str(tmp_path / "dcgan")) == second
    with pytest.raises(ExportError, match="already exists"):
        export.export_model(gan, str(tmp_path), name="dcgan", version=1)


def test_a_failed_export_leaves_nothing_behind(gan, tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError):
        export.export_model(gan, str(tmp_path), name="dcgan")
    assert os.listdir(tmp_path / "dcgan") == []


def test_metadata_describes_the_request(gan, tmp_path):
    path = export.export_model(gan, str(tmp_path), name="dcgan", metadata={"epochs": 3})
    meta = export.read_metadata(path)
    assert meta["model_class"] == "DCGAN" and meta["latent_dim"] == 8 and meta["epochs"] == 3
    assert meta["signatures"] == ["predict_float", "serving_default"]


def test_predict_float_signature_matches_the_generator(gan, tmp_path):
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    predict, _ = export.load_serving_signature(path, "predict_float")
    latent = gan.latent_batch(4, gan.latent_dim, seed=0)
    np.testing.assert_allclose(predict(latent=latent)["images"].numpy(),
                               gan.generate_from_latent(latent), atol=1e-5)


def test_a_wrong_input_shape_is_named_by_the_graph_itself(gan, tmp_path):
    """TF Serving does not compare a request with the signature's shapes: the graph checks them
    on entry and names the input, rather than failing at the generator's first matmul."""
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    served, _ = export.load_serving_signature(path)
    assert served(latent=tf.zeros([2, gan.latent_dim]))["images"].shape[0] == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"tensor latent \[2,5\] .*\[\?,8\]"):
        served(latent=tf.zeros([2, 5]))


def test_missing_export_and_signature_are_clear_errors(gan, tmp_path):
    with pytest.raises(ExportError, match="no SavedModel"):
        export.load_serving_signature(str(tmp_path / "nothing"))
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    with pytest.raises(ExportError, match="no signature 'nope'"):
        export.load_serving_signature(path, "nope")


def test_the_first_version_is_one():
    assert export.next_version("/nonexistent") == 1


def signature_inputs(functions):
    """`{signature: [(input name, dtype, shape), ...]}` of a dict of serving functions."""
    return {
        name: [(spec.name, spec.dtype.name, spec.shape.as_list()) for spec in f.input_signature]
        for name, f in functions.items()
    }


def test_export_chooses_the_serving_functions_from_the_kind_of_model():
    from kerasgan import recipes

    def tiny(name, image_size, channels):
        return recipes.get_recipe(name).build("tiny", image_size, channels, 0)

    latent = ("latent", "float32", [None, 8])
    labelled = [("latent", "float32", [None, 8]), ("labels", "int32", [None])]
    assert signature_inputs(export.serving_functions(DCGAN.from_preset("tiny", seed=0))) == {
        "serving_default": [latent], "predict_float": [latent],
    }
    assert signature_inputs(export.serving_functions(tiny("cgan", 28, 1))) == {
        "serving_default": labelled, "predict_float": labelled,
    }
    biggan = tiny("biggan", 32, 3)
    with_truncation = [("latent", "float32", [None, biggan.latent_dim]), labelled[1],
                       ("truncation", "float32", [])]
    assert signature_inputs(export.serving_functions(biggan)) == {
        "serving_default": with_truncation, "predict_float": with_truncation,
    }
    stylegan = tiny("stylegan", 16, 3)
    styled = [("latent", "float32", [None, stylegan.latent_dim]), ("truncation_psi", "float32", [])]
    assert signature_inputs(export.serving_functions(stylegan)) == {
        "serving_default": styled, "predict_float": styled,
        "mix": [("latent_rows", "float32", [None, stylegan.latent_dim]),
                ("latent_cols", "float32", [None, stylegan.latent_dim]),
                ("crossover", "int32", []), ("truncation_psi", "float32", [])],
    }
    cyclegan = tiny("cyclegan", 16, 1)
    for direction in ("a2b", "b2a"):
        one_way = export.CycleGANDirection(cyclegan, direction)
        assert one_way.variables == cyclegan.generator_for(direction).variables
        assert signature_inputs(export.serving_functions(one_way)) == {
            "serving_default": [("images", "uint8", [None, None, None, 1])],
            "predict_float": [("images", "float32", [None, None, None, 1])],
        }


def test_an_object_with_its_own_serving_functions_keeps_them_and_others_are_refused():
    class Served:
        def serving_functions(self):
            return {"serving_default": "its own"}

    assert export.serving_functions(Served()) == {"serving_default": "its own"}
    with pytest.raises(ExportError, match="cannot export a str: not a kerasgan model"):
        export.serving_functions("dcgan")


def test_exports_are_readable_by_other_users(gan, tmp_path):
    """TF Serving often runs as another user (in a container): exports must not be private."""
    old = os.umask(0o022)
    try:
        path = export.export_model(gan, str(tmp_path), name="dcgan")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(path, "saved_model.pb")).st_mode & 0o777 == 0o644


# === Names, versions and leftovers: an export never replaces another ===


def fake_save(barrier=None):
    """A stand-in for `tf.saved_model.save` that writes a marker file (no graph tracing)."""
    def save(module, path, signatures=None):
        if barrier is not None:
            barrier.wait()
        with open(os.path.join(path, "saved_model.pb"), "w") as handle:
            handle.write(threading.current_thread().name)
    return save


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", ".", "..", "a b", "x\\y"])
def test_export_names_are_plain_names(gan, tmp_path, name):
    with pytest.raises(ExportError, match="name") as raised:
        export.export_model(gan, str(tmp_path / "models"), name=name)
    assert "\n" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_two_exports_racing_get_their_own_versions(gan, tmp_path, monkeypatch):
    """Both exports are inside their save at once (the barrier); neither replaces the other."""
    monkeypatch.setattr(tf.saved_model, "save", fake_save(threading.Barrier(2, timeout=60)))
    results, errors = {}, []

    def run(label):
        try:
            results[label] = export.export_model(gan, str(tmp_path), name="dcgan")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(label,), name=label) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(os.path.basename(path) for path in results.values()) == ["1", "2"]
    assert export.version_folders(str(tmp_path / "dcgan")) == [1, 2]
    for label, path in results.items():  # each version holds its own export, whole
        assert open(os.path.join(path, "saved_model.pb")).read() == label
        assert os.path.isfile(os.path.join(path, export.METADATA_FILE))
    assert sorted(os.listdir(tmp_path / "dcgan")) == ["1", "2"]  # no claims or temp folders


def test_an_export_started_during_another_takes_the_next_version(gan, tmp_path, monkeypatch):
    save = fake_save()
    inner, started = [], []

    def save_with_a_second_export(module, path, signatures=None):
        if not started:
            started.append(True)
            inner.append(export.export_model(gan, str(tmp_path), name="dcgan"))
        save(module, path, signatures)

    monkeypatch.setattr(tf.saved_model, "save", save_with_a_second_export)
    outer = export.export_model(gan, str(tmp_path), name="dcgan")
    assert (os.path.basename(outer), os.path.basename(inner[0])) == ("1", "2")
    assert sorted(os.listdir(tmp_path / "dcgan")) == ["1", "2"]


def test_an_explicit_version_being_exported_is_refused(gan, tmp_path, monkeypatch):
    monkeypatch.setattr(tf.saved_model, "save", fake_save())
    refused = []

    def save_with_a_clash(module, path, signatures=None):
        with pytest.raises(ExportError, match="version 5") as raised:
            export.export_model(gan, str(tmp_path), name="dcgan", version=5)
        refused.append(str(raised.value))
        fake_save()(module, path, signatures)

    monkeypatch.setattr(tf.saved_model, "save", save_with_a_clash)
    export.export_model(gan, str(tmp_path), name="dcgan", version=5)
    assert refused and "\n" not in refused[0]
    assert sorted(os.listdir(tmp_path / "dcgan")) == ["5"]


def test_leftovers_of_a_killed_export_are_cleaned_and_never_counted(gan, tmp_path, monkeypatch):
    model_dir = tmp_path / "dcgan"
    stale = model_dir / ".tmp-3"
    (stale / "model" / "variables").mkdir(parents=True)  # a half-written SavedModel
    (stale / "owner").write_text(f"{dead_pid()} {socket.gethostname()}\n")
    assert export.version_folders(str(model_dir)) == []
    assert export.next_version(str(model_dir)) == 1
    monkeypatch.setattr(tf.saved_model, "save", fake_save())
    assert os.path.basename(export.export_model(gan, str(tmp_path), name="dcgan")) == "1"
    assert sorted(os.listdir(model_dir)) == ["1"]


def test_a_live_claim_is_left_alone(gan, tmp_path, monkeypatch):
    model_dir = tmp_path / "dcgan"
    live = model_dir / ".tmp-1"
    live.mkdir(parents=True)
    (live / "owner").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    monkeypatch.setattr(tf.saved_model, "save", fake_save())
    assert os.path.basename(export.export_model(gan, str(tmp_path), name="dcgan")) == "2"
    assert sorted(os.listdir(model_dir)) == [".tmp-1", "2"]
    assert export.next_version(str(model_dir)) == 3


def test_an_export_killed_mid_write_leaves_no_version_and_is_cleaned_next_time(gan, tmp_path):
    script = (
        "import os, signal, sys\n"
        "import tensorflow as tf\n"
        "from kerasgan import export\n"
        "class Model:\n"
        "    name = 'dcgan'\n"
        "    variables = []\n"
        "    def serving_functions(self):\n"
        "        return {}\n"
        "def save(module, path, signatures=None):\n"
        "    open(os.path.join(path, 'saved_model.pb'), 'w').write('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "tf.saved_model.save = save\n"
        "export.export_model(Model(), sys.argv[1])\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert export.version_folders(str(tmp_path / "dcgan")) == []  # TF Serving sees no version
    path = export.export_model(gan, str(tmp_path), name="dcgan")
    assert os.path.basename(path) == "1"
    assert sorted(os.listdir(tmp_path / "dcgan")) == ["1"]


@pytest.mark.parametrize(
    "error",
    [
        tf.errors.ResourceExhaustedError(None, None, "No space left on device"),
        tf.errors.PermissionDeniedError(None, None, "Permission denied"),
        tf.errors.InternalError(None, None, "could not write file\nsecond line"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["resource-exhausted", "permission-denied", "internal", "oserror"],
)
def test_disk_full_is_one_line_and_leaves_nothing(gan, tmp_path, monkeypatch, error):
    def failing_save(module, path, signatures=None):
        with open(os.path.join(path, "saved_model.pb"), "w") as handle:
            handle.write("half")
        raise error

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(ExportError) as raised:
        export.export_model(gan, str(tmp_path), name="dcgan")
    message = str(raised.value)
    assert "\n" not in message and "cannot write the export" in message
    assert os.listdir(tmp_path / "dcgan") == []


def test_a_failure_after_the_save_leaves_nothing(gan, tmp_path, monkeypatch):
    monkeypatch.setattr(tf.saved_model, "save", fake_save())

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.json, "dump", full_disk)
    with pytest.raises(ExportError, match="No space left"):
        export.export_model(gan, str(tmp_path), name="dcgan")
    assert os.listdir(tmp_path / "dcgan") == []
