"""Check that kerasgan works installed from its wheel, far from the checkout, data included.

    python scripts/check_installed_wheel.py                  # build the wheel, then check it
    python scripts/check_installed_wheel.py --wheel dist/kerasgan-0.1.0-py3-none-any.whl
    python scripts/check_installed_wheel.py --keep           # keep the venv and outputs

It builds the sdist and, from it, the wheel (offline, with the installed setuptools, as
`python -m build` would), creates a fresh virtual environment in a temporary folder outside the
repository (`--system-site-packages`, so TensorFlow and the other dependencies already installed
are reused rather than downloaded), installs kerasgan into it from the wheel alone, and then,
from another temporary folder:

1. checks that `kerasgan` is imported from the venv, not from the repository (an editable install
   of the checkout stays visible through the system site-packages), with its data, the offline
   judge, the photos and the styles inside the venv too;
2. checks that the dependencies the wheel declares (core, [course] and [serving]) are installed;
3. runs `python -m kerasgan train dcgan --data embedded --time-budget 20` (offline) and checks the
   run folder and the export;
4. executes a copy of `notebooks/00_setup.ipynb` in smoke mode (KERASGAN_SMOKE=1) with nbclient,
   in a kernel of the venv's Python, with one cell appended that checks where kerasgan and its
   data came from.

Prints PASS or FAIL per check and exits with 1 when any check failed. Too slow for the
test-suite (a few minutes: the build, a TensorFlow import per step, the training run);
`tests/test_packaging.py` checks the wheel's contents and metadata in seconds.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_INPUTS = ("pyproject.toml", "README.md", "kerasgan", "data")
NOTEBOOK = ROOT / "notebooks" / "00_setup.ipynb"

# Appended to the notebook's copy: the kernel must run the venv's kerasgan and read its data.
WHERE_CELL = """\
import os, sys
from kerasgan import datasets
venv = os.path.realpath(sys.prefix)
assert os.path.realpath(kerasgan.__file__).startswith(venv + os.sep), kerasgan.__file__
assert os.path.realpath(datasets.data_dir()).startswith(venv + os.sep), datasets.data_dir()
print("kerasgan from", kerasgan.__file__, "data from", datasets.data_dir())
"""

# Run inside the venv: where kerasgan and its files come from, as JSON.
PROBE = """\
import json, os, sys
import kerasgan
from kerasgan import datasets, evaluation
images, labels = datasets.load_arrays("mnist")
digits, _ = datasets.load_arrays("digits")
data = datasets.data_dir()
print(json.dumps({
    "prefix": os.path.realpath(sys.prefix),
    "package": os.path.realpath(kerasgan.__file__),
    "data": os.path.realpath(data),
    "mnist": list(images.shape),
    "digits": list(digits.shape),
    "judge": os.path.realpath(evaluation.judge_weights_path()),
    "judge_exists": os.path.isfile(evaluation.judge_weights_path()),
    "photos": len(os.listdir(data / "photos")),
    "styles": len(os.listdir(data / "styles")),
    "licences": os.path.isfile(data / "README.md"),
}))
"""

# Run inside the venv with nbclient; argv: notebook, working folder.
RUN_NOTEBOOK = """\
import sys
import nbformat
from nbclient import NotebookClient
path, workdir = sys.argv[1], sys.argv[2]
notebook = nbformat.read(path, as_version=4)
NotebookClient(notebook, timeout=900, kernel_name="python3",
               resources={"metadata": {"path": workdir}}).execute()
nbformat.write(notebook, path)
"""


class Checks:
    """PASS/FAIL lines, one per check, and whether any failed."""

    def __init__(self):
        self.failed = []

    def report(self, name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            self.failed.append(name)
        return ok


def run(command, cwd, env=None, timeout=1800):
    """Run `command`; returns the CompletedProcess (stdout and stderr captured as text)."""
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def tail(result, lines=15):
    """The last `lines` lines a command printed, indented, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", (result.stdout or "") + (result.stderr or ""))
    return "\n        ".join([""] + text.strip().splitlines()[-lines:])


def build_wheel(work):
    """Build the sdist from a copy of the sources, then the wheel from the sdist; its path."""
    source = work / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = work / "dist"
    result = run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
        cwd=source,
    )
    if result.returncode != 0:
        raise RuntimeError("building the sdist failed:" + tail(result))
    (sdist,) = dist.glob("kerasgan-*.tar.gz")
    result = run(
        [sys.executable, "-m", "pip", "wheel", sdist, "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", dist],
        cwd=work,
    )
    if result.returncode != 0:
        raise RuntimeError("building the wheel failed:" + tail(result))
    (wheel,) = dist.glob("kerasgan-*.whl")
    return wheel


def clean_environment(venv):
    """This process's environment, minus anything that would point kerasgan at the checkout."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "KERASGAN_DATA_DIR", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    env.update(
        KERASGAN_OFFLINE="1", KERASGAN_SMOKE="1", MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3",
        PATH=str(venv / "bin") + os.pathsep + env.get("PATH", ""),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def inside(path, folder):
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="check this wheel instead of building one")
    parser.add_argument("--time-budget", type=int, default=20,
                        help="seconds of DCGAN training (default: 20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="kerasgan-wheel-check-"))
    if inside(work, ROOT):
        sys.exit(f"the temporary folder {work} is inside the repository; set TMPDIR elsewhere")
    print(f"working in {work}", flush=True)
    try:
        if args.wheel:
            wheel = args.wheel.resolve()
        else:
            wheel = build_wheel(work)
        checks.report("build the wheel", wheel.is_file(), wheel.name)

        venv = work / "venv"
        python = venv / "bin" / "python"
        result = run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=work)
        if not checks.report("create a venv outside the repository", result.returncode == 0,
                             str(venv) + (tail(result) if result.returncode else "")):
            return 1
        env = clean_environment(venv)
        # --force-reinstall: an editable kerasgan of the same version may be visible through
        # the system site-packages; the wheel must be installed into the venv regardless.
        result = run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                      "--force-reinstall", wheel], cwd=work, env=env)
        checks.report("install kerasgan from the wheel alone", result.returncode == 0,
                      tail(result) if result.returncode else "")

        elsewhere = work / "elsewhere"
        elsewhere.mkdir()
        result = run([python, "-c", PROBE], cwd=elsewhere, env=env)
        if result.returncode != 0:
            checks.report("import kerasgan and read its data", False, tail(result))
        else:
            found = json.loads(result.stdout.strip().splitlines()[-1])
            checks.report("kerasgan.__file__ is inside the venv",
                          inside(found["package"], venv), found["package"])
            checks.report(
                "embedded data, judge, photos, styles and licences are inside the venv",
                inside(found["data"], venv) and inside(found["judge"], venv)
                and found["judge_exists"] and found["licences"]
                and found["photos"] > 0 and found["styles"] > 0
                and found["mnist"] == [5000, 28, 28] and found["digits"][0] == 1797,
                f"{found['data']} (MNIST {found['mnist']}, digits {found['digits']}, "
                f"{found['photos']} photos, {found['styles']} styles)",
            )

        # pip resolves the declared requirements against what is installed (no index): every
        # one must be there, from the system site-packages.
        result = run([python, "-m", "pip", "install", "--no-index", "--dry-run",
                      f"kerasgan[course,serving] @ {wheel.as_uri()}"], cwd=work, env=env)
        checks.report("declared dependencies ([course,serving] included) are installed",
                      result.returncode == 0, tail(result, 5) if result.returncode else "")

        result = run([venv / "bin" / "kerasgan", "--version"], cwd=elsewhere, env=env)
        checks.report("the `kerasgan` console script runs", result.returncode == 0,
                      (result.stdout + result.stderr).strip()[-200:])

        command = [python, "-m", "kerasgan", "train", "dcgan", "--data", "embedded",
                   "--time-budget", str(args.time_budget)]
        result = run(command, cwd=elsewhere, env=env)
        exported = sorted((elsewhere / "saved_models" / "dcgan").glob("*/saved_model.pb"))
        summary = [line for line in result.stdout.splitlines() if line.strip()][-1:]
        checks.report(
            f"python -m kerasgan train dcgan --data embedded --time-budget {args.time_budget}",
            result.returncode == 0 and (elsewhere / "runs" / "dcgan").is_dir() and bool(exported),
            (summary[0] if summary else "") if result.returncode == 0 else tail(result),
        )

        import nbformat  # the checker's own Python has the course's tools (requirements.txt)

        notebook = nbformat.read(NOTEBOOK, as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell(WHERE_CELL))
        copy = elsewhere / NOTEBOOK.name
        nbformat.write(notebook, copy)
        result = run([python, "-c", RUN_NOTEBOOK, copy, elsewhere], cwd=elsewhere, env=env)
        checks.report(
            f"{NOTEBOOK.name} runs in smoke mode against the installed wheel",
            result.returncode == 0, "" if result.returncode == 0 else tail(result, 25),
        )
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        checks.report("the checks ran to the end", False, str(error))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if checks.failed:
        print(f"FAIL: {len(checks.failed)} check(s) failed: {'; '.join(checks.failed)}")
        return 1
    print("PASS: every check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
