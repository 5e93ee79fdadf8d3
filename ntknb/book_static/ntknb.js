// ntknb book: click an output image or figure to see it full size (no network, no library).
document.addEventListener("DOMContentLoaded", function () {
  var images = document.querySelectorAll(".cell_output img, figure img");
  images.forEach(function (img) {
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
