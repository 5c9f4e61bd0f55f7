"""Safe persistence: save fitted estimators and load them without running code.

``pickle.load`` (and ``joblib.load``) of a file from elsewhere runs whatever
code the file names.  :func:`save` writes, and :func:`load` reads, a format in
which nothing can name code:

* a zip archive of ``manifest.json``, ``manifest.sha256`` and one ``.npy`` file
  per array;
* the manifest holds the class *name*, looked up in an allow-list of this
  library's estimators (nothing else is ever constructed), and the parameters
  and fitted state as JSON with a type tag on every value (so a tuple comes
  back a tuple, a ``numpy.float32`` a ``numpy.float32``, a float bit for bit);
* arrays are read with ``allow_pickle=False`` (numeric, bool and fixed-width
  string dtypes only); each file's SHA-256 is in the manifest and the
  manifest's own in ``manifest.sha256``, so truncation, corruption and edits
  that do not recompute the checksums are refused; the manifest carries a
  format version, and files of another version are refused.

This one format is always used (no optional dependency decides what a file
looks like, so a file written anywhere loads anywhere).  ``format="skops"``
writes a `skops <https://skops.readthedocs.io>`_ file instead, for the hubs and
tools built on it; :func:`load` recognizes both by their content and loads skops
files with ``skops.io.load(file, trusted=SKOPS_TRUSTED_TYPES)``.

The checksums guard against accidents, not against a forger (who can
recompute them): safety comes from the format, which can only describe data
and our own classes.
"""

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
import zlib

import numpy as np
import torch

from .aggregate import RelativeAggregator
from .asif import ASIFClassifier
from .fmaps import FunctionalMapTranslator
from .functional import TranslationStats
from .inverse import InverseRelativeProjector, RelativeTranslator
from .matching import AnchorMatcher
from .product import ProductInvarianceProjector
from .relative import RelativeProjector
from .self_learning import SelfLearningTranslator
from .translate import ProcrustesTranslator

__all__ = ["FORMAT_VERSION", "SKOPS_TRUSTED_TYPES", "PersistenceError", "load", "save"]

#: The allow-list: the only classes :func:`load` constructs and :func:`save`
#: writes.  Every estimator of the library is added here.
_ESTIMATORS = (
    RelativeProjector,
    ProductInvarianceProjector,
    InverseRelativeProjector,
    RelativeTranslator,
    ProcrustesTranslator,
    ASIFClassifier,
    AnchorMatcher,
    SelfLearningTranslator,
    RelativeAggregator,
    FunctionalMapTranslator,
)
#: Named tuples of the library that fitted state may hold (rebuilt field by field).
_RECORDS = (TranslationStats,)

_REGISTRY = {cls.__name__: cls for cls in _ESTIMATORS}
_RECORD_REGISTRY = {cls.__name__: cls for cls in _RECORDS}

#: ``trusted=`` argument of ``skops.io.load`` for files of this library's estimators.
SKOPS_TRUSTED_TYPES = [f"{cls.__module__}.{cls.__qualname__}" for cls in _ESTIMATORS + _RECORDS]

#: Version of the file layout; a file with another version is refused.
FORMAT_VERSION = 1

_FORMAT = "sklearn-latent"
_MANIFEST = "manifest.json"
_CHECKSUM = "manifest.sha256"
_MAX_MANIFEST_BYTES = 1 << 24
# Room for the .npy header beyond the array's bytes (numpy caps headers at 10 kB by default).
_MAX_HEADER_BYTES = 1 << 16
# Array dtypes a file may contain: bool, integers, floats, complex, fixed-width strings.
_DTYPE_KINDS = "biufcU"


class PersistenceError(ValueError):
    """An estimator that cannot be saved, or a file that cannot be loaded, safely.

    Raised for classes outside the allow-list, values that only pickle could
    store (callables, arbitrary objects), truncated, corrupted or edited files,
    and files written in another format version.
    """


# --------------------------------------------------------------------------
# values -> tagged JSON + arrays
# --------------------------------------------------------------------------
class _Writer:
    def __init__(self):
        self.arrays = {}  # member name -> ndarray

    def _array(self, arr, where):
        if arr.dtype.kind not in _DTYPE_KINDS:
            raise PersistenceError(
                f"{where} is an array of dtype {arr.dtype}, which cannot be stored without "
                f"pickle; supported dtype kinds are {_DTYPE_KINDS!r}."
            )
        name = f"arrays/{len(self.arrays)}.npy"
        self.arrays[name] = arr
        return name

    def encode(self, value, where):
        t = type(value)
        if value is None:
            return {"t": "none"}
        if t is bool:
            return {"t": "bool", "v": value}
        if t is int:
            return {"t": "int", "v": value}
        if t is float:
            return {"t": "float", "v": value.hex()}
        if t is str:
            return {"t": "str", "v": value}
        if t in _RECORDS:
            fields = {k: self.encode(v, f"{where}.{k}") for k, v in value._asdict().items()}
            return {"t": "record", "class": t.__name__, "v": fields}
        if t in (list, tuple):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return {"t": t.__name__, "v": items}
        if t is dict:
            if not all(type(k) is str for k in value):
                raise PersistenceError(f"{where} is a dict with non-string keys.")
            items = {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
            return {"t": "dict", "v": items}
        if isinstance(value, np.ndarray):  # subclasses (memmap) come back as ndarray
            value = np.asarray(value)
            if value.dtype == object:
                return self._object_array(value, where)
            return {"t": "ndarray", "ref": self._array(value, where)}
        if isinstance(value, np.generic) and t.__module__ == "numpy":
            return {"t": "npscalar", "ref": self._array(np.asarray(value), where)}
        if t is np.random.RandomState:
            name, keys, pos, has_gauss, gauss = value.get_state(legacy=True)
            return {
                "t": "random_state", "ref": self._array(keys, where), "pos": int(pos),
                "has_gauss": int(has_gauss), "gauss": float(gauss).hex(),
            }
        if t is torch.device:
            return {"t": "torch_device", "v": str(value)}
        if isinstance(value, torch.Tensor):
            try:
                arr = value.detach().cpu().numpy()
            except (TypeError, RuntimeError) as exc:
                raise PersistenceError(
                    f"{where} is a tensor that numpy cannot hold: {exc}"
                ) from exc
            return {"t": "tensor", "ref": self._array(arr, where)}
        if t in _ESTIMATORS:
            return self.estimator(value, where)
        what = "a callable" if callable(value) else f"of type {t.__module__}.{t.__qualname__}"
        hint = (
            " Callables cannot be stored safely: after fit, set the parameter to a value "
            "(e.g. est.set_params(anchors=est.anchor_indices_)) before saving."
            if callable(value) else ""
        )
        raise PersistenceError(f"{where}={value!r} is {what}, which cannot be saved safely.{hint}")

    def _object_array(self, arr, where):
        flat = arr.ravel().tolist()
        if not all(type(v) is str for v in flat):
            raise PersistenceError(
                f"{where} is an object array with non-string entries, which cannot be "
                "saved safely."
            )
        return {"t": "strarray", "shape": list(arr.shape), "v": flat}

    def estimator(self, est, where="estimator"):
        cls = type(est)
        if cls not in _ESTIMATORS:
            raise PersistenceError(
                f"{where} is a {cls.__module__}.{cls.__qualname__}; only the library's "
                f"estimators can be saved: {sorted(_REGISTRY)}."
            )
        params = est.get_params(deep=False)
        state = {k: v for k, v in vars(est).items() if k not in params}
        return {
            "t": "estimator",
            "class": cls.__name__,
            "params": {k: self.encode(v, f"{where}.{k}") for k, v in params.items()},
            "state": {k: self.encode(v, f"{where}.{k}") for k, v in state.items()},
        }


# --------------------------------------------------------------------------
# tagged JSON + arrays -> values
# --------------------------------------------------------------------------
def _expect(cond, message):
    if not cond:
        raise PersistenceError(f"Malformed model file: {message}.")


class _Reader:
    def __init__(self, arrays):
        self.arrays = arrays  # member name -> ndarray (verified)

    def _ref(self, node):
        ref = node.get("ref")
        _expect(ref in self.arrays, f"unknown array reference {ref!r}")
        return self.arrays[ref]

    def decode(self, node):
        _expect(isinstance(node, dict) and isinstance(node.get("t"), str),
                "value without a type tag")
        t, v = node["t"], node.get("v")
        if t == "none":
            return None
        if t == "bool":
            _expect(type(v) is bool, "bad bool")
            return v
        if t == "int":
            _expect(type(v) is int, "bad int")
            return v
        if t == "float":
            _expect(type(v) is str, "bad float")
            return float.fromhex(v)
        if t == "str":
            _expect(type(v) is str, "bad str")
            return v
        if t in ("list", "tuple"):
            _expect(type(v) is list, f"bad {t}")
            items = [self.decode(x) for x in v]
            return items if t == "list" else tuple(items)
        if t == "dict":
            _expect(type(v) is dict, "bad dict")
            return {k: self.decode(x) for k, x in v.items()}
        if t == "ndarray":
            return self._ref(node)
        if t == "npscalar":
            arr = self._ref(node)
            _expect(arr.ndim == 0, "numpy scalar stored with a shape")
            return arr[()]
        if t == "strarray":
            shape = node.get("shape")
            _expect(type(v) is list and all(type(x) is str for x in v), "bad string array")
            _expect(type(shape) is list and all(type(s) is int and s >= 0 for s in shape),
                    "bad string array shape")
            _expect(math.prod(shape) == len(v), "string array size does not match its shape")
            out = np.empty(len(v), dtype=object)
            out[:] = v
            return out.reshape(shape)
        if t == "random_state":
            keys = self._ref(node)
            _expect(keys.dtype == np.uint32 and keys.shape == (624,), "bad random state")
            _expect(type(node.get("pos")) is int and type(node.get("has_gauss")) is int
                    and type(node.get("gauss")) is str, "bad random state")
            rs = np.random.RandomState()
            rs.set_state(("MT19937", keys, node["pos"], node["has_gauss"],
                          float.fromhex(node["gauss"])))
            return rs
        if t == "torch_device":
            _expect(type(v) is str, "bad device")
            return torch.device(v)
        if t == "tensor":
            return torch.from_numpy(self._ref(node))
        if t == "record":
            cls = _RECORD_REGISTRY.get(node.get("class"))
            _expect(cls is not None, f"unknown record type {node.get('class')!r}")
            _expect(type(v) is dict and list(v) == list(cls._fields), "bad record fields")
            return cls(**{k: self.decode(x) for k, x in v.items()})
        if t == "estimator":
            return self.estimator(node)
        raise PersistenceError(f"Malformed model file: unknown value type {t!r}.")

    def estimator(self, node):
        _expect(isinstance(node, dict) and node.get("t") == "estimator", "no estimator")
        name = node.get("class")
        if name not in _REGISTRY:
            raise PersistenceError(
                f"The file describes a {name!r}, which is not one of the library's "
                f"estimators {sorted(_REGISTRY)}; refusing to load it."
            )
        cls = _REGISTRY[name]
        params, state = node.get("params"), node.get("state")
        _expect(isinstance(params, dict) and isinstance(state, dict), "bad estimator entry")
        est = cls()
        expected = set(est.get_params(deep=False))
        if set(params) != expected:
            raise PersistenceError(
                f"The file's parameters of {name} {sorted(params)} do not match this "
                f"version's {sorted(expected)}: it was written by an incompatible version."
            )
        for key in state:
            _expect(
                key.isidentifier() and not key.startswith("__") and key not in expected
                and (key.endswith("_") or key.startswith("_")),
                f"attribute name {key!r} is not fitted state",
            )
        est.set_params(**{k: self.decode(v) for k, v in params.items()})
        vars(est).update({k: self.decode(v) for k, v in state.items()})
        return est


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _write_native(estimator, fh):
    from . import __version__

    writer = _Writer()
    tree = writer.estimator(estimator)
    members = {name: _npy_bytes(arr) for name, arr in writer.arrays.items()}
    manifest = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "estimator": tree,
        "arrays": {
            name: {
                "dtype": arr.dtype.str, "shape": list(arr.shape),
                "sha256": _sha256(members[name]),
            }
            for name, arr in writer.arrays.items()
        },
    }
    text = json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_MANIFEST, text)
        zf.writestr(_CHECKSUM, _sha256(text))
        for name, data in members.items():
            zf.writestr(name, data)


def _read_member(zf, name, limit):
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise PersistenceError(
            f"Malformed model file: {name} holds {info.file_size} bytes, more than the "
            f"{limit} its manifest allows."
        )
    with zf.open(info) as f:
        return f.read(limit + 1)


def _reject_constant(name):
    raise PersistenceError(f"Malformed model file: the manifest contains {name}.")


def _read_native(zf):
    names = set(zf.namelist())
    _expect(_CHECKSUM in names, f"{_CHECKSUM} is missing")
    text = _read_member(zf, _MANIFEST, _MAX_MANIFEST_BYTES)
    checksum = _read_member(zf, _CHECKSUM, 128).decode("ascii", "replace").strip()
    if _sha256(text) != checksum:
        raise PersistenceError(
            "The model file's manifest does not match its checksum: the file is corrupted "
            "or was edited."
        )
    try:
        manifest = json.loads(text.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
        raise PersistenceError(f"Malformed model file: the manifest is not JSON ({exc}).") from exc
    _expect(isinstance(manifest, dict) and manifest.get("format") == _FORMAT,
            f"this is not a {_FORMAT} model file")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise PersistenceError(
            f"The model file has format_version={version!r}, but this version of "
            f"sklearn-latent reads format_version={FORMAT_VERSION}"
            + (": upgrade sklearn-latent to load it." if newer else ".")
        )
    table = manifest.get("arrays")
    _expect(isinstance(table, dict), "no array table")
    extra = names - set(table) - {_MANIFEST, _CHECKSUM}
    _expect(not extra, f"unexpected members {sorted(extra)}")
    arrays = {}
    for name, meta in table.items():
        _expect(name in names, f"array {name} is missing")
        _expect(isinstance(meta, dict), f"bad entry for {name}")
        shape, dtype = meta.get("shape"), meta.get("dtype")
        _expect(type(shape) is list and all(type(s) is int and s >= 0 for s in shape),
                f"bad shape for {name}")
        try:
            dtype = np.dtype(dtype) if type(dtype) is str else None
        except TypeError:
            dtype = None
        _expect(dtype is not None and dtype.kind in _DTYPE_KINDS, f"bad dtype for {name}")
        data = _read_member(zf, name, math.prod(shape) * dtype.itemsize + _MAX_HEADER_BYTES)
        if _sha256(data) != meta.get("sha256"):
            raise PersistenceError(
                f"The model file's array {name} does not match its checksum: the file is "
                "corrupted or was edited."
            )
        try:
            arr = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise PersistenceError(f"Malformed model file: cannot read {name} ({exc}).") from exc
        _expect(arr.dtype == dtype and list(arr.shape) == shape,
                f"{name} does not have the dtype and shape of its manifest entry")
        arrays[name] = arr
    try:
        return _Reader(arrays).estimator(manifest.get("estimator"))
    except PersistenceError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, RecursionError) as exc:
        raise PersistenceError(f"Malformed model file: {type(exc).__name__}: {exc}") from exc


def _skops():
    try:
        import skops.io as sio
    except ImportError as exc:
        raise ImportError(
            "format='skops' needs the skops package: pip install skops "
            "(or sklearn-latent[persist])."
        ) from exc
    return sio


def _read_skops(fh):
    sio = _skops()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        est = sio.load(fh, trusted=SKOPS_TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise PersistenceError(
            f"The skops file contains types outside sklearn-latent's trusted list: {exc}"
        ) from exc
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise PersistenceError(f"Malformed skops file: {exc}") from exc
    if type(est) not in _ESTIMATORS:
        raise PersistenceError(
            f"The skops file holds a {type(est).__qualname__}, not one of the library's "
            f"estimators {sorted(_REGISTRY)}."
        )
    return est


def save(estimator, file, *, format="sklearn-latent"):
    """Save an estimator of this library to a file that loads without running code.

    Parameters
    ----------
    estimator : estimator of sklearn_latent
        Fitted or not.  Its parameters and fitted state must be plain data:
        None, bool, int, float, str, numpy arrays and scalars, tensors (stored
        as CPU arrays), ``RandomState``, ``torch.device``, and lists, tuples and
        dicts of these (or estimators of the library).  A callable parameter
        (``anchors=<function>``) raises :class:`PersistenceError`.
    file : str, path-like or binary file object
        Written atomically when a path (a temporary file renamed at the end).
    format : {"sklearn-latent", "skops"}, default="sklearn-latent"
        ``"sklearn-latent"``: the library's own format (see
        :mod:`sklearn_latent.persist`), no dependency.  ``"skops"``: a skops
        file (``skops.io.dump``), loadable with
        ``skops.io.load(file, trusted=SKOPS_TRUSTED_TYPES)``; needs ``skops``.

    Raises
    ------
    PersistenceError
        For an object that is not an estimator of the library or holds values
        that cannot be stored without pickle.

    See Also
    --------
    load : The inverse.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_latent import RelativeProjector, load, save
    >>> X = np.random.default_rng(0).normal(size=(100, 8))
    >>> proj = RelativeProjector(n_anchors=10, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "projector.skl")
    >>> save(proj, path)
    >>> bool(np.array_equal(load(path).transform(X), proj.transform(X)))
    True
    """
    if format not in ("sklearn-latent", "skops"):
        raise ValueError(
            f"format={format!r} is not supported; expected 'sklearn-latent' or 'skops'."
        )
    _Writer().estimator(estimator)  # refuses what cannot be stored, before writing anything
    if format == "skops":
        sio = _skops()
        try:
            data = sio.dumps(estimator)
        except Exception as exc:  # skops raises whatever the object's reduction raises
            raise PersistenceError(
                f"format='skops' cannot store this estimator ({type(exc).__name__}: {exc}); "
                "use the default format='sklearn-latent'."
            ) from exc
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(SKOPS_TRUSTED_TYPES))
        if untrusted:
            raise PersistenceError(
                f"format='skops' would store types outside the trusted list: {untrusted}; "
                "use the default format='sklearn-latent'."
            )

        def write(fh):
            fh.write(data)
    else:

        def write(fh):
            _write_native(estimator, fh)

    if hasattr(file, "write"):
        write(file)
        return
    path = os.fspath(file)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".skl")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(file):
    """Load an estimator saved by :func:`save`, without pickle.

    Reads the library's own format or a skops file (recognized by content).
    Only the library's estimators are ever constructed; arrays are read with
    ``allow_pickle=False``; every checksum is verified.  Fitted attributes come
    back as the CPU numpy arrays they were saved as, so a model fitted on a GPU
    loads and runs on a machine without one.

    Parameters
    ----------
    file : str, path-like or binary file object

    Returns
    -------
    estimator : estimator of sklearn_latent

    Raises
    ------
    PersistenceError
        For a file that is not a model file, is truncated, corrupted or edited,
        describes a class outside the allow-list, or was written in another
        format version.

    See Also
    --------
    save : The inverse.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from sklearn_latent import RelativeProjector, load, save
    >>> X = np.random.default_rng(0).normal(size=(100, 8))
    >>> buf = io.BytesIO()
    >>> save(RelativeProjector(n_anchors=10, random_state=0).fit(X), buf)
    >>> load(io.BytesIO(buf.getvalue())).anchors_.shape
    (10, 8)
    """
    opened = not hasattr(file, "read")
    fh = open(os.fspath(file), "rb") if opened else file
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise PersistenceError(
                f"{file!r} is not a model file, or it is truncated ({exc})."
            ) from exc
        with zf:
            names = set(zf.namelist())
            try:
                if _MANIFEST in names:
                    return _read_native(zf)
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError,
                    RuntimeError) as exc:
                raise PersistenceError(f"{file!r} is truncated or corrupted ({exc}).") from exc
            if "schema.json" not in names:
                raise PersistenceError(f"{file!r} is a zip archive but not a model file.")
        fh.seek(0)
        return _read_skops(fh)
    finally:
        if opened:
            fh.close()
