"""Anchor discovery from a few seed pairs (Cannistraci et al., 2023)."""

import copy
import math
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_scalar
from sklearn.utils.validation import check_is_fitted

from . import functional as F
from ._backend import (
    atomic_fit,
    auto_batch_rows,
    check_batch_size,
    check_input,
    check_option,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .translate import ProcrustesTranslator

__all__ = ["AnchorMatcher", "discover_anchors"]

MATCHINGS = ("mutual_nn", "sinkhorn")


def _check_seeds(seeds, n_x, n_y):
    """(s, 2) int64 array of distinct in-range index pairs, or a clear error."""
    if seeds is None:
        raise ValueError(
            "seeds are required: give a (n_seeds, 2) array of known parallel pairs "
            "(row of X, row of Y); anchor discovery without seeds is not supported."
        )
    seeds = to_numpy(seeds) if isinstance(seeds, torch.Tensor) else np.asarray(seeds)
    if seeds.dtype.kind not in "iu":
        raise TypeError(f"seeds must be integer row indices, got dtype {seeds.dtype}.")
    if seeds.ndim != 2 or seeds.shape[1] != 2 or seeds.shape[0] == 0:
        raise ValueError(
            f"seeds must have shape (n_seeds, 2) with n_seeds >= 1, got {seeds.shape}."
        )
    for col, (name, n) in enumerate((("X", n_x), ("Y", n_y))):
        s = seeds[:, col]
        if s.min() < 0 or s.max() >= n:
            raise ValueError(
                f"seeds[:, {col}] must lie in [0, {n}) (the rows of {name}, n_samples={n}); got "
                f"values in "
                f"[{s.min()}, {s.max()}]."
            )
        if np.unique(s).shape[0] != s.shape[0]:
            raise ValueError(f"seeds[:, {col}] repeats a row of {name}.")
    return seeds.astype(np.int64)


def _rows(Z, idx):
    """Rows ``idx`` (numpy int array) of a validated array or tensor."""
    return Z[torch.as_tensor(idx, device=Z.device)] if isinstance(Z, torch.Tensor) else Z[idx]


def _relative(Z, idx, center):
    """Column-centered cosine relative representation of Z against its rows ``idx``."""
    A = Z[idx]
    c = A.to(torch.float64).mean(dim=0).to(Z.dtype) if center else None
    R = F.relative_projection(Z, A, "cosine", center=c)
    return R - R.mean(dim=0)


def _mutual_nn_chunked(RX, RY, batch_size):
    """Mutual nearest neighbours under the cosine of the relative representations."""
    n, m = RX.shape[0], RY.shape[0]
    if batch_size == "auto":  # an (rows, m) similarity block within working_memory
        batch_size = auto_batch_rows(RX.shape[1], m, RX.element_size(), n)
    step = n if batch_size is None else batch_size
    best_col = torch.empty(n, dtype=torch.int64, device=RX.device)
    best_val = torch.empty(n, dtype=RX.dtype, device=RX.device)
    col_val = torch.full((m,), -math.inf, dtype=RX.dtype, device=RX.device)
    col_arg = torch.zeros(m, dtype=torch.int64, device=RX.device)
    for start in range(0, n, step):
        S = F.pairwise(RX[start : start + step], RY, "cosine")
        best_val[start : start + step], best_col[start : start + step] = S.max(dim=1)
        v, a = S.max(dim=0)
        better = v > col_val
        col_val = torch.where(better, v, col_val)
        col_arg = torch.where(better, a + start, col_arg)
    rows = torch.arange(n, device=RX.device)
    keep = col_arg[best_col] == rows
    return rows[keep], best_col[keep], best_val[keep]


def _match(RX, RY, matching, epsilon, batch_size):
    if matching == "mutual_nn":
        return _mutual_nn_chunked(RX, RY, batch_size)
    S = F.pairwise(RX, RY, "cosine")
    P = F.sinkhorn(S, epsilon) * min(S.shape)  # ~1 for a confident one-to-one match
    return F.mutual_nearest_neighbors(P)


def discover_anchors(
    X, Y, seeds, n_anchors, *, matching="mutual_nn", n_iter=5, epsilon=0.05, center=True,
    batch_size=None, device=None,
):
    """Grow a few known parallel pairs into many by matching relative representations.

    Two *unpaired* sets of embeddings of (partly) the same items and a few
    known pairs (seeds): every round describes both sets against the current
    anchors (cosine relative representations, which are comparable across
    the spaces since the anchors are parallel), matches the rows of X and Y
    whose relative representations agree (mutual nearest neighbours or an
    entropic optimal transport plan), keeps the most confident matches as new
    anchors and re-estimates.  The number of anchors grows geometrically from
    ``len(seeds)`` to ``n_anchors`` over ``n_iter`` rounds.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_x, d_x)
    Y : array-like or Tensor of shape (n_y, d_y)
    seeds : array-like of shape (n_seeds, 2)
        Known pairs ``(row of X, row of Y)``; always kept.
    n_anchors : int
        Total number of pairs wanted (seeds included), at most ``min(n_x, n_y)``.
    matching : {"mutual_nn", "sinkhorn"}, default="mutual_nn"
        Mutual nearest neighbours under the cosine of the relative
        representations (chunked: memory ``O(batch_size * n_y)``), or mutual
        argmax of the Sinkhorn plan (uniform marginals, entropic
        regularization ``epsilon``; dense ``n_x * n_y``).
    n_iter : int, default=5
        Rounds of matching and re-estimation.
    epsilon : float, default=0.05
        Entropic regularization of ``"sinkhorn"``.
    center : bool, default=True
        Center each space by its anchors' mean before the cosine.
    batch_size : int, "auto" or None, default=None
        Rows of X per chunk of the mutual-nearest-neighbour search (``"auto"``:
        from scikit-learn's ``working_memory``).
    device : None, "auto", str or torch.device, default=None

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2)
        Seeds first, then discovered pairs by decreasing confidence;
        ``n_pairs <= n_anchors`` (fewer when not enough mutual matches exist).
    confidence : ndarray of shape (n_pairs,)
        Cosine of the matched relative representations (``"mutual_nn"``) or
        transported mass times ``min(n_x, n_y)`` (``"sinkhorn"``, 1 for a
        certain one-to-one match); ``inf`` for the seeds.

    References
    ----------
    .. [1] I. Cannistraci, L. Moschella, V. Maiorca, M. Fumero, A. Norelli and
       E. Rodolà, "Bootstrapping parallel anchors for relative
       representations", ICLR 2023 Tiny Papers.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import discover_anchors
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 10))
    >>> perm = rng.permutation(300)                       # Y lists the items in another order
    >>> Y = (X @ ortho_group.rvs(10, random_state=0))[perm]
    >>> seeds = np.stack([perm[:12], np.arange(12)], axis=1)
    >>> pairs, conf = discover_anchors(X, Y, seeds, 100)
    >>> pairs.shape, float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))
    ((100, 2), 1.0)
    """
    check_option(matching, "matching", MATCHINGS)
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral):
        raise TypeError(f"n_iter must be an int, got {n_iter!r}.")
    check_scalar(int(n_iter), "n_iter", numbers.Integral, min_val=1)
    check_scalar(epsilon, "epsilon", numbers.Real, min_val=0.0, include_boundaries="neither")
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be a bool, got {center!r}.")
    check_batch_size(batch_size)
    X = check_input(None, X, reset=False, input_name="X")
    Y = check_input(None, Y, reset=False, input_name="Y")
    seeds = _check_seeds(seeds, X.shape[0], Y.shape[0])
    if isinstance(n_anchors, bool) or not isinstance(n_anchors, numbers.Integral):
        raise TypeError(f"n_anchors must be an int, got {n_anchors!r}.")
    limit = min(X.shape[0], Y.shape[0])
    if not seeds.shape[0] <= n_anchors <= limit:
        raise ValueError(
            f"n_anchors={n_anchors} must lie in [n_seeds={seeds.shape[0]}, "
            f"min(n_x, n_y)={limit}]."
        )
    dev = resolve_device(device, X)
    dtype = torch_dtype(X)
    Xt, Yt = to_tensor(X, dev, dtype), to_tensor(Y, dev, dtype)
    s = seeds.shape[0]
    seed_x = torch.as_tensor(seeds[:, 0], device=dev)
    seed_y = torch.as_tensor(seeds[:, 1], device=dev)
    ix, iy = seed_x, seed_y
    conf = torch.full((s,), math.inf, dtype=torch.float64, device=dev)
    with torch.no_grad():
        for r in range(n_iter):
            target = round(s * (n_anchors / s) ** ((r + 1) / n_iter))
            target = n_anchors if r == n_iter - 1 else max(s, min(n_anchors, target))
            rows, cols, score = _match(_relative(Xt, ix, center), _relative(Yt, iy, center),
                                       matching, epsilon, batch_size)
            free = ~(torch.isin(rows, seed_x) | torch.isin(cols, seed_y))
            rows, cols, score = rows[free], cols[free], score[free].to(torch.float64)
            order = torch.argsort(score, descending=True, stable=True)[: target - s]
            ix = torch.cat([seed_x, rows[order]])
            iy = torch.cat([seed_y, cols[order]])
            conf = torch.cat([conf[:s], score[order]])
    pairs = torch.stack([ix, iy], dim=1)
    return to_numpy(pairs), to_numpy(conf)


class AnchorMatcher(TransformerMixin, BaseEstimator):
    """Discover parallel anchors from a few seeds, then translate X into Y's space.

    ``fit(X, y)`` takes two *unpaired* spaces, ``X`` and ``y`` (2-D, the
    second space, any number of rows), runs :func:`discover_anchors` from
    ``seeds`` and fits a :class:`~sklearn_latent.ProcrustesTranslator` on the
    discovered pairs; ``transform`` maps X-space rows into Y's space (zero-shot
    stitching: a classifier trained on Y applies to them).

    Parameters
    ----------
    n_anchors : int, default=100
        Pairs to discover, seeds included.
    seeds : array-like of shape (n_seeds, 2)
        Known parallel pairs ``(row of X, row of y)`` (like the explicit
        ``anchors`` indices of :class:`~sklearn_latent.RelativeProjector`, a
        parameter of the data the estimator is fitted on).  Required.
    matching : {"mutual_nn", "sinkhorn"}, default="mutual_nn"
    n_iter : int, default=5
    epsilon : float, default=0.05
    center : bool, default=True
        See :func:`discover_anchors`.
    method : {"orthogonal", "scaled", "linear", "affine"}, default="orthogonal"
        Translator fitted on the discovered pairs.
    batch_size : int, "auto" or None, default=None
        Rows per chunk of the matching and of ``transform`` (see
        :func:`discover_anchors` and :doc:`/arrays`).
    device : None, "auto", str or torch.device, default=None

    Attributes
    ----------
    matched_pairs_ : ndarray of shape (n_pairs, 2)
        Seeds first, then discovered pairs by decreasing confidence.
    confidence_ : ndarray of shape (n_pairs,)
        ``inf`` for the seeds.
    is_seed_ : ndarray of bool of shape (n_pairs,)
    translator_ : ProcrustesTranslator
        Fitted on ``X[matched_pairs_[:, 0]]`` and ``y[matched_pairs_[:, 1]]``.
    n_features_in_ : int

    See Also
    --------
    discover_anchors : The function.

    References
    ----------
    .. [1] I. Cannistraci, L. Moschella, V. Maiorca, M. Fumero, A. Norelli and
       E. Rodolà, "Bootstrapping parallel anchors for relative
       representations", ICLR 2023 Tiny Papers.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import AnchorMatcher
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 10))
    >>> Q = ortho_group.rvs(10, random_state=0)
    >>> perm = rng.permutation(300)
    >>> seeds = np.stack([perm[:12], np.arange(12)], axis=1)
    >>> matcher = AnchorMatcher(50, seeds=seeds).fit(X, (X @ Q)[perm])
    >>> pairs = matcher.matched_pairs_
    >>> pairs.shape, float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))   # precision
    ((50, 2), 1.0)
    >>> matcher.transform(X).shape
    (300, 10)
    """

    def __init__(
        self,
        n_anchors=100,
        *,
        seeds=None,
        matching="mutual_nn",
        n_iter=5,
        epsilon=0.05,
        center=True,
        method="orthogonal",
        batch_size=None,
        device=None,
    ):
        self.n_anchors = n_anchors
        self.seeds = seeds
        self.matching = matching
        self.n_iter = n_iter
        self.epsilon = epsilon
        self.center = center
        self.method = method
        self.batch_size = batch_size
        self.device = device

    @atomic_fit
    def fit(self, X, y=None):
        """Discover the pairs and fit the translator.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_x, d_x)
        y : array-like or Tensor of shape (n_y, d_y)
            The second space (unpaired with X apart from the seeds).

        Returns
        -------
        self : AnchorMatcher
        """
        X = check_input(self, X, reset=True)
        if y is None:
            raise ValueError(
                "AnchorMatcher requires y to be passed, but the target y is None: pass the "
                "second space's embeddings (2-D)."
            )
        ndim = y.ndim if isinstance(y, torch.Tensor) else np.asarray(y).ndim
        if ndim != 2:
            raise ValueError(
                f"y must be the 2-D embeddings of the second space, got {ndim}-D input."
            )
        Y = check_input(None, y, reset=False, input_name="y")
        pairs, conf = discover_anchors(
            X, Y, self.seeds, self.n_anchors, matching=self.matching, n_iter=self.n_iter,
            epsilon=self.epsilon, center=self.center, batch_size=self.batch_size,
            device=self.device,
        )
        self.translator_ = ProcrustesTranslator(
            self.method, device=self.device, batch_size=self.batch_size
        ).fit(
            _rows(X, pairs[:, 0]), _rows(Y, pairs[:, 1])
        )
        self.matched_pairs_ = pairs
        self.confidence_ = conf
        self.is_seed_ = np.isinf(conf)
        return self

    def transform(self, X, *, out=None):
        """X-space rows translated into the second space.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        out : ndarray or Tensor of shape (n_samples, d_y), optional
            Where to write the result (e.g. a ``np.memmap``), see :doc:`/arrays`.

        Returns
        -------
        ndarray or Tensor of shape (n_samples, d_y)
            ``out`` when given.
        """
        check_is_fitted(self)
        batch_size = check_batch_size(self.batch_size)
        X = check_input(self, X, reset=False)
        translator = self.translator_
        if (translator.batch_size, translator.device) != (batch_size, self.device):
            # parameters changed since fit: apply the fitted map with the current ones
            translator = copy.copy(translator).set_params(batch_size=batch_size,
                                                           device=self.device)
        # X is validated above: apply the map without a second validation pass
        return translator._apply(X, "coef_", "intercept_", translator.n_features_out_, out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
