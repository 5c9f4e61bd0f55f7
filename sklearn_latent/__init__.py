"""sklearn-latent: scikit-learn compatible latent space communication.

Relative representations, latent space translation and inverse relative
projection as fit/transform estimators on a torch backend.
"""

from .aggregate import RelativeAggregator
from .anchors import select_anchors
from .asif import ASIFClassifier
from .fmaps import FunctionalMapTranslator
from .functional import TranslationStats
from .inverse import InverseRelativeProjector, RelativeTranslator
from .matching import AlignmentWarning, AnchorMatcher, discover_anchors
from .persist import load, save
from .product import ProductInvarianceProjector
from .relative import RelativeProjector
from .self_learning import SelfLearningTranslator
from .stitching import plot_stitching_matrix, stitch, stitching_matrix
from .translate import ProcrustesTranslator, merge_translation_stats, translation_stats

from . import nn  # noqa: E402  (submodule sklearn_latent.nn; its names stay out of __all__)

__version__ = "0.1.0.dev0"

__all__ = [
    "ASIFClassifier",
    "AlignmentWarning",
    "AnchorMatcher",
    "FunctionalMapTranslator",
    "InverseRelativeProjector",
    "ProcrustesTranslator",
    "ProductInvarianceProjector",
    "RelativeAggregator",
    "RelativeProjector",
    "RelativeTranslator",
    "SelfLearningTranslator",
    "TranslationStats",
    "discover_anchors",
    "load",
    "merge_translation_stats",
    "plot_stitching_matrix",
    "save",
    "select_anchors",
    "stitch",
    "stitching_matrix",
    "translation_stats",
    "__version__",
]
