"""``sklearn-latent migrate`` and ``sklearn-latent gate``: move a vector store to a new model.

``migrate`` fits a translator legacy -> new on a calibration sample (two
paired embedding files, or the ids shared by the legacy store and a small
store of the same documents embedded by the new model), reports retrieval
retention on held-out calibration pairs, and translates the legacy store
chunk by chunk into a new FAISS index or LanceDB table.  ``gate`` does the
evaluation only (or reads the report ``migrate --report`` wrote) and exits
with status 3 when retention at k falls below ``--min-retention``: a check
for CI before switching models.

Errors are one line; data errors exit with status 1 (ValueError), usage
errors with 2.
"""

import argparse
import csv
import os

import numpy as np

from ..__main__ import _positive_int

GATE_FAILED = 3
_SETTINGS = ("translated_corpus", "translated_queries")


def _methods():
    from ..functional import TRANSLATION_METHODS

    return tuple(TRANSLATION_METHODS)


def _alpha(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _unit(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must lie in [0, 1]")
    return value


def _calibration_options(p):
    g = p.add_argument_group("calibration (pairs embedded by both models)")
    g.add_argument("--calib-legacy", metavar="FILE",
                   help="legacy-model embeddings of the calibration texts (.npy, or .npz with "
                        "'vectors'), row i paired with row i of --calib-new")
    g.add_argument("--calib-new", metavar="FILE",
                   help="new-model embeddings of the same texts")
    g.add_argument("--calib-store", metavar="STORE",
                   help="instead of the two files: a store of new-model embeddings whose ids "
                        "are also in --source (the legacy store); pairs are drawn by id")
    g.add_argument("--calib-ids", metavar="FILE",
                   help="with --calib-store: the ids to use (1-D .npy); default: the ids "
                        "shared by both stores (at most --n-calib)")
    g.add_argument("--n-calib", type=_positive_int, default=None, metavar="N",
                   help="with --calib-store: draw N shared ids at random (seed 0)")
    g.add_argument("--method", default="orthogonal", metavar="METHOD",
                   help=f"translator method ({', '.join(_methods())}); default: orthogonal")
    g.add_argument("--alpha", type=_alpha, default=None, metavar="A",
                   help="ridge strength of linear/affine (a number >= 0, or 'auto' where "
                        "the translator supports it)")
    g.add_argument("--rank", type=_positive_int, default=None, metavar="R",
                   help="rank of method 'lowrank' (where the translator supports it)")
    g.add_argument("--holdout", type=_unit, default=0.2, metavar="F",
                   help="fraction of calibration pairs held out (not fitted) to measure "
                        "retention; 0 skips the report; default: 0.2")
    g.add_argument("--k", type=_positive_int, default=10,
                   help="cut-off of Recall@k etc.; default: 10")
    g.add_argument("--csls", type=_positive_int, default=None, metavar="K",
                   help="rank the translated settings of the retention report by CSLS with "
                        "K neighbours (cosine only; can undo hubness of the map)")
    g.add_argument("--metric", choices=("ip", "cosine", "l2"), default=None,
                   help="similarity of the index; default: the source store's (cosine when "
                        "it records none)")


def add_parser(subparsers):
    """Register ``migrate`` and ``gate``."""
    m = subparsers.add_parser(
        "migrate", help="move a vector store to a new embedding model without re-embedding",
        description="Fit a translator legacy -> new on calibration pairs, report retrieval "
                    "retention on held-out pairs, and translate every vector of --source "
                    "(FAISS .faiss/.index, LanceDB DB_DIR/TABLE.lance, or .npy/.npz) into "
                    "--dest (FAISS, LanceDB or .npy) chunk by chunk, keeping ids and metadata. "
                    "The destination appears only when complete (a killed run leaves no half-"
                    "written store; run it again, with --resume to continue). Example:\n"
                    "  sklearn-latent migrate "
                    "--source old.faiss --dest new.faiss --calib-legacy a.npy --calib-new "
                    "b.npy --progress",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("--source", required=True, metavar="STORE", help="the legacy store")
    m.add_argument("--dest", required=True, metavar="STORE", help="the store to write")
    _calibration_options(m)
    m.add_argument("--index-type", choices=("flat", "ivf", "hnsw"), default=None,
                   help="FAISS destination type; default: the source's (flat for others)")
    m.add_argument("--chunk-size", type=_positive_int, default=65_536, metavar="N",
                   help="rows read, translated and written at a time; default: 65536")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --dest")
    m.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its leftover partial destination "
                        "(LanceDB tables and .npy files; a FAISS index restarts)")
    m.add_argument("--report", metavar="FILE.csv", help="also write the retention report")
    m.add_argument("--progress", action="store_true", help="progress bar (needs tqdm)")
    m.set_defaults(run=run, parser=m)

    g = subparsers.add_parser(
        "gate", help="fail (exit 3) when migration retention falls below a threshold",
        description="Check retrieval retention before switching models: from a report "
                    "written by 'migrate --report', or by fitting on calibration pairs and "
                    "scoring held-out ones. Exit status 0 when retention >= --min-retention, "
                    "3 when below. Example:\n  sklearn-latent gate --calib-legacy a.npy "
                    "--calib-new b.npy --min-retention 0.95",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("--report", metavar="FILE.csv", help="a report written by migrate --report")
    g.add_argument("--source", metavar="STORE",
                   help="the legacy store (only with --calib-store)")
    _calibration_options(g)
    g.add_argument("--min-retention", type=_unit, required=True, metavar="R",
                   help="lowest acceptable retention (score / re-embedding ceiling)")
    g.add_argument("--score", choices=("recall", "ndcg", "mrr"), default="recall",
                   help="which score's retention is gated; default: recall")
    g.add_argument("--setting", choices=_SETTINGS, default="translated_corpus",
                   help="translated_corpus (the store translated legacy -> new) or "
                        "translated_queries (new queries into the legacy store); default: "
                        "translated_corpus")
    g.set_defaults(run=run, parser=g)


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def _load_embeddings(path, what):
    if not os.path.isfile(path):
        raise ValueError(f"{what}: file {path!r} does not exist.")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".npz"):
        raise ValueError(f"{what}: {path!r} must be a .npy or .npz file.")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                key = "vectors" if "vectors" in data.files else (
                    data.files[0] if len(data.files) == 1 else None)
                if key is None:
                    raise ValueError(f"{what}: {path!r} has no array 'vectors' ({data.files}).")
                data = data[key]
    except (OSError, EOFError) as exc:
        raise ValueError(f"{what}: cannot read {path!r} ({exc}).") from exc
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] == 0 or data.dtype.kind not in "iuf":
        raise ValueError(f"{what}: {path!r} must hold a non-empty 2-D numeric array; got "
                         f"{data.dtype} of shape {data.shape}.")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise ValueError(f"{what}: {path!r} contains NaN or infinity.")
    return data.astype(np.float32, copy=False)


def _calibration(args, source):
    """Paired (legacy, new) calibration embeddings from files or from two stores by id."""
    parser = args.parser
    files = args.calib_legacy is not None or args.calib_new is not None
    if files and args.calib_store is not None:
        parser.error("give --calib-legacy and --calib-new, or --calib-store, not both")
    if files:
        if args.calib_legacy is None or args.calib_new is None:
            parser.error("--calib-legacy and --calib-new go together")
        legacy = _load_embeddings(args.calib_legacy, "--calib-legacy")
        new = _load_embeddings(args.calib_new, "--calib-new")
        if legacy.shape[0] != new.shape[0]:
            raise ValueError(
                f"mismatched calibration pairs: --calib-legacy has {legacy.shape[0]} rows but "
                f"--calib-new has {new.shape[0]}; row i of both must be the same text."
            )
        return legacy, new
    if args.calib_store is None:
        parser.error("calibration pairs are needed: --calib-legacy and --calib-new, or "
                     "--calib-store")
    if source is None:
        parser.error("--calib-store draws pairs by id from --source: give --source")
    from ..stores import open_store

    new_store = open_store(args.calib_store)
    if args.calib_ids is not None:
        ids = np.load(args.calib_ids, allow_pickle=False).reshape(-1)
        if ids.dtype.kind not in "iuU" or ids.size == 0:
            raise ValueError(f"--calib-ids: {args.calib_ids!r} must hold ids (integers or "
                             f"strings); got {ids.size} values of dtype {ids.dtype}.")
    else:
        shared = np.intersect1d(source.ids(), new_store.ids())
        if shared.size == 0:
            raise ValueError(f"mismatched ids: {args.calib_store} and {source.path} share no id.")
        n = min(args.n_calib or shared.size, shared.size)
        ids = np.sort(np.random.default_rng(0).choice(shared, n, replace=False))
    try:
        return source.get(ids), new_store.get(ids)
    except KeyError as exc:
        raise ValueError(f"mismatched ids: {exc.args[0]}") from None


def _make_translator(args):
    from ..translate import ProcrustesTranslator

    if args.method not in _methods():
        args.parser.error(f"--method {args.method!r}: choose from {', '.join(_methods())}")
    params = {}
    if args.alpha is not None:
        params["alpha"] = args.alpha
    if args.rank is not None:
        params["rank"] = args.rank
    known = ProcrustesTranslator().get_params()
    for name in params:
        if name not in known:
            args.parser.error(f"--{name} is not supported by this version's translator")
    return ProcrustesTranslator(args.method, **params)


def _split(n, holdout):
    """Fit rows, and held-out (query, corpus) rows: a fixed shuffle (seed 0)."""
    perm = np.random.default_rng(0).permutation(n)
    n_out = int(round(holdout * n))
    held, fit = perm[:n_out], perm[n_out:]
    n_q = max(1, n_out // 4)
    return fit, held[:n_q], held[n_q:]


def _fit_and_report(args, legacy, new, metric):
    from ..metrics import retention_report

    n = legacy.shape[0]
    fit, queries, corpus = _split(n, args.holdout)
    if args.holdout > 0 and (corpus.size < args.k or fit.size < 2):
        raise ValueError(
            f"--holdout {args.holdout} of {n} calibration pairs leaves {corpus.size} corpus and "
            f"{fit.size} fitting rows; k={args.k} needs more pairs (or --holdout 0)."
        )
    forward = _make_translator(args).fit(legacy[fit], new[fit])
    if args.holdout == 0:
        return forward, None, fit.size
    backward = _make_translator(args).fit(new[fit], legacy[fit])
    search_metric = {"ip": "dot", "l2": "euclidean"}.get(metric, "cosine")
    if args.csls is not None and search_metric != "cosine":
        raise ValueError(f"--csls ranks by cosines; the index is searched by {metric}.")
    report = retention_report(
        new[queries], new[corpus], legacy[corpus], queries_legacy=legacy[queries],
        corpus_translator=forward, query_translator=backward, k=args.k,
        metric=search_metric, csls=args.csls,
    )
    return forward, report, fit.size


def _write_report(report, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "score", "k", "value", "retention"])
        w.writerows(report.rows())


def _read_report(path):
    if not os.path.isfile(path):
        raise ValueError(f"--report: file {path!r} does not exist.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"setting", "score", "k", "value", "retention"} <= set(rows[0]):
        raise ValueError(f"--report: {path!r} is not a report written by migrate --report.")
    return rows


def _check_metric(args, source):
    metric = args.metric
    if source is not None and source.metric is not None:
        if metric is not None and metric != source.metric and not (
            {metric, source.metric} == {"ip", "cosine"}
        ):
            raise ValueError(
                f"mismatched metrics: {source.path} is searched by {source.metric} but "
                f"--metric is {metric}."
            )
        metric = metric or source.metric
    return metric or "cosine"


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------
def run(args, out):
    """Run ``migrate`` or ``gate``; returns the exit status."""
    return _migrate(args, out) if args.command == "migrate" else _gate(args, out)


def _migrate(args, out):
    from ..stores import migrate_store, open_store

    source = open_store(args.source)
    if os.path.exists(args.dest) and not args.overwrite:
        raise ValueError(f"--dest {args.dest!r} exists; pass --overwrite to replace it.")
    metric = _check_metric(args, source)
    legacy, new = _calibration(args, source)
    if legacy.shape[1] != source.dim:
        raise ValueError(
            f"mismatched dimensions: the legacy calibration embeddings are {legacy.shape[1]}-d "
            f"but {args.source} holds {source.dim}-d vectors."
        )
    translator, report, n_fit = _fit_and_report(args, legacy, new, metric)
    print(f"fitted {args.method} translator on {n_fit} calibration pairs: {legacy.shape[1]} -> "
          f"{new.shape[1]} features", file=out)
    if report is not None:
        print(report, file=out)
        if args.report:
            _write_report(report, args.report)
    dest = migrate_store(source, args.dest, translator, metric=metric,
                         index_type=args.index_type, chunk_size=args.chunk_size,
                         overwrite=args.overwrite, resume=args.resume,
                         progress=args.progress)
    print(f"wrote {dest.n_rows} vectors ({dest.dim}-d, {dest.metric or metric}) to {args.dest}",
          file=out)
    return 0


def _gate(args, out):
    threshold, score, setting = args.min_retention, args.score, args.setting
    if args.report is not None:
        if any(getattr(args, a) is not None for a in ("calib_legacy", "calib_new", "calib_store")):
            args.parser.error("give --report or calibration pairs, not both")
        rows = [r for r in _read_report(args.report)
                if r["setting"] == setting and r["score"] == score]
        if not rows:
            raise ValueError(f"--report: {args.report!r} has no {setting} {score} row.")
        k, retention = int(rows[0]["k"]), float(rows[0]["retention"])
    else:
        if args.holdout == 0:
            args.parser.error("gate measures retention on held-out pairs: --holdout must be > 0")
        source = None
        if args.source is not None:
            from ..stores import open_store

            source = open_store(args.source)
        metric = _check_metric(args, source)
        legacy, new = _calibration(args, source)
        _, report, _ = _fit_and_report(args, legacy, new, metric)
        print(report, file=out)
        k, retention = report.k, report.retention(setting, score)
    verdict = "pass" if retention >= threshold else "FAIL"
    print(f"{verdict}: {setting} {score}@{k} retention {retention:.4f} "
          f"{'>=' if verdict == 'pass' else '<'} {threshold}", file=out)
    return 0 if verdict == "pass" else GATE_FAILED
