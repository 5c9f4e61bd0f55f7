"""sklearn_latent.dask: map_blocks transforms, map-reduce translator fits, anchors on a sample.

Most tests run on dask's threaded scheduler; the ``client`` tests run the same
functions on a real ``dask.distributed.LocalCluster`` (two worker processes on
loopback), started once for the module.
"""

import pickle
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import joblib  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from sklearn_latent import (  # noqa: E402
    ASIFClassifier,
    ProcrustesTranslator,
    RelativeProjector,
    load,
    save,
)
from sklearn_latent import dask as sld  # noqa: E402
from sklearn_latent import select_anchors as select_in_memory  # noqa: E402
from sklearn_latent._testing import CASES  # noqa: E402

FITTED = ("coef_", "intercept_", "inverse_coef_", "inverse_intercept_", "map_", "x_mean_",
          "x_scale_", "y_mean_", "y_scale_")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1", worker_dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(autouse=True)
def threads():
    """Every test computes on the threaded scheduler unless it names the cluster."""
    with dask.config.set(scheduler="threads"):
        yield


def paired(n=600, d_x=7, d_y=5, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d_x)) + offset
    Y = X @ rng.normal(size=(d_x, d_y)) + 0.1 * rng.normal(size=(n, d_y)) - offset
    return X, Y


def assert_same_map(a, b, atol=1e-10):
    for name in FITTED:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=atol,
                                   err_msg=name)
    assert a.scale_ == pytest.approx(b.scale_, abs=atol)
    assert a.n_samples_seen_ == b.n_samples_seen_ and a.rank_ == b.rank_


# ---------------------------------------------------------------- import
def test_import_sklearn_latent_does_not_import_dask():
    code = "import sys, sklearn_latent; sys.exit('dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- transform
@pytest.mark.filterwarnings("ignore:The scaled map is determined:UserWarning")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_every_estimator(case, dtype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 6))
    est = case.make().fit(*case.fit_inputs(X))
    Xt = case.transform_input(est, X).astype(dtype)
    ref = est.transform(Xt)
    lazy = sld.transform(est, da.from_array(Xt, chunks=(25, -1)))
    assert lazy.shape == ref.shape and lazy.dtype == ref.dtype
    assert lazy.chunks == ((25, 25, 25, 15), (ref.shape[1],))
    out = lazy.compute()
    assert out.dtype == ref.dtype
    np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-12)


def test_transform_integer_input_and_column_chunks():
    X = np.random.default_rng(0).integers(-5, 5, size=(120, 10))
    est = RelativeProjector(8, random_state=0).fit(X)
    lazy = sld.transform(est, da.from_array(X, chunks=(50, 3)))  # blocks split columns
    assert lazy.dtype == np.float64 and lazy.chunks == ((50, 50, 20), (8,))
    np.testing.assert_allclose(lazy.compute(), est.transform(X), atol=1e-12)


def test_transform_pipeline_with_sklearn_step():
    X = np.random.default_rng(0).normal(size=(80, 5)).astype(np.float32)
    pipe = make_pipeline(StandardScaler(), RelativeProjector(6, random_state=0)).fit(X)
    lazy = sld.transform(pipe, da.from_array(X, chunks=(30, -1)))
    assert lazy.dtype == np.float32 and lazy.shape == (80, 6)
    np.testing.assert_allclose(lazy.compute(), pipe.transform(X), rtol=1e-5, atol=1e-6)


def _first_two(X):
    return X[:, :2]


def test_transform_estimator_without_feature_names():
    """Width from one real row when the estimator cannot name its outputs; a width that
    disagrees with get_feature_names_out fails naming the block."""
    X = np.random.default_rng(0).normal(size=(50, 4))
    lazy = sld.transform(FunctionTransformer(_first_two).fit(X), da.from_array(X, chunks=20))
    assert lazy.chunks == ((20, 20, 10), (2,))
    np.testing.assert_array_equal(lazy.compute(), X[:, :2])
    liar = FunctionTransformer(_first_two, feature_names_out="one-to-one").fit(X)
    lazy = sld.transform(liar, da.from_array(X, chunks=20))
    assert lazy.shape == (50, 4)
    with pytest.raises(ValueError, match=r"block \d of X \(rows \d+:\d+\): FunctionTransformer"
                                         r".transform returned shape \(\d+, 2\); expected 4"):
        lazy.compute()


class _Counting(RelativeProjector):
    calls = 0

    def transform(self, X):
        type(self).calls += 1
        return super().transform(X)


def test_transform_builds_the_graph_without_calling_the_estimator():
    X = np.random.default_rng(0).normal(size=(60, 4))
    est = _Counting(5, random_state=0).fit(X)
    _Counting.calls = 0
    lazy = sld.transform(est, da.from_array(X, chunks=(20, -1)))
    assert _Counting.calls == 0
    lazy.compute()
    assert _Counting.calls == 3


def _graph_bytes(arr):
    return [len(cloudpickle.dumps(t)) for t in dict(arr.__dask_graph__()).values()]


def test_estimator_enters_the_graph_once():
    """A large estimator is one task, not embedded in every block's task (measured)."""
    X = da.ones((4000, 32), chunks=(200, 32))
    est = RelativeProjector(3000, random_state=0).fit(np.random.default_rng(0).normal(
        size=(3000, 32)))
    size = len(pickle.dumps(est))
    assert size > 700_000
    ours = _graph_bytes(sld.transform(est, X))
    # One task holds it: its size is the estimator's (cloudpickle vs pickle: measured
    # 1.00006 x), all the others are small, so the graph is about 1 x (measured 1.08 x);
    # twice in the graph would be >= 2 x.  The bounds sit halfway and well below 1 x.
    assert max(ours) > 0.9 * size
    assert sum(ours) < 1.5 * size
    # The measurement can tell: embedding it as a plain argument costs once per block.
    naive = da.map_blocks(lambda b, e: e.transform(b), X, est, dtype=float,
                          chunks=(X.chunks[0], (3000,)))
    assert sum(_graph_bytes(naive)) > 10 * size


def test_transform_uses_the_estimator_as_it_was():
    X = np.random.default_rng(0).normal(size=(60, 4))
    est = RelativeProjector(5, random_state=0).fit(X)
    before = est.transform(X)
    lazy = sld.transform(est, da.from_array(X, chunks=(20, -1)))
    est.fit(X + 1.0)
    again = sld.transform(est, da.from_array(X, chunks=(20, -1)))
    assert again.name != lazy.name  # the graph key follows the fitted state
    np.testing.assert_allclose(lazy.compute(), before, atol=1e-12)
    np.testing.assert_allclose(again.compute(), est.transform(X), atol=1e-12)
    assert not np.allclose(before, est.transform(X))


def test_transform_nan_in_one_block_names_it():
    X = np.random.default_rng(0).normal(size=(100, 4))
    est = RelativeProjector(5, random_state=0).fit(X)
    X[57, 2] = np.nan
    lazy = sld.transform(est, da.from_array(X, chunks=(20, -1)))
    with pytest.raises(ValueError, match=r"block 2 of X \(rows 40:60\): Input X contains NaN"):
        lazy.compute()
    # The other blocks are fine.
    np.testing.assert_allclose(lazy[:40].compute(), est.transform(X[:40]), atol=1e-12)


def test_transform_bad_input():
    X = np.random.default_rng(0).normal(size=(30, 4))
    est = RelativeProjector(5, random_state=0).fit(X)
    with pytest.raises(TypeError, match="X must be a dask.array.Array, got ndarray"):
        sld.transform(est, X)
    with pytest.raises(ValueError, match="must be 2-D"):
        sld.transform(est, da.from_array(X[:, 0], chunks=10))
    with pytest.raises(NotFittedError):
        sld.transform(RelativeProjector(5), da.from_array(X, chunks=10))
    Xd = da.from_array(X, chunks=10)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        sld.transform(est, Xd[Xd[:, 0] > 0])
    lazy = sld.transform(est, da.from_array(X[:, :3], chunks=10))
    with pytest.raises(ValueError, match=r"block \d of X \(rows \d+:\d+\): X has 3 features"):
        lazy.compute()


# ---------------------------------------------------------------- fit_translator
@pytest.mark.parametrize("method", ["orthogonal", "scaled", "linear", "affine"])
@pytest.mark.parametrize("scaling", ["isotropic", "standard", "center", None])
def test_fit_translator_equals_fit(method, scaling):
    X, Y = paired(d_x=7, d_y=5)
    params = dict(method=method, scaling=scaling, alpha=0.1)
    ref = ProcrustesTranslator(**params).fit(X, Y)
    # uneven row chunks, different ones for Y, columns split: all handled
    Xd = da.from_array(X, chunks=((100, 250, 17, 233), (4, 3)))
    Yd = da.from_array(Y, chunks=(128, -1))
    tr = sld.fit_translator(ProcrustesTranslator(**params), Xd, Yd, split_every=2)
    assert_same_map(tr, ref)
    assert tr.anchor_indices_ is None and tr.n_features_in_ == 7 and tr.n_features_out_ == 5


def test_fit_translator_float32_many_blocks():
    X, Y = paired(n=2000, d_x=6, d_y=9, offset=100.0)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    ref = ProcrustesTranslator("scaled").fit(X, Y)
    tr = sld.fit_translator(ProcrustesTranslator("scaled"), da.from_array(X, chunks=37),
                            da.from_array(Y, chunks=(37, -1)))
    assert_same_map(tr, ref)


def test_fit_translator_anchors():
    X, Y = paired(n=500)
    Xd, Yd = da.from_array(X, chunks=90), da.from_array(Y, chunks=90)
    # anchors="random" with n_anchors: exactly the rows an in-memory fit picks
    ref = ProcrustesTranslator(n_anchors=40, random_state=3).fit(X, Y)
    tr = sld.fit_translator(ProcrustesTranslator(n_anchors=40, random_state=3), Xd, Yd)
    np.testing.assert_array_equal(tr.anchor_indices_, ref.anchor_indices_)
    assert_same_map(tr, ref)
    # explicit, unsorted rows: as a parameter or as the anchors= argument
    idx = np.random.default_rng(0).permutation(500)[:60]
    ref = ProcrustesTranslator("affine", anchors=idx).fit(X, Y)
    assert_same_map(sld.fit_translator(ProcrustesTranslator("affine", anchors=idx), Xd, Yd), ref)
    tr = sld.fit_translator(ProcrustesTranslator("affine"), Xd, Yd, anchors=idx)
    assert_same_map(tr, ref)
    np.testing.assert_array_equal(tr.anchor_indices_, idx)
    # a data-dependent strategy runs on the sample (all rows here: same as in memory)
    ref = ProcrustesTranslator(n_anchors=30, anchors="fps", random_state=0).fit(X, Y)
    tr = sld.fit_translator(ProcrustesTranslator(n_anchors=30, anchors="fps", random_state=0),
                            Xd, Yd)
    np.testing.assert_array_equal(np.sort(tr.anchor_indices_), np.sort(ref.anchor_indices_))
    assert_same_map(tr, ref)


def test_fit_translator_gives_an_ordinary_translator(tmp_path):
    X, Y = paired(n=300)
    tr = sld.fit_translator(ProcrustesTranslator("linear", alpha=0.5),
                            da.from_array(X, chunks=70), da.from_array(Y, chunks=70))
    ref = ProcrustesTranslator("linear", alpha=0.5).fit(X, Y)
    np.testing.assert_allclose(tr.transform(X), ref.transform(X), atol=1e-10)
    again = pickle.loads(pickle.dumps(tr))
    np.testing.assert_array_equal(again.transform(X), tr.transform(X))
    save(tr, tmp_path / "tr.skl")
    loaded = load(tmp_path / "tr.skl")
    np.testing.assert_array_equal(loaded.transform(X), tr.transform(X))
    # and it continues with partial_fit like any translator
    tr.partial_fit(X[:50], Y[:50])
    ref.partial_fit(X[:50], Y[:50])
    assert_same_map(tr, ref)


def test_fit_translator_nan_names_the_block():
    X, Y = paired(n=300)
    Y[205, 1] = np.nan
    tr = ProcrustesTranslator()
    with pytest.raises(ValueError, match=r"block 2 of X and Y \(rows 200:300\): Input y "
                                         r"contains NaN"):
        sld.fit_translator(tr, da.from_array(X, chunks=100), da.from_array(Y, chunks=100))
    assert not hasattr(tr, "coef_")  # nothing fitted


def test_fit_translator_bad_input():
    X, Y = paired(n=100)
    Xd, Yd = da.from_array(X, chunks=50), da.from_array(Y, chunks=50)
    with pytest.raises(TypeError, match="translator must be a ProcrustesTranslator"):
        sld.fit_translator(RelativeProjector(), Xd, Yd)
    with pytest.raises(TypeError, match="Y must be a dask.array.Array"):
        sld.fit_translator(ProcrustesTranslator(), Xd, Y)
    with pytest.raises(ValueError, match="Y has 99 rows but X has 100"):
        sld.fit_translator(ProcrustesTranslator(), Xd, Yd[:99])
    with pytest.raises(ValueError, match="method='ortho' is not supported"):
        sld.fit_translator(ProcrustesTranslator("ortho"), Xd, Yd)
    with pytest.raises(ValueError, match=r"anchors must lie in \[0, 100\)"):
        sld.fit_translator(ProcrustesTranslator(), Xd, Yd, anchors=[0, 100])
    with pytest.raises(ValueError, match="distinct"):
        sld.fit_translator(ProcrustesTranslator(), Xd, Yd, anchors=[3, 3, 4])
    with pytest.raises(ValueError, match="'stratified' needs class labels"):
        sld.fit_translator(ProcrustesTranslator(n_anchors=10, anchors="stratified"), Xd, Yd)
    with pytest.raises(TypeError, match="callable anchors"):
        sld.fit_translator(ProcrustesTranslator(anchors=lambda X, k, rs: [0, 1]), Xd, Yd)
    with pytest.raises(ValueError, match="split_every=1"):
        sld.fit_translator(ProcrustesTranslator(), Xd, Yd, split_every=1)


# ---------------------------------------------------------------- anchors
def test_select_anchors_random_equals_in_memory():
    X = np.random.default_rng(0).normal(size=(1000, 3))
    Xd = da.from_array(X, chunks=300)
    for k in (10, 0.05):
        np.testing.assert_array_equal(
            sld.select_anchors(Xd, k, random_state=7), select_in_memory(X, k, random_state=7)
        )


@pytest.mark.parametrize("method", ["fps", "kmeans"])
def test_select_anchors_on_a_sample(method):
    X = np.random.default_rng(0).normal(size=(3000, 4))
    Xd = da.from_array(X, chunks=700)
    # the whole array as "sample": the in-memory result
    full = sld.select_anchors(Xd, 12, method, sample_size=5000, random_state=0)
    np.testing.assert_array_equal(full, select_in_memory(X, 12, method, random_state=0))
    # a real sample: global indices of the in-memory strategy run on those rows
    idx = sld.select_anchors(Xd, 12, method, sample_size=500, random_state=0)
    assert idx.dtype == np.int64 and len(np.unique(idx)) == 12 and idx.max() < 3000
    rng = np.random.RandomState(0)
    rows = np.sort(rng.choice(3000, 500, replace=False))
    np.testing.assert_array_equal(
        idx, rows[select_in_memory(X[rows], 12, method, random_state=rng)]
    )
    assert not np.array_equal(idx, full)
    np.testing.assert_array_equal(
        idx, sld.select_anchors(Xd, 12, method, sample_size=500, random_state=0)
    )


def test_select_anchors_stratified_and_errors():
    X = np.random.default_rng(0).normal(size=(400, 3))
    y = np.repeat([0, 1, 2, 3], 100)
    Xd, yd = da.from_array(X, chunks=150), da.from_array(y, chunks=150)
    for labels in (yd, y.tolist()):
        idx = sld.select_anchors(Xd, 20, "stratified", y=labels, sample_size=100,
                                 random_state=0)
        np.testing.assert_array_equal(np.bincount(y[idx]), [5, 5, 5, 5])
    with pytest.raises(ValueError, match="needs the class labels"):
        sld.select_anchors(Xd, 20, "stratified", sample_size=100)
    with pytest.raises(ValueError, match="more than sample_size=50"):
        sld.select_anchors(Xd, 60, "fps", sample_size=50)
    with pytest.raises(ValueError, match="sample_size=0"):
        sld.select_anchors(Xd, 6, "fps", sample_size=0)
    with pytest.raises(ValueError, match="y has 399 entries"):
        sld.select_anchors(Xd, 6, "stratified", y=y[:399])
    with pytest.raises(ValueError, match="method='pca' is not supported"):
        sld.select_anchors(Xd, 6, "pca")
    with pytest.raises(TypeError, match="dask.array.Array"):
        sld.select_anchors(X, 6)


# ---------------------------------------------------------------- on a LocalCluster
def test_cluster_transform_and_fit_translator(client):
    X, Y = paired(n=1200, d_x=8, d_y=6)
    Xd = da.from_array(X.astype(np.float32), chunks=(300, -1))
    Yd = da.from_array(Y.astype(np.float32), chunks=(300, -1))
    with dask.config.set(scheduler=client):
        tr = sld.fit_translator(ProcrustesTranslator("orthogonal"), Xd, Yd)
        ref = ProcrustesTranslator("orthogonal").fit(X.astype(np.float32), Y.astype(np.float32))
        assert_same_map(tr, ref)
        out = sld.transform(tr, Xd)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.compute(), ref.transform(X.astype(np.float32)),
                                   rtol=1e-5, atol=1e-5)
        idx = sld.select_anchors(Xd, 10, "kmeans", sample_size=400, random_state=0)
        assert len(np.unique(idx)) == 10


def test_cluster_nan_in_one_chunk_fails_naming_it(client):
    X, Y = paired(n=400)
    X[310] = np.nan
    Xd, Yd = da.from_array(X, chunks=100), da.from_array(Y, chunks=100)
    est = RelativeProjector(5, random_state=0).fit(X[:300])
    with dask.config.set(scheduler=client):
        with pytest.raises(ValueError, match=r"block 3 of X \(rows 300:400\): Input X "
                                             r"contains NaN"):
            sld.transform(est, Xd).compute()
        with pytest.raises(ValueError, match=r"block 3 of X and Y \(rows 300:400\)"):
            sld.fit_translator(ProcrustesTranslator(), Xd, Yd)


def test_cluster_gridsearch_with_joblib_dask_backend(client):
    X, y = make_classification(n_samples=150, n_features=8, n_informative=5, random_state=0)
    pipe = make_pipeline(RelativeProjector(random_state=0), LogisticRegression(max_iter=1000))
    grid = {"relativeprojector__n_anchors": [5, 20]}
    ref = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    with joblib.parallel_config(backend="dask", wait_for_workers_timeout=60):
        ours = GridSearchCV(pipe, grid, cv=3, n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"])
    assert ours.best_params_ == ref.best_params_
    # a translator is a multi-output regressor: GridSearchCV over its method (R^2)
    Xs, Ys = paired(n=300)
    tgrid = {"method": ["orthogonal", "linear"]}
    ref = GridSearchCV(ProcrustesTranslator(), tgrid, cv=3).fit(Xs, Ys)
    with joblib.parallel_config(backend="dask"):
        ours = GridSearchCV(ProcrustesTranslator(), tgrid, cv=3, n_jobs=-1).fit(Xs, Ys)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], rtol=1e-10)


def test_transform_needs_a_transformer():
    # AttributeError: 'ASIFClassifier' object has no attribute 'transform' (issue 12)
    X = np.random.default_rng(0).normal(size=(60, 4))
    clf = ASIFClassifier(top_k=5).fit(X, np.arange(60) % 3)
    with pytest.raises(TypeError, match="needs a transformer.*ASIFClassifier has no transform"):
        sld.transform(clf, da.from_array(X, chunks=20))
