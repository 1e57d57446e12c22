"""kerasgan: learn GANs and neural style transfer by building them for real in Keras 3."""

from kerasgan.utils import import_tensorflow_quietly

__version__ = "0.1.0"

# Import kerasgan before TensorFlow and its C++ start-up lines stay out of notebooks and terminals.
import_tensorflow_quietly()
