"""The base GAN's step under tf.distribute: two replicas give the same update as one device.

Run in a subprocess, because logical devices must be configured before TensorFlow starts.
Latents come from the data, so both runs draw the same z; the toy GAN has no batch norm (whose
per-replica batch statistics legitimately differ from the global batch's). Adam is tested as well as
SGD: its slot variables must exist before the first distributed step (`GAN.compile` builds them).
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from kerasgan.models.toy import ToyGAN

import threading
# Per-step state kept off the model (Keras tracks attributes set on it) and per thread
# (MirroredStrategy traces the replicas concurrently, one thread each).
fed = threading.local()

class FedLatents(ToyGAN):
    # Latents arrive with the batch: (points, z for D, z for G), used in call order.
    def train_step(self, data):
        fed.latents = [data[1], data[2]]
        return super().train_step(data[0])
    def sample_latent(self, batch_size):
        return fed.latents.pop(0)

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "adam": lambda: keras.optimizers.Adam(1e-3, beta_1=0.5),
}

def one_step(strategy, ema):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        base = ToyGAN.build(width=16, depth=2, seed=0)
        gan = FedLatents(base.generator, base.discriminator, latent_dim=2, seed=0, ema_decay=ema)
        make = OPTIMIZERS[sys.argv[1]]
        gan.compile(g_optimizer=make(), d_optimizer=make())
    rng = np.random.default_rng(0)
    data = tuple(rng.standard_normal((8, 2)).astype("float32") for _ in range(3))
    gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(8), epochs=1, verbose=0)
    weights = gan.generator.get_weights() + gan.discriminator.get_weights()
    if ema:
        weights += gan.generator_ema.get_weights()
    return [np.asarray(w) for w in weights]

for ema in (None, 0.5):
    single = one_step(tf.distribute.OneDeviceStrategy("/cpu:0"), ema)
    mirrored = one_step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), ema)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored))
    assert len(single) == len(mirrored)
    print(f"ema={ema} max difference {worst:.2e}")
    assert worst < 1e-5, worst
print("OK")
"""


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mirrored_step_equals_the_single_device_step_on_the_global_batch(optimizer):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, optimizer], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]


# === Every course model: a mirrored step on two logical CPUs == the single-device step ===

MODELS_SCRIPT = r"""
import sys
import threading
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from kerasgan.distribution import synchronize_batch_norm
from kerasgan.models.biggan import BigGAN
from kerasgan.models.conditional_gan import ConditionalGAN
from kerasgan.models.cyclegan import CycleGAN
from kerasgan.models.dcgan import DCGAN
from kerasgan.models.stylegan import StyleGAN
from kerasgan.models.wgan_gp import WGANGP

BATCH, REPLICAS = 8, 2
rng = np.random.default_rng(0)

def images(size, channels):
    return rng.uniform(-1, 1, (BATCH, size, size, channels)).astype("float32")

LABELS = (np.arange(BATCH) % 10).astype("int32")
MODELS = {
    "dcgan": (lambda: DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0), images(28, 1)),
    # The first update is an R1 update (iteration 0); several replicas take the `ops.where` branch.
    "dcgan-r1": (lambda: DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0, r1_gamma=1.0,
                                           r1_interval=4), images(28, 1)),
    "cgan": (lambda: ConditionalGAN.from_preset("tiny", image_size=28, channels=1, seed=0),
             (images(28, 1), LABELS)),
    "wgan-gp": (lambda: WGANGP.from_preset("tiny", image_size=28, channels=1, seed=0), images(28, 1)),
    "cyclegan": (lambda: CycleGAN.from_preset("tiny", image_size=16, channels=1, seed=0),
                 (images(16, 1), images(16, 1))),
    "stylegan": (lambda: StyleGAN.from_preset("tiny", image_size=16, channels=3, seed=0,
                                              mixing_probability=0.0), images(16, 3)),
    "biggan": (lambda: BigGAN.from_preset("tiny", image_size=32, channels=3, seed=0),
               (images(32, 3), LABELS)),
}

# Replica r holds examples r, r + R, r + 2R, ... of the global batch (see the test's docstring).
ORDER = np.arange(BATCH).reshape(-1, REPLICAS).T.ravel()

# The k-th random draw of a traced step uses the stateless seed (0, k). A replica drawing n
# rows draws the R * n rows one device draws for the whole batch and keeps rows r, r + R, ...
draws = threading.local()  # per thread: MirroredStrategy traces each replica in its own

def replicated(sample):
    def draw(shape, *args, seed=None, **kwargs):
        index = getattr(draws, "count", 0)
        draws.count = index + 1
        shape = tuple(shape)
        if not shape:
            return sample(shape, (0, index), *args, **kwargs)
        context = tf.distribute.get_replica_context()
        replicas, replica = context.num_replicas_in_sync, context.replica_id_in_sync_group
        full = sample((shape[0] * replicas, *shape[1:]), (0, index), *args, **kwargs)
        return tf.gather(full, tf.range(shape[0]) * replicas + replica)
    return draw

def normal(shape, seed, mean=0.0, stddev=1.0, dtype=None):
    return tf.random.stateless_normal(shape, seed, mean, stddev, dtype=dtype or "float32")

def uniform(shape, seed, minval=0.0, maxval=1.0, dtype=None):
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype or "float32")

def randint(shape, seed, minval, maxval, dtype="int32"):
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)

keras.random.normal = replicated(normal)
keras.random.uniform = replicated(uniform)
keras.random.randint = replicated(randint)

def state(gan):
    # Replica-local variables (CycleGAN's image pools and preview) legitimately differ.
    return {v.path: np.array(v.numpy()) for v in gan.weights if v.synchronization != "on_read"}

def one_step(name, strategy):
    build, data = MODELS[name]
    keras.utils.set_random_seed(0)
    with strategy.scope():
        gan = build()
        synchronize_batch_norm(gan)
        # CycleGAN has an optimizer per network; the others one for G and one for D.
        names = (("g_optimizer", "f_optimizer", "d_a_optimizer", "d_b_optimizer")
                 if name == "cyclegan" else ("g_optimizer", "d_optimizer"))
        gan.compile(**{optimizer: keras.optimizers.SGD(0.01) for optimizer in names})
    if strategy.num_replicas_in_sync > 1:
        data = tuple(d[ORDER] for d in data) if isinstance(data, tuple) else data[ORDER]
    before = state(gan)
    draws.count = 0
    gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(BATCH, drop_remainder=True),
            epochs=1, verbose=0)
    return before, state(gan), gan

def compare(name):
    before, single, _ = one_step(name, ONE_DEVICE)
    _, mirrored, gan = one_step(name, MIRRORED)
    if name == "cyclegan":
        # Pools and preview pairs are per replica; read outside, they show the first replica's.
        pooled, previewed = int(gan.pool_a.count.numpy()), int(gan.preview_filled.numpy())
        assert (pooled, previewed) == (BATCH // REPLICAS, 2), (pooled, previewed)
    assert single.keys() == mirrored.keys()
    steps = {path: np.abs(single[path] - before[path]).max(initial=0.0) for path in single}
    largest = max(steps.values())
    worst, where = 0.0, None
    for path in single:
        gap = np.abs(mirrored[path] - single[path]).max(initial=0.0)
        scale = np.abs(before[path]).max(initial=0.0)
        ratio = gap / (1e-2 * steps[path] + 1e-6 * (largest + scale))
        if ratio > worst:
            worst, where = ratio, path
    verdict = "ok" if worst <= 1.0 and largest > 0 else "different"
    return f"{verdict} {len(single)} variables, worst gap {worst:.2f} of tolerance at {where}"

# One strategy object of each kind, shared by every model named on the command line: a second
# MirroredStrategy in the same process reuses collective keys and aborts. (The tests name one
# model per process; several names are for running the script by hand.)
ONE_DEVICE = tf.distribute.OneDeviceStrategy("/cpu:0")
MIRRORED = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
for name in sys.argv[1:]:
    try:
        result = compare(name)
    except Exception as error:
        result = f"error {type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
    print(f"RESULT {name} {result}", flush=True)
"""

MODEL_NAMES = ("dcgan", "dcgan-r1", "cgan", "wgan-gp", "cyclegan", "stylegan", "biggan")


def mirrored_model_step(model):
    """Run one model's comparison in its own subprocess: the text of its `RESULT` line (None
    when there is none), and stderr's tail.

    One subprocess per test, not one for all models: pytest-xdist would run a module-scoped
    fixture once on every worker, each doing every model's comparison."""
    result = subprocess.run(
        [sys.executable, "-c", MODELS_SCRIPT, model], capture_output=True, text=True,
        timeout=600, env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    prefix = f"RESULT {model} "
    verdicts = [line[len(prefix):] for line in result.stdout.splitlines() if line.startswith(prefix)]
    return (verdicts[0] if verdicts else None), result.stderr[-3000:]


@pytest.mark.parametrize(
    "model",
    MODEL_NAMES,
)
def test_every_model_mirrored_step_equals_the_single_device_step(model):
    """One `fit` step of each model's tiny configuration on two logical CPUs under
    `MirroredStrategy` leaves every variable where one device puts it on the same global batch
    of 8: the losses (and penalties, regularisers, EMA and `w_avg` updates) are reduced over
    the global batch, not per replica.

    What makes the two runs comparable, and why it is fair:

    * Batch norm is switched to cross-replica statistics (`synchronize_batch_norm`, which
      `train` applies under several replicas); per-replica statistics legitimately differ.
    * Randomness: `keras.random.normal/uniform/randint` are replaced by stateless draws keyed by
      their order in the step. A draw of n rows on a replica is the matching rows of the draw
      one device makes for the whole batch (latents, WGAN-GP's interpolation coefficients,
      StyleGAN's noise maps); scalar draws are the same everywhere.
    * Replica r holds examples r, r+2, r+4, ... of the batch: that is how one device groups
      examples in StyleGAN's minibatch-stddev layer (example n in group n % groups) and in
      WGAN-GP's critic slices, so each group sees the same examples in both runs.
    * StyleGAN's style mixing is off: it pairs each example with its neighbour in the
      (per-replica) batch, which no layout can reproduce.
    * CycleGAN's image pools are still filling on the first step (fakes pass through
      unchanged); pools and preview images are per-replica state and are not compared.
    * DCGAN is checked twice: as the paper's game and with lazy R1 (its CPU settings), whose
      penalty is reduced over the global batch too.
    * SGD, not Adam: Adam's first step is nearly invariant to the gradient's scale, so it
      would hide a loss averaged per replica instead of over the global batch.

    Tolerance: per variable, 1% of its update plus 1e-6 of the largest update and of its own
    magnitude. Rounding stays below ~0.1% here; a per-replica mean or per-replica batch norm
    moves weights by hundreds of times the tolerance.
    """
    verdict, stderr = mirrored_model_step(model)
    assert verdict is not None, f"no result for {model}:\n{stderr}"
    assert verdict.startswith("ok"), verdict
