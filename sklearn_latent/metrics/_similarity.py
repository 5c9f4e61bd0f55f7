"""Representational similarity of two spaces: CKA and nearest-neighbour agreement."""

import math
import numbers

import torch

from .. import functional as F
from .._backend import (
    check_batch_size,
    check_option,
)
from ._common import (
    _BLOCK_ELEMENTS,
    _F64,
    _MEDIAN_MAX_ROWS,
    _MEDIAN_SEED,
    KNN_METRICS,
    _cka_from_stats,
    _check_constant,
    _check_k,
    _feature_stats,
    _hsic_u_terms,
    _ratio_u,
    _check_pair,
    _duplicate_groups,
    _float,
    _gram_scale,
    _max_abs,
    _step,
)


def linear_cka(X, Y, *, unbiased=False):
    """Linear centered kernel alignment of two paired spaces (a similarity).

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

    The biased (plug-in) HSIC inflates CKA on small samples: independent
    spaces score about ``d / n`` (0.2 at n = 32).  ``unbiased=True`` uses
    the unbiased HSIC estimator of Song et al. (2012) (REFERENCE.md), still in
    feature space (O(n d^2), the diagonal terms from the squared row norms):
    near 0 on independent data at any n (it can be slightly negative), and
    equal to the biased value as n grows.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s (the widths may differ).
    unbiased : bool, default=False
        Use the unbiased HSIC estimator (needs ``n >= 4``).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the row counts differ, ``n < 3`` (two centered points are always
        aligned: any two spaces would score 1), or either space is constant
        (zero variance: CKA is undefined).

    See Also
    --------
    rbf_cka : CKA with Gaussian kernels.

    References
    ----------
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton. "Similarity of Neural Network
    Representations Revisited", ICML 2019.

    L. Song, A. Smola, A. Gretton, J. Bedo, K. Borgwardt. "Feature Selection
    via Dependence Maximization", JMLR 2012 (the unbiased HSIC).

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
    >>> rng = np.random.default_rng(0)
    >>> A, B = rng.normal(size=(32, 64)), rng.normal(size=(32, 64))   # independent
    >>> round(linear_cka(A, B), 2), bool(abs(linear_cka(A, B, unbiased=True)) < 0.1)
    (0.68, True)
    """
    unbiased = _check_bool(unbiased, "unbiased")
    # Each input stays in its own kind and dtype; blocks are converted on the fly.
    X, Y, dev = _check_pair(
        X, Y, ("X", "Y"), "linear_cka", min_samples=4 if unbiased else 3, convert=False
    )
    cka = _float(_cka_from_stats(_feature_stats(X, Y, dev, rows=unbiased), unbiased))
    return min(1.0, cka) if unbiased else min(1.0, max(0.0, cka))


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


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


def _median_sq_distance(T, name, keep=None):
    """Lower median of the non-zero squared distances between distinct rows of ``T``.

    ``keep``, a list, receives the squared-distance row blocks (of
    :func:`_step` rows), for reuse by the caller.
    """
    n = T.shape[0]
    project = F._relative_projector(T, "euclidean")
    # Squared norms of the rows about their mean: a squared distance below
    # rounding error of them is a duplicate pair, not a distance.
    sq = (T - T.mean(dim=0)).square().sum(dim=1)
    noise = 64 * torch.finfo(T.dtype).eps
    values = []
    step = _step(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        D = project(T[start:stop]).square_()
        if keep is not None:
            keep.append(D)
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


def rbf_cka(X, Y, *, sigma=None, unbiased=False, batch_size=None):
    """Centered kernel alignment with Gaussian (RBF) kernels (a similarity).

    ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma_X^2))`` and ``L`` likewise for
    ``Y``; ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the biased
    estimator ``HSIC(K, L) = tr(K H L H)``, ``H = I - 11^T / n`` (Kornblith et
    al. 2019).  ``HSIC`` is expanded as
    ``sum(K * L) - 2/n (K1).(L1) + (1^T K 1)(1^T L 1) / n^2``, so the kernels
    are visited once, in row blocks (memory O(batch_size * n), never ``n x n``
    at once; time O(n^2 (d_x + d_y))), accumulating in float64.  Up to 2048
    rows (with ``batch_size=None``) the squared distances computed for the
    median heuristic, at most 4 million per space, are reused for the kernels.

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
    unbiased : bool, default=False
        Use the unbiased HSIC estimator of Song et al. (2012) (see
        :func:`linear_cka`; needs ``n >= 4``): the same single pass over the
        kernel blocks, with the diagonal removed from the three sums.
    batch_size : int or None, default=None
        Rows per kernel block; ``None`` picks blocks of about 4 million
        entries.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the row counts differ, ``n < 3``, either space is constant, or a
        kernel is constant up to rounding (``sigma`` far larger than the
        distances).

    See Also
    --------
    linear_cka : the linear-kernel CKA, O(n d^2).

    References
    ----------
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton. "Similarity of Neural Network
    Representations Revisited", ICML 2019.

    L. Song, A. Smola, A. Gretton, J. Bedo, K. Borgwardt. "Feature Selection
    via Dependence Maximization", JMLR 2012 (the unbiased HSIC).

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
    unbiased = _check_bool(unbiased, "unbiased")
    batch_size = check_batch_size(batch_size)
    X, Y = _check_pair(
        X, Y, ("X", "Y"), "rbf_cka", min_samples=4 if unbiased else 3, dtype=_F64
    )
    n = X.shape[0]
    # K only depends on ||x_i - x_j|| / sigma: data whose squared distances would
    # leave float64's range are divided by a power of two (exact), sigma with them.
    _check_constant(X, "X", "rbf_cka")
    _check_constant(Y, "Y", "rbf_cka")
    x_scale, y_scale = _gram_scale(_max_abs(X)), _gram_scale(_max_abs(Y))
    X = X if x_scale == 1.0 else X / x_scale
    Y = Y if y_scale == 1.0 else Y / y_scale
    rows = _median_rows(n)
    # Up to _MEDIAN_MAX_ROWS rows (at most 4 million distances per space) with the
    # default blocks, the distances of the median pass are kept for the kernels.
    reuse = rows is None and batch_size is None
    gammas, cached = [], []
    for T, name, s, c in ((X, "X", sigmas[0], x_scale), (Y, "Y", sigmas[1], y_scale)):
        keep = [] if reuse and s is None else None
        if s is None:
            sub = T if rows is None else T[rows.to(T.device)]
            gammas.append(-0.5 / _median_sq_distance(sub, name, keep))
        else:
            gammas.append(-0.5 / (s / c) ** 2)
        cached.append(keep)
    proj_x = F._relative_projector(X, "euclidean")
    proj_y = F._relative_projector(Y, "euclidean")
    kl = torch.zeros((), dtype=_F64, device=X.device)
    kk, ll = kl.clone(), kl.clone()
    k_rows = torch.empty(n, dtype=_F64, device=X.device)
    l_rows = torch.empty_like(k_rows)
    step = _step(n, batch_size)

    def sq_distances(b, start, stop, T, project):
        return cached[b].pop(0) if cached[b] else project(T[start:stop]).square_()

    for start in range(0, n, step):
        stop = min(start + step, n)
        i = torch.arange(stop - start, device=X.device)
        K = sq_distances(0, start, stop, X, proj_x).mul_(gammas[0]).exp_()
        L = sq_distances(1, start, stop, Y, proj_y).mul_(gammas[1]).exp_()
        K[i, i + start] = 1.0  # exact self-similarity (no rounding of ||x - x||)
        L[i, i + start] = 1.0
        kl += torch.vdot(K.reshape(-1), L.reshape(-1))
        kk += torch.vdot(K.reshape(-1), K.reshape(-1))
        ll += torch.vdot(L.reshape(-1), L.reshape(-1))
        k_rows[start:stop] = K.sum(dim=1)
        l_rows[start:stop] = L.sum(dim=1)
    k_tot, l_tot = k_rows.sum(), l_rows.sum()
    if unbiased:  # zero diagonals: K_ii = L_ii = 1
        k_rows -= 1.0
        l_rows -= 1.0

        def hsic_u(ab, a_rows, b_rows):
            return _hsic_u_terms(n, ab - n, a_rows.sum(), b_rows.sum(), torch.dot(a_rows, b_rows))

        cka = _ratio_u(
            hsic_u(kl, k_rows, l_rows), hsic_u(kk, k_rows, k_rows), hsic_u(ll, l_rows, l_rows),
            "rbf_cka",
        )
        return min(1.0, _float(cka))

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
def _knn(T, k, metric, step, name="X", func="mutual_knn_alignment", values=False):
    """Indices (n, k) of each row's k nearest other rows (self excluded), nearest first.

    ``values=True`` also returns their similarities or distances.

    Raises when ties in the data make a neighbourhood undefined: an all-zero
    row under ``cosine``/``angular``/``dot`` (equally similar to every row),
    or a row whose k-th and (k+1)-th neighbours are duplicates of each other
    (equal rows; for cosine and angular, rows of the same direction up to a
    power of two), so which one is in the neighbourhood is pure tie-breaking.
    Detected exactly (a sort of the rows) at the cost of one more neighbour.
    """
    n = T.shape[0]
    if metric in F.SIMILARITIES + ("angular",):
        zero = ~(T != 0).any(dim=1)
        if bool(zero.any()):
            where = torch.nonzero(zero).reshape(-1)[:5].tolist()
            raise ValueError(
                f"{func}: {name} has {int(zero.sum())} all-zero row(s) (first: {where}); "
                f"under metric={metric!r} they are equally similar to every row, so their "
                "neighbourhoods are undefined."
            )
    groups = _duplicate_groups(T, direction=metric in ("cosine", "angular"))
    kk = k + 1 if groups is not None and k + 1 < n else k
    out, vals = F.knn_search(T, kk, metric, batch_size=step)
    if kk > k:
        tied = groups[out[:, k - 1]] == groups[out[:, k]]
        if bool(tied.any()):
            where = torch.nonzero(tied).reshape(-1)[:5].tolist()
            raise ValueError(
                f"{func}: {name} has duplicate rows that tie for the k-th nearest neighbour "
                f"of {int(tied.sum())} row(s) (first: {where}; k={k}), so those "
                "neighbourhoods are undefined. Remove the duplicate rows or change k."
            )
        out, vals = out[:, :k], vals[:, :k]
    return (out, vals) if values else out


def _knn_overlap(X, Y, k, metric, batch_size, func):
    """Per-row size of the intersection of the two k-nearest-neighbour sets."""
    metric = check_option(metric, "metric", KNN_METRICS)
    k = _check_k(
        k, 1, X.shape[0] - 2,
        f"{func} on {X.shape[0]} samples (self excluded, and k = n - 1 takes every row)",
    )
    batch_size = check_batch_size(batch_size)
    _check_constant(X, "X", func)
    _check_constant(Y, "Y", func)
    step = _step(X.shape[0], batch_size)
    nx = _knn(X, k, metric, step, "X", func)
    ny = _knn(Y, k, metric, step, "Y", func)
    common = torch.empty(X.shape[0], dtype=_F64, device=X.device)
    rows = max(1, _BLOCK_ELEMENTS // (k * k))
    for start in range(0, X.shape[0], rows):
        a = nx[start : start + rows, :, None]
        b = ny[start : start + rows, None, :]
        common[start : start + rows] = (a == b).any(dim=2).sum(dim=1)
    return common, k


def mutual_knn_alignment(X, Y, *, k=10, metric="cosine", batch_size=None):
    """Mean fraction of shared k nearest neighbours (mutual k-NN alignment; a similarity).

    ``mean_i |N_k^X(i) & N_k^Y(i)| / k``, where ``N_k^X(i)`` is the set of
    the k rows of ``X`` nearest to row i (row i itself excluded) under
    ``metric`` (Huh et al. 2024).  In [0, 1]; about ``k / (n - 1)`` for
    unrelated spaces.  Invariant to whatever keeps each space's
    neighbourhoods: orthogonal maps and isotropic scaling of either space,
    and translation for ``"euclidean"``, ``"l1"``, ``"linf"``; not invariant
    to translation under ``"cosine"``, ``"angular"``, ``"dot"``, nor to
    anisotropic scaling or other maps that reorder neighbours.  Neighbours are found by row blocks of the similarity
    matrix (memory O(block * n)).  Where the data make a neighbourhood
    undefined (a constant space, all-zero rows under a cosine or dot metric,
    duplicate rows tied for the k-th place) it raises instead of letting
    tie-breaking decide the score.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s.
    k : int, default=10
        Neighbourhood size, ``1 <= k <= n - 2`` (with ``k = n - 1`` every
        neighbourhood is every other row and any two spaces score 1).
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

    Raises
    ------
    ValueError
        If the row counts differ, ``k`` is out of range, either space is
        constant, or ties in the data make a neighbourhood undefined.

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
    X, Y = _check_pair(X, Y, ("X", "Y"), "mutual_knn_alignment", min_samples=3)
    common, k = _knn_overlap(X, Y, k, metric, batch_size, "mutual_knn_alignment")
    return _float(common.mean() / k)


def knn_jaccard(X, Y, *, k=10, metric="cosine", batch_size=None):
    """Mean Jaccard index of the k-nearest-neighbour sets of two paired spaces (a similarity).

    ``mean_i |N_k^X(i) & N_k^Y(i)| / |N_k^X(i) | N_k^Y(i)|`` with the
    neighbourhoods of :func:`mutual_knn_alignment` (self excluded).  In
    [0, 1]; the score reported for relative representations by Moschella et
    al. (2023).  Same invariances as :func:`mutual_knn_alignment`.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        First space.
    Y : array-like or Tensor of shape (n_samples, d_y)
        Second space, rows paired with ``X``'s.
    k : int, default=10
        Neighbourhood size, ``1 <= k <= n - 2`` (with ``k = n - 1`` every
        neighbourhood is every other row and any two spaces score 1).
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
    X, Y = _check_pair(X, Y, ("X", "Y"), "knn_jaccard", min_samples=3)
    common, k = _knn_overlap(X, Y, k, metric, batch_size, "knn_jaccard")
    return _float((common / (2 * k - common)).mean())


# --------------------------------------------------------------------------
# CKNNA: CKA restricted to mutual nearest neighbours (sparse, O(n k))
# --------------------------------------------------------------------------
def _sparse_hsic_u(n, ia, ja, va, ib, jb, vb):
    """Unbiased HSIC of two sparse zero-diagonal kernels given as COO triplets.

    As Huh et al.'s ``hsic_unbiased`` on the dense masked kernels:
    ``tr(A B) = sum_ij A_ij B_ji``, ``1^T A 1``, ``1^T A B 1 =
    colsum(A) . rowsum(B)``.  ``tr(A B)`` looks up each ``(j, i)`` of A among
    B's sorted keys: O(nnz log nnz).
    """
    kb = ib * n + jb
    order = torch.argsort(kb)
    kb, vb_sorted = kb[order], vb[order]
    ka_t = ja * n + ia
    pos = torch.searchsorted(kb, ka_t).clamp_max(max(kb.numel() - 1, 0))
    hit = kb[pos] == ka_t
    tr = (va * torch.where(hit, vb_sorted[pos], torch.zeros_like(va))).sum()
    col_a = torch.zeros(n, dtype=_F64, device=va.device).index_add_(0, ja, va)
    row_b = torch.zeros(n, dtype=_F64, device=va.device).index_add_(0, ib, vb)
    return _hsic_u_terms(n, tr, va.sum(), vb.sum(), torch.dot(col_a, row_b))


def cknna(X, Y, *, k=10, normalize=True, batch_size=None):
    """Centered kernel nearest-neighbour alignment of Huh et al. (2024) (a similarity).

    CKA restricted to mutual neighbours: with ``K = X X^T``, ``L = Y Y^T``
    (rows L2-normalized first when ``normalize=True``, as Huh et al. do:
    cosine kernels) and the masks ``M_K`` (``j`` among the k largest
    ``K_ij``, ``j != i``), ``M_L`` likewise,
    ``CKNNA = HSIC(M_K M_L * K, M_K M_L * L) / sqrt(HSIC(M_K * K, M_K * K)
    HSIC(M_L * L, M_L * L))`` with the unbiased HSIC estimator, exactly as the
    authors' ``cknna(..., unbiased=True)``.  The masked kernels have at most
    k entries per row and are kept sparse: O(n k) memory after a chunked
    top-k search (O(batch_size * n)), O(n^2 d) time for the search.

    Unlike CKA it only looks at local structure.  Invariant to orthogonal
    maps of either space, and (``normalize=True``) to rescaling of rows; not
    invariant to translation (inner products change) or anisotropic scaling.
    About 0 for unrelated spaces, 1 for identical ones.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
    Y : array-like or Tensor of shape (n_samples, d_y)
        Rows paired with ``X``'s.
    k : int, default=10
        Neighbours, ``1 <= k <= n - 2``.
    normalize : bool, default=True
        L2-normalize rows (cosine kernels and neighbourhoods); ``False`` uses
        raw inner products.
    batch_size : int or None, default=None
        Rows per similarity block.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If either space is constant, ties make neighbourhoods undefined (as
        in :func:`mutual_knn_alignment`), ``n < 5``, or a masked self-HSIC
        is not positive.

    References
    ----------
    M. Huh, B. Cheung, T. Wang, P. Isola. "The Platonic Representation
    Hypothesis", ICML 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import cknna
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 8))
    >>> Q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    >>> round(cknna(X, X @ Q, k=10), 6)
    1.0
    >>> abs(cknna(X, rng.normal(size=(300, 8)), k=10)) < 0.1
    True
    """
    normalize = _check_bool(normalize, "normalize")
    X, Y = _check_pair(X, Y, ("X", "Y"), "cknna", min_samples=5, dtype=_F64)
    n = X.shape[0]
    k = _check_k(k, 1, n - 2, f"cknna on {n} samples (self excluded)")
    batch_size = check_batch_size(batch_size)
    _check_constant(X, "X", "cknna")
    _check_constant(Y, "Y", "cknna")
    metric = "cosine" if normalize else "dot"
    step = _step(n, batch_size)
    nx, kx = _knn(X, k, metric, step, "X", "cknna", values=True)
    ny, ly = _knn(Y, k, metric, step, "Y", "cknna", values=True)
    rows = torch.arange(n, device=X.device).repeat_interleave(k)
    # entries of both masks: position p of nx[i] found in ny[i]
    both = torch.empty((n, k), dtype=torch.bool, device=X.device)
    l_at = torch.empty((n, k), dtype=_F64, device=X.device)
    block = max(1, _BLOCK_ELEMENTS // (k * k))
    for start in range(0, n, block):
        eq = nx[start : start + block, :, None] == ny[start : start + block, None, :]
        both[start : start + block] = eq.any(dim=2)
        pos = eq.to(torch.uint8).argmax(dim=2)
        l_at[start : start + block] = ly[start : start + block].gather(1, pos)
    m = both.reshape(-1)
    ix, jx = rows[m], nx.reshape(-1)[m]
    h_kl = _sparse_hsic_u(n, ix, jx, kx.reshape(-1)[m], ix, jx, l_at.reshape(-1)[m])
    jk, vk = nx.reshape(-1), kx.reshape(-1)
    jl, vl = ny.reshape(-1), ly.reshape(-1)
    h_kk = _sparse_hsic_u(n, rows, jk, vk, rows, jk, vk)
    h_ll = _sparse_hsic_u(n, rows, jl, vl, rows, jl, vl)
    return min(1.0, _float(_ratio_u(h_kl, h_kk, h_ll, "cknna")))
