/**
 * One pane's annotation overlay: a Canvas 2D layer on top of OpenSeadragon's
 * drawer, the pane's shapes (slide pixels, typed arrays), and the pointer
 * interactions that draw, select, move and reshape them.
 *
 * Speed with 10,000+ shapes comes from four things:
 *  - every shape is drawn through one affine transform (slide px → screen px)
 *    taken from OSD's own coordinate conversions, so rotation is exact;
 *  - level of detail: a shape is drawn with about one vertex per 3 screen px
 *    (a 100-vertex polygon a few pixels wide becomes 8 vertices, or a dot);
 *  - shapes are batched per colour into one path (one stroke per colour);
 *  - the settled picture is kept in an off-screen bitmap with a margin; while
 *    panning the bitmap is only translated, and it is re-rendered when the
 *    zoom/rotation changes or the view leaves the margin (throttled, then once
 *    more when the view settles).
 * The spatial grid index limits both viewport culling and hit tests to nearby shapes.
 */
import OpenSeadragon from "openseadragon";
import {
  bounds, fromGeoJSON, hitTest, measurements, cloneGeometry, translate, clampGeometry,
  rectangle, ellipse, thin, toGeoJSON,
} from "./geometry.js";
import { GridIndex } from "./index.js";
import { shapesOfBatch } from "./loader.js";

const MARGIN = 320;            // CSS px of off-screen margin kept around the view in the cache
const HANDLE = 5;              // CSS px half-size of a vertex handle
const HIT_TOLERANCE = 6;       // CSS px
const LOD_PX_PER_VERTEX = 3;   // keep roughly one vertex per this many screen pixels
const SETTLE_MS = 120;
const BATCH = 32;              // sub-paths per stroke()/fill() call
const SMALL_PX = 12;           // polygons smaller than this on screen are filled, not outlined

export function shapeFromFeature(f) {
  const geom = fromGeoJSON(f.geometry);
  if (!geom) return null;
  let n = 0;
  for (const rings of geom.parts) for (const r of rings) n += r.length / 2;
  return shapeRecord(f.id, f.properties || {}, geom, bounds(geom), n);
}

/** A shape from its parts (the worker decodes geometry and bounds; see loader.js). */
export function shapeRecord(id, p, geom, bbox, n) {
  return {
    id,
    uuid: p.uuid || null,
    version: p.version || 1,
    cls: p.class || null,
    color: p.color || null,
    comment: p.comment || "",
    name: p.name || "",
    author: p.author ?? null,
    authorName: p.author_name || "",
    shapeKind: p.shape || null,
    objectType: p.object_type || "annotation",
    locked: Boolean(p.locked),
    geom,
    bbox,
    nverts: n,
  };
}

/** What a create/undo needs to re-send a shape. */
export function featureBody(shape) {
  return {
    geometry: shapeGeoJSON(shape),
    properties: { class: shape.cls, comment: shape.comment || "", shape: shape.shapeKind || null },
  };
}

export function shapeGeoJSON(shape) {
  return toGeoJSON(shape.geom);
}

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
    this.draft = null;           // shape being drawn: {tool, points: number[], cursor: [x, y]}
    this.drag = null;            // move/vertex drag in progress
    this.cache = null;           // {canvas, ctx, T, x0, y0, w, h, dpr}
    this.lastRenderMs = 0;
    this.lastRenderAt = 0;
    this.stats = { frames: 0, renders: 0, drawnShapes: 0 };
    this.visible = true;         // the "show annotations" switch (also the benchmark's anchor)
    this.canvas = null;
    this.viewer = null;
    this.settleTimer = null;
  }

  // ------------------------------------------------------------ mounting

  /** Put the overlay canvas into OSD's canvas element (under the navigator) and follow its frames. */
  attach() {
    const viewer = this.pane.viewer;
    if (!viewer || this.viewer === viewer) return;
    this.viewer = viewer;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "ph-ann-canvas";
    this.canvas.setAttribute("aria-hidden", "true");
    viewer.canvas.append(this.canvas);
    this.ctx = this.canvas.getContext("2d");
    viewer.addHandler("update-viewport", () => this.draw());
    viewer.addHandler("resize", () => { this.cache = null; this.draw(); });
    viewer.addHandler("rotate", () => { this.cache = null; });
    const el = this.pane.osdEl;
    el.addEventListener("pointerdown", (e) => this._onPointerDown(e), { capture: true });
    el.addEventListener("pointermove", (e) => this._onPointerMove(e), { capture: true });
    el.addEventListener("pointerup", (e) => this._onPointerUp(e), { capture: true });
    el.addEventListener("pointercancel", () => this.cancelDraft(), { capture: true });
    el.addEventListener("dblclick", (e) => {
      if (this.draft && this.draft.tool === "polygon") {
        e.stopPropagation();
        e.preventDefault();
        this.finishPolygon();
      }
    }, { capture: true });
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
    this.cache = null;
    if (this.ctx) this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
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

  // ------------------------------------------------------------ coordinates

  /** Affine slide px → viewer-element CSS px, from OSD's own conversion (includes rotation). */
  transform() {
    const item = this.pane.item;
    if (!item || !this.viewer) return null;
    const vp = this.viewer.viewport;
    const S = Math.max(item.getContentSize().x, 1);
    const conv = (x, y) => vp.viewportToViewerElementCoordinates(item.imageToViewportCoordinates(x, y, true));
    const p0 = conv(0, 0);
    const p1 = conv(S, 0);
    const p2 = conv(0, S);
    const a = (p1.x - p0.x) / S, b = (p1.y - p0.y) / S, c = (p2.x - p0.x) / S, d = (p2.y - p0.y) / S;
    return { a, b, c, d, e: p0.x, f: p0.y, scale: Math.hypot(a, b) };
  }

  static apply(T, x, y) {
    return [T.a * x + T.c * y + T.e, T.b * x + T.d * y + T.f];
  }

  static invert(T, sx, sy) {
    const det = T.a * T.d - T.b * T.c;
    const x = sx - T.e;
    const y = sy - T.f;
    return [(T.d * x - T.c * y) / det, (-T.b * x + T.a * y) / det];
  }

  _eventPoint(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  /** Slide-pixel box seen through a screen rectangle (rotation-aware: the bounds of its 4 corners). */
  _imageBox(T, x0, y0, x1, y1) {
    const pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) => AnnotationLayer.invert(T, x, y));
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }

  // ------------------------------------------------------------ rendering

  _sizeCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.viewer.container.clientWidth;
    const h = this.viewer.container.clientHeight;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      this.cache = null;
    }
    return { w, h, dpr };
  }

  /** Redraw the overlay for the current view (called on every OSD frame). */
  draw() {
    if (!this.canvas || !this.viewer) return;
    const { w, h, dpr } = this._sizeCanvas();
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const T = this.transform();
    if (!T || !this.slide || !this.visible) return;
    this.stats.frames += 1;
    const cache = this.cache;
    const sameScale = cache && Math.abs(cache.T.a - T.a) < 1e-9 * Math.max(1, Math.abs(T.a)) + 1e-12
      && Math.abs(cache.T.b - T.b) < 1e-9 * Math.max(1, Math.abs(T.b)) + 1e-12
      && Math.abs(cache.T.c - T.c) < 1e-12 + 1e-9 * Math.abs(T.c)
      && Math.abs(cache.T.d - T.d) < 1e-12 + 1e-9 * Math.abs(T.d);
    const dx = cache ? T.e - cache.T.e : 0;
    const dy = cache ? T.f - cache.T.f : 0;
    const covered = sameScale && Math.abs(dx) <= MARGIN && Math.abs(dy) <= MARGIN && cache.w === w && cache.h === h;
    const now = performance.now();
    if (!covered) {
      // Re-render now when it is cheap or not done lately; otherwise show the old bitmap
      // (shifted/scaled to the new view) and render once the view settles.
      const cheap = this.lastRenderMs < 8;
      if (!cache || cheap || now - this.lastRenderAt > Math.max(150, 5 * this.lastRenderMs)) {
        this._render(T, w, h, dpr);
      } else {
        this._scheduleSettle();
      }
    }
    const c = this.cache;
    if (c) {
      // Cache pixel (u, v) shows slide point Tc⁻¹(u − M, v − M); map it through the current T.
      const Tc = c.T;
      const det = Tc.a * Tc.d - Tc.b * Tc.c;
      // R = T ∘ Tc⁻¹ (linear part), then translation so that the cache origin lands right.
      const ia = Tc.d / det, ib = -Tc.b / det, ic = -Tc.c / det, id = Tc.a / det;
      const ra = T.a * ia + T.c * ib, rb = T.b * ia + T.d * ib;
      const rc = T.a * ic + T.c * id, rd = T.b * ic + T.d * id;
      const [ox, oy] = AnnotationLayer.apply(T, ...AnnotationLayer.invert(Tc, -MARGIN, -MARGIN));
      ctx.setTransform(dpr * ra, dpr * rb, dpr * rc, dpr * rd, dpr * ox, dpr * oy);
      ctx.drawImage(c.canvas, 0, 0, c.canvas.width / c.dpr, c.canvas.height / c.dpr);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    this._drawActive(ctx, T, dpr);
  }

  _scheduleSettle() {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.lastRenderAt = 0;
      this.cache = null;
      this.draw();
    }, SETTLE_MS);
  }

  /** Render every visible, non-selected shape into the off-screen cache at transform T. */
  _render(T, w, h, dpr) {
    const started = performance.now();
    const cw = Math.round((w + 2 * MARGIN) * dpr);
    const chh = Math.round((h + 2 * MARGIN) * dpr);
    let cache = this.cache && this.cache.canvas.width === cw && this.cache.canvas.height === chh ? this.cache : null;
    if (!cache) {
      const canvas = document.createElement("canvas");
      canvas.width = cw;
      canvas.height = chh;
      cache = { canvas, ctx: canvas.getContext("2d") };
    }
    const ctx = cache.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, cw, chh);
    const box = this._imageBox(T, -MARGIN, -MARGIN, w + MARGIN, h + MARGIN);
    const candidates = this.grid.query(box[0], box[1], box[2], box[3]);
    const byColor = new Map();
    for (const i of candidates) {
      const s = this.shapes[i];
      if (s === this.selected || !this.isVisible(s)) continue;
      const color = this.ctl.colorOf(s);
      let list = byColor.get(color);
      if (!list) byColor.set(color, (list = []));
      list.push(s);
    }
    const scale = T.scale;
    ctx.setTransform(dpr * T.a, dpr * T.b, dpr * T.c, dpr * T.d, dpr * (T.e + MARGIN), dpr * (T.f + MARGIN));
    ctx.lineJoin = "miter";
    ctx.lineWidth = 1.5 / scale;
    let drawn = 0;
    // Software rasterisers (no GPU) slow down sharply on one huge path, and stroking
    // costs several times filling: shapes are sent in batches of BATCH sub-paths, and
    // shapes under SMALL_PX on screen are filled (a blob the size of the shape) rather
    // than outlined; under 2 px they are a dot.
    for (const [color, list] of byColor) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      const small = [];
      const dots = [];
      let inPath = 0;
      ctx.beginPath();
      for (const s of list) {
        const size = Math.max(s.bbox[2] - s.bbox[0], s.bbox[3] - s.bbox[1]) * scale;
        if (s.geom.kind === "point" || size < 2) { dots.push(s); continue; }
        if (size < SMALL_PX && s.geom.kind === "polygon") { small.push(s); continue; }
        traceShape(ctx, s.geom, size);
        drawn += 1;
        if (++inPath === BATCH) { ctx.stroke(); ctx.beginPath(); inPath = 0; }
      }
      if (inPath) ctx.stroke();
      if (small.length) {
        ctx.globalAlpha = 0.75;
        inPath = 0;
        ctx.beginPath();
        for (const s of small) {
          traceShape(ctx, s.geom, Math.max(s.bbox[2] - s.bbox[0], s.bbox[3] - s.bbox[1]) * scale);
          if (++inPath === BATCH) { ctx.fill(); ctx.beginPath(); inPath = 0; }
        }
        if (inPath) ctx.fill();
        ctx.globalAlpha = 1;
        drawn += small.length;
      }
      if (dots.length) {
        for (const s of dots) {
          const cx = (s.bbox[0] + s.bbox[2]) / 2;
          const cy = (s.bbox[1] + s.bbox[3]) / 2;
          if (s.geom.kind === "point") {
            ctx.beginPath();
            ctx.arc(cx, cy, 4 / scale, 0, 2 * Math.PI);
            ctx.fill();
          } else {
            ctx.fillRect(cx - 1 / scale, cy - 1 / scale, 2 / scale, 2 / scale);
          }
        }
        drawn += dots.length;
      }
    }
    cache.T = T;
    cache.w = w;
    cache.h = h;
    cache.dpr = dpr;
    this.cache = cache;
    this.stats.renders += 1;
    this.stats.drawnShapes = drawn;
    this.lastRenderAt = performance.now();
    this.lastRenderMs = this.lastRenderAt - started;
  }

  /** Selected shape (with handles and measurements) and the shape being drawn, in screen space. */
  _drawActive(ctx, T, dpr) {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const s = this.selected;
    if (s && this.isVisible(s)) {
      const color = this.ctl.colorOf(s);
      ctx.save();
      ctx.setTransform(dpr * T.a, dpr * T.b, dpr * T.c, dpr * T.d, dpr * T.e, dpr * T.f);
      ctx.beginPath();
      traceShape(ctx, s.geom, Infinity);
      ctx.lineWidth = 3 / T.scale;
      ctx.strokeStyle = color;
      if (s.geom.kind === "polygon") {
        ctx.globalAlpha = 0.18;
        ctx.fillStyle = color;
        ctx.fill("evenodd");
        ctx.globalAlpha = 1;
      }
      ctx.stroke();
      if (s.geom.kind === "point") {
        ctx.beginPath();
        const [x, y] = [s.geom.parts[0][0][0], s.geom.parts[0][0][1]];
        ctx.arc(x, y, 6 / T.scale, 0, 2 * Math.PI);
        ctx.fillStyle = color;
        ctx.fill();
      }
      ctx.restore();
      if (this.isEditable(s)) {
        ctx.fillStyle = "#fff";
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 1;
        for (const [hx, hy] of this._handles(s, T)) {
          ctx.fillRect(hx - HANDLE, hy - HANDLE, 2 * HANDLE, 2 * HANDLE);
          ctx.strokeRect(hx - HANDLE, hy - HANDLE, 2 * HANDLE, 2 * HANDLE);
        }
      }
      this._label(ctx, T, s.geom, s.bbox);
    }
    const d = this.draft;
    if (d) {
      const g = this.draftGeometry();
      if (g) {
        ctx.save();
        ctx.setTransform(dpr * T.a, dpr * T.b, dpr * T.c, dpr * T.d, dpr * T.e, dpr * T.f);
        ctx.beginPath();
        traceShape(ctx, g, Infinity, d.tool === "polygon" && !d.closing);
        ctx.lineWidth = 2 / T.scale;
        ctx.setLineDash([6 / T.scale, 4 / T.scale]);
        ctx.strokeStyle = this.ctl.colorOfClass(this.ctl.currentClass);
        ctx.stroke();
        ctx.restore();
        this._label(ctx, T, g, bounds(g));
      }
    }
  }

  /** Measurement text beside a shape (canvas text: nothing here is HTML). */
  _label(ctx, T, g, bbox) {
    const m = measurements(g, this.mpp);
    const text = m.length || (m.area ? `${m.area} · ${m.perimeter}` : "");
    if (!text) return;
    const corners = [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]]]
      .map(([x, y]) => AnnotationLayer.apply(T, x, y));
    const x = Math.max(...corners.map((p) => p[0])) + 8;
    const y = Math.min(...corners.map((p) => p[1])) + 4;
    ctx.font = "600 12px system-ui, sans-serif";
    const wdt = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(20, 22, 26, .8)";
    ctx.fillRect(x - 4, y - 2, wdt + 8, 18);
    ctx.fillStyle = "#fff";
    ctx.textBaseline = "top";
    ctx.fillText(text, x, y + 1);
  }

  /** Screen positions of the editable handles: corners for rectangles/ellipses, vertices otherwise. */
  _handles(s, T) {
    if (s.shapeKind === "rectangle" || s.shapeKind === "ellipse") {
      const [x0, y0, x1, y1] = s.bbox;
      return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) => AnnotationLayer.apply(T, x, y));
    }
    // Every vertex is a handle, but only those far enough apart on screen are offered
    // (a 500-vertex freehand outline would otherwise be a solid band of squares).
    const out = [];
    let k = 0;
    for (const rings of s.geom.parts) for (const r of rings) {
      let last = null;
      for (let i = 0; i < r.length; i += 2, k++) {
        const p = AnnotationLayer.apply(T, r[i], r[i + 1]);
        if (last && Math.abs(p[0] - last[0]) < 3 * HANDLE && Math.abs(p[1] - last[1]) < 3 * HANDLE) continue;
        p.index = k;
        out.push(p);
        last = p;
      }
    }
    return out;
  }

  // ------------------------------------------------------------ drafts (drawing)

  draftGeometry() {
    const d = this.draft;
    if (!d) return null;
    const pts = d.points;
    const cur = d.cursor;
    switch (d.tool) {
      case "line":
        return cur ? { kind: "line", parts: [[Float64Array.of(pts[0], pts[1], cur[0], cur[1])]] } : null;
      case "rectangle":
        return cur ? rectangle(pts[0], pts[1], cur[0], cur[1]) : null;
      case "ellipse":
        return cur ? ellipse(pts[0], pts[1], cur[0], cur[1]) : null;
      case "polygon": {
        const all = cur && !d.closing ? [...pts, cur[0], cur[1]] : pts;
        return all.length >= 4 ? { kind: all.length >= 6 ? "polygon" : "line", parts: [[Float64Array.from(all)]] } : null;
      }
      case "freehand":
        return pts.length >= 4 ? { kind: pts.length >= 6 ? "polygon" : "line", parts: [[Float64Array.from(pts)]] } : null;
      default:
        return null;
    }
  }

  cancelDraft() {
    if (!this.draft && !this.drag) return false;
    if (this.drag && this.drag.before) {
      this.drag.shape.geom = this.drag.before;
      this.drag.shape.bbox = bounds(this.drag.before);
    }
    this.draft = null;
    this.drag = null;
    this.viewer && this.viewer.setMouseNavEnabled(true);
    this.draw();
    return true;
  }

  finishPolygon() {
    const d = this.draft;
    if (!d || d.tool !== "polygon") return;
    d.closing = true;
    const pts = d.points;
    this.draft = null;
    if (pts.length < 6) {
      this.draw();
      return;
    }
    this.ctl.createShape(this, { kind: "polygon", parts: [[Float64Array.from(pts)]] }, null);
  }

  // ------------------------------------------------------------ pointer handling

  _onPointerDown(e) {
    if (e.button !== 0 || !this.ready || !this.slide || !this.visible) return;
    const T = this.transform();
    if (!T) return;
    const [sx, sy] = this._eventPoint(e);
    const [ix, iy] = AnnotationLayer.invert(T, sx, sy);
    const tool = this.ctl.tool;
    const stop = () => {
      e.stopPropagation();
      e.preventDefault();
      this.ctl.activate(this);
    };
    if (tool !== "select") {
      if (!this.canCreate) return;
      stop();
      const p = this._clampPoint(ix, iy);
      if (tool === "point") {
        this.ctl.createShape(this, { kind: "point", parts: [[Float64Array.of(p[0], p[1])]] }, null);
        return;
      }
      if (tool === "polygon") {
        const now = performance.now();
        if (this.draft && this.draft.tool === "polygon") {
          const n = this.draft.points.length;
          const [lx, ly] = AnnotationLayer.apply(T, this.draft.points[n - 2], this.draft.points[n - 1]);
          if (now - this.draft.lastClick < 400 && Math.hypot(lx - sx, ly - sy) < 6) {
            this.finishPolygon();
            return;
          }
          this.draft.points.push(p[0], p[1]);
          this.draft.lastClick = now;
        } else {
          this.draft = { tool, points: [p[0], p[1]], cursor: p, lastClick: now };
        }
        this.draw();
        return;
      }
      this.draft = { tool, points: [p[0], p[1]], cursor: null, dragging: true };
      this.viewer.setMouseNavEnabled(false);
      return;
    }
    // Select tool: handles of the selected shape first, then shapes under the pointer.
    const sel = this.selected;
    if (sel && this.isEditable(sel)) {
      const handles = this._handles(sel, T);
      for (let k = 0; k < handles.length; k++) {
        if (Math.abs(handles[k][0] - sx) <= HANDLE + 2 && Math.abs(handles[k][1] - sy) <= HANDLE + 2) {
          stop();
          const handle = handles[k].index ?? k;
          this.drag = { mode: "vertex", shape: sel, handle, before: cloneGeometry(sel.geom), start: [ix, iy] };
          this.viewer.setMouseNavEnabled(false);
          return;
        }
      }
    }
    const hit = this.hitAt(ix, iy, HIT_TOLERANCE / T.scale);
    if (hit && hit === sel && this.isEditable(hit)) {
      // Dragging the already selected shape moves it.
      stop();
      this.drag = { mode: "move", shape: hit, before: cloneGeometry(hit.geom), start: [ix, iy], moved: false };
      this.viewer.setMouseNavEnabled(false);
    } else if (hit) {
      // A first press selects but still lets OpenSeadragon pan: on a densely annotated
      // slide nearly every press lands on some shape, and panning must keep working.
      this.ctl.select(this, hit);
      this.ctl.activate(this);
    } else if (this.selected) {
      this.ctl.select(this, null);
    }
  }

  _clampPoint(x, y) {
    const { width, height } = this.size;
    return [Math.min(Math.max(x, 0), width), Math.min(Math.max(y, 0), height)];
  }

  _onPointerMove(e) {
    if (!this.draft && !this.drag) return;
    const T = this.transform();
    if (!T) return;
    const [sx, sy] = this._eventPoint(e);
    const p = this._clampPoint(...AnnotationLayer.invert(T, sx, sy));
    if (this.draft) {
      const d = this.draft;
      if (d.tool === "freehand" && d.dragging) {
        const n = d.points.length;
        const [lx, ly] = AnnotationLayer.apply(T, d.points[n - 2], d.points[n - 1]);
        if (Math.hypot(lx - sx, ly - sy) >= 2) d.points.push(p[0], p[1]);
      } else {
        d.cursor = p;
      }
      if (d.dragging) e.stopPropagation();
      this.draw();
      return;
    }
    e.stopPropagation();
    const drag = this.drag;
    const s = drag.shape;
    const { width, height } = this.size;
    if (drag.mode === "move") {
      let dx = p[0] - drag.start[0];
      let dy = p[1] - drag.start[1];
      // Keep the whole shape on the slide.
      const [x0, y0, x1, y1] = bounds(drag.before);
      dx = Math.min(Math.max(dx, -x0), width - x1);
      dy = Math.min(Math.max(dy, -y0), height - y1);
      s.geom = translate(drag.before, dx, dy);
      drag.moved = drag.moved || Math.hypot(dx, dy) * T.scale > 1;
    } else {
      s.geom = this._reshape(s, drag, p);
      drag.moved = true;
    }
    s.bbox = bounds(s.geom);
    this.draw();
  }

  /** Geometry after dragging handle `drag.handle` to slide point p. */
  _reshape(s, drag, p) {
    if (s.shapeKind === "rectangle" || s.shapeKind === "ellipse") {
      const [x0, y0, x1, y1] = bounds(drag.before);
      const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
      const opposite = corners[(drag.handle + 2) % 4];
      return s.shapeKind === "rectangle"
        ? rectangle(opposite[0], opposite[1], p[0], p[1])
        : ellipse(opposite[0], opposite[1], p[0], p[1]);
    }
    const g = cloneGeometry(drag.before);
    let k = drag.handle;
    for (const rings of g.parts) for (const r of rings) {
      const n = r.length / 2;
      if (k < n) {
        r[2 * k] = p[0];
        r[2 * k + 1] = p[1];
        return g;
      }
      k -= n;
    }
    return g;
  }

  _onPointerUp(e) {
    if (this.draft && this.draft.dragging) {
      e.stopPropagation();
      const d = this.draft;
      this.draft = null;
      this.viewer.setMouseNavEnabled(true);
      const T = this.transform();
      if (d.tool === "freehand") {
        const pts = thin(d.points, 1 / T.scale);
        if (pts.length >= 6) {
          this.ctl.createShape(this, { kind: "polygon", parts: [[pts]] }, null);
        } else {
          this.draw();
        }
        return;
      }
      const cur = d.cursor;
      if (!cur) { this.draw(); return; }
      const [ax, ay] = AnnotationLayer.apply(T, d.points[0], d.points[1]);
      const [bx, by] = AnnotationLayer.apply(T, cur[0], cur[1]);
      if (Math.hypot(ax - bx, ay - by) < 3) { this.draw(); return; }  // a click, not a drag
      if (d.tool === "line") {
        this.ctl.createShape(this, { kind: "line", parts: [[Float64Array.of(d.points[0], d.points[1], cur[0], cur[1])]] }, null);
      } else if (d.tool === "rectangle") {
        this.ctl.createShape(this, rectangle(d.points[0], d.points[1], cur[0], cur[1]), "rectangle");
      } else if (d.tool === "ellipse") {
        const g = clampGeometry(ellipse(d.points[0], d.points[1], cur[0], cur[1]), this.size.width, this.size.height);
        this.ctl.createShape(this, g, "ellipse");
      }
      return;
    }
    if (this.drag) {
      e.stopPropagation();
      const drag = this.drag;
      this.drag = null;
      this.viewer.setMouseNavEnabled(true);
      if (drag.moved) this.ctl.commitGeometry(this, drag.shape, drag.before);
      this.draw();
    }
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
    return T ? AnnotationLayer.apply(T, x, y) : null;
  }
}

/** Add a shape's outline to the current path, with about one vertex per LOD_PX_PER_VERTEX screen px. */
function traceShape(ctx, g, screenSize, open = false) {
  for (const rings of g.parts) {
    for (const r of rings) {
      const n = r.length / 2;
      if (n === 1) continue;
      let step = 1;
      if (Number.isFinite(screenSize) && n > 8) {
        const target = Math.max(6, (screenSize * 3.2) / LOD_PX_PER_VERTEX);
        step = Math.max(1, Math.floor(n / target));
      }
      ctx.moveTo(r[0], r[1]);
      for (let i = step; i < n; i += step) ctx.lineTo(r[2 * i], r[2 * i + 1]);
      if (g.kind === "polygon" && !open) ctx.closePath();
      else if (step > 1) ctx.lineTo(r[2 * n - 2], r[2 * n - 1]);
    }
  }
}
