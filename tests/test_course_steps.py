"""The step exercises: a right train_step passes, each common wrong one fails with its hint."""

import dataclasses

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
    ("same_latents", "called self.sample_latent 1 time(s)"),
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
    assert course_steps.first_difference(
        course_steps.STEP_EXERCISES["02.dcgan_train_step"].reference(setup), right
    ) is None
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


# === 03: the conditional GAN ===


class LearnerCGAN(LearnerDCGAN):
    """The notebook 03 scaffold's reference answer; `mistake` as above."""

    def train_step(self, data):
        real, labels = data
        wrong = self.mistake
        batch_size = tf.shape(real)[0]
        fake = self.generator([self.sample_latent(batch_size), labels], training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator([real, labels], training=True)
            fake_logits = self.discriminator([fake, labels], training=True)
            d_loss = -tf.reduce_mean(tf.math.log_sigmoid(real_logits))
            d_loss -= tf.reduce_mean(tf.math.log_sigmoid(-fake_logits))
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
        g_labels = tf.roll(labels, 1, axis=0) if wrong == "other_labels" else labels
        with tf.GradientTape() as tape:
            fake = self.generator([self.sample_latent(batch_size), g_labels], training=True)
            fake_logits = self.discriminator([fake, g_labels], training=True)
            sign = -1.0 if wrong == "g_loss_sign" else 1.0
            g_loss = -sign * tf.reduce_mean(tf.math.log_sigmoid(fake_logits))
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


def test_the_conditional_step_passes_and_its_label_mistakes_are_named(capsys):
    assert course.check("03.cgan_train_step", LearnerCGAN) is True
    for mistake, hint in [("other_labels", "other labels than the batch's"),
                          ("g_loss_sign", "G's loss has the wrong sign")]:
        capsys.readouterr()
        assert course.check("03.cgan_train_step", learner_with_base(LearnerCGAN, mistake)) is False
        assert hint in capsys.readouterr().out


def test_an_unconditional_step_cannot_pass_the_conditional_check(capsys):
    assert course.check("03.cgan_train_step", LearnerDCGAN) is False
    assert "one training step raised" in capsys.readouterr().out


def learner_with_base(base, mistake):
    return type(f"{base.__name__}_{mistake}", (base,), {"mistake": mistake})


# === 04: WGAN-GP ===


class LearnerWGANGP(keras.Model):
    """The notebook 04 scaffold's reference answer; `mistake` switches on one error."""

    mistake = None

    def __init__(self, generator, critic, latent_dim, n_critic=5, gp_weight=10.0):
        super().__init__()
        self.generator, self.critic, self.latent_dim = generator, critic, latent_dim
        self.n_critic, self.gp_weight = n_critic, gp_weight
        self.seed_generator = keras.random.SeedGenerator(0)

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    def sample_latent(self, m):
        return keras.random.normal((m, self.latent_dim), seed=self.seed_generator)

    def sample_epsilon(self, m):
        return keras.random.uniform((m, 1, 1, 1), seed=self.seed_generator)

    def train_step(self, real):
        wrong = self.mistake
        m = tf.shape(real)[0] // self.n_critic
        for t in range(self.n_critic):
            x = real[:m] if wrong == "same_reals" else real[t * m:(t + 1) * m]
            fake = self.generator(self.sample_latent(m), training=True)
            epsilon = self.sample_epsilon(m)
            x_hat = epsilon * x + (1.0 - epsilon) * fake
            if wrong == "penalty_outside_tape":
                with tf.GradientTape() as inner:
                    inner.watch(x_hat)
                    scores = self.critic(x_hat, training=True)
                grads = tf.reshape(inner.gradient(scores, x_hat), (m, -1))
                outside = tf.reduce_mean(tf.square(tf.norm(grads, axis=1) - 1.0))
            with tf.GradientTape() as tape:
                c_loss = tf.reduce_mean(self.critic(fake, training=True)) - tf.reduce_mean(
                    self.critic(x, training=True))
                if wrong == "penalty_outside_tape":
                    penalty = outside
                else:
                    with tf.GradientTape() as inner:
                        inner.watch(x_hat)
                        scores = self.critic(x_hat, training=True)
                    grads = tf.reshape(inner.gradient(scores, x_hat), (m, -1))
                    if wrong == "batch_norm":
                        norms = tf.norm(grads)
                    else:
                        norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1))
                    penalty = tf.reduce_mean(tf.square(norms - 1.0))
                c_total = c_loss + self.gp_weight * penalty
            variables = self.critic.trainable_variables
            self.d_optimizer.apply_gradients(zip(tape.gradient(c_total, variables), variables))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self.critic(self.generator(self.sample_latent(m), training=True),
                                                 training=True))
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return {"d_loss": c_total, "g_loss": g_loss}


@pytest.mark.parametrize("mistake, hint", [
    (None, "correct: 04.wgan_gp_train_step"),
    ("same_reals", "every critic update saw the same reals"),
    ("penalty_outside_tape", "the gradient penalty did not train the critic"),
    ("batch_norm", "the gradient norm was taken over the whole batch"),
])
def test_the_wgan_gp_step_and_its_mistakes(mistake, hint, capsys):
    cls = learner_with_base(LearnerWGANGP, mistake) if mistake else LearnerWGANGP
    assert course.check("04.wgan_gp_train_step", cls) is (mistake is None)
    assert hint in capsys.readouterr().out


def test_a_critic_loop_that_draws_epsilon_once_is_told_so(capsys):
    class OneEpsilon(LearnerWGANGP):
        def sample_epsilon(self, m):
            if not hasattr(self, "_epsilon"):
                self._epsilon = super().sample_epsilon(m)
            return self._epsilon

    # The checker replays draws through the methods it replaces, so wrap the replay instead.
    import kerasgan.course_steps as steps

    original = steps._wgan_gp_learner

    def learner(cls, setup):
        weights, draws, logs = original(cls, setup)
        return weights, {**draws, "sample_epsilon": 1}, logs

    steps.STEP_EXERCISES["04.wgan_gp_train_step"] = dataclasses.replace(
        steps.STEP_EXERCISES["04.wgan_gp_train_step"], learner=learner
    )
    try:
        assert course.check("04.wgan_gp_train_step", LearnerWGANGP) is False
    finally:
        steps.STEP_EXERCISES["04.wgan_gp_train_step"] = dataclasses.replace(
            steps.STEP_EXERCISES["04.wgan_gp_train_step"], learner=original
        )
    assert "called self.sample_epsilon 1 time(s); it must call it 3 times" in capsys.readouterr().out


def test_every_step_exercise_names_an_existing_notebook_that_checks_it():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for exercise in course_steps.STEP_EXERCISES.values():
        path = os.path.join(root, "notebooks", exercise.notebook)
        assert exercise.id.split(".")[0] == exercise.notebook[:2]
        with open(path, encoding="utf-8") as notebook:
            assert f'course.check(\\"{exercise.id}\\"' in notebook.read(), exercise.id


# === 05: CycleGAN ===


class LearnerCycleGAN(keras.Model):
    """The notebook 05 scaffold's reference answer; `mistake` switches on one error."""

    mistake = None

    def __init__(self, generator_a2b, generator_b2a, discriminator_a, discriminator_b,
                 cycle_weight=10.0, identity_weight=0.5):
        super().__init__()
        self.generator_a2b, self.generator_b2a = generator_a2b, generator_b2a
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight

    def compile(self, g_optimizer, f_optimizer, d_a_optimizer, d_b_optimizer):
        super().compile()
        self.g_optimizer, self.f_optimizer = g_optimizer, f_optimizer
        self.d_a_optimizer, self.d_b_optimizer = d_a_optimizer, d_b_optimizer

    def train_step(self, data):
        a, b = data
        G, F, wrong = self.generator_a2b, self.generator_b2a, self.mistake  # noqa: N806
        lam = self.cycle_weight

        def l1(x, y):
            return tf.reduce_mean(tf.abs(x - y))

        with tf.GradientTape(persistent=True) as tape:
            fake_b, fake_a = G(a, training=True), F(b, training=True)
            g_loss = tf.reduce_mean(tf.square(self.discriminator_b(fake_b, training=True) - 1.0))
            g_loss += tf.reduce_mean(tf.square(self.discriminator_a(fake_a, training=True) - 1.0))
            if wrong != "no_cycle":
                g_loss += lam * (l1(F(fake_b, training=True), a) + l1(G(fake_a, training=True), b))
            weight = lam if wrong == "identity_lambda" else self.identity_weight * lam
            g_loss += weight * (l1(G(b, training=True), b) + l1(F(a, training=True), a))
        for network, optimizer in ((G, self.g_optimizer), (F, self.f_optimizer)):
            grads = tape.gradient(g_loss, network.trainable_variables)
            optimizer.apply_gradients(zip(grads, network.trainable_variables))
        if wrong == "fresh_fakes":
            fake_b, fake_a = G(a, training=True), F(b, training=True)
        d_loss = 0.0
        for D, real, fake, optimizer in ((self.discriminator_a, a, fake_a, self.d_a_optimizer),  # noqa: N806
                                         (self.discriminator_b, b, fake_b, self.d_b_optimizer)):
            with tf.GradientTape() as tape:
                loss = 0.5 * (tf.reduce_mean(tf.square(D(real, training=True) - 1.0))
                              + tf.reduce_mean(tf.square(D(fake, training=True))))
            grads = tape.gradient(loss, D.trainable_variables)
            optimizer.apply_gradients(zip(grads, D.trainable_variables))
            d_loss += loss
        return {"d_loss": d_loss, "g_loss": g_loss}


@pytest.mark.parametrize("mistake, hint", [
    (None, "correct: 05.cyclegan_train_step"),
    ("no_cycle", "the cycle-consistency term is missing"),
    ("identity_lambda", "the identity term is weighted lambda"),
    ("fresh_fakes", "fakes made again after the generators' update"),
])
def test_the_cyclegan_step_and_its_mistakes(mistake, hint, capsys):
    cls = learner_with_base(LearnerCycleGAN, mistake) if mistake else LearnerCycleGAN
    assert course.check("05.cyclegan_train_step", cls) is (mistake is None)
    assert hint in capsys.readouterr().out


def test_the_check_runs_in_float32_under_a_mixed_policy_and_restores_it(capsys):
    """A notebook that trains under mixed_bfloat16 still gets an exact one-step comparison."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        assert course.check("05.cyclegan_train_step", LearnerCycleGAN) is True
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")


# === 07: BigGAN ===


class LearnerBigGAN(keras.Model):
    """The notebook 07 scaffold's reference answer; `mistake` switches on one error."""

    mistake = None

    def __init__(self, generator, discriminator, latent_dim, orthogonal_beta=1e-4):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim
        self.orthogonal_beta = orthogonal_beta
        self.seed_generator = keras.random.SeedGenerator(0)

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    def sample_latent(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def train_step(self, data):
        from kerasgan import losses

        real, labels = data
        wrong = self.mistake
        batch_size = tf.shape(real)[0]
        fake = self.generator([self.sample_latent(batch_size), labels], training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator([real, labels], training=True)
            fake_logits = self.discriminator([fake, labels], training=True)
            if wrong == "no_margin":
                d_loss = tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
            else:
                d_loss = tf.reduce_mean(tf.nn.relu(1.0 - real_logits))
                d_loss += tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
        with tf.GradientTape() as tape:
            fake = self.generator([self.sample_latent(batch_size), labels], training=True)
            g_loss = -tf.reduce_mean(self.discriminator([fake, labels], training=True))
            kernels = [w for w in self.generator.trainable_weights if len(w.shape) >= 2
                       and (wrong == "embedding" or "shared_embedding" not in w.path)]
            if wrong != "no_orthogonal":
                g_loss += tf.add_n([losses.orthogonal_regularization(w, self.orthogonal_beta)
                                    for w in kernels])
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


@pytest.mark.parametrize("mistake, hint", [
    (None, "correct: 07.biggan_train_step"),
    ("no_margin", "D's loss is not the hinge"),
    ("no_orthogonal", "the orthogonal regularisation is missing"),
    ("embedding", "included the shared class embedding"),
])
def test_the_biggan_step_and_its_mistakes(mistake, hint, capsys):
    cls = learner_with_base(LearnerBigGAN, mistake) if mistake else LearnerBigGAN
    assert course.check("07.biggan_train_step", cls) is (mistake is None)
    assert hint in capsys.readouterr().out


# === 06: StyleGAN (the non-saturating game and lazy R1) ===


class LearnerStyleGAN(keras.Model):
    """The notebook 06 scaffold's reference answer; `mistake` switches on one error."""

    mistake = None

    def __init__(self, generator, discriminator, latent_dim, r1_gamma=0.1, r1_interval=16):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim
        self.r1_gamma, self.r1_interval, self.w_avg_beta = r1_gamma, r1_interval, 0.995
        self.seed_generator = keras.random.SeedGenerator(0)
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="step")

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    def sample_latent(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def track_w_avg(self, batch_size):
        mapping = self.generator.get_layer("mapping")
        mapping.update_average(mapping(self.sample_latent(batch_size), training=False), self.w_avg_beta)

    def r1(self, images):
        """The lazily weighted R1 of `images`, recorded on whatever tape is open."""
        with tf.GradientTape() as inner:
            inner.watch(images)
            scores = self.discriminator(images, training=True)
        slopes = inner.gradient(scores, images)
        factor = 0.5 * self.r1_gamma * (1 if self.mistake == "no_interval" else self.r1_interval)
        return factor * tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))

    def train_step(self, real):
        batch_size = tf.shape(real)[0]
        self.track_w_avg(batch_size)
        wrong = self.mistake
        d_vars = self.discriminator.trainable_variables
        latent = self.sample_latent(batch_size)
        fake = self.generator(latent, training=True)
        t = int(self.step.numpy())
        due = {"every_step": True, "late": (t + 1) % self.r1_interval == 0}.get(
            wrong, t % self.r1_interval == 0)
        penalised = fake if wrong == "at_fakes" else real
        with tf.GradientTape() as tape:
            d_loss = tf.reduce_mean(tf.nn.softplus(-self.discriminator(real, training=True)))
            d_loss += tf.reduce_mean(tf.nn.softplus(self.discriminator(fake, training=True)))
            d_total = d_loss + self.r1(penalised) if due and wrong == "in_main" else d_loss
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_total, d_vars), d_vars))
        if due and wrong != "in_main":
            if wrong in ("outside_tape", "outside_tape_none"):
                penalty = self.r1(penalised)  # no tape records it: D gets no gradient
            with tf.GradientTape() as tape:
                if wrong not in ("outside_tape", "outside_tape_none"):
                    penalty = self.r1(penalised)
                r1_loss = penalty + 0.0
            grads = tape.gradient(r1_loss, d_vars)
            if wrong != "outside_tape_none":  # the logit's bias has no gradient: a zero one
                grads = [tf.zeros(v.shape) if g is None else g for g, v in zip(grads, d_vars)]
            self.d_optimizer.apply_gradients(zip(grads, d_vars))
        if wrong != "same_latents":
            latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(latent, training=True), training=True)
            if wrong == "minimax":
                g_loss = -tf.reduce_mean(tf.nn.softplus(fake_logits))
            else:
                g_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))
        if wrong != "uncounted":
            self.step.assign_add(1)
        return {"d_loss": d_loss, "g_loss": g_loss}


@pytest.mark.parametrize("mistake, hint", [
    (None, "correct: 06.stylegan_train_step"),
    # Due and not due: R1 on the second step too (or on every step, the counter never moving).
    ("every_step", "R1 was applied on a step where it was not due"),
    ("uncounted", "R1 was applied on a step where it was not due"),
    # R1 never due in the two steps (a counter off by one), or computed where no tape sees it.
    ("late", "R1 did not train D on step t = 0"),
    ("outside_tape", "R1 did not train D on step t = 0"),
    ("outside_tape_none", "the R1 penalty did not reach D's weights"),
    ("no_interval", "R1 is missing the lazy factor"),
    ("at_fakes", "R1 was taken at the fakes"),
    ("in_main", "R1 was added to D's main loss"),
    ("minimax", "G descends the minimax loss"),
    # The draws are counted per step, apart from the scaffold's own draw in track_w_avg.
    ("same_latents", "called self.sample_latent 1 time(s); it must call it 2 times"),
])
def test_the_stylegan_step_and_its_mistakes(mistake, hint, capsys):
    cls = learner_with_base(LearnerStyleGAN, mistake) if mistake else LearnerStyleGAN
    assert course.check("06.stylegan_train_step", cls) is (mistake is None)
    out = capsys.readouterr().out
    assert hint in out, out
    assert out.count("\n") == 1  # one line, no traceback


def test_the_stylegan_check_takes_a_step_with_r1_due_and_one_without():
    """Two steps from t = 0 with r1_interval > 1: R1 is due on the first, not on the second, so
    R1 on every step, on none, or unscaled each leave D's weights elsewhere; every mistake's
    replay differs from the right step and from every other replay (else a hint could be wrong)."""
    exercise = course_steps.STEP_EXERCISES["06.stylegan_train_step"]
    setup = exercise.setup()
    assert setup["steps"] == 2 and course_steps.STYLEGAN_R1_INTERVAL > 2
    right = course_steps._plain_stylegan_step(setup)
    assert course_steps.first_difference(exercise.reference(setup), right) is None
    replays = [mistake.step(setup) for mistake in exercise.mistakes]
    for index, (mistake, replay) in enumerate(zip(exercise.mistakes, replays)):
        assert course_steps.first_difference(right, replay) is not None, mistake.hint
        for other, other_replay in zip(exercise.mistakes[index + 1:], replays[index + 1:]):
            assert course_steps.first_difference(replay, other_replay) is not None, (mistake.hint, other.hint)


def test_the_notebooks_stylegan_answer_passes(capsys):
    """The answer cell of notebook 06, executed as the notebook runs it, passes the check."""
    import json
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "notebooks", "06_stylegan.ipynb"), encoding="utf-8") as handle:
        cells = json.load(handle)["cells"]
    source = next("".join(c["source"]) for c in cells
                  if c["cell_type"] == "code" and "class MyStyleGAN" in "".join(c["source"]))
    namespace = {"keras": keras, "tf": tf, "SEED": 0}
    exec(source, namespace)
    assert course.check("06.stylegan_train_step", namespace["MyStyleGAN"]) is True
    assert "correct: 06.stylegan_train_step" in capsys.readouterr().out


def test_the_unwritten_stylegan_scaffold_says_not_yet(capsys):
    class Unwritten(LearnerStyleGAN):  # the student version: given lines, then the raise
        def train_step(self, real):
            self.track_w_avg(tf.shape(real)[0])
            raise NotImplementedError()

    assert course.check("06.stylegan_train_step", Unwritten) is False
    assert capsys.readouterr().out.startswith("not yet: 06.stylegan_train_step")


def test_notebook_06s_one_line_exercises_are_headed_as_warm_ups():
    """06.truncate and 06.mix_styles earn no points (course.Exercise.warm_up): their headings say
    so, and the step exercise is the notebook's graded training exercise."""
    import json
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "notebooks", "06_stylegan.ipynb"), encoding="utf-8") as handle:
        prose = ["".join(c["source"]) for c in json.load(handle)["cells"] if c["cell_type"] == "markdown"]
    for heading in ("**Exercise 6.2 (warm-up, not graded): truncation.**",
                    "**Exercise 6.3 (warm-up, not graded): style mixing.**"):
        assert any(cell.startswith(heading) for cell in prose), heading
    assert course.EXERCISES["06.truncate"].warm_up and course.EXERCISES["06.mix_styles"].warm_up
