"""Strategies and XLA for training runs: choices, clear errors, and two workers that agree.

The model-level check (a mirrored step equals the single-device step, for every model) is in
tests/models/test_distribution.py.
"""

import json
import os
import socket
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import distribution, training
from kerasgan.errors import ConfigError
from kerasgan.layers import ConditionalBatchNormalization
from kerasgan.models.dcgan import DCGAN
from tests.cli_helpers import assert_one_clear_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_strategy(replicas=1, workers=None):
    """Just what `check_options` reads of a strategy."""
    resolver = None
    if workers:
        spec = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
        resolver = types.SimpleNamespace(
            cluster_spec=lambda: types.SimpleNamespace(as_dict=lambda: spec)
        )
    return types.SimpleNamespace(num_replicas_in_sync=replicas, cluster_resolver=resolver)


def test_default_strategy_is_tensorflows_default():
    assert distribution.make_strategy("default") is tf.distribute.get_strategy()


def tf_config(cluster, task):
    return json.dumps({"cluster": cluster, "task": task})


TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


@pytest.mark.parametrize(
    "name, tf_config_text, message",
    [
        ("round-robin", None, "unknown strategy 'round-robin'"),
        ("multiworker", "{not json", "TF_CONFIG is not valid JSON (Expecting property name"),
        ("multiworker", "[1, 2]", 'TF_CONFIG must be a JSON object like {"cluster": '),
        ("multiworker", json.dumps({"task": {"type": "worker", "index": 0}}),
         'TF_CONFIG has no "cluster"'),
        ("multiworker", json.dumps({"cluster": TWO_WORKERS}), 'TF_CONFIG has no "task"'),
        ("multiworker", tf_config({"worker": "127.0.0.1:1"}, {"type": "worker", "index": 0}),
         'TF_CONFIG\'s cluster must map job names to lists of "host:port"'),
        ("multiworker", tf_config(TWO_WORKERS, {"type": "wrker", "index": 0}),
         "TF_CONFIG's task type 'wrker' is not a job of its cluster (worker)"),
        ("multiworker", tf_config(TWO_WORKERS, {"type": "ps", "index": 0}),
         "TF_CONFIG's task type 'ps' is not a job of its cluster (worker)"),
        ("multiworker", tf_config({"ps": ["127.0.0.1:1"]}, {"type": "ps", "index": 0}),
         "the multiworker strategy trains with 'chief' and 'worker' tasks, not 'ps'"),
        ("multiworker", tf_config(TWO_WORKERS, {"type": "worker", "index": 2}),
         "TF_CONFIG's task index 2 is out of range: the cluster has 2 worker tasks (0 to 1)"),
        ("multiworker", tf_config(TWO_WORKERS, {"type": "worker", "index": "0"}),
         "TF_CONFIG's task index must be a whole number, got '0'"),
        ("multiworker", tf_config({"worker": ["127.0.0.1", "127.0.0.1:2"]},
                                  {"type": "worker", "index": 0}),
         "TF_CONFIG's worker 0 address '127.0.0.1' is not host:port"),
        ("multiworker", tf_config({"worker": ["127.0.0.1:99999"]}, {"type": "worker", "index": 0}),
         "TF_CONFIG's worker 0 address '127.0.0.1:99999' is not host:port"),
        ("tpu", None, "no TPU found"),
    ],
)
def test_strategy_mistakes_are_config_errors(monkeypatch, name, tf_config_text, message):
    if tf_config_text is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config_text)
    with pytest.raises(ConfigError) as error:
        distribution.make_strategy(name)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_unreachable_peer_is_a_config_error_not_a_hang(monkeypatch):
    """Worker 0 of two, with nobody listening at worker 1's address on 127.0.0.1: the
    pre-flight gives up after its timeout instead of waiting forever inside TensorFlow."""
    own, peer = free_ports(2)
    config = tf_config({"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
                       {"type": "worker", "index": 0})
    monkeypatch.setenv("TF_CONFIG", config)
    monkeypatch.setattr(distribution, "PEER_TIMEOUT", 0.5)
    with pytest.raises(ConfigError) as error:
        distribution.make_strategy("multiworker")
    assert str(error.value).startswith(
        f"no answer from worker 1 at 127.0.0.1:{peer} within 0.5 s; start every task of "
        "TF_CONFIG's cluster"
    )
    assert not distribution._MADE  # TensorFlow's collectives were never configured
    with socket.socket() as sock:  # this task's own port was let go again
        sock.bind(("127.0.0.1", own))


def test_a_busy_own_port_is_a_config_error(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        own = busy.getsockname()[1]
        config = tf_config({"worker": [f"127.0.0.1:{own}", "127.0.0.1:1"]},
                           {"type": "worker", "index": 0})
        monkeypatch.setenv("TF_CONFIG", config)
        with pytest.raises(ConfigError, match=f"port {own} of worker 0 .* is in use"):
            distribution.make_strategy("multiworker")


def test_the_global_batch_must_split_evenly_between_replicas():
    distribution.check_options(fake_strategy(replicas=2), batch_size=64)
    with pytest.raises(ConfigError, match=r"batch size \(63\) must be a multiple .* replicas \(2\)"):
        distribution.check_options(fake_strategy(replicas=2), batch_size=63)


def test_a_time_budget_is_refused_only_with_several_workers():
    distribution.check_options(fake_strategy(replicas=2), 64, time_budget=60)
    distribution.check_options(fake_strategy(workers=1), 64, time_budget=60)
    assert distribution.num_workers(fake_strategy(workers=2)) == 2
    with pytest.raises(ConfigError, match="time-budget cannot stop several workers"):
        distribution.check_options(fake_strategy(replicas=2, workers=2), 64, time_budget=60)


def test_xla_is_refused_across_several_replicas():
    distribution.check_options(fake_strategy(replicas=1), 64, jit_compile=True)
    distribution.check_options(fake_strategy(replicas=2), 64, jit_compile="auto")
    with pytest.raises(ConfigError, match="XLA cannot compile a training step spread over 2"):
        distribution.check_options(fake_strategy(replicas=2), 64, jit_compile=True)


def test_jit_choices():
    assert distribution.resolve_jit("on", cpu_default=False) is True
    assert distribution.resolve_jit("off", cpu_default=True) is False
    assert distribution.resolve_jit(True, cpu_default=False) is True
    # This machine has no GPU: `auto` is the recipe's measured CPU choice.
    assert distribution.resolve_jit("auto", cpu_default=True) is True
    assert distribution.resolve_jit("auto", cpu_default=False) is False
    assert distribution.resolve_jit("auto", cpu_default=True, replicas=2) is False
    with pytest.raises(ConfigError, match="unknown jit choice 'fast'"):
        distribution.resolve_jit("fast", cpu_default=False)


def test_synchronize_batch_norm_reaches_nested_and_inner_layers():
    gan = DCGAN.from_preset("tiny", seed=0)
    norms = [
        layer for layer in gan._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and not any(layer.synchronized for layer in norms)
    assert distribution.synchronize_batch_norm(gan) == len(norms)
    assert all(layer.synchronized for layer in norms)

    features, condition = keras.Input((4, 4, 8)), keras.Input((3,))
    conditional = ConditionalBatchNormalization()
    model = keras.Model([features, condition], conditional([features, condition]))
    assert distribution.synchronize_batch_norm(model) == 1
    assert conditional.batch_norm.synchronized
    # Outside a multi-replica strategy the statistics are the batch's own, as before.
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    c = np.zeros((2, 3), "float32")
    np.testing.assert_allclose(
        model([x, c], training=True), (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-5),
        atol=1e-4,
    )


def test_strategy_and_jit_are_recorded_and_reported(tmp_path):
    summary = training.train(
        "dcgan", data="embedded", preset="tiny", epochs=1, batch_size=1000,
        output=str(tmp_path / "run"), export=False, precision_policy="float32",
        strategy="default", jit_compile="on", verbose=0,
    )
    options = json.load(open(tmp_path / "run" / "options.json"))
    assert options["strategy"] == "default" and options["jit_compile"] == "on"
    assert summary.jit_compile is True and summary.replicas == 1
    assert "XLA" in summary.line()
    assert json.load(open(tmp_path / "run" / "summary.json"))["strategy"] == "default"


def test_cli_mistakes_are_one_clear_line(kerasgan, tmp_path, monkeypatch):
    result = kerasgan("train", "dcgan", "--strategy", "round-robin")
    assert result.returncode == 2 and "invalid choice: 'round-robin'" in result.stderr
    result = kerasgan("train", "dcgan", "--jit", "sometimes")
    assert result.returncode == 2 and "invalid choice: 'sometimes'" in result.stderr
    monkeypatch.setenv("TF_CONFIG", "{not json")
    result = kerasgan(
        "train", "dcgan", "--strategy", "multiworker", "--output", tmp_path / "run", "--no-export"
    )
    assert_one_clear_line(result, "TF_CONFIG is not valid JSON")
    own, peer = free_ports(2)
    monkeypatch.setenv("TF_CONFIG", tf_config(
        {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]}, {"type": "worker", "index": 0}
    ))
    monkeypatch.setattr(distribution, "PEER_TIMEOUT", 0.5)
    result = kerasgan(
        "train", "dcgan", "--strategy", "multiworker", "--output", tmp_path / "run", "--no-export"
    )
    assert_one_clear_line(result, f"no answer from worker 1 at 127.0.0.1:{peer} within 0.5 s")
    assert not (tmp_path / "run").exists()


MIRRORED_RUN = r"""
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kerasgan import training
# Twice in one process, as a notebook would: the second run reuses the first's strategy.
for model in ("dcgan", "wgan-gp"):
    summary = training.train(
        model, data="embedded", preset="tiny", epochs=1, batch_size=1000,
        output=f"{sys.argv[1]}-{model}", export=False, strategy="mirrored", jit_compile="off",
        verbose=0,
    )
    print(summary.line(), flush=True)
"""


def test_mirrored_uses_every_logical_cpu_without_a_gpu(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_RUN, str(tmp_path / "run")], capture_output=True,
        text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [line for line in result.stdout.splitlines() if "mirrored x2" in line]
    assert len(runs) == 2 and all("epoch 1/1" in line for line in runs), result.stdout


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_on_loopback_end_with_identical_weights(tmp_path):
    """`python -m kerasgan train dcgan --strategy multiworker` in two processes, one per task
    of a TF_CONFIG cluster on 127.0.0.1: an epoch of 4 steps of global batch 1,024. Both
    workers' checkpoints (weights, both optimizers' slots, epoch) must be equal bit for bit;
    the chief writes the run folder and exports, worker 1 keeps its own folder and does not."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    run, exports = tmp_path / "run", tmp_path / "exports"
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps(config)}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "kerasgan", "train", "dcgan", "--preset", "tiny",
             "--strategy", "multiworker", "--epochs", "1", "--batch-size", "1024",
             "--data", "embedded", "--jit", "off", "--output", str(run), "--export-dir", str(exports)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        ))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300))
    finally:
        for worker in workers:
            worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
        assert "multiworker x2" in stdout, stdout
    assert "exported to" in outputs[0][0] and "not exported" in outputs[1][0]
    assert os.listdir(exports / "dcgan") == ["1"]

    chief = tf.train.load_checkpoint(str(run / "checkpoints"))
    other = tf.train.load_checkpoint(str(run / "workers" / "worker1" / "checkpoints"))
    names = chief.get_variable_to_shape_map()
    assert names == other.get_variable_to_shape_map()
    assert sum(name.startswith("variables/d_optimizer") for name in names) > 2
    for name in names:
        np.testing.assert_array_equal(chief.get_tensor(name), other.get_tensor(name), err_msg=name)
    assert chief.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 1
