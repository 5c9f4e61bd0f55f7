"""Gromov-Wasserstein matching of two unpaired spaces (through POT, an optional extra).

Gromov-Wasserstein (GW, Mémoli 2011; Peyré, Cuturi and Solomon 2016) matches
the points of two metric spaces by comparing only their *internal* distances:
it looks for the coupling ``T`` (a transport plan, ``T 1 = p``, ``T^T 1 = q``)
that minimizes ``sum_{i,j,k,l} (D_X[i, k] - D_Y[j, l])^2 T[i, j] T[k, l]``.
It needs no pairs and works across dimensions (only the ``n x n`` distance
matrices enter).  The objective is not convex: the conditional-gradient
solver of POT stops in a local minimum that depends on its start, so each run
starts from the plan of Mémoli's third lower bound (each point described by
the sorted distances to all others, a description that no isometry changes;
the two descriptions matched by exact optimal transport), and several runs on
independent subsamples are made.

Each run gives pseudo-pairs (each subsampled x with the barycentre ``T``
assigns it in Y) and their orthogonal Procrustes map ``W`` (d_x, d_y).

POT is imported on first use: the library imports without it.
"""

import numpy as np

__all__ = ["gw_maps", "require_pot"]

#: Quantiles of each point's distance distribution in the lower-bound start.
N_QUANTILES = 32


def require_pot():
    """The ``ot`` module (POT), or an ImportError naming the extra that installs it."""
    try:
        import ot
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(
            "Gromov-Wasserstein matching (discovery='gw') needs POT, the Python Optimal "
            "Transport library, which is not installed: pip install 'sklearn-latent[ot]' "
            "(or pip install 'pot>=0.9')."
        ) from exc
    return ot


def _distances(Z):
    """Cosine distances between the rows of a row-normalized ``Z``, scaled to mean 1."""
    D = np.clip(1.0 - Z @ Z.T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    mean = D.mean()
    return D / mean if mean > 0 else D


def _lower_bound_plan(ot, DX, DY):
    """Exact OT plan between the points' sorted-distance profiles (Mémoli's third lower bound).

    Row ``i`` of each distance matrix, as a distribution, is summarized by
    :data:`N_QUANTILES` quantiles; the cost of pairing ``x_i`` with ``y_j``
    is the L1 distance of their quantile vectors (the 1-D Wasserstein
    distance of the two distributions, up to discretization).
    """
    levels = np.linspace(0.0, 1.0, N_QUANTILES)
    QX = np.quantile(DX, levels, axis=1).T
    QY = np.quantile(DY, levels, axis=1).T
    M = np.abs(QX[:, None, :] - QY[None, :, :]).mean(axis=2)
    p = np.full(DX.shape[0], 1.0 / DX.shape[0])
    q = np.full(DY.shape[0], 1.0 / DY.shape[0])
    return ot.emd(p, q, M), p, q


def gw_coupling(X, Y, max_iter=200):
    """GW plan between the rows of row-normalized ndarrays ``X`` and ``Y``.

    Square loss on cosine distances scaled to mean 1 in each space, uniform
    marginals, POT's conditional gradient from :func:`_lower_bound_plan`.

    Returns
    -------
    T : ndarray of shape (n_x, n_y)
    loss : float
        The GW objective of ``T`` (0 for two isometric, exactly matched sets).
    """
    ot = require_pot()
    DX, DY = _distances(X), _distances(Y)
    G0, p, q = _lower_bound_plan(ot, DX, DY)
    T, log = ot.gromov.gromov_wasserstein(
        DX, DY, p, q, "square_loss", G0=G0, max_iter=max_iter, log=True
    )
    return np.asarray(T), float(log["gw_dist"])


def gw_maps(X, Y, n_samples, n_runs, rng):
    """Orthogonal maps from ``n_runs`` GW matchings of independent subsamples.

    Parameters
    ----------
    X, Y : ndarray of shape (n_x, d_x), (n_y, d_y)
        Centered and row-normalized.
    n_samples : int
        Rows drawn per space in each run (all when fewer).
    n_runs : int
    rng : numpy.random.Generator

    Returns
    -------
    list of (W, loss)
        ``W`` (d_x, d_y) the polar factor of ``X_s^T Y_hat``, with ``Y_hat``
        the barycentric projection of the plan; ``loss`` the run's GW objective.
    """
    out = []
    for _ in range(n_runs):
        rx = np.sort(rng.choice(X.shape[0], min(n_samples, X.shape[0]), replace=False))
        ry = np.sort(rng.choice(Y.shape[0], min(n_samples, Y.shape[0]), replace=False))
        Xs, Ys = X[rx], Y[ry]
        T, loss = gw_coupling(Xs, Ys)
        Y_hat = (T @ Ys) / np.maximum(T.sum(axis=1, keepdims=True), 1e-300)
        U, _, Vh = np.linalg.svd(Xs.T @ Y_hat, full_matrices=False)
        out.append((U @ Vh, loss))
    return out
