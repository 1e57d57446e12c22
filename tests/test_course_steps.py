"""The step exercises: a right train_step passes, each common wrong one fails with its hint."""

import keras
import pytest
import tensorflow as tf

from kerasgan import course, course_steps


class LearnerDCGAN(keras.Model):
    """A learner's DCGAN written from the notebook's scaffold: plain tapes, the paper's losses.

    Each keyword of `mistake` switches on one error a learner could make.
    """

    mistake = None

    def __init__(self, generator, discriminator, latent_dim):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim
        self.seed_generator = keras.random.SeedGenerator(0)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def sample_latent(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def train_step(self, real):
        wrong = self.mistake
        training = wrong != "inference_mode"
        batch_size = tf.shape(real)[0]
        d_variables = self.discriminator.trainable_variables
        if wrong == "d_updates_g":
            d_variables = d_variables + self.generator.trainable_variables
        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=training)
            real_logits = self.discriminator(real, training=training)
            fake_logits = self.discriminator(fake, training=training)
            if wrong == "swapped_labels":
                real_logits, fake_logits = fake_logits, real_logits
            d_loss = -tf.reduce_mean(tf.math.log_sigmoid(real_logits)) - tf.reduce_mean(
                tf.math.log_sigmoid(-fake_logits)
            )
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_variables), d_variables))
        if wrong != "same_latents":
            latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(latent, training=training), training=training)
            if wrong == "minimax":
                g_loss = tf.reduce_mean(tf.math.log_sigmoid(-fake_logits))
            elif wrong == "g_loss_sign":
                g_loss = tf.reduce_mean(tf.math.log_sigmoid(fake_logits))
            else:
                g_loss = -tf.reduce_mean(tf.math.log_sigmoid(fake_logits))
        g_variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_variables), g_variables))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def learner_with(mistake):
    return type(f"Learner_{mistake}", (LearnerDCGAN,), {"mistake": mistake})


def test_a_right_dcgan_step_passes(capsys):
    assert course.check("02.dcgan_train_step", LearnerDCGAN) is True
    assert "correct: 02.dcgan_train_step" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    ("swapped_labels", "D's loss has the wrong sign"),
    ("minimax", "minimax loss log(1 - D(G(z)))"),
    ("d_updates_g", "D's update reached G's weights"),
    ("inference_mode", "training=True"),
    ("same_latents", "drew latents 1 time(s)"),
    ("g_loss_sign", "G's loss has the wrong sign"),
])
def test_each_common_mistake_fails_with_its_hint(mistake, hint, capsys):
    assert course.check("02.dcgan_train_step", learner_with(mistake)) is False
    out = capsys.readouterr().out
    assert out.startswith("hint for 02.dcgan_train_step") and hint in out, out
    assert out.count("\n") == 1  # one line, no traceback


def test_every_mistake_replay_differs_from_the_right_step():
    """Otherwise a right step could be told it made that mistake (and the check is vacuous)."""
    setup = course_steps.STEP_EXERCISES["02.dcgan_train_step"].setup()
    right = course_steps._plain_gan_step(setup)
    assert course_steps.first_difference(course_steps._dcgan_reference(setup), right) is None
    for mistake in course_steps.DCGAN_MISTAKES:
        assert course_steps.first_difference(right, mistake.step(setup)) is not None, mistake.hint


def test_an_unwritten_or_crashing_step_gets_one_line(capsys):
    class Unwritten(LearnerDCGAN):
        def train_step(self, real):
            raise NotImplementedError()

    class Crashing(LearnerDCGAN):
        def train_step(self, real):
            return self.generator(real)  # images into G

    assert course.check("02.dcgan_train_step", Unwritten) is False
    assert capsys.readouterr().out.startswith("not yet: 02.dcgan_train_step")
    assert course.check("02.dcgan_train_step", Crashing) is False
    out = capsys.readouterr().out
    assert out.startswith("hint for 02.dcgan_train_step: one training step raised") and out.count("\n") == 1


def test_a_step_without_logs_is_told_what_to_return(capsys):
    class NoLogs(LearnerDCGAN):
        def train_step(self, real):
            super().train_step(real)

    assert course.check("02.dcgan_train_step", NoLogs) is False
    assert "must return a dict of logs" in capsys.readouterr().out
