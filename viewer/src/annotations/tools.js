/**
 * Pointer editing on one pane: drawing new shapes with the current tool (point, line,
 * rectangle, ellipse, polygon, freehand), and with the select tool selecting, moving and
 * reshaping by handles. Finished shapes and geometry changes go to the controller
 * (`ctl.createShape`, `ctl.commitGeometry`), which saves them and records undo.
 *
 * Listeners run in the capture phase so that a press that starts a drawing or a drag never
 * reaches OpenSeadragon (no pan); any other press still pans.
 */
import { bounds, clampGeometry, cloneGeometry, ellipse, rectangle, thin, translate } from "./geometry.js";
import { HANDLE_PX, handlePositions, reshapedGeometry } from "./shapes.js";
import { toScreen, toSlide } from "./view-transform.js";

const HIT_TOLERANCE = 6;       // CSS px

export class PointerTools {
  /** @param {import("./layer.js").AnnotationLayer} layer */
  constructor(layer) {
    this.layer = layer;
    this.draft = null;           // shape being drawn: {tool, points: number[], cursor: [x, y]}
    this.drag = null;            // move/vertex drag in progress
  }

  /** Listen to the pane's pointer events (capture phase, before OpenSeadragon). */
  mount(el) {
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

  /** Forget the drawing or drag in progress (a drag puts the shape back). False when there was none. */
  cancelDraft() {
    const layer = this.layer;
    if (!this.draft && !this.drag) return false;
    if (this.drag && this.drag.before) {
      this.drag.shape.geom = this.drag.before;
      this.drag.shape.bbox = bounds(this.drag.before);
    }
    this.draft = null;
    this.drag = null;
    layer.viewer && layer.viewer.setMouseNavEnabled(true);
    layer.draw();
    return true;
  }

  finishPolygon() {
    const d = this.draft;
    if (!d || d.tool !== "polygon") return;
    d.closing = true;
    const pts = d.points;
    this.draft = null;
    if (pts.length < 6) {
      this.layer.draw();
      return;
    }
    this.layer.ctl.createShape(this.layer, { kind: "polygon", parts: [[Float64Array.from(pts)]] }, null);
  }

  _eventPoint(e) {
    const rect = this.layer.canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  _clampPoint(x, y) {
    const { width, height } = this.layer.size;
    return [Math.min(Math.max(x, 0), width), Math.min(Math.max(y, 0), height)];
  }

  _onPointerDown(e) {
    const layer = this.layer;
    const ctl = layer.ctl;
    if (e.button !== 0 || !layer.ready || !layer.slide || !layer.visible) return;
    const T = layer.transform();
    if (!T) return;
    const [sx, sy] = this._eventPoint(e);
    const [ix, iy] = toSlide(T, sx, sy);
    const tool = ctl.tool;
    const stop = () => {
      e.stopPropagation();
      e.preventDefault();
      ctl.activate(layer);
    };
    if (tool !== "select") {
      if (!layer.canCreate) return;
      stop();
      const p = this._clampPoint(ix, iy);
      if (tool === "point") {
        ctl.createShape(layer, { kind: "point", parts: [[Float64Array.of(p[0], p[1])]] }, null);
        return;
      }
      if (tool === "polygon") {
        const now = performance.now();
        if (this.draft && this.draft.tool === "polygon") {
          const n = this.draft.points.length;
          const [lx, ly] = toScreen(T, this.draft.points[n - 2], this.draft.points[n - 1]);
          if (now - this.draft.lastClick < 400 && Math.hypot(lx - sx, ly - sy) < 6) {
            this.finishPolygon();
            return;
          }
          this.draft.points.push(p[0], p[1]);
          this.draft.lastClick = now;
        } else {
          this.draft = { tool, points: [p[0], p[1]], cursor: p, lastClick: now };
        }
        layer.draw();
        return;
      }
      this.draft = { tool, points: [p[0], p[1]], cursor: null, dragging: true };
      layer.viewer.setMouseNavEnabled(false);
      return;
    }
    // Select tool: handles of the selected shape first, then shapes under the pointer.
    const sel = layer.selected;
    if (sel && layer.isEditable(sel)) {
      const handles = handlePositions(sel, T);
      for (let k = 0; k < handles.length; k++) {
        if (Math.abs(handles[k][0] - sx) <= HANDLE_PX + 2 && Math.abs(handles[k][1] - sy) <= HANDLE_PX + 2) {
          stop();
          const handle = handles[k].index ?? k;
          this.drag = { mode: "vertex", shape: sel, handle, before: cloneGeometry(sel.geom), start: [ix, iy] };
          layer.viewer.setMouseNavEnabled(false);
          return;
        }
      }
    }
    const hit = layer.hitAt(ix, iy, HIT_TOLERANCE / T.scale);
    if (hit && hit === sel && layer.isEditable(hit)) {
      // Dragging the already selected shape moves it.
      stop();
      this.drag = { mode: "move", shape: hit, before: cloneGeometry(hit.geom), start: [ix, iy], moved: false };
      layer.viewer.setMouseNavEnabled(false);
    } else if (hit) {
      // A first press selects but still lets OpenSeadragon pan: on a densely annotated
      // slide nearly every press lands on some shape, and panning must keep working.
      ctl.select(layer, hit);
      ctl.activate(layer);
    } else if (layer.selected) {
      ctl.select(layer, null);
    }
  }

  _onPointerMove(e) {
    const layer = this.layer;
    if (!this.draft && !this.drag) return;
    const T = layer.transform();
    if (!T) return;
    const [sx, sy] = this._eventPoint(e);
    const p = this._clampPoint(...toSlide(T, sx, sy));
    if (this.draft) {
      const d = this.draft;
      if (d.tool === "freehand" && d.dragging) {
        const n = d.points.length;
        const [lx, ly] = toScreen(T, d.points[n - 2], d.points[n - 1]);
        if (Math.hypot(lx - sx, ly - sy) >= 2) d.points.push(p[0], p[1]);
      } else {
        d.cursor = p;
      }
      if (d.dragging) e.stopPropagation();
      layer.draw();
      return;
    }
    e.stopPropagation();
    const drag = this.drag;
    const s = drag.shape;
    const { width, height } = layer.size;
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
      s.geom = reshapedGeometry(s.shapeKind, drag.before, drag.handle, p);
      drag.moved = true;
    }
    s.bbox = bounds(s.geom);
    layer.draw();
  }

  _onPointerUp(e) {
    const layer = this.layer;
    const ctl = layer.ctl;
    if (this.draft && this.draft.dragging) {
      e.stopPropagation();
      const d = this.draft;
      this.draft = null;
      layer.viewer.setMouseNavEnabled(true);
      const T = layer.transform();
      if (d.tool === "freehand") {
        const pts = thin(d.points, 1 / T.scale);
        if (pts.length >= 6) {
          ctl.createShape(layer, { kind: "polygon", parts: [[pts]] }, null);
        } else {
          layer.draw();
        }
        return;
      }
      const cur = d.cursor;
      if (!cur) { layer.draw(); return; }
      const [ax, ay] = toScreen(T, d.points[0], d.points[1]);
      const [bx, by] = toScreen(T, cur[0], cur[1]);
      if (Math.hypot(ax - bx, ay - by) < 3) { layer.draw(); return; }  // a click, not a drag
      if (d.tool === "line") {
        ctl.createShape(layer, { kind: "line", parts: [[Float64Array.of(d.points[0], d.points[1], cur[0], cur[1])]] }, null);
      } else if (d.tool === "rectangle") {
        ctl.createShape(layer, rectangle(d.points[0], d.points[1], cur[0], cur[1]), "rectangle");
      } else if (d.tool === "ellipse") {
        const g = clampGeometry(ellipse(d.points[0], d.points[1], cur[0], cur[1]), layer.size.width, layer.size.height);
        ctl.createShape(layer, g, "ellipse");
      }
      return;
    }
    if (this.drag) {
      e.stopPropagation();
      const drag = this.drag;
      this.drag = null;
      layer.viewer.setMouseNavEnabled(true);
      if (drag.moved) ctl.commitGeometry(layer, drag.shape, drag.before);
      layer.draw();
    }
  }
}
