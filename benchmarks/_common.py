"""Small helpers shared by the benchmark scripts (timing, machine, tables)."""

import os
import platform
import statistics
import time

import torch


def sync(device):
    """Wait for queued kernels on ``device`` (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeat=5, warmup=1, device="cpu"):
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls after ``warmup`` calls."""
    return statistics.median(times(fn, repeat=repeat, warmup=warmup, device=device))


def times(fn, repeat=5, warmup=1, device="cpu"):
    """Wall times of ``repeat`` calls of ``fn()`` (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def paired_times(fns, repeat=5, warmup=1, device="cpu"):
    """Wall times of several functions measured round-robin, one round per repeat.

    Interleaving makes the ratios between them robust to slow drifts of the
    machine (other processes, frequency changes): compare them round by round
    with :func:`median_ratio`.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    out = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            out[name].append(time.perf_counter() - t0)
    return out


def median_ratio(num, den):
    """Median over rounds of ``num[i] / den[i]``."""
    return statistics.median(a / b for a, b in zip(num, den))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device="cpu"):
    """One line: cores, CPU model, torch version and threads, GPU when used."""
    parts = [
        f"{os.cpu_count()} cores ({_cpu_model()})",
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} torch threads",
    ]
    if torch.device(device).type == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name(torch.device(device))}")
    if hasattr(os, "getloadavg"):  # other processes on the machine skew every timing
        parts.append("load average %.1f / %.1f / %.1f (1 / 5 / 15 min)" % os.getloadavg())
    return ", ".join(parts)


def peak_rss_bytes():
    """Peak resident set size of this process (VmHWM), in bytes."""
    return _status_kib("VmHWM") * 1024


def rss_bytes():
    """Current resident set size of this process (VmRSS), in bytes."""
    return _status_kib("VmRSS") * 1024


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def table(header, rows):
    """A markdown table as a string."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text, path=None):
    """Print ``text`` and append it to ``path`` when given."""
    print(text, flush=True)
    if path:
        with open(path, "a") as fh:
            fh.write(text + "\n")


#: The areas of the generated "Current results" tables of RESULTS.md, in order.
AREAS = (
    "relative projection, per metric",
    "translation fit and stream",
    "inverse projection",
    "anchors",
    "metrics",
    "Dask",
    "memory",
    "real encoders",
)


#: what a row's ratios divide: a time or a peak memory (lower is better), or an
#: accuracy (higher is better)
MEASURES = ("time", "memory", "accuracy")


def summary(area, case, ratio_floor, floor, ratio_peer="-", peer="-", *, out=None,
            script=None, quick=False, note="", measure="time"):
    """Record one row of the generated "Current results" tables (``run.py --results``).

    ``ratio_floor`` is time / floor (the least work the operation needs, measured in
    the same run) and ``ratio_peer`` time / the best other implementation measured
    in the same run (numbers, or "-" where there is none).  With
    ``measure="memory"`` they are peak extra memory / floor (the least memory the
    operation needs) and / best peer; with ``measure="accuracy"`` accuracy /
    ceiling and accuracy / best peer (above 1: better).  The row goes, as one JSON line, to
    ``<out>.summary.jsonl`` next to the report; without ``out`` it is not kept.
    """
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; one of {AREAS}")
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; one of {MEASURES}")
    if not out:
        return
    import json
    import sys

    row = dict(
        area=area, case=case,
        ratio_floor=ratio_floor if isinstance(ratio_floor, str) else round(float(ratio_floor), 3),
        floor=floor,
        ratio_peer=ratio_peer if isinstance(ratio_peer, str) else round(float(ratio_peer), 3),
        peer=peer, note=note, measure=measure,
        script=script or os.path.basename(sys.argv[0]),
        command=_command(),
        quick=bool(quick), machine=machine_description(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    with open(str(out) + ".summary.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _command():
    """This script's command line without ``--out FILE`` (a temporary path)."""
    import sys

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip or a == "--out" or a.startswith("--out="):
            skip = a == "--out"
            continue
        argv.append(a)
    return " ".join(["python", "benchmarks/" + os.path.basename(sys.argv[0]), *argv])
