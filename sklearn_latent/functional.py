"""Stateless torch kernels: the one implementation of every formula.

Functions here take and return :class:`torch.Tensor` on any device, do no
input validation (the estimators validate once at the boundary) and keep no
state.  They are what the estimators, the torch modules and the distributed
helpers call.

Similarities and distances
--------------------------
``cosine``
    ``norm(x) . norm(a)``; a zero vector has cosine 0 with everything.
``angular``
    ``arccos(cosine)`` in radians, in ``[0, pi]``.
``dot``
    ``x . a``.
``euclidean``, ``l1``, ``linf``, ``lp``
    Minkowski distances ``||x - a||_p``.

Cosine, dot and euclidean are computed with one GEMM each (euclidean as
``||x||^2 + ||a||^2 - 2 x.a`` clamped at 0), never through an ``(n, k, d)``
broadcast.
"""

import math

import torch

__all__ = [
    "METRICS",
    "SIMILARITIES",
    "inverse_relative_projection",
    "layer_normalize",
    "normalized_anchor_inverse",
    "pairwise",
    "relative_projection",
    "sparsify",
]

#: Every metric name understood by :func:`pairwise`.
METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf", "lp")
#: Metrics whose larger values mean "more similar" (the rest are distances).
SIMILARITIES = ("cosine", "dot")
#: Metrics that only depend on differences ``x - a`` (translation invariant).
_DIFFERENCE_METRICS = ("euclidean", "l1", "linf", "lp")

_EPS = {torch.float16: 1e-4, torch.bfloat16: 1e-3, torch.float32: 1e-12, torch.float64: 1e-300}


def _safe_normalize(X):
    """Rows divided by their L2 norm; zero rows stay zero (never NaN)."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return X / norms.clamp_min(_EPS.get(X.dtype, 1e-12))


def _prepare(anchors, metric, center):
    """Anchor-side quantities computed once per call, reused for every chunk."""
    if center is not None:
        anchors = anchors - center
    if metric in ("cosine", "angular"):
        return _safe_normalize(anchors)
    if metric == "euclidean":
        return anchors, (anchors * anchors).sum(dim=1)
    return anchors


def _pairwise_prepared(X, prepared, metric, center, p):
    if center is not None:
        X = X - center
    if metric in ("cosine", "angular"):
        out = _safe_normalize(X) @ prepared.T
        if metric == "angular":
            out = torch.arccos(out.clamp_(-1.0, 1.0))
        return out
    if metric == "dot":
        return X @ prepared.T
    if metric == "euclidean":
        A, a_sq = prepared
        x_sq = (X * X).sum(dim=1, keepdim=True)
        out = torch.addmm(a_sq.unsqueeze(0), X, A.T, alpha=-2.0)
        return out.add_(x_sq).clamp_min_(0.0).sqrt_()
    if metric == "l1":
        return _minkowski(X, prepared, 1.0)
    if metric == "linf":
        return _minkowski(X, prepared, math.inf)
    if metric == "lp":
        return torch.cdist(X, prepared, p=float(p))
    raise ValueError(f"metric={metric!r} is not supported; expected one of {METRICS}.")


def _effective_center(anchors, metric, center):
    # Difference metrics do not change under a common shift; subtracting the
    # anchor mean anyway removes the cancellation of ||x||^2 + ||a||^2 - 2x.a
    # on data with large offsets.
    if center is None and metric in _DIFFERENCE_METRICS:
        return anchors.mean(dim=0)
    return center


def pairwise(X, anchors, metric="cosine", *, center=None, p=2.0):
    """Similarities or distances between rows of ``X`` (n, d) and ``anchors`` (k, d).

    Parameters
    ----------
    X, anchors : Tensor
        Same device and dtype.
    metric : str
        One of :data:`METRICS`.
    center : Tensor of shape (d,) or None
        Subtracted from both sides first (changes cosine, angular and dot; the
        distances are translation invariant anyway).
    p : float
        Order of the ``"lp"`` distance.

    Returns
    -------
    Tensor of shape (n, k)
    """
    center = _effective_center(anchors, metric, center)
    return _pairwise_prepared(X, _prepare(anchors, metric, center), metric, center, p)


def sparsify(R, top_k=None, exponent=1.0):
    """ASIF-style sparse relative representation.

    Keeps the ``top_k`` largest entries of each row (the rest become 0) and
    raises the result to ``exponent`` with its sign kept
    (``sign(r) * |r| ** exponent``, so negative similarities never give NaN).
    """
    if top_k is not None and top_k < R.shape[1]:
        vals, idx = torch.topk(R, top_k, dim=1)
        R = torch.zeros_like(R).scatter_(1, idx, vals)
    if exponent != 1.0:
        R = torch.sign(R) * R.abs().pow(exponent)
    return R


def layer_normalize(R):
    """Per-row standardization (LayerNorm without affine); constant rows become 0."""
    mean = R.mean(dim=1, keepdim=True)
    std = R.std(dim=1, correction=0, keepdim=True)
    return (R - mean) / std.clamp_min(_EPS.get(R.dtype, 1e-12))


def relative_projection(
    X, anchors, metric="cosine", *, center=None, p=2.0, top_k=None, exponent=1.0
):
    """Relative representation of ``X`` with respect to ``anchors``.

    ``r(x) = [sim(x, a_1), ..., sim(x, a_k)]`` (Moschella et al., 2023), with
    optional centering by ``center`` and ASIF sparsification (see
    :func:`sparsify`; only for similarity metrics).

    Returns
    -------
    Tensor of shape (n, k)
    """
    R = pairwise(X, anchors, metric, center=center, p=p)
    if top_k is not None or exponent != 1.0:
        R = sparsify(R, top_k, exponent)
    return R


def _relative_projector(anchors, metric, *, center=None, p=2.0, top_k=None, exponent=1.0):
    """``relative_projection`` with the anchor side precomputed: a closure over chunks."""
    center = _effective_center(anchors, metric, center)
    prepared = _prepare(anchors, metric, center)

    def project(X):
        R = _pairwise_prepared(X, prepared, metric, center, p)
        if top_k is not None or exponent != 1.0:
            R = sparsify(R, top_k, exponent)
        return R

    return project


def normalized_anchor_inverse(anchors, *, center=None, alpha=0.0):
    """Right inverse of the normalized anchors used by :func:`inverse_relative_projection`.

    Returns ``P`` (k, d) with ``R @ P`` the least-squares (ridge ``alpha``)
    solution ``y`` of ``norm(A - center) y = r`` for every row ``r`` of ``R``.
    Computed in float64 for stability, returned in the anchors' dtype.
    """
    A = anchors if center is None else anchors - center
    A_hat = _safe_normalize(A.to(torch.float64))
    if alpha > 0:
        gram = A_hat @ A_hat.T
        gram.diagonal().add_(alpha)
        P = torch.linalg.solve(gram, A_hat)  # (k, d) = (A A^T + a I)^-1 A
    else:
        P = torch.linalg.pinv(A_hat).T  # (k, d)
    return P.to(anchors.dtype)


def inverse_relative_projection(R, inverse, *, scale=None, offset=None, columns=None):
    """Absolute vectors whose cosine relative representation is ``R``.

    ``y = norm(R @ inverse) * scale + offset`` (Maiorca et al., 2024), with
    ``inverse`` from :func:`normalized_anchor_inverse`.  ``scale`` (scalar)
    rescales the unit directions (e.g. to the mean anchor norm); ``None`` keeps
    unit norm.  ``offset`` (d,) undoes centering.

    Anchor subsets: ``columns`` (index tensor) restricts ``R`` to the columns
    of the anchors ``inverse`` was computed from.  With a list of inverses and
    a matching list of ``columns`` (``None`` entries = all columns), the
    reconstructions of the subspaces are averaged:
    ``y = mean_s norm(R[:, c_s] @ inverse_s) * scale + offset`` (the mean of
    unit vectors is not renormalized, so disagreeing subspaces shrink the
    output towards ``offset``).
    """
    if isinstance(inverse, (list, tuple)):
        cols = columns if columns is not None else [None] * len(inverse)
        Y = None
        for P, c in zip(inverse, cols):
            D = _safe_normalize((R if c is None else R[:, c]) @ P)
            Y = D if Y is None else Y.add_(D)
        Y = Y.div_(len(inverse))
    else:
        Y = (R if columns is None else R[:, columns]) @ inverse
        if not (Y.requires_grad or (offset is not None and offset.requires_grad)):
            # Y is a fresh GEMM result: normalize, rescale and shift it in place
            # (two passes over the output instead of four and no copies)
            div = torch.linalg.vector_norm(Y, dim=1, keepdim=True)
            div = div.clamp_min_(_EPS.get(Y.dtype, 1e-12))
            if scale is not None:
                div = div.div_(scale)
            Y = Y.div_(div)
            return Y if offset is None else Y.add_(offset)
        Y = _safe_normalize(Y)
    if scale is not None:
        Y = Y * scale
    if offset is not None:
        Y = Y + offset
    return Y


# ==========================================================================
# --- product of invariances / inverse relative projection ---
# (ProductInvarianceProjector, InverseRelativeProjector, the CPU L1/L-inf path)
# ==========================================================================
__all__ += [
    "PRODUCT_METRICS",
    "AGGREGATIONS",
    "aggregate_components",
    "anchor_condition_number",
    "normalize_component",
    "product_projection",
    "prune_anchors",
]

#: Metrics a :func:`product_projection` component may use.
PRODUCT_METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf")
#: How :func:`aggregate_components` combines the components.
AGGREGATIONS = ("concat", "sum", "mean")

# Rows (and anchors) per block of the CPU L1 / L-inf kernel: square blocks of
# at most this size keep the concatenated block (2b x d) in the last-level
# cache, and square blocks waste the least work (see _minkowski_blocked).
_MINKOWSKI_BLOCK = 512
# Below this many rows or anchors the blocked kernel's per-call overhead wins.
_MINKOWSKI_MIN_BLOCK = 32
_condensed_index_cache = {}


def _condensed_cross_index(nb, kb, device):
    """Positions of the (row i, anchor j) pairs in ``pdist(cat([X_b, A_b]))``.

    The condensed vector lists pairs (i, j), i < j, of the N = nb + kb stacked
    rows in row-major order; row i's pairs start at ``i N - i (i + 1) / 2`` and
    its pairs with the anchors (j >= nb) are contiguous.
    """
    key = (nb, kb, str(device))
    idx = _condensed_index_cache.get(key)
    if idx is None:
        N = nb + kb
        i = torch.arange(nb, device=device, dtype=torch.int64)
        start = i * N - i * (i + 1) // 2 + (nb - i - 1)
        idx = start[:, None] + torch.arange(kb, device=device, dtype=torch.int64)[None, :]
        if len(_condensed_index_cache) > 16:
            _condensed_index_cache.clear()
        _condensed_index_cache[key] = idx
    return idx


def _minkowski_blocked(X, anchors, p):
    """Exact L1 (``p=1``) or L-inf (``p=inf``) distances on the CPU.

    ``torch.cdist`` evaluates these norms with a scalar loop on the CPU, while
    ``torch.nn.functional.pdist`` uses the vectorized kernel.  ``pdist`` of
    the stacked block ``[X_b; A_b]`` computes every pair of its rows, the
    (row, anchor) pairs among them; with square blocks (as many rows as
    anchors) half of its work is useful, which still beats ``cdist`` by about
    3x for L1 and 2x for L-inf (benchmarks/RESULTS_product_inverse.md).  Same
    formula (sum / max of ``|x_i - a_i|``), only the summation order differs
    from the naive loop.
    """
    n, k = X.shape[0], anchors.shape[0]
    b = min(n, k, _MINKOWSKI_BLOCK)
    out = torch.empty((n, k), dtype=X.dtype, device=X.device)
    X = X.contiguous()
    anchors = anchors.contiguous()
    for j0 in range(0, k, b):
        A_b = anchors[j0 : j0 + b]
        for i0 in range(0, n, b):
            X_b = X[i0 : i0 + b]
            D = torch.nn.functional.pdist(torch.cat([X_b, A_b]), p=p)
            out[i0 : i0 + b, j0 : j0 + b] = D[
                _condensed_cross_index(X_b.shape[0], A_b.shape[0], X.device)
            ]
    return out


def _minkowski(X, anchors, p):
    """L1 / L-inf distances: the blocked ``pdist`` kernel on CPU, ``cdist`` elsewhere."""
    if (
        X.device.type == "cpu"
        and min(X.shape[0], anchors.shape[0]) >= _MINKOWSKI_MIN_BLOCK
        and not (X.requires_grad or anchors.requires_grad)
    ):
        return _minkowski_blocked(X, anchors, p)
    return torch.cdist(X, anchors, p=p)


def normalize_component(R, normalize=None, *, mean=None, scale=None):
    """Normalize one relative representation before aggregation.

    Parameters
    ----------
    R : Tensor of shape (n, k)
    normalize : {None, "l2", "standard", "layer"}
        ``"l2"``: rows divided by their norm; ``"standard"``: ``(R - mean) /
        scale`` with per-feature statistics fitted on training projections;
        ``"layer"``: per-row mean and std (LayerNorm without affine); ``None``:
        unchanged.
    mean, scale : Tensor of shape (k,)
        Statistics of ``"standard"``.

    Returns
    -------
    Tensor of shape (n, k)
    """
    if normalize is None:
        return R
    if normalize == "l2":
        return _safe_normalize(R)
    if normalize == "layer":
        return layer_normalize(R)
    if normalize == "standard":
        return (R - mean) / scale
    raise ValueError(
        f"normalize={normalize!r} is not supported; expected None, 'l2', 'standard' or 'layer'."
    )


def aggregate_components(components, aggregation="concat"):
    """Combine m relative representations (each (n, k)) into one.

    ``"concat"`` gives (n, k m) with the components side by side in order;
    ``"sum"`` and ``"mean"`` give (n, k).
    """
    if aggregation == "concat":
        return torch.cat(list(components), dim=1)
    if aggregation in ("sum", "mean"):
        out, m = None, 0
        for C in components:
            out = C.clone() if out is None else out.add_(C)
            m += 1
        return out.div_(m) if aggregation == "mean" else out
    raise ValueError(
        f"aggregation={aggregation!r} is not supported; expected one of {AGGREGATIONS}."
    )


def _product_projector(
    anchors, metrics, *, center=None, normalize=None, means=None, scales=None,
    aggregation="concat",
):
    """:func:`product_projection` with the anchor side prepared once: a closure over chunks."""
    projectors = [_relative_projector(anchors, m, center=center) for m in metrics]
    means = means if means is not None else [None] * len(metrics)
    scales = scales if scales is not None else [None] * len(metrics)

    def project(X):
        return aggregate_components(
            (
                normalize_component(proj(X), normalize, mean=mu, scale=sd)
                for proj, mu, sd in zip(projectors, means, scales)
            ),
            aggregation,
        )

    return project


def product_projection(
    X, anchors, metrics=("cosine", "euclidean", "l1", "linf"), *, center=None,
    normalize=None, means=None, scales=None, aggregation="concat",
):
    """Product of invariances: several relative projections against one anchor set.

    ``r(x) = phi(N(RR(x; A, d_1)), ..., N(RR(x; A, d_m)))`` (Cannistraci et al.,
    2024) with ``RR`` the relative projection of :func:`relative_projection`,
    ``N`` a per-component normalization (:func:`normalize_component`) and
    ``phi`` the aggregation (:func:`aggregate_components`).

    Parameters
    ----------
    X, anchors : Tensor of shape (n, d) and (k, d)
    metrics : sequence of str
        One entry of :data:`PRODUCT_METRICS` per component.
    center : Tensor of shape (d,) or None
        Subtracted from both sides before every component.
    normalize : {None, "l2", "standard", "layer"}
    means, scales : sequence of Tensor of shape (k,), optional
        Per-component statistics of ``normalize="standard"``.
    aggregation : {"concat", "sum", "mean"}

    Returns
    -------
    Tensor of shape (n, k * len(metrics)) for ``"concat"``, else (n, k)

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import product_projection
    >>> X, A = torch.randn(10, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    >>> product_projection(X, A, ("cosine", "l1")).shape
    torch.Size([10, 6])
    """
    return _product_projector(
        anchors, metrics, center=center, normalize=normalize, means=means,
        scales=scales, aggregation=aggregation,
    )(X)


def prune_anchors(normalized_anchors, threshold, start=0):
    """Well-conditioned anchor subset by greedy farthest-point selection.

    Starting from anchor ``start``, repeatedly adds the anchor farthest from
    the selected set under ``1 - |cos(a, b)|`` and stops when that distance
    falls below ``threshold`` (Maiorca et al., 2024): every kept pair then has
    ``|cos| <= 1 - threshold``.  Zero rows (anchors equal to the centering
    mean) are never selected.

    Parameters
    ----------
    normalized_anchors : Tensor of shape (k, d)
        Unit (or zero) rows.
    threshold : float in (0, 1]
    start : int
        Index of the first anchor.

    Returns
    -------
    LongTensor of shape (k_kept,)
        Indices in selection order.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import prune_anchors
    >>> A = torch.tensor([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
    >>> prune_anchors(A, 0.5).tolist()
    [0, 2]
    """
    A = normalized_anchors.to(torch.float64)
    k = A.shape[0]
    valid = torch.linalg.vector_norm(A, dim=1) > 0.5
    dist = 1.0 - (A @ A[start]).abs()
    dist = torch.where(valid, dist, torch.full_like(dist, -math.inf))
    dist[start] = -math.inf
    chosen = [int(start)]
    for _ in range(k - 1):
        nxt = int(torch.argmax(dist))
        if not float(dist[nxt]) >= threshold:
            break
        chosen.append(nxt)
        torch.minimum(dist, 1.0 - (A @ A[nxt]).abs(), out=dist)
        dist[nxt] = -math.inf
    return torch.as_tensor(chosen, dtype=torch.int64, device=normalized_anchors.device)


def anchor_condition_number(normalized_anchors):
    """Effective 2-norm condition number of a (k, d) anchor matrix.

    ``s_max / s_min`` over the singular values (float64) that the
    pseudo-inverse of :func:`normalized_anchor_inverse` inverts, i.e. those
    above its cutoff ``max(k, d) * eps * s_max``: exactly dependent directions
    (e.g. dead ReLU units, constant features) are ignored by the solve and do
    not count.  ``inf`` for a zero matrix.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import anchor_condition_number
    >>> anchor_condition_number(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]))
    2.0
    """
    A = normalized_anchors.to(torch.float64)
    s = torch.linalg.svdvals(A)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return math.inf
    cutoff = float(s[0]) * max(A.shape) * torch.finfo(torch.float64).eps
    kept = s[s > cutoff]
    return float(s[0] / kept[-1])
