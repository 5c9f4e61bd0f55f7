"""ASIF: zero-shot classification through sparse relative representations (Norelli et al., 2023)."""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_scalar
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import functional as F
from ._backend import (
    apply_batched,
    atomic_fit,
    auto_batch_rows,
    check_batch_size,
    check_csls,
    check_input,
    check_params_unchanged,
    chunk_bounds,
    finite_result,
    fitted_tensor,
    remember_params,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)

__all__ = ["ASIFClassifier"]


def _ndim(a):
    if isinstance(a, torch.Tensor):
        return a.ndim
    return np.asarray(a).ndim


class ASIFClassifier(ClassifierMixin, BaseEstimator):
    """Zero-shot classifier of X items through a bank of coupled (X, Y) pairs (ASIF).

    Two unrelated encoders (e.g. an image encoder for X and a text encoder for
    Y) never trained together become a joint model through a *bank* of N
    coupled pairs ``(x_i, y_i)`` (an image and its caption).  An item is
    described by its similarities to its own side of the bank, sparsified:

    ``r(x) = norm(sparsify(cos(x, X_bank), top_k, exponent))``,
    ``r(y) = norm(sparsify(cos(y, Y_bank), top_k, exponent))``

    (keep the ``top_k`` largest similarities, raise them to ``exponent``,
    L2-normalize).  Both live in the same N-dimensional space, indexed by the
    bank pairs, so a new X item is classified as the class prompt (a Y
    embedding, e.g. the caption "a photo of a dog") with the largest
    ``r(x) . r(prompt)``.

    ``fit(X, y, prompts=P)`` takes the bank: ``X`` its X side, ``y`` its
    paired Y side (2-D, one row per pair, as ``ProcrustesTranslator.fit``)
    and ``P`` the class prompts' Y embeddings.  With a 1-D ``y`` of class
    labels instead, the Y side of each pair is its label (one-hot) and every
    class is its own prompt: the same computation is then a supervised
    top-k similarity vote, which makes the estimator an ordinary scikit-learn
    classifier (``fit(X, y)``).

    Nothing is learned: ``fit`` stores the bank and the prompts' sparse
    representations; prediction computes the top-k similarities of each
    query by a running top-k merge over chunks of the bank, so memory is
    ``O(batch_size * (top_k + bank_batch_size))`` whatever the bank size.

    Parameters
    ----------
    top_k : int, default=800
        Nonzero entries kept in each sparse representation (the authors' value;
        clipped to the bank size).
    exponent : float, default=8.0
        Power the kept similarities are raised to (sign kept), sharpening the
        representation towards the closest bank items.
    center : bool, default=False
        Subtract the bank mean of each side before the cosine (the same mean
        for queries and prompts).  ``False`` is the definition of the paper;
        the top-k selection already makes the representation depend only on
        the ranking of the bank items, so centering matters less than for
        dense relative representations (on digits ReLU latents it was
        slightly worse, see docs/related_methods.md).
    temperature : float, default=0.01
        ``predict_proba`` is ``softmax(scores / temperature)``; monotone in the
        scores, so its argmax is ``predict``.
    batch_size : int or None, default=None
        Query rows per chunk (``None``: all at once).
    bank_batch_size : int or None, default=65536
        Bank rows per chunk of the running top-k (``None``: the whole bank at
        once, an (batch_size, N) matrix).
    device : None, "auto", str or torch.device, default=None
        Where to compute (``None``: where the input lives).

    Attributes
    ----------
    bank_x_ : ndarray of shape (n_bank, n_features_in)
        X side of the bank.
    bank_y_ : ndarray of shape (n_bank, n_features_y) or None
        Y side of the bank (``None`` when fitted on labels).
    x_center_, y_center_ : ndarray of dtype float64 or None
        Bank means subtracted when ``center=True`` (``y_center_`` is ``None``
        when fitted on labels).  Kept in float64 so that float32 banks with
        large offsets are centered as accurately as float64 ones.
    prompt_support_ : ndarray of shape (n_support,)
        Sorted bank indices where some prompt representation is nonzero.
    prompt_relative_ : ndarray of shape (n_classes, n_support)
        The prompts' normalized sparse representations on that support.
    classes_ : ndarray of shape (n_classes,)
        Class labels, one per prompt.
    n_features_in_ : int
        Width of X (and of the X bank).
    n_features_y_ : int or None
        Width of the Y embeddings (``None`` when fitted on labels).
    feature_names_in_ : ndarray of str
        Defined when X has string column names.

    See Also
    --------
    RelativeProjector : Dense relative representations (``top_k``/``exponent``
        give the same sparsification against a small anchor set).
    ProcrustesTranslator : A linear map between the two spaces fitted on the
        same pairs, the usual alternative.

    Notes
    -----
    The prompts of the paper are captions ("a photo of a {class}") encoded by
    the Y encoder.  Any Y embedding of a class works, e.g. the mean Y
    embedding of a few labelled examples.  ``fit`` costs ``O(n_classes *
    n_bank * d_y)``; prediction ``O(n * n_bank * d_x)``, the GEMM of the
    similarities, plus the top-k merges.  With 1-D labels the prompts'
    representations are the (n_classes, n_bank) class indicators, stored densely.

    References
    ----------
    .. [1] A. Norelli, M. Fumero, V. Maiorca, L. Moschella, E. Rodolà and
       F. Locatello, "ASIF: Coupled data turns unimodal models to multimodal
       without training", NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import ASIFClassifier
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, size=600)                 # 3 classes of items
    >>> Z = 2.0 * rng.normal(size=(3, 8))[labels] + rng.normal(size=(600, 8))
    >>> X_bank = np.tanh(Z @ rng.normal(size=(8, 20)))        # encoder of X (say images)
    >>> Y_bank = Z @ rng.normal(size=(8, 12))                 # unrelated encoder of Y
    >>> prompts = np.stack([Y_bank[labels == c][:5].mean(0) for c in range(3)])
    >>> clf = ASIFClassifier(top_k=50, exponent=4.0)
    >>> clf = clf.fit(X_bank[:500], Y_bank[:500], prompts=prompts, classes=["a", "b", "c"])
    >>> clf.predict(X_bank[500:504]).tolist(), labels[500:504].tolist()
    (['a', 'b', 'b', 'a'], [0, 1, 1, 0])
    >>> float(clf.score(X_bank[500:], np.array(["a", "b", "c"])[labels[500:]]))
    0.98
    """

    def __init__(
        self,
        top_k=800,
        exponent=8.0,
        *,
        center=False,
        temperature=0.01,
        batch_size=None,
        bank_batch_size=65536,
        device=None,
    ):
        self.top_k = top_k
        self.exponent = exponent
        self.center = center
        self.temperature = temperature
        self.batch_size = batch_size
        self.bank_batch_size = bank_batch_size
        self.device = device

    # ---------------------------------------------------------------- params
    def _check_params(self):
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral):
            raise TypeError(f"top_k must be an int, got {self.top_k!r}.")
        check_scalar(int(self.top_k), "top_k", numbers.Integral, min_val=1)
        check_scalar(self.exponent, "exponent", numbers.Real, min_val=0.0,
                     include_boundaries="neither")
        check_scalar(self.temperature, "temperature", numbers.Real, min_val=0.0,
                     include_boundaries="neither")
        if not isinstance(self.center, (bool, np.bool_)):
            raise TypeError(f"center must be a bool, got {self.center!r}.")
        check_batch_size(self.batch_size)
        if self.bank_batch_size is not None:
            if isinstance(self.bank_batch_size, bool) or not isinstance(
                self.bank_batch_size, numbers.Integral
            ):
                raise TypeError(
                    f"bank_batch_size must be None or a positive int, got "
                    f"{self.bank_batch_size!r}."
                )
            check_scalar(int(self.bank_batch_size), "bank_batch_size", numbers.Integral,
                         min_val=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = False
        return tags

    # ------------------------------------------------------------------ fit
    @atomic_fit
    def fit(self, X, y=None, *, prompts=None, classes=None):
        """Store the bank and the prompts' sparse representations.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_bank, n_features)
            X side of the bank of coupled pairs.
        y : array-like or Tensor of shape (n_bank, n_features_y) or (n_bank,)
            2-D: the Y side of the bank, row ``i`` paired with ``X[i]``
            (zero-shot mode, needs ``prompts``).  1-D: class labels of the bank
            items (supervised mode: each class is its own prompt).
        prompts : array-like or Tensor of shape (n_classes, n_features_y)
            Y embeddings of the class prompts (zero-shot mode only).
        classes : array-like of shape (n_classes,), optional
            Label of each prompt (default ``0, ..., n_classes - 1``).

        Returns
        -------
        self : ASIFClassifier
        """
        self._check_params()
        if y is None:
            raise ValueError(
                "ASIFClassifier requires y to be passed, but the target y is None: pass "
                "the bank's paired Y embeddings (2-D, with prompts=) or class labels (1-D)."
            )
        X = check_input(self, X, reset=True)
        n_bank = X.shape[0]
        device = resolve_device(self.device, X)
        dtype = torch_dtype(X)
        if _ndim(y) == 2:
            self._fit_pairs(X, y, prompts, classes, device, dtype)
        else:
            self._fit_labels(X, y, prompts, classes, device, dtype)
        assert self.bank_x_.shape[0] == n_bank
        remember_params(self, ("top_k", "exponent", "center"))
        return self

    def _fit_pairs(self, X, y, prompts, classes, device, dtype):
        Y = check_input(None, y, reset=False, input_name="y")
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X and y must be banks of the same pairs: X has {X.shape[0]} rows, "
                f"y has {Y.shape[0]}."
            )
        if prompts is None:
            raise ValueError(
                "prompts (the Y embeddings of the class prompts) are required when y is "
                "the 2-D Y side of the bank."
            )
        P = check_input(None, prompts, reset=False, input_name="prompts")
        if P.shape[1] != Y.shape[1]:
            raise ValueError(
                f"prompts have {P.shape[1]} features, but the Y bank (y) has {Y.shape[1]}: "
                "both must come from the same Y encoder."
            )
        self.classes_ = self._check_classes(classes, P.shape[0])
        Xt = to_tensor(X, device, dtype)
        Yt = to_tensor(Y, device, dtype)
        Pt = to_tensor(P, device, dtype)
        x_center = Xt.to(torch.float64).mean(dim=0) if self.center else None
        y_center = Yt.to(torch.float64).mean(dim=0) if self.center else None
        with torch.no_grad():
            vals, idx = self._sparse(Pt, Yt, y_center)
            support, dense = F.sparse_rows_to_support(vals, idx)
        self.bank_x_ = to_numpy(Xt)
        self.bank_y_ = to_numpy(Yt)
        self.x_center_ = None if x_center is None else to_numpy(x_center)
        self.y_center_ = None if y_center is None else to_numpy(y_center)
        self.prompt_support_ = to_numpy(support)
        self.prompt_relative_ = to_numpy(dense)
        self.n_features_y_ = int(Y.shape[1])

    def _fit_labels(self, X, y, prompts, classes, device, dtype):
        if prompts is not None or classes is not None:
            raise ValueError(
                "prompts and classes apply only when y is the 2-D Y side of the bank; "
                "with 1-D class labels every class is its own prompt."
            )
        y = to_numpy(y) if isinstance(y, torch.Tensor) else np.asarray(y)
        if y.ndim != 1:
            raise ValueError(
                f"y must be 1-D class labels or the 2-D Y side of the bank, got shape "
                f"{y.shape}."
            )
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X and y must have the same number of rows: X has {X.shape[0]}, "
                f"y has {y.shape[0]}."
            )
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        onehot = np.zeros((self.classes_.shape[0], X.shape[0]), dtype=np.float64)
        onehot[codes, np.arange(X.shape[0])] = 1.0
        Xt = to_tensor(X, device, dtype)
        x_center = Xt.to(torch.float64).mean(dim=0) if self.center else None
        self.bank_x_ = to_numpy(Xt)
        self.bank_y_ = None
        self.x_center_ = None if x_center is None else to_numpy(x_center)
        self.y_center_ = None
        self.prompt_support_ = np.arange(X.shape[0], dtype=np.int64)
        # the one-hot label "embedding" of class c has cosine 1 with every bank
        # item of class c and 0 with the rest: its normalized representation
        self.prompt_relative_ = (
            onehot / np.sqrt(onehot.sum(axis=1, keepdims=True))
        ).astype(self.bank_x_.dtype)
        self.n_features_y_ = None

    @staticmethod
    def _check_classes(classes, n_prompts):
        if classes is None:
            return np.arange(n_prompts)
        classes = to_numpy(classes) if isinstance(classes, torch.Tensor) else np.asarray(classes)
        if classes.ndim != 1 or classes.shape[0] != n_prompts:
            raise ValueError(
                f"classes must be 1-D with one label per prompt ({n_prompts}), got shape "
                f"{classes.shape}."
            )
        if np.unique(classes).shape[0] != n_prompts:
            raise ValueError("classes must be distinct (one prompt per class).")
        return classes

    # -------------------------------------------------------------- kernels
    def _sparse(self, Q, bank, center):
        """Normalized sparse representation (values, indices) of Q against a bank side."""
        vals, idx = F.topk_similarity(Q, bank, self.top_k, center=center,
                                      chunk_size=self.bank_batch_size)
        vals = F._safe_normalize(F.sparsify(vals, None, self.exponent))
        return vals, idx

    def _side(self, name_bank, name_center, device, dtype):
        bank = fitted_tensor(self, name_bank, device, dtype)
        center = (  # float64: see x_center_
            fitted_tensor(self, name_center, device, torch.float64)
            if getattr(self, name_center) is not None else None
        )
        return bank, center

    def _scores_fn(self, device, dtype, support_name="prompt_support_",
                   dense_name="prompt_relative_"):
        bank, center = self._side("bank_x_", "x_center_", device, dtype)
        support = fitted_tensor(self, support_name, device, torch.int64)
        dense = fitted_tensor(self, dense_name, device, dtype)

        def scores(Xc):
            vals, idx = self._sparse(Xc, bank, center)
            return F.sparse_dot(vals, idx, support, dense)

        return scores

    def _check_query(self, X):
        check_is_fitted(self)
        check_params_unchanged(self)
        self._check_params()
        X = check_input(self, X, reset=False)
        return X, resolve_device(self.device, X)

    def _scores(self, X):
        X, device = self._check_query(X)
        with torch.no_grad():
            S = apply_batched(
                finite_result(self._scores_fn(device, torch_dtype(X))), X, device=device,
                n_outputs=self.classes_.shape[0], batch_size=self.batch_size,
            )
        return S

    # ------------------------------------------------------------------ API
    def decision_function(self, X):
        """ASIF scores ``r(x) . r(prompt_c)`` (cosines of the sparse representations).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)

        Returns
        -------
        scores : ndarray or Tensor of shape (n_samples, n_classes) or (n_samples,)
            For two classes, ``score_1 - score_0`` (scikit-learn's binary convention).
        """
        S = self._scores(X)
        if self.classes_.shape[0] == 2:
            return S[:, 1] - S[:, 0]
        return S

    def predict_proba(self, X):
        """``softmax(scores / temperature)`` over the classes.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)

        Returns
        -------
        proba : ndarray or Tensor of shape (n_samples, n_classes)
        """
        S = self._scores(X)
        T = S if isinstance(S, torch.Tensor) else torch.from_numpy(S)
        P = torch.softmax(T / self.temperature, dim=1)
        return P if isinstance(S, torch.Tensor) else P.numpy()

    def predict(self, X):
        """Class of the prompt with the largest score.

        Returns
        -------
        labels : ndarray of shape (n_samples,) or Tensor
            A tensor on the input's device for tensor input when the classes
            are numbers; a numpy array otherwise.
        """
        S = self._scores(X)
        best = S.argmax(dim=1) if isinstance(S, torch.Tensor) else S.argmax(axis=1)
        if isinstance(S, torch.Tensor):
            if self.classes_.dtype.kind in "iuf":
                classes = torch.as_tensor(self.classes_, device=S.device)
                return classes[best]
            return self.classes_[to_numpy(best)]
        return self.classes_[best]

    def kneighbors(self, X, n_neighbors=5, return_distance=True, *, candidates=None,
                   csls=None):
        """Cross-space retrieval: the Y items closest to each X item.

        Targets are the class prompts, or ``candidates`` (any Y embeddings,
        e.g. a gallery of captions); closeness is the ASIF score, and the
        distance returned is ``1 - score``.

        With ``csls=k`` the score is hubness-corrected (CSLS, Conneau et al.,
        2018): ``2 s(x, t) - r(x) - r(t)``, where ``r(x)`` is the mean of the
        ``k`` largest scores of ``x`` over the targets and ``r(t)`` the mean of
        the ``k`` largest scores of target ``t`` over the queries ``X`` of
        this call.  A "hub" target, close to everything, no longer comes first
        for most queries.  ``r(t)`` is measured on ``X``: pass the whole query
        set (or a representative batch) in one call, not one query at a time.
        Two passes over ``X`` by blocks of ``batch_size`` rows (with
        ``batch_size="auto"`` the blocks fit scikit-learn's ``working_memory``);
        the hubness terms themselves need ``O(k * n_targets)`` memory.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features_in)
        n_neighbors : int, default=5
            At most the number of targets.
        return_distance : bool, default=True
        candidates : array-like or Tensor of shape (n_candidates, n_features_y), optional
            Y embeddings to retrieve from (zero-shot mode only); default: the prompts.
        csls : int, optional
            Neighbours of the CSLS hubness terms (10 is the usual choice);
            None (default) ranks by the plain ASIF score.

        Returns
        -------
        distances : ndarray or Tensor of shape (n_samples, n_neighbors)
            Only when ``return_distance``; increasing along each row.  With
            ``csls``, ``1 -`` the CSLS score (it can exceed 1 or be negative).
        indices : ndarray or Tensor of shape (n_samples, n_neighbors)
            Rows of ``candidates`` (or indices of ``classes_``).

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_latent import ASIFClassifier
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.normal(size=(200, 16)), rng.normal(size=(200, 8))
        >>> clf = ASIFClassifier(top_k=20).fit(X[:150], Y[:150], prompts=Y[150:160])
        >>> dist, ind = clf.kneighbors(X[150:], 3, candidates=Y[150:], csls=10)
        >>> ind.shape
        (50, 3)
        """
        X, device = self._check_query(X)
        dtype = torch_dtype(X)
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(f"n_neighbors must be an int, got {n_neighbors!r}.")
        csls = check_csls(csls)
        with torch.no_grad():
            if candidates is None:
                support = fitted_tensor(self, "prompt_support_", device, torch.int64)
                dense = fitted_tensor(self, "prompt_relative_", device, dtype)
            else:
                support, dense = self._candidates(candidates, device, dtype)
            if not 1 <= n_neighbors <= dense.shape[0]:
                raise ValueError(
                    f"n_neighbors={n_neighbors} must lie in [1, {dense.shape[0]}] (the number "
                    "of retrieval targets)."
                )
            bank, center = self._side("bank_x_", "x_center_", device, dtype)
            n = X.shape[0]
            step = self.batch_size
            if step == "auto":  # the (n, top_k) representation and (n, targets) scores
                width = min(int(self.top_k), bank.shape[0]) + dense.shape[0]
                step = auto_batch_rows(X.shape[1], width, bank.element_size(), n)

            def blocks():
                for start, stop in chunk_bounds(n, step):
                    vals, idx = self._sparse(to_tensor(X[start:stop], device, dtype), bank,
                                             center)
                    yield start, stop, F.sparse_dot(vals, idx, support, dense)

            if csls is not None:
                r_query, r_target = F.csls_hubness(blocks(), int(csls))
            dist, ind = [], []
            for start, stop, S in blocks():
                if csls is not None:
                    S = S.mul_(2.0).sub_(r_query[start:stop, None]).sub_(r_target[None, :])
                best, pos = torch.topk(S, n_neighbors, dim=1)
                dist.append(1.0 - best)
                ind.append(pos)
            dist, ind = torch.cat(dist), torch.cat(ind)
        if isinstance(X, torch.Tensor):
            dist, ind = dist.to(X.device), ind.to(X.device)
        else:
            dist, ind = to_numpy(dist), to_numpy(ind)
        return (dist, ind) if return_distance else ind

    def _candidates(self, candidates, device, dtype):
        """Sparse representations of Y candidates against the Y bank (support, dense)."""
        if self.bank_y_ is None:
            raise ValueError(
                "candidates need the Y side of the bank; this classifier was fitted on "
                "class labels."
            )
        C = check_input(None, candidates, reset=False, input_name="candidates")
        if C.shape[1] != self.n_features_y_:
            raise ValueError(
                f"candidates have {C.shape[1]} features, but the Y bank has "
                f"{self.n_features_y_}."
            )
        bank_y, y_center = self._side("bank_y_", "y_center_", device, dtype)
        vals, idx = self._sparse(to_tensor(C, device, dtype), bank_y, y_center)
        return F.sparse_rows_to_support(vals, idx)
