/**
 * Every change to a shape goes to the server from here, one after another (so undo and redo
 * keep their order), each with the version it was made against: a 409 brings in the server's
 * version of the shape and says so; any other failure puts the local shape back and explains.
 * Successful changes are recorded in the undo history (undo.js); undo and redo replay through
 * the same round trips.
 */
import { ApiError } from "./api.js";
import { bounds, cloneGeometry, selfIntersects, toGeoJSON } from "./geometry.js";
import { adoptFeature, featureBody, newShape } from "./shapes.js";

export class ShapeEdits {
  /**
   * @param {import("./controller.js").AnnotationController} ctl for t, toast, select, render,
   *   currentClass, userId
   * @param {import("./undo.js").UndoHistory} history
   */
  constructor(ctl, history) {
    this.ctl = ctl;
    this.history = history;
    this.queue = Promise.resolve();
    this.pending = 0;
  }

  /** Run server operations one after another, so undo/redo keep their order. */
  enqueue(fn) {
    this.pending += 1;
    const run = this.queue.then(fn).catch((err) => this._reportError(err)).finally(() => {
      this.pending -= 1;
      this.ctl.render();
    });
    this.queue = run;
    return run;
  }

  _reportError(err) {
    const { t, toast } = this.ctl;
    if (err && err.handled) return;   // already explained (version conflict)
    if (err instanceof ApiError) {
      if (err.status === 403) toast(t("notAllowed"));
      else toast(t("saveFailed", { message: err.message }));
    } else {
      toast(t("saveFailed", { message: String(err && err.message ? err.message : err) }));
    }
  }

  _conflict(layer, shape, err) {
    if (err instanceof ApiError && err.status === 409 && err.body && err.body.current) {
      adoptFeature(shape, err.body.current);
      layer.changed();
      err.handled = true;
      this.ctl.toast(this.ctl.t("versionConflict"));
      return true;
    }
    return false;
  }

  createShape(layer, geom, shapeKind) {
    const ctl = this.ctl;
    if (geom.kind === "polygon" && selfIntersects(geom.parts[0][0])) {
      ctl.toast(ctl.t("selfIntersecting"));
      layer.draw();
      return Promise.resolve(null);
    }
    const shape = newShape(geom, shapeKind, ctl.currentClass, ctl.userId);
    return this.enqueue(async () => {
      await this._post(layer, shape);
      this.history.record({ op: "create", layer, ref: shape });
      ctl.select(layer, shape);
    }).then(() => shape);
  }

  async _post(layer, shape) {
    const feature = await layer.api.create(featureBody(shape));
    adoptFeature(shape, feature);
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
      adoptFeature(shape, feature);
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
      this.ctl.toast(this.ctl.t("selfIntersecting"));
      return Promise.resolve();
    }
    layer.changed();
    return this.enqueue(async () => {
      await this._patch(layer, shape, { geom: after }, { geom: before });
      this.history.record({ op: "update", layer, ref: shape, before: { geom: before }, after: { geom: after } });
    });
  }

  setClass(layer, shape, cls) {
    const before = { cls: shape.cls };
    return this.enqueue(async () => {
      await this._patch(layer, shape, { cls }, before);
      this.history.record({ op: "update", layer, ref: shape, before, after: { cls } });
    });
  }

  setComment(layer, shape, comment) {
    const before = { comment: shape.comment };
    return this.enqueue(async () => {
      await this._patch(layer, shape, { comment }, before);
      this.history.record({ op: "update", layer, ref: shape, before, after: { comment } });
    });
  }

  deleteShape(layer, shape) {
    if (!layer.isEditable(shape)) {
      this.ctl.toast(this.ctl.t("notAllowed"));
      return Promise.resolve();
    }
    return this.enqueue(async () => {
      await this._delete(layer, shape);
      this.history.record({ op: "delete", layer, ref: shape });
    });
  }

  /** Undo: the inverse change goes to the server too (a deleted shape is re-created, with a new id). */
  undo() {
    return this.history.undo((fn) => this.enqueue(fn), (cmd, backwards) => this._replay(cmd, backwards));
  }

  redo() {
    return this.history.redo((fn) => this.enqueue(fn), (cmd, backwards) => this._replay(cmd, backwards));
  }

  async _replay(cmd, backwards) {
    const { layer, ref } = cmd;
    if (cmd.op === "update") {
      const target = backwards ? cmd.before : cmd.after;
      const fields = { ...target };
      if (fields.geom) fields.geom = cloneGeometry(fields.geom);
      await this._patch(layer, ref, fields, null);
      if (layer.selected === ref) this.ctl.render();
      return;
    }
    const create = (cmd.op === "create") !== backwards;
    if (create) {
      await this._post(layer, ref);
      this.ctl.select(layer, ref);
    } else {
      await this._delete(layer, ref);
    }
  }
}
