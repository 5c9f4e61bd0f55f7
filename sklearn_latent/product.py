"""Product of invariances (Cannistraci et al., ICLR 2024)."""

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import functional as F
from ._backend import (
    apply_batched,
    atomic_fit,
    check_batch_size,
    check_option,
    finite_result,
    remember_params,
    fitted_tensor,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .relative import (
    _CENTERED_METRICS,
    NORMALIZATIONS,
    _AnchoredTransformerMixin,
    _check_centered_anchors,
    _column_stats,
)

__all__ = ["ProductInvarianceProjector"]


def _check_metrics(metrics):
    """A non-empty tuple of distinct names from ``functional.PRODUCT_METRICS``."""
    if isinstance(metrics, str) or not isinstance(metrics, (tuple, list)):
        raise TypeError(
            "metrics must be a tuple of metric names such as ('cosine', 'euclidean'); "
            f"got {metrics!r}."
        )
    if len(metrics) == 0:
        raise ValueError("metrics=() is empty; give at least one metric.")
    for m in metrics:
        if not isinstance(m, str) or m not in F.PRODUCT_METRICS:
            raise ValueError(
                f"metrics={tuple(metrics)!r} contains {m!r}, which is not supported; "
                f"expected names from {F.PRODUCT_METRICS}."
            )
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics={tuple(metrics)!r} repeats a metric.")
    return tuple(metrics)


class ProductInvarianceProjector(_AnchoredTransformerMixin, TransformerMixin, BaseEstimator):
    """Product of invariances: several relative projections against one anchor set.

    Each component is the relative representation of
    :class:`~sklearn_latent.RelativeProjector` with one metric, computed
    against the same anchors; every component is normalized, then they are
    aggregated:

    ``r(x) = phi(N(RR(x; A, d_1)), ..., N(RR(x; A, d_m)))``.

    A component is invariant to the transformations its metric ignores
    (cosine: orthogonal maps and isotropic scaling; euclidean: orthogonal maps;
    L1 and L-inf: coordinate permutations and sign flips; all of them to
    translations when ``center=True``), so the concatenated product is
    invariant to exactly the intersection of its components' invariances.
    Which invariances suit a pair of models is an empirical question: the
    metrics are a tuple so that ``GridSearchCV`` can search over them.

    Parameters
    ----------
    n_anchors : int, float in (0, 1] or None, default=300
        Number of anchors (or fraction of the training rows; ``None`` = all
        rows).  Ignored when ``anchors`` is an explicit array.
        An int above the number of rows uses every row, with a warning
        (see :doc:`/relative`).
    anchors : str, array-like, Tensor or callable, default="random"
        As in :class:`~sklearn_latent.RelativeProjector`: a strategy of
        :func:`~sklearn_latent.select_anchors`, 1-D row indices (parallel
        anchors), 2-D anchor vectors or a callable
        ``(X, n_anchors, random_state) -> indices``.
    metrics : tuple of str, default=("cosine", "euclidean", "l1", "linf")
        One component per metric, among ``"cosine"``, ``"angular"``, ``"dot"``,
        ``"euclidean"``, ``"l1"``, ``"linf"``; distinct.
    aggregation : {"concat", "sum", "mean"}, default="concat"
        ``"concat"``: the components side by side (``n_anchors * len(metrics)``
        features, metric-major); ``"sum"`` / ``"mean"``: elementwise over the
        components (``n_anchors`` features).
    normalize : {"l2", "standard", "layer"} or None, default="l2"
        Per-component normalization before aggregation: ``"l2"`` per row (each
        component of a sample has unit norm), ``"standard"`` per feature with
        mean and std fitted on the training projections, ``"layer"`` per row
        mean/std (LayerNorm without affine, as the authors use), ``None`` none.
        Note that each of them except ``None`` also removes a global scale of
        the distance components, i.e. makes the euclidean, L1 and L-inf
        components invariant to isotropic scaling of the space.  The default
        was chosen on real pretrained encoders (docs/real_suite.md): mean
        stitched accuracy over 24 text encoder pairs 0.685 with ``"l2"``,
        0.654 ``"standard"``, 0.646 ``"layer"``, 0.624 ``None``; per-feature
        standardization amplifies low-variance anchor directions where two
        encoders disagree.  ``"standard"`` (the default before) stays an
        option: on the small digits MLPs of the test suite it stitches 2
        points better (0.976 vs 0.954).
    center : bool, default=True
        Subtract the anchor mean first (makes cosine translation invariant;
        distances are unaffected).
    device : None, "auto", str or torch.device, default=None
        Where to compute (``None``: where the input lives).
    batch_size : int, "auto" or None, default=None
        Rows per chunk in ``transform``; ``"auto"`` sizes chunks from
        scikit-learn's ``working_memory``.  Never changes the result (see
        :doc:`/arrays`).
    random_state : int, RandomState instance or None, default=None
        Seed of the anchor strategy.

    Attributes
    ----------
    anchors_ : ndarray of shape (n_anchors, n_features_in)
        Anchor vectors shared by all components.
    anchor_indices_ : ndarray of shape (n_anchors,) or None
        Rows of the training X used as anchors; ``None`` for explicit vectors.
    anchor_mean_ : ndarray of shape (n_features_in,) or None
        Mean of the anchors, subtracted when ``center=True``.
    metrics_ : tuple of str
        The validated metrics, in output order.
    output_mean_, output_scale_ : ndarray of shape (len(metrics), n_anchors) or None
        Per-component statistics of ``normalize="standard"``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.

    See Also
    --------
    RelativeProjector : One component.

    References
    ----------
    .. [1] I. Cannistraci, L. Moschella, M. Fumero, V. Maiorca and E. Rodolà,
       "From Bricks to Bridges: Product of Invariances to Enhance Latent
       Space Communication", ICLR 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import ProductInvarianceProjector
    >>> X = np.random.default_rng(0).normal(size=(200, 8))
    >>> proj = ProductInvarianceProjector(10, metrics=("cosine", "l1"), random_state=0)
    >>> proj.fit_transform(X).shape
    (200, 20)
    >>> proj.get_feature_names_out()[[0, 10]].tolist()
    ['cosine_a0', 'l1_a0']
    >>> proj.set_params(aggregation="sum").fit_transform(X).shape
    (200, 10)
    """

    def __init__(
        self,
        n_anchors=300,
        *,
        anchors="random",
        metrics=("cosine", "euclidean", "l1", "linf"),
        aggregation="concat",
        normalize="l2",
        center=True,
        device=None,
        batch_size=None,
        random_state=None,
    ):
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.metrics = metrics
        self.aggregation = aggregation
        self.normalize = normalize
        self.center = center
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    _TRANSFORM_PARAMS = ("metrics", "aggregation", "normalize", "center")

    def _check_params(self):
        metrics = _check_metrics(self.metrics)
        check_option(self.aggregation, "aggregation", F.AGGREGATIONS)
        check_option(self.normalize, "normalize", NORMALIZATIONS)
        if not isinstance(self.center, (bool, np.bool_)):
            raise TypeError(f"center must be a bool, got {self.center!r}.")
        check_batch_size(self.batch_size)
        return metrics

    def _projector(self, device, dtype, normalize, aggregation):
        anchors = fitted_tensor(self, "anchors_", device, dtype)
        center = self._center_tensor(device)
        means = scales = None
        if normalize == "standard":
            means = fitted_tensor(self, "output_mean_", device, dtype)
            scales = fitted_tensor(self, "output_scale_", device, dtype)
        return F._product_projector(
            anchors, self.metrics_, center=center, normalize=normalize,
            means=means, scales=scales, aggregation=aggregation,
        )

    def _n_outputs(self, aggregation):
        k = self.anchors_.shape[0]
        return k * len(self.metrics_) if aggregation == "concat" else k

    @atomic_fit
    def fit(self, X, y=None):
        """Pick the anchors in X and fit the per-component normalization.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), optional
            Class labels, used only by ``anchors="stratified"``.

        Returns
        -------
        self : ProductInvarianceProjector
        """
        metrics = self._check_params()
        X, anchors, idx, device = self._fit_anchors(X, y)
        self.anchors_ = anchors
        self.anchor_indices_ = idx
        self.metrics_ = metrics
        mean = torch.from_numpy(anchors).to(torch.float64).mean(dim=0)
        centered_metrics = [m for m in metrics if m in _CENTERED_METRICS]
        if self.center and centered_metrics:
            A = torch.from_numpy(anchors).to(torch.float64)
            _check_centered_anchors(A - mean, mean, self, X.shape[0], centered_metrics[0])
        remember_params(self, self._TRANSFORM_PARAMS)
        self.anchor_mean_ = to_numpy(mean).astype(anchors.dtype) if self.center else None
        self.output_mean_ = self.output_scale_ = None
        if self.normalize == "standard":
            raw = to_tensor(self._apply(X, device, None, "concat"), torch.device("cpu"))
            mu, sd = _column_stats(raw, anchors.dtype)
            shape = (len(metrics), anchors.shape[0])
            self.output_mean_, self.output_scale_ = mu.reshape(shape), sd.reshape(shape)
        return self

    def _apply(self, X, device, normalize, aggregation, out=None):
        with torch.no_grad():
            return apply_batched(
                finite_result(self._projector(device, torch_dtype(X), normalize, aggregation)),
                X,
                device=device,
                n_outputs=self._n_outputs(aggregation), batch_size=self.batch_size, out=out,
            )

    def transform(self, X, *, out=None):
        """Aggregated, normalized relative representations of X.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        out : ndarray or Tensor of shape (n_samples, n_outputs), optional
            Where to write the result (e.g. a ``np.memmap``): a writeable
            C-contiguous array of the output dtype for numpy input, a
            contiguous tensor on X's device for tensor input.  See :doc:`/arrays`.

        Returns
        -------
        R : ndarray or Tensor of shape (n_samples, n_outputs)
            ``n_outputs = n_anchors * len(metrics)`` for ``aggregation="concat"``
            (metric-major: all anchors of the first metric first), else
            ``n_anchors``.  Same kind as X (a tensor stays on its device);
            ``out`` when given.
        """
        X, device = self._check_transform_input(X)
        return self._apply(X, device, self.normalize, self.aggregation, out)

    def get_feature_names_out(self, input_features=None):
        """Output names: ``"<metric>_a<j>"`` (concat) or ``"<aggregation>_a<j>"``.

        Parameters
        ----------
        input_features : array-like of str or None
            Only validated against the fitted input features; the output names
            describe metrics and anchors, not input columns.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        k = self.anchors_.shape[0]
        prefixes = self.metrics_ if self.aggregation == "concat" else (self.aggregation,)
        return np.asarray([f"{m}_a{j}" for m in prefixes for j in range(k)], dtype=object)
