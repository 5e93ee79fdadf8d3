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
      box.appendChild(big);
      box.addEventListener("click", function () { box.remove(); });
      document.addEventListener("keydown", function onKey(e) {
        if (e.key === "Escape") { box.remove(); document.removeEventListener("keydown", onKey); }
      });
      document.body.appendChild(box);
    });
  });
});
