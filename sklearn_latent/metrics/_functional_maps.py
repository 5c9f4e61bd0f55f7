"""Functional-map similarity of two spaces (latent functional maps, Fumero et al. 2024)."""

import numpy as np
import torch

from .._backend import check_input, to_tensor, torch_dtype
from ..functional import _fmaps as FF


def functional_map_similarity(X, Y, *, seeds=None, n_components=30, n_neighbors=10,
                              alpha=1.0):
    """Functional-map similarity of two spaces (Fumero et al. 2024; a similarity in (0, 1]).

    Builds the symmetric cosine kNN graph of each space, its normalized
    Laplacian and its ``n_components`` smallest eigenvectors ``Phi`` (sparse
    solver), and the functional map ``C`` (k, k) between the two eigenbases:

    * ``seeds=None``: the rows of X and Y are paired (same items, same order),
      and ``C = Phi_Y^T Phi_X`` is the map induced by that correspondence;
    * ``seeds`` given (a few known pairs ``(row of X, row of Y)``; the spaces
      may then hold different rows): ``C`` is estimated from the anchors'
      cosine-distance descriptors with the Laplacian commutativity
      regularizer, as :class:`~sklearn_latent.FunctionalMapTranslator` does.

    The score is ``||diag(C^T C)||^2 / ||C^T C||_F^2``: 1 when ``C`` maps the
    eigenbasis orthogonally (the two kNN graphs are isometric: same
    neighbourhoods), smaller as the map mixes eigenvectors of different
    frequencies.  The first eigenvector (the square roots of the degrees)
    matches its counterpart on any two graphs and is left out of ``C``
    (otherwise it alone pushes the score towards 1); a map with random
    entries then scores about 0.5 (measured 0.54-0.60 on unrelated Gaussian
    spaces and on wrongly paired rows), so the useful range is roughly
    [0.5, 1]; ``calibrate(functional_map_similarity, X, Y)`` (paired rows) sets it
    against its permutation null.  Invariant to what keeps the cosine kNN graphs: orthogonal
    maps and isotropic scaling of either space.  Its value depends on
    ``n_components`` and ``n_neighbors``: compare scores computed with the
    same settings.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_x, d_x)
    Y : array-like or Tensor of shape (n_y, d_y)
        ``n_y == n_x`` (rows paired) when ``seeds`` is None.
    seeds : array-like of shape (n_seeds, 2) or None, default=None
        Known pairs, at least 2.
    n_components : int, default=30
        Eigenvectors per space, ``<= min(n_x, n_y)``.
    n_neighbors : int, default=10
        Neighbours per row, ``<= min(n_x, n_y) - 1``.
    alpha : float, default=1.0
        Laplacian commutativity weight (used with ``seeds`` only).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``seeds`` is None and the row counts differ, a space is constant,
        or the settings do not fit the data.

    References
    ----------
    M. Fumero, M. Pegoraro, V. Maiorca, F. Locatello and E. Rodolà, "Latent
    Functional Maps: a spectral framework for representation alignment",
    NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import functional_map_similarity
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 6)) * np.arange(1, 7)
    >>> Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    >>> round(functional_map_similarity(X, 3.0 * X @ Q, n_components=20), 6)   # isometric
    1.0
    >>> functional_map_similarity(X, X + rng.normal(size=(300, 6)), n_components=20) > 0.9
    True
    >>> functional_map_similarity(X, rng.normal(size=(300, 6)), n_components=20) < 0.7
    True
    """
    from ..fmaps import _check_not_constant, check_fmap_seeds, check_graph_params

    X = check_input(None, X, reset=False, input_name="X")
    Y = check_input(None, Y, reset=False, input_name="Y")
    n_x, n_y = X.shape[0], Y.shape[0]
    owner = "functional_map_similarity"
    if seeds is None and n_x != n_y:
        raise ValueError(
            f"functional_map_similarity without seeds needs paired rows, but X has {n_x} "
            f"rows and Y has {n_y}: give seeds (known pairs) for unpaired spaces."
        )
    if seeds is not None:
        seeds = check_fmap_seeds(seeds, n_x, n_y, owner)
    k, n_comp, alpha = check_graph_params(n_neighbors, n_components, alpha, min(n_x, n_y), owner)
    tensors = []
    for T, name in ((X, "X"), (Y, "Y")):
        dev = T.device if isinstance(T, torch.Tensor) else "cpu"
        T = to_tensor(T, dev, torch_dtype(T))
        _check_not_constant(T, name)
        tensors.append(T)
    Xt, Yt = tensors
    with torch.no_grad():
        if seeds is None:
            _, px, _, py = FF.eigenbases(Xt, Yt.to(Xt.device), k, n_comp)
            C = py.T @ px
        else:
            C = FF.latent_functional_map(Xt, Yt.to(Xt.device), seeds, k, n_comp, alpha)[0]
    return float(np.float64(FF.fmap_similarity(C)))
