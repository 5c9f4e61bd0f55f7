"""Correspondence-free comparison of two spaces by the spectra of their kNN graphs."""

import numbers

import numpy as np
import torch

from .. import functional as F
from .._backend import check_batch_size, check_input, check_option, to_tensor, torch_dtype
from ._common import KNN_METRICS, _check_constant, _check_k, _step
from ._similarity import _knn


def _graph_spectrum(T, name, k, metric, n_eigenvalues, batch_size):
    from ..functional._graph import _knn_laplacian

    _check_constant(T, name, "laplacian_eigenvalue_distance")
    idx = _knn(T, k, metric, _step(T.shape[0], batch_size), name, "laplacian_eigenvalue_distance")
    L = _knn_laplacian(idx, normalized=False)
    return F.laplacian_eigenpairs(L, n_eigenvalues, which="largest")[0][::-1]


def laplacian_eigenvalue_distance(X, Y, *, k=10, n_eigenvalues=20, metric="cosine",
                                  batch_size=None):
    """Laplacian eigenvalue distance of two spaces' kNN graphs (Sogaard et al. 2018; a distance).

    Builds the symmetric, unweighted k-nearest-neighbour graph of each space
    (``W_ij = 1`` when ``j`` is among the k nearest rows of ``i`` or the
    reverse), its combinatorial Laplacian ``L = D - W``, and compares the
    ``n_eigenvalues`` largest eigenvalues: ``Delta = sum_i (lambda_i^X -
    lambda_i^Y)^2``.  Needs **no correspondences**: the two spaces may hold
    different samples, in any order, and different numbers of them.  0 when
    the two graphs are isomorphic; larger means less isometric spaces, which
    Sogaard et al. found to predict where unsupervised (pair-free) alignment
    fails.

    Invariant to everything that keeps the kNN graph: row order, orthogonal
    maps, isotropic scaling (and translation for ``metric="euclidean"``);
    not invariant to maps that change neighbourhoods.  The paper keeps as
    many eigenvalues as reach 90 % of the spectrum's sum, which needs the
    full spectrum (O(n^3)); here the count is ``n_eigenvalues``, found by a
    sparse Lanczos solver (:func:`sklearn_latent.functional.laplacian_eigenpairs`)
    on the O(n k) graph (:func:`sklearn_latent.functional.knn_search` by row
    blocks, O(batch_size * n) memory).

    Parameters
    ----------
    X : array-like or Tensor of shape (n_x, d_x)
    Y : array-like or Tensor of shape (n_y, d_y)
        Any samples (no pairing needed).
    k : int, default=10
        Neighbours per row, ``1 <= k <= min(n_x, n_y) - 2``.
    n_eigenvalues : int, default=20
        Largest eigenvalues compared, ``1 <= n_eigenvalues <= min(n_x, n_y)``.
    metric : str, default="cosine"
        As in :func:`mutual_knn_alignment`.
    batch_size : int or None, default=None
        Rows per similarity block.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If a space is constant, has fewer than 3 rows, or ties make its
        neighbourhoods undefined.

    References
    ----------
    A. Sogaard, S. Ruder, I. Vulic. "On the Limitations of Unsupervised
    Bilingual Dictionary Induction", ACL 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import laplacian_eigenvalue_distance
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 8))
    >>> Q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    >>> shuffled = (2.0 * X @ Q)[rng.permutation(200)]       # no correspondences needed
    >>> round(laplacian_eigenvalue_distance(X, shuffled, k=5), 6)
    0.0
    """
    metric = check_option(metric, "metric", KNN_METRICS)
    batch_size = check_batch_size(batch_size)
    X = check_input(None, X, reset=False, input_name="X")
    Y = check_input(None, Y, reset=False, input_name="Y")
    n = min(X.shape[0], Y.shape[0])
    if n < 3:
        raise ValueError(
            f"laplacian_eigenvalue_distance needs at least 3 rows per space; got "
            f"X.shape={tuple(X.shape)} and Y.shape={tuple(Y.shape)}."
        )
    k = _check_k(k, 1, n - 2, f"laplacian_eigenvalue_distance on {n} rows (self excluded)")
    if isinstance(n_eigenvalues, bool) or not isinstance(n_eigenvalues, numbers.Integral):
        raise TypeError(f"n_eigenvalues must be an int, got {n_eigenvalues!r}.")
    if not 1 <= n_eigenvalues <= n:
        raise ValueError(f"n_eigenvalues={n_eigenvalues} is out of range: 1 <= it <= {n}.")
    spectra = []
    for T, name in ((X, "X"), (Y, "Y")):
        T = to_tensor(T, T.device if isinstance(T, torch.Tensor) else "cpu", torch_dtype(T))
        spectra.append(_graph_spectrum(T, name, k, metric, int(n_eigenvalues), batch_size))
    return float(np.square(spectra[0] - spectra[1]).sum())
