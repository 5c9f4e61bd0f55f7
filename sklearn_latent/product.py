"""Product of invariances (Cannistraci et al., ICLR 2024)."""

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, column_or_1d

from . import functional as F
from ._backend import (
    apply_batched,
    atomic_fit,
    check_batch_size,
    check_input,
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


#: Normalizations of the product: ``RelativeProjector``'s and ``"block"``.
PRODUCT_NORMALIZATIONS = (*NORMALIZATIONS, "block")

#: Values of ``weights`` other than an array of per-component factors.
WEIGHTINGS = (None, "transfer", "stitch")


def _check_weights(weights, n_metrics):
    """A name of ``WEIGHTINGS`` or a float64 array of n_metrics finite factors >= 0, one > 0."""
    if weights is None or (isinstance(weights, str) and weights in WEIGHTINGS):
        return weights
    if isinstance(weights, str):
        raise ValueError(
            f"weights={weights!r} is not supported; expected None, 'transfer', 'stitch' or "
            "one non-negative number per metric."
        )
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"weights must be None, 'transfer', 'stitch' or one number per metric; got "
            f"{weights!r}."
        ) from None
    if w.ndim != 1 or w.shape[0] != n_metrics:
        raise ValueError(
            f"weights has shape {w.shape} but there are {n_metrics} metrics; give one "
            "weight per metric, in the order of metrics."
        )
    if not np.isfinite(w).all():
        raise ValueError(f"weights={w.tolist()} contains NaN or infinity.")
    if (w < 0).any():
        raise ValueError(f"weights={w.tolist()} contains a negative weight; weights are >= 0.")
    if not (w > 0).any():
        raise ValueError(f"weights={w.tolist()} are all 0; at least one component must count.")
    return w


def _as_numpy(R):
    return to_numpy(R) if isinstance(R, torch.Tensor) else R


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
    weights : None, "transfer", "stitch" or array-like of shape (len(metrics),), default=None
        Factor of each normalized component before aggregation (0 drops the
        component: its block is zeros and is not computed).  ``None``: all 1,
        the paper's product.  ``"transfer"``: fitted on the anchors from
        ``fit(X, reference=Y)``, where ``Y`` embeds the same items in the
        space the representation will be compared with (the other side of a
        stitching pair): each component is weighted by how well its
        anchor-by-anchor relative representation agrees across the two
        spaces (:func:`~sklearn_latent.functional.product_transfer_weights`);
        no labels are used.  Fit both sides of a pair with the other side as
        reference: the weights are symmetric, so both get the same.
        ``"stitch"``: keep the one component that stitches best, for a
        classifier of this space read on another: ``fit(X, y, reference=Y)``
        with ``y`` the class labels of the rows of X and ``Y`` the same rows
        embedded in the other space (the source of the stitching pair; X is
        the classifier's side).  For each metric alone, a
        ``LogisticRegression(max_iter=1000)`` fitted on the relative rows of
        ``(X, y)`` is scored on the relative rows of ``Y`` (same anchor
        indices, its own anchors); the most accurate metric gets weight 1,
        the others 0 (ties: the first in ``metrics``).  The labels are used
        at fit time only.  Give the other side's projector
        ``weights=<this>.weights_``: the best component depends on which
        side holds the classifier.  On the real-encoder suite (192 ordered
        encoder pairs, 4 seeds) it keeps the best single component on 188
        and is never more than 1.1 points below it; the unweighted product
        is as good on 95 and within 1 point on 155.  See
        :doc:`/product_inverse` for when each weighting helps and when it loses.
    normalize : {"l2", "standard", "block", "layer"} or None, default="l2"
        Per-component normalization before aggregation: ``"l2"`` per row (each
        component of a sample has unit norm), ``"standard"`` per feature with
        mean and std fitted on the training projections, ``"block"`` per
        feature mean and one scale per component (the RMS of the centered
        training projections, :func:`~sklearn_latent.functional.block_statistics`),
        ``"layer"`` per row
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
        Per-component statistics of ``normalize="standard"`` or ``"block"``
        (for ``"block"`` each row of ``output_scale_`` repeats one value).
    weights_ : ndarray of shape (len(metrics),)
        The factor of each component (all 1 for ``weights=None``).
    agreement_ : ndarray of shape (len(metrics),) or None
        With ``weights="transfer"``: each component's agreement with the
        reference space, the symmetric coefficient of determination of the
        two spaces' anchor-by-anchor relative matrices (1: identical, 0 or
        below, unbounded: the difference is as large as the features' own
        variation; see :func:`~sklearn_latent.functional.product_transfer_weights`);
        else ``None``.
    stitch_scores_ : ndarray of shape (len(metrics),) or None
        With ``weights="stitch"``: each metric's accuracy, alone, of the
        classifier fitted on X read on the reference; else ``None``.
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

    Zero-shot stitching with the component that transfers best: the
    classifier's side picks it with its labels, the other side takes its
    weights.  Here B is A rotated and each row rescaled, which only cosine
    ignores.

    >>> from scipy.stats import ortho_group
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(300, 8))
    >>> y = (A[:, 0] > 0).astype(int)
    >>> B = A @ ortho_group.rvs(8, random_state=0) * rng.uniform(0.1, 10, size=(300, 1))
    >>> kw = dict(center=False, random_state=0)
    >>> on_a = ProductInvarianceProjector(30, weights="stitch", **kw).fit(A, y, reference=B)
    >>> on_a.weights_.tolist()
    [1.0, 0.0, 0.0, 0.0]
    >>> on_b = ProductInvarianceProjector(30, weights=on_a.weights_, **kw).fit(B)
    >>> clf = LogisticRegression().fit(on_a.transform(A), y)
    >>> bool(clf.score(on_b.transform(B), y) > 0.9)
    True
    """

    def __init__(
        self,
        n_anchors=300,
        *,
        anchors="random",
        metrics=("cosine", "euclidean", "l1", "linf"),
        aggregation="concat",
        weights=None,
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
        self.weights = weights
        self.normalize = normalize
        self.center = center
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    _TRANSFORM_PARAMS = ("metrics", "aggregation", "weights", "normalize", "center")

    def _check_params(self):
        metrics = _check_metrics(self.metrics)
        check_option(self.aggregation, "aggregation", F.AGGREGATIONS)
        check_option(self.normalize, "normalize", PRODUCT_NORMALIZATIONS)
        if not isinstance(self.center, (bool, np.bool_)):
            raise TypeError(f"center must be a bool, got {self.center!r}.")
        check_batch_size(self.batch_size)
        weights = _check_weights(self.weights, len(metrics))
        return metrics, weights

    def _projector(self, device, dtype, normalize, aggregation, weighted=True):
        anchors = fitted_tensor(self, "anchors_", device, dtype)
        center = self._center_tensor(device)
        means = scales = None
        if normalize in ("standard", "block"):
            means = fitted_tensor(self, "output_mean_", device, dtype)
            scales = fitted_tensor(self, "output_scale_", device, dtype)
        return F._product_projector(
            anchors, self.metrics_, center=center, normalize=normalize,
            means=means, scales=scales, aggregation=aggregation,
            weights=getattr(self, "weights_", None) if weighted else None,
        )

    def _n_outputs(self, aggregation):
        k = self.anchors_.shape[0]
        return k * len(self.metrics_) if aggregation == "concat" else k

    @atomic_fit
    def fit(self, X, y=None, *, reference=None):
        """Pick the anchors in X, fit the per-component normalization and weights.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), optional
            Class labels of the rows of X, used by ``anchors="stratified"``
            and required by ``weights="stitch"``.
        reference : array-like or Tensor, optional
            Required by ``weights="transfer"`` and ``"stitch"`` (ignored
            otherwise): the same items embedded in the reference space, any
            width.  Rows parallel to X (shape ``(n_samples, d_ref)``) when the
            anchors are rows of X; for ``"transfer"`` only, one row per
            anchor, in order (``(n_anchors, d_ref)``) when ``anchors`` is a
            2-D array of anchor vectors.

        Returns
        -------
        self : ProductInvarianceProjector

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_latent import ProductInvarianceProjector
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(100, 6))
        >>> Y = X @ np.linalg.qr(rng.normal(size=(6, 6)))[0]  # X rotated
        >>> proj = ProductInvarianceProjector(
        ...     20, metrics=("cosine", "l1"), weights="transfer", random_state=0
        ... ).fit(X, reference=Y)
        >>> float(proj.weights_[0]), bool(proj.weights_[1] < 1)  # L1 is not rotation invariant
        (1.0, True)
        """
        metrics, weights = self._check_params()
        X, anchors, idx, device = self._fit_anchors(X, y)
        self.anchors_ = anchors
        self.anchor_indices_ = idx
        self.metrics_ = metrics
        mean = torch.from_numpy(anchors).to(torch.float64).mean(dim=0)
        centered_metrics = [m for m in metrics if m in _CENTERED_METRICS]
        if self.center and centered_metrics:
            A = torch.from_numpy(anchors).to(torch.float64)
            _check_centered_anchors(A - mean, mean, self, X.shape[0], centered_metrics[0])
        self.agreement_ = self.stitch_scores_ = None
        if isinstance(weights, str) and weights == "stitch":
            self.weights_, self.stitch_scores_ = self._stitch_weights(X, y, reference)
        elif isinstance(weights, str):  # "transfer"
            ref = self._check_reference(reference, X)
            A = torch.from_numpy(anchors).to(torch.float64)
            self.agreement_ = to_numpy(
                F._component_agreement(A, ref, metrics, center=self.center,
                                       normalize=self.normalize))
            self.weights_ = to_numpy(F.product_transfer_weights(
                A, ref, metrics, center=self.center, normalize=self.normalize))
        else:
            self.weights_ = np.ones(len(metrics)) if weights is None else weights.copy()
        remember_params(self, self._TRANSFORM_PARAMS)
        self.anchor_mean_ = to_numpy(mean).astype(anchors.dtype) if self.center else None
        self.output_mean_ = self.output_scale_ = None
        if self.normalize in ("standard", "block"):
            raw = to_tensor(
                self._apply(X, device, None, "concat", weighted=False), torch.device("cpu"))
            shape = (len(metrics), anchors.shape[0])
            if self.normalize == "standard":
                mu, sd = _column_stats(raw, anchors.dtype)
                self.output_mean_, self.output_scale_ = mu.reshape(shape), sd.reshape(shape)
            else:
                stats = [F.block_statistics(B) for B in raw.split(shape[1], dim=1)]
                self.output_mean_, self.output_scale_ = (
                    np.stack([to_numpy(st[i]) for st in stats]).astype(anchors.dtype)
                    for i in (0, 1)
                )
        return self

    def _stitch_weights(self, X, y, reference):
        """``weights="stitch"``: the component whose classifier reads the reference best.

        Returns the kept component's one-hot weights and every component's
        accuracy, in the order of ``metrics_``.
        """
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        if self.anchor_indices_ is None:
            raise ValueError(
                "weights='stitch' needs anchors picked among the rows of X (a strategy or row "
                "indices), not anchor vectors: the reference must embed the same rows."
            )
        if y is None:
            raise ValueError(
                "weights='stitch' needs the class labels of the rows of X: "
                "fit(X, y, reference=Y)."
            )
        y = column_or_1d(y)
        check_classification_targets(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y has {y.shape[0]} labels but X has {X.shape[0]} rows.")
        if np.unique(y).size < 2:
            raise ValueError("weights='stitch' needs at least 2 classes in y.")
        if reference is None:
            raise ValueError(
                "weights='stitch' needs the reference space: fit(X, y, reference=Y) with Y "
                "the same rows embedded in the space to stitch from."
            )
        ref = check_input(None, reference, reset=False, input_name="reference")
        if ref.shape[0] != X.shape[0]:
            raise ValueError(
                f"reference has {ref.shape[0]} rows but X has {X.shape[0]}; with "
                "weights='stitch', reference embeds the same rows as X, in order."
            )
        scores = np.empty(len(self.metrics_))
        for i, metric in enumerate(self.metrics_):
            proj = clone(self).set_params(
                anchors=self.anchor_indices_, metrics=(metric,), weights=None)
            R, R_ref = (_as_numpy(proj.fit(Z).transform(Z)) for Z in (X, ref))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores[i] = LogisticRegression(max_iter=1000).fit(R, y).score(R_ref, y)
        return np.eye(len(scores))[int(np.argmax(scores))], scores  # ties: the first

    def _check_reference(self, reference, X):
        """The reference space's anchor rows, float64 on the CPU (``weights="transfer"``)."""
        if reference is None:
            raise ValueError(
                "weights='transfer' needs the reference space: fit(X, reference=Y) with Y the "
                "same items embedded in the space to agree with."
            )
        ref = check_input(None, reference, reset=False, input_name="reference")
        ref = to_tensor(ref, torch.device("cpu")).to(torch.float64)
        idx, k = self.anchor_indices_, self.anchors_.shape[0]
        if idx is not None:
            if ref.shape[0] != X.shape[0]:
                raise ValueError(
                    f"reference has {ref.shape[0]} rows but X has {X.shape[0]}; with anchors "
                    "picked among the rows of X, reference must be parallel to X."
                )
            ref = ref[torch.as_tensor(idx)]
        elif ref.shape[0] != k:
            raise ValueError(
                f"reference has {ref.shape[0]} rows but there are {k} anchor vectors; give "
                "the anchors embedded in the reference space, one row per anchor."
            )
        if ref.shape[0] < 3:
            raise ValueError(f"weights='transfer' needs at least 3 anchors, got {ref.shape[0]}.")
        return ref

    def _apply(self, X, device, normalize, aggregation, out=None, weighted=True):
        with torch.no_grad():
            return apply_batched(
                finite_result(self._projector(
                    device, torch_dtype(X), normalize, aggregation, weighted)),
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
