"""Nearest-neighbour graphs and the spectra of their Laplacians.

Pure functions on torch tensors (no validation): chunked k-nearest-neighbour
search, the symmetric kNN graph's (normalized) Laplacian as a scipy sparse
matrix, and its extreme eigenpairs by a sparse eigensolver.  Used by the
Laplacian eigenvalue distance of :mod:`sklearn_latent.metrics` (Sogaard et
al. 2018) and by latent functional maps (Fumero et al. 2024).
"""

import math

import numpy as np
import torch

__all__ = ["knn_graph_laplacian", "knn_search", "laplacian_eigenpairs"]

#: Elements of one (rows, n) similarity block (32 MiB of float64).
_BLOCK = 1 << 22


def knn_search(X, k, metric="cosine", *, batch_size=None):
    """The k nearest other rows of each row of ``X`` (self excluded), by row blocks.

    Parameters
    ----------
    X : Tensor of shape (n, d)
    k : int
        ``1 <= k <= n - 1``.
    metric : str, default="cosine"
        A metric of :func:`sklearn_latent.functional.pairwise`; ``"cosine"``
        and ``"dot"`` are similarities (largest = nearest), the others
        distances (smallest = nearest).
    batch_size : int or None, default=None
        Rows per block (memory O(batch_size * n)); ``None``: about 4 million
        entries per block.

    Returns
    -------
    indices : LongTensor of shape (n, k)
        Sorted nearest first.
    values : Tensor of shape (n, k)
        The similarities or distances to them.
    """
    from . import SIMILARITIES, _relative_projector

    n = X.shape[0]
    project = _relative_projector(X, metric)
    largest = metric in SIMILARITIES
    fill = -math.inf if largest else math.inf
    step = batch_size or max(1, _BLOCK // max(1, n))
    idx = torch.empty((n, k), dtype=torch.long, device=X.device)
    val = torch.empty((n, k), dtype=X.dtype, device=X.device)
    for start in range(0, n, step):
        stop = min(start + step, n)
        i = torch.arange(stop - start, device=X.device)
        S = project(X[start:stop])
        S[i, i + start] = fill
        top = torch.topk(S, k, dim=1, largest=largest, sorted=True)
        idx[start:stop], val[start:stop] = top.indices, top.values
    return idx, val


def knn_graph_laplacian(X, k=10, *, metric="cosine", normalized=True, batch_size=None):
    """Laplacian of the symmetric, unweighted k-nearest-neighbour graph of the rows of ``X``.

    ``W_ij = 1`` when ``j`` is among the k nearest neighbours of ``i`` or
    ``i`` among those of ``j`` (self excluded), ``D = diag(W 1)``;
    ``normalized=True`` gives ``L = I - D^-1/2 W D^-1/2`` (eigenvalues in
    [0, 2]), ``False`` gives ``L = D - W`` (eigenvalues in [0, 2 max degree]).
    Built from a chunked k-NN search (memory O(batch_size * n) plus the O(n k)
    graph), never an ``n x n`` dense matrix.

    Parameters
    ----------
    X : Tensor of shape (n, d)
    k : int, default=10
        Neighbours per row, ``1 <= k <= n - 1``.
    metric : str, default="cosine"
        As in :func:`knn_search`.
    normalized : bool, default=True
        Symmetric normalized Laplacian (latent functional maps) or the
        combinatorial one (Sogaard et al. 2018).
    batch_size : int or None, default=None
        Rows per k-NN block.

    Returns
    -------
    scipy.sparse.csr_array of shape (n, n), float64
    """
    idx, _ = knn_search(X, k, metric, batch_size=batch_size)
    return _knn_laplacian(idx, normalized)


def _knn_laplacian(idx, normalized):
    """The Laplacian of the symmetrized graph of neighbour lists ``idx`` (n, k)."""
    import scipy.sparse as sp

    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    cols = idx.cpu().numpy().reshape(-1)
    W = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(n, n))
    W = ((W + W.T) > 0).astype(np.float64)
    deg = np.asarray(W.sum(axis=1)).reshape(-1)
    if normalized:
        s = sp.diags_array(1.0 / np.sqrt(deg))
        return sp.csr_array(sp.eye_array(n) - s @ W @ s)
    return sp.csr_array(sp.diags_array(deg) - W)


def laplacian_eigenpairs(L, n_components, *, which="smallest", tol=0.0, seed=0):
    """Extreme eigenvalues (ascending) and eigenvectors of a sparse graph Laplacian.

    Lanczos (:func:`scipy.sparse.linalg.eigsh`) on the symmetric positive
    semi-definite ``L``: ``which="largest"`` directly, ``"smallest"`` as the
    largest of ``c I - L`` with ``c`` Gershgorin's bound on the spectrum
    (no factorization: memory O(n n_components)).  The start vector is drawn
    from ``seed``, so the result is deterministic.  Small graphs
    (``n_components >= n - 1``) use a dense solver.

    Parameters
    ----------
    L : scipy sparse matrix of shape (n, n)
    n_components : int
        ``1 <= n_components <= n``.
    which : {"smallest", "largest"}, default="smallest"
    tol : float, default=0.0
        Relative accuracy of the eigenvalues (0: machine precision).
    seed : int, default=0

    Returns
    -------
    eigenvalues : ndarray of shape (n_components,)
        Ascending.
    eigenvectors : ndarray of shape (n, n_components)
        Orthonormal columns, in the order of ``eigenvalues``.
    """
    from scipy.sparse.linalg import eigsh

    n = L.shape[0]
    if n_components >= n - 1:
        w, v = np.linalg.eigh(L.toarray())
        sl = slice(0, n_components) if which == "smallest" else slice(n - n_components, n)
        return w[sl], v[:, sl]
    v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=n)
    if which == "largest":
        w, v = eigsh(L, k=n_components, which="LA", tol=tol, v0=v0)
    else:
        c = float(abs(L).sum(axis=1).max())
        import scipy.sparse as sp

        w, v = eigsh(c * sp.eye_array(n) - L, k=n_components, which="LA", tol=tol, v0=v0)
        w = c - w
    order = np.argsort(w)
    return w[order], v[:, order]
