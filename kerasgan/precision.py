"""Choosing a numeric precision policy for training.

Keras runs a model in `float32` unless a *mixed* policy is set: layers then compute in a 16-bit
type while their variables stay float32, so updates keep full precision.

* `mixed_float16` is what GPUs with tensor cores (compute capability 7.0+) are fast at. float16's
  narrow exponent range makes small gradients underflow, so losses must be scaled (the GAN
  classes wrap both optimizers in `LossScaleOptimizer`).
* `mixed_bfloat16` keeps float32's exponent range (no loss scaling) and is what Intel CPUs
  with AMX tiles accelerate: there the convolution and matmul kernels run several times faster
  than in float32, though a whole small training step gains much less, since most of it is
  overhead around the kernels (figures in benchmarks/README.md). With AVX512-BF16 alone it was
  slower than float32 (`cpu_has_bf16`).

`auto` picks the fastest policy the machine supports.
"""

import os

import keras
import tensorflow as tf

from kerasgan.errors import ConfigError

POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU has AMX tiles for bfloat16 (`amx_bf16` among `cpuinfo`'s flags), where
    oneDNN runs bfloat16 convolutions and matmuls several times faster than float32.

    AVX512-BF16 alone is not enough: on a 2-core Xeon with `avx512_bf16` and no AMX, raw
    bfloat16 convolutions and matmuls ran at about half float32's GFLOP/s (`benchmarks/speed.py
    --part kernels`), and every course model trained at 0.60-0.75x its float32 speed under
    `mixed_bfloat16` (`benchmarks/speed.py`).
    """
    try:
        with open(cpuinfo) as handle:
            flags = handle.read().split()
    except OSError:
        return False
    return "amx_bf16" in flags


def has_gpu():
    """True when TensorFlow sees a GPU: the one test of "GPU machine" behind every `auto`
    (precision, XLA, steps per call, the recipes' CPU learning rates, model options and batch
    sizes)."""
    return bool(tf.config.list_physical_devices("GPU"))


def gpu_supports_float16():
    """True when a visible GPU has tensor cores (compute capability 7.0 or newer)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and capability >= (7, 0):
            return True
    return False


def resolve_policy(name="auto"):
    """The policy name `auto` stands for on this machine, or `name` itself once validated."""
    if name not in POLICIES:
        raise ConfigError(f"unknown precision {name!r}; choose one of: {', '.join(POLICIES)}")
    if name != "auto":
        return name
    if os.environ.get("KERASGAN_PRECISION") in POLICIES[1:]:
        return os.environ["KERASGAN_PRECISION"]
    if gpu_supports_float16():
        return "mixed_float16"
    if not has_gpu() and cpu_has_bf16():
        return "mixed_bfloat16"
    return "float32"


def set_precision(name="auto"):
    """Set Keras's global dtype policy (before building models). Returns the policy's name."""
    policy = resolve_policy(name)
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
