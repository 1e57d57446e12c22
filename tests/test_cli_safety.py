"""What the commands write, and what they never touch: output paths are checked (one line,
exit 2) before any model is loaded, earlier results are replaced only with --force, inputs never,
and the current folder, its ancestors and the home folder never, whatever the spelling."""

import hashlib
import os
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import ROOT, assert_one_clear_line

MISSING_MODEL = "no-such-export"  # reaching the model loader means the --out checks passed


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tree(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, folders, files in os.walk(folder) for name in folders + files
    )


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The current folder (with files that must survive) and two small images in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "README.md").write_text("keep me")
    rng = np.random.default_rng(0)
    for name in ("photo.png", "style.png"):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / name)
    return tmp_path


def image_command(command, out, *extra):
    """The arguments of `command` writing `--out out`, with a model/inputs that are never read."""
    inputs = {"sample": [MISSING_MODEL], "mix": [MISSING_MODEL],
              "stylize": ["absent-photo.png", "style.png"]}[command]
    return [command, *inputs, "--out", str(out), *extra]


# What each command says once its --out checks have passed (its next step fails).
NEXT_STEP = {"sample": "no SavedModel", "mix": "no SavedModel", "stylize": "no such file"}
IMAGE_COMMANDS = sorted(NEXT_STEP)


# === sample, mix, stylize: --out ===


@pytest.mark.parametrize("command", IMAGE_COMMANDS)
def test_an_earlier_result_is_kept_unless_force(work, kerasgan, command):
    out = work / "result.png"
    out.write_bytes(b"an earlier result")
    assert_one_clear_line(kerasgan(*image_command(command, out)), str(out), "already exists", "--force")
    assert out.read_bytes() == b"an earlier result"
    forced = kerasgan(*image_command(command, out, "--force"))
    assert_one_clear_line(forced, NEXT_STEP[command])  # past the check, to the next step


@pytest.mark.parametrize("command", IMAGE_COMMANDS)
@pytest.mark.parametrize(
    "out, fragment",
    [
        ("missing/result.png", "does not exist"),
        ("README.md/result.png", "not a folder"),
        ("folder.png", "is a folder"),
    ],
)
def test_bad_out_paths_are_refused_before_any_work(work, kerasgan, command, out, fragment):
    (work / "folder.png").mkdir()
    before = tree(work)
    result = kerasgan(*image_command(command, work / out, "--force"))
    assert_one_clear_line(result, "--out", fragment)
    assert tree(work) == before


@pytest.mark.parametrize("command", IMAGE_COMMANDS)
def test_an_unwritable_out_folder_is_refused_before_any_work(work, kerasgan, command, monkeypatch):
    locked = work / "locked"
    locked.mkdir()
    real_access = os.access  # root may write anywhere: the check itself is exercised
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode)
    )
    assert_one_clear_line(kerasgan(*image_command(command, locked / "r.png")), "not writable")
    assert os.listdir(locked) == []


@pytest.mark.parametrize("which", ["content", "style", "compare"])
def test_stylize_never_overwrites_its_inputs_even_with_force(work, kerasgan, which):
    content, style = work / "photo.png", work / "style.png"
    out = {"content": content, "style": style, "compare": work / "style"}[which]
    if which == "compare":  # OUT_compare.png would be the style image
        style = work / "style_compare.png"
        os.rename(work / "style.png", style)
    digests = {path: digest(path) for path in (content, style)}
    result = kerasgan("stylize", content, style, "--out", f"{out}.png" if which == "compare" else out,
                      "--weights", "random", "--size", "16", "--steps", "1", "--force")
    assert_one_clear_line(result, "input")
    assert {path: digest(path) for path in (content, style)} == digests


# === translate --out DIR ===


def test_translate_out_that_is_a_file_is_refused(work, kerasgan):
    result = kerasgan("translate", MISSING_MODEL, "photo.png", "--out", "README.md")
    assert_one_clear_line(result, "--out", "not a folder")
    assert (work / "README.md").read_text() == "keep me"


def test_translate_checks_every_target_before_loading_the_model(work, kerasgan):
    (work / "out").mkdir()
    (work / "out" / "photo.png").write_bytes(b"an earlier translation")
    result = kerasgan("translate", MISSING_MODEL, "photo.png", "style.png", "--out", "out")
    assert_one_clear_line(result, "photo.png", "already exists", "--force")
    assert tree(work / "out") == ["photo.png"]
    assert_one_clear_line(
        kerasgan("translate", MISSING_MODEL, "photo.png", "--out", "out", "--force"), "no SavedModel"
    )
    assert_one_clear_line(
        kerasgan("translate", MISSING_MODEL, "photo.png", "--out", "README.md/sub"), "not a folder"
    )


@pytest.mark.parametrize("out", [".", "./", "sub/.."])
def test_translate_never_overwrites_an_image_being_translated(work, kerasgan, out):
    (work / "sub").mkdir()
    before = digest(work / "photo.png")
    result = kerasgan("translate", MISSING_MODEL, "photo.png", "--out", out, "--force")
    assert_one_clear_line(result, "photo.png", "input")
    assert digest(work / "photo.png") == before


def test_translate_end_to_end_keeps_earlier_results_and_inputs(work, kerasgan):
    from tests.models.test_cyclegan import export_directions, tiny

    a2b = export_directions(tiny(), str(work / "exports")).split(", ")[0]
    first = kerasgan("translate", a2b, "photo.png", "--out", "out")
    assert first.returncode == 0, first.stderr
    earlier = digest(work / "out" / "photo.png")
    (work / "out" / "photo.png").write_bytes(b"edited by hand")
    assert_one_clear_line(kerasgan("translate", a2b, "photo.png", "--out", "out"), "already exists")
    assert (work / "out" / "photo.png").read_bytes() == b"edited by hand"
    forced = kerasgan("translate", a2b, "photo.png", "--out", "out", "--force")
    assert forced.returncode == 0, forced.stderr
    assert digest(work / "out" / "photo.png") == earlier
    assert tree(work / "out") == ["photo.png"]  # no temporary files left
    # The translation of out/photo.png would be out/photo.png itself.
    inside = kerasgan("translate", a2b, "out/photo.png", "--out", "out", "--force")
    assert_one_clear_line(inside, "input")
    assert digest(work / "out" / "photo.png") == earlier


def test_translate_skips_hostile_images_with_one_line_each_and_translates_the_rest(work, kerasgan):
    from tests.models.test_cyclegan import export_directions, tiny

    a2b = export_directions(tiny(), str(work / "exports")).split(", ")[0]
    with open(work / "photo.png", "rb") as handle:
        (work / "truncated.png").write_bytes(handle.read()[:200])
    # A header that declares 100,000 x 100,000 pixels: decoding it would need tens of GB.
    Image.new("L", (1, 1)).save(work / "bomb.png")
    data = bytearray((work / "bomb.png").read_bytes())
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk stays valid
    (work / "bomb.png").write_bytes(bytes(data))
    result = kerasgan("translate", a2b, "truncated.png", "bomb.png", "photo.png", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if "skipping" in line]
    assert len(skipped) == 2 and "truncated.png" in skipped[0], skipped
    assert "bomb.png" in skipped[1] and "too large" in skipped[1], skipped
    assert tree(work / "out") == ["photo.png"]


# === export --name ===


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", ".", ".."])
def test_export_name_must_be_a_plain_name(work, kerasgan, name):
    before = tree(work)
    result = kerasgan("export", "runs/dcgan", "--name", name, "--export-dir", "models")
    assert_one_clear_line(result, "--name")
    assert tree(work) == before


# === seeds and --deterministic ===

SEEDED = {
    "train": ["train", "dcgan", "--dry-run"],
    "sample": ["sample", MISSING_MODEL],
    "mix": ["mix", MISSING_MODEL],
    "evaluate": ["evaluate", MISSING_MODEL],
    "stylize": ["stylize", "photo.png", "style.png"],
}


@pytest.mark.parametrize("command", sorted(SEEDED))
@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5", "x"])
def test_seeds_outside_the_32_bit_range_are_one_line(work, kerasgan, command, seed):
    result = kerasgan(*SEEDED[command], f"--seed={seed}")
    assert_one_clear_line(result, "--seed")


def test_the_largest_seed_is_accepted(work, kerasgan):
    result = kerasgan("train", "dcgan", "--dry-run", "--seed", str(2**32 - 1))
    assert result.returncode == 0, result.stderr
    assert f'"seed": {2**32 - 1}' in result.stdout


def test_deterministic_is_offered_with_its_cost(work, kerasgan):
    help_text = kerasgan("train", "--help").stdout
    assert "--deterministic" in help_text and "slower" in help_text
    dry = kerasgan("train", "dcgan", "--dry-run", "--deterministic")
    assert dry.returncode == 0 and '"deterministic": true' in dry.stdout
    assert '"deterministic": false' in kerasgan("train", "dcgan", "--dry-run").stdout


def test_deterministic_is_passed_to_training(work, kerasgan, monkeypatch):
    from kerasgan import training

    calls = []

    class Summary:
        def line(self):
            return "trained"

    def fake_train(model, **options):
        calls.append(options)
        return Summary()

    monkeypatch.setattr(training, "train", fake_train)
    assert kerasgan("train", "dcgan", "--deterministic", "--no-export").returncode == 0
    assert calls[-1]["deterministic"] is True
    assert kerasgan("train", "dcgan", "--no-export").returncode == 0
    assert calls[-1].get("deterministic", False) is False


# === In a real process: the report that started this (issue 17) ===


def run_in(cwd, *args):
    # A home of its own, outside `cwd` (matplotlib writes its font cache there).
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3",
           "HOME": tempfile.mkdtemp(prefix="kerasgan-home-")}
    return subprocess.run([sys.executable, "-m", "kerasgan", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_an_unset_out_dir_leaves_the_current_folder_alone(work):
    (work / ".git").mkdir()
    (work / ".git" / "HEAD").write_text("ref: refs/heads/main")
    before = tree(work)
    for out_dir in ("", "missing/.."):
        result = run_in(work, "course", "student-notebooks", out_dir,
                        "--notebooks", os.path.join(ROOT, "notebooks"))
        assert_one_clear_line(result, "OUT_DIR", "current folder" if out_dir else "empty")
        assert tree(work) == before
    assert (work / "README.md").read_text() == "keep me"


def test_sample_twice_keeps_the_first_grid_unless_force(work):
    from kerasgan.export import export_model
    from kerasgan.models import DCGAN

    export_model(DCGAN.from_preset("tiny", seed=0), str(work / "models"), name="dcgan")
    first = run_in(work, "sample", "models/dcgan", "--n", "4", "--out", "grid.png", "--seed", "1")
    assert first.returncode == 0, first.stderr
    kept = digest(work / "grid.png")
    again = run_in(work, "sample", "models/dcgan", "--n", "4", "--out", "grid.png", "--seed", "2")
    assert_one_clear_line(again, "grid.png", "already exists", "--force")
    assert digest(work / "grid.png") == kept
    forced = run_in(work, "sample", "models/dcgan", "--n", "4", "--out", "grid.png", "--seed", "2",
                    "--force")
    assert forced.returncode == 0, forced.stderr
    assert digest(work / "grid.png") != kept
    assert sorted(os.listdir(work)) == ["README.md", "grid.png", "home", "models", "photo.png",
                                        "style.png"]
