/**
 * Shape records: what the viewer keeps per annotation (server properties plus geometry in
 * slide pixels with its bounds), how a record is made from a GeoJSON feature or sent back,
 * and the geometry of editing (the outline being drawn, a dragged handle).
 *
 * Pure functions without DOM or OpenSeadragon, so they run under `node --test`.
 */
import { bounds, cloneGeometry, ellipse, fromGeoJSON, rectangle, toGeoJSON } from "./geometry.js";
import { toScreen } from "./view-transform.js";

/** CSS px half-size of a vertex handle. */
export const HANDLE_PX = 5;

/** The properties of a record that the server owns (copied over after every save). */
const SERVER_FIELDS = ["id", "uuid", "version", "cls", "color", "comment", "name", "author", "authorName",
  "shapeKind", "locked", "geom", "bbox", "nverts"];

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

/** A shape just drawn by this user, not yet saved (id null, version 0). */
export function newShape(geom, shapeKind, cls, author) {
  return {
    id: null, version: 0, cls, color: null, comment: "", name: "",
    author, authorName: "", shapeKind, geom, bbox: bounds(geom), locked: false,
  };
}

/** Take the server's version of a shape into the existing record (the record's identity is kept). */
export function adoptFeature(shape, feature) {
  const fresh = shapeFromFeature(feature);
  if (!fresh) return false;
  for (const key of SERVER_FIELDS) shape[key] = fresh[key];
  return true;
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

/**
 * Geometry of the shape being drawn: `draft` = {tool, points: flat slide px, cursor: [x, y] | null,
 * closing}. Null while there is not enough to show.
 */
export function draftGeometry(draft) {
  if (!draft) return null;
  const pts = draft.points;
  const cur = draft.cursor;
  switch (draft.tool) {
    case "line":
      return cur ? { kind: "line", parts: [[Float64Array.of(pts[0], pts[1], cur[0], cur[1])]] } : null;
    case "rectangle":
      return cur ? rectangle(pts[0], pts[1], cur[0], cur[1]) : null;
    case "ellipse":
      return cur ? ellipse(pts[0], pts[1], cur[0], cur[1]) : null;
    case "polygon": {
      const all = cur && !draft.closing ? [...pts, cur[0], cur[1]] : pts;
      return all.length >= 4 ? { kind: all.length >= 6 ? "polygon" : "line", parts: [[Float64Array.from(all)]] } : null;
    }
    case "freehand":
      return pts.length >= 4 ? { kind: pts.length >= 6 ? "polygon" : "line", parts: [[Float64Array.from(pts)]] } : null;
    default:
      return null;
  }
}

/**
 * Screen positions of a shape's editable handles: the 4 corners for rectangles/ellipses
 * (handle k), vertices otherwise (p.index = the vertex number across all rings).
 */
export function handlePositions(shape, T) {
  if (shape.shapeKind === "rectangle" || shape.shapeKind === "ellipse") {
    const [x0, y0, x1, y1] = shape.bbox;
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) => toScreen(T, x, y));
  }
  // Every vertex is a handle, but only those far enough apart on screen are offered
  // (a 500-vertex freehand outline would otherwise be a solid band of squares).
  const out = [];
  let k = 0;
  for (const rings of shape.geom.parts) for (const r of rings) {
    let last = null;
    for (let i = 0; i < r.length; i += 2, k++) {
      const p = toScreen(T, r[i], r[i + 1]);
      if (last && Math.abs(p[0] - last[0]) < 3 * HANDLE_PX && Math.abs(p[1] - last[1]) < 3 * HANDLE_PX) continue;
      p.index = k;
      out.push(p);
      last = p;
    }
  }
  return out;
}

/**
 * Geometry after dragging handle `handle` of a shape whose geometry was `before` to slide point p:
 * a rectangle/ellipse keeps the opposite corner, any other shape moves that one vertex.
 */
export function reshapedGeometry(shapeKind, before, handle, p) {
  if (shapeKind === "rectangle" || shapeKind === "ellipse") {
    const [x0, y0, x1, y1] = bounds(before);
    const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
    const opposite = corners[(handle + 2) % 4];
    return shapeKind === "rectangle"
      ? rectangle(opposite[0], opposite[1], p[0], p[1])
      : ellipse(opposite[0], opposite[1], p[0], p[1]);
  }
  const g = cloneGeometry(before);
  let k = handle;
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
