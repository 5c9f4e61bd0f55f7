"""Robustness battery: extreme magnitudes, hostile inputs, determinism, threads, memory."""

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from joblib import Parallel, delayed

from sklearn_latent import (
    InverseRelativeProjector,
    ProcrustesTranslator,
    ProductInvarianceProjector,
    RelativeProjector,
    select_anchors,
)
from sklearn_latent import functional as F
from sklearn_latent._testing import CASES, assert_same_state, snapshot

# Degenerate anchors (rank-deficient, constant features, all equal) make translators and
# inverse projectors warn, as designed.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The .* map is determined on only:UserWarning"),
    pytest.mark.filterwarnings("ignore:all anchors coincide:UserWarning"),
]

# Powers of two (~1e+-30): scaling by them is exact, so results must scale exactly.
HUGE, TINY = 2.0**100, 2.0**-100
DEGREE = {"cosine": 0, "angular": 0, "dot": 2, "euclidean": 1, "l1": 1, "linf": 1, "lp": 1}


def _scales(dtype):
    """Huge and tiny scales: ~1e+-30 in float32, ~1e+-180 in float64 (squares overflow)."""
    return (HUGE, TINY) if dtype == torch.float32 else (2.0**600, 2.0**-600)


# --------------------------------------------------------------------------
# extreme magnitudes: regression tests of the kernel fixes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("metric", F.METRICS)
def test_pairwise_scales_exactly_at_extreme_magnitudes(metric, dtype):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(30, 6, generator=gen, dtype=torch.float64).to(dtype)
    A = torch.randn(5, 6, generator=gen, dtype=torch.float64).to(dtype)
    ref = F.pairwise(X, A, metric, p=3.0).to(torch.float64)
    info = torch.finfo(dtype)
    for s in _scales(dtype):
        out = F.pairwise(X * s, A * s, metric, p=3.0)
        expected = ref
        for _ in range(DEGREE[metric]):
            expected = expected * s
        if expected.abs().max() > info.max or expected.abs().max() < info.tiny:
            continue  # dot products beyond the dtype's range: nothing to compare
        assert torch.isfinite(out).all(), (metric, s)
        torch.testing.assert_close(out.to(torch.float64), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_safe_normalize_and_layer_normalize_at_extreme_magnitudes(dtype):
    X = torch.randn(20, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    X = X.to(dtype)
    for s in _scales(dtype):
        torch.testing.assert_close(F._safe_normalize(X * s), F._safe_normalize(X))
        torch.testing.assert_close(F.layer_normalize(X * s), F.layer_normalize(X))
        torch.testing.assert_close(F._row_norms(X * s) / s, F._row_norms(X))
    zeros = torch.zeros(2, 3, dtype=dtype)
    assert torch.equal(F._safe_normalize(zeros), zeros)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "params",
    [
        dict(metric="cosine"),
        dict(metric="angular", center=False),
        dict(metric="euclidean", normalize="standard"),
        dict(metric="l1", normalize="layer", anchors="fps"),
        dict(metric="linf", anchors="kmeans"),
        dict(metric="lp", p=3.0, normalize="l2"),
        dict(metric="dot", normalize="l2"),
        dict(metric="cosine", top_k=3, exponent=2.0, normalize="standard"),
    ],
    ids=lambda p: "-".join(f"{v}" for v in p.values()),
)
def test_relative_projector_scales_exactly_at_extreme_magnitudes(params, dtype):
    X = np.random.default_rng(2).normal(size=(40, 5)).astype(dtype)
    ref = RelativeProjector(6, random_state=0, **params).fit(X)
    R = ref.transform(X)
    degree = DEGREE[params["metric"]] if params.get("normalize") is None else 0
    for s in _scales(torch.float32 if dtype == np.float32 else torch.float64):
        est = RelativeProjector(6, random_state=0, **params).fit(X * dtype(s))
        np.testing.assert_array_equal(est.anchor_indices_, ref.anchor_indices_)
        out = est.transform(X * dtype(s))
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out / s**degree, R, rtol=2e-5, atol=1e-6)
        # inverse_transform and the stored mean norm scale with the data
        if params["metric"] == "cosine" and params.get("top_k") is None:
            assert est.mean_anchor_norm_ == pytest.approx(ref.mean_anchor_norm_ * s, rel=1e-6)
            np.testing.assert_allclose(
                est.inverse_transform(out) / s, ref.inverse_transform(R), rtol=1e-4, atol=1e-5
            )


@pytest.mark.parametrize("method", ["fps", "kmeans"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_select_anchors_same_rows_at_extreme_magnitudes(method, dtype):
    X = np.random.default_rng(3).normal(size=(200, 4)).astype(dtype)
    ref = select_anchors(X, 12, method, random_state=0)
    for s in _scales(torch.float32 if dtype == np.float32 else torch.float64):
        np.testing.assert_array_equal(select_anchors(X * dtype(s), 12, method, random_state=0), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unrepresentable_results_raise_instead_of_inf(dtype):
    # dot products of |x| ~ 1e30 are ~1e60: beyond float32 (and 1e180 beyond float64).
    s = HUGE if dtype == np.float32 else 2.0**600
    X = np.random.default_rng(4).normal(size=(30, 4)).astype(dtype) * dtype(s)
    est = RelativeProjector(5, metric="dot", random_state=0)
    with pytest.raises(ValueError, match=f"overflows {np.dtype(dtype).name}"):
        est.fit(X).transform(X)
    with pytest.raises(ValueError, match="overflows"):
        RelativeProjector(5, metric="dot", normalize="standard", random_state=0).fit(X)
    # row-wise normalizations do not need the product itself: they still work
    out = RelativeProjector(5, metric="dot", normalize="l2", random_state=0).fit(X).transform(X)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("s", [2.0**600, 2.0**-600])
def test_procrustes_refuses_magnitudes_its_statistics_cannot_hold(s):
    # float64 sums of squares of |x| ~ 1e180 overflow (1e-180: underflow); the
    # SVD then failed with torch's LinAlgError instead of a clear ValueError.
    X = np.random.default_rng(5).normal(size=(30, 4))
    Y = X @ np.random.default_rng(6).normal(size=(4, 3))
    for fit in (ProcrustesTranslator().fit, ProcrustesTranslator("affine").partial_fit):
        with pytest.raises(ValueError, match="magnitude"):
            fit(X * s, Y)
        with pytest.raises(ValueError, match="magnitude"):
            fit(X, Y * s)
    est = ProcrustesTranslator().fit(X * 2.0**400, Y * 2.0**-400)  # inside the range
    assert np.isfinite(est.transform(X * 2.0**400)).all()


@pytest.mark.parametrize("s", [2.0**600, 2.0**-600])
def test_inverse_projector_at_extreme_magnitudes(s):
    # mean_anchor_norm_ was a float64 vector_norm: inf for anchors at ~1e180 (the
    # outputs then inf/NaN), 0 at ~1e-180 (every output collapsed onto the mean).
    Y = np.random.default_rng(7).normal(size=(40, 5))
    ref = InverseRelativeProjector(6, random_state=0).fit(Y)
    est = InverseRelativeProjector(6, random_state=0).fit(Y * s)
    assert est.mean_anchor_norm_ == pytest.approx(ref.mean_anchor_norm_ * s, rel=1e-12)
    R = RelativeProjector(anchors=ref.anchors_).fit(Y).transform(Y)
    np.testing.assert_allclose(est.transform(R) / s, ref.transform(R), rtol=1e-10)


@pytest.mark.parametrize("normalize", [None, "standard", "l2", "layer"])
def test_product_projector_dot_beyond_float32(normalize):
    # dot products of float32 data at ~1e30 are ~1e60: inf was returned silently.
    X = np.random.default_rng(8).normal(size=(30, 4)).astype(np.float32)

    def make():
        return ProductInvarianceProjector(
            4, metrics=("cosine", "dot"), normalize=normalize, random_state=0
        )

    if normalize in (None, "standard"):
        with pytest.raises(ValueError, match="overflows float32"):
            make().fit(X * HUGE).transform(X * HUGE)
    else:  # per-row normalizations do not need the product itself
        out = make().fit(X * HUGE).transform(X * HUGE)
        np.testing.assert_allclose(out, make().fit(X).transform(X), rtol=1e-5, atol=1e-6)


# ==========================================================================
# the battery: every estimator configuration of sklearn_latent._testing.CASES
# ==========================================================================


BATTERY = settings(
    max_examples=30, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DTYPES = ("float16", "float32", "float64", "int8", "int64", "uint8", "bool")
LAYOUTS = ("C", "F", "strided", "reversed", "memmap", "tensor", "tensor-strided")
KINDS = ("normal", "offset", "constant-columns", "duplicated-rows", "rank-deficient",
         "all-equal", "zeros", "zero-rows")
SCALES = (1.0, 1e30, 1e-30, HUGE, TINY, 1e200, 1e-200, 1e300, 1e-300)
TIME_LIMIT = 30  # seconds per call: anything slower is a hang


@contextmanager
def time_limit(seconds=TIME_LIMIT):
    """Fail a call that runs longer than ``seconds`` (POSIX main thread only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise TimeoutError(f"call took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def base_matrix(kind, n, d, rng):
    X = rng.normal(size=(n, d))
    if kind == "offset":
        X = X + 1e4
    elif kind == "constant-columns":
        X[:, ::2] = 3.0
    elif kind == "duplicated-rows":
        X = X[rng.integers(0, max(1, n // 3), size=n)]
    elif kind == "rank-deficient":
        X = rng.normal(size=(n, 1)) @ rng.normal(size=(1, d))
    elif kind == "all-equal":
        X = np.repeat(X[:1], n, axis=0)
    elif kind == "zeros":
        X = np.zeros((n, d))
    elif kind == "zero-rows":
        X[rng.random(n) < 0.5] = 0.0
    return X


def cast(X, dtype, scale):
    if dtype == "bool":
        return X > 0
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        hi = min(float(info.max), 2.0**53)
        values = np.rint(X * min(max(scale, 1.0), 1e15))
        return np.clip(values, max(info.min, -hi), hi).astype(dtype)
    with np.errstate(over="ignore", under="ignore"):
        return (X * scale).astype(dtype)


_MEMMAPS = itertools.count()


def lay_out(A, layout, folder):
    if layout == "C":
        return np.ascontiguousarray(A)
    if layout == "F":
        return np.asfortranarray(A)
    if layout == "strided":
        big = np.zeros((2 * A.shape[0], 3 * A.shape[1]), dtype=A.dtype)
        big[::2, ::3] = A
        return big[::2, ::3]
    if layout == "reversed":
        return np.ascontiguousarray(A[::-1, ::-1])[::-1, ::-1]
    if layout == "memmap":
        path = os.path.join(folder, f"m{next(_MEMMAPS)}.npy")
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=A.dtype, shape=A.shape)
        mm[...] = A
        mm.flush()
        del mm
        return np.load(path, mmap_mode="r")
    if layout == "tensor":
        return torch.from_numpy(np.ascontiguousarray(A))
    return torch.from_numpy(np.ascontiguousarray(A.T)).T  # tensor-strided


@st.composite
def hostile(draw):
    """A recipe for hostile arrays (kept as a dict so failures print it)."""
    return dict(
        n=draw(st.integers(1, 20)),
        seed=draw(st.integers(0, 2**31 - 1)),
        kind=draw(st.sampled_from(KINDS)),
        scale=draw(st.sampled_from(SCALES)),
        dtype=draw(st.sampled_from(DTYPES)),
        layout=draw(st.sampled_from(LAYOUTS)),
    )


def build(recipe, d, derive, folder):
    base = base_matrix(recipe["kind"], recipe["n"], d, np.random.default_rng(recipe["seed"]))
    arrays = [cast(A, recipe["dtype"], recipe["scale"]) for A in derive(base)]
    return arrays, [lay_out(A, recipe["layout"], folder) for A in arrays]


def may_fail(case, raw_arrays, n, *, fitting):
    """Why a ValueError is acceptable for these inputs (None: it must succeed)."""
    if fitting and n < case.min_samples:
        return "too few samples"
    if fitting and case.rejects_constant and any(
        len(np.unique(A, axis=0)) < len(A) for A in raw_arrays
    ):
        return "identical rows"
    if fitting and case.magnitude_limit is not None:
        for A in raw_arrays:
            m = np.abs(A.astype(np.float64)).max() if A.size else 0.0
            if m > case.magnitude_limit or 0 < m < 1 / case.magnitude_limit:
                return "magnitude outside the estimator's documented range"
    for A in raw_arrays:
        if A.dtype.kind == "f" and not np.isfinite(A).all():
            return "the cast made inf"
    for A in raw_arrays:
        dtype = np.float32 if A.dtype == np.float32 else np.float64
        limit = (np.finfo(dtype).max / 1e6) ** (1.0 / case.overflow_degree)
        if A.size and np.abs(A.astype(np.float64)).max() > limit:
            return "intermediates overflow"
    return None


def check_output(out, X, n, width):
    is_tensor = isinstance(X, torch.Tensor)
    assert isinstance(out, torch.Tensor if is_tensor else np.ndarray), type(out)
    expected = np.float32 if X.dtype in (np.float32, torch.float32) else np.float64
    got = out.dtype if not is_tensor else (np.float32 if out.dtype == torch.float32 else np.float64)
    assert got == expected, (X.dtype, out.dtype)
    arr = out.numpy() if is_tensor else out
    assert arr.shape == (n, width), (arr.shape, (n, width))
    assert np.isfinite(arr).all(), "non-finite output"


def call(method, *args):
    with time_limit():
        return method(*args)


def clean_fit_inputs(case, n=30, d=5, seed=0, dtype=np.float64):
    X = np.random.default_rng(seed).normal(size=(n, d))
    return [A.astype(dtype) for A in case.fit_inputs(X)]


_FITTED = {}


def fitted(case, dtype):
    key = (case.id, np.dtype(dtype).name)
    if key not in _FITTED:
        _FITTED[key] = case.make().fit(*clean_fit_inputs(case, dtype=dtype))
    return _FITTED[key]


@pytest.fixture(scope="module")
def memmap_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("memmaps"))


# sklearn's finiteness check sums inf and -inf (numpy warns before the ValueError)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=str)
@BATTERY
@given(recipe=hostile(), d=st.integers(1, 6))
def test_fit_on_hostile_input(case, recipe, d, memmap_dir):
    """fit: finite output of the right shape, or a ValueError and the previous fit intact."""
    est = case.make().fit(*clean_fit_inputs(case, d=d))
    before = snapshot(est)
    raw, arrays = build(recipe, d, case.fit_inputs, memmap_dir)
    reason = may_fail(case, raw, recipe["n"], fitting=True)
    try:
        call(est.fit, *arrays)
    except ValueError as exc:
        assert reason is not None, f"fit raised for valid input {recipe}: {exc}"
        assert str(exc)
        assert_same_state(vars(est), before)
        return
    clean = case.transform_input(est, np.asarray(raw[0], dtype=np.float64))
    ref_width = est.transform(clean).shape[1]
    fitted = snapshot(est)
    try:
        X = case.transform_input(est, arrays[0])
        out = call(est.transform, X)
    except ValueError as exc:
        assert reason is not None, f"transform raised after fit on {recipe}: {exc}"
        assert_same_state(vars(est), fitted)
        return
    check_output(out, X, recipe["n"], ref_width)
    assert_same_state(vars(est), fitted)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=str)
@BATTERY
@given(recipe=hostile(), fit_dtype=st.sampled_from([np.float32, np.float64]))
def test_transform_of_hostile_input(case, recipe, fit_dtype, memmap_dir):
    """transform: finite output of the right shape, or a ValueError; never a state change."""
    est = fitted(case, fit_dtype)  # shared by the examples: each checks it is unchanged
    width = case.transform_width(est)
    raw, (X,) = build(recipe, width, lambda B: (B,), memmap_dir)
    ref_width = est.transform(np.zeros((1, width))).shape[1]
    before = snapshot(est)
    reason = may_fail(case, raw, recipe["n"], fitting=False)
    try:
        out = call(est.transform, X)
    except ValueError as exc:
        assert reason is not None, f"transform raised for valid input {recipe}: {exc}"
        assert str(exc)
    else:
        check_output(out, X, recipe["n"], ref_width)
    assert_same_state(vars(est), before)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_wrong_width_and_bad_values_raise_clearly(case):
    est = case.make().fit(*clean_fit_inputs(case))
    before = snapshot(est)
    width = case.transform_width(est)
    bad = [np.ones((3, width + 1)), np.ones((0, width)), np.ones(width),
           np.full((3, width), np.nan), np.full((3, width), np.inf)]
    for X in bad + [torch.from_numpy(b) for b in bad]:
        with pytest.raises(ValueError):
            call(est.transform, X)
        assert_same_state(vars(est), before)
    for X in [np.full((3, width), "a"), np.ones((3, width), dtype=complex)]:
        with pytest.raises((ValueError, TypeError)):
            call(est.transform, X)
        assert_same_state(vars(est), before)


@pytest.mark.parametrize("case", [c for c in CASES if c.scale_degree is not None], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_scale_with_the_data(case, dtype):
    """fit and transform at ~1e+-30 (float32) / ~1e+-180 (float64) give the scaled result."""
    fit_args = clean_fit_inputs(case, n=40, dtype=dtype)
    est = case.make().fit(*fit_args)
    ref = est.transform(case.transform_input(est, fit_args[0])).astype(np.float64)
    info = np.finfo(dtype)
    for s in _scales(torch.float32 if dtype == np.float32 else torch.float64):
        scaled = [A * dtype(s) for A in fit_args]
        magnitude = max(np.abs(A.astype(np.float64)).max() for A in scaled)
        limit = case.magnitude_limit
        if limit is not None and not 1 / limit <= magnitude <= limit:
            with pytest.raises(ValueError, match="magnitude"):
                case.make().fit(*scaled)
            continue
        if np.log(magnitude) * case.overflow_degree > np.log(info.max):
            with pytest.raises(ValueError, match="overflow"):
                est2 = case.make().fit(*scaled)
                est2.transform(case.transform_input(est2, scaled[0]))
            continue
        est2 = case.make().fit(*scaled)
        out = est2.transform(case.transform_input(est2, scaled[0])).astype(np.float64)
        expected = ref * float(s) ** case.scale_degree
        if 0 < np.abs(expected).max() < info.tiny:
            continue  # the exact result underflows the dtype
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=info.tiny)


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------
def fingerprint(case):
    """sha256 of the fitted state and transform output of ``case`` on fixed data."""
    fit_args = clean_fit_inputs(case, n=200, d=6, seed=7)
    est = case.make().fit(*fit_args)
    out = est.transform(case.transform_input(est, fit_args[0]))
    h = hashlib.sha256()
    for key, value in sorted(vars(est).items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray)
                 else repr(value).encode())
    h.update(np.ascontiguousarray(out).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_same_random_state_is_bitwise_reproducible(case):
    fit_args = clean_fit_inputs(case, n=200, d=6, seed=7)
    a, b = case.make().fit(*fit_args), case.make().fit(*fit_args)
    assert_same_state(vars(a), vars(b))
    X = case.transform_input(a, fit_args[0])
    assert np.array_equal(a.transform(X), b.transform(X))
    if case.random:
        c = case.make().set_params(random_state=1).fit(*fit_args)
        assert not np.array_equal(c.transform(X), a.transform(X)), "random_state has no effect"


def test_determinism_across_processes():
    """A fresh interpreter computes the same fitted state and outputs, bit for bit."""
    script = (
        "import json, sys, torch; sys.path.insert(0, 'tests'); import test_robustness as t; "
        f"torch.set_num_threads({torch.get_num_threads()}); "  # as here: BLAS splits by threads
        "print(json.dumps({c.id: t.fingerprint(c) for c in t.CASES}))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    assert other == {c.id: fingerprint(c) for c in CASES}


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=str)
def test_concurrent_transforms_equal_sequential(case):
    """One fitted estimator used from 4 threads at once gives the sequential results.

    float32 and tensor inputs of the float64-fitted model go through the
    device/dtype cache of ``fitted_tensor``, which the threads fill concurrently.
    """
    fit_args = clean_fit_inputs(case, n=300, d=6, seed=11)
    reference = case.make().fit(*fit_args)
    rng = np.random.default_rng(12)
    inputs = []
    for _ in range(2):
        X = case.transform_input(reference, rng.normal(size=(97, 6)))
        inputs += [X, X.astype(np.float32), torch.from_numpy(X), torch.from_numpy(X).float()]
    expected = [reference.transform(X) for X in inputs]

    for _ in range(2):
        est = case.make().fit(*fit_args)  # empty cache: threads race to fill it
        results = Parallel(n_jobs=4, backend="threading")(
            delayed(est.transform)(X) for X in inputs * 3
        )
        for got, want in zip(results, expected * 3):
            if isinstance(want, torch.Tensor):
                assert torch.equal(got, want)
            else:
                assert np.array_equal(got, want)
        assert_same_state(vars(est), vars(reference))


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c for c in CASES if "batch_size" in c.make().get_params()],
                         ids=str)
def test_batch_size_bounds_memory(case, tmp_path):
    """transform with batch_size stays within output + a few chunks (numpy side).

    tracemalloc sees numpy allocations, not torch's.  What numpy allocates in
    ``transform`` is the output (once, when batched) and the copies of
    read-only input chunks (a memmap cannot be shared with torch): with
    ``batch_size`` the traced peak is the output plus a few chunks, without it
    at least the whole input.  The torch side (temporaries per chunk) is
    measured on CUDA by test_batch_size_bounds_cuda_memory.
    """
    n, d, chunk = 1000, 128, 25
    fit_args = clean_fit_inputs(case, n=200, d=d, seed=5)
    est = case.make().set_params(batch_size=None).fit(*fit_args)
    X = case.transform_input(est, np.random.default_rng(6).normal(size=(n, d)))
    np.save(tmp_path / "X.npy", X)
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    chunk_bytes = chunk * X.shape[1] * X.itemsize

    def traced_peak(batch_size):
        est.set_params(batch_size=batch_size)
        tracemalloc.start()
        try:
            out = est.transform(X)
            return tracemalloc.get_traced_memory()[1], out
        finally:
            tracemalloc.stop()

    peak, out = traced_peak(chunk)
    slack = 64 * 1024  # fixed-size bookkeeping (index arrays, small temporaries)
    assert peak <= out.nbytes + 4 * chunk_bytes + slack, (peak, out.nbytes, chunk_bytes)
    peak_all, out_all = traced_peak(None)
    assert peak_all >= X.nbytes  # the measure is meaningful: unbatched copies all of X
    # equal up to the last bit or so (BLAS may round a GEMM of fewer rows differently)
    np.testing.assert_allclose(out, out_all, rtol=1e-12, atol=1e-12 * np.abs(out_all).max())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", [c for c in CASES if "batch_size" in c.make().get_params()],
                         ids=str)
def test_batch_size_bounds_cuda_memory(case):
    """On CUDA the allocator counts every tensor: output + a few chunks with batch_size."""
    n, d, chunk = 20000, 256, 500
    fit_args = clean_fit_inputs(case, n=400, d=d, seed=5)
    est = case.make().set_params(batch_size=chunk).fit(*fit_args)
    X = torch.from_numpy(
        case.transform_input(est, np.random.default_rng(6).normal(size=(n, d)))
    ).cuda()
    est.transform(X[:10])  # warm the fitted-tensor cache
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = est.transform(X)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    chunk_bytes = chunk * X.shape[1] * X.element_size()
    assert extra <= out.numel() * out.element_size() + 8 * chunk_bytes, extra
