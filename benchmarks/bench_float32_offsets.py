"""float32 relative kernels on offset data: cost against a bare GEMM, and accuracy (issue 12).

For an (n, d) float32 matrix onto k anchors, measured round-robin in one
process (minimum over rounds, of wall time and of the process's CPU time, the
steadier of the two on a loaded machine): the bare GEMM ``X @ A.T``, and
``functional.relative_projection`` for cosine (centered on the float64 anchor
mean), euclidean and angular, on data at offset 0 (the single-subtraction
path) and at an offset of ``--offset`` times the spread (the split float64
center: one more in-place subtraction per block).  ``--baseline DIR`` also
times another checkout's kernels in the same rounds (e.g. main before the
change), called as that checkout calls them (float32 center).  The last
columns give the largest error against the float64 computation on the same
values, in units of float32 roundoff of the largest output.

Run from the repository root::

    python benchmarks/bench_float32_offsets.py                      # 100k x 768, k=300
    python benchmarks/bench_float32_offsets.py --baseline ../main   # before/after
    python benchmarks/bench_float32_offsets.py --n 20000 --repeat 3  # quicker
"""

import argparse
import datetime
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import emit, machine_description, table  # noqa: E402

from sklearn_latent import functional as F  # noqa: E402

METRICS = ("cosine", "euclidean", "angular")


def _load_functional(checkout):
    path = Path(checkout).resolve() / "sklearn_latent" / "functional" / "__init__.py"
    spec = importlib.util.spec_from_file_location("baseline_functional", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel(mod, X, A, metric, center64, float32_center):
    center = None
    if metric != "euclidean":
        center = center64.to(torch.float32) if float32_center else center64
    return lambda: mod.relative_projection(X, A, metric, center=center)


def _rounds(fns, repeat):
    """Wall and process CPU seconds of each function, round-robin, ``repeat`` rounds."""
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {n: min(v) for n, v in wall.items()}, {n: min(v) for n, v in cpu.items()}


def _ulps(got, ref):
    err = (got.double() - ref).abs().max()
    return float(err / (torch.finfo(torch.float32).eps * ref.abs().max()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument("--offset", type=float, default=1e3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default=None, help="another checkout to time as well")
    parser.add_argument("--out", default=None, help="also append the report to this file")
    args = parser.parse_args(argv)

    base_mod = _load_functional(args.baseline) if args.baseline else None
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(args.n, args.d, generator=g)
    idx = torch.randperm(args.n, generator=g)[: args.k]
    rows = []
    for offset in (0.0, args.offset):
        X = Z + offset if offset else Z
        A = X[idx].contiguous()
        center64 = A.double().mean(dim=0)
        fns = {"GEMM X @ A.T": lambda: X @ A.T}
        for metric in METRICS:
            fns[f"{metric}"] = _kernel(F, X, A, metric, center64, False)
            if base_mod is not None:
                fns[f"{metric} (baseline)"] = _kernel(base_mod, X, A, metric, center64, True)
        with torch.no_grad():
            wall, cpu = _rounds(fns, args.repeat)
            sub = slice(0, min(args.n, 4096))  # accuracy on the first rows (float64 is slow)
            X64, A64 = X[sub].double(), A.double()
            for name, fn in fns.items():
                err = ""
                if name != "GEMM X @ A.T":
                    metric = name.split()[0]
                    mod = base_mod if "baseline" in name else F
                    c = None if metric == "euclidean" else center64
                    ref = F.relative_projection(X64, A64, metric, center=c)
                    got = _kernel(mod, X[sub], A, metric, center64, "baseline" in name)()
                    err = f"{_ulps(got, ref):.3g}"
                g_w, g_c = wall["GEMM X @ A.T"], cpu["GEMM X @ A.T"]
                rows.append([f"{offset:g}", name, f"{wall[name]:.3f}", f"{wall[name] / g_w:.3f}",
                             f"{cpu[name]:.3f}", f"{cpu[name] / g_c:.3f}", err])
    report = "\n".join([
        f"`python benchmarks/bench_float32_offsets.py {' '.join(argv or sys.argv[1:])}`, "
        f"{datetime.date.today()}, {machine_description('cpu')}, "
        f"n={args.n}, d={args.d}, k={args.k}, float32, min of {args.repeat} rounds",
        "",
        table(["offset", "kernel", "wall s", "wall / GEMM", "CPU s", "CPU / GEMM",
               "max error (float32 ulps of max)"], rows),
    ])
    emit(report, args.out)


if __name__ == "__main__":
    main()
