"""Similarity of latent spaces and retrieval quality of translations.

Two families of metrics:

*Representational similarity* of two spaces ``X`` (n, d_x) and ``Y`` (n, d_y)
embedding the same n samples (rows paired, widths free): similarities
:func:`linear_cka`, :func:`rbf_cka` (centered kernel alignment, Kornblith et
al. 2019; biased or unbiased HSIC), :func:`cknna`, :func:`mutual_knn_alignment`
and :func:`knn_jaccard` (agreement of nearest-neighbour graphs, Huh et al.
2024), :func:`svcca`, :func:`pwcca`; distances :func:`shape_distance`
(Williams et al. 2021) and :func:`procrustes_distance` (Ding et al. 2021);
without correspondences, :func:`laplacian_eigenvalue_distance` (Sogaard et
al. 2018); :func:`functional_map_similarity` (Fumero et al. 2024; rows paired,
or a few known pairs).  :func:`calibrate` scores any of them against a permutation null,
:func:`similarity_matrix` evaluates them over many spaces
(``MEASURES`` lists them by name).

*Translation quality*: translated points ``Y_pred`` against their true targets
``Y_true`` (same shape): :func:`paired_cosine_similarity`,
:func:`top_k_accuracy`, :func:`mean_reciprocal_rank`, :func:`mean_rank` and
:func:`foscttm`,
and scikit-learn scorers built on them (:func:`get_scorer`,
:func:`make_stitching_scorer`) for ``GridSearchCV`` on paired data.

Every function accepts numpy arrays, array-likes and torch tensors on any
device (validated like the estimators' input: 2-D, finite, numeric),
computes where the first tensor argument lives (numpy: CPU), never forms an
``n x n`` matrix at once, and returns a Python float.
"""

from ._calibration import MEASURES, CalibratedScore, calibrate
from ._common import KNN_METRICS  # noqa: F401
from ._functional_maps import functional_map_similarity
from ._matrix import plot_similarity_matrix, similarity_matrix
from ._retrieval import (
    foscttm,
    mean_rank,
    mean_reciprocal_rank,
    paired_cosine_similarity,
    top_k_accuracy,
)
from ._retention import RetentionReport, retention_report, search_top_k
from ._scorers import get_scorer, get_scorer_names, make_stitching_scorer
from ._shape import procrustes_distance, pwcca, shape_distance, svcca
from ._similarity import cknna, knn_jaccard, linear_cka, mutual_knn_alignment, rbf_cka
from ._spectral import laplacian_eigenvalue_distance

__all__ = [
    "MEASURES",
    "CalibratedScore",
    "calibrate",
    "foscttm",
    "get_scorer",
    "cknna",
    "functional_map_similarity",
    "get_scorer_names",
    "knn_jaccard",
    "laplacian_eigenvalue_distance",
    "linear_cka",
    "make_stitching_scorer",
    "mean_rank",
    "mean_reciprocal_rank",
    "mutual_knn_alignment",
    "paired_cosine_similarity",
    "plot_similarity_matrix",
    "procrustes_distance",
    "pwcca",
    "rbf_cka",
    "shape_distance",
    "similarity_matrix",
    "svcca",
    "RetentionReport",
    "retention_report",
    "search_top_k",
    "top_k_accuracy",
]
