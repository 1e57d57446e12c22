"""Learner versions of the notebooks: no solution code, and they stop at the first exercise."""

import glob
import os
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from kerasgan import course, student
from kerasgan.errors import ConfigError
from tests.cli_helpers import assert_one_clear_line
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


def exercise_ids(path):
    """The exercise ids a teacher's notebook checks, in order, e.g. ["01.discriminator_loss"]."""
    import re

    source = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    return re.findall(r'course\.check\(\s*"([0-9]{2}\.[a-z0-9_]+)"', source)


def experiment_ids(path):
    """The experiment ids a teacher's notebook checks, e.g. ["04.gp_weight", "04.n_critic"]."""
    import re

    source = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    return re.findall(r'course\.check_experiment\(\s*"([0-9]{2}\.[a-z0-9_]+)"', source)


EXERCISE_NOTEBOOKS = [path for path in NOTEBOOKS if exercise_ids(path)]


def test_answer_and_check_cells_carry_nbgrader_metadata():
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", "01_gan_fundamentals.ipynb"), 4)
    marked = [c.metadata.get("nbgrader") for c in notebook.cells if "nbgrader" in c.metadata]
    assert marked == [
        student.nbgrader_solution_metadata("01_discriminator_loss"),
        student.nbgrader_test_metadata("01_discriminator_loss_check"),
        student.nbgrader_solution_metadata("01_non_saturating_generator_loss"),
        student.nbgrader_test_metadata("01_non_saturating_generator_loss_check"),
    ]


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=os.path.basename)
def test_every_exercise_has_a_marked_answer_and_a_locked_check(path):
    notebook = nbformat.read(path, 4)
    metadata = [c.metadata["nbgrader"] for c in notebook.cells
                if "nbgrader" in c.metadata and c.cell_type == "code"]
    answers = [m for m in metadata if m.get("solution")]
    checks = [m for m in metadata if m.get("locked") and m.get("grade")]
    warm_up_checks = [m for m in metadata if m.get("locked") and not m.get("grade")]
    ids = exercise_ids(path)
    warm_ups = [i for i in ids if i in course.EXERCISES and course.EXERCISES[i].warm_up]
    experiments = experiment_ids(path)
    training_checks = [c for c in notebook.cells
                       if c.cell_type == "code" and "course.check_training(" in c.source]
    # 2-4 exercises per notebook, each with an answer cell and a locked check cell: graded, or
    # (a warm-up) not graded; any experiments, each with an answer cell and a graded check; and
    # any training checks (graded, of a class an exercise wrote).
    assert 2 <= len(ids) <= 4
    assert len(answers) == len(ids) + len(experiments)
    assert len(checks) == len(ids) - len(warm_ups) + len(experiments) + len(training_checks)
    assert all(c.metadata["nbgrader"] == student.nbgrader_test_metadata("02_dcgan_training_check")
               for c in training_checks)
    assert [m["grade_id"] for m in warm_up_checks] == [
        i.replace(".", "_") + "_check" for i in warm_ups
    ]


def test_a_warm_ups_check_is_locked_but_earns_no_points():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell('assert course.check("02.to_uint8", f)'),
        nbformat.v4.new_code_cell("def g(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell('assert course.check("02.slerp", g)'),
    ])
    student.mark_exercise_cells(notebook)
    assert notebook.cells[1].metadata["nbgrader"] == student.nbgrader_locked_metadata("02_to_uint8_check")
    assert notebook.cells[3].metadata["nbgrader"] == student.nbgrader_test_metadata("02_slerp_check")


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


def assert_stops_at_the_first_check(notebook, tmp_path):
    """Run `notebook`; it must stop at the check cell right after its first answer cell, with
    the checker's "raised NotImplementedError" hint (the learner's function is unwritten)."""
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    first_answer = next(i for i, c in enumerate(notebook.cells) if "nbgrader" in c.metadata)
    executed = [i for i, c in enumerate(notebook.cells)
                if c.cell_type == "code" and c.execution_count is not None]
    assert executed[-1] == first_answer + 1
    outputs = notebook.cells[first_answer + 1].outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert "raised NotImplementedError" in text
    assert any(o.get("ename") == "AssertionError" for o in outputs)


def test_student_notebook_stops_at_the_first_exercise(student_dir, tmp_path, smoke_env):  # noqa: F811
    # The whole learner notebook: everything before the first exercise runs as the teacher's.
    notebook = nbformat.read(str(student_dir / "01_gan_fundamentals.ipynb"), as_version=4)
    assert_stops_at_the_first_check(notebook, tmp_path)


@pytest.mark.parametrize(
    "name", [os.path.basename(p) for p in EXERCISE_NOTEBOOKS if "01_" not in p]
)
def test_every_student_notebook_stops_at_its_first_exercise(name, student_dir, tmp_path, smoke_env):  # noqa: F811
    """The exercise section of each learner notebook, after its first two code cells (imports
    and parameters): the lesson in between is run by the teacher's smoke test, and rerunning it
    here would double the suite's time for no extra check of the exercises."""
    notebook = nbformat.read(str(student_dir / name), as_version=4)
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    first_answer = next(i for i, c in enumerate(notebook.cells) if "nbgrader" in c.metadata)
    notebook.cells = [notebook.cells[i] for i in code[:2]] + notebook.cells[first_answer - 1:]
    assert_stops_at_the_first_check(notebook, tmp_path)


# === The output folder: never the current folder, never replaced unless --force and ours ===


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A current folder with a repository in it, a home folder of its own, and one small
    teacher notebook outside both."""
    cwd = tmp_path / "project"
    (cwd / ".git").mkdir(parents=True)
    (cwd / "README.md").write_text("keep me")
    (cwd / "code.py").write_text("print('keep me')")
    home = tmp_path / "home"
    home.mkdir()
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 01"),
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell('assert course.check("01.f", f)'),
    ])
    nbformat.write(notebook, str(teacher / "01_tiny.ipynb"))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    return cwd


def tree(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, folders, files in os.walk(folder) for name in folders + files
    )


@pytest.mark.parametrize("out_dir", ["", ".", "./", "missing/..", "..", "~", "~/", ".git/.."])
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_never_writes_over_the_current_folder_its_ancestors_or_home(project, kerasgan, out_dir, force):
    (project / student.MARKER).write_text("as if an earlier run wrote it")  # --force still refuses
    before = tree(project.parent)
    result = kerasgan("course", "student-notebooks", out_dir, "--notebooks", "../teacher",
                      *(["--force"] if force else []))
    assert_one_clear_line(result, "OUT_DIR")
    assert tree(project.parent) == before
    assert (project / "README.md").read_text() == "keep me"


def test_an_existing_output_folder_is_refused_without_force(project, kerasgan):
    first = kerasgan("course", "student-notebooks", "students", "--notebooks", "../teacher")
    assert first.returncode == 0, first.stderr
    (project / "students" / "my_answers.ipynb").write_text("a learner's work")
    again = kerasgan("course", "student-notebooks", "students", "--notebooks", "../teacher")
    assert_one_clear_line(again, "students", "already exists", "--force")
    assert (project / "students" / "my_answers.ipynb").read_text() == "a learner's work"


def test_force_replaces_only_a_folder_this_command_wrote(project, kerasgan):
    (project / "notes").mkdir()
    (project / "notes" / "mine.txt").write_text("keep me")
    refused = kerasgan("course", "student-notebooks", "notes", "--notebooks", "../teacher", "--force")
    assert_one_clear_line(refused, "not written by this command")
    assert tree(project / "notes") == ["mine.txt"]

    assert kerasgan("course", "student-notebooks", "students", "--notebooks", "../teacher").returncode == 0
    (project / "students" / "stale.ipynb").write_text("from an earlier run")
    forced = kerasgan("course", "student-notebooks", "students", "--notebooks", "../teacher", "--force")
    assert forced.returncode == 0, forced.stderr
    assert tree(project / "students") == sorted(["01_tiny.ipynb", student.MARKER])
    assert tree(project) == sorted([".git", "README.md", "code.py", "notes", "notes/mine.txt",
                                    "students", "students/01_tiny.ipynb",
                                    f"students/{student.MARKER}"])


def test_a_failed_forced_rewrite_keeps_the_old_folder(project, kerasgan, monkeypatch):
    assert kerasgan("course", "student-notebooks", "students", "--notebooks", "../teacher").returncode == 0
    before = tree(project)

    def broken(notebook, name="notebook"):
        raise ConfigError(f"{name}: cannot clear")

    monkeypatch.setattr(student, "student_version", broken)
    result = kerasgan("course", "student-notebooks", "students", "--notebooks", "../teacher", "--force")
    assert_one_clear_line(result, "cannot clear")
    assert tree(project) == before


def test_the_output_folder_is_not_the_teachers_folder(project, kerasgan):
    teacher = project.parent / "teacher"
    (teacher / student.MARKER).write_text("even so")
    result = kerasgan("course", "student-notebooks", "../teacher/.", "--notebooks", "../teacher",
                      "--force")
    assert_one_clear_line(result, "teacher's notebooks folder")
    assert tree(teacher) == sorted(["01_tiny.ipynb", student.MARKER])
