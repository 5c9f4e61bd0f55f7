"""Latent space translation: float64 sufficient statistics and closed-form solvers.

Maiorca et al., "Latent Space Translation via Semantic Alignment" (NeurIPS
2023).  Every closed form below needs only the sufficient statistics of the
paired rows (count, means, centered sums of squares and cross-products),
accumulated in float64 and merged exactly (Chan, Golub and LeVeque), so
``fit`` on all rows, ``partial_fit`` over chunks and a map-reduce over blocks
are the same computation.  Re-exported by :mod:`sklearn_latent.functional`.
"""

import math
from typing import NamedTuple, Optional

import torch

__all__ = [
    "TRANSLATION_METHODS",
    "TRANSLATION_SCALINGS",
    "TranslationMap",
    "TranslationStats",
    "merge_translation_stats",
    "ridge_alpha_grid",
    "solve_translation",
    "translation_stats",
]

#: Methods understood by :func:`solve_translation`.
TRANSLATION_METHODS = ("orthogonal", "scaled", "linear", "affine", "lowrank")
#: Scalings understood by :func:`solve_translation`.
TRANSLATION_SCALINGS = ("standard", "isotropic", "center", None)

_F64 = torch.float64
_EPS64 = torch.finfo(_F64).eps


class TranslationStats(NamedTuple):
    """Sufficient statistics of paired rows ``(x_i, y_i)``, mergeable exactly.

    Fields are float64 tensors (or float64 numpy arrays: every function here
    accepts both) except ``n``.

    Attributes
    ----------
    n : int
        Number of rows.
    x_mean : (d_x,)
    y_mean : (d_y,)
    x_ss : (d_x,)
        ``sum_i (x_i - x_mean) ** 2`` per column.
    y_ss : (d_y,)
        ``sum_i (y_i - y_mean) ** 2`` per column.
    xy : (d_x, d_y)
        ``sum_i (x_i - x_mean)^T (y_i - y_mean)``.
    xx : (d_x, d_x) or None
        ``sum_i (x_i - x_mean)^T (x_i - x_mean)``; only needed by the
        ``"linear"`` and ``"affine"`` methods and by ``"scaled"`` when
        ``d_x > d_y`` (``None`` saves one GEMM when it is not needed).
    """

    n: int
    x_mean: torch.Tensor
    y_mean: torch.Tensor
    x_ss: torch.Tensor
    y_ss: torch.Tensor
    xy: torch.Tensor
    xx: Optional[torch.Tensor]


class TranslationMap(NamedTuple):
    """The solved translation, folded so that ``y = x @ coef + intercept``.

    Attributes
    ----------
    coef : (d_x, d_y)
    intercept : (d_y,)
    inverse_coef : (d_y, d_x)
    inverse_intercept : (d_x,)
        ``x = y @ inverse_coef + inverse_intercept``: the exact inverse on the
        image (transpose) for ``"orthogonal"``/``"scaled"``, the
        pseudo-inverse for ``"linear"``/``"affine"``/``"lowrank"``.
    map : (d_x, d_y)
        The map between the scaled coordinates ``(x - x_mean) / x_scale`` and
        ``(y - y_mean) / y_scale``: the (semi-)orthogonal ``R`` for
        ``"orthogonal"`` and ``"scaled"`` (without the scale), the least-squares
        ``W`` for ``"linear"``, ``"affine"`` and ``"lowrank"`` (rank ``rank``).
    scale : float
        The isotropic scale of ``"scaled"``; 1.0 for the other methods.
    bias : (d_y,)
        Bias in scaled coordinates (non-zero only for ``"affine"`` with
        ``scaling=None``, where the coordinates are not centered).
    x_mean, x_scale : (d_x,)
    y_mean, y_scale : (d_y,)
        The per-space shift and scale defining the scaled coordinates
        (zeros and ones when a scaling does not apply).
    rank : int
        Numerical rank of the matrix the map is solved from (the scaled
        cross-covariance for ``"orthogonal"``/``"scaled"``, the ridge Gram
        matrix for ``"linear"``/``"affine"``).
    full_rank : int
        The rank that determines the map uniquely: ``min(d_x, d_y)`` or ``d_x``.
    alpha : float
        The ridge penalty used (the one chosen by generalized cross-validation
        for ``alpha="auto"``); 0.0 for the orthogonal methods.
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    inverse_coef: torch.Tensor
    inverse_intercept: torch.Tensor
    map: torch.Tensor
    scale: float
    bias: torch.Tensor
    x_mean: torch.Tensor
    x_scale: torch.Tensor
    y_mean: torch.Tensor
    y_scale: torch.Tensor
    rank: int
    full_rank: int
    alpha: float = 0.0


def _centered64(X):
    """float64 copy of X minus its float64 column mean (two-pass: exact for offset data)."""
    Xc = X.to(_F64, copy=True)
    mean = Xc.mean(dim=0)
    Xc.sub_(mean)
    return Xc, mean


def translation_stats(X, Y, *, gram=True):
    """Sufficient statistics of the paired rows of ``X`` (n, d_x) and ``Y`` (n, d_y).

    Computed in float64 on the tensors' device, centered on this chunk's own
    means (two passes), so float32 input with large offsets keeps float64
    accuracy.  Cost: one (d_x, d_y) GEMM, plus one (d_x, d_x) GEMM when ``gram``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import translation_stats
    >>> X, Y = torch.randn(100, 4), torch.randn(100, 3)
    >>> s = translation_stats(X, Y, gram=False)
    >>> s.n, tuple(s.xy.shape), s.xx is None
    (100, (4, 3), True)
    """
    Xc, x_mean = _centered64(X)
    Yc, y_mean = _centered64(Y)
    xy = Xc.T @ Yc
    xx = Xc.T @ Xc if gram else None
    # (column norms: one memory-bound pass, no temporary; einsum is ~20x slower here)
    x_ss = torch.linalg.vector_norm(Xc, dim=0).square_()
    y_ss = torch.linalg.vector_norm(Yc, dim=0).square_()
    return TranslationStats(int(X.shape[0]), x_mean, y_mean, x_ss, y_ss, xy, xx)


def _as_stats(stats, device=None):
    """The same statistics as float64 tensors on ``device`` (default: where they are)."""
    if device is None:
        device = stats.x_mean.device if isinstance(stats.x_mean, torch.Tensor) else "cpu"

    def conv(a):
        return None if a is None else torch.as_tensor(a, dtype=_F64, device=device)

    return TranslationStats(int(stats.n), *(conv(f) for f in stats[1:]))


def merge_translation_stats(a, b):
    """Statistics of the union of two disjoint sets of rows (exact, order free).

    Centered merging (Chan, Golub and LeVeque, 1979): the cross terms are
    ``n_a n_b / n * delta_x delta_y^T`` with ``delta`` the difference of the
    two means, so nothing cancels catastrophically on offset data.  ``xx`` is
    kept only when both sides have it.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import merge_translation_stats, translation_stats
    >>> X, Y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)
    >>> whole = translation_stats(X, Y)
    >>> parts = merge_translation_stats(translation_stats(X[:20], Y[:20]),
    ...                                 translation_stats(X[20:], Y[20:]))
    >>> bool(torch.allclose(whole.xy, parts.xy)), bool(torch.allclose(whole.xx, parts.xx))
    (True, True)
    """
    if int(a.n) == 0:
        return _as_stats(b)
    a = _as_stats(a)
    b = _as_stats(b, a.x_mean.device)
    if b.n == 0:
        return a
    n = a.n + b.n
    dx = b.x_mean - a.x_mean
    dy = b.y_mean - a.y_mean
    w = a.n * b.n / n
    xx = None
    if a.xx is not None and b.xx is not None:
        xx = a.xx + b.xx + w * torch.outer(dx, dx)
    return TranslationStats(
        n,
        a.x_mean + dx * (b.n / n),
        a.y_mean + dy * (b.n / n),
        a.x_ss + b.x_ss + w * dx * dx,
        a.y_ss + b.y_ss + w * dy * dy,
        a.xy + b.xy + w * torch.outer(dx, dy),
        xx,
    )


#: A column whose std is below this fraction of the largest column std is
#: treated as constant (dead units of real encoders sit at 1e-33 of the rest).
_DEAD_COLUMN_RTOL = 1e-8


def _constant_columns(ss, mean, n):
    """Columns whose variance is only rounding noise, judged on two scales.

    Against the column's own magnitude (the bound of scikit-learn's
    StandardScaler: ``var <= n eps var + (n eps mean)^2``) and against the
    other columns: a std below ``1e-8`` of the largest column std (a dead
    unit) is constant too, so it is never divided by.
    """
    var = (ss / n).clamp_min(0)
    own = var <= n * _EPS64 * var + (n * _EPS64 * mean) ** 2
    top = float(var.max()) if var.numel() else 0.0
    return own | (var <= _DEAD_COLUMN_RTOL**2 * top)


def _standard_scale(ss, mean, n):
    """Population std from centered sums of squares; (near-)constant columns get 1."""
    var = (ss / n).clamp_min(0)
    return torch.where(_constant_columns(ss, mean, n), torch.ones_like(var), var.sqrt())


def _needs_gram(method, d_x, d_y, scaling):
    """Whether :func:`solve_translation` needs ``X^T X`` for this method, widths and scaling."""
    return method in ("linear", "affine", "lowrank") or (
        d_x > d_y and (method == "scaled" or (method == "orthogonal" and scaling == "isotropic"))
    )


def _isotropic_scale(var, mean):
    """One std for every feature: the root of the mean per-feature variance (0 -> 1).

    The scaled coordinates then have the magnitude of standardized ones (a
    fixed ridge ``alpha`` means about what it means with ``"standard"``), but
    no single feature is divided by its own (possibly tiny) std.
    """
    total = float(var.clamp_min(0).sum())
    return torch.full_like(mean, math.sqrt(total / mean.numel()) if total > 0 else 1.0)


def _ridge_solve(G, C, alpha):
    """``(G + alpha I)^+ C`` and the numerical rank of ``G + alpha I`` (symmetric PSD G)."""
    d = G.shape[0]
    G = G.clone()
    G.diagonal().add_(alpha)
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) == 0:
        piv = L.diagonal() ** 2
        if float(piv.min()) > d * _EPS64 * float(piv.max()):
            return torch.cholesky_solve(C, L), d
    # Singular or nearly so: minimum-norm solution through the eigendecomposition.
    w, V = torch.linalg.eigh(G)
    keep = w > d * _EPS64 * float(w.abs().max())
    Vk = V[:, keep]
    return Vk @ ((Vk.T @ C) / w[keep, None]), int(keep.sum())


def _pinv(W, rank=None):
    """Pseudo-inverse of a well-conditioned map through the smaller Gram matrix, else by
    SVD; ``rank`` truncates the SVD to the top ``rank`` singular values (a low-rank map)."""
    if rank is not None:
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        top = float(S[0]) if S.numel() else 0.0
        r = min(int(rank), int((S > max(W.shape) * _EPS64 * top).sum()) if top > 0 else 0)
        return Vh[:r].T @ (U[:, :r].T / S[:r, None])
    d_x, d_y = W.shape
    small = W.T @ W if d_x >= d_y else W @ W.T
    L, info = torch.linalg.cholesky_ex(small)
    if int(info) == 0:
        piv = L.diagonal() ** 2
        # The Gram matrix squares the condition number: use it only while
        # cond(W) < 1e3 (error ~ cond^2 eps < 1e-9), else fall back to the SVD.
        if float(piv.min()) > 1e-6 * float(piv.max()):
            if d_x >= d_y:
                return torch.cholesky_solve(W.T, L)  # (W^T W)^-1 W^T
            return torch.cholesky_solve(W, L).T  # W^T (W W^T)^-1
    return torch.linalg.pinv(W)


#: Candidate ridge penalties of ``alpha="auto"``, relative to the mean
#: eigenvalue of the Gram matrix (4 per decade from 1e-6 to 1e3, and 0).
_ALPHA_DECADES = (-6.0, 3.0)
_ALPHAS_PER_DECADE = 4


def ridge_alpha_grid(eigenvalues, n_features=None):
    """The candidate penalties of ``alpha="auto"``: 0 and a log grid.

    ``mean_eig * 10 ** linspace(-6, 3, 37)`` with ``mean_eig`` the mean
    eigenvalue of the Gram matrix (its trace over ``n_features``), so the grid
    follows the scale of the data; 0 (no penalty) comes first.

    Parameters
    ----------
    eigenvalues : Tensor of shape (q,)
        Eigenvalues of the Gram matrix (or squared singular values of the
        design); only their sum is used.
    n_features : int, optional
        Width of the Gram matrix (default ``q``).

    Returns
    -------
    Tensor of shape (38,)
        float64, increasing.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import ridge_alpha_grid
    >>> grid = ridge_alpha_grid(torch.tensor([3.0, 1.0]))
    >>> float(grid[0]), float(grid[1]), float(grid[-1])
    (0.0, 2e-06, 2000.0)
    """
    w = torch.as_tensor(eigenvalues, dtype=_F64)
    d = int(n_features) if n_features is not None else max(int(w.numel()), 1)
    mean_eig = float(w.clamp_min(0).sum()) / d
    lo, hi = _ALPHA_DECADES
    steps = int(round((hi - lo) * _ALPHAS_PER_DECADE)) + 1
    grid = mean_eig * torch.logspace(lo, hi, steps, dtype=_F64, device=w.device)
    return torch.cat([torch.zeros(1, dtype=_F64, device=w.device), grid])


def _gcv_scores(w, e, yy, n, offset, alphas):
    """Generalized cross-validation of ridge for every alpha, from one eigendecomposition.

    ``w`` (q,): eigenvalues of the Gram matrix ``G = X^T X`` (the directions
    it determines); ``e`` (q,): the energy of ``X^T Y`` along each
    eigenvector (``||v_j^T X^T Y||^2``, summed over outputs); ``yy``:
    ``||Y||_F^2``; ``n`` observations, ``offset`` extra degrees of freedom
    (1 for a fitted intercept).  With ``W = (G + a I)^-1 X^T Y``::

        RSS(a) = yy - sum_j e_j (w_j + 2 a) / (w_j + a)^2
        df(a)  = offset + sum_j w_j / (w_j + a)
        GCV(a) = RSS(a) / n / (1 - df(a) / n)^2

    (Golub, Heath and Wahba, 1979); ``inf`` where ``df >= n``.
    """
    a = alphas[:, None]
    den = w[None, :] + a
    rss = (yy - (e[None, :] * (w[None, :] + 2 * a) / den.square()).sum(1)).clamp_min(0)
    df = offset + (w[None, :] / den).sum(1)
    slack = 1.0 - df / n
    scores = rss / n / slack.square()
    return torch.where(slack > 1e-9, scores, torch.full_like(scores, float("inf")))


def _ridge_gcv(G, C, yy, n, offset, alphas=None):
    """``(alpha, W, rank, alphas, scores)``: ridge ``W = (G + alpha I)^+ C`` with the
    alpha of least GCV (:func:`_gcv_scores`) on :func:`ridge_alpha_grid`.

    One eigendecomposition of ``G`` serves every candidate.  ``rank`` is the
    numerical rank of ``G + alpha I``.
    """
    d = G.shape[0]
    w, V = torch.linalg.eigh(G)
    top = float(w.abs().max()) if w.numel() else 0.0
    keep = w > d * _EPS64 * top
    wk, Vk = w[keep], V[:, keep]
    Ck = Vk.T @ C
    e = Ck.square().sum(1)
    if alphas is None:
        alphas = ridge_alpha_grid(w, d)
    scores = _gcv_scores(wk, e, float(yy), n, offset, alphas)
    best = int(torch.argmin(scores)) if bool(torch.isfinite(scores).any()) else len(alphas) - 1
    alpha = float(alphas[best])
    if alpha > 0:
        # every direction is penalized: the null directions of G carry C ~ 0
        W = V @ ((V.T @ C) / (w.clamp_min(0) + alpha)[:, None])
        rank = d
    else:
        W = Vk @ (Ck / wk[:, None])
        rank = int(keep.sum())
    return alpha, W, rank, alphas, scores


def _reduce_rank(W, G, rank):
    """Reduced-rank regression: ``W V_r V_r^T`` with ``V_r`` the top ``rank``
    eigenvectors of ``W^T G W`` (the covariance of the fitted values)."""
    d_y = W.shape[1]
    if rank >= d_y:
        return W
    _, V = torch.linalg.eigh(W.T @ (G @ W))
    Vr = V[:, d_y - rank:]
    return (W @ Vr) @ Vr.T


def solve_translation(stats, method="orthogonal", *, scaling="isotropic", alpha=0.0, rank=None):
    """Closed-form translation from sufficient statistics.

    Each space is first brought to its scaled coordinates
    ``x~ = (x - mu_x) / sigma_x`` and ``y~ = (y - mu_y) / sigma_y``
    (``scaling="isotropic"``: means, and one sigma per space, the root of its
    mean per-feature variance; ``"standard"``: means and population stds of
    the rows, constant columns -> 1; ``"center"``: sigma = 1; ``None``:
    mu = 0, sigma = 1).  With ``"isotropic"``, ``"orthogonal"`` and
    ``d_x != d_y``, sigma_x is instead ``sqrt(v / d_y)`` with ``v`` the
    variance of X that ``R`` keeps (all of it when ``d_x < d_y``,
    ``trace(R^T G R) / n`` when ``d_x > d_y``, which needs ``G``), so that
    the translation has the target's total variance.
    Then, with ``C = X~^T Y~`` and ``G = X~^T X~``:

    ``"orthogonal"``
        ``U S V^T = svd(C)``, ``R = U V^T`` (semi-orthogonal when d_x != d_y).
        When ``C`` has rank ``r < min(d_x, d_y)`` (fewer anchors than
        dimensions, constant features) only ``U_r V_r^T`` is determined and
        kept: directions the anchors do not span map to zero.
    ``"scaled"``
        ``R`` as above times ``s = trace(S) / ||X~ R||_F^2``.
    ``"linear"``
        ``W = (G + alpha I)^+ C`` (ridge least squares, no bias).
    ``"affine"``
        Least squares with a bias, closed form: ``W`` from the centered ``G``
        and ``C``, ``b = mean(y~) - mean(x~) W``; identical to ``"linear"``
        whenever ``scaling`` centers (the bias in centered coordinates is 0).
    ``"lowrank"``
        Reduced-rank regression with a bias: the ``"affine"`` ridge ``W``
        projected on the top ``rank`` right singular vectors of the fitted
        values, ``W V_r V_r^T`` with ``V_r`` the top eigenvectors of
        ``W^T G W`` (the least-squares map of rank ``rank`` when ``alpha=0``).

    ``alpha="auto"`` picks the ridge penalty of ``"linear"``, ``"affine"``
    and ``"lowrank"`` by generalized cross-validation (GCV, Golub, Heath and
    Wahba 1979) over 0 and a log grid (:func:`ridge_alpha_grid`), from one
    eigendecomposition of ``G``: the residual sum of squares and the degrees
    of freedom of every candidate follow from the eigenvalues and the energy
    of ``C`` along each eigenvector, plus ``||Y~||_F^2`` (the sums of squares
    ``y_ss``), so no refit per candidate and the choice depends only on the
    statistics: ``fit``, ``partial_fit`` and a map-reduce choose the same.
    One penalty is shared by all outputs.

    The result is folded back to raw coordinates, ``y = x @ coef + intercept``.

    Parameters
    ----------
    stats : TranslationStats
        From :func:`translation_stats` / :func:`merge_translation_stats`
        (tensors or numpy arrays); solved on the device of ``stats.x_mean``.
    method : {"orthogonal", "scaled", "linear", "affine", "lowrank"}
    scaling : {"isotropic", "standard", "center", None}
    alpha : float or "auto"
        Ridge penalty of ``"linear"``, ``"affine"`` and ``"lowrank"`` (not
        applied to the bias), in the scaled coordinates.
    rank : int, optional
        Rank of the ``"lowrank"`` map (required there, ignored otherwise).

    Returns
    -------
    TranslationMap
        float64 tensors.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import solve_translation, translation_stats
    >>> X = torch.randn(200, 5, dtype=torch.float64)
    >>> Q = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64)).Q
    >>> m = solve_translation(translation_stats(X, X @ Q + 3.0), "orthogonal", scaling="center")
    >>> bool(torch.allclose(m.map, Q)), bool(torch.allclose(X @ m.coef + m.intercept, X @ Q + 3.0))
    (True, True)
    """
    s = _as_stats(stats)
    n = s.n
    d_x, d_y = s.xy.shape
    if method not in TRANSLATION_METHODS:
        raise ValueError(
            f"method={method!r} is not supported; expected one of {TRANSLATION_METHODS}."
        )
    if scaling not in TRANSLATION_SCALINGS:
        raise ValueError(
            f"scaling={scaling!r} is not supported; expected one of {TRANSLATION_SCALINGS}."
        )
    if not (alpha == "auto" if isinstance(alpha, str) else float(alpha) >= 0):
        raise ValueError(f"alpha={alpha!r} must be a non-negative float or 'auto'.")
    if method == "lowrank":
        if rank is None or isinstance(rank, bool) or int(rank) != rank or rank < 1:
            raise ValueError(f"method='lowrank' needs rank= a positive int, got {rank!r}.")
        if rank > min(d_x, d_y):
            raise ValueError(
                f"rank={rank} exceeds min(d_x, d_y)={min(d_x, d_y)}, the largest rank of a "
                f"({d_x}, {d_y}) map."
            )
    if _needs_gram(method, d_x, d_y, scaling) and s.xx is None:
        raise ValueError(
            f"method={method!r} (scaling={scaling!r}, {d_x} -> {d_y} features) needs the "
            "statistics computed with gram=True."
        )
    zeros_x, zeros_y = torch.zeros_like(s.x_mean), torch.zeros_like(s.y_mean)
    if scaling is None:
        x_mu, y_mu = zeros_x, zeros_y
        x_sd, y_sd = torch.ones_like(s.x_mean), torch.ones_like(s.y_mean)
    else:
        x_mu, y_mu = s.x_mean, s.y_mean
        if scaling == "standard":
            x_sd, y_sd = _standard_scale(s.x_ss, s.x_mean, n), _standard_scale(s.y_ss, s.y_mean, n)
        elif scaling == "isotropic":
            x_sd = _isotropic_scale(s.x_ss / n, s.x_mean)
            y_sd = _isotropic_scale(s.y_ss / n, s.y_mean)
        else:
            x_sd, y_sd = torch.ones_like(s.x_mean), torch.ones_like(s.y_mean)

    # Moments of the scaled coordinates: about the mean when the coordinates are
    # centered or the method has a bias, about zero otherwise.
    has_bias = method in ("affine", "lowrank")
    centered = scaling is not None or has_bias
    C, G, ss, yss = s.xy, s.xx, s.x_ss, s.y_ss
    if not centered:
        C = C + n * torch.outer(s.x_mean, s.y_mean)
        G = None if G is None else G + n * torch.outer(s.x_mean, s.x_mean)
        ss = ss + n * s.x_mean**2
        yss = yss + n * s.y_mean**2
    C = C / torch.outer(x_sd, y_sd)
    if G is not None:
        G = G / torch.outer(x_sd, x_sd)
    ss = ss / x_sd**2

    scale = 1.0
    bias = zeros_y
    used_alpha = 0.0
    if method in ("orthogonal", "scaled"):
        U, S, Vh = torch.linalg.svd(C, full_matrices=False)
        full_rank = min(d_x, d_y)
        top = float(S[0]) if S.numel() else 0.0
        rank_ = int((S > max(d_x, d_y) * _EPS64 * top).sum()) if top > 0 else 0
        # Singular vectors of (numerically) zero singular values are arbitrary:
        # U V^T would rotate the directions the anchors do not determine at
        # random.  The map keeps only the determined part U_r V_r^T (a partial
        # isometry, zero elsewhere: the minimum-norm solution, as for "linear").
        M = U[:, :rank_] @ Vh[:rank_] if rank_ < full_rank else U @ Vh
        isotropic_widths = method == "orthogonal" and scaling == "isotropic" and d_x != d_y
        if isotropic_widths or method == "scaled":
            # the source's sum of squares that the map keeps: all of it onto a wider
            # target, the part in the map's row space onto a narrower one
            energy = float((M * (G @ M)).sum() if d_x > d_y else ss.sum())
        if isotropic_widths and energy > 0:
            # the translation gets the target's total variance (d_y in its scaled
            # coordinates): the source's scale follows the variance the map keeps
            x_sd = x_sd * math.sqrt(energy / n / d_y)
        if method == "scaled":
            scale = float(S.sum()) / energy if energy > 0 else 0.0
        inv = M.T / scale if scale != 0 else torch.zeros_like(M.T)
    else:
        if alpha == "auto":
            yy = float((yss / y_sd**2).sum())
            used_alpha, M, rank_, _, _ = _ridge_gcv(G, C, yy, n, int(centered))
        else:
            used_alpha = float(alpha)
            M, rank_ = _ridge_solve(G, C, used_alpha)
        full_rank = d_x
        if method == "lowrank":
            M = _reduce_rank(M, G, int(rank))
        if has_bias and scaling is None:
            bias = s.y_mean - s.x_mean @ M
        inv = _pinv(M, None if method != "lowrank" else int(rank))

    coef = (scale * M) / x_sd[:, None] * y_sd[None, :]
    intercept = y_mu + y_sd * (bias - (x_mu / x_sd) @ (scale * M))
    inverse_coef = inv / y_sd[:, None] * x_sd[None, :]
    inverse_intercept = x_mu + x_sd * (-((y_mu / y_sd + bias) @ inv))
    return TranslationMap(
        coef, intercept, inverse_coef, inverse_intercept, M, scale, bias,
        x_mu, x_sd, y_mu, y_sd, rank_, full_rank, used_alpha,
    )
