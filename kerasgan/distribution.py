"""Training on several devices or machines with `tf.distribute`, and XLA compilation.

**Data parallelism.** A `tf.distribute` strategy keeps one copy (a *replica*) of every variable
on each device and splits each global batch between them. Every replica runs the same
`train_step` on its slice; the gradients are then summed across replicas (an all-reduce) and
every copy applies the same update, so the copies never drift apart. Two details make that sum
the gradient of the whole batch, and `kerasgan.models.gan.GAN` takes care of both:

* losses are averaged over the *global* batch (`tf.nn.compute_average_loss`): with a plain mean
  per replica, the summed gradient would be the replica count times too large;
* batch normalization normalizes with the statistics of the batch it sees. By default that is a
  replica's slice, so two replicas train a (slightly) different model than one device on the
  same batch. `synchronize_batch_norm` makes the layers all-reduce their statistics instead
  (*cross-replica* batch norm, as BigGAN trains), so that the model does not depend on the
  number of devices; `kerasgan.training.train` does it whenever there is more than one replica.

Strategies (`make_strategy`):

* `default`: no distribution, one device.
* `mirrored`: every GPU of this machine (`MirroredStrategy`), or its CPU when there is none.
* `multiworker`: several machines (or processes), each with its `TF_CONFIG` environment
  variable naming the cluster and its own task (`MultiWorkerMirroredStrategy`). Every worker
  runs the same command; the chief (worker 0) writes the run folder and the export, the other
  workers keep their checkpoints in `<run folder>/workers/worker<k>` (saving is collective).
* `tpu`: a Cloud TPU (`TPUStrategy`), where one is attached.

**XLA.** `jit_compile=True` compiles the whole training step with XLA, which fuses operations
and pays off on GPUs and TPUs. On CPUs it can be slower than TensorFlow's graph mode, whose
convolutions go through oneDNN: `benchmarks/speed.py` measures it per model, and each recipe's
`jit_compile_cpu` records the faster choice. Keras compiles the step of all replicas as one XLA
cluster, so XLA and a multi-replica strategy do not mix (`check_options`).
"""

import json
import os

import keras
import tensorflow as tf

from kerasgan.errors import ConfigError
from kerasgan.precision import has_gpu

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
JIT_CHOICES = ("auto", "on", "off")

# Strategies made so far, by name and devices (or cluster). A process gets one of each: a second
# `MirroredStrategy` over the same devices reuses its collective keys and can abort the process,
# and a second `MultiWorkerMirroredStrategy` cannot be created at all. So training twice in a
# notebook with `strategy="mirrored"` must hand back the first one.
_MADE = {}


def make_strategy(name="default"):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    `multiworker` must be created before TensorFlow runs its first operation (it configures the
    process's collective operations), so create the strategy first, then load data and build
    models in its `scope()`.

    Before creating a multi-worker strategy, every other task of `TF_CONFIG`'s cluster must
    accept connections within `PEER_TIMEOUT` seconds (see `wait_for_peers`): TensorFlow itself
    would wait for a missing worker forever.

    Raises:
        ConfigError: for an unknown name, a malformed `TF_CONFIG` (not JSON, no cluster or task,
            an unknown task type, an index out of range, an address that is not host:port), a
            peer that does not answer, a multi-worker strategy asked for too late, or no TPU.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every GPU; without one, every logical CPU (one, unless the process split its CPU
        # with `tf.config.set_logical_device_configuration`, as the tests do).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        devices = tuple(device.name for device in devices)
        key = (name, devices)
        if key not in _MADE:
            _MADE[key] = tf.distribute.MirroredStrategy(list(devices))
        return _MADE[key]
    if name == "multiworker":
        config = _check_tf_config()
        key = (name, os.environ.get("TF_CONFIG", ""))
        if key not in _MADE:
            if config is not None:
                wait_for_peers(*config)
            try:
                _MADE[key] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as error:
                raise ConfigError(
                    "the multiworker strategy must be chosen before TensorFlow runs anything; "
                    f"start a fresh process ({error})"
                ) from None
        return _MADE[key]
    return _tpu_strategy()


# Jobs of a TF_CONFIG cluster that the multi-worker strategy trains with.
TRAINING_JOBS = ("chief", "worker")
# How long a multi-worker task waits for every other task to answer before giving up, in
# seconds. Workers are often started by hand on several machines, one after the other; without
# a bound, TensorFlow waits for a missing one forever.
PEER_TIMEOUT = 300.0

_EXAMPLE = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'


def _check_tf_config():
    """The cluster and task of `TF_CONFIG` as `(cluster, task type, index)`, checked, or None
    when it is unset (a cluster of one); a ConfigError naming what is wrong otherwise."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}); it looks like {_EXAMPLE}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object like {_EXAMPLE}")
    for key in ("cluster", "task"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f'TF_CONFIG has no "{key}" object; it looks like {_EXAMPLE}')
    cluster, task = config["cluster"], config["task"]
    if not cluster or not all(
        isinstance(addresses, list) and addresses for addresses in cluster.values()
    ):
        raise ConfigError(
            'TF_CONFIG\'s cluster must map job names to lists of "host:port" addresses, '
            f"got {json.dumps(cluster)}"
        )
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise ConfigError(
            f"TF_CONFIG's task type {task_type!r} is not a job of its cluster "
            f"({', '.join(cluster)})"
        )
    if task_type not in TRAINING_JOBS:
        raise ConfigError(
            "the multiworker strategy trains with 'chief' and 'worker' tasks, "
            f"not {task_type!r}"
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"TF_CONFIG's task index must be a whole number, got {index!r}")
    if not 0 <= index < len(cluster[task_type]):
        count = len(cluster[task_type])
        raise ConfigError(
            f"TF_CONFIG's task index {index} is out of range: the cluster has {count} "
            f"{task_type} task{'s' if count > 1 else ''} (0 to {count - 1})"
        )
    for job in TRAINING_JOBS:
        for position, address in enumerate(cluster.get(job, ())):
            _host_and_port(address, f"TF_CONFIG's {job} {position}")
    return cluster, task_type, index


def _host_and_port(address, name):
    host, _, port = str(address).rpartition(":")
    if not isinstance(address, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} address {address!r} is not host:port")
    return host.strip("[]"), int(port)  # [::1]:2222 -> ::1


def wait_for_peers(cluster, task_type, index, timeout=None):
    """Wait until every other training task of the cluster accepts connections, or give up.

    TensorFlow's multi-worker strategy waits for missing peers without a bound. This
    pre-flight knocks at each peer's port (a TCP connect, nothing sent) until all have
    answered, within `timeout` seconds. Meanwhile this task listens at its own port, so that
    peers running the same pre-flight see it too; it lets the port go before TensorFlow takes
    it.

    Args:
        cluster: TF_CONFIG's cluster, `{job: ["host:port", ...]}`.
        task_type: this task's job, `"chief"` or `"worker"`.
        index: this task's index in its job.
        timeout: seconds to wait at most (default: `PEER_TIMEOUT`).

    Raises:
        ConfigError: this task's port is in use, or a peer did not answer in time.
    """
    import socket
    import time

    timeout = PEER_TIMEOUT if timeout is None else timeout
    tasks = [(job, i) for job in TRAINING_JOBS for i in range(len(cluster.get(job, ())))]
    peers = [(job, i) for job, i in tasks if (job, i) != (task_type, index)]
    if not peers:
        return
    own_host, own_port = _host_and_port(cluster[task_type][index], "")
    listener = socket.socket(socket.AF_INET6 if ":" in own_host else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("", own_port))
        except OSError as error:
            raise ConfigError(
                f"port {own_port} of {task_type} {index} ({cluster[task_type][index]}) is in "
                f"use ({error.strerror or error}); is this task already running?"
            ) from None
        listener.listen()
        deadline = time.monotonic() + timeout
        while peers:
            job, i = peers[0]
            address = cluster[job][i]
            left = deadline - time.monotonic()
            try:
                # Each knock is short, so that the deadline holds even for a silent host.
                with socket.create_connection(
                    _host_and_port(address, ""), timeout=min(max(left, 0.01), 2.0)
                ):
                    peers.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"no answer from {job} {i} at {address} within {timeout:g} s; start every "
                    "task of TF_CONFIG's cluster (the same command, each with its own task "
                    "index), and check the addresses and the firewall"
                )
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
    finally:
        listener.close()


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError):
        raise ConfigError("no TPU found; choose --strategy default or mirrored") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process should write files (always, except on non-chief workers)."""
    return bool(strategy.extended.should_checkpoint)


def worker_name(strategy):
    """`worker1` on the second worker of a multi-worker cluster, None on a single process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None
    return f"{resolver.task_type}{resolver.task_id}"


def check_options(strategy, batch_size, time_budget=None, jit_compile=False):
    """Raise a `ConfigError` for training options the strategy cannot honour.

    * The global batch must split evenly between the replicas: `tf.nn.compute_average_loss`
      divides by `per-replica batch x replicas`, which is otherwise not the global batch.
    * A time budget cannot stop several workers: each would stop after a different step and
      the others would wait for it forever in the next all-reduce.
    * XLA cannot compile a step that spans several replicas: Keras compiles the step of all
      replicas as one XLA cluster, which may not touch variables on other devices.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ConfigError(
            f"the batch size ({batch_size}) must be a multiple of the number of replicas "
            f"({replicas}): each replica trains on an equal slice of the batch"
        )
    if jit_compile is True and replicas > 1:
        raise ConfigError(
            f"XLA cannot compile a training step spread over {replicas} replicas; "
            "use --jit off (or auto) with this strategy"
        )
    if time_budget and num_workers(strategy) > 1:
        raise ConfigError(
            "--time-budget cannot stop several workers at the same step; use --epochs alone "
            "with --strategy multiworker"
        )


def num_workers(strategy):
    """How many processes (chief and workers) train together: 1 unless multi-worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return max(1, sum(len(jobs.get(job, ())) for job in ("chief", "worker")))


def synchronize_batch_norm(model):
    """Make every `BatchNormalization` inside `model` use cross-replica batch statistics.

    Under a strategy with several replicas the mean and variance are then computed over the
    global batch (one all-reduce per layer and step), exactly as on one device; with one replica
    nothing changes. Layers nested in sub-models and in custom layers (e.g. the conditional
    batch norm of BigGAN) are included.

    Returns:
        The number of layers switched.
    """
    layers = [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def prepare_model(model, strategy):
    """Adapt a model built in `strategy.scope()` to the strategy before training it.

    * Several replicas: cross-replica batch norm (`synchronize_batch_norm`).
    * Several workers: the step's logs leave each replica as `[1]` vectors. Keras 3 averages
      them over the workers with `strategy.reduce("MEAN", logs, axis=0)`, which fails on the
      scalars a `train_step` returns ("Invalid reduction dimension 0 for input with 0
      dimensions", tensorflow/tensorflow#72388); the average of the vectors is a scalar again.
    """
    if strategy.num_replicas_in_sync > 1:
        synchronize_batch_norm(model)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        train_step = model.train_step

        def train_step_with_vector_logs(data):
            return {name: keras.ops.reshape(value, (1,)) for name, value in train_step(data).items()}

        model.train_step = train_step_with_vector_logs


def resolve_jit(choice, cpu_default, replicas=1):
    """`jit_compile` for `Model.compile` from a `JIT_CHOICES` value.

    Args:
        choice: `"on"`, `"off"` or `"auto"` (or a bool, returned as it is).
        cpu_default: what `auto` means without a GPU (the recipe's measured `jit_compile_cpu`).
        replicas: the strategy's replica count; `auto` means off with more than one (see
            `check_options`).

    Returns:
        True, False, or `"auto"` (on a GPU: Keras compiles with XLA where every layer supports it).
    """
    if isinstance(choice, bool):
        return choice
    if choice not in JIT_CHOICES:
        raise ConfigError(f"unknown jit choice {choice!r}; choose one of: {', '.join(JIT_CHOICES)}")
    if choice != "auto":
        return choice == "on"
    if replicas > 1:
        return False
    if has_gpu():
        return "auto"
    return bool(cpu_default)
