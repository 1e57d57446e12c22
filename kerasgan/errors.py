"""Errors that mean "the user asked for something that cannot be done", not "kerasgan is broken".

The CLI turns every `KerasganError` into one line on stderr and exit code 2, with no traceback.
Library users catch them like the built-in exceptions they also derive from.
"""


class KerasganError(Exception):
    """Base class of the errors a user can fix (bad input, missing data, unwritable paths)."""


class DataError(KerasganError, ValueError):
    """A dataset, image or folder cannot be loaded as asked."""


class ConfigError(KerasganError, ValueError):
    """An option or configuration value is out of range or inconsistent."""


class ExportError(KerasganError, OSError):
    """A model cannot be exported or an export cannot be read."""


class PathError(KerasganError, OSError):
    """An output path that must not be written: a protected folder, or a file that exists.

    Raised before any work starts where possible (the current folder, one of its ancestors, the
    home folder or a filesystem root, however spelled; an existing output not meant to be
    replaced), and again at the final rename if another process took the name meanwhile.
    """
