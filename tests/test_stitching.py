"""stitch() and stitching_matrix(): frozen pipelines, the pair matrix, plots, digits pattern."""

import io
import pickle
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from threadpoolctl import threadpool_limits

from sklearn_latent import (
    InverseRelativeProjector,
    ProcrustesTranslator,
    RelativeProjector,
    load,
    plot_stitching_matrix,
    save,
    stitch,
    stitching_matrix,
)
from sklearn_latent.datasets import make_digits_spaces, make_related_spaces
from sklearn_latent.metrics import linear_cka
from sklearn_latent.stitching import METHODS

# Procrustes fits on spaces of lower rank than their width (z below, dead ReLU units)
# warn that the map is not unique there; stitching_matrix summarizes them in one warning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*warning\\(s\\) during the fits:UserWarning"
)


def labelled_spaces(n=300, seed=0):
    """Three spaces of the same samples: x, an isometry-up-to-scale of x (same width),
    and an orthogonal embedding of x into 12 dimensions; labels depend on x."""
    X, Y, _, _ = make_related_spaces(n, 8, transform="scaled", random_state=seed)
    _, _, coef, _ = make_related_spaces(2, 8, n_target_features=12, random_state=seed + 1)
    Z = X @ coef
    labels = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return {"x": X, "y": Y, "z": Z}, labels


@pytest.fixture(scope="module")
def spaces():
    return labelled_spaces()


# --------------------------------------------------------------------------
# stitch
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def translated(spaces):
    (sp, labels) = spaces
    X, Y = sp["x"], sp["y"]
    head = LogisticRegression().fit(Y[:200], labels[:200])
    tr = ProcrustesTranslator("scaled").fit(X[:100], Y[:100])
    return X, Y, labels, tr, head


def test_stitch_is_a_frozen_pipeline_of_translator_and_head(translated):
    X, Y, labels, tr, head = translated
    model = stitch(tr, head)
    assert isinstance(model, Pipeline)
    assert [name for name, _ in model.steps] == ["translator", "head"]
    assert all(isinstance(step, FrozenEstimator) for _, step in model.steps)
    np.testing.assert_array_equal(model.predict(X[200:]), head.predict(tr.transform(X[200:])))
    assert model.score(X[200:], labels[200:]) == head.score(tr.transform(X[200:]), labels[200:])
    # an exact map: stitched accuracy equals the head's own accuracy on the target
    assert model.score(X[200:], labels[200:]) == head.score(Y[200:], labels[200:])
    # while feeding the source straight in is near chance
    assert head.score(X[200:], labels[200:]) < 0.8


def test_fitting_a_stitched_model_changes_nothing(translated):
    X, Y, labels, tr, head = translated
    coef, head_coef = tr.coef_.copy(), head.coef_.copy()
    model = stitch(tr, head).fit(Y[::-1], labels)
    np.testing.assert_array_equal(tr.coef_, coef)
    np.testing.assert_array_equal(head.coef_, head_coef)
    assert model.score(X[200:], labels[200:]) == head.score(Y[200:], labels[200:])


def test_stitched_models_pickle_and_translators_persist(translated, tmp_path):
    X, _, labels, tr, head = translated
    model = stitch(tr, head)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    path = tmp_path / "translator.skl"
    save(tr, path)
    np.testing.assert_array_equal(stitch(load(path), head).predict(X), model.predict(X))


def test_stitch_none_is_the_absolute_baseline(translated):
    X, _, labels, _, head = translated
    for identity in (None, "passthrough"):
        model = stitch(identity, head)
        assert model.steps[0] == ("translator", "passthrough")
        assert model.score(X, labels) == head.score(X, labels)


def test_stitch_relative_pattern_and_pipeline_translators(spaces):
    (sp, labels) = spaces
    X, Z = sp["x"], sp["z"]
    proj_x = RelativeProjector(60, random_state=0).fit(X[:200])
    proj_z = RelativeProjector(anchors=proj_x.anchor_indices_).fit(Z[:200])
    head = LogisticRegression().fit(proj_z.transform(Z[:200]), labels[:200])
    relative = stitch(proj_x, head)   # x's projector, head trained on z's relative space
    assert relative.score(X[200:], labels[200:]) > 0.9
    # translation through the relative space: a pipeline of two frozen projections
    inverse = InverseRelativeProjector(anchors=proj_x.anchor_indices_).fit(Z[:200])
    irp = make_pipeline(FrozenEstimator(proj_x), FrozenEstimator(inverse))
    head_z = LogisticRegression().fit(Z[:200], labels[:200])
    assert stitch(irp, head_z).score(X[200:], labels[200:]) > 0.9


def test_stitch_bad_input(translated):
    X, Y, labels, tr, head = translated
    with pytest.raises(NotFittedError):
        stitch(ProcrustesTranslator(), head)
    with pytest.raises(NotFittedError):
        stitch(tr, LogisticRegression())
    narrow = LogisticRegression().fit(Y[:, :5], labels)
    with pytest.raises(ValueError, match="translator outputs 8 features but head expects "
                                         "n_features_in_=5"):
        stitch(tr, narrow)
    with pytest.raises(ValueError, match="translator='identity'"):
        stitch("identity", head)
    with pytest.raises(TypeError, match="head must be a fitted estimator"):
        stitch(tr, np.eye(3))
    with pytest.raises(TypeError, match="translator must be a fitted transformer"):
        stitch(head, head)


# --------------------------------------------------------------------------
# stitching_matrix on synthetic spaces (exact relations)
# --------------------------------------------------------------------------
FAST = ("absolute", "relative", "orthogonal", "affine", "inverse", "inverse-pruned")


@pytest.fixture(scope="module")
def matrix(spaces):
    (sp, labels) = spaces
    # z is 8-d data in 12 dimensions: its maps are under-determined (summary warning)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return stitching_matrix(sp, labels, methods=FAST, n_anchors=60, random_state=0)


def cell(results, method, source, target, column="accuracy"):
    row = results[(results.method == method) & (results.source == source)
                  & (results.target == target)]
    assert len(row) == 1
    return row[column].iloc[0]


def test_matrix_layout(matrix):
    res = matrix
    assert list(res.columns) == ["method", "source", "target", "accuracy", "target_accuracy",
                                 "cosine", "top1", "mrr", "linear_cka", "mutual_knn"]
    assert len(res) == len(FAST) * 9
    assert list(res.method.unique()) == list(FAST)
    first = res[res.method == "absolute"]
    assert list(zip(first.source, first.target)) == [
        (s, t) for s in "xyz" for t in "xyz"
    ]
    assert res.attrs["spaces"] == ["x", "y", "z"] and res.attrs["methods"] == list(FAST)
    train, test, anchors = res.attrs["train"], res.attrs["test"], res.attrs["anchors"]
    assert len(test) == 90 and len(train) == 210 and len(anchors) == 60
    assert not set(train) & set(test) and set(anchors) <= set(train)


def test_matrix_pattern_on_exact_relations(matrix):
    res = matrix
    # x and y are related by a scaled rotation and a shift: the absolute baseline fails
    assert cell(res, "absolute", "x", "y") < 0.8
    # ... and is undefined between widths 8 and 12
    assert np.isnan(cell(res, "absolute", "x", "z"))
    assert np.isnan(cell(res, "absolute", "z", "y"))
    assert np.isnan(cell(res, "absolute", "x", "z", "top1"))
    # exact relations: the translators stitch at about the target head's own accuracy (its
    # ceiling, 0.944-0.956 on 90 test rows); measured: at most 2 rows lost (orthogonal, whose
    # per-feature standard scaling on 60 anchors is not exactly the planted map).  Allowed:
    # 5 rows below the ceiling, and never under 0.85.
    for method in ("orthogonal", "affine", "inverse"):
        for s in "xyz":
            for t in "xyz":
                ceiling = cell(res, method, s, t, "target_accuracy")
                assert cell(res, method, s, t) >= min(ceiling - 5 / 90, 0.85), (method, s, t)
    # pruning keeps few anchors in 8 dimensions (every kept pair |cos| <= 0.3): an
    # approximate inverse even of exact relations (measured 0.86, cosine 0.95)
    pruned = res[res.method == "inverse-pruned"]
    assert pruned.accuracy.min() > 0.8 and pruned.cosine.min() > 0.9
    # the three relative spaces are the same: every cell equals the diagonal (0.91)
    relative = res[res.method == "relative"].accuracy
    assert relative.min() == relative.max() > 0.85
    # translators recover the maps (up to the per-feature standardization of
    # scaling="standard": each feature's std from 60 anchors is ~9 % off, measured cosine
    # >= 0.985): the right target is the nearest one
    for s, t in [("x", "y"), ("y", "x"), ("x", "z"), ("z", "y")]:
        assert cell(res, "orthogonal", s, t, "top1") == 1.0
        assert cell(res, "orthogonal", s, t, "cosine") > 0.95
        assert cell(res, "affine", s, t, "cosine") > 0.9999   # exact
    # relative representations of the three spaces coincide (cosine is invariant to all maps)
    assert cell(res, "relative", "x", "z", "cosine") > 0.999
    # diagonal: the head's own accuracy
    diagonal = res[res.source == res.target]
    np.testing.assert_allclose(
        diagonal[diagonal.method == "absolute"].accuracy,
        diagonal[diagonal.method == "absolute"].target_accuracy,
    )


def test_matrix_similarity_columns_are_symmetric_and_correct(matrix, spaces):
    (sp, _) = spaces
    res = matrix
    test = res.attrs["test"]
    expected = linear_cka(sp["x"][test], sp["z"][test])
    assert cell(res, "relative", "x", "z", "linear_cka") == pytest.approx(expected)
    assert cell(res, "absolute", "z", "x", "linear_cka") == pytest.approx(expected)
    # x -> z is an isometry: neighbourhoods are the same
    assert cell(res, "orthogonal", "x", "z", "mutual_knn") == pytest.approx(1.0)
    assert cell(res, "orthogonal", "y", "y", "linear_cka") == pytest.approx(1.0)


def test_matrix_is_deterministic_and_options_are_honoured(spaces):
    (sp, labels) = spaces
    kwargs = dict(methods="orthogonal", n_anchors=30, similarity=(), retrieval=False)
    a = stitching_matrix(sp, labels, random_state=3, **kwargs)
    b = stitching_matrix(sp, labels, random_state=3, **kwargs)
    assert a.equals(b)
    # frames of several runs concatenate (attrs are plain lists, comparable with ==)
    assert len(pd.concat([a, b])) == 2 * len(a)
    np.testing.assert_array_equal(a.attrs["anchors"], b.attrs["anchors"])
    assert list(a.columns) == ["method", "source", "target", "accuracy", "target_accuracy"]
    c = stitching_matrix(sp, labels, random_state=4, **kwargs)
    assert not np.array_equal(a.attrs["test"], c.attrs["test"])


def test_explicit_split_anchors_and_classifier(spaces):
    (sp, labels) = spaces
    train, test = np.arange(0, 200), np.arange(200, 300)
    anchors = np.arange(0, 200, 4)
    res = stitching_matrix(
        sp, labels, methods=["orthogonal"], split=(train, test), anchors=anchors,
        classifier=KNeighborsClassifier(5), similarity=("rbf_cka", "knn_jaccard"),
    )
    np.testing.assert_array_equal(res.attrs["train"], train)
    np.testing.assert_array_equal(res.attrs["test"], test)
    np.testing.assert_array_equal(res.attrs["anchors"], anchors)
    assert {"rbf_cka", "knn_jaccard"} <= set(res.columns)
    # 5-NN head, 50 anchors, 100 test rows: measured 0.86 (head's own 0.91, chance 0.5)
    assert cell(res, "orthogonal", "x", "y") > 0.75
    # the head really is the given classifier: its own accuracy on y's test rows
    knn = KNeighborsClassifier(5).fit(sp["y"][train], labels[train])
    assert cell(res, "orthogonal", "y", "y", "target_accuracy") == knn.score(sp["y"][test],
                                                                            labels[test])
    # boolean masks work as well
    mask = np.zeros(300, dtype=bool)
    mask[train] = True
    res2 = stitching_matrix(sp, labels, methods=["orthogonal"], split=(mask, ~mask),
                            anchors=anchors, classifier=KNeighborsClassifier(5),
                            similarity=("rbf_cka", "knn_jaccard"))
    assert res2.equals(res)


def test_explicit_anchors_without_split_stay_training_rows(spaces):
    (sp, labels) = spaces
    anchors = np.arange(0, 300, 5)
    res = stitching_matrix(sp, labels, methods="relative", anchors=anchors, test_size=0.25,
                           random_state=0, similarity=())
    assert set(anchors) <= set(res.attrs["train"])
    assert len(res.attrs["test"]) == 75


def test_tiny_test_sets_use_fewer_neighbours():
    sp, labels = labelled_spaces(24)
    res = stitching_matrix(sp, labels, methods="orthogonal", n_anchors=10, random_state=0,
                           similarity=("mutual_knn", "knn_jaccard"))
    assert len(res.attrs["test"]) == 7  # k = 5 neighbours instead of 10 (k = 6 would take every row)
    assert cell(res, "orthogonal", "x", "z", "mutual_knn") == pytest.approx(1.0)


def test_anchor_strategies(spaces):
    (sp, labels) = spaces
    for strategy in ("fps", "kmeans", "stratified"):
        res = stitching_matrix(sp, labels, methods="orthogonal", anchors=strategy,
                               n_anchors=20, random_state=0, similarity=(), retrieval=False)
        assert len(res.attrs["anchors"]) == 20
    counts = np.bincount(labels[res.attrs["anchors"]])
    assert counts.min() == 10  # stratified: balanced over the two classes


def test_user_estimators_as_methods(spaces):
    (sp, labels) = spaces
    kwargs = dict(n_anchors=40, random_state=0, similarity=(), retrieval=False)
    builtin = stitching_matrix(sp, labels, methods=["orthogonal", "relative"], **kwargs)
    custom = stitching_matrix(
        sp, labels, **kwargs,
        methods={"ortho": ProcrustesTranslator("orthogonal", n_anchors=5),
                 "rel": RelativeProjector(n_anchors=7)},  # anchors are replaced: parallel ones
    )
    np.testing.assert_array_equal(builtin.accuracy, custom.accuracy)
    assert list(custom.method.unique()) == ["ortho", "rel"]
    # (name, estimator) pairs and bare estimators
    pairs = stitching_matrix(sp, labels, **kwargs,
                             methods=[("l2", RelativeProjector(normalize="l2")), "absolute"])
    assert list(pairs.method.unique()) == ["l2", "absolute"]
    bare = stitching_matrix(sp, labels, **kwargs, methods=ProcrustesTranslator("scaled"))
    assert list(bare.method.unique()) == ["ProcrustesTranslator"]


def test_tensor_spaces_and_labels(spaces):
    (sp, labels) = spaces
    kwargs = dict(methods="orthogonal", n_anchors=30, random_state=0)
    ref = stitching_matrix(sp, labels, **kwargs)
    tens = stitching_matrix({k: torch.as_tensor(v) for k, v in sp.items()},
                            torch.as_tensor(labels), **kwargs)
    np.testing.assert_allclose(tens.accuracy, ref.accuracy)


def test_fit_warnings_are_collected_and_summarized(spaces):
    (sp, labels) = spaces
    dead = dict(sp)
    dead["x"] = np.hstack([sp["x"], np.zeros((300, 3))])  # dead units: under-determined maps
    with pytest.warns(UserWarning, match=r"warning\(s\) during the fits") as record:
        res = stitching_matrix(dead, labels, methods="orthogonal", n_anchors=40,
                               random_state=0, similarity=())
    assert len(record) == 1
    assert res.attrs["warnings"] and all("determined on only" in w
                                         for w in res.attrs["warnings"])
    assert res.attrs["warnings"][0].startswith("orthogonal x -> ")


def test_progress_bar(spaces, capsys):
    (sp, labels) = spaces
    stitching_matrix(sp, labels, methods="absolute", n_anchors=20, random_state=0)
    assert capsys.readouterr().err == ""      # silent by default
    stitching_matrix(sp, labels, methods="absolute", n_anchors=20, random_state=0,
                     progress=True)
    err = capsys.readouterr().err
    assert "stitching" in err and "9/9" in err


def test_optional_dependencies_are_named(spaces, monkeypatch):
    (sp, labels) = spaces
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install sklearn-latent\[eval\]"):
        stitching_matrix(sp, labels)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"tqdm.*pip install sklearn-latent\[eval\]"):
        stitching_matrix(sp, labels, n_anchors=20, progress=True)


def bad_cases():
    sp, labels = labelled_spaces(60)
    short = dict(sp, y=sp["y"][:50])
    nan = dict(sp, y=sp["y"].copy())
    nan["y"][3, 2] = np.nan
    return [
        ("not a dict", dict(spaces=[sp["x"]]), TypeError, "non-empty dict"),
        ("empty", dict(spaces={}), TypeError, "non-empty dict"),
        ("rows", dict(spaces=short), ValueError, r"spaces\['y'\] has 50 rows but y has 60"),
        ("nan", dict(spaces=nan), ValueError, r"spaces\['y'\] contains NaN"),
        ("labels", dict(y=None), ValueError, "class labels"),
        ("method", dict(methods="procrustes"), ValueError, "method 'procrustes'"),
        ("no methods", dict(methods=[]), ValueError, "methods is empty"),
        ("twice", dict(methods=["relative", "relative"]), ValueError, "appears twice"),
        ("method type", dict(methods=[3]), TypeError, "methods entries"),
        ("no transform", dict(methods={"lr": LogisticRegression()}), TypeError,
         "estimator with fit and transform"),
        ("similarity", dict(similarity=("cka",)), ValueError, "similarity entry 'cka'"),
        ("retrieval", dict(retrieval="yes"), TypeError, "retrieval must be a bool"),
        ("strategy", dict(anchors="best"), ValueError, "anchors='best'"),
        ("n_anchors", dict(n_anchors=500), ValueError, "n_anchors=500"),
        ("test_size", dict(test_size=1.0), ValueError, "test_size=1.0"),
        ("split overlap", dict(split=(np.arange(40), np.arange(30, 60))), ValueError,
         "both training and test rows"),
        ("split range", dict(split=(np.arange(40), np.arange(40, 61))), ValueError,
         r"split\[1\] \(test\) must hold row indices in \[0, 60\)"),
        ("split shape", dict(split=np.arange(60)), TypeError, "pair"),
        ("anchor in test", dict(split=(np.arange(40), np.arange(40, 60)),
                                anchors=np.arange(30, 45)), ValueError,
         "anchors must be training rows; 5 of them"),
        ("anchor dtype", dict(anchors=np.linspace(0, 1, 5)), TypeError, "integer row indices"),
        ("classifier", dict(classifier="lr"), TypeError, "classifier must be an estimator"),
    ]


@pytest.mark.parametrize("name, kwargs, error, match", bad_cases(),
                         ids=[case[0] for case in bad_cases()])
def test_matrix_bad_input(name, kwargs, error, match):
    sp, labels = labelled_spaces(60)
    args = dict(spaces=sp, y=labels, n_anchors=20, random_state=0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        stitching_matrix(args.pop("spaces"), args.pop("y"), **args)


# --------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------
def test_plot_stitching_matrix(matrix, tmp_path):
    fig = plot_stitching_matrix(matrix)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(FAST)
    texts = [t.get_text() for t in panels[0].texts]
    assert len(texts) == 9 and texts.count("n/a") == 4   # x<->z, y<->z
    assert texts[0] == f"{cell(matrix, 'absolute', 'x', 'x'):.2f}"
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["x", "y", "z"]
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    one = plot_stitching_matrix(matrix, "linear_cka", methods=["relative"])
    assert [ax.get_title() for ax in one.axes if ax.get_title()] == ["relative"]
    assert "n/a" not in [t.get_text() for t in one.axes[0].texts]


def test_plot_bad_input(matrix):
    with pytest.raises(ValueError, match="missing columns \\['rbf_cka'\\]"):
        plot_stitching_matrix(matrix, "rbf_cka")
    with pytest.raises(ValueError, match="methods=\\['product'\\]"):
        plot_stitching_matrix(matrix, methods=["product"])
    with pytest.raises(ValueError, match="results must be a DataFrame"):
        plot_stitching_matrix(np.zeros((3, 3)))


# --------------------------------------------------------------------------
# real encoders: scikit-learn digits
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_digits_stitching_pattern():
    """Measured (70/30 split, 300 random anchors, LogisticRegression heads):
    absolute 0.10 and 0.15 between the two 64-d encoders; relative >= 0.95,
    Procrustes >= 0.95, inverse >= 0.91, inverse-pruned >= 0.92 off the diagonal;
    own accuracy ~0.97."""
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", UserWarning)  # dead ReLU units: under-determined maps
        data = make_digits_spaces({"a": (64, 0), "b": (64, 1), "c": (32, 2)}, max_iter=100)
        res = stitching_matrix(
            data.spaces, data.target, split=(data.train, data.test), random_state=0,
            methods=[m for m in METHODS if m != "product"], similarity=("linear_cka",),
        )
    off = res[res.source != res.target]
    diag = res[res.source == res.target]
    assert diag[diag.method != "inverse-pruned"].accuracy.min() > 0.95
    absolute = off[off.method == "absolute"].accuracy
    assert absolute.notna().sum() == 2 and absolute.max() < 0.3     # near chance (0.1)
    assert absolute.isna().sum() == 4                                 # 64-d vs 32-d
    for method in ("relative", "orthogonal", "scaled", "linear", "affine"):
        assert off[off.method == method].accuracy.min() > 0.9, method
    assert off[off.method == "inverse"].accuracy.min() > 0.85
    # pruning trades a little accuracy for robustness (measured 0.92-0.95, diagonal too)
    assert res[res.method == "inverse-pruned"].accuracy.min() > 0.88
    # translated test points find their own targets far more often than chance (1/540)
    assert off[off.method == "orthogonal"].top1.min() > 0.3
    assert off[off.method == "absolute"].top1.max() < 0.05
