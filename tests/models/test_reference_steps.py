"""Every model's training step, pinned to its paper by an independent reference.

For each model, ONE `train_step` runs on a tiny configuration with plain SGD optimizers (so an
update is exactly `w - lr * grad`); then every variable goes back to where it started (weights,
batch-norm statistics, spectral-norm vectors, seed-generator states), and a reference written
here from the paper's equations, with plain `tf.GradientTape`s and the networks used as black
boxes, takes the same step: same initial weights, same batch, same random draws (replayed from
the model's seed generators, restored to the same state and drawn in the same order). Both
networks' weights (and the EMA generator's, where there is one) must agree, and must have moved.

The references never call the model's methods or `kerasgan.losses`: the losses, penalties and
update order are written out below. A difference is either a bug in the model or a deliberate
departure, which the model's docstring must state.

The last test checks that `evaluate()` (the models' `test_step`) changes no state.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan import losses
from kerasgan.models.biggan import BigGAN
from kerasgan.models.conditional_gan import ConditionalGAN
from kerasgan.models.cyclegan import CycleGAN
from kerasgan.models.dcgan import DCGAN
from kerasgan.models.stylegan import StyleGAN
from kerasgan.models.toy import ToyGAN, ring_of_gaussians
from kerasgan.models.wgan_gp import WGANGP

LR = 0.01
# float32 networks computed twice in a slightly different order (e.g. the model averages with
# `compute_average_loss`, the reference with `reduce_mean`).
ATOL, RTOL = 1e-5, 1e-4


def images(n, size, channels, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-1, 1, (n, size, size, channels)).astype("float32"))


def labels(n):
    return tf.constant((np.arange(n) * 3 % 10).astype("int32"))


def compiled(gan):
    gan.compile(g_optimizer=keras.optimizers.SGD(LR), d_optimizer=keras.optimizers.SGD(LR))
    return gan


def sgd(tape, loss, variables):
    """The update every reference takes: `w <- w - lr * dL/dw`."""
    gradients = tape.gradient(loss, variables)
    for variable, gradient in zip(variables, gradients):
        if gradient is not None:
            variable.assign(variable - LR * tf.convert_to_tensor(gradient))


def mean(x):
    return tf.reduce_mean(tf.cast(x, tf.float32))


def check_against_reference(gan, batch, reference, networks):
    """Run `gan.train_step(batch)`, rewind every variable, run `reference()`, compare.

    Args:
        networks: `{name: model}` whose weights must agree (and whose trainable weights must
            have moved, so the comparison is not vacuous).
    """
    variables = gan.variables
    start = [v.numpy().copy() for v in variables]
    gan.train_step(batch)
    stepped = {id(v): v.numpy().copy() for v in variables}
    for variable, value in zip(variables, start):
        variable.assign(value)
    initial = {id(v): v.numpy().copy() for v in variables}
    reference()
    for name, network in networks.items():
        moved = max(
            float(np.max(np.abs(stepped[id(w)] - initial[id(w)])))
            for w in network.trainable_weights
        )
        assert moved > 1e-4, f"{name} did not move: the comparison would be vacuous"
        for weight in network.weights:
            np.testing.assert_allclose(
                stepped[id(weight)], weight.numpy(), atol=ATOL, rtol=RTOL,
                err_msg=f"{name}: {weight.path} differs from the reference step",
            )


# === The original GAN game, non-saturating (Goodfellow et al., 2014) ===


def non_saturating_reference(gan, real, condition=None, augment=None):
    """Algorithm 1 of Goodfellow et al. with G's non-saturating loss, one D step per G step.

    D step: fresh z, fakes made outside the tape (D's update cannot reach G), real and fake
    batches through D separately (as the DCGAN reference code does, so batch norm sees each on
    its own), `L_D = -log D(x) - log(1 - D(G(z)))`. G step: fresh z, `L_G = -log D(G(z))`
    through the updated D. Conditional models (Mirza & Osindero) feed the real batch's labels
    to both networks. With `augment` (DiffAugment, Zhao et al., 2020), D sees every image, real
    or fake, in both steps, as `T(x)`.
    """
    G, D = gan.generator, gan.discriminator  # noqa: N806
    n = real.shape[0]

    def g(z):
        return G(z if condition is None else [z, condition], training=True)

    def d(x):
        if augment is not None:
            x = augment(x, training=True)
        return D(x if condition is None else [x, condition], training=True)

    z = keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator)
    fake = tf.stop_gradient(g(z))
    with tf.GradientTape() as tape:
        loss = -mean(tf.math.log_sigmoid(d(real))) - mean(tf.math.log_sigmoid(-d(fake)))
    sgd(tape, loss, D.trainable_variables)
    z = keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator)
    with tf.GradientTape() as tape:
        loss = -mean(tf.math.log_sigmoid(d(g(z))))
    sgd(tape, loss, G.trainable_variables)


def test_toy_gan_step_is_the_non_saturating_game():
    gan = compiled(ToyGAN.build(width=16, depth=2, seed=0))
    real = tf.constant(ring_of_gaussians(16, seed=0))
    check_against_reference(
        gan, real, lambda: non_saturating_reference(gan, real),
        {"G": gan.generator, "D": gan.discriminator},
    )


def test_dcgan_step_is_the_non_saturating_game():
    gan = compiled(DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0))
    real = images(4, 28, 1)
    check_against_reference(
        gan, real, lambda: non_saturating_reference(gan, real),
        {"G": gan.generator, "D": gan.discriminator},
    )


def test_dcgan_step_with_diffaugment_shows_d_transformed_reals_and_fakes_in_both_steps():
    gan = compiled(DCGAN.from_preset(
        "tiny", image_size=28, channels=1, seed=0, augmentation="color,translation,cutout"
    ))
    real = images(4, 28, 1)
    check_against_reference(
        gan, real, lambda: non_saturating_reference(gan, real, augment=gan.augmentation),
        {"G": gan.generator, "D": gan.discriminator},
    )


def test_conditional_gan_step_feeds_the_labels_to_both_networks():
    gan = compiled(ConditionalGAN.from_preset("tiny", image_size=28, channels=1, seed=0))
    real, y = images(4, 28, 1), labels(4)
    check_against_reference(
        gan, (real, y), lambda: non_saturating_reference(gan, real, y),
        {"G": gan.generator, "D": gan.discriminator},
    )


# === WGAN-GP (Gulrajani et al., 2017, Algorithm 1) ===


def test_wgan_gp_step_is_algorithm_1():
    """`n_critic` critic updates, each on its own slice of fresh reals, with
    `L = C(G(z)) - C(x) + lambda * (||grad C(x_hat)|| - 1)^2`, `x_hat = eps x + (1 - eps) G(z)`,
    `eps ~ U[0, 1]` per example, the norm `sqrt(sum g^2 + 1e-12)`; then one generator update,
    `L_G = -C(G(z))`."""
    gan = compiled(WGANGP.from_preset("tiny", image_size=28, channels=1, seed=0))
    assert gan.n_critic == 2 and gan.gp_weight == 10.0
    real = images(8, 28, 1)
    G, C = gan.generator, gan.critic  # noqa: N806
    m = 8 // gan.n_critic

    def reference():
        for step in range(gan.n_critic):
            x = real[step * m : (step + 1) * m]
            z = keras.random.normal((m, gan.latent_dim), seed=gan.seed_generator)
            fake = tf.stop_gradient(G(z, training=True))
            with tf.GradientTape() as tape:
                wasserstein_loss = mean(C(fake, training=True)) - mean(C(x, training=True))
                eps = keras.random.uniform((m, 1, 1, 1), seed=gan.seed_generator)
                x_hat = eps * x + (1.0 - eps) * fake
                with tf.GradientTape() as inner:
                    inner.watch(x_hat)
                    scores = tf.reduce_sum(C(x_hat, training=True))
                grad = inner.gradient(scores, x_hat)
                norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
                loss = wasserstein_loss + gan.gp_weight * mean(tf.square(norm - 1.0))
            sgd(tape, loss, C.trainable_variables)
        z = keras.random.normal((m, gan.latent_dim), seed=gan.seed_generator)
        with tf.GradientTape() as tape:
            loss = -mean(C(G(z, training=True), training=True))
        sgd(tape, loss, G.trainable_variables)

    check_against_reference(gan, real, reference, {"G": G, "C": C})


# === CycleGAN (Zhu et al., 2017) ===


@pytest.mark.parametrize("pool_size", [0, 4])
def test_cyclegan_step_is_the_papers_objective(pool_size):
    """Generators first: LSGAN adversarial terms `(D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2`,
    `lambda (|F(G(a)) - a| + |G(F(b)) - b|)`, `0.5 lambda (|G(b) - b| + |F(a) - a|)`, then the
    discriminators on the (pre-update, detached) fakes the image pool returns:
    `0.5 ((D(real) - 1)^2 + D(fake)^2)` each. An empty pool of size 4 hands a first batch of 2
    back unchanged, so both pool sizes see this step's fakes."""
    gan = CycleGAN.from_preset("tiny", image_size=16, channels=1, seed=0, pool_size=pool_size)
    gan.compile(**{f"{net}_optimizer": keras.optimizers.SGD(LR) for net in ("g", "f", "d_a", "d_b")})
    a, b = images(2, 16, 1, seed=0), images(2, 16, 1, seed=1)
    G, F = gan.generator_a2b, gan.generator_b2a  # noqa: N806
    D_A, D_B = gan.discriminator_a, gan.discriminator_b  # noqa: N806
    lam = gan.cycle_weight

    def l1(x, y):
        return mean(tf.abs(x - y))

    def reference():
        with tf.GradientTape() as tape:
            fake_b, fake_a = G(a, training=True), F(b, training=True)
            adversarial = mean(tf.square(D_B(fake_b, training=True) - 1.0)) + mean(
                tf.square(D_A(fake_a, training=True) - 1.0)
            )
            cycle = l1(F(fake_b, training=True), a) + l1(G(fake_a, training=True), b)
            identity = l1(G(b, training=True), b) + l1(F(a, training=True), a)
            loss = adversarial + lam * cycle + 0.5 * lam * identity
        sgd(tape, loss, G.trainable_variables + F.trainable_variables)
        fake_a, fake_b = tf.stop_gradient(fake_a), tf.stop_gradient(fake_b)
        with tf.GradientTape() as tape:
            loss = 0.5 * (
                mean(tf.square(D_A(a, training=True) - 1.0))
                + mean(tf.square(D_A(fake_a, training=True)))
            ) + 0.5 * (
                mean(tf.square(D_B(b, training=True) - 1.0))
                + mean(tf.square(D_B(fake_b, training=True)))
            )
        sgd(tape, loss, D_A.trainable_variables + D_B.trainable_variables)

    assert gan.identity_weight == 0.5 and lam == 10.0
    check_against_reference(gan, (a, b), reference, {"G": G, "F": F, "D_A": D_A, "D_B": D_B})


# === StyleGAN2 (Karras et al., 2020) ===


@pytest.mark.parametrize("step", [0, 1], ids=["r1_due", "r1_not_due"])
def test_stylegan_step_is_stylegan2s(step):
    """Non-saturating loss; style mixing (probability 1: every batch mixes, the crossover
    replayed from the mixing layer's seed generator, the second style the next image's `w`);
    lazy R1 as its own discriminator update on real images,
    `gamma / 2 * interval * ||grad_x D(x)||^2`, after the main D update on steps that are
    multiples of the interval (StyleGAN2's `Dreg` phase), none on the others; `w_avg` tracked
    on fresh latents; EMA of G with StyleGAN2-ADA's ramp-up. No path-length regularisation
    (omitted, see the module docstring)."""
    gan = compiled(
        StyleGAN.from_preset(
            "tiny", image_size=16, channels=3, seed=0, mixing_probability=1.0, r1_interval=4,
            r1_gamma=10.0, ema_decay=0.9,
        )
    )
    gan.step.assign(step)
    real = images(4, 16, 3)
    G, D, E = gan.generator, gan.discriminator, gan.generator_ema  # noqa: N806
    mapping, synthesis = G.get_layer("mapping"), G.get_layer("synthesis")
    mixing_seed = G.get_layer("style_mixing").seed_generator
    num_styles = synthesis.inputs[0].shape[1]
    n = 4

    def generate(z):
        w = mapping(z, training=True)
        styles = tf.tile(w[:, None, :], [1, num_styles, 1])
        crossover = keras.random.randint((), 1, num_styles, seed=mixing_seed)
        keras.random.uniform((), seed=mixing_seed)  # below probability 1: always mixed
        layer = tf.range(num_styles)[None, :, None]
        mixed = tf.where(layer < crossover, styles, tf.roll(styles, 1, axis=0))
        return synthesis(mixed, training=True)

    def reference():
        ema_start = [w.numpy().copy() for w in E.weights]
        z = keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator)
        w_mean = tf.reduce_mean(mapping(z, training=False), axis=0)
        mapping.w_avg.assign(gan.w_avg_beta * mapping.w_avg + (1 - gan.w_avg_beta) * w_mean)
        # D's main update.
        z = keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator)
        fake = tf.stop_gradient(generate(z))
        with tf.GradientTape() as tape:
            loss = -mean(tf.math.log_sigmoid(D(real, training=True))) - mean(
                tf.math.log_sigmoid(-D(fake, training=True))
            )
        sgd(tape, loss, D.trainable_variables)
        # Lazy R1: a separate D update, weighted by the interval, when due.
        if step % gan.r1_interval == 0:
            with tf.GradientTape() as tape:
                with tf.GradientTape() as inner:
                    inner.watch(real)
                    scores = tf.reduce_sum(D(real, training=True))
                grad = inner.gradient(scores, real)
                r1 = tf.reduce_sum(tf.square(grad), axis=[1, 2, 3])
                loss = mean(0.5 * gan.r1_gamma * gan.r1_interval * r1)
            sgd(tape, loss, D.trainable_variables)
        # G's update through the updated D.
        z = keras.random.normal((n, gan.latent_dim), seed=gan.seed_generator)
        with tf.GradientTape() as tape:
            loss = -mean(tf.math.log_sigmoid(D(generate(z), training=True)))
        sgd(tape, loss, G.trainable_variables)
        # EMA: half-life at most 5% of the steps so far (this one included).
        beta = min(0.9, 0.5 ** (1.0 / (0.05 * (step + 1))))
        for average, start, weight in zip(E.weights, ema_start, G.weights):
            average.assign(beta * start + (1 - beta) * weight if weight.trainable else weight)

    check_against_reference(gan, real, reference, {"G": G, "D": D, "G_ema": E})
    assert int(gan.step.numpy()) == step  # rewound: the reference does not count steps
    # The model's own step (optimizer state is not rewound): R1 took a D update of its own.
    assert int(gan.d_optimizer.iterations.numpy()) == (2 if step % gan.r1_interval == 0 else 1)


# === BigGAN (Brock et al., 2019) ===


def orthogonal_penalty(kernel, beta):
    """`beta * ||W^T W * (1 - I)||_F^2` with one column per output unit (section 3.1)."""
    w = tf.reshape(kernel, (-1, kernel.shape[-1]))
    gram = tf.matmul(w, w, transpose_a=True)
    return beta * tf.reduce_sum(tf.square(gram * (1.0 - tf.eye(kernel.shape[-1]))))


def test_biggan_step_is_hinge_with_orthogonal_regularization_and_ema():
    """Hinge loss, labels into G (shared embedding) and D (projection), orthogonal
    regularization of every G weight matrix but the shared embedding (none on D), EMA with
    `min(decay, (1 + t) / (10 + t))` after the t-th G update."""
    gan = compiled(BigGAN.from_preset("tiny", image_size=32, channels=3, seed=0))
    real, y = images(4, 32, 3), labels(4)
    G, D, E = gan.generator, gan.discriminator, gan.generator_ema  # noqa: N806
    beta = 1e-4
    regularized = [
        w for w in G.trainable_weights if len(w.shape) >= 2 and "shared_embedding" not in w.path
    ]
    assert regularized and not G.losses  # the step adds the penalty, no layer regularizer
    assert not D.losses  # BigGAN regularizes G only

    def reference():
        ema_start = [w.numpy().copy() for w in E.weights]
        z = keras.random.normal((4, gan.latent_dim), seed=gan.seed_generator)
        fake = tf.stop_gradient(G([z, y], training=True))
        with tf.GradientTape() as tape:
            loss = mean(tf.nn.relu(1.0 - D([real, y], training=True))) + mean(
                tf.nn.relu(1.0 + D([fake, y], training=True))
            )
        sgd(tape, loss, D.trainable_variables)
        z = keras.random.normal((4, gan.latent_dim), seed=gan.seed_generator)
        with tf.GradientTape() as tape:
            loss = -mean(D([G([z, y], training=True), y], training=True))
            loss += tf.add_n([orthogonal_penalty(w, beta) for w in regularized])
        sgd(tape, loss, G.trainable_variables)
        t = 1.0
        decay = min(gan.ema_decay, (1 + t) / (10 + t))
        for average, start, weight in zip(E.weights, ema_start, G.weights):
            average.assign(decay * start + (1 - decay) * weight if weight.trainable else weight)

    check_against_reference(gan, (real, y), reference, {"G": G, "D": D, "G_ema": E})


# === evaluate() changes nothing ===


def _models():
    return {
        "toy": (lambda: ToyGAN.build(width=16, depth=2, seed=0),
                tf.constant(ring_of_gaussians(8, seed=0))),
        "dcgan": (lambda: DCGAN.from_preset("tiny", image_size=28, channels=1, seed=0),
                  images(4, 28, 1)),
        "cgan": (lambda: ConditionalGAN.from_preset("tiny", image_size=28, channels=1, seed=0),
                 (images(4, 28, 1), labels(4))),
        "wgan-gp": (lambda: WGANGP.from_preset("tiny", image_size=28, channels=1, seed=0),
                    images(4, 28, 1)),
        "cyclegan": (lambda: CycleGAN.from_preset("tiny", image_size=16, channels=1, seed=0),
                     (images(2, 16, 1), images(2, 16, 1, seed=1))),
        "stylegan": (lambda: StyleGAN.from_preset("tiny", image_size=16, channels=3, seed=0),
                     images(4, 16, 3)),
        "biggan": (lambda: BigGAN.from_preset("tiny", image_size=32, channels=3, seed=0),
                   (images(4, 32, 3), labels(4))),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_evaluate_changes_no_variable(name):
    """`evaluate()` runs `test_step`: no penalty, no update, batch norm and spectral norm in
    inference mode, no step counter or R1 value written. Only the seed generators move (the
    step draws fresh latents from the model's stream, as training does) and the metrics."""
    build, batch = _models()[name]
    gan = build()
    gan.compile(run_eagerly=True)
    if name == "stylegan":
        gan.last_r1.assign(123.0)
    optimizers = [o for o in vars(gan).values() if isinstance(o, keras.optimizers.Optimizer)]
    watched = [
        v for v in gan.variables + [v for o in optimizers for v in o.variables]
        if "seed_generator_state" not in v.path
    ]
    before = [v.numpy().copy() for v in watched]
    data = tf.data.Dataset.from_tensors(batch)
    logs = gan.evaluate(data, verbose=0, return_dict=True)
    assert all(np.isfinite(value) for value in logs.values())
    for variable, value in zip(watched, before):
        np.testing.assert_array_equal(
            variable.numpy(), value, err_msg=f"evaluate() changed {variable.path}"
        )


@pytest.mark.parametrize("name", ["toy", "dcgan", "cgan", "wgan-gp", "stylegan", "biggan"])
def test_evaluate_runs_the_discriminator_in_inference_mode_without_penalty(name, monkeypatch):
    """No critic call in training mode (WGAN-GP's penalty called it so) and no penalty."""
    build, batch = _models()[name]
    gan = build()
    gan.compile(run_eagerly=True)
    modes = []
    call = gan.discriminator.call

    def spy(*args, training=None, **kwargs):
        modes.append(training)
        return call(*args, training=training, **kwargs)

    gan.discriminator.call = spy
    penalties = []
    for name in ("gradient_penalty", "r1_penalty", "r2_penalty"):
        penalty = getattr(losses, name)
        monkeypatch.setattr(
            losses, name, lambda *a, _p=penalty, **k: penalties.append(1) or _p(*a, **k)
        )
    gan.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)
    assert modes and not any(modes)
    assert not penalties


def test_measured_figures_live_in_benchmarks_readme_not_in_model_docstrings():
    """Docstrings say why a setting was chosen; speeds and outcomes go to one table."""
    import pathlib
    import re

    root = pathlib.Path(__file__).parents[2]
    sources = [
        *(root / "kerasgan" / "models").glob("*.py"), *(root / "kerasgan" / "layers").glob("*.py"),
        root / "kerasgan" / "recipes.py",
    ]
    measured = re.compile(r"images/s|pairs/s|images per second|FD-judge of|% of the samples|~\d+ min")
    for path in sources:
        assert not measured.search(path.read_text(encoding="utf-8")), path.name
    table = (root / "benchmarks" / "README.md").read_text(encoding="utf-8")
    for quoted in ("200 images/s", "FD-judge 97", "24%", "1,200 images/s", "~3 min", "756 / 737", "~140 pairs/s"):
        assert quoted in table
