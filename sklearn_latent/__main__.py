"""Command line: ``sklearn-latent`` (or ``python -m sklearn_latent``).

``demo``
    Trains small encoders on scikit-learn's digits (no download) and evaluates
    zero-shot stitching between all of them with every method.
``evaluate``
    The same evaluation on your own embedding files.
``translate``
    Fits a translator on parallel anchors and translates new embeddings;
    fitted translators can be saved and loaded.

Run ``sklearn-latent COMMAND --help`` for the options.  Errors are one line on
stderr (``sklearn-latent: error: ...``); the exit status is 2 for a wrong
command line and 1 for unusable data.
"""

import argparse
import contextlib
import os
import pickle
import sys
import time
import warnings
import zipfile

import numpy as np

PROG = "sklearn-latent"
FORMATS = (".npy", ".npz", ".pt", ".pth")
TRANSLATE_METHODS = ("orthogonal", "scaled", "linear", "affine", "inverse", "inverse-pruned")
DEFAULT_METHODS = ("absolute", "relative", "orthogonal")


class UsageError(Exception):
    """A wrong command line (exit status 2)."""


class DataError(Exception):
    """Unusable input data (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _one_line(message):
    return " ".join(str(message).split())


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

            obj = torch.load(path, map_location="cpu", weights_only=True)
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


def _save_array(arr, path):
    ext = os.path.splitext(path)[1].lower()
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"--out: the folder {folder!r} does not exist.")
    if ext == ".npy":
        np.save(path, arr)
    elif ext in (".pt", ".pth"):
        import torch

        torch.save(torch.from_numpy(np.ascontiguousarray(arr)), path)
    else:
        raise DataError(f"--out: {path!r} must end in .npy or .pt.")


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


def _write_outputs(results, folder, plot, out):
    os.makedirs(folder, exist_ok=True)
    csv = os.path.join(folder, "stitching.csv")
    results.to_csv(csv, index=False, float_format="%.6g")
    print(f"\nwrote {csv}", file=out)
    if plot:
        from .stitching import plot_stitching_matrix

        fig = plot_stitching_matrix(results)
        png = os.path.join(folder, "stitching.png")
        fig.savefig(png, dpi=110)
        print(f"wrote {png}", file=out)


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
                   default="random",
                   help="how anchors are picked in the first space's training rows; default: "
                        "random")
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
    from .stitching import METHODS, stitching_matrix

    methods = _check_methods(args.method) if args.method else list(METHODS)
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
    results = stitching_matrix(
        data.spaces, data.target, methods=methods, split=(data.train, data.test),
        anchors=args.anchor_strategy, n_anchors=args.n_anchors, random_state=args.seed,
        progress=args.progress,
    )
    print(f"  done in {time.perf_counter() - trained:.1f} s", file=out)
    _print_results(results, out)
    _write_outputs(results, args.out, not args.no_plot, out)
    print(f"total {time.perf_counter() - start:.1f} s", file=out)
    return 0


def _cmd_evaluate(args, out):
    from .stitching import stitching_matrix

    methods = _check_methods(args.method)
    spaces = {}
    for item in args.space:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"argument --space: expected NAME=FILE, got {item!r}")
        if name in spaces:
            raise UsageError(f"argument --space: the name {name!r} is given twice")
        spaces[name] = _embeddings(path, f"--space {name}")
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
    results = stitching_matrix(
        spaces, labels, methods=methods, split=split, test_size=args.test_size,
        anchors=anchors, n_anchors=args.n_anchors, random_state=args.seed,
        progress=args.progress,
    )
    print(f"  done in {time.perf_counter() - start:.1f} s ({len(results.attrs['anchors'])} "
          f"anchors, {len(results.attrs['test'])} test rows)", file=out)
    _print_results(results, out)
    if args.out is not None:
        _write_outputs(results, args.out, not args.no_plot, out)
    return 0


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
        print(f"loaded {type(translator).__name__} from {args.model}: "
              f"{translator.n_features_in_} -> {_width_out(translator)} features", file=out)
    else:
        X = _embeddings(args.source, "--source")
        Y = _embeddings(args.target, "--target")
        if X.shape[0] != Y.shape[0]:
            raise DataError(
                f"--source has {X.shape[0]} rows but --target has {Y.shape[0]}; row i of both "
                "must be the same sample."
            )
        idx = None if args.anchors is None else _indices(args.anchors, "--anchors", X.shape[0])
        anchors = "random" if idx is None else idx  # "random" with n_anchors=None: every row
        if args.method.startswith("inverse"):
            pruning = _PRUNING if args.method == "inverse-pruned" else {}
            translator = RelativeTranslator(n_anchors=None, anchors=anchors, random_state=0,
                                            **pruning)
        else:
            translator = ProcrustesTranslator(args.method, n_anchors=None, anchors=anchors)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # under-determination: reported below
            translator.fit(X, Y)
        k = X.shape[0] if idx is None else idx.size
        rows = slice(None) if idx is None else idx
        r2 = translator.score(X[rows], Y[rows])
        note = ""
        if not args.method.startswith("inverse") and translator.rank_ < min(X.shape[1], Y.shape[1]):
            note = (f"; warning: the map is determined on only {translator.rank_} dimensions "
                    "(more anchors, or dead/constant features)")
        print(f"fitted {args.method} translator on {k} anchor pairs: {X.shape[1]} -> "
              f"{Y.shape[1]} features (R² on the anchors {r2:.3f}){note}", file=out)
    if args.save_model is not None:
        save(translator, args.save_model)
        print(f"wrote {args.save_model}", file=out)
    if args.apply is not None:
        new = _embeddings(args.apply, "--apply")
        if new.shape[1] != translator.n_features_in_:
            raise DataError(
                f"--apply: {args.apply!r} has {new.shape[1]} features but the translator maps "
                f"{translator.n_features_in_}-d source embeddings."
            )
        translated = translator.transform(new)
        _save_array(translated, args.out)
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
    """The argument parser of ``sklearn-latent``."""
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="Latent space communication from the command line: zero-shot "
                    "stitching between embedding spaces (relative representations, latent "
                    "space translation, inverse relative projection).",
        epilog="Start with 'sklearn-latent demo'. Exit status: 0 success, 1 unusable data, "
               "2 wrong command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo", help="train encoders on scikit-learn's digits and evaluate stitching",
        description="Train small MLP encoders on scikit-learn's digits (bundled, no download; "
                    "different seeds and widths), evaluate zero-shot stitching between every "
                    "pair with every method, print the tables and write stitching.csv and "
                    "stitching.png. About a minute on 2 cores.",
    )
    demo.add_argument("--out", default="sklearn-latent-demo", metavar="DIR",
                      help="folder for stitching.csv and stitching.png; default: "
                           "./sklearn-latent-demo")
    demo.add_argument("--quick", action="store_true",
                      help="three small encoders and fewer epochs: a few seconds")
    demo.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                      help="BLAS and torch threads; default: 1 (fastest for these small "
                           "problems, especially on a busy machine)")
    _evaluation_options(demo)

    ev = sub.add_parser(
        "evaluate", help="evaluate stitching between your own embedding files",
        description="Zero-shot stitching between embedding spaces of the same samples: for "
                    "every ordered pair (source, target), a classifier "
                    "(LogisticRegression) trained on the target's training rows is scored on "
                    "the source's test rows brought into its space by each method. Prints the "
                    "accuracy matrices; with --out writes stitching.csv (one row per method, "
                    "source, target) and stitching.png.",
        epilog=EPILOG_FILES,
    )
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
                    help="write stitching.csv and stitching.png into this folder")
    ev.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                    help="limit BLAS and torch threads (1 is fastest for small data on a busy "
                         "machine); default: the libraries' own")
    _evaluation_options(ev)

    tr = sub.add_parser(
        "translate", help="fit a translator on parallel anchors and translate embeddings",
        description="Fit a latent space translator from paired rows of --source and --target "
                    "(row i of both = the same sample; --anchors restricts the fit to those "
                    "rows) and translate --apply into the target space. Or load a translator "
                    "saved with --save-model via --model. Examples:\n"
                    "  sklearn-latent translate --source X.npy --target Y.npy --anchors idx.npy "
                    "--apply X_new.npy --out Y_new.npy --save-model tr.skl\n"
                    "  sklearn-latent translate --model tr.skl --apply X_more.npy --out "
                    "Y_more.npy",
        epilog=EPILOG_FILES + " Translators are saved with sklearn_latent.save (no pickle).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument("--source", metavar="FILE", help="source embeddings (samples x d_source)")
    tr.add_argument("--target", metavar="FILE",
                    help="target embeddings of the same samples (samples x d_target)")
    tr.add_argument("--anchors", metavar="FILE",
                    help="row indices of the parallel anchors; default: every row")
    tr.add_argument("--method", choices=TRANSLATE_METHODS, default="orthogonal",
                    help="orthogonal, scaled, linear or affine (ProcrustesTranslator), or "
                         "inverse / inverse-pruned (relative projection and its inverse, "
                         "RelativeTranslator, the latter with anchor pruning); default: "
                         "orthogonal")
    tr.add_argument("--model", metavar="FILE", help="load a saved translator instead of fitting")
    tr.add_argument("--save-model", metavar="FILE", help="save the fitted translator")
    tr.add_argument("--apply", metavar="FILE", help="source embeddings to translate")
    tr.add_argument("--out", metavar="FILE", help="where to write the translation (.npy or .pt)")
    from ._cli import migrate
    migrate.add_parser(sub)
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
    command = {"demo": _cmd_demo, "evaluate": _cmd_evaluate, "translate": _cmd_translate}
    with warnings.catch_warnings():
        warnings.showwarning = _warning_printer(err)
        try:
            with _threads(getattr(args, "threads", None)):
                return command.get(args.command, getattr(args, "run", None))(args, out)
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
