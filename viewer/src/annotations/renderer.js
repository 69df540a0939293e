/**
 * Canvas drawing of one pane's annotations: a Canvas 2D overlay inside OpenSeadragon's
 * canvas element, redrawn on every OSD frame.
 *
 * Speed with 10,000+ shapes comes from four things:
 *  - every shape is drawn through one affine transform (slide px → screen px)
 *    taken from OSD's own coordinate conversions, so rotation is exact (view-transform.js);
 *  - level of detail: a shape is drawn with about one vertex per 3 screen px
 *    (a 100-vertex polygon a few pixels wide becomes 8 vertices, or a dot);
 *  - shapes are batched per colour into one path (one stroke per colour);
 *  - the settled picture is kept in an off-screen bitmap with a margin; while
 *    panning the bitmap is only translated, and it is re-rendered when the
 *    zoom/rotation changes or the view leaves the margin (throttled, then once
 *    more when the view settles).
 * The layer's spatial grid index limits drawing to shapes near the view.
 * The renderer only reads the layer (shapes, selection, draft); it never changes them.
 */
import { bounds, measurements } from "./geometry.js";
import { HANDLE_PX, draftGeometry, handlePositions } from "./shapes.js";
import { slideBoxOfScreenRect, toScreen, toSlide } from "./view-transform.js";

const MARGIN = 320;            // CSS px of off-screen margin kept around the view in the cache
const LOD_PX_PER_VERTEX = 3;   // keep roughly one vertex per this many screen pixels
const SETTLE_MS = 120;
const BATCH = 32;              // sub-paths per stroke()/fill() call
const SMALL_PX = 12;           // polygons smaller than this on screen are filled, not outlined

export class ShapeRenderer {
  /** @param {import("./layer.js").AnnotationLayer} layer the pane's shapes, selection and draft */
  constructor(layer) {
    this.layer = layer;
    this.canvas = null;
    this.ctx = null;
    this.cache = null;           // {canvas, ctx, T, w, h, dpr}
    this.lastRenderMs = 0;
    this.lastRenderAt = 0;
    this.stats = { frames: 0, renders: 0, drawnShapes: 0 };
    this.settleTimer = null;
  }

  /** Put the overlay canvas into OSD's canvas element (under the navigator) and follow its frames. */
  mount(viewer) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "ph-ann-canvas";
    this.canvas.setAttribute("aria-hidden", "true");
    viewer.canvas.append(this.canvas);
    this.ctx = this.canvas.getContext("2d");
    viewer.addHandler("update-viewport", () => this.draw());
    viewer.addHandler("resize", () => { this.cache = null; this.draw(); });
    viewer.addHandler("rotate", () => { this.cache = null; });
  }

  /** Shapes changed: forget the cached bitmap and draw again. */
  invalidate() {
    this.cache = null;
    this.draw();
  }

  clear() {
    this.cache = null;
    if (this.ctx) this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  _sizeCanvas() {
    const viewer = this.layer.viewer;
    const dpr = window.devicePixelRatio || 1;
    const w = viewer.container.clientWidth;
    const h = viewer.container.clientHeight;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      this.cache = null;
    }
    return { w, h, dpr };
  }

  /** Redraw the overlay for the current view (called on every OSD frame). */
  draw() {
    const layer = this.layer;
    if (!this.canvas || !layer.viewer) return;
    const { w, h, dpr } = this._sizeCanvas();
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const T = layer.transform();
    if (!T || !layer.slide || !layer.visible) return;
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
      const [ox, oy] = toScreen(T, ...toSlide(Tc, -MARGIN, -MARGIN));
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
    const layer = this.layer;
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
    const box = slideBoxOfScreenRect(T, -MARGIN, -MARGIN, w + MARGIN, h + MARGIN);
    const candidates = layer.grid.query(box[0], box[1], box[2], box[3]);
    const byColor = new Map();
    for (const i of candidates) {
      const s = layer.shapes[i];
      if (s === layer.selected || !layer.isVisible(s)) continue;
      const color = layer.ctl.colorOf(s);
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
    const layer = this.layer;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const s = layer.selected;
    if (s && layer.isVisible(s)) {
      const color = layer.ctl.colorOf(s);
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
      if (layer.isEditable(s)) {
        ctx.fillStyle = "#fff";
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 1;
        for (const [hx, hy] of handlePositions(s, T)) {
          ctx.fillRect(hx - HANDLE_PX, hy - HANDLE_PX, 2 * HANDLE_PX, 2 * HANDLE_PX);
          ctx.strokeRect(hx - HANDLE_PX, hy - HANDLE_PX, 2 * HANDLE_PX, 2 * HANDLE_PX);
        }
      }
      this._label(ctx, T, s.geom, s.bbox);
    }
    const d = layer.draft;
    if (d) {
      const g = draftGeometry(d);
      if (g) {
        ctx.save();
        ctx.setTransform(dpr * T.a, dpr * T.b, dpr * T.c, dpr * T.d, dpr * T.e, dpr * T.f);
        ctx.beginPath();
        traceShape(ctx, g, Infinity, d.tool === "polygon" && !d.closing);
        ctx.lineWidth = 2 / T.scale;
        ctx.setLineDash([6 / T.scale, 4 / T.scale]);
        ctx.strokeStyle = layer.ctl.colorOfClass(layer.ctl.currentClass);
        ctx.stroke();
        ctx.restore();
        this._label(ctx, T, g, bounds(g));
      }
    }
  }

  /** Measurement text beside a shape (canvas text: nothing here is HTML). */
  _label(ctx, T, g, bbox) {
    const m = measurements(g, this.layer.mpp);
    const text = m.length || (m.area ? `${m.area} · ${m.perimeter}` : "");
    if (!text) return;
    const corners = [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]]]
      .map(([x, y]) => toScreen(T, x, y));
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
