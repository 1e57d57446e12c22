"""The base GAN's step under tf.distribute: two replicas give the same update as one device.

Run in a subprocess, because logical devices must be configured before TensorFlow starts.
Latents come from the data, so both runs draw the same z; the toy GAN has no batch norm (whose
per-replica batch statistics legitimately differ from the global batch's).
"""

import os
import subprocess
import sys

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
    def unpack_batch(self, data):
        fed.latents = [data[1], data[2]]
        return data[0], None
    def sample_latent(self, batch_size):
        return fed.latents.pop(0)

def one_step(strategy, ema):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        base = ToyGAN.build(width=16, depth=2, seed=0)
        gan = FedLatents(base.generator, base.discriminator, latent_dim=2, seed=0, ema_decay=ema)
        gan.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
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


def test_mirrored_step_equals_the_single_device_step_on_the_global_batch():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]
