/**
 * The annotations section of the side panel: status line, the show/hide switch, shapes grouped
 * by class or author (per-group show/hide, click to zoom), and the selected shape's
 * measurements, class and comment.
 *
 * User text (comments, names, class names from imports) only ever reaches the DOM through
 * textContent / form values, never as markup.
 *
 * Extending: another module adds its own controls (e.g. import/export buttons) with
 * `panel.addControl(node)` and keeps them up to date with `panel.onRender((layer) => …)`,
 * which runs after every refresh with the active pane's layer (or null).
 */
import { h } from "../dom.js";
import { measurements } from "./geometry.js";
import { toolIcon } from "./tool-icons.js";

const LIST_LIMIT = 100;          // items listed per group (the rest is counted)

export class AnnotationPanel {
  /** @param {import("./controller.js").AnnotationController} ctl */
  constructor(ctl) {
    this.ctl = ctl;
    this.t = ctl.t;
    this.groupBy = "class";
    this.renderListeners = [];
    const t = this.t;
    this.statusEl = h("p", { class: "ph-ann-status" });
    this.groupSelect = h("select", {
      class: "ph-ann-groupby", "aria-label": t("groupBy"),
      onchange: () => { this.groupBy = this.groupSelect.value; this.ctl.render(); },
    },
    h("option", { value: "class" }, t("groupByClass")),
    h("option", { value: "author" }, t("groupByAuthor")));
    this.visibleToggle = h("input", {
      type: "checkbox", class: "ph-ann-visible", checked: true,
      onchange: () => this.ctl.setVisible(this.visibleToggle.checked),
    });
    // Extra controls from other modules (addControl); hidden while there are none.
    this.controlsEl = h("div", { class: "ph-ann-controls", hidden: true });
    this.detailsEl = h("div", { class: "ph-ann-details", hidden: true });
    this.groupsEl = h("div", { class: "ph-ann-groups" });
    this.el = h("section", { class: "ph-section ph-ann-section", "data-testid": "annotations" },
      h("h2", {}, t("annotations")),
      this.statusEl,
      h("label", { class: "ph-check ph-ann-visible-row" }, this.visibleToggle, h("span", {}, t("showAnnotations"))),
      h("label", { class: "ph-ann-groupby-row" }, h("span", {}, t("groupBy")), this.groupSelect),
      this.controlsEl,
      this.detailsEl,
      this.groupsEl);
  }

  /** Add a control (button, form…) to the section, under the show/group-by rows. */
  addControl(node) {
    this.controlsEl.append(node);
    this.controlsEl.hidden = false;
    return node;
  }

  /** Call `fn(layer)` after every refresh of the section (layer: the active pane's, or null). */
  onRender(fn) {
    this.renderListeners.push(fn);
  }

  /** Reflect the "show annotations" switch when it is changed from code. */
  showVisible(on) {
    this.visibleToggle.checked = Boolean(on);
  }

  /** Refresh for the active pane's layer. */
  render(layer) {
    this._renderSection(layer);
    for (const fn of this.renderListeners) fn(layer && layer.slide ? layer : null);
  }

  _renderSection(layer) {
    const t = this.t;
    if (!layer || !layer.slide) {
      this.statusEl.textContent = "";
      this.groupsEl.replaceChildren();
      this.detailsEl.hidden = true;
      return;
    }
    if (!layer.ready) this.statusEl.textContent = t("annotationsLoading");
    else if (layer.error) this.statusEl.textContent = t(layer.canView ? "annotationsFailed" : "annotationsHidden");
    else if (!layer.shapes.length) this.statusEl.textContent = t("noAnnotations");
    else {
      this.statusEl.textContent = t("annotationCount", { count: layer.shapes.length })
        + (layer.canCreate ? "" : ` · ${t("readOnly")}`);
    }
    this._renderDetails(layer);
    this._renderGroups(layer);
  }

  _groupKey(shape) {
    return this.groupBy === "author" ? String(shape.authorName || shape.author) : (shape.cls || "");
  }

  _renderGroups(layer) {
    const ctl = this.ctl;
    const groups = new Map();
    for (const s of layer.shapes) {
      const key = this._groupKey(s);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(s);
    }
    const hidden = this.groupBy === "author" ? layer.hiddenAuthors : layer.hiddenClasses;
    const nodes = [];
    for (const [key, shapes] of [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      const toggle = h("input", {
        type: "checkbox", class: "ph-ann-group-toggle", "aria-label": this.t("showGroup"),
        "data-group": key,
        onchange: () => {
          if (toggle.checked) hidden.delete(key); else hidden.add(key);
          if (layer.selected && !layer.isVisible(layer.selected)) ctl.select(layer, null);
          layer.cache = null;
          layer.draw();
        },
      });
      toggle.checked = !hidden.has(key);
      const swatch = h("span", { class: "ph-ann-swatch", "aria-hidden": "true" });
      swatch.style.background = this.groupBy === "class" ? ctl.colorOf(shapes[0]) : "transparent";
      const label = key || (this.groupBy === "class" ? this.t("noClass") : "–");
      const items = shapes.slice(0, LIST_LIMIT).map((s) => {
        const comment = s.comment ? ` — ${s.comment.slice(0, 60)}` : "";
        return h("li", {},
          h("button", {
            type: "button", class: `ph-ann-item${layer.selected === s ? " is-selected" : ""}`,
            "data-annotation-id": s.id,
            onclick: () => { ctl.select(layer, s); layer.zoomTo(s); },
          }, `${this.kindName(s)} #${s.id}${comment}`));
      });
      if (shapes.length > LIST_LIMIT) {
        items.push(h("li", { class: "ph-ann-more" }, this.t("moreItems", { count: shapes.length - LIST_LIMIT })));
      }
      nodes.push(h("details", { class: "ph-ann-group", open: groups.size <= 6 || undefined, "data-group": key },
        h("summary", {}, toggle, swatch, h("span", { class: "ph-ann-group-name" }, label),
          h("span", { class: "ph-ann-group-count" }, String(shapes.length))),
        h("ul", { class: "ph-ann-list" }, items)));
    }
    this.groupsEl.replaceChildren(...nodes);
  }

  /** The shape's kind in the user's language. */
  kindName(s) {
    if (s.shapeKind === "rectangle") return this.t("shapeRectangle");
    if (s.shapeKind === "ellipse") return this.t("shapeEllipse");
    return this.t({ point: "shapePoint", line: "shapeLine", polygon: "shapePolygon" }[s.geom.kind] || "shapePolygon");
  }

  _renderDetails(layer) {
    const ctl = this.ctl;
    const s = layer.selected;
    this.detailsEl.hidden = !s;
    if (!s) {
      this.detailsEl.replaceChildren();
      return;
    }
    const t = this.t;
    const editable = layer.isEditable(s);
    const m = measurements(s.geom, layer.mpp);
    const rows = [];
    const add = (key, value, attr) => {
      if (value) rows.push(h("dt", {}, t(key)), h("dd", { "data-measure": attr }, value));
    };
    add("length", m.length, "length");
    add("area", m.area, "area");
    add("perimeter", m.perimeter, "perimeter");
    add("author", s.authorName, "author");
    const classSelect = h("select", {
      class: "ph-ann-class", "aria-label": t("annotationClass"), disabled: !editable || undefined,
      onchange: () => ctl.setClass(layer, s, classSelect.value || null),
    }, h("option", { value: "" }, t("noClass")),
    ...ctl.palette.map((c) => h("option", { value: c.name }, c.name)));
    if (s.cls && !ctl.palette.some((c) => c.name === s.cls)) classSelect.append(h("option", { value: s.cls }, s.cls));
    classSelect.value = s.cls || "";
    const comment = h("textarea", {
      class: "ph-ann-comment", rows: "3", "aria-label": t("comment"), readonly: !editable || undefined, maxlength: "10000",
    });
    comment.value = s.comment || "";
    this.detailsEl.replaceChildren(
      h("h3", { class: "ph-ann-title" }, `${t("selected")}: ${this.kindName(s)} #${s.id}`),
      h("dl", { class: "ph-ann-measure" }, rows),
      h("label", { class: "ph-ann-field" }, h("span", {}, t("annotationClass")), classSelect),
      h("label", { class: "ph-ann-field" }, h("span", {}, t("comment")), comment),
      h("p", { class: "ph-ann-comment-text", "data-testid": "annotation-comment" }, s.comment || ""),
      editable ? h("div", { class: "ph-ann-actions" },
        h("button", { type: "button", class: "ph-btn ph-btn-text ph-ann-save-comment",
          onclick: () => ctl.setComment(layer, s, comment.value) }, t("saveComment")),
        h("button", { type: "button", class: "ph-btn ph-btn-text ph-ann-delete",
          onclick: () => ctl.deleteShape(layer, s) }, toolIcon("trash"), h("span", {}, t("deleteAnnotation"))),
      ) : null,
    );
  }
}
