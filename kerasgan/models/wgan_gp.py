"""WGAN-GP: a critic that measures distance, kept honest by a gradient penalty.

Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, "Improved Training of Wasserstein GANs",
NeurIPS 2017, https://arxiv.org/abs/1704.00028, building on Arjovsky, Chintala and Bottou,
"Wasserstein GAN", ICML 2017, https://arxiv.org/abs/1701.07875.

**Why change the game.** The original discriminator estimates the Jensen-Shannon divergence
between the data and the generator's distribution. Early in training the two barely overlap,
the divergence is stuck at `log 2`, and a confident D hands G almost no gradient. The
Wasserstein-1 ("earth mover's") distance keeps shrinking smoothly as the fakes move towards the
data, even with disjoint supports. By the Kantorovich-Rubinstein duality

    W(P_r, P_g) = sup_{||C||_L <= 1}  E_{x ~ P_r}[C(x)] - E_{z}[C(G(z))],

so a *critic* C (a scorer, no sigmoid) trained to maximise that difference over 1-Lipschitz
functions estimates the distance, and G minimises it: `L_G = -E[C(G(z))]`
(`kerasgan.losses`, name `"wasserstein"`).

**Keeping C 1-Lipschitz.** WGAN clipped every weight to `[-c, c]`, which pushes the critic
towards very simple functions and makes its gradients explode or vanish depending on `c`. The
optimal critic has gradient norm 1 almost everywhere on the lines between real and generated
samples, so WGAN-GP penalises the deviation there instead:

    L_C = E[C(G(z))] - E[C(x)] + lambda * E[(||grad_x_hat C(x_hat)||_2 - 1)^2],
    x_hat = eps * x + (1 - eps) * G(z),   eps ~ U[0, 1] per example,

with `lambda = 10` (`kerasgan.losses.gradient_penalty`, computed in float32 under any precision
policy: a squared gradient norm of a bfloat16 network would lose its precision).

**The paper's recipe (Algorithm 1), as built here:**

* `n_critic = 5` critic updates per generator update: the distance estimate is only useful
  if the critic is close to optimal for the current G.
* Adam with `beta_1 = 0`, `beta_2 = 0.9` for both networks: momentum lags behind a critic
  whose target moves every step. (The learning rate here is twice the paper's `1e-4`; see
  the departures below.)
* **No batch normalisation in the critic.** The penalty is per example, but with batch norm
  each score depends on the whole batch, so the gradient with respect to one input is not that
  of a function of that input. The critic here is DCGAN's discriminator without
  normalization, like the paper's MNIST critic. Layer norm over each example's height, width
  and channels, which the paper recommends for deeper critics, is an option
  (`normalization="layer"`), but the penalty's double backward pass through it makes a step
  several times slower on a CPU (`benchmarks/README.md`). The generator keeps DCGAN's batch
  norm.

**Each critic update sees fresh real images,** as in Algorithm 1. `fit` hands `train_step` one
batch; this model cuts it into `n_critic` equal slices, one per critic update, so a batch of
`n_critic * m` images gives `n_critic` critic updates of `m` real images each (and the
generator update makes `m` fakes). An epoch is then one pass of the critic over the data, and
the batch size of a run (`--batch-size`) counts the real images of all five critic updates.
(keras-io's example reuses the whole batch for every critic update instead: cheaper in data,
but each image is shown five times in a row.) A batch that does not divide evenly is sliced
with wrap-around, so no slice is ever empty.

**What to watch.** `wasserstein = mean C(x) - mean C(G(z))` is the critic's estimate of the
distance: it rises while the critic learns, then falls as G catches up, and, unlike a GAN's
losses, it tracks sample quality. `gradient_norm` should hover near 1 and `gradient_penalty`
(unweighted) near 0; a penalty that grows means lambda is too weak for the critic's learning
rate.

Departures from the paper, and why: widths are DCGAN's narrow CPU-friendly ones, and training
is thousands of generator updates, not the paper's 200,000, so that digits appear on a 2-core
CPU within the course's budget (see `RECIPE`). In that short regime a learning rate of `2e-4`
(for both networks) reached better samples than the paper's `1e-4` after the same number of
generator updates, with the gradient norm as close to 1 (the comparison is in
`benchmarks/README.md`). Pass `g_optimizer`/`d_optimizer` to `compile` for the paper's
settings.
"""

import math

import keras
from keras import ops

from kerasgan import losses
from kerasgan.errors import ConfigError
from kerasgan.models import dcgan
from kerasgan.models.gan import GAN, preset_config
from kerasgan.recipes import Recipe

# Named configurations: "default" is what users train; "tiny" builds and trains a step in
# seconds, for tests and notebook smoke runs.
CONFIGS = {
    "default": {
        "latent_dim": 100,
        "generator_width": 128,
        "critic_width": 64,
        "normalization": None,
        "n_critic": 5,
        "gp_weight": 10.0,
    },
    "tiny": {
        "latent_dim": 8,
        "generator_width": 16,
        "critic_width": 8,
        "normalization": None,
        "n_critic": 2,
        "gp_weight": 10.0,
    },
}


# === Networks ===


def build_critic(image_size=28, channels=1, width=64, normalization=None, name="critic"):
    """The WGAN-GP critic: DCGAN's discriminator without batch norm, one unbounded score.

    Args:
        image_size: input height and width.
        channels: input channels.
        width: filters of the first convolution; doubled at every downsampling.
        normalization: None (the paper's MNIST critic) or `"layer"` (its recommendation for
            deeper critics). Batch norm is refused: it breaks the per-example gradient penalty.
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping images `[batch, H, W, C]` to scores `[batch, 1]`
        (float32; no sigmoid: the critic scores, it does not classify).
    """
    if normalization == "batch":
        raise ConfigError(
            "a WGAN-GP critic cannot use batch norm: the gradient penalty is per example, and "
            "batch norm makes every score depend on the whole batch; use 'layer' or None"
        )
    return dcgan.build_discriminator(image_size, channels, width, name, normalization)


# === The model ===


@keras.saving.register_keras_serializable(package="kerasgan")
class WGANGP(GAN):
    """A Wasserstein GAN with gradient penalty: `n_critic` critic updates per generator update.

    Args:
        generator: a model mapping latents `[batch, latent_dim]` to images in `[-1, 1]`.
        discriminator: the critic, a model mapping images to scores `[batch, 1]` (no batch
            norm; see `build_critic`).
        latent_dim: size of z; read from the generator when omitted.
        seed: seed of the model's random stream (latents and interpolation coefficients).
        n_critic: critic updates per generator update (the paper's 5). Each sees its own
            slice of the batch `fit` provides (see the module docstring).
        gp_weight: lambda, the weight of the gradient penalty (the paper's 10).
        ema_decay: optional moving average of G's weights to sample from (see `GAN`).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Reported metrics: `d_loss` (the critic's loss with its weighted penalty), `g_loss`,
    `wasserstein` (`mean C(x) - mean C(G(z))`), `critic_real`, `critic_fake`,
    `gradient_penalty` (unweighted, `mean (||grad|| - 1)^2`) and `gradient_norm`
    (`mean ||grad C(x_hat)||`), averaged over all critic updates of an epoch.

    Example:
        >>> gan = WGANGP.from_preset("default", image_size=28, channels=1, seed=0)
        >>> gan.compile()               # Wasserstein loss, Adam(2e-4, beta_1=0, beta_2=0.9)
        >>> gan.fit(kerasgan.datasets.training_pipeline(ds, 5 * 64), epochs=20)
    """

    tracked_metrics = (
        "d_loss", "g_loss", "wasserstein", "critic_real", "critic_fake",
        "gradient_penalty", "gradient_norm",
    )

    def __init__(
        self, generator, discriminator, latent_dim=None, seed=None, n_critic=5, gp_weight=10.0,
        ema_decay=None, **kwargs,
    ):
        if isinstance(n_critic, bool) or int(n_critic) != n_critic or n_critic < 1:
            raise ConfigError(f"n_critic must be a whole number >= 1, got {n_critic!r}")
        if not gp_weight >= 0:
            raise ConfigError(f"gp_weight must be >= 0, got {gp_weight!r}")
        super().__init__(
            generator, discriminator, latent_dim=latent_dim, seed=seed, ema_decay=ema_decay,
            **kwargs,
        )
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)

    @property
    def critic(self):
        """The critic (stored as `discriminator`, the name every GAN hook uses)."""
        return self.discriminator

    @classmethod
    def from_preset(cls, preset="default", image_size=28, channels=1, seed=None, **overrides):
        """Build a WGAN-GP from a named configuration in `CONFIGS` (with optional overrides).

        Args:
            preset: `"default"` or `"tiny"`.
            image_size: image height and width (4-7 pixels times a power of two).
            channels: image channels.
            seed: seed of the training-time random stream.
            **overrides: any key of the preset (`latent_dim`, `generator_width`,
                `critic_width`, `normalization`, `n_critic`, `gp_weight`).
        """
        config = preset_config(CONFIGS, preset, overrides, "WGAN-GP")
        generator = dcgan.build_generator(
            config["latent_dim"], image_size, channels, config["generator_width"]
        )
        critic = build_critic(
            image_size, channels, config["critic_width"], config["normalization"]
        )
        return cls(
            generator, critic, latent_dim=config["latent_dim"], seed=seed,
            n_critic=config["n_critic"], gp_weight=config["gp_weight"],
        )

    # === Training setup: the paper's optimizers and loss ===

    default_loss = "wasserstein"
    # Adam(lr 2e-4, beta_1 0, beta_2 0.9) for both networks: Gulrajani et al.'s betas, and
    # twice their learning rate, which trains faster in a CPU-sized budget (module docstring).
    default_adam_settings = ({"learning_rate": 2e-4, "beta_1": 0.0, "beta_2": 0.9},) * 2

    # === Hooks: the penalty and what to report ===

    def discriminator_penalty(self, real, fake, condition):
        """`lambda * (||grad C(x_hat)|| - 1)^2` per example, and its unweighted mean and the
        mean gradient norm for the logs (computed in float32 by `losses.gradient_penalty`)."""
        if self.gp_weight == 0.0:
            return None, {}
        penalties, norms = losses.gradient_penalty(
            lambda images: self.discriminate(images, condition, training=True),
            real,
            fake,
            seed=self.seed_generator,
            return_norms=True,
        )
        logs = {"gradient_penalty": ops.mean(penalties), "gradient_norm": ops.mean(norms)}
        return self.gp_weight * penalties, logs

    def score_logs(self, real_logits, fake_logits):
        """The critic's mean scores and their difference, the Wasserstein estimate."""
        real = ops.mean(ops.cast(real_logits, "float32"))
        fake = ops.mean(ops.cast(fake_logits, "float32"))
        return {"critic_real": real, "critic_fake": fake, "wasserstein": real - fake}

    # === The training step ===

    def critic_slice(self, data, step):
        """Slice `step` of `n_critic` equal slices of a batch tensor (wrapping around when the
        batch does not divide evenly, so no slice is empty)."""
        if self.n_critic == 1:
            return data
        batch = ops.shape(data)[0]
        if isinstance(batch, int):  # static batch size: keep static shapes
            size = math.ceil(batch / self.n_critic)
        else:
            size = ops.cast(ops.ceil(ops.cast(batch, "float32") / self.n_critic), "int32")
        indices = ops.mod(ops.arange(size) + step * size, batch)
        return ops.take(data, indices, axis=0)

    def train_step(self, data):
        real, condition = self.unpack_batch(data)
        for step in range(self.n_critic):  # unrolled: n_critic is a small constant
            real_slice = self.critic_slice(real, step)
            condition_slice = None if condition is None else self.critic_slice(condition, step)
            self.update_trackers(self.discriminator_step(real_slice, condition_slice))
        logs = self.generator_step(ops.shape(real_slice)[0], condition_slice)
        return self.update_trackers(logs)

    # === Serialization ===

    def get_config(self):
        config = super().get_config()
        config.update(n_critic=self.n_critic, gp_weight=self.gp_weight)
        return config


RECIPE = Recipe(
    name="wgan-gp",
    build=WGANGP.from_preset,
    description="WGAN-GP (Gulrajani et al., 2017) on MNIST digits",
    # 150 epochs of 31 steps (~4,600 generator updates): enough for most samples to be
    # recognisable digits within the course's CPU budget (timing: benchmarks/README.md).
    epochs=150,
    # Real images per step: 5 critic updates of 32 images each (see the module docstring).
    batch_size=160,
)
