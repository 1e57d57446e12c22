"""A class's exports ranked side by side: `evaluation.leaderboard` and
`python -m kerasgan course leaderboard`."""

import json
import os

import keras
import numpy as np
import pytest

from kerasgan import datasets, evaluation
from kerasgan.errors import ConfigError
from kerasgan.export import export_model
from kerasgan.models import DCGAN
from tests.cli_helpers import assert_one_clear_line, kerasgan_process

N = 60  # images per side: enough for KID's subsets and k-NN, seconds to score


@pytest.fixture(scope="module")
def class_exports(tmp_path_factory):
    """Two learners' exports: an untrained DCGAN and the same one with its output layer's
    kernel scaled down (grey, blank images: far from any digit)."""
    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("class")
    alice = DCGAN.from_preset("tiny", seed=0)
    bob = DCGAN.from_preset("tiny", seed=1)
    last = [w for w in bob.generator.weights if "kernel" in w.path][-1]
    last.assign(last.numpy() * 0.0)
    export_model(alice, str(base / "alice"), name="dcgan")
    export_model(bob, str(base / "bob"), name="dcgan")
    return {"alice": str(base / "alice" / "dcgan"), "bob": str(base / "bob" / "dcgan"), "base": base}


def snapshot(folder):
    return sorted(os.path.join(root, name) for root, dirs, files in os.walk(folder) for name in dirs + files)


# === evaluation.leaderboard ===


def real_digits():
    return datasets.load_arrays("mnist", seed=0)[0]  # shuffled: the file is in class order


def test_leaderboard_scores_every_entry_alike_and_sorts_by_frechet_distance():
    real = real_digits()
    entries = [
        ("blank", "constant", np.zeros((N, 28, 28), "uint8")),
        ("real", "held-out digits", real[-N:]),
        ("noise", "uniform noise", np.random.default_rng(0).integers(0, 256, (N, 28, 28), dtype="uint8")),
    ]
    rows = evaluation.leaderboard(entries, real[:1000], n=N, seed=0)
    assert [row.name for row in rows][0] == "real"  # real digits beat noise and blanks
    assert [row.rank for row in rows] == [1, 2, 3]
    assert [row.fid for row in rows] == sorted(row.fid for row in rows)
    assert {row.n for row in rows} == {N} and {row.extractor for row in rows} == {"mnist_judge"}
    assert rows[0].kind == "held-out digits"
    # The same numbers as one evaluation of that entry alone: one yardstick, no second scoring.
    alone = evaluation.evaluate(real[:1000], real[-N:], "mnist_judge", n=N, seed=0,
                                metrics=("fid", "kid", "precision_recall"))
    assert rows[0].fid == pytest.approx(alone["fid"]) and rows[0].kid == pytest.approx(alone["kid"])
    assert rows[0].recall == pytest.approx(alone["recall"])


def test_format_leaderboard_shows_rows_side_by_side_with_n_and_extractor():
    row = evaluation.LeaderboardRow(1, "alice/dcgan", "DCGAN", 12.5, 0.0123, 0.001, 0.9, 0.8, 500, "mnist_judge")
    text = evaluation.format_leaderboard([row, evaluation.LeaderboardRow(
        2, "bob", "WGANGP", 40.0, 0.05, 0.002, 0.5, 0.4, 500, "mnist_judge")])
    lines = text.splitlines()
    assert "n=500" in lines[0] and "mnist_judge" in lines[0]
    assert lines[1].split() == ["#", "name", "model", "FD-judge", "KID", "precision", "recall"]
    assert lines[2].split()[:4] == ["1", "alice/dcgan", "DCGAN", "12.500"]
    assert lines[3].split()[:4] == ["2", "bob", "WGANGP", "40.000"]
    inception = evaluation.LeaderboardRow(1, "a", "DCGAN", 1.0, 0.0, 0.0, 1.0, 1.0, 50, "inception")
    assert "FID" in evaluation.format_leaderboard([inception]).splitlines()[1]


@pytest.mark.parametrize(
    "entries, fragment",
    [
        ([], "at least one generator"),
        ([("a", "x", np.zeros((N, 28, 28), "uint8"))] * 2, "two leaderboard entries are called a"),
        ([("small", "x", np.zeros((N - 1, 28, 28), "uint8"))], "generated (small) images hold only"),
    ],
)
def test_leaderboard_refuses_what_cannot_be_ranked(entries, fragment):
    with pytest.raises(ConfigError) as error:
        evaluation.leaderboard(entries, real_digits(), n=N)
    assert fragment in str(error.value)


# === python -m kerasgan course leaderboard ===


def test_cli_ranks_the_exports_best_first(class_exports, kerasgan):
    before = snapshot(class_exports["base"])
    result = kerasgan("course", "leaderboard", class_exports["bob"], class_exports["alice"],
                      "--data", "embedded", "--n", N)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"against {N} real images of mnist (embedded), seed 0"
    assert f"n={N}" in lines[1] and "mnist_judge" in lines[1]
    ranked = [line.split() for line in lines[3:]]
    names = [os.path.normpath(class_exports[who]) for who in ("alice", "bob")]
    assert sorted(row[1] for row in ranked) == sorted(names)
    distances = [float(row[3]) for row in ranked]
    assert distances == sorted(distances)
    assert all(row[2] == "DCGAN" for row in ranked)
    # Progress on stderr, one line per export sampled and scored.
    assert result.stderr.count("kerasgan: sampling") == 2 and result.stderr.count("kerasgan: scoring") == 2
    assert snapshot(class_exports["base"]) == before  # nothing written


def test_cli_same_seed_same_table(class_exports, kerasgan):
    args = ("course", "leaderboard", class_exports["alice"], class_exports["bob"], "--data", "embedded",
            "--n", N, "--seed", 5)
    first, second = kerasgan(*args), kerasgan(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_cli_in_a_real_process(class_exports):
    result = kerasgan_process("course", "leaderboard", class_exports["alice"], class_exports["bob"],
                              "--data", "embedded", "--n", N)
    assert result.returncode == 0, result.stderr
    assert "FD-judge" in result.stdout and "Traceback" not in result.stderr


def test_cli_a_bad_export_in_a_real_process_is_one_line(tmp_path):
    result = kerasgan_process("course", "leaderboard", str(tmp_path / "nobody"), "--data", "embedded")
    assert_one_clear_line(result, "nobody", "is not a folder")


def stylegan_like_export(base):
    """An export whose run folder says it learned StyleGAN's coloured digits."""
    run_dir = base / "run"
    run_dir.mkdir()
    (run_dir / "model.json").write_text(json.dumps({"model": "stylegan"}))
    keras.utils.set_random_seed(0)
    export_model(DCGAN.from_preset("tiny", seed=2), str(base), name="carol", metadata={"run_dir": str(run_dir)})
    return str(base / "carol")


def rgb_export(base):
    """A DCGAN at another image shape (32x32 RGB)."""
    keras.utils.set_random_seed(0)
    export_model(DCGAN.from_preset("tiny", image_size=32, channels=3, seed=3), str(base), name="dave")
    return str(base / "dave")


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda base, exports: [str(base / "missing")], "is not a folder"),
        (lambda base, exports: [str(base)], "no SavedModel"),  # a folder, but not an export
        (lambda base, exports: [exports["alice"], exports["alice"] + "/1"], "are the same export"),
        (lambda base, exports: [exports["alice"], stylegan_like_export(base)], "different datasets"),
        (lambda base, exports: [exports["alice"], rgb_export(base)], "different image shapes"),
    ],
    ids=["missing", "not-an-export", "twice", "mixed-datasets", "mixed-shapes"],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(make, fragment, class_exports, tmp_path, kerasgan):
    dirs = make(tmp_path, class_exports)
    before = snapshot(tmp_path), snapshot(class_exports["base"])
    result = kerasgan("course", "leaderboard", *dirs, "--data", "embedded", "--n", N)
    assert_one_clear_line(result, fragment)
    assert "sampling" not in result.stderr  # refused before any work
    assert (snapshot(tmp_path), snapshot(class_exports["base"])) == before
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--n", "1"], "n must be an integer >= 2"),
        (["--n", "6000"], "more than the 5000 real images"),
        (["--extractor", "vgg"], "unknown --extractor 'vgg'"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_cli_bad_options_are_one_line(args, fragment, class_exports, kerasgan):
    result = kerasgan("course", "leaderboard", class_exports["alice"], "--data", "embedded", *args)
    assert_one_clear_line(result, fragment)


def test_cli_without_exports_is_a_usage_error(kerasgan):
    assert_one_clear_line(kerasgan("course", "leaderboard"), "EXPORT_DIR")
