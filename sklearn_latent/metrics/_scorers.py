"""scikit-learn scorers built on the retrieval metrics."""

import re

import numpy as np
import torch
from sklearn.metrics import get_scorer as _sk_get_scorer
from sklearn.metrics import make_scorer
from sklearn.utils.validation import check_is_fitted

from .._backend import (
    to_numpy,
)
from ._retrieval import (
    _check_retrieval,
    mean_rank,
    mean_reciprocal_rank,
    paired_cosine_similarity,
    top_k_accuracy,
)

# --------------------------------------------------------------------------
# scikit-learn scorers
# --------------------------------------------------------------------------
#: Methods a scorer calls on the estimator, in order of preference: ``predict``
#: (ProcrustesTranslator, RelativeTranslator, PLSRegression, any regressor),
#: else ``transform`` (a Pipeline ending in a transformer, e.g.
#: RelativeProjector -> InverseRelativeProjector).
_RESPONSE = ("predict", "transform")


def _scorer_target(y_true, target):
    """The true paired embeddings: routed ``target`` metadata, else ``y``."""
    Y = y_true if target is None else target
    if Y is None or np.ndim(Y) != 2:
        got = "no y" if Y is None else f"a {np.ndim(Y)}-D y (class labels?)"
        raise ValueError(
            "This scorer compares predictions with the true paired target embeddings, a "
            f"2-D array (n_samples, d), passed as y; got {got}. With class labels as y, "
            "route the embeddings as metadata instead: "
            "sklearn.set_config(enable_metadata_routing=True), "
            "scorer.set_score_request(target=True), then search.fit(X, labels, target=Y)."
        )
    return Y


def _paired_cosine_score(y_true, y_pred, *, target=None):
    return paired_cosine_similarity(y_pred, _scorer_target(y_true, target))


def _mrr_score(y_true, y_pred, *, target=None):
    return mean_reciprocal_rank(y_pred, _scorer_target(y_true, target))


def _top_k_score(y_true, y_pred, *, k=1, target=None):
    return top_k_accuracy(y_pred, _scorer_target(y_true, target), k=k)


def _mean_rank_score(y_true, y_pred, *, target=None):
    return mean_rank(y_pred, _scorer_target(y_true, target))


def _labels(classifier, Y):
    return np.asarray(classifier.predict(to_numpy(Y) if isinstance(Y, torch.Tensor) else Y))


def _stitching_agreement(y_true, y_pred, *, classifier, target=None):
    Y_true = _scorer_target(y_true, target)
    Y_pred, Y_true = _check_retrieval(y_pred, Y_true, "the stitching scorer", 1)
    return float(np.mean(_labels(classifier, Y_pred) == _labels(classifier, Y_true)))


_TOP_K = re.compile(r"top_([1-9][0-9]*)_accuracy")
_SCORERS = {
    "paired_cosine": lambda: make_scorer(_paired_cosine_score, response_method=_RESPONSE),
    "mrr": lambda: make_scorer(_mrr_score, response_method=_RESPONSE),
    "neg_mean_rank": lambda: make_scorer(
        _mean_rank_score, response_method=_RESPONSE, greater_is_better=False
    ),
}


def get_scorer_names():
    """Names understood by :func:`get_scorer` besides scikit-learn's own.

    ``"top_<k>_accuracy"`` works for every positive ``k``; the list shows
    ``top_1_accuracy`` and ``top_5_accuracy``.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from sklearn_latent.metrics import get_scorer_names
    >>> get_scorer_names()
    ['mrr', 'neg_mean_rank', 'paired_cosine', 'top_1_accuracy', 'top_5_accuracy']
    """
    return sorted([*_SCORERS, "top_1_accuracy", "top_5_accuracy"])


def get_scorer(scoring):
    """A scikit-learn scorer for translations, by name.

    The scorers are ``scorer(estimator, X, y)`` callables (made by
    :func:`sklearn.metrics.make_scorer`, greater is better) that compare
    ``estimator.predict(X)`` (or ``transform(X)`` when the estimator has no
    ``predict``, e.g. a Pipeline ending in a transformer) with ``y``, the true
    paired target embeddings, so they plug into ``GridSearchCV``,
    ``cross_validate`` and multi-metric dicts on paired data.

    ``"paired_cosine"``
        :func:`paired_cosine_similarity`.
    ``"mrr"``
        :func:`mean_reciprocal_rank`.
    ``"top_1_accuracy"``, ``"top_5_accuracy"``, any ``"top_<k>_accuracy"``
        :func:`top_k_accuracy` (k must not exceed the rows of a test fold).
    ``"neg_mean_rank"``
        minus :func:`mean_rank` (lower ranks are better, so the scorer
        negates them, like scikit-learn's ``"neg_mean_squared_error"``).

    Any other string, a callable or ``None`` goes to
    :func:`sklearn.metrics.get_scorer`.

    With metadata routing on (``sklearn.set_config(enable_metadata_routing=True)``)
    the true embeddings can instead travel as ``target`` metadata when ``y``
    holds class labels: ``get_scorer("mrr").set_score_request(target=True)``
    and ``search.fit(X, labels, target=Y)`` (see
    :class:`~sklearn_latent.ProcrustesTranslator`'s ``target``).

    Parameters
    ----------
    scoring : str, callable or None
        A name listed by :func:`get_scorer_names`, or anything
        :func:`sklearn.metrics.get_scorer` accepts.

    Returns
    -------
    callable
        A fresh scorer object on every call.

    See Also
    --------
    make_stitching_scorer : agreement of a target-space classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.metrics import get_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 8))
    >>> Y = X @ np.linalg.qr(rng.normal(size=(8, 8)))[0] + 0.1 * rng.normal(size=(200, 8))
    >>> search = GridSearchCV(
    ...     ProcrustesTranslator(),
    ...     {"method": ["orthogonal", "linear"]},
    ...     scoring={"mrr": get_scorer("mrr"), "top1": get_scorer("top_1_accuracy")},
    ...     refit="mrr",
    ... ).fit(X, Y)
    >>> search.best_params_, round(float(search.best_score_), 2)
    ({'method': 'orthogonal'}, 1.0)
    """
    if isinstance(scoring, str):
        if scoring in _SCORERS:
            return _SCORERS[scoring]()
        match = _TOP_K.fullmatch(scoring)
        if match:
            return make_scorer(_top_k_score, response_method=_RESPONSE, k=int(match.group(1)))
        if scoring == "mean_rank":
            raise ValueError(
                "scoring='mean_rank': lower ranks are better, and scorers are "
                "greater-is-better; use 'neg_mean_rank'."
            )
        try:
            return _sk_get_scorer(scoring)
        except ValueError as exc:
            raise ValueError(
                f"scoring={scoring!r} is not a valid scorer name; sklearn_latent's are "
                f"{get_scorer_names()} (also 'top_<k>_accuracy'), scikit-learn's are "
                "listed by sklearn.metrics.get_scorer_names()."
            ) from exc
    return _sk_get_scorer(scoring)


def make_stitching_scorer(classifier):
    """Scorer of zero-shot stitching that needs no labels.

    ``classifier`` was fitted on the *target* space.  The score of a
    translator on paired data ``(X, y)`` is the fraction of rows where the
    classifier gives the same class to the translated source,
    ``classifier.predict(estimator.predict(X))`` (``transform`` when the
    estimator has no ``predict``), as to the true target embedding,
    ``classifier.predict(y)``: 1 when the translation never changes a
    decision.  No class labels are needed, so it scores translators on any
    paired data; with labels, stitching accuracy is
    ``make_pipeline(FrozenEstimator(translator), FrozenEstimator(classifier)).score(X, labels)``.

    Parameters
    ----------
    classifier : fitted estimator with ``predict``
        Fitted on target-space embeddings; it is used as is, never refitted.

    Returns
    -------
    callable
        ``scorer(estimator, X, y)`` (a :func:`sklearn.metrics.make_scorer`
        object, greater is better); with metadata routing it also accepts the
        target embeddings as ``target`` metadata
        (``.set_score_request(target=True)``).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``classifier`` is not fitted.
    TypeError
        If it has no ``predict``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.metrics import make_stitching_scorer
    >>> rng = np.random.default_rng(0)
    >>> Y = rng.normal(size=(300, 6))
    >>> labels = (Y[:, 0] > 0).astype(int)
    >>> clf = LogisticRegression().fit(Y, labels)      # target-space classifier
    >>> X = Y @ np.linalg.qr(rng.normal(size=(6, 6)))[0]  # a rotated source space
    >>> scores = cross_val_score(ProcrustesTranslator(scaling="center"), X, Y, cv=3,
    ...                          scoring=make_stitching_scorer(clf))
    >>> scores.round(3).tolist()
    [1.0, 1.0, 1.0]
    """
    if not callable(getattr(classifier, "predict", None)):
        raise TypeError(
            f"classifier must be a fitted estimator with a predict method, got "
            f"{type(classifier).__name__}."
        )
    check_is_fitted(
        classifier,
        msg=(
            f"This {type(classifier).__name__} instance is not fitted yet: "
            "make_stitching_scorer needs a classifier already fitted on the target space "
            "(call fit(Y_target, labels) first)."
        ),
    )
    return make_scorer(_stitching_agreement, response_method=_RESPONSE, classifier=classifier)
