"""The built book as a reader sees it: every page parsed (no raw pipe tables, no Python reprs
or other last-expression outputs, no unrendered glue, no missing or repeated images, nothing
loaded from the network), and loaded offline in headless Chromium (math rendered by the bundled
MathJax, no console error), with a screenshot of each page kept as an artifact.

One test per page, so the report says which pages are clean. The book is built once for the
module (about 30 s). Screenshots go to ``$NTKNB_ARTIFACTS/screenshots`` (default
``_build/screenshots``). The browser checks skip, saying why, where Chromium is missing
(Debian: ``apt-get install chromium``).
"""

import os
import shutil
from pathlib import Path

import pytest

from ntknb import book

PAGES = book._toc_files(book.ROOT)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def built_html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    # Sphinx warnings do not stop this build (test_book.py builds with -W): one page's warning
    # must not hide the other pages' reports.
    code = book.build(path_output=out, fresh=True, warnings_as_errors=False)
    assert code == 0, "the book build failed; see the captured output"
    return out / "_build" / "html"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly(built_html, page):
    problems = book.html_problems(built_html, [page])[page]
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_in_a_browser_offline(built_html, page):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): browser check not run")
    shots = Path(os.environ.get("NTKNB_ARTIFACTS", book.ROOT / "_build")) / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"{page.replace('/', '__')}.png"
    problems = book.browser_check(built_html, page, screenshot=shot, chromium=CHROMIUM)
    assert shot.is_file() and shot.stat().st_size > 0
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.slow
def test_mathjax_is_bundled_and_images_enlarge(built_html):
    static = built_html / "_static"
    assert (static / "mathjax" / "tex-chtml.js").is_file()
    assert (static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert (static / "ntknb.js").is_file() and "ntknb-lightbox" in (static / "ntknb.js").read_text()
    page = (built_html / "notebooks" / "00_ntk_basics.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page and "ntknb.js" in page
    assert "THEBE_JS_URL" not in page
    # each chapter's .ipynb can be downloaded from its page
    assert (built_html / "_sources" / "notebooks" / "00_ntk_basics.ipynb").is_file()


# ------------------------------------------------------- the checker itself must be able to fail

PAGE = """<html><head>{head}</head><body><main>{body}</main></body></html>"""


def _page(tmp_path, body, head=""):
    (tmp_path / "p.html").write_text(PAGE.format(head=head, body=body))
    return book.html_problems(tmp_path, ["p"])["p"]


def test_checker_passes_a_clean_page(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png-a")
    body = ('<p>Text with <code>| a | b |</code>.</p><table><tr><td>1</td></tr></table>'
            '<img src="a.png"><div class="cell_output"><div class="output stream"><pre>hi</pre></div></div>'
            '<pre>{glue:text}`x`</pre>')
    assert _page(tmp_path, body, '<script src="_static/x.js"></script>') == []


@pytest.mark.parametrize("body, head, expected", [
    ("<p>| a | b | | :-- | --: | | 1 | 2 |</p>", "", "raw pipe table"),
    ('<div class="cell_output"><div class="output text_plain"><pre>&lt;matplotlib.legend.Legend at 0x7f&gt;</pre></div></div>',
     "", "repr output"),
    ('<div class="cell_output"><div class="output text_plain"><pre>0.1</pre></div></div>', "", "last-expression output"),
    ("<p>width {glue:text}`w`</p>", "", "unrendered glue"),
    ("<p>the gap is nan here</p>", "", "nan in the text"),
    ('<img src="missing.png">', "", "missing image"),
    ('<img src="a.png"><img src="a.png">', "", "image shown 2 times"),
    ('<img src="a.png"><img src="b.png">', "", "same image under 2 names"),
    ("", '<script src="https://cdn.example.org/mathjax.js"></script>', "script loaded from the network"),
])
def test_checker_finds_each_defect(tmp_path, body, head, expected):
    (tmp_path / "a.png").write_bytes(b"png-a")
    (tmp_path / "b.png").write_bytes(b"png-a")
    problems = _page(tmp_path, body, head)
    assert any(p.startswith(expected) for p in problems), problems


def test_browser_check_finds_console_errors_and_raw_math(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): browser check not run")
    (tmp_path / "bad.html").write_text('<html><body><div class="math notranslate">\\[x^2\\]</div>'
                                       "<script>console.error('boom'); undefinedFn();</script></body></html>")
    problems = book.browser_check(tmp_path, "bad", chromium=CHROMIUM, timeout=60)
    assert any("boom" in p for p in problems) and any("undefinedFn" in p for p in problems)
    assert any(p.startswith("math not rendered") for p in problems)
