"""The real-encoder benchmark script without its encoders (issue 5).

``benchmarks/real_stitching.py`` needs pretrained-encoder packages (an
optional extra) to embed data; everything after the embedding, and the
parsing / pooling helpers, run here on tiny fake embeddings so the code path
is covered in CI.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_stitching.py"


@pytest.fixture(scope="module")
def rs():
    spec = importlib.util.spec_from_file_location("real_stitching", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_spaces(n=120, d=8, seed=0):
    """Three spaces of the same samples: a base, a rotated + shifted copy, a wider copy."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    X = 3.0 * rng.normal(size=(3, d))[y] + rng.normal(size=(n, d))
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    spaces = {
        "base": X,
        "rotated": 2.0 * X @ Q + 5.0,
        "wider": np.hstack([X @ Q, 0.01 * rng.normal(size=(n, 3))]),
    }
    return spaces, y


def test_help_works_without_the_extra():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "--modality" in out.stdout and "--n-anchors" in out.stdout


def test_missing_packages_are_named(rs, monkeypatch):
    monkeypatch.setitem(rs.REQUIRED, "text", {"no_such_module_xyz": "no-such-package-xyz"})
    with pytest.raises(rs.MissingExtraError, match="no-such-package-xyz"):
        rs.check_packages("text")
    monkeypatch.setitem(rs.REQUIRED, "text", {"numpy": "numpy"})
    rs.check_packages("text")  # present: no error


def test_parse_vader_lexicon_threshold_and_labels(rs):
    lines = [
        "good\t1.9\t0.9\t[2, 2]\n",
        "meh\t-0.3\t0.5\t[0, -1]\n",
        ":(\t-1.0\t0.1\t[-1, -1]\n",  # exactly at the threshold: kept
        "okay\t0.99\t0.1\t[1, 1]\n",  # just below: dropped
        "\n",
        "awful\t-3.1\t0.3\t[-3, -3]\n",
    ]
    tokens, labels = rs.parse_vader_lexicon(lines, threshold=1.0)
    assert tokens == ["good", ":(", "awful"]
    np.testing.assert_array_equal(labels, [1, 0, 0])
    tokens, _ = rs.parse_vader_lexicon(lines, threshold=0.0)
    assert len(tokens) == 5


def test_mean_pool_ignores_padding(rs):
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    pooled = rs.mean_pool(tokens, mask)
    for i, m in enumerate(mask):
        np.testing.assert_allclose(pooled[i], tokens[i, m.astype(bool)].mean(0), rtol=1e-6)
    # changing padded positions changes nothing
    tokens[0, 3:] = 1e6
    np.testing.assert_allclose(rs.mean_pool(tokens, mask)[0], pooled[0], rtol=1e-6)


def test_stitching_tables_on_related_spaces(rs):
    spaces, y = fake_spaces()
    tables, results = rs.stitching_tables(spaces, y, n_anchors=30, random_state=0)
    assert list(tables) == list(rs.METHODS)
    train, test = rs.fixed_split(y)
    np.testing.assert_array_equal(results.attrs["train"], train)
    np.testing.assert_array_equal(results.attrs["test"], test)
    assert len(results.attrs["anchors"]) == 30 and np.isin(results.attrs["anchors"], train).all()
    for method, table in tables.items():
        assert list(table.index) == list(spaces) == list(table.columns)
        values = table.to_numpy(dtype=float)
        if method == "absolute":
            # different widths cannot be fed to each other's head
            assert np.isnan(values[2, :2]).all() and np.isnan(values[:2, 2]).all()
            # a rotated, shifted, scaled copy breaks the absolute head
            assert values[1, 0] < 0.8 and values[0, 1] < 0.8
        else:
            assert not np.isnan(values).any(), method
        assert np.diag(values).min() > 0.95, method
    # these maps undo a similarity transform: stitching is as good as own accuracy
    for method in ("relative", "orthogonal", "affine", "inverse-pruned"):
        assert tables[method].to_numpy().min() > 0.9, method


def test_method_specs_rejects_unknown_names(rs):
    with pytest.raises(ValueError, match="no-such-method"):
        rs.method_specs(["relative", "no-such-method"])


def test_main_reports_from_cached_embeddings(rs, tmp_path):
    spaces, y = fake_spaces(n=90)
    cache = tmp_path / "cache"
    cache.mkdir()
    fake = dict(zip(rs.TEXT_ENCODERS, spaces.values()))
    for name, X in fake.items():
        np.save(cache / f"text_{name}.npy", X)
    np.save(cache / "text_labels.npy", y)
    (cache / "text_seconds.json").write_text('{"%s": 1.5}' % rs.TEXT_ENCODERS[0])
    out = tmp_path / "report.md"
    rs.main(["--modality", "text", "--cache", str(cache), "--n-anchors", "20", "--out", str(out)])
    md = out.read_text()
    assert "### text" in md and "Linear CKA" in md and "--n-anchors 20" in md
    assert f"{rs.TEXT_ENCODERS[0]} (8-d, 2 s)" in md  # the stored embedding time
    assert f"{rs.TEXT_ENCODERS[1]} (8-d, cached)" in md
    for method in rs.METHODS:
        assert f"`{method}`" in md
    # the CKA table: a rotated, scaled, shifted copy has linear CKA 1
    cka = rs.cka_table(fake)
    assert cka.loc[rs.TEXT_ENCODERS[0], rs.TEXT_ENCODERS[1]] == pytest.approx(1.0)
    with pytest.raises(SystemExit, match="n-anchors"):
        rs.main(["--modality", "text", "--cache", str(cache), "--n-anchors", "1"])


def test_summary_and_markdown(rs):
    table = pd.DataFrame([[1.0, 0.5], [0.25, 0.75]], index=["a", "b"], columns=["a", "b"])
    summary = rs.summary_table({"m": table})
    np.testing.assert_allclose(summary.loc["m"].to_numpy(), [0.875, 0.375, 0.25])
    md = rs.markdown_table(table.where(table > 0.3), corner="s \\ t")
    assert md.splitlines() == [
        "| s \\ t | a | b |",
        "|---|---|---|",
        "| a | 1.000 | 0.500 |",
        "| b | n/a | 0.750 |",
    ]
