"""Where the files that ship with kerasgan live: in a checkout and in an installed wheel alike.

The repository keeps its embedded datasets, photos, style images and the offline judge's weights
in its top-level `data/` folder (provenance and licences in `data/README.md`). A wheel or sdist
carries that folder inside the package as `kerasgan/data/` (the `package-dir` mapping in
`pyproject.toml`), so `pip install .` or an installed wheel has its data with it, read here
through `importlib.resources`.

A checkout or an editable install (`pip install -e .`, as `requirements.txt` does) has no
`kerasgan/data/`: it reads the repository's `data/` in place, so a rebuilt file is seen at once.
(setuptools' editable finder does not import a mapped sub-package that has no `__init__.py`,
which is why the repository's folder is found by its place beside the package.)

Example:
    >>> from kerasgan import resources
    >>> sorted(p.name for p in resources.packaged_data_dir().iterdir())[:2]
    ['README.md', 'digits_8x8.npz']
"""

import atexit
import contextlib
import sys
from pathlib import Path

if sys.version_info >= (3, 12):
    from importlib.resources import as_file, files
else:  # before 3.12 the standard library's as_file takes files only, not folders
    from importlib_resources import as_file, files

# The folder inside the installed package that holds the repository's data/.
PACKAGE_DATA = "data"

# A checkout's (and an editable install's) data folder, beside the package.
REPOSITORY_DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Data extracted from a zipped install lives until the interpreter exits.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def packaged_data_dir():
    """The folder of data that ships with kerasgan, as a real folder on disk.

    TensorFlow and Pillow open files by path, so the packaged folder is handed out through
    `importlib.resources.as_file`: the installed folder itself for an ordinary install, a
    temporary copy (kept until the interpreter exits) when the package is imported from a zip.

    Returns:
        A `pathlib.Path`: the installed `kerasgan/data/` for a wheel or `pip install .`, the
        repository's `data/` for a checkout or an editable install.
    """
    packaged = files("kerasgan") / PACKAGE_DATA
    if packaged.is_dir():
        return Path(_extracted.enter_context(as_file(packaged))).resolve()
    return REPOSITORY_DATA_DIR
