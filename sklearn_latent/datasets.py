"""Related latent spaces to evaluate latent space communication on.

* :func:`make_digits_spaces`: real, independently trained encoders.  Small
  MLPs trained from scratch on scikit-learn's bundled digits (no download),
  different seeds and widths; the spaces are their hidden ReLU layers.
* :func:`make_related_spaces`: synthetic pairs ``Y = X @ coef + intercept +
  noise`` with the true map returned, for known-answer tests of translators
  and of the invariances of relative representations.
"""

import numbers
import warnings

import numpy as np
from scipy.stats import ortho_group
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.utils import Bunch, check_random_state, check_scalar
from threadpoolctl import threadpool_limits

from ._backend import check_option

__all__ = ["DIGITS_ENCODERS", "make_digits_spaces", "make_related_spaces"]

#: The default encoders of :func:`make_digits_spaces` (and of the demo):
#: name -> (hidden layer sizes, random_state).  Two of the same width (their
#: absolute spaces are directly comparable, and incompatible), one narrower,
#: one wider, one deeper.
DIGITS_ENCODERS = {
    "mlp64-s0": ((64,), 0),
    "mlp64-s1": ((64,), 1),
    "mlp32-s2": ((32,), 2),
    "mlp128-s3": ((128,), 3),
    "mlp64x32-s4": ((64, 32), 4),
}

TRANSFORMS = ("orthogonal", "scaled", "linear", "affine", "permutation")


def _check_encoders(encoders):
    if not isinstance(encoders, dict) or not encoders:
        raise TypeError(
            "encoders must be a non-empty dict name -> (hidden_layer_sizes, random_state), "
            f"got {encoders!r}."
        )
    out = {}
    for name, spec in encoders.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"encoder names must be non-empty strings, got {name!r}.")
        try:
            sizes, seed = spec
        except (TypeError, ValueError):
            raise TypeError(
                f"encoders[{name!r}]={spec!r} must be a pair (hidden_layer_sizes, random_state)."
            ) from None
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if not sizes or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes
        ):
            raise ValueError(
                f"encoders[{name!r}] has hidden_layer_sizes={sizes!r}; expected positive ints."
            )
        out[name] = (tuple(int(s) for s in sizes), seed)
    return out


def _hidden(mlp, X):
    """The last hidden ReLU layer of a fitted MLPClassifier."""
    H = X
    for W, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
        H = np.maximum(H @ W + b, 0.0)
    return H


def make_digits_spaces(encoders=None, *, test_size=0.3, max_iter=200, random_state=0):
    """Embeddings of scikit-learn's digits by several independently trained MLPs.

    Each encoder is an :class:`~sklearn.neural_network.MLPClassifier` trained
    from scratch on the training rows of the digits (pixels / 16) with its own
    seed and hidden layer sizes; its space is the last hidden ReLU layer.  All
    samples are embedded (training and test rows), so the spaces can be split
    and anchored like any other embedding files; the test rows were never seen
    by the encoders.  Nothing is downloaded; training runs with one BLAS
    thread (these small models are faster that way) and takes a few seconds
    per encoder.

    Parameters
    ----------
    encoders : dict or None, default=None
        ``name -> (hidden_layer_sizes, random_state)``; an int is one hidden
        layer.  ``None`` uses :data:`DIGITS_ENCODERS`: widths 64 (two seeds),
        32, 128 and a deeper ``(64, 32)`` network.
    test_size : float in (0, 1), default=0.3
        Fraction of samples held out (stratified split).
    max_iter : int, default=200
        Training epochs of each encoder (the ``ConvergenceWarning`` of short
        runs is silenced: the encoders only need to be good, not converged).
    random_state : int, default=0
        Seed of the train/test split.  The encoders use their own seeds.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``spaces``: dict name -> ndarray of shape (1797, width), float64, the
        embeddings of all samples in the order of ``load_digits``;
        ``target``: ndarray of shape (1797,), the digit labels;
        ``train``, ``test``: sorted row indices of the split the encoders were
        trained on (pass ``split=(data.train, data.test)`` to
        :func:`~sklearn_latent.stitching_matrix`);
        ``accuracy``: dict name -> test accuracy of each encoder's own
        classifier; ``encoders``: the validated specification.

    See Also
    --------
    make_related_spaces : Synthetic spaces with a known map.
    sklearn_latent.stitching_matrix : Evaluates stitching across the spaces.

    Examples
    --------
    >>> from sklearn_latent.datasets import make_digits_spaces
    >>> data = make_digits_spaces({"a": (16, 0), "b": (8, 1)}, max_iter=20)
    >>> data.spaces["a"].shape, data.spaces["b"].shape, data.target.shape
    ((1797, 16), (1797, 8), (1797,))
    >>> len(data.train), len(data.test)
    (1257, 540)
    """
    encoders = _check_encoders(DIGITS_ENCODERS if encoders is None else encoders)
    check_scalar(test_size, "test_size", numbers.Real, min_val=0.0, max_val=1.0,
                 include_boundaries="neither")
    if isinstance(max_iter, bool):
        raise TypeError(f"max_iter must be an int, got {max_iter!r}.")
    check_scalar(max_iter, "max_iter", numbers.Integral, min_val=1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    train, test = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=random_state
    )
    train, test = np.sort(train), np.sort(test)
    spaces, accuracy = {}, {}
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, (sizes, seed) in encoders.items():
            mlp = MLPClassifier(sizes, max_iter=max_iter, random_state=seed)
            mlp.fit(X[train], y[train])
            spaces[name] = _hidden(mlp, X)
            accuracy[name] = float(mlp.score(X[test], y[test]))
    return Bunch(
        spaces=spaces, target=y, train=train, test=test, accuracy=accuracy, encoders=encoders
    )


def _check_width(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name}={value} must be at least 1.")
    return int(value)


def make_related_spaces(
    n_samples=1000,
    n_features=32,
    *,
    n_target_features=None,
    transform="orthogonal",
    noise=0.0,
    random_state=None,
):
    """Two spaces of the same samples related by a known map.

    ``X`` has standard normal rows; ``Y = X @ coef + intercept + noise * E``
    with ``E`` standard normal.  ``coef`` and ``intercept`` are returned, so
    translators can be checked against the truth and relative representations
    against their invariances (see the table in ``docs/relative.md``).

    Parameters
    ----------
    n_samples : int, default=1000
    n_features : int, default=32
        Width of ``X``.
    n_target_features : int or None, default=None
        Width of ``Y`` (``None``: ``n_features``).  ``"orthogonal"`` and
        ``"scaled"`` then use a semi-orthogonal matrix (orthonormal rows when
        ``Y`` is narrower, orthonormal columns when it is wider);
        ``"permutation"`` needs equal widths.
    transform : {"orthogonal", "scaled", "linear", "affine", "permutation"}, default="orthogonal"
        ``"orthogonal"``: a random (semi-)orthogonal ``Q``, no offset.
        ``"scaled"``: ``s Q`` with a random ``s`` in [0.5, 2] and a random
        offset (an isometry up to scale: what centered cosine is invariant to).
        ``"linear"``: a random Gaussian matrix scaled by ``1 / sqrt(n_features)``,
        no offset.  ``"affine"``: such a matrix and a random offset.
        ``"permutation"``: a random signed permutation of the coordinates and a
        random offset (what L1 and L-inf distances are invariant to).
    noise : float, default=0.0
        Standard deviation of the Gaussian noise added to ``Y``.
    random_state : int, RandomState instance or None, default=None
        Makes the output deterministic.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_target_features)
    coef : ndarray of shape (n_features, n_target_features)
        The true map, ``Y = X @ coef + intercept`` up to the noise.
    intercept : ndarray of shape (n_target_features,)
        Zeros for ``"orthogonal"`` and ``"linear"``.

    See Also
    --------
    make_digits_spaces : Spaces of real, independently trained encoders.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.datasets import make_related_spaces
    >>> X, Y, coef, intercept = make_related_spaces(500, 16, random_state=0)
    >>> tr = ProcrustesTranslator(scaling=None).fit(X, Y)
    >>> bool(np.allclose(tr.coef_, coef)), bool(np.allclose(coef.T @ coef, np.eye(16)))
    (True, True)
    """
    n = _check_width(n_samples, "n_samples")
    d = _check_width(n_features, "n_features")
    d_y = d if n_target_features is None else _check_width(n_target_features, "n_target_features")
    transform = check_option(transform, "transform", TRANSFORMS)
    check_scalar(noise, "noise", numbers.Real, min_val=0.0)
    if not np.isfinite(noise):
        raise ValueError(f"noise={noise!r} must be finite.")
    if transform == "permutation" and d_y != d:
        raise ValueError(
            f"transform='permutation' needs n_target_features == n_features; got "
            f"n_target_features={d_y}, n_features={d}."
        )
    rng = check_random_state(random_state)
    X = rng.standard_normal((n, d))
    intercept = np.zeros(d_y)
    if transform in ("orthogonal", "scaled"):
        m = max(d, d_y)
        Q = ortho_group.rvs(m, random_state=rng) if m > 1 else np.ones((1, 1))
        coef = Q[:d, :d_y]  # a block of an orthogonal matrix: orthonormal rows or columns
        if transform == "scaled":
            coef = rng.uniform(0.5, 2.0) * coef
            intercept = rng.standard_normal(d_y)
    elif transform in ("linear", "affine"):
        coef = rng.standard_normal((d, d_y)) / np.sqrt(d)
        if transform == "affine":
            intercept = rng.standard_normal(d_y)
    else:
        coef = np.zeros((d, d))
        coef[np.arange(d), rng.permutation(d)] = rng.choice([-1.0, 1.0], size=d)
        intercept = rng.standard_normal(d)
    Y = X @ coef + intercept
    if noise > 0:
        Y = Y + noise * rng.standard_normal(Y.shape)
    return X, Y, coef, intercept
