"""Many spaces at once: a tidy table of pairwise similarities, and its heatmap."""

import numpy as np

from ._calibration import _resolve, calibrate


def _require(module, what):
    from ..stitching import _require as require

    return require(module, what)


def _space_ids(name, X, ids):
    if ids is not None and name in ids:
        return np.asarray(ids[name])
    index = getattr(X, "index", None)  # pandas
    return None if index is None else np.asarray(index)


def _check_same_samples(spaces, ids, paired):
    """Raise unless every space holds the same samples in the same order."""
    names = list(spaces)
    if ids is not None:
        unknown = [k for k in ids if k not in spaces]
        if unknown:
            raise ValueError(f"ids has entries for unknown spaces {unknown}; spaces: {names}.")
    if not paired:
        return
    rows = {k: int(np.shape(v)[0]) if not hasattr(v, "shape") else int(v.shape[0])
            for k, v in spaces.items()}
    if len(set(rows.values())) > 1:
        raise ValueError(
            "The spaces must hold the same samples in the same order (paired rows); their "
            f"row counts differ: {rows}."
        )
    ref_name, ref = None, None
    for name in names:
        these = _space_ids(name, spaces[name], ids)
        if these is None:
            continue
        if these.shape[0] != rows[name]:
            raise ValueError(
                f"ids[{name!r}] has {these.shape[0]} entries for {rows[name]} rows."
            )
        if ref is None:
            ref_name, ref = name, these
            continue
        if not np.array_equal(these, ref):
            where = int(np.flatnonzero(these != ref)[0])
            same_set = set(these.tolist()) == set(ref.tolist())
            raise ValueError(
                f"Spaces {ref_name!r} and {name!r} do not hold the same samples in the same "
                f"order: row {where} is {ref[where]!r} in {ref_name!r} and {these[where]!r} in "
                f"{name!r}"
                + (" (the same samples in another order: reorder the rows)." if same_set
                   else ".")
            )


def _values(X):
    """Arrays or tensors as they are; pandas frames as their values."""
    return X.to_numpy() if hasattr(X, "to_numpy") and hasattr(X, "index") else X


def _cell(a, b, X, Y, name, func, n_permutations, random_state, params, errors):
    out = {"a": a, "b": b, "measure": name}
    try:
        if n_permutations:
            res = calibrate(func, X, Y, n_permutations=n_permutations,
                            random_state=random_state, **params)
            out.update(score=res.score, calibrated=res.calibrated, null_mean=res.null_mean,
                       null_std=res.null_std, p_value=res.p_value)
        else:
            out["score"] = float(func(X, Y, **params))
        out["error"] = ""
    except (ValueError, TypeError) as exc:
        if errors == "raise":
            raise
        out.update(score=np.nan, error=f"{type(exc).__name__}: {exc} (X = {a!r}, Y = {b!r})")
    return out


_BACKENDS = (None, "joblib", "dask")


def _run_cells(run, backend, n_jobs, arrays=()):
    """Evaluate the cell calls ``(func, args, kwargs)``: serially, by joblib or by Dask.

    With Dask, each of ``arrays`` (the spaces) enters the graph once, as its
    own task, however many cells use it (a distributed cluster ships it once
    per worker).
    """
    if backend == "dask":
        try:
            import dask
        except ImportError as exc:
            raise ImportError(
                "similarity_matrix(backend='dask') needs dask, an optional dependency: "
                "pip install sklearn-latent[dask]"
            ) from exc
        shared = {id(A): dask.delayed(A, pure=False) for A in arrays}
        cells = [dask.delayed(f, pure=False)(*[shared.get(id(x), x) for x in args], **kw)
                 for f, args, kw in run]
        # the active scheduler: threads by default, a distributed Client when one is set up
        # n_jobs bounds the local thread/process pools; a distributed Client has its workers
        local = dask.config.get("scheduler", None) not in ("dask.distributed", "distributed")
        kw = {"num_workers": int(n_jobs)} if local and n_jobs is not None and n_jobs > 0 else {}
        return list(dask.compute(*cells, **kw))
    jobs = 1 if n_jobs is None else int(n_jobs)
    if jobs == 1 and backend is None:
        return [f(*args, **kw) for f, args, kw in run]
    from joblib import Parallel

    return Parallel(n_jobs=jobs, prefer="threads")(run)


def similarity_matrix(spaces, measure="linear_cka", *, ids=None, n_permutations=None,
                      random_state=None, n_jobs=None, backend=None, errors="raise",
                      **params):
    """Every pairwise similarity (or distance) between many spaces, as a tidy table.

    Evaluates ``measure`` on each pair of spaces (models or layers embedding
    the same samples), once per unordered pair for symmetric measures
    (mirrored), both orders for ``pwcca``, the diagonal included, in parallel
    with :class:`joblib.Parallel` (threads) or Dask (``backend="dask"``).  Checks first that the spaces
    hold the same samples in the same order: equal row counts, and equal
    sample ids where known (the index of pandas inputs, or ``ids``).

    Parameters
    ----------
    spaces : dict of str -> array-like, DataFrame or Tensor of shape (n_samples, d_name)
        The spaces, by name (widths may differ).
    measure : str, callable or list of them, default="linear_cka"
        Names from :data:`sklearn_latent.metrics.MEASURES` or callables
        ``(X, Y, **params) -> float``.  ``"laplacian_eigenvalue_distance"``
        needs no paired rows (no sample check).
    ids : dict of str -> sequence or None, default=None
        Sample ids per space (overrides a DataFrame's index); every space
        with ids must list the same ids in the same order.
    n_permutations : int or None, default=None
        When given, each cell is calibrated (:func:`calibrate`) and the table
        gains ``calibrated``, ``null_mean``, ``null_std``, ``p_value``.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the permutations (the same permutations for every cell).
    n_jobs : int or None, default=None
        Parallel cells; ``None`` means 1 (with joblib; Dask's scheduler
        picks its own default).
    backend : {None, "joblib", "dask"}, default=None
        How cells run in parallel.  ``None``: serially when ``n_jobs`` is
        1, else joblib.  ``"joblib"``: :class:`joblib.Parallel` with
        threads (the GEMMs and kernels release the GIL).  ``"dask"``: one
        :func:`dask.delayed` task per cell, computed by the active Dask
        scheduler (threads by default; a ``dask.distributed.Client`` when
        one is set up, so cells spread over a cluster).  The table is the
        same whatever the backend.
    errors : {"raise", "record"}, default="raise"
        ``"record"`` keeps going when a cell is undefined (a constant space,
        too few samples): its score is NaN and the ``error`` column says why.
    **params
        Passed to every measure (e.g. ``k=10``, ``unbiased=True``).

    Returns
    -------
    pandas.DataFrame
        One row per ordered pair: ``a``, ``b``, ``measure``, ``score``
        (``calibrated``, ``null_mean``, ``null_std``, ``p_value`` when
        calibrated), ``error``.  ``attrs["spaces"]`` keeps the order of the
        spaces and ``attrs["kinds"]`` whether each measure is a similarity or
        a distance.

    See Also
    --------
    plot_similarity_matrix : heatmap of the result.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import similarity_matrix
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8))
    >>> spaces = {"x": X, "rotated": X @ np.linalg.qr(rng.normal(size=(8, 8)))[0],
    ...           "noise": rng.normal(size=(100, 4))}
    >>> res = similarity_matrix(spaces, ["linear_cka", "procrustes_distance"])
    >>> cell = res.set_index(["a", "b", "measure"])["score"]
    >>> [round(float(cell["x", "rotated", m]), 6) for m in ("linear_cka", "procrustes_distance")]
    [1.0, 0.0]
    """
    pd = _require("pandas", "similarity_matrix")
    from joblib import delayed

    if not isinstance(spaces, dict) or len(spaces) < 1:
        raise TypeError("spaces must be a non-empty dict {name: array}.")
    if errors not in ("raise", "record"):
        raise ValueError(f"errors={errors!r} must be 'raise' or 'record'.")
    if backend not in _BACKENDS:
        raise ValueError(f"backend={backend!r} is not supported; use None, 'joblib' or 'dask'.")
    measures = measure if isinstance(measure, (list, tuple)) else [measure]
    resolved = [_resolve(m) for m in measures]
    _check_same_samples(spaces, ids, paired=any(r[3] for r in resolved))
    names = list(spaces)
    values = {k: _values(v) for k, v in spaces.items()}
    tasks = []
    for name, func, kind, paired, symmetric in resolved:
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if not (symmetric and j < i):
                    tasks.append((a, b, name, func, symmetric))
    run = [delayed(_cell)(a, b, values[a], values[b], name, func, n_permutations,
                          random_state, params, errors) for a, b, name, func, _ in tasks]
    cells = _run_cells(run, backend, n_jobs, list(values.values()))
    rows = []
    for (a, b, _, _, symmetric), cell in zip(tasks, cells):
        rows.append(cell)
        if symmetric and a != b:
            rows.append({**cell, "a": b, "b": a})
    table = pd.DataFrame(rows)
    order = {n: i for i, n in enumerate(names)}
    mo = {r[0]: i for i, r in enumerate(resolved)}
    table = table.sort_values(
        ["measure", "a", "b"], key=lambda c: c.map(mo) if c.name == "measure" else c.map(order)
    ).reset_index(drop=True)
    cols = [c for c in ("a", "b", "measure", "score", "calibrated", "null_mean", "null_std",
                        "p_value", "error") if c in table.columns]
    table = table[cols]
    table.attrs["spaces"] = names
    table.attrs["kinds"] = {r[0]: r[2] for r in resolved}
    return table


def plot_similarity_matrix(results, *, value="score", measures=None, cmap="viridis",
                           fmt="{:.2f}", panel_size=3.2):
    """Annotated heatmaps of a :func:`similarity_matrix` result, one panel per measure.

    Drawn on a new :class:`matplotlib.figure.Figure` (no pyplot state):
    ``fig.savefig("similarity.png")``.  Each panel's color scale spans its
    own values; undefined cells show ``n/a``.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`similarity_matrix`.
    value : str, default="score"
        Column to draw (``"calibrated"``, ``"p_value"`` for calibrated tables).
    measures : sequence of str or None, default=None
        Which measures (panels); ``None``: all.
    cmap : str, default="viridis"
    fmt : str, default="{:.2f}"
    panel_size : float, default=3.2
        Inches per panel.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import plot_similarity_matrix, similarity_matrix
    >>> rng = np.random.default_rng(0)
    >>> spaces = {name: rng.normal(size=(50, 4)) for name in "abc"}
    >>> fig = plot_similarity_matrix(similarity_matrix(spaces, ["linear_cka", "svcca"]))
    >>> len(fig.axes)     # two panels, two color bars
    4
    """
    _require("matplotlib", "plot_similarity_matrix")
    from matplotlib.figure import Figure

    needed = {"a", "b", "measure", value}
    if not needed <= set(getattr(results, "columns", ())):
        raise ValueError(
            f"results must be a DataFrame from similarity_matrix with a {value!r} column."
        )
    names = list(results.attrs.get("spaces") or dict.fromkeys(results["a"]))
    available = list(dict.fromkeys(results["measure"]))
    measures = available if measures is None else list(measures)
    unknown = [m for m in measures if m not in available]
    if unknown or not measures:
        raise ValueError(f"measures={measures!r}: the results have measures {available}.")
    fig = Figure(figsize=(panel_size * len(measures) + 1.0, panel_size + 0.4),
                 layout="constrained")
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    for ax, m in zip(axes, measures):
        sub = results[results["measure"] == m]
        M = (sub.pivot(index="a", columns="b", values=value)
             .reindex(index=names, columns=names).to_numpy(dtype=float))
        finite = M[np.isfinite(M)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        image = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=lo, vmax=hi)
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                v = M[i, j]
                bright = np.isfinite(v) and (v - lo) > 0.6 * (hi - lo)
                ax.text(j, i, "n/a" if not np.isfinite(v) else fmt.format(v), ha="center",
                        va="center", fontsize=8,
                        color="black" if bright else "white" if np.isfinite(v) else "gray")
        ax.set_facecolor("0.92")
        kind = results.attrs.get("kinds", {}).get(m, "")
        ax.set_title(f"{m} ({kind})" if kind else m)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.8, label=value)
    return fig
