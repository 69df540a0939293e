/**
 * App-level half of the annotation tools: the toolbar (tools, undo/redo), the
 * side-panel section (groups by class or author, show/hide, click-to-zoom, the
 * selected shape's class, comment and measurements), keyboard shortcuts, and
 * every change sent to the server with its version (409 → reload the shape).
 *
 * One controller serves both panes; each pane has its own AnnotationLayer.
 * User text (comments, names, class names from imports) only ever reaches the
 * DOM through textContent / form values, never as markup.
 */
import { h } from "../dom.js";
import { AnnotationApi, ApiError, annotationClasses, currentUser, fetchChunks } from "./api.js";
import { AnnotationLayer, featureBody, shapeFromFeature } from "./layer.js";
import { bounds, cloneGeometry, measurements, selfIntersects, toGeoJSON } from "./geometry.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const TOOL_ICONS = {
  select: "M5 3l13 9-6 1.5L9 20z",
  point: "M12 12m-3 0a3 3 0 1 0 6 0a3 3 0 1 0-6 0",
  line: "M4 20L20 4M4 20l3-1M4 20l1-3M20 4l-3 1M20 4l-1 3",
  rectangle: "M4 6h16v12H4z",
  ellipse: "M12 6c5 0 9 2.7 9 6s-4 6-9 6-9-2.7-9-6 4-6 9-6z",
  polygon: "M5 8l7-5 7 6-3 11H7z",
  freehand: "M4 16c3-8 6 4 9-3s5-5 7-1",
  undo: "M9 14L4 9l5-5M4 9h11a5 5 0 0 1 0 10h-3",
  redo: "M15 14l5-5-5-5M20 9H9a5 5 0 0 0 0 10h3",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
};
const TOOLS = [
  ["select", "toolSelect", "v"],
  ["point", "toolPoint", "p"],
  ["line", "toolLine", "l"],
  ["rectangle", "toolRectangle", "r"],
  ["ellipse", "toolEllipse", "e"],
  ["polygon", "toolPolygon", "g"],
  ["freehand", "toolFreehand", "f"],
];
const LIST_LIMIT = 100;          // items listed per group (the rest is counted)
const DEFAULT_COLOR = "#00bcd4";

function toolIcon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "ph-icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", TOOL_ICONS[name] || "");
  svg.append(path);
  return svg;
}

export class AnnotationController {
  /**
   * @param {{t: Function, toast: (text: string) => void}} opts
   */
  constructor(opts) {
    this.t = opts.t;
    this.toast = opts.toast;
    this.tool = "select";
    this.palette = [];
    this.currentClass = null;
    this.userId = null;
    this.layers = [];
    this.active = null;
    this.groupBy = "class";
    this.undoStack = [];
    this.redoStack = [];
    this.queue = Promise.resolve();
    this.prefetched = new Map();
    this.pending = 0;
    this._renderQueued = false;
    this.ready = Promise.all([
      annotationClasses().then((classes) => {
        this.palette = classes;
        if (!this.currentClass && classes.length) this.currentClass = classes[0].name;
      }),
      currentUser().then((me) => { this.userId = me ? me.id : null; }),
    ]);
    this._buildToolbar();
    this._buildSection();
    document.addEventListener("keydown", (e) => this._onKey(e), { capture: true });
  }

  // ------------------------------------------------------------ layers

  addLayer(pane) {
    const layer = new AnnotationLayer(pane, this);
    this.layers.push(layer);
    if (!this.active) this.active = layer;
    return layer;
  }

  /**
   * Start downloading a slide's annotations before its pane has opened the image;
   * the layer picks the download up when the pane is ready (see AnnotationLayer.load).
   */
  prefetch(slide) {
    if (!slide) return;
    const old = this.prefetched.get(slide.id);
    // A download nobody picked up (the pane's open failed or was superseded) goes stale quickly.
    if (old && performance.now() - old.at < 10000) return;
    const api = new AnnotationApi(slide.id);
    this.prefetched.set(slide.id, { api, chunks: fetchChunks(api, slide), canCreate: api.canCreate(), at: performance.now() });
  }

  /** A pane opened a slide: (re)load its annotations. */
  async open(layer, slide) {
    this.prefetch(slide);
    const pre = this.prefetched.get(slide.id);
    this.prefetched.delete(slide.id);
    await this.ready;
    this.undoStack = this.undoStack.filter((c) => c.layer !== layer);
    this.redoStack = this.redoStack.filter((c) => c.layer !== layer);
    this._render();
    await layer.load(slide, pre);
    this._render();
  }

  close(layer) {
    layer.clear();
    this._render();
  }

  activate(layer) {
    if (this.active === layer) return;
    this.active = layer;
    this._render();
  }

  /** Layer contents changed (load, add, remove, edit): refresh panel and tools on the next frame. */
  layerChanged() {
    if (this._renderQueued) return;
    this._renderQueued = true;
    requestAnimationFrame(() => {
      this._renderQueued = false;
      this._render();
    });
  }

  labelOfClass(name) {
    const entry = this.palette.find((c) => c.name === name);
    return (entry && entry.label) || name;
  }

  colorOfClass(name) {
    const entry = this.palette.find((c) => c.name === name);
    return entry ? entry.color : DEFAULT_COLOR;
  }

  colorOf(shape) {
    return shape.color || this.colorOfClass(shape.cls);
  }

  // ------------------------------------------------------------ toolbar

  _buildToolbar() {
    this.toolButtons = {};
    const buttons = TOOLS.map(([name, key]) => {
      const label = this.t(key);
      const btn = h("button", {
        type: "button", class: "ph-btn ph-ann-tool", title: label, "aria-label": label,
        "data-tool": name, "aria-pressed": name === this.tool ? "true" : "false",
        onclick: () => this.setTool(name),
      }, toolIcon(name));
      this.toolButtons[name] = btn;
      return btn;
    });
    this.classSelect = h("select", {
      class: "ph-ann-class-current", "aria-label": this.t("annotationClass"), title: this.t("annotationClass"),
      onchange: () => { this.currentClass = this.classSelect.value || null; },
    });
    const mk = (name, key, fn) => h("button", {
      type: "button", class: "ph-btn", title: this.t(key), "aria-label": this.t(key), "data-action": name, onclick: fn,
    }, toolIcon(name));
    this.undoBtn = mk("undo", "undo", () => this.undo());
    this.redoBtn = mk("redo", "redo", () => this.redo());
    this.toolbar = h("div", { class: "ph-group ph-ann-tools", role: "group", "aria-label": this.t("annotationTools"), hidden: true },
      ...buttons, this.classSelect, this.undoBtn, this.redoBtn);
  }

  setTool(name) {
    if (!TOOLS.some(([n]) => n === name)) return;
    for (const layer of this.layers) layer.cancelDraft();
    this.tool = name;
    for (const [n, btn] of Object.entries(this.toolButtons)) {
      btn.setAttribute("aria-pressed", n === name ? "true" : "false");
      btn.classList.toggle("is-on", n === name);
    }
    for (const layer of this.layers) {
      layer.pane.el.classList.toggle("ph-ann-drawing", name !== "select");
    }
  }

  // ------------------------------------------------------------ panel

  _buildSection() {
    this.statusEl = h("p", { class: "ph-ann-status" });
    this.groupSelect = h("select", {
      class: "ph-ann-groupby", "aria-label": this.t("groupBy"),
      onchange: () => { this.groupBy = this.groupSelect.value; this._render(); },
    },
    h("option", { value: "class" }, this.t("groupByClass")),
    h("option", { value: "author" }, this.t("groupByAuthor")));
    this.visibleToggle = h("input", {
      type: "checkbox", class: "ph-ann-visible", checked: true,
      onchange: () => this.setVisible(this.visibleToggle.checked),
    });
    this.detailsEl = h("div", { class: "ph-ann-details", hidden: true });
    this.groupsEl = h("div", { class: "ph-ann-groups" });
    this.section = h("section", { class: "ph-section ph-ann-section", "data-testid": "annotations" },
      h("h2", {}, this.t("annotations")),
      this.statusEl,
      h("label", { class: "ph-check ph-ann-visible-row" }, this.visibleToggle, h("span", {}, this.t("showAnnotations"))),
      h("label", { class: "ph-ann-groupby-row" }, h("span", {}, this.t("groupBy")), this.groupSelect),
      this.detailsEl,
      this.groupsEl);
  }

  _render() {
    const layer = this.active;
    const t = this.t;
    const canEdit = Boolean(layer && layer.ready && layer.canCreate);
    this.toolbar.hidden = !canEdit;
    if (!canEdit && this.tool !== "select") this.setTool("select");
    if (this.classSelect.options.length !== this.palette.length) {
      this.classSelect.replaceChildren(...this.palette.map((c) => h("option", { value: c.name }, c.label || c.name)));
    }
    if (this.currentClass) this.classSelect.value = this.currentClass;
    this.undoBtn.disabled = !this.undoStack.length;
    this.redoBtn.disabled = !this.redoStack.length;

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
          if (layer.selected && !layer.isVisible(layer.selected)) this.select(layer, null);
          layer.cache = null;
          layer.draw();
        },
      });
      toggle.checked = !hidden.has(key);
      const swatch = h("span", { class: "ph-ann-swatch", "aria-hidden": "true" });
      swatch.style.background = this.groupBy === "class" ? this.colorOf(shapes[0]) : "transparent";
      const label = key ? (this.groupBy === "class" ? this.labelOfClass(key) : key)
        : (this.groupBy === "class" ? this.t("noClass") : "–");
      const items = shapes.slice(0, LIST_LIMIT).map((s) => {
        const comment = s.comment ? ` — ${s.comment.slice(0, 60)}` : "";
        return h("li", {},
          h("button", {
            type: "button", class: `ph-ann-item${layer.selected === s ? " is-selected" : ""}`,
            "data-annotation-id": s.id,
            onclick: () => { this.select(layer, s); layer.zoomTo(s); },
          }, `${this._kindName(s)} #${s.id}${comment}`));
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

  _kindName(s) {
    if (s.shapeKind === "rectangle") return this.t("shapeRectangle");
    if (s.shapeKind === "ellipse") return this.t("shapeEllipse");
    return this.t({ point: "shapePoint", line: "shapeLine", polygon: "shapePolygon" }[s.geom.kind] || "shapePolygon");
  }

  _renderDetails(layer) {
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
      onchange: () => this.setClass(layer, s, classSelect.value || null),
    }, h("option", { value: "" }, t("noClass")),
    ...this.palette.map((c) => h("option", { value: c.name }, c.label || c.name)));
    if (s.cls && !this.palette.some((c) => c.name === s.cls)) classSelect.append(h("option", { value: s.cls }, s.cls));
    classSelect.value = s.cls || "";
    const comment = h("textarea", {
      class: "ph-ann-comment", rows: "3", "aria-label": t("comment"), readonly: !editable || undefined, maxlength: "10000",
    });
    comment.value = s.comment || "";
    this.detailsEl.replaceChildren(
      h("h3", { class: "ph-ann-title" }, `${t("selected")}: ${this._kindName(s)} #${s.id}`),
      h("dl", { class: "ph-ann-measure" }, rows),
      h("label", { class: "ph-ann-field" }, h("span", {}, t("annotationClass")), classSelect),
      h("label", { class: "ph-ann-field" }, h("span", {}, t("comment")), comment),
      h("p", { class: "ph-ann-comment-text", "data-testid": "annotation-comment" }, s.comment || ""),
      editable ? h("div", { class: "ph-ann-actions" },
        h("button", { type: "button", class: "ph-btn ph-btn-text ph-ann-save-comment",
          onclick: () => this.setComment(layer, s, comment.value) }, t("saveComment")),
        h("button", { type: "button", class: "ph-btn ph-btn-text ph-ann-delete",
          onclick: () => this.deleteShape(layer, s) }, toolIcon("trash"), h("span", {}, t("deleteAnnotation"))),
      ) : null,
    );
  }

  /** Show or hide all annotations (drawing tools pause while hidden). */
  setVisible(on) {
    this.visibleToggle.checked = Boolean(on);
    for (const layer of this.layers) {
      layer.cancelDraft();
      layer.visible = Boolean(on);
      layer.draw();
    }
  }

  select(layer, shape) {
    for (const l of this.layers) {
      if (l !== layer && l.selected) { l.selected = null; l.cache = null; l.draw(); }
    }
    this.active = layer;
    if (layer.selected !== shape) {
      layer.selected = shape;
      layer.cache = null;   // the selected shape is drawn live, outside the cached bitmap
      layer.draw();
    }
    this._render();
  }

  // ------------------------------------------------------------ server round trips

  /** Run server operations one after another, so undo/redo keep their order. */
  _enqueue(fn) {
    this.pending += 1;
    const run = this.queue.then(fn).catch((err) => this._reportError(err)).finally(() => {
      this.pending -= 1;
      this._render();
    });
    this.queue = run;
    return run;
  }

  _reportError(err) {
    if (err && err.handled) return;   // already explained (version conflict)
    if (err instanceof ApiError) {
      if (err.status === 403) this.toast(this.t("notAllowed"));
      else this.toast(this.t("saveFailed", { message: err.message }));
    } else {
      this.toast(this.t("saveFailed", { message: String(err && err.message ? err.message : err) }));
    }
  }

  /** Refresh a shape from the server's version of it (after 409 or on undo of someone else's change). */
  _adopt(layer, shape, feature) {
    const fresh = shapeFromFeature(feature);
    if (!fresh) return;
    for (const key of ["id", "uuid", "version", "cls", "color", "comment", "name", "author", "authorName",
      "shapeKind", "locked", "geom", "bbox", "nverts"]) shape[key] = fresh[key];
  }

  _conflict(layer, shape, err) {
    if (err instanceof ApiError && err.status === 409 && err.body && err.body.current) {
      this._adopt(layer, shape, err.body.current);
      layer.changed();
      err.handled = true;
      this.toast(this.t("versionConflict"));
      return true;
    }
    return false;
  }

  createShape(layer, geom, shapeKind) {
    if (geom.kind === "polygon" && selfIntersects(geom.parts[0][0])) {
      this.toast(this.t("selfIntersecting"));
      layer.draw();
      return Promise.resolve(null);
    }
    const shape = {
      id: null, version: 0, cls: this.currentClass, color: null, comment: "", name: "",
      author: this.userId, authorName: "", shapeKind, geom, bbox: bounds(geom), locked: false,
    };
    return this._enqueue(async () => {
      await this._post(layer, shape);
      this.undoStack.push({ op: "create", layer, ref: shape });
      this.redoStack = [];
      this.select(layer, shape);
    }).then(() => shape);
  }

  async _post(layer, shape) {
    const feature = await layer.api.create(featureBody(shape));
    this._adopt(layer, shape, feature);
    layer.add(shape);
  }

  async _delete(layer, shape) {
    try {
      await layer.api.remove(shape.id, shape.version);
    } catch (err) {
      if (this._conflict(layer, shape, err)) throw err;
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    layer.remove(shape);
  }

  /** PATCH the given fields; on failure restore `fallback` locally (409: the server's version). */
  async _patch(layer, shape, fields, fallback) {
    const body = {};
    if (fields.geom) {
      body.geometry = toGeoJSON(fields.geom);
      body.shape = shape.shapeKind || null;
    }
    if ("cls" in fields) body.class = fields.cls;
    if ("comment" in fields) body.comment = fields.comment;
    try {
      const feature = await layer.api.update(shape.id, shape.version, body);
      this._adopt(layer, shape, feature);
      layer.changed();
    } catch (err) {
      if (!this._conflict(layer, shape, err) && fallback) {
        Object.assign(shape, fallback);
        if (fallback.geom) shape.bbox = bounds(fallback.geom);
        layer.changed();
      }
      throw err;
    }
  }

  /** A move or reshape ended: send it (undo restores `before`). */
  commitGeometry(layer, shape, before) {
    const after = cloneGeometry(shape.geom);
    if (after.kind === "polygon" && selfIntersects(after.parts[0][0])) {
      shape.geom = before;
      shape.bbox = bounds(before);
      layer.changed();
      this.toast(this.t("selfIntersecting"));
      return Promise.resolve();
    }
    layer.changed();
    return this._enqueue(async () => {
      await this._patch(layer, shape, { geom: after }, { geom: before });
      this._record({ op: "update", layer, ref: shape, before: { geom: before }, after: { geom: after } });
    });
  }

  setClass(layer, shape, cls) {
    const before = { cls: shape.cls };
    return this._enqueue(async () => {
      await this._patch(layer, shape, { cls }, before);
      this._record({ op: "update", layer, ref: shape, before, after: { cls } });
    });
  }

  setComment(layer, shape, comment) {
    const before = { comment: shape.comment };
    return this._enqueue(async () => {
      await this._patch(layer, shape, { comment }, before);
      this._record({ op: "update", layer, ref: shape, before, after: { comment } });
    });
  }

  deleteShape(layer, shape) {
    if (!layer.isEditable(shape)) {
      this.toast(this.t("notAllowed"));
      return Promise.resolve();
    }
    return this._enqueue(async () => {
      await this._delete(layer, shape);
      this._record({ op: "delete", layer, ref: shape });
    });
  }

  _record(cmd) {
    this.undoStack.push(cmd);
    this.redoStack = [];
  }

  /** Undo: the inverse change goes to the server too (a deleted shape is re-created, with a new id). */
  undo() {
    const cmd = this.undoStack.pop();
    if (!cmd) return Promise.resolve();
    return this._enqueue(async () => {
      try {
        await this._apply(cmd, true);
        this.redoStack.push(cmd);
      } catch (err) {
        this.undoStack.push(cmd);
        throw err;
      }
    });
  }

  redo() {
    const cmd = this.redoStack.pop();
    if (!cmd) return Promise.resolve();
    return this._enqueue(async () => {
      try {
        await this._apply(cmd, false);
        this.undoStack.push(cmd);
      } catch (err) {
        this.redoStack.push(cmd);
        throw err;
      }
    });
  }

  async _apply(cmd, backwards) {
    const { layer, ref } = cmd;
    if (cmd.op === "update") {
      const target = backwards ? cmd.before : cmd.after;
      const fields = { ...target };
      if (fields.geom) fields.geom = cloneGeometry(fields.geom);
      await this._patch(layer, ref, fields, null);
      if (layer.selected === ref) this._render();
      return;
    }
    const create = (cmd.op === "create") !== backwards;
    if (create) {
      await this._post(layer, ref);
      this.select(layer, ref);
    } else {
      await this._delete(layer, ref);
    }
  }

  // ------------------------------------------------------------ keyboard

  _onKey(e) {
    const target = e.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const layer = this.active;
    if (!layer || !layer.slide) return;
    const key = e.key;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    const ctrl = e.ctrlKey || e.metaKey;
    let handled = true;
    if (ctrl && lower === "z" && !e.shiftKey) this.undo();
    else if (ctrl && ((lower === "z" && e.shiftKey) || lower === "y")) this.redo();
    else if (ctrl || e.altKey) handled = false;
    else if (key === "Escape") {
      if (!layer.cancelDraft()) {
        if (layer.selected) this.select(layer, null);
        else if (this.tool !== "select") this.setTool("select");
        else handled = false;
      }
    } else if (key === "Enter" && layer.draft && layer.draft.tool === "polygon") layer.finishPolygon();
    else if ((key === "Delete" || key === "Backspace") && layer.selected) this.deleteShape(layer, layer.selected);
    else {
      const tool = TOOLS.find(([, , k]) => k === lower);
      if (tool && (layer.canCreate || tool[0] === "select")) this.setTool(tool[0]);
      else handled = false;
    }
    if (handled) {
      // OpenSeadragon binds some of the same letters (R rotates, F flips): ours win.
      e.preventDefault();
      e.stopPropagation();
    }
  }

  /** Test/benchmark hooks (window.pathologyViewer.annotations). */
  debugState() {
    const layer = this.layers[0];
    const info = (l) => l && {
      slideId: l.slide ? l.slide.id : null,
      ready: l.ready,
      readyAt: l.readyAt,
      count: l.shapes.length,
      canCreate: l.canCreate,
      error: l.error ? { status: l.error.status, code: l.error.code } : null,
      selectedId: l.selected ? l.selected.id : null,
      stats: { ...l.stats, lastRenderMs: l.lastRenderMs },
      timings: l.timings || null,
    };
    return {
      tool: this.tool,
      pending: this.pending,
      undo: this.undoStack.length,
      redo: this.redoStack.length,
      primary: info(layer),
      compare: info(this.layers[1]),
    };
  }
}
