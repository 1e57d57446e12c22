"""The notebooks' settings per machine (`course.hardware`, `course.notebook_settings`) and the
times the notebooks, the README and the settings table state: one source of truth, checked."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import course, datasets, recipes, training
from kerasgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
TRAINING_NOTEBOOKS = sorted(n for n, plan in course.NOTEBOOKS.items() if plan.model)

CPU = course.Hardware(kind="cpu", devices=("a test CPU",), amx_bf16=False, cpu_cores=2)
GPU = course.Hardware(kind="gpu", devices=("a test GPU",), amx_bf16=False, cpu_cores=2)


def notebook_path(number):
    (name,) = [n for n in os.listdir(NOTEBOOK_DIR) if n.startswith(f"{number}_") and n.endswith(".ipynb")]
    return os.path.join(NOTEBOOK_DIR, name)


def cells(number, kind=None):
    with open(notebook_path(number), encoding="utf-8") as handle:
        return [
            "".join(cell["source"]) for cell in json.load(handle)["cells"]
            if kind in (None, cell["cell_type"])
        ]


def stated_minutes(text):
    """The full-mode CPU minutes a header or README cell states: "under a minute" and "< 1 min"
    are 1; a range ("about 3–4 minutes") counts by its upper end."""
    text = text.strip()
    if re.match(r"(under|less than) a minute|< ?1 min", text):
        return 1
    match = re.match(r"(?:about |~)(?:\d+\s*[–-]\s*)?(\d+) min", text)
    assert match, f"no time in {text!r}"
    return int(match.group(1))


def header_cpu_minutes(number):
    """What notebook `number`'s first cell says a 2-core CPU takes in full mode."""
    header = cells(number)[0]
    match = re.search(r"\*\*Time:\*\*\s*(.*?)\s+on a 2-core CPU", header, re.S)
    assert match, f"notebook {number}: its first cell states no CPU time ('**Time:** ... on a 2-core CPU')"
    return stated_minutes(" ".join(match.group(1).split()))


def readme_course_rows():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("## The course", 1)[1]
    lines = section.splitlines()
    header = next(line for line in lines if line.startswith("| # |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        values = [c.strip() for c in line.strip("|").split("|")]
        rows[values[0]] = dict(zip(columns, values))
    paragraph = "\n".join(lines[lines.index(header) + 2 + len(rows):]).strip().split("\n\n")[0]
    return columns, rows, paragraph


# === Hardware detection ===


def fake_devices(kinds):
    def list_physical_devices(device_type=None):
        return [
            tf.config.PhysicalDevice(name=f"/physical_device:{kind}:0", device_type=kind)
            for kind in kinds if device_type in (None, kind)
        ]
    return list_physical_devices


def test_hardware_is_a_gpu_when_tensorflow_lists_one(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", fake_devices(["CPU", "GPU"]))
    found = course.hardware()
    assert found.kind == "gpu"
    assert found.devices == ("/physical_device:GPU:0",)  # a fake device has no details: its name
    assert "gpu" in found.describe()


def test_hardware_is_the_cpu_without_a_gpu_and_reports_amx(monkeypatch):
    from kerasgan import precision

    monkeypatch.setattr(tf.config, "list_physical_devices", fake_devices(["CPU"]))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda *args: True)
    found = course.hardware()
    assert found.kind == "cpu" and found.amx_bf16 is True
    assert found.devices and found.cpu_cores >= 1
    assert "AMX bfloat16" in found.describe()


def test_notebook_settings_follow_the_detected_hardware(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", fake_devices(["CPU", "GPU"]))
    settings = course.notebook_settings("04", smoke=False)
    assert settings.mode == "gpu" and settings.precision_policy == "mixed_float16"
    monkeypatch.setattr(tf.config, "list_physical_devices", fake_devices(["CPU"]))
    assert course.notebook_settings("04", smoke=False).mode == "cpu"


def test_smoke_mode_wins_over_the_hardware(monkeypatch):
    monkeypatch.setenv("KERASGAN_SMOKE", "1")
    for number in TRAINING_NOTEBOOKS:
        settings = course.notebook_settings(number, hardware_info=GPU)
        assert settings.mode == "smoke" and settings.smoke
        assert settings.preset == "tiny", number
        assert settings.time_budget is not None and settings.time_budget <= 20, number


def test_a_chosen_mode_overrides_the_detection():
    assert course.notebook_settings("02", smoke=False, mode="cpu", hardware_info=GPU).mode == "cpu"
    assert course.notebook_settings("02", smoke=False, mode="gpu", hardware_info=CPU).mode == "gpu"


def test_unknown_notebook_or_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="no settings for notebook '99'"):
        course.notebook_settings("99", hardware_info=CPU)
    with pytest.raises(ConfigError, match="unknown mode 'tpu'"):
        course.notebook_settings("02", mode="tpu", hardware_info=CPU)


def test_settings_describe_the_hardware_and_the_choice():
    text = course.notebook_settings("02", smoke=False, hardware_info=GPU).describe()
    assert "hardware: gpu: a test GPU" in text
    assert "notebook 02, gpu settings" in text and "mixed_float16" in text and "300 s" in text


# === GPU settings: the full configuration, one step each ===


@pytest.mark.parametrize("number", TRAINING_NOTEBOOKS)
def test_gpu_settings_scale_up_and_use_float16(number):
    gpu = course.notebook_settings(number, smoke=False, hardware_info=GPU)
    cpu = course.notebook_settings(number, smoke=False, hardware_info=CPU)
    assert gpu.precision_policy == "mixed_float16"
    assert gpu.preset not in ("tiny",) and gpu.preset == cpu.preset
    assert gpu.batch_size > cpu.batch_size
    assert gpu.time_budget >= cpu.time_budget
    recipe = recipes.get_recipe(gpu.model)
    if recipe.dataset in datasets.TFDS_NAMES and number != "10":
        # The full dataset through tensorflow-datasets (the embedded copy offline).
        assert gpu.data in ("auto", "tfds"), number


def one_small_batch(recipe, settings, size):
    """A few real embedded images (or pairs) shaped as the GPU run's data, and their shape."""
    if recipe.load_data is not None:
        dataset = recipe.load_data("embedded", settings.image_size, None)
    else:
        dataset = datasets.load(recipe.dataset, source="embedded", with_labels=recipe.with_labels)
    if recipe.image_shape is not None:
        height, depth = recipe.image_shape(dataset)
    else:
        spec = dataset.element_spec[0] if recipe.with_labels else dataset.element_spec
        height, _, depth = spec.shape
    batch = next(iter(dataset.batch(size, drop_remainder=True)))
    return batch, int(height), int(depth)


@pytest.mark.parametrize("number", TRAINING_NOTEBOOKS)
def test_gpu_settings_build_their_model_and_train_one_step(number):
    settings = course.notebook_settings(number, smoke=False, hardware_info=GPU)
    recipe = recipes.get_recipe(settings.model)
    # The GPU run's preset, in float32: mixed_float16 has no fast kernels on this CPU.
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    # 10 images: a multiple of WGAN-GP's 5 critic slices, as the GPU batch must be too.
    batch, height, depth = one_small_batch(recipe, settings, 10)
    assert settings.batch_size % 5 == 0 or settings.model != "wgan-gp"
    gan = recipe.build(settings.preset, height, depth, 0)
    gan.compile()
    # `fit` on a one-batch dataset: one step, each model's batch structure left as it is.
    history = gan.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    logs = {key: values[-1] for key, values in history.items()}
    losses = {k: v for k, v in logs.items() if k.endswith("loss")}
    assert losses, logs
    assert all(np.isfinite(float(v)) for v in losses.values()), logs


# === Stated times: the table, the notebooks' first cells and the README agree ===


@pytest.mark.parametrize("number", TRAINING_NOTEBOOKS)
def test_cpu_training_is_bounded_by_a_budget_within_the_stated_time(number):
    settings = course.notebook_settings(number, smoke=False, hardware_info=CPU)
    stated = header_cpu_minutes(number)
    assert course.NOTEBOOKS[number].cpu_minutes == stated, (
        f"notebook {number} states {stated} min on a CPU, course.NOTEBOOKS says "
        f"{course.NOTEBOOKS[number].cpu_minutes}"
    )
    assert settings.time_budget is not None, f"notebook {number}: CPU training has no time budget"
    assert settings.time_budget < stated * 60, f"notebook {number}: budget exceeds its stated time"


@pytest.mark.parametrize("number", sorted(course.NOTEBOOKS))
def test_notebook_header_states_the_tables_cpu_time(number):
    assert header_cpu_minutes(number) == course.NOTEBOOKS[number].cpu_minutes, (
        f"notebook {number}'s first cell and course.NOTEBOOKS disagree on its CPU time"
    )


def test_readme_cpu_column_matches_the_notebook_headers():
    columns, rows, _ = readme_course_rows()
    assert "CPU, full" in columns
    numbers = sorted(n[:2] for n in os.listdir(NOTEBOOK_DIR) if n.endswith(".ipynb"))
    assert sorted(rows) == numbers
    differ = [
        f"{number}: README {rows[number]['CPU, full']!r}, notebook {header_cpu_minutes(number)} min"
        for number in numbers
        if stated_minutes(rows[number]["CPU, full"]) != header_cpu_minutes(number)
    ]
    assert not differ, "README course table and notebook headers differ: " + "; ".join(differ)


def test_readme_gpu_column_is_an_estimate_and_says_so():
    columns, rows, paragraph = readme_course_rows()
    assert "GPU (estimate)" in columns
    assert "estimate" in paragraph and "course.NOTEBOOKS" in paragraph
    for number, plan in course.NOTEBOOKS.items():
        assert stated_minutes(rows[number]["GPU (estimate)"]) == plan.gpu_minutes, number


@pytest.mark.parametrize("number", sorted(course.NOTEBOOKS))
def test_notebook_header_states_the_gpu_promise(number):
    header = " ".join(cells(number)[0].split())
    assert course.NOTEBOOKS[number].gpu_promise in header, (
        f"notebook {number}'s first cell does not say what its GPU settings buy"
    )


# === The notebooks take their numbers from the table ===


@pytest.mark.parametrize("number", sorted(course.NOTEBOOKS))
def test_notebook_parameters_come_from_the_table_and_are_printed(number):
    sources = cells(number, "code")
    parameters = [s for s in sources if f'course.notebook_settings("{number}")' in s]
    assert len(parameters) == 1, f"notebook {number}: one parameters cell asks course.notebook_settings"
    assert "KERASGAN_SMOKE" in parameters[0]
    assert any("SETTINGS.describe()" in s for s in sources), f"notebook {number} prints its settings"
    trains = [s for s in sources if "training.train(" in s]
    for source in trains:
        assert "**SETTINGS.train_options()" in source, f"notebook {number} trains with other numbers"
        assert "SETTINGS.report(summary)" in source, f"notebook {number}: print the data and budget"
    assert bool(trains) == (course.NOTEBOOKS[number].model is not None), number


def test_report_names_the_data_auto_chose_and_the_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = course.notebook_settings("02", smoke=True, hardware_info=CPU)
    options = {**settings.train_options(), "epochs": 1, "time_budget": 3}
    summary = training.train("dcgan", **options, output="run", export=False, verbose=0)
    line = settings.report(summary)
    # Offline (the tests), `auto` resolves to the embedded sample.
    assert line.startswith("data: embedded (asked for auto); time budget: 3 s"), line
    steps = "1 step" if summary.steps == 1 else f"{summary.steps:,} steps"
    assert f"; {summary.epochs_done} of 1 epoch ({steps} this run), " in line
    assert line.endswith("stopped by the time budget" if summary.stopped_by else "all epochs done"), line
