/**
 * GeoJSON exchange in the annotation panel: export the active slide's annotations
 * (QuPath-compatible file from GET …/annotations/export.geojson) and import a
 * GeoJSON file (POST …/annotations/import, all features or none); the same for
 * DICOM Microscopy Bulk Simple Annotations (…/export.dcm, POST …/import.dcm), where a
 * file drawn on another slide is imported only after the user confirms it.
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
    this.exportDicomLink = h("a", {
      class: "ph-ann-export button-like", "data-testid": "annotations-export-dicom", href: "#", download: "",
      title: t("dicomHint"), onclick: (e) => this._export(e),
    }, t("exportDICOM"));
    this.dicomInput = h("input", {
      type: "file", accept: ".dcm,application/dicom", hidden: true,
      "data-testid": "annotations-import-dicom-file", onchange: () => this._importDicom(),
    });
    this.importDicomBtn = h("button", {
      type: "button", class: "ph-ann-import", "data-testid": "annotations-import-dicom", title: t("dicomHint"),
      onclick: () => this.dicomInput.click(),
    }, t("importDICOM"));
    this.el = h("div", { class: "ph-ann-exchange", "data-testid": "annotations-exchange" },
      this.exportLink, this.importBtn, this.fileInput,
      this.exportDicomLink, this.importDicomBtn, this.dicomInput);
    this.el.hidden = true;
  }

  /** Show for a loaded slide; import only for users who may draw on it. */
  update(layer) {
    const ready = Boolean(layer && layer.slide && layer.ready && !layer.error);
    this.el.hidden = !ready;
    this.importBtn.hidden = !(ready && layer.canCreate);
    this.importDicomBtn.hidden = this.importBtn.hidden;
    if (ready) {
      this.exportLink.href = `/api/v1/slides/${layer.slide.id}/annotations/export.geojson`;
      this.exportLink.setAttribute("download", `slide-${layer.slide.id}-annotations.geojson`);
      this.exportDicomLink.href = `/api/v1/slides/${layer.slide.id}/annotations/export.dcm`;
      this.exportDicomLink.setAttribute("download", `slide-${layer.slide.id}-annotations.dcm`);
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

  /** POST the .dcm file; a file of another slide is sent again with ?other_slide=1 once confirmed. */
  async _importDicom() {
    const { t, toast } = this.controller;
    const layer = this.controller.active;
    const file = this.dicomInput.files && this.dicomInput.files[0];
    this.dicomInput.value = "";
    if (!file || !layer || !layer.slide) return;
    this.importDicomBtn.disabled = true;
    try {
      const data = await file.arrayBuffer();
      const send = (query) => fetch(`/api/v1/slides/${layer.slide.id}/annotations/import.dcm${query}`, {
        method: "POST", credentials: "same-origin", body: data,
        headers: { "Content-Type": "application/dicom", Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
      let resp = await send("");
      let body = null;
      try { body = await resp.json(); } catch (_) { body = null; }
      if (!resp.ok && body && body.error && body.error.code === "dicom_other_slide") {
        if (!window.confirm(`${body.error.message}\n\n${t("dicomOtherSlideConfirm")}`)) return;
        resp = await send("?other_slide=1");
        try { body = await resp.json(); } catch (_) { body = null; }
      }
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
      this.importDicomBtn.disabled = false;
    }
  }
}
