"""End-to-end CUDA behaviour of every estimator (skipped without a GPU), and the GPU benchmark.

For every estimator of ``_testing.CASES``: CUDA tensors in give CUDA tensors
out; ``device="cuda"`` on numpy input gives numpy out; fitted attributes are
CPU numpy either way; a pickle of a CUDA-fitted estimator loads and
transforms in a process that has no CUDA device; ``out=`` and chunking work
on the device.  ``bench_gpu.py`` runs on the CPU at tiny sizes here (not
marked ``cuda``), so the script behind the GPU targets stays runnable.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from sklearn_latent._testing import CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.filterwarnings("ignore:The .* map is determined on only:UserWarning")

def _data(n=80, d=10, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _no_tensors(obj, path="est"):
    """Assert that no torch tensor hides in an estimator's state (sub-estimators included)."""
    if isinstance(obj, torch.Tensor):
        raise AssertionError(f"{path} is a torch tensor on {obj.device}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _no_tensors(v, f"{path}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _no_tensors(v, f"{path}[{i}]")
    elif hasattr(obj, "get_params") and hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            _no_tensors(v, f"{path}.{k}")


def _fitted_arrays_are_cpu_numpy(est):
    _no_tensors(est)
    fitted = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert fitted, type(est).__name__
    for k in fitted:
        v = getattr(est, k)
        if isinstance(v, np.ndarray):
            assert v.flags.writeable or v.size == 0, k


def _cpu_reference(case, X):
    est = case.make().fit(*case.fit_inputs(X))
    return est, est.transform(case.transform_input(est, X))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_cuda_tensors_in_cuda_tensors_out(case, dtype):
    X = _data()
    _, expected = _cpu_reference(case, X)
    inputs = [torch.from_numpy(np.asarray(a, dtype=dtype)).cuda() for a in case.fit_inputs(X)]
    est = case.make().fit(*inputs)
    _fitted_arrays_are_cpu_numpy(est)
    Xt = torch.from_numpy(
        np.ascontiguousarray(case.transform_input(est, X), dtype=dtype)).cuda()
    R = est.transform(Xt)
    assert isinstance(R, torch.Tensor) and R.device.type == "cuda"
    assert R.dtype == Xt.dtype
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert_allclose(R.cpu().numpy(), expected, rtol=tol, atol=tol * np.abs(expected).max())
    # out= on the device, and chunks (cuBLAS may round chunked products differently)
    buf = torch.empty_like(R)
    assert est.set_params(batch_size=7).transform(Xt, out=buf) is buf
    assert_allclose(buf.cpu().numpy(), R.cpu().numpy(), rtol=tol, atol=tol * float(R.abs().max()))
    with pytest.raises(ValueError, match="out is on cpu, but X is on cuda"):
        est.transform(Xt, out=torch.empty(R.shape, dtype=R.dtype))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_device_cuda_on_numpy_gives_numpy(case):
    X = _data()
    _, expected = _cpu_reference(case, X)
    est = case.make().set_params(device="cuda").fit(*case.fit_inputs(X))
    _fitted_arrays_are_cpu_numpy(est)
    Xin = case.transform_input(est, X)
    R = est.transform(Xin)
    assert isinstance(R, np.ndarray) and R.dtype == np.float64
    assert_allclose(R, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    R32 = est.transform(Xin.astype(np.float32))
    assert isinstance(R32, np.ndarray) and R32.dtype == np.float32
    buf = np.empty_like(R)
    assert est.set_params(batch_size="auto").transform(Xin, out=buf) is buf
    assert_allclose(buf, R, rtol=1e-9, atol=1e-9 * np.abs(R).max())


_LOAD_ON_CPU = """
import pickle, sys
import numpy as np, torch
assert not torch.cuda.is_available()
folder = sys.argv[1]
out = {}
for name in sys.argv[2:]:
    with open(folder + "/" + name + ".pkl", "rb") as fh:
        est = pickle.load(fh)
    if "device" in est.get_params() and est.get_params()["device"] is not None:
        est.set_params(device="cpu")  # fitted with device="cuda": compute here instead
    X = np.load(folder + "/" + name + "-X.npy")
    out[name] = est.transform(X)
    out[name + "-tensor"] = est.transform(torch.from_numpy(X)).numpy()
np.savez(folder + "/out.npz", **out)
"""


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fitted_pickles_transform_on_a_cpu_only_machine(tmp_path):
    X = _data()
    names, expected = [], {}
    for i, case in enumerate(CASES):
        for how in ("tensor", "device"):
            name = f"m{i}-{how}"
            if how == "tensor":
                est = case.make().fit(*(torch.from_numpy(a).cuda() for a in case.fit_inputs(X)))
            else:
                est = case.make().set_params(device="cuda").fit(*case.fit_inputs(X))
            Xin = np.ascontiguousarray(case.transform_input(est, X))
            with open(tmp_path / f"{name}.pkl", "wb") as fh:
                pickle.dump(est, fh)
            np.save(tmp_path / f"{name}-X.npy", Xin)
            expected[name] = est.set_params(device=None).transform(Xin)
            names.append(name)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _LOAD_ON_CPU, str(tmp_path), *names],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    for name in names:
        assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-12)
        assert_allclose(got[name + "-tensor"], expected[name], rtol=1e-12, atol=1e-12)


def test_bench_gpu_smoke_on_cpu():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpu.py"), "--device", "cpu",
         "--n", "300", "--d", "8", "--k", "10", "--repeat", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for needle in ("floor torch.matmul(X, A.T)", "RelativeProjector(cosine, center=True)",
                   "floor X^T Y + SVD (float32)", "ProcrustesTranslator(orthogonal).fit",
                   "fitted attributes on CPU: ndarray"):
        assert needle in proc.stdout, needle
