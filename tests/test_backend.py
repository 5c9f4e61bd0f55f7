"""The array boundary (``sklearn_latent._backend``) seen through RelativeProjector and directly."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_latent import RelativeProjector
from sklearn_latent import functional as F
from sklearn_latent._backend import (
    apply_batched,
    atomic_fit,
    check_batch_size,
    check_input,
    check_option,
    fitted_tensor,
    np_dtype,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_dtype,
)

CUDA = torch.cuda.is_available()


def _data(n=60, d=7, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _reference(X, **params):
    """numpy float64 result that the other kinds must reproduce."""
    return RelativeProjector(**params).fit(X).transform(X)


# --------------------------------------------------------------------------
# output kind and dtype follow the input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "l1"])
def test_output_kind_follows_input(backend, metric):
    X = _data()
    Xb = backend.asarray(X)
    proj = RelativeProjector(8, metric=metric, random_state=0).fit(Xb)
    R = proj.transform(Xb)
    assert backend.is_kind(R)
    if backend.is_torch:
        assert R.device == Xb.device
    assert R.shape == (60, 8)
    assert_allclose(backend.to_numpy(R), _reference(X, n_anchors=8, metric=metric,
                                                    random_state=0), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_dtype_preserved(backend, dtype):
    Xb = backend.asarray(_data(), dtype=dtype)
    proj = RelativeProjector(8, normalize="standard", random_state=0).fit(Xb)
    R = proj.transform(Xb)
    assert backend.dtype_name(R) == dtype
    assert proj.anchors_.dtype == np.dtype(dtype)
    assert backend.dtype_name(proj.fit_transform(Xb)) == dtype


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "float16"])
def test_other_dtypes_become_float64(backend, dtype):
    X = _data() * 3
    # a bool cast of X would be all True: equal anchors, which centered cosine refuses
    Xc = (X > 0) if np.dtype(dtype) == np.bool_ else X.astype(dtype)
    proj = RelativeProjector(8, random_state=0).fit(backend.asarray(Xc))
    R = proj.transform(backend.asarray(Xc))
    assert backend.dtype_name(R) == "float64"
    assert proj.anchors_.dtype == np.float64
    expected = _reference(Xc.astype(np.float64), n_anchors=8, random_state=0)
    assert_allclose(backend.to_numpy(R), expected, rtol=1e-12, atol=1e-12)


def test_float32_and_float64_agree(backend):
    X = _data()
    R32 = RelativeProjector(8, random_state=0).fit_transform(backend.asarray(X, "float32"))
    R64 = RelativeProjector(8, random_state=0).fit_transform(backend.asarray(X))
    assert_allclose(backend.to_numpy(R32), backend.to_numpy(R64), atol=1e-5)


def test_tensor_requiring_grad_is_accepted_and_detached():
    X = torch.tensor(_data(), requires_grad=True)
    R = RelativeProjector(5, random_state=0).fit(X).transform(X)
    assert not R.requires_grad
    assert X.grad is None


# --------------------------------------------------------------------------
# pandas
# --------------------------------------------------------------------------
def test_dataframe_input_and_pandas_output():
    pd = pytest.importorskip("pandas")
    X = _data()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    proj = RelativeProjector(6, random_state=0).fit(df)
    assert_array_equal(proj.feature_names_in_, df.columns.to_numpy())
    assert_allclose(proj.transform(df), _reference(X, n_anchors=6, random_state=0))

    proj.set_output(transform="pandas")
    out = proj.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(proj.get_feature_names_out())
    assert list(out.columns) == [f"cosine_a{j}" for j in range(6)]
    assert_array_equal(out.index, df.index)
    assert_allclose(out.to_numpy(), _reference(X, n_anchors=6, random_state=0))

    fitted = RelativeProjector(4, metric="l1", random_state=0).set_output(transform="pandas")
    out = fitted.fit_transform(df)
    assert list(out.columns) == [f"l1_a{j}" for j in range(4)]


def test_dataframe_with_other_column_names_fails():
    pd = pytest.importorskip("pandas")
    X = _data()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    proj = RelativeProjector(6, random_state=0).fit(df)
    renamed = df.rename(columns={"f0": "other"})
    with pytest.raises(ValueError, match="feature names"):
        proj.transform(renamed)


# --------------------------------------------------------------------------
# memory layouts
# --------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("normalize", [None, "standard"])
def test_read_only_memmap(tmp_path, batch_size, normalize):
    X = _data()
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    assert not Xm.flags.writeable
    proj = RelativeProjector(8, normalize=normalize, batch_size=batch_size, random_state=0)
    R = proj.fit(Xm).transform(Xm)
    expected = _reference(X, n_anchors=8, normalize=normalize, random_state=0)
    assert_allclose(R, expected, rtol=1e-12, atol=1e-12)
    assert_array_equal(np.load(path), X)  # file untouched
    assert isinstance(R, np.ndarray) and R.flags.writeable
    # the fitted anchors are not a view into the read-only map
    assert not np.shares_memory(proj.anchors_, Xm)


def test_input_is_never_modified(backend):
    X = _data()
    Xb = backend.asarray(X)
    for params in [{}, {"metric": "euclidean", "center": False}, {"metric": "dot"},
                   {"normalize": "layer", "top_k": 3, "exponent": 2.0}]:
        proj = RelativeProjector(8, random_state=0, **params).fit(Xb)
        proj.transform(Xb)
        proj.set_params(batch_size=7).transform(Xb)
        assert_array_equal(backend.to_numpy(Xb), X)


@pytest.mark.parametrize(
    "layout",
    ["fortran", "column_slice", "row_slice", "reversed_rows", "reversed_columns", "transposed"],
)
def test_memory_layouts(layout):
    X = _data(n=80, d=14)
    if layout == "fortran":
        Xl = np.asfortranarray(X)
    elif layout == "column_slice":
        Xl = np.ascontiguousarray(np.repeat(X, 2, axis=1))[:, ::2]
    elif layout == "row_slice":
        Xl = np.ascontiguousarray(np.repeat(X, 2, axis=0))[::2]
    elif layout == "reversed_rows":
        Xl = np.ascontiguousarray(X[::-1])[::-1]
    elif layout == "reversed_columns":
        Xl = np.ascontiguousarray(X[:, ::-1])[:, ::-1]
    else:
        Xl = np.ascontiguousarray(X.T).T
    assert_array_equal(Xl, X)
    assert not Xl.flags.c_contiguous
    for batch_size in (None, 9):
        for normalize in (None, "standard"):
            proj = RelativeProjector(10, normalize=normalize, batch_size=batch_size,
                                     random_state=0)
            expected = _reference(X, n_anchors=10, normalize=normalize, random_state=0)
            assert_allclose(proj.fit(Xl).transform(Xl), expected, rtol=1e-12, atol=1e-12)
            assert_allclose(proj.fit_transform(Xl), expected, rtol=1e-12, atol=1e-12)


def test_non_contiguous_tensor():
    X = _data(n=80, d=14)
    T = torch.from_numpy(np.ascontiguousarray(X.T)).T
    assert not T.is_contiguous()
    R = RelativeProjector(10, random_state=0).fit(T).transform(T[::1])
    assert_allclose(R.numpy(), _reference(X, n_anchors=10, random_state=0), atol=1e-12)


# --------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------
@pytest.mark.parametrize("device", [None, "auto", "cpu", torch.device("cpu")])
def test_devices_accepted(backend, device):
    # wherever it computes, the result comes back in the input's kind
    X = _data()
    Xb = backend.asarray(X)
    proj = RelativeProjector(8, device=device, random_state=0).fit(Xb)
    R = proj.transform(Xb)
    assert backend.is_kind(R)
    assert isinstance(proj.anchors_, np.ndarray)
    assert_allclose(backend.to_numpy(R), _reference(X, n_anchors=8, random_state=0),
                    atol=1e-10)


def test_resolve_device():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(None, np.zeros((2, 2))) == torch.device("cpu")
    assert resolve_device(None, torch.zeros(2, 2)) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if CUDA else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(CUDA, reason="checks the message given when CUDA is absent")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_cuda_is_a_clear_error(device):
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(device)
    proj = RelativeProjector(5, device=device)
    with pytest.raises(ValueError, match="CUDA is not available"):
        proj.fit(_data())
    assert not hasattr(proj, "anchors_")


@pytest.mark.parametrize("device", ["gpu", "tpu:0", "cuda:x", "", 3.5])
def test_bad_device_is_a_value_error(device):
    with pytest.raises(ValueError, match="device="):
        resolve_device(device)
    with pytest.raises(ValueError, match="device="):
        RelativeProjector(5, device=device).fit(_data())


@pytest.mark.cuda
def test_numpy_computed_on_cuda_comes_back_as_numpy():
    X = _data()
    proj = RelativeProjector(8, device="cuda", random_state=0).fit(X)
    R = proj.transform(X)
    assert isinstance(R, np.ndarray)
    assert isinstance(proj.anchors_, np.ndarray)
    assert_allclose(R, _reference(X, n_anchors=8, random_state=0), atol=1e-10)
    # a CPU tensor computed on CUDA comes back on the CPU
    Rt = proj.transform(torch.from_numpy(X))
    assert Rt.device.type == "cpu"
    assert_allclose(Rt.numpy(), R, atol=1e-12)
    # a CUDA tensor computed on the CPU comes back on CUDA
    Rc = proj.set_params(device="cpu").transform(torch.from_numpy(X).cuda())
    assert Rc.device.type == "cuda"
    assert_allclose(Rc.cpu().numpy(), R, atol=1e-10)


# --------------------------------------------------------------------------
# parameter helpers
# --------------------------------------------------------------------------
def test_check_option():
    assert check_option("a", "p", ("a", "b")) == "a"
    assert check_option(None, "p", (None, "a")) is None
    with pytest.raises(ValueError, match=r"p='c' is not supported; expected one of 'a', 'b'"):
        check_option("c", "p", ("a", "b"))
    with pytest.raises(ValueError, match="p=None"):
        check_option(None, "p", ("a", "b"))
    with pytest.raises(ValueError, match="p=3"):
        check_option(3, "p", ("a", "b"))


def test_check_batch_size():
    assert check_batch_size(None) is None
    assert check_batch_size(5) == 5
    assert check_batch_size(np.int64(5)) == 5
    with pytest.raises(ValueError, match="batch_size"):
        check_batch_size(0)
    with pytest.raises(ValueError, match="batch_size"):
        check_batch_size(-2)
    for bad in (2.0, True, "3"):
        with pytest.raises(TypeError, match="batch_size"):
            check_batch_size(bad)


def test_dtype_helpers():
    assert np_dtype(torch.float32) is np.float32
    assert np_dtype(np.float32) is np.float32
    assert np_dtype(torch.float64) is np.float64
    assert torch_dtype(np.zeros((1, 1), np.float32)) == torch.float32
    assert torch_dtype(np.zeros((1, 1))) == torch.float64
    assert torch_dtype(torch.zeros(1, 1, dtype=torch.float32)) == torch.float32
    T = torch.arange(6.0).reshape(2, 3)
    A = to_numpy(T)
    assert isinstance(A, np.ndarray) and A.shape == (2, 3)
    assert_array_equal(to_tensor(A, torch.device("cpu")).numpy(), A)
    assert to_tensor(A, torch.device("cpu"), torch.float32).dtype == torch.float32


def test_to_tensor_shares_writable_and_copies_read_only():
    A = np.arange(12.0).reshape(3, 4)
    assert np.shares_memory(to_tensor(A, torch.device("cpu")).numpy(), A)
    A.flags.writeable = False
    T = to_tensor(A, torch.device("cpu"))
    assert not np.shares_memory(T.numpy(), A)
    assert_array_equal(T.numpy(), A)
    # torch cannot wrap negative strides: reversed views are copied
    for view in (A[::-1], A[:, ::-1], np.asfortranarray(A)[::-1, ::-2]):
        assert_array_equal(to_tensor(view, torch.device("cpu")).numpy(), view)


def test_check_input_without_estimator(backend):
    X = backend.asarray(_data())
    out = check_input(None, X, reset=False)
    assert backend.is_kind(out)
    with pytest.raises(ValueError, match="minimum of 3"):
        check_input(None, X[:2], reset=False, ensure_min_samples=3)


# --------------------------------------------------------------------------
# apply_batched
# --------------------------------------------------------------------------
def _rowwise(T):
    """A row-wise function whose result for a row does not depend on the chunk."""
    return torch.cat([torch.sin(T) * 2.0 + T * T, T[:, :1].exp()], dim=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_apply_batched_chunks_equal_unchunked_exactly(backend, dtype):
    n, d = 23, 5
    X = backend.asarray(_data(n, d), dtype=dtype)
    dev = X.device if backend.is_torch else torch.device("cpu")
    full = apply_batched(_rowwise, X, device=dev, n_outputs=d + 1)
    assert backend.is_kind(full)
    assert backend.dtype_name(full) == dtype
    assert full.shape == (n, d + 1)
    for batch_size in (1, 7, n, n + 5):
        out = apply_batched(_rowwise, X, device=dev, n_outputs=d + 1, batch_size=batch_size)
        assert backend.is_kind(out)
        assert backend.dtype_name(out) == dtype
        assert_array_equal(backend.to_numpy(out), backend.to_numpy(full))


@pytest.mark.parametrize("metric", ["l1", "linf", "lp"])
def test_transform_batched_equals_unchunked_exactly(backend, metric):
    # cdist-based metrics: each entry is computed independently of the chunk
    X = backend.asarray(_data(n=41, d=6))
    proj = RelativeProjector(9, metric=metric, p=3.0, random_state=0).fit(X)
    full = backend.to_numpy(proj.transform(X))
    for batch_size in (1, 7, 41, 46):
        out = proj.set_params(batch_size=batch_size).transform(X)
        assert backend.is_kind(out)
        assert_array_equal(backend.to_numpy(out), full)


@pytest.mark.parametrize(
    "metric,normalize,atol",
    [("cosine", None, 1e-14), ("dot", None, 1e-13), ("euclidean", None, 1e-6),
     ("l1", "layer", 1e-14), ("cosine", "standard", 1e-13)],
)
def test_transform_batched_matches_unchunked_to_rounding(backend, metric, normalize, atol):
    # Matrix products (cosine, dot, euclidean) and row reductions (layer) may be
    # blocked or vectorized differently for a different number of rows, so the
    # results agree to rounding (euclidean near 0 distance amplifies it through
    # the square root), not bitwise.
    X = backend.asarray(_data(n=41, d=6))
    proj = RelativeProjector(9, metric=metric, normalize=normalize, random_state=0).fit(X)
    full = backend.to_numpy(proj.transform(X))
    for batch_size in (1, 7, 41, 46):
        out = proj.set_params(batch_size=batch_size).transform(X)
        assert backend.is_kind(out)
        assert_allclose(backend.to_numpy(out), full, rtol=0, atol=atol)


# --------------------------------------------------------------------------
# fitted_tensor
# --------------------------------------------------------------------------
def test_fitted_tensor_zero_copy_on_cpu():
    proj = RelativeProjector(6, random_state=0).fit(_data())
    T = fitted_tensor(proj, "anchors_", torch.device("cpu"), torch.float64)
    assert T.dtype == torch.float64
    assert np.shares_memory(T.numpy(), proj.anchors_)


def test_fitted_tensor_cache_is_private_and_not_pickled():
    X = _data()
    proj = RelativeProjector(6, random_state=0).fit(X)
    before = set(vars(proj))
    R64 = proj.transform(X)
    R32 = proj.transform(X.astype(np.float32))
    T32 = fitted_tensor(proj, "anchors_", torch.device("cpu"), torch.float32)
    assert T32.dtype == torch.float32
    assert not np.shares_memory(T32.numpy(), proj.anchors_)
    assert_allclose(T32.numpy(), proj.anchors_, rtol=1e-6)
    # the converted copy is cached (same object) ...
    assert fitted_tensor(proj, "anchors_", torch.device("cpu"), torch.float32) is T32
    # ... but outside the estimator: nothing new in __dict__, nothing in the pickle
    assert set(vars(proj)) == before
    assert all(not isinstance(v, torch.Tensor) for v in vars(proj).values())
    blob = pickle.dumps(proj)
    assert b"torch" not in blob
    loaded = pickle.loads(blob)
    assert_array_equal(loaded.transform(X), R64)
    assert_array_equal(loaded.transform(X.astype(np.float32)), R32)


def test_fitted_tensor_cache_follows_refit():
    X = _data()
    proj = RelativeProjector(6, random_state=0).fit(X)
    first = fitted_tensor(proj, "anchors_", torch.device("cpu"), torch.float32).clone()
    proj.set_params(random_state=1).fit(X)
    second = fitted_tensor(proj, "anchors_", torch.device("cpu"), torch.float32)
    assert_allclose(second.numpy(), proj.anchors_.astype(np.float32))
    assert not np.array_equal(first.numpy(), second.numpy())
    R = proj.transform(X.astype(np.float32))
    expected = RelativeProjector(6, random_state=1).fit(X).transform(X.astype(np.float32))
    assert_array_equal(R, expected)


@pytest.mark.cuda
def test_fitted_tensor_on_cuda_is_cached():
    proj = RelativeProjector(6, random_state=0).fit(_data())
    T = fitted_tensor(proj, "anchors_", torch.device("cuda"), torch.float64)
    assert T.device.type == "cuda"
    assert fitted_tensor(proj, "anchors_", torch.device("cuda"), torch.float64) is T
    assert isinstance(pickle.loads(pickle.dumps(proj)).anchors_, np.ndarray)


# --------------------------------------------------------------------------
# atomic_fit
# --------------------------------------------------------------------------
class _Toy:
    def __init__(self):
        self.param = 1

    @atomic_fit
    def fit(self, fail):
        self.coef_ = np.arange(3) if not hasattr(self, "coef_") else self.coef_ + 10
        self.param = 2
        if fail:
            del self.param
            self.extra_ = "half"
            raise RuntimeError("boom")
        return self


def test_atomic_fit_restores_state_after_failure():
    toy = _Toy()
    with pytest.raises(RuntimeError, match="boom"):
        toy.fit(True)
    assert vars(toy) == {"param": 1}

    toy.fit(False)
    coef = toy.coef_
    with pytest.raises(RuntimeError, match="boom"):
        toy.fit(True)
    assert set(vars(toy)) == {"param", "coef_"}
    assert toy.coef_ is coef and toy.param == 2
    assert_array_equal(toy.coef_, np.arange(3))


def test_atomic_fit_keeps_wrapped_name():
    assert _Toy.fit.__name__ == "fit"
    assert RelativeProjector.fit.__name__ == "fit"
    assert "anchors" in RelativeProjector.fit.__doc__
