"""Differentiable augmentation: show D transformed images, real and fake alike.

Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020, https://arxiv.org/abs/2006.10738.

With few training images, D memorises them: its scores of held-out reals drift towards "fake",
and G, which learns only through D, stops improving. Augmenting only the reals would teach G to
draw the augmentations (shifted, cut-out digits). DiffAugment applies the same *family* of random
transformations `T` to every image D sees, real or fake, in D's update and in G's:

    L_D = E[l_D(D(T(x)), D(T(G(z))))],      L_G = E[l_G(D(T(G(z))))],

so D never sees an untransformed image and G is not pushed towards `T`'s outputs. `T` must be
differentiable, because G's gradient flows through it. Every transformation here is one of
Keras's own random image layers (each draws its parameters per image), whose TensorFlow ops all
have gradients with respect to their input.
"""

import keras
import tensorflow as tf

from kerasgan.errors import ConfigError

# The paper's three transformations, in the paper's order, and their strengths.
POLICIES = ("color", "translation", "cutout")
# Translation: up to 1/8 of the image's side, the gap filled with the background (-1, black).
TRANSLATION_FRACTION = 0.125
# Cutout: a rectangle of a quarter of the image's area (the paper's half-side square), filled
# with 0, the middle of [-1, 1].
CUTOUT_AREA = 0.25


def parse_policy(policy):
    """`"translation,cutout"` -> `("translation", "cutout")`, checked against `POLICIES`.

    Raises:
        ConfigError: an unknown or repeated transformation, or an empty policy.
    """
    names = tuple(name.strip() for name in str(policy).split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if not names or unknown or len(set(names)) != len(names):
        raise ConfigError(
            f"augmentation policy must be a comma-separated subset of {', '.join(POLICIES)}, "
            f"got {policy!r}"
        )
    return names


@keras.saving.register_keras_serializable(package="kerasgan")
class DiffAugment(keras.layers.Layer):
    """A random, differentiable transformation of images in `[-1, 1]`, per image.

    Args:
        policy: comma-separated transformations from `POLICIES`, applied in that order:
            `"color"` (brightness by up to +-0.25 of the range, then contrast in [0.5, 1.5]),
            `"translation"` (up to 1/8 of the side, each axis) and `"cutout"` (a rectangle of a
            quarter of the area set to 0).
        seed: seed of the transformations' random draws.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: `[batch, height, width, channels]` in `[-1, 1]`.
        training: transform only when true (a model's step passes it; D itself is not given
            this layer, so inference and exports never see it).
    """

    def __init__(self, policy="translation,cutout", seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.policy = ",".join(parse_policy(policy))
        self.seed = seed
        value_range = (-1.0, 1.0)

        def options(index):
            # Each transform its own seed. Float32 under any policy: image transforms have no
            # bfloat16 or float16 gradients, and D casts what it is given to its compute type.
            return {"seed": None if seed is None else seed * 10 + index, "dtype": "float32"}

        transforms = []
        for name in self.policy.split(","):
            if name == "color":
                transforms += [
                    keras.layers.RandomBrightness(
                        0.25, value_range=value_range, **options(len(transforms))
                    ),
                    keras.layers.RandomContrast(
                        0.5, value_range=value_range, **options(len(transforms) + 1)
                    ),
                ]
            elif name == "translation":
                # Nearest neighbour: a whole-pixel shift, no blur of the strokes.
                transforms.append(keras.layers.RandomTranslation(
                    TRANSLATION_FRACTION, TRANSLATION_FRACTION, fill_mode="constant",
                    fill_value=value_range[0], interpolation="nearest", **options(len(transforms)),
                ))
            else:
                # factor (1, 1): every image gets its cutout (Keras's default erases a random
                # share of the batch).
                transforms.append(keras.layers.RandomErasing(
                    factor=(1.0, 1.0), scale=(CUTOUT_AREA, CUTOUT_AREA), fill_value=0.0,
                    value_range=value_range, **options(len(transforms)),
                ))
        self.transforms = transforms

    def build(self, input_shape):
        for transform in self.transforms:
            transform.build(input_shape)

    def call(self, images, training=True):
        if not training:
            return images
        # A tensor, never a variable: Keras's brightness layer adds to its input with `+=`.
        images = tf.identity(keras.ops.cast(images, "float32"))
        for transform in self.transforms:
            images = transform(images, training=True)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(policy=self.policy, seed=self.seed)
        return config
