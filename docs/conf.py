"""Sphinx configuration of the sklearn-latent documentation.

Builds offline: no intersphinx, no remote assets, alabaster (ships with
Sphinx).  Build with

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
import warnings

# the checkout being documented, not another installed copy
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if os.path.isdir(os.path.join(_ROOT, "sklearn_latent")):
    sys.path.insert(0, _ROOT)
# docs/_ext: the gallery scraper of pyplot-less figures
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

import sklearn_latent  # noqa: E402

project = "sklearn-latent"
author = "the sklearn-latent developers"
copyright = "the sklearn-latent developers"
version = release = sklearn_latent.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "sg_execution_times.rst"]

# -- offline build -----------------------------------------------------------
# No intersphinx (it downloads inventories), no remote images or fonts, no
# sphinx-gallery timing pages (they load scripts from CDNs).  The one remote
# asset left: MathJax, which the reader's browser loads from its CDN for the
# pages with formulas (offline they show the TeX source); the build itself
# never fetches it.

# -- autodoc / autosummary / numpydoc ------------------------------------------
autosummary_generate = True
# module pages (templates/autosummary/module.rst) list __all__, else what the
# module defines itself (never what it imports)
autosummary_imported_members = False
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
# method tables come from the class template (docs/_templates/autosummary)
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- myst (the user guide pages are markdown) ----------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- sphinx-gallery --------------------------------------------------------------
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg, which is a non-GUI backend",
)
# The examples fit small models: one thread each is faster than contending
# threads on a busy or small CI machine (a 2-core runner: several times faster).
try:
    import torch
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - both are dependencies of the library
    pass
else:
    torch.set_num_threads(1)
    threadpool_limits(1)

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # executed: plot_*.py and the quick start (printed output only)
    "filename_pattern": r"/(plot_|quickstart)",
    "ignore_pattern": r"__init__\.py|/_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    # the timing pages load jQuery/DataTables from CDNs: leave them out (the
    # per-example times are in the build log)
    "write_computation_times": False,
    # plot helpers of the library return figures that pyplot does not manage
    # (first: it must see the pyplot figures before the matplotlib scraper closes them)
    "image_scrapers": ("gallery_scrapers.unmanaged_figures", "matplotlib"),
    "plot_gallery": "True",
}

# -- HTML ------------------------------------------------------------------------
html_theme = "alabaster"
html_theme_options = {
    "description": "scikit-learn compatible latent space communication",
    "page_width": "1100px",
    "sidebar_width": "230px",
    "fixed_sidebar": False,
}
html_static_path = []
html_title = f"sklearn-latent {release}"


# -- hooks -------------------------------------------------------------------------
def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    """``set_{fit,transform,...}_request``: scikit-learn's generated routing setters.

    scikit-learn documents them (their docstrings refer to its own glossary,
    which is not part of this site).
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
