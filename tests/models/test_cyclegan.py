"""CycleGAN: networks, loss terms, image pool, LR schedule, training, saving, export, data, CLI."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgan import datasets, losses
from kerasgan.errors import ConfigError, DataError
from kerasgan.export import export_directions, load_serving_signature, read_metadata
from kerasgan.layers import ReflectionPadding2D
from kerasgan.models.cyclegan import (
    CONFIGS,
    CycleGAN,
    ImagePool,
    LinearDecaySchedule,
    build_discriminator,
    build_generator,
    check_image_size,
    default_discriminator_downsamplings,
    default_residual_blocks,
    patchgan_receptive_field,
)
from kerasgan.plotting import to_uint8
from tests.models.gan_battery import assert_presets_are_checked

SIZE, CHANNELS = 16, 1


def tiny(seed=0, **overrides):
    return CycleGAN.from_preset("tiny", image_size=SIZE, channels=CHANNELS, seed=seed, **overrides)


def images(n, seed=0, size=SIZE, channels=CHANNELS):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype("float32")


def pairs(n=8, batch=4, seed=0):
    return tf.data.Dataset.from_tensor_slices((images(n, seed), images(n, seed + 1))).batch(batch)


# === Networks ===


def test_generator_shapes_and_building_blocks():
    generator = build_generator(image_size=32, channels=3, width=8, residual_blocks=2)
    out = generator(images(2, size=32, channels=3))
    assert tuple(out.shape) == (2, 32, 32, 3) and out.dtype == "float32"
    assert float(np.abs(out).max()) <= 1.0
    assert generator.inputs[0].name == "images"
    kinds = [type(layer) for layer in generator.layers]
    assert ReflectionPadding2D in kinds
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.GroupNormalization)]
    # Instance norm: groups=-1 becomes one group per channel when built.
    assert norms and all(layer.groups == layer.input.shape[-1] for layer in norms)
    assert sum(layer.name.endswith("_add") for layer in generator.layers) == 2


@pytest.mark.parametrize("size, strided, scores", [(32, 1, 16), (64, 2, 16), (128, 3, 16), (256, 3, 32)])
def test_discriminator_scores_one_value_per_patch(size, strided, scores):
    assert default_discriminator_downsamplings(size) == strided
    discriminator = build_discriminator(image_size=size, channels=3, width=4)
    out = discriminator(np.zeros((1, size, size, 3), "float32"))
    assert tuple(out.shape) == (1, scores, scores, 1) and out.dtype == "float32"


def test_patchgan_receptive_fields():
    assert patchgan_receptive_field(3) == 70  # the paper's 70x70 PatchGAN
    assert patchgan_receptive_field(2) == 34
    assert patchgan_receptive_field(1) == 16


def test_paper_defaults():
    assert default_residual_blocks(256) == 9 and default_residual_blocks(128) == 6
    gan = CycleGAN.from_preset("paper", image_size=64, channels=3)
    assert gan.generator_a2b.get_layer("stem_conv").filters == 64
    assert sum(layer.name.endswith("_add") for layer in gan.generator_a2b.layers) == 6
    assert gan.cycle_weight == 10.0 and gan.identity_weight == 0.5
    assert gan.pool_a.pool_size == 50 and gan.learning_rate == 2e-4


@pytest.mark.parametrize("size", [30, 8, 33, 12.5])
def test_unsupported_image_size_is_a_clear_error(size):
    with pytest.raises(ConfigError, match="multiple of 4"):
        check_image_size(size)


# === Loss terms ===


def test_cycle_and_identity_losses_by_hand():
    real = np.zeros((2, 2, 2, 1), "float32")
    other = np.stack([np.full((2, 2, 1), 0.5), np.array([[[1.0], [-1.0]], [[0.0], [2.0]]])])
    np.testing.assert_allclose(losses.cycle_consistency_loss(real, other), [0.5, 1.0])
    np.testing.assert_allclose(losses.identity_loss(real, other), [0.5, 1.0])
    assert losses.cycle_consistency_loss(real, other).dtype == "float32"


def test_evaluation_reports_each_term_of_the_objective():
    """`test_step` reports, per example and averaged: the generators' least-squares terms, the
    cycle and identity L1 terms (unweighted), and the discriminators' halved loss."""
    gan = tiny()
    gan.compile()
    a, b = images(3, 1), images(3, 2)
    logs = {key: float(value) for key, value in gan.test_step((a, b)).items()}

    G, F = gan.generator_a2b, gan.generator_b2a  # noqa: N806 (the paper's names)
    D_A, D_B = gan.discriminator_a, gan.discriminator_b  # noqa: N806

    def per_example(x):
        return np.asarray(x).reshape(3, -1)

    def l1(x, y):
        return np.mean(np.abs(per_example(x) - per_example(y)), axis=1)

    def lsgan_d(discriminator, real, fake):
        r, f = per_example(discriminator(real)), per_example(discriminator(fake))
        return np.mean((r - 1) ** 2, axis=1) + np.mean(f**2, axis=1)

    adversarial = (np.mean((per_example(D_B(G(a))) - 1) ** 2, axis=1)
                   + np.mean((per_example(D_A(F(b))) - 1) ** 2, axis=1))
    np.testing.assert_allclose(logs["g_loss"], adversarial.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["cycle"], (l1(F(G(a)), a) + l1(G(F(b)), b)).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["identity"], (l1(G(b), b) + l1(F(a), a)).mean(), rtol=1e-5)
    d_loss = 0.5 * (lsgan_d(D_A, a, F(b)) + lsgan_d(D_B, b, G(a)))
    np.testing.assert_allclose(logs["d_loss"], d_loss.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        logs["d_real"], np.mean([np.mean(D_A(a)), np.mean(D_B(b))]), rtol=1e-5
    )


def test_identity_weight_zero_skips_the_term():
    gan = tiny(identity_weight=0.0)
    gan.compile()
    assert float(gan.test_step((images(2), images(2, 1)))["identity"]) == 0.0


# === Image pool ===


def filled_pool(size=6, shape=(2, 2, 1), seed=0):
    pool = ImagePool(size, seed=seed)
    stored = np.arange(size, dtype="float32")[:, None, None, None] * np.ones((1, *shape), "float32")
    np.testing.assert_array_equal(pool(stored), stored)  # filling: returned unchanged
    return pool, stored


def test_image_pool_fills_first():
    pool = ImagePool(5, seed=0)
    first = images(3, 0, size=2)
    np.testing.assert_array_equal(pool(first), first)
    assert int(pool.count.numpy()) == 3
    # The batch that crosses the boundary: two go in, the third is already past it and may
    # only be swapped with a slot filled *before* this batch (never an empty one).
    second = images(3, 1, size=2)
    out = np.asarray(pool(second))
    assert int(pool.count.numpy()) == 5
    np.testing.assert_array_equal(np.asarray(pool.images)[3:], second[:2])
    np.testing.assert_array_equal(out[:2], second[:2])
    assert any(np.array_equal(out[2], x) for x in [second[2], *first])


def test_a_first_batch_larger_than_the_pool_comes_back_unchanged():
    x = images(8, 2, size=2)
    for seed in range(5):  # whatever the draw: there is nothing earlier to swap with
        pool = ImagePool(3, seed=seed)
        np.testing.assert_array_equal(pool(x), x)
        np.testing.assert_array_equal(np.asarray(pool.images), x[:3])


def test_image_pool_returns_a_mix_once_full_and_keeps_its_capacity():
    pool, stored = filled_pool()
    swapped = 0
    for step in range(60):
        values = 100.0 + 4 * step + np.arange(4, dtype="float32")
        new = values[:, None, None, None] * np.ones((1, 2, 2, 1), "float32")
        out = np.asarray(pool(new))
        before = set(np.unique(stored))
        for image, value_in in zip(out, values):
            value = float(image.flat[0])
            assert np.all(image == value)  # whole images, never blends
            if value == value_in:
                continue
            assert value in before  # an earlier image, returned whole
            swapped += 1
        stored = np.asarray(pool.images).copy()
        assert stored.shape == (6, 2, 2, 1) and int(pool.count.numpy()) == 6
    assert 0.35 < swapped / 240 < 0.65, swapped  # probability 1/2 per image
    assert len(np.unique(stored)) == 6  # slots drawn without replacement: no duplicates


def test_image_pool_works_inside_a_traced_function_and_size_zero_is_identity():
    pool = ImagePool(3, seed=1)
    traced = tf.function(lambda x: pool(x))
    for seed in range(4):
        traced(images(2, seed, size=2))
    assert int(pool.count.numpy()) == 3
    off = ImagePool(0)
    x = images(2, size=2)
    np.testing.assert_array_equal(off(x), x)


def test_image_pool_rejects_a_negative_size():
    with pytest.raises(ConfigError, match="pool_size"):
        ImagePool(-1)


# === Learning-rate schedule ===


def test_linear_decay_schedule_values():
    schedule = LinearDecaySchedule(2e-4, constant_steps=100, decay_steps=50)
    values = [float(schedule(step)) for step in (0, 50, 100, 125, 150, 1000)]
    np.testing.assert_allclose(values, [2e-4, 2e-4, 2e-4, 1e-4, 0.0, 0.0], atol=1e-12)
    revived = LinearDecaySchedule.from_config(schedule.get_config())
    assert float(revived(140)) == pytest.approx(float(schedule(140)))
    assert float(LinearDecaySchedule(1e-3)(10**6)) == pytest.approx(1e-3)  # no decay
    round_trip = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(round_trip, LinearDecaySchedule) and round_trip.decay_steps == 50


@pytest.mark.parametrize("args", [(0.0, 1, 1), (1e-3, -1, 1), (1e-3, 1, 0), (1e-3, 1.5, 1)])
def test_linear_decay_schedule_rejects_bad_values(args):
    with pytest.raises(ConfigError):
        LinearDecaySchedule(*args)


OPTIMIZERS = {
    "g_optimizer": "generator_a2b", "f_optimizer": "generator_b2a",
    "d_a_optimizer": "discriminator_a", "d_b_optimizer": "discriminator_b",
}


def test_fit_makes_every_schedule_span_the_run(trained):
    gan = trained.gan  # 2 steps x 2 epochs
    for name in OPTIMIZERS:
        optimizer = getattr(gan, name)
        schedule = optimizer._learning_rate
        assert isinstance(schedule, LinearDecaySchedule), name
        assert (schedule.constant_steps, schedule.decay_steps) == (2, 2), name
        assert float(optimizer.learning_rate) == 0.0, name  # decayed to zero at the end


# === One model, four networks, four optimizers ===


def test_cyclegan_is_a_keras_model_of_its_own_with_four_optimizers():
    from kerasgan.models.gan import GAN

    gan = tiny()
    assert isinstance(gan, keras.Model) and not isinstance(gan, GAN)
    for missing in ("latent_dim", "generate", "generator", "discriminator", "d_optimizer"):
        assert not hasattr(gan, missing), missing
    gan.compile()
    optimizers = [getattr(gan, name) for name in OPTIMIZERS]
    assert len({id(optimizer) for optimizer in optimizers}) == 4
    for (name, network), optimizer in zip(OPTIMIZERS.items(), optimizers):
        assert isinstance(optimizer, keras.optimizers.Adam), name
        assert optimizer.beta_1 == 0.5 and optimizer.built, name
        assert isinstance(optimizer._learning_rate, LinearDecaySchedule), name
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
        # Each optimizer holds the slots of its own network's weights, and only those.
        assert len(optimizer._trainable_variables) == len(
            getattr(gan, network).trainable_variables
        ), name
    assert len({id(o._learning_rate) for o in optimizers}) == 4  # a schedule each


def test_one_training_step_steps_each_optimizer_once(trained):
    steps = 4  # 2 epochs of 2 steps
    for name in OPTIMIZERS:
        assert int(getattr(trained.gan, name).iterations.numpy()) == steps, name


def test_compile_refuses_one_optimizer_for_two_networks():
    gan = tiny()
    shared = keras.optimizers.Adam()
    with pytest.raises(ConfigError, match="g_optimizer and f_optimizer are the same optimizer"):
        gan.compile(g_optimizer=shared, f_optimizer=shared)


def test_a_resumed_run_restores_all_four_optimizers(trained, tmp_path):
    from kerasgan.callbacks import GANCheckpoint

    GANCheckpoint(trained.gan, str(tmp_path)).on_epoch_end(1, {})  # saves as after epoch 2
    fresh = tiny(preview_count=3)
    fresh.compile()
    GANCheckpoint(fresh, str(tmp_path)).restore()
    for name in OPTIMIZERS:
        original, restored = getattr(trained.gan, name), getattr(fresh, name)
        assert int(restored.iterations.numpy()) == 4, name
        assert len(restored.variables) == len(original.variables) > 2, name
        for a, b in zip(original.variables, restored.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{name}: {a.path}")
        moments = [np.asarray(v) for v in restored.variables if "momentum" in v.path]
        assert moments and any(np.any(m != 0) for m in moments), name  # slots, not fresh zeros


# === Training ===


class Trained:
    """A tiny CycleGAN after `fit` (2 epochs of 2 steps), with what it looked like before."""

    def __init__(self):
        self.gan = tiny(preview_count=3)
        self.gan.compile()
        self.networks = (
            self.gan.generator_a2b, self.gan.generator_b2a,
            self.gan.discriminator_a, self.gan.discriminator_b,
        )
        self.before = [[w.copy() for w in net.get_weights()] for net in self.networks]
        self.data = pairs(8, 4)
        self.history = self.gan.fit(self.data, epochs=2, verbose=0).history


@pytest.fixture(scope="module")
def trained():
    """Tracing CycleGAN's training step takes ~10 s: train once, inspect in several tests."""
    keras.utils.set_random_seed(0)
    return Trained()


def test_training_gives_finite_moving_losses_and_updates_all_networks(trained):
    history = trained.history
    assert set(CycleGAN.tracked_metrics) <= set(history)
    for key in CycleGAN.tracked_metrics:
        assert np.all(np.isfinite(history[key])), key
    assert np.ptp(history["g_loss"]) > 0 and np.ptp(history["d_loss"]) > 0
    for net, old in zip(trained.networks, trained.before):
        assert any(not np.array_equal(a, b) for a, b in zip(old, net.get_weights())), net.name
    assert int(trained.gan.pool_a.count.numpy()) == 4  # the tiny pool, full


def test_cycle_loss_falls_on_a_fixed_pair():
    gan = tiny(identity_weight=0.0, learning_rate=2e-3)
    gan.compile(run_eagerly=True)  # a dozen steps: cheaper than tracing the step
    batch = pairs(4, 4)
    fixed_a, fixed_b = next(iter(batch))
    start = {key: float(value) for key, value in gan.test_step((fixed_a, fixed_b)).items()}
    gan.fit(batch.repeat(12), epochs=1, verbose=0)
    gan.reset_metrics()
    end = {key: float(value) for key, value in gan.test_step((fixed_a, fixed_b)).items()}
    assert float(end["cycle"]) < 0.8 * float(start["cycle"]), (end["cycle"], start["cycle"])


def test_training_is_reproducible_under_a_seed():
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        gan = tiny(seed=3)
        gan.compile(run_eagerly=True)  # the same seeded ops as the traced step, minus tracing
        gan.fit(pairs(8, 4), epochs=1, verbose=0)
        results.append((gan.translate(images(2, 9)), np.asarray(gan.pool_b.images)))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-5)
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_preview_shows_fixed_pairs_as_strips(trained):
    gan = trained.gan
    assert int(gan.preview_filled.numpy()) == 3
    first = np.concatenate([a for a, _ in trained.data])[:3]  # the first batch's pairs
    grid = gan.preview(np.zeros((5, 0), "float32"))
    assert grid.shape == (18, SIZE, SIZE, CHANNELS) and gan.preview_columns == 6
    np.testing.assert_allclose(grid[0::6], first)  # column 1: the real a's
    np.testing.assert_allclose(grid[1::6], gan.translate(first, "a2b"), atol=1e-6)
    np.testing.assert_allclose(grid[2::6], gan.translate(grid[1::6], "b2a"), atol=1e-6)


def test_preview_needs_pairs_and_takes_given_ones():
    gan = tiny(preview_count=3)
    with pytest.raises(ConfigError, match="no preview pairs"):
        gan.preview()
    gan.set_preview_images(images(3, 5), images(3, 6))
    np.testing.assert_allclose(gan.preview()[3::6], images(3, 6))


# === Saving and export ===


def test_keras_round_trip(trained, tmp_path):
    gan = trained.gan
    path = str(tmp_path / "cyclegan.keras")
    gan.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is CycleGAN
    x = images(3, 4)
    for direction in ("a2b", "b2a"):
        np.testing.assert_allclose(restored.translate(x, direction), gan.translate(x, direction), atol=1e-6)
    for name in OPTIMIZERS:
        original, copy = getattr(gan, name), getattr(restored, name)
        assert int(copy.iterations.numpy()) == 4, name
        for a, b in zip(original.variables, copy.variables):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b))
        assert copy._learning_rate.get_config() == original._learning_rate.get_config()
    np.testing.assert_array_equal(np.asarray(restored.pool_b.images), np.asarray(gan.pool_b.images))
    np.testing.assert_array_equal(restored.preview(), gan.preview())


def test_export_both_directions_with_parity(tmp_path):
    gan = tiny()
    result = export_directions(gan, str(tmp_path), "cyclegan", metadata={"epochs": 3})
    paths = result.split(", ")
    assert [os.path.relpath(p, tmp_path) for p in paths] == ["cyclegan_a2b/1", "cyclegan_b2a/1"]
    raw = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, CHANNELS), dtype=np.uint8)
    x = raw.astype("float32") / 127.5 - 1.0
    for path, direction in zip(paths, ("a2b", "b2a")):
        assert read_metadata(path)["direction"] == direction
        serve, specs = load_serving_signature(path)
        assert list(specs) == ["images"] and specs["images"].dtype == tf.uint8
        assert specs["images"].shape.as_list() == [None, None, None, CHANNELS]
        out = serve(images=tf.constant(raw))
        assert list(out) == ["images"]
        served = out["images"].numpy()
        expected = to_uint8(gan.translate(x, direction))
        assert served.dtype == np.uint8 and served.shape == (4, SIZE, SIZE, CHANNELS)
        assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
        predict, _ = load_serving_signature(path, "predict_float")
        np.testing.assert_allclose(predict(images=tf.constant(x))["images"].numpy(),
                                   gan.translate(x, direction), atol=1e-5)
        # Any input size: resized inside the graph to the model's size.
        big = np.random.default_rng(1).integers(0, 256, (2, 40, 24, CHANNELS), dtype=np.uint8)
        resized = tf.image.resize(big.astype("float32") / 127.5 - 1.0, (SIZE, SIZE), antialias=True)
        served = serve(images=tf.constant(big))["images"].numpy()
        assert served.shape == (2, SIZE, SIZE, CHANNELS)
        expected = to_uint8(gan.translate(resized.numpy(), direction))
        assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_translates_like_float32(policy, tmp_path):
    """A few steps under `policy` stay finite (float16: all four optimizers scale the loss),
    and each direction's export returns uint8 images close to the same weights in float32."""
    keras.mixed_precision.set_dtype_policy(policy)
    gan = tiny()
    gan.compile()
    for name in OPTIMIZERS:
        scaled = isinstance(getattr(gan, name), keras.optimizers.LossScaleOptimizer)
        assert scaled == (policy == "mixed_float16"), name
    history = gan.fit(pairs(8, 4), epochs=2, verbose=0).history
    for key in CycleGAN.tracked_metrics:
        assert np.all(np.isfinite(history[key])), (key, history[key])
    paths = export_directions(gan, str(tmp_path)).split(", ")

    keras.mixed_precision.set_dtype_policy("float32")
    reference = tiny()
    reference.set_weights(gan.get_weights())
    raw = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, CHANNELS), dtype=np.uint8)
    x = raw.astype("float32") / 127.5 - 1.0
    for path, direction in zip(paths, ("a2b", "b2a")):
        serve, _ = load_serving_signature(path)
        served = serve(images=tf.constant(raw))["images"].numpy()
        assert served.dtype == np.uint8 and served.shape == raw.shape
        in_float32 = to_uint8(reference.translate(x, direction)).astype(int)
        assert np.abs(served.astype(int) - in_float32).mean() < 2.0, direction


def test_exports_hold_only_their_generator(tmp_path):
    gan = tiny()
    a2b, _ = export_directions(gan, str(tmp_path)).split(", ")
    loaded = tf.saved_model.load(a2b)
    assert len(loaded.model_variables) == len(gan.generator_a2b.variables)


# === Bad inputs ===


def test_bad_configurations_are_clear_errors():
    assert_presets_are_checked(CycleGAN, "CycleGAN")
    with pytest.raises(ConfigError, match="decay_start"):
        tiny(decay_start=2.0)
    with pytest.raises(ConfigError, match="cycle_weight"):
        tiny(cycle_weight=-1)
    gan = tiny()
    with pytest.raises(ConfigError, match="must take"):
        CycleGAN(gan.generator_a2b, gan.generator_b2a, gan.discriminator_a,
                 build_discriminator(32, 1, 4))


def test_bad_calls_are_clear_errors():
    gan = tiny()
    with pytest.raises(ConfigError, match="translate takes images"):
        gan.translate(images(2, size=8))
    with pytest.raises(ConfigError, match="direction"):
        gan.translate(images(2), "sideways")
    with pytest.raises(ConfigError, match="set_preview_images"):
        gan.set_preview_images(images(1), images(1))
    gan.compile()
    for step in (gan.train_step, gan.test_step):
        with pytest.raises(ConfigError, match=r"\(a, b\) pairs"):
            step(images(2))
    assert set(CONFIGS) == {"default", "paper", "tiny"}


# === Data ===


def test_digits_pair_is_unpaired_digits_in_range():
    data = datasets.load_unpaired("digits")
    assert int(data.cardinality()) == 5000  # the larger side, MNIST; the 8x8 digits reused
    a_spec, b_spec = data.element_spec
    assert a_spec.shape == (32, 32, 1) and b_spec.shape == (32, 32, 1)
    a, b = (np.stack(x) for x in zip(*data.take(64).as_numpy_iterator()))
    assert a.min() >= -1 and a.max() <= 1 and b.min() >= -1 and b.max() <= 1
    # The two styles differ where they should: 8x8 digits fill the frame, MNIST keeps a margin.
    border = np.ones((32, 32), bool)
    border[2:-2, 2:-2] = False
    assert (a[:, border] > 0).mean() > 0.05 and (b[:, border] > 0).mean() < 0.01
    again = next(iter(datasets.load_unpaired("digits")))
    np.testing.assert_array_equal(again[0], a[0])  # the pairing is fixed by the seed


def test_image_folders_pair_with_jitter(tmp_path):
    folders = make_folders(tmp_path, counts=(3, 5))
    data = datasets.load_unpaired(None, data_a=folders[0], data_b=folders[1], image_size=16)
    assert int(data.cardinality()) == 5
    assert all(spec.shape == (16, 16, 3) for spec in data.element_spec)
    plain = datasets.load_unpaired(
        None, data_a=folders[0], data_b=folders[1], image_size=16, channels=1, jitter=False
    )
    assert plain.element_spec[0].shape == (16, 16, 1)


def test_random_jitter_crops_and_mirrors():
    image = tf.constant(images(1, size=32, channels=3)[0])
    out = datasets.random_jitter(image, 32, seed=0)
    assert out.shape == (32, 32, 3)
    assert datasets.jitter_load_size(256) == 286


def test_unpaired_data_mistakes_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown pair"):
        datasets.load_unpaired("cats2dogs")
    with pytest.raises(ConfigError, match="both image folders"):
        datasets.load_unpaired(None, data_a=str(tmp_path))
    with pytest.raises(ConfigError, match="source"):
        datasets.load_unpaired("digits", source="web")
    with pytest.raises(DataError, match="embedded only"):
        datasets.load_unpaired("digits", source="tfds")
    with pytest.raises(DataError, match="no embedded copy"):
        datasets.load_unpaired("horse2zebra", source="embedded")
    with pytest.raises(DataError, match="no network"):  # KERASGAN_OFFLINE=1: decided at once
        datasets.load_unpaired("horse2zebra")
    with pytest.raises(DataError, match="does not exist"):
        datasets.load_unpaired(None, data_a=str(tmp_path / "a"), data_b=str(tmp_path / "b"))


# === Runs, resume and the command line ===


def make_folders(root, counts=(6, 8), size=20):
    rng = np.random.default_rng(0)
    folders = []
    for name, count in zip("ab", counts):
        folder = root / name
        folder.mkdir()
        for index in range(count):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
        folders.append(str(folder))
    return folders


def test_run_resumes_and_exports_both_directions(tmp_path):
    from kerasgan import training

    folder_a, folder_b = make_folders(tmp_path)
    options = dict(
        data_options={"data_a": folder_a, "data_b": folder_b}, preset="tiny", batch_size=4,
        image_size=16, output=str(tmp_path / "run"), export_dir=str(tmp_path / "exports"),
        precision_policy="float32", verbose=0,
    )
    first = training.train("cyclegan", epochs=1, **options)
    assert first.epochs_done == 1 and first.steps == 2
    assert os.path.isfile(tmp_path / "run" / "samples" / "epoch_0001.png")
    second = training.train("cyclegan", epochs=2, **options)
    assert second.epochs_done == 2 and second.steps == 2  # one more epoch, not two
    exported = sorted(os.listdir(tmp_path / "exports"))
    assert exported == ["cyclegan_a2b", "cyclegan_b2a"]
    assert os.path.isdir(tmp_path / "exports" / "cyclegan_b2a" / "2")
    assert "cyclegan_a2b/2" in second.export_path and "cyclegan_b2a/2" in second.export_path


def test_cli_translate_skips_bad_files(tmp_path, kerasgan):  # `kerasgan`: tests/conftest.py
    gan = tiny()
    a2b = export_directions(gan, str(tmp_path / "exports")).split(", ")[0]
    good = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(good)
    colour = tmp_path / "photo.jpg"
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(colour)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "out"
    result = kerasgan("translate", a2b, str(good), str(broken), str(colour),
                      str(tmp_path / "missing.png"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "translated 2 of 4 images" in result.stdout
    problems = [line for line in result.stderr.splitlines() if line.startswith("kerasgan")]
    assert len(problems) == 2 and "broken.png" in problems[0] and "missing.png" in problems[1]
    assert sorted(os.listdir(out)) == ["digit.png", "photo.png"]
    assert np.asarray(Image.open(out / "photo.png")).shape == (SIZE, SIZE)


def test_cli_translate_with_nothing_readable_exits_2(tmp_path, kerasgan):
    a2b = export_directions(tiny(), str(tmp_path / "exports")).split(", ")[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    result = kerasgan("translate", a2b, str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "none of the 1 images could be read" in result.stderr


def test_cli_translate_rejects_a_sampling_export(tmp_path, kerasgan):
    from kerasgan.export import export_model
    from kerasgan.models.dcgan import DCGAN

    path = export_model(DCGAN.from_preset("tiny"), str(tmp_path), "dcgan")
    result = kerasgan("translate", path, "x.png", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "does not translate images" in result.stderr


def test_cli_train_passes_data_options_only_when_given(tmp_path, kerasgan):
    import json

    result = kerasgan("train", "cyclegan", "--pair", "horse2zebra", "--dry-run")
    assert json.loads(result.stdout)["data_options"] == {"pair": "horse2zebra"}
    result = kerasgan("train", "cyclegan", "--dry-run")
    assert "data_options" not in json.loads(result.stdout)
    run = ("--no-export", "--output", str(tmp_path / "run"))
    result = kerasgan("train", "dcgan", "--pair", "digits", *run)
    assert result.returncode == 2 and "takes no data options" in result.stderr
    result = kerasgan("train", "cyclegan", "--data-a", str(tmp_path), *run)
    assert result.returncode == 2 and "both image folders" in result.stderr
    result = kerasgan("train", "cyclegan", "--pair", "horse2zebra", *run)
    assert result.returncode == 2 and "no network" in result.stderr


def test_the_reference_codes_initialiser_is_one_option_away():
    """The reference code's N(0, 0.02) kernels by default, Keras's Glorot uniform on request."""
    paper = CycleGAN.from_preset("tiny", image_size=16)
    glorot = CycleGAN.from_preset("tiny", image_size=16, kernel_initializer="glorot_uniform")
    for gan, normal in ((paper, True), (glorot, False)):
        kernels = [w.numpy() for w in gan.generator_a2b.trainable_weights if len(w.shape) == 4]
        values = np.concatenate([kernel.ravel() for kernel in kernels])
        # Per kernel, a uniform draw never exceeds sqrt(3) of its standard deviation.
        tails = max(float(np.mean(np.abs(k) > 1.8 * np.std(k))) for k in kernels if k.size > 100)
        if normal:
            assert abs(float(np.std(values)) - 0.02) < 0.003 and tails > 0.03
        else:
            assert tails == 0.0
