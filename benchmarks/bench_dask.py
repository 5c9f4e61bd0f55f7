"""Dask benchmark (issue 6): a disk store larger than the workers' memory, end to end.

Two float32 stores on disk (``np.memmap`` files): source embeddings X (n, d_x)
and paired target embeddings Y (n, d_y).  On a ``dask.distributed.LocalCluster``
whose workers together get less memory (``memory_limit``) than the store:

1. ``sklearn_latent.dask.fit_translator``: float64 statistics of every row
   block, merged in a tree, solved once (every row an anchor);
2. ``sklearn_latent.dask.transform`` of all of X, written block by block into
   an output memmap with ``dask.array.store``;
3. ``sklearn_latent.dask.select_anchors`` (300 anchors by fps on a 20,000-row sample).

The baseline is the same work in one process, block by block with numpy
(``translation_stats`` + ``merge_translation_stats``, then ``transform`` into
the output memmap), timed round-robin with the cluster in the same run.  Peak
worker memory is each worker's VmHWM (reset after start-up) and the largest
RSS sampled every 50 ms from outside.  The stores are opened per block by
path (a memmap pickles as its full data, so it must not enter the graph).

Run from the repository root::

    python benchmarks/bench_dask.py                 # 1.14 GiB store, workers 2 x 544 MiB
    python benchmarks/bench_dask.py --quick         # 0.16 GiB store, a smoke test
    python benchmarks/bench_dask.py --out /tmp/dask.md   # + /tmp/dask.md.summary.jsonl
"""

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["PYTHONPATH"] = os.pathsep.join(  # the workers import the same checkout
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)

import numpy as np  # noqa: E402
from _common import emit, machine_description, summary, table  # noqa: E402

MiB = 2.0**20
GiB = 2.0**30


class DiskArray:
    """A memmapped .npy-less float store opened by path at every access (pickles small)."""

    def __init__(self, path, shape, dtype=np.float32):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def _open(self, mode):
        return np.memmap(self.path, dtype=self.dtype, mode=mode, shape=self.shape)

    def __getitem__(self, key):
        mm = self._open("r")
        out = np.array(mm[key])  # a copy: the mapping is released with mm
        del mm
        return out

    def __setitem__(self, key, value):
        mm = self._open("r+")
        mm[key] = value
        mm.flush()
        del mm


def make_store(folder, n, d_x, d_y, block=65536, seed=0):
    """X standard normal + 1, Y = X W + 0.5 + noise, written block by block."""
    X = DiskArray(folder / "X.f32", (n, d_x))
    Y = DiskArray(folder / "Y.f32", (n, d_y))
    expected = {folder / "X.f32": n * d_x * 4, folder / "Y.f32": n * d_y * 4}
    if all(p.exists() and p.stat().st_size == s for p, s in expected.items()):
        return X, Y, 0.0
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((d_x, d_y)) / np.sqrt(d_x)).astype(np.float32)
    mx = np.memmap(X.path, dtype=np.float32, mode="w+", shape=X.shape)
    my = np.memmap(Y.path, dtype=np.float32, mode="w+", shape=Y.shape)
    for start in range(0, n, block):
        stop = min(start + block, n)
        xb = rng.standard_normal((stop - start, d_x), dtype=np.float32) + 1.0
        mx[start:stop] = xb
        my[start:stop] = xb @ W + 0.5 + 0.01 * rng.standard_normal((stop - start, d_y),
                                                                    dtype=np.float32)
    mx.flush(), my.flush()
    del mx, my
    return X, Y, time.perf_counter() - t0


# ------------------------------------------------------------------ worker side
def _worker_init():
    import torch

    import sklearn_latent.dask  # noqa: F401  (import cost out of the timings)

    return torch.get_num_threads()


def _worker_reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _worker_status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


class RssSampler:
    """Largest RSS of the given processes, sampled every ``interval`` seconds."""

    def __init__(self, pids, interval=0.05):
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.interval = interval
        self.peak = {p.pid: 0 for p in self.procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for p in self.procs:
                try:
                    self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
                except Exception:  # a worker restarted: keep what we saw
                    pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------ the two contenders
def serial(X, Y, out, rows_per_block, method):
    """One process, block by block: the in-memory library on each block."""
    from sklearn_latent import ProcrustesTranslator, merge_translation_stats, translation_stats

    t0 = time.perf_counter()
    stats = None
    for start in range(0, X.shape[0], rows_per_block):
        sl = slice(start, start + rows_per_block)
        part = translation_stats(X[sl], Y[sl], gram=False)
        stats = part if stats is None else merge_translation_stats(stats, part)
    tr = ProcrustesTranslator(method).fit_from_stats(stats)
    t1 = time.perf_counter()
    for start in range(0, X.shape[0], rows_per_block):
        sl = slice(start, start + rows_per_block)
        out[sl] = tr.transform(X[sl])
    return tr, t1 - t0, time.perf_counter() - t1


def with_dask(X, Y, out, rows_per_block, method):
    import dask.array as da

    from sklearn_latent import ProcrustesTranslator
    from sklearn_latent import dask as sld

    meta = np.empty((0, 0), dtype=np.float32)
    Xd = da.from_array(X, chunks=(rows_per_block, -1), meta=meta)
    Yd = da.from_array(Y, chunks=(rows_per_block, -1), meta=meta)
    t0 = time.perf_counter()
    tr = sld.fit_translator(ProcrustesTranslator(method), Xd, Yd)
    t1 = time.perf_counter()
    da.store(sld.transform(tr, Xd), out, lock=False)
    return tr, t1 - t0, time.perf_counter() - t1


def main(argv=None):
    p = argparse.ArgumentParser(description="Dask end-to-end benchmark (issue 6).")
    p.add_argument("--rows", type=int, default=480_000, help="rows of the store")
    p.add_argument("--d-x", type=int, default=512)
    p.add_argument("--d-y", type=int, default=128)
    p.add_argument("--block", type=int, default=4096, help="rows per dask block")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="544MiB", help="per worker")
    p.add_argument("--method", default="orthogonal")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--dir", default=None, help="folder of the store (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the store files")
    p.add_argument("--quick", action="store_true", help="small store, a smoke test")
    p.add_argument("--device", default="cpu", help="only cpu is benchmarked here")
    p.add_argument("--out", default=None, help="also append the report to this file")
    args = p.parse_args(argv)
    if args.device != "cpu":
        print("bench_dask: CPU workers only; --device ignored", flush=True)
    if args.quick:
        args.rows = 1 << 16
        # a smoke test: workers start at ~440 MiB (torch, dask imported) and pause at
        # 80 % of 544 MiB, which hung the run (2026-12-06, load ~20)
        args.memory_limit = "1GiB"

    import dask
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    folder = Path(args.dir or tempfile.mkdtemp(prefix="sklearn_latent_bench_dask_"))
    folder.mkdir(parents=True, exist_ok=True)
    n, d_x, d_y = args.rows, args.d_x, args.d_y
    need = n * (d_x + 2 * d_y) * 4 * 1.1
    free = shutil.disk_usage(folder).free
    if need > free:
        sys.exit(f"bench_dask: the store needs {need / GiB:.1f} GiB, {folder} has "
                 f"{free / GiB:.1f} GiB free; pass --rows smaller or --dir elsewhere.")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M")
    load_before = os.getloadavg()
    try:
        X, Y, t_make = make_store(folder, n, d_x, d_y)
        store_bytes = n * (d_x + d_y) * 4
        out = DiskArray(folder / "out_serial.f32", (n, d_y))
        out_d = DiskArray(folder / "out_dask.f32", (n, d_y))
        for o in (out, out_d):
            np.memmap(o.path, dtype=np.float32, mode="w+", shape=o.shape).flush()
        limit = parse_bytes(args.memory_limit)
        print(f"store: X {n:,} x {d_x} + Y {n:,} x {d_y} float32 = {store_bytes / GiB:.2f} GiB "
              f"in {folder} (written in {t_make:.1f} s); workers {args.workers} x "
              f"{limit / GiB:.2f} GiB", flush=True)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=limit, dashboard_address=None,
                          host="127.0.0.1") as cluster, Client(cluster) as client:
            threads = client.run(_worker_init)
            pids = list(client.run(os.getpid).values())
            base = client.run(_worker_status, "VmRSS")
            timings = {"serial": [], "dask": []}
            peaks, sampled = [], []
            for rep in range(args.repeats):
                tr_s, fit_s, tf_s = serial(X, Y, out, args.block, args.method)
                timings["serial"].append((fit_s, tf_s))
                client.run(_worker_reset_peak)
                with RssSampler(pids) as sampler, dask.config.set(scheduler=client):
                    tr_d, fit_d, tf_d = with_dask(X, Y, out_d, args.block, args.method)
                timings["dask"].append((fit_d, tf_d))
                peaks.append(max(client.run(_worker_status, "VmHWM").values()))
                sampled.append(max(sampler.peak.values()))
                print(f"round {rep + 1}/{args.repeats}: serial fit {fit_s:.1f} s + transform "
                      f"{tf_s:.1f} s; dask fit {fit_d:.1f} s + transform {tf_d:.1f} s; worker "
                      f"peak {peaks[-1] / MiB:.0f} MiB", flush=True)
            from sklearn_latent import dask as sld
            import dask.array as da

            Xd = da.from_array(X, chunks=(args.block, -1), meta=np.empty((0, 0), np.float32))
            t0 = time.perf_counter()
            with dask.config.set(scheduler=client):
                idx = sld.select_anchors(Xd, 300, "fps", sample_size=20_000, random_state=0)
            t_anchors = time.perf_counter() - t0
        # correctness: same map, same output
        coef_err = float(np.abs(tr_d.coef_ - tr_s.coef_).max())
        rows = np.random.default_rng(1).choice(n, 2000, replace=False)
        out_err = float(np.abs(out_d[np.sort(rows)] - out[np.sort(rows)]).max())
        assert coef_err < 1e-10 and out_err < 1e-4, (coef_err, out_err)
        assert len(np.unique(idx)) == 300
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
        elif not args.keep:
            for name in ("X.f32", "Y.f32", "out_serial.f32", "out_dask.f32"):
                (folder / name).unlink(missing_ok=True)

    def med(name, i):
        return statistics.median(t[i] for t in timings[name])

    def ratio(i):
        return statistics.median(d[i] / s[i] for d, s in zip(timings["dask"], timings["serial"]))

    x_bytes, out_bytes = n * d_x * 4, n * d_y * 4
    rows_tab = [
        ["fit_translator (stats of X and Y, tree merge, solve)", f"{med('serial', 0):.1f}",
         f"{med('dask', 0):.1f}", f"{ratio(0):.2f}",
         f"{n / med('dask', 0):,.0f} rows/s, {store_bytes / GiB / med('dask', 0):.2f} GiB/s"],
        ["transform X -> memmap (da.store)", f"{med('serial', 1):.1f}",
         f"{med('dask', 1):.1f}", f"{ratio(1):.2f}",
         f"{n / med('dask', 1):,.0f} rows/s, {(x_bytes + out_bytes) / GiB / med('dask', 1):.2f}"
         " GiB/s read + written"],
    ]
    load_after = os.getloadavg()
    base_mib = max(base.values()) / MiB
    text = "\n".join([
        "",
        f"### End to end on a {store_bytes / GiB:.1f} GiB disk store, workers {args.workers} x "
        f"{limit / GiB:.2f} GiB",
        "",
        f"- machine: {machine_description()}; workers: {args.workers} processes x 1 thread "
        f"(torch threads per worker: {sorted(set(threads.values()))})",
        f"- date: {started} UTC; load average before {load_before[0]:.1f} / {load_before[1]:.1f}"
        f" / {load_before[2]:.1f}, after {load_after[0]:.1f} / {load_after[1]:.1f} / "
        f"{load_after[2]:.1f} (1 / 5 / 15 min)",
        f"- command: `python benchmarks/bench_dask.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- store: X {n:,} x {d_x} + Y {n:,} x {d_y} float32 memmaps = "
        f"{store_bytes / GiB:.2f} GiB (+ {out_bytes / GiB:.2f} GiB output); blocks of "
        f"{args.block:,} rows; method {args.method!r}; all rows are anchors; "
        f"{args.repeats} round(s), serial and dask interleaved",
        "",
        table(["step", "serial s", "dask s", "dask / serial", "dask throughput"], rows_tab),
        "",
        f"- peak worker memory: VmHWM {max(peaks) / MiB:.0f} MiB (max over workers and rounds; "
        f"{base_mib:.0f} MiB after start-up and imports), sampled RSS {max(sampled) / MiB:.0f} "
        f"MiB; memory_limit {limit / MiB:.0f} MiB per worker, {args.workers * limit / GiB:.2f} "
        f"GiB in all vs a {store_bytes / GiB:.2f} GiB store",
        f"- exactness: max |coef_ dask - coef_ serial| = {coef_err:.1e}; max |output "
        f"difference| on 2,000 rows = {out_err:.1e}",
        f"- select_anchors(X, 300, 'fps', sample_size=20000) on the store: {t_anchors:.1f} s",
        "",
    ])
    emit(text, args.out)
    where = (f"{store_bytes / GiB:.2f} GiB disk store, {args.workers} workers x "
             f"{limit / MiB:.0f} MiB (peak worker {max(peaks) / MiB:.0f} MiB)")
    for i, step in enumerate(("fit_translator", "transform -> memmap")):
        summary("Dask", f"{step}, {where}", "-", "-", ratio(i),
                "one process, block by block, same blocks (same run)",
                out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
