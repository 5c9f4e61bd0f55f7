"""Vector stores and migration against real FAISS indexes and LanceDB tables in tmp_path."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sklearn_latent import ProcrustesTranslator
from sklearn_latent.metrics import search_top_k
from sklearn_latent.stores import PARTIAL_SUFFIX, migrate_store, open_store

try:
    import faiss
except ImportError:  # FAISS tests skip; numpy and LanceDB stores need no faiss
    faiss = None
needs_faiss = pytest.mark.skipif(faiss is None, reason="needs faiss-cpu (the faiss extra)")

N, D = 600, 12


@pytest.fixture
def spaces():
    rng = np.random.default_rng(0)
    legacy = rng.normal(size=(N, D)).astype(np.float32)
    R = np.linalg.qr(rng.normal(size=(D, D)))[0]
    new = (legacy @ R + 0.01 * rng.normal(size=(N, D))).astype(np.float32)
    ids = (np.arange(N) * 7 + 3).astype(np.int64)
    t = ProcrustesTranslator(scaling=None).fit(legacy[:200], new[:200])
    return legacy, new, ids, t


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _faiss_index(path, X, ids, index_type, metric):
    pytest.importorskip("faiss")
    mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if index_type == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlat(D, mt))
    elif index_type == "hnsw":
        index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(D, 8, mt))
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlat(D, mt), D, 4, mt)
        index.train(X)
    index.add_with_ids(X, ids)
    faiss.write_index(index, str(path))
    return path


def _lance_table(path, X, ids):
    lancedb = pytest.importorskip("lancedb")
    pa = pytest.importorskip("pyarrow")
    table = pa.table({
        "id": pa.array(ids),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), D),
        "text": pa.array([f"doc {i}" for i in ids]),
    })
    lancedb.connect(str(path.parent)).create_table(path.stem, table)
    return path


def _read_all(store, chunk_size=97):
    chunks = list(store.read_chunks(chunk_size))
    assert all(len(c.ids) <= chunk_size for c in chunks)
    ids = np.concatenate([c.ids for c in chunks])
    order = np.argsort(ids)
    return ids[order], np.concatenate([c.vectors for c in chunks])[order], chunks


@needs_faiss
@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_roundtrip_read_and_migrate(tmp_path, spaces, index_type, metric):
    legacy, new, ids, t = spaces
    src = open_store(_faiss_index(tmp_path / "old.faiss", legacy, ids, index_type, metric))
    assert (src.n_rows, src.dim, src.metric, src.index_type) == (N, D, metric, index_type)
    got_ids, got, _ = _read_all(src)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, legacy)  # ids sorted ascending = insertion order
    np.testing.assert_array_equal(src.get(ids[[5, 0, 77]]), legacy[[5, 0, 77]])

    dst = migrate_store(src, tmp_path / "new.faiss", t, chunk_size=128, normalize=False)
    assert (dst.n_rows, dst.dim, dst.metric, dst.index_type) == (N, D, metric, index_type)
    assert dst.params == src.params
    out_ids, out, _ = _read_all(dst)
    np.testing.assert_array_equal(out_ids, ids)
    np.testing.assert_allclose(out, t.transform(legacy), rtol=1e-5, atol=1e-5)
    # the migrated index answers queries of the new model like exact search over t(legacy)
    q = new[300:400]
    _, found = dst.search(q, k=1)
    exact = search_top_k(q, out, 1, metric="dot" if metric == "ip" else "euclidean")[1]
    agree = (found[:, 0] == out_ids[exact[:, 0]]).mean()
    assert agree == 1.0 if index_type == "flat" else agree > 0.5


@needs_faiss
def test_ip_unit_norm_source_is_normalized_after_translation(tmp_path, spaces):
    legacy, new, ids, t = spaces
    src = _faiss_index(tmp_path / "old.faiss", _unit(legacy), ids, "flat", "ip")
    dst = migrate_store(src, tmp_path / "new.faiss", t)
    _, out, _ = _read_all(dst)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_lancedb_roundtrip_keeps_ids_and_metadata(tmp_path, spaces):
    legacy, new, ids, t = spaces
    src = open_store(_lance_table(tmp_path / "db" / "docs.lance", legacy, ids))
    assert (src.n_rows, src.dim, src.metadata_columns) == (N, D, ["text"])
    np.testing.assert_array_equal(src.get(ids[[9, 2]]), legacy[[9, 2]])
    dst = migrate_store(src, tmp_path / "db" / "docs_new.lance", t, chunk_size=100,
                        metric="cosine")
    chunks = list(dst.read_chunks(1000))
    out_ids = np.concatenate([c.ids for c in chunks])
    np.testing.assert_array_equal(np.sort(out_ids), ids)
    text = sum((c.metadata.column("text").to_pylist() for c in chunks), [])
    assert text == [f"doc {i}" for i in out_ids]
    out = np.concatenate([c.vectors for c in chunks])
    pos = np.searchsorted(ids, out_ids)
    np.testing.assert_allclose(out, _unit(t.transform(legacy[pos])), rtol=1e-5, atol=1e-5)
    _, found = dst.search(new[[10, 11, 12]], k=3)
    assert (found[:, 0] == ids[[10, 11, 12]]).all()
    # LanceDB into a .npy file: vectors in store order, ids beside them, metadata dropped
    n = migrate_store(src, tmp_path / "x.npy", t, chunk_size=64, normalize=False)
    np.testing.assert_array_equal(n.ids(), ids)
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), t.transform(legacy),
                               rtol=1e-5, atol=1e-5)
    assert sorted(os.listdir(tmp_path / "db")) == ["docs.lance", "docs_new.lance"]
    if faiss is not None:  # LanceDB into FAISS
        assert migrate_store(src, tmp_path / "x.faiss", t).n_rows == N


def test_numpy_sources(tmp_path, spaces):
    legacy, _, ids, t = spaces
    np.save(tmp_path / "a.npy", legacy)
    np.savez(tmp_path / "b.npz", vectors=legacy, ids=ids)
    np.save(tmp_path / "f.npy", np.asfortranarray(legacy.astype(np.float64)))
    a, b = open_store(tmp_path / "a.npy"), open_store(tmp_path / "b.npz")
    for store in (a, b, open_store(tmp_path / "f.npy")):
        got = np.concatenate([c.vectors for c in store.read_chunks(71)])
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, legacy)
    np.testing.assert_array_equal(a.get([4, 1]), legacy[[4, 1]])
    np.testing.assert_array_equal(b.get(ids[[4, 1]]), legacy[[4, 1]])
    # .npy destinations: row-number ids need no ids file; an overwrite replaces both files
    out = migrate_store(a, tmp_path / "out.npy", t, chunk_size=50, normalize=False)
    np.testing.assert_array_equal(out.ids(), np.arange(N))
    assert not (tmp_path / "out.ids.npy").exists()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), t.transform(legacy), rtol=1e-5,
                               atol=1e-5)
    out = migrate_store(b, tmp_path / "out.npy", t, overwrite=True)
    np.testing.assert_array_equal(out.ids(), ids)
    out = migrate_store(a, tmp_path / "out.npy", t, overwrite=True)
    np.testing.assert_array_equal(out.ids(), np.arange(N))
    assert [p for p in os.listdir(tmp_path) if "out" in p] == ["out.npy"]
    if faiss is not None:
        dst = migrate_store(b, tmp_path / "b.faiss", t)
        np.testing.assert_array_equal(np.sort(dst.ids()), ids)


class _FailingTranslator:
    """Delegates to a fitted translator and raises on its n-th chunk."""

    def __init__(self, t, fail_at):
        self.t, self.fail_at, self.calls = t, fail_at, 0
        self.n_features_in_ = t.n_features_in_

    def transform(self, X):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected failure")
        return self.t.transform(X)


def _dest_kind(dest):
    if dest.endswith(".faiss"):
        pytest.importorskip("faiss")
    elif dest.endswith(".lance"):
        pytest.importorskip("lancedb")


@pytest.mark.parametrize("dest", ["new.faiss", "db/new.lance", "new.npy"])
def test_interrupted_migration_leaves_no_partial_destination(tmp_path, spaces, dest):
    _dest_kind(dest)
    legacy, _, ids, t = spaces
    (tmp_path / "db").mkdir()
    np.savez(tmp_path / "old.npz", vectors=legacy, ids=ids)
    src = tmp_path / "old.npz"
    dest = tmp_path / dest
    with pytest.raises(RuntimeError, match="injected"):
        migrate_store(src, dest, _FailingTranslator(t, 4), chunk_size=50)
    assert not dest.exists() and sorted(os.listdir(tmp_path / "db")) == []
    assert sorted(os.listdir(tmp_path)) == ["db", "old.npz"]
    # an existing destination survives a failed overwrite untouched
    first = migrate_store(src, dest, t, chunk_size=50)
    before = _read_all(first)[1]
    other = ProcrustesTranslator().fit(legacy[:100], legacy[100:200])
    with pytest.raises(RuntimeError, match="injected"):
        migrate_store(src, dest, _FailingTranslator(other, 3), chunk_size=50, overwrite=True)
    np.testing.assert_array_equal(_read_all(open_store(dest))[1], before)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        migrate_store(src, dest, t)
    again = migrate_store(src, dest, other, chunk_size=50, overwrite=True)
    assert not np.allclose(_read_all(again)[1], before)


_KILLED_SCRIPT = textwrap.dedent("""
    import sys, time, pickle
    import numpy as np
    from sklearn_latent.stores import migrate_store

    class Slow:
        def __init__(self, t):
            self.t = t
        def transform(self, X):
            if len(X) > 1:  # not the one-row probe
                print("chunk", flush=True)
                time.sleep(0.2)
            return self.t.transform(X)

    t = pickle.load(open(sys.argv[3], "rb"))
    migrate_store(sys.argv[1], sys.argv[2], Slow(t), chunk_size=20, resume=True)
""")


class _Counting:
    """Delegates to a fitted translator and counts the rows it translates."""

    def __init__(self, t):
        self.t, self.rows = t, 0
        self.n_features_in_ = t.n_features_in_

    def transform(self, X):
        self.rows += len(X)
        return self.t.transform(X)


@pytest.mark.slow  # a subprocess that imports torch: seconds on an idle machine
@pytest.mark.parametrize("dest", ["new.faiss", "db/new.lance", "new.npy"])
def test_killed_migration_never_half_written_and_resumes(tmp_path, spaces, dest):
    """kill -9 a migration after a few chunks: no destination; a resumed run continues
    (LanceDB, .npy) or restarts (FAISS), and gives exactly the uninterrupted result."""
    import pickle

    _dest_kind(dest)
    legacy, _, ids, t = spaces
    (tmp_path / "db").mkdir()
    np.savez(tmp_path / "old.npz", vectors=legacy, ids=ids)
    src = tmp_path / "old.npz"
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(t))
    dest = tmp_path / dest
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SCRIPT, str(src), str(dest), str(tmp_path / "t.pkl")],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 6 and time.monotonic() < deadline:  # a few chunks written, then kill -9
        if proc.stdout.readline().startswith("chunk"):
            seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert seen == 6 and proc.returncode == -signal.SIGKILL
    assert not dest.exists()  # only a partial leftover, never the destination
    partial = [p for p in os.listdir(dest.parent) if PARTIAL_SUFFIX in p]
    if dest.suffix == ".faiss":
        assert partial == []  # the index is written only after the last chunk
    else:
        assert partial
    counting = _Counting(t)
    store = migrate_store(src, dest, counting, chunk_size=64, resume=True)
    assert [p for p in os.listdir(dest.parent) if PARTIAL_SUFFIX in p] == []
    if dest.suffix == ".faiss":
        assert counting.rows == N + 1  # restarted: every row, plus the one-row probe
    else:  # continued after the 5 (or 6) chunks of 20 rows written before the kill
        assert 20 * 5 <= N + 1 - counting.rows <= 20 * 6
    got_ids, got, _ = _read_all(store)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got, t.transform(legacy), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dest", ["db/new.lance", "new.npy"])
def test_resume_checks_the_leftover(tmp_path, spaces, dest):
    """A leftover of another translator is replaced (with a warning), not continued."""
    _dest_kind(dest)
    legacy, new, ids, t = spaces
    (tmp_path / "db").mkdir()
    np.savez(tmp_path / "old.npz", vectors=legacy, ids=ids)
    src, dest = tmp_path / "old.npz", tmp_path / dest
    other = ProcrustesTranslator().fit(legacy[:100], new[100:200])
    with pytest.raises(RuntimeError, match="injected"):
        migrate_store(src, dest, _FailingTranslator(other, 5), chunk_size=50, resume=True)
    assert not dest.exists()
    assert [p for p in os.listdir(dest.parent) if PARTIAL_SUFFIX in p]  # kept for resuming
    counting = _Counting(t)
    with pytest.warns(UserWarning, match="another source or translator"):
        store = migrate_store(src, dest, counting, chunk_size=50, resume=True)
    assert counting.rows == N + 1
    np.testing.assert_allclose(_read_all(store)[1], t.transform(legacy), rtol=1e-5, atol=1e-5)
    # a leftover of this very run is continued
    with pytest.raises(RuntimeError, match="injected"):
        migrate_store(src, tmp_path / "db" / "b.lance" if dest.suffix == ".lance"
                      else tmp_path / "b.npy", _FailingTranslator(t, 5), chunk_size=50,
                      resume=True)
    counting = _Counting(t)
    b = migrate_store(src, tmp_path / "db" / "b.lance" if dest.suffix == ".lance"
                      else tmp_path / "b.npy", counting, chunk_size=50, resume=True)
    assert counting.rows == N + 1 - 3 * 50  # the probe, then all but the 3 chunks written
    np.testing.assert_allclose(_read_all(b)[1], t.transform(legacy), rtol=1e-5, atol=1e-5)


def test_store_errors(tmp_path, spaces):
    legacy, _, ids, t = spaces
    np.savez(tmp_path / "old.npz", vectors=legacy, ids=ids)
    src = tmp_path / "old.npz"
    with pytest.raises(ValueError, match="cannot tell the store kind"):
        open_store(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="no store"):
        open_store(tmp_path / "missing.faiss")
    with pytest.raises(KeyError, match="not in"):
        open_store(src).get([1, 2])
    with pytest.raises(ValueError, match="expects 5-d vectors"):
        migrate_store(src, tmp_path / "n.faiss", ProcrustesTranslator().fit(legacy[:50, :5],
                                                                             legacy[:50, :5]))
    with pytest.raises(TypeError, match="fitted transformer"):
        migrate_store(src, tmp_path / "n.faiss", "orthogonal")
    with pytest.raises(ValueError, match="a numpy destination is a .npy file"):
        migrate_store(src, tmp_path / "n.npz", t)
    with pytest.raises(TypeError, match="resume must be a bool"):
        migrate_store(src, tmp_path / "n.npy", t, resume="yes")
    with pytest.raises(ValueError, match="is the source"):
        migrate_store(src, src, t, overwrite=True)
    with pytest.raises(ValueError, match="chunk_size=0"):
        migrate_store(src, tmp_path / "n.faiss", t, chunk_size=0)
    with pytest.raises(ValueError, match="metric='cos'"):
        migrate_store(src, tmp_path / "n.faiss", t, metric="cos")


@needs_faiss
def test_compressed_faiss_index_is_refused(tmp_path, spaces):
    legacy = spaces[0]
    sq = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_8bit)
    sq.train(legacy)
    sq.add(legacy)
    faiss.write_index(sq, str(tmp_path / "pq.faiss"))
    with pytest.raises(ValueError, match="IndexScalarQuantizer is not supported"):
        open_store(tmp_path / "pq.faiss")
