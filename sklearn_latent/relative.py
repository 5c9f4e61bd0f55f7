"""Relative representations (Moschella et al., ICLR 2023)."""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_scalar
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import functional as F
from ._backend import (
    apply_batched,
    atomic_fit,
    check_batch_size,
    check_input,
    check_option,
    check_params_unchanged,
    finite_result,
    fitted_tensor,
    remember_params,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .anchors import resolve_anchors

__all__ = ["RelativeProjector"]

NORMALIZATIONS = (None, "l2", "standard", "layer")


def _column_stats(R, dtype):
    """Per-column mean and std (float64 accumulation); near-zero std becomes 1.

    Columns are divided by a power of two near their largest |entry| first
    (exact), so the variance neither overflows nor underflows, and "near zero"
    is relative to the column's magnitude: distances of data at 1e-30 scale
    are standardized like those of data at scale 1.
    """
    R = R.to(torch.float64)
    scale = F._pow2(R.abs().amax(dim=0))
    R = R / scale
    std = R.std(dim=0, correction=0)
    tiny = 1e3 * torch.finfo(torch.float64).eps * R.abs().amax(dim=0)
    std = torch.where(std <= tiny, 1.0, std * scale)
    mean = R.mean(dim=0) * scale
    return to_numpy(mean).astype(dtype), to_numpy(std).astype(dtype)


class _AnchoredTransformerMixin:
    """Shared plumbing of the estimators that describe X against fitted anchors."""

    def _fit_anchors(self, X, y):
        """Validate X and pick anchors; returns (X, anchors, indices, device)."""
        X = check_input(self, X, reset=True)
        device = resolve_device(self.device, X)
        anchors, idx = resolve_anchors(
            self, X, self.n_anchors, self.anchors, y=y,
            random_state=self.random_state, device=device,
        )
        return X, anchors, idx, device

    #: Parameters read by ``transform`` whose change after ``fit`` makes the
    #: fitted state stale (``_backend.remember_params``).
    _TRANSFORM_PARAMS = ()

    def _check_transform_input(self, X):
        check_is_fitted(self)
        check_params_unchanged(self)
        check_batch_size(self.batch_size)
        X = check_input(self, X, reset=False)
        return X, resolve_device(self.device, X)

    def _center_tensor(self, device):
        """The anchor mean in float64 on ``device`` (``None`` without centering).

        The kernels center float32 data on it as accurately as float64 data
        (``functional._split_center``); ``anchor_mean_`` is its value rounded
        to the training dtype.
        """
        if not self.center:
            return None
        return fitted_tensor(self, "anchors_", device, torch.float64).mean(dim=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


#: Metrics that centering changes (the distances are translation invariant).
_CENTERED_METRICS = ("cosine", "angular", "dot")


def _check_centered_anchors(centered, mean, est, n_samples, metric=None):
    """Refuse anchors that are all the zero vector once centered (every output would be 0).

    That is the case of a single anchor, and of anchors that are all equal,
    e.g. float32 data whose spread is below the float32 resolution of its
    offset (``1e6 + 1e-3 * noise`` is one float32 value): no precision is left
    to describe anything against.
    """
    k = centered.shape[0]
    metric = est.metric if metric is None else metric
    if k < 2:
        given = (
            f"n_anchors={est.n_anchors} gives {k} anchor from n_samples={n_samples}"
            if isinstance(est.anchors, str) or callable(est.anchors)
            else "anchors gives 1 anchor"
        )
        raise ValueError(
            f"{given}; metric={metric!r} with center=True needs at least 2 anchors (a single "
            "centered anchor is the zero vector, every similarity would be 0). Use more "
            "anchors or center=False."
        )
    # ``centered`` is float64 anchors minus their float64 mean: equal anchors leave
    # only the rounding of that mean
    noise = F._NOISE_ULPS * torch.finfo(centered.dtype).eps * float(F._max_abs(centered + mean))
    if F._max_abs(centered) <= noise:
        raise ValueError(
            f"the {k} anchors are all equal (in the input's precision), so with "
            f"center=True every anchor is the zero vector and every {metric} similarity "
            "would be 0. Check the data (float32 cannot resolve a spread below about 1e-7 "
            "of the offset: keep such data in float64), or use center=False."
        )


class RelativeProjector(_AnchoredTransformerMixin, TransformerMixin, BaseEstimator):
    """Relative representation: each sample described by its similarity to anchors.

    ``r(x) = [sim(x, a_1), ..., sim(x, a_k)]``.  Spaces produced by different
    models of the same data are, up to the invariances of ``sim``, the same in
    relative coordinates when their anchors are the same samples (*parallel
    anchors*), so a classifier trained on one model's relative space works on
    another's (zero-shot stitching).

    Parameters
    ----------
    n_anchors : int, float in (0, 1] or None, default=300
        Number of anchors (or fraction of the training rows; ``None`` = all
        rows).  Ignored when ``anchors`` is an explicit array.  An int above
        the number of rows uses every row, with a warning (the choice depends
        only on the number of rows and ``random_state``, so another space of
        the same samples gets the same, parallel, anchors); explicit indices
        are used as given, never truncated.
    anchors : str, array-like, Tensor or callable, default="random"
        How anchors are chosen: a strategy of :func:`select_anchors`
        (``"random"``, ``"fps"``, ``"kmeans"``, ``"stratified"``, the latter
        needs ``y``), a 1-D integer array of row indices into the training X
        (parallel anchors: ``anchors=other.anchor_indices_``), a 2-D array of
        anchor vectors, or a callable ``(X, n_anchors, random_state) -> indices``.
    metric : {"cosine", "angular", "dot", "euclidean", "l1", "linf", "lp"}, default="cosine"
        Similarity (``cosine``, ``dot``) or distance (the rest); see
        :mod:`sklearn_latent.functional`.
    center : bool, default=True
        Subtract the anchor mean from samples and anchors first.  Makes cosine
        translation invariant, which matters for non-negative (ReLU) latents
        whose raw cosines are all close to 1.  ``center=False`` is the exact
        definition of Moschella et al.  Distances are unaffected.
    top_k : int or None, default=None
        ASIF-style sparsification (Norelli et al., 2023): keep the ``top_k``
        largest similarities of each row, zero the rest.  Similarity metrics only.
    exponent : float, default=1.0
        Raise the (sparsified) similarities to this power, sign kept.
        Similarity metrics only.
    normalize : {None, "l2", "standard", "layer"}, default=None
        Output normalization: ``"l2"`` per row, ``"standard"`` per feature with
        mean and std fitted on the training projections, ``"layer"`` per row
        mean/std (LayerNorm without affine, as the authors put before decoders).
    p : float, default=2.0
        Order of the ``"lp"`` distance.
    device : None, "auto", str or torch.device, default=None
        Where to compute (``None``: where the input lives).  Results come back in
        the caller's kind either way.
    batch_size : int, "auto" or None, default=None
        Rows per chunk in ``transform`` (and ``inverse_transform``); bounds
        memory to the output plus a few chunks.  ``"auto"`` sizes chunks from
        scikit-learn's ``working_memory`` (``sklearn.config_context``).
        Chunking never changes the result (see :doc:`/arrays`).
    random_state : int, RandomState instance or None, default=None
        Seed of the anchor strategy.

    Attributes
    ----------
    anchors_ : ndarray of shape (n_anchors, n_features_in)
        Anchor vectors (CPU numpy, training dtype).
    anchor_indices_ : ndarray of shape (n_anchors,) or None
        Rows of the training X used as anchors; ``None`` for explicit vectors.
    anchor_mean_ : ndarray of shape (n_features_in,) or None
        Mean of the anchors, subtracted when ``center=True``.
    mean_anchor_norm_ : float
        Mean norm of the (centered) anchors: the scale ``inverse_transform`` restores.
    output_mean_, output_scale_ : ndarray of shape (n_anchors,) or None
        Statistics of ``normalize="standard"`` (zero std is replaced by 1).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.

    See Also
    --------
    select_anchors : The anchor strategies.

    Notes
    -----
    A zero vector (after centering) has cosine 0 to every anchor, and a zero
    anchor has cosine 0 to every sample: the output never contains NaN.
    Duplicate anchors give duplicate columns.

    References
    ----------
    .. [1] L. Moschella, V. Maiorca, M. Fumero, A. Norelli, F. Locatello and
       E. Rodolà, "Relative representations enable zero-shot latent space
       communication", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import RelativeProjector
    >>> X = np.random.default_rng(0).normal(size=(500, 16))
    >>> Q = ortho_group.rvs(16, random_state=0)
    >>> proj_a = RelativeProjector(n_anchors=32, random_state=0).fit(X)
    >>> proj_b = RelativeProjector(anchors=proj_a.anchor_indices_).fit(3 * X @ Q)
    >>> R_a, R_b = proj_a.transform(X), proj_b.transform(3 * X @ Q)
    >>> R_a.shape, bool(np.allclose(R_a, R_b))
    ((500, 32), True)
    """

    def __init__(
        self,
        n_anchors=300,
        *,
        anchors="random",
        metric="cosine",
        center=True,
        top_k=None,
        exponent=1.0,
        normalize=None,
        p=2.0,
        device=None,
        batch_size=None,
        random_state=None,
    ):
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.metric = metric
        self.center = center
        self.top_k = top_k
        self.exponent = exponent
        self.normalize = normalize
        self.p = p
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    _TRANSFORM_PARAMS = ("metric", "center", "top_k", "exponent", "normalize", "p")

    # ---------------------------------------------------------------- params
    def _check_params(self):
        check_option(self.metric, "metric", F.METRICS)
        check_option(self.normalize, "normalize", NORMALIZATIONS)
        if not isinstance(self.center, (bool, np.bool_)):
            raise TypeError(f"center must be a bool, got {self.center!r}.")
        check_batch_size(self.batch_size)
        check_scalar(self.exponent, "exponent", numbers.Real, min_val=0.0,
                     include_boundaries="neither")
        if self.metric == "lp":
            check_scalar(self.p, "p", numbers.Real, min_val=1.0)
        sparse = self.top_k is not None or self.exponent != 1.0
        if sparse and self.metric not in F.SIMILARITIES:
            raise ValueError(
                f"top_k and exponent apply to similarity metrics {F.SIMILARITIES}, "
                f"not to metric={self.metric!r}."
            )

    def _check_top_k(self, n_anchors, n_samples):
        if self.top_k is None:
            return
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral):
            raise TypeError(f"top_k must be None or an int, got {self.top_k!r}.")
        if not 1 <= self.top_k <= n_anchors:
            raise ValueError(
                f"top_k={self.top_k} must lie in [1, n_anchors={n_anchors}] (the anchors "
                f"picked from n_samples={n_samples})."
            )

    # --------------------------------------------------------------- kernels
    def _projector(self, device, dtype, normalize):
        anchors = fitted_tensor(self, "anchors_", device, dtype)
        project = F._relative_projector(
            anchors, self.metric, center=self._center_tensor(device), p=self.p,
            top_k=self.top_k, exponent=self.exponent,
            row_scale_free=normalize in ("l2", "layer"),
        )
        if normalize is None:
            return project
        if normalize == "l2":
            return lambda X: F._safe_normalize(project(X))
        if normalize == "layer":
            return lambda X: F.layer_normalize(project(X))
        mean = fitted_tensor(self, "output_mean_", device, dtype)
        scale = fitted_tensor(self, "output_scale_", device, dtype)
        return lambda X: (project(X) - mean) / scale

    # ------------------------------------------------------------------- API
    @atomic_fit
    def fit(self, X, y=None):
        """Pick the anchors in X (and fit the output normalization).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), optional
            Class labels, used only by ``anchors="stratified"``.

        Returns
        -------
        self : RelativeProjector
        """
        self._check_params()
        X, anchors, idx, device = self._fit_anchors(X, y)
        self._check_top_k(anchors.shape[0], X.shape[0])
        A = torch.from_numpy(anchors).to(torch.float64)
        mean = A.mean(dim=0)
        centered = A - mean if self.center else A
        if self.center and self.metric in _CENTERED_METRICS:
            _check_centered_anchors(centered, mean, self, X.shape[0])
        remember_params(self, self._TRANSFORM_PARAMS)
        self.anchors_ = anchors
        self.anchor_indices_ = idx
        self.anchor_mean_ = to_numpy(mean).astype(anchors.dtype) if self.center else None
        self.mean_anchor_norm_ = float(F._row_norms(centered).mean())
        self.output_mean_ = self.output_scale_ = None
        if self.normalize == "standard":
            R = to_tensor(self._apply(X, device, normalize=None), torch.device("cpu"))
            self.output_mean_, self.output_scale_ = _column_stats(R, anchors.dtype)
        return self

    def _apply(self, X, device, normalize, out=None):
        with torch.no_grad():
            return apply_batched(
                finite_result(self._projector(device, torch_dtype(X), normalize)), X,
                device=device,
                n_outputs=self.anchors_.shape[0], batch_size=self.batch_size, out=out,
            )

    def transform(self, X, *, out=None):
        """Relative representation of X.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        out : ndarray or Tensor of shape (n_samples, n_anchors), optional
            Where to write the result (e.g. a ``np.memmap``): a writeable
            C-contiguous array of the output dtype for numpy input, a
            contiguous tensor on X's device for tensor input.  See :doc:`/arrays`.

        Returns
        -------
        R : ndarray or Tensor of shape (n_samples, n_anchors)
            Same kind as X (a tensor stays on its device), float32 kept;
            ``out`` when given.
        """
        X, device = self._check_transform_input(X)
        return self._apply(X, device, self.normalize, out)

    def inverse_transform(self, R):
        """Absolute vectors with the given cosine relative representation.

        Directions are recovered through the pseudo-inverse of the normalized
        (centered) anchors, rescaled to ``mean_anchor_norm_`` and un-centered.
        Exact up to norm when the (centered) anchors span the space: that needs
        ``n_anchors >= n_features_in_``, and one more with ``center=True``
        (k centered points span at most k - 1 dimensions).  Only for
        ``metric="cosine"`` without ``top_k`` or ``normalize="layer"`` (those
        lose information).

        Parameters
        ----------
        R : array-like or Tensor of shape (n_samples, n_anchors)

        Returns
        -------
        X : ndarray or Tensor of shape (n_samples, n_features_in)
        """
        check_is_fitted(self)
        check_params_unchanged(self)
        if self.metric != "cosine" or self.top_k is not None or self.normalize == "layer":
            raise ValueError(
                "inverse_transform needs metric='cosine', top_k=None and normalize other "
                f"than 'layer'; got metric={self.metric!r}, top_k={self.top_k!r}, "
                f"normalize={self.normalize!r}."
            )
        R = check_input(None, R, reset=False, input_name="R")
        k = self.anchors_.shape[0]
        if R.shape[1] != k:
            raise ValueError(f"R has {R.shape[1]} columns, but the projector has {k} anchors.")
        device = resolve_device(self.device, R)
        dtype = torch_dtype(R)
        anchors = fitted_tensor(self, "anchors_", device, dtype)
        center = fitted_tensor(self, "anchor_mean_", device, dtype) if self.center else None
        inverse = F.normalized_anchor_inverse(anchors, center=self._center_tensor(device))
        if self.normalize == "standard":
            mean = fitted_tensor(self, "output_mean_", device, dtype)
            scale = fitted_tensor(self, "output_scale_", device, dtype)
        exponent = self.exponent

        def invert(Rc):
            if self.normalize == "standard":
                Rc = Rc * scale + mean
            if exponent != 1.0:
                Rc = torch.sign(Rc) * Rc.abs().pow(1.0 / exponent)
            return F.inverse_relative_projection(
                Rc, inverse, scale=self.mean_anchor_norm_, offset=center
            )

        with torch.no_grad():
            return apply_batched(
                finite_result(invert, "R"), R, device=device, n_outputs=self.n_features_in_,
                batch_size=self.batch_size,
            )

    def get_feature_names_out(self, input_features=None):
        """Output names ``"<metric>_a<j>"`` for anchor j."""
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray(
            [f"{self.metric}_a{j}" for j in range(self.anchors_.shape[0])], dtype=object
        )
