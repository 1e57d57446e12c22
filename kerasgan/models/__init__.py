"""The course's GAN models; each module is one model family and reads like a lesson."""

from kerasgan.models.biggan import BigGAN
from kerasgan.models.conditional_gan import ConditionalGAN
from kerasgan.models.cyclegan import CycleGAN
from kerasgan.models.dcgan import DCGAN
from kerasgan.models.gan import GAN
from kerasgan.models.stylegan import StyleGAN
from kerasgan.models.wgan_gp import WGANGP

__all__ = ["GAN", "DCGAN"]
__all__ += ["StyleGAN"]
__all__ += ["BigGAN"]
__all__ += ["ConditionalGAN", "WGANGP"]
__all__ += ["CycleGAN"]
