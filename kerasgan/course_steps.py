"""Exercises that write a training step, checked by taking one step.

In these exercises the learner writes the `train_step` of a small `keras.Model`, the heart of a
GAN. A step is not a pure function, so `check_step` grades it the way
`tests/models/test_reference_steps.py` pins the package's own steps:

1. build tiny networks with fixed weights, one fixed batch and the latents the step will draw;
2. let the package's model take ONE step from those weights, and the learner's model one step
   from copies of the same weights, both with plain SGD (an update is `w - lr * dL/dw`, so any
   difference in a loss shows in the weights) and the same latents, replayed through the
   model's `sample_latent`;
3. compare every weight of both networks, batch-norm statistics included.

An exercise whose step depends on a counter is checked over more than one step: StyleGAN's
lazy R1 over two, the first with R1 due and the second without.

When the weights differ, the check replays the mistakes learners make most (a sign flipped, the
minimax loss instead of the non-saturating one, D's update reaching G's weights, the networks
left in inference mode, G updated before D, ...) from the same start, and names the one whose
weights the learner's step reproduced. Otherwise it says which network differs first.

    >>> from kerasgan import course
    >>> course.check("02.dcgan_train_step", MyDCGAN)
    correct: 02.dcgan_train_step took the same step as kerasgan's DCGAN (G and D agree)
    True
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from kerasgan.errors import ConfigError
from kerasgan.utils import float32_policy

# SGD's learning rate in the one-step check: large enough that every weight moves well past the
# tolerance, small enough that the step stays in the networks' linear regime.
LEARNING_RATE = 0.01
# Two float32 computations of the same step in a slightly different order (e.g. a mean taken
# as `reduce_mean` or as `compute_average_loss`) agree to about 1e-6.
ATOL, RTOL = 1e-5, 1e-4


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A common wrong step and what to tell the learner whose step reproduces it.

    Attributes:
        hint: one sentence naming the mistake and the fix.
        step: `fn(setup) -> {network name: [weights]}`, the wrong step taken from the setup's
            initial weights.
    """

    hint: str
    step: Callable


@dataclasses.dataclass(frozen=True)
class StepExercise:
    """A self-checking exercise in which the learner writes `train_step`.

    Attributes:
        id: `"NN.name"`, NN being the notebook number.
        notebook: the notebook's file name.
        title: what the learner writes, in a few words.
        setup: `fn() -> dict` with `networks` (`{name: keras.Model}`, the initial weights),
            `batch` and `latents` (the draws, in order); optionally `steps` (how many steps
            the check takes, 1 by default) and `expected_draws` (`{method: calls}` the learner
            must make, when not every latent is the learner's to draw).
        reference: `fn(setup) -> {network name: [weights]}`: the package's own step.
        learner: `fn(cls, setup) -> (weights, draws, logs)`: the learner's class built and
            stepped once on copies of the networks; `draws` counts the calls of each replayed
            random draw (`{"sample_latent": 2}`).
        mistakes: the common wrong steps, tried in order.
    """

    id: str
    notebook: str
    title: str
    setup: Callable
    reference: Callable
    learner: Callable
    mistakes: tuple = ()


STEP_EXERCISES = {}


def register(exercise):
    """Add a step exercise to `STEP_EXERCISES` (ids are unique)."""
    if exercise.id in STEP_EXERCISES:
        raise ConfigError(f"step exercise {exercise.id!r} is registered twice")
    STEP_EXERCISES[exercise.id] = exercise
    return exercise


# === Plumbing: copies of networks, replayed latents, SGD, comparing weights ===


def copy_network(network):
    """A new network with `network`'s architecture and all its weights (BN statistics too)."""
    import keras

    copy = keras.models.clone_model(network)
    copy.set_weights(network.get_weights())
    return copy


class LatentReplay:
    """Stands in for a model's `sample_latent`: returns the setup's latent draws in order and
    counts the calls (a step must draw once for D's fakes and once, afresh, for G's)."""

    def __init__(self, latents):
        self.latents = list(latents)
        self.calls = 0

    def __call__(self, batch_size):
        import tensorflow as tf

        draw = self.latents[min(self.calls, len(self.latents) - 1)]
        self.calls += 1
        if int(batch_size) != len(draw):
            raise ConfigError(
                f"sample_latent({int(batch_size)}) was asked for {int(batch_size)} latents, but "
                f"the batch holds {len(draw)} images: draw one latent per real image"
            )
        return tf.constant(draw)


def sgd_update(tape, loss, variables):
    """`w <- w - lr * dL/dw` for each variable with a gradient (the check's optimizer)."""
    import tensorflow as tf

    gradients = tape.gradient(loss, variables)
    for variable, gradient in zip(variables, gradients):
        if gradient is not None:  # an embedding's gradient arrives as IndexedSlices
            variable.assign(variable - LEARNING_RATE * tf.convert_to_tensor(gradient))


def _as_tensors(*arrays):
    """The batch as `fit` hands it to `train_step`: tensors (one, or a tuple of them)."""
    import tensorflow as tf

    tensors = tuple(tf.constant(array) for array in arrays)
    return tensors[0] if len(tensors) == 1 else tensors


def weights_of(networks):
    return {name: [np.array(w) for w in network.get_weights()] for name, network in networks.items()}


def first_difference(expected, got):
    """None when every network's weights agree, else `(network name, weight index, max diff)`."""
    for name, weights in expected.items():
        for index, (want, have) in enumerate(zip(weights, got[name])):
            if want.shape != have.shape or not np.allclose(have, want, atol=ATOL, rtol=RTOL):
                difference = np.inf if want.shape != have.shape else float(np.max(np.abs(have - want)))
                return name, index, difference
    return None


# === Exercise 02: the DCGAN step (Goodfellow et al.'s Algorithm 1, non-saturating G loss) ===

DCGAN_BATCH = 4


def _dcgan_setup(seed=0):
    import keras

    from kerasgan.models import dcgan

    keras.utils.set_random_seed(seed)
    latent_dim = 8
    networks = {
        "G": dcgan.build_generator(latent_dim, 28, 1, width=16),
        "D": dcgan.build_discriminator(28, 1, width=8),
    }
    rng = np.random.default_rng(seed)
    return {
        "networks": networks,
        "latent_dim": latent_dim,
        "batch": rng.uniform(-1, 1, (DCGAN_BATCH, 28, 28, 1)).astype("float32"),
        "latents": [rng.standard_normal((DCGAN_BATCH, latent_dim)).astype("float32") for _ in range(2)],
    }


def _sgd_pair():
    import keras

    return keras.optimizers.SGD(LEARNING_RATE), keras.optimizers.SGD(LEARNING_RATE)


def _batch_of(setup):
    """The setup's batch as `fit` hands it over: images, or `(images, labels)`."""
    if "labels" in setup:
        return _as_tensors(setup["batch"], setup["labels"])
    return _as_tensors(setup["batch"])


def _two_network_reference(model_path, **options):
    """`fn(setup)`: the package's model (`"module:Class"`) built on copies of G and D, one step."""

    def reference(setup):
        import importlib

        module, _, name = model_path.partition(":")
        networks = {key: copy_network(net) for key, net in setup["networks"].items()}
        gan = getattr(importlib.import_module(module), name)(
            networks["G"], networks["D"], latent_dim=setup["latent_dim"], **options
        )
        gan.compile(*_sgd_pair())
        gan.sample_latent = LatentReplay(setup["latents"])
        gan.train_step(_batch_of(setup))
        return weights_of(networks)

    return reference


def _two_network_learner(**options):
    """`fn(cls, setup)`: the learner's class built on copies of G and D (the scaffold's
    `cls(generator, discriminator, latent_dim, **options)`), one step with replayed latents."""

    def learner(cls, setup):
        networks = {key: copy_network(net) for key, net in setup["networks"].items()}
        model = cls(networks["G"], networks["D"], setup["latent_dim"], **options)
        g_optimizer, d_optimizer = _sgd_pair()
        model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
        replay = LatentReplay(setup["latents"])
        model.sample_latent = replay
        logs = model.train_step(_batch_of(setup))
        return weights_of(networks), {"sample_latent": replay.calls}, logs

    return learner


def _plain_gan_step(
    setup, *, d_sign=1.0, g_loss="non_saturating", d_updates_g=False, training=True,
    g_first=False, update_d=True, update_g=True, g_labels=None,
):
    """One step of the original GAN game with plain tapes and SGD, with one thing changed
    (each keyword names a mistake; the defaults are the right step). `g_labels`: the labels
    of G's update when they are not the batch's (a conditional GAN's mistake)."""
    import tensorflow as tf

    G, D = (copy_network(setup["networks"][name]) for name in ("G", "D"))  # noqa: N806
    real = tf.constant(setup["batch"])
    latents = [tf.constant(z) for z in setup["latents"]]
    # A conditional GAN (Mirza & Osindero) feeds the real pairs' labels to both networks.
    labels = None if setup.get("labels") is None else tf.constant(setup["labels"])
    g_labels = labels if g_labels is None else tf.constant(g_labels)

    def g(z, y):
        return G(z if labels is None else [z, y], training=training)

    def d(x, y):
        return D(x if labels is None else [x, y], training=training)

    def mean(x):
        return tf.reduce_mean(tf.cast(x, tf.float32))

    def d_step():
        with tf.GradientTape() as tape:
            fake = g(latents[0], labels)
            real_logits, fake_logits = d(real, labels), d(fake, labels)
            loss = -mean(tf.math.log_sigmoid(d_sign * real_logits)) - mean(
                tf.math.log_sigmoid(-d_sign * fake_logits)
            )
        variables = D.trainable_variables + (G.trainable_variables if d_updates_g else [])
        if update_d:
            sgd_update(tape, loss, variables)

    def g_step():
        with tf.GradientTape() as tape:
            fake_logits = d(g(latents[1], g_labels), g_labels)
            if g_loss == "non_saturating":
                loss = -mean(tf.math.log_sigmoid(fake_logits))
            elif g_loss == "minimax":  # the minimax game's log(1 - D(G(z))), descended
                loss = mean(tf.math.log_sigmoid(-fake_logits))
            else:  # "ascending": log D(G(z)) descended, i.e. G helping D
                loss = mean(tf.math.log_sigmoid(fake_logits))
        if update_g:
            sgd_update(tape, loss, G.trainable_variables)

    for step in (g_step, d_step) if g_first else (d_step, g_step):
        step()
    return weights_of({"G": G, "D": D})


def _mistake(hint, **change):
    return Mistake(hint, lambda setup: _plain_gan_step(setup, **change))


DCGAN_MISTAKES = (
    _mistake(
        "D's loss has the wrong sign: D must score real images up and fakes down, "
        "L_D = -log D(x) - log(1 - D(G(z))) (the package's adversarial_loss.discriminator_loss "
        "takes (real_logits, fake_logits) in that order)", d_sign=-1.0,
    ),
    _mistake(
        "G descends the minimax loss log(1 - D(G(z))), which saturates when D rejects the "
        "fakes: use the non-saturating -log D(G(z)) (adversarial_loss.generator_loss)",
        g_loss="minimax",
    ),
    _mistake(
        "G's loss has the wrong sign: G must make D score its fakes as real, so it descends "
        "-log D(G(z)), not log D(G(z))", g_loss="ascending",
    ),
    _mistake(
        "D's update reached G's weights: apply D's gradients to "
        "self.discriminator.trainable_variables only (make the fakes before D's tape, or "
        "leave G's variables out of D's update)", d_updates_g=True,
    ),
    _mistake(
        "the networks ran in inference mode: call them with training=True inside train_step "
        "(batch norm must use the batch's statistics and update its moving averages)",
        training=False,
    ),
    _mistake(
        "G was updated before D: Algorithm 1 updates D first, then G through the updated D",
        g_first=True,
    ),
    _mistake("D's weights were not updated: apply D's gradients with self.d_optimizer", update_d=False),
    _mistake("G's weights were not updated: apply G's gradients with self.g_optimizer", update_g=False),
)


register(StepExercise(
    "02.dcgan_train_step", "02_dcgan.ipynb", "DCGAN's training step (two tapes, two optimizers)",
    _dcgan_setup, _two_network_reference("kerasgan.models.dcgan:DCGAN"), _two_network_learner(),
    DCGAN_MISTAKES,
))


# === Exercise 03: the conditional GAN's step (the label path into G and D) ===


def _cgan_setup(seed=0):
    import keras

    from kerasgan.models import conditional_gan

    keras.utils.set_random_seed(seed)
    latent_dim, num_classes = 8, 10
    networks = {
        "G": conditional_gan.build_generator(num_classes, latent_dim, 28, 1, width=16, embedding_dim=4),
        "D": conditional_gan.build_discriminator(num_classes, 28, 1, width=8),
    }
    rng = np.random.default_rng(seed)
    return {
        "networks": networks,
        "latent_dim": latent_dim,
        "batch": rng.uniform(-1, 1, (DCGAN_BATCH, 28, 28, 1)).astype("float32"),
        "labels": np.array([3, 1, 4, 1], "int32")[:DCGAN_BATCH],
        "latents": [rng.standard_normal((DCGAN_BATCH, latent_dim)).astype("float32") for _ in range(2)],
    }


CGAN_MISTAKES = DCGAN_MISTAKES + (
    Mistake(
        "G's update used other labels than the batch's: both updates use the real pairs' "
        "labels y (the fakes G(z, y) are judged as D(G(z, y), y))",
        lambda setup: _plain_gan_step(setup, g_labels=np.roll(setup["labels"], 1)),
    ),
)

register(StepExercise(
    "03.cgan_train_step", "03_conditional_gan.ipynb",
    "the conditional GAN's training step (labels into G and D)",
    _cgan_setup, _two_network_reference("kerasgan.models.conditional_gan:ConditionalGAN"),
    _two_network_learner(), CGAN_MISTAKES,
))


# === Exercise 04: WGAN-GP's step (Gulrajani et al., Algorithm 1) ===

WGAN_CRITIC_STEPS, WGAN_M = 3, 2


def _wgan_gp_setup(seed=0):
    import keras

    from kerasgan.models import dcgan, wgan_gp

    keras.utils.set_random_seed(seed)
    latent_dim = 8
    networks = {
        "G": dcgan.build_generator(latent_dim, 28, 1, width=16),
        "C": wgan_gp.build_critic(28, 1, width=8),
    }
    rng = np.random.default_rng(seed)
    # The package's model draws z and epsilon from one seeded stream in the algorithm's order:
    # a twin stream gives the same draws, which the learner's model gets replayed.
    stream = keras.random.SeedGenerator(seed)
    latents, epsilons = [], []
    for _ in range(WGAN_CRITIC_STEPS):
        latents.append(np.asarray(keras.random.normal((WGAN_M, latent_dim), seed=stream)))
        epsilons.append(np.asarray(keras.random.uniform((WGAN_M, 1, 1, 1), seed=stream)))
    latents.append(np.asarray(keras.random.normal((WGAN_M, latent_dim), seed=stream)))
    return {
        "networks": networks,
        "latent_dim": latent_dim,
        "seed": seed,
        "batch": rng.uniform(-1, 1, (WGAN_CRITIC_STEPS * WGAN_M, 28, 28, 1)).astype("float32"),
        "latents": latents,
        "epsilons": epsilons,
    }


def _wgan_gp_reference(setup):
    from kerasgan.models.wgan_gp import WGANGP

    networks = {name: copy_network(net) for name, net in setup["networks"].items()}
    gan = WGANGP(
        networks["G"], networks["C"], latent_dim=setup["latent_dim"], seed=setup["seed"],
        n_critic=WGAN_CRITIC_STEPS, gp_weight=10.0,
    )
    gan.compile(*_sgd_pair())
    gan.train_step(_as_tensors(setup["batch"]))
    return weights_of(networks)


def _wgan_gp_learner(cls, setup):
    networks = {name: copy_network(net) for name, net in setup["networks"].items()}
    model = cls(networks["G"], networks["C"], setup["latent_dim"], n_critic=WGAN_CRITIC_STEPS,
                gp_weight=10.0)
    g_optimizer, d_optimizer = _sgd_pair()
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    latents, epsilons = LatentReplay(setup["latents"]), LatentReplay(setup["epsilons"])
    model.sample_latent, model.sample_epsilon = latents, epsilons
    logs = model.train_step(_as_tensors(setup["batch"]))
    return weights_of(networks), {"sample_latent": latents.calls, "sample_epsilon": epsilons.calls}, logs


def _plain_wgan_gp_step(
    setup, *, fresh_reals=True, penalty_at="interpolates", per_example_norm=True,
    one_sided=False, critic_sign=1.0, g_sign=1.0, critic_steps=WGAN_CRITIC_STEPS, g_first=False,
):
    """WGAN-GP's Algorithm 1 with plain tapes and SGD, with one thing changed (each keyword
    names a mistake; the defaults are the right step)."""
    import tensorflow as tf

    G, C = (copy_network(setup["networks"][name]) for name in ("G", "C"))  # noqa: N806
    batch = tf.constant(setup["batch"])

    def critic_update(t):
        x = batch[t * WGAN_M:(t + 1) * WGAN_M] if fresh_reals else batch[:WGAN_M]
        fake = G(tf.constant(setup["latents"][t]), training=True)
        epsilon = tf.constant(setup["epsilons"][t])
        point = {
            "interpolates": epsilon * x + (1.0 - epsilon) * fake, "real": x, "fake": fake,
        }.get(penalty_at)
        with tf.GradientTape() as tape:
            loss = critic_sign * (tf.reduce_mean(C(fake, training=True)) - tf.reduce_mean(C(x, training=True)))
            if point is not None:
                with tf.GradientTape() as inner:
                    inner.watch(point)
                    scores = C(point, training=True)
                gradients = tf.reshape(inner.gradient(scores, point), (WGAN_M, -1))
                if per_example_norm:
                    norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=1) + 1e-12)
                else:
                    norms = tf.sqrt(tf.reduce_sum(tf.square(gradients)) + 1e-12)
                gap = tf.maximum(norms - 1.0, 0.0) if one_sided else norms - 1.0
                loss += 10.0 * tf.reduce_mean(tf.square(gap))
        sgd_update(tape, loss, C.trainable_variables)

    def generator_update():
        with tf.GradientTape() as tape:
            loss = -g_sign * tf.reduce_mean(C(G(tf.constant(setup["latents"][-1]), training=True), training=True))
        sgd_update(tape, loss, G.trainable_variables)

    if g_first:
        generator_update()
    for t in range(critic_steps):
        critic_update(t)
    if not g_first:
        generator_update()
    return weights_of({"G": G, "C": C})


def _wgan_mistake(hint, **change):
    return Mistake(hint, lambda setup: _plain_wgan_gp_step(setup, **change))


WGAN_GP_MISTAKES = (
    _wgan_mistake(
        "every critic update saw the same reals: the batch holds n_critic * m images; critic "
        "update t takes its own slice real[t * m:(t + 1) * m]", fresh_reals=False,
    ),
    _wgan_mistake(
        "the gradient penalty did not train the critic: compute it inside the critic's tape, "
        "with a nested tape for the gradient of C at the interpolates (a penalty computed "
        "outside the tape, or left out, does nothing)", penalty_at=None,
    ),
    _wgan_mistake(
        "the penalty was taken at the real images: take it at the interpolates "
        "x_hat = eps * x + (1 - eps) * G(z)", penalty_at="real",
    ),
    _wgan_mistake(
        "the penalty was taken at the fakes: take it at the interpolates "
        "x_hat = eps * x + (1 - eps) * G(z)", penalty_at="fake",
    ),
    _wgan_mistake(
        "the gradient norm was taken over the whole batch: take one norm per example (sum the "
        "squares over each image's pixels), then average (||grad|| - 1)^2 over the batch",
        per_example_norm=False,
    ),
    _wgan_mistake(
        "the penalty is one-sided (only norms above 1 are penalised): WGAN-GP penalises "
        "(||grad|| - 1)^2 on both sides", one_sided=True,
    ),
    _wgan_mistake(
        "the critic's loss has the wrong sign: the critic minimises C(G(z)) - C(x) (+ the "
        "penalty), so it scores real images high", critic_sign=-1.0,
    ),
    _wgan_mistake(
        "G's loss has the wrong sign: G minimises -C(G(z)), raising the critic's score of its "
        "fakes", g_sign=-1.0,
    ),
    _wgan_mistake(
        "the critic was updated once: Algorithm 1 updates it n_critic times per G update",
        critic_steps=1,
    ),
    _wgan_mistake(
        "G was updated before the critic: the critic's n_critic updates come first, then G's "
        "through the updated critic", g_first=True,
    ),
)

register(StepExercise(
    "04.wgan_gp_train_step", "04_wgan_gp.ipynb",
    "WGAN-GP's training step (the critic loop and the gradient penalty)",
    _wgan_gp_setup, _wgan_gp_reference, _wgan_gp_learner, WGAN_GP_MISTAKES,
))


# === Exercise 05: CycleGAN's step (Zhu et al., 2017: adversarial + cycle + identity) ===

CYCLE_SIZE, CYCLE_BATCH = 16, 2
CYCLE_NETWORKS = ("G", "F", "D_A", "D_B")


def _cyclegan_setup(seed=0):
    import keras

    from kerasgan.models import cyclegan

    keras.utils.set_random_seed(seed)

    def generator(name):
        return cyclegan.build_generator(CYCLE_SIZE, 1, width=4, residual_blocks=1, name=name)

    def discriminator(name):
        return cyclegan.build_discriminator(CYCLE_SIZE, 1, width=4, downsamplings=1, name=name)

    rng = np.random.default_rng(seed)
    shape = (CYCLE_BATCH, CYCLE_SIZE, CYCLE_SIZE, 1)
    return {
        "networks": {
            "G": generator("generator_a2b"), "F": generator("generator_b2a"),
            "D_A": discriminator("discriminator_a"), "D_B": discriminator("discriminator_b"),
        },
        "batch": (rng.uniform(-1, 1, shape).astype("float32"), rng.uniform(-1, 1, shape).astype("float32")),
        "latents": [],  # a CycleGAN draws no latents; the image pools are off in the check
    }


def _four_sgd():
    import keras

    return {name: keras.optimizers.SGD(LEARNING_RATE)
            for name in ("g_optimizer", "f_optimizer", "d_a_optimizer", "d_b_optimizer")}


def _cyclegan_reference(setup):
    from kerasgan.models.cyclegan import CycleGAN

    networks = {name: copy_network(net) for name, net in setup["networks"].items()}
    gan = CycleGAN(*(networks[name] for name in CYCLE_NETWORKS), pool_size=0, decay_start=None)
    gan.compile(**_four_sgd())
    gan.train_step(_as_tensors(*setup["batch"]))
    return weights_of(networks)


def _cyclegan_learner(cls, setup):
    networks = {name: copy_network(net) for name, net in setup["networks"].items()}
    model = cls(*(networks[name] for name in CYCLE_NETWORKS), cycle_weight=10.0, identity_weight=0.5)
    model.compile(**_four_sgd())
    logs = model.train_step(_as_tensors(*setup["batch"]))
    return weights_of(networks), {"sample_latent": 0}, logs


def _plain_cyclegan_step(
    setup, *, cycle_weight=10.0, identity_weight=5.0, identity_pairs="target", d_factor=0.5,
    cycle_power=1, fresh_fakes=False, discriminators_first=False,
):
    """CycleGAN's step with plain tapes and SGD, least squares, no image pool, with one thing
    changed (each keyword names a mistake; the defaults are the right step)."""
    import tensorflow as tf

    G, F, D_A, D_B = (copy_network(setup["networks"][name]) for name in CYCLE_NETWORKS)  # noqa: N806
    a, b = (tf.constant(images) for images in setup["batch"])

    def mean(x):
        return tf.reduce_mean(tf.cast(x, tf.float32))

    def distance(x, y):
        return mean(tf.abs(x - y) ** cycle_power)

    def generators_update():
        with tf.GradientTape() as tape:
            fake_b, fake_a = G(a, training=True), F(b, training=True)
            loss = mean(tf.square(D_B(fake_b, training=True) - 1.0))
            loss += mean(tf.square(D_A(fake_a, training=True) - 1.0))
            loss += cycle_weight * (distance(a, F(fake_b, training=True)) + distance(b, G(fake_a, training=True)))
            same_b, same_a = (G(b, training=True), F(a, training=True)) if identity_pairs == "target" else (
                G(a, training=True), F(b, training=True))
            targets = (b, a) if identity_pairs == "target" else (a, b)
            loss += identity_weight * (mean(tf.abs(targets[0] - same_b)) + mean(tf.abs(targets[1] - same_a)))
        sgd_update(tape, loss, G.trainable_variables + F.trainable_variables)
        return fake_a, fake_b

    def discriminators_update(fake_a, fake_b):
        if fresh_fakes or fake_a is None:
            fake_a, fake_b = F(b, training=True), G(a, training=True)
        for D, real, fake in ((D_A, a, fake_a), (D_B, b, fake_b)):  # noqa: N806
            with tf.GradientTape() as tape:
                loss = d_factor * (mean(tf.square(D(real, training=True) - 1.0))
                                   + mean(tf.square(D(fake, training=True))))
            sgd_update(tape, loss, D.trainable_variables)

    if discriminators_first:
        discriminators_update(None, None)
        generators_update()
    else:
        discriminators_update(*generators_update())
    return weights_of({"G": G, "F": F, "D_A": D_A, "D_B": D_B})


def _cycle_mistake(hint, **change):
    return Mistake(hint, lambda setup: _plain_cyclegan_step(setup, **change))


CYCLEGAN_MISTAKES = (
    _cycle_mistake(
        "the cycle-consistency term is missing: add lambda * (||F(G(a)) - a||_1 + "
        "||G(F(b)) - b||_1) to the generators' loss", cycle_weight=0.0,
    ),
    _cycle_mistake(
        "the cycle term is squared: CycleGAN's cycle loss is the L1 distance (mean absolute "
        "error), which keeps edges sharper than L2", cycle_power=2,
    ),
    _cycle_mistake(
        "the identity term is weighted lambda: its weight is 0.5 * lambda "
        "(identity_weight * cycle_weight)", identity_weight=10.0,
    ),
    _cycle_mistake(
        "the identity term is missing: add 0.5 * lambda * (||G(b) - b||_1 + ||F(a) - a||_1)",
        identity_weight=0.0,
    ),
    _cycle_mistake(
        "the identity term fed each generator its own input domain: it is G(b) ~ b and "
        "F(a) ~ a (an image already in the target domain passes unchanged)",
        identity_pairs="source",
    ),
    _cycle_mistake(
        "the discriminators' losses are not halved: each is 0.5 * ((D(real) - 1)^2 + "
        "D(fake)^2), so D learns more slowly than G", d_factor=1.0,
    ),
    _cycle_mistake(
        "the discriminators judged fakes made again after the generators' update: they judge "
        "the fakes of this step's generator pass (G(a) and F(b) from before the update)",
        fresh_fakes=True,
    ),
    _cycle_mistake(
        "the discriminators were updated first: CycleGAN updates G and F first, then D_A and "
        "D_B on the fakes of that pass", discriminators_first=True,
    ),
)

register(StepExercise(
    "05.cyclegan_train_step", "05_cyclegan.ipynb",
    "CycleGAN's training step (adversarial, cycle and identity terms; four networks)",
    _cyclegan_setup, _cyclegan_reference, _cyclegan_learner, CYCLEGAN_MISTAKES,
))


# === Exercise 07: BigGAN's step (hinge loss, orthogonal regularisation of G) ===

# Larger than the paper's 1e-4, so that one SGD step shows the orthogonal term in the weights.
BIGGAN_BETA = 0.05


def biggan_orthogonal_kernels(generator):
    """G's weight matrices that orthogonal regularisation acts on (as `BigGAN.orthogonal_kernels`):
    every kernel but the shared class embedding's."""
    return [
        weight for weight in generator.trainable_weights
        if len(weight.shape) >= 2 and "shared_embedding" not in weight.path
    ]


def _biggan_setup(seed=0):
    import keras

    from kerasgan.models import biggan

    keras.utils.set_random_seed(seed)
    latent_dim = 9  # one chunk for the dense layer and one per block
    networks = {
        "G": biggan.build_generator(num_classes=10, latent_dim=latent_dim, image_size=16,
                                    channels=3, width=16, shared_dim=8, attention_resolution=16),
        "D": biggan.build_discriminator(num_classes=10, image_size=16, channels=3, width=16,
                                        attention_resolution=8),
    }
    rng = np.random.default_rng(seed)
    return {
        "networks": networks,
        "latent_dim": latent_dim,
        "batch": rng.uniform(-1, 1, (DCGAN_BATCH, 16, 16, 3)).astype("float32"),
        "labels": np.array([3, 1, 4, 1], "int32")[:DCGAN_BATCH],
        "latents": [rng.standard_normal((DCGAN_BATCH, latent_dim)).astype("float32") for _ in range(2)],
    }


def _plain_biggan_step(setup, *, d_loss="hinge", orthogonal="generator", g_sign=1.0,
                       with_embedding=False):
    """BigGAN's step with plain tapes and SGD, with one thing changed (each keyword names a
    mistake; the defaults are the right step)."""
    import tensorflow as tf

    from kerasgan import losses

    G, D = (copy_network(setup["networks"][name]) for name in ("G", "D"))  # noqa: N806
    real, labels = (tf.constant(array) for array in (setup["batch"], setup["labels"]))
    latents = [tf.constant(z) for z in setup["latents"]]

    def mean(x):
        return tf.reduce_mean(tf.cast(x, tf.float32))

    def kernels(network):
        return [w for w in network.trainable_weights if len(w.shape) >= 2
                and (with_embedding or "shared_embedding" not in w.path)]

    def orthogonal_term(network):
        return tf.add_n([losses.orthogonal_regularization(w, BIGGAN_BETA) for w in kernels(network)])

    fake = G([latents[0], labels], training=True)
    with tf.GradientTape() as tape:
        real_logits = D([real, labels], training=True)
        fake_logits = D([fake, labels], training=True)
        if d_loss == "hinge":
            loss = mean(tf.nn.relu(1.0 - real_logits)) + mean(tf.nn.relu(1.0 + fake_logits))
        elif d_loss == "wasserstein":  # the hinge without its margin
            loss = mean(fake_logits) - mean(real_logits)
        else:
            loss = -mean(tf.math.log_sigmoid(real_logits)) - mean(tf.math.log_sigmoid(-fake_logits))
        if orthogonal == "discriminator":
            loss += orthogonal_term(D)
    sgd_update(tape, loss, D.trainable_variables)
    with tf.GradientTape() as tape:
        fake = G([latents[1], labels], training=True)
        loss = -g_sign * mean(D([fake, labels], training=True))
        if orthogonal in ("generator", "both"):
            loss += orthogonal_term(G)
    sgd_update(tape, loss, G.trainable_variables)
    return weights_of({"G": G, "D": D})


def _biggan_mistake(hint, **change):
    return Mistake(hint, lambda setup: _plain_biggan_step(setup, **change))


BIGGAN_MISTAKES = (
    _biggan_mistake(
        "D's loss is not the hinge: max(0, 1 - D(x, y)) + max(0, 1 + D(G(z, y), y)), "
        "averaged over the batch (the margin is what makes it a hinge)", d_loss="wasserstein",
    ),
    _biggan_mistake(
        "D's loss is the non-saturating log loss: BigGAN uses the hinge, "
        "max(0, 1 - D(x, y)) + max(0, 1 + D(G(z, y), y))", d_loss="non_saturating",
    ),
    _biggan_mistake(
        "the orthogonal regularisation is missing from G's loss: add "
        "sum over self.orthogonal_kernels of beta * ||W^T W * (1 - I)||_F^2", orthogonal=None,
    ),
    _biggan_mistake(
        "the orthogonal regularisation was applied to D: BigGAN regularises G's kernels only "
        "(self.orthogonal_kernels)", orthogonal="discriminator",
    ),
    _biggan_mistake(
        "the orthogonal regularisation included the shared class embedding: BigGAN exempts it "
        "(use self.orthogonal_kernels)", with_embedding=True,
    ),
    _biggan_mistake(
        "G's hinge loss has the wrong sign: G minimises -D(G(z, y), y)", g_sign=-1.0,
    ),
)

register(StepExercise(
    "07.biggan_train_step", "07_biggan.ipynb",
    "BigGAN's training step (hinge loss and orthogonal regularisation)",
    _biggan_setup,
    _two_network_reference("kerasgan.models.biggan:BigGAN", orthogonal_beta=BIGGAN_BETA),
    _two_network_learner(orthogonal_beta=BIGGAN_BETA), BIGGAN_MISTAKES,
))


# === Exercise 06: StyleGAN's step (the non-saturating game with lazy R1; Karras et al., 2020) ===

STYLEGAN_SIZE, STYLEGAN_BATCH, STYLEGAN_LATENT = 16, 4, 8
# R1 every 4 steps: a factor that no other plausible weight of the penalty shares (gamma instead
# of gamma / 2 doubles it, forgetting the interval divides it by 4).
STYLEGAN_R1_INTERVAL = 4
# Far larger than the presets' gamma, so that one SGD step shows R1 in D's weights well past the
# tolerance (even the order of D's two updates shows).
STYLEGAN_R1_GAMMA = 50.0
STYLEGAN_W_AVG_BETA = 0.995
# Two steps from t = 0: R1 is due on the first (0 mod 4 = 0) and not on the second.
STYLEGAN_STEPS = 2


def copy_network_with_random_state(network):
    """`copy_network`, plus the state of the network's random streams, so that the copy draws
    what the original would: StyleGAN's noise inputs draw fresh noise in training mode, and the
    gradient of each noise strength depends on that noise."""
    copy = copy_network(network)

    def streams(model):
        return [v for v in model.variables if v.path.endswith("seed_generator_state")]

    for mine, theirs in zip(streams(copy), streams(network), strict=True):
        mine.assign(theirs)
    return copy


def _stylegan_setup(seed=0):
    import keras

    from kerasgan.models import stylegan

    keras.utils.set_random_seed(seed)
    networks = {
        # No style mixing: it happens inside G and is not what the exercise teaches (it would
        # also add a random crossover to every pass through G).
        "G": stylegan.build_generator(STYLEGAN_LATENT, STYLEGAN_SIZE, 3, w_dim=8, mapping_layers=2,
                                      width=8, mixing_probability=0.0),
        "D": stylegan.build_discriminator(STYLEGAN_SIZE, 3, width=8),
    }
    rng = np.random.default_rng(seed)
    return {
        "networks": networks,
        "latent_dim": STYLEGAN_LATENT,
        "steps": STYLEGAN_STEPS,
        "batch": rng.uniform(-1, 1, (STYLEGAN_BATCH, STYLEGAN_SIZE, STYLEGAN_SIZE, 3)).astype("float32"),
        # Per step, in the package's order: w_avg's latents, D's fakes', G's fakes'.
        "latents": [rng.standard_normal((STYLEGAN_BATCH, STYLEGAN_LATENT)).astype("float32")
                    for _ in range(3 * STYLEGAN_STEPS)],
        # The learner's own draws per step; the scaffold's `track_w_avg` makes the third.
        "expected_draws": {"sample_latent": 2},
    }


def _stylegan_reference(setup):
    from kerasgan.models.stylegan import StyleGAN

    networks = {name: copy_network_with_random_state(net) for name, net in setup["networks"].items()}
    gan = StyleGAN(
        networks["G"], networks["D"], latent_dim=setup["latent_dim"], r1_gamma=STYLEGAN_R1_GAMMA,
        r1_interval=STYLEGAN_R1_INTERVAL, w_avg_beta=STYLEGAN_W_AVG_BETA,
    )
    gan.compile(*_sgd_pair())
    gan.sample_latent = LatentReplay(setup["latents"])
    for _ in range(setup["steps"]):
        gan.train_step(_as_tensors(setup["batch"]))
    return weights_of(networks)


# Added to TensorFlow's and Keras's errors when no gradient reached an update's weights.
R1_TAPE_HINT = (
    "the R1 penalty did not reach D's weights: compute it inside the R1 update's tape, with a "
    "nested tape for grad_x D(x) (one tape per gradient; a tape gives one gradient unless it is "
    "persistent)"
)


def _stylegan_learner(cls, setup):
    """The learner's class built on copies of G and D, `setup["steps"]` steps with replayed
    latents; the draws are counted per step, without the scaffold's `track_w_avg`."""
    networks = {name: copy_network_with_random_state(net) for name, net in setup["networks"].items()}
    model = cls(networks["G"], networks["D"], setup["latent_dim"], r1_gamma=STYLEGAN_R1_GAMMA,
                r1_interval=STYLEGAN_R1_INTERVAL)
    g_optimizer, d_optimizer = _sgd_pair()
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    replay = LatentReplay(setup["latents"])
    model.sample_latent = replay
    given = []
    track_w_avg = getattr(model, "track_w_avg", None)
    if track_w_avg is not None:
        def counted_track_w_avg(batch_size):
            before = replay.calls
            track_w_avg(batch_size)
            given.append(replay.calls - before)

        model.track_w_avg = counted_track_w_avg
    draws = []
    for _ in range(setup["steps"]):
        before, before_given = replay.calls, sum(given)
        try:
            logs = model.train_step(_as_tensors(setup["batch"]))
        except (ValueError, RuntimeError) as error:
            if "No gradients provided" not in str(error) and "non-persistent" not in str(error):
                raise
            kind = ValueError if isinstance(error, ValueError) else RuntimeError
            raise kind(f"{error} ({R1_TAPE_HINT})") from error
        draws.append(replay.calls - before - (sum(given) - before_given))
    expected = setup["expected_draws"]["sample_latent"]
    per_step = next((n for n in draws if n != expected), expected)
    return weights_of(networks), {"sample_latent": per_step}, logs


def _plain_stylegan_step(
    setup, *, r1_when="due", r1_factor=0.5 * STYLEGAN_R1_GAMMA * STYLEGAN_R1_INTERVAL,
    r1_at="real", r1_in_main=False, d_sign=1.0, g_loss="non_saturating",
):
    """`setup["steps"]` of StyleGAN's steps (w_avg, Dmain, lazy R1 as Dreg, Gmain) with plain
    tapes and SGD, with one thing changed (each keyword names a mistake; the defaults are the
    right step). `r1_when`: `"due"` (t mod r1_interval = 0), `"always"` or `"never"`."""
    import tensorflow as tf

    G, D = (copy_network_with_random_state(setup["networks"][name]) for name in ("G", "D"))  # noqa: N806
    mapping = G.get_layer("mapping")
    real = tf.constant(setup["batch"])
    latents = iter([tf.constant(z) for z in setup["latents"]])

    def mean(x):
        return tf.reduce_mean(tf.cast(x, tf.float32))

    def r1_loss(images):
        with tf.GradientTape() as inner:
            inner.watch(images)
            scores = D(images, training=True)
        slopes = tf.reshape(inner.gradient(scores, images), (len(setup["batch"]), -1))
        return r1_factor * mean(tf.reduce_sum(tf.square(slopes), axis=1))

    for t in range(setup["steps"]):
        mapping.update_average(mapping(next(latents), training=False), STYLEGAN_W_AVG_BETA)
        fake = G(next(latents), training=True)
        due = {"due": t % STYLEGAN_R1_INTERVAL == 0, "always": True, "never": False}[r1_when]
        penalised = real if r1_at == "real" else fake
        with tf.GradientTape() as tape:
            loss = mean(tf.nn.softplus(-d_sign * D(real, training=True)))
            loss += mean(tf.nn.softplus(d_sign * D(fake, training=True)))
            if due and r1_in_main:
                loss += r1_loss(penalised)
        sgd_update(tape, loss, D.trainable_variables)
        if due and not r1_in_main:
            with tf.GradientTape() as tape:
                loss = r1_loss(penalised)
            sgd_update(tape, loss, D.trainable_variables)
        with tf.GradientTape() as tape:
            fake_logits = D(G(next(latents), training=True), training=True)
            if g_loss == "non_saturating":
                loss = mean(tf.nn.softplus(-fake_logits))
            elif g_loss == "minimax":  # log(1 - D(G(z))) = -softplus(D(G(z))), descended
                loss = -mean(tf.nn.softplus(fake_logits))
            else:  # "ascending": log D(G(z)) descended
                loss = -mean(tf.nn.softplus(-fake_logits))
        sgd_update(tape, loss, G.trainable_variables)
    return weights_of({"G": G, "D": D})


def _stylegan_mistake(hint, **change):
    return Mistake(hint, lambda setup: _plain_stylegan_step(setup, **change))


STYLEGAN_MISTAKES = (
    _stylegan_mistake(
        "R1 was applied on a step where it was not due: lazy R1 runs only when "
        "self.step % self.r1_interval == 0, and each step must count itself "
        "(self.step.assign_add(1)), or every step looks like step 0", r1_when="always",
    ),
    _stylegan_mistake(
        "R1 did not train D on step t = 0, where it was due (t % r1_interval == 0, t counted "
        "before the step adds 1): take the penalty's gradient on a tape of its own, with a "
        "nested tape for grad_x D(x) inside it (a penalty computed where no tape records it "
        "gives D no gradient)", r1_when="never",
    ),
    _stylegan_mistake(
        "R1 is missing the lazy factor: on the steps where it runs it is weighted "
        "gamma / 2 * r1_interval, so that its average strength per step stays gamma / 2",
        r1_factor=0.5 * STYLEGAN_R1_GAMMA,
    ),
    _stylegan_mistake(
        "R1 is weighted gamma * r1_interval: the penalty is gamma / 2 * ||grad_x D(x)||^2 "
        "(times r1_interval when lazy)", r1_factor=STYLEGAN_R1_GAMMA * STYLEGAN_R1_INTERVAL,
    ),
    _stylegan_mistake(
        "R1 was taken at the fakes: R1 penalises D's gradient at the real images (at the "
        "fakes it is the R2 penalty)", r1_at="fake",
    ),
    _stylegan_mistake(
        "R1 was added to D's main loss: lazy R1 is a D update of its own (StyleGAN2's Dreg), "
        "taken after the main update (Dmain) on the same reals", r1_in_main=True,
    ),
    _stylegan_mistake(
        "R1 was applied on every step without the lazy factor (plain R1): lazy R1 runs only "
        "when self.step % self.r1_interval == 0, weighted gamma / 2 * r1_interval",
        r1_when="always", r1_factor=0.5 * STYLEGAN_R1_GAMMA,
    ),
    _stylegan_mistake(
        "D's loss has the wrong sign: D minimises softplus(-D(x)) + softplus(D(G(z))), "
        "scoring real images up and fakes down", d_sign=-1.0,
    ),
    _stylegan_mistake(
        "G descends the minimax loss log(1 - D(G(z))) = -softplus(D(G(z))), which saturates "
        "when D rejects the fakes: use the non-saturating softplus(-D(G(z)))", g_loss="minimax",
    ),
    _stylegan_mistake(
        "G's loss has the wrong sign: G minimises softplus(-D(G(z))) = -log D(G(z))",
        g_loss="ascending",
    ),
)

register(StepExercise(
    "06.stylegan_train_step", "06_stylegan.ipynb",
    "StyleGAN2's training step (the non-saturating game with lazy R1)",
    _stylegan_setup, _stylegan_reference, _stylegan_learner, STYLEGAN_MISTAKES,
))


# === Checking ===


def _network_weight_name(setup, network, index):
    weights = setup["networks"][network].weights
    return weights[index].path if index < len(weights) else f"weight {index}"


def _steps_taken(setup):
    steps = setup.get("steps", 1)
    return "one step" if steps == 1 else f"{steps} steps"


def diagnose(exercise, setup, learner_weights, expected):
    """The hint for a step whose weights differ from the reference's."""
    for mistake in exercise.mistakes:
        if first_difference(mistake.step(setup), learner_weights) is None:
            return mistake.hint
    network, index, difference = first_difference(expected, learner_weights)
    other = [name for name in expected if name != network]
    agree = (
        f"; {', '.join(other)} {'agrees' if len(other) == 1 else 'agree'}" if other and all(
            first_difference({name: expected[name]}, learner_weights) is None for name in other
        ) else ""
    )
    return (
        f"after {_steps_taken(setup)}, {network}'s {_network_weight_name(setup, network, index)} "
        f"differs from the reference by up to {difference:.3g}{agree}: compare that network's loss and update "
        "with the algorithm in the notebook"
    )


# What each replayed random draw is for, said when a step draws it too often or too rarely.
DRAWS = {
    "sample_latent": "fresh latents for every update of D (each of the critic's updates), then "
                     "fresh ones for G's update",
    "sample_epsilon": "one epsilon per critic update, for that update's interpolates",
}


def check_step(exercise_id, cls, verbose=True):
    """Check a learner's model class by letting it take one training step.

    Args:
        exercise_id: a key of `STEP_EXERCISES`, e.g. `"02.dcgan_train_step"`.
        cls: the learner's `keras.Model` subclass.
        verbose: print the verdict or the hint.

    Returns:
        True if both networks' weights after the step agree with the package's step, else
        False (after printing one hint).
    """
    if exercise_id not in STEP_EXERCISES:
        raise ConfigError(
            f"unknown step exercise {exercise_id!r}; known: {', '.join(sorted(STEP_EXERCISES))}"
        )
    exercise = STEP_EXERCISES[exercise_id]
    say = print if verbose else (lambda *_: None)
    with float32_policy():
        return _check_step(exercise, cls, say)


def _check_step(exercise, cls, say):
    exercise_id = exercise.id
    setup = exercise.setup()
    try:
        learner_weights, draws, logs = exercise.learner(cls, setup)
    except NotImplementedError:
        say(f"not yet: {exercise_id} raised NotImplementedError; write your train_step first")
        return False
    except Exception as error:
        say(f"hint for {exercise_id}: one training step raised {type(error).__name__}: {error}")
        return False
    expected_draws = dict(setup.get("expected_draws") or {"sample_latent": len(setup["latents"])})
    if "epsilons" in setup:
        expected_draws["sample_epsilon"] = len(setup["epsilons"])
    for method, expected_calls in expected_draws.items():
        if draws.get(method) != expected_calls:
            say(f"hint for {exercise_id}: the step called self.{method} {draws.get(method)} "
                f"time(s); it must call it {expected_calls} times: {DRAWS[method]}")
            return False
    if not isinstance(logs, dict) or not {"d_loss", "g_loss"} <= set(logs):
        say(f"hint for {exercise_id}: train_step must return a dict of logs with at least "
            "'d_loss' and 'g_loss' (e.g. the results of your loss trackers)")
        return False
    expected = exercise.reference(setup)
    if first_difference(expected, learner_weights) is None:
        say(f"correct: {exercise_id} took the same step as kerasgan's "
            f"(all of {', '.join(expected)} agree)")
        return True
    say(f"hint for {exercise_id}: {diagnose(exercise, setup, learner_weights, expected)}")
    return False
