/**
 * Shareable view state in the query string:
 *   ?slide=5&x=0.51&y=0.42&m=10&r=90&b=10&c=-5&g=1.2&compare=6
 *
 * x/y: view centre as a fraction of image width/height; r: rotation in degrees.
 * Scale is stored independently of the window, so a link reopens at the same
 * magnification in any window size:
 *   m: magnification, objective-equivalent, computed exactly as the viewer's read-out
 *      (native magnification from the objective power or MPP × screen px per image px);
 *   p: for slides without MPP or objective power: image pixels per screen (CSS) pixel.
 * b/c/g: brightness, contrast, gamma, written only when they differ from neutral.
 * Old links carry z (OSD viewport zoom, 1 = image width fills the window); they are
 * still understood, but z depends on the window width, so new links never write it.
 */

const ADJUSTMENT_KEYS = { b: "brightness", c: "contrast", g: "gamma" };
const NEUTRAL = { brightness: 0, contrast: 0, gamma: 1 };

function num(params, key) {
  const raw = params.get(key);
  if (raw === null || raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

function positive(params, key) {
  const value = num(params, key);
  return value !== undefined && value > 0 ? value : undefined;
}

/** Parse view state from a URL's query string; missing keys stay undefined. */
export function parseDeepLink(search) {
  const params = new URLSearchParams(search);
  const compareRaw = params.get("compare");
  let adjustments;
  for (const [short, key] of Object.entries(ADJUSTMENT_KEYS)) {
    const value = num(params, short);
    if (value !== undefined) adjustments = { ...(adjustments || NEUTRAL), [key]: value };
  }
  return {
    slideId: num(params, "slide"),
    x: num(params, "x"),
    y: num(params, "y"),
    magnification: positive(params, "m"),
    pixelRatio: positive(params, "p"),
    zoom: positive(params, "z"),
    rotation: num(params, "r"),
    adjustments,
    compareSlideId: compareRaw === null ? undefined : num(params, "compare") ?? null,
  };
}

/** Round for compact URLs without visibly moving the view. */
function fmt(value, digits) {
  return String(Number(value.toFixed(digits)));
}

/** Five significant digits: 0.002 % at most, far inside the ±1 % a link must reproduce. */
function sig(value) {
  return String(Number(value.toPrecision(5)));
}

/**
 * Return `href` with the view parameters replaced (others such as the token are kept).
 * @param {string} href
 * @param {{slideId:number, x:number, y:number, magnification?:number|null, pixelRatio?:number|null,
 *          rotation:number, adjustments?:object, compareSlideId?:number|null}} state
 */
export function buildDeepLink(href, state) {
  const url = new URL(href);
  const params = url.searchParams;
  params.set("slide", String(state.slideId));
  params.set("x", fmt(state.x, 5));
  params.set("y", fmt(state.y, 5));
  params.delete("z");
  params.delete("m");
  params.delete("p");
  if (Number.isFinite(state.magnification) && state.magnification > 0) {
    params.set("m", sig(state.magnification));
  } else if (Number.isFinite(state.pixelRatio) && state.pixelRatio > 0) {
    params.set("p", sig(state.pixelRatio));
  }
  params.set("r", fmt(state.rotation, 1));
  for (const [short, key] of Object.entries(ADJUSTMENT_KEYS)) {
    const value = state.adjustments ? Number(state.adjustments[key]) : NaN;
    if (Number.isFinite(value) && value !== NEUTRAL[key]) params.set(short, fmt(value, 3));
    else params.delete(short);
  }
  if (state.compareSlideId !== null && state.compareSlideId !== undefined) {
    params.set("compare", String(state.compareSlideId));
  } else {
    params.delete("compare");
  }
  url.search = params.toString();
  return url.toString();
}
