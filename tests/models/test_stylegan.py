"""StyleGAN: the GAN battery, truncation, style mixing, lazy R1, w_avg, EMA, export, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgan.errors import ConfigError
from kerasgan.export import export_model, load_serving_signature
from kerasgan.models.stylegan import (
    StyleGAN,
    build_discriminator,
    build_generator,
    channels_at,
    num_styles_for,
)
from kerasgan.plotting import to_uint8
from tests.models.gan_battery import GANBattery, assert_presets_are_checked
from tests.models.test_gan import assert_no_hooks


def tiny(seed=0, image_size=16, **overrides):
    return StyleGAN.from_preset("tiny", image_size=image_size, channels=3, seed=seed, **overrides)


def fit_steps(gan, steps, batch_size=4, image_size=16, seed=0, run_eagerly=True):
    """Train `steps` steps on noise images. Eager by default: tracing a StyleGAN step costs
    10-30 s on the course machine, running a tiny one eagerly well under a second."""
    if not gan.compiled:
        gan.compile(run_eagerly=run_eagerly)
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (steps * batch_size, image_size, image_size, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)
    return gan.fit(data, epochs=1, verbose=0).history


class TestStyleGAN(GANBattery):
    image_shape = (16, 16, 3)

    def build_gan(self, seed=0):
        return tiny(seed)

    def compiled(self, seed=0):
        # Eager: the battery's behaviour is the same, without a 10-30 s trace per test. The
        # traced step (ops.cond inside tf.function) is exercised by `trained` and the R1 tests.
        gan = self.build_gan(seed)
        gan.compile(run_eagerly=True)
        return gan

    def serving_inputs(self, gan, n, seed=0):
        return {
            "latent": gan.latent_batch(n, gan.latent_dim, seed),
            "truncation_psi": np.float32(0.7),
        }

    def expected_images(self, gan, inputs):
        return to_uint8(gan.generate_from_latent(inputs["latent"], truncation_psi=0.7))


@pytest.fixture(scope="module")
def trained():
    """A tiny StyleGAN after two training steps (w_avg and the EMA have moved), shared by the
    read-only tests below: tracing a StyleGAN training step takes several seconds."""
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    gan = tiny()
    fit_steps(gan, 2, run_eagerly=False)
    return gan


# --- architecture ---


def test_style_counts_and_widths():
    assert [num_styles_for(size) for size in (16, 32, 64, 256)] == [6, 8, 10, 14]
    assert [channels_at(r, 128) for r in (4, 8, 16, 32, 64, 128, 256)] == [128, 128, 128, 64, 32, 16, 16]
    assert [channels_at(r, 16) for r in (4, 32, 64)] == [16, 16, 16]
    generator = build_generator(latent_dim=8, image_size=32, channels=1, w_dim=12, mapping_layers=2, width=16)
    assert tuple(generator.get_layer("synthesis").inputs[0].shape) == (None, 8, 12)
    assert tuple(generator(np.zeros((2, 8), "float32")).shape) == (2, 32, 32, 1)
    discriminator = build_discriminator(image_size=32, channels=1, width=16)
    assert tuple(discriminator(np.zeros((2, 32, 32, 1), "float32")).shape) == (2, 1)


def test_mapping_network_inside_the_generator():
    gan = tiny()
    mapping = gan.mapping_of(gan.generator)
    w = mapping(gan.latent_batch(3, gan.latent_dim, 0))
    assert tuple(w.shape) == (3, 16)
    assert tuple(gan.styles(gan.latent_batch(3, gan.latent_dim, 0)).shape) == (3, gan.num_styles, 16)


# --- truncation ---


def test_truncation_zero_gives_the_average_image_for_any_latent(trained):
    gan = trained
    assert np.abs(gan.w_avg).max() > 0
    images = gan.generate(6, seed=1, truncation=0.0)
    for image in images[1:]:
        np.testing.assert_allclose(image, images[0], atol=1e-6)
    other = gan.generate(2, seed=99, truncation=0.0)
    np.testing.assert_allclose(other[0], images[0], atol=1e-6)
    # and psi=1 is no truncation at all: the plain generator call
    latent = gan.latent_batch(3, gan.latent_dim, 5)
    plain = keras.ops.convert_to_numpy(gan.sampling_generator(latent, training=False))
    np.testing.assert_allclose(gan.generate_from_latent(latent, truncation_psi=1.0), plain, atol=1e-6)


def test_truncation_moves_images_towards_the_average(trained):
    gan = trained
    average = gan.generate(1, seed=0, truncation=0.0)[0]
    distance = [
        np.abs(gan.generate(8, seed=2, truncation=psi) - average).mean() for psi in (1.0, 0.5, 0.1)
    ]
    assert distance[0] > distance[1] > distance[2], distance


# --- style mixing ---


def test_mixing_with_the_same_latent_is_the_identity(trained):
    gan = trained
    latent = gan.latent_batch(3, gan.latent_dim, 0)
    grid = gan.mix(latent, latent, crossover=3)
    plain = gan.generate_from_latent(latent)
    for index in range(3):
        np.testing.assert_allclose(grid[index, index], plain[index], atol=1e-5)


def test_mixing_takes_coarse_styles_from_rows_and_fine_from_columns(trained):
    gan = trained
    rows, cols = gan.latent_batch(2, gan.latent_dim, 1), gan.latent_batch(3, gan.latent_dim, 2)
    row_images, col_images = gan.generate_from_latent(rows), gan.generate_from_latent(cols)
    all_rows = gan.mix(rows, cols, crossover=gan.num_styles)
    all_cols = gan.mix(rows, cols, crossover=0)
    mixed = gan.mix(rows, cols, crossover=2)
    assert mixed.shape == (2, 3, 16, 16, 3)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(all_rows[i, j], row_images[i], atol=1e-5)
            np.testing.assert_allclose(all_cols[i, j], col_images[j], atol=1e-5)
            # a genuine mix: neither source
            assert np.abs(mixed[i, j] - row_images[i]).max() > 1e-3
            assert np.abs(mixed[i, j] - col_images[j]).max() > 1e-3
    # Same row latent, different column latents: the coarse part is shared, so each mix is
    # closer to its row source than the other row's mixes are.
    shared = np.abs(mixed[0] - row_images[0]).mean()
    other = np.abs(mixed[1] - row_images[0]).mean()
    assert shared < other


def test_style_mixing_is_active_in_training_only():
    gan = tiny(mixing_probability=1.0)
    latent = gan.latent_batch(4, gan.latent_dim, 0)
    mixing = gan.generator.get_layer("style_mixing")
    styles = gan.styles(latent, generator=gan.generator)
    assert not np.allclose(keras.ops.convert_to_numpy(mixing(styles, training=True)), styles)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mixing(styles, training=False)), styles)


# --- lazy R1 ---


def noise_batch(n=4, size=16, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype("float32"))


@pytest.mark.parametrize("step", [0, 1], ids=["r1_due", "r1_not_due"])
def test_train_step_is_written_out_and_calls_no_hook(step):
    """The step is StyleGAN's own and there is no base-class hook it could call (no hook hides
    a loss, a penalty or a network call); it reports the usual logs."""
    assert {"train_step", "test_step"} <= set(vars(StyleGAN))
    assert_no_hooks(StyleGAN)
    gan = tiny(r1_interval=2)
    gan.compile()
    gan.step.assign(step)
    logs = gan.train_step(noise_batch())
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "r1"}
    assert all(np.isfinite(float(value)) for value in logs.values()), logs
    assert int(gan.step.numpy()) == step + 1


def test_lazy_r1_is_a_separate_discriminator_update_on_multiples_of_the_interval():
    """R1 is its own D update (StyleGAN2's `Dreg`) on steps 0, 4, 8: D's optimizer then steps
    twice in one training step, and only those steps compute (and report) a new penalty.
    (Its exact loss, `gamma/2 * interval * ||grad_x D(x)||^2` on the reals after the main
    update, is pinned by tests/models/test_reference_steps.py.)"""
    gan = tiny(r1_gamma=10.0, r1_interval=4)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.01))
    real = noise_batch()
    for step in range(9):
        gan.last_r1.assign(-1.0)
        iterations = int(gan.d_optimizer.iterations.numpy())
        gan.train_step(real)
        due = step % 4 == 0
        assert int(gan.d_optimizer.iterations.numpy()) == iterations + 1 + due
        assert (float(gan.last_r1.numpy()) > 0.0) if due else float(gan.last_r1.numpy()) == -1.0

def test_lazy_r1_cadence_during_fit():
    """In the traced step, the counter advances once per step and R1 runs on steps 0, 3, 6
    (seen through `last_r1`, which only the penalty branch assigns)."""
    gan = tiny(r1_interval=3)
    gan.compile()
    evaluated = []
    gan.last_r1.assign(-1.0)

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            evaluated.append(float(gan.last_r1.numpy()))
            gan.last_r1.assign(-1.0)

    images = np.random.default_rng(0).uniform(-1, 1, (28, 16, 16, 3)).astype("float32")
    gan.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=1, verbose=0, callbacks=[Watch()])
    assert int(gan.step.numpy()) == 7
    assert [step for step, value in enumerate(evaluated) if value != -1.0] == [0, 3, 6]


def test_r1_gamma_zero_disables_the_penalty():
    gan = tiny(r1_gamma=0.0)
    gan.compile()
    logs = gan.train_step(noise_batch())  # step 0: R1 would be due
    assert int(gan.d_optimizer.iterations.numpy()) == 1
    assert float(logs["r1"]) == 0.0 and float(gan.last_r1.numpy()) == 0.0


def test_lazy_r1_corrects_the_discriminator_optimizer():
    gan = tiny(r1_interval=16)
    gan.compile()
    ratio = 16 / 17
    np.testing.assert_allclose(float(gan.d_optimizer.learning_rate), 0.002 * ratio, rtol=1e-6)
    np.testing.assert_allclose(gan.d_optimizer.beta_2, 0.99**ratio, rtol=1e-6)
    np.testing.assert_allclose(float(gan.g_optimizer.learning_rate), 0.002, rtol=1e-6)


@pytest.mark.parametrize("rate, expected", [(4e-3, (4e-3, 4e-3)), ((3e-3, 5e-3), (3e-3, 5e-3))])
def test_a_cpu_learning_rate_replaces_the_papers_and_keeps_the_lazy_r1_correction(rate, expected):
    gan = tiny(r1_interval=4)
    ratio = 4 / 5
    g_optimizer, d_optimizer = gan.default_optimizers(rate)
    np.testing.assert_allclose(float(g_optimizer.learning_rate), expected[0], rtol=1e-6)
    np.testing.assert_allclose(float(d_optimizer.learning_rate), expected[1] * ratio, rtol=1e-6)
    np.testing.assert_allclose(d_optimizer.beta_2, 0.99**ratio, rtol=1e-6)
    assert float(g_optimizer.beta_1) == float(d_optimizer.beta_1) == 0.0
    assert float(g_optimizer.beta_2) == pytest.approx(0.99)
    assert g_optimizer.epsilon == d_optimizer.epsilon == 1e-8  # StyleGAN2's, not Keras's 1e-7


# --- w_avg and EMA ---


def test_w_average_follows_its_moving_average():
    """Step 1 of the training step: `w_avg` moves towards the mean `w` of the first latents
    the step draws, mapped before any update."""
    gan = tiny(w_avg_beta=0.5)
    gan.compile()
    mapping = gan.mapping_of(gan.generator)
    assert np.all(mapping.w_avg.numpy() == 0)
    # Replay the latents the step draws first from the model's stream.
    replay = keras.random.SeedGenerator(0)
    replay.state.assign(gan.seed_generator.state.numpy())
    latent = keras.random.normal((4, gan.latent_dim), seed=replay)
    expected = 0.5 * keras.ops.convert_to_numpy(mapping(latent)).mean(axis=0)
    gan.train_step(noise_batch())
    np.testing.assert_allclose(mapping.w_avg.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ema_update_follows_the_formula_and_copies_w_avg():
    gan = tiny(ema_decay=0.75)
    gan.compile()
    gan.step.assign(10**6)  # past the ramp-up: the decay is ema_decay
    before = [w.numpy().copy() for w in gan.generator_ema.weights]
    fit_steps(gan, 1)
    for average, old, weight in zip(gan.generator_ema.weights, before, gan.generator.weights):
        expected = 0.75 * old + 0.25 * weight.numpy() if weight.trainable else weight.numpy()
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        gan.mapping_of(gan.generator_ema).w_avg.numpy(), gan.mapping_of(gan.generator).w_avg.numpy()
    )
    assert gan.sampling_generator is gan.generator_ema


def test_ema_ramps_up_its_half_life_with_the_steps_taken():
    gan = tiny(ema_decay=0.999)
    decays = []
    for step in (0, 99, 999, 10**6):
        gan.step.assign(step)
        decays.append(float(gan.current_ema_decay()))
    # half-life 5% of the steps: 0.05 steps after 1 step (the average is G), 5 after 100, 50 after 1000
    np.testing.assert_allclose(decays[:3], [0.5**20, 0.5**0.2, 0.5**0.02], rtol=1e-5)
    assert decays[3] == pytest.approx(0.999)


def test_adain_variant_trains_exports_and_round_trips(tmp_path):
    """StyleGAN1's AdaIN in place of modulation/demodulation, at 32 px."""
    gan = tiny(image_size=32, modulation="adain")
    history = fit_steps(gan, 2, image_size=32)
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    path = str(tmp_path / "adain.keras")
    gan.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        restored.generate(3, seed=1, truncation=0.5), gan.generate(3, seed=1, truncation=0.5),
        atol=1e-6,
    )
    assert restored.r1_interval == gan.r1_interval and int(restored.step.numpy()) == 2
    served, _ = load_serving_signature(export_model(gan, str(tmp_path), name="adain"))
    latent = gan.latent_batch(3, gan.latent_dim, 4)
    images = served(latent=tf.constant(latent), truncation_psi=tf.constant(1.0))["images"].numpy()
    assert images.shape == (3, 32, 32, 3)
    assert np.abs(images.astype(int) - to_uint8(gan.generate_from_latent(latent)).astype(int)).max() <= 1


# --- export ---


def test_mix_signature_matches_the_model_in_memory(trained, tmp_path):
    gan = trained
    path = export_model(gan, str(tmp_path), name="stylegan")
    mix, specs = load_serving_signature(path, "mix")
    assert set(specs) == {"latent_rows", "latent_cols", "crossover", "truncation_psi"}
    rows, cols = gan.latent_batch(2, gan.latent_dim, 1), gan.latent_batch(3, gan.latent_dim, 2)
    served = mix(
        latent_rows=tf.constant(rows), latent_cols=tf.constant(cols),
        crossover=tf.constant(2, tf.int32), truncation_psi=tf.constant(0.8),
    )
    assert served["images"].shape == (2, 3, 16, 16, 3) and served["images"].dtype == tf.uint8
    expected = to_uint8(gan.mix(rows, cols, 2, truncation_psi=0.8))
    assert np.abs(served["images"].numpy().astype(int) - expected.astype(int)).max() <= 1
    expected_cols = to_uint8(gan.generate_from_latent(cols, truncation_psi=0.8))
    assert np.abs(served["col_images"].numpy().astype(int) - expected_cols.astype(int)).max() <= 1
    # The graph rejects a crossover or a psi out of range.
    with pytest.raises(tf.errors.InvalidArgumentError, match="crossover"):
        mix(latent_rows=tf.constant(rows), latent_cols=tf.constant(cols),
            crossover=tf.constant(99, tf.int32), truncation_psi=tf.constant(1.0))
    default, _ = load_serving_signature(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncation_psi"):
        default(latent=tf.constant(rows), truncation_psi=tf.constant(5.0))


# --- bad inputs ---


@pytest.mark.parametrize("size", [8, 28, 48, 512])
def test_unsupported_resolution_is_a_clear_error(size):
    with pytest.raises(ConfigError, match="not supported"):
        StyleGAN.from_preset("tiny", image_size=size)


@pytest.mark.parametrize("psi", [-3.0, 2.5, float("nan"), "high"])
def test_truncation_out_of_range_is_a_clear_error(psi):
    gan = tiny()
    with pytest.raises(ConfigError, match="truncation_psi"):
        gan.generate(2, truncation=psi)


def test_other_bad_inputs_are_clear_errors():
    gan = tiny()
    with pytest.raises(ConfigError, match="crossover"):
        gan.mix(gan.latent_batch(1, 16), gan.latent_batch(1, 16), crossover=7)
    with pytest.raises(ConfigError, match="latent vectors"):
        gan.generate_from_latent(np.zeros((2, 5), "float32"))
    assert_presets_are_checked(StyleGAN, "StyleGAN")
    with pytest.raises(ConfigError, match="r1_interval"):
        tiny(r1_interval=0)
    with pytest.raises(ConfigError, match="modulation"):
        tiny(modulation="batchnorm")


def test_default_preset_and_bfloat16_output():
    gan = StyleGAN.from_preset("default")
    assert gan.latent_dim == 128 and gan.num_styles == 8 and gan.ema_decay == 0.999
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    small = tiny()
    small.compile()
    fit_steps(small, 1)
    assert small.generate(2).dtype == np.float32
    assert small.discriminator(np.zeros((2, 16, 16, 3), "float32")).dtype == "float32"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_xla_compiles_the_mixed_precision_step(policy):
    """The skip images are summed and upsampled in float32: a 16-bit bilinear upsampling's
    gradient made XLA on CPU fail ("Seen floating point types of different precisions")."""
    keras.mixed_precision.set_dtype_policy(policy)
    gan = tiny()
    gan.compile(jit_compile=True)
    synthesis = StyleGAN.synthesis_of(gan.generator)
    assert {layer.compute_dtype for layer in synthesis.layers
            if layer.name.endswith(("_up", "_skip"))} == {"float32"}
    history = fit_steps(gan, 2, run_eagerly=False)
    assert all(np.isfinite(values).all() for values in history.values()), history


# --- resuming ---


def test_checkpoint_restores_step_w_avg_ema_and_both_optimizers(tmp_path):
    from kerasgan.callbacks import GANCheckpoint

    gan = tiny(seed=3)
    fit_steps(gan, 2)
    GANCheckpoint(gan, str(tmp_path)).on_epoch_end(0)
    resumed = tiny(seed=3)
    resumed.compile()
    assert GANCheckpoint(resumed, str(tmp_path)).restore() == 1
    assert int(resumed.step.numpy()) == 2
    for a, b in zip(gan.variables, resumed.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(gan.d_optimizer.variables, resumed.d_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(resumed.w_avg, gan.w_avg)
    np.testing.assert_allclose(resumed.generate(2, seed=0), gan.generate(2, seed=0), atol=1e-6)


# --- data and command line ---


def test_colored_digits_dataset():
    from kerasgan import datasets

    images, labels = datasets.load_arrays("colored_mnist")
    assert images.shape == (5000, 28, 28, 3) and images.dtype == np.uint8 and len(labels) == 5000
    again, _ = datasets.colored_mnist_arrays()
    np.testing.assert_array_equal(images, again)  # seeded: the same every time
    corners = images[:, 0, 0].astype(float)
    assert corners.std(axis=0).min() > 50  # backgrounds of every colour
    loaded = datasets.load("colored_mnist", source="embedded", image_size=32)
    element = next(iter(loaded))
    assert tuple(element.shape) == (32, 32, 3) and -1.0 <= float(element.numpy().min())


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    return export_model(trained, str(tmp_path_factory.mktemp("exports")), name="stylegan")


def test_cli_mix_writes_a_grid_with_source_headers(exported, tmp_path, capsys):
    from PIL import Image

    from kerasgan import cli

    out = tmp_path / "mix.png"
    code = cli.main(["mix", exported, "--rows", "2", "--cols", "3", "--crossover", "2",
                     "--truncation", "0.7", "--out", str(out), "--scale", "1"])
    assert code == 0 and "2x3 style-mixing grid" in capsys.readouterr().out
    width, height = Image.open(out).size
    assert (width, height) == (4 * 18 + 2, 3 * 18 + 2)  # (cols + 1) x (rows + 1) tiles of 16 px


def test_cli_mix_and_sample_errors_are_one_line(exported, tmp_path, capsys):
    from kerasgan import cli

    assert cli.main(["mix", exported, "--crossover", "99", "--out", str(tmp_path / "m.png")]) == 2
    error = capsys.readouterr().err.strip()
    assert "crossover" in error and "\n" not in error
    assert cli.main(["mix", exported, "--truncation", "7", "--out", str(tmp_path / "m.png")]) == 2
    assert "truncation_psi" in capsys.readouterr().err
    assert cli.main(["sample", exported, "--truncation", "0.5", "--n", "4",
                     "--out", str(tmp_path / "s.png")]) == 0
