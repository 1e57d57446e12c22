"""kerasgan: learn GANs and neural style transfer by building them for real in Keras 3."""

__version__ = "0.1.0"
