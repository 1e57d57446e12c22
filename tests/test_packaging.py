"""The wheel is the course: it carries the embedded data and declares what the course imports.

`pip install .` (not editable) or a wheel a teacher builds must run notebooks 00 and 05-09 and
`python -m kerasgan train ... --data embedded` with no checkout around it, so the wheel carries
the repository's `data/` folder (as `kerasgan/data/`) and its metadata declares every package
that `kerasgan/` and the notebooks import. The wheel is built once, offline, from a copy of the
sources (building in place would write `build/` and `kerasgan.egg-info/` into the checkout),
first the sdist, then the wheel from the sdist, as `python -m build` does.
`scripts/check_installed_wheel.py` goes further (a fresh venv, the CLI, notebook 00); it is too
slow for the suite.
"""

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from kerasgan import datasets

ROOT = Path(__file__).resolve().parent.parent
# What the build reads (pyproject.toml names README.md as the long description).
BUILD_INPUTS = ("pyproject.toml", "README.md", "kerasgan", "data")

# Imported modules whose distribution has another name, or comes with a declared one.
DISTRIBUTION_OF = {
    "PIL": "pillow",
    "IPython": "ipython",
    "google": "protobuf",
    "grpc": "grpcio",
    "tensorflow_serving": "tensorflow-serving-api",
    "tensorflow_datasets": "tensorflow-datasets",
}
# Imported directly but installed by a declared requirement that needs it (no pin of our own).
BROUGHT_BY = {
    "protobuf": "tensorflow",  # kerasgan.serving writes models.config with protobuf's text_format
    "grpcio": "tensorflow-serving-api",  # notebook 10's gRPC client
    "ipython": "ipykernel",  # callbacks' live plots in a notebook
}
# In the [course] extra but not in the learners' requirements.txt.
TEACHER_ONLY = {"nbgrader"}


def _normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _copy_build_inputs(dest):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """An sdist built from the current sources (offline, with the installed setuptools)."""
    source = tmp_path_factory.mktemp("source")
    _copy_build_inputs(source)
    out = tmp_path_factory.mktemp("sdist")
    result = subprocess.run(
        [sys.executable, "-c",
         f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("kerasgan-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory):
    """The wheel built from the sdist, as `python -m build` and `pip install <sdist>` do."""
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(sdist), "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out)],
        cwd=out, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("kerasgan-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


@pytest.fixture(scope="module")
def requires(metadata):
    """`{extra or "": {normalized name: Requirement}}` from the wheel's Requires-Dist."""
    by_extra = {}
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        extra = ""
        if requirement.marker is not None:
            match = re.search(r'extra\s*==\s*"([^"]+)"', str(requirement.marker))
            extra = match.group(1) if match else ""
            requirement.marker = None
        by_extra.setdefault(extra, {})[_normalize(requirement.name)] = requirement
    return by_extra


def _requirements_file(path):
    """`{normalized name: Requirement}` of a requirements file, without -e/-r lines."""
    found = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[_normalize(requirement.name)] = requirement
    return found


# === The data travels with the package ===


def test_the_wheel_carries_every_embedded_data_file(wheel, wheel_files):
    data = ROOT / "data"
    shipped = sorted(
        p.relative_to(data).as_posix() for p in data.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    for name in ("mnist_sample.npz", "digits_8x8.npz", "judges/mnist_judge.weights.h5",
                 "README.md"):
        assert name in shipped
    assert any(n.startswith("photos/") for n in shipped)
    assert any(n.startswith("styles/") for n in shipped)
    missing = [n for n in shipped if f"kerasgan/data/{n}" not in wheel_files]
    assert not missing, f"not in the wheel: {missing}"
    with zipfile.ZipFile(wheel) as archive:
        for name in shipped:
            assert archive.read(f"kerasgan/data/{name}") == (data / name).read_bytes(), name


def test_the_sdist_carries_the_data_folder(sdist):
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in ("data/README.md", "data/mnist_sample.npz", "data/judges/mnist_judge.weights.h5",
                 "data/photos/chelsea.jpg", "data/styles/mosaic.jpg", "pyproject.toml"):
        assert name in names, name


def test_the_wheel_carries_every_subpackage(wheel_files):
    packages = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "kerasgan").rglob("__init__.py")
    )
    assert "kerasgan/models/__init__.py" in packages
    assert [p for p in packages if p not in wheel_files] == []
    assert "kerasgan/resources.py" in wheel_files


def test_the_installed_wheel_finds_its_data_away_from_the_checkout(wheel, tmp_path):
    """Installed from the wheel, kerasgan reads data, judge and photos from the install."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import json, os, kerasgan\n"
        "from kerasgan import datasets, evaluation\n"
        "images, labels = datasets.load_arrays('mnist')\n"
        "print(json.dumps({'package': kerasgan.__file__, 'data': str(datasets.data_dir()),\n"
        "    'mnist': list(images.shape), 'judge': os.path.isfile(evaluation.judge_weights_path()),\n"
        "    'photos': sorted(os.listdir(datasets.data_dir() / 'photos'))}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERASGAN_DATA_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(site)
    assert Path(found["data"]) == site / "kerasgan" / "data"
    assert found["mnist"] == [5000, 28, 28]
    assert found["judge"] is True
    assert found["photos"] == sorted(os.listdir(ROOT / "data" / "photos"))


def test_a_checkout_reads_the_repository_data_folder():
    # Editable installs and plain checkouts keep reading data/ in place (no copy to go stale).
    from kerasgan import resources

    assert datasets.DATA_DIR == ROOT / "data"
    assert resources.packaged_data_dir() == ROOT / "data"


def test_kerasgan_data_dir_still_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASGAN_DATA_DIR", str(tmp_path))
    assert datasets.data_dir() == tmp_path


# === The metadata declares what the course imports ===


def test_metadata_declares_core_and_extras(requires):
    core = requires[""]
    for name in ("tensorflow", "keras", "tensorflow-datasets", "importlib-resources",
                 "tensorboard", "matplotlib", "pillow", "numpy", "scipy"):
        assert name in core, f"{name} is not a core dependency"
    assert "tensorflow-serving-api" in requires.get("serving", {})
    assert "tensorflow-serving-api" not in core  # a client-only extra, not every learner's
    for name in ("jupyter", "ipykernel", "nbformat", "nbclient", "nbgrader"):
        assert name in requires.get("course", {}), f"{name} is not in the [course] extra"
    for name in ("pytest", "ruff"):
        assert name in requires.get("dev", {}), f"{name} is not in the [dev] extra"


def test_requirements_txt_and_metadata_agree(requires):
    """The README's install (requirements.txt) and `pip install kerasgan[course,serving]` match."""
    declared = {**requires[""], **requires.get("course", {}), **requires.get("serving", {})}
    listed = _requirements_file(ROOT / "requirements.txt")
    # Only teachers write student notebooks: nbgrader is in [course] and requirements-dev.txt.
    assert set(listed) == set(declared) - TEACHER_ONLY
    assert TEACHER_ONLY <= set(_requirements_file(ROOT / "requirements-dev.txt"))
    for name, requirement in listed.items():
        assert requirement.specifier == declared[name].specifier, name
    text = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^-e \.(\[[a-z,]+\])?$", text, re.M), "requirements.txt installs kerasgan -e"


def test_requirements_dev_and_dev_extra_agree(requires):
    listed = _requirements_file(ROOT / "requirements-dev.txt")
    dev = requires.get("dev", {})
    assert set(listed) <= set(dev) | set(requires[""]) | set(requires.get("course", {}))
    assert set(dev) - {"kerasgan"} <= set(listed)


def _imported_modules(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _code_of_notebook(path):
    cells = json.loads(Path(path).read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # Shell escapes and magics are not Python.
    return "\n".join(
        line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("!", "%"))
    )


def test_every_third_party_import_is_declared(requires):
    sources = [p.read_text() for p in (ROOT / "kerasgan").rglob("*.py")]
    sources += [_code_of_notebook(p) for p in glob.glob(str(ROOT / "notebooks" / "*.ipynb"))]
    modules = {m for source in sources for m in _imported_modules(source)}
    third_party = modules - set(sys.stdlib_module_names) - {"kerasgan"}
    declared = {name for by_name in requires.values() for name in by_name}
    undeclared = []
    for module in sorted(third_party):
        distribution = _normalize(DISTRIBUTION_OF.get(module, module))
        if distribution not in declared and BROUGHT_BY.get(distribution) not in declared:
            undeclared.append(f"{module} ({distribution})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
