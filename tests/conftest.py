"""Shared fixtures: one backend fixture so every behaviour is tested in each array kind.

``backend`` is parametrized over ``"numpy"``, ``"torch-cpu"`` and ``"torch-cuda"``
(the last marked ``cuda`` and skipped where no CUDA device is present).  Tests
write their data as numpy, convert it with ``backend.asarray`` and read results
back with ``backend.to_numpy``; ``backend.is_kind`` checks that a result came
back in the input's kind (a tensor on the input's device).
"""

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

# Deterministic, modest property tests: the same examples on every CI run.
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=25,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# More examples (random) for local exploration: HYPOTHESIS_PROFILE=dev pytest ...
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CUDA = torch.cuda.is_available()


def pytest_configure(config):
    """One BLAS/OpenMP/torch thread per process.

    The test data are small, where one thread is fastest anyway; and ``-n 2`` on
    2 cores must not run 2 x 2 spinning BLAS threads (OpenBLAS slows down
    several-fold when the cores are oversubscribed).
    """
    threadpool_limits(1)
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Skip every ``cuda``-marked test (and backend parameter) when CUDA is unavailable."""
    if CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


class Backend:
    """Converts numpy test data into one array kind and results back."""

    def __init__(self, name):
        self.name = name
        self.is_torch = name.startswith("torch")
        self.device = torch.device("cuda" if name == "torch-cuda" else "cpu")

    def __repr__(self):
        return f"Backend({self.name!r})"

    def asarray(self, a, dtype=None):
        """``a`` (numpy) in this kind; a fresh copy so tests never share memory by accident."""
        a = np.array(a, dtype=dtype, copy=True)
        if self.is_torch:
            return torch.from_numpy(a).to(self.device)
        return a

    def to_numpy(self, r):
        """Any result as a numpy array (checked to be of this kind first)."""
        assert self.is_kind(r), f"{type(r).__name__} is not of kind {self.name}"
        if isinstance(r, torch.Tensor):
            return r.detach().cpu().numpy()
        return np.asarray(r)

    def is_kind(self, r):
        """Whether ``r`` is a numpy array (numpy kind) or a tensor on this device."""
        if self.is_torch:
            return isinstance(r, torch.Tensor) and r.device.type == self.device.type
        return isinstance(r, np.ndarray)

    def dtype_name(self, r):
        """``"float32"``, ``"float64"``, ... for numpy arrays and tensors alike."""
        if isinstance(r, torch.Tensor):
            return str(r.dtype).replace("torch.", "")
        return str(r.dtype)


@pytest.fixture(
    params=["numpy", "torch-cpu", pytest.param("torch-cuda", marks=pytest.mark.cuda)],
)
def backend(request):
    """The array kind a test runs in (numpy, CPU tensor, CUDA tensor)."""
    return Backend(request.param)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """A torch device for the pure kernels in :mod:`sklearn_latent.functional`."""
    return torch.device(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
