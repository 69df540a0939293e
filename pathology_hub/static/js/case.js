// Case page: keep the slide list current while files are inspected and tiled.
(function () {
  "use strict";
  var card = document.getElementById("slides-card");
  if (!card) { return; }
  var url = card.getAttribute("data-slides-url");
  var lastSignature = null;
  var timer = null;

  function signature(data) {
    return data.slides.map(function (s) { return s.id + ":" + s.status; }).join(",") +
      "|" + data.uploads.filter(function (u) { return u.state === "failed"; }).length;
  }

  function renderProgress(data) {
    data.slides.forEach(function (s) {
      var row = card.querySelector('tr[data-slide-id="' + s.id + '"]');
      if (!row) { return; }
      var cell = row.querySelector('[data-role="progress"]');
      var p = s.progress || {};
      if (cell && s.status === "tiling" && p.tiles_total) {
        var pct = Math.floor(100 * p.tiles_done / p.tiles_total);
        var eta = p.eta_seconds ? " · ~" + Math.ceil(p.eta_seconds) + " s" : "";
        cell.textContent = pct + "% (" + p.tiles_done + "/" + p.tiles_total + ")" + eta;
      }
    });
    var box = document.getElementById("failed-uploads");
    if (box) {
      box.textContent = "";
      data.uploads.filter(function (u) { return u.state === "failed"; }).forEach(function (u) {
        var div = document.createElement("div");
        div.className = "flash flash-error";
        div.setAttribute("data-testid", "upload-error");
        div.textContent = u.filename + ": " + (u.error_message || u.error_code);
        box.appendChild(div);
      });
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var sig = signature(data);
        if (lastSignature !== null && sig !== lastSignature) { window.location.reload(); return; }
        lastSignature = sig;
        renderProgress(data);
        var busy = data.slides.some(function (s) { return s.status === "inspecting" || s.status === "tiling"; });
        schedule(busy ? 2000 : 10000);
      })
      .catch(function () { schedule(10000); });
  }

  function schedule(ms) { clearTimeout(timer); timer = setTimeout(poll, ms); }
  document.addEventListener("upload:complete", function () { schedule(500); });
  poll();
})();
