"""A sphinx-gallery image scraper for figures made without pyplot.

The library's plot helpers (``sklearn_latent.plot_stitching_matrix``) return a
:class:`matplotlib.figure.Figure` that pyplot does not manage (they work
without a display and leave no global state), so sphinx-gallery's matplotlib
scraper, which walks ``pyplot.get_fignums()``, does not see them.  This
scraper saves every such figure that a code block leaves in the example's
global variables, once.  It must run before the matplotlib scraper, which
closes the pyplot figures (a closed pyplot figure has no manager either).

It lives in a module (named in ``conf.py`` as ``"gallery_scrapers.unmanaged_figures"``)
so that the configuration stays picklable.
"""

import weakref

_SCRAPED = weakref.WeakSet()


def unmanaged_figures(block, block_vars, gallery_conf):
    """Save the new pyplot-less figures of this block; return their rST."""
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    figures = []
    for value in block_vars["example_globals"].values():
        if not isinstance(value, Figure) or value in _SCRAPED:
            continue
        if value.canvas.manager is not None:
            # a pyplot figure: the matplotlib scraper (next in the list) saves
            # and closes it, after which it looks unmanaged; remember it now
            _SCRAPED.add(value)
        else:
            figures.append(value)
    paths = []
    for fig, path in zip(figures, block_vars["image_path_iterator"]):
        fig.savefig(path)
        _SCRAPED.add(fig)
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"]) if paths else ""
