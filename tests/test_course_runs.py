"""The training check of notebook 02: a right DCGAN learns, broken ones fail with the right hint.

The runs here are short (the tiny preset, tens of steps): they check what the check does (who
passes, which hint a broken step gets, that nothing raises), not the calibrated bars, which hold
at the notebook's step counts (`course_runs.STEPS`, `TINY_STEPS`; calibrated over seeds by
`course_runs.calibrate`).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import course, course_runs
from kerasgan.errors import ConfigError
from tests import test_course_steps

# Short runs of the tiny networks. After tens of steps the tiny generator's FD-judge is still
# near (or even above) its untrained one, so this bar only says the run was judged; what fails
# the broken steps below is what their runs show, not the score.
TEST_STEPS = 40
TEST_THRESHOLD = 2000.0


class LearnerDCGAN(test_course_steps.LearnerDCGAN):
    """Notebook 02's scaffold (as in the one-step tests) with a right train_step; `mistake`
    switches on one error that shows only over many steps."""

    mistake = None

    def train_step(self, real):
        wrong = self.mistake
        if wrong == "crash":
            return self.generator(real)  # images into G, which takes latents
        batch_size = tf.shape(real)[0]
        fake = self.generator(self.sample_latent(batch_size), training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            if wrong == "nan":  # log of a probability that can be negative
                d_loss = -tf.reduce_mean(tf.math.log(real_logits))
            else:
                d_loss = -tf.reduce_mean(tf.math.log_sigmoid(real_logits))
            d_loss -= tf.reduce_mean(tf.math.log_sigmoid(-fake_logits))
        d_variables = self.discriminator.trainable_variables
        if wrong != "d_frozen":
            self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_variables), d_variables))
        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(latent, training=True), training=True)
            g_loss = -tf.reduce_mean(tf.math.log_sigmoid(fake_logits))
        g_variables = self.generator.trainable_variables
        if wrong != "g_frozen":
            self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_variables), g_variables))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def learner_with(mistake):
    return type(f"Learner_{mistake}", (LearnerDCGAN,), {"mistake": mistake})


def short_run(cls, seed=0, steps=TEST_STEPS):
    return course.check_training(cls, preset="tiny", steps=steps, threshold=TEST_THRESHOLD, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_right_learner_trains_and_passes(seed, capsys):
    run = short_run(LearnerDCGAN, seed)
    out = capsys.readouterr().out
    assert run and run.passed and run.steps == TEST_STEPS
    assert out.strip().splitlines()[-1] == run.message
    assert run.message.startswith("correct: 02.dcgan_training")
    assert f"threshold {TEST_THRESHOLD:g}" in out and f"{run.untrained_score:.1f} untrained" in out
    assert np.isfinite(run.score) and run.score != run.untrained_score  # G moved
    assert run.samples.shape == (course_runs.GRID, 28, 28, 1)
    assert -1 <= run.samples.min() and run.samples.max() <= 1
    assert len(run.history["d_loss"]) == course_runs.CHUNKS


@pytest.mark.parametrize("mistake, hint", [
    ("g_frozen", "G's weights never changed"),
    ("d_frozen", "D's weights never changed"),
    ("nan", "NaN"),
])
def test_a_broken_learner_fails_with_its_hint(mistake, hint, capsys):
    run = short_run(learner_with(mistake), steps=10)
    out = capsys.readouterr().out
    assert not run and run.message.startswith("hint for 02.dcgan_training") and hint in run.message
    assert out.count("hint for") == 1 and out.strip().splitlines()[-1] == run.message


def test_a_crashing_or_unwritten_class_gets_one_line_and_no_traceback(capsys):
    class Unwritten(LearnerDCGAN):
        def train_step(self, real):
            raise NotImplementedError()

    class Unbuildable(LearnerDCGAN):
        def __init__(self, generator, discriminator):  # the scaffold's latent_dim dropped
            super().__init__(generator, discriminator, 8)

    keras.config.set_dtype_policy("mixed_bfloat16")
    crashed = short_run(learner_with("crash"), steps=10)
    out = capsys.readouterr().out
    assert not crashed and out.count("\n") == 1 and "Traceback" not in out
    assert out.startswith("hint for 02.dcgan_training: training raised ")
    assert 'course.check("02.dcgan_train_step"' in out
    assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the run's float32 is undone

    assert not short_run(Unwritten, steps=10)
    assert capsys.readouterr().out == (
        "not yet: 02.dcgan_training raised NotImplementedError; write your train_step first\n"
    )
    assert not short_run(Unbuildable, steps=10)
    out = capsys.readouterr().out
    assert out.startswith("hint for 02.dcgan_training: building and compiling your class raised TypeError")
    assert out.count("\n") == 1


def test_a_score_above_the_threshold_fails_and_says_what_the_samples_show(capsys):
    run = course.check_training(LearnerDCGAN, preset="tiny", steps=10, threshold=1.0, verbose=False)
    assert not run and capsys.readouterr().out == ""
    assert run.message.startswith("hint for 02.dcgan_training: FD-judge")
    assert "does not beat" in run.message or "not well below the untrained" in run.message


@pytest.mark.parametrize("option, value", [
    ("steps", 0), ("steps", 2.5), ("judged", -1), ("batch_size", True), ("threshold", -3.0),
    ("threshold", "low"),
])
def test_bad_options_are_a_config_error(option, value):
    with pytest.raises(ConfigError, match=option):
        course.check_training(LearnerDCGAN, **{option: value})


def test_notebook_02_uses_the_calibrated_settings_of_each_mode():
    smoke = course.notebook_settings("02", smoke=True).extra["training_check"]
    assert smoke == {"preset": "tiny", "steps": course_runs.TINY_STEPS,
                     "threshold": course_runs.TINY_THRESHOLD}
    for mode in ("cpu", "gpu"):
        full = course.notebook_settings("02", smoke=False, mode=mode).extra["training_check"]
        assert full == {"preset": "default", "steps": course_runs.STEPS,
                        "threshold": course_runs.THRESHOLD}
