import { test } from "node:test";
import assert from "node:assert/strict";
import {
  fromGeoJSON, toGeoJSON, measurePx, measurements, rectangle, ellipse, hitTest, selfIntersects,
  formatLength, formatArea, translate, bounds, thin,
} from "../src/annotations/geometry.js";
import { GridIndex } from "../src/annotations/grid-index.js";

test("rectangle and triangle areas/perimeters match the shoelace formula and mpp", () => {
  const r = rectangle(500, 300, 1500, 1100);
  assert.deepEqual(measurePx(r), { areaPx: 800000, lengthPx: 3600 });
  const m = measurements(r, 0.25);
  assert.equal(m.areaUm2, 50000);
  assert.equal(m.area, "50000 µm²");
  assert.equal(m.perimeter, "900 µm");
  const tri = fromGeoJSON({ type: "Polygon", coordinates: [[[0, 0], [800, 0], [800, 700], [0, 0]]] });
  assert.equal(measurePx(tri).areaPx, 280000);
});

test("holes subtract, multipolygons add; a line has a length and no area", () => {
  const g = fromGeoJSON({ type: "MultiPolygon", coordinates: [
    [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[2, 2], [4, 2], [4, 4], [2, 4], [2, 2]]],
    [[[20, 0], [30, 0], [30, 10], [20, 10], [20, 0]]],
  ] });
  assert.equal(measurePx(g).areaPx, 100 - 4 + 100);
  const line = fromGeoJSON({ type: "LineString", coordinates: [[0, 0], [3, 4], [3, 10]] });
  assert.deepEqual(measurePx(line), { areaPx: 0, lengthPx: 11 });
  assert.equal(measurements(line, 1000).length, "11 mm");
});

test("ellipse polygon area is within 0.1 % of π·a·b", () => {
  const e = ellipse(0, 0, 600, 500);
  const { areaPx } = measurePx(e);
  assert.ok(Math.abs(areaPx / (Math.PI * 300 * 250) - 1) < 1e-3);
});

test("GeoJSON round trip closes polygon rings and keeps points", () => {
  const src = { type: "Polygon", coordinates: [[[1, 2], [3, 2], [3, 5], [1, 2]]] };
  assert.deepEqual(toGeoJSON(fromGeoJSON(src)), src);
  const pt = { type: "Point", coordinates: [7.5, 8.25] };
  assert.deepEqual(toGeoJSON(fromGeoJSON(pt)), pt);
  const moved = translate(fromGeoJSON(src), 10, -1);
  assert.deepEqual(bounds(moved), [11, 1, 13, 4]);
});

test("hit test: inside a polygon, near a line, outside both", () => {
  const r = rectangle(0, 0, 100, 100);
  assert.ok(hitTest(r, 50, 50, 1));
  assert.ok(!hitTest(r, 150, 50, 1));
  const line = fromGeoJSON({ type: "LineString", coordinates: [[0, 0], [100, 0]] });
  assert.ok(hitTest(line, 50, 2, 3));
  assert.ok(!hitTest(line, 50, 10, 3));
});

test("self-intersection is detected (bow tie) and a convex ring is fine", () => {
  assert.ok(selfIntersects(Float64Array.of(0, 0, 10, 10, 10, 0, 0, 10)));
  assert.ok(!selfIntersects(rectangle(0, 0, 10, 10).parts[0][0]));
});

test("formatting switches units and keeps 4 significant digits", () => {
  assert.equal(formatLength(999.94), "999.9 µm");
  assert.equal(formatLength(1234.6), "1.235 mm");
  assert.equal(formatArea(12346), "12350 µm²");
  assert.equal(formatArea(2.5e6), "2.5 mm²");
});

test("thin keeps the ends of a dense freehand trace and drops near duplicates", () => {
  const pts = [];
  for (let i = 0; i <= 100; i++) pts.push(i * 0.1, 0);
  const out = thin(pts, 1);
  assert.equal(out[0], 0);
  assert.ok(out.length / 2 <= 12);
});

test("grid index returns exactly the boxes touching the query", () => {
  const boxes = new Float64Array([0, 0, 10, 10, 500, 500, 520, 520, 990, 990, 1000, 1000, 0, 900, 1000, 910]);
  const grid = new GridIndex(boxes, 4, 1000, 1000, 16);
  assert.deepEqual(grid.query(5, 5, 6, 6), [0]);
  assert.deepEqual(grid.query(505, 505, 700, 700), [1]);
  assert.deepEqual(grid.query(0, 905, 1, 906), [3]);
  assert.deepEqual(grid.query(0, 0, 1000, 1000), [0, 1, 2, 3]);
  assert.deepEqual(grid.query(200, 200, 300, 300), []);
});
