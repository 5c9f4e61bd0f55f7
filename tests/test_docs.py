"""The documentation: API reference completeness, toctrees, and a -W build.

The fast tests read ``docs/api.rst`` and ``docs/index.md`` as text, so a public
name or a user guide page added without its documentation entry fails here,
before the (slower) Sphinx build.  The slow test builds the site with warnings
as errors but without executing the gallery examples (``-D plot_gallery=0``);
``make docs`` builds it with the examples.
"""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sklearn_latent

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: public submodules (DESIGN.md); each one that exists must have its API entry
PUBLIC_SUBMODULES = ("metrics", "stitching", "datasets", "nn", "dask", "stores")


def autosummary_entries(text):
    """Fully qualified names listed by the ``autosummary`` directives of an rst text."""
    names, module, in_block = [], None, False
    for line in text.splitlines():
        stripped = line.strip()
        if m := re.match(r"\.\. currentmodule::\s*(\S+)", stripped):
            module, in_block = m.group(1), False
        elif stripped.startswith(".. autosummary::"):
            in_block = True
        elif in_block:
            if not stripped or stripped.startswith(":"):
                continue
            if not line.startswith((" ", "\t")):
                in_block = False
                continue
            if not stripped.startswith(".."):
                names.append(f"{module}.{stripped}" if module else stripped)
    return names


def test_autosummary_parser():
    text = (
        ".. currentmodule:: pkg\n\nTitle\n=====\n\n.. autosummary::\n   :toctree: generated\n\n"
        "   A\n   b\n\nText after.\n\n.. autosummary::\n   :nosignatures:\n\n   sub\n"
    )
    assert autosummary_entries(text) == ["pkg.A", "pkg.b", "pkg.sub"]


def test_api_reference_lists_every_public_name():
    listed = set(autosummary_entries((DOCS / "api.rst").read_text()))
    public = {f"sklearn_latent.{n}" for n in sklearn_latent.__all__ if not n.startswith("__")}
    missing = sorted(public - listed)
    assert not missing, f"add to docs/api.rst: {missing}"


def test_api_reference_lists_every_public_submodule():
    listed = set(autosummary_entries((DOCS / "api.rst").read_text()))
    package = ROOT / "sklearn_latent"
    present = {
        f"sklearn_latent.{m}" for m in PUBLIC_SUBMODULES
        if (package / f"{m}.py").is_file() or (package / m / "__init__.py").is_file()
    }
    missing = sorted(present - listed)
    assert not missing, f"add one line each to the Submodules section of docs/api.rst: {missing}"


def test_api_reference_entries_resolve():
    for name in autosummary_entries((DOCS / "api.rst").read_text()):
        try:
            importlib.import_module(name)  # a submodule
        except ImportError:
            module, _, attr = name.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), name


def toctree_entries(markdown):
    """Documents named in the ```{toctree} blocks of a MyST page."""
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", markdown, flags=re.S):
        entries += [ln.strip() for ln in block.splitlines()
                    if ln.strip() and not ln.strip().startswith(":")]
    return entries


def test_every_user_guide_page_is_in_a_toctree():
    # Sphinx warns (an error under -W) about a page in no toctree
    entries = set(toctree_entries((DOCS / "index.md").read_text()))
    pages = {p.stem for p in DOCS.glob("*.md")} | {p.stem for p in DOCS.glob("*.rst")}
    pages -= {"index", "sg_execution_times"}
    missing = sorted(pages - entries)
    assert not missing, f"add to a toctree in docs/index.md: {missing}"
    assert "api" in entries and "auto_examples/index" in entries


def test_every_gallery_example_has_a_title():
    # sphinx-gallery takes the title from the docstring's first line
    for path in sorted((ROOT / "examples").glob("*.py")):
        source = path.read_text()
        m = re.match(r'\s*"""\n?(.+)\n(=+)\n', source)
        assert m and len(m.group(2)) >= len(m.group(1).strip()), path.name


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("myst_parser")
    # a copy: autosummary and sphinx-gallery write into the source tree
    ignore = shutil.ignore_patterns("_build", "generated", "auto_examples", "sg_execution_times.rst")
    shutil.copytree(DOCS, tmp_path / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    cmd = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
        "-D", "plot_gallery=0", "-d", str(tmp_path / "doctrees"),
        str(tmp_path / "docs"), str(tmp_path / "html"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    html = tmp_path / "html"
    for page in ("index.html", "api.html", "methods.html", "relative.html",
                 "generated/sklearn_latent.RelativeProjector.html",
                 "auto_examples/index.html", "auto_examples/plot_irp_conditioning.html"):
        assert (html / page).is_file(), page
    api = (html / "api.html").read_text()
    for name in sklearn_latent.__all__:
        if not name.startswith("__"):
            assert f"generated/sklearn_latent.{name}.html" in api, name


def test_gallery_scraper_saves_pyplot_less_figures_once(tmp_path):
    pytest.importorskip("sphinx_gallery")
    import importlib.util

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    spec = importlib.util.spec_from_file_location(
        "gallery_scrapers", DOCS / "_ext" / "gallery_scrapers.py")
    scrapers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scrapers)

    bare = Figure()
    bare.add_subplot().plot([0, 1])
    managed, _ = plt.subplots()
    paths = [tmp_path / f"img_{i}.png" for i in range(4)]
    block_vars = {"example_globals": {"bare": bare, "managed": managed, "n": 3},
                  "image_path_iterator": iter(paths)}
    rst = scrapers.unmanaged_figures(None, block_vars, {"src_dir": str(tmp_path)})
    assert paths[0].is_file() and not paths[1].exists()
    assert "img_0.png" in rst
    plt.close("all")  # what the matplotlib scraper does next
    # neither the saved figure nor the closed pyplot one is saved again
    assert scrapers.unmanaged_figures(None, block_vars, {"src_dir": str(tmp_path)}) == ""
    assert not paths[1].exists()


def readme_python_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_quick_start_tests_on_rows_no_encoder_saw(monkeypatch):
    """The quick start runs as written (on two tiny encoders instead of the demo's five),
    and its stitching table is scored on the test rows of the encoders' own split."""
    pytest.importorskip("pandas")
    import warnings

    from sklearn_latent import datasets

    real = datasets.make_digits_spaces
    monkeypatch.setattr(datasets, "make_digits_spaces", lambda: real(
        {"mlp64-s0": (32, 0), "mlp64-s1": (32, 1)}, max_iter=20))
    (code,) = readme_python_blocks()
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), namespace)
    table, d = namespace["table"], namespace["d"]
    assert table.attrs["test"] == d.test.tolist()
    assert not set(table.attrs["anchors"]) & set(d.test.tolist())


def demo_table():
    """The summary table of docs/stitching.md's "The demo's numbers": method -> columns."""
    text = (DOCS / "stitching.md").read_text()
    section = text[text.index("## The demo's numbers"):]
    rows = re.findall(r"^\| (\S+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", section, flags=re.M)
    return {m: tuple(cols) for m, *cols in rows}


def test_readme_quotes_the_demo_table():
    """README's numbers are the demo summary that docs/stitching.md reports, digit for digit."""
    table = demo_table()
    assert len(table) == 9
    readme = " ".join((ROOT / "README.md").read_text().split())
    quoted = {"absolute": "raw embeddings scores", "relative": "through the relative space",
              "orthogonal": "orthogonal Procrustes translation",
              "inverse": "the inverse relative projection"}
    for method, phrase in quoted.items():
        number = re.search(re.escape(phrase) + r" \*\*([\d.]+)\*\*", readme)
        assert number, phrase
        assert number.group(1) == table[method][1], (method, number.group(1), table[method])
    own = re.search(r"heads' own accuracy ([\d.]+)", readme).group(1)
    assert own == table["absolute"][0]
