"""Sphinx configuration of geosr's documentation (``make docs``).

Sphinx with the PyData theme and MyST / myst-nb, as xarray, rioxarray and torchgeo do. The
build needs no network: no intersphinx, nothing fetched. The notebooks in ``notebooks/`` are
executed during the build (jupyter-cache, in ``out/docs-cache``), model cards are written
from the bundled checkpoints, the CLI reference comes from the real parsers and the API
reference from the docstrings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import geosr  # noqa: E402

# The notebooks read their scenes from $GEOSR_SHARED_DATA: the small committed crops keep the
# build quick and the same on every machine (the kernels inherit this environment).
os.environ["GEOSR_SHARED_DATA"] = str(REPO / "tests" / "data")

project = "geosr"
author = "geosr developers"
copyright = "geosr developers"
version = release = geosr.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinxarg.ext",
    "sphinx_design",
    "geosr_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path: list[str] = []
suppress_warnings: list[str] = []

# --- MyST -----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "attrs_inline"]
myst_heading_anchors = 3

# --- notebooks: executed during the build, cached between builds -----------------------------
nb_execution_mode = "cache"
nb_execution_cache_path = str(REPO / "out" / "docs-cache")
nb_execution_timeout = 1200
nb_execution_in_temp = True  # their notebook-output/ folders go to a temporary folder
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# --- API reference --------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # dataclass fields: no second description beside autodoc's

# --- HTML -----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"geosr {release}"
html_static_path = ["_static"]
# the example reports, beside the pages that link to them (opened in the browser, not downloaded)
html_extra_path = ["evaluation-report.html", "guided-evaluation-report.html"]
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "auto"}
