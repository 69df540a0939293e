/**
 * Pure geometry for annotations, in level-0 slide pixels (origin top-left).
 *
 * Kept free of DOM/OSD so measurements are easy to check: the figures shown in
 * the viewer are computed here with the same formulas the server uses
 * (shoelace area, summed segment lengths) and converted with the slide's mpp.
 */

/** Vertices used to store an ellipse as a polygon: area error 0.04 % (below display precision). */
export const ELLIPSE_VERTICES = 128;

/**
 * Internal shape geometry: `kind` is point | line | polygon; `rings` is a list of
 * flat Float64Array [x0, y0, x1, y1, …] (polygons: outer ring first, holes after,
 * stored WITHOUT the repeated closing vertex; MultiPolygon → `parts`).
 */

/** GeoJSON geometry → { kind, parts: [rings…] } with typed arrays. Unknown types → null. */
export function fromGeoJSON(geom) {
  if (!geom || !geom.type) return null;
  const flat = (positions, close) => {
    let n = positions.length;
    if (close && n > 1) {
      const a = positions[0];
      const b = positions[n - 1];
      if (a[0] === b[0] && a[1] === b[1]) n -= 1;
    }
    const out = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      out[2 * i] = positions[i][0];
      out[2 * i + 1] = positions[i][1];
    }
    return out;
  };
  switch (geom.type) {
    case "Point":
      return { kind: "point", parts: [[flat([geom.coordinates], false)]] };
    case "MultiPoint":
      return { kind: "point", parts: geom.coordinates.map((p) => [flat([p], false)]) };
    case "LineString":
      return { kind: "line", parts: [[flat(geom.coordinates, false)]] };
    case "Polygon":
      return { kind: "polygon", parts: [geom.coordinates.map((r) => flat(r, true))] };
    case "MultiPolygon":
      return { kind: "polygon", parts: geom.coordinates.map((poly) => poly.map((r) => flat(r, true))) };
    default:
      return null;
  }
}

const round = (v) => Math.round(v * 100) / 100;

function positions(ring, close) {
  const out = [];
  for (let i = 0; i < ring.length; i += 2) out.push([round(ring[i]), round(ring[i + 1])]);
  if (close && out.length) out.push([out[0][0], out[0][1]]);
  return out;
}

/** Internal geometry → GeoJSON (coordinates rounded to 1/100 px; polygons closed). */
export function toGeoJSON(g) {
  if (g.kind === "point") {
    if (g.parts.length === 1) return { type: "Point", coordinates: positions(g.parts[0][0], false)[0] };
    return { type: "MultiPoint", coordinates: g.parts.map((p) => positions(p[0], false)[0]) };
  }
  if (g.kind === "line") return { type: "LineString", coordinates: positions(g.parts[0][0], false) };
  const polys = g.parts.map((rings) => rings.map((r) => positions(r, true)));
  return polys.length === 1 ? { type: "Polygon", coordinates: polys[0] } : { type: "MultiPolygon", coordinates: polys };
}

/** Signed shoelace area of one ring (flat array, implicitly closed). */
export function ringArea(ring) {
  let sum = 0;
  const n = ring.length;
  for (let i = 0; i < n; i += 2) {
    const j = (i + 2) % n;
    sum += ring[i] * ring[j + 1] - ring[j] * ring[i + 1];
  }
  return sum / 2;
}

/** Length of a ring or line (flat array); `closed` adds the last→first segment. */
export function pathLength(ring, closed) {
  let len = 0;
  const n = ring.length;
  for (let i = 2; i < n; i += 2) len += Math.hypot(ring[i] - ring[i - 2], ring[i + 1] - ring[i - 1]);
  if (closed && n >= 4) len += Math.hypot(ring[0] - ring[n - 2], ring[1] - ring[n - 1]);
  return len;
}

/** {areaPx, lengthPx} as the server computes them (shapely area / length: holes subtract, perimeters add). */
export function measurePx(g) {
  if (g.kind === "point") return { areaPx: 0, lengthPx: 0 };
  if (g.kind === "line") return { areaPx: 0, lengthPx: pathLength(g.parts[0][0], false) };
  let area = 0;
  let length = 0;
  for (const rings of g.parts) {
    rings.forEach((r, k) => {
      const a = Math.abs(ringArea(r));
      area += k === 0 ? a : -a;
      length += pathLength(r, true);
    });
  }
  return { areaPx: area, lengthPx: length };
}

/** Axis-aligned bounds [minX, minY, maxX, maxY] of all vertices. */
export function bounds(g) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const rings of g.parts) {
    for (const r of rings) {
      for (let i = 0; i < r.length; i += 2) {
        if (r[i] < x0) x0 = r[i];
        if (r[i] > x1) x1 = r[i];
        if (r[i + 1] < y0) y0 = r[i + 1];
        if (r[i + 1] > y1) y1 = r[i + 1];
      }
    }
  }
  return [x0, y0, x1, y1];
}

export function rectangle(x0, y0, x1, y1) {
  const [a, b] = [Math.min(x0, x1), Math.max(x0, x1)];
  const [c, d] = [Math.min(y0, y1), Math.max(y0, y1)];
  return { kind: "polygon", parts: [[Float64Array.of(a, c, b, c, b, d, a, d)]] };
}

/** Ellipse inscribed in the box (x0,y0)-(x1,y1), as a polygon. */
export function ellipse(x0, y0, x1, y1, n = ELLIPSE_VERTICES) {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const rx = Math.abs(x1 - x0) / 2;
  const ry = Math.abs(y1 - y0) / 2;
  const ring = new Float64Array(n * 2);
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n;
    ring[2 * i] = cx + rx * Math.cos(t);
    ring[2 * i + 1] = cy + ry * Math.sin(t);
  }
  return { kind: "polygon", parts: [[ring]] };
}

export function cloneGeometry(g) {
  return { kind: g.kind, parts: g.parts.map((rings) => rings.map((r) => Float64Array.from(r))) };
}

export function translate(g, dx, dy) {
  const out = cloneGeometry(g);
  for (const rings of out.parts) for (const r of rings) {
    for (let i = 0; i < r.length; i += 2) { r[i] += dx; r[i + 1] += dy; }
  }
  return out;
}

/** Keep every vertex inside the slide (a drag may overshoot its edge). */
export function clampGeometry(g, width, height) {
  for (const rings of g.parts) for (const r of rings) {
    for (let i = 0; i < r.length; i += 2) {
      r[i] = Math.min(Math.max(r[i], 0), width);
      r[i + 1] = Math.min(Math.max(r[i + 1], 0), height);
    }
  }
  return g;
}

/** Even-odd point-in-ring test. */
export function pointInRing(ring, x, y) {
  let inside = false;
  const n = ring.length;
  for (let i = 0, j = n - 2; i < n; j = i, i += 2) {
    const xi = ring[i], yi = ring[i + 1], xj = ring[j], yj = ring[j + 1];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Squared distance from (x, y) to segment (ax, ay)-(bx, by). */
export function segmentDistance2(x, y, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 ? ((x - ax) * dx + (y - ay) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  const px = ax + t * dx - x;
  const py = ay + t * dy - y;
  return px * px + py * py;
}

/** Does the shape contain (polygon) or pass within `tol` px (line, point, outline) of (x, y)? */
export function hitTest(g, x, y, tol) {
  const tol2 = tol * tol;
  for (const rings of g.parts) {
    if (g.kind === "polygon") {
      let inside = false;
      rings.forEach((r) => { if (pointInRing(r, x, y)) inside = !inside; });
      if (inside) return true;
    }
    for (const r of rings) {
      if (r.length === 2) {
        if ((r[0] - x) ** 2 + (r[1] - y) ** 2 <= tol2 * 4) return true;
        continue;
      }
      const n = r.length;
      for (let i = 2; i < n; i += 2) {
        if (segmentDistance2(x, y, r[i - 2], r[i - 1], r[i], r[i + 1]) <= tol2) return true;
      }
      if (g.kind === "polygon" && segmentDistance2(x, y, r[n - 2], r[n - 1], r[0], r[1]) <= tol2) return true;
    }
  }
  return false;
}

/**
 * Drop vertices closer than `minDist` to the previous kept one (freehand input
 * arrives at pointer rate; the shape is the same with far fewer vertices).
 */
export function thin(points, minDist) {
  if (points.length <= 4) return Float64Array.from(points);
  const out = [points[0], points[1]];
  const m2 = minDist * minDist;
  for (let i = 2; i < points.length; i += 2) {
    const dx = points[i] - out[out.length - 2];
    const dy = points[i + 1] - out[out.length - 1];
    if (dx * dx + dy * dy >= m2) out.push(points[i], points[i + 1]);
  }
  return Float64Array.from(out);
}

/** Does the closed ring cross itself? (O(n²); drawn shapes have at most a few thousand vertices.) */
export function selfIntersects(ring) {
  const n = ring.length / 2;
  if (n < 4) return false;
  const seg = (i) => [ring[2 * i], ring[2 * i + 1], ring[(2 * ((i + 1) % n))], ring[(2 * ((i + 1) % n)) + 1]];
  const orient = (ax, ay, bx, by, cx, cy) => Math.sign((bx - ax) * (cy - ay) - (by - ay) * (cx - ax));
  for (let i = 0; i < n; i++) {
    const [ax, ay, bx, by] = seg(i);
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue;
      const [cx, cy, dx, dy] = seg(j);
      const o1 = orient(ax, ay, bx, by, cx, cy);
      const o2 = orient(ax, ay, bx, by, dx, dy);
      const o3 = orient(cx, cy, dx, dy, ax, ay);
      const o4 = orient(cx, cy, dx, dy, bx, by);
      if (o1 !== o2 && o3 !== o4 && o1 && o2 && o3 && o4) return true;
    }
  }
  return false;
}

/**
 * Format a length given in µm: µm below 1 mm, mm above, 4 significant digits
 * (0.1 % resolution, well inside the 1 % a measurement must hold).
 */
export function formatLength(um) {
  if (!Number.isFinite(um)) return "–";
  if (um >= 1000) return `${+(um / 1000).toPrecision(4)} mm`;
  return `${+um.toPrecision(4)} µm`;
}

/** Format an area given in µm²: mm² from 0.1 mm² upwards. */
export function formatArea(um2) {
  if (!Number.isFinite(um2)) return "–";
  if (um2 >= 1e5) return `${+(um2 / 1e6).toPrecision(4)} mm²`;
  return `${+um2.toPrecision(4)} µm²`;
}

/**
 * Measurements for display: {length?, area?, perimeter?} as formatted strings
 * plus raw µm values; pixels when the slide's mpp is unknown.
 */
export function measurements(g, mpp) {
  const { areaPx, lengthPx } = measurePx(g);
  const known = mpp > 0;
  const len = (px) => (known ? formatLength(px * mpp) : `${+px.toPrecision(4)} px`);
  const area = (px) => (known ? formatArea(px * mpp * mpp) : `${+px.toPrecision(4)} px²`);
  if (g.kind === "line") return { lengthUm: known ? lengthPx * mpp : null, length: len(lengthPx) };
  if (g.kind === "polygon") {
    return {
      areaUm2: known ? areaPx * mpp * mpp : null,
      perimeterUm: known ? lengthPx * mpp : null,
      area: area(areaPx),
      perimeter: len(lengthPx),
    };
  }
  return {};
}
