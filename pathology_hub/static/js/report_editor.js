// The report editor beside the viewer: structured fields with autosave (optimistic locking:
// a stale save is refused with 409 and shown, never overwritten), key views captured from the
// current viewer state and rendered on the server, signing with the password, and, once signed,
// the read-only report with its PDF, co-signature and addendum/amendment actions.
(function () {
  "use strict";
  var panel = document.getElementById("report-panel");
  if (!panel) { return; }
  var toggle = document.getElementById("report-toggle");
  var body = document.getElementById("report-body");
  var saveState = document.getElementById("report-save-state");
  var T = JSON.parse((document.getElementById("report-i18n") || {}).textContent || "{}");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var FIELDS = [["specimen", 2], ["gross_description", 2], ["microscopic_description", 6], ["diagnosis", 3],
                ["answer_to_question", 2], ["comment", 2], ["recommendations", 3]];
  var state = { entry: null, report: null, codes: [], dirty: {}, timer: null, saving: false, conflict: false };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function api(method, url, data) {
    var opts = { method: method, headers: { "Accept": "application/json", "X-CSRFToken": csrf },
                 credentials: "same-origin" };
    if (data !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(data); }
    return fetch(url, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (json) {
        return { ok: resp.ok, status: resp.status, json: json };
      });
    });
  }

  function errorText(res) {
    var e = (res.json && res.json.error) || {};
    return e.message || ("HTTP " + res.status);
  }

  /** A message in `node`, with the error's stable code small under it (for support staff). */
  function showError(node, text, res) {
    node.textContent = text || "";
    var e = (res && res.json && res.json.error) || {};
    if (e.code) {
      var small = document.createElement("small");
      small.className = "error-code";
      small.setAttribute("data-testid", "error-code");
      small.textContent = (T.error_code || "Error code") + ": " + e.code;
      node.appendChild(small);
    }
  }

  function setSave(text, cls, res) {
    showError(saveState, text, res);
    saveState.className = cls || "muted";
  }

  function open(show) {
    panel.hidden = !show;
    document.body.classList.toggle("report-open", show);
    if (toggle) { toggle.setAttribute("aria-expanded", show ? "true" : "false"); }
    // OpenSeadragon follows its container's new size on the next resize check
    window.dispatchEvent(new Event("resize"));
  }

  function load() {
    return api("GET", panel.getAttribute("data-reports-url")).then(function (res) {
      if (!res.ok) { return; }
      var items = res.json.consultations || [];
      var pick = items.filter(function (i) { return i.report && i.report.can.edit; })[0]
        || items.filter(function (i) { return i.can_create; })[0]
        || items.filter(function (i) { return i.report; }).slice(-1)[0] || null;
      state.entry = pick;
      state.report = pick ? pick.report : null;
      if (!pick) { return; }
      if (toggle) { toggle.hidden = false; }
      render();
      var editable = pick.can_create || (pick.report && (pick.report.can.edit || pick.report.can.sign));
      if (editable || /[?&]report=1/.test(window.location.search)) { open(true); }
    });
  }

  function replaceReport(json) {
    state.report = json;
    render();
  }

  // ------------------------------------------------------------ rendering
  function render() {
    body.textContent = "";
    var r = state.report;
    if (!r) {
      if (state.entry && state.entry.can_create) {
        var start = el("button", { type: "button", className: "button primary", "data-testid": "report-start" }, T.start);
        start.addEventListener("click", function () {
          start.disabled = true;
          api("POST", "/api/v1/consultations/" + state.entry.consultation_id + "/report", {}).then(function (res) {
            if (res.ok) { replaceReport(res.json); } else { setSave(errorText(res), "report-error", res); start.disabled = false; }
          });
        });
        body.appendChild(start);
      } else {
        body.appendChild(el("p", { className: "muted" }, T.waiting));
      }
      return;
    }
    var v = r.current;
    if (!v) { body.appendChild(el("p", { className: "muted" }, T.waiting)); return; }
    var head = el("p", { className: "report-version-line", "data-testid": "report-version-line" });
    head.appendChild(el("strong", {}, T.version + " " + v.number + " · " + (T["kind_" + v.kind] || v.kind)));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", { className: "badge report-badge-" + v.status, "data-testid": "report-status" },
      T["status_" + v.status] || v.status));
    body.appendChild(head);
    if (v.reason) { body.appendChild(el("p", { className: "muted" }, T.reason + ": " + v.reason)); }
    if (r.question) { body.appendChild(labelled(T.question, r.question)); }
    if (r.preliminary_opinion) { body.appendChild(labelled(T.preliminary, r.preliminary_opinion)); }
    if (v.status === "draft" && r.can.edit) { renderDraft(r, v); } else { renderSigned(r, v); }
  }

  function labelled(label, text) {
    var box = el("div", { className: "report-readonly" });
    box.appendChild(el("div", { className: "report-label" }, label));
    box.appendChild(el("div", { className: "pre" }, text || "—"));
    return box;
  }

  function renderDraft(r, v) {
    var form = el("form", { className: "report-form", "data-testid": "report-form", autocomplete: "off" });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    FIELDS.forEach(function (f) {
      var label = el("label", {}, T[f[0]]);
      var area = el("textarea", { name: f[0], rows: String(f[1]), "data-testid": "report-field-" + f[0] });
      area.value = v[f[0]] || "";
      area.addEventListener("input", function () { changed(f[0], area.value); });
      label.appendChild(area);
      form.appendChild(label);
      if (f[0] === "diagnosis") { form.appendChild(codeSelect(v)); }
    });
    body.appendChild(form);
    body.appendChild(figuresBlock(r, v, true));
    body.appendChild(signBlock(r, v));
  }

  function codeSelect(v) {
    var label = el("label", {}, T.diagnosis_code);
    var select = el("select", { name: "diagnosis_code", "data-testid": "report-field-diagnosis_code" });
    select.appendChild(el("option", { value: "" }, T.no_code));
    state.codes.forEach(function (c) {
      var opt = el("option", { value: c.code, "data-system": c.system }, c.system + " " + c.code + " — " + (c.name || c.display));
      if (c.code === v.diagnosis_code && c.system === v.diagnosis_code_system) { opt.selected = true; }
      select.appendChild(opt);
    });
    select.addEventListener("change", function () {
      var opt = select.options[select.selectedIndex];
      state.dirty.diagnosis_code_system = opt.getAttribute("data-system") || "";
      changed("diagnosis_code", select.value);
    });
    label.appendChild(select);
    return label;
  }

  function changed(name, value) {
    if (state.conflict) { return; }
    state.dirty[name] = value;
    setSave(T.saving);
    clearTimeout(state.timer);
    state.timer = setTimeout(flush, 800);
  }

  // One save at a time, each based on the revision the server last confirmed.
  function flush() {
    if (state.saving || state.conflict) { return Promise.resolve(); }
    var names = Object.keys(state.dirty);
    if (!names.length) { return Promise.resolve(); }
    var data = state.dirty;
    state.dirty = {};
    data.revision = state.report.current.revision;
    state.saving = true;
    return api("PUT", "/api/v1/reports/" + state.report.id, data).then(function (res) {
      state.saving = false;
      if (res.ok) {
        state.report = res.json;  // keep the form as typed; only the revision and figures matter here
        if (Object.keys(state.dirty).length) { return flush(); }
        setSave(T.saved, "report-ok");
      } else if (res.status === 409 && res.json.error && res.json.error.code === "report_version_conflict") {
        showConflict();
      } else {
        Object.keys(data).forEach(function (k) { if (k !== "revision" && !(k in state.dirty)) { state.dirty[k] = data[k]; } });
        setSave(T.save_failed + ": " + errorText(res), "report-error", res);
      }
    });
  }

  function showConflict() {
    state.conflict = true;
    setSave("");
    var box = el("div", { className: "report-conflict", role: "alert", "data-testid": "report-conflict" });
    box.appendChild(el("p", {}, T.conflict));
    var btn = el("button", { type: "button", className: "button" }, T.reload);
    btn.addEventListener("click", function () { state.conflict = false; state.dirty = {}; load(); });
    box.appendChild(btn);
    body.insertBefore(box, body.firstChild);
    Array.prototype.forEach.call(body.querySelectorAll("textarea, select"), function (n) { n.disabled = true; });
  }

  function figuresBlock(r, v, editable) {
    var box = el("div", { className: "report-figures-block", "data-testid": "report-figures" });
    box.appendChild(el("h3", {}, T.figures));
    (v.figures || []).forEach(function (f) {
      var fig = el("figure", { className: "report-figure", "data-testid": "report-figure" });
      fig.appendChild(el("img", { src: f.image_url, alt: f.caption || "" }));
      var cap = el("figcaption", {}, (f.caption || "") + (f.magnification ? " · " + f.magnification : ""));
      if (f.view_link) {
        var a = el("a", { href: f.view_link }, T.open_view);
        cap.appendChild(document.createTextNode(" · "));
        cap.appendChild(a);
      }
      if (editable) {
        var del = el("button", { type: "button", className: "linklike", "data-testid": "report-figure-delete" }, T.delete);
        del.addEventListener("click", function () {
          flush().then(function () {
            return api("DELETE", "/api/v1/reports/" + r.id + "/figures/" + f.id);
          }).then(function (res) { if (res.ok) { replaceReport(res.json); } else { setSave(errorText(res), "report-error", res); } });
        });
        cap.appendChild(document.createTextNode(" "));
        cap.appendChild(del);
      }
      fig.appendChild(cap);
      box.appendChild(fig);
    });
    if (editable) {
      var caption = el("input", { type: "text", maxlength: "500", placeholder: T.caption, "data-testid": "report-figure-caption" });
      var capture = el("button", { type: "button", className: "button", "data-testid": "report-capture" }, T.capture);
      capture.addEventListener("click", function () { captureView(r, caption, capture); });
      var row = el("div", { className: "report-capture-row" });
      row.appendChild(caption);
      row.appendChild(capture);
      box.appendChild(row);
    }
    return box;
  }

  function captureView(r, caption, button) {
    var viewer = window.pathologyViewer;
    var s = viewer && viewer.getState ? viewer.getState() : null;
    // the size of the slide pane itself (the viewer's side bar is not part of the view)
    var osd = viewer && viewer.viewer;
    var container = (osd && osd.container && osd.container.clientWidth) ? osd.container : document.getElementById("viewer-app");
    if (!s || !s.slideId || !container || typeof s.zoom !== "number") { setSave(T.not_ready, "report-error"); return; }
    button.disabled = true;
    setSave(T.capturing);
    var data = { slide_id: s.slideId, x: s.x, y: s.y, zoom: s.zoom, rotation: s.rotation || 0,
                 container_width: container.clientWidth, container_height: container.clientHeight,
                 caption: caption.value, url: relative(s.url),
                 magnification: typeof s.magnification === "number" ? s.magnification : null };
    flush().then(function () {
      return api("POST", "/api/v1/reports/" + r.id + "/figures", data);
    }).then(function (res) {
      button.disabled = false;
      if (res.ok) { replaceReport(res.json); setSave(T.saved, "report-ok"); } else { setSave(errorText(res), "report-error", res); }
    });
  }

  function relative(url) {
    try {
      var u = new URL(url, window.location.href);
      return u.origin === window.location.origin ? u.pathname + u.search + u.hash : url;
    } catch (e) { return ""; }
  }

  function signBlock(r, v) {
    var box = el("div", { className: "report-sign", "data-testid": "report-sign" });
    if (!r.can.sign) { return box; }
    box.appendChild(el("h3", {}, T.sign_title));
    var meaning = el("input", { type: "text", value: T.meaning_default, maxlength: "200", "data-testid": "report-meaning" });
    var pw = el("input", { type: "password", autocomplete: "current-password", "data-testid": "report-password" });
    var l1 = el("label", {}, T.meaning); l1.appendChild(meaning);
    var l2 = el("label", {}, T.password); l2.appendChild(pw);
    var btn = el("button", { type: "button", className: "button primary", "data-testid": "report-sign-button" }, T.sign);
    var msg = el("p", { className: "report-error", "data-testid": "report-sign-error", role: "alert" });
    btn.addEventListener("click", function () {
      btn.disabled = true;
      setSave(T.signing);
      clearTimeout(state.timer);
      flush().then(function () {
        if (state.conflict) { btn.disabled = false; return null; }
        return api("POST", "/api/v1/reports/" + r.id + "/sign",
                   { password: pw.value, meaning: meaning.value, revision: state.report.current.revision });
      }).then(function (res) {
        if (!res) { return; }
        pw.value = "";
        btn.disabled = false;
        if (res.ok) { setSave(""); replaceReport(res.json); } else { setSave(""); showError(msg, errorText(res), res); }
      });
    });
    [l1, l2, btn, msg].forEach(function (n) { box.appendChild(n); });
    return box;
  }

  function renderSigned(r, v) {
    FIELDS.forEach(function (f) { if (v[f[0]]) { body.appendChild(labelled(T[f[0]], v[f[0]])); } });
    if (v.diagnosis_code) {
      body.appendChild(labelled(T.diagnosis_code, v.diagnosis_code_system + " " + v.diagnosis_code + " — " + (v.diagnosis_code_name || v.diagnosis_code_display)));
    }
    body.appendChild(figuresBlock(r, v, false));
    (v.signatures || []).forEach(function (s) {
      body.appendChild(el("p", { className: "report-signature", "data-testid": "report-signature" },
        (s.role === "signer" ? T.signed_by : T.cosigned_by) + ": " + s.full_name + " · " + s.institution + " · " +
        (s.signed_at_text || s.signed_at) + " · " + s.meaning));
    });
    if (v.superseded_by) { body.appendChild(el("p", { className: "report-error" }, String(T.superseded_by).replace("{n}", v.superseded_by))); }
    var links = el("p", {});
    if (v.pdf_url) { links.appendChild(el("a", { href: v.pdf_url, className: "button", "data-testid": "report-pdf" }, T.download)); }
    links.appendChild(document.createTextNode(" "));
    links.appendChild(el("a", { href: r.url }, T.read));
    body.appendChild(links);
    if (v.verification_code) {
      var p = el("p", { className: "muted" }, T.verification + ": ");
      p.appendChild(el("a", { href: v.verification_url, "data-testid": "report-verification" }, v.verification_code));
      body.appendChild(p);
    }
    if (r.can.cosign) { body.appendChild(cosignBlock(r)); }
    if (r.can.amend) { body.appendChild(versionBlock(r)); }
  }

  function cosignBlock(r) {
    var box = el("div", { className: "report-sign" });
    box.appendChild(el("h3", {}, T.cosign));
    var pw = el("input", { type: "password", autocomplete: "current-password", "data-testid": "report-cosign-password" });
    var l = el("label", {}, T.password); l.appendChild(pw);
    var btn = el("button", { type: "button", className: "button", "data-testid": "report-cosign-button" }, T.cosign_button);
    var msg = el("p", { className: "report-error", role: "alert" });
    btn.addEventListener("click", function () {
      btn.disabled = true;
      api("POST", "/api/v1/reports/" + r.id + "/cosign", { password: pw.value }).then(function (res) {
        btn.disabled = false;
        if (res.ok) { replaceReport(res.json); } else { showError(msg, errorText(res), res); }
      });
    });
    [l, btn, msg].forEach(function (n) { box.appendChild(n); });
    return box;
  }

  function versionBlock(r) {
    var box = el("div", { className: "report-sign", "data-testid": "report-new-version" });
    box.appendChild(el("h3", {}, T.new_version));
    var kind = el("select", { "data-testid": "report-version-kind" });
    kind.appendChild(el("option", { value: "addendum" }, T.addendum));
    kind.appendChild(el("option", { value: "amendment" }, T.amendment));
    var reason = el("textarea", { rows: "2", "data-testid": "report-version-reason" });
    var l = el("label", {}, T.reason_label); l.appendChild(reason);
    var btn = el("button", { type: "button", className: "button" }, T.start_version);
    var msg = el("p", { className: "report-error", role: "alert" });
    btn.addEventListener("click", function () {
      api("POST", "/api/v1/reports/" + r.id + "/versions", { kind: kind.value, reason: reason.value }).then(function (res) {
        if (res.ok) { replaceReport(res.json); } else { showError(msg, errorText(res), res); }
      });
    });
    [kind, l, btn, msg].forEach(function (n) { box.appendChild(n); });
    return box;
  }

  if (toggle) {
    toggle.addEventListener("click", function () { open(panel.hidden); });
  }
  window.addEventListener("beforeunload", function () { if (Object.keys(state.dirty).length) { flush(); } });
  api("GET", panel.getAttribute("data-codes-url")).then(function (res) {
    state.codes = (res.ok && res.json.codes) || [];
  }).then(load);
  window.pathologyReport = { state: function () { return state; }, flush: flush, reload: load };
})();
