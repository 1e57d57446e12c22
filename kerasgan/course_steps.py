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
            `batch` and `latents` (the draws, in order).
        reference: `fn(setup) -> {network name: [weights]}`: the package's own step.
        learner: `fn(cls, setup) -> (weights, latent_calls, logs)`: the learner's class built
            and stepped once on copies of the networks.
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
    gradients = tape.gradient(loss, variables)
    for variable, gradient in zip(variables, gradients):
        if gradient is not None:
            variable.assign(variable - LEARNING_RATE * gradient)


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


def _dcgan_reference(setup):
    from kerasgan.models.dcgan import DCGAN

    networks = {name: copy_network(net) for name, net in setup["networks"].items()}
    gan = DCGAN(networks["G"], networks["D"], latent_dim=setup["latent_dim"])
    g_optimizer, d_optimizer = _sgd_pair()
    gan.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    gan.sample_latent = LatentReplay(setup["latents"])
    gan.train_step(setup["batch"])
    return weights_of(networks)


def _dcgan_learner(cls, setup):
    networks = {name: copy_network(net) for name, net in setup["networks"].items()}
    model = cls(networks["G"], networks["D"], setup["latent_dim"])
    g_optimizer, d_optimizer = _sgd_pair()
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    replay = LatentReplay(setup["latents"])
    model.sample_latent = replay
    logs = model.train_step(setup["batch"])
    return weights_of(networks), replay.calls, logs


def _plain_gan_step(
    setup, *, d_sign=1.0, g_loss="non_saturating", d_updates_g=False, training=True,
    g_first=False, update_d=True, update_g=True,
):
    """One step of the original GAN game with plain tapes and SGD, with one thing changed
    (each keyword names a mistake; the defaults are the right step)."""
    import tensorflow as tf

    G, D = (copy_network(setup["networks"][name]) for name in ("G", "D"))  # noqa: N806
    real = tf.constant(setup["batch"])
    latents = [tf.constant(z) for z in setup["latents"]]

    def mean(x):
        return tf.reduce_mean(tf.cast(x, tf.float32))

    def d_step():
        with tf.GradientTape() as tape:
            fake = G(latents[0], training=training)
            real_logits, fake_logits = D(real, training=training), D(fake, training=training)
            loss = -mean(tf.math.log_sigmoid(d_sign * real_logits)) - mean(
                tf.math.log_sigmoid(-d_sign * fake_logits)
            )
        variables = D.trainable_variables + (G.trainable_variables if d_updates_g else [])
        if update_d:
            sgd_update(tape, loss, variables)

    def g_step():
        with tf.GradientTape() as tape:
            fake_logits = D(G(latents[1], training=training), training=training)
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
    _dcgan_setup, _dcgan_reference, _dcgan_learner, DCGAN_MISTAKES,
))


# === Checking ===


def _network_weight_name(setup, network, index):
    weights = setup["networks"][network].weights
    return weights[index].path if index < len(weights) else f"weight {index}"


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
        f"after one step, {network}'s {_network_weight_name(setup, network, index)} differs from "
        f"the reference by up to {difference:.3g}{agree}: compare that network's loss and update "
        "with the algorithm in the notebook"
    )


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
    setup = exercise.setup()
    try:
        learner_weights, latent_calls, logs = exercise.learner(cls, setup)
    except NotImplementedError:
        say(f"not yet: {exercise_id} raised NotImplementedError; write your train_step first")
        return False
    except Exception as error:
        say(f"hint for {exercise_id}: one training step raised {type(error).__name__}: {error}")
        return False
    expected_calls = len(setup["latents"])
    if latent_calls != expected_calls:
        say(f"hint for {exercise_id}: the step drew latents {latent_calls} time(s) with "
            f"self.sample_latent; it must draw {expected_calls} times: once for D's fakes, then "
            "fresh latents for G's update")
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
