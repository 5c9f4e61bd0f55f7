"""Anchor selection: which samples every space is described against.

Anchors are returned as row *indices*, so that the same indices pick parallel
anchors (the same samples) in any other space.
"""

import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d

from ._backend import check_input, check_option, np_dtype, resolve_device, to_numpy, to_tensor
from .functional import _lp, _max_abs, _rescale_factor

__all__ = ["STRATEGIES", "select_anchors"]

#: Strategy names accepted by :func:`select_anchors` and the ``anchors`` parameter.
STRATEGIES = ("random", "fps", "kmeans", "stratified")

# Rows per chunk in the torch strategies: bounds temporaries to chunk x max(d, k).
_CHUNK = 65536


def _check_n_anchors(n_anchors, n_samples, *, name="n_anchors", clip=False):
    """Resolve ``n_anchors`` (int, fraction in (0, 1], or None = all rows) to an int.

    ``clip=True`` (the estimators): an int above ``n_samples`` means all rows,
    with a warning, instead of an error.
    """
    if n_anchors is None:
        return n_samples
    if isinstance(n_anchors, bool) or not isinstance(n_anchors, numbers.Real):
        raise TypeError(f"{name} must be an int, a float in (0, 1] or None, got {n_anchors!r}.")
    if isinstance(n_anchors, numbers.Integral):
        k = int(n_anchors)
        if k < 1:
            raise ValueError(f"{name}={n_anchors} must be at least 1.")
    else:
        if not 0.0 < n_anchors <= 1.0:
            raise ValueError(f"{name}={n_anchors} as a fraction must lie in (0, 1].")
        k = max(1, math.ceil(n_anchors * n_samples))
    if k > n_samples and clip:
        warnings.warn(
            f"{name}={n_anchors} exceeds the {n_samples} rows of X: every row is an anchor "
            f"({n_samples} anchors). Pass {name}<={n_samples} (or None, or a fraction) to "
            "silence this warning.",
            UserWarning,
            stacklevel=4,
        )
        return n_samples
    if k > n_samples:
        raise ValueError(
            f"{name}={n_anchors} exceeds the number of samples in X: n_samples={n_samples}."
        )
    return k


def _centered_sq_norms(X, mu):
    """||x - mu||^2 per row, in cache-sized chunks (4 MiB of float32: the centered
    chunk is re-read from cache, not memory), without an (n, d) temporary."""
    out = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    step = _CHUNK if X.device.type != "cpu" else max(32, (1 << 20) // max(X.shape[1], 1))
    for s in range(0, X.shape[0], step):
        Xc = X[s : s + step] - mu
        out[s : s + step] = (Xc * Xc).sum(dim=1)
    return out


def _sq_dist_to_row(X, mu, sq, i):
    """||x - X[i]||^2 for every row, in coordinates centered at ``mu``: one GEMV.

    With ``a = X[i] - mu``: ``||x - mu||^2 - 2 x.a + (2 mu.a + ||a||^2)``, the
    product and the sum in one ``addmv``.
    """
    a = X[i] - mu
    return torch.addmv(sq + (a @ a + 2.0 * (mu @ a)), X, a, alpha=-2.0)


def _fps(X, k, rng):
    """Farthest point sampling: k steps, each one GEMV over X.

    Step: ``g = X @ a`` with ``a = X[last] - mu``, then ``min_d = min(min_d,
    (||x - mu||^2 + c) - 2 g)`` with ``c = ||a||^2 + 2 mu.a``, and the argmax.
    On the CPU with the numba kernels (the ``fast`` extra) everything after the
    GEMV is one serial pass instead of four multithreaded ones (each a thread
    barrier, which costs milliseconds on a loaded machine); both paths do the
    same IEEE operations, so they pick the same rows.
    """
    n = X.shape[0]
    mu = X.mean(dim=0)
    sq = _centered_sq_norms(X, mu)
    last = int(rng.randint(n))
    chosen = [last]
    min_d = torch.full((n,), math.inf, dtype=X.dtype, device=X.device)
    jit = X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64) and (
        _lp.jit_available()
    )
    g = torch.empty(n, dtype=X.dtype, device=X.device)
    for _ in range(k - 1):
        a = X[last] - mu
        c = float(a @ a + 2.0 * (mu @ a))
        torch.mv(X, a, out=g)
        if jit:
            m = min_d.numpy()
            last = int(_lp._kernels["fps_update"](m, sq.numpy(), g.numpy(), m.dtype.type(c), last))
        else:
            torch.minimum(min_d, torch.add(sq + c, g, alpha=-2.0), out=min_d)
            min_d[last] = -1.0
            last = int(torch.argmax(min_d))
        chosen.append(last)
    return np.asarray(chosen, dtype=np.int64)


def _kmeans_plus_plus(X, k, rng, mu, sq):
    """Greedy k-means++ seeding (Arthur and Vassilvitskii, 2007; as in scikit-learn).

    Each step draws ``2 + log(k)`` candidate rows with probability proportional
    to the squared distance to the nearest seed so far and keeps the candidate
    that lowers the total of those distances most: one (n, d) x (d, 2 + log k)
    product per step; only scalars leave the device.
    """
    n = X.shape[0]
    n_trials = 2 + int(math.log(k))
    last = int(rng.randint(n))
    chosen = [last]
    min_d = _sq_dist_to_row(X, mu, sq, last).clamp_min_(0.0)
    taken = torch.zeros(n, dtype=torch.bool, device=X.device)
    for _ in range(k - 1):
        taken[last] = True
        cum = torch.cumsum(min_d.masked_fill(taken, 0.0).to(torch.float64), dim=0)
        total = float(cum[-1])
        if total > 0.0:
            u = torch.as_tensor(rng.random_sample(n_trials) * total, device=X.device)
            cand = torch.searchsorted(cum, u, right=True).clamp_max_(n - 1)
            Cc = X[cand] - mu
            D = sq[:, None] - 2.0 * (X @ Cc.T - mu @ Cc.T) + (Cc * Cc).sum(dim=1)
            D = torch.minimum(min_d[:, None], D.clamp_min_(0.0))
            best = int(torch.argmin(D.sum(dim=0)))
            last, min_d = int(cand[best]), D[:, best].contiguous()
        if total <= 0.0 or bool(taken[last]):  # only duplicates of the seeds are left
            free = torch.nonzero(~taken).flatten()
            last = int(free[int(rng.randint(free.numel()))])
            min_d = torch.minimum(min_d, _sq_dist_to_row(X, mu, sq, last).clamp_min_(0.0))
        chosen.append(last)
    return torch.as_tensor(chosen, device=X.device)


def _nearest_scores(X, C, mu):
    """-(||c||^2 - 2 (x - mu).c) for centered centroids C: argmax = nearest centroid."""
    return 2.0 * (X @ C.T - (mu @ C.T)) - (C * C).sum(dim=1)


def _kmeans(X, k, rng, max_iter=20, tol=1e-4):
    """Lloyd's k-means in torch (chunked) from k-means++ seeds, centroids snapped to
    distinct real rows."""
    n, d = X.shape
    mu = X.mean(dim=0)
    sq = _centered_sq_norms(X, mu)
    C = X[_kmeans_plus_plus(X, k, rng, mu, sq)] - mu  # centered centroids
    acc = torch.float64
    scale = float(sq.mean()) or 1.0
    for _ in range(max_iter):
        sums = torch.zeros((k, d), dtype=acc, device=X.device)
        counts = torch.zeros(k, dtype=acc, device=X.device)
        for s in range(0, n, _CHUNK):
            chunk = X[s : s + _CHUNK]
            labels = torch.argmax(_nearest_scores(chunk, C, mu), dim=1)
            sums.index_add_(0, labels, chunk.to(acc))
            counts.index_add_(0, labels, torch.ones_like(labels, dtype=acc))
        filled = counts > 0
        new_C = C.clone()
        new_C[filled] = (sums[filled] / counts[filled, None] - mu.to(acc)).to(X.dtype)
        shift = float(((new_C - C) ** 2).sum(dim=1).mean())
        C = new_C
        if shift <= tol * scale:
            break
    return _snap_to_rows(X, C, mu, rng)


def _snap_to_rows(X, C, mu, rng, n_candidates=8):
    """Nearest distinct real row for each centered centroid (greedy, closest first)."""
    n, k = X.shape[0], C.shape[0]
    m = min(n_candidates, n)
    best_s = torch.full((k, m), -math.inf, dtype=X.dtype, device=X.device)
    best_i = torch.zeros((k, m), dtype=torch.int64, device=X.device)
    for s in range(0, n, _CHUNK):
        chunk = X[s : s + _CHUNK]
        # -||x - c||^2 up to the per-centroid constant: 2(x-mu).c - ||x-mu||^2
        sc = (2.0 * (chunk @ C.T - mu @ C.T) - _centered_sq_norms(chunk, mu)[:, None]).T
        vals = torch.cat([best_s, sc], dim=1)
        rows = torch.arange(s, s + chunk.shape[0], device=X.device).expand(k, -1)
        idx = torch.cat([best_i, rows], dim=1)
        top_v, pos = torch.topk(vals, m, dim=1)
        best_s, best_i = top_v, torch.gather(idx, 1, pos)
    best_s, best_i = to_numpy(best_s), to_numpy(best_i)
    used = np.zeros(n, dtype=bool)
    out = np.empty(k, dtype=np.int64)
    for c in np.argsort(-best_s[:, 0], kind="stable"):
        free = best_i[c][~used[best_i[c]]]
        if free.size:
            pick = free[0]
        else:  # all candidates taken by closer centroids: any unused row
            pick = rng.choice(np.flatnonzero(~used))
        used[pick] = True
        out[c] = pick
    return out


def _stratified(y, k, rng):
    """Balanced over classes: k // n_classes each, remainders and shortfalls spread."""
    classes, inverse = np.unique(y, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    quota = np.zeros(len(classes), dtype=np.int64)
    remaining = k
    open_ = list(range(len(classes)))
    while remaining > 0 and open_:
        share, extra = divmod(remaining, len(open_))
        order = rng.permutation(open_)
        for rank, c in enumerate(order):
            take = min(share + (rank < extra), len(members[c]) - quota[c])
            quota[c] += take
            remaining -= take
        open_ = [c for c in open_ if quota[c] < len(members[c])]
    return rng.permutation(np.concatenate([m[:q] for m, q in zip(members, quota)]))


def _random_indices(n, k, rng):
    """``k`` distinct rows of ``n``, uniformly, sorted (needs only ``n``: also used on
    dask arrays by :func:`sklearn_latent.dask.select_anchors`)."""
    return np.sort(rng.choice(n, k, replace=False)).astype(np.int64)


def select_anchors(X, n_anchors, method="random", y=None, random_state=None, *, device=None):
    """Pick anchor rows of ``X``.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, n_features)
        The space to pick anchors in.
    n_anchors : int, float in (0, 1] or None
        Number of anchors, or a fraction of ``n_samples``; ``None`` = all rows.
    method : {"random", "fps", "kmeans", "stratified"}
        ``"random"``: uniform without replacement.  ``"fps"``: farthest point
        sampling in euclidean distance (k vectorized passes over X; pass
        L2-normalized rows to select by angle).  ``"kmeans"``: Lloyd's k-means
        (greedy k-means++ seeding, at most 20 iterations), each centroid
        snapped to the nearest distinct real row so anchors stay parallel
        across spaces.  ``"stratified"``: balanced over the classes of ``y``.
    y : array-like of shape (n_samples,), optional
        Class labels; required by ``"stratified"``.
    random_state : int, RandomState instance or None
        Makes every strategy deterministic.
    device : str, torch.device or None
        Where ``"fps"`` and ``"kmeans"`` run (``None``: where X lives).

    Returns
    -------
    indices : ndarray of shape (n_anchors,), dtype int64
        Distinct row indices into ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import select_anchors
    >>> X = np.random.default_rng(0).normal(size=(100, 8))
    >>> idx = select_anchors(X, 10, method="fps", random_state=0)
    >>> idx.shape, len(set(idx.tolist()))
    ((10,), 10)
    """
    method = check_option(method, "method", STRATEGIES)
    X = check_input(None, X, reset=False)
    return _select(X, n_anchors, method, y, random_state, device)


def _select(X, n_anchors, method, y, random_state, device, clip=False):
    """:func:`select_anchors` on an already validated X (no second validation pass)."""
    n = X.shape[0]
    k = _check_n_anchors(n_anchors, n, clip=clip)
    rng = check_random_state(random_state)
    if method == "random":
        return _random_indices(n, k, rng)
    if method == "stratified":
        if y is None:
            raise ValueError("method='stratified' needs the class labels y.")
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} entries but X has {n} rows.")
        return _stratified(y, k, rng).astype(np.int64)
    Xt = to_tensor(X, resolve_device(device, X))
    # Squared distances of data at |x| ~ 1e30 (or 1e-30) overflow (underflow) in
    # float32: such data are searched on a copy scaled by a power of two (exact,
    # so the same rows are picked as for data in the ordinary range).
    c = _rescale_factor(_max_abs(Xt), Xt.dtype, Xt.shape[1])
    if c != 1.0:
        Xt = Xt / c
    with torch.no_grad():
        if method == "fps":
            return _fps(Xt, k, rng)
        return _kmeans(Xt, k, rng)


def _check_indices(idx, n_samples):
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"anchor indices must be integers, got dtype {idx.dtype}.")
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError(f"anchor indices must be a non-empty 1-D array, got shape {idx.shape}.")
    if idx.min() < 0 or idx.max() >= n_samples:
        raise ValueError(
            f"anchor indices must lie in [0, {n_samples}) for X with n_samples={n_samples}; "
            f"got values in [{idx.min()}, {idx.max()}]."
        )
    return idx.astype(np.int64)


def resolve_anchors(estimator, X, n_anchors, anchors, y=None, random_state=None, device=None):
    """Turn an estimator's ``anchors`` parameter into (vectors, indices).

    ``X`` is already validated (numpy or tensor).  Returns anchor vectors as a
    CPU numpy array in X's dtype and the row indices (``None`` when explicit
    vectors were given).

    An int ``n_anchors`` above the rows of X (a strategy or a callable) uses
    every row, with a warning; the choice depends only on the number of rows
    and ``random_state``, so spaces of the same samples still get parallel
    anchors.  Explicit indices or vectors are used as given, never truncated.
    """
    n = X.shape[0]
    if isinstance(anchors, str):
        check_option(anchors, "anchors", STRATEGIES)
        if anchors == "stratified" and y is None:
            raise ValueError("anchors='stratified' needs the class labels y in fit(X, y).")
        idx = _select(X, n_anchors, anchors, y, random_state, device, clip=True)
    elif callable(anchors):
        k = _check_n_anchors(n_anchors, n, clip=True)
        out = anchors(X, k, random_state)
        idx = _check_indices(to_numpy(out) if isinstance(out, torch.Tensor) else out, n)
        if idx.size > k:
            name = getattr(anchors, "__name__", type(anchors).__name__)
            raise ValueError(
                f"the anchors callable {name} returned {idx.size} indices for "
                f"n_anchors={n_anchors} ({k} anchors): it must return at most n_anchors."
            )
    else:
        arr = anchors
        ndim = arr.ndim if hasattr(arr, "ndim") else np.ndim(arr)
        if ndim == 1:
            idx = _check_indices(to_numpy(arr) if isinstance(arr, torch.Tensor) else arr, n)
        elif ndim == 2:
            vec = check_input(None, arr, reset=False, input_name="anchors")
            if vec.shape[1] != X.shape[1]:
                raise ValueError(
                    f"anchors has {vec.shape[1]} features but X has {X.shape[1]}."
                )
            vec = to_numpy(vec) if isinstance(vec, torch.Tensor) else vec
            return np.ascontiguousarray(vec, dtype=np_dtype(X.dtype)), None
        else:
            raise TypeError(
                "anchors must be a strategy name, a 1-D array of row indices, a 2-D array "
                f"of anchor vectors or a callable; got {type(anchors).__name__} with ndim={ndim}."
            )
    rows = X[torch.as_tensor(idx, device=X.device)] if isinstance(X, torch.Tensor) else X[idx]
    vec = to_numpy(rows) if isinstance(rows, torch.Tensor) else np.ascontiguousarray(rows)
    return vec, idx
