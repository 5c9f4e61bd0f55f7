"""Retrieval quality of translated points: paired cosine, top-k, MRR, mean rank."""

import torch

from .. import functional as F
from .._backend import (
    check_batch_size,
    check_csls,
)
from ._common import (
    _F64,
    _check_k,
    _check_pair,
    _duplicate_groups,
    _float,
    _step,
)


# --------------------------------------------------------------------------
# retrieval of translated points
# --------------------------------------------------------------------------
def _csls_terms(Y_pred, Y_true, csls, batch_size):
    """Hubness terms ``(r_pred, r_true)`` of CSLS with ``csls`` neighbours, or None."""
    csls = check_csls(csls)
    if csls is None:
        return None
    from ..functional import _matching as FM

    P, T = F._safe_normalize(Y_pred), F._safe_normalize(Y_true)
    return (FM.csls_knn_mean(P, T, csls, check_batch_size(batch_size)),
            FM.csls_knn_mean(T, P, csls, check_batch_size(batch_size)))


def _ranks(Y_pred, Y_true, batch_size, func, csls=None):
    """rank_i = 1 + #{j: S_ij > S_ii, Y_true_j not a duplicate of Y_true_i} by row blocks.

    ``S = norm(Y_pred) norm(Y_true)^T``.  A candidate ``j`` ties with the true
    target ``i`` (and never ranks above it) when their normalized rows are
    equal up to the rounding of the normalization: ``max |n_j - n_i| <= 4 eps``
    in the data's precision (``n = Y_true / ||Y_true||``).  That covers exact
    copies and positive multiples, whatever the columns' positions, where a
    GEMM rounds two identical columns differently.  Exact duplicates (after
    division by a power of two, per row) are grouped once by sorting; the
    remaining near-parallel candidates are checked only where
    ``S_ij - S_ii`` is within the GEMM's rounding bound.

    With ``csls`` (a number of neighbours), ``S`` is the CSLS score
    ``2 S - r_pred - r_true`` (hubness terms of :func:`_csls_terms`).
    """
    zero = ~(Y_pred != 0).any(dim=1)
    if bool(zero.any()):
        where = torch.nonzero(zero).reshape(-1)[:5].tolist()
        raise ValueError(
            f"{func}: Y_pred has {int(zero.sum())} all-zero row(s) (first: {where}); their "
            "cosine with every target is 0, so their rank is undefined."
        )
    n, d = Y_true.shape
    eps = torch.finfo(Y_true.dtype).eps
    s_tol = (4.0 * d**0.5 + 2.0 * d + 4.0) * eps  # |S_ij - S_ii| for near-duplicates
    groups = _duplicate_groups(Y_true, direction=True)
    hub = _csls_terms(Y_pred, Y_true, csls, batch_size)
    if hub is not None:
        s_tol *= 2.0  # the CSLS score doubles the cosines' rounding
    normed = None  # normalized targets, computed only if a near tie needs them
    project = F._relative_projector(Y_true, "cosine")
    ranks = torch.empty(n, dtype=torch.long, device=Y_pred.device)
    step = _step(n, check_batch_size(batch_size))
    for start in range(0, n, step):
        stop = min(start + step, n)
        i = torch.arange(stop - start, device=Y_pred.device)
        S = project(Y_pred[start:stop])
        if hub is not None:  # CSLS: 2 cos - r_pred - r_true (Conneau et al., 2018)
            S = 2.0 * S - hub[0][start:stop, None] - hub[1][None, :]
        diag = S[i, i + start]
        above = S > diag[:, None]
        if groups is not None:
            above &= groups[None, :] != groups[start:stop, None]
        near = torch.nonzero(above & (S <= diag[:, None] + s_tol))
        if near.shape[0]:
            if normed is None:
                normed = F._safe_normalize(Y_true)
            ties = torch.zeros_like(near[:, 0], dtype=torch.bool)
            chunk = max(1, _step(d))
            for a in range(0, near.shape[0], chunk):
                q, j = near[a : a + chunk, 0], near[a : a + chunk, 1]
                gap = (normed[j] - normed[q + start]).abs().amax(dim=1)
                ties[a : a + chunk] = gap <= 4 * eps
            near = near[ties]
            above[near[:, 0], near[:, 1]] = False
        ranks[start:stop] = 1 + above.sum(dim=1)
    return ranks


def _check_retrieval(Y_pred, Y_true, func, min_samples=2):
    return _check_pair(
        Y_pred, Y_true, ("Y_pred", "Y_true"), func, min_samples=min_samples, same_width=True
    )


def paired_cosine_similarity(Y_pred, Y_true):
    """Mean cosine similarity between each translated row and its true target.

    ``mean_i cos(Y_pred_i, Y_true_i)``; a zero row has cosine 0 with
    everything (as :func:`sklearn_latent.functional.pairwise`).  In [-1, 1].

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points, e.g. ``translator.transform(X_source)``.
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings in the target space.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import paired_cosine_similarity
    >>> round(paired_cosine_similarity([[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [1.0, 1.0]]), 4)
    0.8536
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "paired_cosine_similarity", 1)
    n = Y_pred.shape[0]
    total = torch.zeros((), dtype=_F64, device=Y_pred.device)
    step = _step(Y_pred.shape[1])
    for start in range(0, n, step):
        a = F._safe_normalize(Y_pred[start : start + step])
        b = F._safe_normalize(Y_true[start : start + step])
        total += (a * b).sum(dim=1).sum(dtype=_F64)
    return _float(total / n)


def top_k_accuracy(Y_pred, Y_true, *, k=1, batch_size=None, csls=None):
    """Fraction of translated rows whose true target is among their k most similar targets.

    With ``S = norm(Y_pred) norm(Y_true)^T`` and
    ``rank_i = 1 + #{j: S_ij > S_ii}``: ``mean_i [rank_i <= k]``.  Ties count
    in favour of the true target: a candidate ``Y_true_j`` that is a duplicate
    of the true target (equal after normalization up to its rounding, e.g. a
    copy or a positive multiple) never ranks above it, wherever it stands
    among the columns.  ``S`` is computed by row blocks (memory
    O(block * n)).

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (the candidates; row i is the answer to query i).
    k : int, default=1
        ``1 <= k <= n``.
    batch_size : int or None, default=None
        Query rows per block.
    csls : int or None, default=None
        Rank under CSLS (cross-domain similarity local scaling, Conneau et al.
        2018) with this many neighbours in the hubness terms instead of the
        cosine: ``2 cos(p_i, t_j) - r_pred(i) - r_true(j)``, ``r`` the mean
        cosine to the ``csls`` nearest rows of the other set (chunked).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Also if a row of ``Y_pred`` is all zeros (its rank is undefined).

    Examples
    --------
    >>> from sklearn_latent.metrics import top_k_accuracy
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(top_k_accuracy(Y_pred, Y_true), 4), top_k_accuracy(Y_pred, Y_true, k=2)
    (0.6667, 1.0)
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "top_k_accuracy")
    k = _check_k(k, 1, Y_pred.shape[0], f"top_k_accuracy on {Y_pred.shape[0]} samples")
    ranks = _ranks(Y_pred, Y_true, batch_size, "top_k_accuracy", csls)
    return _float((ranks <= k).sum()) / ranks.numel()


def mean_reciprocal_rank(Y_pred, Y_true, *, batch_size=None, csls=None):
    """Mean reciprocal rank of each translated row's true target.

    ``MRR = mean_i 1 / rank_i`` with ``rank_i`` as in :func:`top_k_accuracy`.
    In (0, 1]; 1 when every true target is the most similar candidate.

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (candidates).
    batch_size : int or None, default=None
        Query rows per block.
    csls : int or None, default=None
        Rank under CSLS (cross-domain similarity local scaling, Conneau et al.
        2018) with this many neighbours in the hubness terms instead of the
        cosine: ``2 cos(p_i, t_j) - r_pred(i) - r_true(j)``, ``r`` the mean
        cosine to the ``csls`` nearest rows of the other set (chunked).

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn_latent.metrics import mean_reciprocal_rank
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(mean_reciprocal_rank(Y_pred, Y_true), 4)   # ranks 1, 2, 1
    0.8333
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "mean_reciprocal_rank")
    ranks = _ranks(Y_pred, Y_true, batch_size, "mean_reciprocal_rank", csls)
    return _float((1.0 / ranks.to(_F64)).mean())


def mean_rank(Y_pred, Y_true, *, batch_size=None, csls=None):
    """Mean rank of each translated row's true target (1 is best; lower is better).

    ``mean_i rank_i`` with ``rank_i`` as in :func:`top_k_accuracy`; about
    ``(n + 1) / 2`` for unrelated points.

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (candidates).
    batch_size : int or None, default=None
        Query rows per block.
    csls : int or None, default=None
        Rank under CSLS (cross-domain similarity local scaling, Conneau et al.
        2018) with this many neighbours in the hubness terms instead of the
        cosine: ``2 cos(p_i, t_j) - r_pred(i) - r_true(j)``, ``r`` the mean
        cosine to the ``csls`` nearest rows of the other set (chunked).

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn_latent.metrics import mean_rank
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(mean_rank(Y_pred, Y_true), 4)
    1.3333
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "mean_rank")
    ranks = _ranks(Y_pred, Y_true, batch_size, "mean_rank", csls)
    return _float(ranks.to(_F64).mean())


def foscttm(Y_pred, Y_true, *, batch_size=None, csls=None):
    """Fraction of samples closer than the true match (FOSCTTM), averaged over the rows.

    ``mean_i #{j != i: S_ij > S_ii} / (n - 1) = (mean_rank - 1) / (n - 1)``
    with ``S`` and ``rank_i`` as in :func:`top_k_accuracy` (cosine, or CSLS
    with ``csls``; a duplicate of the true target never counts as closer).
    0 when every true target is the closest candidate, about 0.5 for
    unrelated points (Liu et al. 2019 use it to score alignments of
    unpaired data; here from the queries ``Y_pred`` towards the candidates
    ``Y_true``).  Unlike top-1 accuracy it still separates near misses from
    failures.  ``S`` is computed by row blocks (memory O(block * n), never
    ``n x n``).

    Parameters
    ----------
    Y_pred : array-like or Tensor of shape (n_samples, d)
        Translated points (queries).
    Y_true : array-like or Tensor of shape (n_samples, d)
        Their true embeddings (candidates).  At least 2 samples.
    batch_size : int or None, default=None
        Query rows per block.
    csls : int or None, default=None
        Count the candidates closer under CSLS with this many neighbours in the
        hubness terms instead of the cosine (see :func:`top_k_accuracy`).

    Returns
    -------
    float
        In [0, 1]; lower is better.

    References
    ----------
    .. [1] J. Liu, Y. Huang, R. Singh, J.-P. Vert and W. S. Noble, "Jointly
       embedding multiple single-cell omics measurements", WABI 2019.

    Examples
    --------
    >>> from sklearn_latent.metrics import foscttm
    >>> Y_true = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> Y_pred = [[1.0, 0.1], [1.0, 0.5], [-1.0, -0.2]]
    >>> round(foscttm(Y_pred, Y_true), 4)   # 0, 1 and 0 of the 2 other candidates closer
    0.1667
    """
    Y_pred, Y_true = _check_retrieval(Y_pred, Y_true, "foscttm")
    ranks = _ranks(Y_pred, Y_true, batch_size, "foscttm", csls)
    return _float((ranks - 1).to(_F64).mean() / (ranks.numel() - 1))
