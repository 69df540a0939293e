// Case page: keep the slide list current while files are inspected and tiled.
// Rows are updated in place (never a page reload) so uploads in progress are not interrupted.
(function () {
  "use strict";
  var card = document.getElementById("slides-card");
  if (!card) { return; }
  var url = card.getAttribute("data-slides-url");
  var viewerUrl = card.getAttribute("data-viewer-url");
  var labels = JSON.parse(card.getAttribute("data-labels") || "{}");
  var tbody = document.getElementById("slide-rows");
  var timer = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function progressText(s) {
    var p = s.progress || {};
    if (s.waiting_for_storage) { return s.waiting_for_storage.message; }
    if (s.status !== "tiling" || !p.tiles_total) { return ""; }
    var pct = Math.floor(100 * p.tiles_done / p.tiles_total);
    var eta = p.eta_seconds ? " · ~" + Math.ceil(p.eta_seconds) + " s" : "";
    return pct + "% (" + p.tiles_done + "/" + p.tiles_total + ")" + eta;
  }

  function row(s) {
    var tr = el("tr");
    tr.setAttribute("data-slide-id", s.id);
    tr.appendChild(el("td", null, s.label));
    tr.appendChild(el("td", null, s.stain));
    tr.appendChild(el("td", null, s.filename));
    var status = el("td");
    var badge = el("span", "badge badge-" + s.status,
                   s.waiting_for_storage ? labels.waiting_storage : (labels[s.status] || s.status));
    badge.setAttribute("data-role", "status");
    status.appendChild(badge);
    var prog = el("span", "muted", " " + progressText(s));
    prog.setAttribute("data-role", "progress");
    status.appendChild(prog);
    if (s.reject_message) {
      var reason = el("div", "reject", s.reject_message);
      reason.setAttribute("data-role", "reason");
      status.appendChild(reason);
    }
    tr.appendChild(status);
    var quality = el("td");
    quality.setAttribute("data-role", "quality");
    ((s.quality && s.quality.warnings) || []).forEach(function (w) {
      quality.appendChild(el("div", "warn", "⚠ " + (labels[w.code] || w.message)));
    });
    tr.appendChild(quality);
    var action = el("td");
    if (s.status === "ready" || s.status === "tiling") {
      var a = el("a", null, labels.view || "View");
      a.href = viewerUrl + "?slide=" + s.id;
      action.appendChild(a);
    } else if (s.retry_url) {
      action.appendChild(retryForm(s.retry_url));
    }
    tr.appendChild(action);
    return tr;
  }

  // A plain form post (CSRF token from the page), as the server-rendered row has.
  function retryForm(action) {
    var form = el("form");
    form.method = "post";
    form.action = action.replace("/api/v1/slides/", "/slides/");
    form.setAttribute("data-role", "retry");
    var token = el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    var meta = document.querySelector('meta[name="csrf-token"]');
    token.value = meta ? meta.getAttribute("content") : "";
    form.appendChild(token);
    var button = el("button", "button", labels.retry || "Retry");
    button.type = "submit";
    button.setAttribute("data-testid", "retry-slide");
    form.appendChild(button);
    return form;
  }

  function render(data) {
    if (data.slides.length) {
      var rows = document.createDocumentFragment();
      data.slides.forEach(function (s) { rows.appendChild(row(s)); });
      tbody.textContent = "";
      tbody.appendChild(rows);
    }
    var box = document.getElementById("failed-uploads");
    if (box) {
      box.textContent = "";
      data.uploads.filter(function (u) { return u.state === "failed"; }).forEach(function (u) {
        var div = el("div", "flash flash-error", u.filename + ": " + (u.error_message || u.error_code));
        div.setAttribute("data-testid", "upload-error");
        box.appendChild(div);
      });
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { schedule(10000); return; }
        render(data);
        var busy = data.slides.some(function (s) { return s.status === "inspecting" || s.status === "tiling"; });
        schedule(busy ? 2000 : 10000);
      })
      .catch(function () { schedule(10000); });
  }

  function schedule(ms) { clearTimeout(timer); timer = setTimeout(poll, ms); }
  document.addEventListener("upload:complete", function () { schedule(500); });
  poll();
})();
