"""Zero-shot stitching: compose translators with heads, evaluate every pair of spaces.

* :func:`stitch` composes a fitted translator (source space -> the head's
  input space) and a fitted head into a frozen scikit-learn
  :class:`~sklearn.pipeline.Pipeline`: ``stitch(tr, clf).score(X_source, y)``
  is the zero-shot stitching accuracy.
* :func:`stitching_matrix` computes it for every ordered pair (source, target)
  of a set of spaces embedding the same samples, for several methods at once,
  with each space's own accuracy on the diagonal, and returns a tidy
  :class:`pandas.DataFrame`.
* :func:`plot_stitching_matrix` draws that table as annotated heatmaps.

pandas, matplotlib and tqdm are optional (``pip install sklearn-latent[eval]``)
and imported only by the functions that need them.
"""

import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._backend import check_input, to_numpy
from .anchors import STRATEGIES, select_anchors
from .inverse import RelativeTranslator
from .metrics import (
    knn_jaccard,
    linear_cka,
    mean_reciprocal_rank,
    mutual_knn_alignment,
    paired_cosine_similarity,
    rbf_cka,
    top_k_accuracy,
)
from .product import ProductInvarianceProjector
from .relative import RelativeProjector
from .translate import ProcrustesTranslator

__all__ = [
    "METHODS", "RETRIEVAL_METRICS", "SIMILARITIES", "plot_stitching_matrix", "stitch",
    "stitching_matrix",
]

#: Method names of :func:`stitching_matrix`, in display order.
METHODS = (
    "absolute", "relative", "product", "orthogonal", "scaled", "linear", "affine", "inverse",
    "inverse-pruned",
)
#: Anchor pruning of "inverse-pruned" (delta and omega of Maiorca et al., 2024).
_PRUNING = dict(prune_threshold=0.7, n_subspaces=8)
#: Similarity of two spaces (test rows of source and target), by column name.
SIMILARITIES = {
    "linear_cka": linear_cka,
    "rbf_cka": rbf_cka,
    "mutual_knn": mutual_knn_alignment,
    "knn_jaccard": knn_jaccard,
}
#: Retrieval quality of a method's output against the target's, by column name.
RETRIEVAL_METRICS = {
    "cosine": paired_cosine_similarity,
    "top1": top_k_accuracy,
    "mrr": mean_reciprocal_rank,
}
_EXTRA = "pip install sklearn-latent[eval]"


def _require(module, what):
    """Import an optional dependency, or an ImportError that says how to get it."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ImportError(
            f"{what} needs {module.split('.')[0]}, an optional dependency: {_EXTRA}"
        ) from exc


# --------------------------------------------------------------------------
# stitch
# --------------------------------------------------------------------------
def _n_outputs(translator):
    """Output width of a fitted transformer, or None when it cannot be told cheaply."""
    for attr in ("n_features_out_", "n_targets_"):
        value = getattr(translator, attr, None)
        if isinstance(value, numbers.Integral):
            return int(value)
    try:
        return len(translator.get_feature_names_out())
    except Exception:  # not every transformer can name its outputs (e.g. mid-pipeline)
        return None


def stitch(translator, head):
    """Zero-shot stitched model: a fitted translator followed by a fitted head, frozen.

    Returns ``Pipeline([("translator", FrozenEstimator(translator)), ("head",
    FrozenEstimator(head))])``: ``predict``/``score``/``predict_proba`` run the
    head on translated inputs, and ``fit`` changes nothing (so the stitched
    model can be passed to :func:`~sklearn.model_selection.cross_val_score`
    or a scorer without being refitted).  It pickles like any scikit-learn
    pipeline; the translator can be saved alone with
    :func:`~sklearn_latent.save`.

    Two patterns (see ``docs/stitching.md``):

    * **translation**: ``translator`` maps source embeddings into the target
      space (a :class:`~sklearn_latent.ProcrustesTranslator`, a
      :class:`~sklearn_latent.RelativeTranslator`, or a pipeline of a
      :class:`~sklearn_latent.RelativeProjector` fitted on the source and an
      :class:`~sklearn_latent.InverseRelativeProjector` fitted on the target),
      ``head`` was trained on the target space;
    * **relative**: ``translator`` is the *source's* relative projector and
      ``head`` was trained on the *target's* relative representations (the
      projectors share parallel anchors).

    Parameters
    ----------
    translator : fitted transformer, or None
        Maps source embeddings into the head's input space.  ``None`` (or
        ``"passthrough"``) feeds the source embeddings to the head unchanged:
        the absolute baseline.
    head : fitted estimator
        Classifier, regressor or any estimator trained on the target side.

    Returns
    -------
    stitched : sklearn.pipeline.Pipeline
        Steps ``"translator"`` and ``"head"``, both
        :class:`~sklearn.frozen.FrozenEstimator`.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the translator or the head is not fitted.
    ValueError
        When the translator's output width differs from the head's
        ``n_features_in_`` (both known).

    See Also
    --------
    stitching_matrix : Every pair of a set of spaces, several methods.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_latent import ProcrustesTranslator, stitch
    >>> from sklearn_latent.datasets import make_related_spaces
    >>> X, Y, _, _ = make_related_spaces(600, 8, transform="affine", random_state=0)
    >>> labels = (Y[:, 0] > np.median(Y[:, 0])).astype(int)   # a task on the target space
    >>> head = LogisticRegression().fit(Y[:400], labels[:400])
    >>> translator = ProcrustesTranslator("affine").fit(X[:100], Y[:100])   # 100 anchors
    >>> model = stitch(translator, head)
    >>> head.score(X[400:], labels[400:])        # source embeddings straight in: chance
    0.515
    >>> model.score(X[400:], labels[400:]) == head.score(Y[400:], labels[400:])
    True
    >>> [name for name, _ in model.steps]
    ['translator', 'head']
    """
    passthrough = translator is None or (
        isinstance(translator, str) and translator == "passthrough"
    )
    if isinstance(translator, str) and not passthrough:
        raise ValueError(f"translator={translator!r} must be an estimator, None or 'passthrough'.")
    if not hasattr(head, "predict") and not hasattr(head, "transform"):
        raise TypeError(
            f"head must be a fitted estimator with predict or transform, got "
            f"{type(head).__name__}."
        )
    check_is_fitted(head)
    if passthrough:
        first = "passthrough"
    else:
        if not hasattr(translator, "transform"):
            raise TypeError(
                f"translator must be a fitted transformer (with transform), got "
                f"{type(translator).__name__}."
            )
        check_is_fitted(translator)
        width, expected = _n_outputs(translator), getattr(head, "n_features_in_", None)
        if width is not None and isinstance(expected, numbers.Integral) and width != expected:
            raise ValueError(
                f"translator outputs {width} features but head expects "
                f"n_features_in_={expected}: the head must be trained on the space the "
                "translator maps into."
            )
        first = FrozenEstimator(translator)
    return Pipeline([("translator", first), ("head", FrozenEstimator(head))])


# --------------------------------------------------------------------------
# stitching_matrix: validation
# --------------------------------------------------------------------------
def _check_spaces(spaces, y):
    if not isinstance(spaces, Mapping) or len(spaces) == 0:
        raise TypeError(
            "spaces must be a non-empty dict mapping names to embeddings of the same samples "
            f"(one row per sample), got {type(spaces).__name__}."
        )
    out = {}
    for name, X in spaces.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"space names must be non-empty strings, got {name!r}.")
        X = check_input(None, X, reset=False, input_name=f"spaces[{name!r}]")
        out[name] = to_numpy(X) if isinstance(X, torch.Tensor) else X
    if y is None:
        raise ValueError("stitching_matrix needs the class labels y of the samples.")
    y = to_numpy(y) if isinstance(y, torch.Tensor) else y
    y = column_or_1d(y, warn=True)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity.")
    for name, X in out.items():
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                f"spaces[{name!r}] has {X.shape[0]} rows but y has {y.shape[0]}; every space "
                "must embed the same samples, row by row."
            )
    return out, y


def _check_index_array(idx, n, name):
    idx = to_numpy(idx) if isinstance(idx, torch.Tensor) else np.asarray(idx)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise ValueError(f"{name} as a boolean mask must have shape ({n},), got {idx.shape}.")
        idx = np.flatnonzero(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer row indices, got dtype {idx.dtype}.")
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of row indices, got shape "
                         f"{idx.shape}.")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(
            f"{name} must hold row indices in [0, {n}); got values in [{idx.min()}, {idx.max()}]."
        )
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{name} repeats row indices.")
    return idx.astype(np.int64)


def _split_rows(y, rows, n_test, random_state):
    """Stratified split of ``rows`` (plain when a class has a single sample there)."""
    labels = y[rows]
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 and n_test >= counts.size else None
    train, test = train_test_split(
        rows, test_size=n_test, stratify=stratify, random_state=random_state
    )
    return np.sort(train), np.sort(test)


def _resolve_split(split, test_size, anchor_rows, y, rng):
    n = y.shape[0]
    if split is not None:
        if isinstance(split, (str, bytes)) or len(split) != 2:
            raise TypeError("split must be None or a pair (train_indices, test_indices).")
        train = _check_index_array(split[0], n, "split[0] (train)")
        test = _check_index_array(split[1], n, "split[1] (test)")
        both = np.intersect1d(train, test)
        if both.size:
            raise ValueError(
                f"split: {both.size} row(s) are both training and test rows (e.g. row "
                f"{both[0]}); the test rows must be unseen."
            )
        return train, test
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real) or not (
        0.0 < test_size < 1.0
    ):
        raise ValueError(f"test_size={test_size!r} must be a float in (0, 1).")
    n_test = int(round(test_size * n))
    rest = np.arange(n) if anchor_rows is None else np.setdiff1d(np.arange(n), anchor_rows)
    if n_test < 1 or rest.size - n_test < (1 if anchor_rows is None else 0):
        raise ValueError(
            f"test_size={test_size} leaves {n_test} test row(s) of {n} samples "
            f"({rest.size} not anchors): too few for a train/test split."
        )
    train, test = _split_rows(y, rest, n_test, rng)
    if anchor_rows is not None:
        train = np.sort(np.concatenate([train, anchor_rows]))
    return train, test


def _resolve_methods(methods):
    """Ordered dict label -> method name or (unfitted) estimator."""
    if isinstance(methods, str) or isinstance(methods, BaseEstimator):
        methods = [methods]
    if isinstance(methods, Mapping):
        items = list(methods.items())
    else:
        items = []
        for m in methods:
            if isinstance(m, str):
                items.append((m, m))
            elif isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str):
                items.append(m)
            elif hasattr(m, "fit"):
                items.append((type(m).__name__, m))
            else:
                raise TypeError(
                    f"methods entries must be method names {METHODS}, estimators or "
                    f"(name, estimator) pairs; got {m!r}."
                )
    if not items:
        raise ValueError("methods is empty; give at least one of " + ", ".join(METHODS) + ".")
    out = {}
    for label, m in items:
        if isinstance(m, str) and m not in METHODS:
            raise ValueError(f"method {m!r} is not supported; expected one of {METHODS}, an "
                             "estimator, or a (name, estimator) pair.")
        if not isinstance(m, str) and not (hasattr(m, "fit") and hasattr(m, "transform")):
            raise TypeError(
                f"method {label!r} must be a method name or an estimator with fit and "
                f"transform (a translator or a projector), got {m!r}."
            )
        if label in out:
            raise ValueError(f"method name {label!r} appears twice.")
        out[label] = m
    return out


def _method_kind(est):
    """'translator' (fit(X_source, Y_target)) or 'projector' (fit(X) per space)."""
    try:
        required = get_tags(est).target_tags.required
    except Exception:
        required = False
    return "translator" if required else "projector"


def _builtin(name, anchors, device, seed):
    """(kind, unfitted estimator) of a method name; the estimator uses ``anchors``."""
    if name == "absolute":
        return "absolute", None
    if name == "relative":
        return "projector", RelativeProjector(anchors=anchors, device=device)
    if name == "product":
        return "projector", ProductInvarianceProjector(anchors=anchors, device=device)
    if name == "inverse":
        return "translator", RelativeTranslator(anchors=anchors, device=device)
    if name == "inverse-pruned":
        return "translator", RelativeTranslator(
            anchors=anchors, device=device, random_state=seed, **_PRUNING
        )
    return "translator", ProcrustesTranslator(name, anchors=anchors, device=device)


def _with_anchors(est, anchors):
    """Clone of a user estimator with its ``anchors`` parameter set, when it has one."""
    est = clone(est)
    if "anchors" in est.get_params(deep=False):
        return est.set_params(anchors=anchors), True
    return est, False


# --------------------------------------------------------------------------
# stitching_matrix
# --------------------------------------------------------------------------
def stitching_matrix(
    spaces,
    y,
    *,
    methods=("absolute", "relative", "orthogonal"),
    classifier=None,
    split=None,
    test_size=0.3,
    anchors="random",
    n_anchors=300,
    similarity=("linear_cka", "mutual_knn"),
    retrieval=True,
    device=None,
    random_state=None,
    progress=False,
):
    """Zero-shot stitching accuracy of every ordered pair of spaces, for several methods.

    ``spaces`` are embeddings of the same samples by different models.  The
    samples are split once into training and test rows, and anchors are
    chosen once among the training rows: every space uses the same rows, so
    the anchors are parallel.  For each target space a head (``classifier``)
    is trained on the target's training rows; for each source space and each
    method, the source's test rows are brought to the head's input space and
    scored:

    ======================  ===========================================================
    method                  source test rows -> head of the target
    ======================  ===========================================================
    ``"absolute"``          unchanged: the baseline (``NaN`` when the widths differ)
    ``"relative"``          :class:`~sklearn_latent.RelativeProjector` of the source;
                            the head is trained on the target's relative representation
    ``"product"``           the same with :class:`~sklearn_latent.ProductInvarianceProjector`
    ``"orthogonal"``,       :class:`~sklearn_latent.ProcrustesTranslator` fitted on the
    ``"scaled"``,           anchors (source rows -> target rows); head on the target
    ``"linear"``,           space
    ``"affine"``
    ``"inverse"``           :class:`~sklearn_latent.RelativeTranslator`: relative
                            projection of the source, inverse relative projection into
                            the target (only the target's anchors are used)
    ``"inverse-pruned"``    the same with the anchor pruning of Maiorca et al. (2024):
                            ``prune_threshold=0.7``, ``n_subspaces=8``; robust when the
                            target's normalized anchors are badly conditioned
    ======================  ===========================================================

    The diagonal (source == target) runs the same method within one space:
    the space's own accuracy (for the translators, through their map of the
    space onto itself).  Each stitched model is :func:`stitch` of the fitted
    translator (or source projector) and the target's head.

    Parameters
    ----------
    spaces : dict of str -> array-like or Tensor of shape (n_samples, n_features_i)
        Embeddings of the same samples, row by row; widths may differ.
    y : array-like of shape (n_samples,)
        Class labels.
    methods : str, sequence or dict, default=("absolute", "relative", "orthogonal")
        Method names of :data:`METHODS`, unfitted estimators, or ``(name,
        estimator)`` pairs (a dict ``name -> method`` too).  An estimator whose
        tags require ``y`` (``fit(X_source, Y_target)``, like
        ``ProcrustesTranslator``) is a *translator*: it is fitted per pair and
        the head of the target space is applied to its output.  Any other is
        a *projector* (like ``RelativeProjector``): fitted once per space, the
        target's head is trained on its output.  An ``anchors`` parameter, if
        the estimator has one, is set to the parallel anchors (positions in
        the training rows); a translator without one is fitted on the anchor
        rows only.
    classifier : estimator or None, default=None
        The head, cloned for every target (and representation);
        ``None`` is ``LogisticRegression(max_iter=1000)``.  Scored by its
        ``score`` method (accuracy for classifiers).
    split : pair of array-like or None, default=None
        ``(train_indices, test_indices)`` (row indices or boolean masks,
        disjoint).  ``None`` splits the samples (stratified by ``y`` where every
        class has two samples) with ``test_size`` and ``random_state``; with
        explicit ``anchors`` the test rows are drawn from the other rows.
    test_size : float in (0, 1), default=0.3
        Fraction of the samples held out when ``split`` is None.
    anchors : {"random", "fps", "kmeans", "stratified"} or array-like of int, default="random"
        A strategy of :func:`~sklearn_latent.select_anchors`, run on the
        training rows of the *first* space (``"stratified"`` balances the
        classes of ``y``), or explicit row indices of the samples (they must
        be training rows when ``split`` is given).
    n_anchors : int or float in (0, 1], default=300
        Number of anchors a strategy picks (a float: fraction of the training
        rows).  Ignored for explicit anchors.
    similarity : sequence of str, default=("linear_cka", "mutual_knn")
        Similarity of the two spaces of each pair, measured on their test rows
        (absolute embeddings, widths free), one column each: ``"linear_cka"``,
        ``"rbf_cka"``, ``"mutual_knn"`` (mutual k-NN alignment, k = 10,
        cosine) and ``"knn_jaccard"`` (:mod:`sklearn_latent.metrics`).  The
        same for every method; ``()`` for none.
    retrieval : bool, default=True
        Also measure how close each method brings the source's test rows to
        the target's, in the head's input space (translated source vs target
        embeddings; relative representations of both): columns ``cosine``
        (:func:`~sklearn_latent.metrics.paired_cosine_similarity`), ``top1``
        (:func:`~sklearn_latent.metrics.top_k_accuracy`: the right target is
        the nearest of all test targets) and ``mrr``
        (:func:`~sklearn_latent.metrics.mean_reciprocal_rank`).  Costs
        ``O(n_test^2 d)`` per cell.
    device : None, "auto", str or torch.device, default=None
        Where the library's estimators compute (the classifier is not moved).
    random_state : int, RandomState instance or None, default=None
        Seed of the split and of the anchor strategy.
    progress : bool, default=False
        Show a progress bar over the (method, source, target) cells (needs
        ``tqdm``).

    Returns
    -------
    results : pandas.DataFrame
        One row per (method, source, target), in the order of ``methods`` and
        ``spaces``, with columns ``method``, ``source``, ``target``,
        ``accuracy`` (zero-shot stitching score; ``NaN`` only for
        ``"absolute"`` between spaces of different widths) and
        ``target_accuracy`` (the head's score on the target's own test rows,
        the ceiling), then the ``retrieval`` columns (``NaN`` where
        ``accuracy`` is) and the ``similarity`` columns.  ``results.attrs``
        holds ``train``, ``test`` and ``anchors`` (lists of row indices of the samples),
        ``spaces`` and ``methods`` (names in order) and ``warnings`` (messages
        emitted by the fits, summarized in one ``UserWarning``).

    Raises
    ------
    ImportError
        Without pandas (``pip install sklearn-latent[eval]``).

    See Also
    --------
    stitch : One stitched model.
    plot_stitching_matrix : Heatmaps of the result.
    sklearn_latent.datasets.make_digits_spaces : Spaces of real encoders to try it on.

    Examples
    --------
    >>> from sklearn_latent import stitching_matrix
    >>> from sklearn_latent.datasets import make_related_spaces
    >>> X, Y, _, _ = make_related_spaces(300, 8, transform="scaled", random_state=0)
    >>> labels = (X[:, 0] > 0).astype(int)
    >>> res = stitching_matrix({"x": X, "y": Y}, labels, methods=["absolute", "orthogonal"],
    ...                        n_anchors=50, random_state=0)
    >>> res[["method", "source", "target"]].head(3).values.tolist()
    [['absolute', 'x', 'x'], ['absolute', 'x', 'y'], ['absolute', 'y', 'x']]
    >>> acc = res.set_index(["method", "source", "target"])["accuracy"]
    >>> bool(acc["absolute", "x", "y"] < 0.8), bool(acc["orthogonal", "x", "y"] > 0.95)
    (True, True)
    """
    pd = _require("pandas", "stitching_matrix")
    spaces, y = _check_spaces(spaces, y)
    methods = _resolve_methods(methods)
    similarity = _check_similarity(similarity)
    if not isinstance(retrieval, (bool, np.bool_)):
        raise TypeError(f"retrieval must be a bool, got {retrieval!r}.")
    names = list(spaces)
    n = y.shape[0]
    rng = check_random_state(random_state)

    explicit = not isinstance(anchors, str)
    if explicit:
        anchor_rows = _check_index_array(anchors, n, "anchors")
    else:
        if anchors not in STRATEGIES:
            raise ValueError(f"anchors={anchors!r} is not supported; expected one of "
                             f"{STRATEGIES} or an array of row indices.")
        anchor_rows = None
    train, test = _resolve_split(split, test_size, anchor_rows, y, rng)
    if explicit:
        position = np.full(n, -1, dtype=np.int64)
        position[train] = np.arange(train.size)
        anchor_pos = position[anchor_rows]
        if (anchor_pos < 0).any():
            bad = anchor_rows[anchor_pos < 0]
            raise ValueError(
                f"anchors must be training rows; {bad.size} of them are not (e.g. row "
                f"{bad[0]}): anchors are seen by the fits, so they cannot be test rows."
            )
    else:
        first = spaces[names[0]][train]
        anchor_pos = select_anchors(
            first, n_anchors, anchors, y=y[train], random_state=rng, device=device
        )
        anchor_rows = train[anchor_pos]

    seed = int(rng.randint(2**31 - 1))  # of the estimators' own randomness (subspaces)
    base = LogisticRegression(max_iter=1000) if classifier is None else classifier
    if not hasattr(base, "fit") or not hasattr(base, "score"):
        raise TypeError(f"classifier must be an estimator with fit and score, got {base!r}.")
    y_train, y_test = y[train], y[test]
    X_train = {k: X[train] for k, X in spaces.items()}
    X_test = {k: X[test] for k, X in spaces.items()}

    bar = None
    if progress:
        tqdm = _require("tqdm", "progress=True").tqdm
        bar = tqdm(total=len(methods) * len(names) ** 2, desc="stitching", unit="pair")
    caught = []
    heads = {}  # (representation key, target) -> (fitted head, target accuracy)

    def fit_head(key, target, H_train, H_test):
        if (key, target) not in heads:
            head = clone(base).fit(H_train, y_train)
            heads[key, target] = head, float(head.score(H_test, y_test))
        return heads[key, target]

    rows = []
    pair_cache = {}
    try:
        for label, method in methods.items():
            if isinstance(method, str):
                kind, est = _builtin(method, anchor_pos, device, seed)
                has_anchors = True
            else:
                kind = _method_kind(method)
                est, has_anchors = _with_anchors(method, anchor_pos)
            projectors = {}
            for source in names:
                for target in names:
                    with warnings.catch_warnings(record=True) as log:
                        warnings.simplefilter("always")
                        row = _cell(
                            kind, est, has_anchors, source, target, X_train, X_test,
                            y_test, anchor_pos, projectors, fit_head, label, retrieval,
                        )
                    caught.extend(
                        f"{label} {source} -> {target}: {w.category.__name__}: {w.message}"
                        for w in log
                    )
                    row.update(_pair_similarity(similarity, source, target, X_test, pair_cache))
                    rows.append(dict(method=label, source=source, target=target, **row))
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    columns = ["method", "source", "target", "accuracy", "target_accuracy"]
    columns += list(RETRIEVAL_METRICS) if retrieval else []
    results = pd.DataFrame(rows, columns=columns + list(similarity))
    # plain lists: pandas compares attrs with == when concatenating frames
    results.attrs.update(
        train=train.tolist(), test=test.tolist(), anchors=anchor_rows.tolist(), spaces=names,
        methods=list(methods), warnings=caught,
    )
    if caught:
        warnings.warn(
            f"{len(caught)} warning(s) during the fits, e.g. {caught[0]!r}; all of them are "
            "in results.attrs['warnings'].",
            UserWarning,
            stacklevel=2,
        )
    return results


def _check_similarity(similarity):
    if similarity is None:
        return ()
    if isinstance(similarity, str):
        similarity = (similarity,)
    similarity = tuple(similarity)
    for name in similarity:
        if not isinstance(name, str) or name not in SIMILARITIES:
            raise ValueError(
                f"similarity entry {name!r} is not supported; expected names among "
                f"{tuple(SIMILARITIES)}."
            )
    if len(set(similarity)) != len(similarity):
        raise ValueError(f"similarity={similarity!r} repeats a metric.")
    return similarity


def _pair_similarity(similarity, source, target, X_test, cache):
    """Similarity columns of a pair (symmetric: computed once per unordered pair)."""
    out = {}
    for name in similarity:
        key = (name, *sorted((source, target)))
        if key not in cache:
            X, Y = X_test[source], X_test[target]
            # k = 10 neighbours, fewer on tiny test sets (k <= n - 2: k = n - 1 takes every row)
            kw = {"k": min(10, X.shape[0] - 2)} if name in ("mutual_knn", "knn_jaccard") else {}
            cache[key] = SIMILARITIES[name](X, Y, **kw)
        out[name] = cache[key]
    return out


def _retrieval(Z_source, Z_target):
    return {name: float(f(Z_source, Z_target)) for name, f in RETRIEVAL_METRICS.items()}


def _cell(kind, est, has_anchors, source, target, X_train, X_test, y_test, anchor_pos,
          projectors, fit_head, label, retrieval):
    """Accuracy, target accuracy and retrieval columns of one (method, source, target)."""
    Xs, Xt = X_test[source], X_test[target]
    if kind == "projector":
        for space in (source, target):
            if space not in projectors:
                fitted = clone(est).fit(X_train[space])
                projectors[space] = fitted, fitted.transform(X_test[space])
        (proj_s, Z_source), (proj_t, Z_target) = projectors[source], projectors[target]
        H_train = proj_t.transform(X_train[target])
        head, target_acc = fit_head(("projector", label), target, H_train, Z_target)
        translator = proj_s
    else:
        head, target_acc = fit_head(("absolute",), target, X_train[target], Xt)
        Z_target = Xt
        if kind == "absolute":
            translator = None
        elif has_anchors:
            translator = clone(est).fit(X_train[source], X_train[target])
        else:
            translator = clone(est).fit(X_train[source][anchor_pos], X_train[target][anchor_pos])
    row = dict(accuracy=np.nan, target_accuracy=target_acc)
    if retrieval:
        row.update(dict.fromkeys(RETRIEVAL_METRICS, np.nan))
    if kind == "absolute" and Xs.shape[1] != Xt.shape[1]:
        return row  # no baseline between spaces of different widths
    row["accuracy"] = float(stitch(translator, head).score(Xs, y_test))
    if retrieval:
        if kind != "projector":
            Z_source = Xs if translator is None else translator.transform(Xs)
        row.update(_retrieval(Z_source, Z_target))
    return row


# --------------------------------------------------------------------------
# plots and tables
# --------------------------------------------------------------------------
def _matrix(results, method, value, names):
    """(sources x targets) array of ``value`` for one method, in the order of ``names``."""
    part = results[results["method"] == method]
    table = part.pivot(index="source", columns="target", values=value)
    return table.reindex(index=names, columns=names).to_numpy(dtype=float)


def _check_results(results, value):
    needed = {"method", "source", "target", value}
    missing = needed - set(getattr(results, "columns", ()))
    if missing:
        raise ValueError(
            f"results must be a DataFrame from stitching_matrix with a {value!r} column; "
            f"missing columns {sorted(missing)}."
        )


def plot_stitching_matrix(results, value="accuracy", *, methods=None, cmap="viridis",
                          vmin=0.0, vmax=1.0, fmt="{:.2f}", panel_size=3.2):
    """Annotated heatmaps of a :func:`stitching_matrix` result, one panel per method.

    Rows are sources, columns targets, in the order of the spaces; each cell
    shows its value (``n/a`` for ``NaN``: the absolute baseline between spaces
    of different widths).  Drawn on a new :class:`matplotlib.figure.Figure`
    (no pyplot state, works without a display): save it with
    ``fig.savefig("stitching.png")``, or display it in a notebook.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`stitching_matrix`.
    value : str, default="accuracy"
        The column to draw.
    methods : sequence of str or None, default=None
        Which methods (panels), in order; ``None``: all of them.
    cmap : str, default="viridis"
    vmin, vmax : float, default=0.0, 1.0
        Color scale shared by the panels.
    fmt : str, default="{:.2f}"
        Format of the annotations.
    panel_size : float, default=3.2
        Width and height of one panel, in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> from sklearn_latent import plot_stitching_matrix, stitching_matrix
    >>> from sklearn_latent.datasets import make_related_spaces
    >>> X, Y, _, _ = make_related_spaces(300, 8, random_state=0)
    >>> res = stitching_matrix({"x": X, "y": Y}, (X[:, 0] > 0).astype(int), n_anchors=50,
    ...                        random_state=0)
    >>> fig = plot_stitching_matrix(res)
    >>> len(fig.axes)     # three panels and the color bar
    4
    """
    _require("matplotlib", "plot_stitching_matrix")
    from matplotlib.figure import Figure

    _check_results(results, value)
    names = list(results.attrs.get("spaces") or dict.fromkeys(results["source"]))
    available = list(dict.fromkeys(results["method"]))
    methods = available if methods is None else list(methods)
    unknown = [m for m in methods if m not in available]
    if unknown or not methods:
        raise ValueError(f"methods={methods!r}: the results have methods {available}.")
    ncols = min(4, len(methods))
    nrows = -(-len(methods) // ncols)
    fig = Figure(figsize=(panel_size * ncols + 1.0, panel_size * nrows + 0.4),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax, method in zip(axes.flat, methods):
        M = _matrix(results, method, value, names)
        image = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=vmin, vmax=vmax)
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                v = M[i, j]
                bright = np.isfinite(v) and (v - vmin) > 0.6 * (vmax - vmin)
                ax.text(j, i, "n/a" if not np.isfinite(v) else fmt.format(v),
                        ha="center", va="center", fontsize=8,
                        color="black" if bright else "white" if np.isfinite(v) else "gray")
        ax.set_facecolor("0.92")  # n/a cells
        ax.set_title(method)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label=value)
    return fig
