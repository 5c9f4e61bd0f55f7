"""The array boundary: validation, device placement and output kinds.

Everything that enters an estimator passes through :func:`check_input` once;
everything that leaves a ``transform`` is produced by :func:`apply_batched`,
which hands the result back in the caller's kind (numpy in, numpy out; a
tensor in, a tensor on the same device out).  The math in
:mod:`sklearn_latent.functional` only ever sees torch tensors on the compute
device.
"""

import copy
import functools
import numbers
import threading
import weakref

import numpy as np
import torch
from sklearn import get_config
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_array, check_scalar
from sklearn.utils.validation import validate_data

from .functional import _MIN_BLOCK_ROWS, _row_blocks

__all__ = [
    "apply_batched",
    "atomic_fit",
    "auto_batch_rows",
    "check_batch_size",
    "chunk_bounds",
    "check_input",
    "check_option",
    "check_params_unchanged",
    "finite_result",
    "fitted_tensor",
    "np_dtype",
    "remember_params",
    "resolve_device",
    "to_numpy",
    "to_tensor",
    "torch_dtype",
]

_FLOAT_TORCH = (torch.float32, torch.float64)


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------
def check_option(value, name, options):
    """Return ``value`` if it is one of ``options``, else raise a ValueError naming both."""
    if isinstance(value, str) and value in options:
        return value
    if value is None and None in options:
        return value
    shown = ", ".join(repr(o) for o in options)
    raise ValueError(f"{name}={value!r} is not supported; expected one of {shown}.")


def check_csls(csls):
    """``None`` (plain cosine) or the positive number of neighbours of the CSLS terms."""
    if csls is None:
        return None
    if isinstance(csls, bool) or not isinstance(csls, numbers.Integral):
        raise TypeError(f"csls must be None or an int (neighbours), got {csls!r}.")
    if csls < 1:
        raise ValueError(f"csls must be a positive number of neighbours, got {csls}.")
    return int(csls)


def check_batch_size(batch_size):
    """``None`` (one chunk), ``"auto"`` (chunks from a memory budget) or a positive int."""
    if batch_size is None:
        return None
    if isinstance(batch_size, str) and batch_size == "auto":
        return "auto"
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(
            f"batch_size must be None, 'auto' or a positive int, got {batch_size!r}."
        )
    check_scalar(int(batch_size), "batch_size", numbers.Integral, min_val=1)
    return int(batch_size)


def resolve_device(device, X=None):
    """The torch device computations run on.

    ``None`` computes where ``X`` lives (numpy and array-likes: CPU);
    ``"auto"`` picks CUDA when available; anything else is handed to
    :class:`torch.device` and must be available on this machine.
    """
    if device is None:
        return X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use None, 'auto', 'cpu', "
            "'cuda', 'cuda:<index>' or a torch.device."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are present."
            )
    return dev


# --------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------
def _all_finite(X, block_elements=1 << 24):
    """``torch.isfinite(X).all()`` by row blocks: no (n, d) boolean temporary, one sync."""
    step = max(1, block_elements // max(1, X.shape[1]))
    ok = torch.ones((), dtype=torch.bool, device=X.device)
    for start in range(0, X.shape[0], step):
        ok &= torch.isfinite(X[start : start + step]).all()
    return bool(ok)


def _check_tensor(estimator, X, *, reset, input_name, ensure_min_samples):
    """Same checks as scikit-learn's ``check_array``, without leaving the device."""
    if X.is_sparse or X.layout != torch.strided:
        raise TypeError(
            f"Sparse tensor was passed for {input_name}, but dense data is required. "
            "Use X.to_dense() to convert to a dense tensor."
        )
    if X.is_complex():
        raise ValueError(f"Complex data not supported for {input_name}.")
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D tensor for {input_name}, got a {X.ndim}D tensor of shape "
            f"{tuple(X.shape)} instead. Reshape your data using X.reshape(-1, 1) if it has "
            "a single feature or X.reshape(1, -1) if it contains a single sample."
        )
    n_samples, n_features = X.shape
    if n_samples < ensure_min_samples:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={tuple(X.shape)}) while a "
            f"minimum of {ensure_min_samples} is required."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )
    X = X.detach()
    if X.dtype not in _FLOAT_TORCH:
        X = X.to(torch.float64)
    # One cheap reduction first, as scikit-learn does: a finite sum means no NaN
    # or infinity (an overflowing sum of finite values falls back to the full check).
    if not bool(torch.isfinite(X.sum())) and not _all_finite(X):
        what = "NaN" if bool(torch.isnan(X).any()) else "infinity"
        raise ValueError(f"Input {input_name} contains {what}.")
    if estimator is None:
        return X
    if reset:
        estimator.n_features_in_ = n_features
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    else:
        expected = getattr(estimator, "n_features_in_", None)
        if expected is not None and n_features != expected:
            raise ValueError(
                f"X has {n_features} features, but {type(estimator).__name__} is "
                f"expecting {expected} features as input."
            )
    return X


def check_input(estimator, X, *, reset, input_name="X", ensure_min_samples=1):
    """Validate ``X`` once at the boundary and return it in its own kind.

    numpy arrays, array-likes, DataFrames and memmaps go through scikit-learn's
    ``validate_data`` (so messages, ``n_features_in_`` and ``feature_names_in_``
    behave exactly as in scikit-learn) and come back as float32/float64 numpy
    arrays, not copied when they already are.  Tensors get the same checks on
    their own device and come back as float32/float64 tensors there.
    """
    if isinstance(X, torch.Tensor):
        return _check_tensor(
            estimator, X, reset=reset, input_name=input_name,
            ensure_min_samples=ensure_min_samples,
        )
    if estimator is None:
        return check_array(
            X, accept_sparse=False, dtype=[np.float64, np.float32],
            ensure_min_samples=ensure_min_samples, input_name=input_name,
        )
    return validate_data(
        estimator,
        X,
        reset=reset,
        accept_sparse=False,
        dtype=[np.float64, np.float32],
        ensure_min_samples=ensure_min_samples,
    )


# --------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------
def to_tensor(X, device, dtype=None):
    """A torch view (when possible) or copy of ``X`` on ``device``.

    numpy arrays that are writable, already of the right dtype and laid out
    with non-negative strides are shared with torch without a copy; read-only
    ones (memmaps) and reversed views (``X[::-1]``, which torch cannot wrap)
    are copied, chunk by chunk when called through :func:`apply_batched`.
    """
    if isinstance(X, torch.Tensor):
        return X.to(device=device, dtype=dtype or X.dtype)
    X = np.asarray(X)
    if dtype is not None:
        X = X.astype(np_dtype(dtype), copy=False)
    if not X.flags.writeable or any(s < 0 for s in X.strides):
        X = np.array(X, copy=True)
    return torch.from_numpy(X).to(device)


def to_numpy(T):
    """CPU numpy copy of a tensor (fitted attributes are always stored like this)."""
    return T.detach().cpu().numpy()


def np_dtype(dtype):
    """The numpy float dtype matching a torch or numpy float dtype (float32 or float64)."""
    return np.float32 if dtype in (torch.float32, np.float32) else np.float64


def torch_dtype(X):
    """The torch float dtype of a validated array or tensor."""
    dt = X.dtype
    if isinstance(X, torch.Tensor):
        return dt
    return torch.float32 if dt == np.float32 else torch.float64


def finite_result(fn, input_name="X"):
    """Wrap a chunk function so that a non-finite result raises a clear ValueError.

    Inputs are finite (:func:`check_input`) and the kernels rescale extreme
    magnitudes, so inf or NaN in a result means the result itself is not
    representable in the compute dtype (e.g. dot products of |x| ~ 1e30 in
    float32).  Raising beats handing back inf silently.
    """

    def wrapped(X):
        out = fn(X)
        if out.numel() == 0:
            return out
        lo, hi = torch.aminmax(out)  # NaN propagates; no (n, k) boolean temporary
        if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
            lo, hi = torch.aminmax(X)
            big = max(abs(float(lo)), abs(float(hi)))
            dtype = str(out.dtype).replace("torch.", "")
            hint = " or pass float64 data" if out.dtype != torch.float64 else ""
            raise ValueError(
                f"The result overflows {dtype} for {input_name} with values up to "
                f"|{input_name}| = {big:.3g}: rescale {input_name}{hint}."
            )
        return out

    return wrapped


#: Chunks start at multiples of this many rows and are whole multiples of it
#: (``batch_size`` is rounded up; a shorter last chunk joins the one before).
#: BLAS libraries round a row of a matrix product differently depending on
#: how the call's rows fall into their register tiles and threads and on the
#: alignment of the operands (MKL: a GEMV-like path below 12 rows; the last
#: ``M mod 4`` rows in float64; the base address mod 64 bytes for narrow
#: float32 products).  With 32-row aligned chunks every row sits at the same
#: place of the same kind of call as without chunks, so chunk boundaries never
#: change a result (tests/test_scale.py checks it bitwise).  It is the block
#: unit of the kernels in ``functional`` too: one constant, one splitter.
MIN_CHUNK_ROWS = _MIN_BLOCK_ROWS


def chunk_bounds(n, batch_size):
    """``(start, stop)`` row ranges of the chunks of :func:`apply_batched`.

    ``batch_size`` (rows, ``None`` for one chunk) rounded up to a multiple of
    :data:`MIN_CHUNK_ROWS`; a last chunk shorter than that joins the one before.
    """
    if batch_size is None or batch_size >= n:
        return [(0, n)]
    return _row_blocks(n, -(-batch_size // MIN_CHUNK_ROWS) * MIN_CHUNK_ROWS)


def auto_batch_rows(n_features, n_outputs, itemsize, n_rows=None, working_memory=None):
    """Rows per chunk for ``batch_size="auto"``: scikit-learn's ``working_memory`` budget.

    The budget (MiB, ``sklearn.get_config()["working_memory"]``, set with
    ``sklearn.config_context(working_memory=...)``; the one scikit-learn's
    chunked pairwise functions use) is divided by the bytes a chunk needs per
    row: the input row and a copy of it (a device or dtype copy, or the
    centered block of the kernels) plus the chunk's result and one temporary
    of the same width, ``itemsize * 2 * (n_features + n_outputs)``, rounded
    down to a multiple of :data:`MIN_CHUNK_ROWS`.  At least
    :data:`MIN_CHUNK_ROWS` rows (a smaller budget is not honoured), at most
    ``n_rows``.
    """
    if working_memory is None:
        working_memory = get_config()["working_memory"]
    row_bytes = 2 * itemsize * (max(1, n_features) + max(1, n_outputs))
    rows = int(working_memory * 2**20 // row_bytes)
    rows = max(MIN_CHUNK_ROWS, rows - rows % MIN_CHUNK_ROWS)
    return rows if n_rows is None else max(1, min(rows, n_rows))


def _check_out(out, X, n_outputs, dtype):
    """Validate a caller-given output buffer for :func:`apply_batched`."""
    shape = (X.shape[0], n_outputs)
    if isinstance(X, torch.Tensor):
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"out must be a torch.Tensor for tensor input, got {type(out).__name__}."
            )
        if out.device != X.device:
            raise ValueError(f"out is on {out.device}, but X is on {X.device}; they must match.")
        if out.requires_grad:
            raise ValueError("out must not require grad.")
        same_memory = (
            out.numel() > 0 and X.numel() > 0
            and out.untyped_storage().data_ptr() == X.untyped_storage().data_ptr()
        )
        contiguous = out.is_contiguous()
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(
                f"out must be a numpy array (e.g. a np.memmap) for numpy input, "
                f"got {type(out).__name__}."
            )
        if not out.flags.writeable:
            raise ValueError("out is read-only; pass a writeable array (memmap mode 'w+' or 'r+').")
        same_memory = np.may_share_memory(out, X)
        contiguous = out.flags.c_contiguous
    if tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}; expected {shape}.")
    expected = dtype if isinstance(X, torch.Tensor) else np.dtype(np_dtype(dtype))
    if out.dtype != expected:
        raise ValueError(f"out has dtype {out.dtype}; expected {expected} (the output dtype).")
    if not contiguous:
        raise ValueError("out must be C-contiguous.")
    if same_memory:
        raise ValueError("out shares memory with X; pass a separate output buffer.")
    return out


def _needs_host_copy(X, dtype):
    """Whether handing numpy ``X`` to torch copies it (read-only, reversed, other dtype)."""
    return (
        not isinstance(X, torch.Tensor)
        and (
            not X.flags.writeable
            or any(s < 0 for s in X.strides)
            or X.dtype != np_dtype(dtype)
        )
    )


def apply_batched(fn, X, *, device, n_outputs, batch_size=None, out=None):
    """Evaluate ``fn`` row-chunk by row-chunk and return the caller's kind.

    Parameters
    ----------
    fn : callable
        Maps a (m, d) tensor on ``device`` to a (m, n_outputs) tensor, each
        row's result depending on that row only.
    X : ndarray or Tensor
        Validated input (see :func:`check_input`).
    device : torch.device
        Where ``fn`` runs.
    n_outputs : int
        Width of the result.
    batch_size : int, "auto" or None
        Rows per chunk (rounded up to a multiple of :data:`MIN_CHUNK_ROWS`,
        see :func:`chunk_bounds`); ``"auto"`` takes :func:`auto_batch_rows`;
        ``None`` evaluates all rows at once, except where that would copy all
        of ``X`` (a read-only numpy array such as a memmap, a reversed view,
        another dtype) or when ``out`` is given: then ``"auto"``.  Peak memory
        beyond the output is a few chunks.  Chunking does not change the
        result (row-wise ``fn`` on the CPU; see :data:`MIN_CHUNK_ROWS`).
    out : ndarray or Tensor, optional
        Where to write the result (numpy input: a writeable C-contiguous numpy
        array, e.g. a ``np.memmap``; tensor input: a contiguous tensor on the
        input's device), of shape (n, n_outputs) and the output dtype.

    Returns
    -------
    ndarray or Tensor
        ``out`` when given; else numpy for numpy input and for tensor input a
        tensor on the input's device.
    """
    n = X.shape[0]
    dtype = torch_dtype(X)
    is_tensor = isinstance(X, torch.Tensor)
    if out is not None:
        out = _check_out(out, X, n_outputs, dtype)
    if batch_size is None and (out is not None or _needs_host_copy(X, dtype)):
        batch_size = "auto"
    if batch_size == "auto":
        itemsize = 4 if dtype == torch.float32 else 8
        batch_size = auto_batch_rows(X.shape[1], n_outputs, itemsize, n)
    if out is None and (batch_size is None or batch_size >= n):
        res = fn(to_tensor(X, device, dtype))
        return res.to(X.device) if is_tensor else to_numpy(res)
    if out is None:
        if is_tensor:
            out = torch.empty((n, n_outputs), dtype=dtype, device=X.device)
        else:
            out = np.empty((n, n_outputs), dtype=np_dtype(dtype))
    # Each chunk's result is copied once, straight into the output (across
    # devices too): no intermediate host copy, no numpy-side pass.
    dest = out if is_tensor else torch.from_numpy(out)
    for start, stop in chunk_bounds(n, batch_size):
        dest[start:stop].copy_(fn(to_tensor(X[start:stop], device, dtype)))
    return out


# --------------------------------------------------------------------------
# fitted state on devices
# --------------------------------------------------------------------------
# Fitted attributes are CPU numpy arrays (they pickle and load anywhere).  The
# tensors made from them on other devices or in other dtypes are kept here,
# outside the estimator, so they are never pickled and never change its
# ``__dict__``; an entry is dropped when its source array is replaced by a refit.
_CACHE = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def fitted_tensor(estimator, name, device, dtype):
    """The fitted array ``estimator.<name>`` as a tensor on ``device`` in ``dtype``."""
    arr = getattr(estimator, name)
    if (
        device.type == "cpu"
        and arr.dtype == np_dtype(dtype)
        and arr.flags.writeable
        and arr.flags.c_contiguous
    ):
        return torch.from_numpy(arr)
    key = (name, str(device), dtype)
    with _CACHE_LOCK:
        per_est = _CACHE.setdefault(estimator, {})
        hit = per_est.get(key)
        if hit is not None and hit[0] is arr:
            return hit[1]
    t = torch.as_tensor(np.ascontiguousarray(arr)).to(device=device, dtype=dtype)
    with _CACHE_LOCK:
        _CACHE.setdefault(estimator, {})[key] = (arr, t)
    return t


def remember_params(estimator, names):
    """Record the parameters ``transform`` reads, as ``fit`` saw them.

    :func:`check_params_unchanged` then refuses a ``transform`` after any of
    them was changed with ``set_params`` (its fitted state, e.g. the statistics
    of ``normalize="standard"`` or the number of anchors ``top_k`` must fit
    in, belongs to the old values).  Parameters that only say where or in how
    many chunks to compute (``device``, ``batch_size``) are not recorded.
    """
    estimator._fit_params = {name: copy.deepcopy(getattr(estimator, name)) for name in names}


def _same_param(a, b):
    if isinstance(a, (np.ndarray, torch.Tensor)) or isinstance(b, (np.ndarray, torch.Tensor)):
        return type(a) is type(b) and a.shape == b.shape and bool((a == b).all())
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return a is b


def check_params_unchanged(estimator):
    """``NotFittedError`` naming a parameter changed since ``fit`` (:func:`remember_params`)."""
    for name, value in getattr(estimator, "_fit_params", {}).items():
        now = getattr(estimator, name)
        if not _same_param(now, value):
            raise NotFittedError(
                f"{type(estimator).__name__} was fitted with {name}={value!r}, but {name} is "
                f"now {now!r}: its fitted state belongs to the old value. Call fit again "
                f"(or set {name}={value!r} back)."
            )


def atomic_fit(method):
    """Decorator: a failing ``fit`` leaves the estimator exactly as it was."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        saved = dict(self.__dict__)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    return wrapper
