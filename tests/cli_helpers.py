"""Helpers for tests of the command line (the in-process `kerasgan` fixture is in conftest.py)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kerasgan_process(*args, timeout=300):
    """The real thing: `python -m kerasgan ...` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "kerasgan", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout,
    )


def run_in_process(capsys, *args):
    """`cli.main(args)` in this process (seconds faster than a new TensorFlow import), with the
    exit code and output a subprocess would give."""
    from kerasgan import cli

    try:
        code = cli.main([str(arg) for arg in args])
    except SystemExit as exit_:  # argparse's --help, --version and usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_one_clear_line(result, *fragments):
    """A user mistake: exit code 2, no traceback, one `kerasgan: error:` line holding every
    fragment."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("kerasgan")]
    assert len(lines) == 1 and lines[0].startswith("kerasgan: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
