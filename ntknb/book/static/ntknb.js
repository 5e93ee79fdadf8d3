// ntknb book: figures readable at any width, and openable full size (no network, no library).

// Every figure of the book is a PNG saved at NTKNB_FIGURE.dpi whose smallest text is
// NTKNB_FIGURE.minFontPt points (ntknb.plotting: STYLE["savefig.dpi"], MIN_FONT_SIZE;
// tests/test_book_html.py checks that the numbers agree), so that text is naturalTextPx pixels
// high at the image's natural width. A figure is never drawn narrower than the fraction of its
// natural width that keeps that text at minTextPx CSS pixels; where the column is narrower (a
// phone), the figure scrolls sideways inside its own box, and the page does not.
var NTKNB_FIGURE = {minFontPt: 8, dpi: 110, minTextPx: 8};
NTKNB_FIGURE.naturalTextPx = NTKNB_FIGURE.minFontPt * NTKNB_FIGURE.dpi / 72;

function ntknbReadableWidth(img) {
  var box = img.closest(".ntknb-figure-scroll");
  var apply = function () {
    if (!img.naturalWidth) { return; }
    img.style.minWidth = Math.ceil(img.naturalWidth * NTKNB_FIGURE.minTextPx / NTKNB_FIGURE.naturalTextPx) + "px";
    ntknbScrollHint(box);
  };
  if (img.complete) { apply(); } else { img.addEventListener("load", apply); }
}

// Under a figure wider than its box, a line says so (shown only while the box scrolls).
function ntknbScrollHint(box) {
  if (!box) { return; }
  var scrolls = box.scrollWidth > box.clientWidth + 1;
  box.classList.toggle("ntknb-scrolls", scrolls);
}

// Each output image or figure: in its scroll box, at a readable width; a click opens it full size.
document.addEventListener("DOMContentLoaded", function () {
  var images = document.querySelectorAll(".cell_output img, figure img");
  images.forEach(function (img) {
    var scroller = document.createElement("div");
    scroller.className = "ntknb-figure-scroll";
    img.parentNode.insertBefore(scroller, img);
    scroller.appendChild(img);
    var hint = document.createElement("div");
    hint.className = "ntknb-scroll-hint";
    hint.textContent = "Scroll sideways to see the whole figure, or tap it to open it full size.";
    scroller.after(hint);
    ntknbReadableWidth(img);
    img.classList.add("ntknb-zoomable");
    img.setAttribute("title", "Click to enlarge");
    img.addEventListener("click", function (event) {
      event.preventDefault();
      var box = document.createElement("div");
      box.className = "ntknb-lightbox";
      var big = document.createElement("img");
      big.src = img.currentSrc || img.src;
      big.alt = img.alt || "";
      // The image itself, at its full resolution, in a tab of its own (zoom there on a phone).
      var full = document.createElement("a");
      full.href = big.src;
      full.target = "_blank";
      full.className = "ntknb-fullsize";
      full.textContent = "Open the image at full size";
      full.addEventListener("click", function (e) { e.stopPropagation(); });
      box.appendChild(big);
      box.appendChild(full);
      box.addEventListener("click", function () { box.remove(); });
      document.addEventListener("keydown", function onKey(e) {
        if (e.key === "Escape") { box.remove(); document.removeEventListener("keydown", onKey); }
      });
      document.body.appendChild(box);
    });
  });
  window.addEventListener("resize", function () {
    document.querySelectorAll(".ntknb-figure-scroll").forEach(ntknbScrollHint);
  });
});

// A chapter's download menu also offers its py:percent source (NAME.py, which the build copies
// to the book's root: html_extra_path in _config.yml) beside the executed .ipynb.
document.addEventListener("DOMContentLoaded", function () {
  var ipynb = document.querySelector(".dropdown-download-buttons a.btn-download-source-button");
  var match = ipynb && ipynb.getAttribute("href").match(/_sources\/notebooks\/([\w-]+)\.ipynb$/);
  if (!match) { return; }
  var root = document.documentElement.dataset.content_root || "";
  var item = ipynb.closest("li").cloneNode(true);
  var link = item.querySelector("a");
  link.setAttribute("href", root + match[1] + ".py");
  link.setAttribute("title", "Download the py:percent source");
  link.setAttribute("download", match[1] + ".py");
  link.querySelector(".btn__text-container").textContent = ".py";
  ipynb.closest("li").after(item);
});

// References: label each entry as the text cites it, author-year ("Dong et al., 2022"), not with
// pybtex's alphabetic label ("DXY+22"); sphinxcontrib-bibtex 2.7 has no author-year label style.
// The label is the text of a parenthetical citation of the entry on this page, or else it is
// built from the entry (first author's last name, "and" / "et al.", the year).
function ntknbAuthorYear(text) {
  var authors = text.split(". ")[0].split(/, and |, | and /);
  var surname = function (name) {  // the last name with its particles ("de Jorge")
    var words = name.trim().split(/\s+/), i = words.length - 1;
    while (i > 1 && /^[a-z]/.test(words[i - 1])) { i--; }
    return words.slice(i).join(" ");
  };
  var years = text.match(/\. (19|20)\d\d\./g) || text.match(/\b(19|20)\d\d\b/g);
  var year = years ? years[years.length - 1].replace(/[^0-9]/g, "") : "n.d.";
  var who = authors.length === 1 ? surname(authors[0]) :
    authors.length === 2 ? surname(authors[0]) + " and " + surname(authors[1]) : surname(authors[0]) + " et al.";
  return who + ", " + year;
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".citation-list .citation").forEach(function (entry) {
    var label = entry.querySelector(".label");
    var body = entry.querySelector("p");
    if (!label || !body) { return; }
    var text = ntknbAuthorYear(body.textContent);
    label.querySelectorAll("a[role='doc-backlink']").forEach(function (back) {
      var cited = document.getElementById(back.getAttribute("href").slice(1));
      var citing = cited && cited.querySelector("a[href='#" + entry.id + "']");
      if (citing && /[A-Za-z]/.test(citing.textContent)) { text = citing.textContent.trim(); }
    });
    var key = label.querySelector(":scope > a[role='doc-backlink']") ||
      Array.prototype.find.call(label.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
    if (key) { key.textContent = text; }
  });
});
