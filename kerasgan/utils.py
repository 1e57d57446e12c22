"""Small helpers shared across the package: user-facing notices and atomic file writes."""

import contextlib
import os
import shutil
import sys
import tempfile


def notice(message):
    """Print one plain line for the user on stderr (not a log record, not a warning)."""
    print(f"kerasgan: {message}", file=sys.stderr, flush=True)


def is_offline():
    """True when the environment forbids network access (set by the test-suite and CI)."""
    return os.environ.get("KERASGAN_OFFLINE", "") not in ("", "0", "false", "False")


def is_smoke_mode():
    """True when notebooks and scripts should run their tiny, seconds-long variant."""
    return os.environ.get("KERASGAN_SMOKE", "") not in ("", "0", "false", "False")


@contextlib.contextmanager
def atomic_path(final_path, directory=False):
    """Yield a temporary path next to `final_path`; move it into place only on success.

    Readers never see a half-written file or folder: on an exception the temporary path is
    removed and `final_path` is left as it was.

    Args:
        final_path: where the result must end up.
        directory: yield a temporary directory instead of a file path.

    Example:
        with atomic_path("grid.png") as tmp:
            image.save(tmp, format="PNG")
    """
    final_path = os.path.abspath(final_path)
    parent = os.path.dirname(final_path)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(final_path)
    if directory:
        tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    else:
        suffix = os.path.splitext(base)[1]
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.tmp-", suffix=suffix, dir=parent)
        os.close(fd)
    try:
        yield tmp
        # mkstemp/mkdtemp create private (0600/0700) paths; the result gets the permissions a
        # plain open()/makedirs() would give, so e.g. a TF Serving container can read exports.
        _apply_umask(tmp, directory)
        if directory and os.path.isdir(final_path):
            shutil.rmtree(final_path)
        os.replace(tmp, final_path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise


def _apply_umask(path, directory):
    umask = os.umask(0)
    os.umask(umask)
    if not directory:
        os.chmod(path, 0o666 & ~umask)
        return
    os.chmod(path, 0o777 & ~umask)
    for root, folders, files in os.walk(path):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) kept off stderr.

    Those lines are written before TensorFlow's logging is initialised, so
    `TF_CPP_MIN_LOG_LEVEL` cannot stop them; the CLI hides them at the file-descriptor level for
    the duration of the import only. A failing import still raises, with its traceback.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow
