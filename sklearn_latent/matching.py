"""Parallel anchors without pairs or from a few: pair-free alignment and seed bootstrapping."""

import copy
import functools
import math
import numbers

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.validation import check_is_fitted

from . import functional as F
from .functional import _matching as FM
from ._backend import (
    atomic_fit,
    check_batch_size,
    check_input,
    check_option,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .translate import ProcrustesTranslator

__all__ = ["AlignmentWarning", "AnchorMatcher", "discover_anchors"]

MATCHINGS = ("mutual_nn", "sinkhorn")
DISCOVERIES = ("auto", "centroids", "profiles", "relative", "gw")
#: Cluster counts tried by ``n_centroids="auto"`` (kept: the most mutual CSLS matches).
AUTO_CENTROIDS = (10, 20, 30, 50)
#: Rows per space in each subsampled k-means run of the centroid matching.
SUBSAMPLE = 2500
#: Gromov-Wasserstein runs (independent subsamples) of ``discovery="gw"``.
GW_RUNS = 3
#: Fewest rows per cluster of the k-means of the centroid matching.
MIN_ROWS_PER_CLUSTER = 5
#: An alignment is reported as unlikely to be right (:class:`AlignmentWarning`)
#: when fewer than this share of the rows that are not mutual matches under a
#: random start become mutual matches: ``(mutual - null) / (1 - null)``, with
#: ``null`` the mutual fraction that the same self-learning reaches from a
#: random orthogonal map.  Measured: 0.90-1.0 on correct alignments (digits and
#: text encoders, clustered synthetic data), below 0.45 on failed or partly
#: failed ones (isotropic and unrelated spaces, truly unpaired text).
RELIABILITY_THRESHOLD = 0.5
#: An alignment is also reported (as ambiguous) when a candidate map of the
#: centroid or GW route that passes the failure signal on its own pairs fewer
#: than this share of a sample of X as the kept map does: two different maps
#: fit about equally well, as on a symmetric shape.  Measured on the agreeing
#: candidates of correct alignments: 0.72 (Austen MiniLM-L6 -> L3) and 1.0
#: (clustered synthetic data); on one and two Gaussian blobs at 20,000 rows
#: (kept maps 0 % and 85 % right, reliability 0.50 and 0.92): 0.00-0.15.
AMBIGUITY_AGREEMENT = 0.5
#: The pair search of ``discovery="centroids"`` runs on each space's leading
#: principal axes when it is wider than this (every similarity pass costs in
#: proportion to the width); the translator is fitted on the full width.
MAX_WIDTH = 256
#: When X has more rows than this, the self-learning rounds and the reliability
#: measurement of ``discovery="centroids"`` / ``"gw"`` run on one fixed random
#: sample of this many rows of X against every row of y (each CSLS evaluation
#: then costs in proportion to n_y, not n_x * n_y); one final evaluation over
#: all rows gives the pairs.
REFINE_ROWS = 5000
#: The most rows of each space that the profile route (``discovery="profiles"``)
#: builds its similarity profiles and first map on; every one of them is a
#: reference row of the profiles.  Up to this many rows per space it runs on
#: all of them: where both spaces hold the same items the two reference sets
#: are then the same items, and a profile is the same function of an item in
#: both.  Above, on the rows farthest from the space's mean (centered norm,
#: which a rotation, a translation and a common scale leave in the same order;
#: near-isometric spaces then pick mostly the same items).  The dropout rounds
#: run on the :data:`REFINE_ROWS` farthest of them (each round costs in
#: proportion to its rows squared).  Measured on two-line Jane Austen passages
#: (MiniLM-L6 -> USE v3, 0 pairs; scratch runs of the dropout stage alone on
#: VecMap's schedule): at 9,800 rows, from profiles on the 5,000 farthest rows
#: (the rule before: half the rows, at least 5,000, at most 8,000) 0 of 2
#: streams took off, nor did 3 on 3,000 x 8,000 or 2,500 x 9,800 dropout
#: rows (whose items the two samples share 99 % and 100 %); from profiles on
#: all 9,800 rows 2 of 4 did (a third had 27 % of its matches right when it
#: stopped), and at 20,000 rows (profiles 33 s) 1 of 1.  With the matcher,
#: 2 of 5 random states at 9,800 rows and 2 of 2 at 20,000 reach every pair
#: (0 of 1 each before; the others warn); three-line passages at 16,095 rows
#: stay at 10 of 10, at 110-129 s instead of 91-95 s (212-223 s where the third
#: dropout stream runs).
PROFILE_ROWS = 20000
#: Order statistics kept of each similarity profile (500 of 4,000 find as many
#: correct first matches as all of them).
PROFILE_QUANTILES = 500
#: Stochastic dictionary induction of ``discovery="profiles"``
#: (:func:`~sklearn_latent.functional._matching.refine_stochastic`): the first
#: keep probability, the rounds at each keep probability, and the most rounds.
STOCHASTIC_KEEP = 0.1
STOCHASTIC_ROUNDS = 30
MAX_STOCHASTIC_ROUNDS = 200
#: Dropout streams the stochastic induction may try: another one only when the
#: map of the one before fails the failure signal.  On Jane Austen passages
#: (MiniLM-L6 -> USE v3, 4,000 rows) one stream of 30 rounds per level failed for
#: 1 of 10 random states of the matcher (and 0 of 10 other streams from the same
#: start); at 16,095 rows the first failed on 3 of 10 and the second found the
#: pairs on those 3.  The last stream runs on VecMap's own schedule
#: (:data:`STALL_ROUNDS`): on two-line Austen passages (4,000 rows) the fixed
#: schedule finds the pairs in 1 of 8 streams, VecMap's in 6 of 8, at about
#: three times the rounds.  A pair that fails all of them pays for each.
PROFILE_TRIES = 3
#: The last dropout stream's schedule: VecMap's, ``keep`` doubled after this many
#: rounds without a new best objective, at most :data:`MAX_STALL_ROUNDS` rounds;
#: the stream ends early at the first map that passes the failure signal,
#: checked whenever ``keep`` doubles.
STALL_ROUNDS = 30
MAX_STALL_ROUNDS = 400
#: The last stream is also checked whenever its objective (mean best cosine)
#: has risen by this much since the first round at its ``keep`` or its last
#: check: a stream that takes off gains 0.05-0.07 within 25 rounds (two-line
#: Austen passages), one that does not 0.005-0.012 over a whole ``keep``, and
#: one that took off may go on improving slowly for hundreds of rounds before
#: it stalls.
STALL_RISE = 0.02
#: The profile route's first try (:func:`~sklearn_latent.functional._matching.refine_soft`):
#: annealed soft Procrustes from the similarity profiles, on at most this many of
#: the rows the profiles use (the farthest from each space's mean; each round
#: costs in proportion to its rows squared), :data:`SOFT_ROUNDS` rounds at each
#: temperature: the profiles' prior (weight :data:`SOFT_PRIOR`) joins the rounds
#: at :data:`SOFT_PRIOR_TEMPERATURES`, not those at :data:`SOFT_TEMPERATURES`.
#: Its map is kept where it passes the failure signal; otherwise the dropout
#: streams run from the profiles' first map as before (the soft rounds draw no
#: random numbers: the streams are the same).  Measured with the matcher (0 pairs,
#: Jane Austen passages, MiniLM-L6 -> USE v3): two-line passages at 4,000 rows 10
#: of 10 random states in 35-52 s (before: 74-159 s), at 9,800 rows 5 of 5 in
#: 106-111 s (before: 2 of 5); three-line passages at 16,095 rows 10 of 10 in
#: 133-145 s (before: 110-129 s, 212-223 s on the 3 that needed the third stream).
#: They fail, and cost time, on three-line passages at 4,000-9,800 rows (true
#: match ranked about 250th of 4,000 where the rounds stall; 63, 103 and 152 s at
#: 4,000, 6,500 and 9,800 rows instead of 51, 64-69 and 86-129 s) and on the 10,000
#: farthest of 20,000 two-line rows (as on the 5,000 farthest of 9,800).
#: 20 rounds per temperature did not take off on two-line passages at 4,000 rows,
#: nor did the prior dropped after the start.
SOFT_ROWS = 10000
SOFT_PRIOR_TEMPERATURES = (0.1,)
SOFT_TEMPERATURES = (0.05, 0.03)
SOFT_ROUNDS = 30
SOFT_PRIOR = 0.3


def _reliability(mutual, null):
    return (mutual - null) / (1.0 - null) if null < 1.0 else 0.0


class AlignmentWarning(UserWarning):
    """An alignment found without (enough) known pairs is unlikely to be right.

    Raised as a warning by :class:`AnchorMatcher` when its unsupervised score
    (``alignment_score_``) is low: the two spaces are not close enough to
    isometric for their geometry alone to tell which point is which (e.g.
    isotropic clusters), so the discovered pairs are mostly wrong; or when
    another candidate map fits about as well and pairs the rows differently
    (an ambiguous alignment, as on a symmetric shape).  Give known pairs
    (``seeds``) or treat the result as unreliable.
    """


def _check_seeds(seeds, n_x, n_y):
    """(s, 2) int64 array of distinct in-range index pairs, or a clear error."""
    if seeds is None:
        raise ValueError(
            "seeds are required by discover_anchors and discovery='relative': give a "
            "(n_seeds, 2) array of known parallel pairs (row of X, row of Y), or use "
            "AnchorMatcher(discovery='centroids') to align without known pairs."
        )
    seeds = to_numpy(seeds) if isinstance(seeds, torch.Tensor) else np.asarray(seeds)
    if seeds.dtype.kind not in "iu":
        raise TypeError(f"seeds must be integer row indices, got dtype {seeds.dtype}.")
    if seeds.ndim != 2 or seeds.shape[1] != 2 or seeds.shape[0] == 0:
        raise ValueError(
            f"seeds must have shape (n_seeds, 2) with n_seeds >= 1, got {seeds.shape}."
        )
    for col, (name, n) in enumerate((("X", n_x), ("Y", n_y))):
        s = seeds[:, col]
        if s.min() < 0 or s.max() >= n:
            raise ValueError(
                f"seeds[:, {col}] must lie in [0, {n}) (the rows of {name}, n_samples={n}); got "
                f"values in "
                f"[{s.min()}, {s.max()}]."
            )
        if np.unique(s).shape[0] != s.shape[0]:
            raise ValueError(f"seeds[:, {col}] repeats a row of {name}.")
    return seeds.astype(np.int64)


def _rows(Z, idx):
    """Rows ``idx`` (numpy int array or index tensor) of a validated array or tensor."""
    return Z[torch.as_tensor(idx, device=Z.device)] if isinstance(Z, torch.Tensor) else Z[idx]


def _relative(Z, idx, center):
    """Column-centered cosine relative representation of Z against its rows ``idx``."""
    A = Z[idx]
    c = A.to(torch.float64).mean(dim=0).to(Z.dtype) if center else None
    R = F.relative_projection(Z, A, "cosine", center=c)
    return R - R.mean(dim=0)


def _mutual_nn_chunked(RX, RY, batch_size):
    """Mutual nearest neighbours under the cosine of the relative representations.

    ``batch_size`` None or ``"auto"``: blocks within ``working_memory``
    (``functional._matching._blocks``).
    """
    # 32-row aligned chunks: every row of the similarity is rounded as without
    # chunks, so batch_size never changes the matches (docs/arrays.md)
    return FM.csls_mutual_nn(F._safe_normalize(RX), F._safe_normalize(RY), 0, batch_size)


def _match(RX, RY, matching, epsilon, batch_size):
    if matching == "mutual_nn":
        return _mutual_nn_chunked(RX, RY, batch_size)
    S = F.pairwise(RX, RY, "cosine")
    P = F.sinkhorn(S, epsilon) * min(S.shape)  # ~1 for a confident one-to-one match
    return F.mutual_nearest_neighbors(P)


def discover_anchors(
    X, Y, seeds, n_anchors, *, matching="mutual_nn", n_iter=5, epsilon=0.05, center=True,
    batch_size=None, device=None,
):
    """Grow a few known parallel pairs into many by matching relative representations.

    Two *unpaired* sets of embeddings of (partly) the same items and a few
    known pairs (seeds): every round describes both sets against the current
    anchors (cosine relative representations, which are comparable across
    the spaces since the anchors are parallel), matches the rows of X and Y
    whose relative representations agree (mutual nearest neighbours or an
    entropic optimal transport plan), keeps the most confident matches as new
    anchors and re-estimates.  The number of anchors grows geometrically from
    ``len(seeds)`` to ``n_anchors`` over ``n_iter`` rounds.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_x, d_x)
    Y : array-like or Tensor of shape (n_y, d_y)
    seeds : array-like of shape (n_seeds, 2)
        Known pairs ``(row of X, row of Y)``; always kept.
    n_anchors : int
        Total number of pairs wanted (seeds included), at most ``min(n_x, n_y)``.
    matching : {"mutual_nn", "sinkhorn"}, default="mutual_nn"
        Mutual nearest neighbours under the cosine of the relative
        representations (chunked: memory ``O(batch_size * n_y)``), or mutual
        argmax of the Sinkhorn plan (uniform marginals, entropic
        regularization ``epsilon``; dense ``n_x * n_y``).
    n_iter : int, default=5
        Rounds of matching and re-estimation.
    epsilon : float, default=0.05
        Entropic regularization of ``"sinkhorn"``.
    center : bool, default=True
        Center each space by its anchors' mean before the cosine.
    batch_size : int, "auto" or None, default=None
        Rows of X per chunk of the mutual-nearest-neighbour search (None or
        ``"auto"``: from scikit-learn's ``working_memory``; the full similarity
        matrix is never formed).
    device : None, "auto", str or torch.device, default=None

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2)
        Seeds first, then discovered pairs by decreasing confidence;
        ``n_pairs <= n_anchors`` (fewer when not enough mutual matches exist).
    confidence : ndarray of shape (n_pairs,)
        Cosine of the matched relative representations (``"mutual_nn"``) or
        transported mass times ``min(n_x, n_y)`` (``"sinkhorn"``, 1 for a
        certain one-to-one match); ``inf`` for the seeds.

    References
    ----------
    .. [1] I. Cannistraci, L. Moschella, V. Maiorca, M. Fumero, A. Norelli and
       E. Rodolà, "Bootstrapping parallel anchors for relative
       representations", ICLR 2023 Tiny Papers.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import discover_anchors
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 10))
    >>> perm = rng.permutation(300)                       # Y lists the items in another order
    >>> Y = (X @ ortho_group.rvs(10, random_state=0))[perm]
    >>> seeds = np.stack([perm[:12], np.arange(12)], axis=1)
    >>> pairs, conf = discover_anchors(X, Y, seeds, 100)
    >>> pairs.shape, float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))
    ((100, 2), 1.0)
    """
    check_option(matching, "matching", MATCHINGS)
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral):
        raise TypeError(f"n_iter must be an int, got {n_iter!r}.")
    check_scalar(int(n_iter), "n_iter", numbers.Integral, min_val=1)
    check_scalar(epsilon, "epsilon", numbers.Real, min_val=0.0, include_boundaries="neither")
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be a bool, got {center!r}.")
    check_batch_size(batch_size)
    X = check_input(None, X, reset=False, input_name="X")
    Y = check_input(None, Y, reset=False, input_name="Y")
    seeds = _check_seeds(seeds, X.shape[0], Y.shape[0])
    if isinstance(n_anchors, bool) or not isinstance(n_anchors, numbers.Integral):
        raise TypeError(f"n_anchors must be an int, got {n_anchors!r}.")
    limit = min(X.shape[0], Y.shape[0])
    if not seeds.shape[0] <= n_anchors <= limit:
        raise ValueError(
            f"n_anchors={n_anchors} must lie in [n_seeds={seeds.shape[0]}, "
            f"min(n_x, n_y)={limit}]."
        )
    dev = resolve_device(device, X)
    dtype = torch_dtype(X)
    Xt, Yt = to_tensor(X, dev, dtype), to_tensor(Y, dev, dtype)
    s = seeds.shape[0]
    seed_x = torch.as_tensor(seeds[:, 0], device=dev)
    seed_y = torch.as_tensor(seeds[:, 1], device=dev)
    ix, iy = seed_x, seed_y
    conf = torch.full((s,), math.inf, dtype=torch.float64, device=dev)
    with torch.no_grad():
        for r in range(n_iter):
            target = round(s * (n_anchors / s) ** ((r + 1) / n_iter))
            target = n_anchors if r == n_iter - 1 else max(s, min(n_anchors, target))
            rows, cols, score = _match(_relative(Xt, ix, center), _relative(Yt, iy, center),
                                       matching, epsilon, batch_size)
            free = ~(torch.isin(rows, seed_x) | torch.isin(cols, seed_y))
            rows, cols, score = rows[free], cols[free], score[free].to(torch.float64)
            order = torch.argsort(score, descending=True, stable=True)[: target - s]
            ix = torch.cat([seed_x, rows[order]])
            iy = torch.cat([seed_y, cols[order]])
            conf = torch.cat([conf[:s], score[order]])
    pairs = torch.stack([ix, iy], dim=1)
    return to_numpy(pairs), to_numpy(conf)


def _check_spaces(est, X, y, what="space"):
    """``(X, Y)`` validated for a fit on two unpaired spaces: X resets the
    estimator's input checks, y must be given and 2-D (any width and rows)."""
    X = check_input(est, X, reset=True)
    if y is None:
        raise ValueError(
            f"{type(est).__name__} requires y to be passed, but the target y is None: "
            f"pass the second {what}'s embeddings (2-D)."
        )
    ndim = y.ndim if isinstance(y, torch.Tensor) else np.asarray(y).ndim
    if ndim != 2:
        raise ValueError(f"y must be the 2-D embeddings of the second {what}, got {ndim}-D input.")
    return X, check_input(None, y, reset=False, input_name="y")


def _check_int(value, name, min_val):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    check_scalar(int(value), name, numbers.Integral, min_val=min_val)
    return int(value)


def _centroid_grid(n_centroids, n_rows):
    """Cluster counts to try; a clear error when the spaces have too few rows for them."""
    limit = n_rows // MIN_ROWS_PER_CLUSTER
    if n_centroids == "auto":
        grid = sorted({min(k, limit) for k in AUTO_CENTROIDS})
        if limit < 2:
            raise ValueError(
                f"n_centroids='auto' needs at least {2 * MIN_ROWS_PER_CLUSTER} rows in each space "
                f"(k-means with at least 2 clusters of {MIN_ROWS_PER_CLUSTER} rows); the smaller "
                f"space has n_samples={n_rows}. Give more rows, or known pairs with "
                "discovery='relative'."
            )
        return grid
    k = _check_int(n_centroids, "n_centroids", 2)
    if k > limit:
        raise ValueError(
            f"n_centroids={k} leaves fewer than {MIN_ROWS_PER_CLUSTER} rows per cluster in the "
            f"smaller space (n_samples={n_rows}): use n_centroids <= {max(limit, 1)} or "
            "n_centroids='auto'."
        )
    return [k]


def _check_not_constant(Z, name):
    spread = float((Z - Z.to(torch.float64).mean(dim=0).to(Z.dtype)).abs().max())
    if not spread > 0.0:
        raise ValueError(
            f"{name} is constant (every row is the same point): there is no geometry to "
            "align; check the embeddings."
        )


def _pair_free(X, Y, seeds, grid, est, rng):
    """The pair-free pipeline (the centroid route over the cluster counts ``grid``, the
    profile route, or both); returns (W, rows, cols, scores, info) on N(X), N(Y)."""
    Xn = FM.principal_width(FM.center_normalize(X), MAX_WIDTH)
    Yn = FM.principal_width(FM.center_normalize(Y), MAX_WIDTH)
    n_min = min(X.shape[0], Y.shape[0])
    seed_rng = np.random.default_rng(rng.randint(2**31))
    sx = sy = None
    if seeds is not None and len(seeds):
        sx = Xn[torch.as_tensor(seeds[:, 0], device=Xn.device)]
        sy = Yn[torch.as_tensor(seeds[:, 1], device=Yn.device)]
    # each seed counts like 1 % of a refinement sample: a nudge, never all of the fit
    seed_weight = max(1.0, 0.01 * min(1000, X.shape[0]))
    kw = dict(seeds_x=sx, seeds_y=sy, seed_weight=seed_weight, batch_size=est.batch_size)
    rows = torch.as_tensor(seed_rng.choice(X.shape[0], min(2000, X.shape[0]), replace=False),
                           device=Xn.device)
    quick = max(1, est.n_refine // 5) if est.n_refine else 0
    # above REFINE_ROWS rows of X, self-learning and its scores use a fixed sample
    # of X against all of y: a sample of X only, so that every sampled x keeps its
    # partner among the candidates
    Xs = Xn
    if X.shape[0] > REFINE_ROWS:
        sample = np.random.default_rng(rng.randint(2**31)).choice(X.shape[0], REFINE_ROWS,
                                                                  replace=False)
        Xs = _rows(Xn, np.sort(sample))

    scored = Xn[rows[:REFINE_ROWS]]  # the rows on which candidate maps are scored

    def candidate(W, k):
        # a fifth of the refinement and one self-learning round, then scored:
        # the share of mutual CSLS matches first, the mean CSLS score on ties;
        # the matches are kept for the ambiguity check
        W = FM.refine_by_neighbours(Xn, Yn, W, quick, rng=seed_rng, **kw)
        W = FM.refine_by_csls(Xs, Yn, W, 1, k=est.csls_k, **kw)
        matches, best_val, mutual = FM._best_matches(FM._normalize(scored @ W), Yn,
                                                     est.csls_k, est.batch_size)
        score, mutual = FM._dictionary_score(best_val, mutual)
        return (mutual, score, k, W, matches)

    def final(W):
        # the dictionary under W and its score from one evaluation (on the sample of X
        # when X was sampled: the pairs of every row come once, for the map kept)
        r, c, sc, score, mutual = FM.csls_dictionary(FM._normalize(Xs @ W), Yn, est.csls_k,
                                                     est.batch_size)
        return dict(W=W, rows=r, cols=c, scores=sc, score=score, mutual=mutual)

    candidates = []  # (mutual fraction, score, n_centroids (0: the seeds alone), W)
    kept = None
    if est.discovery != "profiles":
        if est.discovery == "gw":  # GW plans on subsamples instead of the centroid matching
            from .functional import _gw as FG

            n_gw = _check_int(est.gw_samples, "gw_samples", 2)
            for W0, _ in FG.gw_maps(Xn.detach().cpu().to(torch.float64).numpy(),
                                    Yn.detach().cpu().to(torch.float64).numpy(), n_gw,
                                    GW_RUNS, seed_rng):
                candidates.append(candidate(
                    torch.as_tensor(W0, device=Xn.device).to(Xn.dtype), min(n_gw, n_min)))
            grid = []
        for k in grid:
            CX, CY, _ = FM.centroid_pairs(Xn, Yn, k, est.n_runs, SUBSAMPLE, 10, seed_rng)
            Y_hat = FM.relative_pseudo_pairs(Xn[rows], Yn, CX, CY, 50, est.batch_size)
            candidates.append(candidate(
                FM.procrustes_polar(*FM._with_seeds(Xn[rows], Y_hat, sx, sy, seed_weight)), k))
        if seeds is not None and len(seeds) >= 2:
            candidates.append(candidate(FM.procrustes_polar(sx, sy), 0))
        best = max(candidates, key=lambda c: c[:2])
        W = FM.refine_by_neighbours(Xn, Yn, best[3], est.n_refine - quick, rng=seed_rng, **kw)
        W = FM.refine_by_csls(Xs, Yn, W, est.n_self_learning, k=est.csls_k, **kw)
        kept = dict(final(W), route="gw" if est.discovery == "gw" else "centroids",
                    n_centroids=best[2])
    # the null: the same self-learning from a random orthogonal map reaches this score
    shape = (Xn.shape[1], Yn.shape[1])
    Q = FM.polar(torch.as_tensor(seed_rng.normal(size=shape), device=Xn.device))
    Q = FM.refine_by_csls(Xs, Yn, Q.to(Xn.dtype), est.n_self_learning, k=est.csls_k,
                          batch_size=est.batch_size)
    null, null_mutual = FM.alignment_score(FM._normalize(Xs @ Q), Yn, est.csls_k,
                                           est.batch_size)

    def passes(mutual):
        return _reliability(mutual, null_mutual) >= RELIABILITY_THRESHOLD

    def finish(W):  # the profile route's map after the usual self-learning
        W = FM.refine_by_csls(Xs, Yn, W, est.n_self_learning, k=est.csls_k, **kw)
        result = dict(final(W), route="profiles", n_centroids=0)
        return result, passes(result["mutual"])

    if est.discovery == "profiles" or (est.discovery == "auto" and not passes(kept["mutual"])):
        profiled = _profile_route(Xn, Yn, _farthest_rows(X), _farthest_rows(Y), kw, est,
                                  seed_rng, finish)
        # "auto" swaps the centroid route's map for this one where this one passes
        # the failure signal; of two maps that fail it (the warning fires), the one
        # with more mutual matches (a right map reads low where the spaces share
        # only part of their items)
        if kept is None or passes(profiled["mutual"]) or (
            (profiled["mutual"], profiled["score"]) > (kept["mutual"], kept["score"])
        ):
            kept = profiled
    if Xs is not Xn:  # the pairs of every row of X (one n_x x n_y pass)
        r, c, sc = FM.csls_mutual_nn(FM._normalize(Xn @ kept["W"]), Yn, est.csls_k,
                                     est.batch_size)
        kept = dict(kept, rows=r, cols=c, scores=sc)
    # another map that passes the signal but pairs the rows differently: ambiguous
    # (each candidate before its final rounds, the best one too)
    rivals = [c_[4] for c_ in candidates if passes(c_[0])]
    agreement = 1.0
    if rivals:
        ours, _, _ = FM._best_matches(FM._normalize(scored @ kept["W"]), Yn, est.csls_k,
                                      est.batch_size)
        agreement = min(float((theirs == ours).to(torch.float64).mean()) for theirs in rivals)
    info = dict(score=kept["score"], mutual=kept["mutual"], null=null,
                null_mutual=null_mutual, n_centroids=kept["n_centroids"],
                route=kept["route"], agreement=agreement,
                candidates=np.array([[c_[2], c_[0], c_[1]] for c_ in candidates]).reshape(-1, 3))
    return kept["W"], kept["rows"], kept["cols"], kept["scores"], info


def _farthest_rows(Z):
    """Indices of the rows of ``Z``, farthest from its mean first, at most
    :data:`PROFILE_ROWS` of them."""
    Z64 = Z.to(torch.float64)
    norms = torch.linalg.vector_norm(Z64 - Z64.mean(dim=0), dim=1)
    return norms.topk(min(Z.shape[0], PROFILE_ROWS)).indices


def _profile_route(Xn, Yn, far_x, far_y, kw, est, seed_rng, finish):
    """VecMap's start: similarity profiles matched under CSLS, then stochastic dictionary
    induction, on the rows of ``Xn`` and ``Yn`` that :func:`_farthest_rows` picks
    (``far_x``, ``far_y``); ``kw`` the seeds and ``batch_size`` of every
    Procrustes fit.

    The profiles and their first map use every picked row (at most
    :data:`PROFILE_ROWS`); the dropout rounds only the :data:`REFINE_ROWS`
    farthest of them, each side's rows in their original order.

    The first try is :func:`~sklearn_latent.functional._matching.refine_soft` on the
    :data:`SOFT_ROWS` farthest of the picked rows, from the profiles alone.
    ``finish(W)`` completes a map and says whether it passes the failure signal:
    the soft map if it passes, else the first of at most :data:`PROFILE_TRIES`
    dropout streams (from the profiles' first map) that passes it is returned,
    else the map with the most mutual matches.  The last stream runs
    on the stall schedule and is also checked whenever its ``keep`` doubles or
    its objective rises by :data:`STALL_RISE`.
    """
    Xs, Ys = _rows(Xn, far_x.sort().values), _rows(Yn, far_y.sort().values)
    # every row of each side is a reference row of its profiles; profiles of one
    # length: no more order statistics than either side has rows
    length = min(PROFILE_QUANTILES, Xs.shape[0], Ys.shape[0])
    PX = FM.similarity_profiles(Xs, Xs.shape[0], length, seed_rng, est.batch_size)
    PY = FM.similarity_profiles(Ys, Ys.shape[0], length, seed_rng, est.batch_size)
    # first try: soft rounds on the (at most SOFT_ROWS) farthest of these rows
    in_x = torch.isin(far_x.sort().values, far_x[:SOFT_ROWS])
    in_y = torch.isin(far_y.sort().values, far_y[:SOFT_ROWS])
    Xa, Ya = Xs[in_x], Ys[in_y]
    W = FM.refine_soft(Xa, Ya, None, PX[in_x], PY[in_y], temperatures=SOFT_PRIOR_TEMPERATURES,
                       n_rounds=SOFT_ROUNDS, prior_weight=SOFT_PRIOR, **kw)
    W = FM.refine_soft(Xa, Ya, W, None, None, temperatures=SOFT_TEMPERATURES,
                       n_rounds=SOFT_ROUNDS, **kw)
    del Xa, Ya
    result, ok = finish(W)
    if ok:
        return result
    failed = [result]
    # the streams' start, only where the soft rounds failed (neither draws random numbers)
    W0 = FM.profile_map(Xs, Ys, PX, PY, est.csls_k, **kw)
    del PX, PY, Xs, Ys
    Xd = _rows(Xn, far_x[:REFINE_ROWS].sort().values)
    Yd = _rows(Yn, far_y[:REFINE_ROWS].sort().values)

    def done(W, checked):  # the stall stream's maps, when keep doubles or it rises
        checked.append(finish(W))
        return checked[-1][1]

    for stall in [None] * (PROFILE_TRIES - 1) + [STALL_ROUNDS]:
        checked = []
        W, _ = FM.refine_stochastic(
            Xd, Yd, W0, k=est.csls_k, keep=STOCHASTIC_KEEP, rounds_per_level=STOCHASTIC_ROUNDS,
            stall=stall, rise=STALL_RISE if stall else None,
            done=functools.partial(done, checked=checked) if stall else None,
            max_rounds=MAX_STALL_ROUNDS if stall else MAX_STOCHASTIC_ROUNDS,
            seed=int(seed_rng.integers(2**31)), **kw)
        result, ok = checked[-1] if checked and checked[-1][1] else finish(W)
        if ok:
            return result
        failed.append(result)
    return max(failed, key=lambda r: (r["mutual"], r["score"]))


class _MatchedTranslatorMixin(TransformerMixin):
    """``transform`` through the ``ProcrustesTranslator`` fitted on matched pairs.

    Shared by the estimators that find pairs between two unpaired spaces and
    then fit ``translator_`` on them (:class:`AnchorMatcher`,
    :class:`~sklearn_latent.FunctionalMapTranslator`); they have ``batch_size``
    and ``device`` parameters.  A ``TransformerMixin`` itself, so that
    ``set_output`` wraps this ``transform``.
    """

    def transform(self, X, *, out=None):
        """X-space rows translated into the second space.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        out : ndarray or Tensor of shape (n_samples, d_y), optional
            Where to write the result (e.g. a ``np.memmap``), see :doc:`/arrays`.

        Returns
        -------
        ndarray or Tensor of shape (n_samples, d_y)
            ``out`` when given.
        """
        check_is_fitted(self)
        batch_size = check_batch_size(self.batch_size)
        X = check_input(self, X, reset=False)
        translator = self.translator_
        if (translator.batch_size, translator.device) != (batch_size, self.device):
            # parameters changed since fit: apply the fitted map with the current ones
            translator = copy.copy(translator).set_params(batch_size=batch_size,
                                                           device=self.device)
        # X is validated above: apply the map without a second validation pass
        return translator._apply(X, "coef_", "intercept_", translator.n_features_out_, out)

    @property
    def _n_features_out(self):
        return self.translator_.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class AnchorMatcher(
    _MatchedTranslatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Align two unpaired embedding spaces with no known pairs, or a few; translate X into Y.

    ``fit(X, y)`` takes two *unpaired* spaces, ``X`` and ``y`` (2-D, any
    widths, any numbers of rows, rows in any order), discovers parallel pairs
    and fits a :class:`~sklearn_latent.ProcrustesTranslator` on them;
    ``transform`` maps X-space rows into y's space (zero-shot stitching: a
    classifier trained on y applies to them).

    ``discovery="auto"`` (default) runs the centroid route below and, when
    the failure signal below says its map is unlikely to be right, the
    profile route; it keeps the profile route's map where that one passes
    the signal (of two failed maps, the one with more mutual matches).  On
    spaces that align it costs no more than ``"centroids"`` and gives the
    same result.

    ``discovery="centroids"`` needs no pairs (after mini-vec2vec,
    Dar 2025, and MUSE, Conneau et al. 2018), on each space centered and
    row-normalized:

    1. k-means in each space on subsamples; the centroids matched by quadratic
       assignment on their centered Gram matrices
       (:func:`scipy.optimize.quadratic_assignment`, ``"2opt"``, 3 restarts, best
       objective kept); ``n_runs`` runs, all matched centroids pooled;
    2. pseudo-pairs: each x paired with the mean of the 50 y whose relative
       representations against the matched centroids are most similar;
       orthogonal Procrustes;
    3. ``n_refine`` damped rounds: the mean of the 50 nearest y to each
       mapped x of a 1,000-row sample, Procrustes, half a step;
    4. ``n_self_learning`` rounds of self-learning: the dictionary of mutual
       nearest neighbours under CSLS (hubness-corrected cosine), Procrustes.

    ``n_centroids="auto"`` runs steps 1-2, a fifth of step 3 and one round of
    step 4 for each count of :data:`AUTO_CENTROIDS` and keeps the map that
    makes the most rows mutual CSLS matches (then the best unsupervised
    score ``alignment_score_``; no pairs, no labels).  Known
    pairs (``seeds``, 1 or more) join every Procrustes fit as fixed pairs, and
    with 2 or more the seeds-only Procrustes map is one more candidate.  The
    final dictionary gives ``matched_pairs_`` and the translator.

    Every CSLS evaluation compares all rows of X with all rows of y (by
    blocks, never the whole matrix in memory), so its cost grows as
    ``n_x * n_y``.  When X has more than :data:`REFINE_ROWS` rows, step 4, the
    candidates' scores and the failure signal below run on one fixed random
    sample of that many rows of X (from ``random_state``) against every row of
    y, and one last CSLS mutual-nearest-neighbour evaluation of all rows of X
    and y under the final map gives ``matched_pairs_``: the time then grows
    with ``n_y`` except for that one evaluation.  Only X is sampled, so each
    sampled x keeps its partner among the candidates.  At or below
    :data:`REFINE_ROWS` rows nothing is sampled.

    The failure signal needs no pairs either: the same self-learning is run
    from a random orthogonal map, and when the found map makes few more rows
    mutual CSLS matches than that null (:data:`RELIABILITY_THRESHOLD`), the
    spaces are probably not close enough to isometric for pair-free
    alignment (e.g. isotropic clusters): an :class:`AlignmentWarning` says so.
    The warning also fires when another candidate map of the centroid route
    passes the signal but agrees with the kept map on fewer than half of the
    matches of a sample (:data:`AMBIGUITY_AGREEMENT`): two different maps fit,
    as on a symmetric shape (one or two Gaussian blobs), where the signal
    alone cannot tell the right one.
    Not when more seeds than ``min(d_x, d_y)`` are given: the known pairs
    then determine the map, and on spaces that are related but far from
    isometric (VADER tokens, MiniLM-L6 -> USE, all 4,000 pairs given: at the
    all-pairs ceiling) the mutual fraction stays low however right the map.

    ``discovery="profiles"`` needs no pairs either (VecMap's unsupervised
    start, Artetxe et al. 2018): each row's sorted similarities to the
    route's rows of its own space (a profile that a rotation and
    a new order of the rows leave unchanged, reduced to
    :data:`PROFILE_QUANTILES` order statistics) are matched across the
    spaces under CSLS, both ways; Procrustes on that weak dictionary; then
    stochastic dictionary induction: rounds of the same matching from the
    current map with each CSLS entry dropped with probability ``1 - keep``,
    ``keep`` = 0.1, 0.2, 0.4, 0.8 for :data:`STOCHASTIC_ROUNDS` rounds each,
    then 1 while VecMap's objective improves (at most
    :data:`MAX_STOCHASTIC_ROUNDS` rounds); then step 4.  Where that map fails
    the failure signal, the induction runs again with another dropout stream,
    at most :data:`PROFILE_TRIES` in all; the last on VecMap's own schedule:
    ``keep`` doubles only after :data:`STALL_ROUNDS` rounds without a new
    best objective (at most :data:`MAX_STALL_ROUNDS` rounds), and the stream
    ends at the first map that, completed by step 4, passes the failure
    signal (checked whenever ``keep`` doubles or the objective rises by
    :data:`STALL_RISE`).  The profiles and the first map use every row of
    each space, up to :data:`PROFILE_ROWS` (one ``n x n`` similarity pass,
    20,000 x 20,000 at most; above, the rows farthest from the space's mean:
    an order that a rotation leaves unchanged, so that both spaces pick
    mostly the same items); the dropout rounds the :data:`REFINE_ROWS`
    farthest of them (one 5,000 x 5,000 pass each; step 4 then runs on the
    random sample of X above).
    Where the centroids find
    no start (Jane Austen passages, MiniLM-L6 -> USE v3: 0.2 % of the pairs
    right) it reaches every pair; it fails, with the warning, where the
    spaces are far from isometric.

    ``discovery="relative"`` is the seed bootstrap of Cannistraci et al.
    (2023), :func:`discover_anchors`: it needs ``seeds`` (2 or more).

    ``discovery="gw"`` replaces steps 1-2 by Gromov-Wasserstein matching
    (needs POT: ``pip install 'sklearn-latent[ot]'``): on :data:`GW_RUNS`
    independent subsamples of ``gw_samples`` rows per space, the exact GW
    plan between their cosine-distance matrices (POT's conditional gradient,
    started from Mémoli's third lower bound), each x paired with its
    barycentre under the plan, orthogonal Procrustes; each run's map is a
    candidate, scored and refined like the centroid candidates, with the same
    failure signal.  GW's objective has local minima: it succeeds on clustered
    spaces that are close to isometric and fails (with the warning) elsewhere.

    Parameters
    ----------
    n_anchors : int or None, default=None
        Pairs kept, seeds included (the most confident); ``None``: every
        mutual match of the last round (``"relative"``: grow to ``min(n_x, n_y)``).
    seeds : array-like of shape (n_seeds, 2) or None, default=None
        Known parallel pairs ``(row of X, row of y)`` (a parameter of the data
        the estimator is fitted on, like the explicit ``anchors`` indices of
        :class:`~sklearn_latent.RelativeProjector`); ``None``: no known pairs.
    discovery : {"auto", "centroids", "profiles", "relative", "gw"}, default="auto"
    n_centroids : int or "auto", default="auto"
        Clusters per space of the centroid matching (at least
        :data:`MIN_ROWS_PER_CLUSTER` rows each).
    n_runs : int, default=30
        Subsampled k-means + assignment runs whose matched centroids are pooled.
    n_refine : int, default=50
        Damped refinement rounds.
    n_self_learning : int, default=3
        CSLS mutual-nearest-neighbour Procrustes rounds.
    csls_k : int, default=10
        Neighbours of the CSLS hubness terms (0: plain cosine).
    matching : {"mutual_nn", "sinkhorn"}, default="mutual_nn"
    n_iter : int, default=5
    epsilon : float, default=0.05
    center : bool, default=True
        Of ``discovery="relative"``, see :func:`discover_anchors`.
    gw_samples : int, default=1000
        Rows per space in each Gromov-Wasserstein run of ``discovery="gw"``
        (time and memory grow as its square to cube).
    method : {"orthogonal", "scaled", "linear", "affine"}, default="orthogonal"
        Translator fitted on the discovered pairs.
    random_state : int, RandomState instance or None, default=None
        Subsamples, k-means and assignment restarts of ``"centroids"``, the
        reference rows and dropout of ``"profiles"``, and the sample of
        :data:`REFINE_ROWS` rows of X.
    batch_size : int, "auto" or None, default=None
        Rows per chunk of the matching and of ``transform`` (see :doc:`/arrays`);
        never changes the result.  The matching never forms the ``n_x x n_y``
        similarity matrix: with None or ``"auto"`` its blocks follow
        scikit-learn's ``working_memory`` (1 GiB by default).
    device : None, "auto", str or torch.device, default=None

    Attributes
    ----------
    matched_pairs_ : ndarray of shape (n_pairs, 2)
        Seeds first, then discovered pairs by decreasing confidence.
    confidence_ : ndarray of shape (n_pairs,)
        CSLS score (``"centroids"``) or :func:`discover_anchors`'s confidence;
        ``inf`` for the seeds.
    is_seed_ : ndarray of bool of shape (n_pairs,)
    alignment_score_ : float
        ``"centroids"``: the unsupervised score, the mean CSLS similarity of
        every mapped row of X to its CSLS match in y (near 0 for unrelated
        spaces; MUSE's model-selection criterion).  ``nan`` for ``"relative"``.
        When X has more than :data:`REFINE_ROWS` rows, this and the two
        fractions below are measured on the sample of that many rows of X
        (against all of y), the same rows for the found map and the null.
    mutual_fraction_ : float
        Fraction of X rows whose CSLS match is mutual (``nan`` for ``"relative"``).
    null_mutual_fraction_ : float
        The same from a random orthogonal map after the same self-learning.
        With fewer rows of X than of y (a sample above :data:`REFINE_ROWS`),
        both fractions are higher than over all rows: fewer queries compete
        for each candidate.
    n_centroids_ : int
        The cluster count kept (0: the seeds-only map won, or the profile
        route; ``"relative"``: 0; ``"gw"``: the rows of the GW subsample).
    discovery_ : str
        The route whose map was kept: ``"centroids"``, ``"profiles"``,
        ``"gw"`` or ``"relative"`` (``"auto"`` gives one of the first two).
    candidate_scores_ : ndarray of shape (n_candidates, 3)
        ``(n_centroids, mutual fraction, score)`` of each candidate map of the
        centroid (or GW) route before the final rounds (``n_centroids`` 0: the
        seeds-only map); no rows for ``"profiles"`` and ``"relative"``.
    translator_ : ProcrustesTranslator
        Fitted on ``X[matched_pairs_[:, 0]]`` and ``y[matched_pairs_[:, 1]]``.
    n_features_in_ : int

    See Also
    --------
    discover_anchors : The seed bootstrap.
    sklearn_latent.metrics.top_k_accuracy : Retrieval, also under CSLS.

    References
    ----------
    .. [1] G. Dar, "mini-vec2vec: Scaling universal geometry alignment with
       linear transformations", arXiv:2510.02348, 2025.
    .. [2] A. Conneau, G. Lample, M. Ranzato, L. Denoyer and H. Jégou, "Word
       translation without parallel data", ICLR 2018.
    .. [3] I. Cannistraci, L. Moschella, V. Maiorca, M. Fumero, A. Norelli and
       E. Rodolà, "Bootstrapping parallel anchors for relative
       representations", ICLR 2023 Tiny Papers.

    Examples
    --------
    Two views of the same 600 items (hierarchically clustered, anisotropic),
    the second rotated and listed in another order; no known pairs:

    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import AnchorMatcher
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(6, 12)) * np.linspace(3, 0.5, 12)
    >>> X = centers[rng.integers(6, size=600)] + rng.normal(size=(600, 12)) * np.linspace(1, .1, 12)
    >>> perm = rng.permutation(600)                    # row j of Y is item perm[j]
    >>> Y = (X @ ortho_group.rvs(12, random_state=0))[perm]
    >>> matcher = AnchorMatcher(n_centroids=10, n_runs=5, random_state=0).fit(X, Y)
    >>> pairs = matcher.matched_pairs_
    >>> bool(np.mean(perm[pairs[:, 1]] == pairs[:, 0]) > 0.9)   # precision
    True
    >>> matcher.transform(X).shape
    (600, 12)
    """

    def __init__(
        self,
        n_anchors=None,
        *,
        seeds=None,
        discovery="auto",
        n_centroids="auto",
        n_runs=30,
        n_refine=50,
        n_self_learning=3,
        csls_k=10,
        matching="mutual_nn",
        n_iter=5,
        epsilon=0.05,
        center=True,
        gw_samples=1000,
        method="orthogonal",
        random_state=None,
        batch_size=None,
        device=None,
    ):
        self.n_anchors = n_anchors
        self.seeds = seeds
        self.discovery = discovery
        self.n_centroids = n_centroids
        self.n_runs = n_runs
        self.n_refine = n_refine
        self.n_self_learning = n_self_learning
        self.csls_k = csls_k
        self.matching = matching
        self.n_iter = n_iter
        self.epsilon = epsilon
        self.center = center
        self.gw_samples = gw_samples
        self.method = method
        self.random_state = random_state
        self.batch_size = batch_size
        self.device = device

    @atomic_fit
    def fit(self, X, y=None):
        """Discover the pairs and fit the translator.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_x, d_x)
        y : array-like or Tensor of shape (n_y, d_y)
            The second space (unpaired with X apart from the seeds).

        Returns
        -------
        self : AnchorMatcher

        Warns
        -----
        AlignmentWarning
            When the unsupervised score says the alignment is unlikely to be
            right (never with more seeds than ``min(d_x, d_y)``).
        """
        check_option(self.discovery, "discovery", DISCOVERIES)
        if self.discovery == "gw":
            from .functional._gw import require_pot

            require_pot()
        X, Y = _check_spaces(self, X, y)
        if self.discovery == "relative":
            pairs, conf = self._fit_relative(X, Y)
            info = dict(score=math.nan, mutual=math.nan, null_mutual=math.nan, n_centroids=0,
                        route="relative", candidates=np.zeros((0, 3)))
        else:
            pairs, conf, info = self._fit_centroids(X, Y)
        if pairs.shape[0] < 2:
            raise ValueError(
                f"only {pairs.shape[0]} pair was found, and a translation needs at least 2: "
                "with discovery='relative', give more seeds (about as many as the "
                "dimensions is safest), or use discovery='centroids', which needs none."
            )
        self.translator_ = ProcrustesTranslator(
            self.method, device=self.device, batch_size=self.batch_size
        ).fit(_rows(X, pairs[:, 0]), _rows(Y, pairs[:, 1]))
        self.matched_pairs_ = pairs
        self.confidence_ = conf
        self.is_seed_ = np.isinf(conf)
        self.alignment_score_ = info["score"]
        self.mutual_fraction_ = info["mutual"]
        self.n_centroids_ = int(info["n_centroids"])
        self.discovery_ = info["route"]
        self.candidate_scores_ = info["candidates"]
        self.null_mutual_fraction_ = info.get("null_mutual", math.nan)
        # more known pairs than dimensions determine the map: the pair-free failure
        # signal (spaces too far from isometric to align by geometry) does not apply
        determined = int(self.is_seed_.sum()) > min(X.shape[1], Y.shape[1])
        if self.discovery == "relative" or determined:
            return self
        if not _reliability(info["mutual"], info["null_mutual"]) >= RELIABILITY_THRESHOLD:
            warnings.warn(
                f"the alignment found without enough known pairs is unlikely to be right: "
                f"only {info['mutual']:.0%} of the rows of X are mutual CSLS matches, against "
                f"{info['null_mutual']:.0%} from a random start (unsupervised score "
                f"{info['score']:.3f}). The two spaces are probably not close enough to "
                "isometric to be aligned from their geometry alone; give known pairs "
                "(seeds) or treat the translation as unreliable.",
                AlignmentWarning, stacklevel=2,
            )
        elif not info["agreement"] >= AMBIGUITY_AGREEMENT:
            warnings.warn(
                f"the alignment found without enough known pairs is ambiguous: another "
                f"candidate map fits about as well and agrees with it on only "
                f"{info['agreement']:.0%} of the matches of a sample of X. The shapes of the "
                "spaces are probably symmetric (e.g. one or two Gaussian blobs), so their "
                "geometry cannot tell which map is right; give known pairs (seeds) or treat "
                "the translation as unreliable.",
                AlignmentWarning, stacklevel=2,
            )
        return self

    def _fit_relative(self, X, Y):
        seeds = _check_seeds(self.seeds, X.shape[0], Y.shape[0])
        n_anchors = self.n_anchors
        if n_anchors is None:
            n_anchors = min(X.shape[0], Y.shape[0])
        if seeds.shape[0] < 2:
            raise ValueError(
                f"discovery='relative' got {seeds.shape[0]} seed pair; it needs at least 2 "
                "(relative representations against one anchor cannot tell points apart): "
                "give more seeds, or use discovery='centroids', which needs none."
            )
        return discover_anchors(
            X, Y, seeds, n_anchors, matching=self.matching, n_iter=self.n_iter,
            epsilon=self.epsilon, center=self.center, batch_size=self.batch_size,
            device=self.device,
        )

    def _fit_centroids(self, X, Y):
        for name in ("n_runs", "n_refine", "n_self_learning", "csls_k"):
            _check_int(getattr(self, name), name, 1 if name == "n_runs" else 0)
        check_batch_size(self.batch_size)
        seeds = None if self.seeds is None else _check_seeds(self.seeds, X.shape[0], Y.shape[0])
        if self.n_anchors is not None:
            n_min = 0 if seeds is None else seeds.shape[0]
            _check_int(self.n_anchors, "n_anchors", max(2, n_min))
        rng = check_random_state(self.random_state)
        dev = resolve_device(self.device, X)
        dtype = torch_dtype(X)
        Xt, Yt = to_tensor(X, dev, dtype), to_tensor(Y, dev, dtype)
        grid = ([] if self.discovery == "profiles"
                else _centroid_grid(self.n_centroids, min(X.shape[0], Y.shape[0])))
        _check_not_constant(Xt, "X")
        _check_not_constant(Yt, "y")
        with torch.no_grad():
            _, rows, cols, score, info = _pair_free(Xt, Yt, seeds, grid, self, rng)
        rows, cols = to_numpy(rows), to_numpy(cols)
        score = to_numpy(score).astype(np.float64)
        if seeds is not None:
            free = ~(np.isin(rows, seeds[:, 0]) | np.isin(cols, seeds[:, 1]))
            rows, cols, score = rows[free], cols[free], score[free]
        order = np.argsort(-score, kind="stable")
        s = 0 if seeds is None else seeds.shape[0]
        if self.n_anchors is not None:
            order = order[: self.n_anchors - s]
        pairs = np.stack([rows[order], cols[order]], axis=1).astype(np.int64)
        conf = score[order]
        if seeds is not None:
            pairs = np.concatenate([seeds, pairs])
            conf = np.concatenate([np.full(s, math.inf), conf])
        return pairs, conf, info
