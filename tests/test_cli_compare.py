"""``sklearn-latent compare``: similarity of embedding files, CSV and heatmap."""

import numpy as np
import pandas as pd
import pytest

from sklearn_latent.__main__ import main
from sklearn_latent.metrics import linear_cka


@pytest.fixture
def spaces(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 10))
    arrays = {"a": X, "b": X @ rng.normal(size=(10, 6)), "c": rng.normal(size=(80, 4))}
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr)
    return tmp_path, arrays


def test_compare_writes_csv_and_heatmap(spaces, capsys):
    d, arrays = spaces
    out = d / "out"
    args = ["compare", "--out", str(out), "--measure", "linear_cka", "--measure", "cknna",
            "--k", "5"]
    for name in arrays:
        args += ["--space", f"{name}={d / (name + '.npy')}"]
    assert main(args) == 0
    table = pd.read_csv(out / "similarity.csv")
    assert (out / "similarity.png").stat().st_size > 0
    assert set(table["measure"]) == {"linear_cka", "cknna"} and len(table) == 18
    row = table[(table["a"] == "a") & (table["b"] == "b") & (table["measure"] == "linear_cka")]
    assert row["score"].iloc[0] == pytest.approx(linear_cka(arrays["a"], arrays["b"]), rel=1e-5)
    printed = capsys.readouterr().out
    assert "linear_cka (similarity)" in printed and "wrote" in printed


def test_compare_calibrated_and_a_bad_space(spaces, capsys):
    d, arrays = spaces
    np.save(d / "const.npy", np.ones((80, 3)))
    out = d / "cal"
    code = main(["compare", "--space", f"a={d / 'a.npy'}", "--space", f"b={d / 'b.npy'}",
                 "--space", f"const={d / 'const.npy'}", "--calibrate", "9", "--out", str(out),
                 "--no-plot"])
    assert code == 0
    table = pd.read_csv(out / "similarity.csv", keep_default_na=False)
    assert {"calibrated", "p_value"} <= set(table.columns)
    assert not (out / "similarity.png").exists()
    printed = capsys.readouterr().out
    assert "warning: linear_cka: ValueError: Y is constant" in printed and "'const'" in printed
    ok = table[(table["a"] == "a") & (table["b"] == "b")]
    assert float(ok["p_value"].iloc[0]) == pytest.approx(0.1)


def test_compare_bad_input(spaces, capsys):
    d, _ = spaces
    np.save(d / "short.npy", np.ones((70, 3)))
    assert main(["compare", "--space", f"a={d / 'a.npy'}", "--space",
                 f"s={d / 'short.npy'}", "--out", str(d / "o")]) == 1
    assert "row counts differ" in capsys.readouterr().err
    assert main(["compare", "--space", "a"]) == 2
    assert "expected NAME=FILE" in capsys.readouterr().err
    assert main(["compare", "--space", f"a={d / 'a.npy'}", "--measure", "nope"]) == 2


def test_compare_dask_backend_same_csv(spaces):
    pytest.importorskip("dask")
    d, arrays = spaces
    tables = []
    for backend in ("joblib", "dask"):
        out = d / backend
        args = ["compare", "--out", str(out), "--no-plot", "--measure", "svcca", "--jobs", "2",
                "--backend", backend]
        for name in arrays:
            args += ["--space", f"{name}={d / (name + '.npy')}"]
        assert main(args) == 0
        tables.append(pd.read_csv(out / "similarity.csv", keep_default_na=False))
    pd.testing.assert_frame_equal(tables[0], tables[1])
