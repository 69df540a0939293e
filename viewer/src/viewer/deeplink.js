/**
 * Shareable view state in the query string: ?slide=5&x=0.51&y=0.42&z=3.1&r=90&compare=6
 * x/y: view centre as a fraction of image width/height; z: OSD viewport zoom
 * (1 = image width fills the viewer); r: rotation in degrees.
 */

function num(params, key) {
  const raw = params.get(key);
  if (raw === null || raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

/** Parse view state from a URL's query string; missing keys stay undefined. */
export function parseDeepLink(search) {
  const params = new URLSearchParams(search);
  const compareRaw = params.get("compare");
  return {
    slideId: num(params, "slide"),
    x: num(params, "x"),
    y: num(params, "y"),
    zoom: num(params, "z"),
    rotation: num(params, "r"),
    compareSlideId: compareRaw === null ? undefined : num(params, "compare") ?? null,
  };
}

/** Round for compact URLs without visibly moving the view. */
function fmt(value, digits) {
  return String(Number(value.toFixed(digits)));
}

/**
 * Return `href` with the view parameters replaced (others such as the token are kept).
 * @param {string} href
 * @param {{slideId:number, x:number, y:number, zoom:number, rotation:number, compareSlideId?:number|null}} state
 */
export function buildDeepLink(href, state) {
  const url = new URL(href);
  const params = url.searchParams;
  params.set("slide", String(state.slideId));
  params.set("x", fmt(state.x, 5));
  params.set("y", fmt(state.y, 5));
  params.set("z", String(Number(state.zoom.toPrecision(4))));
  params.set("r", fmt(state.rotation, 1));
  if (state.compareSlideId !== null && state.compareSlideId !== undefined) {
    params.set("compare", String(state.compareSlideId));
  } else {
    params.delete("compare");
  }
  url.search = params.toString();
  return url.toString();
}
