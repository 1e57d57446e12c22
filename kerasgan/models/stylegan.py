"""StyleGAN: a generator that paints with styles (StyleGAN2-style, sized for a course).

A DCGAN feeds `z` into its first layer and hopes the layers sort out what controls what. A
style-based generator (Karras et al., 2019, https://arxiv.org/abs/1812.04948; StyleGAN2, 2020,
https://arxiv.org/abs/1912.04958) separates *what* from *where*:

1. A **mapping network** `f` turns `z ~ N(0, I)` into `w = f(z)` in an intermediate space W,
   which need not be Gaussian and so can be less entangled.
2. The **synthesis network** starts from a learned constant 4x4 tensor. Every layer receives
   `w` through a learned affine map `A` as a *style* `s = A(w)`, one scale per input channel,
   that modulates its convolution (StyleGAN2: `w'_ijk = s_i w_ijk`, then *demodulation*
   `w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)`; StyleGAN1: AdaIN,
   `y_s (x - mu(x)) / sigma(x) + y_b`).
3. **Noise** maps with a learned strength add stochastic detail at every layer.
4. Each resolution adds its `ToRGB` output to the upsampled image of the previous one
   ("skip" generator), so coarse layers draw the layout and later layers the detail.

Because each layer reads its own copy of `w`, styles can be *mixed*: take the coarse layers'
styles from one latent and the fine layers' from another. Training with such mixes (**style-
mixing regularisation**) makes what each layer controls more local. At sampling time the
**truncation trick** `w' = w_avg + psi (w - w_avg)` trades variety for typicality, with `w_avg`
a moving average of `w` tracked during training.

The game is the non-saturating GAN loss with **lazy R1 regularisation** (Mescheder et al.,
2018): `gamma/2 * E||grad_x D(x)||^2` on real images, computed only every `r1_interval` (16)
steps, as a discriminator update of its own (StyleGAN2's `Dreg` phase) whose loss is
multiplied by the interval so the average strength is unchanged. Because D then takes
`r1_interval + 1` optimizer steps per `r1_interval` training steps, its Adam settings are
corrected as in StyleGAN2 (`lr * c`, `beta_2 ** c`, `c = interval / (interval + 1)`). Samples
and exports come from an **exponential moving average** of the generator's weights, whose
half-life ramps up with training (at most 5% of the steps so far, this one included) as in
StyleGAN2-ADA.

One training step, as `StyleGAN.train_step` runs it: StyleGAN2's training loop (Karras et al.,
2020, section 3.1 "Lazy regularization"; the phases `Dmain`, `Dreg` and `Gmain` of the official
StyleGAN2-ADA `training_loop.py`), the alternating updates of Goodfellow et al.'s Algorithm 1.
With step counter `t`, reals `x` and `softplus(u) = log(1 + e^u)`:

1. Draw `z`; track the truncation centre `w_avg <- beta w_avg + (1 - beta) mean f(z)`.
2. Draw fresh `z` and make fakes `G(z)`, style-mixed inside G, outside D's tape.
3. `Dmain`: one D update on `softplus(-D(x)) + softplus(D(G(z)))` (the non-saturating game).
4. `Dreg`: if `t mod r1_interval == 0`, one more D update, on
   `gamma/2 * r1_interval * ||grad_x D(x)||^2` (R1 on the same reals); nothing otherwise.
5. `Gmain`: draw fresh `z` (mixed inside G again) and update G on `softplus(-D(G(z)))`
   through the updated D.
6. Update the EMA generator, `theta_ema <- beta_t theta_ema + (1 - beta_t) theta` with
   `beta_t = min(ema_decay, 0.5 ** (1 / (0.05 (t + 1))))`; then `t <- t + 1`.

(StyleGAN2's loop runs its generator phases before its discriminator phases; D first is the
order of every GAN in this course, and the two orders are the same alternating game.) Losses are
averaged over the global batch and any weight penalty a layer adds (`network.losses`) joins its
network's loss, as in every step of the course; `evaluate()` runs `StyleGAN.test_step`, both
losses in inference mode with no R1 and no update.

What is faithful and what is not (choices for a 2-core CPU and a course):

* Kept: mapping network with lr multiplier 0.01, constant input, modulated/demodulated
  convolutions (or AdaIN), noise with learned strength, skip generator, residual discriminator
  with minibatch standard deviation, equalised learning rate everywhere, non-saturating loss,
  lazy R1, style mixing (p = 0.9), tracked `w_avg` (beta = 0.995), EMA generator with ramp-up.
* Changed: upsampling is nearest-neighbour followed by a 3x3 convolution (the RGB skip path is
  upsampled bilinearly) and downsampling is 2x2 average pooling before the convolution
  (StyleGAN2 uses transposed/strided convolutions with a [1,3,3,1] blur filter);
  the second latent for style mixing is the next image's `w` in the batch (no second mapping
  pass); the output goes through `tanh` so images stay in `[-1, 1]` like the rest of the course;
  the mapping network has 4 layers (paper: 8); widths are far smaller; `w_avg` is tracked on
  a fresh batch of latents each step (StyleGAN2 reuses the generator pass's `w`s); on a machine
  without a GPU the course trains both networks with Adam at 4x StyleGAN2's rate (the recipe's
  `learning_rate_cpu`; `compile()` and GPU runs keep 0.002): equalised weights are stored at unit
  scale, so Adam at 0.002 moves each by about 0.2% of itself per step, too slowly for the few
  thousand steps of a CPU run to get past one digit-sized blob (benchmarks/README.md).
* Omitted: path-length regularisation (it smooths the W -> image map at the cost of an extra
  generator backward pass every 4 steps, too expensive for the CPU budget of the course) and
  adaptive augmentation (StyleGAN2-ADA).

The default configuration (32 px, 64 channels up to 16x16 and 32 at 32x32, batch 32, 40
epochs of coloured digits) is sized so that a run fits the course's CPU budget and its
style-mixing grid shows each row's digit with each column's colours (speeds and outcomes:
`benchmarks/README.md`). StyleGAN learns more slowly per image than a batch-normalised DCGAN:
the first epochs are coloured blobs.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.layers.style import (
    MODULATIONS,
    BroadcastStyles,
    ConstantInput,
    EqualizedConv2D,
    EqualizedDense,
    MappingNetwork,
    MinibatchStdDev,
    StyleMixing,
    SynthesisLayer,
    ToRGB,
    UnstackStyles,
    mix_styles,
)
from kerasgan.models.gan import (
    GAN,
    check_r1_options,
    global_batch_mean,
    minimize,
    preset_config,
    refuse_generate_options,
    regularization_loss,
)

SUPPORTED_RESOLUTIONS = (16, 32, 64, 128, 256)
# The sensible range of the truncation psi: 0 is the average image, 1 no truncation; values
# below 0 mirror w around the average ("anti-images"), above 1 exaggerate. Beyond that the
# generator sees styles far outside anything it was trained on.
PSI_RANGE = (-1.0, 2.0)

# Named configurations: "default" trains on the coloured digits at 32 px on a CPU; "large" is a
# starting point for 64 px photos (oxford_flowers102) on a GPU; "tiny" builds and trains a step
# in about a second, for tests and notebook smoke runs.
CONFIGS = {
    "default": {
        "latent_dim": 128, "w_dim": 128, "mapping_layers": 4, "width": 64,
        "modulation": "demodulate", "r1_gamma": 0.05,
    },
    "large": {
        "latent_dim": 256, "w_dim": 256, "mapping_layers": 8, "width": 256,
        "modulation": "demodulate", "r1_gamma": 1.0,
    },
    "tiny": {
        "latent_dim": 16, "w_dim": 16, "mapping_layers": 2, "width": 16,
        "modulation": "demodulate", "r1_gamma": 0.1,
    },
}
# Half-life of the generator's moving average, as a fraction of the steps taken (StyleGAN2-ADA's
# `ema_rampup`).
EMA_RAMPUP = 0.05
TRAINING_OPTIONS = ("mixing_probability", "r1_interval", "ema_decay", "w_avg_beta")


def check_resolution(image_size):
    """Raise a `ConfigError` unless `image_size` is one of `SUPPORTED_RESOLUTIONS`."""
    if image_size not in SUPPORTED_RESOLUTIONS:
        raise ConfigError(
            f"image size {image_size} is not supported by StyleGAN: choose one of "
            f"{', '.join(map(str, SUPPORTED_RESOLUTIONS))} (16 is for quick tests)"
        )


def check_truncation(psi):
    """Raise a `ConfigError` unless `psi` is a finite number in `PSI_RANGE`."""
    low, high = PSI_RANGE
    try:
        value = float(psi)
    except (TypeError, ValueError):
        raise ConfigError(f"truncation_psi must be a number, got {psi!r}") from None
    if not low <= value <= high:  # also False for NaN
        raise ConfigError(
            f"truncation_psi must be between {low} and {high} (1: no truncation, 0: the average "
            f"image), got {psi}"
        )
    return value


def resolutions(image_size):
    """The block resolutions of the synthesis network: 4, 8, ..., image_size."""
    return [2**k for k in range(2, int(math.log2(image_size)) + 1)]


def channels_at(resolution, width):
    """Channels at a resolution: `width` up to 16x16, then halved per doubling (at least 16,
    or `width` if smaller), as StyleGAN2's `min(channel_base / res, channel_max)` with
    `channel_base = 16 * width`."""
    return max(min(width, width * 16 // resolution), min(width, 16))


def num_styles_for(image_size):
    """How many `w`s the synthesis network reads: two per resolution block.

    As in StyleGAN2, block `b` reads styles `2b - 1` and `2b` for its two convolutions (the
    4x4 block has one, style 0) and its `ToRGB` reads `2b + 1`, the next block's first style.
    """
    return 2 * len(resolutions(image_size))


# === Generator ===


def build_synthesis_network(
    image_size=32, channels=3, w_dim=128, width=128, modulation="demodulate",
    name="synthesis",
):
    """The synthesis network: per-layer styles `(batch, num_styles, w_dim)` -> images.

    Block at 4x4: constant -> synthesis layer -> ToRGB. Every later block: upsampling synthesis
    layer -> synthesis layer -> ToRGB, whose output is added to the bilinearly upsampled image
    so far. The sum goes through `tanh` (float32).

    Args:
        image_size: output resolution (see `SUPPORTED_RESOLUTIONS`).
        channels: image channels.
        w_dim: size of each style vector `w`.
        width: channels of the blocks up to 16x16 (see `channels_at`).
        modulation: `"demodulate"` (StyleGAN2) or `"adain"` (StyleGAN1).
        name: the model's name.

    Returns:
        A functional `keras.Model` with input `styles` `(batch, num_styles, w_dim)`.
    """
    check_resolution(image_size)
    if modulation not in MODULATIONS:
        raise ConfigError(f"modulation must be one of {', '.join(MODULATIONS)}, got {modulation!r}")
    num_styles = num_styles_for(image_size)
    styles_input = keras.Input((num_styles, w_dim), name="styles")
    styles = UnstackStyles(name="unstack_styles")(styles_input)
    x = ConstantInput(channels_at(4, width), name="constant")(styles[0])
    image = None
    for block, resolution in enumerate(resolutions(image_size)):
        filters = channels_at(resolution, width)
        if block == 0:
            x = SynthesisLayer(filters, modulation=modulation, name="b4_conv")([x, styles[0]])
        else:
            for index in (0, 1):
                x = SynthesisLayer(
                    filters, upsample=index == 0, modulation=modulation,
                    name=f"b{resolution}_conv{index}",
                )([x, styles[2 * block - 1 + index]])
        rgb = ToRGB(channels, name=f"b{resolution}_torgb")([x, styles[2 * block + 1]])
        if image is None:
            image = rgb
        else:
            # The image is summed in float32 under mixed precision: bfloat16's 8-bit mantissa
            # would quantise it, and XLA on CPU cannot compile the gradient of a 16-bit
            # bilinear upsampling (it mixes float32 into the 16-bit convolution after it).
            image = layers.UpSampling2D(
                interpolation="bilinear", dtype="float32", name=f"b{resolution}_up"
            )(image)
            image = layers.Add(dtype="float32", name=f"b{resolution}_skip")([image, rgb])
    images = layers.Activation("tanh", dtype="float32", name="images")(image)
    return keras.Model(styles_input, images, name=name)


def build_generator(
    latent_dim=128, image_size=32, channels=3, w_dim=128, mapping_layers=4, width=128,
    modulation="demodulate", mixing_probability=0.9, seed=None, name="generator",
):
    """The style-based generator: `latent -> mapping -> styles -> (mixing) -> synthesis`.

    Sub-layers by name: `mapping` (a `MappingNetwork`, holding `w_avg`), `broadcast_styles`,
    `style_mixing` (active only in training) and `synthesis` (a nested model, see
    `build_synthesis_network`).

    Args:
        latent_dim: size of `z`.
        image_size: output resolution.
        channels: image channels.
        w_dim: size of `w`.
        mapping_layers: dense layers in the mapping network.
        width: channels of the coarsest blocks.
        modulation: `"demodulate"` or `"adain"`.
        mixing_probability: chance that a training batch is style-mixed.
        seed: seed of the style-mixing random stream.
        name: the model's name.

    Returns:
        A functional `keras.Model`, input `latent` `(batch, latent_dim)`, output images
        `(batch, image_size, image_size, channels)` in `[-1, 1]` (no truncation).
    """
    synthesis = build_synthesis_network(image_size, channels, w_dim, width, modulation)
    latent = keras.Input((latent_dim,), name="latent")
    w = MappingNetwork(w_dim, mapping_layers, name="mapping")(latent)
    styles = BroadcastStyles(num_styles_for(image_size), name="broadcast_styles")(w)
    styles = StyleMixing(mixing_probability, seed=seed, name="style_mixing")(styles)
    return keras.Model(latent, synthesis(styles), name=name)


# === Discriminator ===


def build_discriminator(image_size=32, channels=3, width=128, name="discriminator"):
    """StyleGAN2's residual discriminator with minibatch standard deviation.

    FromRGB (1x1 conv) at full resolution, then one residual block per halving down to 4x4:
    `(conv3x3 -> downsample + conv3x3 + skip(downsample + conv1x1)) / sqrt(2)`; then minibatch
    standard deviation, a 3x3 convolution, a dense layer and one logit. Leaky ReLU everywhere;
    no normalisation (R1 keeps D in check instead).

    Args:
        image_size: input resolution.
        channels: image channels.
        width: channels up to 16x16, mirroring the generator's `channels_at`.
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping images `(batch, H, W, C)` to logits `(batch, 1)`
        (float32).
    """
    check_resolution(image_size)
    images = keras.Input((image_size, image_size, channels), name="images")
    x = EqualizedConv2D(
        channels_at(image_size, width), 1, activation="leaky_relu", name=f"b{image_size}_fromrgb"
    )(images)
    for resolution in reversed(resolutions(image_size)[1:]):
        out_filters = channels_at(resolution // 2, width)
        skip = EqualizedConv2D(
            out_filters, 1, use_bias=False, downsample=True, name=f"b{resolution}_skip"
        )(x)
        x = EqualizedConv2D(
            channels_at(resolution, width), 3, activation="leaky_relu", name=f"b{resolution}_conv0"
        )(x)
        x = EqualizedConv2D(
            out_filters, 3, activation="leaky_relu", downsample=True, name=f"b{resolution}_conv1"
        )(x)
        x = layers.Add(name=f"b{resolution}_add")([x, skip])
        # Keeps the variance of the sum of two unit-variance branches at 1.
        x = layers.Rescaling(1.0 / math.sqrt(2.0), name=f"b{resolution}_scale")(x)
    filters = channels_at(4, width)
    x = MinibatchStdDev(group_size=4, num_channels=1, name="minibatch_stddev")(x)
    x = EqualizedConv2D(filters, 3, activation="leaky_relu", name="b4_conv")(x)
    x = layers.Flatten(name="flatten")(x)
    x = EqualizedDense(filters, activation="leaky_relu", name="b4_dense")(x)
    logits = EqualizedDense(1, dtype="float32", name="logit")(x)
    return keras.Model(images, logits, name=name)


# === The model ===


@keras.saving.register_keras_serializable(package="kerasgan")
class StyleGAN(GAN):
    """A StyleGAN2-style GAN: style-mixing generator, lazy R1, tracked `w_avg`, EMA sampling.

    Args:
        generator: from `build_generator` (needs the `mapping` and `synthesis` sub-layers).
        discriminator: from `build_discriminator`.
        latent_dim: size of `z` (read from the generator when omitted).
        seed: seed of the model's latent stream.
        ema_decay: decay of the generator's moving average used for samples and exports.
        r1_gamma: R1 weight `gamma`; the penalty is `gamma / 2 * ||grad D(x)||^2`.
        r1_interval: apply R1 every this many steps (lazy regularisation), scaled by it.
        w_avg_beta: decay of the running average of `w` (truncation centre).
        **kwargs: passed to `GAN` / `keras.Model`.

    Call arguments:
        latent: `(batch, latent_dim)`. Returns the EMA generator's images (no truncation).

    Example:
        >>> gan = StyleGAN.from_preset("default", image_size=32, channels=3, seed=0)
        >>> gan.compile()
        >>> gan.fit(batches, epochs=30)
        >>> gan.generate(16, seed=0, truncation=0.7)
        >>> gan.mix(rows_z, cols_z, crossover=4)   # coarse styles from rows, the rest from cols
    """

    tracked_metrics = GAN.tracked_metrics + ("r1",)

    def __init__(
        self, generator, discriminator, latent_dim=None, seed=None, ema_decay=0.999,
        r1_gamma=0.1, r1_interval=16, w_avg_beta=0.995, **kwargs,
    ):
        check_r1_options(r1_gamma, r1_interval)
        if not 0.0 <= w_avg_beta < 1.0:
            raise ConfigError(f"w_avg_beta must be in [0, 1), got {w_avg_beta}")
        for part in ("mapping", "synthesis"):
            if part not in {layer.name for layer in generator.layers}:
                raise ConfigError(f"a StyleGAN generator needs a {part!r} layer (build_generator)")
        super().__init__(
            generator, discriminator, latent_dim=latent_dim, seed=seed, ema_decay=ema_decay,
            **kwargs,
        )
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval)
        self.w_avg_beta = float(w_avg_beta)
        # Training steps taken (checkpointed with the model, so lazy R1 keeps its cadence when a
        # run resumes) and the last R1 value computed (reported between evaluations).
        self.step = keras.Variable(
            0, dtype="int64", trainable=False, name="step", aggregation="only_first_replica"
        )
        self.last_r1 = keras.Variable(
            0.0, dtype="float32", trainable=False, name="last_r1", aggregation="mean"
        )

    @classmethod
    def from_preset(cls, preset="default", image_size=32, channels=3, seed=None, **overrides):
        """Build a StyleGAN from a named configuration in `CONFIGS` (with overrides).

        Args:
            preset: `"default"`, `"large"` or `"tiny"`.
            image_size: resolution (16, 32, 64, 128 or 256).
            channels: image channels.
            seed: seed of the training-time random streams.
            **overrides: architecture (`latent_dim`, `w_dim`, `mapping_layers`, `width`,
                `modulation`) or training (`mixing_probability`, `r1_gamma`, `r1_interval`,
                `ema_decay`, `w_avg_beta`) options.
        """
        config = preset_config(CONFIGS, preset, overrides, "StyleGAN", TRAINING_OPTIONS)
        check_resolution(image_size)
        generator = build_generator(
            config["latent_dim"], image_size, channels, config["w_dim"],
            config["mapping_layers"], config["width"], config["modulation"],
            config.get("mixing_probability", 0.9), seed=seed,
        )
        discriminator = build_discriminator(image_size, channels, config["width"])
        training = {k: config[k] for k in ("r1_gamma", *TRAINING_OPTIONS[1:]) if k in config}
        return cls(generator, discriminator, latent_dim=config["latent_dim"], seed=seed, **training)

    # --- the parts of a generator ---

    @staticmethod
    def mapping_of(generator):
        return generator.get_layer("mapping")

    @staticmethod
    def synthesis_of(generator):
        return generator.get_layer("synthesis")

    @property
    def num_styles(self):
        """How many per-layer styles the synthesis network reads."""
        return int(self.synthesis_of(self.generator).inputs[0].shape[1])

    @property
    def w_avg(self):
        """The tracked average `w` (the truncation centre) of the sampling generator."""
        return ops.convert_to_numpy(self.mapping_of(self.sampling_generator).w_avg)

    # --- setting up training ---

    # StyleGAN2's Adam for both networks: lr 0.002, betas (0, 0.99), eps 1e-8.
    default_adam_settings = (
        {"learning_rate": 0.002, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8},
    ) * 2

    def default_adam_arguments(self, learning_rate=None):
        """StyleGAN2's Adam (`default_adam_settings`, a recipe's CPU `learning_rate` in place of
        the rate when given), D's corrected for lazy R1, which adds one D update (step 4 of
        `train_step`) every `r1_interval` steps, so that the per-step decay of its moments
        matches an optimizer without the extra steps: `c = interval / (interval + 1)`, lr * c,
        beta_2 ** c."""
        g_arguments, d_arguments = super().default_adam_arguments(learning_rate)
        ratio = self.r1_interval / (self.r1_interval + 1.0)
        return g_arguments, {
            **d_arguments,
            "learning_rate": d_arguments["learning_rate"] * ratio,
            "beta_2": d_arguments["beta_2"] ** ratio,
        }

    # --- the training step ---

    def current_ema_decay(self):
        """StyleGAN2's EMA ramp-up: the average's half-life is at most `EMA_RAMPUP` (5%) of the
        steps taken, so early samples are not dominated by the random initial weights.

        `beta_t = min(ema_decay, 0.5 ** (1 / (EMA_RAMPUP * t)))` after `t` steps; with
        `ema_decay=0.999` (a half-life of 693 steps) the ramp ends after ~13,900 steps.
        """
        steps = ops.cast(self.step + 1, "float32")
        warm = ops.power(0.5, 1.0 / (EMA_RAMPUP * steps))
        return ops.minimum(ops.cast(self.ema_decay, "float32"), warm)

    def train_step(self, data):
        """One step of StyleGAN2's training loop (the numbered steps of the module docstring)."""
        # StyleGAN is unconditional: labels, if the dataset holds any, are not used.
        real = data[0] if isinstance(data, (tuple, list)) else data
        batch_size = ops.shape(real)[0]
        d_variables = self.discriminator.trainable_variables

        # 1. Track w_avg, the truncation centre, on fresh latents (no update of the mapping).
        mapping = self.mapping_of(self.generator)
        w = mapping(self.sample_latent(batch_size), training=False)
        mapping.update_average(w, self.w_avg_beta)

        # 2. Fresh fakes, made outside D's tape: D's update needs no gradient through G. Style
        #    mixing happens inside G (its StyleMixing layer, active in training mode only).
        fake = self.generator(self.sample_latent(batch_size), training=True)

        # 3. D's main update (Dmain): the non-saturating game's D loss, real up, fake down.
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            d_total = global_batch_mean(d_loss) + regularization_loss(self.discriminator)
        minimize(tape, d_total, self.d_optimizer, d_variables)
        logs = {
            "d_loss": ops.mean(d_loss),
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        }

        # 4. Lazy R1 (Dreg): on steps that are multiples of r1_interval, a D update of its own
        #    on the same reals, weighted by the interval. `ops.cond` chooses inside the graph,
        #    so the other steps never compute the input gradient (R1 roughly doubles a D step).
        if self.r1_gamma > 0.0:
            due = ops.equal(self.step % self.r1_interval, 0)

            def r1_update():
                with tf.GradientTape() as tape:
                    r1 = losses.r1_penalty(lambda x: self.discriminator(x, training=True), real)
                    r1_loss = global_batch_mean(0.5 * self.r1_gamma * self.r1_interval * r1)
                    scaled = self.d_optimizer.scale_loss(r1_loss)
                # The logit's bias does not change the input gradient: a zero gradient, which
                # Adam with beta_1 = 0 (StyleGAN2's) turns into no move.
                gradients = tape.gradient(scaled, d_variables)
                gradients = [
                    ops.zeros(v.shape, v.dtype) if g is None else g
                    for g, v in zip(gradients, d_variables)
                ]
                return gradients, ops.mean(r1)

            def no_update():
                zeros = [ops.zeros(v.shape, v.dtype) for v in d_variables]
                return zeros, ops.cast(self.last_r1, "float32")

            gradients, r1_mean = ops.cond(due, r1_update, no_update)
            self.apply_update_if(due, gradients, self.d_optimizer, d_variables)
            # Assigned outside the branch: under MirroredStrategy, updating a variable is a
            # cross-replica merge, which TensorFlow refuses inside control flow.
            self.last_r1.assign(r1_mean)
            logs["r1"] = self.last_r1

        # 5. G's update (Gmain) through the updated D, on fresh latents (mixed inside G again).
        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(latent, training=True), training=True)
            g_loss = self.adversarial_loss.generator_loss(fake_logits)
            g_total = global_batch_mean(g_loss) + regularization_loss(self.generator)
        minimize(tape, g_total, self.g_optimizer, self.generator.trainable_variables)
        logs["g_loss"] = ops.mean(g_loss)

        # 6. The moving average of G, its decay ramped up (`current_ema_decay`); count the step.
        if self.generator_ema is not None:
            self.update_generator_ema()
        self.step.assign_add(1)
        return self.update_trackers(logs)

    def test_step(self, data):
        """Both losses on a held-out batch, with both networks in inference mode (G without
        style mixing, on its fixed noise maps), no R1, no update and no step counted: only the
        seed generator moves."""
        real = data[0] if isinstance(data, (tuple, list)) else data
        fake = self.generator(self.sample_latent(ops.shape(real)[0]), training=False)
        real_logits = self.discriminator(real, training=False)
        fake_logits = self.discriminator(fake, training=False)
        return self.update_trackers({
            "d_loss": ops.mean(self.adversarial_loss.discriminator_loss(real_logits, fake_logits)),
            "g_loss": ops.mean(self.adversarial_loss.generator_loss(fake_logits)),
            "d_real": losses.discriminator_probability(real_logits),
            "d_fake": losses.discriminator_probability(fake_logits),
        })

    # --- sampling: truncation and style mixing ---

    def w_from_latent(self, latent, truncation_psi=1.0, generator=None):
        """`w = f(z)`, truncated towards `w_avg`: `(n, w_dim)` (EMA generator by default)."""
        mapping = self.mapping_of(generator or self.sampling_generator)
        return mapping.truncate(mapping(latent, training=False), truncation_psi)

    def styles(self, latent, truncation_psi=1.0, generator=None):
        """Per-layer styles `(n, num_styles, w_dim)` for `latent`, truncated towards `w_avg`."""
        generator = generator or self.sampling_generator
        w = self.w_from_latent(latent, truncation_psi, generator)
        return generator.get_layer("broadcast_styles")(w)

    def render(self, styles, generator=None, random_noise=False):
        """Images for per-layer styles `(n, num_styles, w_dim)`, or for `w` `(n, w_dim)` (used
        by every layer); `random_noise=True` draws fresh noise maps instead of the fixed ones."""
        generator = generator or self.sampling_generator
        if len(styles.shape) == 2:
            styles = generator.get_layer("broadcast_styles")(styles)
        return self.synthesis_of(generator)(styles, training=random_noise)

    def _check_latent(self, latent):
        latent = np.asarray(latent, "float32")
        if latent.ndim != 2 or latent.shape[1] != self.latent_dim:
            raise ConfigError(
                f"latent vectors must have shape [n, {self.latent_dim}], got {list(latent.shape)}"
            )
        return latent

    def generate(
        self, n, *, seed=None, labels=None, truncation=None, batch_size=256, random_noise=False
    ):
        """Draw `n` images from the EMA generator.

        Args:
            n: number of images.
            seed: seed of the latent vectors.
            labels: not used by this unconditional model (a `ConfigError` if given).
            truncation: psi of `w' = w_avg + psi (w - w_avg)`; None or 1 is no truncation, 0
                the average image, 0.5-0.8 typical. Must be in `PSI_RANGE`.
            batch_size: images per forward pass.
            random_noise: fresh noise maps instead of the fixed ones.

        Returns:
            float32 NumPy array `[n, H, W, C]` in `[-1, 1]`.
        """
        refuse_generate_options(self, labels=labels)
        latent = self.latent_batch(n, self.latent_dim, seed)
        psi = 1.0 if truncation is None else truncation
        return self.generate_from_latent(
            latent, batch_size, truncation_psi=psi, random_noise=random_noise
        )

    def generate_from_latent(
        self, latent, batch_size=256, condition=None, truncation_psi=1.0, random_noise=False
    ):
        """The EMA generator's images for given latents, with truncation (float32 NumPy)."""
        psi = check_truncation(truncation_psi)
        latent = self._check_latent(latent)
        outputs = []
        for start in range(0, len(latent), batch_size):
            styles = self.styles(latent[start : start + batch_size], psi)
            outputs.append(ops.convert_to_numpy(self.render(styles, random_noise=random_noise)))
        return np.concatenate(outputs).astype("float32")

    def mix(self, latent_rows, latent_cols, crossover, truncation_psi=1.0):
        """A style-mixing grid: cell `(i, j)` takes styles `[0, crossover)` from
        `latent_rows[i]` and the rest from `latent_cols[j]`.

        With the default 32 px model (8 styles), `crossover=4` gives the rows the 4x4 and 8x8
        blocks (coarse: layout, shape) and the columns the 16x16 and 32x32 blocks (fine: colour,
        texture); `crossover=2` hands the columns the 8x8 block too.

        Args:
            latent_rows: `[rows, latent_dim]`.
            latent_cols: `[cols, latent_dim]`.
            crossover: int in `[0, num_styles]` (0: pure column images, `num_styles`: pure rows).
            truncation_psi: truncation of both sets of styles.

        Returns:
            float32 NumPy `[rows, cols, H, W, C]`.
        """
        psi = check_truncation(truncation_psi)
        if not 0 <= int(crossover) <= self.num_styles or int(crossover) != crossover:
            raise ConfigError(
                f"crossover must be a whole number between 0 and {self.num_styles}, got {crossover}"
            )
        rows, cols = self._check_latent(latent_rows), self._check_latent(latent_cols)
        grid = self._mix_graph(rows, cols, int(crossover), psi)
        return ops.convert_to_numpy(grid).astype("float32")

    def _mix_graph(self, latent_rows, latent_cols, crossover, truncation_psi):
        """The graph behind `mix` and the export's `mix` signature."""
        generator = self.sampling_generator
        row_styles = self.styles(latent_rows, truncation_psi, generator)  # (R, N, D)
        col_styles = self.styles(latent_cols, truncation_psi, generator)  # (C, N, D)
        rows, cols = ops.shape(row_styles)[0], ops.shape(col_styles)[0]
        grid = mix_styles(row_styles[:, None], col_styles[None, :], crossover)  # (R, C, N, D)
        flat = ops.reshape(grid, (rows * cols, self.num_styles, -1))
        images = ops.cast(self.render(flat, generator), "float32")
        return ops.reshape(images, (rows, cols, *images.shape[1:]))

    # --- serialization ---

    def get_config(self):
        config = super().get_config()
        config.update(
            r1_gamma=self.r1_gamma, r1_interval=self.r1_interval, w_avg_beta=self.w_avg_beta
        )
        return config
