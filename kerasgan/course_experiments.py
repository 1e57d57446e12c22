"""Ablations with a known direction: the learner runs an experiment, `check_experiment` reads it.

An exercise of this kind asks a question about a GAN ("what does the gradient penalty do to the
critic's gradients?"), and the learner answers it by experiment: train the same model several
times from the same seed for the same number of steps, changing ONE setting between the runs
(the *arms*), measure one number per arm, and collect the numbers in a dict:

    >>> results = {"gp_weight=0": 0.61, "gp_weight=10": 0.09, "gp_weight=100": 0.05}
    >>> course.check_experiment("04.gp_weight", results)
    correct: 04.gp_weight: gp_weight=0 > gp_weight=10, gp_weight=0 > gp_weight=100, as expected
    True

`check_experiment` does not re-run anything: it checks that every arm is there with a finite
number, then that the numbers go the way the literature and the course's own measurements say
(the *direction*), by a *margin* chosen so that the reference experiment passes for every seed the
tests try. When they do not, it prints ONE hint: which arms, the relation expected and the one
measured, and what usually causes it (arms trained for different numbers of steps, the setting
never reaching the model, a different seed per arm, ...). A wrong result is a False with a hint,
never a traceback.

The module also gives the learner one small helper per metric (`critic_gradient_norm_gap`,
`wasserstein_estimate`, `cycle_error`, `within_class_diversity`), so that the measurement is the
same for everybody and the experiment loop is the learner's own. `reference_results` runs each
experiment the way the teacher's notebooks do; the tests run it over several seeds.
"""

import dataclasses
import math

import numpy as np

from kerasgan.errors import ConfigError

# === The registry ===


@dataclasses.dataclass(frozen=True)
class Relation:
    """One expected relation between two arms' measurements.

    It holds when `results[larger] - results[smaller] >= margin * |results[larger]|`: for
    positive numbers, the smaller arm's value is at most `(1 - margin)` times the larger's.

    Attributes:
        larger: the arm expected to measure more.
        smaller: the arm expected to measure less.
        margin: the relative gap the check asks for, in `[0, 1)`.
    """

    larger: str
    smaller: str
    margin: float

    def holds(self, results):
        high, low = results[self.larger], results[self.smaller]
        return high - low >= self.margin * abs(high)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An ablation with a known direction.

    Attributes:
        id: `"NN.name"`, NN being the notebook number.
        notebook: the notebook's file name.
        question: what the experiment answers, in one sentence.
        arms: the names of the conditions, the keys of a results dict (e.g. `"gp_weight=10"`).
        metric: what is measured, how, and why it answers the question.
        expected: the expected direction, in words.
        relations: the `Relation`s the check asks for.
        causes: what usually produces the wrong direction, most likely first.
        unchanged: what usually makes every arm measure the same value.
    """

    id: str
    notebook: str
    question: str
    arms: tuple
    metric: str
    expected: str
    relations: tuple
    causes: tuple
    unchanged: str = (
        "the setting never reached the model: pass it to from_preset when you build each arm's "
        "model, and build a new model per arm"
    )


EXPERIMENTS = {}

# Said about every experiment whose arms train: the three ways an ablation usually goes wrong.
_TRAINING_CAUSES = (
    "the arms did not train for the same number of steps (use fit(..., epochs=1, "
    "steps_per_epoch=STEPS) for every arm; a time budget gives the cheaper arm more steps)",
    "the setting never reached the model (pass it to from_preset for each arm, and build a new "
    "model per arm: a model trained in an earlier arm keeps its weights)",
    "each arm used another seed (call keras.utils.set_random_seed(SEED) and pass seed=SEED for "
    "every arm, so that only the setting differs)",
)


def register(experiment):
    """Add an experiment to `EXPERIMENTS` (ids are unique)."""
    if experiment.id in EXPERIMENTS:
        raise ConfigError(f"experiment {experiment.id!r} is registered twice")
    EXPERIMENTS[experiment.id] = experiment
    return experiment


register(Experiment(
    id="04.gp_weight",
    notebook="04_wgan_gp.ipynb",
    question="What does the gradient penalty do to the critic's gradients, and does a larger "
    "lambda_GP do more?",
    arms=("gp_weight=0", "gp_weight=10", "gp_weight=100"),
    metric="critic_gradient_norm_gap: the mean |‖∇C(x̂)‖ - 1| over interpolates x̂ between "
    "held-out real digits and fakes, after the same number of generator steps. The penalty "
    "pushes exactly this number towards 0, so it shows whether the constraint holds.",
    expected="without the penalty (gp_weight=0) the gap is large; with lambda = 10 or 100 it is "
    "small (10 and 100 are not ordered reliably: both hold the norm near 1)",
    relations=(
        Relation("gp_weight=0", "gp_weight=10", 0.4),
        Relation("gp_weight=0", "gp_weight=100", 0.4),
    ),
    causes=_TRAINING_CAUSES + (
        "the metric was taken with another model than the arm's (measure each arm's critic "
        "right after training it)",
    ),
))

register(Experiment(
    id="04.n_critic",
    notebook="04_wgan_gp.ipynb",
    question="Does training the critic more per generator step (n_critic = 5 rather than 1) "
    "give a better estimate of the Wasserstein distance?",
    arms=("n_critic=1", "n_critic=5"),
    metric="wasserstein_estimate: mean C(x) - mean C(G(z)) on held-out real digits and fresh "
    "fakes, after the same number of GENERATOR steps. For a critic that keeps its gradients "
    "near 1 this is a lower bound of the distance: the closer the critic is to optimal, the "
    "larger (the tighter) it is.",
    expected="the estimate of the critic trained with n_critic=5 is larger (by far in a short "
    "run of small models, by a quarter or more after 200 steps of the default ones)",
    relations=(Relation("n_critic=5", "n_critic=1", 0.15),),
    causes=(
        "the arms did not take the same number of GENERATOR steps (steps_per_epoch counts "
        "generator steps; with n_critic=5 each takes five critic updates)",
        "every arm's batch was not n_critic x m images (the model cuts a batch into n_critic "
        "slices: with the same batch for both arms, the n_critic=5 critic sees a fifth of the "
        "images per update)",
    ) + _TRAINING_CAUSES[1:],
))

register(Experiment(
    id="05.cycle_weight",
    notebook="05_cyclegan.ipynb",
    question="What does the cycle-consistency loss buy: without it, can F undo G?",
    arms=("cycle_weight=0", "cycle_weight=10"),
    metric="cycle_error: the mean |F(G(a)) - a| over held-out 8x8 digits a (pixels in [-1, 1]), "
    "after the same number of steps, identity loss off in both arms. It is exactly what the cycle "
    "loss trains down, measured on digits neither arm trained on.",
    expected="the cycle error without the cycle loss (cycle_weight=0) is larger",
    relations=(Relation("cycle_weight=0", "cycle_weight=10", 0.1),),
    causes=_TRAINING_CAUSES + (
        "the identity loss was on in one arm only (set identity_weight=0 in both: it is relative "
        "to cycle_weight, so it vanishes with cycle_weight=0 anyway)",
        "the error was measured in the wrong direction (G(F(b)) against a) or on another model",
    ),
))

register(Experiment(
    id="07.truncation",
    notebook="07_biggan.ipynb",
    question="What does the truncation threshold do to the variety of a class's samples?",
    arms=("truncation=1", "truncation=0.5", "truncation=0.1"),
    metric="within_class_diversity: the mean distance between two samples of the same class "
    "(pixels), averaged over the classes, for the same latents and labels in every arm, from one "
    "trained model. Truncation only changes the latents, so any change is its effect.",
    expected="variety falls as the threshold falls: truncation=1 > 0.5 > 0.1",
    relations=(
        Relation("truncation=1", "truncation=0.5", 0.1),
        Relation("truncation=0.5", "truncation=0.1", 0.3),
    ),
    causes=(
        "the threshold was not passed to the generator (generate_from_latent(..., "
        "truncation=t) for each arm)",
        "the arms used different models or different labels",
        "diversity was measured over all classes at once, or on the labels instead of the images",
    ),
    unchanged="the threshold never reached the generator: pass truncation=t to "
    "generate_from_latent in each arm",
))


# === The check ===


def _as_number(value):
    """The float in `value` (a Python or NumPy number, a 0-d or one-element array or tensor), or
    None when there is none."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if hasattr(value, "numpy"):
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception:  # an object NumPy cannot hold
        return None
    if array.dtype.kind not in "iuf" or array.size != 1:
        return None
    return float(array.reshape(()))


def _format(value):
    return f"{value:.4g}"


def _problem(experiment, results):
    """None when `results` passes, otherwise the one hint to print."""
    known = ", ".join(repr(arm) for arm in experiment.arms)
    if not isinstance(results, dict):
        return (f"results must be a dict {{arm name: measured number}} with the arms {known}, "
                f"got a {type(results).__name__}")
    missing = [arm for arm in experiment.arms if arm not in results]
    unknown = [key for key in results if key not in experiment.arms]
    if missing:
        extra = f" (and it has {', '.join(map(repr, unknown))}: a spelling?)" if unknown else ""
        return (f"arm {missing[0]!r} is missing from results{extra}; the arms are {known}; "
                "run every arm with the same seed and steps")
    if unknown:
        return f"results has an arm this experiment does not know: {unknown[0]!r}; the arms are {known}"
    numbers = {}
    for arm in experiment.arms:
        number = _as_number(results[arm])
        if number is None:
            return (f"results[{arm!r}] is a {type(results[arm]).__name__}, not one number: store "
                    "the metric's value (a float) for each arm")
        if not math.isfinite(number):
            return (f"results[{arm!r}] is {number}: that arm's training diverged or its metric was "
                    "taken on an empty or broken batch; re-run the arm and check its losses")
        numbers[arm] = number
    if len(set(numbers.values())) == 1:
        return (f"every arm measured the same value, {_format(numbers[experiment.arms[0]])}: the "
                f"arms did not differ; probably {experiment.unchanged}")
    for relation in experiment.relations:
        if relation.holds(numbers):
            continue
        high, low = numbers[relation.larger], numbers[relation.smaller]
        if high > low:
            measured = (f"measured {_format(high)} vs {_format(low)}: the right way, but by less "
                        f"than the margin")
        elif high == low:
            measured = f"measured the same value, {_format(high)}, for both"
        else:
            measured = f"measured {_format(high)} vs {_format(low)}: the other way round"
        bound = (f"{relation.smaller} at most {1 - relation.margin:.2g} x {relation.larger}"
                 if high > 0 else f"{relation.larger} clearly above {relation.smaller}")
        return (f"expected {relation.larger} > {relation.smaller} ({bound}), {measured}. What "
                f"usually causes it: {experiment.causes[0]}; or {experiment.causes[1]}")
    return None


def check_experiment(experiment_id, results, verbose=True):
    """Check a learner's measured results against the experiment's known direction.

    Args:
        experiment_id: a key of `EXPERIMENTS` (e.g. `"04.gp_weight"`).
        results: `{arm name: measured number}`, one entry per arm of the experiment (e.g.
            `{"gp_weight=0": 0.6, "gp_weight=10": 0.1, "gp_weight=100": 0.05}`).
        verbose: print the verdict or the hint.

    Returns:
        True if every arm is there with a finite number and the numbers go the expected way by
        the experiment's margin; otherwise False, after printing one hint.

    Raises:
        ConfigError: an unknown experiment id (the message lists the known ones).
    """
    if experiment_id not in EXPERIMENTS:
        raise ConfigError(
            f"unknown experiment {experiment_id!r}; known: {', '.join(sorted(EXPERIMENTS))}"
        )
    experiment = EXPERIMENTS[experiment_id]
    say = print if verbose else (lambda *_: None)
    problem = _problem(experiment, results)
    if problem:
        say(f"hint for {experiment_id}: {problem}")
        return False
    relations = ", ".join(f"{r.larger} > {r.smaller}" for r in experiment.relations)
    say(f"correct: {experiment_id}: {relations}, as expected")
    return True


# === Measuring: one helper per metric ===


def _images(images, what="images"):
    array = np.asarray(images, "float32")
    if array.ndim != 4 or len(array) < 2:
        raise ConfigError(f"{what} must be a batch [n >= 2, H, W, C], got shape {array.shape}")
    return array


def critic_gradient_norm_gap(gan, images, seed=0):
    """How far a WGAN-GP critic's gradient norm is from 1 where the penalty looks.

    Draws one fake per real image (`gan.generator`, latents from `seed`), one interpolate
    `x̂ = eps * x + (1 - eps) * G(z)` per pair (`eps ~ U[0, 1]`, from `seed`), and averages
    `|‖∇C(x̂)‖ - 1|` over them, both networks in inference mode, in float32.

    Args:
        gan: a trained `WGANGP` (any model with `generator`, `critic` and `latent_dim`).
        images: held-out real images `[n, H, W, C]` in `[-1, 1]`.
        seed: seed of the latents and the interpolation coefficients.

    Returns:
        The mean gap, a float (0: the norm is exactly 1 at every interpolate).
    """
    from kerasgan import losses

    images = _images(images)
    fakes = gan.generator(gan.latent_batch(len(images), gan.latent_dim, seed), training=False)
    _, norms = losses.gradient_penalty(
        lambda x: gan.critic(x, training=False), images, fakes, seed=seed, return_norms=True,
    )
    return float(np.mean(np.abs(np.asarray(norms, "float64") - 1.0)))


def wasserstein_estimate(gan, images, seed=0):
    """A WGAN critic's estimate of the Wasserstein-1 distance: mean C(x) - mean C(G(z)).

    Args:
        gan: a trained `WGANGP`.
        images: held-out real images `[n, H, W, C]` in `[-1, 1]`; as many fakes are drawn.
        seed: seed of the latents.

    Returns:
        The estimate, a float.
    """
    images = _images(images)
    fakes = gan.generator(gan.latent_batch(len(images), gan.latent_dim, seed), training=False)
    real_scores = np.asarray(gan.critic(images, training=False), "float64")
    fake_scores = np.asarray(gan.critic(fakes, training=False), "float64")
    return float(real_scores.mean() - fake_scores.mean())


def cycle_error(gan, images_a):
    """CycleGAN's round-trip error from domain A: the mean |F(G(a)) - a| over pixels and images.

    Args:
        gan: a trained `CycleGAN`.
        images_a: images of domain A `[n, H, W, C]` in `[-1, 1]`, at the model's size.

    Returns:
        The mean absolute error, a float in `[0, 2]`.
    """
    images_a = _images(images_a, "images_a")
    cycled = gan.translate(gan.translate(images_a, "a2b"), "b2a")
    return float(np.mean(np.abs(cycled.astype("float64") - images_a)))


def within_class_diversity(images, labels):
    """The mean distance between two samples of the same class, averaged over the classes.

    Args:
        images: generated images `[n, H, W, C]`.
        labels: their classes `[n]`; every class present needs at least two images.

    Returns:
        The mean over classes of the mean pairwise Euclidean distance (pixels), a float.
    """
    from kerasgan.callbacks import mean_pairwise_distance

    images = _images(images)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise ConfigError(f"got {len(images)} images but {len(labels)} labels")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ConfigError(f"class {classes[counts.argmin()]} has one image: a distance needs two")
    return float(np.mean([mean_pairwise_distance(images[labels == c]) for c in classes]))


# === The reference experiments (what the teacher's notebooks run) ===


def _trained(model, batches, steps, eager=False):
    """`model` compiled with its defaults and trained for `steps` steps.

    `eager` skips tracing the step: for a few steps of BigGAN that is cheaper than the trace.
    """
    model.compile(run_eagerly=eager)
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    return model


def _wgan_gp_arm(setting, seed, preset, steps, batch, train_images):
    import keras

    from kerasgan import datasets
    from kerasgan.models import WGANGP

    keras.utils.set_random_seed(seed)
    gan = WGANGP.from_preset(preset, image_size=28, channels=1, seed=seed, **setting)
    batches = datasets.training_pipeline(
        datasets.from_arrays(train_images), gan.n_critic * batch, seed=seed,
    ).repeat()
    return _trained(gan, batches, steps)


def _cyclegan_arm(cycle_weight, seed, preset, steps, batch, pairs):
    import keras

    from kerasgan import datasets
    from kerasgan.models import CycleGAN

    keras.utils.set_random_seed(seed)
    gan = CycleGAN.from_preset(
        preset, image_size=32, channels=1, seed=seed, cycle_weight=cycle_weight, identity_weight=0.0,
    )
    return _trained(gan, datasets.training_pipeline(pairs, batch, seed=seed).repeat(), steps)


# Held out from every reference arm's training: the last images of each embedded set, in the
# experiment seed's random order (the MNIST file is ordered by class: its last 256 are nines).
HELD_OUT = 256


def reference_results(experiment_id, seed=0, preset="tiny", steps=None, batch=None, n_per_class=10):
    """Run an experiment the way the teacher's notebook does, and return its results dict.

    Every arm is built and trained from `seed` in float32, for the same number of steps, on the
    embedded data (offline); the metrics are taken on held-out images.

    Args:
        experiment_id: a key of `EXPERIMENTS`.
        seed: the seed of every arm.
        preset: the models' configuration (`"tiny"` in smoke runs and tests).
        steps: (generator) steps per arm; default: the notebook's smoke setting
            (`ablation_steps`). For `07.truncation` the steps of its one model (default 3,
            taken eagerly: the notebook samples the model it trained before).
        batch: images per critic update (WGAN-GP) or pairs per step (CycleGAN, BigGAN);
            default: the notebook's smoke setting (`ablation_batch`), else 8.
        n_per_class: samples per class for `07.truncation`.

    Returns:
        `{arm name: measured number}`, ready for `check_experiment`.

    Raises:
        ConfigError: an unknown experiment id.
    """
    from kerasgan import course, datasets
    from kerasgan.utils import float32_policy

    if experiment_id not in EXPERIMENTS:
        raise ConfigError(
            f"unknown experiment {experiment_id!r}; known: {', '.join(sorted(EXPERIMENTS))}"
        )
    notebook = experiment_id[:2]
    extra = course.NOTEBOOKS[notebook].smoke.get("extra", {})
    steps = steps or extra.get("ablation_steps", 3)
    batch = batch or extra.get("ablation_batch", 8)
    with float32_policy():
        if notebook == "04":
            images = datasets.load_arrays("mnist", seed=seed)[0]
            held_out = (images[-HELD_OUT:] / 127.5 - 1.0).astype("float32")[..., None]
            if experiment_id == "04.gp_weight":
                arms = {f"gp_weight={w:g}": {"gp_weight": w} for w in (0.0, 10.0, 100.0)}
                metric = critic_gradient_norm_gap
            else:
                arms = {f"n_critic={n}": {"n_critic": n} for n in (1, 5)}
                metric = wasserstein_estimate
            return {
                arm: metric(
                    _wgan_gp_arm(setting, seed, preset, steps, batch, images[:-HELD_OUT]), held_out,
                    seed=seed,
                )
                for arm, setting in arms.items()
            }
        if notebook == "05":
            digits = datasets.load_arrays("digits")[0]
            a = datasets.from_arrays(digits[:-HELD_OUT], image_size=32, channels=1)
            b = datasets.from_arrays(
                datasets.load_arrays("mnist", seed=seed)[0][:2000], image_size=32, channels=1
            )
            pairs = datasets.zip_unpaired(a, b, seed=seed)
            held_out = np.stack(list(
                datasets.from_arrays(digits[-HELD_OUT:], image_size=32, channels=1).as_numpy_iterator()
            ))
            return {
                f"cycle_weight={w:g}": cycle_error(
                    _cyclegan_arm(w, seed, preset, steps, batch, pairs), held_out
                )
                for w in (0.0, 10.0)
            }
        return _truncation_results(seed, preset, steps, batch, n_per_class)


def _truncation_results(seed, preset, steps, batch, n_per_class):
    import keras

    from kerasgan import datasets
    from kerasgan.models import BigGAN

    keras.utils.set_random_seed(seed)
    gan = BigGAN.from_preset(preset, image_size=32, channels=1, seed=seed)
    images, labels = datasets.load_arrays("mnist", seed=seed)   # a slice of all ten classes
    pairs = datasets.from_arrays(images[:1024], labels[:1024], image_size=32, channels=1)
    _trained(gan, datasets.training_pipeline(pairs, batch, seed=seed).repeat(), steps, eager=True)
    classes = np.repeat(np.arange(gan.num_classes), n_per_class)
    latent = gan.latent_batch(len(classes), gan.latent_dim, seed=seed)
    return {
        f"truncation={t:g}": within_class_diversity(
            gan.generate_from_latent(latent, condition=classes, truncation=t), classes
        )
        for t in (1.0, 0.5, 0.1)
    }
