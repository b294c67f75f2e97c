"""
Sphinx configuration for the txoci documentation.

The pages are Markdown (MyST), so they read the same on GitHub as on the built site. Build with
warnings as errors, as CI does::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here touches the network: no intersphinx, no remote images, no CDN scripts.
"""

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# autodoc imports the package from this checkout, not from whatever txoci pip installed.
sys.path.insert(0, str(ROOT))

import txoci  # noqa: E402

project = "txoci"
author = "the txoci authors"
copyright = "the txoci authors, Apache-2.0"
version = release = txoci.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "repoze.sphinx.autointerface",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Pages that another branch adds: listed in index.md's toctree, and dropped from it (see
# _drop_missing_optional_pages below) while their file does not exist yet, so the build passes with
# and without them. A page not listed here that is missing still fails the build.
OPTIONAL_PAGES = ("configuration",)

# --- MyST ---------------------------------------------------------------------------------------

# `page.md#some-heading` links resolve to the anchors GitHub makes for headings (levels 1 to 4).
myst_heading_anchors = 4
# No MyST syntax extensions: the pages are plain CommonMark plus GitHub tables, as GitHub shows them.
# Links such as [example](examples/embed_app.py) to files that are not pages become downloads.

# --- autodoc ------------------------------------------------------------------------------------

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
# Sphinx 9 rewrote autodoc; the class-based documenters that repoze.sphinx.autointerface extends
# (to document zope.interface interfaces, which autodoc skips) remain as this legacy mode. Sphinx 8
# ignores the setting and has only those.
autodoc_use_legacy_class_based = True
# Signatures carry the annotations; descriptions stay what the docstrings say.
autodoc_typehints = "signature"
# Only txoci's own docstrings: Twisted's are epytext (``@param``), which is not reST, and an
# override without a docstring of its own is an implementation detail, not API.
autoclass_content = "class"
autodoc_inherit_docstrings = False
# Docstrings are reST (``:param x:``, ``:ivar x:``), so no napoleon: it would read a ``#:`` comment
# such as "Advertised as OCI-Chunk-Min-Length: ..." as a type and a description.

# Docstrings cite Twisted and the standard library by name (``:class:`IConsumer```); with no
# intersphinx those stay plain text. nitpicky stays off so that is not a warning.
nitpicky = False

# The sidebar lists a page's classes and functions by their short names.
toc_object_entries_show_parents = "hide"

# --- HTML ---------------------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"txoci {release}"
html_theme_options = {
    "description": "An OCI Distribution v1.1 container registry on Twisted",
    "fixed_sidebar": True,
    # Wide enough for the tables and the text diagrams of the architecture page.
    "page_width": "1240px",
    "body_max_width": "none",
    "show_relbars": True,
}
html_static_path: list[str] = []
html_show_sourcelink = False


def _drop_missing_optional_pages(app: object, docname: str, source: list[str]) -> None:
    """Remove toctree lines of OPTIONAL_PAGES whose file is absent, in the root document only."""
    if docname != root_doc:
        return
    missing = {page for page in OPTIONAL_PAGES if not (DOCS / f"{page}.md").exists()}
    if not missing:
        return
    lines = source[0].splitlines(keepends=True)
    source[0] = "".join(line for line in lines if line.strip() not in missing)


_CLASS_REPR = re.compile(r"<(?:InterfaceClass |class ')(?:\w+\.)*(\w+)'?>")
_LAMBDA_REPR = re.compile(r"<function [\w.]*<lambda>>")


def _readable_signature(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """
    Show a zope.interface annotation, or a class as a default value, by its name, and a lambda
    default as ``...``: autodoc renders them by their repr (``<InterfaceClass
    twisted.web.resource.IResource>``, ``<class 'twisted.web.server.Site'>``), which is not Python
    and so also spoils the parsing of the whole signature.
    """

    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        return _LAMBDA_REPR.sub("...", _CLASS_REPR.sub(r"\1", text))

    return clean(signature), clean(return_annotation)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("source-read", _drop_missing_optional_pages)
    app.connect("autodoc-process-signature", _readable_signature)
    return {"parallel_read_safe": True}

