"""The benchmark record's own machinery (benchmarks/run.py, _common.summary, real_suite).

No timing here: the generated "Current results" tables (their merge and
rendering) and the real-encoder suite's code path on tiny fake embeddings.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.fixture(scope="module")
def common():
    return _load("_common")


@pytest.fixture(scope="module")
def run():
    return _load("run")


def _row(common, tmp_path, area, case, ratio, script, **kw):
    out = tmp_path / "report.md"
    common.summary(area, case, ratio, "floor", out=out, script=script, **kw)
    lines = (tmp_path / "report.md.summary.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def test_summary_rejects_unknown_area_and_measure(common, tmp_path):
    with pytest.raises(ValueError, match="unknown area 'speed'"):
        common.summary("speed", "x", 1.0, "f", out=tmp_path / "r.md")
    with pytest.raises(ValueError, match="unknown measure 'bytes'"):
        common.summary("anchors", "x", 1.0, "f", out=tmp_path / "r.md", measure="bytes")
    # without out= nothing is written
    common.summary("anchors", "x", 1.0, "f")
    assert not list(tmp_path.iterdir())


def test_render_headers_follow_the_measure(common, run, tmp_path):
    rows = [
        _row(common, tmp_path, "anchors", "fps", 1.1234, "bench_anchors.py"),
        _row(common, tmp_path, "real encoders", "ProcrustesTranslator(), tweets", 0.97,
             "bench_real.py", measure="accuracy"),
    ]
    text = run.render(rows)
    anchors = text.split("### Anchors")[1].split("###")[0]
    real = text.split("### Real encoders")[1]
    assert "| case | time / floor |" in anchors and "| fps | 1.12 | floor |" in anchors
    assert "| case | accuracy / ceiling |" in real and "above 1: better" in real
    assert "| ProcrustesTranslator(), tweets | 0.97 |" in real
    # areas without rows say so instead of an empty table
    assert "Not measured by a generated run yet" in text.split("### Dask")[1].split("###")[0]
    # one area cannot mix a time row with an accuracy row
    mixed = rows + [_row(common, tmp_path, "real encoders", "timing", 1.0, "bench_x.py")]
    with pytest.raises(ValueError, match="mixes rows of different measures"):
        run.render(mixed)


def test_update_results_keeps_rows_of_scripts_that_recorded_none(common, run, tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# Benchmarks\n\n{run.BEGIN} -->\nold\n{run.END}\n\n## Detailed runs\n")
    current = tmp_path / "current.jsonl"
    first = [_row(common, tmp_path, "anchors", "fps", 1.5, "bench_anchors.py"),
             _row(common, tmp_path, "real encoders", "procrustes", 0.9, "bench_real.py",
                  measure="accuracy")]
    run.update_results(doc, first, current=current)
    # a later run where bench_real found no cache (no rows) and bench_anchors ran again
    run.update_results(doc, [_row(common, tmp_path, "anchors", "fps", 1.2, "bench_anchors.py")],
                       current=current)
    kept = [json.loads(line) for line in current.read_text().splitlines()]
    assert [(r["script"], r["ratio_floor"]) for r in kept] == [
        ("bench_anchors.py", 1.2), ("bench_real.py", 0.9)]
    text = doc.read_text()
    assert "old" not in text and "| fps | 1.20 |" in text and "| procrustes | 0.90 |" in text
    assert text.startswith("# Benchmarks") and text.endswith("## Detailed runs\n")
    doc.write_text("no markers")
    with pytest.raises(SystemExit, match="no '<!-- current-results: begin"):
        run.update_results(doc, first, current=current)


def test_merge_folds_in_rows_of_scripts_run_by_hand(common, run, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "CURRENT", tmp_path / "current.jsonl")
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"{run.BEGIN} -->\n{run.END}\n")
    _row(common, tmp_path, "metrics", "linear_cka, 10^6 rows", 1.07, "bench_similarity.py")
    run.main(["--merge", str(tmp_path / "report.md.summary.jsonl"), "--results", str(doc)])
    assert "| linear_cka, 10^6 rows | 1.07 |" in doc.read_text()
    assert (tmp_path / "current.jsonl").exists()
    with pytest.raises(SystemExit):
        run.main(["--merge", str(tmp_path / "report.md.summary.jsonl")])  # no --results


def _fake_suite(n=240, seed=0):
    """Three fake encoders of the same labelled samples (a rotation, a wider copy)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    X = 3.0 * rng.normal(size=(3, 12))[y] + rng.normal(size=(n, 12))
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    spaces = {"a": X.astype(np.float32), "b": (2.0 * X @ Q + 1.0).astype(np.float32),
              "c": np.hstack([X @ Q, 0.1 * rng.normal(size=(n, 4))]).astype(np.float32)}
    return spaces, y


@pytest.mark.parametrize("which", ["quick", "criterion"])
def test_real_suite_run_config_on_fake_encoders(which):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    real_suite = _load("real_suite")
    spaces, y = _fake_suite()
    frame = pd.DataFrame(real_suite.run_config(spaces, y, seed=0, k=60, which=which,
                                               log=lambda m: None))
    methods = set(frame["method"])
    assert {"native", "plain procrustes", "procrustes (default)", "product (default)"} <= methods
    assert ("product weights=transfer" in methods) == (which != "quick")
    assert ("product weights=stitch" in methods) == (which != "quick")
    assert ("linear center alpha=auto" in methods) == (which == "criterion")
    stitched = frame[(frame["source"] != frame["target"]) & (frame["method"] == "plain procrustes")]
    assert len(stitched) == 6 and stitched["accuracy"].min() > 0.9  # a near-exact rotation
    assert frame["accuracy"].notna().all()


def test_bench_real_rows_and_missing_cache(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    bench_real = _load("bench_real")
    real_suite = _load("real_suite")
    spaces, y = _fake_suite()
    frame = pd.DataFrame(real_suite.run_config(spaces, y, seed=0, k=60, which="quick",
                                               log=lambda m: None))
    frame.insert(0, "dataset", "fake")
    frame.insert(1, "modality", "text")
    rows = {r[3]: r for r in bench_real.rows_of(frame)}
    assert set(rows) == {label for _, label in bench_real.DEFAULTS}
    dataset, modality, k, label, n_pairs, acc, native, plain = rows["ProcrustesTranslator()"]
    assert (dataset, modality, k, n_pairs) == ("fake", "text", 60, 6)
    off = frame[(frame.source != frame.target) & (frame.method == "procrustes (default)")]
    assert acc == pytest.approx(off["accuracy"].mean())
    assert native == pytest.approx(frame[frame.method == "native"].set_index("target")
                                   .loc[off["target"], "accuracy"].mean())
    base = frame[(frame.source != frame.target) & (frame.method == "plain procrustes")]
    assert plain == pytest.approx(base["accuracy"].mean())
    assert label == "ProcrustesTranslator()"
    # no cache: a message, no rows, no report
    out = tmp_path / "r.md"
    bench_real.main(["--cache", str(tmp_path / "none"), "--out", str(out)])
    assert "skipped, no finished real-encoder cache for tweets, digits" in capsys.readouterr().out
    assert not out.exists() and not Path(str(out) + ".summary.jsonl").exists()


def test_zeropair_scale_spaces_are_a_shuffled_noisy_rotation():
    scale = _load("bench_zeropair_scale")
    X, Y, perm = scale.make_spaces(300, d=32, latent=8, clusters=4, noise=0.0)
    assert X.shape == Y.shape == (300, 32) and X.dtype == Y.dtype == np.float32
    assert sorted(perm) == list(range(300)) and (perm != np.arange(300)).any()
    # without noise, the partners are an exact rotation of X: same Gram matrix
    G = X @ X.T
    np.testing.assert_allclose(Y[perm] @ Y[perm].T, G, rtol=0, atol=1e-3 * np.abs(G).max())
    _, Y_noisy, perm_noisy = scale.make_spaces(300, d=32, latent=8, clusters=4, noise=0.05)
    assert np.array_equal(perm_noisy, perm)  # same seed, same shuffle
    assert not np.allclose(Y_noisy, Y)


def _zeropair():
    """bench_zeropair (its report needs pandas and matplotlib) and a CSV header."""
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    base = "dataset,source,target,n_train,unpaired,method,n_pairs,random_state,precision,"
    return _load("bench_zeropair"), base + "top1,foscttm,stitch,warned,cpu_s,peak_mib\n"


def test_zeropair_report_judges_each_run_by_its_own_files_ceiling(tmp_path):
    # two runs of one pair whose all-pairs ceilings differ (the translator's default
    # changed between them): each run's success is against its own file's ceiling
    zeropair, base = _zeropair()
    old = base + ("d,a,b,100,False,ceiling,100,-1,1,0.60,0,0.80,False,0,0\n"
                  "d,a,b,100,False,pairfree,100,0,1,0.60,0,0.80,False,1,1\n")
    new = base + ("d,a,b,100,False,ceiling,100,-1,1,0.70,0,0.85,False,0,0\n"
                  "d,a,b,100,False,pairfree,0,0,1,0.69,0,0.84,False,1,1\n"
                  "d,a,b,100,False,pairfree,0,1,0,0.10,0,0.50,True,1,1\n")
    (tmp_path / "old.csv").write_text(old)
    (tmp_path / "new.csv").write_text(new)
    agg = zeropair.report([tmp_path / "old.csv", tmp_path / "new.csv"], tmp_path / "t.md",
                          tmp_path / "p.png")
    rows = {r.pairs: r for r in agg.itertuples()}
    assert rows["all"].success == 1.0  # 0.60 / 0.80 is its own ceiling, not 0.70 / 0.85
    assert rows["0"].success == 0.5 and rows["0"].runs == 2 and rows["0"].warned == 1
    table = (tmp_path / "t.md").read_text()
    assert "0.600 / 0.800" in table and "0.700 / 0.850" in table
    assert (tmp_path / "p.png").stat().st_size > 0


def test_zeropair_report_keeps_each_training_size_apart(tmp_path):
    # the same pair at two training sizes: two rows, each against its own ceiling, smaller first
    zeropair, base = _zeropair()
    for n, top1 in ((6500, 0.99), (16095, 0.02)):
        (tmp_path / f"{n}.csv").write_text(base + (
            f"d,a,b,{n},False,ceiling,{n},-1,1,1.0,0,0.60,False,0,0\n"
            f"d,a,b,{n},False,pairfree,0,0,1,{top1},0,0.60,{top1 < 0.5},1,1\n"))
    agg = zeropair.report([tmp_path / "6500.csv", tmp_path / "16095.csv"], tmp_path / "t.md",
                          tmp_path / "p.png")
    rows = {r.pair: r for r in agg.itertuples()}
    # in numeric order of the sizes (string order would put 16,095 first)
    assert list(agg.pair) == ["d, 6,500 rows: a -> b", "d, 16,095 rows: a -> b"]
    assert rows["d, 6,500 rows: a -> b"].success == 1.0
    assert rows["d, 16,095 rows: a -> b"].success == 0.0


def test_zeropair_report_keeps_runs_under_another_refine_rows_apart(tmp_path):
    # a run with the self-learning sample off (--refine-rows 0) is not the default:
    # its own row, not pooled into the default's success rate
    zeropair, base = _zeropair()
    base = base.rstrip("\n") + ",refine_rows\n"
    (tmp_path / "r.csv").write_text(base + (
        "d,a,b,9800,False,ceiling,9800,-1,1,1.0,0,0.60,False,0,0,5000\n"
        "d,a,b,9800,False,pairfree,0,0,1,0.99,0,0.60,False,1,1,5000\n"
        "d,a,b,9800,False,pairfree,0,0,0,0.01,0,0.20,True,1,1,0\n"))
    agg = zeropair.report([tmp_path / "r.csv"], tmp_path / "t.md", tmp_path / "p.png")
    rows = {r.method: r for r in agg.itertuples()}
    assert rows["pairfree"].success == 1.0 and rows["pairfree"].runs == 1
    assert rows["pairfree, refine_rows=0"].success == 0.0


def test_zeropair_report_keeps_runs_before_the_soft_rounds_apart(tmp_path):
    # a result file listed as superseded by the soft rounds: its runs are their own row
    zeropair, base = _zeropair()
    name = sorted(zeropair.BEFORE_SOFT_ROUNDS)[0]
    for f, top1 in ((name, 0.01), ("zeropair_new.csv", 0.99)):
        (tmp_path / f).write_text(base + (
            "d,a,b,9800,False,ceiling,9800,-1,1,1.0,0,0.60,False,0,0\n"
            f"d,a,b,9800,False,pairfree,0,0,1,{top1},0,0.60,{top1 < 0.5},1,1\n"))
    agg = zeropair.report([tmp_path / name, tmp_path / "zeropair_new.csv"], tmp_path / "t.md",
                          tmp_path / "p.png")
    rows = {r.method: r for r in agg.itertuples()}
    assert rows["pairfree"].success == 1.0 and rows["pairfree"].runs == 1
    assert rows["pairfree (before the soft rounds)"].success == 0.0


def test_zeropair_plot_draws_only_the_pairs_measured_at_several_numbers_of_pairs(tmp_path):
    # a pair run at 0 and 10 known pairs is a curve; one run at 0 pairs alone stays in
    # the table (dozens of single points buried the curves of the docs' plot)
    zeropair, base = _zeropair()
    (tmp_path / "r.csv").write_text(base + (
        "d,a,b,100,False,ceiling,100,-1,1,1.0,0,0.60,False,0,0\n"
        "d,a,b,100,False,pairfree,0,0,1,0.90,0,0.55,False,1,1\n"
        "d,a,b,100,False,pairfree,10,0,1,0.95,0,0.58,False,1,1\n"
        "d,a,c,100,False,ceiling,100,-1,1,1.0,0,0.60,False,0,0\n"
        "d,a,c,100,False,pairfree,0,0,0,0.01,0,0.20,True,1,1\n"))
    agg = zeropair.report([tmp_path / "r.csv"], tmp_path / "t.md", tmp_path / "p.png")
    assert set(agg.pair) == {"d, 100 rows: a -> b", "d, 100 rows: a -> c"}
    ceil = agg.drop_duplicates("pair").set_index("pair")[["top1", "stitch"]]
    drawn = zeropair.plot_sweeps(agg, ceil, tmp_path / "q.png")
    assert drawn == ["d, 100 rows: a -> b"] and (tmp_path / "q.png").stat().st_size > 0
