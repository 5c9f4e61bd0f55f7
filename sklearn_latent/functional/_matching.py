"""Alignment without pairs: CSLS, centroid matching, pseudo-pairs, self-learning.

The pair-free pipeline (after mini-vec2vec, Dar 2025, and MUSE/VecMap's
refinement, Conneau et al. 2018; Artetxe et al. 2018) works on centered,
row-normalized spaces ``X`` (n_x, d_x) and ``Y`` (n_y, d_y) and an orthogonal
(semi-orthogonal when ``d_x != d_y``) map ``W`` (d_x, d_y):

1. centroid matching: k-means in each space on subsamples, the centroids
   matched by quadratic assignment on their centered Gram matrices
   (``max_P tr(K_X P K_Y P^T)``), over several subsampled runs whose matched
   centroids are pooled;
2. pseudo-pairs: relative representations of both spaces against the pooled
   matched centroids; each x is paired with the mean of the ``top_k`` y whose
   relative vectors are most similar; ``W = polar(X^T Y_hat)``;
3. damped refinement: on a sample of x, ``Y_hat`` = mean of the ``top_k``
   nearest y to ``xW``, ``W <- polar((1 - damping) W + damping W_new)``;
4. self-learning: the dictionary of mutual nearest neighbours under CSLS,
   ``W = polar(X_D^T Y_D)``, a few rounds.

A second start (VecMap's, Artetxe et al. 2018) replaces steps 1-3 where the
centroids fail: each row's sorted similarities to its own space
(:func:`similarity_profiles`, invariant to rotations and to the order of
the rows) are matched across the spaces under CSLS, and the map is grown
from that weak dictionary by annealed soft Procrustes (:func:`refine_soft`)
or, where that fails, by stochastic dictionary induction
(:func:`refine_stochastic`).

Every ``n_x x n_y`` similarity is evaluated by 32-row aligned blocks of X
(never materialized; results independent of the block size).
"""

import math

import numpy as np
import torch

__all__ = [
    "alignment_score",
    "csls_hubness",
    "csls_knn_mean",
    "csls_mutual_nn",
    "match_centroids",
    "quadratic_assignment_2opt",
    "polar",
    "procrustes_polar",
    "refine_soft",
    "refine_stochastic",
    "similarity_profiles",
]

_F64 = torch.float64
#: Rows per step of a column-wise maximum (a reduction down a few hundred rows at a
#: time stays in cache; results do not depend on it)
_COLUMN_CHUNK = 256
#: Rows per step of a transposed copy (:func:`_transposed`)
_TRANSPOSE_ROWS = 512


def _blocks(Q, B, batch_size, widths=1):
    """Row ranges of the queries ``Q`` for similarity blocks against all rows of ``B``.

    ``batch_size`` rows per block; with ``None`` or ``"auto"``, as many rows as
    keep a ``(rows, len(B))`` block and its temporaries within scikit-learn's
    ``working_memory``: the ``len(Q) x len(B)`` matrix is never formed.  Blocks
    are whole multiples of the chunk rows, so they never change a result.
    ``widths``: the block's temporaries are this many blocks wide (a sort's
    values and int64 indices beside the block: 2).
    """
    from .. import _backend  # late: _backend imports functional

    if batch_size is None or isinstance(batch_size, str):
        batch_size = _backend.auto_batch_rows(Q.shape[1], widths * B.shape[0],
                                              Q.element_size(), Q.shape[0])
    return _backend.chunk_bounds(Q.shape[0], batch_size)


def _normalize(Z):
    norms = torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    return Z / norms.clamp_min(torch.finfo(Z.dtype).tiny ** 0.5)


def center_normalize(Z):
    """``N(Z - mean(Z))``: each space's own mean removed, rows scaled to unit norm."""
    mean = Z.to(_F64).mean(dim=0)
    return _normalize((Z.to(_F64) - mean).to(Z.dtype))


def principal_width(Z, width):
    """``N(Z V)``: centered, row-normalized ``Z`` projected on its ``width`` leading principal
    axes (eigenvectors of ``Z^T Z``, float64) and row-normalized again; ``Z`` unchanged when
    it has at most ``width`` columns.

    Cuts the cost of every similarity pass of the pipeline (linear in the
    width) on wide encoders; the directions dropped carry the least variance.
    """
    if Z.shape[1] <= width:
        return Z
    Z64 = Z.to(_F64)
    _, vecs = torch.linalg.eigh(Z64.T @ Z64)
    return _normalize((Z64 @ vecs[:, -width:].flip(1)).to(Z.dtype))


def polar(M):
    """``U V^T`` for ``M = U S V^T``: the orthogonal factor of ``M`` (float64 SVD).

    ``argmax_W tr(W^T M)`` over (semi-)orthogonal ``W``; ``M`` (d_x, d_y) of any shape.
    """
    U, _, Vh = torch.linalg.svd(M.to(_F64), full_matrices=False)
    return (U @ Vh).to(M.dtype)


def procrustes_polar(X, Y, weights=None):
    """``polar(X^T diag(w) Y)``: orthogonal Procrustes on paired rows (float64 sums)."""
    X64, Y64 = X.to(_F64), Y.to(_F64)
    if weights is not None:
        X64 = X64 * weights.to(_F64)[:, None]
    return polar(X64.T @ Y64).to(X.dtype)


def csls_knn_mean(A, B, k=10, batch_size=None):
    """``r(a) = mean`` cosine of each row of ``A`` to its ``k`` most similar rows of ``B``.

    The hubness term of CSLS (``r_T`` with ``A`` the mapped sources and ``B``
    the targets, ``r_S`` the other way round).  ``A`` and ``B`` must be
    row-normalized; evaluated by blocks of ``A`` (memory ``O(block * n_B)``).
    """
    k = min(k, B.shape[0])
    out = torch.empty(A.shape[0], dtype=A.dtype, device=A.device)
    for start, stop in _blocks(A, B, batch_size):
        S = A[start:stop] @ B.T
        out[start:stop] = torch.topk(S, k, dim=1).values.mean(dim=1)
    return out


def csls_hubness(blocks, k=10):
    """Both hubness terms of CSLS from blocks of a similarity matrix, in one pass.

    ``blocks`` yields ``(start, stop, S)`` in row order, ``S`` the similarities
    of rows ``start:stop`` of the queries to every candidate (any similarity,
    e.g. the ASIF score, not only cosines).  Returns ``(r_query, r_candidate)``:
    the mean of the ``k`` largest similarities of each query over the
    candidates, and of each candidate over all the queries (``k`` clamped to
    the number of candidates, resp. queries).  Memory ``O((block + k) *
    n_candidates)``: the running top ``k`` of each candidate's column.
    """
    r_query, r_candidate, _, _ = _hubness_and_maxima(blocks, k)
    return r_query, r_candidate


def _transposed(M):
    """``M.T`` as a contiguous copy, by blocks of :data:`_TRANSPOSE_ROWS` rows on the CPU.

    The same values as ``M.T.contiguous()``, 4x faster on a 5,000 x 5,000
    float32 block (2 cores: 0.017 s against 0.070 s): each step's source and
    destination stay in cache.
    """
    if M.device.type != "cpu":
        return M.T.contiguous()
    out = torch.empty((M.shape[1], M.shape[0]), dtype=M.dtype, device=M.device)
    for start in range(0, M.shape[0], _TRANSPOSE_ROWS):
        out[:, start:start + _TRANSPOSE_ROWS].copy_(M[start:start + _TRANSPOSE_ROWS].T)
    return out


def _hubness_and_maxima(blocks, k):
    """:func:`csls_hubness`, and each query's and each candidate's largest similarity
    (the first of its sorted top ``k``: no pass of its own)."""
    r_query, max_query, top = [], [], None
    for _, _, S in blocks:
        values = torch.topk(S, min(k, S.shape[1]), dim=1).values
        r_query.append(values.mean(dim=1))
        max_query.append(values[:, 0])
        col = S if top is None else torch.cat([top, S])
        # the column top k on the transposed copy: a reduction along rows is 2x faster
        # than one down the columns (same values, same order)
        top = torch.topk(_transposed(col), min(k, col.shape[0]), dim=1).values.T.contiguous()
    return torch.cat(r_query), top.mean(dim=0), torch.cat(max_query), top[0]


def csls_blocks(A, B, k=10, batch_size=None):
    """Yield ``(start, stop, C)`` with ``C = 2 cos(A_i, B_j) - r_A(i) - r_B(j)`` by row blocks.

    CSLS (Conneau et al., 2018) between row-normalized ``A`` (queries, e.g.
    mapped sources) and ``B`` (candidates); ``k`` neighbours in the hubness
    terms.  ``k=0`` yields plain cosines.
    """
    if k:
        r_a = csls_knn_mean(A, B, k, batch_size)
        r_b = csls_knn_mean(B, A, k, batch_size)
    for start, stop in _blocks(A, B, batch_size):
        S = A[start:stop] @ B.T
        if k:
            S = S.mul_(2.0).sub_(r_a[start:stop, None]).sub_(r_b[None, :])
        yield start, stop, S


def _running_best(blocks, n, m, like):
    """Each row's best score and column, and each column's best row, from blocks.

    ``blocks`` yields ``(start, stop, C)`` in row order, ``C`` the scores of
    rows ``start:stop`` against all ``m`` columns (a matrix of ``n`` rows in
    all, never held whole).  Ties go to the first column, resp. the first row.
    ``like``: a tensor whose dtype and device the scores have.
    """
    best_val = torch.empty(n, dtype=like.dtype, device=like.device)
    best_col = torch.empty(n, dtype=torch.int64, device=like.device)
    col_val = torch.full((m,), -math.inf, dtype=like.dtype, device=like.device)
    col_arg = torch.zeros(m, dtype=torch.int64, device=like.device)
    for start, stop, C in blocks:
        best_val[start:stop], best_col[start:stop] = C.max(dim=1)
        # column maxima by chunks of rows: a max down 4,000 rows at once is 5x slower
        for lo in range(0, stop - start, _COLUMN_CHUNK):
            v, a = C[lo:lo + _COLUMN_CHUNK].max(dim=0)
            better = v > col_val
            col_val = torch.where(better, v, col_val)
            col_arg = torch.where(better, a + (start + lo), col_arg)
    return best_val, best_col, col_arg


def _best_matches(A, B, k, batch_size):
    """Best candidate of each query under CSLS, its score, and whether it is mutual, by blocks.

    Returns ``(best_col, best_val, mutual)``: row maxima (arg and value) and a
    bool mask of the queries that are in turn their candidate's best (ties go
    to the first query).
    """
    n = A.shape[0]
    best_val, best_col, col_arg = _running_best(csls_blocks(A, B, k, batch_size), n,
                                                B.shape[0], A)
    return best_col, best_val, col_arg[best_col] == torch.arange(n, device=A.device)


def csls_dictionary(A, B, k=10, batch_size=None):
    """Mutual nearest neighbours under CSLS and the alignment score, from one evaluation.

    :func:`csls_mutual_nn` and :func:`alignment_score` of the same ``A`` and
    ``B`` share every similarity pass: where both are needed (the last round
    of self-learning and its score), this costs one of them.

    Returns
    -------
    rows, cols, scores : Tensor of shape (p,)
        As :func:`csls_mutual_nn`.
    score, mutual : float
        As :func:`alignment_score`.
    """
    best_col, best_val, mutual = _best_matches(A, B, k, batch_size)
    rows = torch.arange(A.shape[0], device=A.device)
    return (rows[mutual], best_col[mutual], best_val[mutual],
            *_dictionary_score(best_val, mutual))


def _dictionary_score(best_val, mutual):
    """``(score, mutual)`` of :func:`alignment_score` from :func:`_best_matches`' values and
    mutual mask."""
    return float(best_val.to(_F64).mean()), float(mutual.to(_F64).mean())


def csls_mutual_nn(A, B, k=10, batch_size=None):
    """Mutual nearest neighbours under CSLS (``k=0``: under the cosine), chunked.

    Returns
    -------
    rows, cols : LongTensor of shape (p,)
        ``cols[i]`` is the best candidate of query ``rows[i]`` and the query
        ``rows[i]`` the best of candidate ``cols[i]``.
    scores : Tensor of shape (p,)
        Their CSLS scores.
    """
    return csls_dictionary(A, B, k, batch_size)[:3]


def alignment_score(XW, Y, k=10, batch_size=None):
    """Unsupervised alignment score: mean CSLS of each mapped row's CSLS match.

    MUSE's validation criterion (Conneau et al., 2018) without a vocabulary:
    every row of ``XW`` (mapped, row-normalized sources) is paired with its
    best candidate of ``Y`` under CSLS and the CSLS scores are averaged.  It
    compares maps on the same data (model selection); its scale depends on how
    clustered the data are.  Also returns the fraction of rows whose match is
    mutual.
    """
    return csls_dictionary(XW, Y, k, batch_size)[3:]


def topk_mean_targets(Q, B, values, top_k, batch_size=None):
    """Each row of ``Q``: the mean of ``values`` over its ``top_k`` most similar rows of ``B``.

    ``Q`` and ``B`` row-normalized; ``values`` has the rows of ``B``.
    """
    top_k = min(top_k, B.shape[0])
    out = torch.empty((Q.shape[0], values.shape[1]), dtype=values.dtype, device=values.device)
    for start, stop in _blocks(Q, B, batch_size):
        idx = torch.topk(Q[start:stop] @ B.T, top_k, dim=1).indices
        out[start:stop] = values[idx].mean(dim=1)
    return out


def _swap_gains(A, Bp):
    """``G[i, j]``: change of ``sum(A * Bp)`` when rows and columns i, j of ``Bp`` swap
    (``A``, ``Bp`` symmetric); all pairs with one (k, k) product."""
    M = A @ Bp
    dM, dA, dB = np.diag(M), np.diag(A), np.diag(Bp)
    total = M + M.T - dM[:, None] - dM[None, :]
    at_i = (dA[:, None] - A.T) * (Bp.T - dB[:, None])
    at_j = (A - dA[None, :]) * (dB[None, :] - Bp)
    G = 2.0 * (total - at_i - at_j) + (dA[:, None] - dA[None, :]) * (dB[None, :] - dB[:, None])
    np.fill_diagonal(G, 0.0)
    return G


def quadratic_assignment_2opt(A, B, p0, max_iter=None):
    """Steepest-ascent 2-opt for ``max_p sum_ab A[a, b] B[p[a], p[b]]`` (symmetric A, B).

    The local search of :func:`scipy.optimize.quadratic_assignment`'s
    ``"2opt"`` (best improving swap until none improves), with the gains of
    all swaps from one matrix product per step instead of one objective
    evaluation per swap (about 50x faster at k = 50).

    Returns
    -------
    p : ndarray of shape (k,)
    objective : float
    """
    p = np.asarray(p0, dtype=np.int64).copy()
    k = p.shape[0]
    scale = np.abs(A).sum() * np.abs(B).max() + 1e-300
    for _ in range(max_iter or 50 * k):
        G = _swap_gains(A, B[np.ix_(p, p)])
        i, j = np.unravel_index(int(np.argmax(G)), G.shape)
        if not G[i, j] > 1e-12 * scale:
            break
        p[i], p[j] = p[j], p[i]
    return p, float((A * B[np.ix_(p, p)]).sum())


def match_centroids(CX, CY, n_restarts=3, rng=None):
    """Match two sets of ``k`` centroids by quadratic assignment on centered Grams.

    ``max_P tr(K_X P K_Y P^T)`` with ``K = H C C^T H`` (``H`` the centering
    matrix) by 2-opt local search (:func:`quadratic_assignment_2opt`, the
    method of :func:`scipy.optimize.quadratic_assignment`'s ``"2opt"``) from
    ``n_restarts`` random permutations, the best objective kept.  Works
    across dimensions: only the Gram matrices are compared.

    Parameters
    ----------
    CX, CY : ndarray of shape (k, d_x), (k, d_y)
    n_restarts : int
    rng : numpy.random.Generator

    Returns
    -------
    col : ndarray of shape (k,)
        ``CX[i]`` is matched to ``CY[col[i]]``.
    objective : float
        ``tr(K_X P K_Y P^T) / (||K_X|| ||K_Y||)`` of the kept assignment, in [-1, 1].
    """
    rng = np.random.default_rng(rng)

    def gram(C):
        C = C - C.mean(axis=0)
        return C @ C.T

    KX, KY = gram(np.asarray(CX, dtype=np.float64)), gram(np.asarray(CY, dtype=np.float64))
    best = None
    for _ in range(n_restarts):
        res = quadratic_assignment_2opt(KX, KY, rng.permutation(KX.shape[0]))
        if best is None or res[1] > best[1]:
            best = res
    norm = np.linalg.norm(KX) * np.linalg.norm(KY)
    return best[0], best[1] / norm if norm else 0.0


def kmeans(Z, k, rng, n_iter=20):
    """Lloyd's k-means (k-means++ seeds) of the rows of ``Z`` (ndarray); the (k, d) centroids.

    On the CPU in numpy: it runs on subsamples, where numpy's per-call cost is
    lower than torch's.  ``rng`` a numpy Generator.  An empty cluster keeps its
    previous centroid.
    """
    import scipy.sparse as sp

    n = Z.shape[0]
    sq = np.einsum("ij,ij->i", Z, Z)
    idx = [int(rng.integers(n))]
    d2 = np.maximum(sq - 2.0 * Z @ Z[idx[0]] + sq[idx[0]], 0.0)
    for _ in range(1, k):  # k-means++: draw proportional to the squared distance
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        idx.append(i)
        np.minimum(d2, np.maximum(sq - 2.0 * Z @ Z[i] + sq[i], 0.0), out=d2)
    C = Z[idx].copy()
    labels = None
    for _ in range(n_iter):
        new_labels = np.argmax(2.0 * Z @ C.T - np.einsum("ij,ij->i", C, C), axis=1)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        member = sp.csr_array((np.ones(n), (labels, np.arange(n))), shape=(k, n))
        sums = member @ Z
        filled = counts > 0
        C[filled] = sums[filled] / counts[filled, None]
    return C


def centroid_pairs(X, Y, n_clusters, n_runs, subsample, n_restarts, rng):
    """Pooled matched centroids of ``n_runs`` subsampled k-means + quadratic assignment runs.

    ``X``, ``Y`` centered and row-normalized tensors.  Each run draws up to
    ``subsample`` rows per side, runs :func:`kmeans` with
    ``n_clusters`` in each space and matches the centroids with
    :func:`match_centroids`.

    Returns
    -------
    CX, CY : Tensor of shape (n_runs * n_clusters, d_x), (n_runs * n_clusters, d_y)
        Matched centroids (row i of CX with row i of CY), row-normalized.
    objectives : ndarray of shape (n_runs,)
    """
    rng = np.random.default_rng(rng)
    Xn, Yn = X.detach().cpu().to(_F64).numpy(), Y.detach().cpu().to(_F64).numpy()
    CXs, CYs, objs = [], [], []
    for _ in range(n_runs):
        cents = []
        for Z in (Xn, Yn):
            rows = rng.choice(Z.shape[0], min(subsample, Z.shape[0]), replace=False)
            cents.append(kmeans(Z[np.sort(rows)], n_clusters, rng))
        col, obj = match_centroids(cents[0], cents[1], n_restarts, rng)
        CXs.append(cents[0])
        CYs.append(cents[1][col])
        objs.append(obj)
    CX = _normalize(torch.as_tensor(np.concatenate(CXs), device=X.device).to(X.dtype))
    CY = _normalize(torch.as_tensor(np.concatenate(CYs), device=Y.device).to(Y.dtype))
    return CX, CY, np.asarray(objs)


def relative_pseudo_pairs(Xs, Y, CX, CY, top_k=50, batch_size=None):
    """For each row of ``Xs``: the mean of the ``top_k`` rows of ``Y`` with the most similar
    relative representation against the matched centroids ``CX``/``CY``.

    Relative representations ``cos(x, CX)`` and ``cos(y, CY)``, columns
    centered (over each space), compared by cosine.
    """
    RX = _relative_centered_normalized(Xs, CX)
    RY = _relative_centered_normalized(Y, CY)
    return topk_mean_targets(RX, RY, Y, top_k, batch_size)


#: elements of each float64 block of the column means below (32 MiB)
_MEAN_BLOCK_ELEMENTS = 2**22


def _relative_centered_normalized(Z, C):
    """``N(Z C^T - mean(Z C^T))`` in place: one (n, n_c) matrix in memory (no float64
    copy of it; the column means are float64 sums over row blocks)."""
    R = Z @ C.T
    mean = torch.zeros(R.shape[1], dtype=_F64, device=R.device)
    step = max(1, _MEAN_BLOCK_ELEMENTS // max(1, R.shape[1]))
    for start in range(0, R.shape[0], step):
        mean += R[start : start + step].to(_F64).sum(dim=0)
    R -= (mean / max(1, R.shape[0])).to(R.dtype)
    norms = torch.linalg.vector_norm(R, dim=1, keepdim=True)
    return R.div_(norms.clamp_min(torch.finfo(R.dtype).tiny ** 0.5))


def _with_seeds(Xp, Yp, seeds_x, seeds_y, seed_weight):
    if seeds_x is None or seeds_x.shape[0] == 0:
        return Xp, Yp, None
    w = torch.cat([torch.ones(Xp.shape[0], dtype=_F64, device=Xp.device),
                   torch.full((seeds_x.shape[0],), float(seed_weight), dtype=_F64,
                              device=Xp.device)])
    return torch.cat([Xp, seeds_x]), torch.cat([Yp, seeds_y]), w


def refine_by_neighbours(X, Y, W, n_rounds, *, sample=1000, top_k=50, damping=0.5,
                         seeds_x=None, seeds_y=None, seed_weight=1.0, rng=None,
                         batch_size=None):
    """Damped refinement: ``Y_hat`` = mean of the ``top_k`` nearest y to ``N(xW)`` on a sample
    of x, ``W <- polar((1 - damping) W + damping polar(X_s^T Y_hat))``, ``n_rounds`` times.

    Known pairs (``seeds_x``, ``seeds_y``: their rows) join every fit with
    weight ``seed_weight``.
    """
    rng = np.random.default_rng(rng)
    for _ in range(n_rounds):
        rows = rng.choice(X.shape[0], min(sample, X.shape[0]), replace=False)
        Xs = X[torch.as_tensor(rows, device=X.device)]
        Y_hat = topk_mean_targets(_normalize(Xs @ W), Y, Y, top_k, batch_size)
        W_new = procrustes_polar(*_with_seeds(Xs, Y_hat, seeds_x, seeds_y, seed_weight))
        W = polar((1.0 - damping) * W + damping * W_new)
    return W


def refine_by_csls(X, Y, W, n_rounds, *, k=10, seeds_x=None, seeds_y=None, seed_weight=1.0,
                   batch_size=None):
    """Self-learning (MUSE/VecMap): dictionary = CSLS mutual nearest neighbours of ``N(XW)``
    and ``Y``, ``W = polar(X_D^T Y_D)``, ``n_rounds`` times; the last ``W``.

    Known pairs (``seeds_x``, ``seeds_y``: their rows) join every fit with
    weight ``seed_weight``.  The dictionary under the returned ``W`` is not
    computed: :func:`csls_dictionary` gives it with its score in one evaluation
    (on these or other rows).
    """
    for _ in range(n_rounds):
        rows, cols, _ = csls_mutual_nn(_normalize(X @ W), Y, k, batch_size)
        W = procrustes_polar(*_with_seeds(X[rows], Y[cols], seeds_x, seeds_y, seed_weight))
    return W


def similarity_profiles(Z, n_ref, n_quantiles, rng, batch_size=None):
    """Sorted similarity profile of every row of ``Z``: VecMap's unsupervised start.

    ``Z`` (n, d), centered and row-normalized.  A reference sample ``R`` of
    ``n_ref`` rows (all rows when ``n <= n_ref``) gives the half-whitened
    similarities ``z (R^T R)^{-1/2} R^T`` (for ``R = Z`` the rows of
    ``sqrt(Z Z^T)``, Artetxe et al. 2018); each row is sorted, reduced to
    ``n_quantiles`` evenly spaced order statistics (an empirical quantile
    function) and the profiles are row-normalized, centered and
    row-normalized again.  Sorting forgets which rows are similar and keeps
    how similar, so the profile of an item is the same in two spaces that
    differ by a rotation and an order of the rows; across encoders it is
    close where their geometries are.  With a reference sample
    (``n > n_ref``) the profiles are noisier: the two spaces' samples hold
    different items.

    ``rng`` a numpy Generator (the reference sample).  Memory
    ``O(block * n_ref + n * n_quantiles)``.

    Returns
    -------
    Tensor of shape (n, min(n_quantiles, n, n_ref))
    """
    n = Z.shape[0]
    ref = Z if n <= n_ref else Z[torch.as_tensor(np.sort(rng.choice(n, n_ref, replace=False)),
                                                 device=Z.device)]
    vals, vecs = torch.linalg.eigh(ref.to(_F64).T @ ref.to(_F64))
    inv_sqrt = (vecs / vals.clamp_min(vals.max() * 1e-12).sqrt()) @ vecs.T
    m = ref.shape[0]
    cols = torch.linspace(0, m - 1, min(n_quantiles, m), dtype=_F64).round().long()
    cols = cols.to(Z.device)
    P = torch.empty((n, cols.shape[0]), dtype=Z.dtype, device=Z.device)
    Zw = (Z.to(_F64) @ inv_sqrt).to(Z.dtype)
    for start, stop in _blocks(Zw, ref, batch_size, widths=2):  # the sort's two outputs
        P[start:stop] = torch.sort(Zw[start:stop] @ ref.T, dim=1).values[:, cols]
    return center_normalize(_normalize(P))


def _union_dictionary(A, B, k, batch_size, dropped=None):
    """CSLS best match of every row of ``A`` in ``B`` and of every row of ``B`` in ``A``,
    except where ``dropped`` (bool, len(A) x len(B)) is set; and the objective.

    Returns ``(fwd, bwd, objective)``: ``fwd[i]`` the match of ``A[i]``,
    ``bwd[j]`` that of ``B[j]``, the objective the mean of the best plain
    cosine of each row of ``A`` and of each row of ``B`` (VecMap's).  A
    dropped entry gets CSLS -8 (CSLS lies in [-4, 4]): it is never a match
    unless its whole row (column) is dropped.
    """
    n, m = A.shape[0], B.shape[0]
    blocks = _blocks(A, B, batch_size)
    single = len(blocks) == 1  # one block: its similarities serve both passes
    S_all = A @ B.T if single else None
    # the plain cosine maxima of the objective come with the hubness terms
    r_a, r_b, best_a, best_b = _hubness_and_maxima(
        ((s, e, S_all if single else A[s:e] @ B.T) for s, e in blocks), max(k, 1))

    def csls():  # k=0: plain cosines
        for start, stop in blocks:
            S = S_all if single else A[start:stop] @ B.T
            C = S.mul_(2.0)
            if k:
                C = C.sub_(r_a[start:stop, None]).sub_(r_b[None, :])
            if dropped is not None:
                C.masked_fill_(dropped[start:stop], -8.0)
            yield start, stop, C

    _, fwd, bwd = _running_best(csls(), n, m, A)
    objective = 0.5 * float(best_a.to(_F64).mean()) + 0.5 * float(best_b.to(_F64).mean())
    return fwd, bwd, objective


def profile_map(X, Y, PX, PY, k=10, *, seeds_x=None, seeds_y=None, seed_weight=1.0,
                batch_size=None):
    """The first map of VecMap's start: the union of the CSLS best matches between the
    similarity profiles ``PX`` / ``PY`` (:func:`similarity_profiles`) of ``X`` / ``Y``,
    orthogonal Procrustes on them."""
    fwd, bwd, _ = _union_dictionary(PX, PY, k, batch_size)
    rows = torch.cat([torch.arange(X.shape[0], device=X.device), bwd])
    cols = torch.cat([fwd, torch.arange(Y.shape[0], device=X.device)])
    return procrustes_polar(*_with_seeds(X[rows], Y[cols], seeds_x, seeds_y, seed_weight))


def _random_bytes(shape, generator, device):
    """Uniform random bytes of ``shape``: the bytes of uniform 64-bit integers (one draw
    per 8 bytes, 6x faster than uint8 draws one by one on the CPU)."""
    size = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((size + 7) // 8,), dtype=torch.int64,
                          generator=generator, device=device)
    return words.view(torch.uint8)[:size].view(shape)


def refine_stochastic(X, Y, W, *, k=10, keep=0.1, rounds_per_level=30, max_rounds=200,
                      stall=None, rise=None, done=None, seed=0, seeds_x=None, seeds_y=None,
                      seed_weight=1.0, batch_size=None):
    """Self-learning with stochastic dictionary induction (after VecMap, Artetxe et al. 2018).

    Each round: the CSLS best match of every mapped x in ``Y`` and of every
    y in ``N(XW)``, each CSLS entry dropped with probability ``1 - keep``
    (a dropped entry is not a candidate); ``W = polar(X_D^T Y_D)`` on the
    union of both dictionaries (with the seeds).  ``keep`` doubles every
    ``rounds_per_level`` rounds (0.1, 0.2, 0.4, 0.8, then 1); at 1 the rounds
    go on while VecMap's objective (mean best cosine, both ways) improves by
    1e-6, at most ``max_rounds`` in all.  The dropout is VecMap's way for a
    map that starts from a weak dictionary (a few correct pairs in a
    thousand) to leave the local optimum that plain self-learning stays in.
    VecMap doubles ``keep`` when its objective stalls (50 rounds without
    improvement): ``stall=n`` does so after ``n`` rounds without a new best
    objective (``rounds_per_level`` is then unused); the fixed number of
    rounds per level (``stall=None``) bounds the cost.  ``done(W)``, if
    given, is called with the map whenever ``keep`` is about to double, and
    (``rise``) whenever the objective has risen by ``rise`` since the first
    round at this ``keep`` or since the last call: a map that leaves the
    local optimum lifts the objective by several hundredths within a few
    rounds, and may go on improving slowly without ever stalling.  The
    rounds end when ``done`` returns true.  How
    many matters (Jane Austen passages, MiniLM-L6 -> USE v3, 4,000 rows,
    ``AnchorMatcher(random_state=0..9)``): with 15 rounds per level 6 of 10
    random states reached every pair, with 30 (the default) 10 of 10 with
    uint8 masks and 9 of 10 with these (19 of 20 streams in all; the matcher
    runs a second stream where the first fails).

    ``X`` and ``Y`` are samples: each dropout round draws one
    ``len(X) x len(Y)`` mask of random bytes (``keep`` in steps of 1/256) from a
    generator seeded with ``seed`` (deterministic, and the same for any
    ``batch_size``).

    Returns
    -------
    W : Tensor of shape (d_x, d_y)
    n_rounds : int
    """
    rows_x = torch.arange(X.shape[0], device=X.device)
    rows_y = torch.arange(Y.shape[0], device=X.device)
    gen = torch.Generator(device=X.device).manual_seed(int(seed))
    best, rounds = -math.inf, 0
    level, last = 0, 0  # keep = keep * 2**level; the round of the last new best (stall)
    mark = None  # the objective a rise is measured from
    while rounds < max_rounds:
        p = min(1.0, keep * 2.0**level)
        dropped = None
        if p < 1.0:
            dropped = _random_bytes((X.shape[0], Y.shape[0]), gen, X.device) >= round(256 * p)
        fwd, bwd, objective = _union_dictionary(_normalize(X @ W), Y, k, batch_size, dropped)
        del dropped
        rounds += 1
        if p >= 1.0 and objective - best < 1e-6:
            break  # the last dictionary did not improve on the map it came from
        if stall is None:
            best = objective if p >= 1.0 else best
            raised = rounds % rounds_per_level == 0
        elif objective - best >= 1e-6:
            best, last, raised = objective, rounds, False
        else:
            raised = rounds - last >= stall
            last = rounds if raised else last
        level += raised
        mark = objective if mark is None else mark
        risen = rise is not None and objective - mark >= rise
        W = procrustes_polar(*_with_seeds(X[torch.cat([rows_x, bwd])],
                                          Y[torch.cat([fwd, rows_y])],
                                          seeds_x, seeds_y, seed_weight))
        if raised or risen:
            mark = None if raised else objective  # at a new keep: from its first round
            if done is not None and p < 1.0 and done(W):
                break
    return W, rounds


def refine_soft(X, Y, W, PX, PY, *, temperatures=(0.1, 0.05, 0.03), n_rounds=30,
                prior_weight=0.3, seeds_x=None, seeds_y=None, seed_weight=1.0,
                batch_size=None):
    """Annealed soft Procrustes from sorted similarity profiles: an EM for a rotation.

    Each round, every x is matched softly to all of ``Y``: ``P = softmax``
    over the rows of ``Y`` of ``N(xW) y / t + prior_weight * px py``, the
    cosine of the mapped x with y at temperature ``t`` plus the cosine of
    their similarity profiles ``PX`` / ``PY`` (:func:`similarity_profiles`;
    ``None``: no prior), and ``W = polar(X^T P Y)`` (with the seeds).
    ``n_rounds`` rounds at each temperature of ``temperatures`` in turn.
    ``W=None`` starts from the profiles alone: ``W = polar(X^T P Y)`` with
    ``P = softmax(px py / prior_weight)``.

    Every pair contributes to every fit, weighted by how likely it is, so a
    start whose true matches rank only a little above chance still moves the
    map the right way; the hard dictionaries of :func:`refine_stochastic`
    need a few correct pairs in a thousand.  On two-line Jane Austen passages
    (MiniLM-L6 -> USE v3, 0 pairs, 30 rounds at each temperature, the prior at
    0.1 only; scratch) the true match of the profiles' start ranks 456th of
    4,000 targets (median over 2,000 rows) and 960th of 9,800; after the rounds
    at 0.1, 187th and 335th; after those at 0.05, 36th and 1st; after those at
    0.03 the first match is right for 99.8 % and 99.7 % of the rows.  The
    temperatures: a cosine of the right match a few hundredths above the wrong
    ones weighs several times more at 0.03.

    Memory ``O(block * n_y)``: the ``n_x x n_y`` matrix is formed by blocks of
    rows of X (a row's softmax needs only its own row).

    Returns
    -------
    W : Tensor of shape (d_x, d_y)
    """
    prior = PX is not None
    B = torch.cat([Y, PY], dim=1) if prior else Y
    seeds = None
    if seeds_x is not None and seeds_x.shape[0]:
        seeds = float(seed_weight) * seeds_x.to(_F64).T @ seeds_y.to(_F64)
    schedule = [None] if W is None else []
    schedule += [t for t in temperatures for _ in range(n_rounds)]
    for t in schedule:
        M = torch.zeros((X.shape[1], Y.shape[1]), dtype=_F64, device=X.device)
        A = _normalize(X @ W).div_(t) if t is not None else None
        for start, stop in _blocks(X, B, batch_size, widths=2):
            if t is None:  # the start: the profiles alone
                L = PX[start:stop] @ PY.T / prior_weight
            elif prior:
                L = torch.cat([A[start:stop], prior_weight * PX[start:stop]], dim=1) @ B.T
            else:
                L = A[start:stop] @ B.T
            P = torch.softmax(L, dim=1)
            M += X[start:stop].T.to(_F64) @ (P @ Y).to(_F64)
        W = polar(M if seeds is None else M + seeds).to(X.dtype)
    return W
