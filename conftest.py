"""Collection rules for the docstring examples (``--doctest-modules`` on the package).

The numba kernels module imports numba at import time (it is only ever imported
when numba is installed); without the ``fast`` extra it is left out of collection.
"""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("numba") is None:
    collect_ignore.append("sklearn_latent/functional/_lp_jit.py")
