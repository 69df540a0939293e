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

  function fill(template, key, value) { return String(template || "").replace("{" + key + "}", value); }

  function row(s) {
    var tr = el("tr");
    tr.setAttribute("data-slide-id", s.id);
    tr.id = "slide-" + s.id;
    var name = el("td", null, s.label);
    if (s.block_label) {
      var block = el("div", "muted", (labels.block || "Block") + " " + s.block_label);
      block.setAttribute("data-role", "block");
      name.appendChild(block);
    }
    tr.appendChild(name);
    var stain = el("td", null, s.stain_display || s.stain);
    stain.setAttribute("data-role", "stain");
    tr.appendChild(stain);
    var file = el("td", null, s.filename);
    if (s.content_label) {  // photograph / small image / fluorescence, as the file itself says
      var content = el("div", "muted", s.content_label);
      content.setAttribute("data-role", "content");
      file.appendChild(content);
    }
    tr.appendChild(file);
    var status = el("td");
    // A preview-only slide is "inspecting" only in the sense that its original has not arrived yet.
    var statusText = s.preview && s.status === "inspecting" ? labels.receiving : (labels[s.status] || s.status);
    var badge = el("span", "badge badge-" + s.status, s.waiting_for_storage ? labels.waiting_storage : statusText);
    badge.setAttribute("data-role", "status");
    status.appendChild(badge);
    if (s.preview) {  // only the uploader's coarse levels so far (issue #21)
      var pv = el("div");
      var pb = el("span", "badge badge-preview", labels.preview || "Preview");
      pb.setAttribute("data-role", "preview");
      pv.appendChild(pb);
      status.appendChild(pv);
    }
    var prog = el("span", "muted", " " + progressText(s));
    prog.setAttribute("data-role", "progress");
    status.appendChild(prog);
    if (s.reject_code) {
      var text = s.status === "rejected" ? fill(labels.rejectedReason, "reason", s.reason || s.reject_code)
        : (s.reason || s.reject_code);
      var reason = el("div", "reject", text);
      reason.setAttribute("data-role", "reason");
      if (s.reject_detail) {  // what was found and what to do, in the user's language
        var detail = el("div", "reject-detail", s.reject_detail);
        detail.setAttribute("data-role", "reject-detail");
        reason.appendChild(detail);
      } else if (s.reject_message) {
        reason.title = s.reject_message;
        // the detailed message exists in English only: a tooltip everywhere, shown inline in English
        if (labels.showDetail) { reason.appendChild(el("span", "muted", " (" + s.reject_message + ")")); }
      }
      status.appendChild(reason);
    }
    if (s.duplicate_of && s.duplicate_of.length) {
      var dup = el("div", "warn", "⚠ " + fill(labels.duplicateOf, "labels",
        s.duplicate_of.map(function (d) { return d.label; }).join(", ")));
      dup.setAttribute("data-role", "duplicate");
      status.appendChild(dup);
    }
    tr.appendChild(status);
    var quality = el("td");
    quality.setAttribute("data-role", "quality");
    ((s.quality && s.quality.warnings) || []).forEach(function (w) {
      var qtext = labels[w.code] || w.message;
      Object.keys(w.values || {}).forEach(function (k) {  // "{mpp}" -> 352.8
        qtext = qtext.replace("{" + k + "}", String(Number(w.values[k].toPrecision(4))));
      });
      quality.appendChild(el("div", "warn", "⚠ " + qtext));
    });
    tr.appendChild(quality);
    var action = el("td", "slide-actions");
    if (s.status === "ready" || s.status === "tiling" || s.preview) {
      var a = el("a", null, labels.view || "View");
      a.href = viewerUrl + "?slide=" + s.id;
      action.appendChild(a);
      if (s.dicom_url) {
        var d = el("a", null, labels.dicom || "DICOM (zip)");
        d.href = s.dicom_url;
        d.setAttribute("download", "");
        d.setAttribute("data-testid", "download-dicom-" + s.id);
        d.title = labels.dicomTitle || "";
        action.appendChild(document.createTextNode(" "));
        action.appendChild(d);
      }
    } else if (s.retry_url) {
      action.appendChild(retryForm(s.retry_url));
    }
    var actions = s.actions || {};
    if (actions.edit) { action.appendChild(button("edit", "small", labels.edit, s.id)); }
    if (actions.withdraw) { action.appendChild(button("withdraw", "small danger", labels.withdraw, s.id)); }
    tr.appendChild(action);
    return tr;
  }

  function button(kind, cls, text, id) {
    var b = el("button", cls, text);
    b.type = "button";
    b.setAttribute("data-action", kind);
    b.setAttribute("data-testid", kind + "-slide-" + id);
    return b;
  }

  // ---- dialogs: withdraw (with confirmation) and the stain/block editor
  var slidesById = {};
  var withdrawUrl = card.getAttribute("data-withdraw-url");
  var factsUrl = card.getAttribute("data-facts-url");

  function actionUrl(template, id) { return template.replace(/\/0\/(withdraw|facts)$/, "/" + id + "/$1"); }

  function openDialog(id, slide) {
    var dialog = document.getElementById(id);
    if (!dialog || typeof dialog.showModal !== "function") { return null; }
    dialog.querySelectorAll("[data-role=slide-name]").forEach(function (n) {
      n.textContent = slide.label + (slide.filename ? " (" + slide.filename + ")" : "");
    });
    dialog.showModal();
    return dialog;
  }

  try {
    JSON.parse((document.getElementById("slides-json") || {}).textContent || "[]").forEach(function (s) {
      slidesById[String(s.id)] = s;
    });
  } catch (e) { /* the first poll fills it */ }

  tbody.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button[data-action]") : null;
    if (!target) { return; }
    var tr = target.closest("tr");
    var slide = slidesById[tr.getAttribute("data-slide-id")];
    if (!slide) { return; }
    var kind = target.getAttribute("data-action");
    if (kind === "withdraw") {
      var form = document.getElementById("withdraw-form");
      form.action = actionUrl(withdrawUrl, slide.id);
      form.elements.reason.value = slide.status === "rejected" && slide.reason
        ? fill(labels.rejectedReason, "reason", slide.reason) : "";
      openDialog("withdraw-dialog", slide);
    } else if (kind === "edit") {
      var facts = document.getElementById("facts-form");
      facts.action = actionUrl(factsUrl, slide.id);
      facts.elements.stain_category.value = slide.stain_category || "he";
      facts.elements.stain.value = slide.stain_name || "";
      facts.elements.block_label.value = slide.block_label || "";
      openDialog("facts-dialog", slide);
      facts.elements.stain_category.focus();
    }
  });
  document.querySelectorAll("dialog [data-action=close]").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("dialog").close(); });
  });

  // A plain form post (CSRF token from the page), as the server-rendered row has.
  function retryForm(action) {
    var form = el("form");
    form.method = "post";
    form.action = action.replace("/api/v1/slides/", "/slides/");
    form.setAttribute("data-role", "retry");
    form.className = "inline-form";
    var token = el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    var meta = document.querySelector('meta[name="csrf-token"]');
    token.value = meta ? meta.getAttribute("content") : "";
    form.appendChild(token);
    var button = el("button", "small", labels.retry || "Retry");
    button.type = "submit";
    button.setAttribute("data-testid", "retry-slide");
    form.appendChild(button);
    return form;
  }

  function render(data) {
    slidesById = {};
    data.slides.forEach(function (s) { slidesById[String(s.id)] = s; });
    if (document.querySelector("dialog[open]")) { return; }  // never redraw under an open dialog
    if (data.slides.length) {
      var rows = document.createDocumentFragment();
      data.slides.forEach(function (s) { rows.appendChild(row(s)); });
      tbody.textContent = "";
      tbody.appendChild(rows);
    } else if (tbody.querySelector("tr[data-slide-id]")) {
      tbody.textContent = "";  // the last slide was withdrawn elsewhere
    }
    var box = document.getElementById("failed-uploads");
    if (box) {
      box.textContent = "";
      data.uploads.filter(function (u) { return u.state === "failed"; }).forEach(function (u) {
        var div = el("div", "flash flash-error", u.filename + ": " + (u.error_message || u.error_code));
        div.setAttribute("data-testid", "upload-error");
        if (u.error_code && u.error_message) {  // the stable code, small, for support staff
          var code = el("small", "error-code", (labels.errorCode || "Error code") + ": " + u.error_code);
          code.setAttribute("data-testid", "error-code");
          div.appendChild(code);
        }
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
