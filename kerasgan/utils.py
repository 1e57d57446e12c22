"""Small helpers shared across the package: user-facing notices and safe, atomic writes.

What is never overwritten: every output path is resolved first (the real path of its parent,
plus its name, `~` expanded) and refused with a `PathError` when it is the current folder, an
ancestor of it, the home folder (or an ancestor of it) or a filesystem root, however it is spelled
(`""`, `"."`, `"missing/.."`, `"~"`, a link to one of them). A folder is never deleted to make
room for a result: results appear under a new name only, and the single command that may replace
a folder (`course student-notebooks --force`, and only a folder it wrote) renames the old one
away after the new one is complete. Files the package owns and rewrites (a run folder's
options.json, summary.json, samples and GIF) are replaced atomically; a user's output files are
published without replacing anything unless the caller asks (the CLI's `--force`).
"""

import contextlib
import errno
import os
import shutil
import sys
import tempfile
import uuid

import numpy as np

from kerasgan.errors import PathError


def notice(message):
    """Print one plain line for the user on stderr (not a log record, not a warning)."""
    print(f"kerasgan: {message}", file=sys.stderr, flush=True)


def counted(count, noun):
    """`count` and `noun` for a message, the noun plural unless the count is one:
    `counted(1, "step")` is `"1 step"`, `counted(1200, "step")` is `"1,200 steps"`."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def to_uint8(images, value_range=(-1, 1)):
    """Map float images in `value_range` to uint8 pixels in `[0, 255]`, rounded and clipped.

    The package's one conversion to pixels: sample grids, the exports (inside their graphs),
    the serving client and style transfer all call it, so a pixel is the same number wherever
    it is made. Halves round to even (as `np.round` and `tf.round` do); values outside
    `value_range` (a generator without tanh, float round-off) are clipped.

    Args:
        images: a NumPy array (or anything `np.asarray` takes), or a TensorFlow tensor,
            eager or inside a `tf.function` graph. uint8 input is returned unchanged.
        value_range: `(low, high)`, the values that become 0 and 255: `(-1, 1)` for generator
            outputs (tanh), `(0, 1)` for style transfer's images.

    Returns:
        uint8 images of the same shape: a tensor for a tensor, otherwise a NumPy array.

    Example:
        >>> to_uint8(np.array([-1.0, 0.0, 1.0])).tolist()
        [0, 128, 255]
        >>> to_uint8(np.array([0.0, 0.5, 1.0]), value_range=(0, 1)).tolist()
        [0, 128, 255]
    """
    low, high = value_range
    scale = 255.0 / (high - low)
    # TensorFlow is loaded whenever a tensor exists; a graph tensor has no values for NumPy.
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.is_tensor(images):
        if images.dtype == tf.uint8:
            return images
        images = tf.cast(images, tf.float32)
        return tf.cast(tf.clip_by_value(tf.round((images - low) * scale), 0.0, 255.0), tf.uint8)
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round((images.astype("float32") - low) * scale), 0, 255).astype("uint8")


def process_is_running(pid):
    """Whether a process with this pid exists on this machine (a lock's or a claim's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


def is_offline():
    """True when the environment forbids network access (set by the test-suite and CI)."""
    return os.environ.get("KERASGAN_OFFLINE", "") not in ("", "0", "false", "False")


def is_smoke_mode():
    """True when notebooks and scripts should run their tiny, seconds-long variant."""
    return os.environ.get("KERASGAN_SMOKE", "") not in ("", "0", "false", "False")


def _protection(resolved):
    """Why `resolved` (an absolute, resolved path) must never be written over, or None."""
    if os.path.dirname(resolved) == resolved:
        return "is a filesystem root"
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the current folder was deleted: nothing there to protect
        cwd = None
    home = os.path.realpath(os.path.expanduser("~"))
    inside = resolved.rstrip(os.sep) + os.sep
    if resolved == cwd:
        return "is the current folder"
    if cwd is not None and cwd.startswith(inside):
        return "contains the current folder"
    if resolved == home:
        return "is the home folder"
    if home.startswith(inside):
        return "contains the home folder"
    return None


def resolve_output(path, what="the output path"):
    """The absolute path an output will really take, refused if it is a protected folder.

    The parent is resolved (symbolic links, `..`, `~`), the last name is kept as given, so a
    link named as the output is judged by where it points too. An empty path (what a script with
    an unset variable passes), the current folder, any ancestor of it, the home folder and a
    filesystem root are refused whatever their spelling: a command must never write over them.

    Args:
        path: the path as the user gave it.
        what: how error messages name it (e.g. `"--out"`, `"OUT_DIR"`).

    Returns:
        The resolved absolute path.

    Raises:
        PathError: the path is empty or protected (one line naming `what` and the folder).
    """
    text = os.fspath(path)
    if text == "":
        raise PathError(f"{what} is an empty path (an unset variable?); give a file or folder name")
    expanded = os.path.expanduser(text)
    trimmed = expanded.rstrip(os.sep) or os.sep
    head, name = os.path.split(trimmed)
    if name in ("", os.curdir, os.pardir):
        resolved = os.path.realpath(trimmed)
    else:
        resolved = os.path.join(os.path.realpath(head or os.curdir), name)
    problem = _protection(resolved)
    if problem is None and os.path.islink(resolved):
        problem = _protection(os.path.realpath(resolved))
    if problem:
        raise PathError(f"{what} {text!r} {problem} ({resolved}); refusing to write there")
    return resolved


@contextlib.contextmanager
def atomic_path(final_path, directory=False, replace=None):
    """Yield a temporary path next to `final_path`; move it into place only on success.

    Readers never see a half-written file or folder: on an exception the temporary path is
    removed and `final_path` is left as it was. The target is resolved and checked first
    (`resolve_output`): the current folder, its ancestors, the home folder and filesystem roots
    are refused, however spelled.

    Args:
        final_path: where the result must end up (missing parent folders are created).
        directory: yield a temporary directory instead of a file path.
        replace: what to do when `final_path` exists. Files: `True` (the default, for files
            the package owns and rewrites) replaces it atomically with `os.replace`; `False`
            (for a user's outputs) refuses, and publishes with a hard link so that a file
            another process creates meanwhile is not replaced either. Folders: `False` (the
            default) refuses; `True` renames the old folder away only once the new one is
            complete, renames the new one into place, then removes the old one (a folder is
            never deleted first). The caller must have checked that the old folder is its own.

    Raises:
        PathError: `final_path` is protected, or exists and is not to be replaced, or is a
            folder where a file should go (or the reverse).

    Example:
        with atomic_path("grid.png", replace=False) as tmp:
            image.save(tmp, format="PNG")
    """
    final_path = resolve_output(final_path)
    if replace is None:
        replace = not directory
    if os.path.lexists(final_path):
        if not directory and os.path.isdir(final_path):
            raise PathError(f"{final_path} is a folder; refusing to write a file over it")
        if directory and not os.path.isdir(final_path):
            raise PathError(f"{final_path} is a file; refusing to write a folder over it")
        if not replace:
            raise PathError(f"{final_path} already exists; not replaced")
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
        apply_umask(tmp, directory)
        if directory:
            _publish_directory(tmp, final_path, replace)
        elif replace:
            os.replace(tmp, final_path)
        else:
            _publish_file_without_replacing(tmp, final_path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.remove(tmp)
        raise


def _publish_file_without_replacing(tmp, final_path):
    """Move the file `tmp` to `final_path` unless something took that name meanwhile."""
    try:
        # link() fails if the name exists, so there is no window in which another process's
        # file could be replaced (os.replace would replace it silently).
        os.link(tmp, final_path)
    except FileExistsError:
        raise PathError(f"{final_path} already exists; not replaced") from None
    except OSError:
        # A filesystem without hard links: claim the name with an exclusive create, then
        # replace only that claim, which is ours.
        try:
            os.close(os.open(final_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            raise PathError(f"{final_path} already exists; not replaced") from None
        os.replace(tmp, final_path)
    else:
        os.unlink(tmp)


def _publish_directory(tmp, final_path, replace):
    """Rename the folder `tmp` to `final_path`; an old folder is moved away, never deleted first."""
    aside = None
    if replace and os.path.lexists(final_path):
        parent, base = os.path.split(final_path)
        aside = os.path.join(parent, f".{base}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(final_path, aside)
    try:
        # rename() refuses a non-empty target folder (and a file), so a result another process
        # published meanwhile is never replaced; only an empty folder could be.
        os.rename(tmp, final_path)
    except OSError as error:
        if aside is not None:
            os.rename(aside, final_path)
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise PathError(f"{final_path} already exists; not replaced") from None
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def apply_umask(path, directory):
    """Give `path` (and, for a folder, everything in it) the permissions a plain `open()` /
    `makedirs()` would: temporary files and folders are created private (0600/0700)."""
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


@contextlib.contextmanager
def dtype_policy(name):
    """Build and run the body under Keras's dtype policy `name`, then restore the global one.

    Keras layers take the global policy when they are built; this scopes it to the body.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_policy():
    """Run the body under Keras's float32 policy, then restore the global policy.

    For computations that must be exact whatever precision a GAN trains in: feature extractors
    (covariances of bfloat16 features are too coarse for a stable FID) and the course's one-step
    checks (under bfloat16, two right steps that batch their images differently differ by
    rounding).
    """
    return dtype_policy("float32")
