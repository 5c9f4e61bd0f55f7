"""Inverse relative projection (Maiorca et al., 2024): from relative coordinates back to a space."""

import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import functional as F
from ._backend import (
    apply_batched,
    atomic_fit,
    check_batch_size,
    check_input,
    check_option,
    finite_result,
    fitted_tensor,
    resolve_device,
    to_numpy,
    torch_dtype,
)
from .anchors import resolve_anchors
from .relative import RelativeProjector, _AnchoredTransformerMixin
from .translate import _user_stacklevel, check_alpha, warn_underdetermined

__all__ = ["InverseRelativeProjector", "RelativeTranslator"]

RESCALINGS = ("mean_norm", None)


def _check_inverse_params(est):
    """Shared parameter checks of InverseRelativeProjector and RelativeTranslator."""
    check_option(est.rescale, "rescale", RESCALINGS)
    if not isinstance(est.center, (bool, np.bool_)):
        raise TypeError(f"center must be a bool, got {est.center!r}.")
    if est.prune_threshold is not None:
        check_scalar(
            est.prune_threshold, "prune_threshold", numbers.Real, min_val=0.0, max_val=1.0,
            include_boundaries="right",
        )
    if isinstance(est.n_subspaces, bool):
        raise TypeError(f"n_subspaces must be an int, got {est.n_subspaces!r}.")
    check_scalar(est.n_subspaces, "n_subspaces", numbers.Integral, min_val=1)
    if est.n_subspaces > 1 and est.prune_threshold is None:
        raise ValueError(
            f"n_subspaces={est.n_subspaces} needs prune_threshold: without pruning every "
            "subspace is the full anchor set."
        )
    check_alpha(est.alpha)
    check_batch_size(est.batch_size)


class InverseRelativeProjector(_AnchoredTransformerMixin, TransformerMixin, BaseEstimator):
    """Map cosine relative representations back into an absolute space.

    Fitted on the space it maps **into** (``Y``, width ``d``), with anchors
    picked there.  ``transform(R)`` takes relative representations computed in
    any other space against *parallel* anchors (the same samples, in the same
    order; ``RelativeProjector(metric="cosine")``) and solves for the vectors
    of ``Y``'s space with those cosines to its anchors:

    ``y_dir = argmin_y ||norm(B - mu_B) y - r||`` (least squares, ridge
    ``alpha``), then ``y = norm(y_dir) * s + mu_B`` with ``s`` the mean norm of
    the centered anchors (``rescale="mean_norm"``) or 1 (``rescale=None``).

    With ``n_anchors`` close to ``d`` the normalized anchor matrix is badly
    conditioned and the least squares solution amplifies the mismatch between
    the spaces.  ``prune_threshold=delta`` keeps a well-conditioned subset of
    anchors: greedy farthest-point selection under ``1 - |cos(a, b)|``,
    stopping when the next distance falls below ``delta`` (every kept pair has
    ``|cos| <= 1 - delta``).  ``n_subspaces=omega`` repeats the selection from
    ``omega`` random starting anchors and averages the ``omega``
    reconstructions.

    Parameters
    ----------
    n_anchors : int, float in (0, 1] or None, default=300
        Number of anchors (or fraction of the rows of ``Y``; ``None`` = all
        rows).  Ignored when ``anchors`` is an explicit array.
        An int above the number of rows uses every row, with a warning
        (see :doc:`/relative`).
    anchors : str, array-like, Tensor or callable, default="random"
        As in :class:`~sklearn_latent.RelativeProjector`; pass the source
        projector's ``anchor_indices_`` (or the same ``random_state`` and
        ``n_anchors`` on rows of the same samples) so the anchors are parallel.
    center : bool, default=True
        Whether the relative representations were computed with centering
        (``RelativeProjector(center=True)``): the anchors of ``Y`` are then
        centered on their mean, and the mean is added back to the output.
    rescale : {"mean_norm"} or None, default="mean_norm"
        Norm of the output (before un-centering): the mean norm of the
        (centered) anchors of ``Y``, or ``None`` for unit vectors.
    prune_threshold : float in (0, 1] or None, default=None
        ``delta`` of the anchor pruning; ``None`` uses every anchor.
    n_subspaces : int, default=1
        ``omega``: number of pruned subsets (random starts) averaged; more than
        1 needs ``prune_threshold``.
    alpha : float or "auto", default=1.0
        Ridge regularization of the least squares solve (on the normalized
        anchors, whose rows have unit norm).  ``"auto"`` chooses it per
        subspace by generalized cross-validation on a log grid (0 included),
        from one SVD of the normalized anchors, scoring how well each
        candidate reconstructs the anchors' relative representations computed
        in the *source* space (``fit(Y, relative=...)``); that is what
        :class:`RelativeTranslator` does.  Without a ridge, near-null
        directions (singular values below ``1e-6`` of the largest) are
        dropped, and a warning is emitted when the kept ones still amplify
        mismatches by more than ``1e4``.  The default ``1.0`` was chosen on
        real pretrained encoders, whose relative representations disagree
        (:doc:`/real_suite`): there the plain inverse (``alpha=0``, the
        paper's formula) stitches several points below it and collapses as
        the anchors approach ``d``; use ``alpha=0`` for exactly related
        spaces (a rotation, the same encoder).
    device : None, "auto", str or torch.device, default=None
        Where to compute (``None``: where the input lives).
    batch_size : int, "auto" or None, default=None
        Rows per chunk in ``transform``; ``"auto"`` sizes chunks from
        scikit-learn's ``working_memory``.  Never changes the result (see
        :doc:`/arrays`).
    random_state : int, RandomState instance or None, default=None
        Seed of the anchor strategy and of the subspaces' starting anchors.

    Attributes
    ----------
    anchors_ : ndarray of shape (n_anchors, n_features_in)
        Anchor vectors in ``Y``.
    anchor_indices_ : ndarray of shape (n_anchors,) or None
        Rows of ``Y`` used as anchors; ``None`` for explicit vectors.
    anchor_mean_ : ndarray of shape (n_features_in,) or None
        Mean of the anchors (``center=True``), added back to the output.
    normalized_anchors_ : ndarray of shape (n_anchors, n_features_in)
        ``norm(anchors_ - anchor_mean_)``: the matrix inverted.
    mean_anchor_norm_ : float
        Mean norm of the centered anchors: the output norm of ``"mean_norm"``.
    anchor_subsets_ : list of ndarray of int
        Indices (into the anchors, i.e. columns of ``R``) of each subspace's
        kept anchors, in selection order; one entry covering all anchors
        without pruning.
    condition_numbers_ : ndarray of shape (n_subsets,)
        Effective 2-norm condition number of each subset's inverse: the largest
        gain of the solve over the gain of the top direction (largest over
        smallest kept singular value without a ridge; see
        :func:`~sklearn_latent.functional.anchor_condition_number`).  Above
        ``1e4`` a warning is emitted at fit.
    alpha_ : ndarray of shape (n_subsets,)
        The ridge penalty of each subset's inverse (``alpha``, or the one chosen
        by ``alpha="auto"``).
    constant_features_ : ndarray of int
        Features of ``Y`` that are near-constant on the anchors (their centered
        norm below ``1e-6`` of the largest feature's): left out of the solve,
        so the output takes the anchor mean there.
    inverse_ : ndarray of shape (sum of subset sizes, n_features_in)
        The right inverses of the subsets' normalized anchors, stacked.
    n_features_in_ : int
        Width of ``Y``: the output width.
    feature_names_in_ : ndarray of str
        Defined when ``Y`` has string column names; they name the output.

    See Also
    --------
    RelativeProjector : The forward projection (``inverse_transform`` inverts it within one space).
    RelativeTranslator : Both sides in one estimator fitted on paired data.

    Notes
    -----
    With ``n_subspaces > 1`` the average of the subspaces' unit
    reconstructions is renormalized before rescaling, so the output norm does
    not shrink where the subspaces disagree.

    The anchors cannot determine the output outside the span of their
    (centered) directions: with fewer than ``d + 1`` anchors (``center=True``)
    and ``alpha=0`` a warning says so.

    ``transform`` validates its input against ``n_anchors`` columns, not
    ``n_features_in_``: its input lives in the relative space, its output in
    the fitted one.  For the same reason ``fit_transform(Y)`` only makes sense
    when ``Y`` itself is a relative representation; compose the two steps in a
    pipeline of fitted estimators instead (see the example).

    References
    ----------
    .. [1] V. Maiorca, L. Moschella, M. Fumero, F. Locatello and E. Rodolà,
       "Latent Space Translation via Inverse Relative Projection", 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_latent import InverseRelativeProjector, RelativeProjector
    >>> X = np.random.default_rng(0).normal(size=(500, 16))
    >>> Y = 2 * X @ ortho_group.rvs(16, random_state=0) + 1  # another "model"
    >>> src = RelativeProjector(n_anchors=64, random_state=0).fit(X)
    >>> # an exact rotation: no mismatch to regularize, so no ridge (alpha=0)
    >>> tgt = InverseRelativeProjector(anchors=src.anchor_indices_, alpha=0.0).fit(Y)
    >>> translate = make_pipeline(FrozenEstimator(src), FrozenEstimator(tgt))
    >>> Y_hat = translate.transform(X)
    >>> cos = (Y_hat - 1) * (Y - 1)
    >>> cos = cos.sum(1) / np.linalg.norm(Y_hat - 1, axis=1) / np.linalg.norm(Y - 1, axis=1)
    >>> bool(cos.min() > 0.99)
    True
    """

    def __init__(
        self,
        n_anchors=300,
        *,
        anchors="random",
        center=True,
        rescale="mean_norm",
        prune_threshold=None,
        n_subspaces=1,
        alpha=1.0,
        device=None,
        batch_size=None,
        random_state=None,
    ):
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.center = center
        self.rescale = rescale
        self.prune_threshold = prune_threshold
        self.n_subspaces = n_subspaces
        self.alpha = alpha
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    @atomic_fit
    def fit(self, Y, y=None, *, relative=None):
        """Pick the anchors in the target space Y and prepare their inverse.

        Parameters
        ----------
        Y : array-like or Tensor of shape (n_samples, n_features)
            The absolute space ``transform`` maps into.
        y : array-like of shape (n_samples,), optional
            Class labels, used only by ``anchors="stratified"``.
        relative : array-like or Tensor of shape (n_anchors, n_anchors), optional
            The anchors' own relative representations computed in the *source*
            space (row ``i``: anchor ``i`` against every anchor), as
            ``transform`` will receive them.  Needed by ``alpha="auto"``,
            which chooses the ridge penalty that best explains these rows
            (generalized cross-validation); ignored otherwise.

        Returns
        -------
        self : InverseRelativeProjector
        """
        _check_inverse_params(self)
        Y, anchors, idx, device = self._fit_anchors(Y, y)
        k = anchors.shape[0]
        if self.center and k < 2:
            raise ValueError(
                f"n_anchors={self.n_anchors} gives {k} anchor from n_samples={Y.shape[0]}; "
                "the inverse relative projection needs at least 2 anchors with "
                "center=True (a single centered anchor is the zero vector)."
            )
        auto = isinstance(self.alpha, str)
        if auto:
            if relative is None:
                raise ValueError(
                    "alpha='auto' needs the anchors' relative representations in the source "
                    "space: fit(Y, relative=source_projector.transform(X_source[anchor rows])) "
                    "(RelativeTranslator does this for you), or pass a number as alpha."
                )
            R_anc = check_input(None, relative, reset=False, input_name="relative")
            if tuple(R_anc.shape) != (k, k):
                raise ValueError(
                    f"relative has shape {tuple(R_anc.shape)}; expected ({k}, {k}): the "
                    f"relative representations of the {k} anchors against themselves."
                )
            R_anc = torch.as_tensor(R_anc).to(device=device, dtype=torch.float64)
        with torch.no_grad():
            B = torch.as_tensor(anchors).to(device=device, dtype=torch.float64)
            mean = B.mean(dim=0) if self.center else None
            centered = B - mean if self.center else B
            norms = F._row_norms(centered).reshape(-1)  # no overflow at |y| ~ 1e180
            dead = F.near_constant_columns(B, mean)
            B_hat = F._inverse_design(B, mean, F.INVERSE_RTOL)
            subsets = self._select_subsets(B_hat, norms)
            inverses, conds, alphas, ranks = [], [], [], []
            for S in subsets:
                rows = B if S is None else B[S]
                design = B_hat if S is None else B_hat[S]
                if auto:
                    queries = R_anc if S is None else R_anc[:, S]
                    a = F.select_inverse_alpha(design, queries)[0]
                else:
                    a = float(self.alpha)
                inverses.append(F.normalized_anchor_inverse(rows, center=mean, alpha=a))
                conds.append(F.anchor_condition_number(design, alpha=a))
                alphas.append(a)
                ranks.append(int(torch.linalg.matrix_rank(
                    design, rtol=F.INVERSE_RTOL) if design.numel() else 0))
        d = B.shape[1]
        determinable = d - int(dead.sum())
        if min(alphas) == 0 and min(ranks) < determinable and bool((norms > 0).any()):
            centered_note = " after centering" if self.center else ""
            warn_underdetermined(
                "inverse relative projection", min(ranks), f"d={determinable}",
                [f"{min(len(S) if S is not None else k for S in subsets)} anchors span at "
                 f"most {min(ranks)} directions{centered_note}"],
                [f"use more than {determinable + int(self.center)} anchors",
                 "alpha='auto' (RelativeTranslator)"],
                stacklevel=_user_stacklevel(),
            )
        worst = max(conds)
        if worst > F.INVERSE_COND_WARNING and np.isfinite(worst):
            warnings.warn(
                f"The normalized anchors of {type(self).__name__} are badly conditioned "
                f"(effective condition number {worst:.3g} > {F.INVERSE_COND_WARNING:.0e}): "
                "small mismatches between the relative representations of the two spaces "
                "are amplified and the inverse is unreliable.  Use a ridge (alpha > 0, or "
                "alpha='auto' with RelativeTranslator), fewer anchors, or prune_threshold.",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )
        dtype = anchors.dtype
        self.anchors_ = anchors
        self.anchor_indices_ = idx
        self.anchor_mean_ = to_numpy(mean).astype(dtype) if self.center else None
        self.normalized_anchors_ = to_numpy(B_hat).astype(dtype)
        self.mean_anchor_norm_ = float(norms.mean())
        self.anchor_subsets_ = [
            np.arange(k, dtype=np.int64) if S is None else to_numpy(S) for S in subsets
        ]
        self.condition_numbers_ = np.asarray(conds, dtype=np.float64)
        self.alpha_ = np.asarray(alphas, dtype=np.float64)
        self.constant_features_ = np.flatnonzero(to_numpy(dead))
        self.inverse_ = np.ascontiguousarray(to_numpy(torch.cat(inverses)).astype(dtype))
        self._pruned = self.prune_threshold is not None
        return self

    def _select_subsets(self, B_hat, norms):
        """``[None]`` (all anchors) or one pruned index tensor per subspace."""
        candidates = np.flatnonzero(to_numpy(norms) > 0)
        if candidates.size == 0:
            warnings.warn(
                "all anchors coincide (after centering they are all zero): the fitted "
                "space has no direction to recover, transform returns the anchor mean.",
                UserWarning,
                stacklevel=4,
            )
            return [None]
        if self.prune_threshold is None:
            return [None]
        if self.n_subspaces > candidates.size:
            raise ValueError(
                f"n_subspaces={self.n_subspaces} exceeds the {candidates.size} usable "
                "anchors (distinct starting anchors are needed)."
            )
        rng = check_random_state(self.random_state)
        starts = rng.choice(candidates, self.n_subspaces, replace=False)
        return [F.prune_anchors(B_hat, float(self.prune_threshold), int(s)) for s in starts]

    def _check_relative_input(self, X):
        check_is_fitted(self)
        check_batch_size(self.batch_size)
        R = check_input(None, X, reset=False, input_name="X")
        k = self.anchors_.shape[0]
        if R.shape[1] != k:
            raise ValueError(
                f"X has {R.shape[1]} features, but {type(self).__name__} is expecting {k} "
                f"features as input: relative representations with one column per "
                f"anchor (n_anchors={k})."
            )
        return R

    def transform(self, X, *, out=None):
        """Absolute vectors of the fitted space with the given relative representations.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_anchors)
            Cosine relative representations ``R`` computed against anchors
            parallel to ``anchors_`` (column ``j`` = similarity to anchor ``j``).
        out : ndarray or Tensor of shape (n_samples, n_features_in), optional
            Where to write the result (e.g. a ``np.memmap``), see :doc:`/arrays`.

        Returns
        -------
        Y : ndarray or Tensor of shape (n_samples, n_features_in)
            Same kind as X (a tensor stays on its device), float32 kept;
            ``out`` when given.
        """
        R = self._check_relative_input(X)
        device = resolve_device(self.device, R)
        with torch.no_grad():
            return apply_batched(
                finite_result(self._inverter(device, torch_dtype(R))), R, device=device,
                n_outputs=self.n_features_in_, batch_size=self.batch_size, out=out,
            )

    def _inverter(self, device, dtype):
        """The chunk function of :meth:`transform`: relative rows -> absolute rows."""
        P = fitted_tensor(self, "inverse_", device, dtype)
        offset = fitted_tensor(self, "anchor_mean_", device, dtype) if self.center else None
        scale = self.mean_anchor_norm_ if self.rescale == "mean_norm" else None
        if self._pruned:
            sizes = [len(S) for S in self.anchor_subsets_]
            inverse = list(torch.split(P, sizes))
            columns = [torch.as_tensor(S, device=device) for S in self.anchor_subsets_]
        else:
            inverse, columns = P, None

        def invert(Rc):
            return F.inverse_relative_projection(
                Rc, inverse, scale=scale, offset=offset, columns=columns
            )

        return invert

    def get_feature_names_out(self, input_features=None):
        """The fitted space's feature names: the output lives in that space.

        Parameters
        ----------
        input_features : array-like of str or None
            Names of the features of the fitted ``Y`` (validated against
            ``feature_names_in_``); ``None`` gives ``feature_names_in_`` or
            ``x0, x1, ...``.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)


class RelativeTranslator(RegressorMixin, TransformerMixin, BaseEstimator):
    """Latent space translation through the relative space, fitted on paired data.

    ``fit(X, y)`` picks anchor rows in ``X``, fits a cosine
    :class:`~sklearn_latent.RelativeProjector` on ``X`` and an
    :class:`InverseRelativeProjector` on the paired target embeddings ``y``
    with the same (parallel) anchor rows; ``transform(X)`` and ``predict(X)``
    translate source vectors into the target space (the same values; after a
    fit on a 1-D ``y``, ``predict`` returns shape ``(n,)`` like any regressor
    and ``transform`` ``(n, 1)`` like any transformer).  Only the anchor rows of
    ``y`` are used: the two sides are fitted independently, this estimator
    just makes the pair tunable by ``GridSearchCV`` (``prune_threshold``,
    ``n_subspaces``, ``n_anchors``) and scorable (``score`` is R², as for
    regressors).

    Parameters
    ----------
    n_anchors : int, float in (0, 1] or None, default=300
        Number of anchors (or fraction of the rows).
        An int above the number of rows uses every row, with a warning
        (see :doc:`/relative`).
    anchors : str, 1-D array of int or callable, default="random"
        ``"random"``, ``"fps"`` or ``"kmeans"`` (selected in ``X``), row
        indices, or a callable ``(X, n_anchors, random_state) -> indices``.
        Explicit anchor vectors and ``"stratified"`` are not supported (the
        anchors must be rows of both ``X`` and ``y``; ``y`` is not class labels).
    center, rescale, prune_threshold, n_subspaces
        See :class:`InverseRelativeProjector`; ``center`` applies to both sides.
    alpha : float or "auto", default="auto"
        Ridge penalty of the inverse.  ``"auto"`` picks it by generalized
        cross-validation: the candidate (0 or a log grid) that best
        reconstructs the anchors' own relative representations computed in
        ``X`` from the normalized anchors of ``y``, one SVD for all candidates.
    device : None, "auto", str or torch.device, default=None
        Where to compute.
    batch_size : int, "auto" or None, default=None
        Rows per chunk in ``transform``; ``"auto"`` sizes chunks from
        scikit-learn's ``working_memory``.  Never changes the result (see
        :doc:`/arrays`).
    random_state : int, RandomState instance or None, default=None
        Seed of the anchor strategy and of the subspaces.

    Attributes
    ----------
    anchor_indices_ : ndarray of shape (n_anchors,)
        Rows of ``X`` (and ``y``) used as anchors.
    alpha_ : ndarray of shape (n_subsets,)
        The ridge penalty used by each subspace of the inverse.
    relative_projector_ : RelativeProjector
        The source side, fitted on ``X``.
    inverse_projector_ : InverseRelativeProjector
        The target side, fitted on ``y``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.
    n_targets_ : int
        Width of the target space.

    See Also
    --------
    InverseRelativeProjector : The target side alone.

    References
    ----------
    .. [1] V. Maiorca, L. Moschella, M. Fumero, F. Locatello and E. Rodolà,
       "Latent Space Translation via Inverse Relative Projection", 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ortho_group
    >>> from sklearn_latent import RelativeTranslator
    >>> X = np.random.default_rng(0).normal(size=(500, 16))
    >>> Y = 3 * X @ ortho_group.rvs(16, random_state=0)
    >>> tr = RelativeTranslator(n_anchors=64, random_state=0).fit(X, Y)
    >>> tr.predict(X).shape, bool(tr.score(X, Y) > 0.8)
    ((500, 16), True)
    """

    def __init__(
        self,
        n_anchors=300,
        *,
        anchors="random",
        center=True,
        rescale="mean_norm",
        prune_threshold=None,
        n_subspaces=1,
        alpha="auto",
        device=None,
        batch_size=None,
        random_state=None,
    ):
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.center = center
        self.rescale = rescale
        self.prune_threshold = prune_threshold
        self.n_subspaces = n_subspaces
        self.alpha = alpha
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    def _check_target(self, y, n_samples):
        if y is None:
            raise ValueError(
                "RelativeTranslator requires y to be passed, but the target y is None; "
                "y are the paired target embeddings of shape (n_samples, n_target_features)."
            )
        if not isinstance(y, torch.Tensor):
            y = np.asarray(y)
        label_like = (
            not (y.is_floating_point() or y.is_complex()) if isinstance(y, torch.Tensor)
            else y.dtype.kind in "biuOUS"
        )
        if y.ndim == 1 and label_like:
            raise ValueError(
                f"y is a 1-D array of {y.dtype} values of shape ({y.shape[0]},), which looks "
                "like class labels; RelativeTranslator needs the paired target embeddings of "
                "shape (n_samples, n_target_features) (a 1-D float y is one target feature). "
                "In a Pipeline, fit the translator on its own and wrap it in "
                "sklearn.frozen.FrozenEstimator."
            )
        one_d = y.ndim == 1
        Y = check_input(None, y.reshape(-1, 1) if one_d else y, reset=False, input_name="y")
        if Y.shape[0] != n_samples:
            raise ValueError(
                f"y has {Y.shape[0]} rows but X has {n_samples}; they must be paired."
            )
        return Y, one_d

    @atomic_fit
    def fit(self, X, y=None):
        """Fit both sides on paired data.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
            Source embeddings.
        y : array-like or Tensor of shape (n_samples, n_targets) or (n_samples,)
            Target embeddings of the same samples (a 1-D y is one target feature).

        Returns
        -------
        self : RelativeTranslator
        """
        _check_inverse_params(self)
        if isinstance(self.anchors, str) and self.anchors == "stratified":
            raise ValueError(
                "anchors='stratified' needs class labels, but y holds target embeddings; "
                "pass anchor indices chosen with select_anchors(X, n, 'stratified', y=labels)."
            )
        X = check_input(self, X, reset=True)
        Y, one_d = self._check_target(y, X.shape[0])
        anchors = self.anchors
        ndim = getattr(anchors, "ndim", np.ndim(anchors)) if not callable(anchors) else 1
        if not isinstance(anchors, str) and not callable(anchors) and ndim != 1:
            raise ValueError(
                "RelativeTranslator needs anchors that are rows of X and y (a strategy "
                f"name, 1-D indices or a callable), got an array with ndim={ndim}."
            )
        device = resolve_device(self.device, X)
        _, idx = resolve_anchors(
            self, X, self.n_anchors, anchors, random_state=self.random_state, device=device,
        )
        if self.center and idx.shape[0] < 2:
            raise ValueError(
                f"n_anchors={self.n_anchors} gives {idx.shape[0]} anchor from "
                f"n_samples={X.shape[0]}; at least 2 are needed with center=True."
            )
        common = dict(center=self.center, device=self.device, batch_size=self.batch_size)
        self.relative_projector_ = RelativeProjector(anchors=idx, metric="cosine", **common).fit(X)
        relative = None
        if isinstance(self.alpha, str):
            rows = torch.as_tensor(idx, device=X.device) if isinstance(X, torch.Tensor) else idx
            relative = self.relative_projector_.transform(X[rows])
        self.inverse_projector_ = InverseRelativeProjector(
            anchors=idx, rescale=self.rescale, prune_threshold=self.prune_threshold,
            n_subspaces=self.n_subspaces, alpha=self.alpha, random_state=self.random_state,
            **common,
        ).fit(Y, relative=relative)
        self.alpha_ = self.inverse_projector_.alpha_
        self.anchor_indices_ = idx
        self.n_targets_ = Y.shape[1]
        self._y_1d = one_d
        return self

    def transform(self, X, *, out=None):
        """Translate source vectors into the target space.

        Both steps run chunk by chunk in one pass (the (n, n_anchors) relative
        representation is never held whole when ``batch_size`` is set).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        out : ndarray or Tensor of shape (n_samples, n_targets), optional
            Where to write the result (e.g. a ``np.memmap``), see :doc:`/arrays`.

        Returns
        -------
        Y_hat : ndarray or Tensor of shape (n_samples, n_targets)
            Always 2-D (``(n_samples, 1)`` after a fit on a 1-D ``y``; see
            :meth:`predict`); ``out`` when given.
        """
        check_is_fitted(self)
        check_batch_size(self.batch_size)
        X = check_input(self, X, reset=False)
        device = resolve_device(self.device, X)
        dtype = torch_dtype(X)
        project = self.relative_projector_._projector(device, dtype, None)
        invert = self.inverse_projector_._inverter(device, dtype)
        with torch.no_grad():
            return apply_batched(
                finite_result(lambda Xc: invert(project(Xc))), X, device=device,
                n_outputs=self.n_targets_, batch_size=self.batch_size, out=out,
            )

    def predict(self, X):
        """Same as :meth:`transform` (1-D output when fitted with a 1-D ``y``).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)

        Returns
        -------
        Y_hat : ndarray or Tensor of shape (n_samples, n_targets) or (n_samples,)
        """
        Y = self.transform(X)
        return Y[:, 0] if self._y_1d else Y

    def score(self, X, y, sample_weight=None):
        """R² of the translation of X against the paired target embeddings y.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        y : array-like or Tensor of shape (n_samples, n_targets) or (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
            ``r2_score`` averaged uniformly over the target features.
        """
        from sklearn.metrics import r2_score

        y_pred = self.predict(X)
        y_pred = to_numpy(y_pred) if isinstance(y_pred, torch.Tensor) else y_pred
        y = to_numpy(y) if isinstance(y, torch.Tensor) else y
        return float(r2_score(y, y_pred, sample_weight=sample_weight))

    def get_feature_names_out(self, input_features=None):
        """Output names ``relativetranslator0, relativetranslator1, ...`` (target features).

        Parameters
        ----------
        input_features : array-like of str or None
            Only validated against the fitted input features.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray(
            [f"relativetranslator{j}" for j in range(self.n_targets_)], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        # y is the paired target embeddings (2-D); a 1-D float y is accepted as
        # one target feature, but 1-D integers are refused as class labels, so
        # scikit-learn's checks must hand it 2-D targets (as ProcrustesTranslator).
        tags.target_tags.single_output = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        # With a 1-D target the inverse can only recover the sign of y - mean
        # (a direction in a 1-d space), so R^2 on 1-D regression data is poor.
        tags.regressor_tags.poor_score = True
        return tags
