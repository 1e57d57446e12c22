"""Learner versions of the course notebooks: the same notebooks with the answers taken out.

The notebooks in `notebooks/` are the teacher's versions: every exercise's reference answer sits
between `### BEGIN SOLUTION` and `### END SOLUTION`, followed by a check cell
(`assert course.check("NN.name", my_function)`). This module follows nbgrader's conventions so
that teachers who use nbgrader get student versions and autograding with no extra work:

* `mark_exercise_cells` gives each answer cell nbgrader's *solution* metadata and the check
  cell after it nbgrader's *locked test* metadata (with `grade_id`s derived from the exercise
  ids);
* `write_student_notebooks` runs nbgrader's own `ClearSolutions` preprocessor, which replaces
  each marked region with `raise NotImplementedError()`, and strips outputs. It needs no
  nbgrader course directory or database. From the shell:
  `python -m kerasgan course student-notebooks OUT_DIR`.

A learner who runs a student notebook top to bottom stops at the first exercise with
`NotImplementedError` until they write their answer; `course.check` then grades it.
"""

import copy
import glob
import os
import re

from kerasgan.errors import ConfigError
from kerasgan.utils import atomic_path, resolve_output

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SCHEMA_VERSION = 3
# Written into every output folder, so that `--force` may replace it (and nothing else: a folder
# without it is never replaced).
MARKER = ".kerasgan-student-notebooks"

_CHECK = re.compile(r"""course\.check(?:_experiment)?\(\s*["']([0-9A-Za-z_.\-]+)["']""")
_TRAINING_CHECK = re.compile(r"course\.check_training\(")
# What the student version shows in a manually graded answer cell (nbgrader's own stub).
ANSWER_STUB = "YOUR ANSWER HERE"


def _grade_id(text):
    return re.sub(r"[^0-9A-Za-z_-]", "_", text)


def nbgrader_solution_metadata(grade_id):
    """nbgrader's metadata of an answer cell."""
    return {"solution": True, "grade": False, "locked": False, "grade_id": grade_id,
            "schema_version": SCHEMA_VERSION}


def nbgrader_test_metadata(grade_id, points=1):
    """nbgrader's metadata of a locked, graded test cell."""
    return {"grade": True, "locked": True, "points": points, "grade_id": grade_id,
            "solution": False, "schema_version": SCHEMA_VERSION}


def nbgrader_manual_metadata(grade_id, points=2):
    """nbgrader's metadata of a manually graded answer cell (e.g. a markdown explanation)."""
    return {"solution": True, "grade": True, "locked": False, "points": points,
            "grade_id": grade_id, "schema_version": SCHEMA_VERSION}


def is_manual_answer_cell(cell):
    """A markdown cell with nbgrader's solution and grade metadata: an answer the teacher grades
    by hand; the student version replaces its text with `ANSWER_STUB`."""
    marks = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "markdown" and bool(marks.get("solution")) and bool(marks.get("grade"))


def is_answer_cell(cell):
    """A code cell with a line `### BEGIN SOLUTION` (prose that mentions the marker is not)."""
    return cell.cell_type == "code" and any(
        line.strip().startswith(BEGIN) for line in cell.source.splitlines()
    )


def nbgrader_locked_metadata(grade_id):
    """nbgrader's metadata of a read-only cell that is not graded (a warm-up's check)."""
    return {"grade": False, "locked": True, "grade_id": grade_id, "solution": False,
            "schema_version": SCHEMA_VERSION}


def _is_warm_up(exercise_id):
    from kerasgan import course

    exercise = course.EXERCISES.get(exercise_id)
    return exercise is not None and exercise.warm_up


def mark_exercise_cells(notebook, name="notebook"):
    """Give every answer cell and its check cell nbgrader's metadata, in place.

    An answer cell is a code cell with a `### BEGIN SOLUTION` line; its check cell is the next code
    cell if it calls `course.check(...)`; a warm-up's check (`course.Exercise.warm_up`) is locked
    but earns no points. Grade ids come from the exercise id of the check
    (`"01.discriminator_loss"` -> `01_discriminator_loss` and `01_discriminator_loss_check`);
    an experiment's check (`course.check_experiment(...)`) is marked the same way, and a cell
    that calls `course.check_training(...)` is a locked, graded check too. Nothing else
    in the notebook changes: manually graded markdown answers (`is_manual_answer_cell`) keep
    their metadata.

    Args:
        notebook: an `nbformat` notebook.
        name: used in grade ids of exercises without a check, and in error messages.

    Returns:
        The number of answer cells marked.
    """
    cells = notebook.cells
    count = 0
    for index, cell in enumerate(cells):
        if not is_answer_cell(cell):
            continue
        if cell.source.count(BEGIN) != cell.source.count(END):
            raise ConfigError(f"{name}: cell {index} has unbalanced {BEGIN!r} / {END!r} markers")
        count += 1
        check = next((c for c in cells[index + 1:] if c.cell_type == "code"), None)
        match = _CHECK.search(check.source) if check is not None else None
        grade_id = _grade_id(match.group(1) if match else f"{name}_exercise{count}")
        cell.metadata["nbgrader"] = nbgrader_solution_metadata(grade_id)
        if match and _is_warm_up(match.group(1)):
            check.metadata["nbgrader"] = nbgrader_locked_metadata(f"{grade_id}_check")
        elif match:
            check.metadata["nbgrader"] = nbgrader_test_metadata(f"{grade_id}_check")
    for cell in cells:
        # A training check grades the class an earlier answer cell wrote: locked and graded.
        if cell.cell_type == "code" and _TRAINING_CHECK.search(cell.source):
            cell.metadata["nbgrader"] = nbgrader_test_metadata(f"{_training_grade_id()}_check")
    return count


def _training_grade_id():
    from kerasgan import course_runs

    return _grade_id(course_runs.EXERCISE_ID)


def mark_notebook_file(path):
    """`mark_exercise_cells` on a notebook file, rewritten only if its metadata changed.

    Returns:
        The number of answer cells in the notebook.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    before = copy.deepcopy(notebook)
    count = mark_exercise_cells(notebook, _stem(path))
    if notebook != before:
        with atomic_path(path) as tmp:
            nbformat.write(notebook, tmp)
    return count


def student_version(notebook, name="notebook"):
    """A copy of `notebook` with every solution region cleared and every output removed.

    Uses nbgrader's `ClearSolutions` preprocessor (each region between the markers becomes
    `raise NotImplementedError()`); cells are marked first, so a notebook whose metadata was
    never set is cleared just the same.
    """
    clear_solutions = _clear_solutions()
    notebook = copy.deepcopy(notebook)
    mark_exercise_cells(notebook, name)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    try:
        notebook, _ = clear_solutions.preprocess(notebook, {})
    except RuntimeError as error:  # nbgrader's complaint about a malformed region
        raise ConfigError(f"{name}: {error}") from None
    return notebook


def write_student_notebooks(out_dir, notebooks_dir="notebooks", force=False):
    """Write the learner version of every `NN_*.ipynb` in `notebooks_dir` to `out_dir`.

    The folder appears complete or not at all (written to a temporary folder, then renamed).
    `out_dir` must be new: the current folder, its ancestors, the home folder and filesystem
    roots are refused however they are spelled (`""`, `"."`, `"missing/.."`, `"~"`), and an
    existing folder is refused too, unless `force` is set and an earlier run of this function
    wrote it (it holds the marker file). That folder is renamed away only once the new one is
    complete, and removed last.

    Args:
        out_dir: the output folder.
        notebooks_dir: the teacher's notebooks.
        force: replace an existing `out_dir` that this function wrote.

    Returns:
        The paths written, in course order.

    Raises:
        PathError: `out_dir` is protected or exists (without `force`).
        ConfigError: no notebooks, a folder this function did not write, or a malformed
            notebook.
    """
    import nbformat

    resolved = resolve_output(out_dir, "OUT_DIR")
    if os.path.lexists(resolved):
        ours = os.path.isdir(resolved) and os.path.isfile(os.path.join(resolved, MARKER))
        if not ours:
            raise ConfigError(
                f"OUT_DIR {out_dir!r} exists and was not written by this command; choose a new folder"
            )
        if not force:
            raise ConfigError(
                f"OUT_DIR {out_dir!r} already exists (an earlier run wrote it); choose a new "
                "folder, or pass --force to replace it"
            )
    if resolved == os.path.realpath(notebooks_dir):
        raise ConfigError("OUT_DIR must differ from the teacher's notebooks folder")
    paths = sorted(glob.glob(os.path.join(notebooks_dir, "[0-9][0-9]_*.ipynb")))
    if not paths:
        raise ConfigError(f"no notebooks (NN_name.ipynb) found in {notebooks_dir!r}")
    written = []
    with atomic_path(resolved, directory=True, replace=force) as tmp:
        for path in paths:
            try:
                notebook = nbformat.read(path, as_version=4)
            except Exception as error:
                raise ConfigError(f"cannot read notebook {path!r}: {error}") from None
            student = student_version(notebook, _stem(path))
            nbformat.write(student, os.path.join(tmp, os.path.basename(path)))
            written.append(os.path.join(out_dir, os.path.basename(path)))
        with open(os.path.join(tmp, MARKER), "w") as marker:
            marker.write("learner notebooks written by `python -m kerasgan course student-notebooks`\n")
    return written


def _clear_solutions():
    try:
        from nbgrader.preprocessors import ClearSolutions
    except ImportError:
        raise ConfigError(
            "writing student notebooks needs nbgrader: pip install nbgrader "
            "(or pip install 'kerasgan[course]')"
        ) from None

    class ClearCodeSolutions(ClearSolutions):
        """nbgrader's ClearSolutions on code cells and manually graded markdown answers only:
        the course's prose may quote the markers (nbgrader would take such a line for the start
        of an answer). A manual answer's model text becomes `ANSWER_STUB`."""

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code" and not is_manual_answer_cell(cell):
                return cell, resources
            return super().preprocess_cell(cell, resources, index)

    return ClearCodeSolutions(text_stub=ANSWER_STUB)


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]
