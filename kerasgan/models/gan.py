"""The base GAN: two networks, two optimizers, and the plumbing every model's own step shares.

A generative adversarial network (Goodfellow et al., 2014, https://arxiv.org/abs/1406.2661)
trains a generator G, which turns random latent vectors z into images, against a discriminator
D, which scores images as real or fake. Each training step alternates two updates:

1. **Discriminator step.** Draw z, make fakes G(z) and push D's scores apart:
   `L_D = E_x[l_D(D(x), D(G(z)))]` — real up, fake down.
2. **Generator step.** Draw fresh z and move G so that D scores its fakes as real:
   `L_G = E_z[l_G(D(G(z)))]`.

Which `l_D`/`l_G` is a choice (`kerasgan.losses`). Every model of the course writes its own
`train_step` (and `test_step`) out in its own file (`dcgan.py`, `wgan_gp.py`, ...), as its
paper's algorithm: that step is the lesson. This file keeps what no lesson needs to show:
`compile` with two optimizers, the metric trackers, `generate()`, the moving average of G,
three small functions every step calls (`global_batch_mean`, `regularization_loss`,
`minimize`), and `augment`, which a step that takes an `augmentation` (DiffAugment, Zhao et
al., 2020) calls on every batch it shows D, real and fake alike.

`GAN` itself has no training step and no hooks to override: a bare `GAN` refuses to `fit` (and
to `evaluate`) with one clear error. Code that computes a model's losses from outside its step
(the `GANDiagnostics` callback, the test battery) calls the networks and `adversarial_loss`
itself, by the convention every model of the course follows: an unconditional G takes `z` and
D takes `x`; a class-conditional model (`ConditionalGAN`, BigGAN) trains on `(images, labels)`
pairs and its networks take `[z, labels]` and `[x, labels]`.

Three details that are easy to get wrong, and why this file does what it does:

* **Batch norm modes.** Both networks run in training mode inside `train_step` (batch
  statistics, moving averages updated); `generate()` and exports run G in inference mode (moving
  averages), so a sample does not depend on the other images in its batch.
* **Distribution.** Per-example losses are averaged over the *global* batch
  (`tf.nn.compute_average_loss`); under `tf.distribute` each replica's gradients are then summed,
  which gives the true mean gradient. A plain `mean` would scale gradients by the replica count.
* **Mixed precision.** Logits are cast to float32 before any loss; under `mixed_float16` both
  optimizers are wrapped in `LossScaleOptimizer` (Keras only wraps `model.optimizer`, and a GAN
  has two), and every loss goes through `optimizer.scale_loss` before differentiation.

Large GANs (StyleGAN, BigGAN) sample from an exponential moving average of G's weights
(`ema_decay`, warmed up over the first steps: `current_ema_decay`), which averages out the oscillation of adversarial training; `sampling_generator`
is the network that `generate()`, the sample grids and exports use.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.layers.augment import DiffAugment


def default_adam(learning_rate=2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-7):
    """Adam with the DCGAN paper's settings (Radford et al., 2015): lr 2e-4, beta_1 0.5
    (epsilon: Keras's default)."""
    return keras.optimizers.Adam(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon
    )


def preset_config(configs, preset, overrides, family, extra_options=()):
    """A named configuration from a model family's `CONFIGS`, with `overrides` applied.

    Args:
        configs: the family's `{preset name: {option: value}}`.
        preset: the name asked for.
        overrides: options replacing the preset's; each must be one of its keys or of
            `extra_options`.
        family: the family's name for error messages (e.g. `"WGAN-GP"`).
        extra_options: names also accepted that no preset sets (e.g. training options whose
            defaults live on the model's constructor).

    Raises:
        ConfigError: for an unknown preset or option, naming the known ones.
    """
    if preset not in configs:
        raise ConfigError(
            f"unknown {family} preset {preset!r}; choose one of: {', '.join(configs)}"
        )
    unknown = set(overrides) - set(configs[preset]) - set(extra_options)
    if unknown:
        raise ConfigError(f"unknown {family} option(s): {', '.join(sorted(unknown))}")
    return {**configs[preset], **overrides}


def is_finite_number(value):
    """True for an int or float that is finite; False for a bool, a string, NaN or infinity.

    Options arrive from JSON files and the command line as well as from Python, so a string
    or a bool must be refused here rather than fail later inside a comparison or a graph.
    """
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and math.isfinite(value))


def is_whole_number_of_steps(value):
    """True for a finite whole number >= 1 (`4` or `4.0`, not `4.5`, `"4"`, `True` or 0): a
    count of updates such as an R1 interval or WGAN-GP's critic steps."""
    return is_finite_number(value) and float(value).is_integer() and value >= 1


def check_r1_options(r1_gamma, r1_interval):
    """Refuse an R1 weight below 0 or an interval that is not a whole number of steps >= 1.

    Raises:
        ConfigError: naming the bad value.
    """
    if not is_finite_number(r1_gamma) or r1_gamma < 0:
        raise ConfigError(f"r1_gamma must be a finite number >= 0, got {r1_gamma!r}")
    if not is_whole_number_of_steps(r1_interval):
        raise ConfigError(f"r1_interval must be a whole number >= 1, got {r1_interval!r}")


def learning_rate_pair(learning_rate):
    """`(generator's rate, discriminator's)` of a `default_optimizers` argument: one rate (or
    None) for both, or a pair already."""
    if isinstance(learning_rate, (tuple, list)):
        return tuple(learning_rate)
    return learning_rate, learning_rate


def with_loss_scaling(optimizer):
    """Wrap `optimizer` in a `LossScaleOptimizer` when the global policy is `mixed_float16`.

    float16 gradients of small losses underflow to zero; scaling the loss up before
    differentiation (and the gradients down after) keeps them representable. bfloat16 has
    float32's exponent range and needs no scaling.
    """
    policy = keras.mixed_precision.dtype_policy()
    if policy.compute_dtype == "float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


# === Plumbing every training step shares ===
#
# Small functions that hide no modelling decision: which loss, which penalty and which network
# is called stays in each model's own `train_step`.


def global_batch_mean(per_example):
    """Mean of per-example values over the *global* batch, as float32.

    Under `tf.distribute` each replica sees part of the batch and the replicas' gradients are
    summed; dividing by the global batch size (`tf.nn.compute_average_loss`) makes that sum the
    true mean gradient, where a per-replica `mean` would multiply it by the replica count.
    """
    return tf.nn.compute_average_loss(ops.cast(per_example, "float32"))


def regularization_loss(network):
    """The sum of `network.losses` (weight penalties a layer adds), scaled for the replicas."""
    if not network.losses:
        return 0.0
    total = ops.sum(ops.stack([ops.cast(loss, "float32") for loss in network.losses]))
    return tf.nn.scale_regularization_loss(total)


def build_optimizers(model, optimizers_and_variables):
    """Create the slots of each optimizer not built yet, for its variables, in `model`'s
    distribution scope.

    An optimizer creates its slots lazily on its first update. Built then, inside a traced
    step, they make TensorFlow trace the step a second time, and under `MirroredStrategy` the
    replica context refuses to create them; and a checkpoint restored before the first update
    would silently leave a second optimizer's state at zero.
    """
    pending = [(optimizer, variables) for optimizer, variables in optimizers_and_variables
               if optimizer is not None and not optimizer.built]
    if pending:
        with model.distribute_strategy.scope():
            for optimizer, variables in pending:
                optimizer.build(variables)


def update_trackers(trackers, logs):
    """Add one step's values to the running means `{name: keras.metrics.Mean}` (values without
    a tracker are not reported); return every mean, the step's logs for the progress bar."""
    for name, value in logs.items():
        if name in trackers:
            trackers[name].update_state(value)
    return {name: tracker.result() for name, tracker in trackers.items()}


def minimize(tape, loss, optimizer, variables):
    """One optimizer step on `loss` recorded on `tape`: scale, differentiate, unscale, apply.

    Under `mixed_float16` the optimizer is a `LossScaleOptimizer`: the gradient is taken of the
    loss times its scale (so small float16 gradients do not underflow to zero), and
    `apply_gradients` divides the scale back out and skips a step whose gradients are not
    finite. With any other optimizer the scale is 1 and this is `tape.gradient` + `apply`.
    """
    scale = optimizer.scale_loss(ops.ones((), "float32"))
    gradients = tape.gradient(loss, variables, output_gradients=scale)
    optimizer.apply_gradients(zip(gradients, variables))


@keras.saving.register_keras_serializable(package="kerasgan")
class GAN(keras.Model):
    """What every GAN of the course shares: a generator, a discriminator and two optimizers.

    A subclass writes out its own `train_step` (and `test_step`) as its paper's algorithm,
    calling the networks, its losses and the plumbing below (`sample_latent`,
    `update_generator_ema`, `update_trackers`, and the module's `minimize`, `global_batch_mean`,
    `regularization_loss`). `GAN` itself has no step: `fit` and `evaluate` on a bare `GAN` raise
    `NotImplementedError`.

    Args:
        generator: a Keras model mapping latent vectors `[batch, latent_dim]` (plus, for
            conditional subclasses, a condition) to images in `[-1, 1]`.
        discriminator: a Keras model mapping images (plus condition) to logits `[batch, ...]`.
        latent_dim: size of z; read from the generator's first input when omitted.
        seed: seed of the model's own random stream (latents drawn inside `train_step`).
        ema_decay: when set (e.g. 0.999), keep `generator_ema`, an exponential moving average
            of G's weights updated after every generator step, and sample from it.
        augmentation: for models whose step calls `augment` (`supports_augmentation`): a
            `DiffAugment` policy such as `"translation,cutout"`, applied to every image D
            sees in training, real and fake; None for none.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        latent: `[batch, latent_dim]` latent vectors. Returns G's images (inference mode).

    Example:
        >>> class MyGAN(GAN):
        ...     def train_step(self, data):
        ...         ...  # D's tape, loss and update; G's tape, loss and update; the logs
        >>> gan = MyGAN(generator, discriminator)
        >>> gan.compile(loss="non_saturating")
        >>> gan.fit(dataset.batch(64), epochs=10)
        >>> images = gan.generate(16, seed=0)    # numpy, [16, H, W, C] in [-1, 1]
    """

    # Names of the `keras.metrics.Mean` trackers a subclass reports; extend in subclasses.
    tracked_metrics = ("d_loss", "g_loss", "d_real", "d_fake")
    # `compile`'s defaults, which a subclass sets to its paper's choices instead of overriding
    # `compile` and `default_optimizers`: the adversarial loss, and `default_adam`'s arguments
    # for the generator's and the discriminator's optimizers.
    default_loss = "non_saturating"
    default_adam_settings = ({}, {})
    # Whether the subclass's own step shows D its images through `augment` (DiffAugment).
    supports_augmentation = False

    def __init__(
        self, generator, discriminator, latent_dim=None, seed=None, ema_decay=None,
        augmentation=None, **kwargs,
    ):
        super().__init__(**kwargs)
        if augmentation is not None and not self.supports_augmentation:
            raise ConfigError(
                f"{type(self).__name__} does not take an augmentation: its step shows D the "
                "images as they are"
            )
        self.augmentation = None if augmentation is None else DiffAugment(augmentation, seed=seed)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_decay = ema_decay
        self.generator_ema = None
        if ema_decay is not None:
            if not is_finite_number(ema_decay) or not 0.0 < ema_decay < 1.0:
                raise ConfigError(f"ema_decay must be a number between 0 and 1, got {ema_decay!r}")
            self.generator_ema = _copy_of(generator, name=f"{generator.name}_ema")
        if latent_dim is None:
            latent_dim = _first_input_shape(generator)[-1]
        self.latent_dim = int(latent_dim)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in self.tracked_metrics
        }
        self.adversarial_loss = None
        self.g_optimizer = None
        self.d_optimizer = None
        # Both networks arrive built, and so is the GAN (saving would otherwise warn).
        self.built = True

    # === Setting up training ===

    def default_adam_arguments(self, learning_rate=None):
        """The (generator's, discriminator's) keyword arguments of `default_adam`: each of
        `default_adam_settings`, with `learning_rate` in place of their rates when given (a
        recipe's CPU setting): one rate for both, or a pair `(generator's, discriminator's)`."""
        return tuple(
            settings if rate is None else {**settings, "learning_rate": rate}
            for settings, rate in zip(self.default_adam_settings, learning_rate_pair(learning_rate))
        )

    def default_optimizers(self, learning_rate=None):
        """The (generator, discriminator) optimizers used when `compile` is given none:
        `default_adam` with each of `default_adam_arguments(learning_rate)`."""
        g_arguments, d_arguments = self.default_adam_arguments(learning_rate)
        return default_adam(**g_arguments), default_adam(**d_arguments)

    def compile(self, g_optimizer=None, d_optimizer=None, loss=None, **kwargs):
        """Configure the model for training.

        Args:
            g_optimizer: the generator's optimizer (default: `default_optimizers()[0]`).
            d_optimizer: the discriminator's optimizer (default: `default_optimizers()[1]`).
            loss: an adversarial loss name from `kerasgan.losses.ADVERSARIAL_LOSSES` or an
                `AdversarialLoss` (default: `default_loss`).
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).
        """
        # Keras's own optimizer would be unused: both optimizers live on the GAN.
        super().compile(optimizer=None, **kwargs)
        default_g, default_d = self.default_optimizers()
        self.g_optimizer = with_loss_scaling(g_optimizer or default_g)
        self.d_optimizer = with_loss_scaling(d_optimizer or default_d)
        self.adversarial_loss = losses.get_adversarial_loss(self.default_loss if loss is None else loss)
        # Slots created lazily during the first trace would make TensorFlow trace the step a
        # second time, and a model saved before training would store optimizers without them.
        self.build_optimizers()

    def build_optimizers(self):
        """Create both optimizers' slots now, in the distribution scope (see the module
        function `build_optimizers`); needed before restoring a checkpoint."""
        build_optimizers(self, [
            (self.d_optimizer, self.discriminator.trainable_variables),
            (self.g_optimizer, self.generator.trainable_variables),
        ])

    @property
    def metrics(self):
        return list(self.trackers.values())

    def fit(self, *args, shuffle=False, **kwargs):
        """`keras.Model.fit`, after `build_optimizers`, with `shuffle=False` by default: a
        GAN's data arrives as a `tf.data` pipeline that `kerasgan.datasets.training_pipeline`
        already shuffles (Keras would warn that it ignores `shuffle=True` on every call)."""
        self.build_optimizers()
        return super().fit(*args, shuffle=shuffle, **kwargs)

    # === The training step: each model writes out its own ===

    def train_step(self, data):
        """Refused: a `GAN` has no game of its own to play.

        Raises:
            NotImplementedError: always; train a model of the course (`DCGAN`, `WGANGP`, ...)
                or subclass `GAN` and write out the step.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no training step: every model of the course writes out "
            "its own train_step (DCGAN, WGANGP, StyleGAN, ...); train one of them, or subclass "
            "GAN and write yours"
        )

    def test_step(self, data):
        """Refused, as `train_step` is: evaluating needs the model's own losses.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no evaluation step: every model of the course writes "
            "out its own test_step; evaluate one of them, or subclass GAN and write yours"
        )

    # === Plumbing the steps call ===

    def sample_latent(self, batch_size):
        """Draw latent vectors from the model's own seeded stream (traced once, reproducible)."""
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def augment(self, images):
        """The images as D sees them in training: through the model's `DiffAugment` when it
        has one, unchanged otherwise."""
        if self.augmentation is None:
            return images
        return self.augmentation(images, training=True)

    def apply_update_if(self, condition, gradients, optimizer, variables):
        """Let `optimizer` apply `gradients` only when the traced boolean `condition` holds
        (a lazily regularised step, e.g. StyleGAN's R1).

        An optimizer update under several replicas is a cross-replica merge, which TensorFlow
        refuses inside a replica's control flow; there the condition is evaluated in the
        cross-replica context and the update runs on every replica, as Keras's
        `LossScaleOptimizer` skips non-finite steps.
        """

        def apply(grads):
            optimizer.apply_gradients(zip(grads, variables))

        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            ops.cond(condition, lambda: apply(gradients), lambda: None)
            return

        def cross_replica(strategy, condition, gradients):
            chosen = strategy.experimental_local_results(condition)[0]
            ops.cond(
                chosen,
                lambda: strategy.extended.call_for_each_replica(apply, args=(gradients,)),
                lambda: None,
            )

        context.merge_call(cross_replica, args=(condition, gradients))

    def update_generator_ema(self):
        """`w_ema <- decay * w_ema + (1 - decay) * w` for G's trainable weights; G's other state
        (batch-norm moving statistics) is copied, as it is already an average."""
        decay = self.current_ema_decay()
        pairs = list(zip(self.generator_ema.weights, self.generator.weights))

        def update(average, weight, trainable):
            value = decay * average + (1.0 - decay) * weight if trainable else weight
            return average.assign(value)

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Mirrored variables may only be assigned from the cross-replica context, through
            # TensorFlow's distributed variables (`.value`), not Keras's wrappers.
            def cross_replica(strategy):
                for average, weight in pairs:
                    strategy.extended.update(
                        average.value,
                        lambda a, w, t=weight.trainable: update(a, w, t),
                        args=(weight.value,),
                    )

            context.merge_call(cross_replica)
        else:
            for average, weight in pairs:
                update(average, weight, weight.trainable)

    def current_ema_decay(self):
        """`min(ema_decay, (1 + t) / (10 + t))` after G's `t`-th update: a short average at
        first, so that early samples are not a blur of the initial weights, then `ema_decay`
        (subclasses may ramp it up their own way)."""
        step = ops.cast(self.g_optimizer.iterations, "float32")
        return ops.minimum(float(self.ema_decay), (1.0 + step) / (10.0 + step))

    @property
    def sampling_generator(self):
        """The generator used for samples and exports: the moving average when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def update_trackers(self, logs):
        """Add this step's values to the running means (`update_trackers`); return them all:
        what `train_step` returns to `fit`."""
        return update_trackers(self.trackers, logs)

    # === Using the trained generator ===

    def call(self, latent, training=False):
        return self.sampling_generator(latent, training=training)

    @staticmethod
    def latent_batch(n, latent_dim, seed=None):
        """`n` standard-normal latent vectors from NumPy's generator: the same for a seed on
        every machine and TensorFlow version (used for fixed sample grids and exports)."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, latent_dim)).astype("float32")

    def generate(self, n, *, seed=None, labels=None, truncation=None, batch_size=256):
        """Draw `n` images from G in inference mode.

        Every model of the course takes the same call, keyword-only after `n`, so that
        `generate(16, seed=3)` means the same on all of them; conditional models read `labels`,
        models with a truncation trick read `truncation`, and the others refuse them.

        Args:
            n: number of images.
            seed: seed of the latent vectors (same seed, same images).
            labels: class ids, for class-conditional models only.
            truncation: the truncation trick's strength, for models that have one.
            batch_size: images per forward pass.

        Returns:
            float32 NumPy array `[n, H, W, C]` in `[-1, 1]`.

        Raises:
            ConfigError: `labels` or `truncation` given to a model without them.
        """
        refuse_generate_options(self, labels=labels, truncation=truncation)
        return self.generate_from_latent(self.latent_batch(n, self.latent_dim, seed), batch_size)

    def generate_from_latent(self, latent, batch_size=256, condition=None):
        """G's images for given latent vectors, batched, as float32 NumPy.

        Args:
            latent: `[n, latent_dim]` latent vectors.
            batch_size: images per forward pass.
            condition: None, or `n` labels for a class-conditional generator, which takes
                `[latent, labels]`.
        """
        outputs = []
        for start in range(0, len(latent), batch_size):
            stop = start + batch_size
            inputs = latent[start:stop]
            if condition is not None:
                inputs = [inputs, condition[start:stop]]
            outputs.append(ops.convert_to_numpy(self.sampling_generator(inputs, training=False)))
        return np.concatenate(outputs).astype("float32")

    def sample_condition(self, n):
        """The condition of a grid of `n` samples: None here (unconditional); class-conditional
        models return the labels of a row per class."""
        return None

    def preview(self, latent, condition=None):
        """The images of a training-progress grid (see `callbacks.SampleGrid`): G's samples for
        fixed latents. (CycleGAN, whose progress is a set of translations, has its own `preview`.)"""
        return self.generate_from_latent(latent, condition=condition)

    # === Serialization ===

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            latent_dim=self.latent_dim,
            seed=self.seed,
            ema_decay=self.ema_decay,
        )
        if self.supports_augmentation:
            config["augmentation"] = self.augmentation.policy if self.augmentation else None
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for network in ("generator", "discriminator"):
            config[network] = keras.saving.deserialize_keras_object(config[network])
        return cls(**config)

    def get_compile_config(self):
        if self.adversarial_loss is None:
            return None
        return {
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "loss": self.adversarial_loss.name,
        }

    def compile_from_config(self, config):
        self.compile(
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            loss=config["loss"],
        )


def refuse_generate_options(model, **options):
    """Raise `ConfigError` for any of `options` (e.g. `labels=`) that is given (not None): the
    model's `generate` takes the shared signature but has no use for them."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ConfigError(
            f"{type(model).__name__}.generate takes no {' or '.join(given)}"
            + (" (it is not class-conditional)" if "labels" in given else "")
        )


def _copy_of(model, name):
    """A new model with `model`'s architecture and current weights, under another name."""
    config = keras.saving.serialize_keras_object(model)
    config["config"]["name"] = name
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _first_input_shape(model):
    inputs = model.inputs if isinstance(model.inputs, list) else [model.inputs]
    return tuple(inputs[0].shape)
