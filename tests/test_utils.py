"""`kerasgan.utils`: output paths are resolved before use, protected folders are never written
over, directories are never deleted to make room, and user-facing files are not replaced unless
the caller asks."""

import os

import pytest

from kerasgan import utils
from kerasgan.errors import KerasganError, PathError


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A current folder holding files that must survive, and a home folder of its own."""
    cwd = tmp_path / "project"
    cwd.mkdir()
    (cwd / "README.md").write_text("keep me")
    (cwd / ".git").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    return cwd


def snapshot(folder):
    return sorted(os.listdir(folder))


# The current folder, an ancestor of it, or the home folder, however spelled.
PROTECTED = ["", ".", "./", "missing/..", "missing/../", "./.", "~", "~/", "..", "missing/../..",
             ".git/../.."]


@pytest.mark.parametrize("spelling", PROTECTED)
def test_resolve_output_refuses_protected_folders(work, spelling):
    with pytest.raises(PathError) as raised:
        utils.resolve_output(spelling, "OUT_DIR")
    message = str(raised.value)
    assert "\n" not in message and "OUT_DIR" in message
    assert isinstance(raised.value, KerasganError)


@pytest.mark.parametrize("spelling", ["/", "//", "/.", "/.."])
def test_resolve_output_refuses_filesystem_roots(work, spelling):
    with pytest.raises(PathError, match="filesystem root"):
        utils.resolve_output(spelling)


def test_resolve_output_refuses_a_link_to_the_current_folder(work):
    os.symlink(str(work), str(work / "link"))
    with pytest.raises(PathError, match="current folder"):
        utils.resolve_output("link")


def test_resolve_output_resolves_the_parent_and_keeps_the_name(work):
    (work / "sub").mkdir()
    assert utils.resolve_output("sub/../out") == os.path.join(str(work), "out")
    assert utils.resolve_output("missing/../out/") == os.path.join(str(work), "out")
    assert utils.resolve_output("~/out") == os.path.join(os.environ["HOME"], "out")


@pytest.mark.parametrize("spelling", ["", ".", "./", "missing/..", "..", "~"])
def test_atomic_directory_never_replaces_a_protected_folder(work, spelling):
    before = snapshot(work)
    with pytest.raises(PathError):
        with utils.atomic_path(spelling, directory=True) as tmp:
            with open(os.path.join(tmp, "new.txt"), "w") as handle:
                handle.write("new")
    assert snapshot(work) == before
    assert (work / "README.md").read_text() == "keep me"
    assert snapshot(work.parent) == ["home", "project"]  # no temporary folder left anywhere
    assert snapshot(os.environ["HOME"]) == []


def test_atomic_directory_never_deletes_an_existing_folder(work):
    (work / "out").mkdir()
    (work / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(PathError, match="already exists"):
        with utils.atomic_path("out", directory=True) as tmp:
            open(os.path.join(tmp, "new.txt"), "w").close()
    assert snapshot(work / "out") == ["mine.txt"]
    assert snapshot(work) == [".git", "README.md", "out"]


def test_atomic_directory_replace_renames_the_old_folder_away_after_the_new_one_is_ready(work):
    (work / "out").mkdir()
    (work / "out" / "old.txt").write_text("old")
    with utils.atomic_path("out", directory=True, replace=True) as tmp:
        # While the new folder is written, the old one is still whole.
        assert snapshot(work / "out") == ["old.txt"]
        open(os.path.join(tmp, "new.txt"), "w").close()
    assert snapshot(work / "out") == ["new.txt"]
    assert snapshot(work) == [".git", "README.md", "out"]  # the old folder is gone, no leftovers


def test_atomic_directory_replace_keeps_the_old_folder_when_writing_fails(work):
    (work / "out").mkdir()
    (work / "out" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with utils.atomic_path("out", directory=True, replace=True):
            raise RuntimeError("disk full")
    assert snapshot(work / "out") == ["old.txt"]
    assert snapshot(work) == [".git", "README.md", "out"]


def test_owned_files_are_still_replaced_by_default(work):
    """training.py, callbacks.py, serving.py rewrite their own files with `atomic_path(path)`."""
    (work / "options.json").write_text("old")
    with utils.atomic_path("options.json") as tmp:
        with open(tmp, "w") as handle:
            handle.write("new")
    assert (work / "options.json").read_text() == "new"
    with utils.atomic_path(str(work / "runs" / "a" / "summary.json")) as tmp:
        open(tmp, "w").close()  # missing parents are created, as before
    assert snapshot(work) == [".git", "README.md", "options.json", "runs"]


def test_user_files_are_not_replaced_unless_asked(work):
    (work / "grid.png").write_text("earlier result")
    with pytest.raises(PathError, match="already exists"):
        with utils.atomic_path("grid.png", replace=False) as tmp:
            open(tmp, "w").close()
    assert (work / "grid.png").read_text() == "earlier result"
    assert snapshot(work) == [".git", "README.md", "grid.png"]


def test_a_file_created_while_writing_is_not_replaced(work):
    """The no-replace publish is a hard link: a file another process wrote meanwhile wins."""
    with pytest.raises(PathError, match="already exists"):
        with utils.atomic_path("grid.png", replace=False) as tmp:
            with open(tmp, "w") as handle:
                handle.write("ours")
            (work / "grid.png").write_text("theirs")
    assert (work / "grid.png").read_text() == "theirs"
    assert snapshot(work) == [".git", "README.md", "grid.png"]


def test_no_replace_publish_without_hard_links(work, monkeypatch):
    def no_links(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with utils.atomic_path("grid.png", replace=False) as tmp:
        with open(tmp, "w") as handle:
            handle.write("ours")
    assert (work / "grid.png").read_text() == "ours"
    os.remove(work / "grid.png")
    with pytest.raises(PathError, match="already exists"):
        with utils.atomic_path("grid.png", replace=False) as tmp:
            open(tmp, "w").close()
            (work / "grid.png").write_text("theirs")  # taken after the early check
    assert (work / "grid.png").read_text() == "theirs"
    assert snapshot(work) == [".git", "README.md", "grid.png"]


def test_a_new_user_file_is_published_with_normal_permissions(work):
    old = os.umask(0o022)
    try:
        with utils.atomic_path("grid.png", replace=False) as tmp:
            open(tmp, "w").close()
    finally:
        os.umask(old)
    assert os.stat(work / "grid.png").st_mode & 0o777 == 0o644
    assert snapshot(work) == [".git", "README.md", "grid.png"]


def test_a_file_is_never_written_over_a_folder(work):
    (work / "grid.png").mkdir()
    with pytest.raises(PathError, match="folder"):
        with utils.atomic_path("grid.png") as tmp:
            open(tmp, "w").close()
    assert snapshot(work / "grid.png") == []


@pytest.mark.parametrize(
    "count, expected", [(0, "0 steps"), (1, "1 step"), (2, "2 steps"), (1200, "1,200 steps")]
)
def test_counted_makes_the_noun_plural_unless_the_count_is_one(count, expected):
    assert utils.counted(count, "step") == expected
