"""The command line: demo, evaluate, translate; good files end to end, bad input in one line."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn_latent import ProcrustesTranslator, RelativeTranslator, load
from sklearn_latent.__main__ import main
from sklearn_latent.datasets import make_related_spaces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*warning\\(s\\) during the fits:UserWarning"
)


def run_cli(*args, cwd=None):
    """``python -m sklearn_latent ARGS`` in a fresh process (this checkout first on the path)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "sklearn_latent", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sklearn-latent: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three spaces of 150 samples (8-d, its scaled rotation, a 6-d linear image), labels,
    anchors, and new source rows, as .npy/.npz/.pt files."""
    d = tmp_path_factory.mktemp("cli")
    X, Y, _, _ = make_related_spaces(150, 8, transform="scaled", random_state=0)
    _, _, coef, _ = make_related_spaces(2, 8, n_target_features=6, transform="linear",
                                        random_state=1)
    Z = X @ coef
    labels = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    np.save(d / "x.npy", X)
    np.savez(d / "y.npz", embeddings=Y)
    torch.save(torch.as_tensor(Z, dtype=torch.float32), d / "z.pt")
    np.save(d / "labels.npy", labels)
    np.save(d / "anchors.npy", np.arange(0, 150, 3))
    np.save(d / "new.npy", X[:20] + 0.01)
    return d, X, Y, Z, labels


def p(d, name):
    return str(d / name)


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------
def test_evaluate_end_to_end(files, capsys):
    d, X, Y, Z, labels = files
    out = d / "eval"
    code = main(["evaluate", "--space", f"x={p(d, 'x.npy')}", "--space", f"y={p(d, 'y.npz')}",
                 "--space", f"z={p(d, 'z.pt')}", "--labels", p(d, "labels.npy"),
                 "--n-anchors", "40", "--method", "absolute", "--method", "orthogonal",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "absolute: zero-shot accuracy" in captured.out and "summary" in captured.out
    res = pd.read_csv(out / "stitching.csv")
    assert len(res) == 2 * 9 and set(res.method) == {"absolute", "orthogonal"}
    acc = res.set_index(["method", "source", "target"]).accuracy
    # 45 test rows: measured orthogonal 0.956 (2 wrong), absolute 0.533; the bound leaves
    # 7 rows of margin on either side
    assert acc["orthogonal", "x", "y"] > 0.8 > acc["absolute", "x", "y"]
    assert acc["orthogonal", "z", "x"] > 0.7   # z is a lossy 6-d image of x: measured 0.82
    assert np.isnan(acc["absolute", "x", "z"])
    assert (out / "stitching.png").stat().st_size > 1000


def test_evaluate_explicit_anchors_and_train_rows(files, capsys):
    d, *_ = files
    np.save(d / "train.npy", np.arange(100))
    code = main(["evaluate", "--space", f"x={p(d, 'x.npy')}", "--space", f"y={p(d, 'y.npz')}",
                 "--labels", p(d, "labels.npy"), "--anchors", p(d, "anchors.npy"),
                 "--train", p(d, "train.npy"), "--method", "relative", "--out",
                 str(d / "eval2"), "--no-plot"])
    captured = capsys.readouterr()
    # anchors 0, 3, ..., 147 include test rows (>= 100): refused
    assert code == 1
    assert_one_line_error(captured.err, "anchors must be training rows")
    np.save(d / "anchors_train.npy", np.arange(0, 100, 3))
    code = main(["evaluate", "--space", f"x={p(d, 'x.npy')}", "--space", f"y={p(d, 'y.npz')}",
                 "--labels", p(d, "labels.npy"), "--anchors", p(d, "anchors_train.npy"),
                 "--train", p(d, "train.npy"), "--method", "relative", "--out",
                 str(d / "eval2"), "--no-plot"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "34 anchors, 50 test rows" in captured.out
    assert not (d / "eval2" / "stitching.png").exists()
    assert len(pd.read_csv(d / "eval2" / "stitching.csv")) == 4


def test_evaluate_all_methods_and_progress(files, capsys):
    d, *_ = files
    code = main(["evaluate", "--space", f"x={p(d, 'x.npy')}", "--space", f"y={p(d, 'y.npz')}",
                 "--labels", p(d, "labels.npy"), "--n-anchors", "0.5", "--method", "all",
                 "--progress", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for method in ("absolute", "relative", "product", "orthogonal", "scaled", "linear",
                   "affine", "inverse", "inverse-pruned"):
        assert f"\n{method}: zero-shot accuracy" in captured.out
    assert "stitching" in captured.err and "36/36" in captured.err   # the tqdm bar


# --------------------------------------------------------------------------
# translate
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["orthogonal", "affine", "inverse", "inverse-pruned"])
def test_translate_fit_apply_save_load(files, capsys, method):
    d, X, Y, *_ = files
    out, model = d / f"out_{method}.npy", d / f"{method}.skl"
    code = main(["translate", "--source", p(d, "x.npy"), "--target", p(d, "y.npz"),
                 "--anchors", p(d, "anchors.npy"), "--method", method,
                 "--apply", p(d, "new.npy"), "--out", str(out), "--save-model", str(model)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"fitted {method} translator on 50 anchor pairs: 8 -> 8 features" in captured.out
    translated = np.load(out)
    idx = np.arange(0, 150, 3)
    if method.startswith("inverse"):
        pruning = dict(prune_threshold=0.7, n_subspaces=8) if method == "inverse-pruned" else {}
        ref = RelativeTranslator(anchors=idx, n_anchors=None, random_state=0, **pruning)
    else:
        ref = ProcrustesTranslator(method, anchors=idx)
    ref.fit(X, Y)
    np.testing.assert_allclose(translated, ref.transform(X[:20] + 0.01), rtol=1e-10,
                               atol=1e-10)
    assert type(load(model)) is type(ref)
    # the saved model translates the same way, to a .pt file this time
    again = d / f"again_{method}.pt"
    code = main(["translate", "--model", str(model), "--apply", p(d, "new.npy"),
                 "--out", str(again)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "loaded" in captured.out
    np.testing.assert_array_equal(torch.load(again).numpy(), translated)


def test_translate_without_anchors_uses_every_row(files, capsys):
    d, X, _, Z, _ = files
    out = d / "xz.npy"
    code = main(["translate", "--source", p(d, "x.npy"), "--target", p(d, "z.pt"),
                 "--method", "affine", "--apply", p(d, "new.npy"), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "on 150 anchor pairs: 8 -> 6 features" in captured.out
    ref = ProcrustesTranslator("affine").fit(X, Z.astype(np.float32))
    np.testing.assert_allclose(np.load(out), ref.transform(X[:20] + 0.01), rtol=1e-5,
                               atol=1e-5)


# --------------------------------------------------------------------------
# bad input: one line on stderr, exit status 1 (data) or 2 (command line)
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(files):
    d, X, *_ = files
    np.save(d / "nan.npy", np.where(np.arange(150)[:, None] == 7, np.nan, X))
    np.save(d / "short.npy", X[:100])
    np.save(d / "flat.npy", X[:, 0])
    np.save(d / "strings.npy", np.array(["a", "b"]))
    np.save(d / "float_anchors.npy", np.linspace(0, 10, 5))
    np.save(d / "far_anchors.npy", np.array([1, 2, 500]))
    np.savez(d / "two.npz", a=X, b=X)
    (d / "garbage.npy").write_bytes(b"not an array at all")
    (d / "table.csv").write_text("1,2\n3,4\n")
    torch.save({"weights": torch.zeros(3, 3), "bias": torch.zeros(3)}, d / "dict.pt")
    return d


def evaluate_args(d, x="x.npy", labels="labels.npy", extra=()):
    return ["evaluate", "--space", f"x={p(d, x)}", "--space", f"y={p(d, 'y.npz')}",
            "--labels", p(d, labels), "--n-anchors", "30", *extra]


BAD = [
    ("missing file", evaluate_args, dict(x="nope.npy"), 1, ["--space x", "does not exist"]),
    ("nan", evaluate_args, dict(x="nan.npy"), 1, ["contains NaN or infinity (in 1 row(s))"]),
    ("rows", evaluate_args, dict(x="short.npy"), 1, ["--space x: 100 rows but --labels has 150"]),
    ("1-D space", evaluate_args, dict(x="flat.npy"), 1, ["shape (150,)", "2-D"]),
    ("strings", evaluate_args, dict(x="strings.npy"), 1, ["expected numbers"]),
    ("format", evaluate_args, dict(x="table.csv"), 1, ["unsupported format '.csv'"]),
    ("corrupt", evaluate_args, dict(x="garbage.npy"), 1, ["cannot read", "garbage.npy"]),
    ("two arrays", evaluate_args, dict(x="two.npz"), 1, ["holds 2 arrays", ":NAME"]),
    ("labels shape", evaluate_args, dict(labels="x.npy"), 1, ["--labels", "1-D"]),
    ("float anchors", evaluate_args, dict(extra=["--anchors", "FILE:float_anchors.npy"]), 1,
     ["--anchors", "integer row indices"]),
    ("far anchors", evaluate_args, dict(extra=["--anchors", "FILE:far_anchors.npy"]), 1,
     ["outside [0, 150)"]),
    ("too many anchors", evaluate_args, dict(extra=["--n-anchors", "149"]), 1,
     ["--n-anchors 149 exceeds the 105 training rows"]),
    ("method", evaluate_args, dict(extra=["--method", "procrustes"]), 2,
     ["--method: invalid choice 'procrustes'"]),
    ("space syntax", lambda d: ["evaluate", "--space", "x.npy", "--labels", "l.npy"], {}, 2,
     ["expected NAME=FILE"]),
    ("no labels", lambda d: ["evaluate", "--space", "a=x.npy"], {}, 2,
     ["required: --labels"]),
    ("no command", lambda d: [], {}, 2, ["required: COMMAND"]),
    ("unknown command", lambda d: ["frobnicate"], {}, 2, ["invalid choice: 'frobnicate'"]),
    ("bad number", evaluate_args, dict(extra=["--test-size", "2"]), 2, ["--test-size"]),
    ("translate nothing", lambda d: ["translate", "--source", p(d, "x.npy"), "--target",
                                     p(d, "x.npy")], {}, 2, ["nothing to do"]),
    ("translate rows", lambda d: ["translate", "--source", p(d, "x.npy"), "--target",
                                  p(d, "short.npy"), "--apply", p(d, "new.npy"), "--out",
                                  p(d, "o.npy")], {}, 1,
     ["--source has 150 rows but --target has 100"]),
    ("translate width", lambda d: ["translate", "--source", p(d, "x.npy"), "--target",
                                   p(d, "x.npy"), "--apply", p(d, "z.pt"), "--out",
                                   p(d, "o.npy")], {}, 1, ["--apply", "has 6 features"]),
    ("translate dict", lambda d: ["translate", "--source", p(d, "dict.pt"), "--target",
                                  p(d, "x.npy"), "--save-model", p(d, "m.skl")], {}, 1,
     ["holds 2 arrays"]),
    ("translate model", lambda d: ["translate", "--model", p(d, "x.npy"), "--apply",
                                   p(d, "new.npy"), "--out", p(d, "o.npy")], {}, 1,
     ["--model", "not a model file"]),
    ("translate out", lambda d: ["translate", "--source", p(d, "x.npy"), "--target",
                                 p(d, "x.npy"), "--apply", p(d, "new.npy"), "--out",
                                 p(d, "o.txt")], {}, 1, ["must end in .npy, .pt or .pth"]),
]


@pytest.mark.parametrize("name, make, kwargs, status, fragments", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(bad_files, capsys, name, make, kwargs, status, fragments):
    d = bad_files
    args = make(d, **kwargs)
    args = [a.replace("FILE:", str(d) + os.sep) for a in args]
    code = main(args)
    captured = capsys.readouterr()
    assert code == status
    assert_one_line_error(captured.err, *fragments)


def test_npz_and_pt_keys_pick_one_array(bad_files, capsys):
    d = bad_files
    code = main(["translate", "--source", p(d, "two.npz") + ":a", "--target",
                 p(d, "two.npz") + ":b", "--apply", p(d, "new.npy"), "--out", p(d, "k.npy")])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_allclose(np.load(d / "k.npy"), np.load(d / "new.npy"), atol=1e-8)
    code = main(["translate", "--source", p(d, "dict.pt") + ":weights", "--target",
                 p(d, "dict.pt") + ":nope", "--save-model", p(d, "m.skl")])
    assert code == 1
    assert_one_line_error(capsys.readouterr().err, "has no array 'nope'", "weights")


def test_help_documents_every_command_and_option(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in ("demo", "evaluate", "translate"):
        assert command in top
    assert main(["evaluate", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--space", "--labels", "--anchors", "--train", "--test-size", "--method",
                   "--n-anchors", "--anchor-strategy", "--out", "--seed", "--threads",
                   "--no-plot", "--progress", ".npz", ".pt"):
        assert option in text, option
    assert main(["translate", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--source", "--target", "--anchors", "--method", "--model", "--save-model",
                   "--apply", "--out", "inverse"):
        assert option in text, option
    assert main(["demo", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("sklearn-latent 0.")


def test_help_is_wrapped_to_the_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    for command in ([], ["demo"], ["evaluate"], ["translate"]):
        assert main([*command, "--help"]) == 0
        text = capsys.readouterr().out
        long = [line for line in text.splitlines() if len(line) > 80]
        assert not long, (command, long)
    main(["translate", "--help"])
    # the examples keep their lines (continued with a backslash)
    assert "\n  sklearn-latent translate --model tr.skl" in capsys.readouterr().out


# --------------------------------------------------------------------------
# warnings reach a shell; a failed command leaves nothing behind
# --------------------------------------------------------------------------
def _library_warnings(make, X, Y):
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        make().fit(X, Y)
    return [" ".join(str(w.message).split()) for w in log]


@pytest.mark.parametrize("method", ["orthogonal", "affine", "inverse"])
def test_translate_prints_every_library_warning(files, tmp_path, capsys, method):
    d, X, Y, *_ = files
    idx = np.array([0, 1])   # 2 anchors cannot determine an 8-d map
    np.save(tmp_path / "two.npy", idx)
    if method == "inverse":
        def make():
            return RelativeTranslator(anchors=idx, n_anchors=None, random_state=0)
    else:
        def make():
            return ProcrustesTranslator(method, anchors=idx, n_anchors=None)
    expected = _library_warnings(make, X, Y)
    if method == "orthogonal":
        assert expected   # the library warns about the under-determined map
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a caller's filters do not hide them from a shell
        code = main(["translate", "--source", p(d, "x.npy"), "--target", p(d, "y.npz"),
                     "--anchors", str(tmp_path / "two.npy"), "--method", method,
                     "--save-model", str(tmp_path / "m.skl")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for message in expected:
        assert f"sklearn-latent: warning: {message}" in captured.err.splitlines(), captured.err


def test_evaluate_prints_the_fits_warnings_and_writes_them_beside_the_csv(files, capsys):
    d, *_ = files
    out = d / "eval_warn"
    # 5 anchors determine the 8-d orthogonal map on 4 dimensions only: every pair warns
    code = main(["evaluate", "--space", f"x={p(d, 'x.npy')}", "--space", f"y={p(d, 'y.npz')}",
                 "--labels", p(d, "labels.npy"), "--n-anchors", "5", "--method", "orthogonal",
                 "--out", str(out), "--no-plot"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "results.attrs" not in captured.err
    lines = [ln for ln in captured.err.splitlines() if ln.startswith("sklearn-latent: warning:")]
    # the first in full, then how many alike (one line per kind of warning)
    assert len(lines) == 1, captured.err
    assert "orthogonal x -> x" in lines[0] and "determined on only" in lines[0]
    assert "[and 3 alike in other cells (all of them in warnings.txt)]" in lines[0]
    written = (out / "warnings.txt").read_text().splitlines()
    assert len(written) == 4   # one per (source, target) cell
    assert all(ln.startswith("orthogonal ") and "determined on only" in ln for ln in written)
    assert (out / "stitching.csv").is_file()


def _listing(folder):
    return sorted(os.listdir(folder))


FAILING_TRANSLATE = [
    ("out extension", ["--apply", "NEW", "--out", "OUT/o.txt"], ["must end in .npy"]),
    ("apply width", ["--apply", "Z", "--out", "OUT/o.npy"], ["--apply", "has 6 features"]),
    ("out folder", ["--apply", "NEW", "--out", "OUT/missing/o.npy"],
     ["--out", "the folder", "missing' does not exist"]),
    ("apply missing", ["--apply", "OUT/nope.npy", "--out", "OUT/o.npy"],
     ["--apply", "does not exist"]),
]


@pytest.mark.parametrize("name, extra, fragments", FAILING_TRANSLATE,
                         ids=[f[0] for f in FAILING_TRANSLATE])
def test_failed_translate_leaves_nothing_behind(files, tmp_path, capsys, name, extra,
                                                fragments):
    d, *_ = files
    extra = [a.replace("OUT", str(tmp_path)).replace("NEW", p(d, "new.npy"))
             .replace("Z", p(d, "z.pt")) for a in extra]
    before = _listing(tmp_path)
    code = main(["translate", "--source", p(d, "x.npy"), "--target", p(d, "y.npz"),
                 "--save-model", str(tmp_path / "m.skl"), *extra])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_error(captured.err, *fragments)
    assert _listing(tmp_path) == before   # no model, no translation, no temporary file


def test_save_model_into_a_missing_folder_names_the_folder(files, tmp_path, capsys):
    d, *_ = files
    code = main(["translate", "--source", p(d, "x.npy"), "--target", p(d, "y.npz"),
                 "--save-model", str(tmp_path / "nowhere" / "m.skl")])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_error(captured.err, "--save-model", "nowhere' does not exist")
    assert ".tmp" not in captured.err


def test_existing_outputs_are_refused_unless_overwrite(files, tmp_path, capsys):
    d, X, Y, *_ = files
    out, model = tmp_path / "o.npy", tmp_path / "m.skl"
    out.write_bytes(b"keep me")
    model.write_bytes(b"keep me too")
    args = ["translate", "--source", p(d, "x.npy"), "--target", p(d, "y.npz"),
            "--apply", p(d, "new.npy"), "--out", str(out), "--save-model", str(model)]
    assert main(args) == 1
    assert_one_line_error(capsys.readouterr().err, "--out", "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me" and model.read_bytes() == b"keep me too"
    assert main([*args, "--overwrite"]) == 0, capsys.readouterr().err
    np.testing.assert_allclose(np.load(out), ProcrustesTranslator().fit(X, Y).transform(
        X[:20] + 0.01), atol=1e-10)
    assert type(load(model)) is ProcrustesTranslator
    # an input file is never an output, even with --overwrite
    code = main(["translate", "--source", p(d, "x.npy"), "--target", p(d, "y.npz"),
                 "--apply", str(out), "--out", str(out), "--overwrite"])
    assert code == 1
    assert_one_line_error(capsys.readouterr().err, "--out", "is also an input file")


@pytest.fixture(scope="module")
def degenerate_files(files):
    d, X, *_ = files
    np.save(d / "constant.npy", np.ones_like(X))
    np.save(d / "huge.npy", X * 1e300)
    return d


@pytest.mark.parametrize("source, target, fragments", [
    ("x.npy", "constant.npy", ["--target", "constant.npy", "--source", "x.npy"]),
    ("huge.npy", "x.npy", ["--source", "huge.npy"]),
])
def test_translate_errors_name_the_file(degenerate_files, tmp_path, capsys, source, target,
                                        fragments):
    d = degenerate_files
    code = main(["translate", "--source", p(d, source), "--target", p(d, target),
                 "--save-model", str(tmp_path / "m.skl")])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_error(captured.err, *fragments)
    assert " X " not in captured.err and " y " not in captured.err
    assert not (tmp_path / "m.skl").exists()


def test_evaluate_reports_a_bad_space_and_evaluates_the_rest(degenerate_files, capsys):
    d = degenerate_files
    out = d / "eval_bad"
    code = main(["evaluate", "--space", f"x={p(d, 'x.npy')}",
                 "--space", f"c={p(d, 'constant.npy')}",
                 "--space", f"y={p(d, 'y.npz')}", "--space", f"h={p(d, 'huge.npy')}",
                 "--labels", p(d, "labels.npy"), "--n-anchors", "40",
                 "--method", "orthogonal", "--out", str(out), "--no-plot"])
    captured = capsys.readouterr()
    assert code == 1   # a partial table: the command did not do all it was asked
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("sklearn-latent: error:")]
    assert len(errors) == 2, captured.err
    assert "--space c is left out" in errors[0] and "--space h is left out" in errors[1]
    assert "Traceback" not in captured.err
    res = pd.read_csv(out / "stitching.csv")
    assert set(res.source) == set(res.target) == {"x", "y"}
    acc = res.set_index(["source", "target"]).accuracy
    assert acc["x", "y"] > 0.9   # the good spaces are evaluated as without the bad ones
    notes = (out / "warnings.txt").read_text()
    assert "--space c is left out" in notes and "--space h is left out" in notes


def test_refused_pt_file_is_one_clean_line(tmp_path, capsys):
    torch.save({"embeddings": torch.zeros(4, 3), "config": Refused()}, tmp_path / "obj.pt")
    code = main(["translate", "--source", str(tmp_path / "obj.pt"), "--target",
                 str(tmp_path / "obj.pt"), "--save-model", str(tmp_path / "m.skl")])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_error(captured.err, "--source", "obj.pt", "refused", "Refused")
    # short apart from the file's own path (torch's refusal is over 1,000 characters)
    assert "\x1b" not in captured.err
    assert len(captured.err.replace(str(tmp_path / "obj.pt"), "FILE")) < 250


class Refused:
    """A class that ``torch.load(weights_only=True)`` refuses."""


# --------------------------------------------------------------------------
# fresh processes: the module entry point, the demo
# --------------------------------------------------------------------------
def test_subprocess_error_has_no_traceback(bad_files):
    """One fresh process (starting Python, torch and scikit-learn takes seconds)."""
    d = bad_files
    result = run_cli(*evaluate_args(d, x="nan.npy"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_line_error(result.stderr, "contains NaN")


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    result = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "summary" in result.stdout and "total" in result.stdout
    res = pd.read_csv(tmp_path / "demo" / "stitching.csv")
    assert list(res.method.unique()) == ["absolute", "relative", "orthogonal", "inverse-pruned"]
    assert len(res) == 4 * 9
    off = res[res.source != res.target]
    # quick encoders (40 epochs; their training follows the BLAS kernels' rounding), 540
    # test digits, chance 0.1: measured absolute max 0.115, relative min 0.857, orthogonal
    # min 0.898, inverse-pruned min 0.826.  Each bound leaves >= 50 digits of margin.
    assert off[off.method == "absolute"].accuracy.max() < 0.3
    assert off[off.method == "relative"].accuracy.min() > 0.75
    assert off[off.method == "orthogonal"].accuracy.min() > 0.8
    assert off[off.method == "inverse-pruned"].accuracy.min() > 0.7
    assert (tmp_path / "demo" / "stitching.png").stat().st_size > 10000
