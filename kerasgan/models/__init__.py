"""The course's GAN models; each module is one model family and reads like a lesson."""

from kerasgan.models.dcgan import DCGAN
from kerasgan.models.gan import GAN

__all__ = ["GAN", "DCGAN"]
