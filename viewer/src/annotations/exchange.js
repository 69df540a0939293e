/**
 * GeoJSON exchange in the annotation panel: export the active slide's annotations
 * (QuPath-compatible file from GET …/annotations/export.geojson) and import a
 * GeoJSON file (POST …/annotations/import, all features or none).
 *
 * Kept apart from controller.js so the panel only needs two hooks: the element
 * (appended to the section) and `update(layer)` (called when the panel renders).
 */

import { h } from "../dom.js";

function csrfToken() {
  const meta = document.querySelector("meta[name=csrf-token]");
  return meta ? meta.getAttribute("content") : "";
}

/** An error text for the toast, with the server's stable code for support staff. */
function errorOf(body, status) {
  const err = (body && body.error) || {};
  return { message: err.message || `HTTP ${status}`, code: err.code || null };
}

export class AnnotationExchange {
  /**
   * @param {{t: Function, toast: Function, active: any, open: Function}} controller
   */
  constructor(controller) {
    this.controller = controller;
    const t = controller.t;
    this.exportLink = h("a", {
      class: "ph-ann-export button-like", "data-testid": "annotations-export", href: "#", download: "",
      onclick: (e) => this._export(e),
    }, t("exportGeoJSON"));
    this.fileInput = h("input", {
      type: "file", accept: ".geojson,.json,application/geo+json,application/json", hidden: true,
      "data-testid": "annotations-import-file", onchange: () => this._import(),
    });
    this.importBtn = h("button", {
      type: "button", class: "ph-ann-import", "data-testid": "annotations-import",
      onclick: () => this.fileInput.click(),
    }, t("importGeoJSON"));
    this.el = h("div", { class: "ph-ann-exchange", "data-testid": "annotations-exchange" },
      this.exportLink, this.importBtn, this.fileInput);
    this.el.hidden = true;
  }

  /** Show for a loaded slide; import only for users who may draw on it. */
  update(layer) {
    const ready = Boolean(layer && layer.slide && layer.ready && !layer.error);
    this.el.hidden = !ready;
    this.importBtn.hidden = !(ready && layer.canCreate);
    if (ready) {
      this.exportLink.href = `/api/v1/slides/${layer.slide.id}/annotations/export.geojson`;
      this.exportLink.setAttribute("download", `slide-${layer.slide.id}-annotations.geojson`);
    }
  }

  _export(e) {
    const layer = this.controller.active;
    if (!layer || !layer.slide) e.preventDefault();
  }

  async _import() {
    const { t, toast } = this.controller;
    const layer = this.controller.active;
    const file = this.fileInput.files && this.fileInput.files[0];
    this.fileInput.value = "";
    if (!file || !layer || !layer.slide) return;
    this.importBtn.disabled = true;
    try {
      const resp = await fetch(`/api/v1/slides/${layer.slide.id}/annotations/import`, {
        method: "POST", credentials: "same-origin", body: await file.text(),
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
      let body = null;
      try { body = await resp.json(); } catch (_) { body = null; }
      if (!resp.ok) {
        const err = errorOf(body, resp.status);
        toast(t("importFailed", { message: err.message }), err.code);
        return;
      }
      toast(t("importDone", { created: body.created, updated: body.updated, unchanged: body.unchanged }));
      await this.controller.open(layer, layer.slide);
    } catch (err) {
      toast(t("importFailed", { message: String(err && err.message ? err.message : err) }));
    } finally {
      this.importBtn.disabled = false;
    }
  }
}
