/**
 * One pane's annotations: the shapes of the slide open in that pane (loaded in strips,
 * indexed in a spatial grid), which of them are selected, visible and editable, and the
 * two helpers that show and edit them:
 *  - ShapeRenderer (renderer.js) draws them on a canvas over OpenSeadragon;
 *  - PointerTools (tools.js) turns pointer events into new shapes and edits.
 * Shape records themselves are made in shapes.js; saving, undo and the side panel are
 * the controller's (controller.js).
 */
import OpenSeadragon from "openseadragon";
import { hitTest } from "./geometry.js";
import { GridIndex } from "./grid-index.js";
import { shapesOfBatch } from "./loader.js";
import { ShapeRenderer } from "./renderer.js";
import { shapeFromFeature, shapeRecord } from "./shapes.js";
import { PointerTools } from "./tools.js";
import { toScreen, viewTransform } from "./view-transform.js";

export class AnnotationLayer {
  /**
   * @param {import("../viewer/pane.js").SlidePane} pane
   * @param {object} ctl the app-level controller (tool, palette, selection, commands)
   */
  constructor(pane, ctl) {
    this.pane = pane;
    this.ctl = ctl;
    this.shapes = [];
    this.slide = null;
    this.loadToken = 0;
    this.ready = false;
    this.readyAt = null;
    this.error = null;
    this.canCreate = false;
    this.canView = true;
    this.hiddenClasses = new Set();
    this.hiddenAuthors = new Set();
    this.selected = null;
    this.visible = true;         // the "show annotations" switch (also the benchmark's anchor)
    this.viewer = null;
    this.renderer = new ShapeRenderer(this);
    this.tools = new PointerTools(this);
  }

  // ------------------------------------------------------------ helpers' state, as seen from outside

  /** The overlay canvas (tests read its pixels). */
  get canvas() { return this.renderer.canvas; }
  /** Renderer counters for tests and the benchmark. */
  get stats() { return this.renderer.stats; }
  get lastRenderMs() { return this.renderer.lastRenderMs; }
  /** Cached bitmap of the settled picture; set to null to have it rebuilt. */
  get cache() { return this.renderer.cache; }
  set cache(value) { this.renderer.cache = value; }
  /** The shape being drawn, if any. */
  get draft() { return this.tools.draft; }
  set draft(value) { this.tools.draft = value; }

  draw() { this.renderer.draw(); }
  cancelDraft() { return this.tools.cancelDraft(); }
  finishPolygon() { this.tools.finishPolygon(); }

  // ------------------------------------------------------------ mounting

  /** Put the overlay into OSD's canvas element and listen to the pane's pointer events. */
  attach() {
    const viewer = this.pane.viewer;
    if (!viewer || this.viewer === viewer) return;
    this.viewer = viewer;
    this.renderer.mount(viewer);
    this.tools.mount(this.pane.osdEl);
  }

  /**
   * Load the slide's annotations. `pre` is the download started by the controller
   * (strips of the slide fetched in parallel); each strip is parsed, indexed and drawn
   * as it arrives, so the picture fills in while the rest is still on the wire.
   */
  async load(slide, pre) {
    const token = ++this.loadToken;
    this.attach();
    this.slide = slide;
    this.api = pre.api;
    this.shapes = [];
    this.selected = null;
    this.draft = null;
    this.ready = false;
    this.readyAt = null;
    this.error = null;
    this.canView = true;
    this.cache = null;
    this.timings = { requested: pre.at, chunks: [] };
    this._reindex();
    this.draw();
    const seen = new Set();
    await Promise.all(pre.chunks.map((chunk) => chunk.then((list) => {
      if (token !== this.loadToken) return;
      const arrived = performance.now();
      if (list && list.failed) {
        this.error = this.error || list.failed;
        if (list.failed.status === 403) this.canView = false;
        return;
      }
      if (list && list.coords) {
        for (const r of shapesOfBatch(list)) {
          if (seen.has(r.id)) continue;
          seen.add(r.id);
          this.shapes.push(shapeRecord(r.id, r.properties, r.geom, r.bbox, r.nverts));
        }
      } else {
        for (const f of (list && list.features) || []) {
          if (seen.has(f.id)) continue;
          seen.add(f.id);
          const s = shapeFromFeature(f);
          if (s) this.shapes.push(s);
        }
      }
      this._reindex();
      this.cache = null;
      this.draw();
      const rel = (t) => (t ? Math.round(t - performance.timeOrigin) : null);
      const w = list && list.times;
      this.timings.chunks.push({
        arrived, done: performance.now(),
        worker: w ? { sent: rel(w.sent), headers: rel(w.headers), body: rel(w.body), parsed: rel(w.parsed), decoded: rel(w.decoded) } : null,
      });
    })));
    const canCreate = await pre.canCreate;
    if (token !== this.loadToken) return;
    if (this.error) this.shapes = [];
    this.canCreate = canCreate && !this.error;
    this._reindex();
    this.cache = null;
    this.draw();
    this.ready = true;
    this.readyAt = performance.now();
    this.ctl.layerChanged(this);
  }

  clear() {
    this.loadToken += 1;
    this.slide = null;
    this.shapes = [];
    this.selected = null;
    this.draft = null;
    this.ready = false;
    this._reindex();
    this.renderer.clear();
  }

  get mpp() {
    return this.slide && this.slide.mpp > 0 ? Number(this.slide.mpp) : null;
  }

  get size() {
    const s = this.pane.imageSize;
    if (s) return s;
    return this.slide ? { width: this.slide.width || 0, height: this.slide.height || 0 } : { width: 0, height: 0 };
  }

  isEditable(shape) {
    return Boolean(shape && this.canCreate && !shape.locked && this.ctl.userId !== null
      && shape.author === this.ctl.userId);
  }

  isVisible(shape) {
    return !this.hiddenClasses.has(shape.cls || "") && !this.hiddenAuthors.has(String(shape.authorName || shape.author));
  }

  // ------------------------------------------------------------ shape list

  _reindex() {
    const n = this.shapes.length;
    const boxes = new Float64Array(4 * n);
    this.shapes.forEach((s, i) => {
      s.index = i;
      boxes.set(s.bbox, 4 * i);
    });
    const { width, height } = this.size;
    this.grid = new GridIndex(boxes, n, width || 1, height || 1);
  }

  /** Local changes (after the server accepted them): keep index, cache and panel in step. */
  changed() {
    this._reindex();
    this.cache = null;
    this.draw();
    this.ctl.layerChanged(this);
  }

  add(shape) {
    this.shapes.push(shape);
    this.changed();
  }

  remove(shape) {
    const i = this.shapes.indexOf(shape);
    if (i >= 0) this.shapes.splice(i, 1);
    if (this.selected === shape) this.selected = null;
    this.changed();
  }

  byId(id) {
    return this.shapes.find((s) => s.id === id) || null;
  }

  /** Top-most (smallest) visible shape within `tol` slide px of (x, y). */
  hitAt(x, y, tol) {
    const candidates = this.grid.query(x - tol, y - tol, x + tol, y + tol);
    let best = null;
    let bestArea = Infinity;
    const consider = (s) => {
      if (!s || !this.isVisible(s)) return;
      const b = s.bbox;
      if (x < b[0] - tol || x > b[2] + tol || y < b[1] - tol || y > b[3] + tol) return;
      if (!hitTest(s.geom, x, y, tol)) return;
      const area = (b[2] - b[0]) * (b[3] - b[1]);
      if (area <= bestArea) { best = s; bestArea = area; }
    };
    for (const i of candidates) consider(this.shapes[i]);
    // The selected shape may have moved since the index was built.
    if (this.selected && !candidates.includes(this.selected.index)) consider(this.selected);
    return best;
  }

  // ------------------------------------------------------------ view

  /** Affine slide px → viewer-element CSS px for the current view (see view-transform.js). */
  transform() {
    return viewTransform(this.viewer, this.pane.item);
  }

  /** Fit the view to a shape (with some room around it). */
  zoomTo(shape) {
    const item = this.pane.item;
    if (!item) return;
    const [x0, y0, x1, y1] = shape.bbox;
    const w = Math.max(x1 - x0, 20);
    const h = Math.max(y1 - y0, 20);
    const rect = item.imageToViewportRectangle(new OpenSeadragon.Rect(x0 - w * 0.4, y0 - h * 0.4, w * 1.8, h * 1.8));
    this.viewer.viewport.fitBoundsWithConstraints(rect);
  }

  /** Where a shape vertex is on screen (for tests: rotation must keep shapes on their tissue). */
  screenPoint(x, y) {
    const T = this.transform();
    return T ? toScreen(T, x, y) : null;
  }
}
