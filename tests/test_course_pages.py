"""The rendered course pages (docs/course/) match their notebooks, and the renderer works.

The renderer's pure functions are tested on small synthetic executed notebooks built with
nbformat; no TensorFlow runs here. One end-to-end test executes two tiny notebooks (a plot and a
failure) in a real kernel.
"""

import base64
import importlib.util
import io
import os
import warnings

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "render_course", os.path.join(ROOT, "scripts", "render_course.py"))
render_course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_course)


def _png(size=(8, 8), noise=False):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 256, size + (3,)) if noise
              else np.full(size + (3,), 128)).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _executed_notebook():
    progress = "".join(f"\r{i}/5 ━━━━━━━━━━ 0s 3ms/step - d_loss: 0.{i}\b\b" for i in range(1, 6))
    return new_notebook(cells=[
        new_markdown_cell("# 98 · A lesson\n\nWhat you will learn: rendering."),
        new_code_cell("print('hello')", outputs=[
            new_output("stream", name="stdout", text="hel"),
            new_output("stream", name="stdout", text="lo\n")]),
        new_code_cell("model.fit(...)", outputs=[
            new_output("stream", name="stdout", text="Epoch 1/2\n" + progress + "\n"
                       + "Epoch 2/2\n" + progress.replace("d_loss: 0.", "d_loss: 1.") + "\n")]),
        new_code_cell("plt.show()", outputs=[
            new_output("display_data", data={"image/png": base64.b64encode(_png()).decode(),
                                             "text/plain": "<Figure size 640x480>"})]),
        new_code_cell("1 / 0", outputs=[
            new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                       traceback=["\x1b[31mTraceback (most recent call last)\x1b[0m",
                                  "  line 1", "ZeroDivisionError: division by zero"])]),
    ])


# ---------------------------------------------------------------------------------------------
# The pages in the repository
# ---------------------------------------------------------------------------------------------


def test_rendered_pages_match_their_notebooks():
    stale, _ = render_course.page_status()
    assert not stale, "notebooks changed since their pages were rendered; re-render with:\n" + \
        "\n".join(f"  python scripts/render_course.py {stem[:2]}" for stem in stale)


def test_pages_not_rendered_yet_are_listed():
    # Informational only: a notebook without a page does not fail the suite.
    _, missing = render_course.page_status()
    if missing:
        warnings.warn("course pages not rendered yet (python scripts/render_course.py NN): "
                      + ", ".join(missing), UserWarning, stacklevel=1)


PAGES = os.path.join(ROOT, "docs", "course")


def rendered_pages():
    """`(file name, text)` of every rendered page in the repository."""
    names = sorted(os.listdir(PAGES)) if os.path.isdir(PAGES) else []
    for name in names:
        if name.endswith(".md"):
            yield name, open(os.path.join(PAGES, name), encoding="utf-8").read()


def test_pages_are_full_mode_hold_no_base64_and_stay_small():
    if not os.path.isdir(PAGES):
        return
    for name, text in rendered_pages():
        assert "data:image" not in text and ";base64," not in text, name
        assert "full mode" in text.split("\n", 3)[2], f"{name}: re-render without --smoke"
    assert render_course.directory_bytes(PAGES) < render_course.MAX_TOTAL_BYTES


def test_pages_hold_no_tensorflow_start_up_lines():
    """The C++ lines TensorFlow writes on import (before its logging starts) are noise to a
    learner; notebooks import kerasgan first, which keeps them off stderr."""
    for name, text in rendered_pages():
        for marker in ("absl::InitializeLog", "cudart_stub.cc", "port.cc:"):
            assert marker not in text, f"{name}: TensorFlow start-up line ({marker})"


def test_readme_links_every_rendered_page_and_only_those():
    import re

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    linked = set(re.findall(r"\[read with outputs\]\(docs/course/(\d\d_[a-z0-9_]+)\.md\)", readme))
    pages = os.path.join(ROOT, "docs", "course")
    rendered = {name[:-3] for name in os.listdir(pages) if name.endswith(".md")} \
        if os.path.isdir(pages) else set()
    assert linked == rendered, f"README links {sorted(linked)}, rendered {sorted(rendered)}"


# ---------------------------------------------------------------------------------------------
# Staleness and the hash
# ---------------------------------------------------------------------------------------------


def test_hash_ignores_outputs_and_markdown_spacing_but_not_sources():
    executed = _executed_notebook()
    stripped = nbformat.from_dict(executed)
    for cell in stripped.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    reference = render_course.notebook_hash(executed)
    assert render_course.notebook_hash(stripped) == reference

    stripped.cells[0].source = "#  98 · A lesson\n\n\nWhat you will learn:\nrendering.\n"
    assert render_course.notebook_hash(stripped) == reference, "markdown spacing"
    stripped.cells[0].source = "# 98 · A lesson\n\nWhat you will learn: nothing."
    assert render_course.notebook_hash(stripped) != reference, "markdown words"
    stripped.cells[0].source = executed.cells[0].source
    stripped.cells[1].source = "print('hello!')"
    assert render_course.notebook_hash(stripped) != reference, "code"


def test_page_status_finds_stale_and_missing_pages(tmp_path):
    notebooks, pages = tmp_path / "notebooks", tmp_path / "pages"
    notebooks.mkdir()
    notebook = _executed_notebook()
    for stem in ("97_fresh", "98_stale", "99_missing"):
        nbformat.write(notebook, str(notebooks / f"{stem}.ipynb"))
    for stem in ("97_fresh", "98_stale"):
        text, figures = render_course.render_markdown(notebook, stem, "> header")
        render_course.write_page(str(pages), stem, text, figures)
    notebook.cells[1].source = "print('changed')"
    nbformat.write(notebook, str(notebooks / "98_stale.ipynb"))

    assert render_course.page_status(str(notebooks), str(pages)) == (["98_stale"], ["99_missing"])


# ---------------------------------------------------------------------------------------------
# Collapsing output
# ---------------------------------------------------------------------------------------------


def test_progress_bars_collapse_to_their_final_line():
    updates = "".join(f"\r{i}/50 ━━━━━━━━━━ 1s 20ms/step - loss: {i}\b\b\b" for i in range(1, 51))
    text = render_course.collapse_output(updates + "\n")
    assert text.splitlines()[0] == "50/50 ━━━━━━━━━━ 1s 20ms/step - loss:"
    assert "1/50" not in text and "\r" not in text and "\b" not in text

    log = "".join(f"Epoch {e}/200\n" + f"32/32 ━━━━ 0s 2ms/step - loss: {e}\n"
                  for e in range(1, 201))
    lines = render_course.collapse_output("starting\n" + log + "done\n").splitlines()
    assert lines[0] == "starting" and lines[-1] == "done"
    assert lines[1:3] == ["Epoch 200/200", "32/32 ━━━━ 0s 2ms/step - loss: 200"]
    assert len(lines) == 5 and "400" in lines[3]


def test_each_progress_bar_keeps_its_own_final_line():
    # As a kernel stores them: a Progbar loop, then fit's epochs, then predict's one-step bar.
    progbar = "".join(f"\r{i}/50 ━━━━ 0s - loss: {50 - i}\b" for i in range(1, 51)) + "\n"
    fit = "".join(f"Epoch {e}/5\n" + "".join(
        f"\r{s}/8 ━━━━ 0s 2ms/step - loss: {e}.{s}" for s in range(1, 9)) + "\n"
        for e in range(1, 6))
    lines = render_course.collapse_output(progbar + fit + "1/1 ━━━━ 0s 60ms/step\n(3, 1)\n")
    assert lines.splitlines() == [
        "50/50 ━━━━ 0s - loss:", "Epoch 5/5", "8/8 ━━━━ 0s 2ms/step - loss: 5.8",
        "[10 progress lines collapsed to the last one]", "1/1 ━━━━ 0s 60ms/step", "(3, 1)"]


def test_repeated_lines_collapse_and_others_stay():
    text = render_course.collapse_output("a\n" + "warn\n" * 30 + "b\nb\nc\n")
    assert text.splitlines() == ["a", "warn", "[the line above repeated 30 times]", "b", "b", "c"]


def test_neighbouring_text_outputs_form_one_block():
    notebook = new_notebook(cells=[new_code_cell("model.summary()", outputs=[
        new_output("display_data", data={"text/plain": "Model: \"generator\""}),
        new_output("display_data", data={"text/plain": "┏━━━┓\n┃ a ┃\n┗━━━┛"}),
        new_output("stream", name="stdout", text=" Total params: 3\n"),
        new_output("display_data", data={"image/png": base64.b64encode(_png()).decode()}),
        new_output("stream", name="stdout", text="after\n")])])
    text, figures = render_course.render_markdown(notebook, "98_lesson", "> header")
    assert "```text\nModel: \"generator\"\n┏━━━┓\n┃ a ┃\n┗━━━┛\n Total params: 3\n```\n\n" \
        "![figure 1](98_lesson_files/figure_1.png)\n\n```text\nafter\n```" in text
    assert len(figures) == 1


def test_rendered_page_keeps_errors_in_full_and_joins_stream_pieces():
    text, _ = render_course.render_markdown(_executed_notebook(), "98_lesson", "> header")
    assert "```text\nhello\n```" in text
    assert "Traceback (most recent call last)\n  line 1\nZeroDivisionError: division by zero" \
        in text and "\x1b" not in text
    assert "Epoch 2/2\n5/5 ━━━━━━━━━━ 0s 3ms/step - d_loss: 1" in text
    assert "d_loss: 0.1" not in text


# ---------------------------------------------------------------------------------------------
# Figures as files, atomic writes
# ---------------------------------------------------------------------------------------------


def test_figures_are_written_as_files_beside_the_page(tmp_path):
    notebook = _executed_notebook()
    text, figures = render_course.render_markdown(notebook, "98_lesson", "> header")
    assert text.splitlines()[0].startswith("<!-- kerasgan course page: notebooks/98_lesson.ipynb")
    assert "![figure 1](98_lesson_files/figure_1.png)" in text
    assert "base64" not in text and "<Figure size" not in text
    page = render_course.write_page(str(tmp_path), "98_lesson", text, figures)

    assert open(page, encoding="utf-8").read() == text
    assert open(tmp_path / "98_lesson_files" / "figure_1.png", "rb").read() == _png()
    assert sorted(os.listdir(tmp_path)) == ["98_lesson.md", "98_lesson_files"], "no leftovers"


def test_rerendering_replaces_old_figures(tmp_path):
    notebook = _executed_notebook()
    text, figures = render_course.render_markdown(notebook, "98_lesson", "> header")
    render_course.write_page(str(tmp_path), "98_lesson", text, figures + [("figure_2.png", b"x")])
    render_course.write_page(str(tmp_path), "98_lesson", text, figures)
    assert os.listdir(tmp_path / "98_lesson_files") == ["figure_1.png"]


def test_a_failed_write_leaves_the_old_page(tmp_path, monkeypatch):
    render_course.write_page(str(tmp_path), "98_lesson", "old page\n", [])
    real_replace = os.replace

    def failing_replace(source, target):
        if str(target).endswith(".md"):
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(render_course.os, "replace", failing_replace)
    with pytest.raises(OSError):
        render_course.write_page(str(tmp_path), "98_lesson", "new page\n", [])
    assert (tmp_path / "98_lesson.md").read_text() == "old page\n"
    assert os.listdir(tmp_path) == ["98_lesson.md"], "no staging folder left"


def test_large_pngs_are_shrunk_and_small_ones_kept():
    small = _png()
    assert render_course.shrink_png(small) == small
    large = _png(size=(400, 400), noise=True)
    assert len(large) > render_course.LARGE_PNG_BYTES
    shrunk = render_course.shrink_png(large)
    assert len(shrunk) < len(large)
    from PIL import Image

    assert Image.open(io.BytesIO(shrunk)).size == (400, 400)


# ---------------------------------------------------------------------------------------------
# The script end to end (a real kernel, no TensorFlow)
# ---------------------------------------------------------------------------------------------


def test_unknown_notebook_number_exits_2(capsys):
    assert render_course.main(["77", "--out", os.devnull]) == 2
    assert "no notebook numbered 77" in capsys.readouterr().err


def test_script_renders_plots_and_writes_no_page_for_a_failing_notebook(
        tmp_path, monkeypatch, capsys):
    notebooks, pages = tmp_path / "notebooks", tmp_path / "pages"
    notebooks.mkdir()
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# 97 · Plot"),
        new_code_cell("import os, matplotlib.pyplot as plt\nprint(os.getcwd())\n"
                      "plt.plot([0, 1])\nplt.show()")]), str(notebooks / "97_plot.ipynb"))
    nbformat.write(new_notebook(cells=[new_code_cell("raise RuntimeError('broken lesson')")]),
                   str(notebooks / "98_broken.ipynb"))
    monkeypatch.setattr(render_course, "NOTEBOOKS", str(notebooks))
    monkeypatch.setenv("MPLBACKEND", "Agg")   # as the test-suite's notebooks run; must not leak

    assert render_course.main(["--smoke", "--out", str(pages), "--timeout", "120"]) == 1

    assert "98_broken.ipynb failed" in capsys.readouterr().err
    assert sorted(os.listdir(pages)) == ["97_plot.md", "97_plot_files"]
    text = (pages / "97_plot.md").read_text()
    assert "![figure 1](97_plot_files/figure_1.png)" in text
    assert (pages / "97_plot_files" / "figure_1.png").read_bytes().startswith(b"\x89PNG")
    assert str(notebooks) not in text, "runs in a temporary folder, not beside the notebook"
    assert os.environ["MPLBACKEND"] == "Agg"
