"""Retention evaluation of embedding migrations (sklearn_latent.metrics._retention)."""

import pickle

import numpy as np
import pytest

from sklearn_latent import ProcrustesTranslator
from sklearn_latent.metrics import RetentionReport, retention_report, search_top_k


def _brute(Q, C, k, metric):
    if metric == "cosine":
        S = (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ (
            C / np.linalg.norm(C, axis=1, keepdims=True)
        ).T
    elif metric == "dot":
        S = Q @ C.T
    else:
        S = -((Q[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    return np.argsort(-S, axis=1, kind="stable")[:, :k], S


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("batch_size", [None, 7, 1000])
def test_search_top_k_matches_brute_force(backend, rng, metric, batch_size):
    Q, C = rng.normal(size=(13, 5)), rng.normal(size=(101, 5)) + 0.3
    values, idx = search_top_k(
        backend.asarray(Q), backend.asarray(C), 6, metric=metric, batch_size=batch_size
    )
    ref, S = _brute(Q, C, 6, metric)
    np.testing.assert_array_equal(idx, ref)
    expected = np.take_along_axis(S, ref, axis=1)
    np.testing.assert_allclose(values, -expected if metric == "euclidean" else expected,
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_search_top_k_csls_matches_brute_force(backend, rng, batch_size):
    Q, C = rng.normal(size=(13, 5)), rng.normal(size=(101, 5)) + 0.3
    _, S = _brute(Q, C, 1, "cosine")
    r_q = np.sort(S, axis=1)[:, -4:].mean(axis=1)  # each query's 4 nearest corpus rows
    r_c = np.sort(S, axis=0)[-4:].mean(axis=0)  # each corpus row's 4 nearest queries
    csls = 2 * S - r_q[:, None] - r_c[None, :]
    ref = np.argsort(-csls, axis=1, kind="stable")[:, :6]
    values, idx = search_top_k(backend.asarray(Q), backend.asarray(C), 6, csls=4,
                               batch_size=batch_size)
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(values, np.take_along_axis(csls, ref, axis=1), rtol=1e-6,
                               atol=1e-6)
    assert (idx != _brute(Q, C, 6, "cosine")[0]).any()  # CSLS ranks differently here


def test_csls_demotes_a_hub():
    """A corpus row near every query (a hub) tops plain cosine more often than CSLS."""
    rng = np.random.default_rng(0)
    hub = np.eye(8)[:1]
    Q = rng.normal(size=(40, 8)) + 3 * hub  # queries share a direction; row 40 is along it
    C = np.vstack([Q + 1.5 * rng.normal(size=Q.shape), hub])
    plain = search_top_k(Q, C, 1)[1][:, 0]
    hubbed = search_top_k(Q, C, 1, csls=5)[1][:, 0]
    assert (plain == 40).mean() > (hubbed == 40).mean()
    assert (hubbed == np.arange(40)).mean() > (plain == np.arange(40)).mean()


def test_search_top_k_transform_applies_per_chunk(rng):
    C = rng.normal(size=(90, 4))
    R = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    t = ProcrustesTranslator(scaling=None).fit(C, C @ R)
    Q = rng.normal(size=(9, 4))
    _, got = search_top_k(Q, C, 5, transform=t, batch_size=11)
    _, ref = search_top_k(Q, t.transform(C), 5)
    np.testing.assert_array_equal(got, ref)


def test_search_top_k_memmap_corpus(rng, tmp_path):
    C = rng.normal(size=(64, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", C)
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")
    Q = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(search_top_k(Q, mm, 4, batch_size=32)[1],
                                  search_top_k(Q, C, 4)[1])


def _spaces(rng, n=900, d=16, noise=0.05):
    legacy = rng.normal(size=(n, d))
    R = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return legacy, legacy @ R + noise * rng.normal(size=(n, d))


def test_retention_known_rotation_near_one_and_unrelated_near_zero(rng):
    legacy, new = _spaces(rng)
    cal, corpus, queries = slice(0, 300), slice(300, 800), slice(800, 900)
    fwd = ProcrustesTranslator().fit(legacy[cal], new[cal])
    bwd = ProcrustesTranslator().fit(new[cal], legacy[cal])
    r = retention_report(new[queries], new[corpus], legacy[corpus], queries_legacy=legacy[queries],
                         corpus_translator=fwd, query_translator=bwd, k=10)
    assert set(r.scores) == {"ceiling", "legacy", "translated_queries", "translated_corpus"}
    assert r.relevance == "ceiling_top_10" and r.n_queries == 100 and r.n_corpus == 500
    assert r.scores["ceiling"] == pytest.approx({"recall": 1.0, "ndcg": 1.0, "mrr": 1.0})
    for s in ("translated_queries", "translated_corpus"):
        assert r.retention(s) > 0.8
    # one pseudo-relevant row (re-embedding's best hit) per query: easier to retain
    r1 = retention_report(new[queries], new[corpus], legacy[corpus], corpus_translator=fwd,
                          k=10, n_relevant=1)
    assert r1.relevance == "ceiling_top_1"
    assert r1.retention("translated_corpus") > 0.9
    r30 = retention_report(new[queries], new[corpus], legacy[corpus], corpus_translator=fwd,
                           k=10, n_relevant=30)
    assert r30.scores["ceiling"]["recall"] == pytest.approx(1.0)  # capped: 10 hits of min(10, 30)
    # an unrelated "new" space: nothing retained (10 / 500 expected by chance)
    other = rng.normal(size=new.shape)
    bad = ProcrustesTranslator().fit(legacy[cal], other[cal])
    r_bad = retention_report(other[queries], other[corpus], legacy[corpus],
                             corpus_translator=bad, k=10)
    assert r_bad.retention("translated_corpus") < 0.2


def test_retention_scores_known_answer():
    # 1-D corpus on a line: the query at 0 ranks corpus rows by distance
    corpus = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    queries = np.array([[0.0, 0.0]])

    class Identity:
        def transform(self, X):
            return X

    r = retention_report(queries, corpus, corpus, corpus_translator=Identity(),
                         relevant=[[1, 3]], k=2, metric="euclidean")
    # top-2 = rows 0, 1: one hit of min(2, 2) at rank 2
    s = r.scores["ceiling"]
    assert s["recall"] == pytest.approx(0.5)
    assert s["mrr"] == pytest.approx(0.5)
    assert s["ndcg"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert r.relevance == "given" and r.retention("translated_corpus") == pytest.approx(1.0)


def test_retention_labels(rng):
    centers = rng.normal(size=(5, 8)) * 3
    y = np.repeat(np.arange(5), 60)
    legacy = centers[y] + rng.normal(size=(300, 8))
    new = legacy[:, ::-1].copy()  # a permutation of coordinates: an exact orthogonal map
    t = ProcrustesTranslator(scaling=None).fit(legacy[:100], new[:100])
    r = retention_report(new[250:], new[100:250], legacy[100:250], corpus_translator=t,
                         query_labels=y[250:], corpus_labels=y[100:250], k=5)
    assert r.relevance == "labels"
    assert r.scores["ceiling"]["recall"] > 0.8
    assert r.retention("translated_corpus") == pytest.approx(1.0, abs=1e-12)


def test_report_table_frame_and_pickle(rng):
    legacy, new = _spaces(rng, n=300)
    t = ProcrustesTranslator().fit(legacy[:100], new[:100])
    r = retention_report(new[250:], new[100:250], legacy[100:250], corpus_translator=t, k=3)
    df = r.to_frame()
    assert list(df.columns) == ["setting", "score", "k", "value", "retention"]
    assert len(df) == 2 * 3 and set(df.setting) == {"ceiling", "translated_corpus"}
    assert "translated_corpus" in str(r) and "recall@k" in str(r)
    assert pickle.loads(pickle.dumps(r)) == r
    assert isinstance(r, RetentionReport)
    c = retention_report(new[250:], new[100:250], legacy[100:250], corpus_translator=t, k=3,
                         csls=5)
    assert c.csls == 5 and "ranked by CSLS-5" in str(c) and r.csls is None
    assert c.scores["ceiling"] == r.scores["ceiling"]  # the ceiling keeps plain cosines


def test_retention_bad_input(rng):
    legacy, new = _spaces(rng, n=60)
    t = ProcrustesTranslator().fit(legacy, new)
    Q, C, L = new[:5], new[5:], legacy[5:]
    with pytest.raises(ValueError, match="corpus_translator .* or query_translator"):
        retention_report(Q, C, L)
    with pytest.raises(TypeError, match="corpus_translator must be a fitted transformer"):
        retention_report(Q, C, L, corpus_translator="orthogonal")
    with pytest.raises(ValueError, match="same corpus rows"):
        retention_report(Q, C, L[:-1], corpus_translator=t)
    with pytest.raises(ValueError, match="k=0"):
        retention_report(Q, C, L, corpus_translator=t, k=0)
    with pytest.raises(ValueError, match="csls must be a positive number of neighbours"):
        retention_report(Q, C, L, corpus_translator=t, csls=0)
    with pytest.raises(TypeError, match="csls must be None or an int"):
        retention_report(Q, C, L, corpus_translator=t, csls=True)
    with pytest.raises(ValueError, match="needs metric='cosine'"):
        search_top_k(Q, C, 3, metric="dot", csls=3)
    with pytest.raises(ValueError, match="n_relevant=0"):
        retention_report(Q, C, L, corpus_translator=t, n_relevant=0)
    with pytest.raises(ValueError, match="metric"):
        retention_report(Q, C, L, corpus_translator=t, metric="l1")
    with pytest.raises(ValueError, match="give both or neither"):
        retention_report(Q, C, L, corpus_translator=t, query_labels=np.zeros(5))
    with pytest.raises(ValueError, match=r"relevant\[0\] holds corpus rows outside"):
        retention_report(Q, C, L, corpus_translator=t, relevant=[[99]] * 5)
    with pytest.raises(ValueError, match="one set of corpus rows per query"):
        retention_report(Q, C, L, corpus_translator=t, relevant=[[1]])
    with pytest.raises(ValueError, match="no query has a relevant"):
        retention_report(Q, C, L, corpus_translator=t, relevant=[[]] * 5)
    with pytest.raises(ValueError, match="queries have 16 features but the corpus"):
        search_top_k(Q, L[:, :4], 2)
