"""Out-of-core and distributed helpers on Dask.

Three functions take :class:`dask.array.Array` inputs and run the library's
own code on each block, wherever Dask schedules it (threads, processes or a
``dask.distributed`` cluster; no cluster code of our own):

- :func:`transform`: ``estimator.transform`` block by block with
  :func:`dask.array.map_blocks` (lazy; output chunks, width and dtype known
  up front);
- :func:`fit_translator`: a :class:`~sklearn_latent.ProcrustesTranslator`
  fitted from float64 sufficient statistics reduced over the chunks (a tree
  reduction of :func:`~sklearn_latent.merge_translation_stats`), equal to the
  in-memory ``fit``;
- :func:`select_anchors`: anchor rows picked on a sample of the rows, returned
  as global row indices.

Dask is an optional dependency (``pip install sklearn-latent[dask]``); this
module is not imported by ``import sklearn_latent``.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "sklearn_latent.dask needs dask[array]; install it with "
        "`pip install sklearn-latent[dask]` (or `pip install 'dask[array]' distributed`)."
    ) from exc

from sklearn_latent.anchors import STRATEGIES, _check_n_anchors, _random_indices
from sklearn_latent.anchors import select_anchors as _select_anchors_in_memory
from sklearn_latent._backend import check_option
from sklearn_latent.translate import (
    ProcrustesTranslator,
    _needs_gram,
    merge_translation_stats,
    translation_stats,
)

__all__ = ["fit_translator", "select_anchors", "transform"]

#: Rows drawn by :func:`select_anchors` for the strategies that look at the data.
DEFAULT_SAMPLE_SIZE = 20_000


# --------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------
def _check_dask_2d(X, name):
    """A 2-D dask array with known row chunks and all columns in one chunk."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array, got {type(X).__name__}; wrap in-memory "
            f"data with dask.array.from_array({name}, chunks=(rows_per_chunk, -1))."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got a {X.ndim}-D dask array of "
            f"shape {X.shape}."
        )
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes along its rows (after boolean indexing?); call "
            f"{name}.compute_chunk_sizes() first."
        )
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {X.dtype}; a real numeric dtype is needed.")
    # Every block must hold whole rows: the library's transforms see all features.
    return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X


def _block_error(exc, name, block_id, rows):
    start, stop = rows
    return ValueError(f"block {block_id} of {name} (rows {start}:{stop}): {exc}")


def _row_ranges(chunks):
    bounds = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------
# transform
# --------------------------------------------------------------------------
def _output_dtype(estimator, dtype):
    """What ``estimator.transform`` returns for input of ``dtype`` (scikit-learn's tag)."""
    try:
        kept = get_tags(estimator).transformer_tags.preserves_dtype
    except AttributeError:  # not a transformer's tags
        kept = ["float64"]
    return np.dtype(dtype) if np.dtype(dtype).name in kept else np.dtype(np.float64)


def _output_width(estimator, X):
    """Columns of ``estimator.transform(X)``, without running it when possible."""
    try:
        return len(estimator.get_feature_names_out())
    except (AttributeError, ValueError, TypeError, NotImplementedError):
        pass
    # An estimator that cannot name its outputs: transform one real row.
    return int(np.asarray(estimator.transform(X[:1].compute())).shape[1])


def _transform_block(block, estimator, dtype, width, name, block_info=None):
    block_id = block_info[0]["chunk-location"][0]
    rows = block_info[0]["array-location"][0]
    try:
        out = np.asarray(estimator.transform(block))
        if out.ndim != 2 or out.shape[1] != width:
            raise ValueError(
                f"{type(estimator).__name__}.transform returned shape {out.shape}; "
                f"expected {width} columns (from get_feature_names_out)."
            )
    except ValueError as exc:
        raise _block_error(exc, name, block_id, rows) from exc
    return out.astype(dtype, copy=False)


def transform(estimator, X):
    """Lazy ``estimator.transform(X)`` of a dask array, block by block.

    Each row block of ``X`` is transformed by the fitted estimator with
    :func:`dask.array.map_blocks`.  The estimator enters the graph once (as
    one :func:`dask.delayed` key that every block depends on), so a
    distributed cluster ships it to each worker once, not with every task.
    It is copied when the graph is built: refitting it later does not change
    the result.
    Nothing is computed until you call ``.compute()``, ``.persist()`` or
    :func:`dask.array.store`.

    Parameters
    ----------
    estimator : fitted transformer
        Any fitted estimator of the library (or a fitted scikit-learn
        transformer / Pipeline).  Its output width comes from
        ``get_feature_names_out()`` and its dtype from the
        ``preserves_dtype`` tag (float32 stays float32, anything else becomes
        float64), so dask never calls it on placeholder data.
    X : dask.array.Array of shape (n_samples, n_features)
        Row blocks of any size.  Blocks split along the columns are merged
        first (``X.rechunk({1: -1})``): a block must hold whole rows.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_features_out)
        Same row chunks as ``X``, one column chunk.  Computing it raises
        ``ValueError("block i of X (rows a:b): ...")`` when a block is
        invalid (e.g. contains NaN), naming that block.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from sklearn_latent import RelativeProjector
    >>> from sklearn_latent import dask as sld
    >>> X = np.random.default_rng(0).normal(size=(1000, 16))
    >>> proj = RelativeProjector(50, random_state=0).fit(X)
    >>> R = sld.transform(proj, da.from_array(X, chunks=(250, 16)))
    >>> R.shape, R.chunks[0], R.dtype
    ((1000, 50), (250, 250, 250, 250), dtype('float64'))
    >>> bool(np.allclose(R.compute(), proj.transform(X)))
    True
    """
    if not callable(getattr(estimator, "transform", None)):
        raise TypeError(
            f"sklearn_latent.dask.transform needs a transformer (an estimator with a transform "
            f"method, e.g. RelativeProjector, ProcrustesTranslator or a Pipeline ending in "
            f"one); {type(estimator).__name__} has no transform. For predictions, map "
            "estimator.predict over the blocks yourself (dask.array.map_blocks)."
        )
    check_is_fitted(estimator)
    X = _check_dask_2d(X, "X")
    dtype = _output_dtype(estimator, X.dtype)
    width = _output_width(estimator, X)
    # A snapshot: refitting the estimator before .compute() must not change this result.
    est = dask.delayed(copy.deepcopy(estimator), pure=True)
    return da.map_blocks(
        _transform_block,
        X,
        est,
        dtype,
        width,
        "X",
        chunks=(X.chunks[0], (width,)),
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
        token=f"sklearn-latent-transform-{type(estimator).__name__}",
    )


# --------------------------------------------------------------------------
# fit_translator
# --------------------------------------------------------------------------
def _stats_block(Xb, Yb, gram, block_id, rows):
    try:
        return translation_stats(Xb, Yb, gram=gram)
    except ValueError as exc:
        raise _block_error(exc, "X and Y", block_id, rows) from exc


def _merge(*stats):
    return merge_translation_stats(*stats)


def _tree_reduce(parts, split_every):
    while len(parts) > 1:
        parts = [
            dask.delayed(_merge, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def _global_indices(idx, n):
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"anchors must be integer row indices, got dtype {idx.dtype}.")
    if idx.ndim != 1 or idx.size < 2:
        raise ValueError(
            f"anchors must be a 1-D array of at least 2 row indices, got shape {idx.shape}."
        )
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(
            f"anchors must lie in [0, {n}) for X with {n} rows; got values in "
            f"[{idx.min()}, {idx.max()}]."
        )
    if np.unique(idx).size != idx.size:
        raise ValueError("anchors must be distinct row indices (found repeated rows).")
    return idx.astype(np.int64)


def _translator_anchors(translator, X):
    """Row indices the translator's own ``n_anchors``/``anchors`` select (None = all rows)."""
    n = X.shape[0]
    strategy = translator.anchors
    if isinstance(strategy, str):
        check_option(strategy, "anchors", STRATEGIES)
        if translator.n_anchors is None:
            return None
        if strategy == "stratified":
            raise ValueError(
                "anchors='stratified' needs class labels: pick the rows with "
                "sklearn_latent.dask.select_anchors(X, n_anchors, 'stratified', y=labels) and "
                "pass them as fit_translator(..., anchors=indices)."
            )
        return select_anchors(
            X, translator.n_anchors, strategy, random_state=translator.random_state
        )
    if callable(strategy):
        raise TypeError(
            "a callable anchors strategy cannot run on a dask array; pick the rows first "
            "and pass them as fit_translator(..., anchors=indices)."
        )
    return _global_indices(strategy, n)


def fit_translator(translator, X, Y, *, anchors=None, split_every=8):
    """Fit a :class:`~sklearn_latent.ProcrustesTranslator` on paired dask arrays.

    Every row block contributes its float64 sufficient statistics
    (:func:`~sklearn_latent.translation_stats`), they are merged exactly in a
    tree (:func:`~sklearn_latent.merge_translation_stats`, ``split_every``
    per node), and the map is solved once with
    :meth:`~sklearn_latent.ProcrustesTranslator.fit_from_stats`.  Only the
    statistics, (d_x + 1) x (d_x + d_y) floats per block, travel between
    workers; the result equals ``translator.fit(X, Y)`` on the same anchor
    rows in memory (to rounding, ~1e-12).

    Parameters
    ----------
    translator : ProcrustesTranslator
        Its ``method``, ``scaling``, ``alpha`` and ``device`` define the map.
        It is fitted in place (like ``fit``) and returned.
    X : dask.array.Array of shape (n_samples, d_x)
        Source embeddings.
    Y : dask.array.Array of shape (n_samples, d_y)
        Target embeddings of the same samples, row by row (rechunked to the
        row chunks of ``X`` when they differ).
    anchors : array-like of int, optional
        Global row indices of the anchors.  ``None`` uses the translator's own
        parameters: with ``n_anchors=None`` (the default) every row is an
        anchor; ``anchors="random"`` picks exactly the rows an in-memory
        ``fit`` picks; ``"fps"``/``"kmeans"`` run on a sample of the rows
        (see :func:`select_anchors`); explicit row indices are used as they
        are.
    split_every : int, default=8
        Fan-in of the reduction tree.

    Returns
    -------
    translator : ProcrustesTranslator
        An ordinary fitted translator (numpy attributes; it pickles, saves
        with :func:`sklearn_latent.save` and transforms numpy, tensors or,
        through :func:`transform`, dask arrays).  ``anchor_indices_`` holds
        the anchor rows, or ``None`` when every row was an anchor.

    Raises
    ------
    ValueError
        Naming the block (``"block i of X and Y (rows a:b): Input X contains
        NaN."``) when a block is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent import dask as sld
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 8))
    >>> Y = X @ rng.normal(size=(8, 5)) + 1.0
    >>> tr = sld.fit_translator(ProcrustesTranslator("linear"),
    ...                         da.from_array(X, chunks=(300, 8)),
    ...                         da.from_array(Y, chunks=(300, 5)))
    >>> ref = ProcrustesTranslator("linear").fit(X, Y)
    >>> bool(np.allclose(tr.coef_, ref.coef_, rtol=0, atol=1e-10))
    True
    """
    if not isinstance(translator, ProcrustesTranslator):
        raise TypeError(
            f"translator must be a ProcrustesTranslator, got {type(translator).__name__}."
        )
    if (
        isinstance(split_every, bool)
        or not isinstance(split_every, numbers.Integral)
        or split_every < 2
    ):
        raise ValueError(f"split_every={split_every!r} must be an int >= 2.")
    translator._check_params()
    X = _check_dask_2d(X, "X")
    Y = _check_dask_2d(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"Y has {Y.shape[0]} rows but X has {X.shape[0]}; row i of X and of Y must be "
            "the same sample embedded in the two spaces."
        )
    idx = (
        _translator_anchors(translator, X)
        if anchors is None
        else _global_indices(anchors, X.shape[0])
    )
    if idx is not None:
        rows = np.sort(idx)  # statistics do not depend on the order; sorted reads are cheap
        X, Y = X[rows], Y[rows]
    if Y.chunks[0] != X.chunks[0]:
        Y = Y.rechunk({0: X.chunks[0]})
    gram = _needs_gram(translator.method, X.shape[1], Y.shape[1], translator.scaling)
    ranges = _row_ranges(X.chunks[0])
    xb, yb = X.to_delayed().ravel(), Y.to_delayed().ravel()
    parts = [
        dask.delayed(_stats_block, pure=True)(a, b, gram, i, ranges[i])
        for i, (a, b) in enumerate(zip(xb, yb))
    ]
    (stats,) = dask.compute(_tree_reduce(parts, int(split_every)))
    translator.fit_from_stats(stats)
    translator.anchor_indices_ = idx
    return translator


# --------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------
def select_anchors(
    X,
    n_anchors,
    method="random",
    *,
    y=None,
    sample_size=DEFAULT_SAMPLE_SIZE,
    random_state=None,
    device=None,
):
    """Pick anchor rows of a dask array; returns global row indices.

    ``"random"`` draws uniformly from all rows and needs no data: it returns
    exactly what :func:`sklearn_latent.select_anchors` returns on the same
    rows in memory.  The strategies that look at the data (``"fps"``,
    ``"kmeans"``, ``"stratified"``) run the in-memory strategy on a uniform
    sample of ``sample_size`` rows (only those rows are computed) and map the
    picks back to rows of ``X``; with ``sample_size >= n_samples`` the sample
    is all of ``X`` and the result equals the in-memory one.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    n_anchors : int or float in (0, 1]
        Number of anchors, or a fraction of ``n_samples`` (of all rows, not of
        the sample).
    method : {"random", "fps", "kmeans", "stratified"}, default="random"
    y : array-like or dask array of shape (n_samples,), optional
        Class labels, required by ``"stratified"``.
    sample_size : int, default=20000
        Rows the data-dependent strategies look at.  Must be at least the
        number of anchors.
    random_state : int, RandomState instance or None
        Seeds the sample and the strategy: the same seed gives the same rows.
    device : None, str or torch.device
        Where ``"fps"`` and ``"kmeans"`` run on the sample.

    Returns
    -------
    indices : ndarray of shape (n_anchors,), dtype int64
        Distinct row indices into ``X`` (use them for every space: parallel
        anchors).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from sklearn_latent import dask as sld
    >>> X = da.from_array(np.random.default_rng(0).normal(size=(50_000, 8)),
    ...                   chunks=(10_000, 8))
    >>> idx = sld.select_anchors(X, 100, "fps", sample_size=5_000, random_state=0)
    >>> idx.shape, len(np.unique(idx)), bool(idx.max() < 50_000)
    ((100,), 100, True)
    """
    method = check_option(method, "method", STRATEGIES)
    X = _check_dask_2d(X, "X")
    n = X.shape[0]
    k = _check_n_anchors(n_anchors, n)
    if method == "random":
        return _random_indices(n, k, check_random_state(random_state))
    if (
        isinstance(sample_size, bool)
        or not isinstance(sample_size, numbers.Integral)
        or sample_size < 1
    ):
        raise ValueError(f"sample_size={sample_size!r} must be a positive int.")
    if k > sample_size:
        raise ValueError(
            f"n_anchors={n_anchors!r} gives {k} anchors, more than sample_size={sample_size}; "
            "raise sample_size."
        )
    if y is not None and not isinstance(y, da.Array):
        y = np.asarray(y)
    if y is not None and len(y) != n:
        raise ValueError(f"y has {len(y)} entries but X has {n} rows.")
    if sample_size >= n:
        rows, state = None, random_state
    else:
        rng = check_random_state(random_state)
        rows = _random_indices(n, int(sample_size), rng)
        state = rng
    Xs = X if rows is None else X[rows]
    ys = None
    if y is not None:
        ys = y if rows is None else y[rows]
    Xs, ys = dask.compute(Xs, ys)
    local = _select_anchors_in_memory(Xs, k, method, y=ys, random_state=state, device=device)
    return local.astype(np.int64) if rows is None else rows[local]

