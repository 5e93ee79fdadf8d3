"""Build the book: the Sphinx extension ``ntknb.book`` (:func:`setup`), ``build`` and ``lab``.

:func:`build` first checks that the paired notebooks are in sync (:func:`ntknb.book.sync.check_sync`)
and writes the generated pages (:mod:`ntknb.book.pages`), then runs ``jupyter-book build`` with
warnings as errors (``--warningiserror --keep-going``, so every warning is reported before it
fails), HTML into ``<path-output>/_build/html`` (default: the repository, i.e. ``_build/html``).
``strict`` also requires every notebook in the table of contents to be one complete run at its
defaults (:func:`ntknb.book.sync.unexecuted_notebooks`), since the book would otherwise silently
render a notebook without results. :func:`lab_command` opens the notebooks in JupyterLab with the
project's kernel.

As a Sphinx extension (``_config.yml``: ``sphinx.extra_extensions: [ntknb.book]``, which
:mod:`ntknb.book` re-exports from here), :func:`setup` regenerates the generated pages, serves
MathJax from the built book (``_static/mathjax``, copied from the pinned
``sphinx-mathjax-offline`` package, so math renders without network), serves the book's CSS /
JS (:data:`STATIC_DIR`), renders the API reference's docstrings, adds the
``{ntknb-claims-summary}`` directive and the ``{ntknb-verdict}`` role, re-renders each
notebook's stored claims block and sets the ``source_repository`` substitution from the
configured repository URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ntknb import paths
from ntknb.book.pages import write_results_page, write_status_page
from ntknb.book.params import DEFAULT_KERNEL
from ntknb.book.sync import check_sync, unexecuted_notebooks

__all__ = ["MATHJAX_PATH", "mathjax_source", "STATIC_DIR", "setup", "build", "lab_command"]


#: MathJax files served from the built book (``_static/mathjax``): the TeX-to-CommonHTML
#: bundle, its fonts and the TeX extensions it may autoload (not the other bundles, nor the
#: speech rule maps).
_MATHJAX_PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y", "adaptors")
MATHJAX_PATH = "mathjax/tex-chtml.js"


def mathjax_source() -> Path:
    """The folder of the pinned MathJax 3 files (package ``sphinx-mathjax-offline``)."""
    from importlib import util

    spec = util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ntknb.book: the pinned package sphinx-mathjax-offline is not installed "
                           "(bash scripts/dev setup installs requirements.lock)")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def _copy_mathjax(app, exc) -> None:
    import shutil

    if exc is not None or app.builder.format != "html":
        return
    src, dst = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in _MATHJAX_PARTS:
        s_, d_ = src / part, dst / part
        d_.parent.mkdir(parents=True, exist_ok=True)
        if s_.is_dir():
            shutil.copytree(s_, d_, dirs_exist_ok=True)
        else:
            shutil.copy2(s_, d_)


#: The book's own CSS / JS (click-to-enlarge, scrolling wide equations and tables).
STATIC_DIR = Path(__file__).resolve().parent / "static"


def _docstring_as_text(app, what, name, obj, options, lines) -> None:
    """autodoc: render each docstring as reStructuredText where it parses cleanly, else show it
    as written (a literal block).

    The docstrings are plain text with RST literals and Google-style sections (``Args:``,
    ``Returns:``): sphinx.ext.napoleon's parsers turn the sections into fields (a section given
    on its header's line, ``Returns: text``, is first moved below it), and underlined headings,
    which autodoc cannot nest, become rubrics. The result is parsed by docutils first (Sphinx
    roles read as literals): a docstring with any problem (a stray indent, an unclosed
    backquote, the ``*`` of a product) would be a warning, i.e. a failed build (-W), so that one
    stays literal."""
    import io
    import re

    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import GoogleDocstring, NumpyDocstring

    if not lines:
        return
    original = list(lines)
    inline = re.compile(r"^(\s*)(Args|Arguments|Returns|Raises|Yields|Attributes|Note|Example|Examples):\s+(\S.*)$")
    text = []
    for i, line in enumerate(original):
        m = inline.match(line)
        if m:
            follow = original[i + 1] if i + 1 < len(original) else ""
            deeper = len(follow) - len(follow.lstrip()) if follow.strip() else 0
            indent = deeper if deeper > len(m.group(1)) else len(m.group(1)) + 4
            text += [f"{m.group(1)}{m.group(2)}:", " " * indent + m.group(3)]
        else:
            text.append(line)
    config = Config(napoleon_use_ivar=True)  # attributes as fields, not nested directives
    text = NumpyDocstring(GoogleDocstring(text, config, what=what, name=name, obj=obj).lines(),
                          config, what=what, name=name, obj=obj).lines()
    underline = re.compile(r"^([-=~^\"'`#*+])\1{2,}\s*$")
    rst = []
    for line in text:
        if underline.match(line) and rst and rst[-1].strip() and not underline.match(rst[-1]):
            rst[-1:] = [f".. rubric:: {rst[-1].strip()}", ""]
        else:
            rst.append(line)
    probe = re.sub(r":[\w:.+-]+:`([^`]*)`", r"``\1``", "\n".join(rst))
    try:
        publish_doctree(probe, settings_overrides={
            "report_level": 2, "halt_level": 2, "warning_stream": io.StringIO(),
            "file_insertion_enabled": False, "raw_enabled": False, "_disable_config": True})
    except SystemMessage:
        rst = ["::", ""] + ["   " + line for line in original] + [""]
    lines[:] = rst + [""]


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's scripts (Jupyter Book loads it though launch buttons are off): it
    declares ``THEBE_JS_URL`` twice on each page (a console error) and would fetch thebe from a
    CDN; this book runs interactively through ``bash scripts/dev lab`` instead."""
    def keep(item) -> bool:
        body = getattr(item, "attributes", {}).get("body", "") or ""
        return "THEBE_JS_URL" not in body and "sphinx-thebe" not in str(getattr(item, "filename", item) or "")

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [item for item in context[key] if keep(item)]


def _claims_summary_directive():
    """The ``{ntknb-claims-summary}`` directive: a chapter's summary in a few sentences
    (:func:`ntknb.claims.summary_markdown`) from the claims its stored notebook glued
    (``claims``), so the text follows the verdicts without a line of notebook code."""
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class ClaimsSummary(SphinxDirective):
        has_content = False
        optional_arguments = 1  # the glue key (default: claims)

        def run(self):
            from myst_nb.ext.glue.utils import RetrievalError, retrieve_glue_data

            from ntknb.book.run import glued_value
            from ntknb.claims import summary_markdown

            key = self.arguments[0] if self.arguments else "claims"
            try:
                data = retrieve_glue_data(self.state.document, key).data
            except RetrievalError as exc:
                return [self.state.document.reporter.warning(f"ntknb-claims-summary: {exc}", line=self.lineno)]
            text = summary_markdown(glued_value(data))
            box = nodes.container(classes=["ntknb-claims-summary"])
            self.state.nested_parse(StringList(text.splitlines(), source=self.get_source_info()[0]),
                                    self.content_offset, box)
            return [box]

    return ClaimsSummary


def _verdict_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """The ``{ntknb-verdict}`` role: a verdict id (:data:`ntknb.claims.VERDICTS`) as a badge
    (``<span class="ntknb-verdict ntknb-v-ID">``, coloured by ``ntknb.css``)."""
    from docutils import nodes

    from ntknb.claims import VERDICT_TEXT

    if text not in VERDICT_TEXT:
        msg = inliner.reporter.error(f"ntknb-verdict: expected one of {list(VERDICT_TEXT)}, got {text!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.inline(rawtext, VERDICT_TEXT[text], classes=["ntknb-verdict", f"ntknb-v-{text}"])], []


def _rerender_claims(app, doctree) -> None:
    """``doctree-read``: replace a notebook's stored claims block (the HTML output of
    :func:`ntknb.claims.glue_claims` when it was executed, old table or new block) by
    :func:`ntknb.claims.claims_html` of the claims it glued, so every page shows the current
    compact view without re-executing a notebook."""
    from docutils import nodes

    raws = [n for n in doctree.findall(nodes.raw) if 'class="ntknb-claims"' in n.astext()]
    path = Path(app.env.doc2path(app.env.docname))
    if not raws or path.suffix != ".ipynb":
        return
    import nbformat

    from ntknb.book.run import extract_glued
    from ntknb.claims import claims_html

    glued = extract_glued(nbformat.read(path, as_version=4)).get("claims")
    if glued is None:
        return
    for node in raws:
        node.replace_self(nodes.raw("", claims_html(glued), format="html"))


def _unwrap_imageless_figures(app, doctree) -> None:
    """``doctree-read``: myst-nb (1.4) wraps *every* display output of a cell that has a figure
    caption (cell metadata ``mystnb.figure``) in that figure, so a table the cell also displays
    would be captioned and numbered as the figure. A figure of notebook outputs none of which
    holds an image is replaced by its outputs."""
    from docutils import nodes

    for fig in list(doctree.findall(nodes.figure)):
        bundles = [n for n in fig.children if isinstance(n, nodes.Element) and n.get("nb_element") == "mime_bundle"]
        mimes = [str(m.get("mime_type", "")) for b in bundles for m in b.children if isinstance(m, nodes.Element)]
        if bundles and not any(m.startswith("image/") for m in mimes):
            fig.replace_self([n for n in fig.children if not isinstance(n, (nodes.caption, nodes.legend))])


def _claims_code_changed(app, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: every notebook is read again when the code that renders claims
    (:mod:`ntknb.claims`, :mod:`ntknb.book.pages`) changed since the last build, so an incremental
    build shows the current claims blocks and summaries (:func:`_rerender_claims`)."""
    import hashlib

    import ntknb.book.pages
    from ntknb import claims

    code = b"".join(Path(m.__file__).read_bytes() for m in (claims, ntknb.book.pages))
    digest = hashlib.sha256(code).hexdigest()
    if getattr(env, "ntknb_claims_code", None) == digest:
        return []
    env.ntknb_claims_code = digest
    return [d for d in env.found_docs if Path(env.doc2path(d)).suffix == ".ipynb" and d not in changed]


def _config_inited(app, config) -> None:
    write_results_page(app.srcdir)
    write_status_page(app.srcdir)
    config.mathjax_path = MATHJAX_PATH  # served from _static (copied by _copy_mathjax): works offline
    config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]
    # the chapters' .py sources served beside the book: only those this source tree has (a book
    # built from a copy of the configuration, e.g. in a test, may have none)
    config.html_extra_path = [e for e in config.html_extra_path if (Path(app.srcdir) / e).exists()]
    url = (config.html_theme_options or {}).get("repository_url") or ""
    subs = dict(getattr(config, "myst_substitutions", {}) or {})
    subs.setdefault(
        "source_repository",
        f"[{url}]({url})" if url else
        "the source repository (no public address is configured for this book: `repository.url` in "
        "`_config.yml` is empty; ask whoever gave you the book for the repository)")
    config.myst_substitutions = subs


def setup(app) -> dict:
    """Sphinx extension (``sphinx.extra_extensions: [ntknb.book]`` in ``_config.yml``):
    regenerate the generated pages before the sources are read, set the ``source_repository``
    substitution, copy MathJax into the built book (``mathjax_path`` in ``_config.yml``), add the
    ``{ntknb-claims-summary}`` directive and the ``{ntknb-verdict}`` role, and re-render each
    notebook's stored claims block from its glued claims (:func:`_rerender_claims`)."""
    app.connect("config-inited", _config_inited, priority=100)
    app.connect("build-finished", _copy_mathjax)
    app.setup_extension("sphinx.ext.autodoc")  # the API reference page
    app.connect("autodoc-process-docstring", _docstring_as_text)
    app.connect("html-page-context", _drop_thebe)
    app.add_directive("ntknb-claims-summary", _claims_summary_directive())
    app.add_role("ntknb-verdict", _verdict_role)
    app.connect("doctree-read", _rerender_claims)
    app.connect("doctree-read", _unwrap_imageless_figures)
    app.connect("env-get-outdated", _claims_code_changed)
    app.add_css_file("ntknb.css")
    app.add_js_file("ntknb.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def build(
    strict: bool = False,
    path_output: str | os.PathLike | None = None,
    fresh: bool = False,
    warnings_as_errors: bool = True,
    root: str | os.PathLike | None = None,
) -> int:
    """check-sync, write the results page (:func:`write_results_page`), then
    ``jupyter-book build``; returns the exit status."""
    root = Path(root) if root is not None else paths.REPO_ROOT
    problems = check_sync(root)
    if problems:
        for p in problems:
            print(f"ntknb.book: out of sync: {p}", file=sys.stderr)
        return 1
    try:  # the generated pages (also regenerated by the Sphinx extension)
        write_results_page(root)
        write_status_page(root)
    except ValueError as exc:
        print(f"ntknb.book: results page: {exc}", file=sys.stderr)
        return 1
    if strict:
        bad = unexecuted_notebooks(root)
        if bad:
            for b in bad:
                print(f"ntknb.book: {b}", file=sys.stderr)
            return 1
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--builder", "html"]
    if warnings_as_errors:
        cmd += ["--warningiserror", "--keep-going"]
    if fresh:
        cmd.append("--all")
    if path_output is not None:
        cmd += ["--path-output", str(path_output)]
    env = dict(os.environ)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    proc = subprocess.run(cmd, cwd=root, env=env)
    if proc.returncode == 0:
        out = Path(path_output) if path_output is not None else root
        print(f"ntknb.book: the book is in {out / '_build' / 'html' / 'index.html'}")
    return proc.returncode


def lab_command(name: str | None = None, extra: Sequence[str] = (), root: str | os.PathLike | None = None) -> list[str]:
    """The ``jupyter lab`` command line that opens the book's notebooks (``notebooks/NAME.ipynb``
    when ``name`` is given) with the project's kernel (:data:`ntknb.book.params.DEFAULT_KERNEL`, the
    kernel every notebook names) as the default for new notebooks too."""
    root = Path(root) if root is not None else paths.REPO_ROOT
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
           f"--MappingKernelManager.default_kernel_name={DEFAULT_KERNEL}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in cmd:
        cmd.append("--allow-root")  # containers and CI machines run as root
    if name:
        ipynb = root / "notebooks" / f"{Path(name).stem}.ipynb"
        if not ipynb.is_file():
            raise SystemExit(f"ntknb.book: error: no notebook {ipynb.relative_to(root)}")
        cmd.append(str(ipynb.relative_to(root)))
    return cmd
