"""ASIFClassifier: known answers, chunking, retrieval, scikit-learn API, bad input, digits."""

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_latent import ASIFClassifier, ProcrustesTranslator, RelativeProjector, load, save
from sklearn_latent import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _saved(est, path):
    """``est`` after a round trip through the library's safe file format."""
    save(est, path)
    return load(path)


def _bank(n=300, n_classes=3, seed=0):
    """Paired X/Y embeddings of items of ``n_classes`` clusters (two unrelated encoders)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    Z = 2.0 * rng.normal(size=(n_classes, 8))[labels] + rng.normal(size=(n, 8))
    X = np.tanh(Z @ rng.normal(size=(8, 20)))
    Y = Z @ rng.normal(size=(8, 12)) + 3.0
    return X, Y, labels


def _prompts(Y, labels, n_classes=3, per_class=5):
    return np.stack([Y[labels == c][:per_class].mean(0) for c in range(n_classes)])


# --------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("center", [False, True])
def test_scores_equal_dense_relative_projections(center):
    """score = <l2(sparsify(RR(x; X_bank))), l2(sparsify(RR(p; Y_bank)))> (the paper's formula)."""
    X, Y, labels = _bank()
    P = _prompts(Y, labels)
    clf = ASIFClassifier(top_k=20, exponent=3.0, center=center).fit(X[:250], Y[:250], prompts=P)
    dense = dict(top_k=20, exponent=3.0, normalize="l2", center=center)
    r_x = RelativeProjector(anchors=X[:250], **dense).fit(X[:250]).transform(X[250:])
    r_p = RelativeProjector(anchors=Y[:250], **dense).fit(Y[:250]).transform(P)
    expected = r_x @ r_p.T
    S = clf._scores(X[250:])
    assert_allclose(S, expected, atol=1e-12)
    assert_array_equal(clf.predict(X[250:]), expected.argmax(1))
    # the stored prompt representation is the dense one restricted to its support
    assert_allclose(clf.prompt_relative_, r_p[:, clf.prompt_support_], atol=1e-12)
    assert np.count_nonzero(r_p) == np.count_nonzero(clf.prompt_relative_)


def test_label_mode_is_a_top_k_similarity_vote():
    X, _, labels = _bank()
    clf = ASIFClassifier(top_k=15, exponent=2.0).fit(X[:250], labels[:250])
    S = F.pairwise(torch.from_numpy(X[250:]), torch.from_numpy(X[:250])).numpy()
    idx = np.argsort(-S, axis=1)[:, :15]
    w = np.take_along_axis(S, idx, 1) ** 2
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    counts = np.bincount(labels[:250], minlength=3)
    expected = np.stack(
        [(w * (labels[:250][idx] == c)).sum(1) / np.sqrt(counts[c]) for c in range(3)], 1
    )
    assert_allclose(clf._scores(X[250:]), expected, atol=1e-12)
    assert clf.score(X[250:], labels[250:]) > 0.9


def test_zero_shot_accuracy_well_above_chance(backend):
    X, Y, labels = _bank(n=600)
    P = _prompts(Y[:500], labels[:500])
    clf = ASIFClassifier(top_k=50, exponent=4.0).fit(
        backend.asarray(X[:500]), backend.asarray(Y[:500]), prompts=backend.asarray(P)
    )
    pred = backend.to_numpy(clf.predict(backend.asarray(X[500:])))
    assert (pred == labels[500:]).mean() > 0.9  # chance: 1/3
    proba = backend.to_numpy(clf.predict_proba(backend.asarray(X[500:])))
    assert_allclose(proba.sum(1), 1.0)
    assert_array_equal(proba.argmax(1), pred)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_kinds_and_dtypes(backend, dtype):
    X, Y, labels = _bank()
    P = _prompts(Y, labels)
    clf = ASIFClassifier(top_k=10).fit(backend.asarray(X, dtype), backend.asarray(Y, dtype),
                                       prompts=backend.asarray(P, dtype))
    Xq = backend.asarray(X[:7], dtype)
    for out in (clf.decision_function(Xq), clf.predict_proba(Xq), clf.predict(Xq)):
        assert backend.is_kind(out)
    assert backend.dtype_name(clf.decision_function(Xq)) == np.dtype(dtype).name
    assert clf.bank_x_.dtype == dtype and isinstance(clf.bank_x_, np.ndarray)
    dist, ind = clf.kneighbors(Xq, 2)
    assert backend.is_kind(dist) and backend.is_kind(ind)
    assert backend.dtype_name(ind) == "int64"


def test_string_classes_and_tensor_input_give_numpy_labels():
    X, Y, labels = _bank()
    P = _prompts(Y, labels)
    clf = ASIFClassifier(top_k=10).fit(X, Y, prompts=P, classes=["a", "b", "c"])
    out = clf.predict(torch.from_numpy(X[:5]))
    assert isinstance(out, np.ndarray) and set(out) <= {"a", "b", "c"}
    assert_array_equal(out, clf.predict(X[:5]))


# --------------------------------------------------------------------------
# chunking: a running top-k merge over bank chunks equals the whole bank
# --------------------------------------------------------------------------
# The selected bank rows are identical.  The similarity values agree to the
# last bit or two only: BLAS sums a GEMM with fewer columns in another order
# (e.g. a 1-column chunk is a GEMV), which no chunked algorithm can avoid.
ULPS = {torch.float64: 4e-16, torch.float32: 2.5e-7}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [3, 64, 299])
def test_topk_similarity_chunked_equals_unchunked(device, chunk, dtype):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 9, generator=gen, dtype=torch.float64).to(device, dtype)
    B = torch.randn(300, 9, generator=gen, dtype=torch.float64).to(device, dtype)
    c = B.mean(0)
    v_ref, i_ref = torch.topk(F.pairwise(X, B, center=c), 25, dim=1)
    v, i = F.topk_similarity(X, B, 25, center=c, chunk_size=chunk)
    assert torch.equal(i, i_ref)
    torch.testing.assert_close(v, v_ref, rtol=0, atol=2 * ULPS[dtype])
    # top_k larger than a chunk, and larger than the bank
    v, i = F.topk_similarity(X, B, 1000, chunk_size=chunk)
    assert v.shape == (40, 300)
    assert torch.equal(i.sort(1).values, torch.arange(300, device=device).expand(40, -1))


@pytest.mark.parametrize("center", [False, True])
def test_chunked_classifier_equals_unchunked(backend, center):
    X, Y, labels = _bank(n=400)
    P = _prompts(Y, labels)
    args = (backend.asarray(X[:350]), backend.asarray(Y[:350]))
    full = ASIFClassifier(top_k=30, center=center, bank_batch_size=None).fit(
        *args, prompts=backend.asarray(P))
    chunked = ASIFClassifier(top_k=30, center=center, bank_batch_size=13, batch_size=9).fit(
        *args, prompts=backend.asarray(P))
    assert_array_equal(chunked.prompt_support_, full.prompt_support_)
    assert_allclose(chunked.prompt_relative_, full.prompt_relative_, rtol=0, atol=1e-15)
    Xq = backend.asarray(X[350:])
    assert_array_equal(backend.to_numpy(chunked.predict(Xq)), backend.to_numpy(full.predict(Xq)))
    assert_allclose(backend.to_numpy(chunked.decision_function(Xq)),
                    backend.to_numpy(full.decision_function(Xq)), rtol=0, atol=1e-15)
    cand = backend.asarray(Y[350:])
    d1, i1 = chunked.kneighbors(Xq, 4, candidates=cand)
    d2, i2 = full.kneighbors(Xq, 4, candidates=cand)
    assert_array_equal(backend.to_numpy(i1), backend.to_numpy(i2))
    assert_allclose(backend.to_numpy(d1), backend.to_numpy(d2), rtol=0, atol=1e-15)


def test_sparse_dot_matches_dense():
    gen = torch.Generator().manual_seed(1)
    vals = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    idx = torch.stack([torch.randperm(30, generator=gen)[:5] for _ in range(6)])
    support, dense = F.sparse_rows_to_support(torch.randn(4, 8, generator=gen,
                                                          dtype=torch.float64),
                                              torch.stack([torch.randperm(30, generator=gen)[:8]
                                                           for _ in range(4)]))
    A = torch.zeros(6, 30, dtype=torch.float64).scatter_(1, idx, vals)
    Bd = torch.zeros(4, 30, dtype=torch.float64)
    Bd[:, support] = dense
    for block in (1, 7, 1 << 20):
        torch.testing.assert_close(F.sparse_dot(vals, idx, support, dense, block), A @ Bd.T)


# --------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [None, 7])
def test_kneighbors_csls_equals_the_dense_formula(backend, batch_size):
    X, Y, labels = _bank(n=400)
    clf = ASIFClassifier(top_k=40, exponent=4.0, batch_size=batch_size).fit(
        backend.asarray(X[:300]), backend.asarray(Y[:300]), prompts=_prompts(Y, labels))
    Xq, cand = backend.asarray(X[300:]), backend.asarray(Y[330:])
    # every plain score, from the plain ranking of all 70 candidates
    dist, ind = (backend.to_numpy(a) for a in clf.kneighbors(Xq, 70, candidates=cand))
    S = np.empty((100, 70))
    np.put_along_axis(S, ind, 1.0 - dist, axis=1)
    k = 5
    r_q = np.sort(S, axis=1)[:, -k:].mean(1)
    r_t = np.sort(S, axis=0)[-k:].mean(0)
    C = 2 * S - r_q[:, None] - r_t[None, :]
    expected = np.argsort(-C, axis=1)[:, :4]
    dist, ind = (backend.to_numpy(a) for a in clf.kneighbors(Xq, 4, candidates=cand, csls=k))
    assert_array_equal(ind, expected)
    assert_allclose(dist, 1.0 - np.take_along_axis(C, expected, 1), rtol=0, atol=1e-10)
    # more neighbours than targets or queries: clamped, as a mean over all of them
    dist, ind = clf.kneighbors(Xq[:3], 2, candidates=cand, csls=500)
    assert backend.to_numpy(ind).shape == (3, 2)


def test_kneighbors_csls_retrieves_more_exact_partners():
    X, Y, labels = _bank(n=400)
    clf = ASIFClassifier(top_k=40, exponent=4.0).fit(X[:300], Y[:300],
                                                      prompts=_prompts(Y, labels))
    hits = {}
    for csls in (None, 10):
        ind = clf.kneighbors(X[300:], 1, return_distance=False, candidates=Y[300:], csls=csls)
        hits[csls] = (ind[:, 0] == np.arange(100)).mean()
    assert hits[10] >= hits[None] + 0.08, hits  # measured 0.46 against 0.30


@pytest.mark.parametrize("csls, error, match", [
    (0, ValueError, "csls must be a positive number of neighbours, got 0"),
    (-3, ValueError, "positive number of neighbours"),
    (True, TypeError, "csls must be None or an int"),
    (2.5, TypeError, "csls must be None or an int"),
])
def test_kneighbors_csls_bad_values(csls, error, match):
    X, Y, labels = _bank()
    clf = ASIFClassifier(top_k=20).fit(X[:200], Y[:200], prompts=_prompts(Y, labels))
    with pytest.raises(error, match=match):
        clf.kneighbors(X[200:], 2, candidates=Y[200:], csls=csls)


def test_kneighbors_over_prompts_and_candidates(backend):
    X, Y, labels = _bank(n=400)
    P = _prompts(Y, labels)
    clf = ASIFClassifier(top_k=40, exponent=4.0).fit(
        backend.asarray(X[:300]), backend.asarray(Y[:300]), prompts=backend.asarray(P))
    Xq = backend.asarray(X[300:])
    dist, ind = (backend.to_numpy(a) for a in clf.kneighbors(Xq, 3))
    assert_array_equal(ind[:, 0], backend.to_numpy(clf.predict(Xq)))
    assert (np.diff(dist, axis=1) >= 0).all()
    S = backend.to_numpy(clf.decision_function(Xq))
    assert_allclose(dist, 1.0 - np.take_along_axis(S, ind, 1), atol=1e-12)
    # cross-space retrieval among 100 Y candidates: the partner's class ranks first
    ind = backend.to_numpy(clf.kneighbors(Xq, 1, return_distance=False,
                                          candidates=backend.asarray(Y[300:])))
    assert (labels[300:][ind[:, 0]] == labels[300:]).mean() > 0.9


# --------------------------------------------------------------------------
# scikit-learn API
# --------------------------------------------------------------------------
def _expected_failed_checks(estimator):
    return {
        "check_supervised_y_2d": (
            "a 2-D y is the Y side of a bank of pairs (zero-shot mode), which needs "
            "prompts; a column vector of labels cannot be told apart from a 1-D Y space"
        ),
    }


@parametrize_with_checks(
    [ASIFClassifier(top_k=10, exponent=2.0),
     ASIFClassifier(top_k=5, center=True, bank_batch_size=40, batch_size=50)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_two_d_column_y_is_the_zero_shot_mode():
    # what trips check_supervised_y_2d, and only that
    X, _, labels = _bank()
    with pytest.raises(ValueError, match="prompts"):
        ASIFClassifier().fit(X, labels[:, None].astype(float))
    clf = ASIFClassifier(top_k=5).fit(X, labels[:, None].astype(float),
                                      prompts=np.array([[0.0], [1.0], [2.0]]))
    assert clf.predict(X).shape == (300,)


def test_clone_pickle_persist_and_grid_search(tmp_path):
    X, Y, labels = _bank()
    P = _prompts(Y, labels)
    clf = ASIFClassifier(top_k=20).fit(X, Y, prompts=P, classes=np.array([3, 5, 7]))
    ref = clf.decision_function(X[:20])
    for other in (pickle.loads(pickle.dumps(clf)), _saved(clf, tmp_path / "asif")):
        assert_array_equal(other.decision_function(X[:20]), ref)
        assert_array_equal(other.classes_, [3, 5, 7])
    assert clone(clf).get_params() == clf.get_params()
    assert not hasattr(clone(clf), "bank_x_")
    tensor_fit = ASIFClassifier(top_k=20).fit(torch.from_numpy(X), torch.from_numpy(Y),
                                              prompts=torch.from_numpy(P))
    assert isinstance(pickle.loads(pickle.dumps(tensor_fit)).bank_x_, np.ndarray)
    grid = GridSearchCV(ASIFClassifier(), {"top_k": [3, 30], "exponent": [1.0, 4.0]}, cv=3)
    grid.fit(X, labels)
    assert grid.best_score_ > 0.9
    assert set(grid.best_params_) == {"top_k", "exponent"}


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def test_bad_input_raises_clearly():
    X, Y, labels = _bank()
    P = _prompts(Y, labels)
    cases = [
        (dict(X=X, y=None), ValueError, "requires y"),
        (dict(X=X, y=Y[:-1], prompts=P), ValueError, "same pairs: X has 300 rows, y has 299"),
        (dict(X=X, y=Y), ValueError, "prompts .* are required"),
        (dict(X=X, y=Y, prompts=P[:, :5]), ValueError, "prompts have 5 features"),
        (dict(X=X, y=Y, prompts=P, classes=[1, 2]), ValueError, "one label per prompt"),
        (dict(X=X, y=Y, prompts=P, classes=[1, 1, 2]), ValueError, "distinct"),
        (dict(X=X, y=labels, prompts=P), ValueError, "only when y is the 2-D"),
        (dict(X=X, y=labels[:-1]), ValueError, "same number of rows"),
        (dict(X=X, y=np.linspace(0, 1, 300)), ValueError, "Unknown label type"),
        (dict(X=np.where(X > 0.5, np.nan, X), y=Y, prompts=P), ValueError, "NaN"),
        (dict(X=X, y=Y, prompts=np.full_like(P, np.inf)), ValueError, "infinity"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            ASIFClassifier().fit(kwargs.pop("X"), kwargs.pop("y"), **kwargs)
    for params, exc, match in [
        (dict(top_k=0), ValueError, "top_k"), (dict(top_k=2.5), TypeError, "top_k"),
        (dict(exponent=0.0), ValueError, "exponent"), (dict(temperature=-1), ValueError,
                                                         "temperature"),
        (dict(center="yes"), TypeError, "center"), (dict(bank_batch_size=0), ValueError,
                                                    "bank_batch_size"),
        (dict(batch_size=1.5), TypeError, "batch_size"),
    ]:
        with pytest.raises(exc, match=match):
            ASIFClassifier(**params).fit(X, Y, prompts=P)
    clf = ASIFClassifier(top_k=10).fit(X, Y, prompts=P)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="n_neighbors=4"):
        clf.kneighbors(X[:3], 4)
    with pytest.raises(ValueError, match="candidates have 3 features"):
        clf.kneighbors(X[:3], 1, candidates=Y[:, :3])
    with pytest.raises(ValueError, match="fitted on class labels"):
        ASIFClassifier().fit(X, labels).kneighbors(X[:3], 1, candidates=Y)
    with pytest.raises(NotFittedError):
        ASIFClassifier().predict(X)
    # a failing refit leaves the fitted state untouched
    before = clf.prompt_relative_.copy()
    with pytest.raises(ValueError):
        clf.fit(X, Y[:-1], prompts=P)
    assert_array_equal(clf.prompt_relative_, before)


# --------------------------------------------------------------------------
# real data: digits through two encoders of two different views
# --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The orthogonal map is determined:UserWarning")
def test_digits_two_views_zero_shot_beats_chance_and_procrustes():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread
    from sklearn.neural_network import MLPClassifier

    X_train, X_test, y_train, y_test = digits_split()
    A_train, A_test = digits_encoder("A")  # encoder of the original images

    def view(X):  # mirrored and 2x2-pooled (4 x 4) images: a second modality
        return X.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 4, 2, 4, 2).mean((2, 4)).reshape(-1, 16)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = fit_single_thread(MLPClassifier((48,), random_state=5), view(X_train), y_train)
    B_train = np.maximum(view(X_train) @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)
    rng = np.random.default_rng(0)
    few = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 5, replace=False)
                          for c in range(10)])
    prompts = np.stack([B_train[few][y_train[few] == c].mean(0) for c in range(10)])
    clf = ASIFClassifier(top_k=50, exponent=4.0).fit(A_train, B_train, prompts=prompts)
    acc = clf.score(A_test, y_test)
    translated = ProcrustesTranslator().fit(A_train, B_train).transform(A_test)
    S = F.pairwise(torch.from_numpy(translated), torch.from_numpy(prompts), "euclidean")
    procrustes = float((S.argmin(1).numpy() == y_test).mean())
    assert acc > 0.85  # chance 0.10; measured 0.90
    assert acc > procrustes + 0.03  # measured 0.84


# --------------------------------------------------------------------------
# issue 12
# --------------------------------------------------------------------------
def test_kneighbors_with_batch_size_auto(backend):
    # TypeError: 'str' object cannot be interpreted as an integer
    X, Y, labels = _bank()
    ref = ASIFClassifier(top_k=20).fit(X, labels)
    clf = ASIFClassifier(top_k=20, batch_size="auto").fit(backend.asarray(X), labels)
    dist, ind = clf.kneighbors(backend.asarray(X[:50]), 2)
    dist_ref, ind_ref = ref.kneighbors(X[:50], 2)
    assert_allclose(backend.to_numpy(dist), dist_ref, atol=1e-12)
    assert_array_equal(backend.to_numpy(ind), ind_ref)
    # an int batch is honoured too
    _, ind7 = ASIFClassifier(top_k=20, batch_size=7).fit(X, labels).kneighbors(X[:50], 2)
    assert_array_equal(ind7, ind_ref)


@pytest.mark.parametrize("change", [dict(top_k=50), dict(exponent=3.0), dict(center=True)])
def test_parameters_changed_after_fit_refuse_prediction(backend, change):
    X, Y, labels = _bank()
    clf = ASIFClassifier(top_k=20, exponent=2.0).fit(backend.asarray(X), labels)
    clf.set_params(**change)
    (name, _), = change.items()
    for method in ("predict", "decision_function", "kneighbors"):
        with pytest.raises(NotFittedError, match=f"fitted with {name}=.*but {name} is now"):
            getattr(clf, method)(backend.asarray(X[:5]))
    assert clf.fit(backend.asarray(X), labels).predict(backend.asarray(X[:5])).shape == (5,)


def test_temperature_changed_after_fit_is_validated():
    X, Y, labels = _bank()
    clf = ASIFClassifier(top_k=20).fit(X, labels)
    clf.set_params(temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        clf.predict_proba(X[:5])
    assert clf.set_params(temperature=0.1).predict_proba(X[:5]).shape == (5, 3)
