import { test } from "node:test";
import assert from "node:assert/strict";
import { rectangle } from "../src/annotations/geometry.js";
import {
  adoptFeature, draftGeometry, featureBody, handlePositions, newShape, reshapedGeometry, shapeFromFeature,
} from "../src/annotations/shapes.js";
import { slideBoxOfScreenRect, toScreen, toSlide } from "../src/annotations/view-transform.js";

const feature = {
  id: 7,
  geometry: { type: "Polygon", coordinates: [[[0, 0], [40, 0], [40, 30], [0, 30], [0, 0]]] },
  properties: { uuid: "u-7", version: 3, class: "Tumor", comment: "核分裂象", author: 2, author_name: "王医生", shape: "rectangle" },
};

test("a feature becomes a record with bounds and vertex count, and goes back as the same GeoJSON", () => {
  const s = shapeFromFeature(feature);
  assert.equal(s.id, 7);
  assert.equal(s.version, 3);
  assert.equal(s.cls, "Tumor");
  assert.equal(s.authorName, "王医生");
  assert.equal(s.shapeKind, "rectangle");
  assert.equal(s.locked, false);
  assert.deepEqual([...s.bbox], [0, 0, 40, 30]);
  assert.equal(s.nverts, 4);
  const body = featureBody(s);
  assert.deepEqual(body.geometry, feature.geometry);
  assert.deepEqual(body.properties, { class: "Tumor", comment: "核分裂象", shape: "rectangle" });
  assert.equal(shapeFromFeature({ id: 1, geometry: { type: "Circle" } }), null);
});

test("adopting the server's version replaces the server fields but keeps the record", () => {
  const s = newShape(rectangle(1, 1, 2, 2), "rectangle", "Normal", 2);
  assert.equal(s.id, null);
  assert.equal(s.version, 0);
  assert.equal(adoptFeature(s, feature), true);
  assert.equal(s.id, 7);
  assert.equal(s.version, 3);
  assert.equal(s.cls, "Tumor");
  assert.deepEqual([...s.bbox], [0, 0, 40, 30]);
});

test("a draft polygon follows the cursor until it is closing; a 2-point polygon is a line", () => {
  assert.equal(draftGeometry(null), null);
  const d = { tool: "polygon", points: [0, 0, 10, 0], cursor: [10, 10] };
  const g = draftGeometry(d);
  assert.equal(g.kind, "polygon");
  assert.deepEqual([...g.parts[0][0]], [0, 0, 10, 0, 10, 10]);
  d.closing = true;
  assert.equal(draftGeometry(d).kind, "line");
  assert.equal(draftGeometry({ tool: "rectangle", points: [0, 0], cursor: null }), null);
  assert.deepEqual([...draftGeometry({ tool: "line", points: [1, 2], cursor: [3, 4] }).parts[0][0]], [1, 2, 3, 4]);
});

test("dragging a rectangle corner keeps the opposite corner; dragging a polygon vertex moves only it", () => {
  const r = rectangle(10, 10, 50, 40);
  const moved = reshapedGeometry("rectangle", r, 2, [80, 70]);   // handle 2 = bottom-right; opposite = top-left
  assert.deepEqual([...moved.parts[0][0]].slice(0, 2), [10, 10]);
  const tri = { kind: "polygon", parts: [[Float64Array.of(0, 0, 10, 0, 10, 10)]] };
  const g = reshapedGeometry(null, tri, 1, [20, 5]);
  assert.deepEqual([...g.parts[0][0]], [0, 0, 20, 5, 10, 10]);
  assert.deepEqual([...tri.parts[0][0]], [0, 0, 10, 0, 10, 10], "the original is not changed");
});

test("handles: 4 corners for rectangles; vertices closer than 3 handle sizes on screen are skipped", () => {
  const T = { a: 2, b: 0, c: 0, d: 2, e: 5, f: 5, scale: 2 };
  const rect = shapeFromFeature(feature);
  assert.deepEqual(handlePositions(rect, T).map((p) => [...p]), [[5, 5], [85, 5], [85, 65], [5, 65]]);
  const dense = { shapeKind: null, geom: { kind: "polygon", parts: [[Float64Array.of(0, 0, 1, 0, 2, 0, 100, 0, 100, 100)]] } };
  assert.deepEqual(handlePositions(dense, T).map((p) => p.index), [0, 3, 4]);
});

test("screen ↔ slide transforms are inverse, also when rotated", () => {
  const c = Math.cos(0.7), s = Math.sin(0.7);
  const T = { a: 0.5 * c, b: 0.5 * s, c: -0.5 * s, d: 0.5 * c, e: 300, f: 200, scale: 0.5 };
  const [sx, sy] = toScreen(T, 1234, 567);
  const [x, y] = toSlide(T, sx, sy);
  assert.ok(Math.abs(x - 1234) < 1e-9 && Math.abs(y - 567) < 1e-9);
  const box = slideBoxOfScreenRect({ a: 2, b: 0, c: 0, d: 2, e: 0, f: 0, scale: 2 }, 0, 0, 100, 50);
  assert.deepEqual(box, [0, 0, 50, 25]);
});
