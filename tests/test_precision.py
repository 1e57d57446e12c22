"""Choosing the precision policy (each model under each policy: tests/models/gan_battery.py)."""

import keras
import pytest

from kerasgan import precision
from kerasgan.errors import ConfigError

AMX_CPU = "flags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
BF16_ONLY_CPU = "flags\t\t: fpu sse2 avx512f avx512_bf16 avx512_fp16\n"


@pytest.fixture
def hardware(monkeypatch):
    """`hardware(gpu_float16=..., amx=...)`: what `auto` sees, with no environment override."""
    monkeypatch.delenv("KERASGAN_PRECISION", raising=False)

    def pretend(gpu_float16=False, amx=False, gpu=None):
        gpu = gpu_float16 if gpu is None else gpu
        monkeypatch.setattr(precision, "gpu_supports_float16", lambda: gpu_float16)
        monkeypatch.setattr(precision, "cpu_has_bf16", lambda: amx)
        monkeypatch.setattr(
            precision.tf.config, "list_physical_devices",
            lambda kind=None: ["/gpu:0"] if gpu and kind == "GPU" else [],
        )

    return pretend


@pytest.mark.parametrize(
    "gpu_float16, gpu, amx, chosen",
    [
        (True, True, True, "mixed_float16"),   # a tensor-core GPU wins
        (False, True, True, "float32"),        # an older GPU: float16 is not faster there
        (False, False, True, "mixed_bfloat16"),  # AMX on a CPU-only machine
        (False, False, False, "float32"),
    ],
)
def test_auto_follows_the_hardware(hardware, gpu_float16, gpu, amx, chosen):
    hardware(gpu_float16=gpu_float16, gpu=gpu, amx=amx)
    assert precision.resolve_policy("auto") == chosen


def test_explicit_policies_and_the_environment_override_auto(hardware, monkeypatch):
    hardware(amx=True)
    for name in precision.POLICIES[1:]:
        assert precision.resolve_policy(name) == name
    monkeypatch.setenv("KERASGAN_PRECISION", "float32")
    assert precision.resolve_policy("auto") == "float32"
    monkeypatch.setenv("KERASGAN_PRECISION", "float64")  # not a policy: ignored
    assert precision.resolve_policy("auto") == "mixed_bfloat16"


def test_an_unknown_policy_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown precision 'half'.*mixed_float16"):
        precision.resolve_policy("half")


def test_bfloat16_needs_amx_tiles_not_only_avx512_bf16(tmp_path):
    for text, expected in ((AMX_CPU, True), (BF16_ONLY_CPU, False)):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        assert precision.cpu_has_bf16(str(path)) is expected
    assert precision.cpu_has_bf16(str(tmp_path / "missing")) is False


def test_set_precision_sets_keras_global_policy(hardware):
    hardware()
    assert precision.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    assert precision.set_precision("auto") == "float32"
    assert keras.mixed_precision.dtype_policy().name == "float32"
