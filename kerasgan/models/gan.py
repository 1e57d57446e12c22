"""The base GAN: two networks, two optimizers, one alternating training step.

A generative adversarial network (Goodfellow et al., 2014, https://arxiv.org/abs/1406.2661)
trains a generator G, which turns random latent vectors z into images, against a discriminator
D, which scores images as real or fake. Each training step alternates two updates:

1. **Discriminator step.** Draw z, make fakes G(z) and push D's scores apart:
   `L_D = E_x[l_D(D(x), D(G(z)))]` — real up, fake down.
2. **Generator step.** Draw fresh z and move G so that D scores its fakes as real:
   `L_G = E_z[l_G(D(G(z)))]`.

Which `l_D`/`l_G` is a choice (`kerasgan.losses`). Every model of the course writes its own
`train_step` out in its own file (`dcgan.py`, `wgan_gp.py`, ...), as its paper's algorithm:
that step is the lesson. This file keeps what no lesson needs to show: `compile` with two
optimizers, the metric trackers, `generate()`, the moving average of G, export functions, and
three small functions every step calls (`global_batch_mean`, `regularization_loss`,
`minimize`).

`GAN.train_step` below is the same algorithm for a plain unconditional GAN, with a few hooks
(`unpack_batch`, `generator_inputs`, `discriminate`, `discriminator_loss`, `generator_loss`,
`discriminator_penalty`). They remain for the code that must compute any model's losses without
training it (the `GANDiagnostics` callback, the test battery) and for CycleGAN until it becomes
a model of its own; a model's own `train_step` calls none of them.

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
(`ema_decay`), which averages out the oscillation of adversarial training; `sampling_generator`
is the network that `generate()`, the sample grids and exports use.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.export import images_to_uint8


def default_adam(learning_rate=2e-4, beta_1=0.5, beta_2=0.999):
    """Adam with the DCGAN paper's settings (Radford et al., 2015): lr 2e-4, beta_1 0.5."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)


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
    """A generator and a discriminator trained against each other with `fit`.

    Args:
        generator: a Keras model mapping latent vectors `[batch, latent_dim]` (plus, for
            conditional subclasses, a condition) to images in `[-1, 1]`.
        discriminator: a Keras model mapping images (plus condition) to logits `[batch, ...]`.
        latent_dim: size of z; read from the generator's first input when omitted.
        seed: seed of the model's own random stream (latents drawn inside `train_step`).
        ema_decay: when set (e.g. 0.999), keep `generator_ema`, an exponential moving average
            of G's weights updated after every generator step, and sample from it.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        latent: `[batch, latent_dim]` latent vectors. Returns G's images (inference mode).

    Example:
        >>> gan = GAN(generator, discriminator)
        >>> gan.compile(loss="non_saturating")
        >>> gan.fit(dataset.batch(64), epochs=10)
        >>> images = gan.generate(16, seed=0)    # numpy, [16, H, W, C] in [-1, 1]
    """

    # Names of the `keras.metrics.Mean` trackers a subclass reports; extend in subclasses.
    tracked_metrics = ("d_loss", "g_loss", "d_real", "d_fake")
    # Config keys holding serialized networks, rebuilt by `from_config` (CycleGAN has four).
    serialized_parts = ("generator", "discriminator")
    # `compile`'s defaults, which a subclass sets to its paper's choices instead of overriding
    # `compile` and `default_optimizers`: the adversarial loss, and `default_adam`'s arguments
    # for the generator's and the discriminator's optimizers.
    default_loss = "non_saturating"
    default_adam_settings = ({}, {})

    def __init__(
        self, generator, discriminator, latent_dim=None, seed=None, ema_decay=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_decay = ema_decay
        self.generator_ema = None
        if ema_decay is not None:
            if not 0.0 < ema_decay < 1.0:
                raise ConfigError(f"ema_decay must be between 0 and 1, got {ema_decay}")
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

    def default_optimizers(self):
        """The (generator, discriminator) optimizers used when `compile` is given none:
        `default_adam` with each of `default_adam_settings`."""
        g_settings, d_settings = self.default_adam_settings
        return default_adam(**g_settings), default_adam(**d_settings)

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
        self.ensure_optimizers_built()

    def build_optimizers(self):
        """Create both optimizers' slot variables now (needed before restoring a checkpoint).

        An optimizer creates its variables lazily on its first update; a checkpoint restored
        before that would silently leave the second optimizer's state at zero.
        """
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def ensure_optimizers_built(self):
        """Run `build_optimizers` in the model's distribution scope unless every optimizer the
        model holds (two here, more in subclasses that add some) is built already.

        Under `MirroredStrategy`, slots created lazily by the first update are created inside
        the replica context, which fails; built in the strategy's scope they are mirrored.
        """
        held = [v for v in vars(self).values() if isinstance(v, keras.optimizers.Optimizer)]
        if held and not all(optimizer.built for optimizer in held):
            with self.distribute_strategy.scope():
                self.build_optimizers()

    @property
    def metrics(self):
        return list(self.trackers.values())

    def fit(self, *args, shuffle=False, **kwargs):
        """`keras.Model.fit`, after `ensure_optimizers_built`, with `shuffle=False` by default: a
        GAN's data arrives as a `tf.data` pipeline that `kerasgan.datasets.training_pipeline`
        already shuffles (Keras would warn that it ignores `shuffle=True` on every call)."""
        self.ensure_optimizers_built()
        return super().fit(*args, shuffle=shuffle, **kwargs)

    # === Hooks that subclasses override ===

    def unpack_batch(self, data):
        """Split a dataset element into `(images, condition)`; labels are ignored here."""
        if isinstance(data, (tuple, list)):
            return data[0], None
        return data, None

    def sample_latent(self, batch_size):
        """Draw latent vectors from the model's own seeded stream (traced once, reproducible)."""
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def generator_inputs(self, latent, condition):
        """What the generator is called on."""
        return latent

    def discriminate(self, images, condition, training):
        """The discriminator's logits for `images` (with `condition` in conditional models)."""
        return self.discriminator(images, training=training)

    def sample_condition(self, n):
        """The condition for a grid of `n` samples (None: unconditional)."""
        return None

    def discriminator_penalty(self, real, fake, condition):
        """Extra per-example discriminator terms `[batch]` (or None) and the logs to report."""
        return None, {}

    def score_logs(self, real_logits, fake_logits):
        """What to report about D's scores: mean probabilities D(x) and D(G(z))."""
        return {
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        }

    # === The training step ===

    def average(self, per_example):
        """Mean over the global batch (`global_batch_mean`)."""
        return global_batch_mean(per_example)

    def regularization(self, network):
        """The network's own added losses, replica-scaled (`regularization_loss`)."""
        return regularization_loss(network)

    def discriminator_loss(self, real, fake, condition, training=True):
        """D's loss on one real and one fake batch, and the values to report.

        With `training=False` (`test_step`) D runs in inference mode and the penalty
        (`discriminator_penalty`) is left out: evaluating must neither change state nor pay for
        an input-gradient pass, so `d_loss` is then the adversarial loss alone.

        Returns:
            `(loss, logs)`: the global-batch-averaged scalar to differentiate and a dict of
            per-replica means for the metrics.
        """
        real_logits = self.discriminate(real, condition, training=training)
        fake_logits = self.discriminate(fake, condition, training=training)
        per_example = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
        penalty, logs = (
            self.discriminator_penalty(real, fake, condition) if training else (None, {})
        )
        if penalty is not None:
            per_example = per_example + ops.cast(penalty, "float32")
        loss = self.average(per_example) + self.regularization(self.discriminator)
        logs = {"d_loss": ops.mean(per_example), **self.score_logs(real_logits, fake_logits), **logs}
        return loss, logs

    def generator_loss(self, latent, condition, training=True):
        """G's loss on fakes made from `latent`, and the values to report."""
        fake = self.generator(self.generator_inputs(latent, condition), training=training)
        fake_logits = self.discriminate(fake, condition, training=training)
        per_example = self.adversarial_loss.generator_loss(fake_logits)
        loss = self.average(per_example) + self.regularization(self.generator)
        return loss, {"g_loss": ops.mean(per_example)}

    def apply_update(self, tape, loss, optimizer, variables):
        """Differentiate `loss` with respect to `variables` and let `optimizer` apply the step."""
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))

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

    def discriminator_step(self, real, condition):
        """One update of D against fresh fakes. Returns the logs."""
        batch_size = ops.shape(real)[0]
        latent = self.sample_latent(batch_size)
        # The fakes are made outside the tape: D's update needs no gradient through G.
        fake = self.generator(self.generator_inputs(latent, condition), training=True)
        with tf.GradientTape() as tape:
            loss, logs = self.discriminator_loss(real, fake, condition)
            scaled = self.d_optimizer.scale_loss(loss)
        self.apply_update(tape, scaled, self.d_optimizer, self.discriminator.trainable_variables)
        return logs

    def generator_step(self, batch_size, condition):
        """One update of G through a fixed D (then of its moving average). Returns the logs."""
        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            loss, logs = self.generator_loss(latent, condition)
            scaled = self.g_optimizer.scale_loss(loss)
        self.apply_update(tape, scaled, self.g_optimizer, self.generator.trainable_variables)
        if self.generator_ema is not None:
            self.update_generator_ema()
        return logs

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
        """The decay of this step's EMA update: `ema_decay` (subclasses may warm it up)."""
        return self.ema_decay

    @property
    def sampling_generator(self):
        """The generator used for samples and exports: the moving average when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def train_step(self, data):
        real, condition = self.unpack_batch(data)
        logs = self.discriminator_step(real, condition)
        logs.update(self.generator_step(ops.shape(real)[0], condition))
        return self.update_trackers(logs)

    def test_step(self, data):
        """Both losses on a held-out batch: no update, no penalty, both networks in inference
        mode, so no variable changes (only the seed generator, which draws the latents)."""
        real, condition = self.unpack_batch(data)
        latent = self.sample_latent(ops.shape(real)[0])
        fake = self.generator(self.generator_inputs(latent, condition), training=False)
        _, logs = self.discriminator_loss(real, fake, condition, training=False)
        logs.update(self.generator_loss(latent, condition, training=False)[1])
        return self.update_trackers(logs)

    def update_trackers(self, logs):
        for name, value in logs.items():
            if name in self.trackers:
                self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

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
        """G's images for given latent vectors (and condition), batched, as float32 NumPy."""
        outputs = []
        for start in range(0, len(latent), batch_size):
            stop = start + batch_size
            part_condition = None if condition is None else condition[start:stop]
            inputs = self.generator_inputs(latent[start:stop], part_condition)
            outputs.append(ops.convert_to_numpy(self.sampling_generator(inputs, training=False)))
        return np.concatenate(outputs).astype("float32")

    def preview(self, latent, condition=None):
        """The images of a training-progress grid (see `callbacks.SampleGrid`): G's samples for
        fixed latents. Models whose progress is not a set of samples (CycleGAN) override it."""
        return self.generate_from_latent(latent, condition=condition)

    def serving_functions(self):
        """The functions an export serves, by signature name (see `kerasgan.export`).

        `serving_default`: `latent` float32 `[None, latent_dim]` -> `images` uint8.
        `predict_float`: the same input -> `images` float32 in `[-1, 1]`.
        """
        generator = self.sampling_generator
        latent_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="latent")

        @tf.function(input_signature=[latent_spec])
        def serving_default(latent):
            return {"images": images_to_uint8(generator(latent, training=False))}

        @tf.function(input_signature=[latent_spec])
        def predict_float(latent):
            return {"images": tf.cast(generator(latent, training=False), tf.float32)}

        return {"serving_default": serving_default, "predict_float": predict_float}

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
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in cls.serialized_parts:
            config[part] = keras.saving.deserialize_keras_object(config[part])
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
