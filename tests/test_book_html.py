"""The built book as a reader sees it: every page parsed (no raw pipe tables, no Python reprs
or other last-expression outputs, no unrendered glue, no missing or repeated images, nothing
loaded from the network), and loaded offline in headless Chromium (math rendered by the bundled
MathJax, no console error), with a screenshot of each page kept as an artifact.

At 1280 px and 390 px in Chromium (issue 30): verdicts first (item 1); no page scrolls sideways,
every figure's smallest text at least 8 px as drawn, with a caption, openable full size (item
4); no machine path, progress bar or test block on a page, nor a machine path, progress bar or
font warning in a stored notebook's outputs (item 5).

One test per page, so the report says which pages are clean. The book is built once for the
module (about 30 s). Screenshots go to ``$NTKNB_ARTIFACTS/screenshots`` (default
``_build/screenshots``). The browser checks skip, saying why, where Chromium is missing
(Debian: ``apt-get install chromium``).
"""

import os
import shutil
from pathlib import Path

import pytest

from ntknb import paths
from ntknb.book.build import STATIC_DIR, build
from ntknb.book.html import browser_check, html_problems
from ntknb.book.sync import toc_files

PAGES = toc_files(paths.REPO_ROOT)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def built_html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    # Sphinx warnings do not stop this build (test_book.py builds with -W): one page's warning
    # must not hide the other pages' reports.
    code = build(path_output=out, fresh=True, warnings_as_errors=False)
    assert code == 0, "the book build failed; see the captured output"
    return out / "_build" / "html"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly(built_html, page):
    problems = html_problems(built_html, [page])[page]
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_in_a_browser_offline(built_html, page):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): browser check not run")
    shots = Path(os.environ.get("NTKNB_ARTIFACTS", paths.REPO_ROOT / "_build")) / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"{page.replace('/', '__')}.png"
    problems = browser_check(built_html, page, screenshot=shot, chromium=CHROMIUM)
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
    return html_problems(tmp_path, ["p"])["p"]


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
    problems = browser_check(tmp_path, "bad", chromium=CHROMIUM, timeout=60)
    assert any("boom" in p for p in problems) and any("undefinedFn" in p for p in problems)
    assert any(p.startswith("math not rendered") for p in problems)


# ------------------------------------------------ what a reader sees at 390 px and 1280 px (issue 30)

CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]
WIDTHS = (1280, 390)

#: Runs inside each probed page (loaded in an iframe of the wanted width, so the page's media
#: queries see that width) and posts to the wrapper page: the layout of its claims, of every
#: output image (rendered and natural width, caption, its scroll box), whether the page scrolls
#: sideways, whether a click on the first image opens it full size, the rendered text of every
#: output and the whole text of the article (folded code included).
_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var doc = document.documentElement, out = {page: %s, vw: doc.clientWidth, claims: [], first: null, right: 0,
             scroll_width: doc.scrollWidth, figures: [], opens_full: null, outputs: []};
  document.querySelectorAll('.ntknb-claim').forEach(function (el) {
    var r = el.getBoundingClientRect(), b = el.firstElementChild, q = b.getBoundingClientRect();
    out.right = Math.max(out.right, r.right);
    out.claims.push({id: el.id, height: r.height, badge_first: b.classList.contains('ntknb-verdict'),
                     badge: [q.left, q.right, q.top - r.top]});
  });
  var v = document.querySelector('article .ntknb-verdict');
  if (v) { var p = v.getBoundingClientRect(); out.first = [p.left, p.right, p.top + window.scrollY]; }
  var images = document.querySelectorAll('article .cell_output img, article figure img');
  images.forEach(function (img) {
    var r = img.getBoundingClientRect(), fig = img.closest('figure');
    var cap = fig && fig.querySelector('figcaption'), box = img.closest('.ntknb-figure-scroll');
    var b = box ? box.getBoundingClientRect() : null;
    out.figures.push({src: img.getAttribute('src'), natural: img.naturalWidth, width: r.width,
                      caption: cap ? cap.textContent.trim() : '', box: b ? [b.left, b.right] : null});
  });
  if (images.length) {
    images[0].click();
    var link = document.querySelector('.ntknb-lightbox a.ntknb-fullsize');
    out.opens_full = !!link && link.href === images[0].src;
    var box = document.querySelector('.ntknb-lightbox');
    if (box) { box.remove(); }
  }
  document.querySelectorAll('article .cell_output').forEach(function (el) { out.outputs.push(el.innerText); });
  out.article = document.querySelector('article').textContent;
  parent.postMessage(JSON.stringify(out), '*');
}, 2000); });
</script>"""


def page_layout(html_root: Path, pages, width: int, chromium: str) -> dict:
    """``{page: layout}`` of each page at ``width`` px (:data:`_PROBE`), in one headless Chromium
    run (each page in an iframe of that width; offline)."""
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


@pytest.fixture(scope="module")
def layouts(built_html):
    """``width -> {page: layout}`` of every chapter and the Results page, one Chromium run per
    width, made when a test first asks for that width."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): browser check not run")
    cache = {}

    def at(width: int) -> dict:
        if width not in cache:
            cache[width] = page_layout(built_html, [*CHAPTERS, "book/results"], width, CHROMIUM)
            missing = {*CHAPTERS, "book/results"} - set(cache[width])
            assert not missing, f"pages that did not report at {width} px: {sorted(missing)}"
        return cache[width]

    return at


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
@pytest.mark.parametrize("width", WIDTHS)
def test_verdicts_are_the_first_view_at_any_width(layouts, width):
    """In headless Chromium at 1280 px and 390 px: every claim's verdict badge comes first in its
    entry and lies inside the screen, the claims blocks do not overflow sideways, entries stay
    short, and the Results page shows a verdict within its first screen."""
    layout = layouts(width)
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


# ---------------------------------------------------------- phones and figures (issue 30, item 4)

#: Smallest text of a book figure in CSS pixels, at the width the reader sees it.
MIN_TEXT_PX = 8.0


def natural_text_px() -> float:
    """Height in pixels of a figure's smallest text at the image's natural width: every figure is
    saved at ``STYLE["savefig.dpi"]`` with no text below ``MIN_FONT_SIZE`` points."""
    from ntknb import plotting

    return plotting.MIN_FONT_SIZE * plotting.STYLE["savefig.dpi"] / 72


def test_figure_constants_of_the_book_script_match_the_plotting_style():
    """ntknb.js sizes figures from the font floor and dpi of ntknb.plotting: the same numbers."""
    import re

    from ntknb import plotting

    js = (STATIC_DIR / "ntknb.js").read_text()
    m = re.search(r"var NTKNB_FIGURE = \{minFontPt: ([\d.]+), dpi: ([\d.]+), minTextPx: ([\d.]+)\}", js)
    assert m, "ntknb.js declares no NTKNB_FIGURE"
    assert float(m[1]) == plotting.MIN_FONT_SIZE
    assert float(m[2]) == plotting.STYLE["savefig.dpi"] == plotting.STYLE["figure.dpi"]
    assert float(m[3]) == MIN_TEXT_PX


def png_dpi(path: Path) -> float | None:
    """Resolution of a PNG from its pHYs chunk (dots per inch), ``None`` without one."""
    import struct

    data = path.read_bytes()
    at = data.find(b"pHYs")
    if at < 0:
        return None
    per_metre, _, unit = struct.unpack(">IIB", data[at + 4:at + 13])
    return per_metre * 0.0254 if unit == 1 else None


def figure_problems(lay: dict, html_root: Path, page: str) -> list[str]:
    """What a reader of ``page`` at ``lay["vw"]`` px misses: a page that scrolls sideways, a figure
    whose smallest text is drawn below :data:`MIN_TEXT_PX`, one outside the screen, one without a
    caption, one saved at another dpi than the one its text size assumes, a first figure that
    does not open full size."""
    from ntknb import plotting

    problems, vw = [], lay["vw"]
    if lay["scroll_width"] > vw + 1:
        problems.append(f"the page scrolls sideways ({lay['scroll_width']} > {vw} px)")
    for i, f in enumerate(lay["figures"]):
        name = f"{i + 1} ({f['src'].rsplit('/', 1)[-1][:12]})"
        text = f["width"] / f["natural"] * natural_text_px() if f["natural"] else 0.0
        if text < MIN_TEXT_PX - 0.01:
            problems.append(f"figure {name}: smallest text {text:.1f} px (drawn {f['width']:.0f} of {f['natural']} px)")
        if f["box"] is None or f["box"][0] < -1 or f["box"][1] > vw + 1:
            problems.append(f"figure {name}: its box is outside the screen ({f['box']})")
        if not f["caption"]:
            problems.append(f"figure {name}: no caption")
        dpi = png_dpi((html_root / page).parent / f["src"])
        if dpi is None or abs(dpi - plotting.STYLE["savefig.dpi"]) > 0.5:
            problems.append(f"figure {name}: saved at {dpi} dpi, not {plotting.STYLE['savefig.dpi']}")
    if lay["figures"] and not lay["opens_full"]:
        problems.append("a click on the first figure does not offer the image at full size")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_figures_readable_captioned_and_no_page_scrolls_sideways(layouts, built_html, width):
    """In headless Chromium at 1280 px and 390 px: no chapter page scrolls sideways; every figure's
    smallest text is at least 8 px as drawn (drawn width / natural width x natural text size),
    inside the screen (a wide figure scrolls in its own box), with a caption; a click opens the
    image full size."""
    layout = layouts(width)
    report = {page: figure_problems(layout[page], built_html, f"{page}.html") for page in CHAPTERS}
    assert sum(len(layout[p]["figures"]) for p in CHAPTERS) >= len(CHAPTERS)  # the probe saw the figures
    bad = {page: problems for page, problems in report.items() if problems}
    assert not bad, "\n".join(f"{page}:\n  " + "\n  ".join(problems) for page, problems in bad.items())


def test_figure_check_finds_each_defect(tmp_path):
    """The check above can fail: a page too wide, small text, a figure off-screen or without a
    caption, a PNG at another dpi, no full-size view."""
    import base64

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    (tmp_path / "plain.png").write_bytes(png)  # no pHYs chunk
    good = {"src": "plain.png", "natural": 980, "width": 980 * 0.7, "caption": "A caption.", "box": [10, 380]}
    lay = {"vw": 390, "scroll_width": 390, "opens_full": True, "figures": [good]}
    assert [p for p in figure_problems(lay, tmp_path, "p.html") if "dpi" not in p] == []
    cases = [({"scroll_width": 600}, "the page scrolls sideways"), ({"figures": [{**good, "width": 350}]}, "smallest text"),
             ({"figures": [{**good, "box": [10, 700]}]}, "outside the screen"), ({"figures": [{**good, "caption": ""}]},
             "no caption"), ({}, "saved at None dpi"), ({"opens_full": False}, "full size")]
    for change, expected in cases:
        problems = figure_problems({**lay, **change}, tmp_path, "p.html")
        assert any(expected in p for p in problems), (change, problems)


# -------------------------------------------------------- code presentation (issue 30, item 5)

#: What no output may show, with what it is: the build machine's paths, progress bars (tqdm's
#: rate and bar), matplotlib's font-lookup warnings. A URL's path is not a machine path.
STORED_OUTPUT_DEFECTS = {
    "machine path": r"(?<![\w.:/-])/(?:work|home|tmp|Users)/[^\s'\"]*",
    "progress bar": r"\d(?:\.\d+)?\s?(?:it/s|s/it)\b|\d%\|",
    "font warning": r"findfont: |Font family \[.*\] not found",
}
#: What no page may show anywhere, code and prose included: a test block (the nbval headline
#: cell, its marker, pytest output).
TEST_BLOCK = {"test block": r"Headline numbers|NBVAL_|=+ test session starts =+|=+ .*\b\d+ (?:passed|failed)\b.* in [\d.]+s"}
PAGE_DEFECTS = {**STORED_OUTPUT_DEFECTS, **TEST_BLOCK}


def output_defects(texts, patterns: dict) -> list[str]:
    """``"<kind>: <first match>"`` for each kind of ``patterns`` found in ``texts``."""
    import re

    found = []
    for kind, pattern in patterns.items():
        for t in texts:
            m = re.search(pattern, t)
            if m:
                found.append(f"{kind}: {m.group(0)[:80]!r}")
                break
    return found


def stored_output_texts(ipynb: Path) -> list[str]:
    """The text of every output stored in a notebook, removed cells' included (JupyterLab shows
    them): streams, and every text-like representation of display data and results."""
    import json

    texts = []
    for cell in json.loads(ipynb.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                texts.append("".join(out["text"]))
            if out["output_type"] == "error":
                texts.append("\n".join(out.get("traceback", [])))
            for mime, data in out.get("data", {}).items():
                if "text/" in mime or mime.endswith("json"):
                    texts.append("".join(data) if isinstance(data, list) else str(data))
    return texts


@pytest.mark.parametrize("chapter", [p.split("/", 1)[1] for p in CHAPTERS])
def test_stored_outputs_show_no_machine_path_progress_bar_or_font_warning(chapter):
    """Opened in JupyterLab, a chapter's stored outputs show no path of the machine that ran it,
    no progress bar and no font warning."""
    found = output_defects(stored_output_texts(paths.REPO_ROOT / "notebooks" / f"{chapter}.ipynb"), STORED_OUTPUT_DEFECTS)
    assert not found, f"{chapter}.ipynb (re-execute it at its defaults): " + "; ".join(found)


@pytest.mark.slow
def test_pages_show_no_machine_path_progress_bar_or_test_block(layouts):
    """In headless Chromium at 390 px, the outputs a chapter page shows (their rendered text)
    hold no machine path, progress bar, font warning or test block, and no test block stands
    anywhere else on the page (a heading, a folded code cell)."""
    layout = layouts(390)
    bad = {page: found for page in CHAPTERS
           if (found := output_defects(layout[page]["outputs"], PAGE_DEFECTS)
               + output_defects([layout[page]["article"]], TEST_BLOCK))}
    assert not bad, "\n".join(f"{page}: " + "; ".join(found) for page, found in bad.items())


@pytest.mark.parametrize("text, expected", [
    ("data: /work/shared/data/mnist (sha256 ...)", "machine path"), ("cached in /home/me/.cache/x", "machine path"),
    ("'/Users/ana/ntknb/notebooks'", "machine path"), ("from /tmp/ntknb-1234/f.npz", "machine path"),
    ("100%|##########| 15/15 [00:03<00:00,  4.71it/s]", "progress bar"), ("3.2s/it", "progress bar"),
    ("findfont: Font family ['STIXGeneral'] not found.", "font warning"),
    ("Headline numbers\n  slope -0.4", "test block"), ("===== 3 passed in 1.20s =====", "test block"),
    ("# NBVAL_CHECK_OUTPUT", "test block"),
])
def test_output_check_finds_each_defect(text, expected):
    assert [f.split(":")[0] for f in output_defects([text], PAGE_DEFECTS)] == [expected]


@pytest.mark.parametrize("text", [
    "data: mnist, from https://example.org/home/tmp/mnist.npz (local copy mnist)", "accuracy 0.91 (95 % CI)",
    "rate 0.5 per step", "3 of 3 checks passed", "notebooks/data/gpu/cifar10_search.jsonl",
])
def test_output_check_passes_clean_text(text):
    assert output_defects([text], PAGE_DEFECTS) == []
