"""Relative latent space aggregation (Crisostomi et al., 2023)."""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import functional as F
from ._backend import (
    apply_batched,
    atomic_fit,
    check_batch_size,
    check_input,
    check_params_unchanged,
    check_option,
    finite_result,
    remember_params,
    resolve_device,
    torch_dtype,
)
from .anchors import resolve_anchors
from .relative import (
    _CENTERED_METRICS,
    NORMALIZATIONS,
    RelativeProjector,
    _check_centered_anchors,
)

__all__ = ["RelativeAggregator"]

AGGREGATIONS = ("mean", "concat", "sum")


class RelativeAggregator(TransformerMixin, BaseEstimator):
    """Aggregate the relative representations of several spaces of the same samples.

    ``X`` is the horizontal stack ``[X_1, ..., X_m]`` of m embeddings of the
    same samples (e.g. m encoders of the same images); ``widths`` gives their
    column counts.  Every space is projected with
    :class:`~sklearn_latent.RelativeProjector` against *parallel* anchors (the
    same samples in every space) and the m relative representations, which
    share one coordinate system (one column per anchor), are combined:

    ``r(x) = (1/m) sum_s RR(x_s; A_s)`` (``aggregation="mean"``, the paper's
    choice, k columns) or ``[RR(x_1; A_1), ..., RR(x_m; A_m)]``
    (``"concat"``, k m columns, for comparison).

    Parameters
    ----------
    widths : tuple of int or None, default=None
        Column count of each space, in order; they must sum to the width of X.
        ``None``: X is a single space (the estimator is then a
        RelativeProjector).
    n_anchors : int, float in (0, 1] or None, default=300
        Number of anchors (or fraction of the training rows; ``None`` = all rows).
        An int above the number of rows uses every row, with a warning
        (see :doc:`/relative`).
    anchors : str, array-like, Tensor or callable, default="random"
        As in :class:`~sklearn_latent.RelativeProjector`; a strategy runs on
        the stacked X, so the chosen rows (the anchors' samples) are the same
        in every space.  A 2-D array gives stacked anchor vectors
        ``(k, sum(widths))``.
    metric : str, default="cosine"
        Metric of every projection (see :class:`~sklearn_latent.RelativeProjector`).
    center : bool, default=True
        Subtract each space's anchor mean first.
    normalize : {None, "l2", "standard", "layer"}, default=None
        Normalization of each space's relative representation before aggregation.
    aggregation : {"mean", "concat", "sum"}, default="mean"
    device : None, "auto", str or torch.device, default=None
    batch_size : int, "auto" or None, default=None
        Rows per chunk in ``transform`` (see :doc:`/arrays`).
    random_state : int, RandomState instance or None, default=None
        Seed of the anchor strategy.

    Attributes
    ----------
    projectors_ : list of RelativeProjector
        One fitted projector per space, all with the same anchor samples.
    anchor_indices_ : ndarray of shape (n_anchors,) or None
        Rows of the training X used as anchors.
    widths_ : tuple of int
        Resolved column count of each space.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.

    See Also
    --------
    RelativeProjector : One space.
    ProductInvarianceProjector : One space, several metrics, same aggregations.

    References
    ----------
    .. [1] D. Crisostomi, I. Cannistraci, L. Moschella, P. Barbiero, M. Ciccone,
       P. Liò and E. Rodolà, "From charts to atlas: merging latent spaces into
       one", NeurReps workshop, NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import RelativeAggregator
    >>> X = np.random.default_rng(0).normal(size=(200, 8))
    >>> X2 = 2.0 * X @ ortho_group.rvs(8, random_state=0)   # a second model of the same data
    >>> agg = RelativeAggregator(widths=(8, 8), n_anchors=16, random_state=0)
    >>> R = agg.fit_transform(np.hstack([X, X2]))
    >>> R.shape
    (200, 16)
    >>> single = agg.projectors_[0].transform(X)            # isometric spaces: the mean is each
    >>> bool(np.allclose(R, single))
    True
    """

    def __init__(
        self,
        widths=None,
        n_anchors=300,
        *,
        anchors="random",
        metric="cosine",
        center=True,
        normalize=None,
        aggregation="mean",
        device=None,
        batch_size=None,
        random_state=None,
    ):
        self.widths = widths
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.metric = metric
        self.center = center
        self.normalize = normalize
        self.aggregation = aggregation
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    def _check_widths(self, n_features):
        if self.widths is None:
            return (n_features,)
        if isinstance(self.widths, (str, bytes)) or not isinstance(
            self.widths, (tuple, list, np.ndarray)
        ):
            raise TypeError(f"widths must be a tuple of ints or None, got {self.widths!r}.")
        widths = tuple(self.widths)
        if len(widths) == 0 or any(
            isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in widths
        ):
            raise ValueError(f"widths={self.widths!r} must be a non-empty tuple of positive ints.")
        if sum(widths) != n_features:
            raise ValueError(
                f"widths={widths!r} sum to {sum(widths)}, but X has {n_features} features "
                "(the spaces stacked side by side)."
            )
        return tuple(int(w) for w in widths)

    def _blocks(self):
        edges = np.concatenate([[0], np.cumsum(self.widths_)])
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    @atomic_fit
    def fit(self, X, y=None):
        """Pick the shared anchors and fit one projector per space.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, sum(widths))
            The spaces stacked side by side.
        y : array-like of shape (n_samples,), optional
            Class labels, used only by ``anchors="stratified"``.

        Returns
        -------
        self : RelativeAggregator
        """
        check_option(self.aggregation, "aggregation", AGGREGATIONS)
        check_option(self.normalize, "normalize", NORMALIZATIONS)
        check_batch_size(self.batch_size)
        X = check_input(self, X, reset=True)
        self.widths_ = self._check_widths(X.shape[1])
        device = resolve_device(self.device, X)
        vectors, idx = resolve_anchors(self, X, self.n_anchors, self.anchors, y=y,
                                       random_state=self.random_state, device=device)
        if self.center and self.metric in _CENTERED_METRICS:  # named after this estimator
            A = torch.from_numpy(vectors).to(torch.float64)
            mean = A.mean(dim=0)
            _check_centered_anchors(A - mean, mean, self, X.shape[0])
        projectors = []
        for block in self._blocks():
            proj = RelativeProjector(
                anchors=np.ascontiguousarray(vectors[:, block]), metric=self.metric,
                center=self.center, normalize=self.normalize, device=self.device,
            )
            projectors.append(proj.fit(X[:, block]))
        self.projectors_ = projectors
        self.anchor_indices_ = idx
        remember_params(self, ("widths", "metric", "center", "normalize", "aggregation"))
        return self

    def transform(self, X, *, out=None):
        """Aggregated relative representation of the stacked spaces.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, sum(widths))
        out : ndarray or Tensor, optional
            Where to write the result (e.g. a ``np.memmap``), see :doc:`/arrays`.

        Returns
        -------
        R : ndarray or Tensor of shape (n_samples, n_anchors) or (n_samples, n_anchors * m)
            ``n_anchors * m`` columns for ``aggregation="concat"``; ``out`` when given.
        """
        check_is_fitted(self)
        check_params_unchanged(self)
        check_batch_size(self.batch_size)
        X = check_input(self, X, reset=False)
        device = resolve_device(self.device, X)
        dtype = torch_dtype(X)
        parts = [
            (block, proj._projector(device, dtype, proj.normalize))
            for block, proj in zip(self._blocks(), self.projectors_)
        ]

        def project(Xc):
            return F.aggregate_components((fn(Xc[:, block]) for block, fn in parts),
                                          self.aggregation)

        with torch.no_grad():
            return apply_batched(finite_result(project), X, device=device,
                                 n_outputs=self._n_out(), batch_size=self.batch_size, out=out)

    def _n_out(self):
        k = self.projectors_[0].anchors_.shape[0]
        return k * len(self.projectors_) if self.aggregation == "concat" else k

    def get_feature_names_out(self, input_features=None):
        """``"<aggregation>_a<j>"``, or ``"s<i>_a<j>"`` for space i with ``"concat"``."""
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        k = self.projectors_[0].anchors_.shape[0]
        if self.aggregation == "concat":
            names = [f"s{i}_a{j}" for i in range(len(self.projectors_)) for j in range(k)]
        else:
            names = [f"{self.aggregation}_a{j}" for j in range(k)]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
