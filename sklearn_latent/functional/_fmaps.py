"""Latent functional maps (Fumero et al., NeurIPS 2024): the math, no validation, no state.

Two spaces ``X`` (n_x, d_x) and ``Y`` (n_y, d_y), a few known pairs (anchors):

1. the symmetric kNN graph of each space and its normalized Laplacian
   ``L = I - D^-1/2 W D^-1/2`` (sparse, :func:`knn_graph_laplacian`); its
   ``k`` smallest eigenpairs ``(Lambda, Phi)`` by a sparse Lanczos solver
   (:func:`laplacian_eigenpairs`), never an ``n x n`` dense matrix;
2. descriptors: the cosine distance of every row to each anchor (one
   function per anchor on each graph), columns scaled to unit norm, projected
   on the eigenbasis, ``A = Phi^T F`` (k, m);
3. the functional map ``C`` (k_y, k_x) from functions on X to functions on Y:
   ``argmin ||C A_x - A_y||^2 + alpha ||Lambda_y C - C Lambda_x||^2``.  The
   commutativity term is diagonal in the entries, so each row ``c_i`` of
   ``C`` has a closed form, ``(A_x A_x^T + alpha diag((lambda^y_i -
   lambda^x)^2)) c_i = A_x a^y_i``: ``k_y`` small ``k_x x k_x`` systems;
4. point correspondences: nearest neighbours between the rows of
   ``sqrt(n_x) Phi_x C^T`` (each x's delta function carried to Y) and of
   ``sqrt(n_y) Phi_y``.

The eigenvalues of both graphs are divided by one common scale (the largest
of the ``2k`` kept), so ``alpha`` does not depend on the graphs' sizes.
"""

import numpy as np
import torch

from ._graph import knn_graph_laplacian, laplacian_eigenpairs

__all__ = [
    "anchor_descriptors",
    "fmap_similarity",
    "graph_eigenbasis",
    "solve_functional_map",
    "spectral_matches",
]

_F64 = torch.float64


def graph_eigenbasis(Z, n_neighbors, n_components, *, batch_size=None, seed=0):
    """``(eigenvalues (k,), Phi (n, k))`` of the normalized Laplacian of Z's symmetric kNN graph.

    Cosine neighbours, unweighted edges; float64 numpy results (ascending).
    """
    L = knn_graph_laplacian(Z, n_neighbors, metric="cosine", normalized=True,
                            batch_size=batch_size)
    return laplacian_eigenpairs(L, n_components, which="smallest", seed=seed)


def anchor_descriptors(Z, anchor_rows):
    """Cosine distances ``1 - cos(z - mu, a - mu)`` of every row to each anchor row, (n, m).

    ``mu`` is the mean of Z (each space centered on its own mean, as
    :class:`~sklearn_latent.RelativeProjector` with ``center=True`` does with
    its anchors).  Columns are scaled to unit Euclidean norm, so spaces with
    different numbers of rows give comparable descriptors.  float64.
    """
    Z64 = Z.to(_F64)
    Zc = Z64 - Z64.mean(dim=0)
    norms = torch.linalg.vector_norm(Zc, dim=1, keepdim=True)
    Zn = Zc / norms.clamp_min(torch.finfo(_F64).tiny ** 0.5)
    F = 1.0 - Zn @ Zn[anchor_rows].T
    return F / torch.linalg.vector_norm(F, dim=0, keepdim=True).clamp_min(1e-300)


def solve_functional_map(A_x, A_y, evals_x, evals_y, alpha):
    """``C = argmin ||C A_x - A_y||_F^2 + alpha ||Lambda_y C - C Lambda_x||_F^2``, row by row.

    Parameters
    ----------
    A_x : Tensor of shape (k_x, m)
        Spectral coefficients of the m descriptors on X (``Phi_x^T F_x``).
    A_y : Tensor of shape (k_y, m)
    evals_x : Tensor of shape (k_x,)
    evals_y : Tensor of shape (k_y,)
    alpha : float
        Weight of the Laplacian commutativity (``>= 0``; with ``alpha=0``
        and fewer descriptors than ``k_x`` the systems are singular: the
        minimum-norm solution is returned).

    Returns
    -------
    C : Tensor of shape (k_y, k_x), float64
    """
    A_x, A_y = A_x.to(_F64), A_y.to(_F64)
    M = A_x @ A_x.T                                     # (k_x, k_x)
    rhs = A_y @ A_x.T                                   # (k_y, k_x): row i is A_x a^y_i
    penalty = (evals_y.to(_F64)[:, None] - evals_x.to(_F64)[None, :]) ** 2   # (k_y, k_x)
    systems = M.unsqueeze(0) + alpha * torch.diag_embed(penalty)            # (k_y, k_x, k_x)
    if alpha > 0:
        return torch.linalg.solve(systems, rhs.unsqueeze(-1)).squeeze(-1)
    return (torch.linalg.pinv(systems, hermitian=True) @ rhs.unsqueeze(-1)).squeeze(-1)


def fmap_similarity(C, skip_first=True):
    """``||diag(C^T C)||^2 / ||C^T C||_F^2`` in (0, 1]: 1 for an orthogonal (isometric) map.

    ``skip_first=True`` leaves out the first row and column of ``C`` (the
    trivial eigenvector, proportional to the square roots of the degrees),
    which maps onto its counterpart on any two graphs and alone would push
    the score to 1 for small ``C``.
    """
    C = C.to(_F64)
    if skip_first and min(C.shape) > 1:
        C = C[1:, 1:]
    G = C.T @ C
    denom = float((G * G).sum())
    return float((torch.diagonal(G) ** 2).sum()) / denom if denom > 0 else 0.0


def _nearest(Q, B, batch_size):
    """Euclidean nearest row of B for each row of Q (index, squared distance), by row blocks."""
    from ._matching import _blocks

    b_sq = (B * B).sum(dim=1)
    idx = torch.empty(Q.shape[0], dtype=torch.int64, device=Q.device)
    dist = torch.empty(Q.shape[0], dtype=Q.dtype, device=Q.device)
    for start, stop in _blocks(Q, B, batch_size):
        q = Q[start:stop]
        D = (q * q).sum(dim=1, keepdim=True) + b_sq[None, :] - 2.0 * (q @ B.T)
        dist[start:stop], idx[start:stop] = D.min(dim=1)
    return idx, dist.clamp_min(0.0)


def spectral_matches(Phi_x, Phi_y, C, *, mutual=True, batch_size=None):
    """Point correspondences from a functional map: nearest neighbours in the aligned spectra.

    Each row of X is represented by ``sqrt(n_x) Phi_x C^T`` (its delta function
    carried into Y's basis), each row of Y by ``sqrt(n_y) Phi_y``; x is matched
    with its nearest y (Euclidean).  ``mutual=True`` keeps only the pairs where
    x is also the nearest aligned x of that y.

    Returns
    -------
    rows, cols : LongTensor of shape (p,)
    distances : Tensor of shape (p,)
        Squared spectral distance of each pair (smaller: more confident).
    """
    n_x, n_y = Phi_x.shape[0], Phi_y.shape[0]
    EX = (Phi_x.to(_F64) @ C.to(_F64).T) * n_x ** 0.5
    EY = Phi_y.to(_F64) * n_y ** 0.5
    cols, dist = _nearest(EX, EY, batch_size)
    rows = torch.arange(n_x, device=EX.device)
    if mutual:
        back, _ = _nearest(EY, EX, batch_size)
        keep = back[cols] == rows
        rows, cols, dist = rows[keep], cols[keep], dist[keep]
    return rows, cols, dist


def eigenbases(X, Y, n_neighbors, n_components, batch_size=None):
    """Both spaces' eigenpairs, eigenvalues divided by one common scale; torch float64."""
    out = []
    for Z in (X, Y):
        w, v = graph_eigenbasis(Z, n_neighbors, n_components, batch_size=batch_size)
        out.append((torch.as_tensor(np.ascontiguousarray(w), dtype=_F64, device=Z.device),
                    torch.as_tensor(np.ascontiguousarray(v), dtype=_F64, device=Z.device)))
    (lx, px), (ly, py) = out
    scale = float(max(lx.max(), ly.max()))
    if scale > 0:
        lx, ly = lx / scale, ly / scale
    return lx, px, ly, py


def latent_functional_map(X, Y, seeds, n_neighbors, n_components, alpha, batch_size=None):
    """The functional map of two spaces from the anchor pairs ``seeds`` (m, 2), and the bases.

    Returns ``(C, Phi_x, Phi_y, evals_x, evals_y)``, float64 tensors.
    """
    lx, px, ly, py = eigenbases(X, Y, n_neighbors, n_components, batch_size)
    sx = torch.as_tensor(seeds[:, 0], device=X.device)
    sy = torch.as_tensor(seeds[:, 1], device=Y.device)
    A_x = px.T @ anchor_descriptors(X, sx)
    A_y = py.T @ anchor_descriptors(Y, sy).to(px.device)
    C = solve_functional_map(A_x, A_y, lx, ly, alpha)
    return C, px, py, lx, ly
