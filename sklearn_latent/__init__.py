"""sklearn-latent: scikit-learn compatible latent space communication.

Relative representations, latent space translation and inverse relative
projection as fit/transform estimators on a torch backend.
"""

from .anchors import select_anchors
from .inverse import InverseRelativeProjector, RelativeTranslator
from .product import ProductInvarianceProjector
from .relative import RelativeProjector

__version__ = "0.1.0.dev0"

__all__ = [
    "InverseRelativeProjector",
    "ProductInvarianceProjector",
    "RelativeProjector",
    "RelativeTranslator",
    "select_anchors",
    "__version__",
]
