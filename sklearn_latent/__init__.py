"""sklearn-latent: scikit-learn compatible latent space communication.

Relative representations, latent space translation and inverse relative
projection as fit/transform estimators on a torch backend.
"""

from .anchors import select_anchors
from .relative import RelativeProjector

__version__ = "0.1.0.dev0"

__all__ = ["RelativeProjector", "select_anchors", "__version__"]
