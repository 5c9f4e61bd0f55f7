"""Similarity of latent spaces and retrieval quality of translations.

Two families of metrics:

*Representational similarity* of two spaces ``X`` (n, d_x) and ``Y`` (n, d_y)
embedding the same n samples (rows paired, widths free):
:func:`linear_cka`, :func:`rbf_cka` (centered kernel alignment, Kornblith et
al. 2019), :func:`mutual_knn_alignment` and :func:`knn_jaccard` (agreement of
nearest-neighbour graphs, Huh et al. 2024).

*Translation quality*: translated points ``Y_pred`` against their true targets
``Y_true`` (same shape): :func:`paired_cosine_similarity`,
:func:`top_k_accuracy`, :func:`mean_reciprocal_rank` and :func:`mean_rank`,
and scikit-learn scorers built on them (:func:`get_scorer`,
:func:`make_stitching_scorer`) for ``GridSearchCV`` on paired data.

Every function accepts numpy arrays, array-likes and torch tensors on any
device (validated like the estimators' input: 2-D, finite, numeric),
computes where the first tensor argument lives (numpy: CPU), never forms an
``n x n`` matrix at once, and returns a Python float.
"""

import math
import numbers
import re

import numpy as np
import torch
from sklearn.metrics import get_scorer as _sk_get_scorer
from sklearn.metrics import make_scorer
from sklearn.utils.validation import check_is_fitted

from . import functional as F
from ._backend import (
    check_batch_size,
    check_input,
    check_option,
    to_numpy,
    to_tensor,
    torch_dtype,
)

__all__ = [
    "get_scorer",
    "get_scorer_names",
    "knn_jaccard",
    "linear_cka",
    "make_stitching_scorer",
    "mean_rank",
    "mean_reciprocal_rank",
    "mutual_knn_alignment",
    "paired_cosine_similarity",
    "rbf_cka",
    "top_k_accuracy",
]

_F64 = torch.float64
#: Elements of one row block of an ``(rows, n)`` kernel, similarity or
#: ``(rows, d)`` data block (32 MiB of float64); bounds every temporary.
_BLOCK_ELEMENTS = 1 << 22
#: Above this many rows, ``rbf_cka``'s median heuristic looks at a fixed
#: random subsample of this many rows (about 2.1 million pairs).
_MEDIAN_MAX_ROWS = 2048
#: Seed of that subsample (the same rows on every call and every device).
_MEDIAN_SEED = 0
#: Metrics accepted by the nearest-neighbour functions.
KNN_METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf")


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _check_pair(X, Y, names, func, *, min_samples=2, same_width=False, dtype=None):
    """Validate two paired inputs and return them as tensors on one device.

    The device is the first tensor argument's (numpy only: CPU).  The dtype is
    ``dtype`` when given, else float64 if either input is float64, else float32.
    """
    a, b = names
    X = check_input(None, X, reset=False, input_name=a)
    Y = check_input(None, Y, reset=False, input_name=b)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{a} and {b} must have the same number of rows (paired samples); got "
            f"{a}.shape={tuple(X.shape)} and {b}.shape={tuple(Y.shape)}."
        )
    if same_width and X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"{a} and {b} must have the same shape (row i of {a} is compared with row i "
            f"of {b}); got {a}.shape={tuple(X.shape)} and {b}.shape={tuple(Y.shape)}."
        )
    n = X.shape[0]
    if n < min_samples:
        raise ValueError(
            f"{func} needs at least {min_samples} paired samples; got {n} "
            f"({a}.shape={tuple(X.shape)})."
        )
    device = next(
        (T.device for T in (X, Y) if isinstance(T, torch.Tensor)), torch.device("cpu")
    )
    if dtype is None:
        dtype = _F64 if _F64 in (torch_dtype(X), torch_dtype(Y)) else torch.float32
    return to_tensor(X, device, dtype), to_tensor(Y, device, dtype)


def _check_k(k, low, high, what):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {k!r}.")
    if not low <= k <= high:
        raise ValueError(f"k={k} is out of range: {what} needs 1 <= k <= {high}.")
    return int(k)


def _check_constant(T, name, func):
    """Raise when every row of ``T`` equals the first (zero variance).

    Compares row blocks with row 0 and stops at the first block that differs:
    on real data one pass over the first block only.
    """
    first = T[0]
    step = _step(T.shape[1])
    for start in range(0, T.shape[0], step):
        if bool((T[start : start + step] != first).any()):
            return
    raise ValueError(
        f"{name} is constant (all {T.shape[0]} rows are equal): {func} is undefined "
        "for a space with zero variance."
    )


def _max_abs(T):
    """Largest |entry| of a float64 tensor (float32 squares always fit float64: 1)."""
    if T.dtype != _F64:
        return 1.0
    lo, hi = torch.aminmax(T)  # global: one fast pass (per-column aminmax is ~25x slower)
    return max(-_float(lo), _float(hi))


def _step(n_cols, batch_size=None):
    """Rows per block: ``batch_size`` or a block of about :data:`_BLOCK_ELEMENTS`."""
    if batch_size is not None:
        return batch_size
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _float(t):
    return float(t.item() if isinstance(t, torch.Tensor) else t)


# --------------------------------------------------------------------------
# centered kernel alignment
# --------------------------------------------------------------------------
def _gram_scale(max_abs):
    """1, or a power of two bringing ``max_abs`` near 1 when its squares would not fit float64."""
    m = _float(max_abs)
    if 2.0**-250 < m < 2.0**250:
        return 1.0
    return math.ldexp(1.0, math.frexp(m)[1] - 1)


def _shifted_block(T, start, stop, shift, scale):
    """float64 ``(T[start:stop] - shift) / scale`` as a new tensor (never a view of ``T``)."""
    out = torch.sub(T[start:stop].to(_F64), shift)
    return out if scale == 1.0 else out.div_(scale)


def linear_cka(X, Y):
    """Linear centered kernel alignment of two paired spaces.

    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with ``Xc``,
    ``Yc`` the column-centered data: the linear-kernel CKA of Kornblith et al.
    (2019), computed in feature space (cost O(n (d_x + d_y)^2), memory
    O((d_x + d_y)^2): never an ``n x n`` Gram matrix, so 10^6 rows work).
    The cross products accumulate in float64 over row blocks, on data shifted
    by the first block's mean (and divided by a power of two where the squares
    would leave float64's range), so float32 input with large offsets and
    float64 input of extreme magnitude keep float64 accuracy.

    In [0, 1]; 1 when ``Y`` is an orthogonal map of ``X`` times a scalar plus
    a translation.  Invariant to orthogonal maps, isotropic scaling and
    translation of either space; *not* invariant to anisotropic scaling or
    general invertible linear maps.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s (the widths may differ).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the row counts differ, ``n < 2``, or either space is constant
        (zero variance: CKA is undefined).

    See Also
    --------
    rbf_cka : CKA with Gaussian kernels.

    References
    ----------
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton. "Similarity of Neural Network
    Representations Revisited", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import linear_cka
    >>> X = np.arange(32.0).reshape(8, 4)
    >>> Y = np.array([[1, 2, 27, 22], [0, 28, 15, 18], [12, 9, 14, 8], [11, 19, 16, 13],
    ...               [31, 20, 10, 3], [24, 5, 7, 29], [4, 30, 21, 6], [26, 17, 23, 25]])
    >>> round(linear_cka(X, Y), 4)
    0.2815
    >>> Q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    >>> round(linear_cka(X, 3.0 * Y @ Q + 1.0), 4)   # rotation, scale, shift
    0.2815
    """
    X, Y = _check_pair(X, Y, ("X", "Y"), "linear_cka")
    n = X.shape[0]
    _check_constant(X, "X", "linear_cka")
    _check_constant(Y, "Y", "linear_cka")
    # Exact powers of two, only where float64 squares would overflow or underflow.
    x_scale, y_scale = _gram_scale(_max_abs(X)), _gram_scale(_max_abs(Y))
    step = _step(X.shape[1] + Y.shape[1])
    x_shift = X[:step].to(_F64).mean(dim=0)
    y_shift = Y[:step].to(_F64).mean(dim=0)
    dx, dy = X.shape[1], Y.shape[1]
    dev = X.device
    xx = torch.zeros((dx, dx), dtype=_F64, device=dev)
    yy = torch.zeros((dy, dy), dtype=_F64, device=dev)
    xy = torch.zeros((dx, dy), dtype=_F64, device=dev)
    x_sum = torch.zeros(dx, dtype=_F64, device=dev)
    y_sum = torch.zeros(dy, dtype=_F64, device=dev)
    for start in range(0, n, step):
        xb = _shifted_block(X, start, start + step, x_shift, x_scale)
        yb = _shifted_block(Y, start, start + step, y_shift, y_scale)
        xx.addmm_(xb.T, xb)
        yy.addmm_(yb.T, yb)
        xy.addmm_(xb.T, yb)
        x_sum += xb.sum(dim=0)
        y_sum += yb.sum(dim=0)
    # Centered cross products from the shifted ones: G - s s^T / n.
    xx.sub_(torch.outer(x_sum, x_sum), alpha=1.0 / n)
    yy.sub_(torch.outer(y_sum, y_sum), alpha=1.0 / n)
    xy.sub_(torch.outer(x_sum, y_sum), alpha=1.0 / n)
    num = torch.linalg.matrix_norm(xy).square()
    den = torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy)
    return min(1.0, max(0.0, _float(num / den)))


def _check_sigma(sigma):
    """``None``, a positive number, or a pair of them (one per space)."""
    pair = sigma if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    if len(pair) != 2:
        raise ValueError(
            f"sigma={sigma!r}: expected None, a positive number or a pair (sigma_X, sigma_Y)."
        )
    out = []
    for s in pair:
        if s is None:
            out.append(None)
            continue
        if isinstance(s, bool) or not isinstance(s, numbers.Real):
            raise TypeError(f"sigma must be None, a positive number or a pair, got {sigma!r}.")
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"sigma={sigma!r} must be positive and finite.")
        out.append(float(s))
    return out


def _median_rows(n):
    """Rows used by the median heuristic: all, or a fixed random subsample."""
    if n <= _MEDIAN_MAX_ROWS:
        return None
    gen = torch.Generator().manual_seed(_MEDIAN_SEED)
    return torch.randperm(n, generator=gen)[:_MEDIAN_MAX_ROWS].sort().values


def _median_sq_distance(T, name):
    """Lower median of the non-zero squared distances between distinct rows of ``T``."""
    n = T.shape[0]
    project = F._relative_projector(T, "euclidean")
    # Squared norms of the rows about their mean: a squared distance below
    # rounding error of them is a duplicate pair, not a distance.
    sq = (T - T.mean(dim=0)).square().sum(dim=1)
    noise = 64 * torch.finfo(T.dtype).eps
    values = []
    step = _step(n)
    for start in range(0, n - 1, step):
        stop = min(start + step, n)
        D = project(T[start:stop]).square_()
        rows = torch.arange(start, stop, device=T.device)
        upper = torch.arange(n, device=T.device)[None, :] > rows[:, None]
        big = D > noise * (sq[start:stop, None] + sq[None, :])
        values.append(D[upper & big])
    values = torch.cat(values)
    if values.numel() == 0:
        raise ValueError(
            f"{name} has no two distinct rows: the median heuristic for sigma is undefined."
        )
    return torch.median(values)


def rbf_cka(X, Y, *, sigma=None, batch_size=None):
    """Centered kernel alignment with Gaussian (RBF) kernels.

    ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma_X^2))`` and ``L`` likewise for
    ``Y``; ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the biased
    estimator ``HSIC(K, L) = tr(K H L H)``, ``H = I - 11^T / n`` (Kornblith et
    al. 2019).  ``HSIC`` is expanded as
    ``sum(K * L) - 2/n (K1).(L1) + (1^T K 1)(1^T L 1) / n^2``, so the kernels
    are visited once, in row blocks (memory O(batch_size * n), never ``n x n``
    at once; time O(n^2 (d_x + d_y))), accumulating in float64.

    Invariant to orthogonal maps and translations of either space, and to
    isotropic scaling when ``sigma`` follows the data (the median heuristic).

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s.
    sigma : None, float or pair of floats, default=None
        Kernel bandwidth, one for both spaces or ``(sigma_X, sigma_Y)`` (an
        entry may be ``None``).  ``None``: the median heuristic, per space,
        ``sigma = sqrt(median of the non-zero squared distances between
        distinct rows)``, where the median of an even count is the lower
        middle value (as :func:`torch.median`).  Above 2048 rows the median is
        taken over the pairs of a fixed random subsample of 2048 rows (seed 0:
        the same rows on every call), which keeps it O(2048^2) and
        deterministic.
    batch_size : int or None, default=None
        Rows per kernel block; ``None`` picks blocks of about 4 million
        entries.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the row counts differ, ``n < 2``, either space is constant, or a
        kernel is constant up to rounding (``sigma`` far larger than the
        distances).

    See Also
    --------
    linear_cka : the linear-kernel CKA, O(n d^2).

    References
    ----------
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton. "Similarity of Neural Network
    Representations Revisited", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import rbf_cka
    >>> X = np.arange(32.0).reshape(8, 4)
    >>> Y = np.array([[1, 2, 27, 22], [0, 28, 15, 18], [12, 9, 14, 8], [11, 19, 16, 13],
    ...               [31, 20, 10, 3], [24, 5, 7, 29], [4, 30, 21, 6], [26, 17, 23, 25]])
    >>> round(rbf_cka(X, Y), 4)
    0.3945
    >>> round(rbf_cka(X, Y, batch_size=3), 4)
    0.3945
    """
    sigmas = _check_sigma(sigma)
    batch_size = check_batch_size(batch_size)
    X, Y = _check_pair(X, Y, ("X", "Y"), "rbf_cka", dtype=_F64)
    n = X.shape[0]
    # K only depends on ||x_i - x_j|| / sigma: data whose squared distances would
    # leave float64's range are divided by a power of two (exact), sigma with them.
    _check_constant(X, "X", "rbf_cka")
    _check_constant(Y, "Y", "rbf_cka")
    x_scale, y_scale = _gram_scale(_max_abs(X)), _gram_scale(_max_abs(Y))
    X = X if x_scale == 1.0 else X / x_scale
    Y = Y if y_scale == 1.0 else Y / y_scale
    rows = _median_rows(n)
    gammas = []
    for T, name, s, c in ((X, "X", sigmas[0], x_scale), (Y, "Y", sigmas[1], y_scale)):
        if s is None:
            sub = T if rows is None else T[rows.to(T.device)]
            gammas.append(-0.5 / _median_sq_distance(sub, name))
        else:
            gammas.append(-0.5 / (s / c) ** 2)
    proj_x = F._relative_projector(X, "euclidean")
    proj_y = F._relative_projector(Y, "euclidean")
    kl = torch.zeros((), dtype=_F64, device=X.device)
    kk, ll = kl.clone(), kl.clone()
    k_rows = torch.empty(n, dtype=_F64, device=X.device)
    l_rows = torch.empty_like(k_rows)
    step = _step(n, batch_size)
    for start in range(0, n, step):
        stop = min(start + step, n)
        i = torch.arange(stop - start, device=X.device)
        K = proj_x(X[start:stop]).square_().mul_(gammas[0]).exp_()
        L = proj_y(Y[start:stop]).square_().mul_(gammas[1]).exp_()
        K[i, i + start] = 1.0  # exact self-similarity (no rounding of ||x - x||)
        L[i, i + start] = 1.0
        kl += torch.vdot(K.reshape(-1), L.reshape(-1))
        kk += torch.vdot(K.reshape(-1), K.reshape(-1))
        ll += torch.vdot(L.reshape(-1), L.reshape(-1))
        k_rows[start:stop] = K.sum(dim=1)
        l_rows[start:stop] = L.sum(dim=1)
    k_tot, l_tot = k_rows.sum(), l_rows.sum()

    def hsic(ab, a_rows, b_rows, a_tot, b_tot):
        return ab - 2.0 / n * torch.dot(a_rows, b_rows) + a_tot * b_tot / n**2

    h_kl = hsic(kl, k_rows, l_rows, k_tot, l_tot)
    h_kk = hsic(kk, k_rows, k_rows, k_tot, k_tot)
    h_ll = hsic(ll, l_rows, l_rows, l_tot, l_tot)
    # The expansion cancels when a kernel is nearly constant (sigma >> distances).
    tol = 1e3 * torch.finfo(_F64).eps
    for h, tot, name in ((h_kk, kk, "X"), (h_ll, ll, "Y")):
        if not bool(h > tol * tot):
            raise ValueError(
                f"The RBF kernel of {name} is constant up to rounding (sigma={sigma!r} is "
                f"too large for the distances in {name}): CKA is undefined."
            )
    return min(1.0, max(0.0, _float(h_kl / torch.sqrt(h_kk * h_ll))))


# --------------------------------------------------------------------------
# nearest-neighbour agreement
# --------------------------------------------------------------------------
def _knn(T, k, metric, step):
    """Indices (n, k) of each row's k nearest other rows (self excluded)."""
    n = T.shape[0]
    project = F._relative_projector(T, metric)
    largest = metric in F.SIMILARITIES
    fill = -math.inf if largest else math.inf
    out = torch.empty((n, k), dtype=torch.long, device=T.device)
    for start in range(0, n, step):
        stop = min(start + step, n)
        i = torch.arange(stop - start, device=T.device)
        S = project(T[start:stop])
        S[i, i + start] = fill
        out[start:stop] = torch.topk(S, k, dim=1, largest=largest, sorted=False).indices
    return out


def _knn_overlap(X, Y, k, metric, batch_size, func):
    """Per-row size of the intersection of the two k-nearest-neighbour sets."""
    metric = check_option(metric, "metric", KNN_METRICS)
    k = _check_k(k, 1, X.shape[0] - 1, f"{func} on {X.shape[0]} samples (self excluded)")
    batch_size = check_batch_size(batch_size)
    step = _step(X.shape[0], batch_size)
    nx = _knn(X, k, metric, step)
    ny = _knn(Y, k, metric, step)
    common = torch.empty(X.shape[0], dtype=_F64, device=X.device)
    rows = max(1, _BLOCK_ELEMENTS // (k * k))
    for start in range(0, X.shape[0], rows):
        a = nx[start : start + rows, :, None]
        b = ny[start : start + rows, None, :]
        common[start : start + rows] = (a == b).any(dim=2).sum(dim=1)
    return common, k


def mutual_knn_alignment(X, Y, *, k=10, metric="cosine", batch_size=None):
    """Mean fraction of shared k nearest neighbours (mutual k-NN alignment).

    ``mean_i |N_k^X(i) & N_k^Y(i)| / k``, where ``N_k^X(i)`` is the set of
    the k rows of ``X`` nearest to row i (row i itself excluded) under
    ``metric`` (Huh et al. 2024).  In [0, 1]; about ``k / (n - 1)`` for
    unrelated spaces.  Neighbours are found by row blocks of the similarity
    matrix (memory O(block * n)); ties between equally near rows are broken
    arbitrarily.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s.
    k : int, default=10
        Neighbourhood size, ``1 <= k <= n - 1``.
    metric : str, default="cosine"
        One of ``"cosine"``, ``"angular"``, ``"dot"`` (largest = nearest),
        ``"euclidean"``, ``"l1"``, ``"linf"`` (smallest = nearest), computed by
        :func:`sklearn_latent.functional.pairwise`'s kernels.
    batch_size : int or None, default=None
        Rows per similarity block; ``None`` picks blocks of about 4 million
        entries.

    Returns
    -------
    float

    See Also
    --------
    knn_jaccard : Jaccard index of the same neighbourhoods.

    References
    ----------
    M. Huh, B. Cheung, T. Wang, P. Isola. "The Platonic Representation
    Hypothesis", ICML 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import mutual_knn_alignment
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 16))
    >>> Q = np.linalg.qr(rng.normal(size=(16, 16)))[0]
    >>> mutual_knn_alignment(X, X @ Q, k=5)     # cosine neighbourhoods survive rotations
    1.0
    >>> mutual_knn_alignment(X, rng.normal(size=(200, 16)), k=5) < 0.1
    True
    """
    X, Y = _check_pair(X, Y, ("X", "Y"), "mutual_knn_alignment")
    common, k = _knn_overlap(X, Y, k, metric, batch_size, "mutual_knn_alignment")
    return _float(common.mean() / k)


def knn_jaccard(X, Y, *, k=10, metric="cosine", batch_size=None):
    """Mean Jaccard index of the k-nearest-neighbour sets of two paired spaces.

    ``mean_i |N_k^X(i) & N_k^Y(i)| / |N_k^X(i) | N_k^Y(i)|`` with the
    neighbourhoods of :func:`mutual_knn_alignment` (self excluded).  In
    [0, 1]; the score reported for relative representations by Moschella et
    al. (2023).

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s.
    k : int, default=10
        Neighbourhood size, ``1 <= k <= n - 1``.
    metric : str, default="cosine"
        As in :func:`mutual_knn_alignment`.
    batch_size : int or None, default=None
        Rows per similarity block.

    Returns
    -------
    float

    See Also
    --------
    mutual_knn_alignment : intersection over k instead of over the union.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import knn_jaccard
    >>> X = np.random.default_rng(0).normal(size=(100, 8))
    >>> knn_jaccard(X, 2.0 * X + 1.0, k=5, metric="euclidean")
    1.0
    """
    X, Y = _check_pair(X, Y, ("X", "Y"), "knn_jaccard")
    common, k = _knn_overlap(X, Y, k, metric, batch_size, "knn_jaccard")
    return _float((common / (2 * k - common)).mean())


# --------------------------------------------------------------------------
# retrieval of translated points
# --------------------------------------------------------------------------
def _ranks(Y_pred, Y_true, batch_size, func):
    """rank_i = 1 + #{j: S_ij > S_ii}, S = norm(Y_pred) norm(Y_true)^T by row blocks."""
    zero = ~(Y_pred != 0).any(dim=1)
    if bool(zero.any()):
        where = torch.nonzero(zero).reshape(-1)[:5].tolist()
        raise ValueError(
            f"{func}: Y_pred has {int(zero.sum())} all-zero row(s) (first: {where}); their "
            "cosine with every target is 0, so their rank is undefined."
        )
    n = Y_pred.shape[0]
    project = F._relative_projector(Y_true, "cosine")
    ranks = torch.empty(n, dtype=torch.long, device=Y_pred.device)
    step = _step(n, check_batch_size(batch_size))
    for start in range(0, n, step):
        stop = min(start + step, n)
        i = torch.arange(stop - start, device=Y_pred.device)
        S = project(Y_pred[start:stop])
        diag = S[i, i + start]
        ranks[start:stop] = 1 + (S > diag[:, None]).sum(dim=1)
    return ranks


def _check_retrieval(Y_pred, Y_true, func, min_samples=2):
    return _check_pair(
        Y_pred, Y_true, ("Y_pred", "Y_true"), func, min_samples=min_samples, same_width=True
    )


def paired_cosine_similarity(Y_pred, Y_true):
    """Mean cosine similarity between each translated row and its true target.

    ``mean_i cos(Y_pred_i, Y_true_i)``; a zero row has cosine 0 with
    everything (as :func:`sklearn_latent.functional.pairwise`).  In [-1, 1].

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points, e.g. ``translator.transform(X_source)``.
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings in the target space.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import paired_cosine_similarity
    >>> round(paired_cosine_similarity([[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [1.0, 1.0]]), 4)
    0.8536
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "paired_cosine_similarity", 1)
    n = Y_pred.shape[0]
    total = torch.zeros((), dtype=_F64, device=Y_pred.device)
    step = _step(Y_pred.shape[1])
    for start in range(0, n, step):
        a = F._safe_normalize(Y_pred[start : start + step])
        b = F._safe_normalize(Y_true[start : start + step])
        total += (a * b).sum(dim=1).sum(dtype=_F64)
    return _float(total / n)


def top_k_accuracy(Y_pred, Y_true, *, k=1, batch_size=None):
    """Fraction of translated rows whose true target is among their k most similar targets.

    With ``S = norm(Y_pred) norm(Y_true)^T`` and
    ``rank_i = 1 + #{j: S_ij > S_ii}``: ``mean_i [rank_i <= k]``.  Ties count
    in favour of the true target (only exact ties, e.g. duplicate rows of
    ``Y_true``).  ``S`` is computed by row blocks (memory O(block * n)).

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (the candidates; row i is the answer to query i).
    k : int, default=1
        ``1 <= k <= n``.
    batch_size : int or None, default=None
        Query rows per block.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Also if a row of ``Y_pred`` is all zeros (its rank is undefined).

    Examples
    --------
    >>> from sklearn_latent.metrics import top_k_accuracy
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(top_k_accuracy(Y_pred, Y_true), 4), top_k_accuracy(Y_pred, Y_true, k=2)
    (0.6667, 1.0)
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "top_k_accuracy")
    k = _check_k(k, 1, Y_pred.shape[0], f"top_k_accuracy on {Y_pred.shape[0]} samples")
    ranks = _ranks(Y_pred, Y_true, batch_size, "top_k_accuracy")
    return _float((ranks <= k).sum()) / ranks.numel()


def mean_reciprocal_rank(Y_pred, Y_true, *, batch_size=None):
    """Mean reciprocal rank of each translated row's true target.

    ``MRR = mean_i 1 / rank_i`` with ``rank_i`` as in :func:`top_k_accuracy`.
    In (0, 1]; 1 when every true target is the most similar candidate.

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (candidates).
    batch_size : int or None, default=None
        Query rows per block.

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn_latent.metrics import mean_reciprocal_rank
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(mean_reciprocal_rank(Y_pred, Y_true), 4)   # ranks 1, 2, 1
    0.8333
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "mean_reciprocal_rank")
    ranks = _ranks(Y_pred, Y_true, batch_size, "mean_reciprocal_rank")
    return _float((1.0 / ranks.to(_F64)).mean())


def mean_rank(Y_pred, Y_true, *, batch_size=None):
    """Mean rank of each translated row's true target (1 is best; lower is better).

    ``mean_i rank_i`` with ``rank_i`` as in :func:`top_k_accuracy`; about
    ``(n + 1) / 2`` for unrelated points.

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (candidates).
    batch_size : int or None, default=None
        Query rows per block.

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn_latent.metrics import mean_rank
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(mean_rank(Y_pred, Y_true), 4)
    1.3333
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "mean_rank")
    ranks = _ranks(Y_pred, Y_true, batch_size, "mean_rank")
    return _float(ranks.to(_F64).mean())


# --------------------------------------------------------------------------
# scikit-learn scorers
# --------------------------------------------------------------------------
#: Methods a scorer calls on the estimator, in order of preference: ``predict``
#: (ProcrustesTranslator, RelativeTranslator, PLSRegression, any regressor),
#: else ``transform`` (a Pipeline ending in a transformer, e.g.
#: RelativeProjector -> InverseRelativeProjector).
_RESPONSE = ("predict", "transform")


def _scorer_target(y_true, target):
    """The true paired embeddings: routed ``target`` metadata, else ``y``."""
    Y = y_true if target is None else target
    if Y is None or np.ndim(Y) != 2:
        got = "no y" if Y is None else f"a {np.ndim(Y)}-D y (class labels?)"
        raise ValueError(
            "This scorer compares predictions with the true paired target embeddings, a "
            f"2-D array (n_samples, d), passed as y; got {got}. With class labels as y, "
            "route the embeddings as metadata instead: "
            "sklearn.set_config(enable_metadata_routing=True), "
            "scorer.set_score_request(target=True), then search.fit(X, labels, target=Y)."
        )
    return Y


def _paired_cosine_score(y_true, y_pred, *, target=None):
    return paired_cosine_similarity(y_pred, _scorer_target(y_true, target))


def _mrr_score(y_true, y_pred, *, target=None):
    return mean_reciprocal_rank(y_pred, _scorer_target(y_true, target))


def _top_k_score(y_true, y_pred, *, k=1, target=None):
    return top_k_accuracy(y_pred, _scorer_target(y_true, target), k=k)


def _mean_rank_score(y_true, y_pred, *, target=None):
    return mean_rank(y_pred, _scorer_target(y_true, target))


def _labels(classifier, Y):
    return np.asarray(classifier.predict(to_numpy(Y) if isinstance(Y, torch.Tensor) else Y))


def _stitching_agreement(y_true, y_pred, *, classifier, target=None):
    Y_true = _scorer_target(y_true, target)
    Y_pred, Y_true = _check_retrieval(y_pred, Y_true, "the stitching scorer", 1)
    return float(np.mean(_labels(classifier, Y_pred) == _labels(classifier, Y_true)))


_TOP_K = re.compile(r"top_([1-9][0-9]*)_accuracy")
_SCORERS = {
    "paired_cosine": lambda: make_scorer(_paired_cosine_score, response_method=_RESPONSE),
    "mrr": lambda: make_scorer(_mrr_score, response_method=_RESPONSE),
    "neg_mean_rank": lambda: make_scorer(
        _mean_rank_score, response_method=_RESPONSE, greater_is_better=False
    ),
}


def get_scorer_names():
    """Names understood by :func:`get_scorer` besides scikit-learn's own.

    ``"top_<k>_accuracy"`` works for every positive ``k``; the list shows
    ``top_1_accuracy`` and ``top_5_accuracy``.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from sklearn_latent.metrics import get_scorer_names
    >>> get_scorer_names()
    ['mrr', 'neg_mean_rank', 'paired_cosine', 'top_1_accuracy', 'top_5_accuracy']
    """
    return sorted([*_SCORERS, "top_1_accuracy", "top_5_accuracy"])


def get_scorer(scoring):
    """A scikit-learn scorer for translations, by name.

    The scorers are ``scorer(estimator, X, y)`` callables (made by
    :func:`sklearn.metrics.make_scorer`, greater is better) that compare
    ``estimator.predict(X)`` (or ``transform(X)`` when the estimator has no
    ``predict``, e.g. a Pipeline ending in a transformer) with ``y``, the true
    paired target embeddings, so they plug into ``GridSearchCV``,
    ``cross_validate`` and multi-metric dicts on paired data.

    ``"paired_cosine"``
        :func:`paired_cosine_similarity`.
    ``"mrr"``
        :func:`mean_reciprocal_rank`.
    ``"top_1_accuracy"``, ``"top_5_accuracy"``, any ``"top_<k>_accuracy"``
        :func:`top_k_accuracy` (k must not exceed the rows of a test fold).
    ``"neg_mean_rank"``
        minus :func:`mean_rank` (lower ranks are better, so the scorer
        negates them, like scikit-learn's ``"neg_mean_squared_error"``).

    Any other string, a callable or ``None`` goes to
    :func:`sklearn.metrics.get_scorer`.

    With metadata routing on (``sklearn.set_config(enable_metadata_routing=True)``)
    the true embeddings can instead travel as ``target`` metadata when ``y``
    holds class labels: ``get_scorer("mrr").set_score_request(target=True)``
    and ``search.fit(X, labels, target=Y)`` (see
    :class:`~sklearn_latent.ProcrustesTranslator`'s ``target``).

    Parameters
    ----------
    scoring : str, callable or None
        A name listed by :func:`get_scorer_names`, or anything
        :func:`sklearn.metrics.get_scorer` accepts.

    Returns
    -------
    callable
        A fresh scorer object on every call.

    See Also
    --------
    make_stitching_scorer : agreement of a target-space classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.metrics import get_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 8))
    >>> Y = X @ np.linalg.qr(rng.normal(size=(8, 8)))[0] + 0.1 * rng.normal(size=(200, 8))
    >>> search = GridSearchCV(
    ...     ProcrustesTranslator(),
    ...     {"method": ["orthogonal", "linear"]},
    ...     scoring={"mrr": get_scorer("mrr"), "top1": get_scorer("top_1_accuracy")},
    ...     refit="mrr",
    ... ).fit(X, Y)
    >>> search.best_params_, round(float(search.best_score_), 2)
    ({'method': 'orthogonal'}, 1.0)
    """
    if isinstance(scoring, str):
        if scoring in _SCORERS:
            return _SCORERS[scoring]()
        match = _TOP_K.fullmatch(scoring)
        if match:
            return make_scorer(_top_k_score, response_method=_RESPONSE, k=int(match.group(1)))
        if scoring == "mean_rank":
            raise ValueError(
                "scoring='mean_rank': lower ranks are better, and scorers are "
                "greater-is-better; use 'neg_mean_rank'."
            )
        try:
            return _sk_get_scorer(scoring)
        except ValueError as exc:
            raise ValueError(
                f"scoring={scoring!r} is not a valid scorer name; sklearn_latent's are "
                f"{get_scorer_names()} (also 'top_<k>_accuracy'), scikit-learn's are "
                "listed by sklearn.metrics.get_scorer_names()."
            ) from exc
    return _sk_get_scorer(scoring)


def make_stitching_scorer(classifier):
    """Scorer of zero-shot stitching that needs no labels.

    ``classifier`` was fitted on the *target* space.  The score of a
    translator on paired data ``(X, y)`` is the fraction of rows where the
    classifier gives the same class to the translated source,
    ``classifier.predict(estimator.predict(X))`` (``transform`` when the
    estimator has no ``predict``), as to the true target embedding,
    ``classifier.predict(y)``: 1 when the translation never changes a
    decision.  No class labels are needed, so it scores translators on any
    paired data; with labels, stitching accuracy is
    ``make_pipeline(FrozenEstimator(translator), FrozenEstimator(classifier)).score(X, labels)``.

    Parameters
    ----------
    classifier : fitted estimator with ``predict``
        Fitted on target-space embeddings; it is used as is, never refitted.

    Returns
    -------
    callable
        ``scorer(estimator, X, y)`` (a :func:`sklearn.metrics.make_scorer`
        object, greater is better); with metadata routing it also accepts the
        target embeddings as ``target`` metadata
        (``.set_score_request(target=True)``).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``classifier`` is not fitted.
    TypeError
        If it has no ``predict``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.metrics import make_stitching_scorer
    >>> rng = np.random.default_rng(0)
    >>> Y = rng.normal(size=(300, 6))
    >>> labels = (Y[:, 0] > 0).astype(int)
    >>> clf = LogisticRegression().fit(Y, labels)      # target-space classifier
    >>> X = Y @ np.linalg.qr(rng.normal(size=(6, 6)))[0]  # a rotated source space
    >>> scores = cross_val_score(ProcrustesTranslator(scaling="center"), X, Y, cv=3,
    ...                          scoring=make_stitching_scorer(clf))
    >>> scores.round(3).tolist()
    [1.0, 1.0, 1.0]
    """
    if not callable(getattr(classifier, "predict", None)):
        raise TypeError(
            f"classifier must be a fitted estimator with a predict method, got "
            f"{type(classifier).__name__}."
        )
    check_is_fitted(
        classifier,
        msg=(
            f"This {type(classifier).__name__} instance is not fitted yet: "
            "make_stitching_scorer needs a classifier already fitted on the target space "
            "(call fit(Y_target, labels) first)."
        ),
    )
    return make_scorer(_stitching_agreement, response_method=_RESPONSE, classifier=classifier)
