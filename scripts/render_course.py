"""Render the course notebooks with their outputs as Markdown pages under docs/course/.

    python scripts/render_course.py              # every notebook, full mode
    python scripts/render_course.py 00 11        # some notebooks
    python scripts/render_course.py 01 --smoke --out /tmp/pages   # a quick look at the renderer

Notebooks are committed without outputs (clean diffs), so a learner browsing the repository would
see no figure and no printed result. This script executes each notebook in a fresh kernel (CPU,
offline: the embedded data; full mode unless `--smoke`) from a temporary working folder, as
tests/notebooks/test_notebooks.py does, and writes `docs/course/NN_topic.md`: the prose as it is,
code as fenced Python, outputs as text blocks (progress bars and repeated lines collapsed, errors in
full) and figures as PNG files in `docs/course/NN_topic_files/`. Each page starts with a hash of
its notebook's cells, so tests/test_course_pages.py can tell when a page is stale.

A notebook that fails to execute gets no page: the error is printed and the exit code is 1.
"""

import argparse
import base64
import glob
import hashlib
import io
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
PAGES = os.path.join(ROOT, "docs", "course")
HASH_PATTERN = re.compile(r"^<!-- kerasgan course page: (\S+) sha256=([0-9a-f]{64}) -->$")
# A PNG above this size is re-encoded (optimized, then reduced to a palette) before it is kept.
LARGE_PNG_BYTES = 200_000
MAX_TOTAL_BYTES = 15 * 1024 * 1024
# A run of this many progress lines or more is shown as its final line and a count.
MIN_COLLAPSED_RUN = 3

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A Keras progress bar line: "12/50 ━━━━━━━━━━ 3s 80ms/step - loss: 0.1" (Keras 3),
# "12/50 [=====>....] - ETA: 3s" (Keras 2) or "12/Unknown 3s" (unknown length).
_PROGRESS = re.compile(r"^\s*\d+/(\d+\s*(━|\[[=>.]*\]|\d+s)|Unknown\b)")


# ----------------------------------------------------------------------------------------------
# Pure functions: hashing, collapsing output, writing a page (tested without TensorFlow).
# ----------------------------------------------------------------------------------------------


def notebook_hash(notebook):
    """Hash what a notebook's page shows: the sources of its code and markdown cells.

    Outputs, execution counts and metadata do not count (a stripped notebook and an executed one
    hash the same), nor does whitespace in markdown (rewrapping prose changes nothing a reader
    sees) or trailing whitespace in code.

    Args:
        notebook: an `nbformat.NotebookNode` (or a dict with a `cells` list).

    Returns:
        The SHA-256 hex digest, 64 characters.
    """
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        source = cell["source"]
        if isinstance(source, list):
            source = "".join(source)
        if cell["cell_type"] == "code":
            text = "\n".join(line.rstrip() for line in source.strip("\n").splitlines())
        elif cell["cell_type"] == "markdown":
            text = " ".join(source.split())
        else:
            continue
        digest.update(json.dumps([cell["cell_type"], text]).encode())
    return digest.hexdigest()


def _terminal_lines(text):
    # What a terminal would finally show: "\r" returns to the line start, "\b" erases a character.
    lines = []
    for raw in _ANSI.sub("", text).split("\n"):
        segments = [s for s in raw.split("\r") if s.replace("\b", "").strip()]
        line = segments[-1] if segments else ""
        out = []
        for char in line:
            if char == "\b":
                if out:
                    out.pop()
            else:
                out.append(char)
        lines.append("".join(out).rstrip())
    return lines


def _progress_key(line):
    # ("epoch", e, E) for "Epoch e/E", ("bar", n, N) for a progress bar line, else None.
    match = re.match(r"^\s*Epoch (\d+)/(\d+)\s*$", line)
    if match:
        return "epoch", int(match.group(1)), int(match.group(2))
    match = re.match(r"^\s*(\d+)/(\d+|Unknown)\b", line)
    if match and _PROGRESS.match(line):
        total = match.group(2)
        return "bar", int(match.group(1)), -1 if total == "Unknown" else int(total)
    match = re.match(r"^\s*\d+%\|.*?(\d+)/(\d+)", line)
    if match:
        return "bar", int(match.group(1)), int(match.group(2))
    return None


def _continues(run, key):
    # Whether a progress line updates the bar (or epoch loop) that `run` shows.
    kind, done, total = key
    if kind == "bar" and run[-1][1][0] == "epoch":
        return True   # the bar of the epoch just announced
    same = [k for _, k in run if k[0] == kind]
    if not same:
        return False
    _, last_done, last_total = same[-1]
    return total == last_total and (done > last_done if kind == "epoch" else done >= last_done)


def _collapsed_run(run):
    if len(run) < MIN_COLLAPSED_RUN:
        return [line for line, _ in run]
    epochs = [line for line, key in run if key[0] == "epoch"]
    lines = [epochs[-1]] if epochs and epochs[-1] != run[-1][0] else []
    return lines + [run[-1][0], f"[{len(run)} progress lines collapsed to the last one]"]


def collapse_output(text):
    """Collapse a stream's text the way a reader wants to see it.

    Carriage returns and backspaces are resolved to the text a terminal would show last; the
    updates of one progress bar (Keras's, tqdm's) and of one `fit`'s "Epoch N/M" loop are
    reduced to their final line and a count; a line repeated many times in a row is shown once
    with a count.

    Args:
        text: the stream output, as stored in an executed notebook.

    Returns:
        The collapsed text (no trailing newline).
    """
    lines = _terminal_lines(text)
    while lines and not lines[-1]:
        lines.pop()
    result, run = [], []
    i = 0
    while i < len(lines):
        key = _progress_key(lines[i])
        if key:
            if run and not _continues(run, key):
                result.extend(_collapsed_run(run))
                run = []
            run.append((lines[i], key))
            i += 1
            continue
        if run:
            result.extend(_collapsed_run(run))
            run = []
        j = i
        while j + 1 < len(lines) and lines[j + 1] == lines[i]:
            j += 1
        result.append(lines[i])
        if j - i + 1 >= MIN_COLLAPSED_RUN:
            result.append(f"[the line above repeated {j - i + 1} times]")
        else:
            result.extend(lines[i + 1:j + 1])
        i = j + 1
    if run:
        result.extend(_collapsed_run(run))
    return "\n".join(result)


def shrink_png(data):
    """Return a PNG's bytes, re-encoded smaller if they are large.

    Args:
        data: PNG file bytes.

    Returns:
        PNG bytes: `data` itself when small, else the smallest of an optimized re-encoding and
        a 256-colour palette version (which keeps plots and sample grids legible).
    """
    if len(data) <= LARGE_PNG_BYTES:
        return data
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    candidates = [data]
    for version in (image, image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)):
        buffer = io.BytesIO()
        version.save(buffer, format="PNG", optimize=True)
        candidates.append(buffer.getvalue())
    return min(candidates, key=len)


def _joined(value):
    return "".join(value) if isinstance(value, list) else value


def _fence(text, language=""):
    # A fence longer than any backtick run inside, so printed Markdown cannot close it early.
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _merge_streams(outputs):
    # Kernels send a stream in many small messages; join neighbours of the same stream first.
    merged = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == output["name"]):
            merged[-1] = dict(merged[-1], text=merged[-1]["text"] + _joined(output["text"]))
        else:
            merged.append(dict(output, text=_joined(output.get("text", ""))))
    return merged


def _output_blocks(outputs, page_name, figures):
    # One code cell's outputs as Markdown blocks; figures found are appended to `figures`.
    blocks, texts = [], []

    def flush():
        # Neighbouring text outputs (prints, a model summary's many pieces) read as one block.
        if texts:
            blocks.append(_fence("\n".join(texts), "text"))
            texts.clear()

    for output in _merge_streams(outputs):
        kind = output["output_type"]
        data = output.get("data", {})
        if kind == "stream":
            text = collapse_output(output["text"])
            if text.strip():
                texts.append(text)
        elif kind == "error":
            flush()
            traceback = _ANSI.sub("", "\n".join(output.get("traceback", [])))
            blocks.append(_fence(traceback or f"{output['ename']}: {output['evalue']}", "text"))
        elif "image/png" in data:
            flush()
            name = f"figure_{len(figures) + 1}.png"
            figures.append((name, shrink_png(base64.b64decode(_joined(data["image/png"])))))
            blocks.append(f"![figure {len(figures)}]({page_name}_files/{name})")
        elif "text/markdown" in data:
            flush()
            blocks.append(_joined(data["text/markdown"]).strip("\n"))
        elif "text/plain" in data:
            texts.append(collapse_output(_joined(data["text/plain"])))
    flush()
    return blocks


def render_markdown(notebook, page_name, header):
    """Turn an executed notebook into a Markdown page and the figures it shows.

    Args:
        notebook: the executed `nbformat.NotebookNode`.
        page_name: the page's file stem, e.g. `"01_gan_fundamentals"`; figures are linked as
            `{page_name}_files/figure_K.png`.
        header: Markdown placed under the hash line (where and how the page was rendered).

    Returns:
        `(text, figures)`: the page's text and a list of `(file_name, png_bytes)`.
    """
    blocks = [f"<!-- kerasgan course page: notebooks/{page_name}.ipynb "
              f"sha256={notebook_hash(notebook)} -->", header]
    figures = []
    for cell in notebook["cells"]:
        source = _joined(cell["source"])
        if cell["cell_type"] == "markdown":
            blocks.append(source.strip("\n"))
            continue
        if cell["cell_type"] != "code":
            continue
        blocks.append(_fence(source.strip("\n"), "python"))
        blocks.extend(_output_blocks(cell.get("outputs", []), page_name, figures))
    return "\n\n".join(blocks) + "\n", figures


def write_page(directory, page_name, text, figures):
    """Write a page and its figures so that no half-written page is ever visible.

    Everything is written into a temporary folder beside the page, then moved into place with
    renames, the page itself last; figures of an earlier rendering are replaced as a whole.

    Args:
        directory: the pages' folder (created if missing).
        page_name: the page's file stem.
        text: the page's Markdown.
        figures: a list of `(file_name, png_bytes)`.

    Returns:
        The page's path.
    """
    os.makedirs(directory, exist_ok=True)
    page = os.path.join(directory, page_name + ".md")
    files = os.path.join(directory, page_name + "_files")
    staging = tempfile.mkdtemp(prefix=f".{page_name}.", dir=directory)
    try:
        staged_files = os.path.join(staging, "files")
        if figures:
            os.mkdir(staged_files)
            for name, data in figures:
                with open(os.path.join(staged_files, name), "wb") as handle:
                    handle.write(data)
        staged_page = os.path.join(staging, "page.md")
        with open(staged_page, "w", encoding="utf-8") as handle:
            handle.write(text)
        if os.path.isdir(files):
            os.replace(files, os.path.join(staging, "old_files"))
        if figures:
            os.replace(staged_files, files)
        os.replace(staged_page, page)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return page


def page_status(notebooks_dir=NOTEBOOKS, pages_dir=PAGES):
    """Compare every notebook with its rendered page.

    Args:
        notebooks_dir: folder of the `NN_topic.ipynb` notebooks.
        pages_dir: folder of the rendered `NN_topic.md` pages.

    Returns:
        `(stale, missing)`: sorted lists of notebook stems whose page records another hash than
        the notebook's, and of those without a page.
    """
    import nbformat

    stale, missing = [], []
    for path in sorted(glob.glob(os.path.join(notebooks_dir, "*.ipynb"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        page = os.path.join(pages_dir, stem + ".md")
        if not os.path.exists(page):
            missing.append(stem)
            continue
        with open(page, encoding="utf-8") as handle:
            match = HASH_PATTERN.match(handle.readline().rstrip("\n"))
        if not match or match.group(2) != notebook_hash(nbformat.read(path, as_version=4)):
            stale.append(stem)
    return stale, missing


def directory_bytes(directory):
    """Total size in bytes of the files under `directory`."""
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(directory) for name in names)


# ----------------------------------------------------------------------------------------------
# Running notebooks.
# ----------------------------------------------------------------------------------------------


def machine_description():
    """One line naming this machine: CPU model, cores, AMX or not."""
    model = platform.processor() or "unknown CPU"
    amx = False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name") and model in ("unknown CPU", "x86_64", ""):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and "amx_bf16" in line.split():
                    amx = True
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, {'with AMX (amx_bf16)' if amx else 'without AMX'}"


def execute(path, smoke, timeout):
    """Execute a notebook the way the test harness does, in full mode unless `smoke`.

    Args:
        path: the notebook's path.
        smoke: run with `KERASGAN_SMOKE=1`.
        timeout: seconds allowed per cell.

    Returns:
        The executed `nbformat.NotebookNode`.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    # The kernel inherits this environment: CPU only, offline, figures drawn inline.
    os.environ.update({
        "KERASGAN_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    })
    os.environ.pop("KERASGAN_SMOKE", None)
    if smoke:
        os.environ["KERASGAN_SMOKE"] = "1"
    try:
        with tempfile.TemporaryDirectory(prefix="render-course-") as workdir:
            shutil.copy(path, workdir)
            NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": workdir}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


def render(path, out_dir, smoke=False, timeout=3600, executed_dir=None):
    """Execute one notebook and write its page; raises whatever the execution raised.

    With `executed_dir`, the executed notebook is kept there (with its run's date, wall time and
    machine), and a kept one whose cells match the notebook's is re-rendered without running it
    again: a change to this renderer then costs seconds, not the notebook's run.

    Args:
        path: the notebook's path.
        out_dir: the pages' folder.
        smoke: run with `KERASGAN_SMOKE=1` (the page says so in its header).
        timeout: seconds allowed per cell.
        executed_dir: optional folder for executed notebooks, as above.

    Returns:
        The written page's path.
    """
    import nbformat

    stem = os.path.splitext(os.path.basename(path))[0]
    kept = os.path.join(executed_dir, stem + ".ipynb") if executed_dir else None
    notebook = None
    if kept and os.path.exists(kept):
        notebook = nbformat.read(kept, as_version=4)
        run = notebook.metadata.get("kerasgan_render", {})
        if (notebook_hash(notebook) != notebook_hash(nbformat.read(path, as_version=4))
                or run.get("smoke") != smoke):
            notebook = None
    if notebook is None:
        started, started_at = time.monotonic(), datetime.now(timezone.utc)
        notebook = execute(path, smoke, timeout)
        notebook.metadata["kerasgan_render"] = {
            "wall": time.monotonic() - started, "smoke": smoke, "machine": machine_description(),
            "date": f"{started_at:%Y-%m-%d %H:%M} UTC"}
        if kept:
            os.makedirs(executed_dir, exist_ok=True)
            nbformat.write(notebook, kept + ".tmp")
            os.replace(kept + ".tmp", kept)
    run = notebook.metadata["kerasgan_render"]
    minutes, seconds = divmod(round(run["wall"]), 60)
    mode = "**smoke mode** (KERASGAN_SMOKE=1, not the course's real results)" if smoke \
        else "full mode"
    header = (
        f"> Rendered from [`notebooks/{stem}.ipynb`](../../notebooks/{stem}.ipynb) with its "
        f"outputs by `python scripts/render_course.py {stem[:2]}`: {mode}, CPU only, offline "
        f"(embedded data), on {run['machine']}, {run['date']}, wall time {minutes} min {seconds:02d} s. "
        "Your own run will differ in its numbers and pictures; progress bars and repeated lines "
        "are collapsed.")
    text, figures = render_markdown(notebook, stem, header)
    return write_page(out_dir, stem, text, figures)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("numbers", nargs="*", metavar="NN", help="notebook numbers (default: all)")
    parser.add_argument("--smoke", action="store_true", help="run with KERASGAN_SMOKE=1")
    parser.add_argument("--out", default=PAGES, help="pages folder (default: docs/course)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--executed", metavar="DIR",
                        help="keep executed notebooks here and re-render unchanged ones from them")
    args = parser.parse_args(argv)

    paths = sorted(glob.glob(os.path.join(NOTEBOOKS, "*.ipynb")))
    if args.numbers:
        chosen = [p for p in paths if os.path.basename(p)[:2] in set(args.numbers)]
        unknown = set(args.numbers) - {os.path.basename(p)[:2] for p in chosen}
        if unknown:
            print(f"render_course: error: no notebook numbered {', '.join(sorted(unknown))}",
                  file=sys.stderr)
            return 2
        paths = chosen

    failed = []
    for path in paths:
        name = os.path.basename(path)
        print(f"rendering {name} ...", flush=True)
        try:
            page = render(path, args.out, smoke=args.smoke, timeout=args.timeout,
                          executed_dir=args.executed)
        except Exception as error:  # noqa: BLE001 - report every failure, render the others
            failed.append(name)
            print(f"render_course: {name} failed, no page written:\n{_ANSI.sub('', str(error))}",
                  file=sys.stderr)
            continue
        print(f"wrote {os.path.relpath(page, ROOT)}", flush=True)

    total = directory_bytes(args.out) if os.path.isdir(args.out) else 0
    print(f"{os.path.relpath(args.out, ROOT)}: {total / 1e6:.1f} MB")
    if total > MAX_TOTAL_BYTES:
        print(f"render_course: error: pages exceed {MAX_TOTAL_BYTES // 2**20} MB", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
