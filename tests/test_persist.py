"""Safe persistence: round trips, refusals, skops, CPU-only loading."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from sklearn_latent import RelativeProjector, load, persist, save
from sklearn_latent._testing import CASES, assert_same_state
from sklearn_latent.persist import FORMAT_VERSION, SKOPS_TRUSTED_TYPES, PersistenceError

# Degenerate anchors (rank-deficient, constant features, all equal) make translators and
# inverse projectors warn, as designed.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The .* map is determined on only:UserWarning"),
    pytest.mark.filterwarnings("ignore:all anchors coincide:UserWarning"),
]

FIT_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def fit_case(case, kind="float64", n=60, d=5, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d))
    args = case.fit_inputs(X)
    if kind == "float32":
        args = [A.astype(np.float32) for A in args]
    elif kind == "tensor":
        args = [torch.from_numpy(A).to(FIT_DEVICE) for A in args]
    return case.make().fit(*args)


def inputs_for(est, seed=1, n=25):
    X = np.random.default_rng(seed).normal(size=(n, est.n_features_in_))
    return X


def round_trip(est, tmp_path, **kwargs):
    path = tmp_path / "model.skl"
    save(est, path, **kwargs)
    return load(path)


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float64", "float32", "tensor"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_round_trip_is_exact(case, kind, tmp_path):
    est = fit_case(case, kind)
    loaded = round_trip(est, tmp_path)
    assert type(loaded) is type(est)
    assert_same_state(vars(loaded), vars(est))
    X = case.transform_input(est, inputs_for(est))
    for Z in (X, X.astype(np.float32), torch.from_numpy(X)):
        a, b = est.transform(Z), loaded.transform(Z)
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b))


def test_unfitted_estimator_round_trips(tmp_path):
    est = RelativeProjector(7, metric="lp", p=3.5, anchors="fps", device="cpu")
    loaded = round_trip(est, tmp_path)
    assert_same_state(vars(loaded), vars(est))
    with pytest.raises(NotFittedError):
        loaded.transform(np.ones((2, 3)))


def test_feature_names_and_set_output_survive(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=["a", "b", "c"])
    est = RelativeProjector(4, random_state=0).set_output(transform="pandas").fit(df)
    loaded = round_trip(est, tmp_path)
    assert_same_state(vars(loaded), vars(est))
    assert loaded.feature_names_in_.dtype == object
    out = loaded.transform(df)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_frame_equal(out, est.transform(df))


def test_file_objects_and_bytes(tmp_path):
    est = fit_case(CASES[0])
    buf = io.BytesIO()
    save(est, buf)
    assert_same_state(vars(load(io.BytesIO(buf.getvalue()))), vars(est))
    with open(tmp_path / "m.skl", "wb") as fh:
        save(est, fh)
    with open(tmp_path / "m.skl", "rb") as fh:
        assert_same_state(vars(load(fh)), vars(est))


class _Toy(BaseEstimator):
    """An estimator whose values exercise every type tag."""

    def __init__(self, metrics=("cosine", "l1"), weights=None, device=None, random_state=None,
                 inner=None, options=None):
        self.metrics = metrics
        self.weights = weights
        self.device = device
        self.random_state = random_state
        self.inner = inner
        self.options = options


@pytest.fixture
def toy_allowed(monkeypatch):
    monkeypatch.setattr(persist, "_ESTIMATORS", persist._ESTIMATORS + (_Toy,))
    monkeypatch.setitem(persist._REGISTRY, "_Toy", _Toy)


def test_every_value_type_round_trips_exactly(toy_allowed, tmp_path):
    rs = np.random.RandomState(3)
    rs.normal(size=5)  # a state with a cached gaussian
    toy = _Toy(
        metrics=("cosine", "l1"),
        weights=np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        device=torch.device("cpu"),
        random_state=rs,
        inner=RelativeProjector(3, random_state=0).fit(np.eye(4)),
        options={"a": [1, 2.5, None], "b": (True, "x"), "c": {}},
    )
    toy.subsets_ = [np.arange(3), np.arange(4, dtype=np.int32)]
    toy.pair_ = (np.ones((2, 2), dtype=np.float32), np.zeros(0))
    toy.scalar32_, toy.int64_, toy.flag_ = np.float32(1.5), np.int64(-7), np.bool_(True)
    toy.floats_ = [float("nan"), float("inf"), -0.0, 5e-324, 0.1]
    toy.big_ = 2**100
    toy.names_ = np.array(["x", "yy", "zzz"], dtype=object)
    toy.grid_ = np.array([["a", "b"]], dtype=object)
    toy.arrays_ = [np.array(3.0), np.array([1 + 2j]), np.array(["u", "v"]), np.array([1], np.uint8)]
    toy.tensor_ = torch.arange(4.0)
    toy.none_ = None
    toy._private = {"transform": "pandas"}
    loaded = round_trip(toy, tmp_path)
    assert_same_state(vars(loaded), vars(toy))
    assert type(loaded.metrics) is tuple and type(loaded.options["b"]) is tuple
    assert loaded.weights.flags.f_contiguous
    assert loaded.random_state.normal() == rs.normal()


def test_memmap_parameters_are_saved_as_arrays(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 3))
    np.save(tmp_path / "idx.npy", np.array([1, 4, 7]))
    idx = np.load(tmp_path / "idx.npy", mmap_mode="r")
    est = RelativeProjector(anchors=idx).fit(X)
    loaded = round_trip(est, tmp_path)
    assert type(loaded.anchors) is np.ndarray and np.array_equal(loaded.anchors, idx)
    assert np.array_equal(loaded.transform(X), est.transform(X))


def test_callable_parameters_are_refused_with_a_hint(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 3))
    est = RelativeProjector(anchors=lambda X, k, rs: np.arange(k), n_anchors=4).fit(X)
    path = tmp_path / "m.skl"
    with pytest.raises(PersistenceError, match="anchors.*callable.*anchor_indices_"):
        save(est, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    est.set_params(anchors=est.anchor_indices_)
    assert np.array_equal(round_trip(est, tmp_path).transform(X), est.transform(X))


def test_foreign_objects_are_refused(tmp_path):
    assert issubclass(PersistenceError, ValueError)
    with pytest.raises(PersistenceError, match="only the library's estimators"):
        save(StandardScaler(), tmp_path / "m.skl")
    est = fit_case(CASES[0])
    est.extra_ = object()
    with pytest.raises(PersistenceError, match="extra_"):
        save(est, tmp_path / "m.skl")
    est.extra_ = np.array([object()])
    with pytest.raises(PersistenceError, match="extra_"):
        save(est, tmp_path / "m.skl")
    with pytest.raises(ValueError, match="format='pickle'"):
        save(fit_case(CASES[0]), tmp_path / "m.skl", format="pickle")


# --------------------------------------------------------------------------
# refusals at load time
# --------------------------------------------------------------------------
def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write(path, members, *, fix_checksum=True):
    if fix_checksum:
        members["manifest.sha256"] = hashlib.sha256(members["manifest.json"]).hexdigest().encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _edit_manifest(path, edit, **kwargs):
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    _write(path, members, **kwargs)


def _fix_array_checksum(members, name):
    manifest = json.loads(members["manifest.json"])
    manifest["arrays"][name]["sha256"] = hashlib.sha256(members[name]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.skl"
    save(fit_case(CASES[2]), path)  # normalize="standard": several arrays
    return path


def test_intact_file_loads(saved):
    assert isinstance(load(saved), RelativeProjector)


def _set_class(m, name):
    m["estimator"]["class"] = name


def _drop_param(m):
    del m["estimator"]["params"]["metric"]


def _inject_state(m, key):
    m["estimator"]["state"][key] = {"t": "int", "v": 1}


def _set_version(m, version):
    m["format_version"] = version


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: _set_class(m, "StandardScaler"), "not one of the library's estimators"),
        (lambda m: _set_class(m, "__builtins__.eval"), "not one of the library's estimators"),
        (lambda m: _set_version(m, FORMAT_VERSION + 1), "upgrade sklearn-latent"),
        (lambda m: _set_version(m, 0), "format_version=0"),
        (lambda m: m.update(format="pickle"), "not a sklearn-latent model file"),
        (_drop_param, "incompatible version"),
        (lambda m: _inject_state(m, "transform"), "not fitted state"),
        (lambda m: _inject_state(m, "__class__"), "not fitted state"),
        (lambda m: m["estimator"]["state"].update(anchors_={"t": "ndarray", "ref": "x.npy"}),
         "unknown array reference"),
        (lambda m: m["estimator"]["params"].update(metric={"t": "eval", "v": "1"}),
         "unknown value type"),
        (lambda m: m["estimator"]["params"].update(p={"t": "float", "v": "not hex"}),
         "Malformed"),
        (lambda m: m["estimator"]["params"].update(metric={"v": "cosine"}), "type tag"),
        (lambda m: m["arrays"].update({"arrays/99.npy": m["arrays"]["arrays/0.npy"]}),
         "arrays/99.npy is missing"),
    ],
)
def test_edited_manifests_are_refused(saved, edit, message):
    _edit_manifest(saved, edit)
    with pytest.raises(PersistenceError, match=message):
        load(saved)


def test_edits_without_the_checksum_are_refused(saved):
    _edit_manifest(saved, lambda m: m["estimator"]["params"].update(
        metric={"t": "str", "v": "dot"}), fix_checksum=False)
    with pytest.raises(PersistenceError, match="manifest does not match its checksum"):
        load(saved)


def test_tampered_array_is_refused(saved):
    members = _members(saved)
    data = bytearray(members["arrays/0.npy"])
    data[-1] ^= 0x01
    members["arrays/0.npy"] = bytes(data)  # rewritten zip: its own CRC is consistent
    _write(saved, members)
    with pytest.raises(PersistenceError, match="arrays/0.npy does not match its checksum"):
        load(saved)


def test_corrupted_bytes_are_refused(saved):
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    saved.write_bytes(bytes(raw))
    with pytest.raises(PersistenceError):
        load(saved)


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_files_are_refused(saved, keep):
    raw = saved.read_bytes()
    n = {0: 0, 10: 10, 0.5: len(raw) // 2, -1: len(raw) - 1}[keep]
    saved.write_bytes(raw[:n])
    with pytest.raises(PersistenceError):
        load(saved)


def test_other_files_are_refused(tmp_path):
    (tmp_path / "junk").write_bytes(os.urandom(1000))
    with pytest.raises(PersistenceError, match="not a model file"):
        load(tmp_path / "junk")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(PersistenceError, match="not a model file"):
        load(tmp_path / "other.zip")
    with open(tmp_path / "model.pkl", "wb") as fh:
        pickle.dump(RelativeProjector(), fh)
    with pytest.raises(PersistenceError):
        load(tmp_path / "model.pkl")


def test_unexpected_or_missing_members_are_refused(saved):
    members = _members(saved)
    _write(saved, {**members, "payload.pkl": b"\x80\x04N."})
    with pytest.raises(PersistenceError, match="unexpected members"):
        load(saved)
    members.pop("manifest.sha256")
    _write(saved, members, fix_checksum=False)
    with pytest.raises(PersistenceError, match="manifest.sha256 is missing"):
        load(saved)


class _Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_arrays_are_never_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    np.save(evil, np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    members = _members(saved)
    members["arrays/0.npy"] = evil.getvalue()
    _fix_array_checksum(members, "arrays/0.npy")
    _write(saved, members)
    with pytest.raises(PersistenceError, match="cannot read arrays/0.npy.*allow_pickle=False"):
        load(saved)
    # with the manifest's dtype changed to object too
    _edit_manifest(saved, lambda m: m["arrays"]["arrays/0.npy"].update(dtype="|O"))
    with pytest.raises(PersistenceError, match="bad dtype"):
        load(saved)
    assert not marker.exists()


def test_oversized_members_are_refused(saved):
    members = _members(saved)
    big = io.BytesIO()
    np.save(big, np.zeros(100_000))
    members["arrays/0.npy"] = big.getvalue()
    _fix_array_checksum(members, "arrays/0.npy")
    _write(saved, members)
    with pytest.raises(PersistenceError, match="more than"):
        load(saved)


def test_non_json_constants_are_refused(saved):
    members = _members(saved)
    members["manifest.json"] = members["manifest.json"].replace(
        b'"library_version"', b'"x": NaN, "library_version"', 1
    )
    _write(saved, members)
    with pytest.raises(PersistenceError, match="NaN"):
        load(saved)


def test_absurd_json_is_refused(saved):
    members = _members(saved)
    for payload in [b"[" * 100_000 + b"]" * 100_000, b'{"format": 1' + b"0" * 10_000 + b"}",
                    b"\xff\xfe not utf-8"]:
        members["manifest.json"] = payload
        _write(saved, members)
        with pytest.raises(PersistenceError):
            load(saved)


def test_loading_never_calls_pickle(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    assert isinstance(load(saved), RelativeProjector)


# --------------------------------------------------------------------------
# skops
# --------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=str)
def test_skops_files_need_only_the_documented_trusted_types(case, tmp_path):
    sio = pytest.importorskip("skops.io")
    est = fit_case(case, "tensor")
    path = tmp_path / "model.skops"
    save(est, path, format="skops")
    untrusted = sio.get_untrusted_types(file=path)
    assert f"{type(est).__module__}.{type(est).__qualname__}" in untrusted
    assert set(untrusted) <= set(SKOPS_TRUSTED_TYPES)
    X = case.transform_input(est, inputs_for(est))
    for loaded in (sio.load(path, trusted=SKOPS_TRUSTED_TYPES), load(path)):
        assert_same_state(vars(loaded), vars(est))
        assert np.array_equal(loaded.transform(X), est.transform(X))
    sio.dump(est, tmp_path / "direct.skops")  # skops' own dump needs no more
    assert sio.get_untrusted_types(file=tmp_path / "direct.skops") == untrusted


def test_skops_files_with_foreign_types_are_refused(tmp_path):
    sio = pytest.importorskip("skops.io")
    sio.dump({"f": np.sum}, tmp_path / "evil.skops")
    with pytest.raises(PersistenceError, match="trusted list"):
        load(tmp_path / "evil.skops")
    sio.dump(StandardScaler().fit(np.eye(3)), tmp_path / "scaler.skops")
    with pytest.raises(PersistenceError, match="not one of the library's estimators"):
        load(tmp_path / "scaler.skops")
    est = fit_case(CASES[0]).set_params(anchors=torch.arange(4))
    with pytest.raises(PersistenceError, match="format='skops' cannot store"):
        save(est, tmp_path / "tensor.skops", format="skops")
    save(est, tmp_path / "tensor.skl")  # the native format stores tensors as arrays
    assert torch.equal(load(tmp_path / "tensor.skl").anchors, torch.arange(4))
    est = fit_case(CASES[0]).set_params(device=torch.device("cpu"))
    with pytest.raises(PersistenceError, match="outside the trusted list: .*torch"):
        save(est, tmp_path / "device.skops", format="skops")
    assert load_device(est, tmp_path) == torch.device("cpu")


def load_device(est, tmp_path):
    save(est, tmp_path / "device.skl")
    return load(tmp_path / "device.skl").device


def test_skops_missing_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "skops", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(ImportError, match="pip install skops"):
        save(fit_case(CASES[0]), tmp_path / "m.skops", format="skops")


# --------------------------------------------------------------------------
# fitted on tensors (a GPU when present), loaded on a CPU-only machine
# --------------------------------------------------------------------------
_CPU_ONLY_SCRIPT = """
import sys
import numpy as np, torch
import sklearn_latent
torch.set_num_threads(int(sys.argv[2]))  # as in the parent: BLAS results depend on it
folder = sys.argv[1]
data = np.load(folder + "/inputs.npz", allow_pickle=False)
assert not torch.cuda.is_available()
out = {}
for name in sys.argv[3:]:
    est = sklearn_latent.load(folder + "/" + name + ".skl")
    for kind in ("f64", "f32"):
        out[name + "-" + kind] = est.transform(data[name + "-" + kind])
    out[name + "-tensor"] = est.transform(torch.from_numpy(data[name + "-f64"])).numpy()
assert not torch.cuda.is_initialized()
np.savez(folder + "/outputs.npz", **out)
"""


def test_tensor_fitted_models_load_on_a_cpu_only_machine(tmp_path):
    expected, inputs, names = {}, {}, []
    for i, case in enumerate(CASES):
        name = f"m{i}"
        est = fit_case(case, "tensor", seed=i)
        save(est, tmp_path / f"{name}.skl")
        X = case.transform_input(est, inputs_for(est, seed=100 + i))
        inputs[f"{name}-f64"], inputs[f"{name}-f32"] = X, X.astype(np.float32)
        for kind in ("f64", "f32"):
            expected[f"{name}-{kind}"] = est.transform(inputs[f"{name}-{kind}"])
        expected[f"{name}-tensor"] = est.transform(torch.from_numpy(X)).numpy()
        names.append(name)
    np.savez(tmp_path / "inputs.npz", **inputs)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _CPU_ONLY_SCRIPT, str(tmp_path),
                           str(torch.get_num_threads()), *names],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / "outputs.npz", allow_pickle=False)
    assert sorted(got.files) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key
