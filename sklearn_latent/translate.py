"""Latent space translation (Maiorca et al., NeurIPS 2023).

:class:`ProcrustesTranslator` maps embeddings of one model (source, ``X``)
into the space of another (target, ``y``) from a set of *paired* samples
embedded by both.  The map is solved in closed form from float64 sufficient
statistics (:class:`~sklearn_latent.functional.TranslationStats`), so ``fit``,
``partial_fit`` and a map-reduce over blocks (:func:`translation_stats` and
:func:`merge_translation_stats`, then :meth:`ProcrustesTranslator.fit_from_stats`)
are one computation.
"""

import numbers
import warnings

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    MultiOutputMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.metrics import r2_score
from sklearn.utils import check_scalar
from sklearn.utils.validation import check_is_fitted

from . import functional as F
from ._backend import (
    apply_batched,
    np_dtype,
    atomic_fit,
    check_batch_size,
    check_input,
    check_option,
    fitted_tensor,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .anchors import resolve_anchors

__all__ = ["ProcrustesTranslator", "merge_translation_stats", "translation_stats"]

# Elements of one float64 chunk when accumulating statistics (64 MiB per side):
# bounds the temporaries of ``fit`` and ``translation_stats`` whatever n is.
_CHUNK_ELEMENTS = 1 << 23

_LABELS_HINT = (
    "ProcrustesTranslator needs the paired target embeddings of the same samples, a 2-D "
    "array of shape (n_samples, d_y), not class labels. Either fit it on its own, "
    "fit(X_source, Y_target), and put it in a Pipeline pre-fitted as "
    "sklearn.frozen.FrozenEstimator(translator); or fit it inside the Pipeline and route "
    "the paired embeddings as metadata: sklearn.set_config(enable_metadata_routing=True), "
    "ProcrustesTranslator().set_fit_request(target=True), then "
    "pipeline.fit(X_source, labels, target=Y_target)."
)


_needs_gram = F._needs_gram


# The attributes solved from ``stats_``: after partial_fit they are computed on
# first access (lazy solve), so streaming costs only the statistics.
_SOLVED = (
    "coef_", "intercept_", "inverse_coef_", "inverse_intercept_", "map_", "scale_", "bias_",
    "x_mean_", "x_scale_", "y_mean_", "y_scale_", "rank_", "alpha_",
)


def warn_underdetermined(what, rank, full_rank, causes, fixes, stacklevel):
    """The one warning for a map its anchors do not determine (translators and inverses)."""
    if not causes:
        causes = ["the anchors are (numerically) linearly dependent"]
    warnings.warn(
        f"The {what} is determined on only {rank} of {full_rank} dimensions "
        f"({'; '.join(causes)}); the rest maps to zero (minimum-norm)"
        + (f": {' or '.join(fixes)}." if fixes else "."),
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def _user_stacklevel():
    """Stack level of the first frame outside the library (for warnings raised deep inside)."""
    import inspect
    import os

    pkg = os.path.dirname(os.path.abspath(__file__))
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        frame, level = frame.f_back, level + 1
    return level


def check_alpha(alpha):
    """``alpha``: a finite non-negative real or ``"auto"``."""
    if isinstance(alpha, str):
        if alpha != "auto":
            raise ValueError(f"alpha={alpha!r} must be a non-negative float or 'auto'.")
        return
    check_scalar(alpha, "alpha", numbers.Real, min_val=0.0)
    if not np.isfinite(alpha):
        raise ValueError(f"alpha={alpha!r} must be finite.")


def _n_rows_per_chunk(d_x, d_y):
    return max(1, _CHUNK_ELEMENTS // max(d_x, d_y))


# The float64 sums of squares and cross-products overflow beyond |x| ~ 1e150 and
# underflow (losing all precision) below ~1e-150; inside this margin they are safe.
_STATS_MAGNITUDE = 2.0**450


def _check_magnitude(A, name):
    """ValueError for data whose float64 statistics would overflow or underflow."""
    if isinstance(A, torch.Tensor):
        m = F._max_abs(A)
    else:
        m = float(max(-A.min(), A.max()))
    if m > _STATS_MAGNITUDE or 0.0 < m < 1.0 / _STATS_MAGNITUDE:
        raise ValueError(
            f"{name} has values of magnitude up to {m:.3g}: the float64 statistics of "
            f"ProcrustesTranslator need magnitudes in [{1 / _STATS_MAGNITUDE:.1e}, "
            f"{_STATS_MAGNITUDE:.1e}]; rescale {name} (with scaling='isotropic' or "
            "'standard' the translation does not depend on the scale)."
        )


def _accumulate(X, Y, device, gram):
    """float64 statistics of validated X and Y on ``device``, chunk by chunk."""
    _check_magnitude(X, "X")
    _check_magnitude(Y, "y")
    step = _n_rows_per_chunk(X.shape[1], Y.shape[1])
    stats = None
    with torch.no_grad():
        for start in range(0, X.shape[0], step):
            stop = start + step
            part = F.translation_stats(
                to_tensor(X[start:stop], device), to_tensor(Y[start:stop], device), gram=gram
            )
            stats = part if stats is None else F.merge_translation_stats(stats, part)
    return stats


def _stats_to_numpy(stats):
    return F.TranslationStats(
        int(stats.n), *(None if f is None else to_numpy(torch.as_tensor(f)) for f in stats[1:])
    )


def _check_stats(stats, name="stats"):
    """Validate a TranslationStats-like object (shapes, finiteness, n)."""
    if not isinstance(stats, tuple) or len(stats) != len(F.TranslationStats._fields):
        raise TypeError(
            f"{name} must be a TranslationStats (from translation_stats or "
            f"ProcrustesTranslator.stats_), got {type(stats).__name__}."
        )
    stats = F.TranslationStats(*stats)
    n = stats.n
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"{name}.n={n!r} must be a non-negative int.")
    shapes = [None if f is None else tuple(f.shape) for f in stats[1:]]
    d_x, d_y = shapes[0][0], shapes[1][0]
    expected = [(d_x,), (d_y,), (d_x,), (d_y,), (d_x, d_y), (d_x, d_x)]
    for field, shape, exp in zip(F.TranslationStats._fields[1:], shapes, expected):
        if field == "xx" and shape is None:
            continue
        if shape != exp:
            raise ValueError(
                f"{name}.{field} has shape {shape}; expected {exp} for d_x={d_x}, d_y={d_y}."
            )
    for field, f in zip(F.TranslationStats._fields[1:], stats[1:]):
        if f is not None and not bool(torch.isfinite(torch.as_tensor(f)).all()):
            raise ValueError(f"{name}.{field} contains NaN or infinity.")
    for field in ("x_ss", "y_ss"):
        if bool((torch.as_tensor(getattr(stats, field)) < 0).any()):
            raise ValueError(
                f"{name}.{field} has negative entries: sums of squared deviations are >= 0 "
                "(statistics from another computation or edited by hand?)."
            )
    if stats.xx is not None:
        diag = torch.diagonal(torch.as_tensor(stats.xx))
        if bool((diag < 0).any()):
            raise ValueError(f"{name}.xx has a negative diagonal: it must be X^T X (centered).")
    return stats


def _validate_target(X, y, target):
    """The paired target (validated, 2-D, same rows as X) and the class labels if any."""
    labels = None
    name = "y"
    if target is not None:
        Y, labels, name = target, y, "target"
    elif y is None:
        raise ValueError(
            "ProcrustesTranslator requires y to be passed, but the target y is None. "
            + _LABELS_HINT
        )
    else:
        Y = y
    if isinstance(Y, torch.Tensor):
        ndim, label_like = Y.ndim, not (Y.is_floating_point() or Y.is_complex())
    else:
        arr = np.asarray(Y)
        ndim, label_like = arr.ndim, arr.dtype.kind in "biuOUS"
    if ndim == 1:
        n = int(Y.shape[0]) if isinstance(Y, torch.Tensor) else int(arr.shape[0])
        if label_like:
            msg = f"{name} is 1-D with non-float values, which looks like class labels. "
            warnings.warn(msg + _LABELS_HINT, UserWarning, stacklevel=4)
            raise ValueError(
                f"{name} must be the 2-D paired target embeddings; got a 1-D array of "
                f"shape ({n},) that looks like class labels. " + _LABELS_HINT
            )
        raise ValueError(
            f"{name} must be the 2-D paired target embeddings of shape (n_samples, d_y); got "
            f"a 1-D array of shape ({n},). Use {name}.reshape(-1, 1) for a single target "
            "dimension."
        )
    Y = check_input(None, Y, reset=False, input_name=name)
    if Y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name} has {Y.shape[0]} rows but X has {X.shape[0]}; row i of X and of "
            f"{name} must be the same sample embedded in the two spaces."
        )
    return Y, labels


def translation_stats(X, y, *, gram=True, device=None):
    """Sufficient statistics of paired rows, for map-reduce fitting.

    Validates ``X`` (n, d_x) and ``y`` (n, d_y) and accumulates their float64
    statistics chunk by chunk (bounded memory).  Statistics of disjoint blocks
    are combined exactly with :func:`merge_translation_stats` and solved by
    :meth:`ProcrustesTranslator.fit_from_stats`; the result equals
    ``ProcrustesTranslator().fit(X_all, y_all)`` with all rows as anchors.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        Source embeddings.
    y : array-like or Tensor of shape (n_samples, d_y)
        Target embeddings of the same samples, row by row.
    gram : bool, default=True
        Also accumulate ``X^T X`` (needed by ``"linear"``, ``"affine"`` and by
        ``"scaled"`` when ``d_x > d_y``).  ``False`` saves one GEMM per block.
    device : None, "auto", str or torch.device, default=None
        Where to compute (``None``: where X lives).

    Returns
    -------
    TranslationStats
        float64 fields: numpy arrays for numpy input, tensors on the compute
        device for tensor input.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import (ProcrustesTranslator, merge_translation_stats,
    ...                             translation_stats)
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(300, 8)), rng.normal(size=(300, 6))
    >>> blocks = [translation_stats(X[i:i + 100], Y[i:i + 100]) for i in (0, 100, 200)]
    >>> stats = merge_translation_stats(*blocks)
    >>> a = ProcrustesTranslator("linear").fit_from_stats(stats)
    >>> b = ProcrustesTranslator("linear").fit(X, Y)
    >>> bool(np.allclose(a.coef_, b.coef_, atol=1e-12))
    True
    """
    X = check_input(None, X, reset=False)
    Y, _ = _validate_target(X, y, None)
    dev = resolve_device(device, X)
    stats = _accumulate(X, Y, dev, bool(gram))
    return stats if isinstance(X, torch.Tensor) else _stats_to_numpy(stats)


def merge_translation_stats(*stats):
    """Exact statistics of the union of disjoint blocks (any number, any order).

    Parameters
    ----------
    *stats : TranslationStats
        From :func:`translation_stats` or ``ProcrustesTranslator.stats_``,
        all with the same ``d_x`` and ``d_y``.  ``xx`` survives only if every
        block has it.

    Returns
    -------
    TranslationStats
        numpy fields when the first block has numpy fields, else tensors.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import merge_translation_stats, translation_stats
    >>> X, Y = np.arange(40.0).reshape(10, 4), np.ones((10, 2))
    >>> merged = merge_translation_stats(translation_stats(X[:3], Y[:3]),
    ...                                  translation_stats(X[3:], Y[3:]))
    >>> merged.n, bool(np.allclose(merged.x_mean, X.mean(axis=0)))
    (10, True)
    """
    if not stats:
        raise ValueError("merge_translation_stats needs at least one TranslationStats.")
    checked = [_check_stats(s, name=f"stats[{i}]") for i, s in enumerate(stats)]
    widths = {(s.xy.shape[0], s.xy.shape[1]) for s in checked}
    if len(widths) > 1:
        raise ValueError(f"Cannot merge statistics of different widths (d_x, d_y): {widths}.")
    out = checked[0]
    for s in checked[1:]:
        out = F.merge_translation_stats(out, s)
    if isinstance(checked[0].x_mean, torch.Tensor):
        return F._as_stats(out)
    return _stats_to_numpy(out)


class ProcrustesTranslator(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    RegressorMixin,
    MultiOutputMixin,
    BaseEstimator,
):
    """Latent space translation: map one model's embeddings into another's space.

    Fitted on *paired* rows (the same samples embedded by a source model,
    ``X``, and a target model, ``y``), it solves a closed-form map between the
    two spaces (Maiorca et al., 2023).  Each space is first brought to its own
    scaled coordinates, ``x~ = (x - mu_x) / sigma_x`` and
    ``y~ = (y - mu_y) / sigma_y``, then

    - ``"orthogonal"``: ``U S V^T = svd(X~^T Y~)``, ``R = U V^T``
      (semi-orthogonal when ``d_x != d_y``);
    - ``"scaled"``: ``s R`` with ``s = trace(S) / ||X~ R||_F^2``;
    - ``"linear"``: ridge least squares ``W = (X~^T X~ + alpha I)^+ X~^T Y~``;
    - ``"affine"``: least squares with a bias, in closed form;
    - ``"lowrank"``: ``"affine"`` reduced to rank ``rank`` (reduced-rank
      regression: ``W`` projected on the top right singular vectors of the
      fitted values ``X~ W``).

    and maps back: ``y^ = (x~ M) * sigma_y + mu_y``.  Everything is folded at
    fit time into one matrix and a bias, so ``transform(X) = X @ coef_ +
    intercept_`` is a single GEMM.  The statistics behind the map are float64
    sums, exactly mergeable: :meth:`partial_fit` streams them and
    :meth:`fit_from_stats` solves them after a map-reduce.

    Parameters
    ----------
    method : {"orthogonal", "scaled", "linear", "affine", "lowrank"}, default="orthogonal"
        The family of maps (see above).  With any ``scaling`` but ``None`` the
        coordinates are centered, so ``"linear"`` and ``"affine"`` give the
        same map; they differ with ``scaling=None``.
    n_anchors : int, float in (0, 1] or None, default=None
        How many paired rows of ``fit`` define the map (a fraction of the rows
        for a float); ``None`` uses all of them.  At least 2 are needed; a
        unique orthogonal map needs more than ``min(d_x, d_y)`` (a unique
        least-squares map more than ``d_x``, or ``alpha > 0``), otherwise a
        warning is emitted.
    anchors : str, array-like of int or callable, default="random"
        Which rows are anchors: a strategy of :func:`~sklearn_latent.select_anchors`
        run on ``X`` (``"random"``, ``"fps"``, ``"kmeans"``, or
        ``"stratified"`` with class labels ``y`` and ``target=`` the pairs), a
        1-D array of row indices, or a callable
        ``(X, n_anchors, random_state) -> indices``.  The same indices pick the
        rows of ``y``.  Explicit anchor vectors are not accepted (they have no
        paired target).  Used by :meth:`fit` only.
    scaling : {"isotropic", "standard", "center", None}, default="isotropic"
        ``"isotropic"``: each space is centered on its anchor mean and divided
        by one std, the root of its mean per-feature variance, undone on the
        target side (for ``"orthogonal"`` between different widths the
        source's std is set so that the translation has the target's total
        variance); an exact ``y = s x Q + b`` is recovered, and a fixed ridge
        ``alpha`` means about what it means with ``"standard"``.
        ``"standard"``: each feature standardized with its own anchor mean and
        population std (zero std -> 1; the paper's choice).  ``"center"``:
        means only.  ``None``: raw coordinates (an orthogonal map about the
        origin).  The default was chosen on the real-encoder suite (5 data
        sets, 48 encoder pairs, see :doc:`/real_suite`): ``"standard"``
        divides by per-feature stds that a few hundred anchors estimate
        poorly, ``"center"`` ignores a difference of scale between the
        spaces (one unit-normalized encoder, one not).
    alpha : float or "auto", default="auto"
        Ridge penalty of ``"linear"``, ``"affine"`` and ``"lowrank"`` in scaled
        coordinates (the bias is not penalized).  ``"auto"``: chosen by
        generalized cross-validation over 0 and a log grid, from one
        eigendecomposition of the statistics (no refit per candidate), so
        :meth:`fit`, :meth:`partial_fit` and :meth:`fit_from_stats` choose the
        same; the choice is ``alpha_``.  Ignored by the orthogonal methods.
        The default since it helps on real encoders with fewer anchors than
        dimensions (500 anchors, 384-d sentence encoders: ``"affine"`` 0.870
        and 0.885 stitching accuracy with ``"auto"`` against 0.766 and 0.776
        with ``alpha=0``; see :doc:`/translation`); on exact, over-determined
        data it chooses 0.
    device : None, "auto", str or torch.device, default=None
        Where to compute (``None``: where the input lives).  Results come back
        in the caller's kind either way; fitted attributes are CPU numpy.
    batch_size : int, "auto" or None, default=None
        Rows per chunk in ``transform`` and ``inverse_transform``; ``"auto"``
        sizes chunks from scikit-learn's ``working_memory`` (see
        :doc:`/arrays`).  Never changes the result.
    rank : int or None, default=None
        Rank of the ``"lowrank"`` map (required there, at most
        ``min(d_x, d_y)``); ignored by the other methods.
    random_state : int, RandomState instance or None, default=None
        Seed of the anchor strategy.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features_in, n_features_out)
        The folded map in raw coordinates: ``transform(X) = X @ coef_ + intercept_``
        (float64).
    intercept_ : ndarray of shape (n_features_out,)
    inverse_coef_ : ndarray of shape (n_features_out, n_features_in)
    inverse_intercept_ : ndarray of shape (n_features_in,)
        ``inverse_transform(Y) = Y @ inverse_coef_ + inverse_intercept_``: the
        exact inverse (transpose, divided by the scale) for ``"orthogonal"`` and
        ``"scaled"``, the pseudo-inverse for ``"linear"`` and ``"affine"``.
    map_ : ndarray of shape (n_features_in, n_features_out)
        The map between scaled coordinates: the (semi-)orthogonal ``R`` for
        ``"orthogonal"`` and ``"scaled"`` (without the scale), ``W`` for
        ``"linear"`` and ``"affine"``.
    scale_ : float
        The isotropic scale ``s`` of ``"scaled"``; 1.0 otherwise.
    bias_ : ndarray of shape (n_features_out,)
        The bias in scaled coordinates (non-zero only for ``"affine"`` with
        ``scaling=None``).
    x_mean_, x_scale_ : ndarray of shape (n_features_in,)
    y_mean_, y_scale_ : ndarray of shape (n_features_out,)
        Shift and scale of each space's scaled coordinates (zeros/ones where
        ``scaling`` does not apply; one value repeated for ``"isotropic"``).
    rank_ : int
        Numerical rank of the matrix the map was solved from (cross-covariance
        or ridge Gram); below ``min(d_x, d_y)`` (orthogonal methods) or ``d_x``
        (least squares) the map is not unique and a warning was emitted.
    alpha_ : float
        The ridge penalty used (``alpha``, or the one ``alpha="auto"`` chose);
        0.0 for the orthogonal methods.
    stats_ : TranslationStats
        The float64 sufficient statistics behind the map (CPU numpy); what
        :meth:`partial_fit` continues from and what :func:`merge_translation_stats`
        combines.
    anchor_indices_ : ndarray of shape (n_anchors,) or None
        Rows of the ``fit`` data used as anchors; ``None`` after
        :meth:`partial_fit` (all rows seen are anchors) or :meth:`fit_from_stats`.
    n_samples_seen_ : int
        Paired rows behind the map.
    n_features_in_ : int
        ``d_x``.
    n_features_out_ : int
        ``d_y``.
    feature_names_in_ : ndarray of str
        Defined when X has string column names.

    See Also
    --------
    translation_stats, merge_translation_stats : Map-reduce fitting.
    sklearn.cross_decomposition.PLSRegression : Another transformer fitted with a 2-D target.

    Notes
    -----
    **Different widths.**  All methods accept ``d_x != d_y``.  The authors
    zero-pad the narrower space; the SVD of the rectangular cross-covariance
    gives the same (semi-orthogonal) map.  For ``d_x < d_y`` this is exact and
    lossless (``R R^T = I``, ``inverse_transform`` inverts ``transform``).  For
    ``d_x > d_y`` the map ``R^T R = I`` is a projection: the source components
    outside a ``d_y``-dimensional subspace are dropped, ``inverse_transform``
    is only exact on that subspace, and the solution maximizes ``trace(R^T
    X~^T Y~)``, which is the zero-padded square Procrustes problem but not the
    minimizer of ``||X~ R - Y~||`` over semi-orthogonal maps (that one has no
    closed form).  Hence ``"scaled"`` divides by ``||X~ R||^2``, not
    ``||X~||^2``.

    **1-D y.**  ``y`` must be 2-D.  A 1-D ``y`` of integers, booleans or
    strings is most likely class labels passed through a Pipeline: a
    ``UserWarning`` explains the two right ways (a pre-fitted translator in
    :class:`sklearn.frozen.FrozenEstimator`, or ``target=`` routed as metadata)
    and a ``ValueError`` follows, because fitting a map onto class ids would
    silently produce nonsense.  A 1-D float ``y`` raises a ``ValueError``
    asking for ``y.reshape(-1, 1)``.

    **Pipelines.**  ``fit(X, y)`` uses a 2-D ``y`` as the paired target;
    ``fit(X, y, target=Y)`` uses ``target`` and ignores ``y`` (then class
    labels, used only by ``anchors="stratified"``), so inside a Pipeline with
    metadata routing ``translator.set_fit_request(target=True)`` lets
    ``pipeline.fit(X, labels, target=Y)`` and ``GridSearchCV`` (which splits
    ``target`` per fold) work.

    **Precision.**  Statistics are accumulated in float64 with chunks centered
    on their own means and merged exactly (Chan et al.), so float32 input with
    large offsets keeps float64 accuracy.  ``transform`` and
    ``inverse_transform`` of float32 (or lower) input subtract the data mean
    rounded to that dtype before the GEMM and fold the rest of the intercept
    in float64, so the result is as accurate as the input allows whatever the
    offset (folding the mean into ``intercept_`` alone would lose digits in
    proportion to offset / spread).

    **Lazy solve.**  :meth:`partial_fit` only accumulates the statistics; the
    solved attributes (``coef_``, ``intercept_``, ``map_``, ``alpha_``, ...)
    are computed at their first use and kept until the next chunk.

    References
    ----------
    .. [1] V. Maiorca, L. Moschella, A. Norelli, M. Fumero, F. Locatello and
       E. Rodolà, "Latent Space Translation via Semantic Alignment",
       NeurIPS 2023.
    .. [2] T. F. Chan, G. H. Golub and R. J. LeVeque, "Updating formulae and a
       pairwise algorithm for computing sample variances", 1979.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import ProcrustesTranslator
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 16))
    >>> Q = ortho_group.rvs(16, random_state=0)
    >>> Y = 2.0 * X @ Q + 1.0
    >>> tr = ProcrustesTranslator("scaled", scaling="center").fit(X, Y)
    >>> bool(np.allclose(tr.map_, Q)), round(tr.scale_, 6)
    (True, 2.0)
    >>> bool(np.allclose(tr.transform(X), Y)), bool(np.allclose(tr.inverse_transform(Y), X))
    (True, True)
    """

    def __init__(
        self,
        method="orthogonal",
        *,
        n_anchors=None,
        anchors="random",
        scaling="isotropic",
        alpha="auto",
        device=None,
        batch_size=None,
        rank=None,
        random_state=None,
    ):
        self.method = method
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.scaling = scaling
        self.alpha = alpha
        self.rank = rank
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    # ---------------------------------------------------------------- params
    def _check_params(self):
        check_option(self.method, "method", F.TRANSLATION_METHODS)
        check_option(self.scaling, "scaling", F.TRANSLATION_SCALINGS)
        check_alpha(self.alpha)
        if self.rank is not None:
            if isinstance(self.rank, bool):
                raise TypeError(f"rank must be an int or None, got {self.rank!r}.")
            check_scalar(self.rank, "rank", numbers.Integral, min_val=1)
        if self.method == "lowrank" and self.rank is None:
            raise ValueError("method='lowrank' needs rank=, the rank of the map (an int >= 1).")
        check_batch_size(self.batch_size)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.n_features_out_

    # ------------------------------------------------------------ statistics
    def _set_stats(self, stats):
        """Store the statistics; the map is solved on first use (see :meth:`_solve`)."""
        n = int(stats.n)
        if n < 2:
            raise ValueError(
                f"ProcrustesTranslator needs at least 2 paired samples (anchors); got {n} "
                "sample(s)."
            )
        d_x, d_y = stats.xy.shape
        if self.method == "lowrank" and self.rank > min(d_x, d_y):
            raise ValueError(
                f"rank={self.rank} exceeds min(d_x, d_y)={min(d_x, d_y)}, the largest rank "
                f"of a map from {d_x} to {d_y} features."
            )
        for name in _SOLVED:
            self.__dict__.pop(name, None)
        self.stats_ = _stats_to_numpy(stats)
        self.n_samples_seen_ = n
        self.n_features_out_ = int(d_y)
        self._solve_pending = True

    def _set_map(self, stats):
        """Store the statistics and solve the map now (fit, fit_from_stats)."""
        self._set_stats(stats)
        self._solve(F._as_stats(stats))

    def _solve(self, stats=None):
        """Solve the map from ``stats_`` and store every solved attribute."""
        if stats is None:
            device = resolve_device(self.device, np.empty(0))
            stats = F._as_stats(self.stats_, device)
        n = int(stats.n)
        res = F.solve_translation(
            stats, self.method, scaling=self.scaling,
            alpha=self.alpha if isinstance(self.alpha, str) else float(self.alpha),
            rank=self.rank,
        )
        if res.rank == 0:
            raise ValueError(
                f"The {n} paired anchors give a zero cross-covariance between X and y "
                "(constant rows?): no translation can be fitted."
            )
        if res.rank < res.full_rank:
            self._warn_rank(stats, res, n)
        # C-contiguous, so transform on the CPU uses them without a copy
        self.coef_ = np.ascontiguousarray(to_numpy(res.coef))
        self.intercept_ = to_numpy(res.intercept)
        self.inverse_coef_ = np.ascontiguousarray(to_numpy(res.inverse_coef))
        self.inverse_intercept_ = to_numpy(res.inverse_intercept)
        self.map_ = to_numpy(res.map)
        self.scale_ = float(res.scale)
        self.bias_ = to_numpy(res.bias)
        self.x_mean_, self.x_scale_ = to_numpy(res.x_mean), to_numpy(res.x_scale)
        self.y_mean_, self.y_scale_ = to_numpy(res.y_mean), to_numpy(res.y_scale)
        self.rank_ = int(res.rank)
        self.alpha_ = float(res.alpha)
        self._solve_pending = False

    def __getattr__(self, name):
        # Only reached when normal lookup fails: after partial_fit the solved
        # attributes appear on first access.
        if name in _SOLVED and self.__dict__.get("_solve_pending"):
            self._solve()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _warn_rank(self, stats, res, n):
        """Say why the map is not unique and what would make it so."""
        need = "min(d_x, d_y)" if self.method in ("orthogonal", "scaled") else "d_x"
        stats = F._as_stats(stats)
        causes, fixes = [], []
        centered = self.scaling is not None or self.method == "affine"
        if n - int(centered) < res.full_rank:
            causes.append(f"{n} anchors span at most {n - int(centered)} dimensions")
            fixes.append(f"use more than {res.full_rank} anchors")
        const_x = int(F._constant_columns(stats.x_ss, stats.x_mean, n).sum())
        const_y = int(F._constant_columns(stats.y_ss, stats.y_mean, n).sum())
        if const_x or const_y:
            causes.append(
                f"{const_x} source and {const_y} target features are constant on the "
                "anchors (e.g. dead ReLU units)"
            )
        if need == "d_x":
            fixes.append("use alpha > 0 or alpha='auto'")
        warn_underdetermined(
            f"{self.method} map", res.rank, f"{need}={res.full_rank}", causes, fixes,
            stacklevel=_user_stacklevel(),
        )

    # ------------------------------------------------------------------- API
    @atomic_fit
    def fit(self, X, y=None, *, target=None):
        """Fit the map on paired anchor rows of X and y.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, d_x)
            Source embeddings.
        y : array-like or Tensor of shape (n_samples, d_y)
            Paired target embeddings (row i of X and of y are the same
            sample).  Ignored when ``target`` is given (it may then hold class
            labels for ``anchors="stratified"``).
        target : array-like or Tensor of shape (n_samples, d_y), optional
            The paired target embeddings, routed as metadata inside a Pipeline
            (``set_fit_request(target=True)``); takes precedence over ``y``.

        Returns
        -------
        self : ProcrustesTranslator
        """
        self._check_params()
        X = check_input(self, X, reset=True)
        Y, labels = _validate_target(X, y, target)
        device = resolve_device(self.device, X)
        n = X.shape[0]
        if self.n_anchors is None and isinstance(self.anchors, str):
            idx = np.arange(n, dtype=np.int64)  # every row: no selection, no copy
            Xa, Ya = X, Y
        else:
            if isinstance(self.anchors, str) and self.anchors == "stratified" and labels is None:
                raise ValueError(
                    "anchors='stratified' needs class labels: fit(X, labels, target=Y)."
                )
            _, idx = resolve_anchors(
                self, X, self.n_anchors, self.anchors, y=labels,
                random_state=self.random_state, device=device,
            )
            if idx is None:
                raise ValueError(
                    "anchors must select rows (a strategy name, 1-D row indices or a "
                    "callable); explicit anchor vectors have no paired target."
                )
            Xa = X[torch.as_tensor(idx, device=X.device)] if isinstance(X, torch.Tensor) else X[idx]
            Ya = Y[torch.as_tensor(idx, device=Y.device)] if isinstance(Y, torch.Tensor) else Y[idx]
        if len(idx) < 2:
            raise ValueError(
                f"n_anchors={self.n_anchors!r} gives {len(idx)} sample; ProcrustesTranslator "
                "needs at least 2 paired anchors."
            )
        gram = _needs_gram(self.method, X.shape[1], Y.shape[1], self.scaling)
        self._set_map(_accumulate(Xa, Ya, device, gram))
        self.anchor_indices_ = idx
        return self

    @atomic_fit
    def partial_fit(self, X, y=None, *, target=None):
        """Add paired rows to the statistics; the map is solved when first used.

        Any sequence of chunks gives the map of :meth:`fit` on all their rows
        with ``n_anchors=None`` (float64, exact up to rounding): every row seen
        is an anchor, ``n_anchors`` and ``anchors`` are not used.  After
        :meth:`fit`, continues from the fitted anchors' statistics.

        Only the statistics are updated (one GEMM per chunk); the map is
        solved lazily, on the first ``transform`` / ``predict`` /
        ``inverse_transform`` / ``score`` or the first read of a solved
        attribute (``coef_``, ``map_``, ``alpha_``, ...), and then kept until
        the next chunk.  So streaming costs the statistics only, and the
        attributes read are those of today's eager solve; warnings about an
        under-determined map and the error for a zero cross-covariance come at
        that first use.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, d_x)
        y : array-like or Tensor of shape (n_samples, d_y)
            Paired target embeddings (ignored when ``target`` is given).
        target : array-like or Tensor of shape (n_samples, d_y), optional

        Returns
        -------
        self : ProcrustesTranslator
        """
        self._check_params()
        first = not hasattr(self, "stats_")
        X = check_input(self, X, reset=first)
        Y, _ = _validate_target(X, y, target)
        gram = _needs_gram(self.method, X.shape[1], Y.shape[1], self.scaling)
        if not first:
            if Y.shape[1] != self.n_features_out_:
                raise ValueError(
                    f"y has {Y.shape[1]} features, but ProcrustesTranslator is expecting "
                    f"{self.n_features_out_} target features."
                )
            if gram and self.stats_.xx is None:
                raise ValueError(
                    f"method={self.method!r} (scaling={self.scaling!r}, {X.shape[1]} -> "
                    f"{Y.shape[1]} features) needs X^T X, which the statistics so far (fitted "
                    "with a method that does not) lack; call fit or start a new partial_fit."
                )
        device = resolve_device(self.device, X)
        stats = _accumulate(X, Y, device, gram)
        if not first:
            stats = F.merge_translation_stats(F._as_stats(self.stats_, device), stats)
        self._set_stats(stats)
        self.anchor_indices_ = None
        return self

    @atomic_fit
    def fit_from_stats(self, stats):
        """Solve the map from sufficient statistics (e.g. after a map-reduce).

        Parameters
        ----------
        stats : TranslationStats
            From :func:`translation_stats` and :func:`merge_translation_stats`
            (numpy or tensors), or another translator's ``stats_``.

        Returns
        -------
        self : ProcrustesTranslator
            Equal to :meth:`fit` on all the rows behind ``stats``.  No
            ``feature_names_in_`` (statistics carry no column names).
        """
        self._check_params()
        stats = _check_stats(stats)
        device = resolve_device(self.device, stats.x_mean)
        stats = F._as_stats(stats, device)
        d_x, d_y = stats.xy.shape
        if _needs_gram(self.method, d_x, d_y, self.scaling) and stats.xx is None:
            raise ValueError(
                f"method={self.method!r} (scaling={self.scaling!r}, {d_x} -> {d_y} features) "
                "needs the statistics computed with gram=True."
            )
        self._set_map(stats)
        self.n_features_in_ = int(d_x)
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.anchor_indices_ = None
        return self

    def _apply(self, X, coef, intercept, n_outputs, out=None):
        check_batch_size(self.batch_size)
        device = resolve_device(self.device, X)
        dtype = torch_dtype(X)
        W = fitted_tensor(self, coef, device, dtype)
        if dtype == torch.float64:
            b = fitted_tensor(self, intercept, device, dtype)

            def chunk(Xc):
                return torch.addmm(b, Xc, W)
        else:
            # Folding the centering into the intercept (X @ W + b) cancels
            # |mean| against |b| in the low precision: with an offset 1e4 times
            # the spread, float32 keeps ~3 digits.  Instead subtract the data
            # mean rounded to the input dtype (exact for rows near it) and fold
            # the same rounded mean into the intercept in float64.
            forward = coef == "coef_"
            ref = self.stats_.x_mean if forward else self.stats_.y_mean
            m = np.asarray(ref).astype(np_dtype(dtype))
            b64 = getattr(self, intercept) + m.astype(np.float64) @ getattr(self, coef)
            m = torch.as_tensor(m, device=device)
            b = torch.as_tensor(b64, device=device, dtype=dtype)

            def chunk(Xc):
                return torch.addmm(b, Xc - m, W)
        with torch.no_grad():
            return apply_batched(
                chunk, X, device=device, n_outputs=n_outputs, batch_size=self.batch_size,
                out=out,
            )

    def transform(self, X, *, out=None):
        """Translate source embeddings into the target space: ``X @ coef_ + intercept_``.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        out : ndarray or Tensor of shape (n_samples, n_features_out), optional
            Where to write the result (e.g. a ``np.memmap``), see :doc:`/arrays`.

        Returns
        -------
        Y : ndarray or Tensor of shape (n_samples, n_features_out)
            Same kind as X (a tensor stays on its device), float32 kept;
            ``out`` when given.
        """
        check_is_fitted(self)
        X = check_input(self, X, reset=False)
        return self._apply(X, "coef_", "intercept_", self.n_features_out_, out)

    def predict(self, X):
        """Same values as :meth:`transform` (the translator is also a multi-output regressor).

        Like every regressor's ``predict``, it returns an array (or tensor) even
        under ``set_output(transform="pandas")``, which applies to
        :meth:`transform` only.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)

        Returns
        -------
        Y : ndarray or Tensor of shape (n_samples, n_features_out)
        """
        check_is_fitted(self)
        X = check_input(self, X, reset=False)
        return self._apply(X, "coef_", "intercept_", self.n_features_out_)

    def inverse_transform(self, X):
        """Map target-space embeddings back to the source space.

        Exact (transpose) for ``"orthogonal"`` and ``"scaled"`` when
        ``d_x <= d_y``; least squares (pseudo-inverse) for ``"linear"`` and
        ``"affine"``; a projection when ``d_x > d_y`` (see Notes of the class).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_out)
            Target-space embeddings.

        Returns
        -------
        X_source : ndarray or Tensor of shape (n_samples, n_features_in)
        """
        check_is_fitted(self)
        Y = check_input(None, X, reset=False, input_name="X")
        if Y.shape[1] != self.n_features_out_:
            raise ValueError(
                f"X has {Y.shape[1]} features, but inverse_transform of ProcrustesTranslator "
                f"is expecting {self.n_features_out_} (target-space) features."
            )
        return self._apply(Y, "inverse_coef_", "inverse_intercept_", self.n_features_in_)

    def score(self, X, y, sample_weight=None):
        """R² of :meth:`predict` against the paired target ``y`` (uniform over outputs).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        y : array-like or Tensor of shape (n_samples, n_features_out)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        pred = self.predict(X)
        Y, _ = _validate_target(pred, y, None)
        pred = to_numpy(pred) if isinstance(pred, torch.Tensor) else pred
        Y = to_numpy(Y) if isinstance(Y, torch.Tensor) else Y
        if isinstance(sample_weight, torch.Tensor):
            sample_weight = to_numpy(sample_weight)
        return float(r2_score(Y, pred, sample_weight=sample_weight))
