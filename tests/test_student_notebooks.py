"""Learner versions of the notebooks: no solution code, and they stop at the first exercise."""

import glob
import os
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from kerasgan import student
from kerasgan.errors import ConfigError
from tests.notebooks.test_notebooks import ROOT, smoke_env  # noqa: F401  (a fixture)

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
pytest.importorskip("nbgrader")


def solution_lines(notebook):
    """The reference lines between the markers, stripped, in every answer cell."""
    lines = []
    for cell in notebook.cells:
        inside = False
        for line in cell.source.splitlines() if student.is_answer_cell(cell) else []:
            if line.strip().startswith(student.BEGIN):
                inside = True
            elif line.strip().startswith(student.END):
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("course") / "students"
    written = student.write_student_notebooks(str(out), os.path.join(ROOT, "notebooks"))
    assert [os.path.basename(p) for p in written] == [os.path.basename(p) for p in NOTEBOOKS]
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_student_version_has_no_solution_code(path, student_dir):
    teacher = nbformat.read(path, as_version=4)
    learner = nbformat.read(str(student_dir / os.path.basename(path)), as_version=4)
    assert len(learner.cells) == len(teacher.cells)
    source = "\n".join(cell.source for cell in learner.cells if cell.cell_type == "code")
    assert "### BEGIN SOLUTION" not in source and "### END SOLUTION" not in source
    for line in solution_lines(teacher):
        assert line not in source, f"solution line left in the student version: {line!r}"
    answers = [c for c in teacher.cells if student.is_answer_cell(c)]
    assert source.count("raise NotImplementedError()") >= len(answers)
    assert not any(c.get("outputs") for c in learner.cells if c.cell_type == "code")


def test_answer_and_check_cells_carry_nbgrader_metadata():
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", "01_gan_fundamentals.ipynb"), 4)
    marked = [c.metadata.get("nbgrader") for c in notebook.cells if "nbgrader" in c.metadata]
    assert marked == [
        student.nbgrader_solution_metadata("01_discriminator_loss"),
        student.nbgrader_test_metadata("01_discriminator_loss_check"),
        student.nbgrader_solution_metadata("01_non_saturating_generator_loss"),
        student.nbgrader_test_metadata("01_non_saturating_generator_loss_check"),
    ]


def test_marking_is_idempotent_and_ignores_prose():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Write between `### BEGIN SOLUTION` and `### END SOLUTION`."),
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell('assert course.check("05.f", f)'),
    ])
    assert student.mark_exercise_cells(notebook) == 1
    once = nbformat.writes(notebook)
    student.mark_exercise_cells(notebook)
    assert nbformat.writes(notebook) == once
    assert "nbgrader" not in notebook.cells[0].metadata
    assert notebook.cells[2].metadata["nbgrader"]["grade_id"] == "05_f_check"
    cleared = student.student_version(notebook)
    assert "return x" not in cleared.cells[1].source
    assert cleared.cells[0].source == notebook.cells[0].source


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not written by this command"):
        student.write_student_notebooks(str(tmp_path), os.path.join(ROOT, "notebooks"))
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_writes_student_notebooks_and_errors_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "students"
    ok = subprocess.run(
        [sys.executable, "-m", "kerasgan", "course", "student-notebooks", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"wrote {len(NOTEBOOKS)} student notebooks" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "kerasgan", "course", "student-notebooks", str(tmp_path / "x"),
         "--notebooks", str(tmp_path / "nowhere")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "no notebooks" in bad.stderr and not (tmp_path / "x").exists()


def test_student_notebook_stops_at_the_first_exercise(student_dir, tmp_path, smoke_env):  # noqa: F811
    notebook = nbformat.read(str(student_dir / "01_gan_fundamentals.ipynb"), as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    first_answer = next(i for i, c in enumerate(notebook.cells) if "nbgrader" in c.metadata)
    executed = [i for i, c in enumerate(notebook.cells)
                if c.cell_type == "code" and c.execution_count is not None]
    # Everything before the first exercise ran; the run stopped at its check cell, because the
    # check calls the learner's (unwritten) function.
    assert executed[-1] == first_answer + 1
    outputs = notebook.cells[first_answer + 1].outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert "raised NotImplementedError" in text
    assert any(o.get("ename") == "AssertionError" for o in outputs)
