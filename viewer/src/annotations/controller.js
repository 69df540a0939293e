/**
 * App-level half of the annotation tools, shared by both panes (each pane has its own
 * AnnotationLayer): which tool and class are current, which pane is active, what is selected,
 * the keyboard shortcuts, and the wiring of its parts:
 *  - AnnotationToolbar (toolbar.js): tool buttons, current class, undo/redo buttons;
 *  - AnnotationPanel (panel.js): the side-panel section (groups, selected shape's details);
 *  - ShapeEdits (edits.js): every change sent to the server with its version (409 → reload);
 *  - UndoHistory (undo.js): what undo and redo replay.
 */
import { AnnotationApi, annotationClasses, currentUser, fetchChunks } from "./api.js";
import { ShapeEdits } from "./edits.js";
import { AnnotationLayer } from "./layer.js";
import { AnnotationPanel } from "./panel.js";
import { AnnotationToolbar, isTool, toolOfKey } from "./toolbar.js";
import { UndoHistory } from "./undo.js";

const DEFAULT_COLOR = "#00bcd4";

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
    this.prefetched = new Map();
    this._renderQueued = false;
    this.history = new UndoHistory();
    this.edits = new ShapeEdits(this, this.history);
    this.ready = Promise.all([
      annotationClasses().then((classes) => {
        this.palette = classes;
        if (!this.currentClass && classes.length) this.currentClass = classes[0].name;
      }),
      currentUser().then((me) => { this.userId = me ? me.id : null; }),
    ]);
    this.toolbarView = new AnnotationToolbar({
      t: this.t,
      tool: this.tool,
      onTool: (name) => this.setTool(name),
      onClass: (name) => { this.currentClass = name; },
      onUndo: () => this.undo(),
      onRedo: () => this.redo(),
    });
    this.panel = new AnnotationPanel(this);
    /** DOM nodes the viewer places: the toolbar group and the side-panel section. */
    this.toolbar = this.toolbarView.el;
    this.section = this.panel.el;
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
    this.history.forget(layer);
    this.render();
    await layer.load(slide, pre);
    this.render();
  }

  close(layer) {
    layer.clear();
    this.render();
  }

  activate(layer) {
    if (this.active === layer) return;
    this.active = layer;
    this.render();
  }

  /** Layer contents changed (load, add, remove, edit): refresh panel and tools on the next frame. */
  layerChanged() {
    if (this._renderQueued) return;
    this._renderQueued = true;
    requestAnimationFrame(() => {
      this._renderQueued = false;
      this.render();
    });
  }

  colorOfClass(name) {
    const entry = this.palette.find((c) => c.name === name);
    return entry ? entry.color : DEFAULT_COLOR;
  }

  colorOf(shape) {
    return shape.color || this.colorOfClass(shape.cls);
  }

  // ------------------------------------------------------------ tools, visibility, selection

  setTool(name) {
    if (!isTool(name)) return;
    for (const layer of this.layers) layer.cancelDraft();
    this.tool = name;
    this.toolbarView.showTool(name);
    for (const layer of this.layers) {
      layer.pane.el.classList.toggle("ph-ann-drawing", name !== "select");
    }
  }

  /** Show or hide all annotations (drawing tools pause while hidden). */
  setVisible(on) {
    this.panel.showVisible(on);
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
    this.render();
  }

  /** Bring toolbar and panel in line with the active layer. */
  render() {
    const layer = this.active;
    const canEdit = Boolean(layer && layer.ready && layer.canCreate);
    this.toolbarView.update({
      canEdit, palette: this.palette, currentClass: this.currentClass,
      canUndo: this.history.canUndo, canRedo: this.history.canRedo,
    });
    if (!canEdit && this.tool !== "select") this.setTool("select");
    this.panel.render(layer);
  }

  // ------------------------------------------------------------ changes (saved by ShapeEdits)

  createShape(layer, geom, shapeKind) { return this.edits.createShape(layer, geom, shapeKind); }
  commitGeometry(layer, shape, before) { return this.edits.commitGeometry(layer, shape, before); }
  setClass(layer, shape, cls) { return this.edits.setClass(layer, shape, cls); }
  setComment(layer, shape, comment) { return this.edits.setComment(layer, shape, comment); }
  deleteShape(layer, shape) { return this.edits.deleteShape(layer, shape); }
  undo() { return this.edits.undo(); }
  redo() { return this.edits.redo(); }

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
      const tool = toolOfKey(lower);
      if (tool && (layer.canCreate || tool === "select")) this.setTool(tool);
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
      pending: this.edits.pending,
      undo: this.history.undoStack.length,
      redo: this.history.redoStack.length,
      primary: info(layer),
      compare: info(this.layers[1]),
    };
  }
}
