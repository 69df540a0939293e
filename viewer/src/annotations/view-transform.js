/**
 * The affine map between slide pixels and the pane's screen (viewer-element CSS px).
 *
 * Taken from OpenSeadragon's own coordinate conversions, so rotation and flips are exact;
 * everything else (drawing, hit tests, handles) works through these few functions and never
 * asks OpenSeadragon again. T = {a, b, c, d, e, f, scale}: screen = [a c e; b d f] · slide.
 */

/** Affine slide px → viewer-element CSS px for a tiled image (null while nothing is open). */
export function viewTransform(viewer, item) {
  if (!item || !viewer) return null;
  const vp = viewer.viewport;
  const S = Math.max(item.getContentSize().x, 1);
  const conv = (x, y) => vp.viewportToViewerElementCoordinates(item.imageToViewportCoordinates(x, y, true));
  const p0 = conv(0, 0);
  const p1 = conv(S, 0);
  const p2 = conv(0, S);
  const a = (p1.x - p0.x) / S, b = (p1.y - p0.y) / S, c = (p2.x - p0.x) / S, d = (p2.y - p0.y) / S;
  return { a, b, c, d, e: p0.x, f: p0.y, scale: Math.hypot(a, b) };
}

/** Slide point → screen point. */
export function toScreen(T, x, y) {
  return [T.a * x + T.c * y + T.e, T.b * x + T.d * y + T.f];
}

/** Screen point → slide point. */
export function toSlide(T, sx, sy) {
  const det = T.a * T.d - T.b * T.c;
  const x = sx - T.e;
  const y = sy - T.f;
  return [(T.d * x - T.c * y) / det, (-T.b * x + T.a * y) / det];
}

/** Slide-pixel box seen through a screen rectangle (rotation-aware: the bounds of its 4 corners). */
export function slideBoxOfScreenRect(T, x0, y0, x1, y1) {
  const pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) => toSlide(T, x, y));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}
