"""Checks of the built book: each page's rendering problems (``check-html``) and a page loaded
in headless Chromium offline (console errors, math left as raw TeX)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ntknb import paths
from ntknb.book.sync import toc_files

__all__ = ["html_problems", "browser_check"]

#: Text of a pipe table that was not rendered as a table (a rule row such as ``| :-- | --: |``).
_RAW_PIPE_TABLE = re.compile(r"\|\s*:?-{2,}:?\s*\|")
#: Python reprs that leaked into the page (a cell's last expression).
_REPR = re.compile(r"<(matplotlib\.[\w.]+|Axes\b|Figure size|IPython\.core\.[\w.]+|[\w.]+ (object )?at 0x[0-9a-f]+)")
_GLUE_LEFTOVER = re.compile(r"\{glue(:\w+)?\}")


def _page_problems(path: Path, html_root: Path) -> list[str]:
    from bs4 import BeautifulSoup

    raw = path.read_bytes()
    problems = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # report it, and check the rest of the page anyway
        problems.append(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
        text = raw.decode("utf-8", errors="replace")
    soup = BeautifulSoup(text, "html.parser")
    main_ = soup.find("main") or soup
    for tag in soup.find_all("script"):
        src = tag.get("src") or ""
        if src.startswith(("http:", "https:", "//")):
            problems.append(f"script loaded from the network: {src}")
    for tag in soup.find_all("link", rel="stylesheet"):
        href = tag.get("href") or ""
        if href.startswith(("http:", "https:", "//")):
            problems.append(f"stylesheet loaded from the network: {href}")
    for tag in main_.find_all(["p", "div", "td", "li"]):
        if tag.find(["pre", "code"]) is not None and tag.name == "div":
            continue
        text = tag.get_text(" ", strip=True)
        if tag.name == "p" and _RAW_PIPE_TABLE.search(text):
            problems.append(f"raw pipe table: {text[:80]!r}")
    for out in main_.select("div.cell_output"):
        text = out.get_text(" ", strip=True)
        m = _REPR.search(text)
        if m:
            problems.append(f"repr output: {m.group(0)!r}")
        for plain in out.select("div.output.text_plain"):
            problems.append(f"last-expression output: {plain.get_text(' ', strip=True)[:60]!r}")
    prose = BeautifulSoup(str(main_), "html.parser")  # the text outside code
    for tag in prose.find_all(["pre", "code"]) + prose.select("dt.sig"):  # code, API signatures
        tag.decompose()
    body_text = prose.get_text(" ", strip=True)
    for m in _GLUE_LEFTOVER.finditer(body_text):
        problems.append(f"unrendered glue: {body_text[max(0, m.start() - 30):m.end() + 30]!r}")
    for m in re.finditer(r"\bnan\b", body_text):  # a missing number printed as a value
        problems.append(f"nan in the text: {body_text[max(0, m.start() - 40):m.end() + 20]!r}")
    seen: dict[str, int] = {}
    for img in main_.find_all("img"):
        src = img.get("src") or ""
        if not src.startswith("data:"):
            target = (path.parent / src.split("?")[0].split("#")[0]).resolve()
            if not target.is_file():
                problems.append(f"missing image: {src}")
                continue
            key = target.name
        else:
            key = src[:200]
        seen[key] = seen.get(key, 0) + 1
    problems += [f"image shown {n} times: {k}" for k, n in seen.items() if n > 1]
    # the same figure stored twice under different names (e.g. pasted and shown by the cell)
    digests: dict[str, list[str]] = {}
    for img in main_.find_all("img"):
        src = (img.get("src") or "").split("?")[0]
        target = (path.parent / src).resolve()
        if not src.startswith("data:") and target.is_file():
            digests.setdefault(hashlib.sha1(target.read_bytes()).hexdigest(), []).append(src)
    problems += [f"same image under {len(v)} names: {', '.join(v)}" for v in digests.values()
                 if len(set(v)) > 1]
    return problems


def html_problems(html_root: str | os.PathLike, pages: Sequence[str] | None = None,
                  root: str | os.PathLike = paths.REPO_ROOT) -> dict[str, list[str]]:
    """``{page: [problem, ...]}`` for the built HTML book in ``html_root`` (pages: docnames, default
    every page of the table of contents of the book in ``root``): raw pipe tables, Python reprs and
    other last-expression outputs, unrendered glue, ``nan`` in the text, missing images, an image
    shown twice, scripts or stylesheets loaded from the network, a page that is not UTF-8. An empty
    list means the page is clean."""
    html_root = Path(html_root)
    pages = list(pages) if pages is not None else toc_files(root)
    out = {}
    for page in pages:
        path = html_root / f"{page}.html"
        out[page] = _page_problems(path, html_root) if path.is_file() else [f"page not built: {path}"]
    return out


#: Console messages of the theme that are information, not errors.
_BENIGN_CONSOLE = ("[PST]", "Got invalid theme mode", "[togglebutton]")


def browser_check(html_root: str | os.PathLike, page: str, screenshot: str | os.PathLike | None = None,
                  chromium: str = "chromium", width: int = 1280, timeout: float = 60.0) -> list[str]:
    """Load ``page`` of the built book in headless Chromium with every network name unresolvable
    (offline) and return the problems: console messages (other than the theme's information
    messages), and display math left as raw TeX (no MathJax output while the page has math).
    Saves a screenshot to ``screenshot`` when given. Raises ``FileNotFoundError`` when
    ``chromium`` is not installed."""
    exe = shutil.which(chromium)
    if exe is None:
        raise FileNotFoundError(f"{chromium} not found (Debian: apt-get install chromium)")
    url = (Path(html_root) / f"{page}.html").resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="ntknb-chromium-") as profile:
        base = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", f"--user-data-dir={profile}",
                '--host-resolver-rules=MAP * ~NOTFOUND', "--enable-logging=stderr", "--v=0",
                "--virtual-time-budget=6000", f"--window-size={width},1600"]
        if screenshot is not None:
            base.append(f"--screenshot={Path(screenshot).resolve()}")
        proc = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    problems = []
    for line in proc.stderr.splitlines():
        if ":CONSOLE" in line:
            msg = line.split("] ", 1)[-1]
            if not any(b in msg for b in _BENIGN_CONSOLE):
                problems.append(f"console: {msg[:200]}")
    dom = proc.stdout
    n_math = len(re.findall(r'class="math[ "]', dom))
    n_rendered = dom.count("<mjx-container")
    if n_math and n_rendered == 0:
        problems.append(f"math not rendered: {n_math} math elements, no MathJax output")
    if "<mjx-merror" in dom:
        problems.append("MathJax error in an expression (mjx-merror)")
    return problems
