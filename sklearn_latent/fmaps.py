"""Latent functional maps: align two spaces from a few known pairs through their graph spectra."""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_scalar

from .functional import _fmaps as FF
from .functional import _matching as FM
from ._backend import (
    atomic_fit,
    check_batch_size,
    check_option,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .matching import _check_int, _check_spaces, _MatchedTranslatorMixin, _rows
from .translate import ProcrustesTranslator

__all__ = ["FunctionalMapTranslator"]

#: Fewest known pairs: one descriptor per anchor, and one function cannot tell points apart.
MIN_SEEDS = 2
_METHODS = ("orthogonal", "scaled", "linear", "affine")


def check_fmap_seeds(seeds, n_x, n_y, owner):
    """(m, 2) int64 array of distinct in-range pairs (row of X, row of Y), or a clear error."""
    if seeds is None:
        raise ValueError(
            f"{owner} needs known pairs: seeds=None. Give a (n_seeds, 2) array of "
            f"(row of X, row of Y) pairs, at least {MIN_SEEDS} (10 or more is safer); "
            "with no pairs at all, use AnchorMatcher."
        )
    seeds = to_numpy(seeds) if isinstance(seeds, torch.Tensor) else np.asarray(seeds)
    if seeds.dtype.kind not in "iu":
        raise TypeError(f"seeds must be integer row indices, got dtype {seeds.dtype}.")
    if seeds.ndim != 2 or seeds.shape[1] != 2:
        raise ValueError(f"seeds must have shape (n_seeds, 2), got {seeds.shape}.")
    if seeds.shape[0] < MIN_SEEDS:
        raise ValueError(
            f"{owner} needs at least {MIN_SEEDS} seed pairs (anchors), got {seeds.shape[0]}: "
            "each anchor gives one descriptor function, and one function cannot tell "
            "points apart. Give more known pairs (10 or more is safer)."
        )
    for col, (name, n) in enumerate((("X", n_x), ("y", n_y))):
        s = seeds[:, col]
        if s.min() < 0 or s.max() >= n:
            raise ValueError(
                f"seeds[:, {col}] must lie in [0, {n}) (the rows of {name}, n_samples={n}); "
                f"got values in [{s.min()}, {s.max()}]."
            )
        if np.unique(s).shape[0] != s.shape[0]:
            raise ValueError(f"seeds[:, {col}] repeats a row of {name}.")
    return seeds.astype(np.int64)


def check_graph_params(n_neighbors, n_components, alpha, n_min, owner):
    """Validated ``(n_neighbors, n_components, alpha)`` for spaces of at least ``n_min`` rows."""
    n_neighbors = _check_int(n_neighbors, "n_neighbors", 1)
    n_components = _check_int(n_components, "n_components", 1)
    check_scalar(alpha, "alpha", numbers.Real, min_val=0.0)
    if not np.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha!r}.")
    if n_neighbors > n_min - 1:
        raise ValueError(
            f"n_neighbors={n_neighbors} is too large for {owner}: the smaller space has "
            f"n_samples={n_min} rows, and each row needs n_neighbors other rows "
            f"(n_neighbors <= {n_min - 1})."
        )
    if n_components > n_min:
        raise ValueError(
            f"n_components={n_components} eigenvectors exceed the {n_min} rows of the smaller "
            f"space: use n_components <= {n_min}."
        )
    return n_neighbors, n_components, float(alpha)


def _check_not_constant(Z, name):
    spread = float((Z - Z.to(torch.float64).mean(dim=0).to(Z.dtype)).abs().max())
    if not spread > 0.0:
        raise ValueError(
            f"{name} is constant (every row is the same point): its kNN graph and "
            "descriptors are undefined; check the embeddings."
        )


class FunctionalMapTranslator(
    _MatchedTranslatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Translate X into y's space from a few known pairs via latent functional maps.

    ``fit(X, y)`` takes two *unpaired* spaces (any widths, any numbers of rows,
    rows in any order) and a few known pairs ``seeds`` (row of X, row of y).
    Latent functional maps (Fumero et al., NeurIPS 2024) turn those few pairs
    into many:

    1. the symmetric kNN graph of each space (cosine, ``n_neighbors``) and its
       normalized Laplacian ``L = I - D^-1/2 W D^-1/2`` (sparse); its
       ``n_components`` smallest eigenpairs ``(Lambda, Phi)`` by
       :func:`scipy.sparse.linalg.eigsh` (never an ``n x n`` dense matrix);
    2. descriptors: the cosine distance of every row to each seed (each space
       centered on its mean), projected on the eigenbasis, ``A = Phi^T F``;
    3. the functional map ``C = argmin ||C A_x - A_y||^2 + alpha ||Lambda_y C -
       C Lambda_x||^2`` (Laplacian commutativity), closed form row by row;
    4. point correspondences: mutual nearest neighbours between the rows of
       ``Phi_x C^T`` and ``Phi_y`` ("LFM + Ortho");
    5. a :class:`~sklearn_latent.ProcrustesTranslator` (``method``) fitted on
       the matched pairs and the seeds; optionally ``n_refine`` rounds of
       self-learning (CSLS mutual nearest neighbours in the original spaces,
       Procrustes, as in :class:`~sklearn_latent.AnchorMatcher`) before it.

    ``transform`` maps X-space rows into y's space, so a classifier trained on
    y applies to them (zero-shot stitching).  The method needs the two kNN
    graphs to be similar (spaces close to isometric); with very few seeds
    (about 5) the result varies with which seeds are given.

    Parameters
    ----------
    seeds : array-like of shape (n_seeds, 2)
        Known pairs ``(row of X, row of y)``, at least 2 (10 or more is safer).
    n_components : int, default=30
        Laplacian eigenvectors per space (the size of ``C``).
    n_neighbors : int, default=10
        Neighbours per row of each kNN graph.
    alpha : float, default=1.0
        Weight of the Laplacian commutativity term (eigenvalues of both graphs
        divided by one common scale, so it does not depend on their sizes).
    mutual : bool, default=True
        Keep only mutual nearest neighbours of the aligned spectra as pairs
        (``False``: every row of X with its nearest y).
    n_refine : int, default=0
        Self-learning rounds (CSLS mutual nearest neighbours) after the
        spectral matching; 0 keeps the pure "LFM + Ortho" map.
    method : {"orthogonal", "scaled", "linear", "affine"}, default="orthogonal"
        Translator fitted on the pairs.
    batch_size : int, "auto" or None, default=None
        Rows per chunk of the kNN search, the matching and ``transform``; the
        matching's blocks follow scikit-learn's ``working_memory`` with None or
        ``"auto"`` (the full similarity matrix is never formed).
    device : None, "auto", str or torch.device, default=None

    Attributes
    ----------
    functional_map_ : ndarray of shape (n_components, n_components)
        ``C``, from functions on X to functions on y (Laplacian eigenbases).
    similarity_ : float
        :func:`sklearn_latent.metrics.functional_map_similarity` of ``C``:
        ``||diag(C^T C)||^2 / ||C^T C||_F^2``, 1 for an isometry.
    matched_pairs_ : ndarray of shape (n_pairs, 2)
        Seeds first, then the pairs found (most confident first).
    is_seed_ : ndarray of bool of shape (n_pairs,)
    eigenvalues_x_, eigenvalues_y_ : ndarray of shape (n_components,)
        The kept eigenvalues of each graph (ascending, common scale).
    translator_ : ProcrustesTranslator
        Fitted on ``X[matched_pairs_[:, 0]]`` and ``y[matched_pairs_[:, 1]]``.
    n_features_in_ : int

    See Also
    --------
    AnchorMatcher : Alignment with no known pairs, or with seeds.
    sklearn_latent.metrics.functional_map_similarity : The score on its own.

    References
    ----------
    .. [1] M. Fumero, M. Pegoraro, V. Maiorca, F. Locatello and E. Rodolà,
       "Latent Functional Maps: a spectral framework for representation
       alignment", NeurIPS 2024.

    Examples
    --------
    Two views of the same 400 items, the second rotated, wider and listed in
    another order; 10 known pairs:

    >>> import numpy as np
    >>> from sklearn_latent import FunctionalMapTranslator
    >>> rng = np.random.default_rng(0)
    >>> t = rng.uniform(0, 3 * np.pi, 400)
    >>> X = np.c_[t * np.cos(t), t * np.sin(t), rng.normal(size=400) * 0.3] + 5.0
    >>> Q = np.linalg.qr(rng.normal(size=(5, 5)))[0][:3]     # 3 -> 5 dims, orthonormal rows
    >>> perm = rng.permutation(400)                          # row j of Y is item perm[j]
    >>> Y = (X @ Q)[perm]
    >>> inv = np.argsort(perm)                               # item i is row inv[i] of Y
    >>> seeds = np.c_[np.arange(10), inv[:10]]
    >>> lfm = FunctionalMapTranslator(seeds=seeds).fit(X, Y)
    >>> pairs = lfm.matched_pairs_
    >>> bool(np.mean(perm[pairs[:, 1]] == pairs[:, 0]) > 0.9)   # precision of the pairs
    True
    >>> lfm.transform(X).shape
    (400, 5)
    """

    def __init__(
        self,
        seeds=None,
        *,
        n_components=30,
        n_neighbors=10,
        alpha=1.0,
        mutual=True,
        n_refine=0,
        method="orthogonal",
        batch_size=None,
        device=None,
    ):
        self.seeds = seeds
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.mutual = mutual
        self.n_refine = n_refine
        self.method = method
        self.batch_size = batch_size
        self.device = device

    @atomic_fit
    def fit(self, X, y=None):
        """Build both graphs' eigenbases, solve the functional map, match, fit the translator.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_x, d_x)
        y : array-like or Tensor of shape (n_y, d_y)
            The second space (unpaired with X apart from the seeds).

        Returns
        -------
        self : FunctionalMapTranslator
        """
        check_option(self.method, "method", _METHODS)
        batch_size = check_batch_size(self.batch_size)
        n_refine = _check_int(self.n_refine, "n_refine", 0)
        X, Y = _check_spaces(self, X, y)
        n_x, n_y = X.shape[0], Y.shape[0]
        seeds = check_fmap_seeds(self.seeds, n_x, n_y, "FunctionalMapTranslator")
        k, n_comp, alpha = check_graph_params(
            self.n_neighbors, self.n_components, self.alpha, min(n_x, n_y),
            "FunctionalMapTranslator",
        )
        dev = resolve_device(self.device, X)
        dtype = torch_dtype(X)
        Xt, Yt = to_tensor(X, dev, dtype), to_tensor(Y, dev, dtype)
        _check_not_constant(Xt, "X")
        _check_not_constant(Yt, "y")
        step = None if batch_size == "auto" else batch_size
        with torch.no_grad():
            C, px, py, lx, ly = FF.latent_functional_map(Xt, Yt, seeds, k, n_comp, alpha, step)
            rows, cols, dist = FF.spectral_matches(px, py, C, mutual=bool(self.mutual),
                                                   batch_size=step)
            order = torch.argsort(dist, stable=True)
            rows, cols = rows[order], cols[order]
            if n_refine:
                Xn, Yn = FM.center_normalize(Xt), FM.center_normalize(Yt)
                pairs0 = _with_seeds(to_numpy(rows), to_numpy(cols), seeds)
                W = FM.procrustes_polar(Xn[torch.as_tensor(pairs0[:, 0], device=dev)],
                                        Yn[torch.as_tensor(pairs0[:, 1], device=dev)])
                W = FM.refine_by_csls(Xn, Yn, W, n_refine, seeds_x=_rows(Xn, seeds[:, 0]),
                                      seeds_y=_rows(Yn, seeds[:, 1]), batch_size=step)
                r, c, s = FM.csls_mutual_nn(FM._normalize(Xn @ W), Yn, 10, step)
                order = torch.argsort(-s.to(torch.float64), stable=True)
                rows, cols = r[order], c[order]
        pairs = _with_seeds(to_numpy(rows), to_numpy(cols), seeds)
        self.translator_ = ProcrustesTranslator(
            self.method, device=self.device, batch_size=self.batch_size
        ).fit(_rows(X, pairs[:, 0]), _rows(Y, pairs[:, 1]))
        self.functional_map_ = to_numpy(C).astype(np.float64)
        self.similarity_ = FF.fmap_similarity(C)
        self.eigenvalues_x_ = to_numpy(lx).astype(np.float64)
        self.eigenvalues_y_ = to_numpy(ly).astype(np.float64)
        self.matched_pairs_ = pairs
        self.is_seed_ = np.arange(pairs.shape[0]) < seeds.shape[0]
        return self


def _with_seeds(rows, cols, seeds):
    """Seeds first, then the found pairs that use neither a seed's x nor a seed's y."""
    free = ~(np.isin(rows, seeds[:, 0]) | np.isin(cols, seeds[:, 1]))
    found = np.stack([rows[free], cols[free]], axis=1).astype(np.int64).reshape(-1, 2)
    return np.concatenate([seeds, found])
