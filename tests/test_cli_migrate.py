"""``sklearn-latent migrate`` and ``sklearn-latent gate`` on real FAISS / LanceDB stores."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from sklearn_latent.__main__ import main
from sklearn_latent.stores import open_store

try:
    import faiss
except ImportError:  # the FAISS tests skip; numpy stores need no extra
    faiss = None
needs_faiss = pytest.mark.skipif(faiss is None, reason="needs faiss-cpu (the faiss extra)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, D = 3000, 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("migrate")
    rng = np.random.default_rng(0)
    A = rng.normal(size=(N, D)).astype(np.float32)
    R = np.linalg.qr(rng.normal(size=(D, D)))[0]
    B = (A @ R + 0.05 * rng.normal(size=(N, D))).astype(np.float32)
    np.save(path / "cal_a.npy", A[:600])
    np.save(path / "cal_b.npy", B[:600])
    np.save(path / "noise.npy", rng.normal(size=(600, D)).astype(np.float32))
    np.save(path / "wide.npy", rng.normal(size=(600, D + 1)).astype(np.float32))
    ids = np.arange(N, dtype=np.int64) * 2 + 1
    np.savez(path / "old.npz", vectors=A, ids=ids)
    if faiss is not None:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(D))
        index.add_with_ids(A, ids)
        faiss.write_index(index, str(path / "old.faiss"))
    np.savez(path / "cal_store.npz", vectors=B[:500], ids=ids[:500])
    np.savez(path / "other_ids.npz", vectors=B[:500], ids=ids[:500] + 1)
    return path


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sklearn-latent: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@needs_faiss
def test_migrate_files_report_and_gate(capsys, folder, tmp_path):
    dest = tmp_path / "new.faiss"
    code, out, err = _run(capsys, "migrate", "--source", folder / "old.faiss", "--dest", dest,
                          "--calib-legacy", folder / "cal_a.npy", "--calib-new",
                          folder / "cal_b.npy", "--report", tmp_path / "r.csv",
                          "--chunk-size", 700)
    assert code == 0, err
    assert "fitted orthogonal translator on 480 calibration pairs" in out
    assert "translated_corpus" in out and f"wrote {N} vectors" in out
    store = open_store(dest)
    assert (store.n_rows, store.dim, store.metric) == (N, D, "ip")
    np.testing.assert_array_equal(np.sort(store.ids()), np.arange(N) * 2 + 1)
    with open(tmp_path / "r.csv") as f:
        rows = {(r["setting"], r["score"]): float(r["retention"]) for r in csv.DictReader(f)}
    retention = rows[("translated_corpus", "recall")]
    assert retention > 0.6
    code, out, _ = _run(capsys, "gate", "--report", tmp_path / "r.csv", "--min-retention",
                        round(retention - 0.05, 3))
    assert code == 0 and out.startswith("pass: translated_corpus recall@10")
    code, out, _ = _run(capsys, "gate", "--report", tmp_path / "r.csv", "--min-retention",
                        min(1.0, round(retention + 0.05, 3)))
    assert code == 3 and out.startswith("FAIL")


def test_gate_from_pairs_fails_on_unrelated_spaces(capsys, folder):
    args = ["gate", "--calib-legacy", folder / "cal_a.npy", "--min-retention", 0.5]
    code, out, _ = _run(capsys, *args, "--calib-new", folder / "cal_b.npy", "--method", "linear",
                        "--alpha", 0.1)
    assert code == 0 and "pass:" in out
    code, out, _ = _run(capsys, *args, "--calib-new", folder / "noise.npy")
    assert code == 3 and "FAIL: translated_corpus recall@10" in out


@needs_faiss
def test_migrate_calibration_drawn_by_id_into_lancedb(capsys, folder, tmp_path):
    pytest.importorskip("lancedb")
    dest = tmp_path / "db" / "docs.lance"
    dest.parent.mkdir()
    code, out, err = _run(capsys, "migrate", "--source", folder / "old.faiss", "--dest", dest,
                          "--calib-store", folder / "cal_store.npz", "--n-calib", 400,
                          "--holdout", 0)
    assert code == 0, err
    assert "on 400 calibration pairs" in out and "retrieval" not in out
    assert open_store(dest).n_rows == N


@needs_faiss
@pytest.mark.parametrize(
    "extra, code, fragments",
    [
        (["--calib-legacy", "cal_a.npy", "--calib-new", "cal_b.npy", "--metric", "l2"], 1,
         ["mismatched metrics", "ip", "l2"]),
        (["--calib-legacy", "wide.npy", "--calib-new", "cal_b.npy"], 1,
         ["mismatched dimensions", f"{D + 1}-d", f"{D}-d"]),
        (["--calib-legacy", "cal_a.npy", "--calib-new", "cal_store.npz"], 1,
         ["mismatched calibration pairs", "600", "500"]),
        (["--calib-store", "other_ids.npz"], 1, ["mismatched ids", "share no id"]),
        (["--calib-legacy", "cal_a.npy"], 2, ["--calib-legacy and --calib-new go together"]),
        ([], 2, ["calibration pairs are needed"]),
        (["--calib-legacy", "cal_a.npy", "--calib-new", "cal_b.npy", "--method", "nope"], 2,
         ["--method 'nope'"]),
        (["--calib-legacy", "cal_a.npy", "--calib-new", "old.faiss"], 1,
         ["--calib-new", "must be a .npy or .npz"]),
        (["--calib-legacy", "cal_a.npy", "--calib-new", "cal_b.npy", "--holdout", "2"], 2,
         ["--holdout"]),
    ],
)
def test_migrate_one_line_errors(capsys, folder, tmp_path, extra, code, fragments):
    extra = [str(folder / e) if e.endswith((".npy", ".npz", ".faiss")) else e for e in extra]
    got, out, err = _run(capsys, "migrate", "--source", folder / "old.faiss", "--dest",
                         tmp_path / "x.faiss", *extra)
    assert got == code, err
    _one_line(err, *fragments)
    assert not (tmp_path / "x.faiss").exists()


@needs_faiss
def test_migrate_refuses_existing_destination(capsys, folder, tmp_path):
    (tmp_path / "x.faiss").write_bytes(b"keep")
    got, _, err = _run(capsys, "migrate", "--source", folder / "old.faiss", "--dest",
                       tmp_path / "x.faiss", "--calib-legacy", folder / "cal_a.npy",
                       "--calib-new", folder / "cal_b.npy")
    assert got == 1
    _one_line(err, "exists", "--overwrite")
    assert (tmp_path / "x.faiss").read_bytes() == b"keep"


def test_migrate_into_npy_with_csls_report_and_resume(capsys, folder, tmp_path):
    dest = tmp_path / "new.npy"
    base = ["migrate", "--source", folder / "old.npz", "--calib-legacy", folder / "cal_a.npy",
            "--calib-new", folder / "cal_b.npy", "--metric", "cosine", "--chunk-size", 512]
    code, out, err = _run(capsys, *base, "--dest", dest, "--csls", 10)
    assert code == 0, err
    assert "ranked by CSLS-10" in out and f"wrote {N} vectors" in out
    store = open_store(dest)  # custom ids in new.ids.npy beside the vectors
    np.testing.assert_array_equal(store.ids(), np.arange(N) * 2 + 1)
    assert sorted(os.listdir(tmp_path)) == ["new.ids.npy", "new.npy"]
    # --resume with nothing left over is a plain run
    code, _, err = _run(capsys, *base, "--dest", tmp_path / "again.npy", "--resume")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), np.load(dest))
    code, _, err = _run(capsys, *base[:-4], "--metric", "l2", "--dest", tmp_path / "x.npy",
                        "--csls", 5)
    assert code == 1
    _one_line(err, "--csls", "l2")


@pytest.mark.slow  # a fresh interpreter: `python -m` registers the subcommands too
def test_python_m_gate(folder):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(
        [sys.executable, "-m", "sklearn_latent", "gate", "--calib-legacy",
         str(folder / "cal_a.npy"), "--min-retention", "0.5"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 2
    _one_line(res.stderr, "--calib-legacy and --calib-new go together")
