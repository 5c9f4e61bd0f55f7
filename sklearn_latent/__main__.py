"""Command line: ``sklearn-latent`` (or ``python -m sklearn_latent``).

``demo``
    Trains small encoders on scikit-learn's digits (no download) and evaluates
    zero-shot stitching between all of them with every method.
``evaluate``
    The same evaluation on your own embedding files.
``translate``
    Fits a translator on parallel anchors and translates new embeddings;
    fitted translators can be saved and loaded.
``compare``
    Similarity of embedding spaces (CKA, CKNNA, shape metrics, ...), optionally
    calibrated against a permutation null (``sklearn_latent/_cli/compare.py``).

Run ``sklearn-latent COMMAND --help`` for the options.  Errors are one line on
stderr (``sklearn-latent: error: ...``); the exit status is 2 for a wrong
command line and 1 for unusable data.  Every warning of the library is printed
on stderr (``sklearn-latent: warning: ...``).  A command that fails leaves no
output file behind: files are written under temporary names and moved into
place once everything succeeded.

Adding a subcommand: a module ``sklearn_latent/_cli/NAME.py`` with
``add_parser(subparsers)`` (which calls ``subparsers.add_parser(...)`` with
``formatter_class=HelpFormatter`` and ``set_defaults(run=run)``) and
``run(args, out)``; list ``NAME`` in :data:`CLI_MODULES`.
"""

import argparse
import contextlib
import importlib
import os
import pickle
import re
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile

import numpy as np

PROG = "sklearn-latent"
FORMATS = (".npy", ".npz", ".pt", ".pth")
TRANSLATE_METHODS = ("orthogonal", "scaled", "linear", "affine", "inverse", "inverse-pruned")
DEFAULT_METHODS = ("absolute", "relative", "orthogonal")
#: modules of ``sklearn_latent._cli`` that add a subcommand (``add_parser``, ``run``)
CLI_MODULES = ("compare", "migrate")


class UsageError(Exception):
    """A wrong command line (exit status 2)."""


class DataError(Exception):
    """Unusable input data (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions and epilogs paragraph by paragraph (blank-line separated);
    a paragraph whose lines are indented (a command example) is kept as written."""

    def _fill_text(self, text, width, indent):
        paragraphs = []
        for para in text.split("\n\n"):
            if para.startswith(" "):
                paragraphs.append(textwrap.indent(para, indent))
            else:
                paragraphs.append(textwrap.fill(" ".join(para.split()), width,
                                                initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(message):
    return " ".join(_ANSI.sub("", str(message)).split())


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def _split_key(spec):
    """``FILE.npz:KEY`` / ``FILE.pt:KEY`` -> (FILE, KEY); anything else -> (spec, None)."""
    head, sep, key = spec.rpartition(":")
    if sep and key and os.path.splitext(head)[1].lower() in (".npz", ".pt", ".pth"):
        return head, key
    return spec, None


def _pick(container, key, path, what):
    names = list(container)
    if key is not None:
        if key not in container:
            raise DataError(f"{what}: {path!r} has no array {key!r} (it has {names}).")
        return container[key]
    if len(names) != 1:
        raise DataError(
            f"{what}: {path!r} holds {len(names)} arrays {names}; choose one with "
            f"'{path}:NAME'."
        )
    return container[names[0]]


def load_array(spec, what):
    """Read one array from a .npy, .npz or .pt file (``FILE:KEY`` picks an entry).

    Never unpickles: .npy/.npz are read with ``allow_pickle=False`` and .pt
    files with ``torch.load(weights_only=True)``.
    """
    path, key = _split_key(spec)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DataError(
            f"{what}: {path!r} has an unsupported format {ext or '(no extension)'!r}; use "
            ".npy, .npz or .pt."
        )
    if not os.path.exists(path):
        raise DataError(f"{what}: file {path!r} does not exist.")
    if os.path.isdir(path):
        raise DataError(f"{what}: {path!r} is a directory, not a file.")
    try:
        if ext in (".pt", ".pth"):
            import torch

            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                found = re.search(r"Unsupported global: (?:GLOBAL )?([\w.]+)", str(exc))
                held = f" ({found.group(1)})" if found else ""
                raise DataError(
                    f"{what}: {path!r} holds Python objects{held} beside tensors; it is refused "
                    "because loading it could run code. Save a tensor or a dict of tensors."
                ) from None
            if isinstance(obj, dict):
                obj = _pick(obj, key, path, what)
            if not isinstance(obj, torch.Tensor):
                raise DataError(
                    f"{what}: {path!r} holds a {type(obj).__name__}, not a tensor."
                )
            arr = obj.detach().cpu().numpy()
        else:
            data = np.load(path, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                with data:
                    arr = _pick(data, key, path, what)
            else:
                arr = data
    except DataError:
        raise
    except (ValueError, OSError, EOFError, RuntimeError, KeyError, zipfile.BadZipFile,
            pickle.UnpicklingError) as exc:
        raise DataError(
            f"{what}: cannot read {path!r} as {ext} ({type(exc).__name__}: {_one_line(exc)})."
        ) from exc
    return np.asarray(arr)


def _embeddings(spec, what):
    arr = load_array(spec, what)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{what}: {spec!r} holds {arr.dtype} values; expected numbers.")
    if arr.ndim != 2:
        raise DataError(
            f"{what}: {spec!r} has shape {arr.shape}; expected a 2-D array (samples x features)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what}: {spec!r} is empty (shape {arr.shape}).")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise DataError(f"{what}: {spec!r} contains NaN or infinity (in {bad} row(s)).")
    return arr


def _vector(spec, what):
    arr = load_array(spec, what)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{what}: {spec!r} has shape {arr.shape}; expected a 1-D array.")
    return arr


def _indices(spec, what, n_rows):
    arr = _vector(spec, what)
    if arr.dtype.kind not in "iub":
        raise DataError(f"{what}: {spec!r} holds {arr.dtype} values; expected integer row "
                        "indices (or a boolean mask).")
    if arr.dtype.kind == "b":
        if arr.size != n_rows:
            raise DataError(f"{what}: the boolean mask {spec!r} has {arr.size} entries but the "
                            f"embeddings have {n_rows} rows.")
        arr = np.flatnonzero(arr)
    elif arr.min() < 0 or arr.max() >= n_rows:
        raise DataError(f"{what}: {spec!r} has row indices in [{arr.min()}, {arr.max()}], "
                        f"outside [0, {n_rows}) for embeddings with {n_rows} rows.")
    if np.unique(arr).size != arr.size:
        raise DataError(f"{what}: {spec!r} repeats row indices.")
    return arr.astype(np.int64)


def _check_output(path, what, extensions, overwrite, inputs=()):
    """Refuse an output file that cannot be written, before anything is computed."""
    ext = os.path.splitext(path)[1].lower()
    if extensions and ext not in extensions:
        names = ", ".join(extensions[:-1]) + f" or {extensions[-1]}"
        raise DataError(f"{what}: {path!r} must end in {names}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"{what}: the folder {folder!r} does not exist; create it first.")
    if os.path.isdir(path):
        raise DataError(f"{what}: {path!r} is a folder; give a file name.")
    if not os.path.exists(path):
        return
    for other in inputs:
        if os.path.exists(other) and os.path.samefile(path, other):
            raise DataError(f"{what}: {path!r} is also an input file; write elsewhere.")
    if not overwrite:
        raise DataError(f"{what}: {path!r} already exists; pass --overwrite to replace it.")


class _Outputs:
    """Files written under temporary names beside their destination, moved into place by
    :meth:`commit`; on any failure before that, nothing is left behind."""

    def __init__(self):
        self._pending = []

    def __enter__(self):
        return self

    def open(self, path):
        """A binary file object for ``path`` (a temporary file in the same folder)."""
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                   suffix=".part")
        self._pending.append((tmp, path))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would have given
        return os.fdopen(fd, "wb")

    def commit(self):
        for tmp, path in self._pending:
            os.replace(tmp, path)
        self._pending = []

    def __exit__(self, *exc):
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._pending = []
        return False


def _save_array(arr, fh, path):
    if os.path.splitext(path)[1].lower() == ".npy":
        np.save(fh, arr)
    else:
        import torch

        torch.save(torch.from_numpy(np.ascontiguousarray(arr)), fh)


# --------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _threads(n):
    """Limit BLAS/OpenMP and torch threads to ``n`` (``None``: leave them alone)."""
    if n is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _anchor_count(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value.is_integer() and "." not in text:
        if value < 1:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
        return int(value)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be an int >= 1 or a fraction in (0, 1]")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must lie strictly between 0 and 1")
    return value


def _methods(selected, all_methods):
    if not selected:
        return list(DEFAULT_METHODS)
    if "all" in selected:
        return list(all_methods)
    return list(dict.fromkeys(selected))


def _print_results(results, out):
    """The accuracy matrix of each method, then a one-line-per-method summary."""
    import pandas as pd

    names = results.attrs["spaces"]
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        for method in results.attrs["methods"]:
            part = results[results["method"] == method]
            table = part.pivot(index="source", columns="target", values="accuracy")
            table = table.reindex(index=names, columns=names)
            table.index.name, table.columns.name = "source \\ target", None
            print(f"\n{method}: zero-shot accuracy (rows: source space, columns: target "
                  "space and its head)", file=out)
            print(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="n/a"), file=out)
        print("\nsummary (mean over pairs; n/a: absolute baseline between different widths)",
              file=out)
        print(_summary(results).to_string(float_format=lambda v: f"{v:.3f}", na_rep="n/a"),
              file=out)


def _summary(results):
    diag = results["source"] == results["target"]
    table = results.assign(
        own=results["accuracy"].where(diag), stitched=results["accuracy"].where(~diag)
    ).groupby("method", sort=False)[["own", "stitched"]].mean()
    table["stitched_min"] = results[~diag].groupby("method", sort=False)["accuracy"].min()
    return table.rename(columns={"own": "diagonal", "stitched": "off-diagonal",
                                 "stitched_min": "off-diagonal min"})


def _check_folder_output(folder, plot):
    """Refuse an --out folder that cannot be written (or a missing matplotlib) up front."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DataError(f"--out: {folder!r} is a file, not a folder.")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError("stitching.png needs matplotlib: pip install "
                              "'sklearn-latent[eval]', or pass --no-plot.") from None


def _write_outputs(results, folder, plot, out, notes=()):
    """stitching.csv, warnings.txt (one line per warning; empty when none) and
    stitching.png in ``folder``, all moved into place together at the end."""
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, name)
             for name in ("stitching.csv", "warnings.txt", "stitching.png")]
    with _Outputs() as files:
        with files.open(paths[0]) as fh:
            fh.write(results.to_csv(index=False, float_format="%.6g").encode())
        lines = [*notes, *results.attrs.get("warnings", ())]
        with files.open(paths[1]) as fh:
            fh.write("".join(f"{_one_line(line)}\n" for line in lines).encode())
        if plot:
            import matplotlib.pyplot as plt

            from .stitching import plot_stitching_matrix

            fig = plot_stitching_matrix(results)
            with files.open(paths[2]) as fh:
                fig.savefig(fh, dpi=110, format="png")
            plt.close(fig)
        files.commit()
    print("", file=out)
    for path in paths[:3 if plot else 2]:
        print(f"wrote {path}", file=out)


def _report_warnings(messages, err, written=False):
    """The per-cell warnings of ``stitching_matrix`` on stderr: the first of each kind in
    full (kinds differ by more than their numbers), then how many alike followed."""
    groups = {}
    for message in messages:
        cell, _, text = message.partition(": ")
        groups.setdefault(re.sub(r"\d+", "#", text), []).append(message)
    where = " (all of them in warnings.txt)" if written else ""
    for alike in groups.values():
        more = f" [and {len(alike) - 1} alike in other cells{where}]" if len(alike) > 1 else ""
        print(f"{PROG}: warning: {_one_line(alike[0])}{more}", file=err)


def _stitching(spaces, labels, *, written=False, **kwargs):
    """``stitching_matrix`` with its per-cell warnings printed on stderr."""
    from .stitching import stitching_matrix

    with warnings.catch_warnings():
        # the summary points to results.attrs, out of a shell's reach: print them instead
        warnings.filterwarnings("ignore", message=r".*warning\(s\) during the fits",
                                category=UserWarning)
        results = stitching_matrix(spaces, labels, **kwargs)
    _report_warnings(results.attrs["warnings"], sys.stderr, written)
    return results


_SPACE_ERRORS = (ValueError, ArithmeticError, RuntimeError)


def _stitching_each_space(spaces, labels, *, written=False, **kwargs):
    """``_stitching`` of every usable space: a space whose own evaluation fails is reported
    (named) and left out; returns the results and ``{name: message}`` of those left out."""
    from .stitching import stitching_matrix

    try:
        return _stitching(spaces, labels, written=written, **kwargs), {}
    except _SPACE_ERRORS as exc:
        if len(spaces) == 1:
            name = next(iter(spaces))
            raise DataError(_fit_error(exc, {"X": f"--space {name}", "y": f"--space {name}"})
                            ) from exc
        failure = exc
    quick = dict(kwargs, similarity=(), retrieval=False, progress=False)
    bad = {}
    for name, X in spaces.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stitching_matrix({name: X}, labels, **quick)
        except _SPACE_ERRORS as exc:
            bad[name] = _fit_error(exc, {"X": f"--space {name}", "y": f"--space {name}"})
    if not bad or len(bad) == len(spaces):  # not one space's fault
        raise DataError(_one_line(failure)) from failure
    for name, message in bad.items():
        print(f"{PROG}: error: --space {name} is left out: {message}", file=sys.stderr)
    good = {name: X for name, X in spaces.items() if name not in bad}
    return _stitching(good, labels, written=written, **kwargs), bad


def _evaluation_options(p):
    p.add_argument("--method", action="append", metavar="METHOD",
                   help="a stitching method (repeat the option for several): absolute, "
                        "relative, product, orthogonal, scaled, linear, affine, inverse, "
                        "inverse-pruned, or 'all'; default: absolute, relative and orthogonal "
                        "(the demo: all)")
    p.add_argument("--n-anchors", type=_anchor_count, default=300, metavar="N",
                   help="number of anchors (or a fraction in (0, 1] of the training rows) "
                        "when they are not given by --anchors; default: 300")
    p.add_argument("--anchor-strategy", choices=("random", "fps", "kmeans", "stratified"),
                   default="random", metavar="STRATEGY",
                   help="how anchors are picked in the first space's training rows: random, "
                        "fps, kmeans or stratified; default: random")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the split and of the anchors; default: 0")
    p.add_argument("--no-plot", action="store_true",
                   help="do not write stitching.png (no matplotlib needed)")
    p.add_argument("--progress", action="store_true", help="show a progress bar (needs tqdm)")


def _check_methods(selected):
    from .stitching import METHODS

    for m in selected or ():
        if m != "all" and m not in METHODS:
            raise UsageError(
                f"argument --method: invalid choice {m!r} (choose from "
                f"{', '.join(METHODS)}, all)"
            )
    return _methods(selected, METHODS)


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------
def _cmd_demo(args, out):
    from .datasets import DIGITS_ENCODERS, make_digits_spaces
    from .stitching import METHODS

    methods = _check_methods(args.method) if args.method else list(METHODS)
    _check_folder_output(args.out, not args.no_plot)
    if args.quick:
        encoders = {"mlp32-s0": ((32,), 0), "mlp32-s1": ((32,), 1), "mlp16-s2": ((16,), 2)}
        max_iter = 40
        if not args.method:
            methods = ["absolute", "relative", "orthogonal", "inverse-pruned"]
    else:
        encoders, max_iter = DIGITS_ENCODERS, 200
    start = time.perf_counter()
    print(f"training {len(encoders)} encoders on scikit-learn's digits "
          f"({', '.join(encoders)}) ...", file=out)
    data = make_digits_spaces(encoders, max_iter=max_iter, random_state=args.seed)
    trained = time.perf_counter()
    accuracy = ", ".join(f"{k} {v:.3f}" for k, v in data.accuracy.items())
    print(f"  done in {trained - start:.1f} s; own test accuracy: {accuracy}", file=out)
    print(f"stitching {len(encoders)}x{len(encoders)} pairs with {', '.join(methods)} "
          f"({args.n_anchors} anchors, {len(data.test)} test digits) ...", file=out)
    results = _stitching(
        data.spaces, data.target, written=True, methods=methods,
        split=(data.train, data.test), anchors=args.anchor_strategy, n_anchors=args.n_anchors, random_state=args.seed,
        progress=args.progress,
    )
    print(f"  done in {time.perf_counter() - trained:.1f} s", file=out)
    _print_results(results, out)
    _write_outputs(results, args.out, not args.no_plot, out)
    print(f"total {time.perf_counter() - start:.1f} s", file=out)
    return 0


def _cmd_evaluate(args, out):
    methods = _check_methods(args.method)
    names = {}
    for item in args.space:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"argument --space: expected NAME=FILE, got {item!r}")
        if name in names:
            raise UsageError(f"argument --space: the name {name!r} is given twice")
        names[name] = path
    if args.out is not None:
        _check_folder_output(args.out, not args.no_plot)
    spaces = {name: _embeddings(path, f"--space {name}") for name, path in names.items()}
    labels = _vector(args.labels, "--labels")
    n = labels.shape[0]
    for name, X in spaces.items():
        if X.shape[0] != n:
            raise DataError(
                f"--space {name}: {X.shape[0]} rows but --labels has {n}; every file must "
                "hold the same samples in the same order."
            )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise DataError(f"--labels: {args.labels!r} contains NaN or infinity.")
    anchors = args.anchor_strategy
    if args.anchors is not None:
        anchors = _indices(args.anchors, "--anchors", n)
    split = None
    if args.train is not None:
        train = _indices(args.train, "--train", n)
        test = np.setdiff1d(np.arange(n), train)
        if test.size == 0:
            raise DataError("--train: every row is a training row; no test rows are left.")
        split = (train, test)
    n_train = len(split[0]) if split else n - int(round(args.test_size * n))
    if isinstance(anchors, str) and isinstance(args.n_anchors, int) and args.n_anchors > n_train:
        raise DataError(
            f"--n-anchors {args.n_anchors} exceeds the {n_train} training rows; choose fewer "
            "anchors (or a fraction such as 0.3)."
        )
    shapes = ", ".join(f"{k} {v.shape[1]}-d" for k, v in spaces.items())
    print(f"evaluating {len(spaces)} spaces ({shapes}) "
          f"on {n} samples with {', '.join(methods)} ...", file=out)
    start = time.perf_counter()
    results, left_out = _stitching_each_space(
        spaces, labels, written=args.out is not None, methods=methods, split=split,
        test_size=args.test_size,
        anchors=anchors, n_anchors=args.n_anchors, random_state=args.seed,
        progress=args.progress,
    )
    print(f"  done in {time.perf_counter() - start:.1f} s ({len(results.attrs['anchors'])} "
          f"anchors, {len(results.attrs['test'])} test rows)", file=out)
    _print_results(results, out)
    notes = [f"--space {name} is left out: {message}" for name, message in left_out.items()]
    if args.out is not None:
        _write_outputs(results, args.out, not args.no_plot, out, notes)
    return 1 if left_out else 0


def _fit_error(exc, roles):
    """A fit's error with the estimator's argument names (X, y) replaced by the files."""
    text = _one_line(exc)
    for name, role in roles.items():
        text = re.sub(rf"(?<![\w'\"-]){name}(?![\w'\"-])", role, text)
    return text


def _cmd_translate(args, out):
    from .inverse import RelativeTranslator
    from .persist import PersistenceError, load, save
    from .stitching import _PRUNING
    from .translate import ProcrustesTranslator

    fitting = args.source is not None or args.target is not None
    if args.model is not None and fitting:
        raise UsageError("give either --model (a saved translator) or --source and --target "
                         "(to fit one), not both")
    if args.model is None and (args.source is None or args.target is None):
        raise UsageError("--source and --target are both needed to fit a translator "
                         "(or --model to load one)")
    if args.apply is None and args.save_model is None:
        raise UsageError("nothing to do: give --apply NEW --out OUT, --save-model FILE, or both")
    if (args.apply is None) != (args.out is None):
        raise UsageError("--apply and --out go together")
    if args.model is not None and args.anchors is not None:
        raise UsageError("--anchors is only used when fitting (with --source and --target)")
    # every argument is checked before anything is computed or written
    inputs = [_split_key(spec)[0] for spec in (args.source, args.target, args.anchors,
                                               args.apply, args.model) if spec is not None]
    if args.out is not None:
        _check_output(args.out, "--out", (".npy", ".pt", ".pth"), args.overwrite, inputs)
    if args.save_model is not None:
        _check_output(args.save_model, "--save-model", (), args.overwrite, inputs)
        if args.out is not None and os.path.abspath(args.out) == os.path.abspath(
                args.save_model):
            raise UsageError("--out and --save-model name the same file")
    new = None if args.apply is None else _embeddings(args.apply, "--apply")

    if args.model is not None:
        if not os.path.exists(args.model):
            raise DataError(f"--model: file {args.model!r} does not exist.")
        try:
            translator = load(args.model)
        except PersistenceError as exc:
            raise DataError(f"--model: {exc}") from exc
        if not hasattr(translator, "transform") or type(translator).__name__ not in (
            "ProcrustesTranslator", "RelativeTranslator"
        ):
            raise DataError(f"--model: {args.model!r} holds a {type(translator).__name__}, "
                            "not a translator.")
        width = translator.n_features_in_
        if new is not None and new.shape[1] != width:
            raise DataError(f"--apply: {args.apply!r} has {new.shape[1]} features but the "
                            f"translator maps {width}-d source embeddings.")
        print(f"loaded {type(translator).__name__} from {args.model}: "
              f"{width} -> {_width_out(translator)} features", file=out)
    else:
        X = _embeddings(args.source, "--source")
        Y = _embeddings(args.target, "--target")
        if X.shape[0] != Y.shape[0]:
            raise DataError(
                f"--source has {X.shape[0]} rows but --target has {Y.shape[0]}; row i of both "
                "must be the same sample."
            )
        if new is not None and new.shape[1] != X.shape[1]:
            raise DataError(f"--apply: {args.apply!r} has {new.shape[1]} features but "
                            f"--source has {X.shape[1]}: the translator maps {X.shape[1]}-d "
                            "source embeddings.")
        idx = None if args.anchors is None else _indices(args.anchors, "--anchors", X.shape[0])
        anchors = "random" if idx is None else idx  # "random" with n_anchors=None: every row
        if args.method.startswith("inverse"):
            pruning = _PRUNING if args.method == "inverse-pruned" else {}
            translator = RelativeTranslator(n_anchors=None, anchors=anchors, random_state=0,
                                            **pruning)
        else:
            translator = ProcrustesTranslator(args.method, n_anchors=None, anchors=anchors)
        roles = {"X": f"--source {args.source}", "y": f"--target {args.target}"}
        try:
            translator.fit(X, Y)  # its warnings (e.g. an under-determined map) reach stderr
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            raise DataError(_fit_error(exc, roles)) from exc
        k = X.shape[0] if idx is None else idx.size
        rows = slice(None) if idx is None else idx
        r2 = translator.score(X[rows], Y[rows])
        print(f"fitted {args.method} translator on {k} anchor pairs: {X.shape[1]} -> "
              f"{Y.shape[1]} features (R² on the anchors {r2:.3f})", file=out)
    translated = None
    if new is not None:
        try:
            translated = translator.transform(new)
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            raise DataError(_fit_error(exc, {"X": f"--apply {args.apply}"})) from exc
    with _Outputs() as files:
        if args.save_model is not None:
            with files.open(args.save_model) as fh:
                save(translator, fh)
        if translated is not None:
            with files.open(args.out) as fh:
                _save_array(translated, fh, args.out)
        files.commit()
    if args.save_model is not None:
        print(f"wrote {args.save_model}", file=out)
    if translated is not None:
        print(f"translated {new.shape[0]} rows ({new.shape[1]} -> {translated.shape[1]} "
              f"features): wrote {args.out}", file=out)
    return 0


def _width_out(translator):
    return getattr(translator, "n_features_out_", getattr(translator, "n_targets_", "?"))


# --------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------
EPILOG_FILES = (
    "Embedding files: .npy, .npz or .pt (a tensor, or a dict of tensors); FILE.npz:NAME "
    "or FILE.pt:NAME picks one array of several. Nothing is unpickled."
)


def build_parser():
    """The argument parser of ``sklearn-latent``; each subcommand's parser sets ``run``."""
    from . import __version__

    parser = _Parser(
        prog=PROG, formatter_class=HelpFormatter,
        description="Latent space communication from the command line: zero-shot "
                    "stitching between embedding spaces (relative representations, latent "
                    "space translation, inverse relative projection).",
        epilog="Start with 'sklearn-latent demo'. Exit status: 0 success, 1 unusable data, "
               "2 wrong command line. Warnings are printed on stderr.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo", help="train encoders on scikit-learn's digits and evaluate stitching",
        formatter_class=HelpFormatter,
        description="Train small MLP encoders on scikit-learn's digits (bundled, no download; "
                    "different seeds and widths), evaluate zero-shot stitching between every "
                    "pair with every method, print the tables and write stitching.csv, "
                    "warnings.txt and stitching.png. About 20 s of one core's time "
                    "(--quick: a few seconds).",
    )
    demo.set_defaults(run=_cmd_demo)
    demo.add_argument("--out", default="sklearn-latent-demo", metavar="DIR",
                      help="folder for stitching.csv, warnings.txt and stitching.png (they "
                           "are replaced); default: ./sklearn-latent-demo")
    demo.add_argument("--quick", action="store_true",
                      help="three small encoders and fewer epochs: a few seconds")
    demo.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                      help="BLAS and torch threads; default: 1 (fastest for these small "
                           "problems, especially on a busy machine)")
    _evaluation_options(demo)

    ev = sub.add_parser(
        "evaluate", help="evaluate stitching between your own embedding files",
        formatter_class=HelpFormatter,
        description="Zero-shot stitching between embedding spaces of the same samples: for "
                    "every ordered pair (source, target), a classifier "
                    "(LogisticRegression) trained on the target's training rows is scored on "
                    "the source's test rows brought into its space by each method. Prints the "
                    "accuracy matrices; with --out writes stitching.csv (one row per method, "
                    "source, target), warnings.txt and stitching.png.\n\n"
                    "A space that cannot be evaluated (constant, or values too large) is "
                    "named on stderr and left out; the others are evaluated, and the exit "
                    "status is 1.",
        epilog=EPILOG_FILES,
    )
    ev.set_defaults(run=_cmd_evaluate)
    ev.add_argument("--space", action="append", required=True, metavar="NAME=FILE",
                    help="an embedding file (samples x features) and its name; repeat for "
                         "every space, all with the same samples in the same order")
    ev.add_argument("--labels", required=True, metavar="FILE",
                    help="class labels of the samples (1-D, one per row)")
    ev.add_argument("--anchors", metavar="FILE",
                    help="row indices (1-D integers) of the parallel anchors; default: "
                         "--n-anchors rows picked by --anchor-strategy")
    ev.add_argument("--train", metavar="FILE",
                    help="row indices of the training rows (the rest are test rows); "
                         "default: a stratified split with --test-size")
    ev.add_argument("--test-size", type=_fraction, default=0.3, metavar="F",
                    help="fraction of held-out test rows without --train; default: 0.3")
    ev.add_argument("--out", metavar="DIR",
                    help="write stitching.csv, warnings.txt and stitching.png into this "
                         "folder (created if needed; the three files are replaced)")
    ev.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                    help="limit BLAS and torch threads (1 is fastest for small data on a busy "
                         "machine); default: the libraries' own")
    _evaluation_options(ev)

    tr = sub.add_parser(
        "translate", help="fit a translator on parallel anchors and translate embeddings",
        formatter_class=HelpFormatter,
        description="Fit a latent space translator from paired rows of --source and --target "
                    "(row i of both = the same sample; --anchors restricts the fit to those "
                    "rows) and translate --apply into the target space. Or load a translator "
                    "saved with --save-model via --model. Every argument is checked before "
                    "anything is written, and a failed command writes nothing. Examples:"
                    "\n\n"
                    "  sklearn-latent translate --source X.npy --target Y.npy \\\n"
                    "      --anchors idx.npy --apply X_new.npy --out Y_new.npy \\\n"
                    "      --save-model tr.skl\n"
                    "  sklearn-latent translate --model tr.skl --apply X_more.npy \\\n"
                    "      --out Y_more.npy",
        epilog=EPILOG_FILES + " Translators are saved with sklearn_latent.save (no pickle).",
    )
    tr.set_defaults(run=_cmd_translate)
    tr.add_argument("--source", metavar="FILE", help="source embeddings (samples x d_source)")
    tr.add_argument("--target", metavar="FILE",
                    help="target embeddings of the same samples (samples x d_target)")
    tr.add_argument("--anchors", metavar="FILE",
                    help="row indices of the parallel anchors; default: every row")
    tr.add_argument("--method", choices=TRANSLATE_METHODS, default="orthogonal",
                    metavar="METHOD",
                    help="orthogonal, scaled, linear or affine (ProcrustesTranslator), or "
                         "inverse / inverse-pruned (relative projection and its inverse, "
                         "RelativeTranslator, the latter with anchor pruning); default: "
                         "orthogonal")
    tr.add_argument("--model", metavar="FILE", help="load a saved translator instead of fitting")
    tr.add_argument("--save-model", metavar="FILE", help="save the fitted translator")
    tr.add_argument("--apply", metavar="FILE", help="source embeddings to translate")
    tr.add_argument("--out", metavar="FILE", help="where to write the translation (.npy or .pt)")
    tr.add_argument("--overwrite", action="store_true",
                    help="replace --out and --save-model if they exist (default: refuse)")

    for name in CLI_MODULES:
        importlib.import_module(f"._cli.{name}", __package__).add_parser(sub)
    return parser


def _warning_printer(err):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {_one_line(message)}", file=err)

    return show


def main(argv=None):
    """Run the command line; returns the exit status (0, 1 for data errors, 2 for usage)."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=err)
        return 2
    except SystemExit as exc:  # --help and --version
        return 0 if exc.code is None else int(exc.code)
    with warnings.catch_warnings():
        if not sys.warnoptions:  # -W or PYTHONWARNINGS: the user's filters apply
            # every warning once per place, even where a caller of main() filters them
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                             ResourceWarning):  # Python's defaults, except for this library
                warnings.filterwarnings("ignore", category=category)
                warnings.filterwarnings("default", category=category, module="sklearn_latent")
        warnings.showwarning = _warning_printer(err)
        try:
            with _threads(getattr(args, "threads", None)):
                return args.run(args, out)
        except UsageError as exc:
            print(f"{PROG}: error: {_one_line(exc)}", file=err)
            return 2
        except (DataError, ValueError, TypeError, OSError, ImportError) as exc:
            print(f"{PROG}: error: {_one_line(exc)}", file=err)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=err)
            return 130


if __name__ == "__main__":
    sys.exit(main())
