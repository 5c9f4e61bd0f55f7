"""Scale: chunking (``batch_size``, ``"auto"``), ``out=`` buffers, memmaps, chunk exactness."""

import tracemalloc

import numpy as np
import pytest
import sklearn
import torch
from numpy.testing import assert_array_equal

from sklearn_latent import (
    InverseRelativeProjector,
    ProcrustesTranslator,
    ProductInvarianceProjector,
    RelativeProjector,
    RelativeTranslator,
)
from sklearn_latent import _backend
from sklearn_latent._backend import MIN_CHUNK_ROWS, auto_batch_rows, check_batch_size, check_input
from sklearn_latent._testing import CASES

pytestmark = [
    pytest.mark.filterwarnings("ignore:The .* map is determined on only:UserWarning"),
]


def _data(n=90, d=12, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


def _fitted_cases(dtype=np.float64, n=90, d=12):
    """(id, fitted estimator, transform input) for every estimator of the test batteries."""
    X = _data(n, d, dtype=dtype)
    out = []
    for case in CASES:
        est = case.make()
        est.fit(*(a.astype(dtype) for a in case.fit_inputs(X.astype(np.float64))))
        Xt = np.ascontiguousarray(case.transform_input(est, X.astype(np.float64)), dtype=dtype)
        out.append((case.id, est, Xt))
    return out


class _ChunkSpy:
    """Records the number of rows of every chunk ``apply_batched`` hands to torch."""

    def __init__(self, monkeypatch):
        self.rows = []
        real = _backend.to_tensor

        def spy(X, device, dtype=None):
            self.rows.append(X.shape[0])
            return real(X, device, dtype)

        monkeypatch.setattr(_backend, "to_tensor", spy)


# --------------------------------------------------------------------------
# batch_size validation and "auto"
# --------------------------------------------------------------------------
def test_check_batch_size_auto():
    assert check_batch_size("auto") == "auto"
    for bad in ("Auto", "all", 1.5):
        with pytest.raises(TypeError, match="batch_size must be None, 'auto'"):
            check_batch_size(bad)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_estimator_validates_batch_size(case):
    X = _data()
    est = case.make().set_params(batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        est.fit(*case.fit_inputs(X))
    est = case.make().fit(*case.fit_inputs(X))
    Xt = case.transform_input(est, X)
    with pytest.raises(TypeError, match="batch_size"):
        est.set_params(batch_size="big").transform(Xt)


def test_auto_batch_rows_formula():
    # input row + copy + output row + temporary: 2 * itemsize * (d + k) bytes per row
    rows = 1024 * 2**20 // (8 * 1768)
    assert auto_batch_rows(768, 1000, 4, working_memory=1024) == rows - rows % MIN_CHUNK_ROWS
    assert auto_batch_rows(768, 1000, 8, n_rows=100, working_memory=1024) == 100
    # a budget below MIN_CHUNK_ROWS rows is not honoured
    assert auto_batch_rows(10**6, 10, 8, working_memory=1) == MIN_CHUNK_ROWS


def test_auto_follows_sklearn_working_memory(monkeypatch):
    X = _data(3000, 40, dtype=np.float32)
    est = RelativeProjector(60, batch_size="auto", random_state=0).fit(X)
    full = est.set_params(batch_size=None).transform(X)
    est.set_params(batch_size="auto")
    spy = _ChunkSpy(monkeypatch)
    # 2 * 4 bytes * (40 + 60) = 800 bytes per row; 327 rows, rounded down to 32s
    with sklearn.config_context(working_memory=0.25):
        R = est.transform(X)
    assert spy.rows[:-1] == [320] * (len(spy.rows) - 1)
    assert sum(spy.rows) == 3000
    assert_array_equal(R, full)
    spy.rows.clear()
    with sklearn.config_context(working_memory=1):
        est.transform(X)
    assert spy.rows == [1280, 1280, 440]  # 1310 rows fit, rounded down to 32s
    spy.rows.clear()
    est.transform(X)  # default budget (1024 MiB): one chunk
    assert spy.rows == [3000]


# --------------------------------------------------------------------------
# chunk exactness: transform(X) with any batch_size equals batch_size=None bitwise
# --------------------------------------------------------------------------
def _assert_chunk_equal(backend, got, full, msg):
    """Bitwise on the CPU; on CUDA cuBLAS picks kernels by shape, so to rounding."""
    got = backend.to_numpy(got)
    if backend.device.type == "cuda":
        tol = 1e-4 if got.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, full, rtol=tol, atol=tol * np.abs(full).max(),
                                   err_msg=msg)
    else:
        assert_array_equal(got, full, err_msg=msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunking_never_changes_results(backend, dtype):
    n = 90
    for cid, est, Xt in _fitted_cases(dtype, n=n):
        Xb = backend.asarray(Xt)
        full = backend.to_numpy(est.set_params(batch_size=None).transform(Xb))
        for b in (1, 7, n, n + 5, "auto"):
            got = est.set_params(batch_size=b).transform(Xb)
            assert backend.dtype_name(got) == np.dtype(dtype).name
            _assert_chunk_equal(backend, got, full, f"{cid} batch_size={b}")


def test_chunking_never_changes_inverse_transforms(backend):
    X = _data(70, 10)
    Y = X @ np.random.default_rng(1).normal(size=(10, 14)) + 2.0
    for est, inp in [
        (ProcrustesTranslator("scaled").fit(X, Y), Y),
        (RelativeProjector(30, random_state=0).fit(X), None),
    ]:
        inp = est.transform(X) if inp is None else inp
        Ib = backend.asarray(inp)
        full = backend.to_numpy(est.set_params(batch_size=None).inverse_transform(Ib))
        for b in (1, 7, 70, 75):
            got = est.set_params(batch_size=b).inverse_transform(Ib)
            _assert_chunk_equal(backend, got, full, f"batch_size={b}")


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot", "l1", "linf", "angular"])
def test_chunking_exact_at_gemm_sizes(metric):
    # Sizes where BLAS picks blocked GEMM kernels (and a GEMV for one row): the
    # 32-row padding of every chunk keeps each row's result independent of the chunk.
    X = _data(300, 256, dtype=np.float32)
    est = RelativeProjector(64, metric=metric, random_state=0).fit(X)
    full = est.transform(X)
    for b in (1, 2, 5, 11, 33, 299):
        assert_array_equal(est.set_params(batch_size=b).transform(X), full)


# --------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------
def _out_for(est, Xt, like):
    n_out = est.transform(Xt[:1]).shape[1]
    if isinstance(like, torch.Tensor):
        return torch.empty((Xt.shape[0], n_out), dtype=like.dtype, device=like.device)
    return np.empty((Xt.shape[0], n_out), dtype=like.dtype)


@pytest.mark.parametrize("batch_size", [None, 7, "auto"])
def test_out_writes_in_place(backend, batch_size):
    for cid, est, Xt in _fitted_cases(np.float32):
        est.set_params(batch_size=batch_size)
        Xb = backend.asarray(Xt)
        expected = backend.to_numpy(est.transform(Xb))
        buf = _out_for(est, Xt, Xb)
        got = est.transform(Xb, out=buf)
        assert got is buf, cid
        assert_array_equal(backend.to_numpy(buf), expected, err_msg=cid)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_out_errors(case):
    X = _data()
    est = case.make().fit(*case.fit_inputs(X))
    Xt = np.ascontiguousarray(case.transform_input(est, X))
    n, k = est.transform(Xt).shape
    with pytest.raises(ValueError, match=rf"out has shape \({n}, {k + 1}\); expected \({n}, {k}\)"):
        est.transform(Xt, out=np.empty((n, k + 1)))
    with pytest.raises(ValueError, match="out has dtype float32; expected float64"):
        est.transform(Xt, out=np.empty((n, k), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        est.transform(Xt, out=np.empty((k, n)).T)
    ro = np.empty((n, k))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        est.transform(Xt, out=ro)
    with pytest.raises(TypeError, match="out must be a numpy array"):
        est.transform(Xt, out=torch.empty(n, k, dtype=torch.float64))
    with pytest.raises(TypeError, match="out must be a torch.Tensor"):
        est.transform(torch.from_numpy(Xt), out=np.empty((n, k)))
    with pytest.raises(ValueError, match="out has dtype torch.float32"):
        est.transform(torch.from_numpy(Xt), out=torch.empty(n, k))
    with pytest.raises(ValueError, match="out must not require grad"):
        est.transform(torch.from_numpy(Xt),
                      out=torch.empty(n, k, dtype=torch.float64, requires_grad=True))
    # an output buffer that overlaps the input
    d = Xt.shape[1]
    buf = np.empty(n * (d + k))
    Xs = buf[: n * d].reshape(n, d)
    Xs[:] = Xt
    with pytest.raises(ValueError, match="shares memory with X"):
        est.transform(Xs, out=buf[n * d - 1 : n * (d + k) - 1].reshape(n, k))
    T = torch.from_numpy(buf)
    with pytest.raises(ValueError, match="shares memory with X"):
        est.transform(T[: n * d].view(n, d), out=T[n * d :].view(n, k))


def test_out_keeps_sklearn_wrappers_working():
    X = _data()
    est = RelativeProjector(5, random_state=0)
    assert_array_equal(est.fit_transform(X), est.fit(X).transform(X))
    est.set_output(transform="pandas")
    buf = np.empty((X.shape[0], 5))
    df = est.transform(X, out=buf)
    assert list(df.columns) == list(est.get_feature_names_out())
    assert_array_equal(df.to_numpy(), buf)


# --------------------------------------------------------------------------
# memmaps: nothing copies the whole input
# --------------------------------------------------------------------------
def test_check_input_does_not_copy_read_only_float32_memmap(tmp_path):
    X = _data(500, 16, dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    est = RelativeProjector(5, random_state=0).fit(X)
    checked = check_input(est, Xm, reset=False)
    assert np.shares_memory(checked, Xm) and checked.dtype == np.float32


@pytest.mark.parametrize("batch_size", [None, 1000])
def test_memmap_to_memmap_transform_copies_no_whole_input(tmp_path, monkeypatch, batch_size):
    # numpy allocations (np.empty, np.array copies, numpy inside scikit-learn's
    # validation) are traced by tracemalloc; torch's own allocations are not.
    # apply_batched hands torch nothing but chunks made by to_tensor from
    # row slices of the memmap (a read-only memmap is copied per chunk, by
    # numpy, so traced); the spy checks that torch never sees more rows than a
    # chunk.  Together: no copy of the whole input, numpy- or torch-side.
    n, d, k = 20000, 64, 40
    X = _data(n, d, dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    del X
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    est = RelativeProjector(k, normalize="standard", batch_size=batch_size,
                            random_state=0).fit(Xm[:2000])
    out = np.lib.format.open_memmap(tmp_path / "R.npy", mode="w+", dtype=np.float32,
                                    shape=(n, k))
    spy = _ChunkSpy(monkeypatch)
    with sklearn.config_context(working_memory=1):  # "auto" (used for None): 2 MiB / 832 B
        tracemalloc.start()
        try:
            got = est.transform(Xm, out=out)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert got is out
    input_bytes = n * d * 4
    assert peak < 0.15 * input_bytes, (peak, input_bytes)
    assert max(spy.rows) <= (1024 if batch_size else 2**20 // (8 * (d + k)))
    assert sum(spy.rows) == n
    out.flush()
    expected = est.set_params(batch_size=None).transform(np.load(tmp_path / "X.npy"))
    assert_array_equal(np.load(tmp_path / "R.npy"), expected)


def test_read_only_memmap_without_batch_size_is_chunked(tmp_path, monkeypatch):
    X = _data(4000, 32, dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    est = ProductInvarianceProjector(20, random_state=0).fit(X)
    expected = est.transform(X)  # writeable: shared with torch, one chunk
    spy = _ChunkSpy(monkeypatch)
    with sklearn.config_context(working_memory=0.5):
        R = est.transform(Xm)
    assert len(spy.rows) > 1 and sum(spy.rows) == 4000
    assert isinstance(R, np.ndarray) and not isinstance(R, np.memmap)
    assert_array_equal(R, expected)


@pytest.mark.parametrize("est", [
    InverseRelativeProjector(10, random_state=0), RelativeTranslator(10, random_state=0),
    ProcrustesTranslator("affine"),
], ids=["inverse", "relative-translator", "procrustes"])
def test_translators_transform_memmap_into_out(tmp_path, est):
    X = _data(300, 12, dtype=np.float32)
    Y = X @ _data(12, 9, seed=1, dtype=np.float32) + 1.0
    if isinstance(est, InverseRelativeProjector):
        est.fit(Y)
        X = RelativeProjector(anchors=est.anchors_).fit(Y).transform(Y)
    else:
        est.fit(X, Y)
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "Y.npy", mode="w+", dtype=np.float32,
                                    shape=(300, 9 if not isinstance(est, InverseRelativeProjector)
                                           else 9))
    assert est.set_params(batch_size=64).transform(Xm, out=out) is out
    assert_array_equal(np.asarray(out), est.set_params(batch_size=None).transform(X))


# --------------------------------------------------------------------------
# fit validates X once
# --------------------------------------------------------------------------
def test_fit_validates_x_once(monkeypatch):
    # resolve_anchors works on the validated X: no second finiteness pass per fit
    import sklearn_latent.anchors as anchors_mod
    import sklearn_latent.relative as relative_mod

    calls = []
    real = _backend.check_input

    def counting(est, X, **kw):
        calls.append(kw.get("input_name", "X"))
        return real(est, X, **kw)

    monkeypatch.setattr(anchors_mod, "check_input", counting)
    monkeypatch.setattr(relative_mod, "check_input", counting)
    for strategy in ("random", "fps", "kmeans"):
        calls.clear()
        RelativeProjector(5, anchors=strategy, random_state=0).fit(_data())
        assert calls == ["X"], strategy
    calls.clear()
    from sklearn_latent import select_anchors
    select_anchors(_data(), 5, "fps", random_state=0)  # the public function still validates
    assert calls == ["X"]
