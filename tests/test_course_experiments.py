"""Ablations with a known direction: the reference passes over several seeds, wrong results get
the right hint, the helpers measure what they say, and the explanation cells reach nbgrader."""

import math
import os

import nbformat
import numpy as np
import pytest

from kerasgan import course, course_experiments, student
from kerasgan.course_experiments import EXPERIMENTS, check_experiment
from kerasgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = {
    "04.gp_weight": {"gp_weight=0": 0.6, "gp_weight=10": 0.1, "gp_weight=100": 0.05},
    "04.n_critic": {"n_critic=1": 0.3, "n_critic=5": 8.0},
    "05.cycle_weight": {"cycle_weight=0": 0.75, "cycle_weight=10": 0.5},
    "07.truncation": {"truncation=1": 6.0, "truncation=0.5": 3.4, "truncation=0.1": 0.8},
}


def verdict(capsys, experiment_id, results):
    """`check_experiment`'s answer and the one line it printed."""
    passed = course.check_experiment(experiment_id, results)
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0, out
    return passed, out


# === The reference experiments, at the size the notebooks' smoke runs use ===


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("experiment_id", sorted(EXPERIMENTS))
def test_the_reference_experiment_passes_for_every_seed(experiment_id, seed, capsys):
    results = course_experiments.reference_results(experiment_id, seed=seed)
    assert set(results) == set(EXPERIMENTS[experiment_id].arms)
    passed, out = verdict(capsys, experiment_id, results)
    assert passed, f"seed {seed}: {results}: {out}"
    assert out.startswith(f"correct: {experiment_id}")


def test_every_experiment_is_described_and_its_example_results_pass(capsys):
    assert set(GOOD) == set(EXPERIMENTS) and len(EXPERIMENTS) >= 4
    for experiment_id, experiment in EXPERIMENTS.items():
        assert experiment.question and experiment.metric and experiment.expected
        assert os.path.isfile(os.path.join(ROOT, "notebooks", experiment.notebook))
        assert {arm for r in experiment.relations for arm in (r.larger, r.smaller)} <= set(experiment.arms)
        assert verdict(capsys, experiment_id, GOOD[experiment_id])[0]


# === Wrong results: one hint each, never a traceback ===


def test_a_reversed_result_fails_and_names_the_arms_and_the_causes(capsys):
    results = {"gp_weight=0": 0.05, "gp_weight=10": 0.1, "gp_weight=100": 0.6}
    passed, out = verdict(capsys, "04.gp_weight", results)
    assert not passed
    assert out.startswith("hint for 04.gp_weight: expected gp_weight=0 > gp_weight=10")
    assert "the other way round" in out and "same number of steps" in out


def test_a_result_the_right_way_but_within_the_margin_fails(capsys):
    passed, out = verdict(capsys, "05.cycle_weight", {"cycle_weight=0": 0.51, "cycle_weight=10": 0.5})
    assert not passed
    assert "the right way, but by less than the margin" in out
    assert "cycle_weight=10 at most 0.9 x cycle_weight=0" in out


def test_a_flat_result_says_the_setting_never_changed(capsys):
    passed, out = verdict(capsys, "04.n_critic", {"n_critic=1": 2.5, "n_critic=5": 2.5})
    assert not passed
    assert "every arm measured the same value, 2.5" in out and "never reached the model" in out
    passed, out = verdict(capsys, "07.truncation", dict.fromkeys(EXPERIMENTS["07.truncation"].arms, 1.0))
    assert not passed and "truncation=t" in out


def test_a_missing_arm_is_named(capsys):
    results = {"gp_weight=0": 0.6, "gp_weight=10": 0.1}
    passed, out = verdict(capsys, "04.gp_weight", results)
    assert not passed and "arm 'gp_weight=100' is missing" in out
    # a misspelt arm: the hint says so
    passed, out = verdict(capsys, "04.gp_weight", {**results, "gp_weight=100.0": 0.05})
    assert not passed and "'gp_weight=100.0'" in out and "a spelling?" in out


@pytest.mark.parametrize("bad", [math.nan, math.inf, np.float32("nan")])
def test_a_nan_or_infinite_arm_is_named(capsys, bad):
    passed, out = verdict(capsys, "05.cycle_weight", {"cycle_weight=0": bad, "cycle_weight=10": 0.5})
    assert not passed
    assert "results['cycle_weight=0'] is" in out and "diverged" in out


@pytest.mark.parametrize("bad", ["0.7", [0.7, 0.8], None, True, np.array([0.7, 0.8])])
def test_a_value_that_is_not_one_number_is_named(capsys, bad):
    passed, out = verdict(capsys, "05.cycle_weight", {"cycle_weight=0": bad, "cycle_weight=10": 0.5})
    assert not passed and "not one number" in out


def test_numbers_of_any_kind_are_accepted(capsys):
    import tensorflow as tf

    results = {"cycle_weight=0": tf.constant(0.75), "cycle_weight=10": np.array([0.5], "float32")}
    assert verdict(capsys, "05.cycle_weight", results)[0]


def test_results_that_are_not_a_dict_get_a_hint(capsys):
    passed, out = verdict(capsys, "04.n_critic", [0.3, 8.0])
    assert not passed and "must be a dict" in out and "'n_critic=1'" in out


def test_an_unknown_experiment_raises_with_the_known_ids():
    for check in (course.check_experiment, check_experiment):
        with pytest.raises(ConfigError, match="unknown experiment '04.nope'; known: 04.gp_weight, 04.n_critic"):
            check("04.nope", {})
    with pytest.raises(ConfigError, match="known: 04.gp_weight"):
        course_experiments.reference_results("99.x")


def test_quiet_checks_print_nothing(capsys):
    assert not check_experiment("04.n_critic", {"n_critic=1": 1.0}, verbose=False)
    assert check_experiment("04.n_critic", GOOD["04.n_critic"], verbose=False)
    assert capsys.readouterr().out == ""


# === The measuring helpers ===


class _LinearWGAN:
    """A stand-in WGAN: the critic is `scale * sum(x)`, so its gradient norm is known."""

    latent_dim = 2

    def __init__(self, scale, pixels=4):
        self.scale, self.pixels = scale, pixels

    @staticmethod
    def latent_batch(n, latent_dim, seed=None):
        return np.random.default_rng(seed).normal(size=(n, latent_dim)).astype("float32")

    def generator(self, z, training=False):
        return np.zeros((len(z), self.pixels, 1, 1), "float32") - 0.5

    def critic(self, x, training=False):
        from keras import ops

        return self.scale * ops.sum(x, axis=(1, 2, 3))[:, None]


def test_critic_gradient_norm_gap_is_distance_of_the_norm_from_one():
    images = np.full((3, 4, 1, 1), 0.5, "float32")
    # every pixel's gradient is `scale`, over 4 pixels: a norm of 2 * scale
    assert course_experiments.critic_gradient_norm_gap(_LinearWGAN(0.5), images) == pytest.approx(0.0, abs=1e-5)
    assert course_experiments.critic_gradient_norm_gap(_LinearWGAN(2.0), images) == pytest.approx(3.0, abs=1e-5)


def test_wasserstein_estimate_is_the_gap_of_the_mean_scores():
    images = np.full((3, 4, 1, 1), 0.5, "float32")   # each scores 4 * 0.5 * 2; each fake -4 * 0.5 * 2
    assert course_experiments.wasserstein_estimate(_LinearWGAN(2.0), images) == pytest.approx(8.0)


def test_cycle_error_is_the_mean_round_trip_error():
    class Shift:
        def translate(self, images, direction):
            return images + (0.25 if direction == "a2b" else 0.0)

    images = np.zeros((2, 4, 4, 1), "float32")
    assert course_experiments.cycle_error(Shift(), images) == pytest.approx(0.25)


def test_within_class_diversity_averages_the_classes():
    images = np.zeros((4, 1, 1, 1), "float32")
    images[1] = 3.0   # class 0: two images 3 apart; class 1: two equal images
    assert course_experiments.within_class_diversity(images, [0, 0, 1, 1]) == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="class 1 has one image"):
        course_experiments.within_class_diversity(images[:3], [0, 0, 1])
    with pytest.raises(ConfigError, match="4 images but 3 labels"):
        course_experiments.within_class_diversity(images, [0, 0, 1])


# === The explanation cells: graded by hand, answered by the learner ===


def _experiment_notebook():
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "results = {}\nfor w in (0, 10):\n    ### BEGIN SOLUTION\n    results[w] = w\n"
            "    ### END SOLUTION"
        ),
        nbformat.v4.new_code_cell('assert course.check_experiment("05.cycle_weight", results)'),
        nbformat.v4.new_markdown_cell("Explain the result in your own words."),
        nbformat.v4.new_markdown_cell(
            "Without the cycle term nothing asks F to undo G.",
            metadata={"nbgrader": student.nbgrader_manual_metadata("05_cycle_weight_explanation")},
        ),
        nbformat.v4.new_markdown_cell("Prose that quotes `### BEGIN SOLUTION` stays."),
    ])


def test_marking_keeps_a_manual_answer_and_marks_the_experiments_check():
    notebook = _experiment_notebook()
    assert student.mark_exercise_cells(notebook) == 1
    assert notebook.cells[0].metadata["nbgrader"] == student.nbgrader_solution_metadata("05_cycle_weight")
    assert notebook.cells[1].metadata["nbgrader"] == student.nbgrader_test_metadata("05_cycle_weight_check")
    assert notebook.cells[3].metadata["nbgrader"] == {
        "solution": True, "grade": True, "locked": False, "points": 2,
        "grade_id": "05_cycle_weight_explanation", "schema_version": 3,
    }


def test_the_student_version_clears_the_model_answer_only():
    pytest.importorskip("nbgrader")
    teacher = _experiment_notebook()
    learner = student.student_version(teacher)
    assert learner.cells[3].source == student.ANSWER_STUB
    assert learner.cells[3].metadata["nbgrader"]["points"] == 2
    assert "nothing asks F" not in "\n".join(c.source for c in learner.cells)
    assert learner.cells[2].source == teacher.cells[2].source
    assert learner.cells[4].source == teacher.cells[4].source
    assert "results[w] = w" not in learner.cells[0].source


@pytest.mark.parametrize("name", ["04_wgan_gp", "05_cyclegan", "07_biggan"])
def test_each_experiment_in_the_notebooks_has_a_check_and_a_manual_explanation(name):
    pytest.importorskip("nbgrader")
    teacher = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
    ids = [e for e in EXPERIMENTS if EXPERIMENTS[e].notebook == f"{name}.ipynb"]
    code = "\n".join(c.source for c in teacher.cells if c.cell_type == "code")
    manual = [c for c in teacher.cells if student.is_manual_answer_cell(c)]
    assert [c.metadata["nbgrader"] for c in manual] == [
        student.nbgrader_manual_metadata(f"{e.replace('.', '_')}_explanation") for e in ids
    ]
    learner = student.student_version(teacher, name)
    answers = [c for c in learner.cells if student.is_manual_answer_cell(c)]
    assert [c.source for c in answers] == [student.ANSWER_STUB] * len(ids)
    learner_text = "\n".join(c.source for c in learner.cells)
    for experiment_id, model_answer in zip(ids, manual):
        assert f'assert course.check_experiment("{experiment_id}", results)' in code
        assert model_answer.source.strip() and model_answer.source not in learner_text
        assert all(
            line not in learner_text for line in model_answer.source.splitlines() if len(line) > 30
        )
