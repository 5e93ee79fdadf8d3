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


# --------------------------------------------------- claims as the reader's first view (issue 30)

CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]

#: Runs inside each probed page (loaded in an iframe of the wanted width, so the page's media
#: queries see that width) and posts the layout of its claims to the wrapper page.
_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var doc = document.documentElement, out = {page: %s, vw: doc.clientWidth, claims: [], first: null, right: 0};
  document.querySelectorAll('.ntknb-claim').forEach(function (el) {
    var r = el.getBoundingClientRect(), b = el.firstElementChild, q = b.getBoundingClientRect();
    out.right = Math.max(out.right, r.right);
    out.claims.push({id: el.id, height: r.height, badge_first: b.classList.contains('ntknb-verdict'),
                     badge: [q.left, q.right, q.top - r.top]});
  });
  var v = document.querySelector('article .ntknb-verdict');
  if (v) { var p = v.getBoundingClientRect(); out.first = [p.left, p.right, p.top + window.scrollY]; }
  parent.postMessage(JSON.stringify(out), '*');
}, 2000); });
</script>"""


def claims_layout(html_root: Path, pages, width: int, chromium: str) -> dict:
    """``{page: layout}`` of each page's claims block and first verdict badge at ``width`` px, in
    one headless Chromium run (each page in an iframe of that width; offline)."""
    import html
    import json
    import re
    import subprocess
    import tempfile

    probes, frames = [], []
    for i, page in enumerate(pages):
        src = html_root / f"{page}.html"
        probe = src.with_name(f"{src.stem}.ntknb-probe.html")
        probe.write_text(src.read_text().replace("</body>", _PROBE % json.dumps(page) + "</body>"))
        probes.append(probe)
        frames.append(f'<iframe src="{probe.relative_to(html_root).as_posix()}" '
                      f'style="width:{width}px;height:800px;border:0"></iframe>')
    wrapper = html_root / "ntknb-probe.html"
    wrapper.write_text("<html><body>" + "".join(frames) + '<pre id="out"></pre><script>window.addEventListener('
                       '"message", function (e) { document.getElementById("out").textContent += e.data + "\\n"; });'
                       "</script></body></html>")
    try:
        with tempfile.TemporaryDirectory(prefix="ntknb-chromium-") as profile:
            proc = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
                                   "--virtual-time-budget=20000", "--window-size=1400,1000", "--dump-dom",
                                   wrapper.resolve().as_uri()], capture_output=True, text=True, timeout=240)
    finally:
        for path in (*probes, wrapper):
            path.unlink()
    text = html.unescape(re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S).group(1))
    return {d["page"]: d for d in (json.loads(line) for line in text.splitlines() if line.strip())}


@pytest.mark.slow
def test_claims_block_and_summary_in_the_built_pages(built_html):
    """Static checks of item 1 of issue 30: every chapter shows the compact claims block (no stored
    table), a summary in prose, author-year citations, no unbounded "[-inf, inf]"; the Results
    page counts the four verdicts first and links each claim to its entry."""
    import re

    from ntknb.claims import bib_keys

    keys = bib_keys()
    for page in CHAPTERS:
        text = (built_html / f"{page}.html").read_text()
        assert '<table class="ntknb-claims">' not in text, page
        assert text.count('class="ntknb-claim"') >= 1 and "this chapter tests" in text, page
        facts = re.findall(r'<div class="ntknb-claim-facts">(.*?)</div>', text)
        assert facts and not any(k in f for f in facts for k in keys), page  # no raw bib keys
        assert "inf]" not in text and "[-∞, ∞]" not in text, page
    results = (built_html / "book" / "results.html").read_text()
    assert results.index("ntknb-v-not_testable") < re.search(r"<h2>\d", results).start()  # the counts come first
    for href in re.findall(r'<a href="(\.\./notebooks/[^"#]+\.html)#(claim-[^"]+)">evidence</a>', results):
        assert f'id="{href[1]}"' in (built_html / "book" / href[0]).read_text(), href


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
def test_verdicts_are_the_first_view_at_any_width(built_html, width):
    """In headless Chromium at 1280 px and 390 px: every claim's verdict badge comes first in its
    entry and lies inside the screen, the claims blocks do not overflow sideways, entries stay
    short, and the Results page shows a verdict within its first screen."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): browser check not run")
    layout = claims_layout(built_html, [*CHAPTERS, "book/results"], width, CHROMIUM)
    assert set(layout) == {*CHAPTERS, "book/results"}, f"pages that did not report: {set(CHAPTERS) - set(layout)}"
    for page in CHAPTERS:
        lay = layout[page]
        assert lay["claims"], page
        assert lay["right"] <= lay["vw"] + 1, f"{page}: the claims block overflows ({lay['right']} > {lay['vw']} px)"
        for c in lay["claims"]:
            left, right, top = c["badge"]
            assert c["badge_first"] and 0 <= left and right <= lay["vw"] and top < 12, (page, c)
            assert c["height"] <= (320 if width < 500 else 220), (page, c)  # short rows
    first = layout["book/results"]["first"]
    assert first is not None and first[2] < (700 if width < 500 else 800), first  # the first screen
